//! Binary element-wise ops: arithmetic, comparisons, logical and bitwise ops, `clip`,
//! `isclose` and friends, with MLX's names, broadcasting and type promotion.
//!
//! Every op takes `impl IntoArray` for both operands, so arrays and Rust scalars mix freely.
//! A Rust scalar is *weak*: it takes the other operand's dtype unless it is of a higher kind
//! (`&a_f16 * 2.0` is float16, `&int_array * 2.5` is float32). Shapes broadcast with NumPy's
//! rule. The scalar semantics of each op live in [`crate::primitives::binary`].
//!
//! Integer edge cases never panic: division and remainder by zero give 0, arithmetic wraps,
//! out-of-range shifts give 0 (or the sign fill for a right shift).

use crate::array::IntoArray;
use crate::dtype::{promote_types, promote_with_weak};
use crate::primitives::{BinaryOp, Primitive};
use crate::shape::broadcast_shapes;
use crate::{Array, Dtype, Element, Error, Result};

/// The dtype two operands promote to, with weak scalars yielding (MLX's `result_type`).
pub fn result_type(a: &Array, b: &Array) -> Dtype {
    match (a.is_weak(), b.is_weak()) {
        (true, false) => promote_with_weak(b.dtype(), a.dtype()),
        (false, true) => promote_with_weak(a.dtype(), b.dtype()),
        _ => promote_types(a.dtype(), b.dtype()),
    }
}

/// A weak scalar operand made concrete in the dtype the op computes in (so the kernel sees
/// ordinary arrays, and `u8_array + 300` wraps the scalar as C++ would).
fn concrete(x: Array, dtype: Dtype) -> Result<Array> {
    if x.is_weak() && x.dtype() != dtype {
        if x.dtype().is_integer() || x.dtype() == Dtype::Bool {
            // Integers convert as integers, so they wrap into narrower types.
            let v = x.item::<i64>()?;
            return Ok(crate::dispatch_dtype!(dtype, T => Array::scalar(T::from_i64(v))));
        }
        return Ok(Array::full_scalar(x.item::<f64>()?, dtype));
    }
    Ok(x)
}

/// Checks, promotes and broadcasts two operands for `op`: the common step of every binary op.
/// Returns the inputs, output shape and compute dtype.
fn prepare(op: &BinaryOp, a: Array, b: Array) -> Result<(Vec<Array>, Vec<usize>, Dtype)> {
    a.check()?;
    b.check()?;
    let name = op.name();
    let shape = broadcast_shapes(name, a.shape(), b.shape())?;
    let promoted = result_type(&a, &b);
    let compute = op.compute_dtype(promoted).ok_or_else(|| {
        let what = match op.kind() {
            crate::primitives::binary::BinaryKind::Bitwise => "integer or boolean inputs",
            _ => "real (not complex) inputs",
        };
        Error::Invalid(format!(
            "{name}: takes only {what}, not {} and {}",
            a.dtype(),
            b.dtype()
        ))
    })?;
    Ok((
        vec![concrete(a, compute)?, concrete(b, compute)?],
        shape,
        compute,
    ))
}

/// Builds the node of a one-output binary op.
fn binary(op: BinaryOp, a: impl IntoArray, b: impl IntoArray) -> Result<Array> {
    let (inputs, shape, compute) = prepare(&op, a.into_array(), b.into_array())?;
    let dtype = op.output_dtype(compute);
    Array::from_primitive(Primitive::Binary(op), inputs, shape, dtype)
}

macro_rules! binary_ops {
    ($($(#[$doc:meta])* $name:ident => $op:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(a: impl IntoArray, b: impl IntoArray) -> Result<Array> {
            binary(BinaryOp::$op, a, b)
        }
    )*};
}

