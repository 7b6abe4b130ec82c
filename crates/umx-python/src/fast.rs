//! `umx.core.fast`: the fused kernels of `umx::fast` with MLX's names, arguments and defaults
//! (`mx.fast.rms_norm`, `layer_norm`, `rope`, `scaled_dot_product_attention`, `cuda_kernel`).

use crate::array::PyArray;
use crate::device::{StreamArg, on};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use umx::Array;
use umx::fast::{self, AttentionMask};

type Out = PyResult<PyArray>;

fn inner(a: &Option<PyRef<'_, PyArray>>) -> Option<Array> {
    a.as_ref().map(|a| a.inner.clone())
}

/// Root-mean-square normalisation over the last axis, times `weight` (which may be None).
#[pyfunction]
#[pyo3(signature = (x, weight, eps, *, stream=None))]
pub fn rms_norm(
    x: PyRef<'_, PyArray>,
    weight: Option<PyRef<'_, PyArray>>,
    eps: f32,
    stream: Option<StreamArg>,
) -> Out {
    let (x, w) = (x.inner.clone(), inner(&weight));
    on(stream, || fast::rms_norm(&x, w.as_ref(), eps)).map(PyArray::from)
}

/// Layer normalisation over the last axis, with an optional `weight` and `bias`.
#[pyfunction]
#[pyo3(signature = (x, weight, bias, eps, *, stream=None))]
pub fn layer_norm(
    x: PyRef<'_, PyArray>,
    weight: Option<PyRef<'_, PyArray>>,
    bias: Option<PyRef<'_, PyArray>>,
    eps: f32,
    stream: Option<StreamArg>,
) -> Out {
    let (x, w, b) = (x.inner.clone(), inner(&weight), inner(&bias));
    on(stream, || fast::layer_norm(&x, w.as_ref(), b.as_ref(), eps)).map(PyArray::from)
}

/// An offset given as an int or an integer array.
#[derive(FromPyObject)]
pub enum Offset<'py> {
    Int(i64),
    Array(PyRef<'py, PyArray>),
}

/// Rotary positional embedding of the first `dims` features of `(..., L, D)` inputs.
#[pyfunction]
#[pyo3(signature = (a, dims, *, traditional, base, scale, offset, freqs=None, stream=None))]
#[allow(clippy::too_many_arguments)]
pub fn rope(
    a: PyRef<'_, PyArray>,
    dims: usize,
    traditional: bool,
    base: Option<f32>,
    scale: f32,
    offset: Offset<'_>,
    freqs: Option<PyRef<'_, PyArray>>,
    stream: Option<StreamArg>,
) -> Out {
    let x = a.inner.clone();
    let offset = match offset {
        Offset::Int(i) => Array::scalar(
            i32::try_from(i)
                .map_err(|_| PyValueError::new_err(format!("rope: offset {i} is too large")))?,
        ),
        Offset::Array(a) => a.inner.clone(),
    };
    let f = inner(&freqs);
    on(stream, || {
        fast::rope(&x, dims, traditional, base, scale, &offset, f.as_ref())
    })
    .map(PyArray::from)
}

/// A mask given as "causal", an array, or None.
#[derive(FromPyObject)]
pub enum Mask<'py> {
    Mode(String),
    Array(PyRef<'py, PyArray>),
}

/// `softmax(q k^T * scale + mask) v` over (B, heads, L, D) inputs; grouped-query heads,
/// `mask="causal"` or a boolean/additive array, and attention `sinks` (one logit per head).
#[pyfunction]
#[pyo3(signature = (q, k, v, *, scale, mask=None, sinks=None, stream=None))]
#[allow(clippy::too_many_arguments)]
pub fn scaled_dot_product_attention(
    q: PyRef<'_, PyArray>,
    k: PyRef<'_, PyArray>,
    v: PyRef<'_, PyArray>,
    scale: f32,
    mask: Option<Mask<'_>>,
    sinks: Option<PyRef<'_, PyArray>>,
    stream: Option<StreamArg>,
) -> Out {
    let (q, k, v) = (q.inner.clone(), k.inner.clone(), v.inner.clone());
    let m = match &mask {
        Some(Mask::Array(a)) => Some(a.inner.clone()),
        _ => None,
    };
    let causal = match &mask {
        Some(Mask::Mode(s)) if s == "causal" => true,
        Some(Mask::Mode(s)) if s.is_empty() => false,
        Some(Mask::Mode(s)) => {
            return Err(PyValueError::new_err(format!(
                "scaled_dot_product_attention: mask must be \"causal\", an array or None, not {s:?}"
            )));
        }
        _ => false,
    };
    let s = inner(&sinks);
    on(stream, || {
        let mask = match (&m, causal) {
            (Some(m), _) => AttentionMask::Array(m),
            (None, true) => AttentionMask::Causal,
            (None, false) => AttentionMask::None,
        };
        fast::scaled_dot_product_attention(&q, &k, &v, scale, mask, s.as_ref())
    })
    .map(PyArray::from)
}

