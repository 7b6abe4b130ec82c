//! Views and layout changes: reshape, broadcast, transpose, slice, copy, concatenate.

/// The shape primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum ShapeOp {
    /// A row-major contiguous copy of the input.
    Copy,
}
