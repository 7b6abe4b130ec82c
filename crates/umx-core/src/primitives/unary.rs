//! Element-wise unary primitives and casts, with their scalar semantics.
//!
//! This file is the one truth about every unary op: its name, which dtypes it takes, the dtype
//! it gives, and what it computes on one element of each kind (float, complex, integer, bool).
//! The CPU kernels call these methods per element; a GPU code generator can read the same table
//! (`name()` gives the kernel name).
//!
//! Float16 and bfloat16 are computed in float32 and rounded once at the end, as MLX does.

mod transforms;

use crate::{Dtype, Result, bail};
use num_complex::Complex32;
use num_traits::{Float, FloatConst, NumCast};

/// The unary primitives. Each maps one element to one element, with the same shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Abs,
    Negative,
    Sign,
    Sqrt,
    Rsqrt,
    Square,
    Reciprocal,
    Exp,
    Expm1,
    Log,
    Log1p,
    Log2,
    Log10,
    Sin,
    Cos,
    Tan,
    Arcsin,
    Arccos,
    Arctan,
    Sinh,
    Cosh,
    Tanh,
    Arcsinh,
    Arccosh,
    Arctanh,
    Floor,
    Ceil,
    /// Round half to even, at `decimals` decimal places (negative: tens, hundreds, ...).
    Round {
        decimals: i32,
    },
    Erf,
    ErfInv,
    Sigmoid,
    Degrees,
    Radians,
    IsNan,
    IsInf,
    IsPosInf,
    IsNegInf,
    IsFinite,
    /// Replaces NaN, +inf and -inf by the given values (converted to the array's dtype).
    NanToNum {
        nan: f64,
        posinf: f64,
        neginf: f64,
    },
    LogicalNot,
    BitwiseInvert,
    /// Real part (complex -> float32).
    Real,
    /// Imaginary part (complex -> float32; zeros of the same dtype for real inputs).
    Imag,
    Conj,
    /// A cast with C++ `static_cast` semantics (see [`crate::Element::cast`]).
    AsType(Dtype),
}

/// How an op relates its input dtype to its output dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryClass {
    /// Same dtype in and out (integers and bool included where the op takes them).
    Same,
    /// Only inexact inputs: ops layers cast integers and bool to float32 first (MLX's
    /// `at_least_float`).
    Inexact,
    /// Any dtype in, bool out.
    Predicate,
    /// A cast: the output dtype is the op's parameter.
    Cast,
}

