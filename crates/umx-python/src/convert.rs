//! Python values to arrays (scalars, nested lists, NumPy arrays) and back (`item`, `tolist`,
//! `np.array(a)`), with MLX's dtype rules.
//!
//! - `mx.array(x)`: bool gives bool, int gives int32 (int64 when a value does not fit), float
//!   float32, complex complex64; a NumPy array keeps its dtype, except that float64 becomes
//!   float32 and complex128 complex64 (as in MLX). Lists nest; arrays inside lists are stacked.
//! - As an operand of an op (`a + 2.0`, `mx.maximum(a, 0)`), a Python scalar is *weak*: it takes
//!   the array's dtype unless it is of a higher kind (`float16_array * 2.0` stays float16).

use crate::array::PyArray;
use crate::error::OrRaise;
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyComplex, PyDict, PyFloat, PyInt, PyList, PyTuple};
use umx::dtype::promote_with_weak;
use umx::{Array, ArrayData, Buffer, Complex32, Dtype, Element, dispatch_dtype, ops};

/// A Python scalar.
#[derive(Clone, Copy, Debug)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    /// An int above `i64::MAX` that fits `u64`.
    UInt(u64),
    Float(f64),
    Complex(f64, f64),
}

impl Scalar {
    /// The scalar as a Python value of its kind, if `obj` is one (numpy scalars that subclass
    /// `float`, such as `np.float64`, count as floats).
    pub fn of(obj: &Bound<'_, PyAny>) -> PyResult<Option<Scalar>> {
        if obj.is_instance_of::<PyBool>() {
            return Ok(Some(Scalar::Bool(obj.extract()?)));
        }
        if obj.is_instance_of::<PyInt>() {
            if let Ok(v) = obj.extract::<i64>() {
                return Ok(Some(Scalar::Int(v)));
            }
            return match obj.extract::<u64>() {
                Ok(v) => Ok(Some(Scalar::UInt(v))),
                Err(_) => Err(PyOverflowError::new_err(format!(
                    "the integer {obj} does not fit any integer dtype"
                ))),
            };
        }
        if obj.is_instance_of::<PyFloat>() {
            return Ok(Some(Scalar::Float(obj.extract()?)));
        }
        if obj.is_instance_of::<PyComplex>() {
            let re: f64 = obj.getattr("real")?.extract()?;
            let im: f64 = obj.getattr("imag")?.extract()?;
            return Ok(Some(Scalar::Complex(re, im)));
        }
        Ok(None)
    }

    /// The dtype `mx.array(scalar)` gives.
    fn natural_dtype(self) -> Dtype {
        match self {
            Scalar::Bool(_) => Dtype::Bool,
            Scalar::Int(v) if i32::try_from(v).is_ok() => Dtype::Int32,
            Scalar::Int(_) => Dtype::Int64,
            Scalar::UInt(_) => Dtype::Uint64,
            Scalar::Float(_) => Dtype::Float32,
            Scalar::Complex(..) => Dtype::Complex64,
        }
    }

    /// The value in `T`, converted as C++'s `static_cast` would.
    fn to<T: Element>(self) -> T {
        match self {
            Scalar::Bool(b) => T::from_i64(b as i64),
            Scalar::Int(v) => T::from_i64(v),
            Scalar::UInt(v) => {
                if T::DTYPE.is_integer() {
                    T::from_i64(v as i64)
                } else {
                    T::from_f64(v as f64)
                }
            }
            Scalar::Float(v) => T::from_f64(v),
            Scalar::Complex(re, im) => T::from_c64(Complex32::new(re as f32, im as f32)),
        }
    }

    /// The scalar as an operand: weak (see the module doc), except complex, which is always
    /// complex64, and integers beyond int32, which are int64 (uint64 past `i64::MAX`).
    pub fn weak(self) -> Array {
        match self {
            Scalar::Bool(b) => Array::weak_bool(b),
            Scalar::Int(v) if i32::try_from(v).is_ok() => Array::weak_int(v),
            Scalar::Int(v) => Array::scalar(v),
            Scalar::UInt(v) => Array::scalar(v),
            Scalar::Float(v) => Array::weak_float(v),
            Scalar::Complex(re, im) => Array::scalar(Complex32::new(re as f32, im as f32)),
        }
    }
}

