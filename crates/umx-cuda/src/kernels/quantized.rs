//! GPU kernels of the quantization primitives (placeholder: the CPU kernels run them).

use umx_core::device::OutSpec;
use umx_core::primitives::QuantOp;
use umx_core::{ArrayData, Result};

pub fn eval(
    _op: &QuantOp,
    _inputs: &[ArrayData],
    _outputs: &[OutSpec],
) -> Result<Option<Vec<ArrayData>>> {
    Ok(None)
}
