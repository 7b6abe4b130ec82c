//! `Fast`: the fused kernels of [`crate::fast`] (MLX's `mx.fast`): normalisations, softmax,
//! rotary embeddings and attention, each one pass over its rows where the composite would
//! take several.
//!
//! Every fast primitive has a *fallback*, the same computation as ordinary ops
//! ([`FastOp::fallback`]): transformations differentiate and batch through it, and its values
//! are the semantics the kernels follow. The exceptions: softmax's closed-form vjp, and
//! attention that kept its log-sum-exp, whose vjp is [`FastOp::AttentionVjp`] (the device's
//! flash backward kernels; its own fallback is the fallback's vjp). Kernels compute in float32 and round once, where the
//! fallback does the same, so the two agree to the rounding of the output dtype.

mod transforms;

use crate::device::OutSpec;
use crate::{Array, Dtype, Result, ops};

/// The fast primitives. Inputs are listed with each.
#[derive(Clone, Debug, PartialEq)]
pub enum FastOp {
    /// `x * rsqrt(mean(x^2, -1) + eps)`, rounded to the output dtype, times the weight when
    /// there is one. Inputs: `x`, then the weight `(D,)` when `weight`.
    RmsNorm { eps: f32, weight: bool },
    /// `(x - mean) * rsqrt(var + eps)` over the last axis, rounded to the output dtype, times
    /// the weight and plus the bias present. Inputs: `x`, then the weight and the bias `(D,)`
    /// that are present.
    LayerNorm { eps: f32, weight: bool, bias: bool },
    /// Softmax over the last axis, computed in float32. Input: `x`.
    Softmax,
    /// `log(sum(exp(x)))` over the last axis (which goes), computed in float32 and shifted by
    /// each row's maximum (by 0 where that is infinite). Input: `x`.
    LogSumExp,
    /// Rotary embedding of the first `dims` features of `(..., L, D)` inputs at positions
    /// `offset + l` (times `scale`). `traditional` rotates neighbours `(2i, 2i + 1)`, else
    /// the halves `(i, i + dims / 2)`. The angle of pair `i` is `position / freqs[i]`, with
    /// `freqs` an input when `freqs`, else `base^(2i / dims)`. Inputs: `x`, the offset (an
    /// int32 scalar, or one per leading index: shape `(x.shape[0],)`), then `freqs`
    /// `(dims / 2,)` when given.
    Rope {
        dims: usize,
        traditional: bool,
        base: f32,
        scale: f32,
        freqs: bool,
    },
    /// `softmax(q k^T * scale + mask) v` over `(B, heads, L, D)` inputs, keys and values
    /// shared by groups of query heads. `causal` lets query `i` see the keys up to `i + Lk -
    /// Lq` (aligned at the end, as MLX). Inputs: `q`, `k`, `v`, then the mask (boolean: false
    /// positions excluded; else added to the scores) broadcast to `(B, Hq, Lq, Lk)` when
    /// `mask`, then the sinks `(Hq,)` when `sinks` (a logit per head that joins each row's
    /// softmax but carries no value). With `lse` a second output: each row's log-sum-exp of
    /// its scaled scores (float32, `(B, Hq, Lq)`, +inf for a row that sees no key), kept for
    /// the backward pass ([`FastOp::AttentionVjp`]); the op builds it while a gradient is
    /// being traced and the device has the kernels for both passes.
    Attention {
        scale: f32,
        causal: bool,
        mask: bool,
        sinks: bool,
        lse: bool,
    },
    /// The gradients of attention without a mask array or sinks, from the saved output and
    /// log-sum-exp (the vjp of `Attention` with `lse`): outputs `dq`, `dk`, `dv`. Inputs: `q`,
    /// `k`, `v`, the output, its log-sum-exp, and the output's cotangent. A row that sees no
    /// key takes no part in the gradients.
    AttentionVjp { scale: f32, causal: bool },
    /// `silu(x @ w[..I].T) * (x @ w[I..].T)` for `w` of shape `(2I, K)` (a gate and an up
    /// projection stacked, as a SwiGLU block's): the two products rounded to the dtype, then
    /// SiLU and the product as the element-wise ops compute them. Inputs: `x (..., K)`, `w`.
    /// Made only for a few rows of `x` (a decoding step's), where the device computes both
    /// halves of each output in one matrix-vector pass.
    SwigluLinear,
    /// [`FastOp::SwigluLinear`] with the weight quantized (MLX's affine scheme, as
    /// `quantized_matmul` with `transpose`). Inputs: `x (..., K)`, the packed weight
    /// `(2I, K * bits / 32)`, its scales and biases `(2I, K / group_size)`.
    SwigluQuantizedLinear { group_size: usize, bits: usize },
    /// `x @ w.T + c` with the weight quantized (as `quantized_matmul` with `transpose`, the
    /// product rounded to the dtype before the sum): what `compile` makes of a quantized
    /// product's residual sum for a few rows of `x` (a decoding step's output projections),
    /// so a device adds `c` in the product's own pass. Inputs: `x (..., K)`, the packed
    /// weight `(N, K * bits / 32)`, its scales and biases `(N, K / group_size)`, and `c` of
    /// the output's shape and dtype.
    QuantizedLinearAdd { group_size: usize, bits: usize },
    /// A decoding step's queries and keys rotated and its keys and values written into
    /// preallocated caches (`fast::rope_cache_write`): `qkv (B, L, (heads + 2 kv_heads) D)`
    /// split into heads, the query and key heads rotated as [`FastOp::Rope`] at positions
    /// `offset + l`, the key and value heads written into rows `offset..offset + L` of the
    /// caches. Inputs: `qkv`, the offset (an int32 scalar), `keys`, `values` `(B, kv_heads,
    /// capacity, D)` of `qkv`'s dtype, then `freqs` when `freqs`. Outputs: the rotated queries
    /// `(B, heads, L, D)`, the keys and the values. With a `project`ion, `qkv` is the
    /// product `x @ w.T` of the inputs in its place (see [`Projection`]; made only for a few
    /// rows, which a device computes in its matrix-vector pass).
    RopeCacheWrite {
        project: Projection,
        heads: usize,
        kv_heads: usize,
        dims: usize,
        traditional: bool,
        base: f32,
        scale: f32,
        freqs: bool,
    },
    /// `x @ w.T` for a weight `(N, K)`: what `compile` makes of a matrix product whose left
    /// operand is an RMS norm's output (a language model's head), inside
    /// [`FastOp::NormPrologue`]. Inputs: `x (..., K)`, `w`.
    Linear,
    /// A user CUDA kernel (`fast::cuda_kernel`, MLX's `mx.fast.cuda_kernel`): its source and
    /// this call's launch. Inputs: the kernel's inputs. GPU only: it has no fallback, so no
    /// CPU kernel, gradient or batching rule.
    CudaKernel(std::sync::Arc<UserKernel>),
    /// `op` on `x` normalised first as [`FastOp::RmsNorm`] with a weight: what `compile`
    /// makes of an RMS norm whose one use is the first input of a matrix-vector op
    /// ([`FastOp::SwigluLinear`], [`FastOp::RopeCacheWrite`] with a linear projection, a
    /// matrix product as [`FastOp::Linear`]), so a device
    /// can normalise in the product's own pass (no kernel, no row in memory, between them).
    /// Inputs: `op`'s, then the norm's weight `(K,)` (of `x`'s dtype).
    NormPrologue { eps: f32, op: Box<FastOp> },
}

