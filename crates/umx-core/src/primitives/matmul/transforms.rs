//! vjp, jvp and vmap rules of `matmul` and `addmm`.
//!
//! Vectors are first made matrices (a left vector a row, a right vector a column), so one rule
//! covers every case: `da = g @ b^T`, `db = a^T @ g`, summed over broadcast batch dims.

use super::{MatmulOp, matrix_dims};
use crate::transforms::rules::*;
use crate::{Array, Result, ops};

/// `x` as a matrix operand (at least 2-D): a 1-D left operand as a row, a right one as a
/// column.
fn as_matrix(x: &Array, left: bool) -> Result<Array> {
    if x.ndim() >= 2 {
        return Ok(x.clone());
    }
    let k = x.size() as i64;
    let shape = if left { [1, k] } else { [k, 1] };
    ops::reshape(x, &shape)
}

fn dims_i64(x: &Array) -> Vec<i64> {
    x.shape().iter().map(|&d| d as i64).collect()
}

/// The cotangents of `a @ b` for `a` (`which == 0`) or `b`, given the output cotangent `g`.
fn matmul_vjp(a: &Array, b: &Array, g: &Array, which: usize) -> Result<Array> {
    let (a2, b2) = (as_matrix(a, true)?, as_matrix(b, false)?);
    let (ma, mb) = (matrix_dims(a.shape(), true), matrix_dims(b.shape(), false));
    let batch = crate::shape::broadcast_shapes("matmul", &ma.batch, &mb.batch)?;
    let mut g_shape: Vec<i64> = batch.iter().map(|&d| d as i64).collect();
    g_shape.extend([ma.rows as i64, mb.cols as i64]);
    let g2 = ops::reshape(g, &g_shape)?;
    let t = |x: &Array| ops::swapaxes(x, -1, -2);
    // An operand that is a transposed matrix (a Linear layer's `x @ w.T`) gets its cotangent
    // as the transpose of a product laid out like the matrix it came from: the transpose's
    // own vjp then hands `w` a row-major gradient, which what reads it next (an optimizer's
    // element-wise update) takes contiguously, as torch's `grad_output.T @ input` does.
    // The transposed product is summed over broadcast batch axes before it is transposed, so
    // the sum is laid out like the matrix too.
    let swapped = |x: &Array| {
        let mut s = x.shape().to_vec();
        let n = s.len();
        s.swap(n - 2, n - 1);
        s
    };
    let d = if which == 0 {
        if transposed(a) {
            t(&unbroadcast(&ops::matmul(&b2, &t(&g2)?)?, &swapped(&a2))?)?
        } else {
            unbroadcast(&ops::matmul(&g2, &t(&b2)?)?, a2.shape())?
        }
    } else if transposed(b) {
        t(&unbroadcast(&ops::matmul(&t(&g2)?, &a2)?, &swapped(&b2))?)?
    } else {
        unbroadcast(&ops::matmul(&t(&a2)?, &g2)?, b2.shape())?
    };
    ops::reshape(&d, &dims_i64(if which == 0 { a } else { b }))
}

/// Whether `x` (of at least two axes) is a matrix with its last two axes swapped: made by a
/// transpose that swaps them and keeps the rest, or held with column-major strides.
fn transposed(x: &Array) -> bool {
    let n = x.ndim();
    if n < 2 {
        return false;
    }
    match x.primitive() {
        Some(crate::primitives::Primitive::Shape(
            crate::primitives::shape::ShapeOp::Transpose { perm },
        )) => {
            perm[n - 2] == n - 1
                && perm[n - 1] == n - 2
                && perm[..n - 2].iter().enumerate().all(|(i, &p)| i == p)
        }
        Some(_) => false,
        None => x
            .data()
            .is_ok_and(|d| d.strides[n - 2] == 1 && d.strides[n - 1] != 1 && d.shape[n - 2] > 1),
    }
}

/// `ta @ b + a @ tb`, for the tangents given.
fn matmul_jvp(
    a: &Array,
    b: &Array,
    ta: &Option<Array>,
    tb: &Option<Array>,
) -> Result<Option<Array>> {
    let l = ta.as_ref().map(|t| ops::matmul(t, b)).transpose()?;
    let r = tb.as_ref().map(|t| ops::matmul(a, t)).transpose()?;
    Ok(match (l, r) {
        (Some(l), Some(r)) => Some(ops::add(&l, &r)?),
        (l, r) => l.or(r),
    })
}

