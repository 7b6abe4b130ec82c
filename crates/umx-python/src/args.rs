//! Argument types shared by the functions and methods: axes, shapes and integer lists, as MLX
//! takes them (an int or a sequence of ints).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use umx::Axes;

/// An int or a sequence of ints.
pub struct Ints(pub Vec<i64>);

impl<'a, 'py> FromPyObject<'a, 'py> for Ints {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Ints(vec![i]));
        }
        if obj.is_instance_of::<pyo3::types::PyString>() {
            return Err(PyTypeError::new_err(
                "expected an int or a sequence of ints, not str",
            ));
        }
        let mut v = Vec::new();
        for item in obj.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "expected an int or a sequence of ints, not {}",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })? {
            v.push(item?.extract::<i64>()?);
        }
        Ok(Ints(v))
    }
}

/// `axis=`: an int or a sequence of ints (`None` is handled by [`axes`]).
pub type AxesArg = Ints;

/// The core's axes for an `axis=` argument: `None` is all axes.
pub fn axes(a: Option<AxesArg>) -> Axes {
    a.map_or(Axes::All, |a| Axes::List(a.0))
}

/// A shape: an int or a sequence of non-negative ints.
pub struct ShapeArg(pub Vec<usize>);

impl<'a, 'py> FromPyObject<'a, 'py> for ShapeArg {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let Ints(v) = obj.extract()?;
        shape_of(&v).map(ShapeArg)
    }
}

/// Checks that a shape has no negative dimension.
pub fn shape_of(v: &[i64]) -> PyResult<Vec<usize>> {
    v.iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| PyValueError::new_err(format!("shape {v:?} has a negative dimension")))
        })
        .collect()
}
