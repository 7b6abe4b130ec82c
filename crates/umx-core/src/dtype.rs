//! Element types, MLX's type-promotion rules, and the `Element` trait that kernels are generic over.

use half::{bf16, f16};
use num_complex::Complex32;
use std::fmt;

/// The element type of an array, known at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Float16,
    Bfloat16,
    Float32,
    Float64,
    Complex64,
}

/// The broad kind of a dtype, as `mx.issubdtype` sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Unsigned,
    Signed,
    Float,
    Complex,
}

impl Dtype {
    /// Every dtype, in declaration order.
    pub const ALL: [Dtype; 14] = [
        Dtype::Bool,
        Dtype::Uint8,
        Dtype::Uint16,
        Dtype::Uint32,
        Dtype::Uint64,
        Dtype::Int8,
        Dtype::Int16,
        Dtype::Int32,
        Dtype::Int64,
        Dtype::Float16,
        Dtype::Bfloat16,
        Dtype::Float32,
        Dtype::Float64,
        Dtype::Complex64,
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        use Dtype::*;
        match self {
            Bool | Uint8 | Int8 => 1,
            Uint16 | Int16 | Float16 | Bfloat16 => 2,
            Uint32 | Int32 | Float32 => 4,
            Uint64 | Int64 | Float64 | Complex64 => 8,
        }
    }

    pub fn kind(self) -> Kind {
        use Dtype::*;
        match self {
            Bool => Kind::Bool,
            Uint8 | Uint16 | Uint32 | Uint64 => Kind::Unsigned,
            Int8 | Int16 | Int32 | Int64 => Kind::Signed,
            Float16 | Bfloat16 | Float32 | Float64 => Kind::Float,
            Complex64 => Kind::Complex,
        }
    }

    /// Floating point (real) dtypes.
    pub fn is_float(self) -> bool {
        self.kind() == Kind::Float
    }
    /// Floating point or complex: the inexact dtypes.
    pub fn is_inexact(self) -> bool {
        matches!(self.kind(), Kind::Float | Kind::Complex)
    }
    /// Signed or unsigned integers (not bool).
    pub fn is_integer(self) -> bool {
        matches!(self.kind(), Kind::Signed | Kind::Unsigned)
    }
    pub fn is_signed(self) -> bool {
        matches!(self.kind(), Kind::Signed | Kind::Float | Kind::Complex)
    }
    pub fn is_complex(self) -> bool {
        self == Dtype::Complex64
    }

    /// MLX's name for the dtype (`"float32"`, `"bfloat16"`, ...).
    pub fn name(self) -> &'static str {
        use Dtype::*;
        match self {
            Bool => "bool",
            Uint8 => "uint8",
            Uint16 => "uint16",
            Uint32 => "uint32",
            Uint64 => "uint64",
            Int8 => "int8",
            Int16 => "int16",
            Int32 => "int32",
            Int64 => "int64",
            Float16 => "float16",
            Bfloat16 => "bfloat16",
            Float32 => "float32",
            Float64 => "float64",
            Complex64 => "complex64",
        }
    }

    /// The dtype named by MLX's name, if any.
    pub fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The dtype float results of this dtype take: floats keep theirs, everything else becomes
    /// float32 (MLX's rule for `mean`, `sqrt` of integers and similar).
    pub fn to_inexact(self) -> Dtype {
        if self.is_inexact() {
            self
        } else {
            Dtype::Float32
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// MLX's promotion of two dtypes (`mx.promote_types`).
///
/// Differs from NumPy where MLX does: uint64 with a signed integer gives float32, and
/// float16 with bfloat16 gives float32.
pub fn promote_types(a: Dtype, b: Dtype) -> Dtype {
    use Dtype::*;
    use Kind as K;
    if a == b {
        return a;
    }
    let (ka, kb) = (a.kind(), b.kind());
    match (ka, kb) {
        (K::Bool, _) => b,
        (_, K::Bool) => a,
        (K::Complex, _) | (_, K::Complex) => Complex64,
        (K::Float, K::Float) => {
            if a == Float64 || b == Float64 {
                Float64
            } else if a == Float32 || b == Float32 {
                Float32
            } else {
                // float16 with bfloat16
                Float32
            }
        }
        (K::Float, _) => a,
        (_, K::Float) => b,
        (K::Unsigned, K::Unsigned) | (K::Signed, K::Signed) => {
            if a.size() >= b.size() {
                a
            } else {
                b
            }
        }
        (K::Unsigned, K::Signed) => promote_mixed_ints(a, b),
        (K::Signed, K::Unsigned) => promote_mixed_ints(b, a),
    }
}

fn promote_mixed_ints(unsigned: Dtype, signed: Dtype) -> Dtype {
    use Dtype::*;
    if unsigned == Uint64 {
        return Float32;
    }
    // The smallest signed type that holds both.
    let need = (unsigned.size() * 2).max(signed.size());
    match need {
        1 => Int8,
        2 => Int16,
        4 => Int32,
        _ => Int64,
    }
}

/// The result dtype of an op between an array of dtype `a` and a weak (Rust or Python) scalar
/// whose own dtype is `scalar`: the array's dtype wins, unless the scalar is of a higher kind
/// (a float scalar with an integer array gives float32; an integer scalar with a bool array
/// gives int32).
pub fn promote_with_weak(a: Dtype, scalar: Dtype) -> Dtype {
    let rank = |k: Kind| match k {
        Kind::Bool => 0,
        Kind::Unsigned | Kind::Signed => 1,
        Kind::Float => 2,
        Kind::Complex => 3,
    };
    if rank(scalar.kind()) > rank(a.kind()) {
        scalar
    } else {
        a
    }
}

/// A Rust type that is the storage of one dtype. Kernels are generic over it.
///
/// # Safety-relevant contract
/// Buffers are reinterpreted as slices of `Self`; every type here is plain data of its dtype's
/// size and alignment (bool: see its impl).
pub trait Element: Copy + Send + Sync + PartialEq + fmt::Debug + Default + 'static {
    const DTYPE: Dtype;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;
    fn to_c64(self) -> Complex32 {
        Complex32::new(self.to_f64() as f32, 0.0)
    }
    fn from_c64(v: Complex32) -> Self {
        Self::from_f64(v.re as f64)
    }
    /// Cast to another element type with MLX's (C++ `static_cast`) semantics.
    #[inline(always)]
    fn cast<U: Element>(self) -> U {
        if U::DTYPE.is_complex() {
            U::from_c64(self.to_c64())
        } else if U::DTYPE == Dtype::Bool {
            U::from_i64(self.is_nonzero() as i64)
        } else if U::DTYPE.is_integer() && !Self::DTYPE.is_inexact() {
            U::from_i64(self.to_i64())
        } else {
            U::from_f64(self.to_f64())
        }
    }
    fn is_nonzero(self) -> bool {
        self != Self::default()
    }
}

/// Bool is stored as one byte that is always 0 or 1 (anything that reinterprets bytes as bool
/// must normalise them first, since any other byte value is undefined behaviour in Rust).
impl Element for bool {
    const DTYPE: Dtype = Dtype::Bool;
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
}

macro_rules! int_element {
    ($t:ty, $d:ident) => {
        impl Element for $t {
            const DTYPE: Dtype = Dtype::$d;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline(always)]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
        }
    };
}
int_element!(u8, Uint8);
int_element!(u16, Uint16);
int_element!(u32, Uint32);
int_element!(u64, Uint64);
int_element!(i8, Int8);
int_element!(i16, Int16);
int_element!(i32, Int32);
int_element!(i64, Int64);

