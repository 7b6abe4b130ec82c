//! CPU kernels of the shape primitives: views share the input's buffer; copies gather.

use crate::strided::contiguous;
use umx_core::device::OutSpec;
use umx_core::primitives::ShapeOp;
use umx_core::{ArrayData, Error, Result};

pub fn eval(op: &ShapeOp, inputs: Vec<ArrayData>, _outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let mut inputs = inputs.into_iter();
    match op {
        ShapeOp::Copy => {
            let x = inputs
                .next()
                .ok_or_else(|| Error::Device("copy: no input".into()))?;
            Ok(vec![contiguous(x)?])
        }
    }
}
