//! vjp, jvp and vmap rules of the indexing primitives.

use super::IndexOp;
use crate::transforms::rules::*;
use crate::{Array, Result, bail, ops};

impl IndexOp {
    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        bail!("vjp: {self:?} has no rule yet")
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        bail!("jvp: {self:?} has no rule yet")
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        bail!("vmap: {self:?} has no rule yet")
    }
}
