//! The functions of `umx.core` with MLX's names, arguments and defaults. Each takes
//! `stream=` (a stream, device or device type; see `device.rs`), builds its op on the core
//! and returns a lazy array.

use crate::args::{AxesArg, Ints, ShapeArg, axes};
use crate::array::PyArray;
use crate::convert::{Operand, common_dtype};
use crate::device::{StreamArg, on};
use crate::dtype::PyDtype;
use crate::error::OrRaise;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use umx::ops::{self, IndicesOrSections, PadMode, RangeValue, TensordotAxes};
use umx::{Array, Axes, Dtype};

type Out = PyResult<PyArray>;

fn out(r: PyResult<Array>) -> Out {
    r.map(PyArray::from)
}

fn dt(d: Option<PyDtype>) -> Option<Dtype> {
    d.map(|d| d.0)
}

fn arrays(items: &Bound<'_, PyAny>) -> PyResult<Vec<Array>> {
    items
        .try_iter()?
        .map(|x| Ok(x?.extract::<Operand>()?.0))
        .collect()
}

fn list_out(py: Python<'_>, v: Vec<Array>) -> PyResult<Bound<'_, pyo3::types::PyList>> {
    pyo3::types::PyList::new(py, v.into_iter().map(PyArray::from))
}

fn tuple_out(py: Python<'_>, v: Vec<Array>) -> PyResult<Bound<'_, PyTuple>> {
    PyTuple::new(py, v.into_iter().map(PyArray::from))
}

macro_rules! unary {
    ($($name:ident => $f:expr;)*) => {$(
        #[doc = concat!("Element-wise `", stringify!($name), "`, as MLX's `mx.", stringify!($name), "`.")]
        #[pyfunction]
        #[pyo3(signature = (a, /, *, stream=None))]
        pub fn $name(a: Operand, stream: Option<StreamArg>) -> Out {
            out(on(stream, || ($f)(&a.0)))
        }
    )*};
}

unary! {
    abs => ops::abs;
    negative => ops::negative;
    sign => ops::sign;
    square => ops::square;
    floor => ops::floor;
    ceil => ops::ceil;
    bitwise_invert => ops::bitwise_invert;
    sqrt => ops::sqrt;
    rsqrt => ops::rsqrt;
    reciprocal => ops::reciprocal;
    exp => ops::exp;
    expm1 => ops::expm1;
    log => ops::log;
    log1p => ops::log1p;
    log2 => ops::log2;
    log10 => ops::log10;
    sin => ops::sin;
    cos => ops::cos;
    tan => ops::tan;
    arcsin => ops::arcsin;
    arccos => ops::arccos;
    arctan => ops::arctan;
    sinh => ops::sinh;
    cosh => ops::cosh;
    tanh => ops::tanh;
    arcsinh => ops::arcsinh;
    arccosh => ops::arccosh;
    arctanh => ops::arctanh;
    erf => ops::erf;
    erfinv => ops::erfinv;
    sigmoid => ops::sigmoid;
    degrees => ops::degrees;
    radians => ops::radians;
    isnan => ops::isnan;
    isinf => ops::isinf;
    isposinf => ops::isposinf;
    isneginf => ops::isneginf;
    isfinite => ops::isfinite;
    logical_not => ops::logical_not;
    real => ops::real;
    imag => ops::imag;
    conj => ops::conj;
    conjugate => ops::conjugate;
    stop_gradient => umx::stop_gradient;
    positive => |a: &Array| Ok::<_, umx::Error>(a.clone());
}

macro_rules! binary {
    ($($name:ident => $f:expr;)*) => {$(
        #[doc = concat!("Element-wise `", stringify!($name), "` with broadcasting and MLX's type promotion (Python scalars are weak), as `mx.", stringify!($name), "`.")]
        #[pyfunction]
        #[pyo3(signature = (a, b, /, *, stream=None))]
        pub fn $name(a: Operand, b: Operand, stream: Option<StreamArg>) -> Out {
            out(on(stream, || ($f)(a.0, b.0)))
        }
    )*};
}

fn logical_xor_of(a: Array, b: Array) -> umx::Result<Array> {
    ops::not_equal(ops::astype(&a, Dtype::Bool)?, ops::astype(&b, Dtype::Bool)?)
}

binary! {
    add => ops::add;
    subtract => ops::subtract;
    multiply => ops::multiply;
    divide => ops::divide;
    floor_divide => ops::floor_divide;
    remainder => ops::remainder;
    power => ops::power;
    arctan2 => ops::arctan2;
    logaddexp => ops::logaddexp;
    maximum => ops::maximum;
    minimum => ops::minimum;
    equal => ops::equal;
    not_equal => ops::not_equal;
    less => ops::less;
    less_equal => ops::less_equal;
    greater => ops::greater;
    greater_equal => ops::greater_equal;
    logical_and => ops::logical_and;
    logical_or => ops::logical_or;
    logical_xor => logical_xor_of;
    bitwise_and => ops::bitwise_and;
    bitwise_or => ops::bitwise_or;
    bitwise_xor => ops::bitwise_xor;
    left_shift => ops::left_shift;
    right_shift => ops::right_shift;
    matmul => |a: Array, b: Array| ops::matmul(&a, &b);
    inner => |a: Array, b: Array| ops::inner(&a, &b);
    outer => |a: Array, b: Array| ops::outer(&a, &b);
}

/// `(a // b, a % b)`.
#[pyfunction]
#[pyo3(signature = (a, b, /, *, stream=None))]
pub fn divmod<'py>(
    py: Python<'py>,
    a: Operand,
    b: Operand,
    stream: Option<StreamArg>,
) -> PyResult<Bound<'py, PyTuple>> {
    let (q, r) = on(stream, || ops::divmod(a.0, b.0))?;
    tuple_out(py, vec![q, r])
}

