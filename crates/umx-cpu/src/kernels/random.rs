//! CPU kernels of the random primitives: threefry bits, and the element-wise maps from bits to
//! distributions (their scalar semantics live in `umx_core::primitives::random`).

use crate::strided::{PARALLEL_THRESHOLD, alloc, contiguous};
use rayon::prelude::*;
use umx_core::device::OutSpec;
use umx_core::primitives::RandomOp;
use umx_core::primitives::random::{self as r, Distribution};
use umx_core::shape::broadcast_strides;
use umx_core::{ArrayData, Complex32, Dtype, Element, Error, Result, bf16, dispatch_dtype, f16};

pub fn eval(op: &RandomOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let out = outputs
        .first()
        .ok_or_else(|| Error::Device("random: no output".into()))?;
    let mut inputs = inputs.into_iter();
    let first = inputs
        .next()
        .ok_or_else(|| Error::Device("random: no input".into()))?;
    let data = match op {
        RandomOp::Bits { .. } => bits(first, out)?,
        RandomOp::Sample(dist) => sample(*dist, first, inputs.collect(), out)?,
    };
    Ok(vec![data])
}

/// Fills each key's block of the output with its threefry bytes.
fn bits(keys: ArrayData, out: &OutSpec) -> Result<ArrayData> {
    if keys.dtype != Dtype::Uint32 {
        return Err(Error::Device(format!(
            "bits: keys must be uint32, not {}",
            keys.dtype
        )));
    }
    let keys = keys.to_contiguous_vec::<u32>();
    let num_keys = keys.len() / 2;
    let n: usize = out.shape.iter().product();
    let mut buf = alloc::<u8>(n * out.dtype.size())?;
    let bytes = buf.bytes_mut();
    if num_keys == 0 || bytes.is_empty() {
        return Ok(ArrayData::contiguous(buf, &out.shape, out.dtype));
    }
    let per_key = bytes.len() / num_keys;
    let key_at = |i: usize| [keys[2 * i], keys[2 * i + 1]];
    if bytes.len() > 4 * PARALLEL_THRESHOLD && num_keys == 1 && per_key.is_multiple_of(4) {
        // One key, many words: hash the counter pairs in parallel. Pair `j` fills words `j`
        // and `j + half + odd` (see `fill_bits`); an odd middle word is done apart.
        let key = key_at(0);
        let words = per_key / 4;
        let (half, odd) = (words / 2, words % 2);
        let (lo, rest) = bytes.split_at_mut(4 * half);
        let (mid, hi) = rest.split_at_mut(4 * odd);
        if odd == 1 {
            mid.copy_from_slice(&r::threefry2x32(key, [half as u32, 0])[0].to_le_bytes());
        }
        const PAIRS: usize = 4096;
        lo.par_chunks_mut(4 * PAIRS)
            .zip(hi.par_chunks_mut(4 * PAIRS))
            .enumerate()
            .for_each(|(c, (lo, hi))| {
                for (k, (a, b)) in lo.chunks_mut(4).zip(hi.chunks_mut(4)).enumerate() {
                    let j = c * PAIRS + k;
                    let [x, y] = r::threefry2x32(key, [j as u32, (j + half + odd) as u32]);
                    a.copy_from_slice(&x.to_le_bytes());
                    b.copy_from_slice(&y.to_le_bytes());
                }
            });
    } else if num_keys > 1 && bytes.len() > 4 * PARALLEL_THRESHOLD {
        bytes
            .par_chunks_mut(per_key)
            .enumerate()
            .for_each(|(i, block)| r::fill_bits(key_at(i), block));
    } else {
        for (i, block) in bytes.chunks_mut(per_key).enumerate() {
            r::fill_bits(key_at(i), block);
        }
    }
    Ok(ArrayData::contiguous(buf, &out.shape, out.dtype))
}

/// A parameter of a distribution: one value, or one per output element (complex parameters
/// keep their imaginary parts in `imag`).
enum Param {
    One(f64),
    Each(Vec<f64>),
    Complex(Vec<Complex32>),
}

impl Param {
    fn new(x: ArrayData, shape: &[usize], complex: bool) -> Param {
        dispatch_dtype!(x.dtype, S => {
            let src = x.buffer.as_slice::<S>();
            if complex {
                let view = broadcast_view(&x, shape);
                let mut v = Vec::with_capacity(view.size());
                view.for_each_index(|i| v.push(src[i].to_c64()));
                return Param::Complex(v);
            }
            if x.size() == 1 {
                return Param::One(src[x.offset as usize].to_f64());
            }
            let view = broadcast_view(&x, shape);
            let mut v = Vec::with_capacity(view.size());
            view.for_each_index(|i| v.push(src[i].to_f64()));
            Param::Each(v)
        })
    }

    #[inline(always)]
    fn at(&self, i: usize) -> f64 {
        match self {
            Param::One(v) => *v,
            Param::Each(v) => v[i],
            Param::Complex(v) => v[i].re as f64,
        }
    }

    #[inline(always)]
    fn complex_at(&self, i: usize) -> Complex32 {
        match self {
            Param::Complex(v) => v[i],
            other => Complex32::new(other.at(i) as f32, 0.0),
        }
    }
}

fn broadcast_view(x: &ArrayData, shape: &[usize]) -> ArrayData {
    ArrayData {
        buffer: x.buffer.clone(),
        shape: shape.to_vec(),
        dtype: x.dtype,
        strides: broadcast_strides(&x.shape, &x.strides, shape),
        offset: x.offset,
    }
}

