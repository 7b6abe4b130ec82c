//! Indexing primitives: slices (views), slice updates, gathers (take, take_along_axis, gather),
//! scatters (scatter_*, put_along_axis), diagonals and triangular masks.
//!
//! Parameters are stored normalised (axes non-negative, slice starts clamped in range), so a
//! kernel never has to re-check what the op already checked. Index *values* held in arrays are
//! known only at eval: kernels wrap negative ones (as NumPy and MLX do) and return an error
//! naming the op for any still out of range, so nothing is ever read or written out of bounds.

mod transforms;

/// How a scatter combines an update with the value already in place (MLX's `Scatter::ReduceType`).
///
/// Scalar semantics, the same for every backend: `Assign` overwrites; `Add` and `Prod` are
/// wrapping for integers, logical or/and for bool, computed in float32 and rounded once for
/// float16/bfloat16; `Max`/`Min` keep the larger/smaller value (NaN propagates from either
/// side for floats). Updates are applied in row-major order of the index arrays, so with
/// repeated indices `Assign` keeps the last update and the others accumulate every update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScatterMode {
    Assign,
    Add,
    Prod,
    Max,
    Min,
}

impl ScatterMode {
    /// The MLX op that scatters with this mode, for messages.
    pub fn op_name(self) -> &'static str {
        match self {
            ScatterMode::Assign => "scatter",
            ScatterMode::Add => "scatter_add",
            ScatterMode::Prod => "scatter_prod",
            ScatterMode::Max => "scatter_max",
            ScatterMode::Min => "scatter_min",
        }
    }
}

/// The indexing primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexOp {
    /// A strided view: output element `i` along axis `d` is input element
    /// `start[d] + i * step[d]`. Inputs: `[a]`. Starts are in range for non-empty outputs.
    Slice { start: Vec<usize>, step: Vec<i64> },
    /// A copy of `a` whose strided region (as in [`IndexOp::Slice`], of shape `shape`) is
    /// combined with `update` (broadcast to that region and cast to `a`'s dtype).
    /// Inputs: `[a, update]`.
    SliceUpdate {
        start: Vec<usize>,
        step: Vec<i64>,
        shape: Vec<usize>,
        mode: ScatterMode,
    },
    /// `out[pre, j.., post] = a[pre, idx[j..], post]` along `axis`, or over the row-major
    /// flattened `a` when `axis` is `None`. Inputs: `[a, indices]`.
    Take { axis: Option<usize> },
    /// `out[.., j, ..] = a[.., idx[.., j, ..], ..]` along `axis`; `a` and the indices are
    /// broadcast to the output shape on every other axis. Inputs: `[a, indices]`.
    TakeAlongAxis { axis: usize },
    /// A copy of `a` with `values` (broadcast to the indices' shape) combined at
    /// `a[.., idx[.., j, ..], ..]` along `axis`. Inputs: `[a, indices, values]`.
    PutAlongAxis { axis: usize, mode: ScatterMode },
    /// MLX's gather: the indices (broadcast to one shape `B`) pick, for each position of `B`,
    /// the window of `slice_sizes` of `a` that starts at the indexed positions on `axes` (and at
    /// 0 elsewhere). Output shape `B + slice_sizes`. Inputs: `[a, idx_0, .., idx_k]`.
    Gather {
        axes: Vec<usize>,
        slice_sizes: Vec<usize>,
    },
    /// MLX's scatter: a copy of `a` where the window `updates[b]` (shape `updates.shape[B.len()..]`)
    /// is combined into `a` at the indexed positions on `axes` (0 elsewhere), for each `b` of the
    /// indices' broadcast shape `B`. Inputs: `[a, idx_0, .., idx_k, updates]`.
    Scatter { axes: Vec<usize>, mode: ScatterMode },
    /// A view of the `offset`-th diagonal of the plane `(axis1, axis2)`, appended as the last
    /// axis (NumPy's `diagonal`). Inputs: `[a]`.
    Diagonal {
        offset: i64,
        axis1: usize,
        axis2: usize,
    },
    /// A square matrix with the 1-D input on its `k`-th diagonal and zeros elsewhere.
    /// Inputs: `[v]`.
    DiagMatrix { k: i64 },
    /// Keeps the elements on and below (`upper == false`) or on and above (`upper == true`) the
    /// `k`-th diagonal of the last two axes, zeroing the rest (tril / triu). Inputs: `[a]`.
    Triangle { k: i64, upper: bool },
}