/// An element of a nested list.
enum Leaf {
    Scalar(Scalar),
    Array(Array),
}

/// Whether `obj` looks like a NumPy array or scalar (or anything NumPy can take as one).
fn is_numpy_like(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(obj.hasattr("__array_interface__")? || obj.hasattr("__array__")?)
}

/// Walks a nested list, pushing its leaves in row-major order; returns its shape.
fn walk(obj: &Bound<'_, PyAny>, leaves: &mut Vec<Leaf>) -> PyResult<Vec<usize>> {
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let n = obj.len()?;
        let mut inner: Option<Vec<usize>> = None;
        for item in obj.try_iter()? {
            let s = walk(&item?, leaves)?;
            match &inner {
                None => inner = Some(s),
                Some(t) if *t != s => {
                    return Err(PyValueError::new_err(
                        "array: initialization encountered non-uniform length",
                    ));
                }
                Some(_) => {}
            }
        }
        let mut shape = vec![n];
        shape.extend(inner.unwrap_or_default());
        return Ok(shape);
    }
    if let Ok(a) = obj.cast::<PyArray>() {
        let a = a.borrow().inner.clone();
        let shape = a.shape().to_vec();
        leaves.push(Leaf::Array(a));
        return Ok(shape);
    }
    if let Some(s) = Scalar::of(obj)? {
        leaves.push(Leaf::Scalar(s));
        return Ok(Vec::new());
    }
    if is_numpy_like(obj)? {
        let a = from_numpy(obj, None)?;
        let shape = a.shape().to_vec();
        leaves.push(Leaf::Array(a));
        return Ok(shape);
    }
    Err(PyTypeError::new_err(format!(
        "array: cannot make an array from an object of type {}",
        obj.get_type().name()?
    )))
}

/// The dtype of a list of Python scalars: complex64 if any is complex, else float32 if any is
/// a float, else int32 (int64 when a value does not fit, uint64 past `i64::MAX`), else bool;
/// float32 for an empty list.
fn scalars_dtype(scalars: &[Scalar]) -> Dtype {
    let mut d: Option<Dtype> = None;
    for s in scalars {
        let n = s.natural_dtype();
        d = Some(match d {
            None => n,
            Some(p) => umx::promote_types(p, n),
        });
    }
    // uint64 with int64 promotes to float32 in MLX; a list of big ints stays integer.
    match d {
        None => Dtype::Float32,
        Some(Dtype::Float32)
            if scalars
                .iter()
                .all(|s| matches!(s, Scalar::Int(_) | Scalar::UInt(_))) =>
        {
            Dtype::Int64
        }
        Some(d) => d,
    }
}

/// A Python object as an array (MLX's `mx.array(obj, dtype)`).
pub fn to_array(obj: &Bound<'_, PyAny>, dtype: Option<Dtype>) -> PyResult<Array> {
    if let Ok(a) = obj.cast::<PyArray>() {
        let a = a.borrow().inner.clone();
        return match dtype {
            Some(d) => ops::astype(&a, d).or_raise(),
            None => Ok(a),
        };
    }
    let is_nested = obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>();
    if !is_nested && Scalar::of(obj)?.is_none() {
        if is_numpy_like(obj)? {
            return from_numpy(obj, dtype);
        }
        return Err(PyTypeError::new_err(format!(
            "array: cannot make an array from an object of type {}",
            obj.get_type().name()?
        )));
    }
    let mut leaves = Vec::new();
    let shape = walk(obj, &mut leaves)?;
    let scalars: Option<Vec<Scalar>> = leaves
        .iter()
        .map(|l| match l {
            Leaf::Scalar(s) => Some(*s),
            Leaf::Array(_) => None,
        })
        .collect();
    if let Some(scalars) = scalars {
        let target = dtype.unwrap_or_else(|| scalars_dtype(&scalars));
        return dispatch_dtype!(target, T => {
            let v: Vec<T> = scalars.iter().map(|s| s.to::<T>()).collect();
            Array::from_slice(&v, &shape).or_raise()
        });
    }
    // Arrays (and scalars, which are weak next to them) stacked into one array.
    let arrays: Vec<Array> = leaves
        .into_iter()
        .map(|l| match l {
            Leaf::Scalar(s) => s.weak(),
            Leaf::Array(a) => a,
        })
        .collect();
    let target = dtype.unwrap_or_else(|| common_dtype(&arrays));
    let cast = arrays
        .iter()
        .map(|a| ops::astype(a, target))
        .collect::<umx::Result<Vec<_>>>()
        .or_raise()?;
    let stacked = ops::stack(&cast, 0).or_raise()?;
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    ops::reshape(&stacked, &dims).or_raise()
}

