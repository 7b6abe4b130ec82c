//! umx: NumPy-like arrays with lazy evaluation, after Apple's MLX. This is the crate users
//! depend on: it re-exports the core and registers the backends.
//!
//! ```
//! use umx::prelude::*;
//! let a = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3])?;
//! assert_eq!(a.shape(), &[3]);
//! # Ok::<(), umx::Error>(())
//! ```

pub use umx_core::*;
/// Reading and writing arrays and module weights: safetensors, npy/npz, gguf.
pub use umx_io as io;
/// Layers, losses, initializers and the `Module` trait (`mlx.nn`).
pub use umx_nn as nn;
/// Optimizers and learning-rate schedules (`mlx.optimizers`).
pub use umx_optim as optim;

/// The CUDA backend's own settings and statistics: device memory (`umx::cuda::memory`), the
/// kernel cache, launch batching, TF32 for float32 matmul, which primitives still run on the
/// CPU fallback, a kernel-time profile by primitive, and [`CudaGraph`](umx_cuda::CudaGraph) (a
/// step captured once and replayed).
pub mod cuda {
    pub use umx_cuda::{
        BatchStats, CudaGraph, HostRead, ProfileLine, batch_stats, device_count, device_info,
        dispatch_cost, fallback_ops, kernel_cache_stats, launch_cost, memory, profile_report,
        set_gemv, set_launch_batching, set_profiling, set_tf32,
    };
}

/// Registers the backends. It runs by itself when a program that links this crate starts;
/// calling it again does nothing.
///
/// The CUDA backend is registered only when a CUDA driver and device are found (probing never
/// panics and loads nothing else); then `Device::Gpu(0)` is the default device, unless the
/// environment variable `UMX_DEFAULT_DEVICE` says `cpu` (or `gpu`).
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        umx_cpu::register();
        umx_cuda::register();
        match std::env::var("UMX_DEFAULT_DEVICE").as_deref() {
            Ok("cpu") => {
                let _ = set_default_device(Device::Cpu);
            }
            Ok("gpu") if set_default_device(Device::Gpu(0)).is_err() => {
                eprintln!("umx: UMX_DEFAULT_DEVICE=gpu, but no CUDA device was found");
            }
            _ => {}
        }
    });
}

/// Sets the device ops run on when they name none (see [`device::set_default_device`]).
pub use umx_core::device::set_default_device;

// SAFETY of running before main: `init` fills a registry behind a lock, reads one environment
// variable and, for the GPU probe, opens libcuda and calls cuInit / cuDeviceGetCount (no
// thread-locals, nothing that needs main to have started).
#[ctor::ctor]
fn register_backends_at_start() {
    init();
}

/// What most programs need: `use umx::prelude::*`.
pub mod prelude {
    pub use umx_core::ops::{self, *};
    pub use umx_core::transforms::{
        Tree, checkpoint, custom_function, grad, jvp, stop_gradient, value_and_grad,
        value_and_grad_aux, vjp, vmap,
    };
    pub use umx_core::{
        Array, Axes, Device, Dtype, Error, IntoArray, Result, async_eval, eval, random,
    };
}