impl UnaryOp {
    /// MLX's name of the op (also the kernel name a code generator uses).
    pub fn name(&self) -> &'static str {
        use UnaryOp::*;
        match self {
            Abs => "abs",
            Negative => "negative",
            Sign => "sign",
            Sqrt => "sqrt",
            Rsqrt => "rsqrt",
            Square => "square",
            Reciprocal => "reciprocal",
            Exp => "exp",
            Expm1 => "expm1",
            Log => "log",
            Log1p => "log1p",
            Log2 => "log2",
            Log10 => "log10",
            Sin => "sin",
            Cos => "cos",
            Tan => "tan",
            Arcsin => "arcsin",
            Arccos => "arccos",
            Arctan => "arctan",
            Sinh => "sinh",
            Cosh => "cosh",
            Tanh => "tanh",
            Arcsinh => "arcsinh",
            Arccosh => "arccosh",
            Arctanh => "arctanh",
            Floor => "floor",
            Ceil => "ceil",
            Round { .. } => "round",
            Erf => "erf",
            ErfInv => "erfinv",
            Sigmoid => "sigmoid",
            Degrees => "degrees",
            Radians => "radians",
            IsNan => "isnan",
            IsInf => "isinf",
            IsPosInf => "isposinf",
            IsNegInf => "isneginf",
            IsFinite => "isfinite",
            NanToNum { .. } => "nan_to_num",
            LogicalNot => "logical_not",
            BitwiseInvert => "bitwise_invert",
            Real => "real",
            Imag => "imag",
            Conj => "conj",
            AsType(_) => "astype",
        }
    }

    /// How the op's output dtype follows from its input's.
    pub fn class(&self) -> UnaryClass {
        use UnaryOp::*;
        match self {
            Abs
            | Negative
            | Sign
            | Square
            | Floor
            | Ceil
            | Round { .. }
            | NanToNum { .. }
            | BitwiseInvert
            | Real
            | Imag
            | Conj => UnaryClass::Same,
            Sqrt | Rsqrt | Reciprocal | Exp | Expm1 | Log | Log1p | Log2 | Log10 | Sin | Cos
            | Tan | Arcsin | Arccos | Arctan | Sinh | Cosh | Tanh | Arcsinh | Arccosh | Arctanh
            | Erf | ErfInv | Sigmoid | Degrees | Radians => UnaryClass::Inexact,
            IsNan | IsInf | IsPosInf | IsNegInf | IsFinite | LogicalNot => UnaryClass::Predicate,
            AsType(_) => UnaryClass::Cast,
        }
    }

    /// Whether the op is defined on complex64 inputs.
    pub fn supports_complex(&self) -> bool {
        use UnaryOp::*;
        !matches!(self, Floor | Ceil | Erf | ErfInv | Sigmoid | BitwiseInvert)
    }

    /// The output dtype for an input of `input`, or an error naming the op when the op does
    /// not take that dtype.
    pub fn output_dtype(&self, input: Dtype) -> Result<Dtype> {
        let name = self.name();
        if input.is_complex() && !self.supports_complex() {
            bail!("{name}: not supported for {input}");
        }
        match self.class() {
            UnaryClass::Cast => match self {
                UnaryOp::AsType(d) => Ok(*d),
                _ => Ok(input),
            },
            UnaryClass::Predicate => Ok(Dtype::Bool),
            UnaryClass::Inexact => {
                if !input.is_inexact() {
                    bail!("{name}: the primitive takes float or complex inputs, not {input}");
                }
                Ok(input)
            }
            UnaryClass::Same => match self {
                UnaryOp::Negative if input == Dtype::Bool => {
                    bail!("negative: not supported for bool, use logical_not instead")
                }
                UnaryOp::BitwiseInvert if input.is_inexact() => {
                    bail!("bitwise_invert: only integer and bool arrays, not {input}")
                }
                UnaryOp::Abs | UnaryOp::Real | UnaryOp::Imag if input.is_complex() => {
                    Ok(Dtype::Float32)
                }
                _ => Ok(input),
            },
        }
    }

    /// The op on a real float (float32 or float64; float16 and bfloat16 go through float32).
    /// Predicates and casts are not float-valued: see [`UnaryOp::float_predicate`] and
    /// [`crate::Element::cast`]; they return `x` here.
    #[inline(always)]
    pub fn float<F: UnaryFloat>(&self, x: F) -> F {
        use UnaryOp::*;
        let one = F::one();
        match *self {
            Abs => x.abs(),
            Negative => -x,
            // NumPy's sign: NaN stays NaN, zeros keep their sign.
            Sign => {
                if x > F::zero() {
                    one
                } else if x < F::zero() {
                    -one
                } else {
                    x
                }
            }
            Sqrt => x.sqrt(),
            Rsqrt => one / x.sqrt(),
            Square => x * x,
            Reciprocal => one / x,
            Exp => x.exp(),
            Expm1 => x.exp_m1(),
            Log => x.ln(),
            Log1p => x.ln_1p(),
            Log2 => x.log2(),
            Log10 => x.log10(),
            Sin => x.sin(),
            Cos => x.cos(),
            Tan => x.tan(),
            Arcsin => x.asin(),
            Arccos => x.acos(),
            Arctan => x.atan(),
            Sinh => x.sinh(),
            Cosh => x.cosh(),
            Tanh => x.tanh(),
            Arcsinh => x.asinh(),
            Arccosh => x.acosh(),
            Arctanh => x.atanh(),
            Floor => x.floor(),
            Ceil => x.ceil(),
            Round { decimals } => round_float(x, decimals),
            Erf => x.erf(),
            ErfInv => x.erfinv(),
            // 1 / (1 + e^-x) keeps full relative precision for very negative x too.
            Sigmoid => one / (one + (-x).exp()),
            Degrees => x * F::cst(180.0 / std::f64::consts::PI),
            Radians => x * F::cst(std::f64::consts::PI / 180.0),
            NanToNum {
                nan,
                posinf,
                neginf,
            } => {
                if x.is_nan() {
                    F::cst(nan)
                } else if x == F::infinity() {
                    F::cst(posinf)
                } else if x == F::neg_infinity() {
                    F::cst(neginf)
                } else {
                    x
                }
            }
            Imag => F::zero(),
            Real | Conj | IsNan | IsInf | IsPosInf | IsNegInf | IsFinite | LogicalNot
            | BitwiseInvert | AsType(_) => x,
        }
    }

    /// A predicate on a real float.
    #[inline(always)]
    pub fn float_predicate<F: Float>(&self, x: F) -> bool {
        use UnaryOp::*;
        match *self {
            IsNan => x.is_nan(),
            IsInf => x.is_infinite(),
            IsPosInf => x == F::infinity(),
            IsNegInf => x == F::neg_infinity(),
            IsFinite => x.is_finite(),
            LogicalNot => x == F::zero(),
            _ => false,
        }
    }

    /// The op on a complex64 element, for ops whose complex result is complex.
    #[inline(always)]
    pub fn complex(&self, z: Complex32) -> Complex32 {
        use UnaryOp::*;
        let one = Complex32::new(1.0, 0.0);
        match *self {
            Negative => -z,
            Sign => {
                let r = z.norm();
                if r == 0.0 {
                    Complex32::new(0.0, 0.0)
                } else {
                    z / r
                }
            }
            Sqrt => z.sqrt(),
            Rsqrt => one / z.sqrt(),
            Square => z * z,
            Reciprocal => one / z,
            Exp => z.exp(),
            Expm1 => z.exp() - one,
            Log => z.ln(),
            Log1p => (z + one).ln(),
            Log2 => z.log2(),
            Log10 => z.log10(),
            Sin => z.sin(),
            Cos => z.cos(),
            Tan => z.tan(),
            Arcsin => z.asin(),
            Arccos => z.acos(),
            Arctan => z.atan(),
            Sinh => z.sinh(),
            Cosh => z.cosh(),
            Tanh => z.tanh(),
            Arcsinh => z.asinh(),
            Arccosh => z.acosh(),
            Arctanh => z.atanh(),
            Round { .. } | Degrees | Radians | NanToNum { .. } => {
                Complex32::new(self.float(z.re), self.float(z.im))
            }
            Conj => z.conj(),
            Abs => Complex32::new(z.norm(), 0.0),
            Real => Complex32::new(z.re, 0.0),
            Imag => Complex32::new(z.im, 0.0),
            Floor | Ceil | Erf | ErfInv | Sigmoid | IsNan | IsInf | IsPosInf | IsNegInf
            | IsFinite | LogicalNot | BitwiseInvert | AsType(_) => z,
        }
    }

    /// The op on a complex64 element, for ops that give a real (float32) result: `abs`,
    /// `real`, `imag`.
    #[inline(always)]
    pub fn complex_to_real(&self, z: Complex32) -> f32 {
        match self {
            UnaryOp::Abs => z.norm(),
            UnaryOp::Imag => z.im,
            _ => z.re,
        }
    }

    /// A predicate on a complex64 element (NaN or infinite when either part is).
    #[inline(always)]
    pub fn complex_predicate(&self, z: Complex32) -> bool {
        use UnaryOp::*;
        match *self {
            IsNan => z.re.is_nan() || z.im.is_nan(),
            IsInf => z.re.is_infinite() || z.im.is_infinite(),
            IsPosInf => z.re == f32::INFINITY && z.im == 0.0,
            IsNegInf => z.re == f32::NEG_INFINITY && z.im == 0.0,
            IsFinite => z.re.is_finite() && z.im.is_finite(),
            LogicalNot => z.re == 0.0 && z.im == 0.0,
            _ => false,
        }
    }

    /// The op on an integer element, for ops that keep integer dtypes. Overflow wraps (as
    /// C++ does): `abs(i32::MIN) == i32::MIN`.
    #[inline(always)]
    pub fn int<I: UnaryInt>(&self, x: I) -> I {
        use UnaryOp::*;
        match *self {
            Abs => x.wrapping_abs(),
            Negative => x.wrapping_neg(),
            Sign => x.signum(),
            Square => x.wrapping_mul(x),
            BitwiseInvert => x.not(),
            Round { decimals } if decimals < 0 => {
                I::from_f64_wrapping(round_float(x.to_f64(), decimals))
            }
            Imag => I::default(),
            _ => x,
        }
    }

    /// A predicate on an integer or bool element, given whether it is nonzero.
    #[inline(always)]
    pub fn int_predicate(&self, nonzero: bool) -> bool {
        match self {
            UnaryOp::IsFinite => true,
            UnaryOp::LogicalNot => !nonzero,
            _ => false,
        }
    }

    /// The op on a bool element, for ops that keep bool (abs, sign, square, floor, ... are
    /// the identity; `bitwise_invert` is `not`).
    #[inline(always)]
    pub fn boolean(&self, x: bool) -> bool {
        match self {
            UnaryOp::BitwiseInvert | UnaryOp::LogicalNot => !x,
            UnaryOp::Imag => false,
            _ => x,
        }
    }
}

