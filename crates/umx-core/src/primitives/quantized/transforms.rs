//! vjp, jvp and vmap rules of the quantization primitives.
//!
//! The codes are integers: nothing is differentiable with respect to `w_q` (an Err, as in
//! MLX), and `quantize` itself has no derivative. A dequantized matrix is `s * q + b` per
//! group, so with respect to the scales and biases the derivatives are sums over each group:
//! `ds = Σ dW * q`, `db = Σ dW`, where `dW` is the cotangent of the dequantized matrix
//! (`g^T x` or `x^T g` for a product). With respect to `x`, the cotangent of a product is the
//! product with `transpose` flipped.

use super::QuantOp;
use crate::transforms::rules::*;
use crate::{Array, Result, bail, ops};

/// The codes of `w_q` as floats of `like`'s dtype, `(..., K)`.
fn codes(w_q: &Array, like: &Array, group_size: usize, bits: usize) -> Result<Array> {
    let ones = ops::ones_like(like)?;
    let zeros = ops::zeros_like(like)?;
    ops::dequantize(w_q, &ones, &zeros, group_size, bits)
}

/// `x` `(..., K)` viewed as groups `(..., K / group_size, group_size)`.
fn grouped(x: &Array, group_size: usize) -> Result<Array> {
    let mut shape: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
    let k = shape.pop().unwrap_or(0);
    shape.extend([k / group_size as i64, group_size as i64]);
    ops::reshape(x, &shape)
}

/// The cotangents of the scales (`which == 0`) or the biases of a dequantized matrix whose
/// cotangent is `dw` `(..., K)`.
fn scale_bias_vjp(
    dw: &Array,
    w_q: &Array,
    scales: &Array,
    group_size: usize,
    bits: usize,
    which: usize,
) -> Result<Array> {
    let dw3 = grouped(dw, group_size)?;
    let d = if which == 0 {
        let q3 = grouped(&codes(w_q, scales, group_size, bits)?, group_size)?;
        ops::sum(&ops::multiply(&dw3, &q3)?, -1, false)?
    } else {
        ops::sum(&dw3, -1, false)?
    };
    ops::astype(&d, scales.dtype())
}

/// The tangent of a dequantized matrix given the tangents of its scales and biases.
fn dequantized_tangent(
    w_q: &Array,
    scales: &Array,
    ts: &Option<Array>,
    tb: &Option<Array>,
    group_size: usize,
    bits: usize,
) -> Result<Option<Array>> {
    let from_scales = match ts {
        Some(t) => {
            let q3 = grouped(&codes(w_q, scales, group_size, bits)?, group_size)?;
            Some(ops::multiply(&q3, &ops::expand_dims(t, -1)?)?)
        }
        None => None,
    };
    let d = match (from_scales, tb) {
        (Some(a), Some(b)) => Some(ops::add(&a, &ops::expand_dims(b, -1)?)?),
        (Some(a), None) => Some(a),
        (None, Some(b)) => {
            let mut shape = b.shape().to_vec();
            shape.push(group_size);
            Some(ops::broadcast_to(&ops::expand_dims(b, -1)?, &shape)?)
        }
        (None, None) => None,
    };
    d.map(|d| {
        let mut shape: Vec<i64> = scales.shape().iter().map(|&s| s as i64).collect();
        if let Some(l) = shape.last_mut() {
            *l *= group_size as i64;
        }
        ops::astype(&ops::reshape(&d, &shape)?, scales.dtype())
    })
    .transpose()
}

fn no_code_derivative(op: &QuantOp) -> Result<Vec<Array>> {
    bail!(
        "{}: cannot differentiate with respect to the quantized matrix w_q (its codes are \
         integers)",
        op.name()
    )
}

