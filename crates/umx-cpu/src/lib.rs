//! umx-cpu: the CPU backend. One exhaustive `match` over the primitive families sends each node
//! to its family's kernels in `kernels/`. Kernels parallelise inside themselves with rayon when
//! the work is large enough, and keep contiguous fast paths beside general strided ones.
//!
//! Depends on `umx-core` only. Start reading at [`CpuBackend`], then `kernels/binary.rs`.

pub mod kernels;
pub mod strided;

use std::sync::Arc;
use umx_core::device::{Backend, OutSpec};
use umx_core::primitives::Primitive;
use umx_core::{ArrayData, Device, Result, Stream};

/// The CPU backend.
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn device(&self) -> Device {
        Device::Cpu
    }

    fn eval(
        &self,
        prim: &Primitive,
        inputs: Vec<ArrayData>,
        outputs: &[OutSpec],
        _stream: Stream,
    ) -> Result<Vec<ArrayData>> {
        use kernels::*;
        // Inputs computed on another device are copied here once (a view only restrides, so
        // it leaves the bytes where they are until something reads them).
        if !is_view(prim) {
            for x in &inputs {
                x.buffer.ensure_host()?;
            }
        }
        let outs = match prim {
            Primitive::Creation(op) => creation::eval(op, inputs, outputs),
            Primitive::Unary(op) => unary::eval(op, inputs, outputs),
            Primitive::Binary(op) => binary::eval(op, inputs, outputs),
            Primitive::Ternary(op) => ternary::eval(op, inputs, outputs),
            Primitive::Reduce(op) => reduce::eval(op, inputs, outputs),
            Primitive::Scan(op) => scan::eval(op, inputs, outputs),
            Primitive::Shape(op) => shape::eval(op, inputs, outputs),
            Primitive::Indexing(op) => indexing::eval(op, inputs, outputs),
            Primitive::Sort(op) => sort::eval(op, inputs, outputs),
            Primitive::Random(op) => random::eval(op, inputs, outputs),
            Primitive::Matmul(op) => matmul::eval(op, inputs, outputs),
            Primitive::Quantized(op) => quantized::eval(op, inputs, outputs),
            Primitive::Linalg(op) => linalg::eval(op, inputs, outputs),
            Primitive::Fft(op) => fft::eval(op, inputs, outputs),
            Primitive::Transform(op) => op.passthrough(inputs, outputs.len()),
            Primitive::Fused(op) => fused::eval(op, inputs, outputs),
            Primitive::FusedGroup(op) => fused::eval_group(op, &inputs, outputs),
            Primitive::Fast(op) => fast::eval(op, inputs, outputs),
        }?;
        for o in &outs {
            o.buffer.set_origin(prim.name());
        }
        Ok(outs)
    }
}

/// Whether the primitive (usually) only restrides its input, so its outputs share the input's
/// buffer and no bytes need to move to compute it. A reshape that must copy reads its input
/// through `as_slice`, which mirrors it then.
pub fn is_view(prim: &Primitive) -> bool {
    use umx_core::primitives::{IndexOp, ShapeOp};
    matches!(
        prim,
        Primitive::Shape(
            ShapeOp::Transpose { .. }
                | ShapeOp::Broadcast { .. }
                | ShapeOp::Flip { .. }
                | ShapeOp::Split { .. }
                | ShapeOp::Reshape { .. }
        ) | Primitive::Indexing(IndexOp::Slice { .. } | IndexOp::Diagonal { .. })
            | Primitive::Transform(_)
    )
}

/// Registers the CPU backend with umx-core (the `umx` crate does this for you).
pub fn register() {
    umx_core::device::register_backend(Arc::new(CpuBackend));
}
