//! Quantization ops, MLX's affine scheme: `quantize`, `dequantize`, `quantized_matmul` and
//! `gather_qmm`. The format (groups, scales and biases, the packed bit stream) is described in
//! [`primitives::quantized`](crate::primitives::quantized).
//!
//! Every op checks its arguments at once and names itself, the shapes and the quantization
//! parameters in its error.

use crate::primitives::quantized::{SUPPORTED_BITS, SUPPORTED_GROUP_SIZES};
use crate::primitives::{Primitive, QuantOp};
use crate::shape::{broadcast_shapes, fmt_shape};
use crate::{Array, Dtype, Result, bail, ops, promote_types};

fn check_params(op: &str, group_size: usize, bits: usize) -> Result<()> {
    if !SUPPORTED_GROUP_SIZES.contains(&group_size) {
        bail!(
            "{op}: group size {group_size} is not supported; the supported group sizes are 32, \
             64 and 128"
        );
    }
    if !SUPPORTED_BITS.contains(&bits) {
        bail!("{op}: {bits} bits are not supported; the supported bits are 1, 2, 3, 4, 5, 6 and 8");
    }
    Ok(())
}

fn is_quantizable_float(d: Dtype) -> bool {
    matches!(d, Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16)
}

fn node(op: QuantOp, inputs: Vec<Array>) -> Result<Vec<Array>> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|x| x.shape()).collect();
    let dtypes: Vec<Dtype> = inputs.iter().map(|x| x.dtype()).collect();
    let outs = op.outputs(&shapes, &dtypes);
    Array::from_primitive_multi(Primitive::Quantized(op), inputs, outs)
}

/// Quantizes the matrix `w` (`(..., K)`, float32, float16 or bfloat16) with MLX's affine
/// scheme: groups of `group_size` (32, 64 or 128) consecutive elements along the last axis,
/// each element a `bits`-bit code (1, 2, 3, 4, 5, 6 or 8). Returns `(w_q, scales, biases)`:
/// the codes packed into uint32 words `(..., K * bits / 32)`, and per group a scale and a
/// bias of `w`'s dtype `(..., K / group_size)`, with `w ≈ scale * code + bias`. The result
/// equals `mx.quantize`'s bit for bit.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let w = Array::from_slice(&(0..64).map(|i| i as f32).collect::<Vec<_>>(), &[2, 32])?;
/// let (w_q, scales, biases) = ops::quantize(&w, 32, 4)?;
/// assert_eq!(w_q.shape(), &[2, 4]);
/// assert_eq!(scales.shape(), &[2, 1]);
/// let back = ops::dequantize(&w_q, &scales, &biases, 32, 4)?;
/// let err = ops::abs(&(&back - &w))?.max(None)?.item::<f32>()?;
/// assert!(err <= 1.04); // half a step: 31 / 15 / 2
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn quantize(w: &Array, group_size: usize, bits: usize) -> Result<(Array, Array, Array)> {
    w.check()?;
    check_params("quantize", group_size, bits)?;
    if !is_quantizable_float(w.dtype()) {
        bail!(
            "quantize: only float32, float16 and bfloat16 matrices can be quantized, but w has \
             type {}",
            w.dtype()
        );
    }
    if w.ndim() < 2 {
        bail!(
            "quantize: the matrix to quantize must have at least 2 dimensions, but w has shape \
             {}",
            fmt_shape(w.shape())
        );
    }
    let k = w.shape()[w.ndim() - 1];
    if !k.is_multiple_of(group_size) {
        bail!(
            "quantize: the last dimension of w (shape {}) must be divisible by the group size \
             {group_size}",
            fmt_shape(w.shape())
        );
    }
    let mut outs = node(QuantOp::Quantize { group_size, bits }, vec![w.clone()])?;
    let biases = outs.pop();
    let scales = outs.pop();
    let w_q = outs.pop();
    match (w_q, scales, biases) {
        (Some(q), Some(s), Some(b)) => Ok((q, s, b)),
        _ => bail!("quantize: expected three outputs"),
    }
}

