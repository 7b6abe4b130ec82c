//! Affine quantization, MLX's scheme: the primitives, their shape rules, and the one
//! definition of the format every backend reads and writes.
//!
//! A matrix `w` of shape `(..., K)` is cut into groups of `group_size` consecutive elements
//! along its last axis. Each group keeps a `scale` and a `bias` (in `w`'s dtype) and each
//! element an unsigned `bits`-bit code `q` with `w ≈ scale * q + bias`. The codes of a row
//! are one little-endian bit stream: element `i` occupies bits `i * bits .. (i + 1) * bits`,
//! stored in `uint32` words, so a row of `K` elements packs into `K * bits / 32` words. For 1,
//! 2, 4 and 8 bits no code crosses a word; for 3, 5 and 6 bits codes cross words (MLX packs
//! those three bytes or five bytes at a time, which is the same stream).
//!
//! How a group is quantized ([`quantize_group`]) is MLX's CPU kernel, step for step in float32,
//! so umx's codes, scales and biases equal `mx.quantize`'s bit for bit.

mod transforms;

use crate::Dtype;
use crate::device::OutSpec;

/// The bit widths MLX's affine scheme supports.
pub const SUPPORTED_BITS: [usize; 7] = [1, 2, 3, 4, 5, 6, 8];
/// The group sizes MLX's affine scheme supports.
pub const SUPPORTED_GROUP_SIZES: [usize; 3] = [32, 64, 128];

/// The quantization primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantOp {
    /// Inputs `[w]` (a float matrix `(..., K)`); outputs `[w_q, scales, biases]`: `w_q` uint32
    /// `(..., K * bits / 32)`, `scales` and `biases` of `w`'s dtype `(..., K / group_size)`.
    Quantize { group_size: usize, bits: usize },
    /// Inputs `[w_q, scales, biases]` (scales and biases share a float dtype); output the
    /// matrix `(..., K)` in that dtype.
    Dequantize { group_size: usize, bits: usize },
    /// Inputs `[x, w_q, scales, biases]`, all but `w_q` of the output's float dtype; output
    /// `x @ W^T` (`transpose`) or `x @ W`, with `W` the dequantized matrix. With a 2-D `w_q`,
    /// `x` is any `(..., K)`; with a batched `w_q` the op has broadcast both to one batch shape.
    QuantizedMatmul {
        transpose: bool,
        group_size: usize,
        bits: usize,
    },
}

impl QuantOp {
    /// The op's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            QuantOp::Quantize { .. } => "quantize",
            QuantOp::Dequantize { .. } => "dequantize",
            QuantOp::QuantizedMatmul { .. } => "quantized_matmul",
        }
    }

    /// `(group_size, bits)`.
    pub fn params(&self) -> (usize, usize) {
        match *self {
            QuantOp::Quantize { group_size, bits }
            | QuantOp::Dequantize { group_size, bits }
            | QuantOp::QuantizedMatmul {
                group_size, bits, ..
            } => (group_size, bits),
        }
    }

    /// The outputs for inputs of these shapes and dtypes (which the op functions checked).
    pub fn outputs(&self, shapes: &[&[usize]], dtypes: &[Dtype]) -> Vec<OutSpec> {
        let last = |s: &[usize]| s.last().copied().unwrap_or(0);
        let with_last = |s: &[usize], d: usize| {
            let mut s = s.to_vec();
            if let Some(l) = s.last_mut() {
                *l = d;
            }
            s
        };
        match *self {
            QuantOp::Quantize { group_size, bits } => {
                let w = shapes[0];
                let k = last(w);
                vec![
                    OutSpec {
                        shape: with_last(w, k * bits / 32),
                        dtype: Dtype::Uint32,
                    },
                    OutSpec {
                        shape: with_last(w, k / group_size),
                        dtype: dtypes[0],
                    },
                    OutSpec {
                        shape: with_last(w, k / group_size),
                        dtype: dtypes[0],
                    },
                ]
            }
            QuantOp::Dequantize { bits, .. } => vec![OutSpec {
                shape: with_last(shapes[0], last(shapes[0]) * 32 / bits),
                dtype: dtypes[1],
            }],
            QuantOp::QuantizedMatmul {
                transpose, bits, ..
            } => {
                let (x, w) = (shapes[0], shapes[1]);
                let n = if transpose {
                    w[w.len() - 2]
                } else {
                    last(w) * 32 / bits
                };
                vec![OutSpec {
                    shape: with_last(x, n),
                    dtype: dtypes[0],
                }]
            }
        }
    }
}

