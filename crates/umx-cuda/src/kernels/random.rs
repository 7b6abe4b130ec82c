//! Random bits and samples with the CPU's numbers: threefry2x32 bits, and the element-wise maps
//! from bits to distributions (their scalar semantics live in `umx_core::primitives::random`).
//!
//! Bits are bit-exact: one thread per counter pair of a key, pair `j` filling words `j` and
//! `j + half + odd` of that key's block and the odd middle word hashed from `(half, 0)`, as
//! core's `fill_bits` lays them out; a block that is not a whole number of words (uint8 and
//! uint16 bits) is written byte by byte, its last word cut short.
//!
//! A sample is a generated element-wise program (`elementwise::run_program`, so parameters
//! broadcast and one-element host parameters pass by value as for any element-wise op) that
//! follows core's scalar function step by step: parameters converted as the CPU converts them,
//! every rounding to the output dtype where core rounds (bfloat16 through a port of the `half`
//! crate's `f64` conversion, which the CPU's `round_to` uses), `fmaf` where core has
//! `mul_add`, core's `erfinv` coefficients and its float64 `erf` series (which then agree bit
//! for bit). Only the logarithms can differ: they are computed in double and rounded (nearly
//! always the correctly rounded float, where glibc's `logf` and `log1pf` are within an ulp of
//! it), so normal, gumbel, laplace and truncated normal samples agree with the CPU's to an ulp
//! or so, mostly exactly; uniform, randint and bernoulli take no logarithm and agree exactly.
//! Complex normals run on the CPU.

use super::elementwise::run_program;
use super::first_out;
use super::source::{Args, HEADER, grid_for};
use crate::compile::{function_for, launch};
use crate::gpu::gpu;
use crate::storage::{input_ptr, output};
use std::sync::Arc;
use umx_core::device::OutSpec;
use umx_core::primitives::RandomOp;
use umx_core::primitives::random::{self as r, Distribution};
use umx_core::shape::{is_row_contiguous, numel, row_major_strides};
use umx_core::{ArrayData, Buffer, Dtype, Error, Result, bf16, f16};

const THREADS: u32 = 256;

pub fn eval(
    op: &RandomOp,
    inputs: &[ArrayData],
    outputs: &[OutSpec],
) -> Result<Option<Vec<ArrayData>>> {
    let out = first_out("random", outputs)?;
    let Some((first, params)) = inputs.split_first() else {
        return Err(Error::Device("random: no input".into()));
    };
    let data = match op {
        RandomOp::Bits { .. } => bits(first, out)?,
        RandomOp::Sample(dist) => sample(*dist, first, params, out)?,
    };
    Ok(data.map(|d| vec![d]))
}

/// threefry2x32 (20 rounds), as core's `threefry2x32`, and the kernel that lays each key's
/// words out as `fill_bits` does.
const BITS_SOURCE: &str = r#"
UMX_FN void umx_threefry(unsigned int k0, unsigned int k1, unsigned int c0, unsigned int c1,
                         unsigned int& y0, unsigned int& y1) {
  const unsigned int ks[3] = {k0, k1, k0 ^ k1 ^ 0x1BD11BDAu};
  const int rot[2][4] = {{13, 15, 26, 6}, {17, 29, 16, 24}};
  unsigned int x0 = c0 + ks[0], x1 = c1 + ks[1];
  #pragma unroll
  for (int i = 0; i < 5; i++) {
    #pragma unroll
    for (int j = 0; j < 4; j++) {
      int r = rot[i % 2][j];
      x0 += x1;
      x1 = (x1 << r) | (x1 >> (32 - r));
      x1 ^= x0;
    }
    x0 += ks[(i + 1) % 3];
    x1 += ks[(i + 2) % 3] + (unsigned int)(i + 1);
  }
  y0 = x0;
  y1 = x1;
}
/* Word w of a key's block of per_key bytes, little-endian; the block's last word may be cut. */
UMX_FN void umx_put(unsigned char* block, long long per_key, long long w, unsigned int v) {
  long long at = 4 * w;
  if ((per_key & 3) == 0) {
    *(unsigned int*)(block + at) = v;
    return;
  }
  for (int b = 0; b < 4 && at + b < per_key; b++) block[at + b] = (unsigned char)(v >> (8 * b));
}
/* Keys from `keys` (num_keys pairs), or the one key (key0, key1) when `keys` is null. */
extern "C" __global__ void umx_random_bits(unsigned char* out, const unsigned int* keys,
    unsigned int key0, unsigned int key1, long long num_keys, long long per_key) {
  long long words = (per_key + 3) / 4, half = words / 2, odd = words % 2, pairs = half + odd;
  long long total = num_keys * pairs;
  long long step = (long long)gridDim.x * blockDim.x;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += step) {
    long long k = t / pairs, j = t - k * pairs;
    unsigned int k0 = keys ? keys[2 * k] : key0, k1 = keys ? keys[2 * k + 1] : key1;
    unsigned char* block = out + k * per_key;
    unsigned int y0, y1;
    if (j < half) {
      umx_threefry(k0, k1, (unsigned int)j, (unsigned int)(j + half + odd), y0, y1);
      umx_put(block, per_key, j, y0);
      umx_put(block, per_key, j + half + odd, y1);
    } else {
      umx_threefry(k0, k1, (unsigned int)half, 0u, y0, y1);
      umx_put(block, per_key, half, y0);
    }
  }
}
"#;