macro_rules! reductions {
    ($($name:ident => $f:path;)*) => {$(
        #[doc = concat!("`", stringify!($name), "` over `axis` (an int, a sequence of ints, or None for all), as `mx.", stringify!($name), "`.")]
        #[pyfunction]
        #[pyo3(signature = (a, /, axis=None, keepdims=false, *, stream=None))]
        pub fn $name(a: Operand, axis: Option<AxesArg>, keepdims: bool, stream: Option<StreamArg>) -> Out {
            out(on(stream, || $f(&a.0, axes(axis), keepdims)))
        }
    )*};
}

reductions! {
    sum => ops::sum;
    prod => ops::prod;
    max => ops::max;
    min => ops::min;
    mean => ops::mean;
    all => ops::all;
    any => ops::any;
    logsumexp => ops::logsumexp;
    median => ops::median;
}

/// Whether `a` has a nonzero element over `axis`, counted (int32).
#[pyfunction]
#[pyo3(signature = (a, /, *, axis=None, keepdims=false, stream=None))]
pub fn count_nonzero(
    a: Operand,
    axis: Option<AxesArg>,
    keepdims: bool,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || {
        ops::count_nonzero(&a.0, axes(axis), keepdims)
    }))
}

/// Variance over `axis`, dividing by `n - ddof`.
#[pyfunction]
#[pyo3(signature = (a, /, axis=None, keepdims=false, ddof=0, *, stream=None))]
pub fn var(
    a: Operand,
    axis: Option<AxesArg>,
    keepdims: bool,
    ddof: i64,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || ops::var(&a.0, axes(axis), keepdims, ddof)))
}

/// Standard deviation over `axis`, dividing by `n - ddof`.
#[pyfunction]
#[pyo3(signature = (a, /, axis=None, keepdims=false, ddof=0, *, stream=None))]
pub fn std(
    a: Operand,
    axis: Option<AxesArg>,
    keepdims: bool,
    ddof: i64,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || ops::std(&a.0, axes(axis), keepdims, ddof)))
}

/// Index (uint32) of the largest value along `axis` (None: of the flattened array).
#[pyfunction]
#[pyo3(signature = (a, /, axis=None, keepdims=false, *, stream=None))]
pub fn argmax(a: Operand, axis: Option<i64>, keepdims: bool, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::argmax(&a.0, axis, keepdims)))
}

/// Index (uint32) of the smallest value along `axis` (None: of the flattened array).
#[pyfunction]
#[pyo3(signature = (a, /, axis=None, keepdims=false, *, stream=None))]
pub fn argmin(a: Operand, axis: Option<i64>, keepdims: bool, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::argmin(&a.0, axis, keepdims)))
}

/// `exp(a) / sum(exp(a))` over `axis`; `precise` computes 16-bit floats in float32.
#[pyfunction]
#[pyo3(signature = (a, /, axis=None, *, precise=false, stream=None))]
pub fn softmax(a: Operand, axis: Option<AxesArg>, precise: bool, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::softmax(&a.0, axes(axis), precise)))
}

macro_rules! scans {
    ($($name:ident => $f:path;)*) => {$(
        #[doc = concat!("Running `", stringify!($name), "` along `axis` (None: of the flattened array), as `mx.", stringify!($name), "`.")]
        #[pyfunction]
        #[pyo3(signature = (a, /, axis=None, *, reverse=false, inclusive=true, dtype=None, stream=None))]
        pub fn $name(
            a: Operand,
            axis: Option<i64>,
            reverse: bool,
            inclusive: bool,
            dtype: Option<PyDtype>,
            stream: Option<StreamArg>,
        ) -> Out {
            out(on(stream, || {
                let x = match dtype {
                    Some(d) => ops::astype(&a.0, d.0)?,
                    None => a.0,
                };
                $f(&x, axis, reverse, inclusive)
            }))
        }
    )*};
}

scans! {
    cumsum => ops::cumsum;
    cumprod => ops::cumprod;
    cummax => ops::cummax;
    cummin => ops::cummin;
    logcumsumexp => ops::logcumsumexp;
}

/// `a` with a new shape (one dimension may be -1).
#[pyfunction]
#[pyo3(signature = (a, /, shape, *, stream=None))]
pub fn reshape(a: Operand, shape: Ints, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::reshape(&a.0, &shape.0)))
}

/// Axes `start_axis..=end_axis` merged into one.
#[pyfunction]
#[pyo3(signature = (a, /, start_axis=0, end_axis=-1, *, stream=None))]
pub fn flatten(a: Operand, start_axis: i64, end_axis: i64, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::flatten(&a.0, start_axis, end_axis)))
}

/// Axis `axis` split into `shape` (one dimension may be -1).
#[pyfunction]
#[pyo3(signature = (a, /, axis, shape, *, stream=None))]
pub fn unflatten(a: Operand, axis: i64, shape: Ints, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::unflatten(&a.0, axis, &shape.0)))
}

/// `a` without the axes of size 1 named by `axis` (None: all of them).
#[pyfunction]
#[pyo3(signature = (a, /, axis=None, *, stream=None))]
pub fn squeeze(a: Operand, axis: Option<AxesArg>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::squeeze(&a.0, axes(axis))))
}

/// `a` with axes of size 1 inserted at `axis`.
#[pyfunction]
#[pyo3(signature = (a, /, axis, *, stream=None))]
pub fn expand_dims(a: Operand, axis: AxesArg, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::expand_dims(&a.0, Axes::List(axis.0))))
}

/// `a` with its axes permuted (None: reversed).
#[pyfunction]
#[pyo3(signature = (a, /, axes=None, *, stream=None))]
pub fn transpose(a: Operand, axes: Option<AxesArg>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::transpose(&a.0, crate::args::axes(axes))))
}

/// `a` with two axes swapped.
#[pyfunction]
#[pyo3(signature = (a, /, axis1, axis2, *, stream=None))]
pub fn swapaxes(a: Operand, axis1: i64, axis2: i64, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::swapaxes(&a.0, axis1, axis2)))
}

/// `a` with axis `source` moved to `destination`.
#[pyfunction]
#[pyo3(signature = (a, /, source, destination, *, stream=None))]
pub fn moveaxis(a: Operand, source: i64, destination: i64, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::moveaxis(&a.0, source, destination)))
}

