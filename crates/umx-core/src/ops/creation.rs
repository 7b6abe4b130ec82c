//! Creation ops: arrays from parameters (`arange`, `linspace`, `eye`, `tri`), filled arrays
//! (`zeros`, `ones`, `full` and their `_like` forms), `meshgrid`, and the `array!` literal.
//!
//! Dtype arguments take `impl Into<Option<Dtype>>`: pass a `Dtype` or `None` for MLX's default.

use crate::dtype::Element;
use crate::primitives::{CreationOp, Primitive};
use crate::shape::{broadcast_shapes, fmt_shape, numel};
use crate::{Array, Dtype, IntoArray, Result, bail};

/// A number `arange` takes: integers make an int32 range by default, floats a float32 one.
pub trait RangeValue: Copy {
    fn to_f64(self) -> f64;
    fn is_integer(self) -> bool;
}

macro_rules! range_value {
    ($int:expr; $($t:ty),*) => {$(
        impl RangeValue for $t {
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn is_integer(self) -> bool {
                $int
            }
        }
    )*};
}
range_value!(true; i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);
range_value!(false; f32, f64);

/// Values from `start` up to (not including) `stop` by `step`, as `mx.arange`.
///
/// The length is `ceil((stop - start) / step)` (0 when negative). The dtype defaults to int32
/// when `start`, `stop` and `step` are all integers, else float32. Values are a running sum
/// in the output dtype, as MLX computes them.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::ops::arange;
/// let a = arange(0, 10, 3, None)?;
/// assert_eq!(a.to_vec::<i32>()?, vec![0, 3, 6, 9]);
/// let b = arange(1.0, 0.0, -0.25, None)?;
/// assert_eq!(b.to_vec::<f32>()?, vec![1.0, 0.75, 0.5, 0.25]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn arange(
    start: impl RangeValue,
    stop: impl RangeValue,
    step: impl RangeValue,
    dtype: impl Into<Option<Dtype>>,
) -> Result<Array> {
    let default = if start.is_integer() && stop.is_integer() && step.is_integer() {
        Dtype::Int32
    } else {
        Dtype::Float32
    };
    let dtype = dtype.into().unwrap_or(default);
    let (start, stop, step) = (start.to_f64(), stop.to_f64(), step.to_f64());
    if dtype == Dtype::Bool {
        bail!("arange: dtype bool is not supported");
    }
    if step == 0.0 {
        bail!("arange: step must be nonzero (start {start}, stop {stop})");
    }
    if !start.is_finite() || !stop.is_finite() || step.is_nan() {
        bail!("arange: cannot compute the length of start {start}, stop {stop}, step {step}");
    }
    if step.is_infinite() {
        // One element when the range is non-empty, none otherwise.
        let n = ((step > 0.0 && start < stop) || (step < 0.0 && start > stop)) as usize;
        return Array::from_primitive(
            Primitive::Creation(CreationOp::Arange { start, step: 0.0 }),
            vec![],
            vec![n],
            dtype,
        );
    }
    let real = ((stop - start) / step).ceil();
    if real > i32::MAX as f64 {
        bail!(
            "arange: the length {real} of start {start}, stop {stop}, step {step} exceeds the maximum {}",
            i32::MAX
        );
    }
    let n = real.max(0.0) as usize;
    Array::from_primitive(
        Primitive::Creation(CreationOp::Arange { start, step }),
        vec![],
        vec![n],
        dtype,
    )
}

/// `num` evenly spaced values from `start` to `stop`, both included (float32 by default), as
/// `mx.linspace`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::ops::linspace;
/// let a = linspace(0.0, 1.0, 5, None)?;
/// assert_eq!(a.to_vec::<f32>()?, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn linspace(
    start: f64,
    stop: f64,
    num: usize,
    dtype: impl Into<Option<Dtype>>,
) -> Result<Array> {
    let dtype = dtype.into().unwrap_or(Dtype::Float32);
    if num > i32::MAX as usize {
        bail!(
            "linspace: number of samples {num} exceeds the maximum {}",
            i32::MAX
        );
    }
    Array::from_primitive(
        Primitive::Creation(CreationOp::Linspace { start, stop }),
        vec![],
        vec![num],
        dtype,
    )
}

/// An array of `shape` filled with `vals` (broadcast to `shape`), of `dtype` or else of `vals`'
/// dtype, as `mx.full`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::ops::full;
/// let a = full(&[2, 2], 7, None)?;
/// assert_eq!(a.dtype(), umx_core::Dtype::Int32);
/// assert_eq!(a.to_vec::<i32>()?, vec![7; 4]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn full(
    shape: &[usize],
    vals: impl IntoArray,
    dtype: impl Into<Option<Dtype>>,
) -> Result<Array> {
    let vals = vals.into_array();
    vals.check()?;
    let dtype = dtype.into().unwrap_or(vals.dtype());
    let out = broadcast_shapes("full", vals.shape(), shape)?;
    if out != shape {
        bail!(
            "full: values of shape {} cannot be broadcast to shape {}",
            fmt_shape(vals.shape()),
            fmt_shape(shape)
        );
    }
    fill(vals, shape.to_vec(), dtype)
}