/// Fills each key's block of the output with its threefry bytes.
fn bits(keys: &ArrayData, out: &OutSpec) -> Result<Option<ArrayData>> {
    if keys.dtype != Dtype::Uint32 {
        return Err(Error::Device(format!(
            "bits: keys must be uint32, not {}",
            keys.dtype
        )));
    }
    let bytes = numel(&out.shape) * out.dtype.size();
    let (buffer, ptr) = output(bytes)?;
    let result = ArrayData {
        buffer: Arc::new(buffer),
        shape: out.shape.clone(),
        dtype: out.dtype,
        strides: row_major_strides(&out.shape),
        offset: 0,
    };
    let num_keys = keys.size() / 2;
    if num_keys == 0 || bytes == 0 {
        return Ok(Some(result));
    }
    let per_key = bytes / num_keys;
    let mut args = Args::default();
    args.push(ptr);
    // One key still on the host (as `random::key` and the global key sequence make them) is
    // passed by value: no upload of 8 bytes before each draw.
    let copied;
    if num_keys == 1 && keys.buffer.residency().device.is_none() {
        let k = keys.to_contiguous_vec::<u32>();
        args.push(0u64).push(k[0]).push(k[1]);
    } else {
        let keys = if is_row_contiguous(&keys.shape, &keys.strides) {
            keys
        } else {
            match super::contiguous(keys, Dtype::Uint32)? {
                Some(k) => {
                    copied = k;
                    &copied
                }
                None => return Ok(None),
            }
        };
        args.push(input_ptr(keys)?).push(0u32).push(0u32);
    }
    args.push(num_keys as i64).push(per_key as i64);
    let f = function_for(
        "random_bits",
        || format!("{HEADER}{BITS_SOURCE}"),
        "umx_random_bits",
    )?;
    let pairs = per_key.div_ceil(4).div_ceil(2);
    let grid = grid_for(num_keys * pairs, THREADS, gpu()?.sm_count);
    launch(f, grid, THREADS, 0, &mut args.pointers())?;
    Ok(Some(result))
}

