//! Fused operations for the hot spots of transformers (MLX's `mx.fast`): [`rms_norm`],
//! [`layer_norm`], [`rope`] and [`scaled_dot_product_attention`] (softmax over the last axis
//! takes the same path through [`crate::ops::softmax`]).
//!
//! Each is one [`FastOp`] node that a backend computes in one pass over each row, in float32,
//! rounding once. Gradients and batching go through the op's fallback (the same computation
//! as ordinary ops; `primitives/fast.rs`). float64 inputs and attention over long query blocks
//! take the fallback directly.

use crate::array::IntoArray;
use crate::primitives::{FastOp, Primitive, Projection};
use crate::shape::{broadcast_shapes, fmt_shape};
use crate::{Array, Dtype, Result, bail, ops};

/// Query blocks up to this long take the fused attention kernel (decoding, speculative
/// steps); longer ones are matmuls and a softmax.
pub const ATTENTION_QUERY_BLOCK: usize = 16;
/// The largest head dimension of the fused attention kernel.
pub const ATTENTION_MAX_HEAD_DIM: usize = 256;

/// Whether the fast kernels take inputs of `dtype` (float32, float16, bfloat16).
pub(crate) fn has_kernel(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16)
}

fn node(op: FastOp, inputs: Vec<Array>) -> Result<Array> {
    let spec = op.output(&inputs);
    Array::from_primitive(Primitive::Fast(op), inputs, spec.shape, spec.dtype)
}

/// The fallback's value, for inputs without a kernel.
fn fallback(op: FastOp, inputs: &[Array]) -> Result<Array> {
    Ok(op.fallback(inputs)?.remove(0))
}

fn check_float(op: &str, what: &str, a: &Array) -> Result<()> {
    a.check()?;
    if !a.dtype().is_inexact() || a.dtype().is_complex() {
        bail!(
            "{op}: {what} must be a real floating-point array, not {}",
            a.dtype()
        );
    }
    Ok(())
}

/// A per-feature parameter: shape `(d,)`.
fn check_feature(op: &str, what: &str, a: &Array, x: &Array) -> Result<()> {
    check_float(op, what, a)?;
    let d = x.shape()[x.ndim() - 1];
    if a.shape() != [d] {
        bail!(
            "{op}: the {what} must have shape ({d},) for input {}, not {}",
            fmt_shape(x.shape()),
            fmt_shape(a.shape())
        );
    }
    Ok(())
}

fn check_rows(op: &str, x: &Array) -> Result<()> {
    check_float(op, "input", x)?;
    if x.ndim() == 0 {
        bail!("{op}: the input must have at least one axis, not a scalar");
    }
    Ok(())
}

/// The most rows of `x` (all leading axes together) [`swiglu_linear`] makes its own node
/// for: the decoding steps whose product a device computes as one matrix-vector pass.
pub const SWIGLU_ROWS: usize = 8;

/// A SwiGLU block's gate and up projections, `silu(x @ w[..I].T) * (x @ w[I..].T)`, for the
/// two weights stacked as `w (2I, K)` (what `x @ w.T` of a Linear computes, both at once):
/// output `(..., I)` for `x (..., K)`.
///
/// Both products are rounded to their dtype (the promotion of the two), then SiLU
/// (`g * sigmoid(g)`) and the product are computed as the element-wise ops do, so the value is
/// the composite's. For a few rows (up to [`SWIGLU_ROWS`]: a decoding step) of one of
/// float32/float16/bfloat16 with `K` a whole number of 16-byte vectors, the GPU computes each
/// output's two dot products in one pass over the two weight rows (no `(..., 2I)` product in
/// memory, no second kernel); otherwise, and for gradients and batching, it is the composite.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, fast};
/// let x = Array::from_slice(&[1.0f32, 2.0], &[1, 2])?;
/// let w = Array::from_slice(&[1.0f32, 0.0, 0.0, 1.0], &[2, 2])?; // gate (1, 0), up (0, 1)
/// let y = fast::swiglu_linear(&x, &w)?.to_vec::<f32>()?;
/// let silu = 1.0 / (1.0 + (-1.0f32).exp());
/// assert!((y[0] - silu * 2.0).abs() < 1e-6);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn swiglu_linear(x: &Array, w: &Array) -> Result<Array> {
    check_rows("swiglu_linear", x)?;
    check_float("swiglu_linear", "weight", w)?;
    let k = x.shape()[x.ndim() - 1];
    if w.ndim() != 2 || !w.shape()[0].is_multiple_of(2) || w.shape()[1] != k {
        bail!(
            "swiglu_linear: the weight must have shape (2I, {k}) for input {}, not {}",
            fmt_shape(x.shape()),
            fmt_shape(w.shape())
        );
    }
    let rows = x.size().checked_div(k).unwrap_or(0);
    let inputs = vec![x.clone(), w.clone()];
    if has_kernel(x.dtype())
        && x.dtype() == w.dtype()
        && k > 0
        && k.is_multiple_of(16 / x.dtype().size())
        && (1..=SWIGLU_ROWS).contains(&rows)
        && w.shape()[0] > 0
    {
        node(FastOp::SwigluLinear, inputs)
    } else {
        fallback(FastOp::SwigluLinear, &inputs)
    }
}