/// Checks `w_q`, `scales` and `biases` against each other; returns the unpacked length of the
/// rows of `w_q` and the dtype of `scales` and `biases` (their promoted float type).
pub(crate) fn check_quantized(
    op: &str,
    w_q: &Array,
    scales: &Array,
    biases: &Array,
    group_size: usize,
    bits: usize,
) -> Result<(usize, Dtype)> {
    w_q.check()?;
    scales.check()?;
    biases.check()?;
    check_params(op, group_size, bits)?;
    if w_q.dtype() != Dtype::Uint32 {
        bail!(
            "{op}: the quantized matrix must be uint32, but w has type {}",
            w_q.dtype()
        );
    }
    if w_q.ndim() == 0 {
        bail!("{op}: the quantized matrix must have at least 1 dimension, but w is a scalar");
    }
    if scales.shape() != biases.shape() {
        bail!(
            "{op}: scales and biases must have the same shape, but have shapes {} and {}",
            fmt_shape(scales.shape()),
            fmt_shape(biases.shape())
        );
    }
    let dtype = promote_types(scales.dtype(), biases.dtype());
    if !is_quantizable_float(dtype) {
        bail!(
            "{op}: scales and biases must be float32, float16 or bfloat16, but have types {} \
             and {}",
            scales.dtype(),
            biases.dtype()
        );
    }
    let words = w_q.shape()[w_q.ndim() - 1];
    let k = words * 32 / bits;
    let mut want = w_q.shape().to_vec();
    if let Some(l) = want.last_mut() {
        *l = k / group_size;
    }
    if !(words * 32).is_multiple_of(bits)
        || !k.is_multiple_of(group_size)
        || scales.shape() != &want[..]
    {
        bail!(
            "{op}: the shapes of the quantized matrix {} and of its scales and biases {} do not \
             fit with group_size={group_size} and bits={bits} (expected scales of shape {})",
            fmt_shape(w_q.shape()),
            fmt_shape(scales.shape()),
            fmt_shape(&want)
        );
    }
    Ok((k, dtype))
}

/// The matrix that `quantize` packed: `scale * code + bias` for every element, in the dtype of
/// `scales` and `biases`. `w_q` is `(..., K * bits / 32)` uint32, `scales` and `biases`
/// `(..., K / group_size)`; the result is `(..., K)`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// // Codes 0, 1, 2, ... 7 of one 4-bit group of 32, then zeros.
/// let w_q = Array::from_slice(&[0x7654_3210u32, 0, 0, 0], &[1, 4])?;
/// let scales = Array::from_slice(&[0.5f32], &[1, 1])?;
/// let biases = Array::from_slice(&[-1.0f32], &[1, 1])?;
/// let w = ops::dequantize(&w_q, &scales, &biases, 32, 4)?.to_vec::<f32>()?;
/// assert_eq!(&w[..4], &[-1.0, -0.5, 0.0, 0.5]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn dequantize(
    w_q: &Array,
    scales: &Array,
    biases: &Array,
    group_size: usize,
    bits: usize,
) -> Result<Array> {
    let (_, dtype) = check_quantized("dequantize", w_q, scales, biases, group_size, bits)?;
    let scales = ops::astype(scales, dtype)?;
    let biases = ops::astype(biases, dtype)?;
    let mut outs = node(
        QuantOp::Dequantize { group_size, bits },
        vec![w_q.clone(), scales, biases],
    )?;
    match outs.pop() {
        Some(o) => Ok(o),
        None => bail!("dequantize: expected one output"),
    }
}

