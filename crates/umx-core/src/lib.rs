//! umx-core: arrays, dtypes, shapes, the lazy graph, primitives, ops, eval, buffers and the
//! `Backend` trait. No kernels and no GPU code live here: backends (`umx-cpu`, `umx-cuda`)
//! register themselves at run time through [`device::register_backend`].
//!
//! Start reading at [`Array`] (array.rs), then [`eval()`] (eval.rs), then one op family end to end:
//! `ops/elementwise.rs` → `primitives/binary.rs` → `umx-cpu/src/kernels/binary.rs`.

pub mod array;
pub mod buffer;
pub mod device;
mod display;
pub mod dtype;
pub mod error;
pub mod eval;
pub mod ops;
pub mod primitives;
pub mod shape;
pub mod transforms;

pub use array::{Array, ArrayData, IntoArray};
pub use buffer::{Buffer, DeviceStorage, Residency, memory};
pub use device::{
    Device, Stream, default_device, default_stream, new_stream, with_device, with_stream,
};
pub use dtype::{Dtype, Element, promote_types};
pub use error::{Error, Result};
pub use eval::{async_eval, eval};
pub use ops::{fast, fft, linalg, random};
pub use shape::{Axes, Shape, Strides};
pub use transforms::{
    Tree, checkpoint, custom_function, grad, jvp, stop_gradient, value_and_grad, vjp, vmap,
};

#[doc(hidden)]
pub use half;
#[doc(hidden)]
pub use num_complex;

pub use half::{bf16, f16};
pub use num_complex::Complex32;
