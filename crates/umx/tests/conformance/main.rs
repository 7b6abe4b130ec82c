//! The op conformance suite: every module a family of ops or transformations checked against
//! NumPy/MLX reference values, in one test binary (one link instead of one per file).
//! Tests that need a process of their own (global switches, memory counters, the global
//! random key) stay in files of their own beside this folder.

mod common;
#[path = "common/fd.rs"]
mod fd;

mod compile;
mod fast;
mod fft;
mod graph;
mod linalg;
mod nn;
mod ops_binary;
mod ops_conv;
mod ops_creation;
mod ops_indexing;
mod ops_matmul;
mod ops_reduce;
mod ops_sort;
mod ops_unary;
mod ops_views;
mod quantized;
mod rope_cache;
mod transforms;
mod transforms_compose;
mod transforms_errors;
mod transforms_indexing;
mod transforms_linalg;