/// [`swiglu_linear`] with the stacked weight quantized (MLX's affine scheme: `w_q`, `scales`
/// and `biases` as `quantize` makes them from `(2I, K)`, used as `quantized_matmul` with
/// `transpose`): `silu(x @ W[..I].T) * (x @ W[I..].T)`, output `(..., I)`.
///
/// The value is the composite's (`quantized_matmul`, then the SwiGLU of its halves); for a
/// few rows (up to [`SWIGLU_ROWS`]) with the scales in `x`'s dtype, the GPU reads each
/// output's gate and up rows in one pass of its quantized matrix-vector kernel.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, fast, ops};
/// let w = Array::from_slice(&(0..256).map(|i| (i % 7) as f32 / 7.0).collect::<Vec<_>>(), &[4, 64])?;
/// let (q, s, b) = ops::quantize(&w, 64, 4)?;
/// let x = Array::from_slice(&[0.5f32; 64], &[1, 64])?;
/// let y = fast::swiglu_quantized_linear(&x, &q, &s, &b, 64, 4)?;
/// assert_eq!(y.shape(), &[1, 2]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn swiglu_quantized_linear(
    x: &Array,
    w_q: &Array,
    scales: &Array,
    biases: &Array,
    group_size: usize,
    bits: usize,
) -> Result<Array> {
    let name = "swiglu_quantized_linear";
    check_rows(name, x)?;
    let (k, _) = ops::quantized::check_quantized(name, w_q, scales, biases, group_size, bits)?;
    if w_q.ndim() != 2 || !w_q.shape()[0].is_multiple_of(2) {
        bail!(
            "{name}: the weight must be one matrix of 2I rows (a gate and an up projection \
             stacked), not {}",
            fmt_shape(w_q.shape())
        );
    }
    if x.shape()[x.ndim() - 1] != k {
        bail!(
            "{name}: the last dimension of x (shape {}) does not match the weight's {k} \
             columns (w of shape {} with group_size={group_size}, bits={bits})",
            fmt_shape(x.shape()),
            fmt_shape(w_q.shape())
        );
    }
    let op = FastOp::SwigluQuantizedLinear { group_size, bits };
    let inputs = vec![x.clone(), w_q.clone(), scales.clone(), biases.clone()];
    let rows = x.size().checked_div(k).unwrap_or(0);
    if has_kernel(x.dtype())
        && scales.dtype() == x.dtype()
        && biases.dtype() == x.dtype()
        && w_q.shape()[0] > 0
        && k.is_multiple_of(32)
        && (1..=SWIGLU_ROWS).contains(&rows)
    {
        node(op, inputs)
    } else {
        fallback(op, &inputs)
    }
}

/// `x / sqrt(mean(x^2) + eps) * weight` over the last axis (MLX's `mx.fast.rms_norm`),
/// computed in float32; the weight `(D,)` is optional. The output dtype is the promotion of
/// the inputs'.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, fast};
/// let x = Array::from_slice(&[3.0f32, 4.0], &[1, 2])?;
/// let w = Array::from_slice(&[1.0f32, 2.0], &[2])?;
/// let y = fast::rms_norm(&x, Some(&w), 0.0)?.to_vec::<f32>()?;
/// let r = (12.5f32).sqrt();
/// assert!((y[0] - 3.0 / r).abs() < 1e-6 && (y[1] - 8.0 / r).abs() < 1e-6);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn rms_norm(x: &Array, weight: Option<&Array>, eps: f32) -> Result<Array> {
    check_rows("rms_norm", x)?;
    let mut inputs = vec![x.clone()];
    if let Some(w) = weight {
        check_feature("rms_norm", "weight", w, x)?;
        inputs.push(w.clone());
    }
    let op = FastOp::RmsNorm {
        eps,
        weight: weight.is_some(),
    };
    if inputs.iter().all(|a| has_kernel(a.dtype())) {
        node(op, inputs)
    } else {
        fallback(op, &inputs)
    }
}

/// `(x - mean) / sqrt(var + eps) * weight + bias` over the last axis (MLX's
/// `mx.fast.layer_norm`), computed in float32; weight and bias `(D,)` are optional.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, fast};
/// let x = Array::from_slice(&[1.0f32, 3.0], &[2])?;
/// let y = fast::layer_norm(&x, None, None, 0.0)?.to_vec::<f32>()?;
/// assert_eq!(y, vec![-1.0, 1.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn layer_norm(
    x: &Array,
    weight: Option<&Array>,
    bias: Option<&Array>,
    eps: f32,
) -> Result<Array> {
    check_rows("layer_norm", x)?;
    let mut inputs = vec![x.clone()];
    for (what, p) in [("weight", weight), ("bias", bias)] {
        if let Some(p) = p {
            check_feature("layer_norm", what, p, x)?;
            inputs.push(p.clone());
        }
    }
    let op = FastOp::LayerNorm {
        eps,
        weight: weight.is_some(),
        bias: bias.is_some(),
    };
    if inputs.iter().all(|a| has_kernel(a.dtype())) {
        node(op, inputs)
    } else {
        fallback(op, &inputs)
    }
}