/// The dtype arrays promote to, weak scalars yielding (MLX's `result_type`).
pub fn common_dtype(arrays: &[Array]) -> Dtype {
    let mut acc: Option<(Dtype, bool)> = None;
    for a in arrays {
        let (d, w) = (a.dtype(), a.is_weak());
        acc = Some(match acc {
            None => (d, w),
            Some((p, pw)) => match (pw, w) {
                (false, true) => (promote_with_weak(p, d), false),
                (true, false) => (promote_with_weak(d, p), false),
                (pw, _) => (umx::promote_types(p, d), pw && w),
            },
        });
    }
    acc.map_or(Dtype::Float32, |(d, _)| d)
}

/// A Python value as an operand of an op: arrays as they are, Python scalars weak, lists and
/// NumPy arrays as `mx.array` makes them.
pub fn operand(obj: &Bound<'_, PyAny>) -> PyResult<Array> {
    if let Ok(a) = obj.cast::<PyArray>() {
        return Ok(a.borrow().inner.clone());
    }
    if let Some(s) = Scalar::of(obj)? {
        return Ok(s.weak());
    }
    to_array(obj, None)
}

/// Whether an operator (`a + x`) takes `x`: an array, a Python scalar or a NumPy value.
pub fn is_operand(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(obj.cast::<PyArray>().is_ok() || Scalar::of(obj)?.is_some() || is_numpy_like(obj)?)
}

/// An op argument that may be an array or anything [`operand`] takes.
pub struct Operand(pub Array);

impl<'a, 'py> FromPyObject<'a, 'py> for Operand {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        operand(&obj).map(Operand)
    }
}

/// The umx dtype of a NumPy dtype name (float64 and complex128 map to themselves here; the
/// MLX rule that narrows them is applied by the caller).
fn numpy_dtype(name: &str) -> Option<Dtype> {
    Some(match name {
        "complex128" => Dtype::Complex64,
        n => Dtype::from_name(n)?,
    })
}

