//! `Fused`: a chain of element-wise primitives that `compile` merged into one node, so a
//! backend computes it in one pass without full-size temporaries.
//!
//! The program is the chain itself: each instruction is an ordinary unary, binary or ternary
//! primitive over the node's inputs and earlier instructions, so its semantics are exactly
//! those of the unfused ops. Inputs broadcast (NumPy's rule) to the program's shape.
//!
//! A program may end in a reduction (`sum(x * y)`, `max(exp(x - m))`): then the node's
//! output is the program's result reduced over [`FusedReduce::axes`], and a backend can reduce
//! each value as it is computed, never storing the element-wise result.

mod transforms;

use super::Primitive;
use super::reduce::ReduceKind;
use crate::Dtype;
use std::sync::Arc;

/// An operand of a fused instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FusedArg {
    /// The node's input `i`.
    Input(usize),
    /// The result of instruction `i` (an earlier one).
    Instr(usize),
}

/// One step of a fused program: an element-wise primitive and its output dtype.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedInstr {
    pub prim: Primitive,
    pub args: Vec<FusedArg>,
    pub dtype: Dtype,
}

/// The reduction that ends a fused program.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FusedReduce {
    pub kind: ReduceKind,
    /// Axes of the program's (broadcast) shape: normalised, sorted, distinct, not empty.
    pub axes: Vec<usize>,
    /// Whether the reduced axes stay (as 1) in the output.
    pub keepdims: bool,
}

impl FusedReduce {
    /// The output shape for a program of shape `shape`.
    pub fn shape(&self, shape: &[usize]) -> Vec<usize> {
        (0..shape.len())
            .filter_map(|a| match (self.axes.contains(&a), self.keepdims) {
                (false, _) => Some(shape[a]),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect()
    }
}

/// The fused primitive: its program; the node's first output is the last instruction's,
/// reduced when `reduce` says so.
///
/// The node may have more outputs: `extra` lists instructions whose values are outputs too
/// (in that order, after the first), each of the program's shape and never reduced. That is
/// how an optimizer's update (new parameter, new moments) becomes one pass that reads each
/// input once and writes each result once, and how a reduction keeps the element-wise values
/// it reduces when something else uses them too (a bias gradient: the column sums of the
/// activation's gradient, which the weight's product reads as well), from the same node.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedOp {
    pub program: Arc<Vec<FusedInstr>>,
    pub reduce: Option<FusedReduce>,
    pub extra: Vec<usize>,
}

impl FusedOp {
    /// Whether `prim` can be part of a fused program (an element-wise primitive with one
    /// output).
    pub fn fusable(prim: &Primitive) -> bool {
        match prim {
            Primitive::Unary(_) | Primitive::Ternary(_) => true,
            Primitive::Binary(op) => *op != super::BinaryOp::DivMod,
            _ => false,
        }
    }

    /// The dtype of the program's element-wise result (before any reduction).
    pub fn program_dtype(&self) -> Dtype {
        self.program.last().map_or(Dtype::Float32, |i| i.dtype)
    }

    /// The output dtype.
    pub fn dtype(&self) -> Dtype {
        let d = self.program_dtype();
        self.reduce.as_ref().map_or(d, |r| r.kind.output_dtype(d))
    }

    /// The instructions whose values are the node's outputs, in output order.
    pub fn output_instrs(&self) -> Vec<usize> {
        std::iter::once(self.program.len().saturating_sub(1))
            .chain(self.extra.iter().copied())
            .collect()
    }
}

/// Independent fused element-wise programs run as one node: `compile` groups the fused
/// updates whose results only leave the function (an optimizer's update of each parameter),
/// so a backend can run them all in one pass (one kernel launch on the GPU, as torch's
/// multi-tensor optimizers do) instead of one per parameter.
///
/// The node's inputs are shared by its members ([`GroupMember::inputs`] picks each member's),
/// and its outputs are the members' outputs one member after another, each member's as its
/// [`FusedOp`] would give them (every member is element-wise: no reduction).
#[derive(Clone, Debug, PartialEq)]
pub struct FusedGroup {
    pub members: Vec<GroupMember>,
}

/// One program of a [`FusedGroup`].
#[derive(Clone, Debug, PartialEq)]
pub struct GroupMember {
    pub op: FusedOp,
    /// The group's inputs this program reads, in its own input order.
    pub inputs: Vec<usize>,
}

impl GroupMember {
    /// How many outputs the member gives: its result, then its extra values.
    pub fn output_count(&self) -> usize {
        1 + self.op.extra.len()
    }
}

impl FusedGroup {
    /// Each member with its inputs picked from `inputs` and the range of the node's outputs
    /// that are its own.
    pub fn split<'a, T: Clone>(
        &'a self,
        inputs: &'a [T],
    ) -> impl Iterator<Item = (&'a GroupMember, Vec<T>, std::ops::Range<usize>)> + 'a {
        let mut at = 0;
        self.members.iter().map(move |m| {
            let picked = m.inputs.iter().map(|&i| inputs[i].clone()).collect();
            let range = at..at + m.output_count();
            at = range.end;
            (m, picked, range)
        })
    }
}