/// Softmax over the last axis of a float32/float16/bfloat16 array with elements: the fast
/// kernel behind [`crate::ops::softmax`].
pub(crate) fn softmax_rows(x: &Array) -> Result<Array> {
    node(FastOp::Softmax, vec![x.clone()])
}

/// Log-sum-exp over the last axis of a float32/float16/bfloat16 array whose rows are not
/// empty: the fast kernel behind [`crate::ops::logsumexp`].
pub(crate) fn logsumexp_rows(x: &Array) -> Result<Array> {
    node(FastOp::LogSumExp, vec![x.clone()])
}

/// Rotary positional embedding (MLX's `mx.fast.rope`) of the first `dims` features of
/// `(..., L, D)` inputs, at positions `offset, offset + 1, ...` along the second-to-last axis,
/// times `scale`.
///
/// Feature pair `i` turns by `position * base^(-2i / dims)`, or by `position / freqs[i]`
/// when `freqs` (`(dims / 2,)`) is given instead of `base`. `traditional` pairs neighbours
/// `(2i, 2i + 1)`; otherwise the halves `(i, i + dims / 2)` (Hugging Face's Llama layout).
/// `offset` is an integer: a scalar, or one per index of the first axis (`(x.shape[0],)`,
/// for batches of sequences at different positions). Features past `dims` pass through.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, fast};
/// // One feature pair at position 1 with base 1: a turn of 1 radian.
/// let x = Array::from_slice(&[1.0f32, 0.0], &[1, 1, 2])?;
/// let y = fast::rope(&x, 2, false, Some(1.0), 1.0, 1, None)?.to_vec::<f32>()?;
/// assert!((y[0] - 1f32.cos()).abs() < 1e-6 && (y[1] - 1f32.sin()).abs() < 1e-6);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn rope(
    x: &Array,
    dims: usize,
    traditional: bool,
    base: Option<f32>,
    scale: f32,
    offset: impl IntoArray,
    freqs: Option<&Array>,
) -> Result<Array> {
    check_float("rope", "input", x)?;
    let offset = offset.into_array();
    offset.check()?;
    if x.ndim() < 2 {
        bail!(
            "rope: the input must be (..., L, D), not {}",
            fmt_shape(x.shape())
        );
    }
    let d = x.shape()[x.ndim() - 1];
    if dims == 0 || !dims.is_multiple_of(2) || dims > d {
        bail!(
            "rope: dims must be even, positive and at most the last axis of input {}, not {dims}",
            fmt_shape(x.shape())
        );
    }
    if !offset.dtype().is_integer() {
        bail!(
            "rope: the offset must be an integer, not {}",
            offset.dtype()
        );
    }
    let per_row = offset.ndim() == 1 && x.ndim() >= 3 && offset.shape()[0] == x.shape()[0];
    if offset.ndim() != 0 && !per_row {
        bail!(
            "rope: the offset must be a scalar or have shape ({},) (one per index of the first axis, for inputs of three or more axes), not {} for input {}",
            x.shape()[0],
            fmt_shape(offset.shape()),
            fmt_shape(x.shape())
        );
    }
    let base = rope_base("rope", dims, base, freqs)?;
    let mut inputs = vec![x.clone(), offset.astype(Dtype::Int32)?];
    if let Some(f) = freqs {
        inputs.push(f.astype(Dtype::Float32)?);
    }
    let op = FastOp::Rope {
        dims,
        traditional,
        base,
        scale,
        freqs: freqs.is_some(),
    };
    if has_kernel(x.dtype()) {
        node(op, inputs)
    } else {
        fallback(op, &inputs)
    }
}

/// The `base` a rope node holds (0 when `freqs` is given): exactly one of the two, `freqs` of
/// shape `(dims / 2,)`.
fn rope_base(op: &str, dims: usize, base: Option<f32>, freqs: Option<&Array>) -> Result<f32> {
    match (base, freqs) {
        (Some(b), None) => Ok(b),
        (None, Some(f)) => {
            check_float(op, "freqs", f)?;
            if f.shape() != [dims / 2] {
                bail!(
                    "{op}: freqs must have shape ({},) for dims {dims}, not {}",
                    dims / 2,
                    fmt_shape(f.shape())
                );
            }
            Ok(0.0)
        }
        _ => bail!("{op}: give exactly one of base and freqs"),
    }
}