/// The `umx.core.fast` module.
pub fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let m = PyModule::new(py, "fast")?;
    m.add_function(wrap_pyfunction!(rms_norm, &m)?)?;
    m.add_function(wrap_pyfunction!(layer_norm, &m)?)?;
    m.add_function(wrap_pyfunction!(rope, &m)?)?;
    m.add_function(wrap_pyfunction!(scaled_dot_product_attention, &m)?)?;
    m.add_function(wrap_pyfunction!(cuda_kernel, &m)?)?;
    m.add_class::<PyCudaKernel>()?;
    Ok(m)
}

/// A user CUDA kernel (`mx.fast.cuda_kernel`): call it with `inputs`, `output_shapes`,
/// `output_dtypes`, `grid` (threads) and `threadgroup`; `template` is a list of (name, value)
/// pairs, each a dtype, an int or a bool.
#[pyclass(name = "CudaKernel", module = "umx.core.fast")]
pub struct PyCudaKernel(fast::CudaKernel);

#[pymethods]
impl PyCudaKernel {
    #[pyo3(signature = (*, inputs, output_shapes, output_dtypes, grid, threadgroup,
        template=None, init_value=None, verbose=false, stream=None))]
    #[allow(clippy::too_many_arguments)]
    fn __call__(
        &self,
        inputs: Vec<Bound<'_, PyAny>>,
        output_shapes: Vec<Vec<usize>>,
        output_dtypes: Vec<crate::dtype::PyDtype>,
        grid: (usize, usize, usize),
        threadgroup: (usize, usize, usize),
        template: Option<Vec<(String, Bound<'_, PyAny>)>>,
        init_value: Option<f64>,
        verbose: bool,
        stream: Option<StreamArg>,
    ) -> PyResult<Vec<PyArray>> {
        use umx::primitives::TemplateArg;
        let inputs: Vec<Array> = inputs
            .iter()
            .map(|x| crate::convert::to_array(x, None))
            .collect::<PyResult<_>>()?;
        let mut targs = Vec::new();
        for (name, v) in template.unwrap_or_default() {
            let arg = if let Ok(d) = v.extract::<crate::dtype::PyDtype>() {
                TemplateArg::Dtype(d.0)
            } else if v.is_instance_of::<pyo3::types::PyBool>() {
                TemplateArg::Bool(v.extract()?)
            } else if let Ok(i) = v.extract::<i64>() {
                TemplateArg::Int(i)
            } else {
                return Err(PyValueError::new_err(format!(
                    "cuda_kernel: template argument {name} is not a dtype, an int or a bool"
                )));
            };
            targs.push((name, arg));
        }
        let call = fast::KernelCall {
            grid: [grid.0, grid.1, grid.2],
            threadgroup: [threadgroup.0, threadgroup.1, threadgroup.2],
            output_shapes,
            output_dtypes: output_dtypes.into_iter().map(|d| d.0).collect(),
            template: targs,
            init_value,
            verbose,
        };
        on(stream, || self.0.call(&inputs, &call))
            .map(|v| v.into_iter().map(PyArray::from).collect())
    }
}

/// A custom CUDA kernel from the body of its function (`mx.fast.cuda_kernel`).
#[pyfunction]
#[pyo3(signature = (name, input_names, output_names, source, header="", ensure_row_contiguous=true,
    shared_memory=0))]
pub fn cuda_kernel(
    name: &str,
    input_names: Vec<String>,
    output_names: Vec<String>,
    source: &str,
    header: &str,
    ensure_row_contiguous: bool,
    shared_memory: usize,
) -> PyResult<PyCudaKernel> {
    let ins: Vec<&str> = input_names.iter().map(String::as_str).collect();
    let outs: Vec<&str> = output_names.iter().map(String::as_str).collect();
    fast::cuda_kernel(
        name,
        &ins,
        &outs,
        source,
        header,
        ensure_row_contiguous,
        shared_memory,
    )
    .map(PyCudaKernel)
    .map_err(|e| PyValueError::new_err(e.to_string()))
}