macro_rules! float_element {
    ($t:ty, $d:ident, $to:expr, $from:expr) => {
        impl Element for $t {
            const DTYPE: Dtype = Dtype::$d;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                ($to)(self)
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                ($from)(v)
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self.to_f64() as i64
            }
            #[inline(always)]
            fn from_i64(v: i64) -> Self {
                Self::from_f64(v as f64)
            }
        }
    };
}
float_element!(f16, Float16, |x: f16| x.to_f64(), f16::from_f64);
float_element!(bf16, Bfloat16, |x: bf16| x.to_f64(), bf16::from_f64);
float_element!(f32, Float32, |x: f32| x as f64, |v: f64| v as f32);
float_element!(f64, Float64, |x: f64| x, |v: f64| v);

impl Element for Complex32 {
    const DTYPE: Dtype = Dtype::Complex64;
    fn to_f64(self) -> f64 {
        self.re as f64
    }
    fn from_f64(v: f64) -> Self {
        Complex32::new(v as f32, 0.0)
    }
    fn to_i64(self) -> i64 {
        self.re as i64
    }
    fn from_i64(v: i64) -> Self {
        Complex32::new(v as f32, 0.0)
    }
    fn to_c64(self) -> Complex32 {
        self
    }
    fn from_c64(v: Complex32) -> Self {
        v
    }
}

/// Runs `$body` with `$T` bound to the Rust element type of `$dtype`.
///
/// ```ignore
/// dispatch_dtype!(a.dtype(), T => kernel::<T>(a))
/// ```
#[macro_export]
macro_rules! dispatch_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {{
        use $crate::Dtype as __D;
        match $dtype {
            __D::Bool => {
                type $T = bool;
                $body
            }
            __D::Uint8 => {
                type $T = u8;
                $body
            }
            __D::Uint16 => {
                type $T = u16;
                $body
            }
            __D::Uint32 => {
                type $T = u32;
                $body
            }
            __D::Uint64 => {
                type $T = u64;
                $body
            }
            __D::Int8 => {
                type $T = i8;
                $body
            }
            __D::Int16 => {
                type $T = i16;
                $body
            }
            __D::Int32 => {
                type $T = i32;
                $body
            }
            __D::Int64 => {
                type $T = i64;
                $body
            }
            __D::Float16 => {
                type $T = $crate::half::f16;
                $body
            }
            __D::Bfloat16 => {
                type $T = $crate::half::bf16;
                $body
            }
            __D::Float32 => {
                type $T = f32;
                $body
            }
            __D::Float64 => {
                type $T = f64;
                $body
            }
            __D::Complex64 => {
                type $T = $crate::num_complex::Complex32;
                $body
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dtype::*;

    #[test]
    fn promotion_follows_mlx() {
        assert_eq!(promote_types(Bool, Int8), Int8);
        assert_eq!(promote_types(Uint8, Int8), Int16);
        assert_eq!(promote_types(Uint32, Int32), Int64);
        assert_eq!(promote_types(Uint64, Int8), Float32);
        assert_eq!(promote_types(Int64, Float16), Float16);
        assert_eq!(promote_types(Float16, Bfloat16), Float32);
        assert_eq!(promote_types(Float32, Float64), Float64);
        assert_eq!(promote_types(Float64, Complex64), Complex64);
        assert_eq!(promote_with_weak(Float16, Float32), Float16);
        assert_eq!(promote_with_weak(Int32, Float32), Float32);
        assert_eq!(promote_with_weak(Bool, Int32), Int32);
        assert_eq!(promote_with_weak(Uint8, Int32), Uint8);
    }

    #[test]
    fn casts_follow_static_cast() {
        assert_eq!((-1.7f32).cast::<i32>(), -1);
        assert_eq!(300i32.cast::<u8>(), 44);
        assert!(0.5f32.cast::<bool>());
        assert_eq!(Complex32::new(2.0, 3.0).cast::<f32>(), 2.0);
    }
}
