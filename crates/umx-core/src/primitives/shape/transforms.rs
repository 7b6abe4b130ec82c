//! vjp, jvp and vmap rules of the shape primitives. They are linear: each jvp is the same
//! primitive applied to the tangent, and each vjp its transpose (a reshape back, the inverse
//! permutation, a sum over broadcast axes, a scatter-add for `as_strided`, ...).

use super::{PadMode, ShapeOp};
use crate::primitives::Primitive;
use crate::transforms::rules::*;
use crate::{Array, Dtype, Result, bail, ops};

fn node(op: ShapeOp, inputs: Vec<Array>, shape: Vec<usize>, dtype: Dtype) -> Result<Array> {
    Array::from_primitive(Primitive::Shape(op), inputs, shape, dtype)
}

/// Elements `[start, stop)` of `x` along `axis`.
fn slice_axis(x: &Array, axis: usize, start: usize, stop: usize) -> Result<Array> {
    let starts: Vec<i64> = (0..x.ndim())
        .map(|i| if i == axis { start as i64 } else { 0 })
        .collect();
    let stops: Vec<i64> = (0..x.ndim())
        .map(|i| {
            if i == axis {
                stop as i64
            } else {
                x.shape()[i] as i64
            }
        })
        .collect();
    ops::slice(x, &starts, &stops, &[])
}

/// `x` padded with zeros along `axis`: `low` before, `high` after.
fn zero_pad_axis(x: &Array, axis: usize, low: usize, high: usize) -> Result<Array> {
    let mut low_v = vec![0; x.ndim()];
    let mut high_v = vec![0; x.ndim()];
    low_v[axis] = low;
    high_v[axis] = high;
    let zero = ops::zeros(&[], x.dtype())?;
    node(
        ShapeOp::Pad {
            low: low_v,
            high: high_v,
            mode: PadMode::Constant,
        },
        vec![x.clone(), zero],
        x.shape()
            .iter()
            .enumerate()
            .map(|(i, &d)| if i == axis { d + low + high } else { d })
            .collect(),
        x.dtype(),
    )
}

fn inverse(perm: &[usize]) -> Vec<i64> {
    let mut inv = vec![0i64; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i as i64;
    }
    inv
}

