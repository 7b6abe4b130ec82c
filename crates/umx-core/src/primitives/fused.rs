//! `Fused`: a chain of element-wise primitives that `compile` merged into one node, so a
//! backend computes it in one pass without full-size temporaries.
//!
//! The program is the chain itself: each instruction is an ordinary unary, binary or ternary
//! primitive over the node's inputs and earlier instructions, so its semantics are exactly
//! those of the unfused ops. Inputs broadcast (NumPy's rule) to the node's shape.

mod transforms;

use super::Primitive;
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

/// The fused primitive: its program; the node's output is the last instruction's.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedOp {
    pub program: Arc<Vec<FusedInstr>>,
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

    /// The output dtype.
    pub fn dtype(&self) -> Dtype {
        self.program.last().map_or(Dtype::Float32, |i| i.dtype)
    }
}
