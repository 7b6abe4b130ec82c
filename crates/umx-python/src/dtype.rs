//! Dtype objects (`mx.float32`, ...), dtype categories (`mx.floating`, ...), `issubdtype`,
//! `finfo` and `iinfo`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use umx::Dtype;
use umx::dtype::Kind;

/// An element type: `umx.core.float32`, ... (MLX's `Dtype`).
#[pyclass(name = "Dtype", module = "umx.core", frozen, eq, hash, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyDtype(pub Dtype);

#[pymethods]
impl PyDtype {
    /// Bytes per element.
    #[getter]
    fn size(&self) -> usize {
        self.0.size()
    }

    fn __repr__(&self) -> String {
        format!("umx.core.{}", self.0.name())
    }
}

/// The Python name of each dtype object in `umx.core` (bool is `bool_`, as in MLX).
pub fn python_name(d: Dtype) -> &'static str {
    match d {
        Dtype::Bool => "bool_",
        d => d.name(),
    }
}

/// A family of dtypes for `issubdtype`: `floating`, `integer`, ... (MLX's `DtypeCategory`).
#[pyclass(
    name = "DtypeCategory",
    module = "umx.core",
    frozen,
    eq,
    hash,
    from_py_object
)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    #[pyo3(name = "complexfloating")]
    ComplexFloating,
    #[pyo3(name = "floating")]
    Floating,
    #[pyo3(name = "inexact")]
    Inexact,
    #[pyo3(name = "signedinteger")]
    SignedInteger,
    #[pyo3(name = "unsignedinteger")]
    UnsignedInteger,
    #[pyo3(name = "integer")]
    Integer,
    #[pyo3(name = "number")]
    Number,
    #[pyo3(name = "generic")]
    Generic,
}

impl Category {
    pub const ALL: [(Category, &'static str); 8] = [
        (Category::ComplexFloating, "complexfloating"),
        (Category::Floating, "floating"),
        (Category::Inexact, "inexact"),
        (Category::SignedInteger, "signedinteger"),
        (Category::UnsignedInteger, "unsignedinteger"),
        (Category::Integer, "integer"),
        (Category::Number, "number"),
        (Category::Generic, "generic"),
    ];

    /// The category a dtype belongs to most narrowly.
    fn of(d: Dtype) -> Category {
        match d.kind() {
            Kind::Bool => Category::Generic,
            Kind::Unsigned => Category::UnsignedInteger,
            Kind::Signed => Category::SignedInteger,
            Kind::Float => Category::Floating,
            Kind::Complex => Category::ComplexFloating,
        }
    }

    /// The category just above this one.
    fn parent(self) -> Option<Category> {
        use Category::*;
        match self {
            ComplexFloating | Floating => Some(Inexact),
            SignedInteger | UnsignedInteger => Some(Integer),
            Inexact | Integer => Some(Number),
            Number => Some(Generic),
            Generic => None,
        }
    }

    fn within(mut self, outer: Category) -> bool {
        loop {
            if self == outer {
                return true;
            }
            match self.parent() {
                Some(p) => self = p,
                None => return false,
            }
        }
    }
}

/// A dtype or a dtype category, as `issubdtype` takes them.
#[derive(FromPyObject)]
pub enum DtypeOrCategory {
    Dtype(PyDtype),
    Category(Category),
}

/// Whether `arg1` is `arg2` or falls within it (MLX's `issubdtype`).
#[pyfunction]
pub fn issubdtype(arg1: DtypeOrCategory, arg2: DtypeOrCategory) -> bool {
    use DtypeOrCategory as D;
    match (arg1, arg2) {
        (D::Dtype(a), D::Dtype(b)) => a == b,
        (D::Dtype(a), D::Category(c)) => Category::of(a.0).within(c),
        (D::Category(_), D::Dtype(_)) => false,
        (D::Category(a), D::Category(c)) => a.within(c),
    }
}

/// Machine limits of a floating-point dtype (MLX's `finfo`).
#[pyclass(name = "finfo", module = "umx.core", frozen)]
pub struct Finfo {
    #[pyo3(get)]
    min: f64,
    #[pyo3(get)]
    max: f64,
    #[pyo3(get)]
    eps: f64,
    #[pyo3(get)]
    dtype: PyDtype,
}

#[pymethods]
impl Finfo {
    #[new]
    fn new(dtype: PyDtype) -> PyResult<Self> {
        let (max, eps) = match dtype.0 {
            Dtype::Float16 => (umx::f16::MAX.to_f64(), umx::f16::EPSILON.to_f64()),
            Dtype::Bfloat16 => (umx::bf16::MAX.to_f64(), umx::bf16::EPSILON.to_f64()),
            Dtype::Float32 | Dtype::Complex64 => (f32::MAX as f64, f32::EPSILON as f64),
            Dtype::Float64 => (f64::MAX, f64::EPSILON),
            d => {
                return Err(PyValueError::new_err(format!(
                    "finfo: {d} is not a floating-point dtype"
                )));
            }
        };
        let dtype = match dtype.0 {
            Dtype::Complex64 => PyDtype(Dtype::Float32),
            _ => dtype,
        };
        Ok(Finfo {
            min: -max,
            max,
            eps,
            dtype,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "finfo(min={:e}, max={:e}, dtype={})",
            self.min,
            self.max,
            self.dtype.0.name()
        )
    }
}

/// Limits of an integer dtype (MLX's `iinfo`).
#[pyclass(name = "iinfo", module = "umx.core", frozen)]
pub struct Iinfo {
    #[pyo3(get)]
    min: i128,
    #[pyo3(get)]
    max: i128,
    #[pyo3(get)]
    dtype: PyDtype,
}

#[pymethods]
impl Iinfo {
    #[new]
    fn new(dtype: PyDtype) -> PyResult<Self> {
        let d = dtype.0;
        if !d.is_integer() {
            return Err(PyValueError::new_err(format!(
                "iinfo: {d} is not an integer dtype"
            )));
        }
        let bits = 8 * d.size() as u32;
        let (min, max) = if d.kind() == Kind::Signed {
            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
        } else {
            (0, (1i128 << bits) - 1)
        };
        Ok(Iinfo { min, max, dtype })
    }

    fn __repr__(&self) -> String {
        format!(
            "iinfo(min={}, max={}, dtype={})",
            self.min,
            self.max,
            self.dtype.0.name()
        )
    }
}