/// A decoding step's attention inputs from a stacked q/k/v projection, with its keys and
/// values written into preallocated caches, in one pass (one kernel on the GPU, where the
/// composite takes a rope kernel and two scatters).
///
/// `qkv (B, L, (heads + 2 kv_heads) * D)` holds each position's query heads, then its key
/// heads, then its value heads. The query and key heads are rotated as [`rope`] rotates them
/// (`dims`, `traditional`, `base` or `freqs`, `scale`) at positions `offset, offset + 1, ...`
/// (an integer scalar); the rotated keys and the values replace rows `offset..offset + L` of
/// `keys` and `values` `(B, kv_heads, capacity, D)` (of `qkv`'s dtype). Returns the rotated
/// queries `(B, heads, L, D)` and the updated caches. The values are the composite's (views
/// of `qkv`, [`rope`], then [`scatter`](crate::ops::scatter) along axis 2), and so are
/// gradients and batching. A cache that nothing else holds is updated in place (the arrays
/// passed in are consumed when they are their buffers' last handles, as a scatter's are).
/// Rows past the capacity are an error (reported by the next read where `offset` lives on a
/// device).
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, Dtype, fast, ops};
/// // One query head and one key/value head of 2 features, at position 1 of a 3-row cache.
/// let qkv = Array::from_slice(&[1.0f32, 0.0, 1.0, 0.0, 5.0, 6.0], &[1, 1, 6])?;
/// let cache = ops::zeros(&[1, 1, 3, 2], Dtype::Float32)?;
/// let (q, keys, values) =
///     fast::rope_cache_write(&qkv, 1, 1, &cache, &cache, 1, 2, false, Some(1.0), 1.0, None)?;
/// assert!((q.to_vec::<f32>()?[0] - 1f32.cos()).abs() < 1e-6);
/// assert_eq!(values.to_vec::<f32>()?, [0.0, 0.0, 5.0, 6.0, 0.0, 0.0]);
/// assert!((keys.to_vec::<f32>()?[3] - 1f32.sin()).abs() < 1e-6);
/// # Ok::<(), umx_core::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn rope_cache_write(
    qkv: &Array,
    heads: usize,
    kv_heads: usize,
    keys: &Array,
    values: &Array,
    offset: impl IntoArray,
    dims: usize,
    traditional: bool,
    base: Option<f32>,
    scale: f32,
    freqs: Option<&Array>,
) -> Result<(Array, Array, Array)> {
    let rope = RopeArgs {
        dims,
        traditional,
        base,
        scale,
        freqs,
    };
    rope_cache_op(
        qkv,
        (Projection::None, &[]),
        heads,
        kv_heads,
        keys,
        values,
        offset.into_array(),
        &rope,
    )
}

/// The most rows of `x` (`B * L`) [`linear_rope_cache_write`] makes its own node for.
pub const PROJECTION_ROWS: usize = 8;

/// [`rope_cache_write`] of the projection `x @ w.T`: `x (B, L, K)` and the stacked q/k/v
/// weight `w ((heads + 2 kv_heads) * D, K)` (as a Linear layer's, without bias). The value is
/// the composite's (the product rounded to its dtype, then [`rope_cache_write`]); for a few
/// rows (up to [`PROJECTION_ROWS`]: a decoding step) of one of float32/float16/bfloat16 with
/// `K` a whole number of 16-byte vectors, the GPU rotates and writes each query, key and value
/// pair in its matrix-vector pass (no `qkv` in memory, no second kernel); otherwise, and for
/// gradients and batching, it is the composite.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, Dtype, fast, ops};
/// // x = (1, 0): the weight's first column is qkv.
/// let x = Array::from_slice(&[1.0f32, 0.0], &[1, 1, 2])?;
/// let w = Array::from_slice(&[1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 5.0, 0.0, 6.0, 0.0], &[6, 2])?;
/// let cache = ops::zeros(&[1, 1, 3, 2], Dtype::Float32)?;
/// let (q, _, values) = fast::linear_rope_cache_write(
///     &x, &w, 1, 1, &cache, &cache, 1, 2, false, Some(1.0), 1.0, None,
/// )?;
/// assert!((q.to_vec::<f32>()?[0] - 1f32.cos()).abs() < 1e-6);
/// assert_eq!(values.to_vec::<f32>()?, [0.0, 0.0, 5.0, 6.0, 0.0, 0.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn linear_rope_cache_write(
    x: &Array,
    w: &Array,
    heads: usize,
    kv_heads: usize,
    keys: &Array,
    values: &Array,
    offset: impl IntoArray,
    dims: usize,
    traditional: bool,
    base: Option<f32>,
    scale: f32,
    freqs: Option<&Array>,
) -> Result<(Array, Array, Array)> {
    const OP: &str = "linear_rope_cache_write";
    check_float(OP, "x", x)?;
    check_float(OP, "weight", w)?;
    if x.ndim() != 3 || w.ndim() != 2 || w.shape()[1] != x.shape()[2] {
        bail!(
            "{OP}: x must be (B, L, K) and the weight (features, K), not {} and {}",
            fmt_shape(x.shape()),
            fmt_shape(w.shape())
        );
    }
    let rope = RopeArgs {
        dims,
        traditional,
        base,
        scale,
        freqs,
    };
    let offset = offset.into_array();
    let k = x.shape()[2];
    let rows = x.shape()[0] * x.shape()[1];
    if has_kernel(x.dtype())
        && x.dtype() == w.dtype()
        && k > 0
        && k.is_multiple_of(16 / x.dtype().size())
        && (1..=PROJECTION_ROWS).contains(&rows)
    {
        let weights = std::slice::from_ref(w);
        let project = (Projection::Linear, weights);
        return rope_cache_op(x, project, heads, kv_heads, keys, values, offset, &rope);
    }
    let qkv = ops::matmul(x, &ops::transpose(w, [1i64, 0])?)?;
    let project = (Projection::None, &[][..]);
    rope_cache_op(&qkv, project, heads, kv_heads, keys, values, offset, &rope)
}

