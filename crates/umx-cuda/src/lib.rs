//! umx-cuda: the CUDA backend. cudarc loads the driver, NVRTC, cuBLAS(Lt), cuSOLVER and cuFFT at
//! run time, so this crate builds (and a program using it runs, on the CPU) where no CUDA is
//! installed.
//!
//! Depends on `umx-core` (the `Backend` and `DeviceStorage` traits) and `umx-cpu` (the
//! fallback for primitives without a GPU kernel yet). Start reading at [`CudaBackend`], then
//! `storage.rs` (device copies of buffers), `pool.rs` (device memory), `compile.rs` (NVRTC and
//! the kernel cache) and `kernels/elementwise.rs`.
//!
//! What runs on the GPU: element-wise unary, binary and ternary ops and casts (every dtype;
//! complex64 but its inverse trigonometric functions), copies, `full`, `eye`, `tri`, integer
//! `arange`, `linspace`, reductions (sum, prod, max, min, mean, all, any; complex64 too)
//! and arg-reductions, scans, sort/argsort/partition/topk (any dtype, any lane length),
//! `searchsorted`, gathers and scatters (take, take_along_axis, gather, scatter in every mode,
//! put_along_axis, slice_update; complex64 in every mode), concatenate, constant
//! and edge padding, `as_strided`, `view`, triangles, matmul and addmm (float32, float16,
//! bfloat16, float64, complex64; a matrix-vector kernel for decoding), `quantize` (the CPU's
//! codes bit for bit), `dequantize` and `quantized_matmul` (a matrix-vector kernel for decode,
//! else dequantize + cuBLASLt), random bits and samples of every distribution, complex normals
//! included (the CPU's numbers: threefry bits bit for bit), fused programs (compiled
//! element-wise chains, with a reduction at their end or several outputs) as generated
//! kernels, the factorizations of `linalg` through cuSOLVER and cuBLAS (float32 and float64),
//! and the Fourier transforms through cuFFT. View primitives (transpose, broadcast, reshape,
//! slice, ...) only restride and never move bytes. What stays on the CPU fallback
//! ([`fallback_ops`] lists what did; `UMX_LOG_FALLBACK` logs it): float `arange` (a running
//! sum rounded at each step, which no parallel kernel reproduces; it has no inputs, so it
//! costs no sync) and the linalg cases cuSOLVER does not cover (complex64 `eig`, empty and
//! non-finite input). [`CudaGraph`] captures a step of GPU work once and replays it. Each
//! `umx::Stream` of the GPU is a CUDA stream; events order work that crosses streams
//! (`gpu.rs`).
//!
//! On sm_90 kernels launch with programmatic dependent launch (`UMX_NO_PDL=1` turns it off):
//! a kernel may start while the one before it runs; it first lets the next one start, then
//! waits for the one before it (whose end implies the end of all before), so a chain of short
//! kernels is resident ahead of its turn and launch latency overlaps (`UMX_PDL_TRIGGER=after`
//! lets the next start only after the wait). The matrix-vector kernels load their first weights before that wait
//! when no running kernel can be writing them: every device buffer carries a write stamp,
//! and synchronizing a stream settles what was stamped before (`storage.rs`;
//! `UMX_EARLY_LOADS=0` turns this off).

mod batch;
mod compile;
mod fallback;
mod gpu;
mod graph;
pub mod kernels;
mod pool;
mod profile;
mod storage;

pub use batch::{BatchStats, MAX_BATCH, batch_stats, set_launch_batching};
pub use compile::{kernel_cache_stats, launch_cost};
pub use fallback::fallback_ops;
pub use gpu::{device_count, device_info};
pub use graph::{CudaGraph, HostRead};
pub use kernels::gemv::set_gemv;
pub use kernels::matmul::set_tf32;
pub use pool::memory;
pub use profile::{ProfileLine, profile_report, set_profiling};
pub use storage::CudaStorage;

