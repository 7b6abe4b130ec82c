//! The element-wise ops' scalar semantics as C++ expressions, for code generators: the CUDA
//! backend's element-wise kernels today, fused kernels later.
//!
//! This is the C-source twin of the Rust scalar methods in `unary.rs` and `binary.rs` (which
//! the CPU kernels call): each expression here must compute what those methods compute, and
//! the conformance suite run on the GPU checks that it does. An op/dtype pair with no
//! expression (`None`) is one the generator must leave to another path (the CUDA backend runs
//! it on the CPU).
//!
//! Expressions work on values of the *compute type* ([`c_compute_type`]): float16 and
//! bfloat16 compute in `float`, as the CPU kernels do. Helper functions they call are in
//! [`PRELUDE`], which a generator pastes in after defining `UMX_FN` (the function qualifiers,
//! `__device__ __forceinline__` for CUDA).

use crate::Dtype;
use crate::primitives::{BinaryOp, UnaryOp};

/// The C type a dtype computes in, or `None` for dtypes generated code does not handle
/// (complex64).
pub fn c_compute_type(d: Dtype) -> Option<&'static str> {
    use Dtype::*;
    Some(match d {
        Bool => "bool",
        Uint8 => "unsigned char",
        Uint16 => "unsigned short",
        Uint32 => "unsigned int",
        Uint64 => "unsigned long long",
        Int8 => "signed char",
        Int16 => "short",
        Int32 => "int",
        Int64 => "long long",
        Float16 | Bfloat16 | Float32 => "float",
        Float64 => "double",
        Complex64 => return None,
    })
}

/// A float constant as a C literal of type `t`, exact (Rust's shortest round-trip form), or
/// `None` when it is not finite.
fn lit(v: f64, t: &str) -> Option<String> {
    v.is_finite().then(|| format!("(({t}){v:?})"))
}

