//! The closed set of primitives, grouped by family. Each family's file keeps in one place its
//! parameters, output rules and scalar semantics (and, as transforms land, its vjp, jvp and
//! vmap rules), so the CPU kernels, the CUDA kernels and fused code agree.
//!
//! A backend is one exhaustive `match` over [`Primitive`]: adding a family and forgetting a
//! backend is a compile error.

pub mod binary;
pub mod creation;
pub mod indexing;
pub mod matmul;
pub mod random;
pub mod reduce;
pub mod scan;
pub mod shape;
pub mod sort;
pub mod ternary;
pub mod unary;

pub use binary::BinaryOp;
pub use creation::CreationOp;
pub use indexing::IndexOp;
pub use matmul::MatmulOp;
pub use random::RandomOp;
pub use reduce::ReduceOp;
pub use scan::ScanOp;
pub use shape::ShapeOp;
pub use sort::SortOp;
pub use ternary::TernaryOp;
pub use unary::UnaryOp;

/// A primitive: what a graph node computes from its inputs.
#[derive(Clone, Debug, PartialEq)]
pub enum Primitive {
    Creation(CreationOp),
    Unary(UnaryOp),
    Binary(BinaryOp),
    Ternary(TernaryOp),
    Reduce(ReduceOp),
    Scan(ScanOp),
    Shape(ShapeOp),
    Indexing(IndexOp),
    Sort(SortOp),
    Random(RandomOp),
    Matmul(MatmulOp),
}

impl Primitive {
    /// The family's name, for messages.
    pub fn family(&self) -> &'static str {
        match self {
            Primitive::Creation(_) => "creation",
            Primitive::Unary(_) => "unary",
            Primitive::Binary(_) => "binary",
            Primitive::Ternary(_) => "ternary",
            Primitive::Reduce(_) => "reduce",
            Primitive::Scan(_) => "scan",
            Primitive::Shape(_) => "shape",
            Primitive::Indexing(_) => "indexing",
            Primitive::Sort(_) => "sort",
            Primitive::Random(_) => "random",
            Primitive::Matmul(_) => "matmul",
        }
    }
}
