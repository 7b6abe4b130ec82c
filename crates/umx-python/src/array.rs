//! The `array` class: construction, properties, conversions (`item`, `tolist`, NumPy),
//! printing, operators, indexing and the op methods MLX arrays have.

use crate::args::{AxesArg, Ints};
use crate::convert::{self, Operand, is_operand, operand};
use crate::device::{StreamArg, on};
use crate::dtype::PyDtype;
use crate::error::OrRaise;
use crate::indexing::{self, ArrayAt};
use crate::ops as f;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyNotImplemented, PyTuple};
use umx::{Array, ops};

/// An n-dimensional array: lazy until evaluated (MLX's `mlx.core.array`).
#[pyclass(name = "array", module = "umx.core")]
pub struct PyArray {
    pub inner: Array,
}

impl From<Array> for PyArray {
    /// Wraps an array. A weak scalar (a Python scalar on its way into an op) never escapes
    /// as an `array`: it becomes an ordinary one of its dtype.
    fn from(a: Array) -> PyArray {
        let inner = if a.is_weak() {
            ops::astype(&a, a.dtype()).unwrap_or_else(Array::from_error)
        } else {
            a
        };
        PyArray { inner }
    }
}

type Out = PyResult<PyArray>;

fn op_name(name: &str) -> &str {
    match name {
        "add" => "addition",
        "subtract" => "subtraction",
        "multiply" => "multiplication",
        "divide" => "division",
        n => n,
    }
}

impl PyArray {
    fn a(&self) -> Operand {
        Operand(self.inner.clone())
    }

    /// `self OP other` (or `other OP self` when `reflected`); a value no op takes raises
    /// ValueError, as in MLX.
    fn binary(
        &self,
        other: &Bound<'_, PyAny>,
        name: &str,
        reflected: bool,
        op: impl FnOnce(Array, Array) -> umx::Result<Array>,
    ) -> Out {
        if !is_operand(other)? {
            return Err(PyValueError::new_err(format!(
                "Cannot perform {} on an umx.core.array and {}",
                op_name(name),
                other.get_type().name()?
            )));
        }
        let b = operand(other)?;
        let a = self.inner.clone();
        let r = if reflected {
            on(None, || op(b, a))
        } else {
            on(None, || op(a, b))
        };
        r.map(PyArray::from)
    }

    /// A comparison: NotImplemented (so Python falls back) for values no op takes.
    fn compare<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
        op: impl FnOnce(Array, Array) -> umx::Result<Array>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !is_operand(other)? {
            return Ok(PyNotImplemented::get(py).to_owned().into_any());
        }
        let b = operand(other)?;
        let a = self.inner.clone();
        let r = on(None, || op(a, b))?;
        Ok(Bound::new(py, PyArray::from(r))?.into_any())
    }

    fn scalar_value(&self, py: Python<'_>, what: &str) -> PyResult<Py<PyAny>> {
        if self.inner.size() != 1 {
            return Err(PyValueError::new_err(format!(
                "{what}: only an array of one element converts to a Python scalar, not shape {}",
                umx::shape::fmt_shape(self.inner.shape())
            )));
        }
        convert::item(py, &self.inner)
    }
}

/// Shape arguments given as `reshape(2, 3)` or `reshape((2, 3))`.
fn varargs_ints(args: &Bound<'_, PyTuple>) -> PyResult<Vec<i64>> {
    if args.len() == 1 {
        return Ok(args.get_item(0)?.extract::<Ints>()?.0);
    }
    args.iter().map(|x| x.extract::<i64>()).collect()
}

fn matmul_of(a: Array, b: Array) -> umx::Result<Array> {
    ops::matmul(&a, &b)
}

#[pymethods]
impl PyArray {
    /// `array(val, dtype=None)`: an array from a Python scalar, a nested list or tuple, a
    /// NumPy array, or an array.
    #[new]
    #[pyo3(signature = (val, dtype=None))]
    fn new(val: &Bound<'_, PyAny>, dtype: Option<PyDtype>) -> Out {
        convert::to_array(val, dtype.map(|d| d.0)).map(PyArray::from)
    }