/// `x @ W^T` (`transpose`, the layout of a linear layer's `(out, in)` weight) or `x @ W`, where
/// `W` is the matrix `dequantize(w_q, scales, biases, group_size, bits)`, without forming `W`.
///
/// `x` is `(..., K)`. With a 2-D `w_q` every leading dim of `x` is a row; with a batched `w_q`
/// (`(..., N, K * bits / 32)` transposed) `x` is `(..., M, K)` and the batch dims broadcast.
/// The result has the promoted dtype of `x` and `scales` (a float type), as MLX's.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let w = ops::reshape(&ops::arange(0.0, 4.0, 1.0 / 16.0, None)?, &[2, 32])?;
/// let (w_q, s, b) = ops::quantize(&w, 32, 8)?;
/// let x = ops::ones(&[3, 32], None)?;
/// let y = ops::quantized_matmul(&x, &w_q, &s, &b, true, 32, 8)?;
/// let want = ops::matmul(&x, &ops::dequantize(&w_q, &s, &b, 32, 8)?.t()?)?;
/// assert_eq!(y.shape(), &[3, 2]);
/// assert!(ops::allclose(&y, &want, 1e-5, 1e-5, false)?.item::<bool>()?);
/// # Ok::<(), umx_core::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn quantized_matmul(
    x: &Array,
    w_q: &Array,
    scales: &Array,
    biases: &Array,
    transpose: bool,
    group_size: usize,
    bits: usize,
) -> Result<Array> {
    let op = "quantized_matmul";
    x.check()?;
    let (k_packed, sdtype) = check_quantized(op, w_q, scales, biases, group_size, bits)?;
    if w_q.ndim() < 2 {
        bail!(
            "{op}: the quantized matrix must have at least 2 dimensions, but w has shape {}",
            fmt_shape(w_q.shape())
        );
    }
    let dtype = promote_types(x.dtype(), sdtype);
    if !is_quantizable_float(dtype) {
        bail!(
            "{op}: x of type {} and scales of type {sdtype} give {dtype}; only float32, \
             float16 and bfloat16 are supported",
            x.dtype()
        );
    }
    let rows = w_q.shape()[w_q.ndim() - 2];
    let (k, n) = if transpose {
        (k_packed, rows)
    } else {
        (rows, k_packed)
    };
    if x.ndim() == 0 || x.shape()[x.ndim() - 1] != k {
        bail!(
            "{op}: the last dimension of x (shape {}) does not match the dequantized matrix \
             ({}, {}) given by w of shape {} with group_size={group_size}, bits={bits} and \
             transpose={transpose}",
            fmt_shape(x.shape()),
            if transpose { n } else { k },
            if transpose { k } else { n },
            fmt_shape(w_q.shape())
        );
    }
    let x = ops::astype(x, dtype)?;
    let mut inputs = vec![
        x,
        w_q.clone(),
        ops::astype(scales, dtype)?,
        ops::astype(biases, dtype)?,
    ];
    if w_q.ndim() > 2 {
        // Batched weights: every input is broadcast to one batch shape (as views).
        if inputs[0].ndim() < 2 {
            bail!(
                "{op}: with batched quantized weights (w of shape {}) x must have at least 2 \
                 dimensions, but has shape {}",
                fmt_shape(w_q.shape()),
                fmt_shape(inputs[0].shape())
            );
        }
        let (xs, ws) = (inputs[0].shape().to_vec(), w_q.shape().to_vec());
        let batch = match broadcast_shapes(op, &xs[..xs.len() - 2], &ws[..ws.len() - 2]) {
            Ok(b) => b,
            Err(_) => bail!(
                "{op}: the batch dimensions of x (shape {}) and w (shape {}) cannot be \
                 broadcast together",
                fmt_shape(&xs),
                fmt_shape(&ws)
            ),
        };
        for a in inputs.iter_mut() {
            let s = a.shape();
            let mut shape = batch.clone();
            shape.extend_from_slice(&s[s.len() - 2..]);
            if a.shape() != &shape[..] {
                *a = ops::broadcast_to(a, &shape)?;
            }
        }
    }
    let mut outs = node(
        QuantOp::QuantizedMatmul {
            transpose,
            group_size,
            bits,
        },
        inputs,
    )?;
    match outs.pop() {
        Some(o) => Ok(o),
        None => bail!("{op}: expected one output"),
    }
}