binary_ops! {
    /// Element-wise `a + b`, broadcasting; integers wrap, bools give `a or b`.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3])?;
    /// assert_eq!(ops::add(&a, 1.5)?.to_vec::<f32>()?, vec![2.5, 3.5, 4.5]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    add => Add;
    /// Element-wise `a - b`, broadcasting; integers wrap.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[1i32, 2, 3], &[3])?;
    /// assert_eq!(ops::subtract(10, &a)?.to_vec::<i32>()?, vec![9, 8, 7]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    subtract => Subtract;
    /// Element-wise `a * b`, broadcasting; integers wrap.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, Dtype, ops};
    /// let a = Array::from_slice(&[1i32, 2], &[2])?;
    /// let b = ops::multiply(&a, 2.5)?; // a float scalar makes an integer array float32
    /// assert_eq!((b.dtype(), b.to_vec::<f32>()?), (Dtype::Float32, vec![2.5, 5.0]));
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    multiply => Multiply;
    /// True division `a / b`: integer and bool inputs give float32.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[1i32, 3], &[2])?;
    /// assert_eq!(ops::divide(&a, 2)?.to_vec::<f32>()?, vec![0.5, 1.5]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    divide => Divide;
    /// `floor(a / b)`. Integers round towards negative infinity (NumPy's and Python's `//`;
    /// MLX's CPU truncates for operands of mixed signs) and give 0 for a zero divisor.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[-7i32, 7], &[2])?;
    /// assert_eq!(ops::floor_divide(&a, 2)?.to_vec::<i32>()?, vec![-4, 3]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    floor_divide => FloorDivide;
    /// The remainder of `floor_divide`, with the divisor's sign (Python's `%`). Integers give
    /// 0 for a zero divisor; floats give NaN.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[-7i32, 7], &[2])?;
    /// assert_eq!(ops::remainder(&a, 3)?.to_vec::<i32>()?, vec![2, 1]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    remainder => Remainder;
    /// `a` raised to the power `b`. Integers stay integers (wrapping); a negative integer
    /// exponent gives the truncated result (0 unless the base is 1 or -1).
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[2.0f32, 3.0], &[2])?;
    /// assert_eq!(ops::power(&a, 2)?.to_vec::<f32>()?, vec![4.0, 9.0]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    power => Power;
    /// The angle of the point `(b, a)`: `atan2(a, b)`; integers give float32.
    arctan2 => ArcTan2;
    /// `log(exp(a) + exp(b))`, computed without overflow; integers give float32.
    logaddexp => LogAddExp;
    /// Element-wise maximum; a NaN in either operand gives NaN.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[-1.0f32, 2.0, f32::NAN], &[3])?;
    /// let m = ops::maximum(&a, 0.0)?.to_vec::<f32>()?;
    /// assert_eq!(&m[..2], &[0.0, 2.0]);
    /// assert!(m[2].is_nan());
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    maximum => Maximum;
    /// Element-wise minimum; a NaN in either operand gives NaN.
    minimum => Minimum;
    /// `a == b`, as bool.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[1.0f32, 2.0], &[2])?;
    /// assert_eq!(ops::equal(&a, 2)?.to_vec::<bool>()?, vec![false, true]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    equal => Equal;
    /// `a != b`, as bool.
    not_equal => NotEqual;
    /// `a < b`, as bool.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[1i32, 2, 3], &[3])?;
    /// assert_eq!(ops::less(&a, 2)?.to_vec::<bool>()?, vec![true, false, false]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    less => Less;
    /// `a <= b`, as bool.
    less_equal => LessEqual;
    /// `a > b`, as bool.
    greater => Greater;
    /// `a >= b`, as bool.
    greater_equal => GreaterEqual;
    /// `a and b`, with both operands taken as bool (nonzero is true).
    logical_and => LogicalAnd;
    /// `a or b`, with both operands taken as bool (nonzero is true).
    logical_or => LogicalOr;
    /// Bitwise and of integer or bool operands.
    bitwise_and => BitwiseAnd;
    /// Bitwise or of integer or bool operands.
    bitwise_or => BitwiseOr;
    /// Bitwise exclusive or of integer or bool operands.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[0b1100u8], &[1])?;
    /// assert_eq!(ops::bitwise_xor(&a, 0b1010)?.to_vec::<u8>()?, vec![0b0110]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    bitwise_xor => BitwiseXor;
    /// `a << b` for integer or bool operands (promoted with uint8, as MLX does). A shift that
    /// is negative or not less than the bit width gives 0.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::{Array, ops};
    /// let a = Array::from_slice(&[1i32, 3], &[2])?;
    /// assert_eq!(ops::left_shift(&a, 2)?.to_vec::<i32>()?, vec![4, 12]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    left_shift => LeftShift;
    /// `a >> b` (arithmetic for signed integers) for integer or bool operands. A shift that is
    /// negative or not less than the bit width gives the sign fill (0 or -1).
    right_shift => RightShift;
}

