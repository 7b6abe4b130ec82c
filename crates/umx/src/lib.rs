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

/// Registers the backends. It runs by itself when a program that links this crate starts;
/// calling it again does nothing.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(umx_cpu::register);
}

// SAFETY of running before main: `init` only fills a registry behind a lock; it touches no
// other static, no thread-local and no I/O.
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
