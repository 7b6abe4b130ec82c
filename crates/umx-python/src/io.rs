//! Saving and loading arrays (MLX's `mx.save`, `savez`, `savez_compressed`,
//! `save_safetensors`, `load`): NumPy's npy and npz, safetensors, and reading gguf, through
//! `umx::io`. Files are named by a path (a `str` or `os.PathLike`); file objects are not
//! supported.

use crate::array::PyArray;
use crate::error::OrRaise;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use umx::Array;

/// `path` with `ext` added unless it ends with it already (as MLX does for `save`/`savez`).
fn with_extension(path: PathBuf, ext: &str) -> PathBuf {
    if path.extension().is_some_and(|e| e == ext) {
        path
    } else {
        let mut s = path.into_os_string();
        s.push(".");
        s.push(ext);
        PathBuf::from(s)
    }
}

fn named_arrays(
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<BTreeMap<String, Array>> {
    let mut out = BTreeMap::new();
    for (i, a) in args.iter().enumerate() {
        out.insert(
            format!("arr_{i}"),
            a.cast::<PyArray>()?.borrow().inner.clone(),
        );
    }
    if let Some(kw) = kwargs {
        for (k, v) in kw.iter() {
            let name: String = k.extract()?;
            if out.contains_key(&name) {
                return Err(PyValueError::new_err(format!(
                    "savez: the name {name:?} is given twice"
                )));
            }
            out.insert(name, v.cast::<PyArray>()?.borrow().inner.clone());
        }
    }
    Ok(out)
}

fn dict_arrays(arrays: &Bound<'_, PyDict>) -> PyResult<BTreeMap<String, Array>> {
    arrays
        .iter()
        .map(|(k, v)| Ok((k.extract()?, v.cast::<PyArray>()?.borrow().inner.clone())))
        .collect()
}

/// Saves one array as a `.npy` file (the extension is added when missing).
#[pyfunction]
pub fn save(py: Python<'_>, file: PathBuf, arr: PyRef<'_, PyArray>) -> PyResult<()> {
    let a = arr.inner.clone();
    let path = with_extension(file, "npy");
    py.detach(move || umx::io::save_npy(path, &a)).or_raise()
}

/// Saves arrays as a `.npz` file: positional ones as `arr_0`, `arr_1`, ..., keyword ones by
/// their names.
#[pyfunction]
#[pyo3(signature = (file, *args, **kwargs))]
pub fn savez(
    py: Python<'_>,
    file: PathBuf,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let arrays = named_arrays(args, kwargs)?;
    let path = with_extension(file, "npz");
    py.detach(move || umx::io::save_npz(path, &arrays))
        .or_raise()
}

/// [`savez`] with the arrays deflated.
#[pyfunction]
#[pyo3(signature = (file, *args, **kwargs))]
pub fn savez_compressed(
    py: Python<'_>,
    file: PathBuf,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let arrays = named_arrays(args, kwargs)?;
    let path = with_extension(file, "npz");
    py.detach(move || umx::io::save_npz_compressed(path, &arrays))
        .or_raise()
}

/// Saves a dict of arrays as a `.safetensors` file, with optional string metadata.
#[pyfunction]
#[pyo3(signature = (file, arrays, metadata=None))]
pub fn save_safetensors(
    py: Python<'_>,
    file: PathBuf,
    arrays: &Bound<'_, PyDict>,
    metadata: Option<BTreeMap<String, String>>,
) -> PyResult<()> {
    let arrays = dict_arrays(arrays)?;
    let path = with_extension(file, "safetensors");
    py.detach(move || umx::io::save_safetensors(path, &arrays, metadata.as_ref()))
        .or_raise()
}

fn format_of(path: &Path, format: Option<&str>) -> PyResult<String> {
    if let Some(f) = format {
        return Ok(f.to_string());
    }
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "load: cannot tell the format of {} from its name; pass format=",
                path.display()
            ))
        })
}

/// Loads an array (`.npy`) or a dict of arrays (`.npz`, `.safetensors`, `.gguf`); with
/// `return_metadata`, a safetensors file also gives its metadata.
#[pyfunction]
#[pyo3(signature = (file, /, format=None, return_metadata=false, *, stream=None))]
pub fn load<'py>(
    py: Python<'py>,
    file: PathBuf,
    format: Option<&str>,
    return_metadata: bool,
    stream: Option<crate::device::StreamArg>,
) -> PyResult<Bound<'py, PyAny>> {
    let _ = stream;
    let fmt = format_of(&file, format)?;
    let dict = |m: BTreeMap<String, Array>| -> PyResult<Bound<'py, PyAny>> {
        let d = PyDict::new(py);
        for (k, v) in m {
            d.set_item(k, PyArray::from(v))?;
        }
        Ok(d.into_any())
    };
    match fmt.as_str() {
        "npy" => {
            let a = py.detach(move || umx::io::load_npy(file)).or_raise()?;
            Ok(Bound::new(py, PyArray::from(a))?.into_any())
        }
        "npz" => dict(py.detach(move || umx::io::load_npz(file)).or_raise()?),
        "safetensors" => {
            let (arrays, meta) = py
                .detach(move || {
                    let st = umx::io::SafeTensors::open(file)?;
                    Ok::<_, umx::Error>((st.load_all()?, st.metadata().clone()))
                })
                .or_raise()?;
            let arrays = dict(arrays)?;
            if return_metadata {
                Ok(PyTuple::new(py, [arrays, meta.into_pyobject(py)?.into_any()])?.into_any())
            } else {
                Ok(arrays)
            }
        }
        "gguf" => dict(py.detach(move || umx::io::load_gguf(file)).or_raise()?),
        f => Err(PyValueError::new_err(format!(
            "load: unknown format {f:?}; umx reads npy, npz, safetensors and gguf"
        ))),
    }
}