use std::sync::Arc;
use umx_core::device::{Backend, OutSpec};
use umx_core::primitives::reduce::ReduceOp;
use umx_core::primitives::{FastOp, Primitive, ShapeOp};
use umx_core::{Array, ArrayData, Device, Result, Stream};

/// The CUDA backend of GPU 0.
pub struct CudaBackend;

impl Backend for CudaBackend {
    fn device(&self) -> Device {
        Device::Gpu(0)
    }

    fn has_fast_kernel(&self, op: &FastOp, inputs: &[Array]) -> bool {
        kernels::flash::has_kernel(op, inputs)
    }

    fn eval(
        &self,
        prim: &Primitive,
        inputs: Vec<ArrayData>,
        outputs: &[OutSpec],
        stream: Stream,
    ) -> Result<Vec<ArrayData>> {
        gpu::gpu()?;
        let _guard = graph::stream_guard();
        let capturing = graph::capturing();
        // The node's stream is current while it runs (a capture takes everything on the
        // default stream); it waits for the streams that wrote its inputs.
        let index = if capturing { 0 } else { stream.index };
        let _on = gpu::on_stream(index)?;
        let multi = gpu::multi_stream();
        if multi {
            for x in &inputs {
                if let Some(s) = cuda_storage(&x.buffer) {
                    s.order_read(index)?;
                }
            }
        }
        let start = profile::mark()?;
        let mut on_cpu = false;
        let outs = match gpu_kernel(prim, &inputs, outputs)? {
            Some(outs) => outs,
            None if umx_cpu::is_view(prim) => view(prim, inputs, outputs)?,
            None if capturing => {
                let mut what = format!("{prim:?}");
                if what.len() > 120 {
                    what = format!("{}...", &what[..what.floor_char_boundary(120)]);
                }
                what.push_str(" (no GPU kernel for these inputs)");
                return Err(graph::not_capturable(&what));
            }
            None => {
                on_cpu = true;
                fallback::eval(prim, inputs, outputs)?
            }
        };
        if start.is_some() {
            let shape = outputs.first().map(|o| o.shape.clone()).unwrap_or_default();
            let cpu = if on_cpu { "+cpu" } else { "" };
            profile::span(format!("{}{cpu} {shape:?}", prim.name()), start)?;
        }
        // A view writes nothing; every other output's block was written by the work just
        // queued.
        let wrote = !umx_cpu::is_view(prim);
        for o in &outs {
            o.buffer.set_origin(prim.name());
            if let Some(s) = cuda_storage(&o.buffer) {
                if multi {
                    s.note_write(index);
                }
                if wrote {
                    s.mark_written();
                }
            }
        }
        Ok(outs)
    }

    fn open_stream(&self, index: usize) -> Result<()> {
        // Made now, so that a stream past the last the GPU may have fails here.
        drop(gpu::on_stream(index)?);
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        batch::flush_all()
    }

    fn synchronize(&self, stream: Stream) -> Result<()> {
        let _guard = graph::stream_guard();
        if graph::capturing() {
            return Err(graph::not_capturable("waiting for the GPU"));
        }
        gpu::gpu()?.synchronize_stream(stream.index)?;
        kernels::indexing::take_index_error()
    }
}

/// A buffer's device copy, when it has one on this GPU.
fn cuda_storage(buffer: &umx_core::Buffer) -> Option<&CudaStorage> {
    buffer
        .device_storage()?
        .as_any()
        .downcast_ref::<CudaStorage>()
}