/// `a` broadcast to `shape`.
#[pyfunction]
#[pyo3(signature = (a, /, shape, *, stream=None))]
pub fn broadcast_to(a: Operand, shape: ShapeArg, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::broadcast_to(&a.0, &shape.0)))
}

/// The arrays broadcast to their common shape.
#[pyfunction]
#[pyo3(signature = (*arrays, stream=None))]
pub fn broadcast_arrays<'py>(
    arrays: &Bound<'py, PyTuple>,
    stream: Option<StreamArg>,
) -> PyResult<Bound<'py, PyTuple>> {
    let xs = crate::ops::arrays(arrays)?;
    let ys = on(stream, || ops::broadcast_arrays(&xs))?;
    tuple_out(arrays.py(), ys)
}

/// The broadcast of shapes (NumPy's rule).
#[pyfunction]
#[pyo3(signature = (*shapes))]
pub fn broadcast_shapes(shapes: Vec<ShapeArg>) -> PyResult<Vec<usize>> {
    let refs: Vec<&[usize]> = shapes.iter().map(|s| &s.0[..]).collect();
    umx::shape::broadcast_many("broadcast_shapes", &refs).or_raise()
}

/// The arrays joined along `axis` (None: flattened and joined).
#[pyfunction]
#[pyo3(signature = (arrays, axis=Some(0), *, stream=None))]
pub fn concatenate(arrays: &Bound<'_, PyAny>, axis: Option<i64>, stream: Option<StreamArg>) -> Out {
    let xs = crate::ops::arrays(arrays)?;
    out(on(stream, || match axis {
        Some(ax) => ops::concatenate(&xs, ax),
        None => {
            let flat = xs
                .iter()
                .map(|x| ops::reshape(x, &[-1]))
                .collect::<umx::Result<Vec<_>>>()?;
            ops::concatenate(&flat, 0)
        }
    }))
}

/// The arrays stacked along a new axis `axis`.
#[pyfunction]
#[pyo3(signature = (arrays, axis=0, *, stream=None))]
pub fn stack(arrays: &Bound<'_, PyAny>, axis: i64, stream: Option<StreamArg>) -> Out {
    let xs = crate::ops::arrays(arrays)?;
    out(on(stream, || ops::stack(&xs, axis)))
}

/// `a` cut along `axis` into equal sections (an int) or before each index (a sequence).
#[pyfunction]
#[pyo3(signature = (a, /, indices_or_sections, axis=0, *, stream=None))]
pub fn split<'py>(
    py: Python<'py>,
    a: Operand,
    indices_or_sections: &Bound<'py, PyAny>,
    axis: i64,
    stream: Option<StreamArg>,
) -> PyResult<Bound<'py, pyo3::types::PyList>> {
    let how = match indices_or_sections.extract::<i64>() {
        Ok(n) if n <= 0 => {
            return Err(PyValueError::new_err(format!(
                "split: the number of sections must be positive, not {n}"
            )));
        }
        Ok(n) => IndicesOrSections::Sections(n as usize),
        Err(_) => IndicesOrSections::Indices(indices_or_sections.extract::<Ints>()?.0),
    };
    let parts = on(stream, || ops::split(&a.0, how, axis))?;
    list_out(py, parts)
}

/// The slices of `x` along `axis`, as a tuple.
#[pyfunction]
#[pyo3(signature = (x, /, *, axis=0, stream=None))]
pub fn unstack<'py>(
    py: Python<'py>,
    x: Operand,
    axis: i64,
    stream: Option<StreamArg>,
) -> PyResult<Bound<'py, PyTuple>> {
    let parts = on(stream, || {
        let n = x.0.dim(axis)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        ops::split(&x.0, IndicesOrSections::Sections(n), axis)?
            .iter()
            .map(|p| ops::squeeze(p, axis))
            .collect()
    })?;
    tuple_out(py, parts)
}

/// `a` repeated `reps` times along each axis.
#[pyfunction]
#[pyo3(signature = (a, reps, /, *, stream=None))]
pub fn tile(a: Operand, reps: ShapeArg, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::tile(&a.0, &reps.0)))
}

/// Each element of `array` repeated `repeats` times along `axis` (None: flattened).
#[pyfunction]
#[pyo3(signature = (array, repeats, axis=None, *, stream=None))]
pub fn repeat(array: Operand, repeats: usize, axis: Option<i64>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::repeat(&array.0, repeats, axis)))
}

/// MLX's `pad_width`: an int, `(n,)`, `(before, after)` for every axis, or one pair per axis.
fn pad_widths(obj: &Bound<'_, PyAny>) -> PyResult<Vec<(i64, i64)>> {
    if let Ok(n) = obj.extract::<i64>() {
        return Ok(vec![(n, n)]);
    }
    let items: Vec<Bound<'_, PyAny>> = obj.try_iter()?.collect::<PyResult<_>>()?;
    if items.iter().all(|i| i.extract::<i64>().is_ok()) {
        let v: Vec<i64> = items.iter().map(|i| i.extract()).collect::<PyResult<_>>()?;
        return match v[..] {
            [n] => Ok(vec![(n, n)]),
            [a, b] => Ok(vec![(a, b)]),
            _ => Err(PyValueError::new_err(format!(
                "pad: pad_width {v:?} must be an int, a pair, or one pair per axis"
            ))),
        };
    }
    items
        .iter()
        .map(|i| {
            let v = i.extract::<Ints>()?.0;
            match v[..] {
                [n] => Ok((n, n)),
                [a, b] => Ok((a, b)),
                _ => Err(PyValueError::new_err(format!(
                    "pad: each axis's pad width must be (before, after), not {v:?}"
                ))),
            }
        })
        .collect()
}

