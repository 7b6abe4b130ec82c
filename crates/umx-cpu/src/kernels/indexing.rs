//! CPU kernels of the indexing primitives.

use umx_core::device::OutSpec;
use umx_core::primitives::IndexOp;
use umx_core::{ArrayData, Error, Result};

pub fn eval(op: &IndexOp, _inputs: Vec<ArrayData>, _outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    Err(Error::Device(format!("cpu: {op:?} is not implemented yet")))
}
