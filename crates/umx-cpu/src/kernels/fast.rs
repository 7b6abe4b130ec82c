//! CPU kernels of the fast primitives (`umx_core::fast`): each row (the last axis) in one
//! pass, in float32, rows shared across threads. Inputs are read into float32 rows first
//! (any layout, any of float32/float16/bfloat16); the output is rounded once to its dtype,
//! then multiplied by the weight and plus the bias in that dtype, as the fallback does.

use crate::strided::{PARALLEL_THRESHOLD, alloc};
use rayon::prelude::*;
use umx_core::device::OutSpec;
use umx_core::primitives::{FastOp, Projection};
use umx_core::{ArrayData, Dtype, Element, Error, Result, bf16, dispatch_dtype, f16};

pub fn eval(op: &FastOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    if let FastOp::CudaKernel(k) = op {
        return Err(Error::Invalid(format!(
            "cuda_kernel {}: a user CUDA kernel runs on a GPU only; evaluate it on a GPU stream",
            k.name
        )));
    }
    let out = outputs
        .first()
        .ok_or_else(|| Error::Device(format!("{}: expects one output", op.name())))?;
    let x = inputs
        .first()
        .ok_or_else(|| Error::Device(format!("{}: expects inputs", op.name())))?;
    let values = match *op {
        FastOp::RmsNorm { eps, weight } => {
            let w = weight.then(|| floats(&inputs[1]));
            let normed = |row: &[f32], y: &mut [f32]| {
                let ms = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
                let n = 1.0 / (ms + eps).sqrt();
                for (y, v) in y.iter_mut().zip(row) {
                    *y = v * n;
                }
            };
            norm(
                &floats(x),
                row_len(x),
                out.dtype,
                w.as_deref(),
                None,
                normed,
            )
        }
        FastOp::LayerNorm { eps, weight, bias } => {
            let w = weight.then(|| floats(&inputs[1]));
            let b = bias.then(|| floats(&inputs[1 + weight as usize]));
            let normed = |row: &[f32], y: &mut [f32]| {
                let d = row.len() as f32;
                let mean = row.iter().sum::<f32>() / d;
                let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
                let n = 1.0 / (var + eps).sqrt();
                for (y, v) in y.iter_mut().zip(row) {
                    *y = (v - mean) * n;
                }
            };
            norm(
                &floats(x),
                row_len(x),
                out.dtype,
                w.as_deref(),
                b.as_deref(),
                normed,
            )
        }
        FastOp::Softmax => {
            let xs = floats(x);
            let mut ys = vec![0f32; xs.len()];
            rows(&xs, &mut ys, row_len(x), |row, y| {
                let m = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                // An all -inf row gives 0 / 0 (NaN), as MLX; a +inf gives NaN too.
                let m = if m == f32::NEG_INFINITY { 0.0 } else { m };
                let mut s = 0.0;
                for (y, v) in y.iter_mut().zip(row) {
                    *y = (v - m).exp();
                    s += *y;
                }
                for y in y.iter_mut() {
                    *y /= s;
                }
            });
            ys
        }
        FastOp::LogSumExp => {
            let n = row_len(x);
            // Shifted by the row's maximum, by 0 where that is infinite (an all -inf row gives
            // -inf, a +inf gives +inf), as the fallback; a NaN comes through the sum.
            let lse = |row: &[f32]| -> f32 {
                let m = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let m = if m.is_infinite() { 0.0 } else { m };
                row.iter().map(|v| (v - m).exp()).sum::<f32>().ln() + m
            };
            let xs = floats(x);
            if n == 0 {
                Vec::new()
            } else if xs.len() >= PARALLEL_THRESHOLD {
                xs.par_chunks(n).map(lse).collect()
            } else {
                xs.chunks(n).map(lse).collect()
            }
        }
        FastOp::Rope {
            dims,
            traditional,
            base,
            scale,
            freqs,
        } => rope(
            x,
            &inputs[1],
            freqs.then(|| floats(&inputs[2])),
            dims,
            traditional,
            base,
            scale,
        )?,
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
            // With a projection, `x @ w.T` by the CPU's matmul or quantized kernel (the
            // composite's product) in place of its inputs.
            let x = x.clone();
            let mut inputs = inputs;
            let weights: Vec<ArrayData> = inputs.drain(1..project.inputs()).collect();
            let spec = || OutSpec {
                shape: vec![x.shape[0], x.shape[1], weights[0].shape[0]],
                dtype: x.dtype,
            };
            match project {
                Projection::None => {}
                Projection::Linear => inputs[0] = linear(&x, &weights[0], &spec())?,
                Projection::Quantized { group_size, bits } => {
                    let op = umx_core::primitives::QuantOp::QuantizedMatmul {
                        transpose: true,
                        group_size,
                        bits,
                    };
                    let mut product = vec![x.clone()];
                    product.extend(weights.iter().cloned());
                    inputs[0] = super::quantized::eval(&op, product, &[spec()])?.remove(0);
                }
            }
            let rope = Rotation::new(freqs.then(|| floats(&inputs[4])), dims, traditional, base);
            return rope_cache_write(&inputs, outputs, op.name(), heads, kv_heads, &rope, scale);
        }
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
            let s = sinks.then(|| floats(&inputs[next]));
            let (o, l) = attention(&inputs[..3], scale, causal, m, s.as_deref());
            if lse {
                let spec = outputs.get(1).ok_or_else(|| {
                    Error::Device("scaled_dot_product_attention: expects two outputs".into())
                })?;
                return Ok(vec![store(&o, out)?, store(&l, spec)?]);
            }
            o
        }
        FastOp::AttentionVjp { .. } => {
            return Err(Error::Invalid(
                "scaled_dot_product_attention_vjp: the CPU has no kernel for attention's \
                 gradients (they are differentiated through its fallback)"
                    .into(),
            ));
        }
        FastOp::Linear => return Ok(vec![linear(x, &inputs[1], out)?]),
        FastOp::SwigluLinear => swiglu_of_halves(&linear(x, &inputs[1], &product_spec(out))?, out),
        FastOp::SwigluQuantizedLinear { group_size, bits } => {
            // The product by the CPU's quantized kernel (the composite's).
            let op = umx_core::primitives::QuantOp::QuantizedMatmul {
                transpose: true,
                group_size,
                bits,
            };
            let y = super::quantized::eval(&op, inputs.clone(), &[product_spec(out)])?;
            swiglu_of_halves(&y[0], out)
        }
        FastOp::QuantizedLinearAdd { group_size, bits } => {
            // The product by the CPU's quantized kernel, then the sum (the composite's).
            let op = umx_core::primitives::QuantOp::QuantizedMatmul {
                transpose: true,
                group_size,
                bits,
            };
            let mut inputs = inputs;
            let c = inputs.pop().ok_or_else(|| {
                Error::Device("quantized_linear_add: expects x, w, scales, biases and c".into())
            })?;
            let y = super::quantized::eval(&op, inputs, outputs)?;
            let add = umx_core::primitives::BinaryOp::Add;
            return super::binary::eval(&add, vec![y[0].clone(), c], outputs);
        }
        FastOp::CudaKernel(_) => return Err(Error::Invalid("cuda_kernel: GPU only".into())),
        FastOp::NormPrologue { eps, ref op } => {
            return norm_prologue(eps, op, inputs.clone(), outputs);
        }
    };
    Ok(vec![store(&values, out)?])
}

