//! CPU kernels of the creation primitives.

use umx_core::device::OutSpec;
use umx_core::primitives::CreationOp;
use umx_core::{ArrayData, Error, Result};

pub fn eval(op: &CreationOp, _inputs: Vec<ArrayData>, _outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    Err(Error::Device(format!("cpu: {op:?} is not implemented yet")))
}