/// `(floor_divide(a, b), remainder(a, b))`, computed by one node.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[7i32, -7], &[2])?;
/// let (q, r) = ops::divmod(&a, 2)?;
/// assert_eq!(q.to_vec::<i32>()?, vec![3, -4]);
/// assert_eq!(r.to_vec::<i32>()?, vec![1, 1]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn divmod(a: impl IntoArray, b: impl IntoArray) -> Result<(Array, Array)> {
    let op = BinaryOp::DivMod;
    let (inputs, shape, compute) = prepare(&op, a.into_array(), b.into_array())?;
    let spec = crate::device::OutSpec {
        shape,
        dtype: compute,
    };
    let mut outs =
        Array::from_primitive_multi(Primitive::Binary(op), inputs, vec![spec.clone(), spec])?;
    let r = outs.pop();
    let q = outs.pop();
    match (q, r) {
        (Some(q), Some(r)) => Ok((q, r)),
        _ => Err(Error::Device(
            "divmod: the node did not give two outputs".into(),
        )),
    }
}

/// Whether `a` and `b` are element-wise equal within a tolerance:
/// `|a - b| <= atol + rtol * |b|`. Infinities are close only to infinities of the same sign;
/// NaNs are close to each other only when `equal_nan`. (MLX's defaults: `rtol = 1e-5`,
/// `atol = 1e-8`, `equal_nan = false`.) Integer inputs are compared as float32.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 1.1], &[2])?;
/// let c = ops::isclose(&a, 1.0, 1e-5, 1e-8, false)?;
/// assert_eq!(c.to_vec::<bool>()?, vec![true, false]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn isclose(
    a: impl IntoArray,
    b: impl IntoArray,
    rtol: f64,
    atol: f64,
    equal_nan: bool,
) -> Result<Array> {
    binary(
        BinaryOp::IsClose {
            rtol,
            atol,
            equal_nan,
        },
        a,
        b,
    )
}

/// Whether every element of `a` is close to `b` ([`isclose`]), as a 0-d bool array.
pub fn allclose(
    a: impl IntoArray,
    b: impl IntoArray,
    rtol: f64,
    atol: f64,
    equal_nan: bool,
) -> Result<Array> {
    let close = isclose(a, b, rtol, atol, equal_nan).map_err(|e| rename(e, "allclose"))?;
    crate::ops::all(&close, None, false)
}

/// Whether `a` and `b` have the same shape and equal elements, as a 0-d bool array (shapes
/// that differ give `false`, not an error). With `equal_nan`, NaNs compare equal.
pub fn array_equal(a: impl IntoArray, b: impl IntoArray, equal_nan: bool) -> Result<Array> {
    let (a, b) = (a.into_array(), b.into_array());
    a.check()?;
    b.check()?;
    if a.shape() != b.shape() {
        return Ok(Array::scalar(false));
    }
    let op = if equal_nan {
        BinaryOp::NaNEqual
    } else {
        BinaryOp::Equal
    };
    let eq = binary(op, a, b).map_err(|e| rename(e, "array_equal"))?;
    crate::ops::all(&eq, None, false)
}

/// One bound of [`clip`]: any array operand (array or Rust scalar), `Some(x)` of one, or
/// no bound (`None::<f64>` or `()`).
pub trait ClipBound {
    /// The bound as an array, or `None` for no bound.
    fn into_bound(self) -> Option<Array>;
}

impl<T: IntoArray> ClipBound for T {
    fn into_bound(self) -> Option<Array> {
        Some(self.into_array())
    }
}
impl<T: IntoArray> ClipBound for Option<T> {
    fn into_bound(self) -> Option<Array> {
        self.map(IntoArray::into_array)
    }
}
impl ClipBound for () {
    fn into_bound(self) -> Option<Array> {
        None
    }
}

