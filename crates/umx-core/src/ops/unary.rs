//! Element-wise unary ops, casts (`astype`) and `where_`, with MLX's names and dtype rules:
//! math functions of integer or bool arrays give float32 (`sqrt`, `exp`, `sin`, ...); `abs`,
//! `negative`, `sign`, `square`, `floor`, `ceil`, `round` keep integer dtypes; predicates
//! (`isnan`, ...) give bool. The scalar semantics live in [`crate::primitives::unary`].

use crate::dtype::promote_with_weak;
use crate::primitives::{Primitive, TernaryOp, UnaryOp};
use crate::shape::broadcast_many;
use crate::{Array, Dtype, IntoArray, Result, promote_types};

/// Applies a unary primitive, checking the dtype first.
fn unary(op: UnaryOp, a: &Array) -> Result<Array> {
    a.check()?;
    let dtype = op.output_dtype(a.dtype())?;
    Array::from_primitive(
        Primitive::Unary(op),
        vec![a.clone()],
        a.shape().to_vec(),
        dtype,
    )
}

/// Applies an op defined on inexact dtypes: integers and bool are cast to float32 first
/// (MLX's `at_least_float`).
fn inexact_unary(op: UnaryOp, a: &Array) -> Result<Array> {
    a.check()?;
    if a.dtype().is_inexact() {
        unary(op, a)
    } else {
        unary(op, &astype(a, Dtype::Float32)?)
    }
}

/// Casts `a` to `dtype` with C++ `static_cast` semantics (floats to integers truncate toward
/// zero, anything nonzero becomes `true`, complex to real keeps the real part).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Dtype, ops};
/// let a = Array::from_slice(&[1.7f32, -2.5, 0.0], &[3])?;
/// assert_eq!(ops::astype(&a, Dtype::Int32)?.to_vec::<i32>()?, vec![1, -2, 0]);
/// assert_eq!(a.astype(Dtype::Bool)?.to_vec::<bool>()?, vec![true, true, false]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn astype(a: &Array, dtype: Dtype) -> Result<Array> {
    a.check()?;
    if a.dtype() == dtype && !a.is_weak() {
        return Ok(a.clone());
    }
    unary(UnaryOp::AsType(dtype), a)
}

