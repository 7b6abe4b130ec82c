//! Element-wise three-input primitives.

/// The ternary primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum TernaryOp {
    /// `where(cond, a, b)`.
    Select,
}
