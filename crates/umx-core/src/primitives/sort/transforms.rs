//! vjp, jvp and vmap rules of the sort primitives.
//!
//! Sort, partition and top-k move elements: their derivatives follow the same moves, given by
//! argsort, argpartition and the last `k` of an argsort (`topk` is the `k` largest in
//! ascending order, so exactly those). The index outputs (argsort, argpartition,
//! searchsorted) have zero derivatives.

use super::SortOp;
use crate::transforms::rules::*;
use crate::{Array, Dtype, Result, bail, ops};

/// `a < v` (`or_equal`: `a <= v`) in the sort order, where NaNs come after every number.
fn sort_less(a: &Array, v: &Array, or_equal: bool) -> Result<Array> {
    if a.dtype().is_complex() {
        bail!(
            "vmap: searchsorted of a batched sorted array of {} is not supported",
            a.dtype()
        );
    }
    let plain = if or_equal {
        ops::less_equal(a, v)?
    } else {
        ops::less(a, v)?
    };
    if !a.dtype().is_inexact() {
        return Ok(plain);
    }
    // A NaN `v` is past every number (and, with `or_equal`, equal to a NaN `a`).
    let v_nan = ops::isnan(v)?;
    let extra = if or_equal {
        v_nan
    } else {
        ops::logical_and(&v_nan, &ops::logical_not(&ops::isnan(a)?)?)?
    };
    ops::logical_or(&plain, &extra)
}

impl SortOp {
    /// The indices (along the op's axis) of the input elements that make up the output, for
    /// the ops that move elements.
    fn moves(&self, x: &Array) -> Result<Array> {
        match *self {
            SortOp::Sort { axis } => ops::argsort(x, axis as i64),
            SortOp::Partition { axis, kth } => ops::argpartition(x, kth as i64, axis as i64),
            SortOp::TopK { axis, k } => {
                let s = ops::argsort(x, axis as i64)?;
                let nd = x.ndim();
                let mut start = vec![0i64; nd];
                let stop: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
                start[axis] = stop[axis] - k as i64;
                ops::slice(&s, &start, &stop, &[])
            }
            _ => unreachable!("only sort, partition and topk move elements"),
        }
    }

    fn axis(&self) -> usize {
        match *self {
            SortOp::Sort { axis }
            | SortOp::ArgSort { axis }
            | SortOp::Partition { axis, .. }
            | SortOp::ArgPartition { axis, .. }
            | SortOp::TopK { axis, .. } => axis,
            SortOp::SearchSorted { .. } => 0,
        }
    }

    /// This op with its axis moved to `axis`.
    fn with_axis(&self, axis: usize) -> SortOp {
        match *self {
            SortOp::Sort { .. } => SortOp::Sort { axis },
            SortOp::ArgSort { .. } => SortOp::ArgSort { axis },
            SortOp::Partition { kth, .. } => SortOp::Partition { axis, kth },
            SortOp::ArgPartition { kth, .. } => SortOp::ArgPartition { axis, kth },
            SortOp::TopK { k, .. } => SortOp::TopK { axis, k },
            SortOp::SearchSorted { right } => SortOp::SearchSorted { right },
        }
    }

    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        _outputs: &[Array],
    ) -> Result<Vec<Array>> {
        match self {
            SortOp::Sort { .. } | SortOp::Partition { .. } | SortOp::TopK { .. } => {
                let x = &inputs[0];
                let g = &cotangents[0];
                argnums
                    .iter()
                    .map(|_| {
                        let idx = self.moves(x)?;
                        let z = ops::zeros(x.shape(), g.dtype())?;
                        ops::scatter_add_axis(&z, &idx, g, self.axis() as i64)
                    })
                    .collect()
            }
            SortOp::ArgSort { .. } | SortOp::ArgPartition { .. } | SortOp::SearchSorted { .. } => {
                zeros_vjp(inputs, argnums)
            }
        }
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        match self {
            SortOp::Sort { .. } | SortOp::Partition { .. } | SortOp::TopK { .. } => {
                let t = tangent_or_zeros(inputs, tangents, 0)?;
                let idx = self.moves(&inputs[0])?;
                Ok(vec![ops::take_along_axis(&t, &idx, self.axis() as i64)?])
            }
            SortOp::ArgSort { .. } | SortOp::ArgPartition { .. } | SortOp::SearchSorted { .. } => {
                zeros_jvp(outputs)
            }
        }
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        let out = &outputs[0];
        if let SortOp::SearchSorted { right } = *self {
            let (a, v) = (&inputs[0], &inputs[1]);
            return match axes[0] {
                None => {
                    // Only the values are batched: the op is element-wise in them.
                    let o = Array::from_primitive(
                        crate::primitives::Primitive::Sort(self.clone()),
                        vec![a.clone(), v.clone()],
                        v.shape().to_vec(),
                        Dtype::Uint32,
                    )?;
                    Ok((vec![o], vec![axes[1]]))
                }
                Some(_) => {
                    // Each sorted row of the batch: the insertion point is the number of its
                    // elements before v (left) or not after it (right).
                    let n = batch_size(inputs, axes);
                    let a_f = to_front(a, axes[0])?;
                    let nv = out.ndim();
                    let v_f = match axes[1] {
                        Some(_) => to_front(v, axes[1])?,
                        None => ops::expand_dims(v, 0)?,
                    };
                    let mut shape = vec![1i64; nv + 2];
                    shape[0] = n as i64;
                    shape[nv + 1] = a_f.shape()[1] as i64;
                    let a_b = ops::reshape(&a_f, &shape)?;
                    let v_b = ops::expand_dims(&v_f, -1)?;
                    let count = ops::sum(&sort_less(&a_b, &v_b, right)?, -1, false)?;
                    Ok((vec![ops::astype(&count, Dtype::Uint32)?], vec![Some(0)]))
                }
            };
        }
        // One input, batched at `b`: the op's axis moves past it, the batch axis stays.
        let b = axes[0].expect("the only input is batched");
        let axis = self.axis();
        let axis = if axis >= b { axis + 1 } else { axis };
        let op = self.with_axis(axis);
        let mut shape = out.shape().to_vec();
        shape.insert(b, batch_size(inputs, axes));
        let o = Array::from_primitive(
            crate::primitives::Primitive::Sort(op),
            vec![inputs[0].clone()],
            shape,
            out.dtype(),
        )?;
        Ok((vec![o], vec![Some(b)]))
    }
}
