//! Element-wise unary primitives and casts, with their scalar semantics.

/// The unary primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum UnaryOp {
    Negative,
}