/// `a` padded along each axis with `constant_values` (mode "constant") or its edge values
/// (mode "edge").
#[pyfunction]
#[pyo3(signature = (a, pad_width, mode="constant", constant_values=None, *, stream=None))]
pub fn pad(
    a: Operand,
    pad_width: &Bound<'_, PyAny>,
    mode: &str,
    constant_values: Option<Operand>,
    stream: Option<StreamArg>,
) -> Out {
    let widths = pad_widths(pad_width)?;
    let mode = match mode {
        "constant" => PadMode::Constant,
        "edge" => PadMode::Edge,
        m => {
            return Err(PyValueError::new_err(format!(
                "pad: mode {m:?} is not supported; umx pads with \"constant\" or \"edge\""
            )));
        }
    };
    let value = constant_values.map_or_else(|| Array::weak_int(0), |v| v.0);
    out(on(stream, || ops::pad(&a.0, &widths, value, mode)))
}

/// `a` shifted by `shift` along `axis` (None: flattened), wrapping around.
#[pyfunction]
#[pyo3(signature = (a, shift, axis=None, *, stream=None))]
pub fn roll(a: Operand, shift: Ints, axis: Option<AxesArg>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::roll(&a.0, &shift.0, axes(axis))))
}

/// `a` reversed along `axis` (None: all axes).
#[pyfunction]
#[pyo3(signature = (a, /, axis=None, *, stream=None))]
pub fn flip(a: Operand, axis: Option<AxesArg>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::flip(&a.0, axes(axis))))
}

/// A view of `a`'s (row-major) elements with the given shape, strides and offset.
#[pyfunction]
#[pyo3(signature = (a, /, shape=None, strides=None, offset=0, *, stream=None))]
pub fn as_strided(
    a: Operand,
    shape: Option<ShapeArg>,
    strides: Option<Ints>,
    offset: usize,
    stream: Option<StreamArg>,
) -> Out {
    let shape = shape.map_or_else(|| a.0.shape().to_vec(), |s| s.0);
    let strides = strides.map_or_else(
        || {
            umx::shape::row_major_strides(&shape)
                .iter()
                .map(|&s| s as i64)
                .collect()
        },
        |s| s.0,
    );
    out(on(stream, || {
        ops::as_strided(&a.0, &shape, &strides, offset)
    }))
}

/// `a`'s bytes read as `dtype`.
#[pyfunction]
#[pyo3(signature = (a, dtype, *, stream=None))]
pub fn view(a: Operand, dtype: PyDtype, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::view(&a.0, dtype.0)))
}

/// `a` cast to `dtype`.
#[pyfunction]
#[pyo3(signature = (a, dtype, /, *, stream=None))]
pub fn astype(a: Operand, dtype: PyDtype, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::astype(&a.0, dtype.0)))
}

/// A row-major copy of `a`.
#[pyfunction]
#[pyo3(signature = (a, /, allow_col_major=false, *, stream=None))]
pub fn contiguous(a: Operand, allow_col_major: bool, stream: Option<StreamArg>) -> Out {
    let _ = allow_col_major;
    out(on(stream, || ops::contiguous(&a.0)))
}

macro_rules! atleast {
    ($($name:ident => $f:path;)*) => {$(
        #[doc = concat!("Each array with at least the dimensions its name says (`mx.", stringify!($name), "`): one array for one argument, a list for several.")]
        #[pyfunction]
        #[pyo3(signature = (*arys, stream=None))]
        pub fn $name<'py>(arys: &Bound<'py, PyTuple>, stream: Option<StreamArg>) -> PyResult<Bound<'py, PyAny>> {
            let xs = crate::ops::arrays(arys)?;
            let ys = on(stream, || xs.iter().map($f).collect::<umx::Result<Vec<_>>>())?;
            if ys.len() == 1 {
                Ok(Bound::new(arys.py(), PyArray::from(ys.into_iter().next().expect("one")))?.into_any())
            } else {
                Ok(list_out(arys.py(), ys)?.into_any())
            }
        }
    )*};
}

atleast! {
    atleast_1d => ops::atleast_1d;
    atleast_2d => ops::atleast_2d;
    atleast_3d => ops::atleast_3d;
}

// ---- creation ----------------------------------------------------------------------------

/// An `arange` bound: an int or a float.
#[derive(Clone, Copy, FromPyObject)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl RangeValue for Num {
    fn to_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
    fn is_integer(self) -> bool {
        matches!(self, Num::Int(_))
    }
}

/// `start, start + step, ...` below `stop`: `arange(stop)`, `arange(start, stop[, step])`.
/// Int bounds give int32, any float gives float32.
#[pyfunction]
#[pyo3(signature = (start, stop=None, step=None, dtype=None, *, stream=None))]
pub fn arange(
    start: Num,
    stop: Option<Num>,
    step: Option<Num>,
    dtype: Option<PyDtype>,
    stream: Option<StreamArg>,
) -> Out {
    let (start, stop) = match stop {
        Some(stop) => (start, stop),
        None => (Num::Int(0), start),
    };
    let step = step.unwrap_or(Num::Int(1));
    out(on(stream, || ops::arange(start, stop, step, dt(dtype))))
}

/// `num` evenly spaced values from `start` to `stop` (included unless `endpoint=False`).
#[pyfunction]
#[pyo3(signature = (start, stop, num=50, endpoint=true, dtype=None, *, stream=None))]
pub fn linspace(
    start: f64,
    stop: f64,
    num: usize,
    endpoint: bool,
    dtype: Option<PyDtype>,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || {
        if endpoint {
            ops::linspace(start, stop, num, dt(dtype))
        } else {
            let all = ops::linspace(start, stop, num + 1, dt(dtype))?;
            ops::slice(&all, &[0], &[num as i64], &[])
        }
    }))
}

/// An array of `shape` filled with `vals` (broadcast).
#[pyfunction]
#[pyo3(signature = (shape, vals, dtype=None, *, stream=None))]
pub fn full(
    shape: ShapeArg,
    vals: Operand,
    dtype: Option<PyDtype>,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || ops::full(&shape.0, vals.0, dt(dtype))))
}

/// An array of `shape` filled with 0 (float32 by default).
#[pyfunction]
#[pyo3(signature = (shape, dtype=None, *, stream=None))]
pub fn zeros(shape: ShapeArg, dtype: Option<PyDtype>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::zeros(&shape.0, dt(dtype))))
}