/// [`linear_rope_cache_write`] with the stacked q/k/v weight quantized (MLX's affine scheme:
/// `w_q`, `scales` and `biases` as `quantize` makes them from `((heads + 2 kv_heads) * D, K)`,
/// used as `quantized_matmul` with `transpose`). The value is the composite's
/// (`quantized_matmul`, then [`rope_cache_write`]); for a few rows (up to
/// [`PROJECTION_ROWS`]) with the scales in `x`'s dtype, the GPU's 4-bit kernel for one
/// bfloat16 row rotates and writes each pair of its outputs as it computes them (other
/// shapes: its quantized product, then the rope and cache kernel).
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, Dtype, fast, ops};
/// let w = Array::from_slice(&(0..384).map(|i| (i % 5) as f32 / 5.0).collect::<Vec<_>>(), &[6, 64])?;
/// let (wq, s, b) = ops::quantize(&w, 64, 4)?;
/// let x = Array::from_slice(&[0.25f32; 64], &[1, 1, 64])?;
/// let cache = ops::zeros(&[1, 1, 3, 2], Dtype::Float32)?;
/// let (q, keys, values) = fast::quantized_linear_rope_cache_write(
///     &x, &wq, &s, &b, 64, 4, 1, 1, &cache, &cache, 1, 2, false, Some(10000.0), 1.0, None,
/// )?;
/// assert_eq!((q.shape(), keys.shape(), values.shape()), (&[1, 1, 1, 2][..], &[1, 1, 3, 2][..], &[1, 1, 3, 2][..]));
/// # Ok::<(), umx_core::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn quantized_linear_rope_cache_write(
    x: &Array,
    w_q: &Array,
    scales: &Array,
    biases: &Array,
    group_size: usize,
    bits: usize,
    heads: usize,
    kv_heads: usize,
    keys: &Array,
    values: &Array,
    offset: impl IntoArray,
    dims: usize,
    traditional: bool,
    base: Option<f32>,
    scale: f32,
    freqs: Option<&Array>,
) -> Result<(Array, Array, Array)> {
    const OP: &str = "quantized_linear_rope_cache_write";
    check_float(OP, "x", x)?;
    let (k, _) = ops::quantized::check_quantized(OP, w_q, scales, biases, group_size, bits)?;
    if x.ndim() != 3 || w_q.ndim() != 2 || x.shape()[2] != k {
        bail!(
            "{OP}: x must be (B, L, K) and the weight (features, K) (packed: {} with \
             group_size={group_size}, bits={bits}, so K = {k}), not x of {}",
            fmt_shape(w_q.shape()),
            fmt_shape(x.shape())
        );
    }
    let rope = RopeArgs {
        dims,
        traditional,
        base,
        scale,
        freqs,
    };
    let offset = offset.into_array();
    let rows = x.shape()[0] * x.shape()[1];
    if has_kernel(x.dtype())
        && scales.dtype() == x.dtype()
        && biases.dtype() == x.dtype()
        && k.is_multiple_of(32)
        && (1..=PROJECTION_ROWS).contains(&rows)
    {
        let weights = [w_q.clone(), scales.clone(), biases.clone()];
        let project = (Projection::Quantized { group_size, bits }, &weights[..]);
        return rope_cache_op(x, project, heads, kv_heads, keys, values, offset, &rope);
    }
    let qkv = ops::quantized_matmul(x, w_q, scales, biases, true, group_size, bits)?;
    let project = (Projection::None, &[][..]);
    rope_cache_op(&qkv, project, heads, kv_heads, keys, values, offset, &rope)
}

/// A rotary embedding's arguments, as [`rope`] takes them.
struct RopeArgs<'a> {
    dims: usize,
    traditional: bool,
    base: Option<f32>,
    scale: f32,
    freqs: Option<&'a Array>,
}

