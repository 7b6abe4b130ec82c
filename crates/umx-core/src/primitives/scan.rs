//! Cumulative scans along an axis.

/// The scan primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum ScanOp {
    /// Placeholder until the scan family lands.
    Sum,
}