/// The scale and bias of one group and the code of every element: MLX's affine rule, in
/// float32. `codes` receives one code per element of `w`.
///
/// The scale spans the group's range over `2^bits - 1` steps; it is signed so that the edge
/// with the larger magnitude (the minimum or the maximum) is exactly representable, and then
/// nudged so that edge lands on a code (`edge / q0`), with the bias that edge itself. One bit
/// is MLX's exception: scale `max - min`, bias `min`.
///
/// ```
/// # use umx_core::primitives::quantized::quantize_group;
/// let mut codes = [0u32; 4];
/// let (scale, bias) = quantize_group(&[0.0, 1.0, 2.0, 3.0], 2, &mut codes);
/// assert_eq!((scale, bias), (-1.0, 3.0));
/// assert_eq!(codes, [3, 2, 1, 0]);
/// ```
pub fn quantize_group(w: &[f32], bits: usize, codes: &mut [u32]) -> (f32, f32) {
    let n_bins = ((1u32 << bits) - 1) as f32;
    let (mut w_min, mut w_max) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in w {
        w_max = w_max.max(v);
        w_min = w_min.min(v);
    }
    if bits == 1 {
        // MLX's one-bit rule: the two codes are the group's minimum and maximum.
        let scale = (w_max - w_min).max(1e-7);
        for (c, &v) in codes.iter_mut().zip(w) {
            *c = ((v - w_min) / scale).round_ties_even().clamp(0.0, 1.0) as u32;
        }
        return (scale, w_min);
    }
    let mask = w_min.abs() > w_max.abs();
    let mut scale = ((w_max - w_min) / n_bins).max(1e-7);
    if !mask {
        scale = -scale;
    }
    let edge = if mask { w_min } else { w_max };
    let q0 = (edge / scale).round_ties_even();
    let mut bias = 0.0;
    if q0 != 0.0 {
        scale = edge / q0;
        bias = edge;
    }
    for (c, &v) in codes.iter_mut().zip(w) {
        *c = ((v - bias) / scale).round_ties_even().clamp(0.0, n_bins) as u32;
    }
    (scale, bias)
}

/// Writes `codes` (each below `2^bits`) into the packed words of one row, starting at element
/// `first` of the row (a multiple of 32, so whole words are written).
#[inline]
pub fn pack_codes(codes: &[u32], bits: usize, first: usize, words: &mut [u32]) {
    let mut bit = first * bits;
    for &c in codes {
        let (w, s) = (bit / 32, bit % 32);
        words[w] |= c << s;
        if s + bits > 32 {
            words[w + 1] |= c >> (32 - s);
        }
        bit += bits;
    }
}

/// The code of element `i` of a packed row.
#[inline(always)]
pub fn unpack_code(words: &[u32], bits: usize, i: usize) -> u32 {
    let bit = i * bits;
    let (w, s) = (bit / 32, bit % 32);
    let mask = (1u32 << bits) - 1;
    let lo = words[w] >> s;
    if s + bits > 32 {
        (lo | (words[w + 1] << (32 - s))) & mask
    } else {
        lo & mask
    }
}

/// The codes of `out.len()` consecutive elements of a packed row from element `first` (a
/// multiple of 32), as floats: the inner loop of every dequantizing kernel.
#[inline]
pub fn unpack_codes(words: &[u32], bits: usize, first: usize, out: &mut [f32]) {
    // Codes never cross a word for 1, 2, 4 and 8 bits: whole words at a time, with the
    // shifts known at compile time so the loop vectorizes.
    match bits {
        1 => unpack_whole_words::<1>(words, first, out),
        2 => unpack_whole_words::<2>(words, first, out),
        4 => unpack_whole_words::<4>(words, first, out),
        8 => unpack_whole_words::<8>(words, first, out),
        _ => {
            for (k, o) in out.iter_mut().enumerate() {
                *o = unpack_code(words, bits, first + k) as f32;
            }
        }
    }
}

#[inline(always)]
fn unpack_whole_words<const BITS: usize>(words: &[u32], first: usize, out: &mut [f32]) {
    let per = 32 / BITS;
    let mask = (1u32 << BITS) - 1;
    let w0 = first / per;
    let mut chunks = out.chunks_exact_mut(per);
    let mut src = words[w0..].iter();
    for (chunk, &word) in (&mut chunks).zip(&mut src) {
        for (k, o) in chunk.iter_mut().enumerate() {
            *o = ((word >> (k * BITS)) & mask) as f32;
        }
    }
    // A tail shorter than a word (callers pass whole groups, so none in practice).
    if let (Some(&word), rest) = (src.next(), chunks.into_remainder()) {
        for (k, o) in rest.iter_mut().enumerate() {
            *o = ((word >> (k * BITS)) & mask) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_the_bit_stream_for_every_width() {
        for bits in SUPPORTED_BITS {
            let codes: Vec<u32> = (0..64).map(|i| (i * 7 + 3) % (1 << bits)).collect();
            let mut words = vec![0u32; 64 * bits / 32];
            pack_codes(&codes[..32], bits, 0, &mut words);
            pack_codes(&codes[32..], bits, 32, &mut words);
            let back: Vec<u32> = (0..64).map(|i| unpack_code(&words, bits, i)).collect();
            assert_eq!(back, codes, "bits {bits}");
            let mut f = vec![0f32; 32];
            unpack_codes(&words, bits, 32, &mut f);
            let want: Vec<f32> = codes[32..].iter().map(|&c| c as f32).collect();
            assert_eq!(f, want, "bits {bits}");
        }
    }

    #[test]
    fn a_constant_group_has_zero_bias_and_the_smallest_scale() {
        let mut codes = [9u32; 32];
        let (s, b) = quantize_group(&[0.0; 32], 4, &mut codes);
        assert_eq!((s, b), (-1e-7, 0.0));
        assert!(codes.iter().all(|&c| c == 0));
    }
}
