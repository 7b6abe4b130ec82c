//! Random bits from threefry keys, and the maps from bits to distributions.
//!
//! The generator is MLX's (and JAX's): threefry2x32 with 20 rounds, a counter-based hash of a
//! (2,) uint32 key. [`fill_bits`] lays the hashed words out exactly as MLX's `RandomBits`
//! kernel does, and the [`Distribution`] maps follow the op sequences of `mlx/random.cpp`
//! step by step (rounding to the output dtype where MLX's ops do), so the same key gives
//! MLX's numbers on every device. Backends call these scalar functions; they keep no copy.

mod transforms;

use crate::{Element, Shape};

/// The random primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum RandomOp {
    /// Random bits. Input 0: keys, uint32 of shape `(..., 2)`; the output is `keys.shape[..-1]`
    /// followed by `shape`, of uint32 (`width` 4), uint16 (2) or uint8 (1). Each key fills its
    /// own block of the output with the bytes [`fill_bits`] gives.
    Bits { shape: Shape, width: usize },
    /// An element-wise map from uint32 bits (input 0, of the output's shape) and parameter
    /// arrays (inputs 1.., broadcastable to the output) to samples; see [`Distribution`].
    Sample(Distribution),
}

/// What [`RandomOp::Sample`] draws. Parameters are converted as MLX converts them (`astype` to
/// the output dtype, or to float32 for `Randint`) before use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    /// Inputs: bits, low, high. `low + (high - low) * u`, `u` in `[0, 1)`, in the output dtype.
    Uniform,
    /// Inputs: bits, then loc if `loc`, then scale if `scale`.
    /// `loc + sqrt(2) * scale * erfinv(u)`, `u` uniform in `(-1, 1)` (float32).
    Normal { loc: bool, scale: bool },
    /// Complex64 normal samples. Inputs: bits of the output's shape followed by 2 (real and
    /// imaginary parts), then loc if `loc`, then scale if `scale` (as complex64).
    /// `loc + scale * (erfinv(u_re) + i erfinv(u_im))`, so each part has variance 1/2.
    ComplexNormal { loc: bool, scale: bool },
    /// Inputs: bits, low, high. `max(floor(uniform(low, high)), low)` in float32, then cast to
    /// the (integer or bool) output dtype.
    Randint,
    /// Inputs: bits, p. `bits < p * nextafter(2^32, inf)`: bool.
    Bernoulli,
    /// Inputs: bits. `-log(-log(u))`, `u` uniform in `[0, 1)` of the output dtype.
    Gumbel,
    /// Inputs: bits. `loc + scale * sign(u) * log1p(-|u|)`, `u` uniform in `(-1, 1)`.
    Laplace { loc: f32, scale: f32 },
    /// Inputs: bits, lower, upper. `sqrt(2) * erfinv(uniform(erf(lower/sqrt2),
    /// erf(upper/sqrt2)))`, clipped to `[lower, upper]`, in the output dtype.
    TruncatedNormal,
}

impl Distribution {
    /// Number of parameter inputs after the bits.
    pub fn num_params(&self) -> usize {
        match self {
            Distribution::Uniform | Distribution::Randint | Distribution::TruncatedNormal => 2,
            Distribution::Normal { loc, scale } | Distribution::ComplexNormal { loc, scale } => {
                *loc as usize + *scale as usize
            }
            Distribution::Bernoulli => 1,
            Distribution::Gumbel | Distribution::Laplace { .. } => 0,
        }
    }
}

/// The threefry2x32 hash (20 rounds) of a counter pair under a key.
#[inline]
pub fn threefry2x32(key: [u32; 2], count: [u32; 2]) -> [u32; 2] {
    const ROTATIONS: [[u32; 4]; 2] = [[13, 15, 26, 6], [17, 29, 16, 24]];
    let ks = [key[0], key[1], key[0] ^ key[1] ^ 0x1BD1_1BDA];
    let mut x = [count[0].wrapping_add(ks[0]), count[1].wrapping_add(ks[1])];
    for i in 0..5usize {
        for &r in &ROTATIONS[i % 2] {
            x[0] = x[0].wrapping_add(x[1]);
            x[1] = x[1].rotate_left(r);
            x[1] ^= x[0];
        }
        x[0] = x[0].wrapping_add(ks[(i + 1) % 3]);
        x[1] = x[1]
            .wrapping_add(ks[(i + 2) % 3])
            .wrapping_add(i as u32 + 1);
    }
    x
}