fn fill(vals: Array, shape: Vec<usize>, dtype: Dtype) -> Result<Array> {
    Array::from_primitive(
        Primitive::Creation(CreationOp::Full),
        vec![vals],
        shape,
        dtype,
    )
}

/// An array of zeros (float32 by default), as `mx.zeros`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{ops::zeros, Dtype};
/// let a = zeros(&[2, 3], None)?;
/// assert_eq!((a.shape(), a.dtype()), (&[2usize, 3][..], Dtype::Float32));
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn zeros(shape: &[usize], dtype: impl Into<Option<Dtype>>) -> Result<Array> {
    let dtype = dtype.into().unwrap_or(Dtype::Float32);
    fill(Array::full_scalar(0.0, dtype), shape.to_vec(), dtype)
}

/// An array of ones (float32 by default), as `mx.ones`.
pub fn ones(shape: &[usize], dtype: impl Into<Option<Dtype>>) -> Result<Array> {
    let dtype = dtype.into().unwrap_or(Dtype::Float32);
    fill(Array::full_scalar(1.0, dtype), shape.to_vec(), dtype)
}

/// `vals` broadcast with `a`'s shape, of `dtype` or else `a`'s dtype, as `mx.full_like`.
pub fn full_like(
    a: &Array,
    vals: impl IntoArray,
    dtype: impl Into<Option<Dtype>>,
) -> Result<Array> {
    a.check()?;
    let vals = vals.into_array();
    vals.check()?;
    let dtype = dtype.into().unwrap_or(a.dtype());
    let shape = broadcast_shapes("full_like", a.shape(), vals.shape())?;
    fill(vals, shape, dtype)
}

/// Zeros of `a`'s shape and dtype, as `mx.zeros_like`.
pub fn zeros_like(a: &Array) -> Result<Array> {
    a.check()?;
    zeros(a.shape(), a.dtype())
}

/// Ones of `a`'s shape and dtype, as `mx.ones_like`.
pub fn ones_like(a: &Array) -> Result<Array> {
    a.check()?;
    ones(a.shape(), a.dtype())
}

/// An `(n, m)` matrix (`m` defaults to `n`) with ones on the `k`-th diagonal (`k > 0` above the
/// main one) and zeros elsewhere, float32 by default, as `mx.eye`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::ops::eye;
/// let a = eye(2, 3, 1, None)?;
/// assert_eq!(a.to_vec::<f32>()?, vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn eye(
    n: usize,
    m: impl Into<Option<usize>>,
    k: i64,
    dtype: impl Into<Option<Dtype>>,
) -> Result<Array> {
    let m = m.into().unwrap_or(n);
    let dtype = dtype.into().unwrap_or(Dtype::Float32);
    if n == 0 || m == 0 {
        bail!("eye: N and M must be positive integers, got N = {n}, M = {m}");
    }
    Array::from_primitive(
        Primitive::Creation(CreationOp::Eye { k }),
        vec![],
        vec![n, m],
        dtype,
    )
}

/// The `(n, n)` identity matrix (float32 by default), as `mx.identity`.
pub fn identity(n: usize, dtype: impl Into<Option<Dtype>>) -> Result<Array> {
    eye(n, n, 0, dtype)
        .map_err(|e| crate::Error::Invalid(e.to_string().replacen("eye", "identity", 1)))
}

/// An `(n, m)` matrix (`m` defaults to `n`) with ones at and below the `k`-th diagonal and zeros
/// above it, float32 by default, as `mx.tri`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::ops::tri;
/// let a = tri(2, 3, 0, None)?;
/// assert_eq!(a.to_vec::<f32>()?, vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn tri(
    n: usize,
    m: impl Into<Option<usize>>,
    k: i64,
    dtype: impl Into<Option<Dtype>>,
) -> Result<Array> {
    let m = m.into().unwrap_or(n);
    let dtype = dtype.into().unwrap_or(Dtype::Float32);
    Array::from_primitive(
        Primitive::Creation(CreationOp::Tri { k }),
        vec![],
        vec![n, m],
        dtype,
    )
}

