//! Cumulative scans along one axis (`cumsum`, `cumprod`, `cummax`, `cummin`, `logcumsumexp`)
//! and the rules every backend shares: output dtype, accumulation dtype and identity.

mod transforms;

use crate::Dtype;

/// How a scan combines the running value with the next element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScanKind {
    /// Running sum.
    Sum,
    /// Running product.
    Prod,
    /// Running maximum (NaN, once seen, stays).
    Max,
    /// Running minimum (NaN, once seen, stays).
    Min,
    /// Running `log(sum(exp(x)))`, computed stably.
    LogAddExp,
}

/// The scan primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum ScanOp {
    /// A scan along `axis` (normalised). `reverse` runs from the end; an exclusive scan
    /// (`inclusive == false`) starts from the identity and leaves the current element out.
    /// Output: the input's shape, of dtype [`ScanKind::output_dtype`].
    Scan {
        kind: ScanKind,
        axis: usize,
        reverse: bool,
        inclusive: bool,
    },
}

impl ScanKind {
    /// MLX's name of the op.
    pub fn name(self) -> &'static str {
        match self {
            ScanKind::Sum => "cumsum",
            ScanKind::Prod => "cumprod",
            ScanKind::Max => "cummax",
            ScanKind::Min => "cummin",
            ScanKind::LogAddExp => "logcumsumexp",
        }
    }

    /// The dtype of the result for an input of `dtype` (MLX's rules: bool sums and products
    /// give int32; `logcumsumexp` of integers gives float32; the rest keep the dtype).
    pub fn output_dtype(self, dtype: Dtype) -> Dtype {
        match self {
            ScanKind::Sum | ScanKind::Prod if dtype == Dtype::Bool => Dtype::Int32,
            ScanKind::LogAddExp => dtype.to_inexact(),
            _ => dtype,
        }
    }

    /// The dtype values accumulate in: float16 and bfloat16 in float32.
    pub fn accumulate_dtype(self, dtype: Dtype) -> Dtype {
        match self.output_dtype(dtype) {
            Dtype::Float16 | Dtype::Bfloat16 => Dtype::Float32,
            d => d,
        }
    }
}

impl ScanOp {
    /// MLX's name of the op.
    pub fn name(&self) -> &'static str {
        match self {
            ScanOp::Scan { kind, .. } => kind.name(),
        }
    }
}