/// Clips `a` to `[a_min, a_max]`: `minimum(maximum(a, a_min), a_max)`. Either bound may be
/// left out (`()` or `None::<f64>`), not both. The result dtype promotes `a` with the bounds
/// (scalars are weak); NaNs propagate.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[-2.0f32, 0.5, 3.0], &[3])?;
/// assert_eq!(ops::clip(&a, 0.0, 1.0)?.to_vec::<f32>()?, vec![0.0, 0.5, 1.0]);
/// assert_eq!(ops::clip(&a, (), 1.0)?.to_vec::<f32>()?, vec![-2.0, 0.5, 1.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn clip(a: impl IntoArray, a_min: impl ClipBound, a_max: impl ClipBound) -> Result<Array> {
    let a = a.into_array();
    match (a_min.into_bound(), a_max.into_bound()) {
        (None, None) => Err(Error::Invalid(format!(
            "clip: at most one of a_min and a_max may be None (array of shape {})",
            crate::shape::fmt_shape(a.shape())
        ))),
        (Some(lo), None) => binary(BinaryOp::Maximum, a, lo).map_err(|e| rename(e, "clip")),
        (None, Some(hi)) => binary(BinaryOp::Minimum, a, hi).map_err(|e| rename(e, "clip")),
        (Some(lo), Some(hi)) => {
            let m = binary(BinaryOp::Maximum, a, lo).map_err(|e| rename(e, "clip"))?;
            binary(BinaryOp::Minimum, m, hi).map_err(|e| rename(e, "clip"))
        }
    }
}

/// Prefixes an error of an op used inside `name` with `name`, so the message names the op
/// the user called.
fn rename(e: Error, name: &str) -> Error {
    match e {
        Error::Invalid(m) => Error::Invalid(format!("{name}: {m}")),
        other => other,
    }
}

/// Methods for the common binary ops: `a.add(&b)?`, `a.less(0.0)?`, ...
impl Array {
    /// [`add`] as a method.
    pub fn add(&self, b: impl IntoArray) -> Result<Array> {
        add(self, b)
    }
    /// [`subtract`] as a method.
    pub fn subtract(&self, b: impl IntoArray) -> Result<Array> {
        subtract(self, b)
    }
    /// [`multiply`] as a method.
    pub fn multiply(&self, b: impl IntoArray) -> Result<Array> {
        multiply(self, b)
    }
    /// [`divide`] as a method.
    pub fn divide(&self, b: impl IntoArray) -> Result<Array> {
        divide(self, b)
    }
    /// [`floor_divide`] as a method.
    pub fn floor_divide(&self, b: impl IntoArray) -> Result<Array> {
        floor_divide(self, b)
    }
    /// [`remainder`] as a method.
    pub fn remainder(&self, b: impl IntoArray) -> Result<Array> {
        remainder(self, b)
    }
    /// [`power`] as a method.
    pub fn power(&self, b: impl IntoArray) -> Result<Array> {
        power(self, b)
    }
    /// [`maximum`] as a method.
    pub fn maximum(&self, b: impl IntoArray) -> Result<Array> {
        maximum(self, b)
    }
    /// [`minimum`] as a method.
    pub fn minimum(&self, b: impl IntoArray) -> Result<Array> {
        minimum(self, b)
    }
    /// [`equal`] as a method.
    pub fn equal(&self, b: impl IntoArray) -> Result<Array> {
        equal(self, b)
    }
    /// [`not_equal`] as a method.
    pub fn not_equal(&self, b: impl IntoArray) -> Result<Array> {
        not_equal(self, b)
    }
    /// [`less`] as a method.
    pub fn less(&self, b: impl IntoArray) -> Result<Array> {
        less(self, b)
    }
    /// [`less_equal`] as a method.
    pub fn less_equal(&self, b: impl IntoArray) -> Result<Array> {
        less_equal(self, b)
    }
    /// [`greater`] as a method.
    pub fn greater(&self, b: impl IntoArray) -> Result<Array> {
        greater(self, b)
    }
    /// [`greater_equal`] as a method.
    pub fn greater_equal(&self, b: impl IntoArray) -> Result<Array> {
        greater_equal(self, b)
    }
    /// [`clip`] as a method.
    pub fn clip(&self, a_min: impl ClipBound, a_max: impl ClipBound) -> Result<Array> {
        clip(self, a_min, a_max)
    }
}
