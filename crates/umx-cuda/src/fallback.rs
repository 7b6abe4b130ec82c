//! The correctness-first path: a primitive with no GPU kernel yet runs on the CPU backend.
//!
//! Its inputs are copied to the host (once per buffer: the host mirror stays), the CPU kernel
//! runs, and the outputs stay on the host until a GPU op reads them (then they are uploaded
//! once). Every move is counted in `umx::memory::bytes_to_host`/`bytes_to_device`. Which
//! primitives took this path is recorded, so tests and notes can list them.

use std::collections::BTreeSet;
use std::sync::Mutex;
use umx_core::device::{Backend, OutSpec};
use umx_core::primitives::Primitive;
use umx_core::{ArrayData, Device, Result, Stream};

static USED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// Runs `prim` with the CPU backend's kernels.
pub(crate) fn eval(
    prim: &Primitive,
    inputs: Vec<ArrayData>,
    outputs: &[OutSpec],
) -> Result<Vec<ArrayData>> {
    USED.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(prim.name());
    umx_cpu::CpuBackend.eval(prim, inputs, outputs, Stream::default_of(Device::Cpu))
}

/// The primitives (by name) that ran on the CPU fallback in this process so far.
pub fn fallback_ops() -> Vec<&'static str> {
    USED.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect()
}