/// A NumPy array (or anything `np.asarray` takes) as an array: a copy of its data.
pub fn from_numpy(obj: &Bound<'_, PyAny>, dtype: Option<Dtype>) -> PyResult<Array> {
    let py = obj.py();
    let np = py.import("numpy")?;
    let mut a = np.call_method1("asarray", (obj,))?;
    let name: String = a.getattr("dtype")?.getattr("name")?.extract()?;
    let Some(mut src) = numpy_dtype(&name) else {
        return Err(PyTypeError::new_err(format!(
            "array: NumPy arrays of dtype {name} have no umx dtype"
        )));
    };
    // MLX's rule: double precision from NumPy becomes single precision unless asked for.
    let narrowed = match (name.as_str(), dtype) {
        ("float64", None) => Some("float32"),
        ("complex128", _) => Some("complex64"),
        _ => None,
    };
    if let Some(n) = narrowed {
        a = a.call_method1("astype", (n,))?;
        src = numpy_dtype(n).expect("a known dtype");
    }
    let native = a.getattr("dtype")?.getattr("isnative")?.extract::<bool>()?;
    let contiguous = a
        .getattr("flags")?
        .getattr("c_contiguous")?
        .extract::<bool>()?;
    if !native || !contiguous {
        let d = a.getattr("dtype")?.call_method1("newbyteorder", ("=",))?;
        let kw = PyDict::new(py);
        kw.set_item("order", "C")?;
        a = a.call_method("astype", (d,), Some(&kw))?;
    }
    let shape: Vec<usize> = a.getattr("shape")?.extract()?;
    let nbytes: usize = a.getattr("nbytes")?.extract()?;
    let ptr: usize = a
        .getattr("__array_interface__")?
        .get_item("data")?
        .get_item(0)?
        .extract()?;
    let mut buf = Buffer::uninit(nbytes).or_raise()?;
    if nbytes > 0 {
        // SAFETY: `a` is a C-contiguous NumPy array of `nbytes` bytes at `ptr`, alive (held by
        // `a`) for the copy; reading bytes needs no alignment.
        let src_bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, nbytes) };
        buf.bytes_mut().copy_from_slice(src_bytes);
    }
    if src == Dtype::Bool {
        // Any nonzero byte is true; Rust's bool must be exactly 0 or 1.
        buf.bytes_mut()
            .iter_mut()
            .for_each(|b| *b = (*b != 0) as u8);
    }
    let arr = Array::from_data(ArrayData::contiguous(buf, &shape, src));
    match dtype {
        Some(d) if d != src => ops::astype(&arr, d).or_raise(),
        _ => Ok(arr),
    }
}

/// NumPy's type string of a dtype (`<f4`), or `None` for bfloat16, which NumPy lacks.
fn typestr(d: Dtype) -> Option<&'static str> {
    let little = cfg!(target_endian = "little");
    Some(match (d, little) {
        (Dtype::Bool, _) => "|b1",
        (Dtype::Uint8, _) => "|u1",
        (Dtype::Int8, _) => "|i1",
        (Dtype::Bfloat16, _) => return None,
        (Dtype::Uint16, true) => "<u2",
        (Dtype::Uint32, true) => "<u4",
        (Dtype::Uint64, true) => "<u8",
        (Dtype::Int16, true) => "<i2",
        (Dtype::Int32, true) => "<i4",
        (Dtype::Int64, true) => "<i8",
        (Dtype::Float16, true) => "<f2",
        (Dtype::Float32, true) => "<f4",
        (Dtype::Float64, true) => "<f8",
        (Dtype::Complex64, true) => "<c8",
        (Dtype::Uint16, false) => ">u2",
        (Dtype::Uint32, false) => ">u4",
        (Dtype::Uint64, false) => ">u8",
        (Dtype::Int16, false) => ">i2",
        (Dtype::Int32, false) => ">i4",
        (Dtype::Int64, false) => ">i8",
        (Dtype::Float16, false) => ">f2",
        (Dtype::Float32, false) => ">f4",
        (Dtype::Float64, false) => ">f8",
        (Dtype::Complex64, false) => ">c8",
    })
}

/// The evaluated data of an array exposed to NumPy through `__array_interface__`; NumPy's view
/// keeps this object, and so the buffer, alive.
#[pyclass(name = "_NumpyView", module = "umx.core", frozen)]
pub struct NumpyView {
    data: ArrayData,
}

#[pymethods]
impl NumpyView {
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = &self.data;
        let item = d.dtype.size() as isize;
        let ptr = d.buffer.as_ptr() as isize + d.offset * item;
        let out = PyDict::new(py);
        out.set_item("version", 3)?;
        out.set_item("shape", PyTuple::new(py, &d.shape)?)?;
        out.set_item("typestr", typestr(d.dtype).expect("checked by to_numpy"))?;
        out.set_item("data", (ptr as usize, true))?;
        let strides: Vec<isize> = d.strides.iter().map(|s| s * item).collect();
        out.set_item("strides", PyTuple::new(py, strides)?)?;
        Ok(out)
    }
}

