//! Views and layout changes: reshape, transpose, broadcast, flip, as_strided, split (views that
//! share the input's buffer), and copy, concatenate, pad (which write a new buffer).
//!
//! Ops in `ops/shape.rs` check their arguments and compute the output shape; each primitive here
//! records only what its kernel needs. A backend must return views for the view primitives
//! (same `Arc<Buffer>`, new strides and offset), except `Reshape` of data whose strides cannot
//! express the new shape, which copies first.

mod transforms;

use crate::{Dtype, Shape, Strides};

/// How [`ShapeOp::Pad`] fills the border.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PadMode {
    /// A constant: the primitive's second input, a 0-d array (of any dtype, converted).
    #[default]
    Constant,
    /// The nearest edge value of the input along each axis.
    Edge,
}

/// The shape primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum ShapeOp {
    /// A row-major contiguous copy of the input.
    Copy,
    /// The same elements in row-major order, with a new shape of the same size. A view when
    /// the input's strides allow it (always for row-contiguous data), else a copy.
    Reshape { shape: Shape },
    /// Axes permuted: output axis `i` is input axis `perm[i]`. A view.
    Transpose { perm: Vec<usize> },
    /// The input broadcast to `shape` (NumPy's rule; checked by the op). A view (stride 0).
    Broadcast { shape: Shape },
    /// A view of the input's elements in row-major order (the op flattens first) with
    /// arbitrary `strides` and `offset`, in elements. The op checks that every element the
    /// view can reach lies inside the input.
    AsStrided {
        shape: Shape,
        strides: Strides,
        offset: usize,
    },
    /// The order of elements reversed along `axes` (sorted, unique). A view (negative strides).
    Flip { axes: Vec<usize> },
    /// Pieces `[start, stop)` of the input along `axis`, one output each. Views.
    Split {
        axis: usize,
        bounds: Vec<(usize, usize)>,
    },
    /// The inputs joined along `axis`; inputs of another dtype than the output are converted.
    Concatenate { axis: usize },
    /// The input with `low[i]` elements before and `high[i]` after it along each axis `i`.
    Pad {
        low: Vec<usize>,
        high: Vec<usize>,
        mode: PadMode,
    },
    /// The bytes of the (row-major) input reinterpreted as `dtype`; the last axis scales by
    /// the ratio of the element sizes. A view unless the target is bool (bytes are normalised
    /// to 0/1) or the input's offset does not fall on an element of `dtype`.
    View { dtype: Dtype },
}

impl ShapeOp {
    /// MLX's name of the primitive, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            ShapeOp::Copy => "copy",
            ShapeOp::Reshape { .. } => "reshape",
            ShapeOp::Transpose { .. } => "transpose",
            ShapeOp::Broadcast { .. } => "broadcast_to",
            ShapeOp::AsStrided { .. } => "as_strided",
            ShapeOp::Flip { .. } => "flip",
            ShapeOp::Split { .. } => "split",
            ShapeOp::Concatenate { .. } => "concatenate",
            ShapeOp::Pad { .. } => "pad",
            ShapeOp::View { .. } => "view",
        }
    }

    /// Whether the output shares the input's buffer (always, or when the layout allows).
    pub fn is_view(&self) -> bool {
        !matches!(
            self,
            ShapeOp::Copy | ShapeOp::Concatenate { .. } | ShapeOp::Pad { .. }
        )
    }
}