/// [`rope_cache_write`] of `qkv`, or with a projection's weights of the product `qkv @ w.T`
/// (`qkv` then being `x`; checked by the caller to be `(B, L, K)` against `w (features, K)`).
#[allow(clippy::too_many_arguments)]
fn rope_cache_op(
    qkv: &Array,
    (project, weights): (Projection, &[Array]),
    heads: usize,
    kv_heads: usize,
    keys: &Array,
    values: &Array,
    offset: Array,
    rope: &RopeArgs,
) -> Result<(Array, Array, Array)> {
    let op_name = project.op_name();
    let RopeArgs {
        dims,
        traditional,
        base,
        scale,
        freqs,
    } = *rope;
    check_float(op_name, "qkv", qkv)?;
    check_float(op_name, "keys", keys)?;
    check_float(op_name, "values", values)?;
    offset.check()?;
    if qkv.ndim() != 3 || keys.ndim() != 4 {
        bail!(
            "{op_name}: qkv must be (B, L, features) and the caches (B, kv_heads, capacity, D), not {} and {}",
            fmt_shape(qkv.shape()),
            fmt_shape(keys.shape())
        );
    }
    let (b, l) = (qkv.shape()[0], qkv.shape()[1]);
    let [kb, kh, capacity, d] = keys.shape()[..] else {
        bail!("{op_name}: the caches must be 4-d");
    };
    if kv_heads == 0 || kb != b || kh != kv_heads || values.shape() != keys.shape() {
        bail!(
            "{op_name}: the caches must both be ({b}, {kv_heads}, capacity, D) for qkv {}, not {} and {}",
            fmt_shape(qkv.shape()),
            fmt_shape(keys.shape()),
            fmt_shape(values.shape())
        );
    }
    let features = weights.first().map_or(qkv.shape()[2], |w| w.shape()[0]);
    if features != (heads + 2 * kv_heads) * d {
        bail!(
            "{op_name}: qkv {} must have (heads + 2 kv_heads) * D = {} features for {heads} heads, {kv_heads} kv heads and D = {d}",
            fmt_shape(&[b, l, features]),
            (heads + 2 * kv_heads) * d
        );
    }
    if keys.dtype() != qkv.dtype() || values.dtype() != qkv.dtype() {
        bail!(
            "{op_name}: the caches must be of qkv's dtype {}, not {} and {}",
            qkv.dtype(),
            keys.dtype(),
            values.dtype()
        );
    }
    if l > capacity {
        bail!("{op_name}: {l} positions do not fit a cache of {capacity}");
    }
    if offset.ndim() != 0 || !offset.dtype().is_integer() {
        bail!(
            "{op_name}: the offset must be an integer scalar, not {} of {}",
            fmt_shape(offset.shape()),
            offset.dtype()
        );
    }
    if dims == 0 || !dims.is_multiple_of(2) || dims > d {
        bail!("{op_name}: dims must be even, positive and at most D = {d}, not {dims}");
    }
    let base = rope_base(op_name, dims, base, freqs)?;
    let mut inputs = vec![qkv.clone()];
    inputs.extend(weights.iter().cloned());
    inputs.extend([offset.astype(Dtype::Int32)?, keys.clone(), values.clone()]);
    if let Some(f) = freqs {
        inputs.push(f.astype(Dtype::Float32)?);
    }
    let op = FastOp::RopeCacheWrite {
        project,
        heads,
        kv_heads,
        dims,
        traditional,
        base,
        scale,
        freqs: freqs.is_some(),
    };
    let outs = if has_kernel(qkv.dtype()) {
        let specs = op.outputs(&inputs);
        Array::from_primitive_multi(Primitive::Fast(op), inputs, specs)?
    } else {
        op.fallback(&inputs)?
    };
    let [q, keys, values]: [Array; 3] = outs
        .try_into()
        .map_err(|_| crate::Error::Invalid(format!("{op_name}: expected three outputs")))?;
    Ok((q, keys, values))
}

/// The mask of [`scaled_dot_product_attention`].
#[derive(Clone, Copy, Debug, Default)]
pub enum AttentionMask<'a> {
    /// Every query sees every key.
    #[default]
    None,
    /// Query `i` sees keys up to `i + Lk - Lq` (the queries are the last `Lq` positions).
    Causal,
    /// Broadcastable to `(B, Hq, Lq, Lk)`: boolean (false: not seen) or added to the scores.
    Array(&'a Array),
}

