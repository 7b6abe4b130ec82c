//! `a[key]` and `a[key] = v`: Python index keys (ints, slices, `...`, `None`, integer arrays,
//! lists, boolean masks) turned into the core's [`Index`] list.
//!
//! Reading with a boolean mask is refused, as in MLX (its result's shape depends on the data);
//! writing through one (`a[mask] = v`) is supported, as `where(mask, v, a)`.

use crate::array::PyArray;
use crate::convert::{from_numpy, to_array};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyEllipsis, PyInt, PyList, PySlice, PyTuple};
use umx::ops::{self, Index};
use umx::{Array, Dtype};

/// One entry of a key: an index, or a boolean mask.
enum Entry {
    Index(Index),
    Mask(Array),
}

fn array_entry(a: Array) -> Entry {
    if a.dtype() == Dtype::Bool {
        Entry::Mask(a)
    } else {
        Entry::Index(Index::Array(a))
    }
}

fn opt_i64(obj: Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    if obj.is_none() {
        Ok(None)
    } else {
        obj.extract().map(Some)
    }
}

fn entry(obj: &Bound<'_, PyAny>) -> PyResult<Entry> {
    let py = obj.py();
    if let Ok(a) = obj.cast::<PyArray>() {
        return Ok(array_entry(a.borrow().inner.clone()));
    }
    if obj.is_none() {
        return Ok(Entry::Index(Index::NewAxis));
    }
    if obj.is(PyEllipsis::get(py)) {
        return Ok(Entry::Index(Index::Ellipsis));
    }
    if let Ok(s) = obj.cast::<PySlice>() {
        return Ok(Entry::Index(Index::slice(
            opt_i64(s.getattr("start")?)?,
            opt_i64(s.getattr("stop")?)?,
            opt_i64(s.getattr("step")?)?,
        )));
    }
    if obj.is_instance_of::<PyBool>() {
        return Err(PyValueError::new_err(
            "index: a Python bool is not an index (use a boolean array)",
        ));
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(Entry::Index(Index::Int(obj.extract()?)));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        return Ok(array_entry(to_array(obj, None)?));
    }
    // NumPy integer scalars (and other objects with `__index__`) are integers.
    if let Ok(i) = obj.call_method0("__index__")
        && let Ok(i) = i.extract::<i64>()
    {
        return Ok(Entry::Index(Index::Int(i)));
    }
    if obj.hasattr("__array_interface__")? || obj.hasattr("__array__")? {
        return Ok(array_entry(from_numpy(obj, None)?));
    }
    Err(PyTypeError::new_err(format!(
        "index: cannot index an array with an object of type {}",
        obj.get_type().name()?
    )))
}

fn entries(key: &Bound<'_, PyAny>) -> PyResult<Vec<Entry>> {
    if let Ok(t) = key.cast::<PyTuple>() {
        t.iter().map(|k| entry(&k)).collect()
    } else {
        Ok(vec![entry(key)?])
    }
}

fn indices_only(entries: Vec<Entry>) -> PyResult<Vec<Index>> {
    entries
        .into_iter()
        .map(|e| match e {
            Entry::Index(i) => Ok(i),
            Entry::Mask(_) => Err(PyValueError::new_err(
                "index: boolean indices are not supported for reading (as in MLX); use \
                 where(mask, a, 0) or integer indices",
            )),
        })
        .collect()
}

/// The core index list of a key.
pub fn parse(key: &Bound<'_, PyAny>) -> PyResult<Vec<Index>> {
    indices_only(entries(key)?)
}

/// `a[key]`.
pub fn get(a: &Array, key: &Bound<'_, PyAny>) -> PyResult<Array> {
    let idx = parse(key)?;
    crate::device::on(None, || ops::index(a, &idx))
}

/// `a[key] = v`: the updated array.
pub fn set(a: &Array, key: &Bound<'_, PyAny>, v: Array) -> PyResult<Array> {
    let mut es = entries(key)?;
    if es.len() == 1
        && let Entry::Mask(_) = es[0]
    {
        let Some(Entry::Mask(mask)) = es.pop() else {
            unreachable!("checked above")
        };
        return crate::device::on(None, || masked_set(a, &mask, &v));
    }
    let idx = indices_only(es)?;
    crate::device::on(None, || a.at(&idx).set(v))
}

/// `a[mask] = v` for a boolean mask over the leading axes of `a`, with `v` broadcasting to
/// `a`'s shape: `where(mask, v, a)`.
fn masked_set(a: &Array, mask: &Array, v: &Array) -> umx::Result<Array> {
    let (ms, s) = (mask.shape(), a.shape());
    if ms.len() > s.len() || ms != &s[..ms.len()] {
        return Err(umx::Error::Invalid(format!(
            "index: boolean mask of shape {} does not match the leading axes of an array of \
             shape {}",
            umx::shape::fmt_shape(ms),
            umx::shape::fmt_shape(s)
        )));
    }
    let mut dims: Vec<i64> = ms.iter().map(|&d| d as i64).collect();
    dims.extend(std::iter::repeat_n(1, s.len() - ms.len()));
    let m = ops::reshape(mask, &dims)?;
    let v = ops::astype(v, a.dtype())?;
    ops::broadcast_to(&v, s).map_err(|_| {
        umx::Error::Invalid(format!(
            "index: values of shape {} do not broadcast to the masked array of shape {} (only \
             values that broadcast to the whole array are supported)",
            umx::shape::fmt_shape(v.shape()),
            umx::shape::fmt_shape(s)
        ))
    })?;
    ops::where_(&m, &v, a)
}

/// The pending update of `a.at[key]`: `add`, `subtract`, `multiply`, `divide`, `maximum`,
/// `minimum` (MLX's `ArrayAt`), each returning the updated copy.
#[pyclass(name = "ArrayAt", module = "umx.core")]
pub struct ArrayAt {
    pub array: Array,
    pub indices: Option<Vec<Index>>,
}

impl ArrayAt {
    fn apply(
        &self,
        v: crate::convert::Operand,
        f: impl FnOnce(&umx::ops::At, Array) -> umx::Result<Array>,
    ) -> PyResult<PyArray> {
        let Some(idx) = &self.indices else {
            return Err(PyValueError::new_err(
                "at: index the array first, as in a.at[idx].add(v)",
            ));
        };
        let at = self.array.at(idx);
        crate::device::on(None, || f(&at, v.0)).map(PyArray::from)
    }
}

#[pymethods]
impl ArrayAt {
    fn __getitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<ArrayAt> {
        Ok(ArrayAt {
            array: self.array.clone(),
            indices: Some(parse(key)?),
        })
    }
    fn add(&self, value: crate::convert::Operand) -> PyResult<PyArray> {
        self.apply(value, |at, v| at.add(v))
    }
    fn subtract(&self, value: crate::convert::Operand) -> PyResult<PyArray> {
        self.apply(value, |at, v| at.subtract(v))
    }
    fn multiply(&self, value: crate::convert::Operand) -> PyResult<PyArray> {
        self.apply(value, |at, v| at.multiply(v))
    }
    fn divide(&self, value: crate::convert::Operand) -> PyResult<PyArray> {
        self.apply(value, |at, v| at.divide(v))
    }
    fn maximum(&self, value: crate::convert::Operand) -> PyResult<PyArray> {
        self.apply(value, |at, v| at.maximum(v))
    }
    fn minimum(&self, value: crate::convert::Operand) -> PyResult<PyArray> {
        self.apply(value, |at, v| at.minimum(v))
    }
    fn set(&self, value: crate::convert::Operand) -> PyResult<PyArray> {
        self.apply(value, |at, v| at.set(v))
    }
}
