//! Matrix products.

/// The matmul primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum MatmulOp {
    Matmul,
}