/// Samples from bits (input 0) and parameters, as the CPU's `sample`; `None` for complex
/// normals and for output dtypes the CPU rejects (it then gives the error).
fn sample(
    dist: Distribution,
    bits: &ArrayData,
    params: &[ArrayData],
    out: &OutSpec,
) -> Result<Option<ArrayData>> {
    if bits.dtype != Dtype::Uint32 {
        return Err(Error::Device(format!(
            "random: bits must be uint32, not {}",
            bits.dtype
        )));
    }
    if params.len() != dist.num_params() {
        return Err(Error::Device(format!(
            "random: {dist:?} takes {} parameters, got {}",
            dist.num_params(),
            params.len()
        )));
    }
    let t = out.dtype;
    if let Distribution::ComplexNormal { .. } = dist {
        return complex_normal(dist, bits, params, out).map(Some);
    }
    if params.iter().any(|p| p.dtype == Dtype::Complex64) {
        return Ok(None);
    }
    let float_out = matches!(
        t,
        Dtype::Float16 | Dtype::Bfloat16 | Dtype::Float32 | Dtype::Float64
    );
    let fits = match dist {
        // Sampled by `complex_normal` above.
        Distribution::ComplexNormal { .. } => false,
        Distribution::Randint => t == Dtype::Bool || t.is_integer(),
        Distribution::Bernoulli => t == Dtype::Bool,
        _ => float_out,
    };
    if !fits {
        return Ok(None);
    }
    let mut inputs = vec![bits.clone()];
    inputs.extend(params.iter().cloned());
    // Parameters load as double: `to_f64` of their stored value, as the CPU reads them.
    let mut compute = vec![Dtype::Uint32];
    compute.extend(params.iter().map(|_| Dtype::Float64));
    if let Distribution::Laplace { loc, scale } = dist {
        // Passed by value as one-element host inputs (x1, x2), so another loc or scale does
        // not compile another kernel.
        for v in [loc, scale] {
            inputs.push(ArrayData::contiguous(
                Buffer::from_slice(&[v])?,
                &[],
                Dtype::Float32,
            ));
            compute.push(Dtype::Float32);
        }
    }
    let (stmts, expr) = program(dist, t);
    Ok(run_program(&inputs, &compute, &stmts, &[(&expr, t)], &out.shape)?.map(|mut o| o.remove(0)))
}

/// Complex normal samples: two words of `bits` per element, read as one uint64 (a view of
/// the same buffer), and complex64 parameters (real ones become complex on load).
fn complex_normal(
    dist: Distribution,
    bits: &ArrayData,
    params: &[ArrayData],
    out: &OutSpec,
) -> Result<ArrayData> {
    let n = numel(&out.shape);
    if out.dtype != Dtype::Complex64 || bits.size() != 2 * n {
        return Err(Error::Device(format!(
            "normal: {} complex samples of {} need {} words of bits, got {}",
            n,
            out.dtype,
            2 * n,
            bits.size()
        )));
    }
    let copied;
    let bits = if is_row_contiguous(&bits.shape, &bits.strides) && bits.offset % 2 == 0 {
        bits
    } else {
        copied = super::contiguous(bits, Dtype::Uint32)?
            .ok_or_else(|| Error::Device("normal: the bits could not be made contiguous".into()))?;
        &copied
    };
    let words = ArrayData {
        buffer: bits.buffer.clone(),
        shape: out.shape.clone(),
        dtype: Dtype::Uint64,
        strides: row_major_strides(&out.shape),
        offset: bits.offset / 2,
    };
    let mut inputs = vec![words];
    inputs.extend(params.iter().cloned());
    let mut compute = vec![Dtype::Uint64];
    compute.extend(params.iter().map(|_| Dtype::Complex64));
    let (stmts, expr) = program(dist, Dtype::Complex64);
    run_program(
        &inputs,
        &compute,
        &stmts,
        &[(&expr, Dtype::Complex64)],
        &out.shape,
    )?
    .and_then(|mut o| o.pop())
    .ok_or_else(|| Error::Device("normal: no GPU kernel for complex samples".into()))
}

