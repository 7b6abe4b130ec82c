//! Element-wise binary primitives (arithmetic, comparison, logical, bitwise) and their scalar
//! semantics.
//!
//! Everything a backend needs to agree on lives here once:
//! - [`BinaryOp::compute_dtype`]: the dtype both inputs are converted to before the op runs
//!   (a function of their promoted dtype), or `None` where the op does not take it;
//! - [`BinaryOp::output_dtype`]: the result dtype (bool for comparisons);
//! - the scalar semantics, one method per op on the traits [`Arithmetic`], [`FloatMath`],
//!   [`Compare`] and [`Bitwise`], implemented for every compute type. The CPU loops call them;
//!   a CUDA generator maps [`BinaryOp::name`] to the same definitions.
//!
//! float16 and bfloat16 are computed in float32 and rounded once (as MLX does), so the traits
//! are implemented for `f32`/`f64`, the integers, bool and (arithmetic only) complex64.
//!
//! Integer semantics where C++ would be undefined (all documented in the op functions):
//! add/subtract/multiply wrap; division and remainder by zero give 0 (as NumPy does);
//! `floor_divide` rounds towards negative infinity (NumPy's `//`; MLX's CPU truncates); an
//! integer power with a negative exponent gives the truncated result (0 unless the base is
//! 1 or -1); shifts by a negative amount or by the bit width or more give 0 (left) or the sign
//! fill (right), as NumPy does.

mod transforms;

use crate::dtype::{Dtype, promote_types};
use num_complex::Complex32;

/// The binary primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    /// True division: integer inputs are computed in float32.
    Divide,
    /// Floor of the quotient (integers: NumPy's `//`).
    FloorDivide,
    /// Remainder with the divisor's sign (Python's `%`).
    Remainder,
    /// Two outputs: `floor_divide` and `remainder`.
    DivMod,
    Power,
    ArcTan2,
    LogAddExp,
    /// NaN-propagating maximum.
    Maximum,
    /// NaN-propagating minimum.
    Minimum,
    Equal,
    /// Equality under which NaN equals NaN (for `array_equal(.., equal_nan = true)`).
    NaNEqual,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    LogicalAnd,
    LogicalOr,
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
    LeftShift,
    RightShift,
    /// `|a - b| <= atol + rtol * |b|`, with infinities equal only to themselves.
    IsClose {
        rtol: f64,
        atol: f64,
        equal_nan: bool,
    },
}

/// The broad group of a binary op, which fixes its output dtype rule and which scalar trait
/// holds its semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    /// Output dtype = compute dtype ([`Arithmetic`]).
    Arithmetic,
    /// Float-only math ([`FloatMath`]); output dtype = compute dtype.
    FloatMath,
    /// Bool output ([`Compare`]).
    Comparison,
    /// Inputs as bool, bool output.
    Logical,
    /// Integers and bool only ([`Bitwise`]); output dtype = compute dtype.
    Bitwise,
}