/// [`FastOp::NormPrologue`]: the norm (as its own kernel computes it), then `op` on its
/// output.
fn norm_prologue(
    eps: f32,
    op: &FastOp,
    mut inputs: Vec<ArrayData>,
    outputs: &[OutSpec],
) -> Result<Vec<ArrayData>> {
    let (Some(weight), false) = (inputs.pop(), inputs.is_empty()) else {
        return Err(Error::Device(format!(
            "{}: expects its inputs and the norm's weight",
            op.name()
        )));
    };
    let spec = OutSpec {
        shape: inputs[0].shape.clone(),
        dtype: inputs[0].dtype,
    };
    let norm = FastOp::RmsNorm { eps, weight: true };
    inputs[0] = eval(&norm, vec![inputs[0].clone(), weight], &[spec])?.remove(0);
    eval(op, inputs, outputs)
}

/// `x @ w.T` by the CPU's matmul kernel (the composite's product), `w` viewed as its
/// transpose.
fn linear(x: &ArrayData, w: &ArrayData, spec: &OutSpec) -> Result<ArrayData> {
    let mut wt = w.clone();
    wt.shape.swap(0, 1);
    wt.strides.swap(0, 1);
    let op = umx_core::primitives::MatmulOp::Matmul;
    Ok(super::matmul::eval(&op, vec![x.clone(), wt], std::slice::from_ref(spec))?.remove(0))
}