macro_rules! same_dtype_ops {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {$(
        $(#[$doc])*
        pub fn $name(a: &Array) -> Result<Array> {
            unary($op, a)
        }
    )*};
}

macro_rules! inexact_ops {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {$(
        $(#[$doc])*
        pub fn $name(a: &Array) -> Result<Array> {
            inexact_unary($op, a)
        }
    )*};
}

same_dtype_ops! {
    /// Absolute value, element-wise. Keeps the dtype, except complex64 gives float32 (the
    /// modulus). Signed integer overflow wraps (`abs(i32::MIN) == i32::MIN`).
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[-1.5f32, 2.0], &[2])?;
    /// assert_eq!(ops::abs(&a)?.to_vec::<f32>()?, vec![1.5, 2.0]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    abs => UnaryOp::Abs;
    /// Numerical negative, element-wise. Errors on bool (use [`logical_not`]).
    negative => UnaryOp::Negative;
    /// The sign: -1, 0 or 1 (NaN stays NaN; complex: `z / |z|`). Keeps the dtype.
    sign => UnaryOp::Sign;
    /// `a * a`, element-wise. Keeps the dtype (integers wrap).
    square => UnaryOp::Square;
    /// Largest integer not above each element. Integers are returned unchanged; errors on
    /// complex64.
    floor => UnaryOp::Floor;
    /// Smallest integer not below each element. Integers are returned unchanged; errors on
    /// complex64.
    ceil => UnaryOp::Ceil;
    /// Bitwise not of integers (`!x`), logical not of bool. Errors on float and complex.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[0i32, 5, -1], &[3])?;
    /// assert_eq!(ops::bitwise_invert(&a)?.to_vec::<i32>()?, vec![-1, -6, 0]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    bitwise_invert => UnaryOp::BitwiseInvert;
}

inexact_ops! {
    /// Square root, element-wise (NaN for negative inputs). Integers and bool give float32.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, Dtype, ops};
    /// let a = Array::from_slice(&[4i32, 9], &[2])?;
    /// let r = ops::sqrt(&a)?;
    /// assert_eq!(r.dtype(), Dtype::Float32);
    /// assert_eq!(r.to_vec::<f32>()?, vec![2.0, 3.0]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    sqrt => UnaryOp::Sqrt;
    /// `1 / sqrt(a)`, element-wise.
    rsqrt => UnaryOp::Rsqrt;
    /// `1 / a`, element-wise. Integers and bool give float32.
    reciprocal => UnaryOp::Reciprocal;
    /// The exponential `e^a`, element-wise.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[0.0f32, 1.0], &[2])?;
    /// let e = ops::exp(&a)?.to_vec::<f32>()?;
    /// assert_eq!(e[0], 1.0);
    /// assert!((e[1] - std::f32::consts::E).abs() < 1e-6);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    exp => UnaryOp::Exp;
    /// `e^a - 1`, accurate for small `a`.
    expm1 => UnaryOp::Expm1;
    /// Natural logarithm (NaN below 0, -inf at 0).
    log => UnaryOp::Log;
    /// `log(1 + a)`, accurate for small `a`.
    log1p => UnaryOp::Log1p;
    /// Base-2 logarithm.
    log2 => UnaryOp::Log2;
    /// Base-10 logarithm.
    log10 => UnaryOp::Log10;
    /// Sine (radians).
    sin => UnaryOp::Sin;
    /// Cosine (radians).
    cos => UnaryOp::Cos;
    /// Tangent (radians).
    tan => UnaryOp::Tan;
    /// Inverse sine (NaN outside [-1, 1]).
    arcsin => UnaryOp::Arcsin;
    /// Inverse cosine (NaN outside [-1, 1]).
    arccos => UnaryOp::Arccos;
    /// Inverse tangent.
    arctan => UnaryOp::Arctan;
    /// Hyperbolic sine.
    sinh => UnaryOp::Sinh;
    /// Hyperbolic cosine.
    cosh => UnaryOp::Cosh;
    /// Hyperbolic tangent.
    tanh => UnaryOp::Tanh;
    /// Inverse hyperbolic sine.
    arcsinh => UnaryOp::Arcsinh;
    /// Inverse hyperbolic cosine (NaN below 1).
    arccosh => UnaryOp::Arccosh;
    /// Inverse hyperbolic tangent (NaN outside [-1, 1], ±inf at ±1).
    arctanh => UnaryOp::Arctanh;
    /// The error function. Errors on complex64.
    erf => UnaryOp::Erf;
    /// The inverse error function (NaN outside [-1, 1], ±inf at ±1). Errors on complex64.
    erfinv => UnaryOp::ErfInv;
    /// The logistic sigmoid `1 / (1 + e^-a)`. Errors on complex64.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[0.0f32], &[1])?;
    /// assert_eq!(ops::sigmoid(&a)?.to_vec::<f32>()?, vec![0.5]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    sigmoid => UnaryOp::Sigmoid;
    /// Radians to degrees.
    degrees => UnaryOp::Degrees;
    /// Degrees to radians.
    radians => UnaryOp::Radians;
}

/// Rounds to `decimals` decimal places, halves to even (negative `decimals`: to tens,
/// hundreds, ...). Integers keep their dtype (unchanged for `decimals >= 0`).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[0.5f32, 1.5, 2.5, 1.26], &[4])?;
/// assert_eq!(ops::round(&a, 0)?.to_vec::<f32>()?, vec![0.0, 2.0, 2.0, 1.0]);
/// assert_eq!(ops::round(&a, 1)?.to_vec::<f32>()?[3], 1.3);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn round(a: &Array, decimals: i32) -> Result<Array> {
    a.check()?;
    if a.dtype() == Dtype::Bool || a.dtype().is_integer() && decimals >= 0 {
        return Ok(a.clone());
    }
    unary(UnaryOp::Round { decimals }, a)
}