impl BinaryOp {
    /// MLX's name of the op (`"add"`, `"floor_divide"`, ...), used in messages and kernel names.
    pub fn name(&self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "add",
            Subtract => "subtract",
            Multiply => "multiply",
            Divide => "divide",
            FloorDivide => "floor_divide",
            Remainder => "remainder",
            DivMod => "divmod",
            Power => "power",
            ArcTan2 => "arctan2",
            LogAddExp => "logaddexp",
            Maximum => "maximum",
            Minimum => "minimum",
            Equal => "equal",
            NaNEqual => "nan_equal",
            NotEqual => "not_equal",
            Less => "less",
            LessEqual => "less_equal",
            Greater => "greater",
            GreaterEqual => "greater_equal",
            LogicalAnd => "logical_and",
            LogicalOr => "logical_or",
            BitwiseAnd => "bitwise_and",
            BitwiseOr => "bitwise_or",
            BitwiseXor => "bitwise_xor",
            LeftShift => "left_shift",
            RightShift => "right_shift",
            IsClose { .. } => "isclose",
        }
    }

    /// The op's group.
    pub fn kind(&self) -> BinaryKind {
        use BinaryOp::*;
        match self {
            Add | Subtract | Multiply | Divide | FloorDivide | Remainder | DivMod | Power
            | Maximum | Minimum => BinaryKind::Arithmetic,
            ArcTan2 | LogAddExp => BinaryKind::FloatMath,
            Equal
            | NaNEqual
            | NotEqual
            | Less
            | LessEqual
            | Greater
            | GreaterEqual
            | IsClose { .. } => BinaryKind::Comparison,
            LogicalAnd | LogicalOr => BinaryKind::Logical,
            BitwiseAnd | BitwiseOr | BitwiseXor | LeftShift | RightShift => BinaryKind::Bitwise,
        }
    }

    /// Number of outputs (2 for `DivMod`, else 1).
    pub fn num_outputs(&self) -> usize {
        if *self == BinaryOp::DivMod { 2 } else { 1 }
    }

    /// The dtype both inputs are computed in, given their promoted dtype (MLX's rules), or
    /// `None` where the op does not accept it.
    pub fn compute_dtype(&self, promoted: Dtype) -> Option<Dtype> {
        use BinaryOp::*;
        let at_least_float = promoted.to_inexact();
        let real = !promoted.is_complex();
        match self {
            Add | Subtract | Multiply | Equal | NotEqual | NaNEqual => Some(promoted),
            Divide => Some(at_least_float),
            FloorDivide | Remainder | DivMod | Power | Maximum | Minimum | Less | LessEqual
            | Greater | GreaterEqual => real.then_some(promoted),
            ArcTan2 | LogAddExp | IsClose { .. } => real.then_some(at_least_float),
            LogicalAnd | LogicalOr => Some(Dtype::Bool),
            BitwiseAnd | BitwiseOr | BitwiseXor => {
                (promoted.is_integer() || promoted == Dtype::Bool).then_some(promoted)
            }
            // MLX promotes shifts with uint8, so bool shifts as uint8.
            LeftShift | RightShift => (promoted.is_integer() || promoted == Dtype::Bool)
                .then(|| promote_types(promoted, Dtype::Uint8)),
        }
    }

    /// The output dtype for a compute dtype.
    pub fn output_dtype(&self, compute: Dtype) -> Dtype {
        match self.kind() {
            BinaryKind::Comparison | BinaryKind::Logical => Dtype::Bool,
            _ => compute,
        }
    }
}

/// Scalar semantics of the arithmetic ops, per compute type.
pub trait Arithmetic: Copy {
    fn add(self, b: Self) -> Self;
    fn subtract(self, b: Self) -> Self;
    fn multiply(self, b: Self) -> Self;
    /// True division (integers are never computed in an integer dtype; here it truncates).
    fn divide(self, b: Self) -> Self;
    fn floor_divide(self, b: Self) -> Self;
    fn remainder(self, b: Self) -> Self;
    fn power(self, b: Self) -> Self;
    fn maximum(self, b: Self) -> Self;
    fn minimum(self, b: Self) -> Self;
}

/// Scalar semantics of the float-only ops (`f32`, `f64`).
pub trait FloatMath: Arithmetic + Compare {
    fn arctan2(self, b: Self) -> Self;
    fn logaddexp(self, b: Self) -> Self;
    /// `isclose`: `|a - b| <= atol + rtol * |b|`; infinities are close only to themselves;
    /// NaNs are close to each other when `equal_nan`.
    fn is_close(self, b: Self, rtol: f64, atol: f64, equal_nan: bool) -> bool;
}

