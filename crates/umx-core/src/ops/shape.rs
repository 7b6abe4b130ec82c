//! Shape ops: reshape, transpose, broadcast, concatenate, ... (views where possible).

use crate::primitives::{Primitive, ShapeOp};
use crate::{Array, Result};

/// A row-major contiguous copy of `a` (a no-op for data that already is one, at eval).
pub fn contiguous(a: &Array) -> Result<Array> {
    Array::from_primitive(
        Primitive::Shape(ShapeOp::Copy),
        vec![a.clone()],
        a.shape().to_vec(),
        a.dtype(),
    )
}