/// The C statements and the final expression of one sample: core's scalar function over the
/// bits `x0` and the parameters `x1`, `x2` (double), for output dtype `t`. Every value is a
/// float of `t`'s precision, so the final store is exact.
fn program(dist: Distribution, t: Dtype) -> (String, String) {
    let mut s = String::new();
    if t == Dtype::Bfloat16 {
        s += BF16_ROUND;
    }
    let upper = below_one(t);
    let s2 = lit(sqrt2(t));
    let expr = match dist {
        Distribution::Uniform => {
            s += &format!(
                "    float rv_lo = {}, rv_hi = {};\n",
                param(t, "x1"),
                param(t, "x2")
            );
            s += &uniform(t, "rv_v", "x0", "rv_lo", "rv_hi", upper);
            "rv_v".to_string()
        }
        Distribution::Normal { loc, scale } => {
            s += &erfinv_source();
            s += &symmetric_uniform("rv_s", "x0");
            s += &format!("    float rv_z = {};\n", round(t, "umx_erfinv(rv_s)"));
            let applied = if scale {
                let x = format!("x{}", 1 + loc as usize);
                round(t, &format!("{s2} * {}", param(t, &x)))
            } else {
                s2.clone()
            };
            s += &format!("    float rv_applied = {applied};\n");
            s += &format!("    float rv_v = {};\n", round(t, "rv_applied * rv_z"));
            if loc {
                round(t, &format!("{} + rv_v", param(t, "x1")))
            } else {
                "rv_v".to_string()
            }
        }
        Distribution::Randint => {
            s += "    float rv_lo = (float)x1, rv_hi = (float)x2;\n";
            s += &uniform(
                Dtype::Float32,
                "rv_v",
                "x0",
                "rv_lo",
                "rv_hi",
                r::below_one::<f32>(),
            );
            "fmaxf(floorf(rv_v), rv_lo)".to_string()
        }
        Distribution::Bernoulli => {
            format!("((float)x0 < (float)x1 * {})", lit(r::BERNOULLI_SCALE))
        }
        Distribution::Gumbel => {
            s += &format!("    float rv_u = {};\n", unit(t, "x0", upper));
            s += &format!("    float rv_l = {};\n", round(t, &log("rv_u")));
            format!("-{}", round(t, &log("-rv_l")))
        }
        Distribution::Laplace { .. } => {
            // x1 is loc and x2 scale (float32, see `sample`).
            s += &symmetric_uniform("rv_s", "x0");
            s += "    float rv_sign = rv_s > 0.0f ? 1.0f : (rv_s < 0.0f ? -1.0f : 0.0f);\n";
            s += &format!(
                "    float rv_v = {};\n",
                round(t, "rv_sign * (float)log1p((double)(-fabsf(rv_s)))")
            );
            s += &format!(
                "    if (x2 != 1.0f) rv_v = {};\n",
                round(t, &format!("{} * rv_v", round(t, "x2")))
            );
            s += &format!(
                "    if (x1 != 0.0f) rv_v = {};\n",
                round(t, &format!("{} + rv_v", round(t, "x1")))
            );
            "rv_v".to_string()
        }
        Distribution::TruncatedNormal => {
            s += &erfinv_source();
            s += &erf_source();
            s += &format!(
                "    float rv_lo = {}, rv_hi = {};\n",
                param(t, "x1"),
                param(t, "x2")
            );
            for (name, bound) in [("rv_a", "rv_lo"), ("rv_b", "rv_hi")] {
                let scaled = round(t, &format!("{bound} / {s2}"));
                s += &format!(
                    "    float {name} = {};\n",
                    round(t, &format!("umx_erf({scaled})"))
                );
            }
            s += &uniform(t, "rv_w", "x0", "rv_a", "rv_b", upper);
            let z = round(t, "umx_erfinv(rv_w)");
            s += &format!("    float rv_o = {};\n", round(t, &format!("{s2} * {z}")));
            "fmaxf(fminf(rv_hi, rv_o), rv_lo)".to_string()
        }
        Distribution::ComplexNormal { loc, scale } => {
            // x0 is the element's two words as one uint64 (the first word low), the
            // parameters complex64: `loc + scale * z`, z's parts the inverse error function
            // of a symmetric uniform each (the CPU's order of operations).
            s += "    unsigned int rv_w0 = (unsigned int)(x0 & 0xffffffffull), \
                  rv_w1 = (unsigned int)(x0 >> 32);\n";
            s += &erfinv_source();
            s += &symmetric_uniform("rv_s0", "rv_w0");
            s += &symmetric_uniform("rv_s1", "rv_w1");
            s += "    umx_c64 rv_z = umx_c64(umx_erfinv(rv_s0), umx_erfinv(rv_s1));\n";
            if scale {
                s += &format!("    rv_z = x{} * rv_z;\n", 1 + loc as usize);
            }
            if loc {
                s += "    rv_z = x1 + rv_z;\n";
            }
            "rv_z".to_string()
        }
    };
    (s, expr)
}

/// A float32 constant as an exact C literal (Rust's shortest round-trip form).
fn lit(v: f32) -> String {
    format!("{v:?}f")
}

/// `T::from_f64(v).to_f64() as f32` of the CPU for a double `v`, for output dtype `t`: the
/// conversion of a parameter. (float16 goes through float32 as the `half` crate does with
/// the F16C instructions of the x86 CPUs the CPU kernels run on.)
fn param(t: Dtype, v: &str) -> String {
    match t {
        Dtype::Float16 => format!("umx_h2f(umx_f2h((float)({v})))"),
        Dtype::Bfloat16 => format!("umx_bf16_round({v})"),
        _ => format!("((float)({v}))"),
    }
}