/// The GPU kernel of a primitive, or `None` when it has none yet (for these inputs).
fn gpu_kernel(
    prim: &Primitive,
    inputs: &[ArrayData],
    outputs: &[OutSpec],
) -> Result<Option<Vec<ArrayData>>> {
    use kernels::*;
    match prim {
        Primitive::Unary(op) => unary(op, inputs, outputs),
        Primitive::Binary(op) => binary(op, inputs, outputs),
        Primitive::Ternary(op) => ternary(op, inputs, outputs),
        Primitive::Reduce(ReduceOp::ArgReduce { kind, axis }) => {
            argreduce::eval(*kind, *axis, inputs, outputs)
        }
        Primitive::Reduce(op) => reduce::eval(op, inputs, outputs),
        Primitive::Matmul(op) => matmul::eval(op, inputs, outputs),
        Primitive::Quantized(op) => quantized::eval(op, inputs, outputs),
        Primitive::Shape(op) => shape(op, inputs, outputs),
        Primitive::Fused(op) => fused(op, inputs, outputs),
        Primitive::FusedGroup(op) => fused_group(op, inputs, outputs),
        Primitive::Fast(op) => fast::eval(op, inputs, outputs),
        Primitive::Creation(op) => creation(op, inputs, outputs),
        Primitive::Indexing(op) => indexing::eval(op, inputs, outputs),
        Primitive::Scan(op) => scan::eval(op, inputs, outputs),
        Primitive::Sort(op) => sort::eval(op, inputs, outputs),
        Primitive::Random(op) => random::eval(op, inputs, outputs),
        Primitive::Linalg(op) => linalg::eval(op, inputs, outputs),
        Primitive::Fft(op) => fft::eval(op, inputs, outputs),
        // Transformation nodes pass their inputs through, wherever they are.
        Primitive::Transform(op) => op.passthrough(inputs.to_vec(), outputs.len()).map(Some),
    }
}

/// A view primitive: the CPU backend's code only computes strides, so it serves the GPU too
/// and the bytes stay where they are. A reshape the strides cannot express copies on the GPU
/// first (one they can, a slice's rows split into heads say, stays a view).
fn view(prim: &Primitive, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let inputs = match (prim, inputs.as_slice()) {
        (Primitive::Shape(ShapeOp::Reshape { shape }), [x])
            if umx_cpu::kernels::shape::reshape_strides(&x.shape, &x.strides, shape).is_none()
                && x.buffer.residency().device.is_some() =>
        {
            match kernels::contiguous(x, x.dtype)? {
                Some(c) => vec![c],
                None => inputs,
            }
        }
        _ => inputs,
    };
    umx_cpu::CpuBackend.eval(prim, inputs, outputs, Stream::default_of(Device::Cpu))
}

/// Registers the CUDA backend for `Device::Gpu(0)` when a CUDA device is present; returns
/// whether it did. Without a driver or a device it does nothing (and never panics), so asking
/// for the GPU then gives an error naming the device.
pub fn register() -> bool {
    if gpu::device_count() == 0 {
        return false;
    }
    umx_core::device::register_backend(Arc::new(CudaBackend));
    true
}