/// Coordinate arrays from 1-d coordinate vectors, as `mx.meshgrid`: with `indexing` "xy"
/// (Cartesian, the default in MLX) the first two output axes are swapped relative to "ij"
/// (matrix). Inputs of any shape are flattened. `sparse` keeps each output's size-1 axes
/// instead of broadcasting them.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{ops, Array};
/// let x = Array::from_slice(&[1i32, 2, 3], &[3])?;
/// let y = Array::from_slice(&[4i32, 5], &[2])?;
/// let g = ops::meshgrid(&[x, y], false, "xy")?;
/// assert_eq!(g[0].shape(), &[2, 3]);
/// assert_eq!(g[0].to_vec::<i32>()?, vec![1, 2, 3, 1, 2, 3]);
/// assert_eq!(g[1].to_vec::<i32>()?, vec![4, 4, 4, 5, 5, 5]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn meshgrid(arrays: &[Array], sparse: bool, indexing: &str) -> Result<Vec<Array>> {
    if indexing != "xy" && indexing != "ij" {
        bail!("meshgrid: invalid indexing {indexing:?}; valid values are \"xy\" and \"ij\"");
    }
    let n = arrays.len();
    let mut outputs = Vec::with_capacity(n);
    for (i, a) in arrays.iter().enumerate() {
        a.check()?;
        let mut shape = vec![1i64; n];
        // "xy" swaps the roles of the first two axes.
        let axis = match (indexing, n > 1, i) {
            ("xy", true, 0) => 1,
            ("xy", true, 1) => 0,
            _ => i,
        };
        shape[axis] = a.size() as i64;
        outputs.push(super::shape::reshape(a, &shape)?);
    }
    if sparse {
        Ok(outputs)
    } else {
        super::shape::broadcast_arrays(&outputs)
    }
}

/// A nested Rust array literal: what `array![...]` accepts. Float literals give float32,
/// integer literals int32, `bool` bool; typed literals (`1u8`, `f16`, ...) give their dtype.
pub trait NestedLiteral {
    type Elem: Element;
    /// Appends this level's dimensions to `shape`.
    fn shape_into(&self, shape: &mut Vec<usize>);
    /// Appends the values in row-major order.
    fn flatten_into(&self, out: &mut Vec<Self::Elem>);
}

macro_rules! literal_leaf {
    ($($t:ty => $e:ty),*) => {$(
        impl NestedLiteral for $t {
            type Elem = $e;
            fn shape_into(&self, _: &mut Vec<usize>) {}
            fn flatten_into(&self, out: &mut Vec<$e>) {
                out.push(*self as $e);
            }
        }
    )*};
}
literal_leaf!(f64 => f32, f32 => f32, i32 => i32, i64 => i64, i16 => i16, i8 => i8,
    u8 => u8, u16 => u16, u32 => u32, u64 => u64, bool => bool);

impl NestedLiteral for half::f16 {
    type Elem = half::f16;
    fn shape_into(&self, _: &mut Vec<usize>) {}
    fn flatten_into(&self, out: &mut Vec<half::f16>) {
        out.push(*self);
    }
}

impl NestedLiteral for half::bf16 {
    type Elem = half::bf16;
    fn shape_into(&self, _: &mut Vec<usize>) {}
    fn flatten_into(&self, out: &mut Vec<half::bf16>) {
        out.push(*self);
    }
}

impl<L: NestedLiteral, const N: usize> NestedLiteral for [L; N] {
    type Elem = L::Elem;
    fn shape_into(&self, shape: &mut Vec<usize>) {
        shape.push(N);
        match self.first() {
            Some(inner) => inner.shape_into(shape),
            None => {
                // An empty level: inner dimensions are unknown; use zero-length ones.
            }
        }
    }
    fn flatten_into(&self, out: &mut Vec<L::Elem>) {
        for x in self {
            x.flatten_into(out);
        }
    }
}

/// The array of a nested literal (what `array![...]` expands to).
pub fn from_nested<L: NestedLiteral>(lit: L) -> Array {
    let mut shape = Vec::new();
    lit.shape_into(&mut shape);
    let mut values = Vec::with_capacity(numel(&shape));
    lit.flatten_into(&mut values);
    Array::from_slice(&values, &shape).unwrap_or_else(Array::from_error)
}

/// An array from a nested literal, as `mx.array([...])`: `array![[1.0, 2.0], [3.0, 4.0]]` is
/// a float32 array of shape (2, 2), `array![1, 2, 3]` an int32 one of shape (3,). Ragged input
/// does not compile. `array![]` is an empty float32 array.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{array, Dtype};
/// let a = array![[1.0, 2.0], [3.0, 4.0]];
/// assert_eq!((a.shape(), a.dtype()), (&[2usize, 2][..], Dtype::Float32));
/// assert_eq!(array![1, 2, 3].to_vec::<i32>()?, vec![1, 2, 3]);
/// # Ok::<(), umx_core::Error>(())
/// ```
#[macro_export]
macro_rules! array {
    () => {
        $crate::ops::creation::from_nested::<[f32; 0]>([])
    };
    ($($x:tt)+) => {
        $crate::ops::creation::from_nested([$($x)+])
    };
}
