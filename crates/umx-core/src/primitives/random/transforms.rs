//! vjp, jvp and vmap rules of the random primitives.
//!
//! Random bits have no derivative. Samples are reparameterised: a `uniform` or `normal` sample
//! is an affine function of its parameters (`low + (high - low) u`, `loc + scale z`), so
//! derivatives flow to them; other distributions' parameters get zero derivatives. Keys
//! batch naturally: `Bits` already maps over leading key dimensions.

use super::{Distribution, RandomOp};
use crate::primitives::Primitive;
use crate::transforms::rules::*;
use crate::{Array, Result, ops};

impl RandomOp {
    /// The derivative of the sample `y` with respect to input `i`, times `v`.
    fn partial(&self, inputs: &[Array], y: &Array, i: usize, v: &Array) -> Result<Option<Array>> {
        let RandomOp::Sample(dist) = self else {
            return Ok(None);
        };
        Ok(match (dist, i) {
            (Distribution::Uniform, 1 | 2) => {
                let (low, high) = (&inputs[1], &inputs[2]);
                let u = ops::divide(ops::subtract(y, low)?, ops::subtract(high, low)?)?;
                let w = if i == 1 { ops::subtract(1.0, &u)? } else { u };
                Some(ops::multiply(v, &w)?)
            }
            (Distribution::Normal { loc, scale }, _) if i >= 1 => {
                let is_loc = *loc && i == 1;
                if is_loc {
                    Some(v.clone())
                } else if *scale {
                    let centered = if *loc {
                        ops::subtract(y, &inputs[1])?
                    } else {
                        y.clone()
                    };
                    let z = ops::divide(&centered, &inputs[i])?;
                    Some(ops::multiply(v, &z)?)
                } else {
                    None
                }
            }
            _ => None,
        })
    }

    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        argnums
            .iter()
            .map(|&i| {
                let x = &inputs[i];
                match self.partial(inputs, &outputs[0], i, &cotangents[0])? {
                    Some(d) if x.dtype().is_inexact() => unbroadcast(&d, x.shape()),
                    _ => ops::zeros_like(x),
                }
            })
            .collect()
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let y = &outputs[0];
        let mut total = ops::zeros_like(y)?;
        for (i, t) in tangents.iter().enumerate() {
            if let Some(t) = t
                && let Some(d) = self.partial(inputs, y, i, t)?
            {
                total = ops::add(&total, &d)?;
            }
        }
        Ok(vec![ops::astype(&total, y.dtype())?])
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        let y = &outputs[0];
        let n = batch_size(inputs, axes);
        match self {
            RandomOp::Bits { .. } => {
                let keys = to_front(&inputs[0], axes[0])?;
                let mut shape = vec![n];
                shape.extend_from_slice(y.shape());
                let out = Array::from_primitive(
                    Primitive::Random(self.clone()),
                    vec![keys],
                    shape,
                    y.dtype(),
                )?;
                Ok((vec![out], vec![Some(0)]))
            }
            RandomOp::Sample(_) => {
                // Element-wise in its bits and parameters; unbatched bits are shared by every
                // example (the same draw), as with any unbatched operand.
                let aligned = align_elementwise(inputs, axes)?;
                let mut shape = vec![n];
                shape.extend_from_slice(y.shape());
                let ins = aligned
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| {
                        if i == 0 && axes[0].is_none() {
                            let mut s = vec![n];
                            s.extend_from_slice(x.shape());
                            ops::broadcast_to(&ops::expand_dims(&x, 0)?, &s)
                        } else {
                            Ok(x)
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                let out =
                    Array::from_primitive(Primitive::Random(self.clone()), ins, shape, y.dtype())?;
                Ok((vec![out], vec![Some(0)]))
            }
        }
    }
}
