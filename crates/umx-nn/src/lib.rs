//! umx-nn: neural-network building blocks on umx-core, after `mlx.nn`.
//!
//! A [`Module`] is a tree of named [`Param`]s (derive it with `#[derive(Module)]`);
//! [`ModuleExt`] gives every module `parameters`, `update`, `freeze`, `train`/`eval`, dtype
//! conversion; [`value_and_grad`] differentiates a loss with respect to a module's trainable
//! parameters. Layers live in `layers.rs` (linear, embedding, normalisation, dropout), `conv.rs`
//! (convolutions, pooling), `quantized.rs` (quantized layers, `quantize`), `positional.rs`, `recurrent.rs` and `transformer.rs`; activations in
//! `activations.rs`, losses in `losses.rs`, initializers in `init.rs`. Depends on umx-core only.

pub mod activations;
pub mod conv;
pub mod init;
pub mod layers;
pub mod losses;
mod module;
pub mod positional;
pub mod quantized;
pub mod recurrent;
pub mod transformer;
pub mod upsample;

pub use activations::*;
pub use conv::*;
pub use layers::*;
pub use module::{Module, ModuleExt, Param, Params, join, value_and_grad};
pub use positional::*;
pub use quantized::*;
pub use recurrent::*;
pub use transformer::*;
pub use umx_nn_derive::Module;
pub use upsample::*;