/// Where [`FastOp::RopeCacheWrite`]'s `qkv` comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Projection {
    /// `qkv` is the first input.
    None,
    /// `x @ w.T` of two inputs, `x (B, L, K)` and `w ((heads + 2 kv_heads) D, K)`.
    Linear,
    /// `x @ w.T` with `w` quantized (as `quantized_matmul` with `transpose`): four inputs,
    /// `x (B, L, K)`, the packed weight `((heads + 2 kv_heads) D, K * bits / 32)`, its scales
    /// and biases.
    Quantized { group_size: usize, bits: usize },
}

impl Projection {
    /// The inputs it takes in `qkv`'s place.
    pub fn inputs(self) -> usize {
        match self {
            Projection::None => 1,
            Projection::Linear => 2,
            Projection::Quantized { .. } => 4,
        }
    }

    /// The name of the op that writes the caches from this projection, for messages.
    pub fn op_name(self) -> &'static str {
        match self {
            Projection::None => "rope_cache_write",
            Projection::Linear => "linear_rope_cache_write",
            Projection::Quantized { .. } => "quantized_linear_rope_cache_write",
        }
    }
}

/// A user CUDA kernel and one call's launch configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct UserKernel {
    /// The kernel's name (a C identifier; the generated kernel is `umx_user_<name>`).
    pub name: String,
    /// The parameter names of the inputs and outputs in the generated signature.
    pub input_names: Vec<String>,
    pub output_names: Vec<String>,
    /// The body of the kernel, and code to put before it.
    pub source: String,
    pub header: String,
    /// Inputs are copied to row-major order first (else their strides are passed).
    pub ensure_row_contiguous: bool,
    /// Dynamic shared memory in bytes.
    pub shared_memory: usize,
    /// Threads in total along each axis (MLX's convention), and threads per block.
    pub grid: [usize; 3],
    pub threadgroup: [usize; 3],
    /// Names the source may use for a dtype (`typedef`), an integer or a bool (`constexpr`).
    pub template: Vec<(String, TemplateArg)>,
    /// Every output element starts at this value (else the outputs are uninitialised).
    pub init_value: Option<f64>,
    pub outputs: Vec<OutSpec>,
    /// Print the generated source when it is compiled.
    pub verbose: bool,
}

