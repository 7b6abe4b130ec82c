//! The primitives transformations add to graphs: `Depends` (identity, with ordering inputs),
//! `StopGradient`, `Placeholder` (the stand-in inputs `vmap` traces with) and `Custom` (a
//! function with user-given vjp, jvp or vmap rules). None computes anything: a backend passes
//! input data through with [`TransformOp::passthrough`].

use crate::transforms::custom::CustomOp;
use crate::{ArrayData, Result, bail};

/// The transformation primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum TransformOp {
    /// Outputs are the first `n` inputs unchanged; the remaining inputs are only computed first.
    /// With one input it is an identity node: the tracers transformations start from.
    Depends { n: usize },
    /// The input unchanged; no derivative flows through it.
    StopGradient,
    /// A stand-in input of a function `vmap` traces; it has no value.
    Placeholder,
    /// A function with custom transformation rules. Inputs: the function's arguments, then its
    /// outputs (computed by the ordinary graph, behind a stop_gradient); outputs: those outputs.
    Custom(CustomOp),
}

impl TransformOp {
    /// The outputs of the node, which are some of its inputs: what a backend returns.
    pub fn passthrough(
        &self,
        mut inputs: Vec<ArrayData>,
        n_outputs: usize,
    ) -> Result<Vec<ArrayData>> {
        match self {
            TransformOp::Placeholder => bail!(
                "vmap: a function being vmapped cannot be evaluated inside the transformation \
                 (its inputs are placeholders without values)"
            ),
            TransformOp::Depends { .. } | TransformOp::StopGradient => {
                inputs.truncate(n_outputs);
                Ok(inputs)
            }
            TransformOp::Custom(_) => {
                let first = inputs.len() - n_outputs;
                Ok(inputs.split_off(first))
            }
        }
    }
}
