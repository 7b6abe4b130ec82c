//! Function transformations: [`vjp`], [`jvp`], [`grad`], [`value_and_grad`], [`vmap`],
//! [`compile`], [`custom_function`], [`checkpoint`] and [`stop_gradient`].
//!
//! All of them work the way MLX's do: call the function on *tracers* (identity nodes over the
//! inputs, or value-less placeholders for `vmap`), which builds the lazy graph of its outputs;
//! then walk that graph and apply each primitive's rule (`primitives/<family>/transforms.rs`),
//! building a new lazy graph for the result. Because rules are ordinary ops, transformations
//! nest in any order: `grad(grad(f))`, `vmap(grad(f))`, `jvp` of `vjp`, ...
//!
//! While a function is traced, [`eval`](crate::eval()) keeps the graph (a function may evaluate
//! and print its intermediates) instead of freeing it as it runs.

mod compile;
pub mod custom;
mod graph;
pub(crate) mod rules;
mod tree;
mod vjp;
mod vmap;

pub use compile::{compile, compile_once, disable_compile, enable_compile};
pub use custom::{CustomFunction, checkpoint, custom_function, depends, stop_gradient};
pub use tree::Tree;
pub use vjp::{grad, grad_argnums, jvp, value_and_grad, value_and_grad_aux, vjp};
pub use vmap::vmap;

use std::cell::Cell;
use std::thread::LocalKey;

thread_local! {
    static TRACING: Cell<usize> = const { Cell::new(0) };
    static GRAD_TRACING: Cell<usize> = const { Cell::new(0) };
}

/// Whether a transformation is tracing a function on this thread.
pub(crate) fn tracing() -> bool {
    TRACING.with(|t| t.get() > 0)
}

/// Whether a function is being traced for its gradient ([`vjp`] and what builds on it) on
/// this thread: ops may then keep what their backward pass reuses (attention its
/// log-sum-exp), as MLX's `in_grad_tracing`.
pub(crate) fn grad_tracing() -> bool {
    GRAD_TRACING.with(|t| t.get() > 0)
}

/// Marks this thread as tracing (or tracing for a gradient) until dropped (nests).
pub(crate) struct Tracing(&'static LocalKey<Cell<usize>>);

impl Tracing {
    pub(crate) fn start() -> Tracing {
        Tracing::on(&TRACING)
    }

    /// Marks the tracing of a function whose gradient is taken (see [`grad_tracing`]).
    pub(crate) fn grad() -> Tracing {
        Tracing::on(&GRAD_TRACING)
    }

    fn on(counter: &'static LocalKey<Cell<usize>>) -> Tracing {
        counter.with(|t| t.set(t.get() + 1));
        Tracing(counter)
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        self.0.with(|t| t.set(t.get() - 1));
    }
}