/// Why a user kernel cannot take the fallback's road.
fn no_fallback(k: &UserKernel) -> crate::Error {
    crate::Error::Invalid(format!(
        "cuda_kernel {}: a user CUDA kernel runs on a GPU only, and has no gradient or batching \
         rule",
        k.name
    ))
}

/// A template argument of a user kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TemplateArg {
    Dtype(Dtype),
    Int(i64),
    Bool(bool),
}

impl FastOp {
    /// The op's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            FastOp::RmsNorm { .. } => "rms_norm",
            FastOp::LayerNorm { .. } => "layer_norm",
            FastOp::Softmax => "softmax",
            FastOp::LogSumExp => "logsumexp",
            FastOp::Rope { .. } => "rope",
            FastOp::RopeCacheWrite { project, .. } => project.op_name(),
            FastOp::Attention { .. } => "scaled_dot_product_attention",
            FastOp::AttentionVjp { .. } => "scaled_dot_product_attention_vjp",
            FastOp::Linear => "linear",
            FastOp::SwigluLinear => "swiglu_linear",
            FastOp::SwigluQuantizedLinear { .. } => "swiglu_quantized_linear",
            FastOp::QuantizedLinearAdd { .. } => "quantized_linear_add",
            FastOp::CudaKernel(_) => "cuda_kernel",
            FastOp::NormPrologue { op, .. } => match **op {
                FastOp::SwigluLinear => "rms_norm_swiglu_linear",
                FastOp::RopeCacheWrite { .. } => "rms_norm_linear_rope_cache_write",
                FastOp::Linear => "rms_norm_linear",
                _ => "rms_norm_prologue",
            },
        }
    }

    /// For [`FastOp::NormPrologue`], the inner op's inputs with `x` normalised as the
    /// fallback computes it ([`FastOp::RmsNorm`]'s fallback), and the inner op.
    fn normalised(&self, inputs: &[Array]) -> Result<Option<(Vec<Array>, &FastOp)>> {
        let FastOp::NormPrologue { eps, op } = self else {
            return Ok(None);
        };
        let Some((weight, rest)) = inputs.split_last() else {
            crate::bail!("{}: expects the norm's weight last", self.name());
        };
        let norm = FastOp::RmsNorm {
            eps: *eps,
            weight: true,
        };
        let mut inner = rest.to_vec();
        inner[0] = norm.fallback(&[rest[0].clone(), weight.clone()])?.remove(0);
        Ok(Some((inner, op)))
    }

    /// Every output for these inputs (one but for a user kernel's, attention's gradients,
    /// and attention with its log-sum-exp).
    pub fn outputs(&self, inputs: &[Array]) -> Vec<OutSpec> {
        let spec = |a: &Array| OutSpec {
            shape: a.shape().to_vec(),
            dtype: a.dtype(),
        };
        match self {
            FastOp::CudaKernel(k) => k.outputs.clone(),
            FastOp::NormPrologue { op, .. } => op.outputs(&inputs[..inputs.len() - 1]),
            FastOp::AttentionVjp { .. } => inputs[..3].iter().map(spec).collect(),
            FastOp::RopeCacheWrite { project, .. } => {
                let at = 1 + project.inputs();
                vec![
                    self.output(inputs),
                    spec(&inputs[at]),
                    spec(&inputs[at + 1]),
                ]
            }
            FastOp::Attention { lse: true, .. } => vec![
                self.output(inputs),
                OutSpec {
                    shape: inputs[0].shape()[..3].to_vec(),
                    dtype: Dtype::Float32,
                },
            ],
            _ => vec![self.output(inputs)],
        }
    }

    /// The (first) output for these inputs (checked by the op functions).
    pub fn output(&self, inputs: &[Array]) -> OutSpec {
        let x = &inputs[0];
        match self {
            FastOp::RmsNorm { .. } | FastOp::LayerNorm { .. } => OutSpec {
                shape: x.shape().to_vec(),
                dtype: inputs[1..]
                    .iter()
                    .fold(x.dtype(), |d, w| crate::promote_types(d, w.dtype())),
            },
            FastOp::Softmax | FastOp::Rope { .. } => OutSpec {
                shape: x.shape().to_vec(),
                dtype: x.dtype(),
            },
            FastOp::LogSumExp => OutSpec {
                shape: x.shape()[..x.ndim().saturating_sub(1)].to_vec(),
                dtype: x.dtype(),
            },
            FastOp::Attention { .. } => {
                let mut shape = x.shape().to_vec();
                shape[3] = inputs[2].shape()[3];
                OutSpec {
                    shape,
                    dtype: x.dtype(),
                }
            }
            FastOp::AttentionVjp { .. } => OutSpec {
                shape: x.shape().to_vec(),
                dtype: x.dtype(),
            },
            FastOp::Linear | FastOp::QuantizedLinearAdd { .. } => {
                let mut shape = x.shape().to_vec();
                if let Some(last) = shape.last_mut() {
                    *last = inputs[1].shape()[0];
                }
                OutSpec {
                    shape,
                    dtype: x.dtype(),
                }
            }
            FastOp::SwigluLinear | FastOp::SwigluQuantizedLinear { .. } => {
                let mut shape = x.shape().to_vec();
                if let Some(last) = shape.last_mut() {
                    *last = inputs[1].shape()[0] / 2;
                }
                OutSpec {
                    shape,
                    dtype: x.dtype(),
                }
            }
            FastOp::RopeCacheWrite { project, heads, .. } => {
                let (s, d) = (x.shape(), inputs[1 + project.inputs()].shape()[3]);
                OutSpec {
                    shape: vec![s[0], *heads, s[1], d],
                    dtype: x.dtype(),
                }
            }
            FastOp::CudaKernel(k) => k.outputs[0].clone(),
            FastOp::NormPrologue { op, .. } => op.output(&inputs[..inputs.len() - 1]),
        }
    }

    /// The computation as ordinary ops: what transformations see, and the values the kernels
    /// follow.
    pub fn fallback(&self, inputs: &[Array]) -> Result<Vec<Array>> {
        if let FastOp::CudaKernel(k) = self {
            return Err(no_fallback(k));
        }
        if let Some((inner, op)) = self.normalised(inputs)? {
            return op.fallback(&inner);
        }
        let out = self.output(inputs).dtype;
        let x = &inputs[0];
        // float64 computes in float64; the rest in float32.
        let compute = if x.dtype() == Dtype::Float64 {
            Dtype::Float64
        } else {
            Dtype::Float32
        };
        let y = match *self {
            FastOp::RmsNorm { eps, weight } => {
                let x = x.astype(compute)?;
                let ms = ops::mean(&ops::square(&x)?, -1, true)?;
                let y = ops::multiply(&x, ops::rsqrt(&ops::add(&ms, eps as f64)?)?)?.astype(out)?;
                if weight {
                    ops::multiply(&y, &inputs[1])?
                } else {
                    y
                }
            }
            FastOp::LayerNorm { eps, weight, bias } => {
                let x = x.astype(compute)?;
                let xc = ops::subtract(&x, ops::mean(&x, -1, true)?)?;
                let var = ops::mean(&ops::square(&xc)?, -1, true)?;
                let mut y =
                    ops::multiply(&xc, ops::rsqrt(&ops::add(&var, eps as f64)?)?)?.astype(out)?;
                let mut next = 1;
                if weight {
                    y = ops::multiply(&y, &inputs[next])?;
                    next += 1;
                }
                if bias {
                    y = ops::add(&y, &inputs[next])?;
                }
                y
            }
            FastOp::Softmax => ops::reduce::softmax_composite(x, true)?,
            FastOp::LogSumExp => ops::reduce::logsumexp_composite(x, &[x.ndim() - 1], false)?,
            FastOp::Rope {
                dims,
                traditional,
                base,
                scale,
                freqs,
            } => rope_fallback(
                x,
                compute,
                &inputs[1],
                freqs.then(|| &inputs[2]),
                dims,
                traditional,
                base,
                scale,
            )?,
            FastOp::Attention {
                scale,
                causal,
                mask,
                sinks,
                lse,
            } => {
                let mut next = 3;
                let m = mask.then(|| {
                    next += 1;
                    &inputs[next - 1]
                });
                let s = sinks.then(|| &inputs[next]);
                let o = attention_fallback(x, &inputs[1], &inputs[2], scale, causal, m, s)?;
                if lse {
                    let scores = attention_scores(x, &inputs[1], scale, causal, m)?;
                    let l = ops::logsumexp(&scores.astype(Dtype::Float32)?, -1, false)?;
                    // A row that sees no key: +inf (so that it weighs nothing in the backward).
                    let none = ops::equal(&l, f64::NEG_INFINITY)?;
                    return Ok(vec![o, ops::where_(&none, f64::INFINITY, &l)?]);
                }
                o
            }
            FastOp::AttentionVjp { scale, causal } => {
                let (q, dout) = (x, &inputs[5]);
                let [b, hq, lq, d] = q.shape()[..] else {
                    crate::bail!("scaled_dot_product_attention_vjp: queries must be 4-d");
                };
                // Causal with more queries than keys: the first rows see no key and take no
                // part in the gradients (their dq is zero).
                let skip = if causal {
                    lq.saturating_sub(inputs[1].shape()[2])
                } else {
                    0
                };
                let rows = |a: &Array| {
                    let s = a.shape();
                    ops::slice(
                        a,
                        &[0, 0, skip as i64, 0],
                        &[s[0], s[1], s[2], s[3]].map(|n| n as i64),
                        &[],
                    )
                };
                let primals = [rows(q)?, inputs[1].clone(), inputs[2].clone()];
                let (_, mut grads) = crate::transforms::vjp(
                    |p| {
                        Ok(vec![attention_fallback(
                            &p[0], &p[1], &p[2], scale, causal, None, None,
                        )?])
                    },
                    &primals,
                    &[rows(dout)?],
                )?;
                if skip > 0 {
                    let zeros = ops::zeros(&[b, hq, skip, d], q.dtype())?;
                    grads[0] = ops::concatenate(&[zeros, grads[0].clone()], 2)?;
                }
                return Ok(grads);
            }
            FastOp::RopeCacheWrite {
                project,
                heads,
                kv_heads,
                dims,
                traditional,
                base,
                scale,
                freqs,
            } => {
                let [b, l, _] = x.shape()[..] else {
                    crate::bail!("rope_cache_write: qkv must be (B, L, features)");
                };
                // With a projection, the product first (in place of its inputs).
                let at = project.inputs() - 1;
                let qkv = match project {
                    Projection::None => x.clone(),
                    Projection::Linear => ops::matmul(x, &ops::transpose(&inputs[1], [1i64, 0])?)?,
                    Projection::Quantized { group_size, bits } => ops::quantized_matmul(
                        x, &inputs[1], &inputs[2], &inputs[3], true, group_size, bits,
                    )?,
                };
                let inputs = &inputs[at..];
                let x = &qkv;
                let d = inputs[2].shape()[3];
                // Heads `from..from + n` of qkv as (B, n, L, D).
                let split = |from: usize, n: usize| {
                    let part = ops::slice(
                        x,
                        &[0, 0, (from * d) as i64],
                        &[b as i64, l as i64, ((from + n) * d) as i64],
                        &[],
                    )?;
                    let part = ops::reshape(&part, &[b as i64, l as i64, n as i64, d as i64])?;
                    ops::transpose(&part, [0i64, 2, 1, 3])
                };
                let freqs = freqs.then(|| &inputs[4]);
                let rotate = |a: &Array| {
                    rope_fallback(
                        a,
                        compute,
                        &inputs[1],
                        freqs,
                        dims,
                        traditional,
                        base,
                        scale,
                    )
                };
                let q = rotate(&split(0, heads)?)?;
                let k = rotate(&split(heads, kv_heads)?)?;
                let v = split(heads + kv_heads, kv_heads)?;
                let at = [ops::reshape(&inputs[1], &[1])?];
                let window = |a: &Array| ops::expand_dims(a, 0);
                let keys = ops::scatter(&inputs[2], &at, &window(&k)?, &[2])?;
                let values = ops::scatter(&inputs[3], &at, &window(&v)?, &[2])?;
                return Ok(vec![q, keys, values]);
            }
            FastOp::Linear => ops::matmul(x, &ops::transpose(&inputs[1], [1i64, 0])?)?,
            FastOp::SwigluLinear => {
                swiglu_halves(&ops::matmul(x, &ops::transpose(&inputs[1], [1i64, 0])?)?)?
            }
            FastOp::SwigluQuantizedLinear { group_size, bits } => {
                let [_, w, s, b] = inputs else {
                    crate::bail!("swiglu_quantized_linear: expects x, w, scales and biases");
                };
                swiglu_halves(&ops::quantized_matmul(x, w, s, b, true, group_size, bits)?)?
            }
            FastOp::QuantizedLinearAdd { group_size, bits } => {
                let [_, w, s, b, c] = inputs else {
                    crate::bail!("quantized_linear_add: expects x, w, scales, biases and c");
                };
                ops::add(
                    &ops::quantized_matmul(x, w, s, b, true, group_size, bits)?,
                    c,
                )?
            }
            FastOp::CudaKernel(ref k) => return Err(no_fallback(k)),
            FastOp::NormPrologue { .. } => {
                crate::bail!("{}: expects the norm's weight last", self.name())
            }
        };
        Ok(vec![y])
    }
}