/// The SwiGLU ops' product `(..., 2I)` for their output `(..., I)`.
fn product_spec(out: &OutSpec) -> OutSpec {
    let mut shape = out.shape.clone();
    if let Some(l) = shape.last_mut() {
        *l *= 2;
    }
    OutSpec {
        shape,
        dtype: out.dtype,
    }
}

/// `silu(g) * u` for the halves `g`, `u` of each row of the product `y` (of `out`'s dtype),
/// rounded as the element-wise ops round: the sigmoid, `g * sigmoid(g)`, the product.
fn swiglu_of_halves(y: &ArrayData, out: &OutSpec) -> Vec<f32> {
    let round = |v: f32| match out.dtype {
        Dtype::Float16 => v.cast::<f16>().cast::<f32>(),
        Dtype::Bfloat16 => v.cast::<bf16>().cast::<f32>(),
        _ => v,
    };
    let i = out.shape.last().copied().unwrap_or(0);
    if i == 0 {
        return Vec::new();
    }
    let ys = floats(y);
    ys.chunks(2 * i)
        .flat_map(|row| {
            (0..i).map(move |n| {
                let (g, u) = (row[n], row[i + n]);
                let s = round(1.0 / (1.0 + (-g).exp()));
                round(round(g * s) * u)
            })
        })
        .collect()
}

fn row_len(x: &ArrayData) -> usize {
    x.shape.last().copied().unwrap_or(1)
}

/// The elements of a float (or integer) input in row-major order, as float32.
fn floats(x: &ArrayData) -> Vec<f32> {
    dispatch_dtype!(x.dtype, T => {
        let src = x.buffer.as_slice::<T>();
        let mut out = Vec::with_capacity(x.size());
        x.for_each_index(|i| out.push(src[i].cast::<f32>()));
        out
    })
}

/// `values` rounded to the output's dtype in a fresh row-major array.
fn store(values: &[f32], out: &OutSpec) -> Result<ArrayData> {
    fn go<T: Element>(values: &[f32], out: &OutSpec) -> Result<ArrayData> {
        let mut buf = alloc::<T>(values.len())?;
        for (d, &v) in buf.as_mut_slice::<T>().iter_mut().zip(values) {
            *d = v.cast::<T>();
        }
        Ok(ArrayData::contiguous(buf, &out.shape, out.dtype))
    }
    match out.dtype {
        Dtype::Float32 => go::<f32>(values, out),
        Dtype::Float16 => go::<f16>(values, out),
        Dtype::Bfloat16 => go::<bf16>(values, out),
        d => Err(Error::Device(format!("fast: no kernel for {d} outputs"))),
    }
}

/// `v` rounded to `dtype` (and back to float32).
fn round(v: f32, dtype: Dtype) -> f32 {
    match dtype {
        Dtype::Float16 => v.cast::<f16>().cast::<f32>(),
        Dtype::Bfloat16 => v.cast::<bf16>().cast::<f32>(),
        _ => v,
    }
}

/// Runs `f(row, out_row)` over rows of `n`, in parallel when the work is large.
fn rows(xs: &[f32], ys: &mut [f32], n: usize, f: impl Fn(&[f32], &mut [f32]) + Sync) {
    if n == 0 {
        return;
    }
    if xs.len() >= PARALLEL_THRESHOLD {
        ys.par_chunks_mut(n)
            .zip(xs.par_chunks(n))
            .for_each(|(y, x)| f(x, y));
    } else {
        for (y, x) in ys.chunks_mut(n).zip(xs.chunks(n)) {
            f(x, y);
        }
    }
}

/// A normalisation: `f` writes the normalised row; the weight and bias apply after rounding
/// to the output dtype.
fn norm(
    xs: &[f32],
    n: usize,
    dtype: Dtype,
    w: Option<&[f32]>,
    b: Option<&[f32]>,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) -> Vec<f32> {
    let mut ys = vec![0f32; xs.len()];
    rows(xs, &mut ys, n, |row, y| {
        f(row, y);
        for (j, y) in y.iter_mut().enumerate() {
            let mut v = round(*y, dtype);
            if let Some(w) = w {
                v = round(v * w[j], dtype);
            }
            if let Some(b) = b {
                v = round(v + b[j], dtype);
            }
            *y = v;
        }
    });
    ys
}

