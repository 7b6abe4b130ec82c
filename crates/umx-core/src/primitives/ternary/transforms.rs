//! vjp, jvp and vmap rules of the ternary primitive `where`.

use super::TernaryOp;
use crate::primitives::Primitive;
use crate::transforms::rules::*;
use crate::{Array, Result, ops};

impl TernaryOp {
    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        _outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let (cond, g) = (&inputs[0], &cotangents[0]);
        argnums
            .iter()
            .map(|&i| {
                let x = &inputs[i];
                match i {
                    0 => ops::zeros_like(x),
                    1 => unbroadcast(&ops::where_(cond, g, 0.0)?, x.shape()),
                    _ => unbroadcast(&ops::where_(cond, 0.0, g)?, x.shape()),
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
        let pick = |i: usize| -> Result<Array> {
            match &tangents[i] {
                Some(t) => Ok(t.clone()),
                None => ops::zeros_like(y),
            }
        };
        let t = ops::where_(&inputs[0], pick(1)?, pick(2)?)?;
        Ok(vec![ops::broadcast_to(&t, y.shape())?])
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        elementwise_vmap(Primitive::Ternary(*self), inputs, axes, outputs)
    }
}