/// Scalar semantics of the comparisons (every compute type but complex, which has only
/// `equal`/`not_equal`).
pub trait Compare: Copy + PartialOrd {
    fn is_nan(self) -> bool {
        false
    }
    #[inline(always)]
    fn equal(self, b: Self) -> bool {
        self == b
    }
    #[inline(always)]
    fn nan_equal(self, b: Self) -> bool {
        self == b || (self.is_nan() && b.is_nan())
    }
    #[inline(always)]
    fn not_equal(self, b: Self) -> bool {
        self != b
    }
    #[inline(always)]
    fn less(self, b: Self) -> bool {
        self < b
    }
    #[inline(always)]
    fn less_equal(self, b: Self) -> bool {
        self <= b
    }
    #[inline(always)]
    fn greater(self, b: Self) -> bool {
        self > b
    }
    #[inline(always)]
    fn greater_equal(self, b: Self) -> bool {
        self >= b
    }
}

/// Scalar semantics of the bitwise ops (integers and bool).
pub trait Bitwise: Copy {
    fn bitwise_and(self, b: Self) -> Self;
    fn bitwise_or(self, b: Self) -> Self;
    fn bitwise_xor(self, b: Self) -> Self;
    fn left_shift(self, b: Self) -> Self;
    fn right_shift(self, b: Self) -> Self;
}

/// Scalar semantics of the logical ops (inputs already converted to bool).
#[inline(always)]
pub fn logical_and(a: bool, b: bool) -> bool {
    a && b
}
/// See [`logical_and`].
#[inline(always)]
pub fn logical_or(a: bool, b: bool) -> bool {
    a || b
}

