//! The public op API: free functions with MLX's names and semantics. Each checks its inputs,
//! infers the output shape and dtype at once, and returns a lazy array.
#![allow(unused_imports)] // families fill their modules as they land

pub mod conv;
pub mod creation;
pub mod elementwise;
pub mod fast;
pub mod fft;
pub mod indexing;
pub mod linalg;
pub mod operators;
pub mod quantized;
pub mod random;
pub mod reduce;
pub mod scan;
pub mod shape;
pub mod sort;
pub mod unary;

pub use conv::*;
pub use creation::*;
pub use elementwise::*;
pub use indexing::*;
// Only the products: the rest of linalg is used as `linalg::inv`, as in MLX and NumPy.
pub use linalg::{TensordotAxes, addmm, einsum, einsum_path, inner, matmul, outer, tensordot};
pub use quantized::*;
pub use reduce::*;
pub use scan::*;
pub use shape::*;
pub use sort::*;
pub use unary::*;