/// `silu(g) * u` for the halves `g` and `u` of the last axis of `y`, as ordinary ops.
fn swiglu_halves(y: &Array) -> Result<Array> {
    let nd = y.ndim();
    let i = (y.shape()[nd - 1] / 2) as i64;
    let half = |from: i64| {
        let mut start = vec![0i64; nd];
        let mut stop: Vec<i64> = y.shape().iter().map(|&n| n as i64).collect();
        start[nd - 1] = from;
        stop[nd - 1] = from + i;
        ops::slice(y, &start, &stop, &[])
    };
    let (g, u) = (half(0)?, half(i)?);
    ops::multiply(&ops::multiply(&g, &ops::sigmoid(&g)?)?, &u)
}

/// Rotary embedding as ordinary ops, in float32, rounded once.
#[allow(clippy::too_many_arguments)]
fn rope_fallback(
    x: &Array,
    compute: Dtype,
    offset: &Array,
    freqs: Option<&Array>,
    dims: usize,
    traditional: bool,
    base: f32,
    scale: f32,
) -> Result<Array> {
    let nd = x.ndim();
    let (l, d) = (x.shape()[nd - 2], x.shape()[nd - 1]);
    let half = dims / 2;
    // Positions (L,) or, with an offset per leading index, (B, 1.., L) to broadcast over x.
    let offset = offset.astype(compute)?;
    let mut pos = ops::arange(0.0, l as f64, 1.0, compute)?;
    if offset.ndim() == 1 {
        let mut shape = vec![offset.shape()[0] as i64];
        shape.extend(std::iter::repeat_n(1, nd - 2));
        pos = ops::add(&pos, &ops::reshape(&offset, &shape)?)?;
    } else {
        pos = ops::add(&pos, &offset)?;
    }
    let pos = ops::multiply(&pos, scale as f64)?;
    let inv_freqs = match freqs {
        Some(f) => ops::reciprocal(&f.astype(compute)?)?,
        None => ops::exp(&ops::multiply(
            ops::arange(0.0, half as f64, 1.0, compute)?,
            -(base as f64).ln() / half as f64,
        )?)?,
    };
    // theta: (..., L, half)
    let theta = ops::multiply(ops::expand_dims(&pos, -1)?, &inv_freqs)?;
    let (cos, sin) = (ops::cos(&theta)?, ops::sin(&theta)?);
    let xf = x.astype(compute)?;
    let parts = ops::split(&xf, [dims], -1)?;
    let rot = &parts[0];
    let rotated = if traditional {
        let pairs = ops::unflatten(rot, -1, &[half as i64, 2])?;
        let ab = ops::split(&pairs, 2usize, -1)?;
        let (a, b) = (ops::squeeze(&ab[0], -1)?, ops::squeeze(&ab[1], -1)?);
        let ra = ops::subtract(ops::multiply(&a, &cos)?, ops::multiply(&b, &sin)?)?;
        let rb = ops::add(ops::multiply(&a, &sin)?, ops::multiply(&b, &cos)?)?;
        ops::flatten(&ops::stack(&[ra, rb], -1)?, -2, -1)?
    } else {
        let ab = ops::split(rot, 2usize, -1)?;
        let (a, b) = (&ab[0], &ab[1]);
        let ra = ops::subtract(ops::multiply(a, &cos)?, ops::multiply(b, &sin)?)?;
        let rb = ops::add(ops::multiply(a, &sin)?, ops::multiply(b, &cos)?)?;
        ops::concatenate(&[ra, rb], -1)?
    };
    let y = if d > dims {
        ops::concatenate(&[rotated, parts[1].clone()], -1)?
    } else {
        rotated
    };
    y.astype(x.dtype())
}