/// An array of `shape` filled with 1 (float32 by default).
#[pyfunction]
#[pyo3(signature = (shape, dtype=None, *, stream=None))]
pub fn ones(shape: ShapeArg, dtype: Option<PyDtype>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::ones(&shape.0, dt(dtype))))
}

/// Zeros of `a`'s shape (and dtype, unless `dtype` is given).
#[pyfunction]
#[pyo3(signature = (a, /, dtype=None, *, stream=None))]
pub fn zeros_like(a: Operand, dtype: Option<PyDtype>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || {
        ops::zeros(a.0.shape(), dt(dtype).unwrap_or(a.0.dtype()))
    }))
}

/// Ones of `a`'s shape (and dtype, unless `dtype` is given).
#[pyfunction]
#[pyo3(signature = (a, /, dtype=None, *, stream=None))]
pub fn ones_like(a: Operand, dtype: Option<PyDtype>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || {
        ops::ones(a.0.shape(), dt(dtype).unwrap_or(a.0.dtype()))
    }))
}

/// `vals` broadcast to `a`'s shape, in `a`'s dtype unless `dtype` is given.
#[pyfunction]
#[pyo3(signature = (a, vals, dtype=None, *, stream=None))]
pub fn full_like(
    a: Operand,
    vals: Operand,
    dtype: Option<PyDtype>,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || ops::full_like(&a.0, vals.0, dt(dtype))))
}

/// An `n` by `m` matrix with ones on the `k`-th diagonal.
#[pyfunction]
#[pyo3(signature = (n, m=None, k=0, dtype=None, *, stream=None))]
pub fn eye(
    n: usize,
    m: Option<usize>,
    k: i64,
    dtype: Option<PyDtype>,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || ops::eye(n, m, k, dt(dtype))))
}

/// The `n` by `n` identity matrix.
#[pyfunction]
#[pyo3(signature = (n, dtype=None, *, stream=None))]
pub fn identity(n: usize, dtype: Option<PyDtype>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::identity(n, dt(dtype))))
}

/// An `n` by `m` matrix with ones at and below the `k`-th diagonal.
#[pyfunction]
#[pyo3(signature = (n, m=None, k=0, dtype=None, *, stream=None))]
pub fn tri(
    n: usize,
    m: Option<usize>,
    k: i64,
    dtype: Option<PyDtype>,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || ops::tri(n, m, k, dt(dtype))))
}

/// `x` with the elements above the `k`-th diagonal zeroed.
#[pyfunction]
#[pyo3(signature = (x, k=0, *, stream=None))]
pub fn tril(x: Operand, k: i64, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::tril(&x.0, k)))
}

/// `x` with the elements below the `k`-th diagonal zeroed.
#[pyfunction]
#[pyo3(signature = (x, k=0, *, stream=None))]
pub fn triu(x: Operand, k: i64, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::triu(&x.0, k)))
}

/// Coordinate grids of the given 1-D arrays ("xy" or "ij" indexing).
#[pyfunction]
#[pyo3(signature = (*arrays, sparse=false, indexing="xy", stream=None))]
pub fn meshgrid<'py>(
    arrays: &Bound<'py, PyTuple>,
    sparse: bool,
    indexing: &str,
    stream: Option<StreamArg>,
) -> PyResult<Bound<'py, PyTuple>> {
    let xs = crate::ops::arrays(arrays)?;
    let grids = on(stream, || ops::meshgrid(&xs, sparse, indexing))?;
    tuple_out(arrays.py(), grids)
}

// ---- linear algebra ------------------------------------------------------------------------

/// `beta * c + alpha * (a @ b)`.
#[pyfunction]
#[pyo3(signature = (c, a, b, /, alpha=1.0, beta=1.0, *, stream=None))]
pub fn addmm(
    c: Operand,
    a: Operand,
    b: Operand,
    alpha: f64,
    beta: f64,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || ops::addmm(&c.0, &a.0, &b.0, alpha, beta)))
}

/// The sum of products over the last `axes` axes of `a` and first of `b` (an int), or over
/// the listed axes (a pair of lists).
#[pyfunction]
#[pyo3(signature = (a, b, /, axes=None, *, stream=None))]
pub fn tensordot(
    a: Operand,
    b: Operand,
    axes: Option<&Bound<'_, PyAny>>,
    stream: Option<StreamArg>,
) -> Out {
    let spec = match axes {
        None => TensordotAxes::Count(2),
        Some(x) => match x.extract::<usize>() {
            Ok(n) => TensordotAxes::Count(n),
            Err(_) => {
                let (p, q): (Ints, Ints) = x.extract().map_err(|_| {
                    PyTypeError::new_err(
                        "tensordot: axes must be an int or a pair of lists of axes",
                    )
                })?;
                TensordotAxes::Lists(p.0, q.0)
            }
        },
    };
    out(on(stream, || ops::tensordot(&a.0, &b.0, spec)))
}

/// Einstein summation over the operands, as `subscripts` says (`"ij,jk->ik"`).
#[pyfunction]
#[pyo3(signature = (subscripts, *operands, stream=None))]
pub fn einsum(subscripts: &str, operands: &Bound<'_, PyTuple>, stream: Option<StreamArg>) -> Out {
    let xs = crate::ops::arrays(operands)?;
    let refs: Vec<&Array> = xs.iter().collect();
    out(on(stream, || ops::einsum(subscripts, &refs)))
}

/// The contraction order `einsum` uses: a list of the operand positions each step contracts.
#[pyfunction]
#[pyo3(signature = (subscripts, *operands))]
pub fn einsum_path(subscripts: &str, operands: &Bound<'_, PyTuple>) -> PyResult<Vec<Vec<usize>>> {
    let xs = crate::ops::arrays(operands)?;
    let refs: Vec<&Array> = xs.iter().collect();
    ops::einsum_path(subscripts, &refs).or_raise()
}

// ---- indexing --------------------------------------------------------------------------------

