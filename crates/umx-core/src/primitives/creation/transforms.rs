//! vjp, jvp and vmap rules of the creation primitives. Only `Full` has an input (the fill
//! value, broadcast and cast); the others are constants.

use super::CreationOp;
use crate::primitives::Primitive;
use crate::transforms::rules::*;
use crate::{Array, Result, bail, ops};

impl CreationOp {
    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        _outputs: &[Array],
    ) -> Result<Vec<Array>> {
        argnums
            .iter()
            .map(|&i| match self {
                CreationOp::Full if inputs[i].dtype().is_inexact() => {
                    unbroadcast(&cotangents[0], inputs[i].shape())
                }
                _ => ops::zeros_like(&inputs[i]),
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
        match (self, tangents.first()) {
            (CreationOp::Full, Some(Some(t))) if y.dtype().is_inexact() => {
                Ok(vec![Array::from_primitive(
                    Primitive::Creation(CreationOp::Full),
                    vec![t.clone()],
                    y.shape().to_vec(),
                    y.dtype(),
                )?])
            }
            _ => {
                let _ = inputs;
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
        let CreationOp::Full = self else {
            bail!("vmap: {self:?} has no inputs to batch");
        };
        let y = &outputs[0];
        let n = batch_size(inputs, axes);
        let v = pad_example_rank(&to_front(&inputs[0], axes[0])?, y.ndim())?;
        let mut shape = vec![n];
        shape.extend_from_slice(y.shape());
        let out = Array::from_primitive(
            Primitive::Creation(CreationOp::Full),
            vec![v],
            shape,
            y.dtype(),
        )?;
        Ok((vec![out], vec![Some(0)]))
    }
}
