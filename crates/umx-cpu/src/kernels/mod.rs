//! One file per primitive family. Each exposes
//! `eval(op, inputs, outputs) -> Result<Vec<ArrayData>>`.

pub mod binary;
pub mod creation;
pub mod fast;
pub mod fft;
pub mod fused;
pub mod indexing;
pub mod linalg;
pub mod matmul;
pub mod quantized;
pub mod random;
pub mod reduce;
pub mod scan;
pub mod shape;
pub mod sort;
pub mod ternary;
pub mod unary;