/// Round half to even at `decimals` places, as NumPy does: scale by a power of ten (dividing
/// for negative `decimals`, so the scale is exact), round, scale back.
#[inline(always)]
fn round_float<F: UnaryFloat>(x: F, decimals: i32) -> F {
    if decimals == 0 {
        x.rint()
    } else if decimals > 0 {
        let scale = F::cst(10f64.powi(decimals));
        (x * scale).rint() / scale
    } else {
        let scale = F::cst(10f64.powi(-decimals));
        (x / scale).rint() * scale
    }
}

/// A real float type the unary ops compute in: float32 and float64 (float16 and bfloat16
/// compute in float32). Adds the functions `num_traits::Float` lacks.
pub trait UnaryFloat: Float + FloatConst + NumCast + Send + Sync + 'static {
    /// The error function.
    fn erf(self) -> Self;
    /// The inverse error function: NaN outside [-1, 1], ±inf at ±1.
    fn erfinv(self) -> Self;
    /// Round half to even (C's `rint`).
    fn rint(self) -> Self;
    /// A constant, converted (NaN when it does not convert, which never happens for floats).
    #[inline(always)]
    fn cst(v: f64) -> Self {
        NumCast::from(v).unwrap_or_else(Self::nan)
    }
}

impl UnaryFloat for f32 {
    #[inline(always)]
    fn erf(self) -> f32 {
        libm::erff(self)
    }
    #[inline(always)]
    fn erfinv(self) -> f32 {
        erfinv_f64(self as f64) as f32
    }
    #[inline(always)]
    fn rint(self) -> f32 {
        self.round_ties_even()
    }
}