    // ---- properties ----------------------------------------------------------------------

    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.shape())
    }
    #[getter]
    fn dtype(&self) -> PyDtype {
        PyDtype(self.inner.dtype())
    }
    #[getter]
    fn ndim(&self) -> usize {
        self.inner.ndim()
    }
    #[getter]
    fn size(&self) -> usize {
        self.inner.size()
    }
    #[getter]
    fn itemsize(&self) -> usize {
        self.inner.dtype().size()
    }
    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.nbytes()
    }
    /// The transpose (all axes reversed).
    #[getter(T)]
    fn t(&self) -> Out {
        f::transpose(self.a(), None, None)
    }
    /// The last two axes swapped.
    #[getter(mT)]
    fn mt(&self) -> Out {
        f::swapaxes(self.a(), -1, -2, None)
    }
    #[getter]
    fn real(&self) -> Out {
        f::real(self.a(), None)
    }
    #[getter]
    fn imag(&self) -> Out {
        f::imag(self.a(), None)
    }
    /// `a.at[idx].add(v)` and friends: updates that return a new array.
    #[getter]
    fn at(&self) -> ArrayAt {
        ArrayAt {
            array: self.inner.clone(),
            indices: None,
        }
    }

    // ---- conversions -----------------------------------------------------------------------

    /// The single element as a Python scalar.
    fn item(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        convert::item(py, &self.inner)
    }
    /// The elements as nested lists of Python scalars.
    fn tolist(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        convert::tolist(py, &self.inner)
    }
    /// `a` cast to `dtype`.
    #[pyo3(signature = (dtype, stream=None))]
    fn astype(&self, dtype: PyDtype, stream: Option<StreamArg>) -> Out {
        f::astype(self.a(), dtype, stream)
    }
    /// The array for NumPy (`np.array(a)`, `np.asarray(a)`): a read-only view of the evaluated
    /// data, or a copy with `copy=True` or a `dtype`.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut a = convert::to_numpy(py, &self.inner)?;
        if let Some(d) = dtype {
            a = a.call_method1("astype", (d,))?;
        } else if copy == Some(true) {
            a = a.call_method0("copy")?;
        }
        Ok(a)
    }
    fn __repr__(&self, py: Python<'_>) -> String {
        let a = self.inner.clone();
        py.detach(move || a.to_string())
    }
    fn __len__(&self) -> PyResult<usize> {
        match self.inner.shape().first() {
            Some(&n) => Ok(n),
            None => Err(PyTypeError::new_err("len() of a 0-dimensional array")),
        }
    }
    fn __iter__(slf: PyRef<'_, Self>) -> PyResult<ArrayIterator> {
        if slf.inner.ndim() == 0 {
            return Err(PyTypeError::new_err("iteration over a 0-dimensional array"));
        }
        Ok(ArrayIterator {
            array: slf.inner.clone(),
            next: 0,
        })
    }
    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        self.scalar_value(py, "bool")?.bind(py).is_truthy()
    }
    fn __int__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let v = self.scalar_value(py, "int")?;
        Ok(py.import("builtins")?.getattr("int")?.call1((v,))?.unbind())
    }
    fn __float__(&self, py: Python<'_>) -> PyResult<f64> {
        self.scalar_value(py, "float")?.extract(py)
    }
    fn __index__(&self, py: Python<'_>) -> PyResult<i64> {
        let d = self.inner.dtype();
        if !d.is_integer() {
            return Err(PyTypeError::new_err(format!(
                "only integer arrays of one element can be an index, not {d}"
            )));
        }
        self.scalar_value(py, "index")?.extract(py)
    }
    fn __hash__(slf: PyRef<'_, Self>) -> isize {
        slf.as_ptr() as isize
    }
    fn __copy__(&self) -> PyArray {
        PyArray {
            inner: self.inner.clone(),
        }
    }
    #[pyo3(signature = (_memo=None))]
    fn __deepcopy__(&self, _memo: Option<&Bound<'_, PyAny>>) -> PyArray {
        self.__copy__()
    }

    // ---- indexing --------------------------------------------------------------------------

    fn __getitem__(&self, key: &Bound<'_, PyAny>) -> Out {
        indexing::get(&self.inner, key).map(PyArray::from)
    }
    fn __setitem__(&mut self, key: &Bound<'_, PyAny>, value: Operand) -> PyResult<()> {
        self.inner = indexing::set(&self.inner, key, value.0)?;
        Ok(())
    }

    // ---- operators -------------------------------------------------------------------------

    fn __add__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "add", false, ops::add)
    }
    fn __radd__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "add", true, ops::add)
    }
    fn __iadd__(&mut self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner = self.binary(other, "add", false, ops::add)?.inner;
        Ok(())
    }
    fn __sub__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "subtract", false, ops::subtract)
    }
    fn __rsub__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "subtract", true, ops::subtract)
    }
    fn __isub__(&mut self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner = self.binary(other, "subtract", false, ops::subtract)?.inner;
        Ok(())
    }
    fn __mul__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "multiply", false, ops::multiply)
    }
    fn __rmul__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "multiply", true, ops::multiply)
    }
    fn __imul__(&mut self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner = self.binary(other, "multiply", false, ops::multiply)?.inner;
        Ok(())
    }
    fn __truediv__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "divide", false, ops::divide)
    }
    fn __rtruediv__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "divide", true, ops::divide)
    }
    fn __itruediv__(&mut self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner = self.binary(other, "divide", false, ops::divide)?.inner;
        Ok(())
    }
    fn __floordiv__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "floor_divide", false, ops::floor_divide)
    }
    fn __rfloordiv__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "floor_divide", true, ops::floor_divide)
    }
    fn __ifloordiv__(&mut self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner = self
            .binary(other, "floor_divide", false, ops::floor_divide)?
            .inner;
        Ok(())
    }
    fn __mod__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "remainder", false, ops::remainder)
    }
    fn __rmod__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "remainder", true, ops::remainder)
    }
    fn __imod__(&mut self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner = self
            .binary(other, "remainder", false, ops::remainder)?
            .inner;
        Ok(())
    }
    fn __matmul__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "matmul", false, matmul_of)
    }
    fn __rmatmul__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "matmul", true, matmul_of)
    }
    fn __imatmul__(&mut self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner = self.binary(other, "matmul", false, matmul_of)?.inner;
        Ok(())
    }
    fn __and__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "bitwise_and", false, ops::bitwise_and)
    }
    fn __rand__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "bitwise_and", true, ops::bitwise_and)
    }
    fn __iand__(&mut self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner = self
            .binary(other, "bitwise_and", false, ops::bitwise_and)?
            .inner;
        Ok(())
    }
    fn __or__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "bitwise_or", false, ops::bitwise_or)
    }
    fn __ror__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "bitwise_or", true, ops::bitwise_or)
    }
    fn __ior__(&mut self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner = self
            .binary(other, "bitwise_or", false, ops::bitwise_or)?
            .inner;
        Ok(())
    }
    fn __xor__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "bitwise_xor", false, ops::bitwise_xor)
    }
    fn __rxor__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "bitwise_xor", true, ops::bitwise_xor)
    }
    fn __ixor__(&mut self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner = self
            .binary(other, "bitwise_xor", false, ops::bitwise_xor)?
            .inner;
        Ok(())
    }
    fn __lshift__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "left_shift", false, ops::left_shift)
    }
    fn __rlshift__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "left_shift", true, ops::left_shift)
    }
    fn __ilshift__(&mut self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner = self
            .binary(other, "left_shift", false, ops::left_shift)?
            .inner;
        Ok(())
    }
    fn __rshift__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "right_shift", false, ops::right_shift)
    }
    fn __rrshift__(&self, other: &Bound<'_, PyAny>) -> Out {
        self.binary(other, "right_shift", true, ops::right_shift)
    }
    fn __irshift__(&mut self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner = self
            .binary(other, "right_shift", false, ops::right_shift)?
            .inner;
        Ok(())
    }

    fn __pow__(&self, other: &Bound<'_, PyAny>, _modulo: Option<&Bound<'_, PyAny>>) -> Out {
        self.binary(other, "power", false, ops::power)
    }
    fn __rpow__(&self, other: &Bound<'_, PyAny>, _modulo: Option<&Bound<'_, PyAny>>) -> Out {
        self.binary(other, "power", true, ops::power)
    }
    fn __ipow__(
        &mut self,
        other: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.inner = self.binary(other, "power", false, ops::power)?.inner;
        Ok(())
    }
    fn __divmod__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        f::divmod(py, self.a(), Operand(operand(other)?), None)
    }
    fn __neg__(&self) -> Out {
        f::negative(self.a(), None)
    }
    fn __pos__(&self) -> PyArray {
        self.__copy__()
    }
    fn __abs__(&self) -> Out {
        f::abs(self.a(), None)
    }
    fn __invert__(&self) -> Out {
        let a = self.inner.clone();
        on(None, || Ok(!&a)).and_then(|r| r.check().or_raise().map(|_| PyArray::from(r)))
    }
    fn __eq__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.compare(py, other, ops::equal)
    }
    fn __ne__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.compare(py, other, ops::not_equal)
    }
    fn __lt__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.compare(py, other, ops::less)
    }
    fn __le__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.compare(py, other, ops::less_equal)
    }
    fn __gt__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.compare(py, other, ops::greater)
    }
    fn __ge__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.compare(py, other, ops::greater_equal)
    }

    // ---- op methods ----------------------------------------------------------------------

    #[pyo3(signature = (*, stream=None))]
    fn abs(&self, stream: Option<StreamArg>) -> Out {
        f::abs(self.a(), stream)
    }
    #[pyo3(signature = (*, stream=None))]
    fn exp(&self, stream: Option<StreamArg>) -> Out {
        f::exp(self.a(), stream)
    }
    #[pyo3(signature = (*, stream=None))]
    fn log(&self, stream: Option<StreamArg>) -> Out {
        f::log(self.a(), stream)
    }
    #[pyo3(signature = (*, stream=None))]
    fn log1p(&self, stream: Option<StreamArg>) -> Out {
        f::log1p(self.a(), stream)
    }
    #[pyo3(signature = (*, stream=None))]
    fn log2(&self, stream: Option<StreamArg>) -> Out {
        f::log2(self.a(), stream)
    }
    #[pyo3(signature = (*, stream=None))]
    fn log10(&self, stream: Option<StreamArg>) -> Out {
        f::log10(self.a(), stream)
    }
    #[pyo3(signature = (*, stream=None))]
    fn sin(&self, stream: Option<StreamArg>) -> Out {
        f::sin(self.a(), stream)
    }
    #[pyo3(signature = (*, stream=None))]
    fn cos(&self, stream: Option<StreamArg>) -> Out {
        f::cos(self.a(), stream)
    }
    #[pyo3(signature = (*, stream=None))]
    fn sqrt(&self, stream: Option<StreamArg>) -> Out {
        f::sqrt(self.a(), stream)
    }
    #[pyo3(signature = (*, stream=None))]
    fn rsqrt(&self, stream: Option<StreamArg>) -> Out {
        f::rsqrt(self.a(), stream)
    }
    #[pyo3(signature = (*, stream=None))]
    fn square(&self, stream: Option<StreamArg>) -> Out {
        f::square(self.a(), stream)
    }
    #[pyo3(signature = (*, stream=None))]
    fn reciprocal(&self, stream: Option<StreamArg>) -> Out {
        f::reciprocal(self.a(), stream)
    }
    #[pyo3(signature = (*, stream=None))]
    fn conj(&self, stream: Option<StreamArg>) -> Out {
        f::conj(self.a(), stream)
    }
    #[pyo3(signature = (decimals=0, *, stream=None))]
    fn round(&self, decimals: i32, stream: Option<StreamArg>) -> Out {
        f::round(self.a(), decimals, stream)
    }

    #[pyo3(signature = (axis=None, keepdims=false, *, stream=None))]
    fn sum(&self, axis: Option<AxesArg>, keepdims: bool, stream: Option<StreamArg>) -> Out {
        f::sum(self.a(), axis, keepdims, stream)
    }
    #[pyo3(signature = (axis=None, keepdims=false, *, stream=None))]
    fn prod(&self, axis: Option<AxesArg>, keepdims: bool, stream: Option<StreamArg>) -> Out {
        f::prod(self.a(), axis, keepdims, stream)
    }
    #[pyo3(signature = (axis=None, keepdims=false, *, stream=None))]
    fn max(&self, axis: Option<AxesArg>, keepdims: bool, stream: Option<StreamArg>) -> Out {
        f::max(self.a(), axis, keepdims, stream)
    }
    #[pyo3(signature = (axis=None, keepdims=false, *, stream=None))]
    fn min(&self, axis: Option<AxesArg>, keepdims: bool, stream: Option<StreamArg>) -> Out {
        f::min(self.a(), axis, keepdims, stream)
    }
    #[pyo3(signature = (axis=None, keepdims=false, *, stream=None))]
    fn mean(&self, axis: Option<AxesArg>, keepdims: bool, stream: Option<StreamArg>) -> Out {
        f::mean(self.a(), axis, keepdims, stream)
    }
    #[pyo3(signature = (axis=None, keepdims=false, *, stream=None))]
    fn all(&self, axis: Option<AxesArg>, keepdims: bool, stream: Option<StreamArg>) -> Out {
        f::all(self.a(), axis, keepdims, stream)
    }
    #[pyo3(signature = (axis=None, keepdims=false, *, stream=None))]
    fn any(&self, axis: Option<AxesArg>, keepdims: bool, stream: Option<StreamArg>) -> Out {
        f::any(self.a(), axis, keepdims, stream)
    }
    #[pyo3(signature = (axis=None, keepdims=false, *, stream=None))]
    fn logsumexp(&self, axis: Option<AxesArg>, keepdims: bool, stream: Option<StreamArg>) -> Out {
        f::logsumexp(self.a(), axis, keepdims, stream)
    }
    #[pyo3(signature = (axis=None, keepdims=false, ddof=0, *, stream=None))]
    fn var(
        &self,
        axis: Option<AxesArg>,
        keepdims: bool,
        ddof: i64,
        stream: Option<StreamArg>,
    ) -> Out {
        f::var(self.a(), axis, keepdims, ddof, stream)
    }
    #[pyo3(signature = (axis=None, keepdims=false, ddof=0, *, stream=None))]
    fn std(
        &self,
        axis: Option<AxesArg>,
        keepdims: bool,
        ddof: i64,
        stream: Option<StreamArg>,
    ) -> Out {
        f::std(self.a(), axis, keepdims, ddof, stream)
    }
    #[pyo3(signature = (axis=None, keepdims=false, *, stream=None))]
    fn argmax(&self, axis: Option<i64>, keepdims: bool, stream: Option<StreamArg>) -> Out {
        f::argmax(self.a(), axis, keepdims, stream)
    }
    #[pyo3(signature = (axis=None, keepdims=false, *, stream=None))]
    fn argmin(&self, axis: Option<i64>, keepdims: bool, stream: Option<StreamArg>) -> Out {
        f::argmin(self.a(), axis, keepdims, stream)
    }
    #[pyo3(signature = (axis=None, *, reverse=false, inclusive=true, stream=None))]
    fn cumsum(
        &self,
        axis: Option<i64>,
        reverse: bool,
        inclusive: bool,
        stream: Option<StreamArg>,
    ) -> Out {
        f::cumsum(self.a(), axis, reverse, inclusive, None, stream)
    }
    #[pyo3(signature = (axis=None, *, reverse=false, inclusive=true, stream=None))]
    fn cumprod(
        &self,
        axis: Option<i64>,
        reverse: bool,
        inclusive: bool,
        stream: Option<StreamArg>,
    ) -> Out {
        f::cumprod(self.a(), axis, reverse, inclusive, None, stream)
    }
    #[pyo3(signature = (axis=None, *, reverse=false, inclusive=true, stream=None))]
    fn cummax(
        &self,
        axis: Option<i64>,
        reverse: bool,
        inclusive: bool,
        stream: Option<StreamArg>,
    ) -> Out {
        f::cummax(self.a(), axis, reverse, inclusive, None, stream)
    }
    #[pyo3(signature = (axis=None, *, reverse=false, inclusive=true, stream=None))]
    fn cummin(
        &self,
        axis: Option<i64>,
        reverse: bool,
        inclusive: bool,
        stream: Option<StreamArg>,
    ) -> Out {
        f::cummin(self.a(), axis, reverse, inclusive, None, stream)
    }
    #[pyo3(signature = (axis=None, *, reverse=false, inclusive=true, stream=None))]
    fn logcumsumexp(
        &self,
        axis: Option<i64>,
        reverse: bool,
        inclusive: bool,
        stream: Option<StreamArg>,
    ) -> Out {
        f::logcumsumexp(self.a(), axis, reverse, inclusive, None, stream)
    }

    /// `a.reshape(2, 3)` or `a.reshape((2, 3))`.
    #[pyo3(signature = (*shape, stream=None))]
    fn reshape(&self, shape: &Bound<'_, PyTuple>, stream: Option<StreamArg>) -> Out {
        f::reshape(self.a(), Ints(varargs_ints(shape)?), stream)
    }
    /// `a.transpose(1, 0)`, `a.transpose((1, 0))` or `a.transpose()` (all axes reversed).
    #[pyo3(signature = (*axes, stream=None))]
    fn transpose(&self, axes: &Bound<'_, PyTuple>, stream: Option<StreamArg>) -> Out {
        let ax = if axes.is_empty() {
            None
        } else {
            Some(Ints(varargs_ints(axes)?))
        };
        f::transpose(self.a(), ax, stream)
    }
    #[pyo3(signature = (start_axis=0, end_axis=-1, *, stream=None))]
    fn flatten(&self, start_axis: i64, end_axis: i64, stream: Option<StreamArg>) -> Out {
        f::flatten(self.a(), start_axis, end_axis, stream)
    }
    #[pyo3(signature = (axis=None, *, stream=None))]
    fn squeeze(&self, axis: Option<AxesArg>, stream: Option<StreamArg>) -> Out {
        f::squeeze(self.a(), axis, stream)
    }
    #[pyo3(signature = (axis1, axis2, *, stream=None))]
    fn swapaxes(&self, axis1: i64, axis2: i64, stream: Option<StreamArg>) -> Out {
        f::swapaxes(self.a(), axis1, axis2, stream)
    }
    #[pyo3(signature = (source, destination, *, stream=None))]
    fn moveaxis(&self, source: i64, destination: i64, stream: Option<StreamArg>) -> Out {
        f::moveaxis(self.a(), source, destination, stream)
    }
    #[pyo3(signature = (indices_or_sections, axis=0, *, stream=None))]
    fn split<'py>(
        &self,
        py: Python<'py>,
        indices_or_sections: &Bound<'py, PyAny>,
        axis: i64,
        stream: Option<StreamArg>,
    ) -> PyResult<Bound<'py, PyList>> {
        f::split(py, self.a(), indices_or_sections, axis, stream)
    }
    #[pyo3(signature = (k=0, *, stream=None))]
    fn diag(&self, k: i64, stream: Option<StreamArg>) -> Out {
        f::diag(self.a(), k, stream)
    }
    #[pyo3(signature = (offset=0, axis1=0, axis2=1, stream=None))]
    fn diagonal(&self, offset: i64, axis1: i64, axis2: i64, stream: Option<StreamArg>) -> Out {
        f::diagonal(self.a(), offset, axis1, axis2, stream)
    }
    #[pyo3(signature = (dtype, *, stream=None))]
    fn view(&self, dtype: PyDtype, stream: Option<StreamArg>) -> Out {
        f::view(self.a(), dtype, stream)
    }
    #[pyo3(signature = (a_min, a_max, *, stream=None))]
    fn clip(
        &self,
        a_min: Option<Operand>,
        a_max: Option<Operand>,
        stream: Option<StreamArg>,
    ) -> Out {
        f::clip(self.a(), a_min, a_max, stream)
    }
}

/// Iterates an array along its first axis (`for row in a`).
#[pyclass(name = "ArrayIterator", module = "umx.core")]
pub struct ArrayIterator {
    array: Array,
    next: usize,
}

#[pymethods]
impl ArrayIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    fn __next__(&mut self) -> PyResult<Option<PyArray>> {
        if self.next >= self.array.shape()[0] {
            return Ok(None);
        }
        let i = self.next as i64;
        self.next += 1;
        let a = self.array.clone();
        on(None, || a.get(&[i])).map(|r| Some(PyArray::from(r)))
    }
}