fn rope(
    x: &ArrayData,
    offset: &ArrayData,
    freqs: Option<Vec<f32>>,
    dims: usize,
    traditional: bool,
    base: f32,
    scale: f32,
) -> Result<Vec<f32>> {
    let xs = floats(x);
    let offsets: Vec<f32> = floats(offset);
    let nd = x.shape.len();
    let (l, d) = (x.shape[nd - 2], x.shape[nd - 1]);
    // Rows of one index of the first axis (for a per-row offset).
    let per_first: usize = x.shape[1..nd - 1].iter().product();
    let rotation = Rotation::new(freqs, dims, traditional, base);
    let mut ys = xs.clone();
    let rows_n = xs.len().checked_div(d).unwrap_or(0);
    let row = |r: usize, y: &mut [f32]| {
        let off = if offsets.len() == 1 {
            offsets[0]
        } else {
            offsets[r / per_first.max(1)]
        };
        rotation.apply(y, (off + (r % l) as f32) * scale);
    };
    if rows_n == 0 {
        return Ok(ys);
    }
    if xs.len() >= PARALLEL_THRESHOLD {
        ys.par_chunks_mut(d)
            .enumerate()
            .for_each(|(r, y)| row(r, y));
    } else {
        for (r, y) in ys.chunks_mut(d).enumerate() {
            row(r, y);
        }
    }
    Ok(ys)
}

/// Rotary embedding of one row: pair `i` turns by `position / freqs[i]` or `position *
/// base^(-2i / dims)`.
struct Rotation {
    inv_freqs: Vec<f32>,
    traditional: bool,
}

impl Rotation {
    fn new(freqs: Option<Vec<f32>>, dims: usize, traditional: bool, base: f32) -> Rotation {
        let half = dims / 2;
        let inv_freqs = match freqs {
            Some(f) => f.iter().map(|f| 1.0 / f).collect(),
            None => {
                let k = -base.ln() / half as f32;
                (0..half).map(|i| (i as f32 * k).exp()).collect()
            }
        };
        Rotation {
            inv_freqs,
            traditional,
        }
    }

    /// Turns the pairs of `y` for `position` (offset + row, times the scale).
    fn apply(&self, y: &mut [f32], position: f32) {
        let half = self.inv_freqs.len();
        for (i, inv) in self.inv_freqs.iter().enumerate() {
            let (s, c) = (position * inv).sin_cos();
            let (a, b) = if self.traditional {
                (2 * i, 2 * i + 1)
            } else {
                (i, i + half)
            };
            let (xa, xb) = (y[a], y[b]);
            y[a] = xa * c - xb * s;
            y[b] = xa * s + xb * c;
        }
    }
}

/// `fast::rope_cache_write`: the rotated queries and the caches with the step's rows
/// written (fresh copies).
fn rope_cache_write(
    inputs: &[ArrayData],
    outputs: &[OutSpec],
    name: &str,
    heads: usize,
    kv_heads: usize,
    rope: &Rotation,
    scale: f32,
) -> Result<Vec<ArrayData>> {
    let [qkv, offset, keys, values, ..] = inputs else {
        return Err(Error::Device(format!(
            "{name}: expects qkv, offset, keys and values"
        )));
    };
    let (b, l) = (qkv.shape[0], qkv.shape[1]);
    let (capacity, d) = (keys.shape[2], keys.shape[3]);
    let off = floats(offset)[0] as i64;
    if off < 0 || off + l as i64 > capacity as i64 {
        return Err(Error::Index(format!(
            "{name}: rows {off}..{} do not fit a cache of {capacity} positions",
            off + l as i64
        )));
    }
    let off = off as usize;
    let xs = floats(qkv);
    let (mut q, mut ks, mut vs) = (vec![0f32; b * heads * l * d], floats(keys), floats(values));
    let all = heads + 2 * kv_heads;
    for bi in 0..b {
        for li in 0..l {
            let position = (off + li) as f32 * scale;
            for h in 0..all {
                let src = &xs[((bi * l + li) * all + h) * d..][..d];
                let (dst, rotate) = if h < heads {
                    (&mut q[((bi * heads + h) * l + li) * d..][..d], true)
                } else if h < heads + kv_heads {
                    let kh = h - heads;
                    (
                        &mut ks[((bi * kv_heads + kh) * capacity + off + li) * d..][..d],
                        true,
                    )
                } else {
                    let kh = h - heads - kv_heads;
                    (
                        &mut vs[((bi * kv_heads + kh) * capacity + off + li) * d..][..d],
                        false,
                    )
                };
                dst.copy_from_slice(src);
                if rotate {
                    rope.apply(dst, position);
                }
            }
        }
    }
    let spec = |i: usize| {
        outputs
            .get(i)
            .ok_or_else(|| Error::Device(format!("{name}: expects three outputs")))
    };
    Ok(vec![
        store(&q, spec(0)?)?,
        store(&ks, spec(1)?)?,
        store(&vs, spec(2)?)?,
    ])
}