/// Complex normal samples: element `i` takes bits `2i` (real part) and `2i + 1` (imaginary).
fn complex_normal(
    b: &[u32],
    p: &[Param],
    loc: bool,
    scale: bool,
    shape: &[usize],
) -> Result<ArrayData> {
    let loc_p = if loc { Some(&p[0]) } else { None };
    let scale_p = if scale { p.get(loc as usize) } else { None };
    let n: usize = shape.iter().product();
    if b.len() != 2 * n {
        return Err(Error::Device(
            "normal: complex samples need two words each".into(),
        ));
    }
    map_index::<Complex32>(n, shape, |i| {
        let mut z = Complex32::new(
            r::erfinv(r::symmetric_uniform(b[2 * i])),
            r::erfinv(r::symmetric_uniform(b[2 * i + 1])),
        );
        if let Some(s) = scale_p {
            z = s.complex_at(i) * z;
        }
        if let Some(l) = loc_p {
            z = l.complex_at(i) + z;
        }
        z
    })
}

/// `f(i, bits[i])` for every output element, in parallel when large.
fn map_bits<T: Element>(
    bits: &[u32],
    shape: &[usize],
    f: impl Fn(usize, u32) -> T + Sync,
) -> Result<ArrayData> {
    map_index(bits.len(), shape, |i| f(i, bits[i]))
}

/// `f(i)` for each of the `n` output elements, in parallel when large.
fn map_index<T: Element>(
    n: usize,
    shape: &[usize],
    f: impl Fn(usize) -> T + Sync,
) -> Result<ArrayData> {
    let mut buf = alloc::<T>(n)?;
    let dst = buf.as_mut_slice::<T>();
    const CHUNK: usize = 4096;
    if n > PARALLEL_THRESHOLD {
        dst.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| {
                for (k, d) in chunk.iter_mut().enumerate() {
                    *d = f(c * CHUNK + k);
                }
            });
    } else {
        for (i, d) in dst.iter_mut().enumerate() {
            *d = f(i);
        }
    }
    Ok(ArrayData::contiguous(buf, shape, T::DTYPE))
}

fn sample(
    dist: Distribution,
    bits: ArrayData,
    params: Vec<ArrayData>,
    out: &OutSpec,
) -> Result<ArrayData> {
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
    let bits = contiguous(bits)?;
    let complex = matches!(dist, Distribution::ComplexNormal { .. });
    let b = bits.buffer.as_slice::<u32>();
    let b = &b[..bits.size()];
    let shape = &out.shape[..];
    let p: Vec<Param> = params
        .into_iter()
        .map(|x| Param::new(x, shape, complex))
        .collect();
    match dist {
        Distribution::Randint => dispatch_dtype!(out.dtype, T => {
            let (lo, hi) = (&p[0], &p[1]);
            map_bits::<T>(b, shape, |i, w| {
                let v = r::randint_scalar(w, lo.at(i) as f32, hi.at(i) as f32);
                f32_to::<T>(v)
            })
        }),
        Distribution::ComplexNormal { loc, scale } => complex_normal(b, &p, loc, scale, shape),
        Distribution::Bernoulli => {
            let prob = &p[0];
            map_bits::<bool>(b, shape, |i, w| r::bernoulli_scalar(w, prob.at(i) as f32))
        }
        _ => match out.dtype {
            Dtype::Float32 => sample_float::<f32>(dist, b, &p, shape),
            Dtype::Float16 => sample_float::<f16>(dist, b, &p, shape),
            Dtype::Bfloat16 => sample_float::<bf16>(dist, b, &p, shape),
            Dtype::Float64 => sample_float::<f64>(dist, b, &p, shape),
            other => Err(Error::Device(format!(
                "random: {dist:?} cannot produce {other}"
            ))),
        },
    }
}

/// A float32 value cast to `T` as C++'s `static_cast` does (bool: nonzero).
#[inline(always)]
fn f32_to<T: Element>(v: f32) -> T {
    v.cast::<T>()
}

fn sample_float<T: Element>(
    dist: Distribution,
    b: &[u32],
    p: &[Param],
    shape: &[usize],
) -> Result<ArrayData> {
    // Parameters are converted to the output dtype first (MLX's `astype`).
    let in_t = |v: f64| T::from_f64(v).to_f64() as f32;
    let out = |v: f32| T::from_f64(v as f64);
    match dist {
        Distribution::Uniform => {
            let upper = r::below_one::<T>();
            map_bits::<T>(b, shape, |i, w| {
                out(r::uniform_scalar::<T>(
                    w,
                    in_t(p[0].at(i)),
                    in_t(p[1].at(i)),
                    upper,
                ))
            })
        }
        Distribution::Normal { loc, scale } => {
            let loc_p = if loc { Some(&p[0]) } else { None };
            let scale_p = if scale { p.get(loc as usize) } else { None };
            map_bits::<T>(b, shape, |i, w| {
                let l = loc_p.map(|q| in_t(q.at(i)));
                let s = scale_p.map(|q| in_t(q.at(i)));
                out(r::normal_scalar::<T>(w, l, s))
            })
        }
        Distribution::Gumbel => map_bits::<T>(b, shape, |_, w| out(r::gumbel_scalar::<T>(w))),
        Distribution::Laplace { loc, scale } => {
            map_bits::<T>(b, shape, |_, w| out(r::laplace_scalar::<T>(w, loc, scale)))
        }
        Distribution::TruncatedNormal => map_bits::<T>(b, shape, |i, w| {
            out(r::truncated_normal_scalar::<T>(
                w,
                in_t(p[0].at(i)),
                in_t(p[1].at(i)),
            ))
        }),
        Distribution::Randint | Distribution::Bernoulli | Distribution::ComplexNormal { .. } => {
            Err(Error::Device(format!(
                "random: {dist:?} does not produce floats"
            )))
        }
    }
}