/// `a @ b` over batched operands: one batched matmul, batch axis in front, shaped
/// `[n] + like`.
fn batched_matmul(
    a: &Array,
    b: &Array,
    axes: &[Option<usize>],
    n: usize,
    like: &Array,
) -> Result<Array> {
    let prep = |x: &Array, ax: Option<usize>, left: bool| -> Result<(Array, usize)> {
        match ax {
            None => {
                let m = as_matrix(x, left)?;
                let r = m.ndim() - 2;
                Ok((m, r))
            }
            Some(_) => {
                let f = to_front(x, ax)?;
                let f = if f.ndim() == 2 {
                    let k = f.shape()[1] as i64;
                    {
                        let shape = if left {
                            [n as i64, 1, k]
                        } else {
                            [n as i64, k, 1]
                        };
                        ops::reshape(&f, &shape)?
                    }
                } else {
                    f
                };
                let r = f.ndim() - 3;
                Ok((f, r))
            }
        }
    };
    let (a, ra) = prep(a, axes[0], true)?;
    let (b, rb) = prep(b, axes[1], false)?;
    let r = ra.max(rb);
    let a = if axes[0].is_some() {
        pad_example_rank(&a, r + 2)?
    } else {
        a
    };
    let b = if axes[1].is_some() {
        pad_example_rank(&b, r + 2)?
    } else {
        b
    };
    let mut shape = vec![n as i64];
    shape.extend(dims_i64(like));
    ops::reshape(&ops::matmul(&a, &b)?, &shape)
}

impl MatmulOp {
    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        _outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let g = &cotangents[0];
        match self {
            MatmulOp::Matmul => argnums
                .iter()
                .map(|&i| matmul_vjp(&inputs[0], &inputs[1], g, i))
                .collect(),
            MatmulOp::AddMm { alpha, beta } => argnums
                .iter()
                .map(|&i| match i {
                    0 => unbroadcast(&scaled(g, *beta)?, inputs[0].shape()),
                    _ => scaled(&matmul_vjp(&inputs[1], &inputs[2], g, i - 1)?, *alpha),
                })
                .collect(),
        }
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let y = &outputs[0];
        let d = match self {
            MatmulOp::Matmul => matmul_jvp(&inputs[0], &inputs[1], &tangents[0], &tangents[1])?,
            MatmulOp::AddMm { alpha, beta } => {
                let p = matmul_jvp(&inputs[1], &inputs[2], &tangents[1], &tangents[2])?
                    .map(|p| scaled(&p, *alpha))
                    .transpose()?;
                let c = tangents[0].as_ref().map(|t| scaled(t, *beta)).transpose()?;
                match (p, c) {
                    (Some(p), Some(c)) => Some(ops::add(&p, &c)?),
                    (p, c) => p.or(c),
                }
            }
        };
        let d = match d {
            Some(d) => ops::broadcast_to(&ops::astype(&d, y.dtype())?, y.shape())?,
            None => ops::zeros_like(y)?,
        };
        Ok(vec![d])
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        let n = batch_size(inputs, axes);
        let y = &outputs[0];
        let out = match self {
            MatmulOp::Matmul => batched_matmul(&inputs[0], &inputs[1], axes, n, y)?,
            MatmulOp::AddMm { alpha, beta } => {
                let p = if axes[1].is_some() || axes[2].is_some() {
                    batched_matmul(&inputs[1], &inputs[2], &axes[1..], n, y)?
                } else {
                    ops::expand_dims(&ops::matmul(&inputs[1], &inputs[2])?, 0)?
                };
                let p = ops::multiply(&p, *alpha)?;
                let aligned = align_elementwise(&[p, inputs[0].clone()], &[Some(0), axes[0]])?;
                let sum = ops::add(&aligned[0], &ops::multiply(&aligned[1], *beta)?)?;
                let mut shape = vec![n];
                shape.extend_from_slice(y.shape());
                ops::astype(&ops::broadcast_to(&sum, &shape)?, y.dtype())?
            }
        };
        Ok((vec![out], vec![Some(0)]))
    }
}

/// `x * s`; `x` itself when `s` is 1 and `x` is a float array (the common `addmm` with
/// `alpha = beta = 1` then costs no pass over its gradients).
fn scaled(x: &Array, s: f64) -> Result<Array> {
    if s == 1.0 && x.dtype().is_inexact() {
        Ok(x.clone())
    } else {
        ops::multiply(x, s)
    }
}