macro_rules! float_semantics {
    ($t:ty) => {
        impl Arithmetic for $t {
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                self + b
            }
            #[inline(always)]
            fn subtract(self, b: Self) -> Self {
                self - b
            }
            #[inline(always)]
            fn multiply(self, b: Self) -> Self {
                self * b
            }
            #[inline(always)]
            fn divide(self, b: Self) -> Self {
                self / b
            }
            /// MLX: `floor(a / b)`.
            #[inline(always)]
            fn floor_divide(self, b: Self) -> Self {
                (self / b).floor()
            }
            /// `fmod`, moved to the divisor's sign.
            #[inline(always)]
            fn remainder(self, b: Self) -> Self {
                let r = self % b;
                if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
                    r + b
                } else {
                    r
                }
            }
            #[inline(always)]
            fn power(self, b: Self) -> Self {
                self.powf(b)
            }
            #[inline(always)]
            fn maximum(self, b: Self) -> Self {
                if b.is_nan() {
                    b
                } else if self.is_nan() || self > b {
                    self
                } else {
                    b
                }
            }
            #[inline(always)]
            fn minimum(self, b: Self) -> Self {
                if b.is_nan() {
                    b
                } else if self.is_nan() || self < b {
                    self
                } else {
                    b
                }
            }
        }

        impl FloatMath for $t {
            #[inline(always)]
            fn arctan2(self, b: Self) -> Self {
                self.atan2(b)
            }
            #[inline(always)]
            fn logaddexp(self, b: Self) -> Self {
                let hi = Arithmetic::maximum(self, b);
                let lo = Arithmetic::minimum(self, b);
                if lo == <$t>::NEG_INFINITY || hi == <$t>::INFINITY {
                    hi
                } else {
                    hi + (lo - hi).exp().ln_1p()
                }
            }
            #[inline(always)]
            fn is_close(self, b: Self, rtol: f64, atol: f64, equal_nan: bool) -> bool {
                if self.is_nan() || b.is_nan() {
                    return equal_nan && self.is_nan() && b.is_nan();
                }
                if self.is_infinite() || b.is_infinite() {
                    return self == b;
                }
                (self - b).abs() <= atol as $t + rtol as $t * b.abs()
            }
        }

        impl Compare for $t {
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
float_semantics!(f32);
float_semantics!(f64);

macro_rules! int_semantics {
    ($t:ty, signed: $signed:expr) => {
        #[allow(unused_comparisons)]
        impl Arithmetic for $t {
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                self.wrapping_add(b)
            }
            #[inline(always)]
            fn subtract(self, b: Self) -> Self {
                self.wrapping_sub(b)
            }
            #[inline(always)]
            fn multiply(self, b: Self) -> Self {
                self.wrapping_mul(b)
            }
            /// Truncating; 0 for a zero divisor.
            #[inline(always)]
            fn divide(self, b: Self) -> Self {
                if b == 0 { 0 } else { self.wrapping_div(b) }
            }
            /// Rounds towards negative infinity; 0 for a zero divisor.
            #[inline(always)]
            fn floor_divide(self, b: Self) -> Self {
                if b == 0 {
                    return 0;
                }
                let q = self.wrapping_div(b);
                let r = self.wrapping_rem(b);
                if $signed && r != 0 && ((r < 0) != (b < 0)) {
                    q.wrapping_sub(1)
                } else {
                    q
                }
            }
            /// The divisor's sign (Python's `%`); 0 for a zero divisor.
            #[inline(always)]
            fn remainder(self, b: Self) -> Self {
                if b == 0 {
                    return 0;
                }
                let r = self.wrapping_rem(b);
                if $signed && r != 0 && ((r < 0) != (b < 0)) {
                    r.wrapping_add(b)
                } else {
                    r
                }
            }
            /// Exponentiation by squaring, wrapping. A negative exponent gives the truncated
            /// value of the real result: 1 for base 1, ±1 for base -1, else 0.
            #[inline(always)]
            fn power(self, b: Self) -> Self {
                if b < 0 {
                    return match self as i64 {
                        1 => 1,
                        -1 => {
                            if b & 1 == 0 {
                                1
                            } else {
                                self
                            }
                        }
                        _ => 0,
                    };
                }
                let (mut base, mut exp, mut res) = (self, b, 1 as $t);
                while exp != 0 {
                    if exp & 1 != 0 {
                        res = res.wrapping_mul(base);
                    }
                    exp >>= 1;
                    base = base.wrapping_mul(base);
                }
                res
            }
            #[inline(always)]
            fn maximum(self, b: Self) -> Self {
                if self > b { self } else { b }
            }
            #[inline(always)]
            fn minimum(self, b: Self) -> Self {
                if self < b { self } else { b }
            }
        }

        impl Compare for $t {}

        #[allow(unused_comparisons)]
        impl Bitwise for $t {
            #[inline(always)]
            fn bitwise_and(self, b: Self) -> Self {
                self & b
            }
            #[inline(always)]
            fn bitwise_or(self, b: Self) -> Self {
                self | b
            }
            #[inline(always)]
            fn bitwise_xor(self, b: Self) -> Self {
                self ^ b
            }
            /// 0 for a shift that is negative or not less than the bit width.
            #[inline(always)]
            fn left_shift(self, b: Self) -> Self {
                if b < 0 || (b as u64) >= <$t>::BITS as u64 {
                    0
                } else {
                    self << b
                }
            }
            /// The sign fill (0 or -1) for a shift that is negative or not less than the bit
            /// width.
            #[inline(always)]
            fn right_shift(self, b: Self) -> Self {
                if b < 0 || (b as u64) >= <$t>::BITS as u64 {
                    if self < 0 { !0 } else { 0 }
                } else {
                    self >> b
                }
            }
        }
    };
}
int_semantics!(u8, signed: false);
int_semantics!(u16, signed: false);
int_semantics!(u32, signed: false);
int_semantics!(u64, signed: false);
int_semantics!(i8, signed: true);
int_semantics!(i16, signed: true);
int_semantics!(i32, signed: true);
int_semantics!(i64, signed: true);

/// Bool arithmetic is C++'s: computed as integers, then converted back to bool.
impl Arithmetic for bool {
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        self | b
    }
    #[inline(always)]
    fn subtract(self, b: Self) -> Self {
        self ^ b
    }
    #[inline(always)]
    fn multiply(self, b: Self) -> Self {
        self & b
    }
    #[inline(always)]
    fn divide(self, b: Self) -> Self {
        self & b
    }
    #[inline(always)]
    fn floor_divide(self, b: Self) -> Self {
        self & b
    }
    #[inline(always)]
    fn remainder(self, _b: Self) -> Self {
        false
    }
    #[inline(always)]
    fn power(self, b: Self) -> Self {
        self | !b
    }
    #[inline(always)]
    fn maximum(self, b: Self) -> Self {
        self | b
    }
    #[inline(always)]
    fn minimum(self, b: Self) -> Self {
        self & b
    }
}