/// Helper functions the expressions call. Integer arithmetic wraps (as C++ compiled by MLX
/// does in practice, and as umx's CPU kernels do): it is done in the unsigned type, since
/// signed overflow is undefined in C++.
pub const PRELUDE: &str = r#"
template<class T> struct umx_uns { typedef T type; };
template<> struct umx_uns<signed char> { typedef unsigned char type; };
template<> struct umx_uns<short> { typedef unsigned short type; };
template<> struct umx_uns<int> { typedef unsigned int type; };
template<> struct umx_uns<long long> { typedef unsigned long long type; };
template<class T> UMX_FN T umx_wadd(T a, T b) { typedef typename umx_uns<T>::type U; return (T)((U)a + (U)b); }
template<class T> UMX_FN T umx_wsub(T a, T b) { typedef typename umx_uns<T>::type U; return (T)((U)a - (U)b); }
template<class T> UMX_FN T umx_wmul(T a, T b) { typedef typename umx_uns<T>::type U; return (T)((U)a * (U)b); }
template<class T> UMX_FN T umx_wneg(T a) { typedef typename umx_uns<T>::type U; return (T)((U)0 - (U)a); }
template<class T> UMX_FN T umx_iabs(T a) { return a < (T)0 ? umx_wneg(a) : a; }
template<class T> UMX_FN T umx_sign(T x) { return x > (T)0 ? (T)1 : (x < (T)0 ? (T)-1 : x); }
/* Truncating division; 0 for a zero divisor; MIN / -1 wraps. */
template<class T> UMX_FN T umx_idiv(T a, T b) {
  if (b == (T)0) return (T)0;
  if (b == (T)-1 && (T)-1 < (T)0) return umx_wneg(a);
  return a / b;
}
template<class T> UMX_FN T umx_irem(T a, T b) {
  if (b == (T)0) return (T)0;
  if (b == (T)-1 && (T)-1 < (T)0) return (T)0;
  return a % b;
}
template<class T> UMX_FN T umx_ifloordiv(T a, T b) {
  if (b == (T)0) return (T)0;
  T q = umx_idiv(a, b), r = umx_irem(a, b);
  return (r != (T)0 && ((r < (T)0) != (b < (T)0))) ? umx_wsub(q, (T)1) : q;
}
template<class T> UMX_FN T umx_iremainder(T a, T b) {
  if (b == (T)0) return (T)0;
  T r = umx_irem(a, b);
  return (r != (T)0 && ((r < (T)0) != (b < (T)0))) ? umx_wadd(r, b) : r;
}
template<class T> UMX_FN T umx_ipow(T a, T b) {
  if (b < (T)0) { if (a == (T)1) return (T)1; if (a == (T)-1) return (b & (T)1) ? a : (T)1; return (T)0; }
  T r = (T)1;
  while (b != (T)0) { if (b & (T)1) r = umx_wmul(r, a); b = (T)(b >> 1); a = umx_wmul(a, a); }
  return r;
}
template<class T> UMX_FN T umx_shl(T a, T b) {
  return (b < (T)0 || (unsigned long long)b >= 8ull * sizeof(T)) ? (T)0 : (T)((typename umx_uns<T>::type)a << b);
}
template<class T> UMX_FN T umx_shr(T a, T b) {
  return (b < (T)0 || (unsigned long long)b >= 8ull * sizeof(T)) ? (a < (T)0 ? (T)-1 : (T)0) : (T)(a >> b);
}
/* NaN wins, as in NumPy's maximum/minimum. */
template<class T> UMX_FN T umx_fmax(T a, T b) { return b != b ? b : ((a != a || a > b) ? a : b); }
template<class T> UMX_FN T umx_fmin(T a, T b) { return b != b ? b : ((a != a || a < b) ? a : b); }
template<class T> UMX_FN T umx_fremainder(T a, T b) {
  T r = fmod(a, b);
  return (r != (T)0 && ((r < (T)0) != (b < (T)0))) ? r + b : r;
}
template<class T> UMX_FN T umx_logaddexp(T a, T b) {
  T hi = umx_fmax(a, b), lo = umx_fmin(a, b);
  if (isinf(lo) && lo < (T)0) return hi;
  if (isinf(hi) && hi > (T)0) return hi;
  return hi + log1p(exp(lo - hi));
}
template<class T> UMX_FN bool umx_isclose(T a, T b, T rtol, T atol, bool equal_nan) {
  if (isnan(a) || isnan(b)) return equal_nan && isnan(a) && isnan(b);
  if (isinf(a) || isinf(b)) return a == b;
  return fabs(a - b) <= atol + rtol * fabs(b);
}
template<class T> UMX_FN T umx_round(T x, int decimals) {
  if (decimals == 0) return rint(x);
  if (decimals > 0) { T s = (T)pow(10.0, (double)decimals); return rint(x * s) / s; }
  T s = (T)pow(10.0, (double)-decimals); return rint(x / s) * s;
}
template<class T> UMX_FN T umx_nan_to_num(T x, T nan, T posinf, T neginf) {
  if (isnan(x)) return nan;
  if (isinf(x)) return x > (T)0 ? posinf : neginf;
  return x;
}
"#;