/// Diagnostics: where the host time of one small GPU op goes. Each row is the mean host time
/// of one step, in microseconds, over `n` repetitions on 16-element float32 arrays:
///
/// - `launch`: an empty kernel launched as umx launches (`cuLaunchKernelEx` with programmatic
///   dependent launch on sm_90), and `launch, plain`: through `cuLaunchKernel`;
/// - `pool`: a device block from the pool and back;
/// - `key`: the element-wise generator's kernel key for an `add`;
/// - `lookup`: finding that kernel by its key;
/// - `kernel`: the `add` kernel's whole dispatch (`kernels::binary`: output, operands, key,
///   lookup, launch);
/// - `backend`: [`CudaBackend`]'s `eval` of the `add` primitive (`kernel` and the stream,
///   profile and origin bookkeeping around it);
/// - `kernel, card busy` and `backend, card busy`: the same queued behind 50 ms of GPU work,
///   so that a card slower than the host cannot hold the host back (the host's own cost).
pub fn dispatch_cost(n: usize) -> Result<Vec<(&'static str, f64)>> {
    use umx_core::primitives::BinaryOp;
    let g = gpu::gpu()?;
    // Its launches bypass the backend: it waits for a capture on another thread like any
    // GPU work (and fails inside one, at the first host sync).
    let _guard = graph::stream_guard();
    let n = n.max(1);
    let x = ArrayData::contiguous(
        umx_core::Buffer::from_slice(&[1.0f32; 16])?,
        &[16],
        umx_core::Dtype::Float32,
    );
    storage::device_ptr(&x.buffer)?;
    let add = BinaryOp::Add;
    let prim = Primitive::Binary(add.clone());
    let spec = [OutSpec {
        shape: vec![16],
        dtype: umx_core::Dtype::Float32,
    }];
    let expr = add
        .c_expr(umx_core::Dtype::Float32, "x0", "x1")
        .unwrap_or_default();
    let compute = [umx_core::Dtype::Float32; 2];
    let inputs = [x.clone(), x.clone()];
    let key = || {
        kernels::elementwise::program_key(
            &inputs,
            &compute,
            ['a', 'a'].into_iter(),
            "",
            &[(&expr, umx_core::Dtype::Float32)],
            true,
        )
    };
    kernels::binary(&add, &inputs, &spec)?;
    let stream = Stream::default_of(Device::Gpu(0));
    let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        g.synchronize()?;
        let t = std::time::Instant::now();
        for _ in 0..n {
            f()?;
        }
        let host = t.elapsed().as_secs_f64();
        g.synchronize()?;
        Ok(host / n as f64 * 1e6)
    };
    let (launch, launched) = compile::launch_cost(n)?;
    let mut rows = vec![("launch", launch), ("launch, with the card", launched)];
    // The same empty kernel through plain `cuLaunchKernel` (no launch attributes).
    let empty = compile::empty_kernel()?;
    rows.push((
        "launch, plain",
        time(&mut || {
            let mut v = 0i32;
            // SAFETY: the empty kernel takes one int.
            unsafe {
                cudarc::driver::result::launch_kernel(
                    empty,
                    (1, 1, 1),
                    (32, 1, 1),
                    0,
                    g.stream(),
                    &mut [&mut v as *mut i32 as *mut std::ffi::c_void],
                )
            }
            .map_err(|e| gpu::driver_err("launching a kernel", e))
        })?,
    ));
    rows.push((
        "pool",
        time(&mut || storage::CudaStorage::alloc(64).map(drop))?,
    ));
    rows.push((
        "key",
        time(&mut || {
            std::hint::black_box(key());
            Ok(())
        })?,
    ));
    let k = key();
    rows.push((
        "lookup",
        time(&mut || compile::function_for(&k, String::new, "umx_elementwise").map(drop))?,
    ));
    rows.push((
        "kernel",
        time(&mut || kernels::binary(&add, &inputs, &spec).map(drop))?,
    ));
    rows.push((
        "backend",
        time(&mut || {
            CudaBackend
                .eval(&prim, inputs.to_vec(), &spec, stream)
                .map(drop)
        })?,
    ));
    // The same dispatches queued behind 50 ms of GPU work: the host's own time, with no wait
    // for a card that falls behind.
    let spin = compile::function(
        r#"extern "C" __global__ void umx_spin(long long cycles) {
  long long t0 = clock64();
  while (clock64() - t0 < cycles) {}
}"#,
        "umx_spin",
    )?;
    for (name, backend) in [("kernel, card busy", false), ("backend, card busy", true)] {
        g.synchronize()?;
        let mut cycles = 100_000_000i64;
        compile::launch(spin, 1, 1, 0, &mut [&mut cycles as *mut i64 as *mut _])?;
        let t = std::time::Instant::now();
        for _ in 0..n {
            if backend {
                drop(CudaBackend.eval(&prim, inputs.to_vec(), &spec, stream)?);
            } else {
                drop(kernels::binary(&add, &inputs, &spec)?);
            }
        }
        rows.push((name, t.elapsed().as_secs_f64() / n as f64 * 1e6));
    }
    g.synchronize()?;
    Ok(rows)
}
