//! CPU kernels of the reduce primitives.

use umx_core::device::OutSpec;
use umx_core::primitives::ReduceOp;
use umx_core::{ArrayData, Error, Result};

pub fn eval(op: &ReduceOp, _inputs: Vec<ArrayData>, _outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    Err(Error::Device(format!("cpu: {op:?} is not implemented yet")))
}
