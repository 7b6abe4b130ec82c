//! Primitives that make arrays from nothing but parameters (arange, ...).

/// The creation primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum CreationOp {
    Arange { start: f64, step: f64 },
}
