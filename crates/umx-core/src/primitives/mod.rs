//! The closed set of primitives, grouped by family. Each family's file keeps in one place its
//! parameters, output rules and scalar semantics (and, in `<family>/transforms.rs`, its vjp,
//! jvp and vmap rules), so the CPU kernels, the CUDA kernels and fused code agree.
//!
//! A backend is one exhaustive `match` over [`Primitive`]: adding a family and forgetting a
//! backend is a compile error.

use crate::{Array, Result};

pub mod binary;
pub mod codegen;
pub mod creation;
pub mod fast;
pub mod fft;
pub mod fused;
pub mod indexing;
pub mod linalg;
pub mod matmul;
pub mod quantized;
pub mod random;
pub mod reduce;
pub mod scan;
pub mod shape;
pub mod sort;
pub mod ternary;
pub mod transform;
pub mod unary;

pub use binary::BinaryOp;
pub use creation::CreationOp;
pub use fast::{FastOp, Projection, TemplateArg, UserKernel};
pub use fft::{FftKind, FftOp};
pub use fused::{FusedGroup, FusedOp};
pub use indexing::IndexOp;
pub use linalg::LinalgOp;
pub use matmul::MatmulOp;
pub use quantized::QuantOp;
pub use random::RandomOp;
pub use reduce::ReduceOp;
pub use scan::ScanOp;
pub use shape::ShapeOp;
pub use sort::SortOp;
pub use ternary::TernaryOp;
pub use transform::TransformOp;
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
    Quantized(QuantOp),
    Linalg(LinalgOp),
    Fft(FftOp),
    Transform(TransformOp),
    Fused(FusedOp),
    FusedGroup(FusedGroup),
    Fast(FastOp),
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
            Primitive::Quantized(_) => "quantized",
            Primitive::Linalg(_) => "linalg",
            Primitive::Fft(_) => "fft",
            Primitive::Transform(_) => "transform",
            Primitive::Fused(_) => "fused",
            Primitive::FusedGroup(_) => "fused_group",
            Primitive::Fast(_) => "fast",
        }
    }

    /// The op's name where its family names its ops (`"add"`, `"sum"`, `"transpose"`), else
    /// the family's: for messages and memory warnings.
    pub fn name(&self) -> &'static str {
        match self {
            Primitive::Unary(op) => op.name(),
            Primitive::Binary(op) => op.name(),
            Primitive::Ternary(op) => op.name(),
            Primitive::Reduce(op) => op.name(),
            Primitive::Scan(op) => op.name(),
            Primitive::Shape(op) => op.name(),
            Primitive::Sort(op) => op.name(),
            Primitive::Quantized(op) => op.name(),
            Primitive::Fast(op) => op.name(),
            _ => self.family(),
        }
    }
}

/// Transformation rules, dispatched to each family's `transforms.rs`.
impl Primitive {
    /// The vector-Jacobian product: given the cotangents of every output (zeros where none),
    /// the cotangents of the inputs numbered `argnums` (each of its input's shape).
    pub fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        match self {
            Primitive::Creation(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Unary(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Binary(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Ternary(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Reduce(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Scan(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Shape(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Indexing(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Sort(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Random(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Matmul(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Quantized(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Linalg(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Fft(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Transform(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Fused(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::FusedGroup(op) => op.vjp(inputs, cotangents, argnums, outputs),
            Primitive::Fast(op) => op.vjp(inputs, cotangents, argnums, outputs),
        }
    }

    /// The Jacobian-vector product: given the tangent of each input (`None`: zero), the
    /// tangent of every output.
    pub fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        match self {
            Primitive::Creation(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Unary(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Binary(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Ternary(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Reduce(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Scan(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Shape(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Indexing(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Sort(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Random(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Matmul(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Quantized(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Linalg(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Fft(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Transform(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Fused(op) => op.jvp(inputs, tangents, outputs),
            Primitive::FusedGroup(op) => op.jvp(inputs, tangents, outputs),
            Primitive::Fast(op) => op.jvp(inputs, tangents, outputs),
        }
    }

    /// The batching rule: the primitive applied to inputs that carry a batch axis
    /// (`axes[i]`, `None` for unbatched inputs), giving the batched outputs and their batch
    /// axes. `outputs` are the unbatched outputs (their shapes and dtypes).
    pub fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        match self {
            Primitive::Creation(op) => op.vmap(inputs, axes, outputs),
            Primitive::Unary(op) => op.vmap(inputs, axes, outputs),
            Primitive::Binary(op) => op.vmap(inputs, axes, outputs),
            Primitive::Ternary(op) => op.vmap(inputs, axes, outputs),
            Primitive::Reduce(op) => op.vmap(inputs, axes, outputs),
            Primitive::Scan(op) => op.vmap(inputs, axes, outputs),
            Primitive::Shape(op) => op.vmap(inputs, axes, outputs),
            Primitive::Indexing(op) => op.vmap(inputs, axes, outputs),
            Primitive::Sort(op) => op.vmap(inputs, axes, outputs),
            Primitive::Random(op) => op.vmap(inputs, axes, outputs),
            Primitive::Matmul(op) => op.vmap(inputs, axes, outputs),
            Primitive::Quantized(op) => op.vmap(inputs, axes, outputs),
            Primitive::Linalg(op) => op.vmap(inputs, axes, outputs),
            Primitive::Fft(op) => op.vmap(inputs, axes, outputs),
            Primitive::Transform(op) => op.vmap(inputs, axes),
            Primitive::Fused(op) => op.vmap(inputs, axes, outputs),
            Primitive::FusedGroup(op) => op.vmap(inputs, axes, outputs),
            Primitive::Fast(op) => op.vmap(inputs, axes, outputs),
        }
    }
}
