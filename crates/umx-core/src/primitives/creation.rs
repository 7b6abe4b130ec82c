//! Primitives that make arrays from parameters (arange, linspace, eye, tri) or fill a shape with
//! a value (full). The output's shape and dtype come with the node (`OutSpec`).

mod transforms;

/// The creation primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum CreationOp {
    /// `start, start + step, ...` as MLX computes it: `start` and `next = start + step` are
    /// converted to the output dtype, and each element adds `next - start` (in that dtype) to
    /// the previous one. No inputs; a 1-d output.
    Arange { start: f64, step: f64 },
    /// `num` evenly spaced values from `start` to `stop` (both included): with `t = i / (num -
    /// 1)` in float32, `(1 - t) * start + t * stop` in float32, then cast to the output dtype.
    /// No inputs; a 1-d output of `num` elements.
    Linspace { start: f64, stop: f64 },
    /// Input 0 (any dtype, broadcastable to the output shape) cast to the output dtype and
    /// broadcast into a new contiguous array.
    Full,
    /// Ones on the `k`-th diagonal of an `(n, m)` output, zeros elsewhere. No inputs.
    Eye { k: i64 },
    /// Ones at and below the `k`-th diagonal of an `(n, m)` output (`j <= i + k`), zeros
    /// elsewhere. No inputs.
    Tri { k: i64 },
}

/// The value of [`CreationOp::Linspace`] at index `i` of `num`, in float32 (MLX's formula).
#[inline]
pub fn linspace_value(start: f64, stop: f64, i: usize, num: usize) -> f32 {
    if num == 1 {
        return start as f32;
    }
    let t = i as f32 / (num - 1) as f32;
    let t_bar = 1.0 - t;
    t_bar * start as f32 + t * stop as f32
}
