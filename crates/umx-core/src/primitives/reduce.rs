//! Reductions over axes and arg-reductions.

/// The reduce primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum ReduceOp {
    /// Placeholder until the reduce family lands.
    Sum,
}
