//! `umx.core.random`: keys and samplers with MLX's names, arguments and defaults. Samplers
//! given no `key` draw the next key of the global sequence (`seed` restarts it).
//!
//! `random.state` is MLX's: a list holding the global key as an array. Samplers read it
//! before a draw and write the advanced key back, so `mx.compile(f, inputs=[mx.random.state],
//! outputs=[mx.random.state])` threads the key through a compiled function (new numbers every
//! call). While the list holds the key the last draw put there, the core keeps splitting it on
//! the host (no kernel per key).

use crate::args::ShapeArg;
use crate::array::PyArray;
use crate::convert::Operand;
use crate::device::{StreamArg, on};
use crate::dtype::PyDtype;
use crate::error::OrRaise;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyList;
use std::sync::Mutex;
use umx::{Array, random};

type Out = PyResult<PyArray>;

/// The `random.state` list, and the array object the last draw wrote into it.
static STATE: PyOnceLock<Py<PyList>> = PyOnceLock::new();
static LAST: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

fn state_list(py: Python<'_>) -> PyResult<&Bound<'_, PyList>> {
    let list = STATE.get_or_try_init(py, || -> PyResult<Py<PyList>> {
        let first = Py::new(py, PyArray::from(random::state().or_raise()?))?;
        Ok(PyList::new(py, [first])?.unbind())
    })?;
    Ok(list.bind(py))
}

/// Writes the core's global key into `random.state`.
fn publish(py: Python<'_>) -> PyResult<()> {
    let now = Py::new(py, PyArray::from(random::state().or_raise()?))?.into_any();
    state_list(py)?.set_item(0, &now)?;
    *LAST.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
    Ok(())
}

/// `f` with the sampler's key: the given one, or (none given) the global sequence, read from
/// `random.state` before the draw and written back after it.
fn draw<T>(
    key: &Option<PyRef<'_, PyArray>>,
    f: impl FnOnce(Option<&Array>) -> PyResult<T>,
) -> PyResult<T> {
    if let Some(k) = key {
        return f(Some(&k.inner));
    }
    Python::attach(|py| -> PyResult<T> {
        let item = state_list(py)?.get_item(0)?;
        let ours = LAST
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|l| l.bind(py).is(&item));
        if !ours {
            let k: PyRef<'_, PyArray> = item.extract().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(
                    "random.state[0] must be a key array (uint32, shape (2,))",
                )
            })?;
            random::set_state(&k.inner).or_raise()?;
        }
        let out = f(None)?;
        publish(py)?;
        Ok(out)
    })
}

fn shape_or_scalar(shape: Option<ShapeArg>) -> Vec<usize> {
    shape.map_or_else(Vec::new, |s| s.0)
}

/// A PRNG key (uint32, shape (2,)) from a seed.
#[pyfunction]
pub fn key(seed: u64) -> Out {
    random::key(seed).or_raise().map(PyArray::from)
}

/// Seeds the global key sequence.
#[pyfunction]
pub fn seed(py: Python<'_>, seed: u64) -> PyResult<()> {
    random::seed(seed);
    publish(py)
}

/// `num` new keys (shape (num, 2)) from `key`.
#[pyfunction]
#[pyo3(signature = (key, num=2, stream=None))]
pub fn split(key: PyRef<'_, PyArray>, num: usize, stream: Option<StreamArg>) -> Out {
    let k = key.inner.clone();
    on(stream, || random::split(&k, num)).map(PyArray::from)
}

/// Uniform samples in `[low, high)` (float32 by default).
#[pyfunction]
#[pyo3(signature = (low=None, high=None, shape=None, dtype=None, key=None, stream=None))]
pub fn uniform(
    low: Option<Operand>,
    high: Option<Operand>,
    shape: Option<ShapeArg>,
    dtype: Option<PyDtype>,
    key: Option<PyRef<'_, PyArray>>,
    stream: Option<StreamArg>,
) -> Out {
    let low = low.map_or_else(|| Array::weak_float(0.0), |x| x.0);
    let high = high.map_or_else(|| Array::weak_float(1.0), |x| x.0);
    let shape = shape_or_scalar(shape);
    draw(&key, |k| {
        on(stream, || {
            random::uniform(low, high, &shape, dtype.map(|d| d.0), k)
        })
    })
    .map(PyArray::from)
}

/// Normal samples with mean `loc` and standard deviation `scale`.
#[pyfunction]
#[pyo3(signature = (shape=None, dtype=None, loc=None, scale=None, key=None, stream=None))]
pub fn normal(
    shape: Option<ShapeArg>,
    dtype: Option<PyDtype>,
    loc: Option<Operand>,
    scale: Option<Operand>,
    key: Option<PyRef<'_, PyArray>>,
    stream: Option<StreamArg>,
) -> Out {
    let loc = loc.map_or_else(|| Array::weak_float(0.0), |x| x.0);
    let scale = scale.map_or_else(|| Array::weak_float(1.0), |x| x.0);
    let shape = shape_or_scalar(shape);
    draw(&key, |k| {
        on(stream, || {
            random::normal(&shape, dtype.map(|d| d.0), loc, scale, k)
        })
    })
    .map(PyArray::from)
}