/// The array as a read-only NumPy array sharing its memory (evaluating it first).
pub fn to_numpy<'py>(py: Python<'py>, a: &Array) -> PyResult<Bound<'py, PyAny>> {
    if typestr(a.dtype()).is_none() {
        return Err(PyValueError::new_err(format!(
            "NumPy has no {} dtype: cast the array first (a.astype(umx.core.float32))",
            a.dtype()
        )));
    }
    let a = a.clone();
    let data = py
        .detach(move || {
            let d = a.data()?;
            // A GPU array is copied to the host once here, where an error can be returned.
            d.buffer.host_bytes()?;
            Ok(d)
        })
        .or_raise()?;
    let view = Bound::new(py, NumpyView { data })?;
    py.import("numpy")?.call_method1("asarray", (view,))
}

/// The elements of an evaluated array as Python objects, in row-major order.
fn elements(py: Python<'_>, a: &Array) -> PyResult<Vec<Py<PyAny>>> {
    let d = a.dtype();
    let out = if d == Dtype::Bool {
        let v = a.to_vec::<bool>().or_raise()?;
        v.into_iter()
            .map(|x| Ok(PyBool::new(py, x).to_owned().into_any().unbind()))
            .collect::<PyResult<_>>()?
    } else if d.kind() == umx::dtype::Kind::Signed {
        let v = a.to_vec::<i64>().or_raise()?;
        v.into_iter()
            .map(|x| Ok(x.into_pyobject(py)?.into_any().unbind()))
            .collect::<PyResult<_>>()?
    } else if d.kind() == umx::dtype::Kind::Unsigned {
        let v = a.to_vec::<u64>().or_raise()?;
        v.into_iter()
            .map(|x| Ok(x.into_pyobject(py)?.into_any().unbind()))
            .collect::<PyResult<_>>()?
    } else if d.is_complex() {
        let v = a.to_vec::<Complex32>().or_raise()?;
        v.into_iter()
            .map(|z| {
                Ok(PyComplex::from_doubles(py, z.re as f64, z.im as f64)
                    .into_any()
                    .unbind())
            })
            .collect::<PyResult<_>>()?
    } else {
        let v = a.to_vec::<f64>().or_raise()?;
        v.into_iter()
            .map(|x| Ok(PyFloat::new(py, x).into_any().unbind()))
            .collect::<PyResult<_>>()?
    };
    Ok(out)
}

/// Evaluates `a` with the interpreter released, so other Python threads run meanwhile.
pub fn eval_detached(py: Python<'_>, a: &Array) -> PyResult<()> {
    let a = a.clone();
    py.detach(move || a.eval()).or_raise()
}

/// The single element as a Python scalar (`a.item()`).
pub fn item(py: Python<'_>, a: &Array) -> PyResult<Py<PyAny>> {
    if a.size() != 1 {
        return Err(PyValueError::new_err(format!(
            "item: only an array of one element has an item, not shape {}",
            umx::shape::fmt_shape(a.shape())
        )));
    }
    eval_detached(py, a)?;
    Ok(elements(py, a)?.remove(0))
}

/// The array as nested lists of Python scalars (`a.tolist()`; a scalar for 0-d arrays).
pub fn tolist(py: Python<'_>, a: &Array) -> PyResult<Py<PyAny>> {
    eval_detached(py, a)?;
    let vals = elements(py, a)?;
    if a.ndim() == 0 {
        return Ok(vals.into_iter().next().expect("one element"));
    }
    fn nest(py: Python<'_>, vals: &[Py<PyAny>], shape: &[usize]) -> PyResult<Py<PyAny>> {
        if shape.len() == 1 {
            return Ok(PyList::new(py, vals)?.into_any().unbind());
        }
        let inner: usize = shape[1..].iter().product();
        let items = (0..shape[0])
            .map(|i| nest(py, &vals[i * inner..(i + 1) * inner], &shape[1..]))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, items)?.into_any().unbind())
    }
    nest(py, &vals, a.shape())
}