/// Attention as ordinary ops, as MLX's fallback: scores in the inputs' dtype, a float32
/// softmax rounded to it, then the weighted values.
fn attention_fallback(
    q: &Array,
    k: &Array,
    v: &Array,
    scale: f32,
    causal: bool,
    mask: Option<&Array>,
    sinks: Option<&Array>,
) -> Result<Array> {
    let (b, hq, lq) = (q.shape()[0], q.shape()[1], q.shape()[2]);
    let (hk, lk) = (k.shape()[1], k.shape()[2]);
    let r = hq / hk;
    let scores = attention_scores(q, k, scale, causal, mask)?;
    let p = match sinks {
        None => ops::reduce::softmax_composite(&scores, true)?,
        Some(s) => {
            // The sink joins each row's softmax as one more logit, then is dropped.
            let s = ops::broadcast_to(
                &ops::reshape(&s.astype(scores.dtype())?, &[1, hq as i64, 1, 1])?,
                &[b, hq, lq, 1],
            )?;
            let all = ops::reduce::softmax_composite(&ops::concatenate(&[s, scores], -1)?, true)?;
            ops::slice(
                &all,
                &[0, 0, 0, 1],
                &[b as i64, hq as i64, lq as i64, lk as i64 + 1],
                &[],
            )?
        }
    };
    let pg = ops::reshape(
        &p.astype(v.dtype())?,
        &[b as i64, hk as i64, (r * lq) as i64, lk as i64],
    )?;
    let o = ops::matmul(&pg, v)?;
    ops::reshape(&o, &[b as i64, hq as i64, lq as i64, -1])?.astype(q.dtype())
}

