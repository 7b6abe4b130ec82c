//! Reductions over axes (`sum`, `prod`, `max`, `min`, `mean`, `all`, `any`) and arg-reductions
//! (`argmax`, `argmin`), with the rules every backend shares: output shape, output dtype, the
//! dtype values accumulate in, and the identity a reduction starts from.
//!
//! Backends write a reduction's output contiguously in the order of the kept axes, so the node's
//! shape may keep the reduced axes as size-1 dimensions (`keepdims`) or drop them: the bytes are
//! the same, and no reshape node is needed.

mod transforms;

use crate::Dtype;
use crate::shape::Shape;

/// How the values along the reduced axes combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    /// Sum; bool and integers of 32 bits or less sum into int32 (unsigned: uint32).
    Sum,
    /// Product; same dtypes as [`ReduceKind::Sum`].
    Prod,
    /// Largest value; a NaN anywhere gives NaN.
    Max,
    /// Smallest value; a NaN anywhere gives NaN.
    Min,
    /// Arithmetic mean; integers and bool give float32. An empty reduction gives NaN.
    Mean,
    /// Whether every value is nonzero.
    All,
    /// Whether any value is nonzero.
    Any,
}

/// Which extreme an arg-reduction looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgReduceKind {
    /// Index of the first largest value (of the first NaN, when there is one).
    ArgMax,
    /// Index of the first smallest value (of the first NaN, when there is one).
    ArgMin,
}

/// The reduce primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum ReduceOp {
    /// Reduces over `axes` (normalised, sorted, distinct). Output: the kept axes (the reduced
    /// ones as 1, or dropped), of dtype [`ReduceKind::output_dtype`]. With no axes it is an
    /// element-wise copy (a reshaped copy when the node's shape differs).
    Reduce { kind: ReduceKind, axes: Vec<usize> },
    /// The uint32 index along `axis` of the extreme value. Output: the other axes (`axis` as 1,
    /// or dropped).
    ArgReduce { kind: ArgReduceKind, axis: usize },
}

impl ReduceKind {
    /// MLX's name of the op.
    pub fn name(self) -> &'static str {
        match self {
            ReduceKind::Sum => "sum",
            ReduceKind::Prod => "prod",
            ReduceKind::Max => "max",
            ReduceKind::Min => "min",
            ReduceKind::Mean => "mean",
            ReduceKind::All => "all",
            ReduceKind::Any => "any",
        }
    }

    /// The dtype of the result for an input of `dtype` (MLX's rules).
    pub fn output_dtype(self, dtype: Dtype) -> Dtype {
        use Dtype::*;
        match self {
            ReduceKind::Sum | ReduceKind::Prod => match dtype {
                Bool | Int8 | Int16 | Int32 => Int32,
                Uint8 | Uint16 | Uint32 => Uint32,
                d => d,
            },
            ReduceKind::Max | ReduceKind::Min => dtype,
            ReduceKind::Mean => dtype.to_inexact(),
            ReduceKind::All | ReduceKind::Any => Bool,
        }
    }

    /// The dtype values accumulate in: float16 and bfloat16 in float32 (rounded once at the
    /// end), everything else in the output dtype.
    pub fn accumulate_dtype(self, dtype: Dtype) -> Dtype {
        match self.output_dtype(dtype) {
            Dtype::Float16 | Dtype::Bfloat16 => Dtype::Float32,
            d => d,
        }
    }

    /// Whether reducing an empty axis is an error (it has no identity).
    pub fn needs_values(self) -> bool {
        matches!(self, ReduceKind::Max | ReduceKind::Min)
    }
}

impl ArgReduceKind {
    /// MLX's name of the op.
    pub fn name(self) -> &'static str {
        match self {
            ArgReduceKind::ArgMax => "argmax",
            ArgReduceKind::ArgMin => "argmin",
        }
    }
}

impl ReduceOp {
    /// MLX's name of the op.
    pub fn name(&self) -> &'static str {
        match self {
            ReduceOp::Reduce { kind, .. } => kind.name(),
            ReduceOp::ArgReduce { kind, .. } => kind.name(),
        }
    }
}

/// `shape` with every axis in `axes` set to 1: the output shape of a reduction with kept dims.
pub fn reduced_shape(shape: &[usize], axes: &[usize]) -> Shape {
    let mut out = shape.to_vec();
    for &a in axes {
        out[a] = 1;
    }
    out
}

/// `shape` without the axes in `axes`: the output shape of a reduction without kept dims.
pub fn squeezed_shape(shape: &[usize], axes: &[usize]) -> Shape {
    shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, &d)| d)
        .collect()
}
