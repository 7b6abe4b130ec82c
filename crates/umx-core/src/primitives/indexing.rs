//! Gather, scatter and slice updates.

/// The indexing primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexOp {
    /// Placeholder until the indexing family lands.
    Gather,
}