/// Core's `round_to::<T>` of a float expression: stored in `t` and read back.
fn round(t: Dtype, x: &str) -> String {
    match t {
        Dtype::Float16 => format!("umx_h2f(umx_f2h({x}))"),
        Dtype::Bfloat16 => format!("umx_bf16_round((double)({x}))"),
        _ => format!("({x})"),
    }
}

/// `log` of a float, computed in double and rounded: nearly always the correctly rounded
/// float, which glibc's `logf` (the CPU's) mostly gives too; CUDA's `logf` is off by an ulp
/// more often.
fn log(x: &str) -> String {
    format!("(float)log((double)({x}))")
}

/// Core's `unit_uniform::<T>(bits, upper)`.
fn unit(t: Dtype, bits: &str, upper: f32) -> String {
    round(
        t,
        &format!(
            "fminf((float){bits} / {}, {})",
            lit(u32::MAX as f32),
            lit(upper)
        ),
    )
}

/// Statements declaring `name` as core's `uniform_scalar::<T>(bits, low, high, upper)`.
fn uniform(t: Dtype, name: &str, bits: &str, low: &str, high: &str, upper: f32) -> String {
    let range = round(t, &format!("{high} - {low}"));
    let u = unit(t, bits, upper);
    let scaled = round(t, &format!("{name}_range * {name}_u"));
    let v = round(t, &format!("{scaled} + {low}"));
    format!(
        "    float {name}_range = {range};\n    float {name}_u = {u};\n    float {name} = {v};\n"
    )
}

/// Statements declaring `name` as core's `symmetric_uniform` of the word `bits`.
fn symmetric_uniform(name: &str, bits: &str) -> String {
    uniform(
        Dtype::Float32,
        name,
        bits,
        &lit(r::SYMMETRIC_LOW),
        &lit(1.0),
        r::below_one::<f32>(),
    )
}

/// Core's `below_one::<T>()` for output dtype `t`.
fn below_one(t: Dtype) -> f32 {
    match t {
        Dtype::Float16 => r::below_one::<f16>(),
        Dtype::Bfloat16 => r::below_one::<bf16>(),
        Dtype::Float64 => r::below_one::<f64>(),
        _ => r::below_one::<f32>(),
    }
}

/// Core's `sqrt2::<T>()` for output dtype `t`.
fn sqrt2(t: Dtype) -> f32 {
    match t {
        Dtype::Float16 => r::sqrt2::<f16>(),
        Dtype::Bfloat16 => r::sqrt2::<bf16>(),
        Dtype::Float64 => r::sqrt2::<f64>(),
        _ => r::sqrt2::<f32>(),
    }
}

/// The coefficients of core's `erfinv` (M. Giles' approximation as refined by N. Juffa), in
/// Horner order: for `|t| > 6.125`, and below.
const ERFINV_TAIL: [f32; 9] = [
    3.036_975_7e-10,
    2.932_431e-8,
    1.221_503_3e-6,
    2.841_089_6e-5,
    3.935_529_7e-4,
    3.026_988_1e-3,
    4.831_858e-3,
    -2.646_461_4e-1,
    8.400_165e-1,
];
const ERFINV_CENTRAL: [f32; 10] = [
    5.438_778_3e-9,
    1.432_854_5e-7,
    1.227_747_9e-6,
    1.129_636_3e-7,
    -5.615_307_6e-5,
    -1.476_976_3e-4,
    2.314_686_8e-3,
    1.153_925_8e-2,
    -2.320_154_8e-1,
    8.862_269e-1,
];

/// Core's `erfinv` as a C lambda `umx_erfinv` (a lambda, since a sample is a list of
/// statements inside the element-wise kernel).
fn erfinv_source() -> String {
    let horner = |c: &[f32]| {
        c[1..]
            .iter()
            .fold(lit(c[0]), |p, &k| format!("fmaf({p}, t, {})", lit(k)))
    };
    format!(
        r#"    auto umx_erfinv = [](float a) -> float {{
      float t = (float)log((double)fmaf(a, 0.0f - a, 1.0f));
      float p = fabsf(t) > 6.125f ? {} : {};
      return a * p;
    }};