impl UnaryOp {
    /// The op on a value `x` of the compute type of `input` (see [`c_compute_type`]), as a C++
    /// expression of the output's compute type (`bool` for predicates; `x` itself for casts,
    /// whose conversion is the generator's store). `None` where generated code does not
    /// handle the op on that dtype.
    pub fn c_expr(&self, input: Dtype, x: &str) -> Option<String> {
        use UnaryOp::*;
        let t = c_compute_type(input)?;
        if *self == AsType(Dtype::Complex64) {
            return None;
        }
        if input == Dtype::Bool {
            return Some(match self {
                BitwiseInvert | LogicalNot => format!("(!{x})"),
                Imag | IsNan | IsInf | IsPosInf | IsNegInf => "false".into(),
                IsFinite => "true".into(),
                Negative => return None,
                _ => x.to_string(),
            });
        }
        if input.is_integer() {
            return Some(match self {
                Abs => format!("umx_iabs({x})"),
                Negative => format!("umx_wneg({x})"),
                Sign => format!("umx_sign({x})"),
                Square => format!("umx_wmul({x}, {x})"),
                BitwiseInvert => format!("(({t})~{x})"),
                // Tens, hundreds, ...: rounded in double, cast back saturating (as the CPU's
                // `as` casts).
                Round { decimals } if *decimals < 0 => {
                    format!("(({t})umx_round((double){x}, {decimals}))")
                }
                Imag => format!("(({t})0)"),
                IsNan | IsInf | IsPosInf | IsNegInf => "false".into(),
                IsFinite => "true".into(),
                LogicalNot => format!("({x} == ({t})0)"),
                Floor | Ceil | Round { .. } | NanToNum { .. } | Real | Conj | AsType(_) => {
                    x.to_string()
                }
                // Inexact ops never see integers: the ops layer casts to float first.
                _ => return None,
            });
        }
        let one = format!("(({t})1)");
        Some(match self {
            Abs => format!("fabs({x})"),
            Negative => format!("(-{x})"),
            Sign => format!("umx_sign({x})"),
            Sqrt => format!("sqrt({x})"),
            Rsqrt => format!("({one} / sqrt({x}))"),
            Square => format!("({x} * {x})"),
            Reciprocal => format!("({one} / {x})"),
            Exp => format!("exp({x})"),
            Expm1 => format!("expm1({x})"),
            Log => format!("log({x})"),
            Log1p => format!("log1p({x})"),
            Log2 => format!("log2({x})"),
            Log10 => format!("log10({x})"),
            Sin => format!("sin({x})"),
            Cos => format!("cos({x})"),
            Tan => format!("tan({x})"),
            Arcsin => format!("asin({x})"),
            Arccos => format!("acos({x})"),
            Arctan => format!("atan({x})"),
            Sinh => format!("sinh({x})"),
            Cosh => format!("cosh({x})"),
            Tanh => format!("tanh({x})"),
            Arcsinh => format!("asinh({x})"),
            Arccosh => format!("acosh({x})"),
            Arctanh => format!("atanh({x})"),
            Floor => format!("floor({x})"),
            Ceil => format!("ceil({x})"),
            Round { decimals } => format!("umx_round({x}, {decimals})"),
            Erf => format!("erf({x})"),
            ErfInv => format!("erfinv({x})"),
            Sigmoid => format!("({one} / ({one} + exp(-{x})))"),
            Degrees => format!("({x} * {})", lit(180.0 / std::f64::consts::PI, t)?),
            Radians => format!("({x} * {})", lit(std::f64::consts::PI / 180.0, t)?),
            IsNan => format!("isnan({x})"),
            IsInf => format!("isinf({x})"),
            IsPosInf => format!("(isinf({x}) && {x} > ({t})0)"),
            IsNegInf => format!("(isinf({x}) && {x} < ({t})0)"),
            IsFinite => format!("isfinite({x})"),
            NanToNum {
                nan,
                posinf,
                neginf,
            } => format!(
                "umx_nan_to_num({x}, {}, {}, {})",
                lit(*nan, t)?,
                lit(*posinf, t)?,
                lit(*neginf, t)?
            ),
            LogicalNot => format!("({x} == ({t})0)"),
            Imag => format!("(({t})0)"),
            Real | Conj | AsType(_) => x.to_string(),
            BitwiseInvert => return None,
        })
    }
}

