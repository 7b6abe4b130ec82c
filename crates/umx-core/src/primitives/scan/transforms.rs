//! vjp, jvp and vmap rules of the cumulative scans.
//!
//! A scan's vjp is a scan the other way: `cumsum` gives the reversed `cumsum` of the
//! cotangent; `cumprod` the reversed `cumsum` of `g * y`, over `x`; `logcumsumexp` `exp(x)`
//! times the reversed `cumsum` of `g * exp(-y)`. `cummax`/`cummin` send each cotangent to the
//! element that set the running extreme (its first occurrence).

use super::{ScanKind, ScanOp};
use crate::primitives::Primitive;
use crate::transforms::rules::*;
use crate::{Array, Result, ops};

/// `x` shifted by one along `axis`, towards higher indices (`up`) or lower ones, with a zero
/// filling the vacated end.
fn shift(x: &Array, axis: usize, up: bool) -> Result<Array> {
    let n = x.shape()[axis];
    if n == 0 {
        return Ok(x.clone());
    }
    let parts = ops::split(x, [if up { n - 1 } else { 1 }], axis as i64)?;
    let (keep, drop) = if up {
        (&parts[0], &parts[1])
    } else {
        (&parts[1], &parts[0])
    };
    let zero = ops::zeros_like(drop)?;
    if up {
        ops::concatenate(&[zero, keep.clone()], axis as i64)
    } else {
        ops::concatenate(&[keep.clone(), zero], axis as i64)
    }
}

impl ScanOp {
    fn parts(&self) -> (ScanKind, usize, bool, bool) {
        let ScanOp::Scan {
            kind,
            axis,
            reverse,
            inclusive,
        } = self;
        (*kind, *axis, *reverse, *inclusive)
    }

    /// For `cummax`/`cummin` run forward and inclusively over `xs`: the index (along the
    /// axis, uint32, of `xs`'s shape) of the element each output takes its value from: the
    /// latest position that set a new extreme.
    fn extreme_source(kind: ScanKind, axis: usize, xs: &Array) -> Result<Array> {
        let ax = Some(axis as i64);
        let new = match kind {
            ScanKind::Max => ops::greater(xs, &ops::cummax(xs, ax, false, false)?)?,
            _ => ops::less(xs, &ops::cummin(xs, ax, false, false)?)?,
        };
        let n = xs.shape()[axis];
        let mut idx_shape = vec![1i64; xs.ndim()];
        idx_shape[axis] = n as i64;
        let idx = ops::reshape(
            &ops::arange(0, n as i64, 1, crate::Dtype::Uint32)?,
            &idx_shape,
        )?;
        ops::cummax(&ops::where_(&new, &idx, 0u32)?, ax, false, true)
    }

    /// `x` flipped along the axis for a reverse scan, so the scan runs forward.
    fn forward(&self, x: &Array) -> Result<Array> {
        let (_, axis, reverse, _) = self.parts();
        if reverse {
            ops::flip(x, axis as i64)
        } else {
            Ok(x.clone())
        }
    }

    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let (kind, axis, reverse, inclusive) = self.parts();
        let (x, y, g) = (&inputs[0], &outputs[0], &cotangents[0]);
        let ax = Some(axis as i64);
        let d = match kind {
            ScanKind::Sum => ops::cumsum(g, ax, !reverse, inclusive)?,
            ScanKind::Prod => ops::divide(
                ops::cumsum(&ops::multiply(g, y)?, ax, !reverse, inclusive)?,
                x,
            )?,
            ScanKind::LogAddExp => ops::multiply(
                ops::exp(x)?,
                ops::cumsum(
                    &ops::multiply(g, ops::exp(&ops::negative(y)?)?)?,
                    ax,
                    !reverse,
                    inclusive,
                )?,
            )?,
            ScanKind::Max | ScanKind::Min => {
                // In the scan's direction, exclusive output i is inclusive output i-1.
                let gs = self.forward(g)?;
                let gs = if inclusive {
                    gs
                } else {
                    shift(&gs, axis, false)?
                };
                let src = Self::extreme_source(kind, axis, &self.forward(x)?)?;
                let d = ops::scatter_add_axis(&ops::zeros_like(x)?, &src, &gs, axis as i64)?;
                self.forward(&d)?
            }
        };
        Ok(argnums.iter().map(|_| d.clone()).collect())
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let (kind, axis, reverse, inclusive) = self.parts();
        let (x, y) = (&inputs[0], &outputs[0]);
        let t = tangent_or_zeros(inputs, tangents, 0)?;
        let ax = Some(axis as i64);
        let d = match kind {
            ScanKind::Sum => ops::cumsum(&t, ax, reverse, inclusive)?,
            ScanKind::Prod => ops::multiply(
                y,
                ops::cumsum(&ops::divide(&t, x)?, ax, reverse, inclusive)?,
            )?,
            ScanKind::LogAddExp => ops::multiply(
                ops::exp(&ops::negative(y)?)?,
                ops::cumsum(&ops::multiply(ops::exp(x)?, &t)?, ax, reverse, inclusive)?,
            )?,
            ScanKind::Max | ScanKind::Min => {
                let src = Self::extreme_source(kind, axis, &self.forward(x)?)?;
                let d = ops::take_along_axis(&self.forward(&t)?, &src, axis as i64)?;
                let d = if inclusive { d } else { shift(&d, axis, true)? };
                self.forward(&d)?
            }
        };
        Ok(vec![d])
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        let (kind, axis, reverse, inclusive) = self.parts();
        let x = to_front(&inputs[0], axes[0])?;
        let op = ScanOp::Scan {
            kind,
            axis: axis + 1,
            reverse,
            inclusive,
        };
        let shape = x.shape().to_vec();
        let y = Array::from_primitive(Primitive::Scan(op), vec![x], shape, outputs[0].dtype())?;
        Ok((vec![y], vec![Some(0)]))
    }
}