impl ShapeOp {
    /// The same primitive over other inputs (tangents), with the original output's shape.
    fn again(&self, inputs: Vec<Array>, like: &Array) -> Result<Array> {
        node(self.clone(), inputs, like.shape().to_vec(), like.dtype())
    }

    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        _outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let x = &inputs[0];
        let g = &cotangents[0];
        argnums
            .iter()
            .map(|&i| match self {
                ShapeOp::Copy => Ok(g.clone()),
                ShapeOp::Reshape { .. } => {
                    ops::reshape(g, &x.shape().iter().map(|&d| d as i64).collect::<Vec<_>>())
                }
                ShapeOp::Transpose { perm } => ops::transpose(g, inverse(perm)),
                ShapeOp::Broadcast { .. } => unbroadcast(g, x.shape()),
                ShapeOp::AsStrided {
                    shape,
                    strides,
                    offset,
                } => {
                    // Which input element each output element reads, then a scatter-add there.
                    let n = x.size();
                    let at = ops::arange(0, n as i64, 1, Dtype::Uint32)?;
                    let strides: Vec<i64> = strides.iter().map(|&s| s as i64).collect();
                    let idx = ops::as_strided(&at, shape, &strides, *offset)?;
                    let flat = ops::scatter_add_axis(
                        &ops::zeros(&[n], x.dtype())?,
                        &ops::reshape(&idx, &[-1])?,
                        &ops::reshape(g, &[-1])?,
                        0,
                    )?;
                    ops::reshape(
                        &flat,
                        &x.shape().iter().map(|&d| d as i64).collect::<Vec<_>>(),
                    )
                }
                ShapeOp::Flip { .. } => {
                    node(self.clone(), vec![g.clone()], g.shape().to_vec(), g.dtype())
                }
                ShapeOp::Split { axis, bounds } => {
                    let len = x.shape()[*axis];
                    let tiles = bounds
                        .iter()
                        .scan(0, |at, &(s, e)| {
                            let ok = s == *at;
                            *at = e;
                            Some(ok)
                        })
                        .all(|ok| ok)
                        && bounds.last().is_some_and(|&(_, e)| e == len);
                    let cots: Vec<Array> = cotangents.to_vec();
                    if tiles && cots.len() > 1 {
                        ops::concatenate(&cots, *axis as i64)
                    } else {
                        let mut total = ops::zeros_like(x)?;
                        for (c, &(s, e)) in cots.iter().zip(bounds) {
                            total = ops::add(&total, &zero_pad_axis(c, *axis, s, len - e)?)?;
                        }
                        Ok(total)
                    }
                }
                ShapeOp::Concatenate { axis } => {
                    let start: usize = inputs[..i].iter().map(|a| a.shape()[*axis]).sum();
                    slice_axis(g, *axis, start, start + inputs[i].shape()[*axis])
                }
                ShapeOp::Pad { low, high, mode } => {
                    let mut inner = g.clone();
                    for ax in 0..x.ndim() {
                        let n = x.shape()[ax];
                        let (lo, hi) = (low[ax], high[ax]);
                        if lo + hi == 0 {
                            continue;
                        }
                        let mid = slice_axis(&inner, ax, lo, lo + n)?;
                        inner = if *mode == PadMode::Edge && n > 0 {
                            // The border copies the edge elements: their cotangents add there.
                            let before =
                                ops::sum(&slice_axis(&inner, ax, 0, lo)?, ax as i64, true)?;
                            let after = ops::sum(
                                &slice_axis(&inner, ax, lo + n, lo + n + hi)?,
                                ax as i64,
                                true,
                            )?;
                            let mid = ops::add(&mid, &zero_pad_axis(&before, ax, 0, n - 1)?)?;
                            ops::add(&mid, &zero_pad_axis(&after, ax, n - 1, 0)?)?
                        } else {
                            mid
                        };
                    }
                    if i == 0 {
                        Ok(inner)
                    } else {
                        // The constant: every border element.
                        let border = ops::subtract(
                            ops::sum(g, None, false)?,
                            ops::sum(&inner, None, false)?,
                        )?;
                        ops::reshape(
                            &border,
                            &inputs[1]
                                .shape()
                                .iter()
                                .map(|&d| d as i64)
                                .collect::<Vec<_>>(),
                        )
                    }
                }
                ShapeOp::View { .. } => ops::zeros_like(&inputs[i]),
            })
            .collect()
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        match self {
            ShapeOp::View { .. } => zeros_jvp(outputs),
            ShapeOp::Split { .. } => {
                let t = tangent_or_zeros(inputs, tangents, 0)?;
                let specs = outputs
                    .iter()
                    .map(|o| crate::device::OutSpec {
                        shape: o.shape().to_vec(),
                        dtype: o.dtype(),
                    })
                    .collect();
                Array::from_primitive_multi(Primitive::Shape(self.clone()), vec![t], specs)
            }
            _ => {
                let ts = (0..inputs.len())
                    .map(|i| {
                        let t = tangent_or_zeros(inputs, tangents, i)?;
                        // Concatenate converts its inputs; so do tangents of other dtypes.
                        if t.dtype().is_inexact() {
                            Ok(t)
                        } else {
                            ops::astype(&t, outputs[0].dtype())
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(vec![self.again(ts, &outputs[0])?])
            }
        }
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        let n = batch_size(inputs, axes);
        let batched_shape = |o: &Array| {
            let mut s = vec![n];
            s.extend_from_slice(o.shape());
            s
        };
        let out = &outputs[0];
        let x = to_front(&inputs[0], axes[0])?;
        let one = |op: ShapeOp, ins: Vec<Array>| -> Result<(Vec<Array>, Vec<Option<usize>>)> {
            Ok((
                vec![node(op, ins, batched_shape(out), out.dtype())?],
                vec![Some(0)],
            ))
        };
        match self {
            ShapeOp::Copy => one(ShapeOp::Copy, vec![x]),
            ShapeOp::Reshape { .. } => {
                let shape: Vec<i64> = batched_shape(out).iter().map(|&d| d as i64).collect();
                Ok((vec![ops::reshape(&x, &shape)?], vec![Some(0)]))
            }
            ShapeOp::Transpose { perm } => {
                let mut p = vec![0];
                p.extend(perm.iter().map(|&a| a + 1));
                one(ShapeOp::Transpose { perm: p }, vec![x])
            }
            ShapeOp::Broadcast { .. } => {
                let x = pad_example_rank(&x, out.ndim())?;
                Ok((
                    vec![ops::broadcast_to(&x, &batched_shape(out))?],
                    vec![Some(0)],
                ))
            }
            ShapeOp::AsStrided {
                shape,
                strides,
                offset,
            } => {
                let size = x.size() / n.max(1);
                let mut s = vec![n];
                s.extend_from_slice(shape);
                let mut st = vec![size as i64];
                st.extend(strides.iter().map(|&v| v as i64));
                Ok((vec![ops::as_strided(&x, &s, &st, *offset)?], vec![Some(0)]))
            }
            ShapeOp::Flip { axes: fa } => one(
                ShapeOp::Flip {
                    axes: fa.iter().map(|a| a + 1).collect(),
                },
                vec![x],
            ),
            ShapeOp::Split { axis, bounds } => {
                let specs = outputs
                    .iter()
                    .map(|o| crate::device::OutSpec {
                        shape: batched_shape(o),
                        dtype: o.dtype(),
                    })
                    .collect();
                let outs = Array::from_primitive_multi(
                    Primitive::Shape(ShapeOp::Split {
                        axis: axis + 1,
                        bounds: bounds.clone(),
                    }),
                    vec![x],
                    specs,
                )?;
                let k = outs.len();
                Ok((outs, vec![Some(0); k]))
            }
            ShapeOp::Concatenate { axis } => one(
                ShapeOp::Concatenate { axis: axis + 1 },
                all_to_front(inputs, axes, n)?,
            ),
            ShapeOp::Pad { low, high, mode } => {
                if axes.get(1).is_some_and(Option::is_some) {
                    bail!("vmap: pad with a batched pad value is not supported");
                }
                let x = all_to_front(&inputs[..1], &axes[..1], n)?.remove(0);
                let mut ins = vec![x];
                ins.extend_from_slice(&inputs[1..]);
                let (mut lo, mut hi) = (vec![0], vec![0]);
                lo.extend_from_slice(low);
                hi.extend_from_slice(high);
                one(
                    ShapeOp::Pad {
                        low: lo,
                        high: hi,
                        mode: *mode,
                    },
                    ins,
                )
            }
            ShapeOp::View { dtype } => Ok((vec![ops::view(&x, *dtype)?], vec![Some(0)])),
        }
    }
}