/// Integer samples in `[low, high)` (int32 by default).
#[pyfunction]
#[pyo3(signature = (low, high, shape=None, dtype=None, key=None, stream=None))]
pub fn randint(
    low: Operand,
    high: Operand,
    shape: Option<ShapeArg>,
    dtype: Option<PyDtype>,
    key: Option<PyRef<'_, PyArray>>,
    stream: Option<StreamArg>,
) -> Out {
    let shape = shape_or_scalar(shape);
    draw(&key, |k| {
        on(stream, || {
            random::randint(low.0, high.0, &shape, dtype.map(|d| d.0), k)
        })
    })
    .map(PyArray::from)
}

/// Bool samples, true with probability `p`.
#[pyfunction]
#[pyo3(signature = (p=None, shape=None, key=None, stream=None))]
pub fn bernoulli(
    p: Option<Operand>,
    shape: Option<ShapeArg>,
    key: Option<PyRef<'_, PyArray>>,
    stream: Option<StreamArg>,
) -> Out {
    let p = p.map_or_else(|| Array::weak_float(0.5), |x| x.0);
    draw(&key, |k| {
        on(stream, || {
            random::bernoulli(p, shape.as_ref().map(|s| &s.0[..]), k)
        })
    })
    .map(PyArray::from)
}

/// Normal samples truncated to `[lower, upper]`.
#[pyfunction]
#[pyo3(signature = (lower, upper, shape=None, dtype=None, key=None, stream=None))]
pub fn truncated_normal(
    lower: Operand,
    upper: Operand,
    shape: Option<ShapeArg>,
    dtype: Option<PyDtype>,
    key: Option<PyRef<'_, PyArray>>,
    stream: Option<StreamArg>,
) -> Out {
    draw(&key, |k| {
        on(stream, || {
            random::truncated_normal(
                lower.0,
                upper.0,
                shape.as_ref().map(|s| &s.0[..]),
                dtype.map(|d| d.0),
                k,
            )
        })
    })
    .map(PyArray::from)
}

/// Samples of the standard Gumbel distribution.
#[pyfunction]
#[pyo3(signature = (shape=None, dtype=None, key=None, stream=None))]
pub fn gumbel(
    shape: Option<ShapeArg>,
    dtype: Option<PyDtype>,
    key: Option<PyRef<'_, PyArray>>,
    stream: Option<StreamArg>,
) -> Out {
    let shape = shape_or_scalar(shape);
    draw(&key, |k| {
        on(stream, || random::gumbel(&shape, dtype.map(|d| d.0), k))
    })
    .map(PyArray::from)
}

/// Laplace samples with location `loc` and scale `scale`.
#[pyfunction]
#[pyo3(signature = (shape=None, dtype=None, loc=0.0, scale=1.0, key=None, stream=None))]
pub fn laplace(
    shape: Option<ShapeArg>,
    dtype: Option<PyDtype>,
    loc: f64,
    scale: f64,
    key: Option<PyRef<'_, PyArray>>,
    stream: Option<StreamArg>,
) -> Out {
    let shape = shape_or_scalar(shape);
    draw(&key, |k| {
        on(stream, || {
            random::laplace(&shape, dtype.map(|d| d.0), loc, scale, k)
        })
    })
    .map(PyArray::from)
}

/// A random permutation of `0..x` (an int), or of `x`'s entries along `axis`.
#[pyfunction]
#[pyo3(signature = (x, axis=0, key=None, stream=None))]
pub fn permutation(
    x: &Bound<'_, PyAny>,
    axis: i64,
    key: Option<PyRef<'_, PyArray>>,
    stream: Option<StreamArg>,
) -> Out {
    let what = match x.extract::<i64>() {
        Ok(n) if x.cast::<PyArray>().is_err() => {
            random::Permutable::Len(usize::try_from(n).unwrap_or(usize::MAX))
        }
        _ => random::Permutable::Array(x.extract::<Operand>()?.0),
    };
    draw(&key, |k| on(stream, || random::permutation(what, axis, k))).map(PyArray::from)
}

/// Category indices (uint32) sampled from the logits along `axis`.
#[pyfunction]
#[pyo3(signature = (logits, axis=-1, shape=None, num_samples=None, key=None, stream=None))]
pub fn categorical(
    logits: Operand,
    axis: i64,
    shape: Option<ShapeArg>,
    num_samples: Option<usize>,
    key: Option<PyRef<'_, PyArray>>,
    stream: Option<StreamArg>,
) -> Out {
    draw(&key, |k| {
        on(stream, || {
            random::categorical(
                &logits.0,
                axis,
                shape.as_ref().map(|s| &s.0[..]),
                num_samples,
                k,
            )
        })
    })
    .map(PyArray::from)
}

/// The `umx.core.random` submodule.
pub fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let m = PyModule::new(py, "random")?;
    m.add_function(wrap_pyfunction!(key, &m)?)?;
    m.add_function(wrap_pyfunction!(seed, &m)?)?;
    m.add_function(wrap_pyfunction!(split, &m)?)?;
    m.add_function(wrap_pyfunction!(uniform, &m)?)?;
    m.add_function(wrap_pyfunction!(normal, &m)?)?;
    m.add_function(wrap_pyfunction!(randint, &m)?)?;
    m.add_function(wrap_pyfunction!(bernoulli, &m)?)?;
    m.add_function(wrap_pyfunction!(truncated_normal, &m)?)?;
    m.add_function(wrap_pyfunction!(gumbel, &m)?)?;
    m.add_function(wrap_pyfunction!(laplace, &m)?)?;
    m.add_function(wrap_pyfunction!(permutation, &m)?)?;
    m.add_function(wrap_pyfunction!(categorical, &m)?)?;
    m.add("state", state_list(py)?)?;
    Ok(m)
}
