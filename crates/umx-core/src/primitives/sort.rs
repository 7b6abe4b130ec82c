//! Sorting, partitioning and their arg- forms.

/// The sort primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum SortOp {
    /// Placeholder until the sort family lands.
    Sort,
}