"#,
        horner(&ERFINV_TAIL),
        horner(&ERFINV_CENTRAL)
    )
}

/// Core's `erf` (a float64 Maclaurin series, rounded to float) as a C lambda `umx_erf`: the
/// same double operations in the same order, so the same float.
fn erf_source() -> String {
    format!(
        r#"    auto umx_erf = [](float xf) -> float {{
      double x = (double)xf;
      if (x != x) return xf;
      if (fabs(x) >= 4.0) return x > 0.0 ? 1.0f : -1.0f;
      double x2 = x * x, term = x, sum = x, n = 0.0;
      while (fabs(term) > 1e-17 * fmax(fabs(sum), 1e-300)) {{
        n += 1.0;
        term *= -x2 / n;
        sum += term / (2.0 * n + 1.0);
        if (n > 200.0) break;
      }}
      return (float)(sum * {:?});
    }};
"#,
        std::f64::consts::FRAC_2_SQRT_PI
    )
}

/// `bf16::from_f64(v).to_f64() as f32` as a C lambda `umx_bf16_round`: a port of the `half`
/// crate's `f64_to_bf16`, which rounds from the top 32 bits of the double (so a float whose
/// tie is decided by its last 3 mantissa bits rounds to even here, not up as a float-to-bf16
/// conversion would). This is what core's `round_to::<bf16>` and the CPU's stores do.
const BF16_ROUND: &str = r#"    auto umx_bf16_round = [](double value) -> float {
      unsigned long long val = (unsigned long long)__double_as_longlong(value);
      unsigned int x = (unsigned int)(val >> 32);
      unsigned int sign = x & 0x80000000u, exp = x & 0x7FF00000u, man = x & 0x000FFFFFu;
      unsigned int h;
      if (exp == 0x7FF00000u) {
        unsigned int nan_bit = (man == 0u && (unsigned int)val == 0u) ? 0u : 0x0040u;
        h = (sign >> 16) | 0x7F80u | nan_bit | (man >> 13);
      } else {
        unsigned int half_sign = sign >> 16;
        long long half_exp = (long long)(exp >> 20) - 1023 + 127;
        if (half_exp >= 0xFF) {
          h = half_sign | 0x7F80u;
        } else if (half_exp <= 0) {
          if (7 - half_exp > 21) {
            h = half_sign;
          } else {
            unsigned int m = man | 0x00100000u;
            unsigned int half_man = m >> (14 - half_exp);
            unsigned int round_bit = 1u << (13 - half_exp);
            if ((m & round_bit) != 0u && (m & (3u * round_bit - 1u)) != 0u) half_man += 1u;
            h = half_sign | half_man;
          }
        } else {
          h = half_sign | ((unsigned int)half_exp << 7) | (man >> 13);
          if ((man & 0x1000u) != 0u && (man & (3u * 0x1000u - 1u)) != 0u) h += 1u;
        }
      }
      return umx_bf2f((unsigned short)h);
    };
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's erfinv, in Rust: the same operations as the generated C.
    fn erfinv_from(a: f32) -> f32 {
        let t = a.mul_add(0.0 - a, 1.0).ln();
        let c: &[f32] = if t.abs() > 6.125 {
            &ERFINV_TAIL
        } else {
            &ERFINV_CENTRAL
        };
        a * c[1..].iter().fold(c[0], |p, &k| p.mul_add(t, k))
    }

    #[test]
    fn erfinv_coefficients_are_the_cpus() {
        for i in 0..=4000 {
            let a = i as f32 / 2000.0 - 1.0;
            let a = a.clamp(r::SYMMETRIC_LOW, 1.0 - f32::EPSILON / 2.0);
            assert_eq!(
                erfinv_from(a).to_bits(),
                r::erfinv(a).to_bits(),
                "erfinv({a})"
            );
        }
    }

    #[test]
    fn bfloat16_rounding_is_the_half_crates() {
        // A float whose bfloat16 tie is broken only by its last 3 mantissa bits: `half` rounds
        // it to even (down), as the generated `umx_bf16_round` does.
        let x = f32::from_bits(0x3F80_8001);
        assert_eq!(r::round_to::<bf16>(x), 1.0);
        assert_eq!(bf16::from_f64(x as f64).to_f64() as f32, 1.0);
    }
}