/// Whether each element is NaN (always false for integers and bool).
pub fn isnan(a: &Array) -> Result<Array> {
    unary(UnaryOp::IsNan, a)
}
/// Whether each element is +inf or -inf.
pub fn isinf(a: &Array) -> Result<Array> {
    unary(UnaryOp::IsInf, a)
}
/// Whether each element is +inf.
pub fn isposinf(a: &Array) -> Result<Array> {
    unary(UnaryOp::IsPosInf, a)
}
/// Whether each element is -inf.
pub fn isneginf(a: &Array) -> Result<Array> {
    unary(UnaryOp::IsNegInf, a)
}
/// Whether each element is finite (neither NaN nor infinite).
pub fn isfinite(a: &Array) -> Result<Array> {
    unary(UnaryOp::IsFinite, a)
}
/// Logical not: `true` where the element is zero (any dtype; the result is bool).
pub fn logical_not(a: &Array) -> Result<Array> {
    unary(UnaryOp::LogicalNot, a)
}

/// Replaces NaN by `nan`, +inf by `posinf` and -inf by `neginf`. MLX's defaults: `nan = 0.0`,
/// `posinf`/`neginf` `None` = the largest/lowest finite value of the dtype. Integer and bool
/// arrays are returned unchanged.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[f32::NAN, f32::INFINITY, -1.0], &[3])?;
/// let r = ops::nan_to_num(&a, 0.0, None, Some(-9.0))?.to_vec::<f32>()?;
/// assert_eq!(r, vec![0.0, f32::MAX, -1.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn nan_to_num(a: &Array, nan: f64, posinf: Option<f64>, neginf: Option<f64>) -> Result<Array> {
    a.check()?;
    let max = match a.dtype() {
        Dtype::Float16 => crate::f16::MAX.to_f64(),
        Dtype::Bfloat16 => crate::bf16::MAX.to_f64(),
        Dtype::Float32 | Dtype::Complex64 => f32::MAX as f64,
        Dtype::Float64 => f64::MAX,
        _ => return Ok(a.clone()),
    };
    unary(
        UnaryOp::NanToNum {
            nan,
            posinf: posinf.unwrap_or(max),
            neginf: neginf.unwrap_or(-max),
        },
        a,
    )
}

/// The real part: float32 for complex64, the array itself otherwise.
pub fn real(a: &Array) -> Result<Array> {
    a.check()?;
    if a.dtype().is_complex() {
        unary(UnaryOp::Real, a)
    } else {
        Ok(a.clone())
    }
}

/// The imaginary part: float32 for complex64, zeros of the array's dtype otherwise.
pub fn imag(a: &Array) -> Result<Array> {
    unary(UnaryOp::Imag, a)
}

/// The complex conjugate (the array itself for real dtypes).
pub fn conj(a: &Array) -> Result<Array> {
    a.check()?;
    if a.dtype().is_complex() {
        unary(UnaryOp::Conj, a)
    } else {
        Ok(a.clone())
    }
}

/// Same as [`conj`] (MLX has both names).
pub fn conjugate(a: &Array) -> Result<Array> {
    conj(a)
}

/// `x` where `cond` is true, else `y`, with broadcasting of all three. `cond` is cast to bool;
/// `x` and `y` promote to a common dtype (a Rust scalar is weak: it takes the other's dtype
/// unless it is of a higher kind). Named `where_` since `where` is a Rust keyword.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let c = Array::from_slice(&[true, false, true], &[3])?;
/// let x = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3])?;
/// assert_eq!(ops::where_(&c, &x, 0.0)?.to_vec::<f32>()?, vec![1.0, 0.0, 3.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn where_(cond: impl IntoArray, x: impl IntoArray, y: impl IntoArray) -> Result<Array> {
    let (cond, x, y) = (cond.into_array(), x.into_array(), y.into_array());
    cond.check()?;
    x.check()?;
    y.check()?;
    let dtype = match (x.is_weak(), y.is_weak()) {
        (true, false) => promote_with_weak(y.dtype(), x.dtype()),
        (false, true) => promote_with_weak(x.dtype(), y.dtype()),
        _ => promote_types(x.dtype(), y.dtype()),
    };
    let shape = broadcast_many("where", &[cond.shape(), x.shape(), y.shape()])?;
    let cond = astype(&cond, Dtype::Bool)?;
    let x = astype(&x, dtype)?;
    let y = astype(&y, dtype)?;
    Array::from_primitive(
        Primitive::Ternary(TernaryOp::Select),
        vec![cond, x, y],
        shape,
        dtype,
    )
}