/// `softmax(q k^T * scale + mask) v` (MLX's `mx.fast.scaled_dot_product_attention`) over
/// queries `(B, Hq, Lq, D)`, keys `(B, Hk, Lk, D)` and values `(B, Hk, Lk, Dv)`: grouped-query
/// attention when `Hk` divides `Hq` (query head `h` uses key head `h / (Hq / Hk)`). `sinks`
/// `(Hq,)` adds a logit per head to every row's softmax that takes weight but gives no value
/// (attention sinks). A row that sees no key gives NaN, as the softmax of nothing.
///
/// Query blocks of up to [`ATTENTION_QUERY_BLOCK`] (decoding) with head dims up to
/// [`ATTENTION_MAX_HEAD_DIM`] run as one fused kernel; longer ones as matmuls and a softmax,
/// unless the device has a kernel for them (on the GPU: flash attention in 16-bit floats,
/// head dims 64, 128 and 256, without a mask array or sinks). Traced for a gradient, the
/// flash kernel also keeps each row's log-sum-exp, and the gradient runs the device's flash
/// backward kernels from it; elsewhere gradients differentiate the fallback.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, fast::{self, AttentionMask}};
/// let q = Array::from_slice(&[1.0f32, 0.0], &[1, 1, 1, 2])?;
/// let k = Array::from_slice(&[1.0f32, 0.0, 0.0, 1.0], &[1, 1, 2, 2])?;
/// let v = Array::from_slice(&[1.0f32, 2.0], &[1, 1, 2, 1])?;
/// let o = fast::scaled_dot_product_attention(&q, &k, &v, 1.0, AttentionMask::None, None)?;
/// let p = 1.0 / (1.0 + (-1f32).exp()); // softmax([1, 0])[0]
/// assert!((o.item::<f32>()? - (p + 2.0 * (1.0 - p))).abs() < 1e-6);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn scaled_dot_product_attention(
    q: &Array,
    k: &Array,
    v: &Array,
    scale: f32,
    mask: AttentionMask<'_>,
    sinks: Option<&Array>,
) -> Result<Array> {
    const OP: &str = "scaled_dot_product_attention";
    for (what, a) in [("queries", q), ("keys", k), ("values", v)] {
        check_float(OP, what, a)?;
    }
    let shapes = || {
        format!(
            "queries {}, keys {}, values {}",
            fmt_shape(q.shape()),
            fmt_shape(k.shape()),
            fmt_shape(v.shape())
        )
    };
    if q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4 {
        bail!("{OP}: inputs must be (B, heads, L, D), not {}", shapes());
    }
    let (b, hq, lq, d) = (q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3]);
    let (hk, lk) = (k.shape()[1], k.shape()[2]);
    if k.shape()[0] != b || v.shape()[0] != b {
        bail!("{OP}: batch sizes differ: {}", shapes());
    }
    if k.shape()[3] != d {
        bail!(
            "{OP}: queries and keys must share the head dim: {}",
            shapes()
        );
    }
    if v.shape()[1] != hk || v.shape()[2] != lk {
        bail!(
            "{OP}: keys and values must have the same heads and length: {}",
            shapes()
        );
    }
    if hk == 0 || hq % hk != 0 {
        bail!(
            "{OP}: {hq} query heads cannot be shared by {hk} key heads: {}",
            shapes()
        );
    }
    let mut inputs = vec![q.clone(), k.clone(), v.clone()];
    let full = [b, hq, lq, lk];
    if let AttentionMask::Array(m) = mask {
        m.check()?;
        if m.dtype() != Dtype::Bool && !m.dtype().is_inexact() {
            bail!(
                "{OP}: the mask must be boolean or floating-point, not {}",
                m.dtype()
            );
        }
        let s = broadcast_shapes(OP, m.shape(), &full)?;
        if s != full {
            bail!(
                "{OP}: mask {} does not broadcast to the scores' shape {}",
                fmt_shape(m.shape()),
                fmt_shape(&full)
            );
        }
        inputs.push(ops::broadcast_to(m, &full)?);
    }
    if let Some(s) = sinks {
        check_float(OP, "sinks", s)?;
        if s.shape() != [hq] {
            bail!(
                "{OP}: sinks must have shape ({hq},) (one per query head), not {}",
                fmt_shape(s.shape())
            );
        }
        inputs.push(s.clone());
    }
    let op = |lse| FastOp::Attention {
        scale,
        causal: matches!(mask, AttentionMask::Causal),
        mask: matches!(mask, AttentionMask::Array(_)),
        sinks: sinks.is_some(),
        lse,
    };
    let fused = lq <= ATTENTION_QUERY_BLOCK
        && d.max(v.shape()[3]) <= ATTENTION_MAX_HEAD_DIM
        && inputs
            .iter()
            .all(|a| has_kernel(a.dtype()) || a.dtype() == Dtype::Bool);
    let device_kernel = |op: &FastOp| {
        crate::device::backend(crate::device::default_stream().device)
            .is_ok_and(|b| b.has_fast_kernel(op, &inputs))
    };
    if fused {
        return node(op(false), inputs);
    }
    // While a gradient is traced, the device's kernels keep each row's log-sum-exp for their
    // backward pass (where they have one).
    if crate::transforms::grad_tracing() && device_kernel(&op(true)) {
        let op = op(true);
        let specs = op.outputs(&inputs);
        let mut outs = Array::from_primitive_multi(Primitive::Fast(op), inputs, specs)?;
        return Ok(outs.swap_remove(0));
    }
    if device_kernel(&op(false)) {
        node(op(false), inputs)
    } else {
        fallback(op(false), &inputs)
    }
}

/// A user CUDA kernel compiled by NVRTC from a source string (MLX's `mx.fast.cuda_kernel`):
/// [`cuda_kernel`] makes it, [`CudaKernel::call`] runs it on arrays.
///
/// The source is the body of a kernel whose signature is generated: each input as
/// `const T* name` (T its dtype's C type: `float`, `__half`, `__nv_bfloat16`, `int`, ...),
/// then each output as `T* name`. An input whose `name_shape`, `name_strides` or `name_ndim`
/// the source mentions also gets those (its shape and strides in elements, indexable as
/// `name_shape[i]`), and `elem_to_loc(i, name_shape, name_strides, name_ndim)` maps a
/// row-major index to a strided offset. Template arguments become `typedef`s (dtypes) and
/// `constexpr` values (integers, bools). `grid` counts threads, as MLX's (blocks are
/// `grid / threadgroup`, rounded up). The CUDA headers (`cuda_fp16.h`, `cuda_bf16.h`,
/// `cooperative_groups.h`) are included when the toolkit is installed.
#[derive(Clone, Debug)]
pub struct CudaKernel {
    name: String,
    input_names: Vec<String>,
    output_names: Vec<String>,
    source: String,
    header: String,
    ensure_row_contiguous: bool,
    shared_memory: usize,
}