/// Fills `out` with the random bytes of one key, as MLX's `RandomBits` does.
///
/// The bytes are `n = ceil(len / 4)` little-endian words; with `h = n / 2` and `o = n % 2`,
/// `hash(j, j + h + o)` gives words `j` and `j + h + o` for `j < h`, and when `n` is odd,
/// word `h` is the first word of `hash(h, 0)`. The last word may be cut short.
pub fn fill_bits(key: [u32; 2], out: &mut [u8]) {
    let words = out.len().div_ceil(4);
    let half = words / 2;
    let odd = words % 2;
    let put = |out: &mut [u8], w: usize, v: u32| {
        let start = 4 * w;
        let end = (start + 4).min(out.len());
        out[start..end].copy_from_slice(&v.to_le_bytes()[..end - start]);
    };
    for j in 0..half {
        let [a, b] = threefry2x32(key, [j as u32, (j + half + odd) as u32]);
        put(out, j, a);
        put(out, j + half + odd, b);
    }
    if odd == 1 {
        put(out, half, threefry2x32(key, [half as u32, 0])[0]);
    }
}

/// The word at position `i` of the `words` words of one key (see [`fill_bits`]); lets a
/// backend compute words independently (in parallel) with the same layout.
#[inline]
pub fn bits_word(key: [u32; 2], i: usize, words: usize) -> u32 {
    let half = words / 2;
    let odd = words % 2;
    if i < half {
        threefry2x32(key, [i as u32, (i + half + odd) as u32])[0]
    } else if odd == 1 && i == half {
        threefry2x32(key, [half as u32, 0])[0]
    } else {
        let j = i - half - odd;
        threefry2x32(key, [j as u32, i as u32])[1]
    }
}

/// The largest value below 1 in `T` (for float16 and bfloat16: one step below 1 in their
/// bits), as float32: the top of `[0, 1)` uniform draws of that dtype.
pub fn below_one<T: Element>() -> f32 {
    use crate::Dtype;
    match T::DTYPE {
        Dtype::Float16 => 0.999_511_7,   // 0x3BFF
        Dtype::Bfloat16 => 0.996_093_75, // 0x3F7F
        _ => 1.0 - f32::EPSILON / 2.0,   // nextafter(1.0f, 0.0f)
    }
}

/// Rounds a float32 value to `T` and back: what storing an intermediate in `T` does.
#[inline(always)]
pub fn round_to<T: Element>(x: f32) -> f32 {
    T::from_f64(x as f64).to_f64() as f32
}

/// A uniform draw in `[0, 1)` of dtype `T` from 32 random bits:
/// `min(bits / float(UINT32_MAX), below_one)`, as MLX's `uniform` computes it.
#[inline(always)]
pub fn unit_uniform<T: Element>(bits: u32, upper: f32) -> f32 {
    round_to::<T>((bits as f32 / u32::MAX as f32).min(upper))
}

/// `low + (high - low) * u` with the rounding of MLX's ops in dtype `T` (`low`, `high` already
/// in `T`).
#[inline(always)]
pub fn uniform_scalar<T: Element>(bits: u32, low: f32, high: f32, upper: f32) -> f32 {
    let range = round_to::<T>(high - low);
    let u = unit_uniform::<T>(bits, upper);
    round_to::<T>(round_to::<T>(range * u) + low)
}

/// The low end of the float32 draws behind `normal` and `laplace`: `nextafter(-1.0f, 0.0f)`.
pub const SYMMETRIC_LOW: f32 = -1.0 + f32::EPSILON / 2.0;

/// A float32 uniform draw in `(-1, 1)`, as `normal` and `laplace` make it.
#[inline(always)]
pub fn symmetric_uniform(bits: u32) -> f32 {
    uniform_scalar::<f32>(bits, SYMMETRIC_LOW, 1.0, below_one::<f32>())
}

/// MLX's inverse error function (float32; M. Giles' approximation as refined by N. Juffa).
#[inline]
pub fn erfinv(a: f32) -> f32 {
    let t = a.mul_add(0.0 - a, 1.0).ln();
    let p = if t.abs() > 6.125 {
        let mut p = 3.036_975_7e-10_f32;
        for c in [
            2.932_431e-8,
            1.221_503_3e-6,
            2.841_089_6e-5,
            3.935_529_7e-4,
            3.026_988_1e-3,
            4.831_858e-3,
            -2.646_461_4e-1,
            8.400_165e-1,
        ] {
            p = p.mul_add(t, c);
        }
        p
    } else {
        let mut p = 5.438_778_3e-9_f32;
        for c in [
            1.432_854_5e-7,
            1.227_747_9e-6,
            1.129_636_3e-7,
            -5.615_307_6e-5,
            -1.476_976_3e-4,
            2.314_686_8e-3,
            1.153_925_8e-2,
            -2.320_154_8e-1,
            8.862_269e-1,
        ] {
            p = p.mul_add(t, c);
        }
        p
    };
    a * p
}

