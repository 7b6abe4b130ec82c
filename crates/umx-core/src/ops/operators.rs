//! Operator overloads: `+ - * / % & | ^ << >>`, unary `-` and `!`, and their `op=` forms, for
//! every mix of `Array`, `&Array` and Rust scalars (`2.0 * &a`, `&a + &b`, `a << 1`).
//!
//! | operator | op |
//! |---|---|
//! | `a + b`, `a - b`, `a * b`, `a / b`, `a % b` | [`add`], [`subtract`], [`multiply`], [`divide`] (true division), [`remainder`] |
//! | `a & b`, `a \| b`, `a ^ b`, `a << b`, `a >> b` | [`bitwise_and`], [`bitwise_or`], [`bitwise_xor`], [`left_shift`], [`right_shift`] |
//! | `-a` | [`negative`](super::unary::negative) (bool is refused) |
//! | `!a` | [`logical_not`](super::unary::logical_not) for bool, bitwise not for integers (floats are refused) |
//!
//! Scalars are weak, as in the functions: `&a_f16 * 2.0` stays float16.
//!
//! # Failure policy
//!
//! An operator cannot return a `Result`, and it never panics. When the op fails (shapes that do
//! not broadcast, a shift of floats, an operand that already carries an error), the operator
//! returns [`Array::from_error`] holding the op's error. That error then travels: every later op
//! on the array returns it as its `Err` (`ops::sum(&bad)?` fails with the original message),
//! and every read (`eval`, `to_vec`, `item`) returns it. So a chain `(&a + &b) * 2.0` that goes
//! wrong reports the first failure, with the name of the op that failed, where it is used.
//!
//! ```
//! # umx_cpu::register();
//! # use umx_core::Array;
//! let a = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3])?;
//! let b = Array::from_slice(&[1.0f32, 2.0], &[2])?;
//! let y = (&a * 2.0 + 5.0) / 3.0;
//! assert_eq!(y.to_vec::<f32>()?, vec![7.0 / 3.0, 3.0, 11.0 / 3.0]);
//! let bad = &a + &b; // shapes (3,) and (2,): no panic, an array that carries the error
//! let e = (bad * 2.0).to_vec::<f32>().unwrap_err();
//! assert!(e.to_string().starts_with("add: shapes (3,) and (2,)"));
//! # Ok::<(), umx_core::Error>(())
//! ```

use super::elementwise::*;
use crate::{Array, Dtype, Element, Error, IntoArray, Result};
use std::ops::{
    Add, AddAssign, BitAnd, BitAndAssign, BitOr, BitOrAssign, BitXor, BitXorAssign, Div, DivAssign,
    Mul, MulAssign, Neg, Not, Rem, RemAssign, Shl, ShlAssign, Shr, ShrAssign, Sub, SubAssign,
};

/// The operators' failure policy in one place: an `Err` becomes an array carrying it.
fn or_error(r: Result<Array>) -> Array {
    r.unwrap_or_else(Array::from_error)
}

// The right operand is generic over `IntoArray` (arrays, `&Array` and scalars) so that an
// unsuffixed literal (`&a * 2.0`) picks its impl at once and the result's type is known; the
// left-scalar forms (`2.0 * &a`) need one impl per scalar type.
macro_rules! array_operator {
    ($Trait:ident, $method:ident, $f:ident, $Assign:ident, $assign:ident) => {
        impl<T: IntoArray> $Trait<T> for Array {
            type Output = Array;
            fn $method(self, rhs: T) -> Array {
                or_error($f(&self, rhs))
            }
        }
        impl<T: IntoArray> $Trait<T> for &Array {
            type Output = Array;
            fn $method(self, rhs: T) -> Array {
                or_error($f(self, rhs))
            }
        }
        impl<T: IntoArray> $Assign<T> for Array {
            fn $assign(&mut self, rhs: T) {
                *self = or_error($f(&*self, rhs));
            }
        }
        scalar_operator!($Trait, $method, $f; f32, f64, i8, i16, i32, i64, u8, u16, u32, u64, bool);
    };
}

macro_rules! scalar_operator {
    ($Trait:ident, $method:ident, $f:ident; $($t:ty),*) => {$(
        impl $Trait<Array> for $t {
            type Output = Array;
            fn $method(self, rhs: Array) -> Array {
                or_error($f(self, &rhs))
            }
        }
        impl $Trait<&Array> for $t {
            type Output = Array;
            fn $method(self, rhs: &Array) -> Array {
                or_error($f(self, rhs))
            }
        }
    )*};
}

array_operator!(Add, add, add, AddAssign, add_assign);
array_operator!(Sub, sub, subtract, SubAssign, sub_assign);
array_operator!(Mul, mul, multiply, MulAssign, mul_assign);
array_operator!(Div, div, divide, DivAssign, div_assign);
array_operator!(Rem, rem, remainder, RemAssign, rem_assign);
array_operator!(BitAnd, bitand, bitwise_and, BitAndAssign, bitand_assign);
array_operator!(BitOr, bitor, bitwise_or, BitOrAssign, bitor_assign);
array_operator!(BitXor, bitxor, bitwise_xor, BitXorAssign, bitxor_assign);
array_operator!(Shl, shl, left_shift, ShlAssign, shl_assign);
array_operator!(Shr, shr, right_shift, ShrAssign, shr_assign);

/// `-a`: MLX's `negative` (bool is refused).
fn negate(a: &Array) -> Result<Array> {
    super::unary::negative(a)
}

/// -1 in `dtype` (all bits set for unsigned integers).
fn minus_one(dtype: Dtype) -> Array {
    crate::dispatch_dtype!(dtype, T => Array::scalar(T::from_i64(-1)))
}

/// `!a`: logical not for bool, bitwise not for integers; floats are refused (MLX's `~`).
fn invert(a: &Array) -> Result<Array> {
    a.check()?;
    match a.dtype() {
        Dtype::Bool => super::unary::logical_not(a),
        d if d.is_integer() => bitwise_xor(a, minus_one(d)),
        d => Err(Error::Invalid(format!(
            "bitwise_invert: takes only integer or boolean inputs, not {d}"
        ))),
    }
}

impl Neg for Array {
    type Output = Array;
    fn neg(self) -> Array {
        or_error(negate(&self))
    }
}
impl Neg for &Array {
    type Output = Array;
    fn neg(self) -> Array {
        or_error(negate(self))
    }
}
impl Not for Array {
    type Output = Array;
    fn not(self) -> Array {
        or_error(invert(&self))
    }
}
impl Not for &Array {
    type Output = Array;
    fn not(self) -> Array {
        or_error(invert(self))
    }
}