/// The common unary ops as methods: `x.exp()`, `x.sqrt()`, `x.astype(Dtype::Float16)`, ...
impl Array {
    /// See [`astype`].
    pub fn astype(&self, dtype: Dtype) -> Result<Array> {
        astype(self, dtype)
    }
    /// See [`abs`].
    pub fn abs(&self) -> Result<Array> {
        abs(self)
    }
    /// See [`negative`].
    pub fn negative(&self) -> Result<Array> {
        negative(self)
    }
    /// See [`sign`].
    pub fn sign(&self) -> Result<Array> {
        sign(self)
    }
    /// See [`sqrt`].
    pub fn sqrt(&self) -> Result<Array> {
        sqrt(self)
    }
    /// See [`rsqrt`].
    pub fn rsqrt(&self) -> Result<Array> {
        rsqrt(self)
    }
    /// See [`square`].
    pub fn square(&self) -> Result<Array> {
        square(self)
    }
    /// See [`reciprocal`].
    pub fn reciprocal(&self) -> Result<Array> {
        reciprocal(self)
    }
    /// See [`exp`].
    pub fn exp(&self) -> Result<Array> {
        exp(self)
    }
    /// See [`expm1`].
    pub fn expm1(&self) -> Result<Array> {
        expm1(self)
    }
    /// See [`log`].
    pub fn log(&self) -> Result<Array> {
        log(self)
    }
    /// See [`log1p`].
    pub fn log1p(&self) -> Result<Array> {
        log1p(self)
    }
    /// See [`log2`].
    pub fn log2(&self) -> Result<Array> {
        log2(self)
    }
    /// See [`log10`].
    pub fn log10(&self) -> Result<Array> {
        log10(self)
    }
    /// See [`sin`].
    pub fn sin(&self) -> Result<Array> {
        sin(self)
    }
    /// See [`cos`].
    pub fn cos(&self) -> Result<Array> {
        cos(self)
    }
    /// See [`tanh`].
    pub fn tanh(&self) -> Result<Array> {
        tanh(self)
    }
    /// See [`floor`].
    pub fn floor(&self) -> Result<Array> {
        floor(self)
    }
    /// See [`ceil`].
    pub fn ceil(&self) -> Result<Array> {
        ceil(self)
    }
    /// See [`round`].
    pub fn round(&self, decimals: i32) -> Result<Array> {
        round(self, decimals)
    }
    /// See [`erf`].
    pub fn erf(&self) -> Result<Array> {
        erf(self)
    }
    /// See [`sigmoid`].
    pub fn sigmoid(&self) -> Result<Array> {
        sigmoid(self)
    }
    /// See [`isnan`].
    pub fn isnan(&self) -> Result<Array> {
        isnan(self)
    }
    /// See [`isinf`].
    pub fn isinf(&self) -> Result<Array> {
        isinf(self)
    }
    /// See [`isfinite`].
    pub fn isfinite(&self) -> Result<Array> {
        isfinite(self)
    }
    /// See [`logical_not`].
    pub fn logical_not(&self) -> Result<Array> {
        logical_not(self)
    }
    /// See [`real`].
    pub fn real(&self) -> Result<Array> {
        real(self)
    }
    /// See [`imag`].
    pub fn imag(&self) -> Result<Array> {
        imag(self)
    }
    /// See [`conj`].
    pub fn conj(&self) -> Result<Array> {
        conj(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_dtypes_name_the_op() {
        let f = Array::from_slice(&[1.0f32], &[1]).unwrap();
        let b = Array::from_slice(&[true], &[1]).unwrap();
        let e = bitwise_invert(&f).unwrap_err().to_string();
        assert!(e.starts_with("bitwise_invert:"), "{e}");
        let e = negative(&b).unwrap_err().to_string();
        assert!(e.starts_with("negative:"), "{e}");
    }

    #[test]
    fn where_checks_broadcasting() {
        let a = Array::from_slice(&[1.0f32; 3], &[3]).unwrap();
        let b = Array::from_slice(&[1.0f32; 4], &[4]).unwrap();
        let e = where_(true, &a, &b).unwrap_err().to_string();
        assert!(e.starts_with("where:"), "{e}");
    }
}