impl Compare for bool {}

impl Bitwise for bool {
    #[inline(always)]
    fn bitwise_and(self, b: Self) -> Self {
        self & b
    }
    #[inline(always)]
    fn bitwise_or(self, b: Self) -> Self {
        self | b
    }
    #[inline(always)]
    fn bitwise_xor(self, b: Self) -> Self {
        self ^ b
    }
    /// Not reached (bool shifts are computed as uint8); kept total.
    #[inline(always)]
    fn left_shift(self, b: Self) -> Self {
        self & !b
    }
    #[inline(always)]
    fn right_shift(self, b: Self) -> Self {
        self & !b
    }
}

/// Complex arithmetic: add, subtract, multiply and divide are the field operations; the other
/// ops do not take complex inputs ([`BinaryOp::compute_dtype`] refuses them) and are never
/// called with them.
impl Arithmetic for Complex32 {
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        self + b
    }
    #[inline(always)]
    fn subtract(self, b: Self) -> Self {
        self - b
    }
    #[inline(always)]
    fn multiply(self, b: Self) -> Self {
        self * b
    }
    #[inline(always)]
    fn divide(self, b: Self) -> Self {
        self / b
    }
    fn floor_divide(self, b: Self) -> Self {
        self / b
    }
    fn remainder(self, _b: Self) -> Self {
        Complex32::new(f32::NAN, f32::NAN)
    }
    fn power(self, b: Self) -> Self {
        self.powc(b)
    }
    fn maximum(self, b: Self) -> Self {
        if (self.re, self.im) >= (b.re, b.im) {
            self
        } else {
            b
        }
    }
    fn minimum(self, b: Self) -> Self {
        if (self.re, self.im) <= (b.re, b.im) {
            self
        } else {
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_division_floors_and_never_panics() {
        assert_eq!((-7i32).floor_divide(2), -4);
        assert_eq!((-7i32).remainder(2), 1);
        assert_eq!(7i32.remainder(-2), -1);
        assert_eq!(5i32.floor_divide(0), 0);
        assert_eq!(5i32.remainder(0), 0);
        assert_eq!(i32::MIN.floor_divide(-1), i32::MIN);
        assert_eq!(i32::MIN.remainder(-1), 0);
        assert_eq!(7u8.floor_divide(2), 3);
    }

    #[test]
    fn integer_power_and_shifts_are_total() {
        assert_eq!(3i32.power(4), 81);
        assert_eq!(2i32.power(-1), 0);
        assert_eq!((-1i32).power(-3), -1);
        assert_eq!(1i32.left_shift(40), 0);
        assert_eq!((-8i32).right_shift(40), -1);
        assert_eq!(1u8.left_shift(7), 128);
    }

    #[test]
    fn float_extremes_propagate_nan() {
        assert!(Arithmetic::maximum(f32::NAN, 1.0).is_nan());
        assert!(Arithmetic::minimum(1.0f32, f32::NAN).is_nan());
        assert_eq!((-1.0f32).remainder(3.0), 2.0);
        assert_eq!(f32::NEG_INFINITY.logaddexp(0.0), 0.0);
        assert!(f32::INFINITY.is_close(f32::INFINITY, 1e-5, 1e-8, false));
        assert!(!f32::NAN.is_close(f32::NAN, 1e-5, 1e-8, false));
    }

    #[test]
    fn shifts_refuse_floats() {
        assert_eq!(BinaryOp::LeftShift.compute_dtype(Dtype::Float32), None);
        assert_eq!(
            BinaryOp::LeftShift.compute_dtype(Dtype::Bool),
            Some(Dtype::Uint8)
        );
        assert_eq!(
            BinaryOp::Divide.compute_dtype(Dtype::Int32),
            Some(Dtype::Float32)
        );
        assert_eq!(BinaryOp::Less.output_dtype(Dtype::Int32), Dtype::Bool);
    }
}