/// The error function, computed in float64 and rounded to float32.
pub fn erf(x: f32) -> f32 {
    let x = x as f64;
    if x.is_nan() {
        return f32::NAN;
    }
    if x.abs() >= 4.0 {
        return x.signum() as f32;
    }
    // Maclaurin series: exact enough in f64 for |x| < 4 (terms stay below e^16).
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    while term.abs() > 1e-17 * sum.abs().max(1e-300) {
        n += 1.0;
        term *= -x2 / n;
        sum += term / (2.0 * n + 1.0);
        if n > 200.0 {
            break;
        }
    }
    (sum * std::f64::consts::FRAC_2_SQRT_PI) as f32
}

/// `sqrt(2)` rounded to `T`.
#[inline(always)]
pub fn sqrt2<T: Element>() -> f32 {
    round_to::<T>(std::f32::consts::SQRT_2)
}

/// A normal draw, in dtype `T`: `loc + (sqrt2 * scale) * erfinv(u)`; `scale` and `loc` are
/// already in `T` (pass `None` when absent).
#[inline(always)]
pub fn normal_scalar<T: Element>(bits: u32, loc: Option<f32>, scale: Option<f32>) -> f32 {
    let applied = match scale {
        Some(s) => round_to::<T>(sqrt2::<T>() * s),
        None => sqrt2::<T>(),
    };
    let z = round_to::<T>(erfinv(symmetric_uniform(bits)));
    let v = round_to::<T>(applied * z);
    match loc {
        Some(l) => round_to::<T>(l + v),
        None => v,
    }
}

/// A randint draw before the cast to the integer dtype: `max(floor(uniform(low, high)), low)`
/// in float32 (`low`, `high` as float32).
#[inline(always)]
pub fn randint_scalar(bits: u32, low: f32, high: f32) -> f32 {
    uniform_scalar::<f32>(bits, low, high, below_one::<f32>())
        .floor()
        .max(low)
}

/// The scale that maps a probability onto 32-bit draws: `nextafter(float(UINT32_MAX), inf)`,
/// so `p >= 1` gives all true and `p <= 0` all false.
pub const BERNOULLI_SCALE: f32 = 4_294_967_808.0;

/// A Bernoulli draw: `float(bits) < p * BERNOULLI_SCALE`.
#[inline(always)]
pub fn bernoulli_scalar(bits: u32, p: f32) -> bool {
    (bits as f32) < p * BERNOULLI_SCALE
}

/// A Gumbel draw in dtype `T`: `-log(-log(u))`.
#[inline(always)]
pub fn gumbel_scalar<T: Element>(bits: u32) -> f32 {
    let u = unit_uniform::<T>(bits, below_one::<T>());
    -round_to::<T>((-round_to::<T>(u.ln())).ln())
}

/// A Laplace draw in dtype `T`: `loc + scale * sign(u) * log1p(-|u|)`.
#[inline(always)]
pub fn laplace_scalar<T: Element>(bits: u32, loc: f32, scale: f32) -> f32 {
    let u = symmetric_uniform(bits);
    let sign = if u > 0.0 {
        1.0
    } else if u < 0.0 {
        -1.0
    } else {
        0.0
    };
    let mut v = round_to::<T>(sign * (-u.abs()).ln_1p());
    if scale != 1.0 {
        v = round_to::<T>(round_to::<T>(scale) * v);
    }
    if loc != 0.0 {
        v = round_to::<T>(round_to::<T>(loc) + v);
    }
    v
}

/// A truncated normal draw in dtype `T`; `lower` and `upper` already in `T`.
#[inline(always)]
pub fn truncated_normal_scalar<T: Element>(bits: u32, lower: f32, upper: f32) -> f32 {
    let s2 = sqrt2::<T>();
    let a = round_to::<T>(erf(round_to::<T>(lower / s2)));
    let b = round_to::<T>(erf(round_to::<T>(upper / s2)));
    let u = uniform_scalar::<T>(bits, a, b, below_one::<T>());
    let out = round_to::<T>(s2 * round_to::<T>(erfinv(u)));
    upper.min(out).max(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threefry_matches_the_random123_known_answer() {
        // Random123's kat_vectors: threefry2x32_20 with zero key and counter.
        assert_eq!(threefry2x32([0, 0], [0, 0]), [0x6b200159, 0x99ba4efe]);
    }

    #[test]
    fn words_and_fill_agree() {
        for n in [1usize, 2, 3, 5, 8] {
            let mut bytes = vec![0u8; 4 * n];
            fill_bits([7, 9], &mut bytes);
            for i in 0..n {
                let w = u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
                assert_eq!(w, bits_word([7, 9], i, n));
            }
        }
    }
}