impl QuantOp {
    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        _outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let (group_size, bits) = self.params();
        let g = &cotangents[0];
        match *self {
            QuantOp::Quantize { .. } => bail!("quantize: not differentiable"),
            QuantOp::Dequantize { .. } => argnums
                .iter()
                .map(|&i| match i {
                    0 => no_code_derivative(self).map(|mut v| v.remove(0)),
                    _ => scale_bias_vjp(g, &inputs[0], &inputs[1], group_size, bits, i - 1),
                })
                .collect(),
            QuantOp::QuantizedMatmul { transpose, .. } => {
                let (x, w_q, s, b) = (&inputs[0], &inputs[1], &inputs[2], &inputs[3]);
                argnums
                    .iter()
                    .map(|&i| match i {
                        0 => {
                            let dx =
                                ops::quantized_matmul(g, w_q, s, b, !transpose, group_size, bits)?;
                            ops::astype(&unbroadcast(&dx, x.shape())?, x.dtype())
                        }
                        1 => no_code_derivative(self).map(|mut v| v.remove(0)),
                        _ => {
                            // dW: (N, K) = g^T x when transposed, (K, N) = x^T g when not.
                            let (x2, g2) = if w_q.ndim() == 2 {
                                let k = x.shape()[x.ndim() - 1] as i64;
                                let n = g.shape()[g.ndim() - 1] as i64;
                                (ops::reshape(x, &[-1, k])?, ops::reshape(g, &[-1, n])?)
                            } else {
                                (x.clone(), g.clone())
                            };
                            let dw = if transpose {
                                ops::matmul(&ops::swapaxes(&g2, -1, -2)?, &x2)?
                            } else {
                                ops::matmul(&ops::swapaxes(&x2, -1, -2)?, &g2)?
                            };
                            scale_bias_vjp(&dw, w_q, s, group_size, bits, i - 2)
                        }
                    })
                    .collect()
            }
        }
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let (group_size, bits) = self.params();
        match *self {
            QuantOp::Quantize { .. } => bail!("quantize: not differentiable"),
            QuantOp::Dequantize { .. } => {
                if tangents[0].is_some() {
                    return no_code_derivative(self);
                }
                let t = dequantized_tangent(
                    &inputs[0],
                    &inputs[1],
                    &tangents[1],
                    &tangents[2],
                    group_size,
                    bits,
                )?;
                Ok(vec![match t {
                    Some(t) => t,
                    None => ops::zeros_like(&outputs[0])?,
                }])
            }
            QuantOp::QuantizedMatmul { transpose, .. } => {
                if tangents[1].is_some() {
                    return no_code_derivative(self);
                }
                let (x, w_q, s, b) = (&inputs[0], &inputs[1], &inputs[2], &inputs[3]);
                let from_x = tangents[0]
                    .as_ref()
                    .map(|t| ops::quantized_matmul(t, w_q, s, b, transpose, group_size, bits))
                    .transpose()?;
                let dw = dequantized_tangent(w_q, s, &tangents[2], &tangents[3], group_size, bits)?;
                let from_w = dw
                    .map(|dw| {
                        if transpose {
                            ops::matmul(x, &ops::swapaxes(&dw, -1, -2)?)
                        } else {
                            ops::matmul(x, &dw)
                        }
                    })
                    .transpose()?;
                let y = &outputs[0];
                let t = match (from_x, from_w) {
                    (Some(a), Some(b)) => ops::add(&a, &b)?,
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => return Ok(vec![ops::zeros_like(y)?]),
                };
                Ok(vec![ops::astype(&ops::reshape(&t, &dims(y))?, y.dtype())?])
            }
        }
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        let (group_size, bits) = self.params();
        let n = batch_size(inputs, axes);
        match *self {
            QuantOp::Quantize { .. } => {
                // Quantization works along the last axis: any other batch axis stays put.
                let w = &inputs[0];
                let (w, b) = match axes[0] {
                    Some(b) if b + 1 < w.ndim() => (w.clone(), b),
                    a => (to_front(w, a)?, 0),
                };
                let (q, s, bi) = ops::quantize(&w, group_size, bits)?;
                Ok((vec![q, s, bi], vec![Some(b); 3]))
            }
            QuantOp::Dequantize { .. } => {
                let all = all_to_front(inputs, axes, n)?;
                let y = ops::dequantize(&all[0], &all[1], &all[2], group_size, bits)?;
                Ok((vec![y], vec![Some(0)]))
            }
            QuantOp::QuantizedMatmul { transpose, .. } => {
                let x = &inputs[0];
                let x_rank = x.ndim() - axes[0].is_some() as usize;
                let mut xf = to_front(x, axes[0])?;
                let x1d = x_rank == 1;
                if x1d {
                    // One row: (..., K) as (..., 1, K), so it lines up with batched weights.
                    xf = ops::expand_dims(&xf, -2)?;
                }
                let y = if axes[1..].iter().all(Option::is_none) {
                    ops::quantized_matmul(
                        &xf, &inputs[1], &inputs[2], &inputs[3], transpose, group_size, bits,
                    )?
                } else {
                    let w_rank = inputs[1].ndim() - axes[1].is_some() as usize;
                    let rank = w_rank.max(x_rank.max(2));
                    let w = all_to_front(&inputs[1..], &axes[1..], n)?;
                    let w: Vec<Array> = w
                        .iter()
                        .map(|a| pad_example_rank(a, rank))
                        .collect::<Result<_>>()?;
                    if axes[0].is_some() {
                        xf = pad_example_rank(&xf, rank)?;
                    }
                    ops::quantized_matmul(&xf, &w[0], &w[1], &w[2], transpose, group_size, bits)?
                };
                let mut shape = vec![n as i64];
                shape.extend(dims(&outputs[0]));
                Ok((vec![ops::reshape(&y, &shape)?], vec![Some(0)]))
            }
        }
    }
}

fn dims(x: &Array) -> Vec<i64> {
    x.shape().iter().map(|&d| d as i64).collect()
}