/// One call of a [`CudaKernel`]: launch shape, outputs and template arguments.
#[derive(Clone, Debug, Default)]
pub struct KernelCall {
    /// Threads along x, y, z.
    pub grid: [usize; 3],
    /// Threads per block along x, y, z.
    pub threadgroup: [usize; 3],
    pub output_shapes: Vec<Vec<usize>>,
    pub output_dtypes: Vec<Dtype>,
    pub template: Vec<(String, crate::primitives::TemplateArg)>,
    /// Every output element starts at this value (else outputs start uninitialised).
    pub init_value: Option<f64>,
    /// Print the generated source when it is compiled.
    pub verbose: bool,
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// A user CUDA kernel named `name` (see [`CudaKernel`]).
pub fn cuda_kernel(
    name: &str,
    input_names: &[&str],
    output_names: &[&str],
    source: &str,
    header: &str,
    ensure_row_contiguous: bool,
    shared_memory: usize,
) -> Result<CudaKernel> {
    let mut seen = std::collections::HashSet::new();
    for n in std::iter::once(&name)
        .chain(input_names)
        .chain(output_names)
    {
        if !is_ident(n) {
            bail!("cuda_kernel {name}: {n:?} is not a C identifier");
        }
    }
    for n in input_names.iter().chain(output_names) {
        if !seen.insert(*n) {
            bail!("cuda_kernel {name}: the parameter name {n} is used twice");
        }
    }
    if output_names.is_empty() {
        bail!("cuda_kernel {name}: a kernel needs at least one output");
    }
    Ok(CudaKernel {
        name: name.to_string(),
        input_names: input_names.iter().map(|s| s.to_string()).collect(),
        output_names: output_names.iter().map(|s| s.to_string()).collect(),
        source: source.to_string(),
        header: header.to_string(),
        ensure_row_contiguous,
        shared_memory,
    })
}

impl CudaKernel {
    /// The kernel applied to `inputs` (one per input name): its outputs, lazily, computed on
    /// the GPU stream they are evaluated on. A CPU stream gives an error at evaluation.
    pub fn call(&self, inputs: &[Array], call: &KernelCall) -> Result<Vec<Array>> {
        let name = &self.name;
        if inputs.len() != self.input_names.len() {
            bail!(
                "cuda_kernel {name}: {} inputs for {} input names",
                inputs.len(),
                self.input_names.len()
            );
        }
        let n = self.output_names.len();
        if call.output_shapes.len() != n || call.output_dtypes.len() != n {
            bail!(
                "cuda_kernel {name}: {} output shapes and {} output dtypes for {n} output names",
                call.output_shapes.len(),
                call.output_dtypes.len()
            );
        }
        if call.grid.contains(&0) || call.threadgroup.contains(&0) {
            bail!(
                "cuda_kernel {name}: grid {:?} and threadgroup {:?} must be positive",
                call.grid,
                call.threadgroup
            );
        }
        if call.threadgroup.iter().product::<usize>() > 1024 {
            bail!(
                "cuda_kernel {name}: a threadgroup of {:?} is over 1024 threads",
                call.threadgroup
            );
        }
        for (a, n) in inputs.iter().zip(&self.input_names) {
            a.check()?;
            if a.dtype() == Dtype::Complex64 {
                bail!("cuda_kernel {name}: input {n} is complex64, which kernels cannot take");
            }
        }
        for (d, n) in call.output_dtypes.iter().zip(&self.output_names) {
            if *d == Dtype::Complex64 {
                bail!("cuda_kernel {name}: output {n} is complex64, which kernels cannot make");
            }
        }
        for (t, _) in &call.template {
            if !is_ident(t) {
                bail!("cuda_kernel {name}: template name {t:?} is not a C identifier");
            }
        }
        let outputs: Vec<crate::device::OutSpec> = call
            .output_shapes
            .iter()
            .zip(&call.output_dtypes)
            .map(|(s, d)| crate::device::OutSpec {
                shape: s.clone(),
                dtype: *d,
            })
            .collect();
        let op = FastOp::CudaKernel(std::sync::Arc::new(crate::primitives::UserKernel {
            name: self.name.clone(),
            input_names: self.input_names.clone(),
            output_names: self.output_names.clone(),
            source: self.source.clone(),
            header: self.header.clone(),
            ensure_row_contiguous: self.ensure_row_contiguous,
            shared_memory: self.shared_memory,
            grid: call.grid,
            threadgroup: call.threadgroup,
            template: call.template.clone(),
            init_value: call.init_value,
            outputs: outputs.clone(),
            verbose: call.verbose,
        }));
        Array::from_primitive_multi(Primitive::Fast(op), inputs.to_vec(), outputs)
    }
}