impl BinaryOp {
    /// The op on values `a` and `b` of `compute`'s compute type, as a C++ expression of the
    /// output's compute type (`bool` for comparisons and logical ops). `None` where generated
    /// code does not handle the op on that dtype (`divmod` has two outputs: the generator
    /// emits floor_divide and remainder).
    pub fn c_expr(&self, compute: Dtype, a: &str, b: &str) -> Option<String> {
        use BinaryOp::*;
        let t = c_compute_type(compute)?;
        let float = compute.is_float();
        let boolean = compute == Dtype::Bool;
        Some(match self {
            Equal => format!("({a} == {b})"),
            NotEqual => format!("({a} != {b})"),
            Less => format!("({a} < {b})"),
            LessEqual => format!("({a} <= {b})"),
            Greater => format!("({a} > {b})"),
            GreaterEqual => format!("({a} >= {b})"),
            NaNEqual if float => format!("({a} == {b} || (isnan({a}) && isnan({b})))"),
            NaNEqual => format!("({a} == {b})"),
            LogicalAnd => format!("({a} && {b})"),
            LogicalOr => format!("({a} || {b})"),
            BitwiseAnd if !float => format!("(({t})({a} & {b}))"),
            BitwiseOr if !float => format!("(({t})({a} | {b}))"),
            BitwiseXor if !float => format!("(({t})({a} ^ {b}))"),
            LeftShift if !float && !boolean => format!("umx_shl({a}, {b})"),
            RightShift if !float && !boolean => format!("umx_shr({a}, {b})"),
            _ if boolean => match self {
                // C++ bool arithmetic: computed as integers, converted back to bool.
                Add | Maximum => format!("({a} | {b})"),
                Subtract => format!("({a} ^ {b})"),
                Multiply | Divide | FloorDivide | Minimum => format!("({a} & {b})"),
                Remainder => "false".into(),
                Power => format!("({a} | !{b})"),
                _ => return None,
            },
            Add if float => format!("({a} + {b})"),
            Subtract if float => format!("({a} - {b})"),
            Multiply if float => format!("({a} * {b})"),
            Divide if float => format!("({a} / {b})"),
            FloorDivide if float => format!("floor({a} / {b})"),
            Remainder if float => format!("umx_fremainder({a}, {b})"),
            Power if float => format!("pow({a}, {b})"),
            Maximum if float => format!("umx_fmax({a}, {b})"),
            Minimum if float => format!("umx_fmin({a}, {b})"),
            ArcTan2 if float => format!("atan2({a}, {b})"),
            LogAddExp if float => format!("umx_logaddexp({a}, {b})"),
            IsClose {
                rtol,
                atol,
                equal_nan,
            } if float => format!(
                "umx_isclose({a}, {b}, {}, {}, {equal_nan})",
                lit(*rtol, t)?,
                lit(*atol, t)?
            ),
            Add => format!("umx_wadd({a}, {b})"),
            Subtract => format!("umx_wsub({a}, {b})"),
            Multiply => format!("umx_wmul({a}, {b})"),
            Divide => format!("umx_idiv({a}, {b})"),
            FloorDivide => format!("umx_ifloordiv({a}, {b})"),
            Remainder => format!("umx_iremainder({a}, {b})"),
            Power => format!("umx_ipow({a}, {b})"),
            Maximum => format!("({a} > {b} ? {a} : {b})"),
            Minimum => format!("({a} < {b} ? {a} : {b})"),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_follow_the_compute_type() {
        assert_eq!(
            BinaryOp::Add.c_expr(Dtype::Float16, "a", "b").as_deref(),
            Some("(a + b)")
        );
        assert_eq!(
            BinaryOp::Add.c_expr(Dtype::Int32, "a", "b").as_deref(),
            Some("umx_wadd(a, b)")
        );
        assert_eq!(
            BinaryOp::Add.c_expr(Dtype::Bool, "a", "b").as_deref(),
            Some("(a | b)")
        );
        assert_eq!(BinaryOp::Add.c_expr(Dtype::Complex64, "a", "b"), None);
        assert_eq!(
            UnaryOp::Exp.c_expr(Dtype::Bfloat16, "x").as_deref(),
            Some("exp(x)")
        );
        assert_eq!(
            UnaryOp::Round { decimals: -1 }
                .c_expr(Dtype::Int32, "x")
                .as_deref(),
            Some("((int)umx_round((double)x, -1))")
        );
    }
}