/// Elements of `a` at `indices` along `axis` (None: of the flattened array).
#[pyfunction]
#[pyo3(signature = (a, /, indices, axis=None, *, stream=None))]
pub fn take(a: Operand, indices: Operand, axis: Option<i64>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::take(&a.0, &indices.0, axis)))
}

/// `a` indexed along `axis` by `indices` of `a`'s rank (None: of the flattened array).
#[pyfunction]
#[pyo3(signature = (a, /, indices, axis=Some(-1), *, stream=None))]
pub fn take_along_axis(
    a: Operand,
    indices: Operand,
    axis: Option<i64>,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || match axis {
        Some(ax) => ops::take_along_axis(&a.0, &indices.0, ax),
        None => ops::take_along_axis(&ops::reshape(&a.0, &[-1])?, &indices.0, 0),
    }))
}

/// A copy of `a` with `values` written at `indices` along `axis`.
#[pyfunction]
#[pyo3(signature = (a, /, indices, values, axis=None, *, stream=None))]
pub fn put_along_axis(
    a: Operand,
    indices: Operand,
    values: Operand,
    axis: Option<i64>,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || match axis {
        Some(ax) => ops::put_along_axis(&a.0, &indices.0, &values.0, ax),
        None => {
            let flat = ops::reshape(&a.0, &[-1])?;
            let r = ops::put_along_axis(&flat, &indices.0, &values.0, 0)?;
            let dims: Vec<i64> = a.0.shape().iter().map(|&d| d as i64).collect();
            ops::reshape(&r, &dims)
        }
    }))
}

/// The `k`-th diagonal of a matrix, or a matrix with a vector on its `k`-th diagonal.
#[pyfunction]
#[pyo3(signature = (a, /, k=0, *, stream=None))]
pub fn diag(a: Operand, k: i64, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::diag(&a.0, k)))
}

/// The `offset`-th diagonal of the plane `(axis1, axis2)`, as the last axis.
#[pyfunction]
#[pyo3(signature = (a, offset=0, axis1=0, axis2=1, *, stream=None))]
pub fn diagonal(a: Operand, offset: i64, axis1: i64, axis2: i64, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::diagonal(&a.0, offset, axis1, axis2)))
}

/// The sum along a diagonal.
#[pyfunction]
#[pyo3(signature = (a, /, offset=0, axis1=0, axis2=1, dtype=None, *, stream=None))]
pub fn trace(
    a: Operand,
    offset: i64,
    axis1: i64,
    axis2: i64,
    dtype: Option<PyDtype>,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || {
        let d = ops::diagonal(&a.0, offset, axis1, axis2)?;
        let s = ops::sum(&d, -1, false)?;
        match dtype {
            Some(t) => ops::astype(&s, t.0),
            None => Ok(s),
        }
    }))
}

// ---- sorting -------------------------------------------------------------------------------

/// `a` sorted along `axis` (None: flattened).
#[pyfunction]
#[pyo3(signature = (a, /, axis=Some(-1), *, stream=None))]
pub fn sort(a: Operand, axis: Option<i64>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::sort(&a.0, axis)))
}

/// The indices (uint32) that sort `a` along `axis` (None: flattened).
#[pyfunction]
#[pyo3(signature = (a, /, axis=Some(-1), *, stream=None))]
pub fn argsort(a: Operand, axis: Option<i64>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::argsort(&a.0, axis)))
}

/// `a` with its `kth` element in sorted place, smaller ones before, larger after.
#[pyfunction]
#[pyo3(signature = (a, /, kth, axis=Some(-1), *, stream=None))]
pub fn partition(a: Operand, kth: i64, axis: Option<i64>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::partition(&a.0, kth, axis)))
}

/// The indices of [`partition`].
#[pyfunction]
#[pyo3(signature = (a, /, kth, axis=Some(-1), *, stream=None))]
pub fn argpartition(a: Operand, kth: i64, axis: Option<i64>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::argpartition(&a.0, kth, axis)))
}

/// The `k` largest values along `axis` (in no particular order).
#[pyfunction]
#[pyo3(signature = (a, /, k, axis=Some(-1), *, stream=None))]
pub fn topk(a: Operand, k: usize, axis: Option<i64>, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::topk(&a.0, k, axis)))
}

/// Where `values` would be inserted into the sorted 1-D `sorted_sequence`.
#[pyfunction]
#[pyo3(signature = (sorted_sequence, values, /, side="left", *, stream=None))]
pub fn searchsorted(
    sorted_sequence: Operand,
    values: Operand,
    side: &str,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || {
        ops::searchsorted(&sorted_sequence.0, values.0, side)
    }))
}

// ---- selection and comparison --------------------------------------------------------------

/// `x` where `condition` is true, else `y`.
#[pyfunction(name = "where")]
#[pyo3(signature = (condition, x, y, /, *, stream=None))]
pub fn where_(condition: Operand, x: Operand, y: Operand, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::where_(condition.0, x.0, y.0)))
}

/// `a` limited to `[a_min, a_max]` (either may be None).
#[pyfunction]
#[pyo3(signature = (a, /, a_min, a_max, *, stream=None))]
pub fn clip(
    a: Operand,
    a_min: Option<Operand>,
    a_max: Option<Operand>,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || {
        ops::clip(a.0, a_min.map(|x| x.0), a_max.map(|x| x.0))
    }))
}

/// NaN, +inf and -inf replaced by finite numbers.
#[pyfunction]
#[pyo3(signature = (a, nan=0.0, posinf=None, neginf=None, *, stream=None))]
pub fn nan_to_num(
    a: Operand,
    nan: f64,
    posinf: Option<f64>,
    neginf: Option<f64>,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || ops::nan_to_num(&a.0, nan, posinf, neginf)))
}

/// `a` rounded to `decimals` places, halves to even.
#[pyfunction]
#[pyo3(signature = (a, /, decimals=0, *, stream=None))]
pub fn round(a: Operand, decimals: i32, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::round(&a.0, decimals)))
}