impl UnaryFloat for f64 {
    #[inline(always)]
    fn erf(self) -> f64 {
        libm::erf(self)
    }
    #[inline(always)]
    fn erfinv(self) -> f64 {
        erfinv_f64(self)
    }
    #[inline(always)]
    fn rint(self) -> f64 {
        self.round_ties_even()
    }
}

/// The inverse error function in float64: M. Giles' single-precision approximation
/// ("Approximating the erfinv function", GPU Computing Gems, 2011) refined by Newton steps on
/// erf (on log erfc near ±1, where erf loses relative precision), good to about 1e-15.
pub fn erfinv_f64(y: f64) -> f64 {
    if y.is_nan() || y.abs() > 1.0 {
        return f64::NAN;
    }
    if y == 1.0 {
        return f64::INFINITY;
    }
    if y == -1.0 {
        return f64::NEG_INFINITY;
    }
    if y == 0.0 {
        return y;
    }
    let a = y.abs();
    let mut w = -((1.0 - a) * (1.0 + a)).ln();
    let mut p;
    if w < 5.0 {
        w -= 2.5;
        p = 2.810_226_36e-08;
        p = 3.432_739_39e-07 + p * w;
        p = -3.523_387_7e-06 + p * w;
        p = -4.391_506_54e-06 + p * w;
        p = 0.000_218_580_87 + p * w;
        p = -0.001_253_725_03 + p * w;
        p = -0.004_177_681_64 + p * w;
        p = 0.246_640_727 + p * w;
        p = 1.501_409_41 + p * w;
    } else {
        w = w.sqrt() - 3.0;
        p = -0.000_200_214_257;
        p = 0.000_100_950_558 + p * w;
        p = 0.001_349_343_22 + p * w;
        p = -0.003_673_428_44 + p * w;
        p = 0.005_739_507_73 + p * w;
        p = -0.007_622_461_3 + p * w;
        p = 0.009_438_870_47 + p * w;
        p = 1.001_674_06 + p * w;
        p = 2.832_976_82 + p * w;
    }
    let mut x = p * a;
    let two_over_sqrt_pi = std::f64::consts::FRAC_2_SQRT_PI;
    let tail = 1.0 - a; // exact for a > 0.5
    for _ in 0..12 {
        let d = two_over_sqrt_pi * (-x * x).exp();
        let step = if a <= 0.5 {
            (libm::erf(x) - a) / d
        } else {
            // Newton on log(erfc(x)) = log(1 - a): close to linear far in the tail.
            let c = libm::erfc(x);
            (c.ln() - tail.ln()) * c / -d
        };
        if !step.is_finite() {
            break;
        }
        x -= step;
        if step.abs() <= 1e-16 * x.abs() {
            break;
        }
    }
    x.copysign(y)
}

