//! vjp, jvp and vmap rules of the reductions.
//!
//! A reduction's cotangent is broadcast back over the reduced axes. `max` and `min` split it
//! evenly among tied extremes (as MLX does); `prod` multiplies by the product of the other
//! elements (computed with exclusive scans, so zeros are handled exactly). `all`, `any` and the
//! arg-reductions have zero derivatives.

use super::{ReduceKind, ReduceOp};
use crate::primitives::Primitive;
use crate::transforms::rules::*;
use crate::{Array, Result, ops};

/// `g` (shaped like the reduction's output) broadcast back to the input's shape.
fn spread(g: &Array, input: &[usize], axes: &[usize]) -> Result<Array> {
    let mut kept: Vec<i64> = input.iter().map(|&d| d as i64).collect();
    for &a in axes {
        kept[a] = 1;
    }
    ops::broadcast_to(&ops::reshape(g, &kept)?, input)
}

/// For every element, the product of the other elements of its reduction group.
fn product_of_others(x: &Array, axes: &[usize]) -> Result<Array> {
    let nd = x.ndim();
    let rest: Vec<usize> = (0..nd).filter(|i| !axes.contains(i)).collect();
    let perm: Vec<i64> = rest.iter().chain(axes).map(|&i| i as i64).collect();
    let moved = ops::transpose(x, perm.clone())?;
    let mut flat_shape: Vec<i64> = rest.iter().map(|&i| x.shape()[i] as i64).collect();
    flat_shape.push(-1);
    let flat = if moved.size() == 0 {
        return ops::zeros_like(x);
    } else {
        ops::reshape(&moved, &flat_shape)?
    };
    let before = ops::cumprod(&flat, Some(-1), false, false)?;
    let after = ops::cumprod(&flat, Some(-1), true, false)?;
    let others = ops::multiply(&before, &after)?;
    let moved_shape: Vec<i64> = moved.shape().iter().map(|&d| d as i64).collect();
    let others = ops::reshape(&others, &moved_shape)?;
    let mut inverse = vec![0i64; nd];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p as usize] = i as i64;
    }
    ops::transpose(&others, inverse)
}

impl ReduceOp {
    /// The factor each input element's derivative is multiplied by, or `None` for
    /// reductions with zero derivatives. Sum: 1 (returned as `Some(None)`).
    fn weights(&self, x: &Array, y: &Array) -> Result<Option<Option<Array>>> {
        let ReduceOp::Reduce { kind, axes } = self else {
            return Ok(None);
        };
        Ok(match kind {
            ReduceKind::Sum => Some(None),
            ReduceKind::Mean => {
                let n: usize = axes.iter().map(|&a| x.shape()[a]).product();
                Some(Some(ops::full(&[], 1.0 / n.max(1) as f64, x.dtype())?))
            }
            ReduceKind::Prod => Some(Some(product_of_others(x, axes)?)),
            ReduceKind::Max | ReduceKind::Min => {
                let hit = ops::astype(&ops::equal(x, spread(y, x.shape(), axes)?)?, x.dtype())?;
                let count = ops::sum(
                    &hit,
                    axes.iter().map(|&a| a as i64).collect::<Vec<_>>(),
                    true,
                )?;
                Some(Some(ops::divide(&hit, &count)?))
            }
            ReduceKind::All | ReduceKind::Any => None,
        })
    }

    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let (x, y, g) = (&inputs[0], &outputs[0], &cotangents[0]);
        let d = match (self, self.weights(x, y)?) {
            (ReduceOp::Reduce { axes, .. }, Some(w)) => {
                let g = spread(g, x.shape(), axes)?;
                match w {
                    None => g,
                    Some(w) => ops::multiply(&g, &w)?,
                }
            }
            _ => ops::zeros_like(x)?,
        };
        Ok(argnums.iter().map(|_| d.clone()).collect())
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let (x, y) = (&inputs[0], &outputs[0]);
        let t = tangent_or_zeros(inputs, tangents, 0)?;
        let d = match (self, self.weights(x, y)?) {
            (ReduceOp::Reduce { axes, .. }, Some(w)) => {
                let t = match w {
                    None => t,
                    Some(w) => ops::multiply(&t, &w)?,
                };
                // The weights (mean's 1/n included) are applied: the rest is a sum.
                Array::from_primitive(
                    Primitive::Reduce(ReduceOp::Reduce {
                        kind: ReduceKind::Sum,
                        axes: axes.clone(),
                    }),
                    vec![t],
                    y.shape().to_vec(),
                    y.dtype(),
                )?
            }
            _ => ops::zeros_like(y)?,
        };
        Ok(vec![d])
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        let x = to_front(&inputs[0], axes[0])?;
        let op = match self {
            ReduceOp::Reduce { kind, axes } => ReduceOp::Reduce {
                kind: *kind,
                axes: axes.iter().map(|a| a + 1).collect(),
            },
            ReduceOp::ArgReduce { kind, axis } => ReduceOp::ArgReduce {
                kind: *kind,
                axis: axis + 1,
            },
        };
        let mut shape = vec![x.shape()[0]];
        shape.extend_from_slice(outputs[0].shape());
        let y = Array::from_primitive(Primitive::Reduce(op), vec![x], shape, outputs[0].dtype())?;
        Ok((vec![y], vec![Some(0)]))
    }
}
