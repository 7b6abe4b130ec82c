//! Random bits from threefry keys.

/// The random primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum RandomOp {
    /// Placeholder until the random family lands.
    Bits,
}