/// An integer type the unary ops compute in, with C++'s wrapping semantics.
pub trait UnaryInt: Copy + Default + Send + Sync + 'static {
    fn wrapping_abs(self) -> Self;
    fn wrapping_neg(self) -> Self;
    fn wrapping_mul(self, other: Self) -> Self;
    fn signum(self) -> Self;
    fn not(self) -> Self;
    fn to_f64(self) -> f64;
    /// `v` converted to the integer type (saturating; NaN gives 0).
    fn from_f64_wrapping(v: f64) -> Self;
}

macro_rules! unary_int_signed {
    ($($t:ty),*) => {$(
        impl UnaryInt for $t {
            #[inline(always)]
            fn wrapping_abs(self) -> Self { <$t>::wrapping_abs(self) }
            #[inline(always)]
            fn wrapping_neg(self) -> Self { <$t>::wrapping_neg(self) }
            #[inline(always)]
            fn wrapping_mul(self, o: Self) -> Self { <$t>::wrapping_mul(self, o) }
            #[inline(always)]
            fn signum(self) -> Self { <$t>::signum(self) }
            #[inline(always)]
            fn not(self) -> Self { !self }
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            fn from_f64_wrapping(v: f64) -> Self { v as $t }
        }
    )*};
}
macro_rules! unary_int_unsigned {
    ($($t:ty),*) => {$(
        impl UnaryInt for $t {
            #[inline(always)]
            fn wrapping_abs(self) -> Self { self }
            #[inline(always)]
            fn wrapping_neg(self) -> Self { <$t>::wrapping_neg(self) }
            #[inline(always)]
            fn wrapping_mul(self, o: Self) -> Self { <$t>::wrapping_mul(self, o) }
            #[inline(always)]
            fn signum(self) -> Self { (self != 0) as $t }
            #[inline(always)]
            fn not(self) -> Self { !self }
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            fn from_f64_wrapping(v: f64) -> Self { v as $t }
        }
    )*};
}
unary_int_signed!(i8, i16, i32, i64);
unary_int_unsigned!(u8, u16, u32, u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfinv_inverts_erf() {
        for &y in &[
            -0.999_999_9,
            -0.9,
            -0.3,
            1e-300,
            0.1,
            0.5,
            0.7,
            0.99,
            1.0 - 1e-15,
        ] {
            let x = erfinv_f64(y);
            // Near 1, compare tails (erfc), where the precision is.
            let (got, want) = if y > 0.5 {
                (libm::erfc(x), 1.0 - y)
            } else {
                (libm::erf(x), y)
            };
            assert!((got - want).abs() <= 1e-14 * want.abs(), "{y}: {x} {got}");
        }
        assert!(erfinv_f64(1.5).is_nan());
        assert_eq!(erfinv_f64(-1.0), f64::NEG_INFINITY);
    }

    #[test]
    fn round_is_half_to_even() {
        let r = UnaryOp::Round { decimals: 0 };
        assert_eq!(r.float(2.5f32), 2.0);
        assert_eq!(r.float(-0.5f32), -0.0);
        assert_eq!(r.float(3.5f64), 4.0);
        assert_eq!(UnaryOp::Round { decimals: 1 }.float(0.25f64), 0.2);
        assert_eq!(UnaryOp::Round { decimals: -1 }.int(25i32), 20);
    }

    #[test]
    fn output_dtypes_follow_mlx() {
        assert_eq!(
            UnaryOp::Abs.output_dtype(Dtype::Complex64),
            Ok(Dtype::Float32)
        );
        assert_eq!(UnaryOp::IsNan.output_dtype(Dtype::Int32), Ok(Dtype::Bool));
        assert!(UnaryOp::BitwiseInvert.output_dtype(Dtype::Float32).is_err());
        assert!(UnaryOp::Negative.output_dtype(Dtype::Bool).is_err());
        assert!(UnaryOp::Floor.output_dtype(Dtype::Complex64).is_err());
    }
}