/// Whether `|a - b| <= atol + rtol * |b|`, element-wise.
#[pyfunction]
#[pyo3(signature = (a, b, /, rtol=1e-5, atol=1e-8, *, equal_nan=false, stream=None))]
pub fn isclose(
    a: Operand,
    b: Operand,
    rtol: f64,
    atol: f64,
    equal_nan: bool,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || ops::isclose(a.0, b.0, rtol, atol, equal_nan)))
}

/// Whether every element of `a` is close to `b` (see `isclose`).
#[pyfunction]
#[pyo3(signature = (a, b, /, rtol=1e-5, atol=1e-8, *, equal_nan=false, stream=None))]
pub fn allclose(
    a: Operand,
    b: Operand,
    rtol: f64,
    atol: f64,
    equal_nan: bool,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || {
        ops::allclose(a.0, b.0, rtol, atol, equal_nan)
    }))
}

/// Whether `a` and `b` have one shape and equal elements.
#[pyfunction]
#[pyo3(signature = (a, b, equal_nan=false, *, stream=None))]
pub fn array_equal(a: Operand, b: Operand, equal_nan: bool, stream: Option<StreamArg>) -> Out {
    out(on(stream, || ops::array_equal(a.0, b.0, equal_nan)))
}

/// The dtype the arguments (arrays, scalars or dtypes) promote to.
#[pyfunction]
#[pyo3(signature = (*arrays_and_dtypes))]
pub fn result_type(arrays_and_dtypes: &Bound<'_, PyTuple>) -> PyResult<PyDtype> {
    let mut xs = Vec::new();
    for x in arrays_and_dtypes.iter() {
        match x.extract::<PyDtype>() {
            Ok(d) => xs.push(Array::full_scalar(0.0, d.0)),
            Err(_) => xs.push(x.extract::<Operand>()?.0),
        }
    }
    Ok(PyDtype(common_dtype(&xs)))
}

// ---- convolution -------------------------------------------------------------------------

fn per_axis(v: Ints) -> PyResult<Vec<usize>> {
    crate::args::shape_of(&v.0)
}

/// 1-D convolution of `(N, L, C_in)` with `(C_out, K, C_in / groups)`.
#[pyfunction]
#[pyo3(signature = (input, weight, /, stride=1, padding=0, dilation=1, groups=1, *, stream=None))]
#[allow(clippy::too_many_arguments)]
pub fn conv1d(
    input: Operand,
    weight: Operand,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || {
        ops::conv1d(&input.0, &weight.0, stride, padding, dilation, groups)
    }))
}

macro_rules! convs {
    ($($name:ident => $f:path;)*) => {$(
        #[doc = concat!("Convolution (correlation) as `mx.", stringify!($name), "`: channels last; `stride`, `padding` and `dilation` are ints or one per spatial axis.")]
        #[pyfunction]
        #[pyo3(signature = (input, weight, /, stride=Ints(vec![1]), padding=Ints(vec![0]), dilation=Ints(vec![1]), groups=1, *, stream=None))]
        #[allow(clippy::too_many_arguments)]
        pub fn $name(
            input: Operand,
            weight: Operand,
            stride: Ints,
            padding: Ints,
            dilation: Ints,
            groups: usize,
            stream: Option<StreamArg>,
        ) -> Out {
            let (s, p, d) = (per_axis(stride)?, per_axis(padding)?, per_axis(dilation)?);
            out(on(stream, || $f(&input.0, &weight.0, s, p, d, groups)))
        }
    )*};
}

convs! {
    conv2d => ops::conv2d;
    conv3d => ops::conv3d;
}

/// 1-D transposed convolution of `(N, L, C_in)` with `(C_out, K, C_in)`.
#[pyfunction]
#[pyo3(signature = (input, weight, /, stride=1, padding=0, dilation=1, output_padding=0, groups=1, *, stream=None))]
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose1d(
    input: Operand,
    weight: Operand,
    stride: usize,
    padding: usize,
    dilation: usize,
    output_padding: usize,
    groups: usize,
    stream: Option<StreamArg>,
) -> Out {
    out(on(stream, || {
        ops::conv_transpose1d(
            &input.0,
            &weight.0,
            stride,
            padding,
            dilation,
            output_padding,
            groups,
        )
    }))
}

macro_rules! conv_transposes {
    ($($name:ident => $f:path;)*) => {$(
        #[doc = concat!("Transposed convolution as `mx.", stringify!($name), "`.")]
        #[pyfunction]
        #[pyo3(signature = (input, weight, /, stride=Ints(vec![1]), padding=Ints(vec![0]), dilation=Ints(vec![1]), output_padding=Ints(vec![0]), groups=1, *, stream=None))]
        #[allow(clippy::too_many_arguments)]
        pub fn $name(
            input: Operand,
            weight: Operand,
            stride: Ints,
            padding: Ints,
            dilation: Ints,
            output_padding: Ints,
            groups: usize,
            stream: Option<StreamArg>,
        ) -> Out {
            let (s, p, d, o) = (
                per_axis(stride)?,
                per_axis(padding)?,
                per_axis(dilation)?,
                per_axis(output_padding)?,
            );
            out(on(stream, || $f(&input.0, &weight.0, s, p, d, o, groups)))
        }
    )*};
}

conv_transposes! {
    conv_transpose2d => ops::conv_transpose2d;
    conv_transpose3d => ops::conv_transpose3d;
}

/// The general convolution: `padding` an int, one per spatial axis, or a pair of lists (low,
/// high); `flip` makes it a true convolution.
#[pyfunction]
#[pyo3(signature = (input, weight, /, stride=Ints(vec![1]), padding=None, kernel_dilation=Ints(vec![1]), input_dilation=Ints(vec![1]), groups=1, flip=false, *, stream=None))]
#[allow(clippy::too_many_arguments)]
pub fn conv_general(
    input: Operand,
    weight: Operand,
    stride: Ints,
    padding: Option<&Bound<'_, PyAny>>,
    kernel_dilation: Ints,
    input_dilation: Ints,
    groups: usize,
    flip: bool,
    stream: Option<StreamArg>,
) -> Out {
    let (lo, hi) = match padding {
        None => (vec![0], vec![0]),
        Some(p) => match p.extract::<Ints>() {
            Ok(v) => {
                let v = per_axis(v)?;
                (v.clone(), v)
            }
            Err(_) => {
                let (lo, hi): (Ints, Ints) = p.extract()?;
                (per_axis(lo)?, per_axis(hi)?)
            }
        },
    };
    let (s, kd, id) = (
        per_axis(stride)?,
        per_axis(kernel_dilation)?,
        per_axis(input_dilation)?,
    );
    out(on(stream, || {
        ops::conv_general(&input.0, &weight.0, s, (lo, hi), kd, id, groups, flip)
    }))
}