/// The scaled scores of attention in the inputs' dtype, `(B, Hq, Lq, Lk)`, with the causal
/// mask and the mask array applied (-inf where a key is not seen).
fn attention_scores(
    q: &Array,
    k: &Array,
    scale: f32,
    causal: bool,
    mask: Option<&Array>,
) -> Result<Array> {
    let (b, hq, lq) = (q.shape()[0], q.shape()[1], q.shape()[2]);
    let (hk, lk) = (k.shape()[1], k.shape()[2]);
    let r = hq / hk;
    // Groups of query heads share a key head: (B, Hk, r * Lq, D) against (B, Hk, Lk, D).
    let qs = ops::multiply(q, Array::scalar(scale).astype(q.dtype())?)?;
    let qg = ops::reshape(&qs, &[b as i64, hk as i64, (r * lq) as i64, -1])?;
    let scores = ops::matmul(&qg, &ops::swapaxes(k, -1, -2)?)?;
    let mut scores = ops::reshape(&scores, &[b as i64, hq as i64, lq as i64, lk as i64])?;
    if causal {
        // Query i sees keys j <= i + lk - lq.
        let qi = ops::arange(0.0, lq as f64, 1.0, Dtype::Int32)?;
        let kj = ops::arange(0.0, lk as f64, 1.0, Dtype::Int32)?;
        let seen = ops::less_equal(
            ops::expand_dims(&kj, 0)?,
            ops::add(ops::expand_dims(&qi, 1)?, lk as f64 - lq as f64)?,
        )?;
        scores = ops::where_(&seen, &scores, f64::NEG_INFINITY)?;
    }
    if let Some(m) = mask {
        scores = if m.dtype() == Dtype::Bool {
            ops::where_(m, &scores, f64::NEG_INFINITY)?
        } else {
            ops::add(&scores, m)?
        };
    }
    Ok(scores)
}
