//! Element-wise binary primitives (arithmetic, comparison, logical, bitwise) and their scalar semantics.

/// The binary primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum BinaryOp {
    Add,
}