/// The flat batch indices of an operand of `gather_qmm`: `indices` (checked to be integers)
/// or every batch entry in order, shaped as the batch dims.
fn batch_indices(op: &str, what: &str, batch: &[usize], indices: Option<&Array>) -> Result<Array> {
    match indices {
        Some(i) => {
            i.check()?;
            if !i.dtype().is_integer() {
                bail!(
                    "{op}: {what} must be an integer array, but has type {}",
                    i.dtype()
                );
            }
            Ok(i.clone())
        }
        None => {
            let n: usize = batch.iter().product();
            let shape: Vec<i64> = batch.iter().map(|&d| d as i64).collect();
            ops::reshape(&ops::arange(0, n as i64, 1, Dtype::Uint32)?, &shape)
        }
    }
}

/// A quantized matrix product with gathered operands, as MLX's `gather_qmm` (the product of a
/// mixture-of-experts layer): `x` is `(..., M, K)` and `w_q` `(..., N, K * bits / 32)`
/// (transposed); their batch dims are flattened and indexed by `lhs_indices` and `rhs_indices`
/// (each defaulting to every batch entry in order), which broadcast together to `I`. The
/// result is `I + (M, N)`: `out[i] = x[lhs[i]] @ W[rhs[i]]^T`.
///
/// It is built from `take` and a batched [`quantized_matmul`], so it gathers the selected
/// weights before the product (memory proportional to the number of indices).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let w = ops::reshape(&ops::arange(0.0, 6.0, 1.0 / 32.0, None)?, &[3, 2, 32])?;
/// let (w_q, s, b) = ops::quantize(&w, 32, 8)?;
/// let x = ops::ones(&[1, 32], None)?;
/// let rhs = Array::from_slice(&[2u32, 0], &[2])?;
/// let y = ops::gather_qmm(&x, &w_q, &s, &b, None, Some(&rhs), true, 32, 8)?;
/// assert_eq!(y.shape(), &[2, 1, 2]);
/// # Ok::<(), umx_core::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gather_qmm(
    x: &Array,
    w_q: &Array,
    scales: &Array,
    biases: &Array,
    lhs_indices: Option<&Array>,
    rhs_indices: Option<&Array>,
    transpose: bool,
    group_size: usize,
    bits: usize,
) -> Result<Array> {
    let op = "gather_qmm";
    x.check()?;
    check_quantized(op, w_q, scales, biases, group_size, bits)?;
    if x.ndim() < 2 || w_q.ndim() < 2 {
        bail!(
            "{op}: x and w must have at least 2 dimensions, but have shapes {} and {}",
            fmt_shape(x.shape()),
            fmt_shape(w_q.shape())
        );
    }
    let (xn, wn) = (x.ndim(), w_q.ndim());
    let lhs = batch_indices(op, "lhs_indices", &x.shape()[..xn - 2], lhs_indices)?;
    let rhs = batch_indices(op, "rhs_indices", &w_q.shape()[..wn - 2], rhs_indices)?;
    let shape = match broadcast_shapes(op, lhs.shape(), rhs.shape()) {
        Ok(s) => s,
        Err(_) => bail!(
            "{op}: lhs_indices of shape {} and rhs_indices of shape {} cannot be broadcast \
             together",
            fmt_shape(lhs.shape()),
            fmt_shape(rhs.shape())
        ),
    };
    let flat = |i: &Array| -> Result<Array> {
        let b = ops::broadcast_to(i, &shape)?;
        ops::reshape(&b, &[-1])
    };
    let (lhs, rhs) = (flat(&lhs)?, flat(&rhs)?);
    let pick = |a: &Array, idx: &Array| -> Result<Array> {
        let s = a.shape();
        let n = s.len();
        let a3 = ops::reshape(a, &[-1, s[n - 2] as i64, s[n - 1] as i64])?;
        ops::take(&a3, idx, Some(0))
    };
    let y = quantized_matmul(
        &pick(x, &lhs)?,
        &pick(w_q, &rhs)?,
        &pick(scales, &rhs)?,
        &pick(biases, &rhs)?,
        transpose,
        group_size,
        bits,
    )?;
    let mut out: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    out.extend(y.shape()[1..].iter().map(|&d| d as i64));
    ops::reshape(&y, &out)
}