/// Attention row by row: the scores of one query against its keys, a softmax (with the sink
/// in its denominator), then the weighted sum of the values. Also each row's log-sum-exp of
/// its scores (+inf for a row that sees no key).
fn attention(
    qkv: &[ArrayData],
    scale: f32,
    causal: bool,
    mask: Option<&ArrayData>,
    sinks: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let (q, k, v) = (floats(&qkv[0]), floats(&qkv[1]), floats(&qkv[2]));
    let [b, hq, lq, d] = qkv[0].shape[..] else {
        return (Vec::new(), Vec::new());
    };
    let (hk, lk, dv) = (qkv[1].shape[1], qkv[1].shape[2], qkv[2].shape[3]);
    let group = hq / hk.max(1);
    // The mask as float32: boolean false becomes -inf.
    let m: Option<Vec<f32>> = mask.map(|m| {
        if m.dtype == Dtype::Bool {
            let src = m.buffer.as_slice::<bool>();
            let mut out = Vec::with_capacity(m.size());
            m.for_each_index(|i| out.push(if src[i] { 0.0 } else { f32::NEG_INFINITY }));
            out
        } else {
            floats(m)
        }
    });
    let mut out = vec![0f32; b * hq * lq * dv];
    let mut lse = vec![0f32; b * hq * lq];
    let row = |r: usize, o: &mut [f32], lse: &mut f32| {
        let (bh, i) = (r / lq, r % lq);
        let (bi, h) = (bh / hq, bh % hq);
        let kh = bi * hk + h / group;
        let qrow = &q[r * d..(r + 1) * d];
        let seen = if causal {
            (i + lk + 1).saturating_sub(lq).min(lk)
        } else {
            lk
        };
        let mut s = vec![f32::NEG_INFINITY; seen];
        for (j, s) in s.iter_mut().enumerate() {
            let krow = &k[(kh * lk + j) * d..(kh * lk + j + 1) * d];
            let mut dot = qrow.iter().zip(krow).map(|(a, b)| a * b).sum::<f32>() * scale;
            if let Some(m) = &m {
                dot += m[r * lk + j];
            }
            *s = dot;
        }
        let sink = sinks.map(|sk| sk[h]);
        let mx = s
            .iter()
            .copied()
            .chain(sink)
            .fold(f32::NEG_INFINITY, f32::max);
        let mut den = sink.map_or(0.0, |sk| (sk - mx).exp());
        o.fill(0.0);
        for (j, &sj) in s.iter().enumerate() {
            let p = (sj - mx).exp();
            if p == 0.0 {
                continue;
            }
            den += p;
            let vrow = &v[(kh * lk + j) * dv..(kh * lk + j + 1) * dv];
            for (o, &x) in o.iter_mut().zip(vrow) {
                *o += p * x;
            }
        }
        for o in o.iter_mut() {
            *o /= den;
        }
        *lse = if den > 0.0 {
            mx + den.ln()
        } else {
            f32::INFINITY
        };
    };
    if dv == 0 {
        // No values to weigh: the log-sum-exp alone.
        lse.par_iter_mut()
            .enumerate()
            .for_each(|(r, l)| row(r, &mut [], l));
        return (out, lse);
    }
    out.par_chunks_mut(dv)
        .zip(lse.par_iter_mut())
        .enumerate()
        .for_each(|(r, (o, l))| row(r, o, l));
    (out, lse)
}