// ---- evaluation and memory -----------------------------------------------------------------

/// Every array in the arguments (arrays, or lists, tuples and dicts of them, nested).
fn tree_arrays(args: &Bound<'_, PyTuple>) -> PyResult<Vec<Array>> {
    let mut out = Vec::new();
    for a in args.iter() {
        crate::transforms::collect_arrays(&a, &mut out)?;
    }
    Ok(out)
}

/// Evaluates the arrays in the arguments (pytrees of arrays), with the interpreter released.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn eval(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
    let xs = tree_arrays(args)?;
    py.detach(move || umx::eval(xs.iter())).or_raise()
}

/// Starts evaluating the arrays in the arguments in the background and returns at once.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn async_eval(args: &Bound<'_, PyTuple>) -> PyResult<()> {
    let xs = tree_arrays(args)?;
    umx::async_eval(xs.iter()).or_raise()
}

/// Bytes held by live arrays.
#[pyfunction]
pub fn get_active_memory() -> usize {
    umx::memory::active_memory()
}

/// The most bytes held at once since the start (or the last reset).
#[pyfunction]
pub fn get_peak_memory() -> usize {
    umx::memory::peak_memory()
}

#[pyfunction]
pub fn reset_peak_memory() {
    umx::memory::reset_peak_memory()
}

/// Bytes kept in the buffer cache for reuse.
#[pyfunction]
pub fn get_cache_memory() -> usize {
    umx::memory::cache_memory()
}

#[pyfunction]
pub fn clear_cache() {
    umx::memory::clear_cache()
}

/// Sets the memory limit in bytes; returns the previous one.
#[pyfunction]
pub fn set_memory_limit(limit: usize) -> usize {
    umx::memory::set_memory_limit(limit)
}

/// Sets the cache limit in bytes; returns the previous one.
#[pyfunction]
pub fn set_cache_limit(limit: usize) -> usize {
    umx::memory::set_cache_limit(limit)
}

// ---- quantization --------------------------------------------------------------------------

/// Only MLX's affine mode is implemented.
fn affine(op: &str, mode: &str) -> PyResult<()> {
    if mode != "affine" {
        return Err(PyValueError::new_err(format!(
            "{op}: mode {mode:?} is not supported; only \"affine\" is"
        )));
    }
    Ok(())
}

/// `(w_q, scales, biases)`: `w` quantized with MLX's affine scheme, as `mx.quantize`.
#[pyfunction]
#[pyo3(signature = (w, /, group_size=64, bits=4, mode="affine", *, stream=None))]
pub fn quantize<'py>(
    py: Python<'py>,
    w: Operand,
    group_size: usize,
    bits: usize,
    mode: &str,
    stream: Option<StreamArg>,
) -> PyResult<Bound<'py, PyTuple>> {
    affine("quantize", mode)?;
    let (q, s, b) = on(stream, || ops::quantize(&w.0, group_size, bits))?;
    tuple_out(py, vec![q, s, b])
}

/// The matrix `quantize` packed, as `mx.dequantize`.
#[pyfunction]
#[pyo3(signature = (w, /, scales, biases, group_size=64, bits=4, mode="affine", *, stream=None))]
pub fn dequantize(
    w: Operand,
    scales: Operand,
    biases: Operand,
    group_size: usize,
    bits: usize,
    mode: &str,
    stream: Option<StreamArg>,
) -> Out {
    affine("dequantize", mode)?;
    out(on(stream, || {
        ops::dequantize(&w.0, &scales.0, &biases.0, group_size, bits)
    }))
}

/// `x @ W.T` (or `x @ W`) with `W` quantized, as `mx.quantized_matmul`.
#[pyfunction]
#[pyo3(signature = (x, w, /, scales, biases, transpose=true, group_size=64, bits=4, mode="affine", *, stream=None))]
#[allow(clippy::too_many_arguments)]
pub fn quantized_matmul(
    x: Operand,
    w: Operand,
    scales: Operand,
    biases: Operand,
    transpose: bool,
    group_size: usize,
    bits: usize,
    mode: &str,
    stream: Option<StreamArg>,
) -> Out {
    affine("quantized_matmul", mode)?;
    out(on(stream, || {
        ops::quantized_matmul(
            &x.0, &w.0, &scales.0, &biases.0, transpose, group_size, bits,
        )
    }))
}

/// A quantized product with gathered operands, as `mx.gather_qmm`.
#[pyfunction]
#[pyo3(signature = (x, w, /, scales, biases, lhs_indices=None, rhs_indices=None, transpose=true,
    group_size=64, bits=4, mode="affine", *, sorted_indices=false, stream=None))]
#[allow(clippy::too_many_arguments)]
pub fn gather_qmm(
    x: Operand,
    w: Operand,
    scales: Operand,
    biases: Operand,
    lhs_indices: Option<Operand>,
    rhs_indices: Option<Operand>,
    transpose: bool,
    group_size: usize,
    bits: usize,
    mode: &str,
    sorted_indices: bool,
    stream: Option<StreamArg>,
) -> Out {
    affine("gather_qmm", mode)?;
    let _ = sorted_indices; // a hint for MLX's kernels; the result is the same
    out(on(stream, || {
        ops::gather_qmm(
            &x.0,
            &w.0,
            &scales.0,
            &biases.0,
            lhs_indices.as_ref().map(|i| &i.0),
            rhs_indices.as_ref().map(|i| &i.0),
            transpose,
            group_size,
            bits,
        )
    }))
}
