//! Random sampling, as `mlx.core.random`: explicit keys (`key`, `split`) or a global key
//! sequence (`seed`), threefry2x32 bits, and distributions built on them.
//!
//! Every sampler takes `key: Option<&Array>`; with `None` it takes the next key of the global
//! sequence (thread-safe). The same key gives MLX's numbers, on every device: the bits come
//! from the [`RandomOp::Bits`] primitive and the maps to distributions follow MLX's op order
//! and rounding ([`crate::primitives::random`]).
//!
//! ```
//! # umx_cpu::register();
//! use umx_core::random;
//! let k = random::key(0)?;
//! let x = random::normal(&[2, 3], None, 0.0, 1.0, Some(&k))?;
//! let y = random::normal(&[2, 3], None, 0.0, 1.0, Some(&k))?;
//! assert_eq!(x.to_vec::<f32>()?, y.to_vec::<f32>()?);
//! # Ok::<(), umx_core::Error>(())
//! ```

use crate::primitives::random::{Distribution, fill_bits};
use crate::primitives::{Primitive, RandomOp};
use crate::shape::{broadcast_shapes, fmt_shape};
use crate::{Array, Dtype, IntoArray, Result, bail};
use std::sync::Mutex;

/// The global key: `None` until first used or seeded (then seeded from the clock, as MLX).
static GLOBAL_KEY: Mutex<Option<KeyState>> = Mutex::new(None);

/// The global key's value: words split on the host (the usual case, no kernel per key), or an
/// array set by [`set_state`] (a compiled step's key input), split lazily by `split`.
enum KeyState {
    Words([u32; 2]),
    Array(Array),
}

fn global_key() -> std::sync::MutexGuard<'static, Option<KeyState>> {
    GLOBAL_KEY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The clock's key, for a global sequence used before any seed (as MLX).
fn clock_key() -> [u32; 2] {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    key_words(ms)
}

fn key_words(seed: u64) -> [u32; 2] {
    [(seed >> 32) as u32, seed as u32]
}

/// Splits a key on the host into its two subkeys (the same words `split(key, 2)` gives).
fn split_words(key: [u32; 2]) -> ([u32; 2], [u32; 2]) {
    let mut bytes = [0u8; 16];
    fill_bits(key, &mut bytes);
    let w = |i: usize| {
        u32::from_le_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    };
    ([w(0), w(1)], [w(2), w(3)])
}

/// The next key of the global sequence: the state is split, keeps the first half and gives
/// the second (MLX's `KeySequence::next`).
fn next_key() -> Result<Array> {
    let mut state = global_key();
    match state.take() {
        Some(KeyState::Array(k)) => {
            let halves = || -> Result<(Array, Array)> {
                let both = split(&k, 2)?;
                let row = |i: i64| {
                    let r = crate::ops::slice(&both, &[i, 0], &[i + 1, 2], &[1, 1])?;
                    crate::ops::reshape(&r, &[2i64])
                };
                Ok((row(0)?, row(1)?))
            };
            match halves() {
                Ok((keep, give)) => {
                    *state = Some(KeyState::Array(keep));
                    Ok(give)
                }
                Err(e) => {
                    *state = Some(KeyState::Array(k));
                    Err(e)
                }
            }
        }
        words => {
            let current = match words {
                Some(KeyState::Words(w)) => w,
                _ => clock_key(),
            };
            let (keep, give) = split_words(current);
            *state = Some(KeyState::Words(keep));
            Array::from_slice(&give, &[2])
        }
    }
}

/// The global key as an array (uint32, shape (2)): MLX's `mx.random.state`. Together with
/// [`set_state`] it lets a compiled function take the key as an input and give the advanced
/// key back as an output, so that each call draws new numbers.
pub fn state() -> Result<Array> {
    let mut st = global_key();
    match &*st {
        Some(KeyState::Array(k)) => Ok(k.clone()),
        Some(KeyState::Words(w)) => Array::from_slice(w, &[2]),
        None => {
            let w = clock_key();
            *st = Some(KeyState::Words(w));
            Array::from_slice(&w, &[2])
        }
    }
}

/// Makes `key` (uint32, shape (2), as [`state`] gives) the global key: the next sampler
/// without a key splits it.
pub fn set_state(key: &Array) -> Result<()> {
    key.check()?;
    if key.dtype() != Dtype::Uint32 || key.shape() != [2] {
        bail!(
            "random.set_state: expected a key of dtype uint32 and shape (2), got {} of shape {}",
            key.dtype(),
            fmt_shape(key.shape())
        );
    }
    *global_key() = Some(KeyState::Array(key.clone()));
    Ok(())
}

/// A PRNG key from a seed: uint32 `[seed >> 32, seed & 0xffffffff]` of shape (2,), as
/// `mx.random.key`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::random;
/// assert_eq!(random::key(5)?.to_vec::<u32>()?, vec![0, 5]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn key(seed: u64) -> Result<Array> {
    Array::from_slice(&key_words(seed), &[2])
}

/// Seeds the global key sequence (used by samplers given no key), as `mx.random.seed`.
pub fn seed(seed: u64) {
    *global_key() = Some(KeyState::Words(key_words(seed)));
}

fn resolve_key(op: &str, key: Option<&Array>) -> Result<Array> {
    let key = match key {
        Some(k) => {
            k.check()?;
            k.clone()
        }
        None => next_key()?,
    };
    if key.dtype() != Dtype::Uint32 || key.shape() != [2] {
        bail!(
            "{op}: expected a key of dtype uint32 and shape (2), got {} of shape {}",
            key.dtype(),
            fmt_shape(key.shape())
        );
    }
    Ok(key)
}

fn bits_for(op: &str, shape: &[usize], width: usize, key: Option<&Array>) -> Result<Array> {
    let dtype = match width {
        4 => Dtype::Uint32,
        2 => Dtype::Uint16,
        1 => Dtype::Uint8,
        _ => bail!("{op}: bit width must be 1, 2 or 4, got {width}"),
    };
    let key = resolve_key(op, key)?;
    Array::from_primitive(
        Primitive::Random(RandomOp::Bits {
            shape: shape.to_vec(),
            width,
        }),
        vec![key],
        shape.to_vec(),
        dtype,
    )
}

/// Random bits of `shape`: uint32 (`width` 4), uint16 (2) or uint8 (1), as MLX's
/// `random::bits`.
pub fn bits(shape: &[usize], width: usize, key: Option<&Array>) -> Result<Array> {
    bits_for("bits", shape, width, key)
}

/// `num` new keys from `key`: uint32 of shape (num, 2), as `mx.random.split`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::random;
/// let keys = random::split(&random::key(0)?, 2)?;
/// assert_eq!(keys.to_vec::<u32>()?, vec![4146024105, 967050713, 2718843009, 1272950319]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn split(key: &Array, num: usize) -> Result<Array> {
    bits_for("split", &[num, 2], 4, Some(key))
}

fn sample(
    op: &str,
    dist: Distribution,
    shape: &[usize],
    dtype: Dtype,
    params: Vec<Array>,
    key: Option<&Array>,
) -> Result<Array> {
    let bits = bits_for(op, shape, 4, key)?;
    let mut inputs = vec![bits];
    inputs.extend(params);
    Array::from_primitive(
        Primitive::Random(RandomOp::Sample(dist)),
        inputs,
        shape.to_vec(),
        dtype,
    )
}

/// Checks that parameters of the given shapes broadcast to exactly `shape`.
fn check_param_shapes(op: &str, shape: &[usize], params: &[&Array]) -> Result<()> {
    let mut b: Vec<usize> = shape.to_vec();
    for p in params {
        p.check()?;
        b = broadcast_shapes(op, &b, p.shape())?;
    }
    if b != shape {
        bail!(
            "{op}: cannot generate random values of shape {} from broadcast shape {}",
            fmt_shape(shape),
            fmt_shape(&b)
        );
    }
    Ok(())
}

fn float_dtype(op: &str, dtype: Option<Dtype>) -> Result<Dtype> {
    let dtype = dtype.unwrap_or(Dtype::Float32);
    if !dtype.is_float() {
        bail!("{op}: can only generate real floating point dtypes, not {dtype}");
    }
    Ok(dtype)
}

/// Uniform samples in `[low, high)` of `shape` (float32 by default), as `mx.random.uniform`.
/// `low` and `high` broadcast to `shape`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::random;
/// let k = random::key(0)?;
/// let u = random::uniform(0.0, 1.0, &[4], None, Some(&k))?;
/// let v = u.to_vec::<f32>()?;
/// assert!((v[0] - 0.965321).abs() < 1e-6);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn uniform(
    low: impl IntoArray,
    high: impl IntoArray,
    shape: &[usize],
    dtype: impl Into<Option<Dtype>>,
    key: Option<&Array>,
) -> Result<Array> {
    let dtype = float_dtype("uniform", dtype.into())?;
    let (low, high) = (low.into_array(), high.into_array());
    check_param_shapes("uniform", shape, &[&low, &high])?;
    sample(
        "uniform",
        Distribution::Uniform,
        shape,
        dtype,
        vec![low, high],
        key,
    )
}

/// Whether `a` is a weak scalar holding `v` (a Rust literal default such as `loc = 0.0`).
fn is_weak_value(a: &Array, v: f64) -> bool {
    a.is_weak() && a.is_evaluated() && a.item::<f64>().map(|x| x == v).unwrap_or(false)
}

/// Normal samples with mean `loc` and standard deviation `scale` (float32 by default), as
/// `mx.random.normal`. `loc` and `scale` broadcast to `shape`; Rust scalars `0.0` and `1.0`
/// act as MLX's absent `loc` and `scale`. With dtype complex64, the real and imaginary parts
/// are independent normals of variance 1/2 (times `scale`, plus `loc`).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::random;
/// let x = random::normal(&[3], None, 0.0, 1.0, Some(&random::key(1)?))?;
/// assert_eq!(x.shape(), &[3]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn normal(
    shape: &[usize],
    dtype: impl Into<Option<Dtype>>,
    loc: impl IntoArray,
    scale: impl IntoArray,
    key: Option<&Array>,
) -> Result<Array> {
    let dtype = dtype.into().unwrap_or(Dtype::Float32);
    if !dtype.is_inexact() {
        bail!("normal: can only generate floating point or complex64 dtypes, not {dtype}");
    }
    let (loc, scale) = (loc.into_array(), scale.into_array());
    check_param_shapes("normal", shape, &[&loc, &scale])?;
    let has_loc = !is_weak_value(&loc, 0.0);
    let has_scale = !is_weak_value(&scale, 1.0);
    let mut params = Vec::new();
    if has_loc {
        params.push(loc);
    }
    if has_scale {
        params.push(scale);
    }
    if dtype == Dtype::Complex64 {
        // Two float32 draws per element (real, imaginary), as MLX's complex normal.
        let mut bits_shape = shape.to_vec();
        bits_shape.push(2);
        let mut inputs = vec![bits_for("normal", &bits_shape, 4, key)?];
        inputs.extend(params);
        let dist = Distribution::ComplexNormal {
            loc: has_loc,
            scale: has_scale,
        };
        return Array::from_primitive(
            Primitive::Random(RandomOp::Sample(dist)),
            inputs,
            shape.to_vec(),
            dtype,
        );
    }
    let dist = Distribution::Normal {
        loc: has_loc,
        scale: has_scale,
    };
    sample("normal", dist, shape, dtype, params, key)
}

/// Random integers in `[low, high)` of `shape` (int32 by default), as `mx.random.randint`.
/// Like MLX, draws come from a float32 uniform: exact while `|low|, |high| < 2^24`; an empty
/// range (`high <= low`) gives `low`.
pub fn randint(
    low: impl IntoArray,
    high: impl IntoArray,
    shape: &[usize],
    dtype: impl Into<Option<Dtype>>,
    key: Option<&Array>,
) -> Result<Array> {
    let dtype = dtype.into().unwrap_or(Dtype::Int32);
    if dtype.is_inexact() {
        bail!("randint: only integer dtypes and bool are accepted, not {dtype}");
    }
    let (low, high) = (low.into_array(), high.into_array());
    check_param_shapes("randint", shape, &[&low, &high])?;
    sample(
        "randint",
        Distribution::Randint,
        shape,
        dtype,
        vec![low, high],
        key,
    )
}

/// Bernoulli samples (bool) that are true with probability `p`, as `mx.random.bernoulli`.
/// `shape` defaults to `p`'s shape; `p` must be of a float dtype.
pub fn bernoulli(p: impl IntoArray, shape: Option<&[usize]>, key: Option<&Array>) -> Result<Array> {
    let p = p.into_array();
    p.check()?;
    if !p.dtype().is_float() {
        bail!(
            "bernoulli: the probability p must be of a float dtype, not {}",
            p.dtype()
        );
    }
    let shape = shape
        .map(|s| s.to_vec())
        .unwrap_or_else(|| p.shape().to_vec());
    check_param_shapes("bernoulli", &shape, &[&p])?;
    sample(
        "bernoulli",
        Distribution::Bernoulli,
        &shape,
        Dtype::Bool,
        vec![p],
        key,
    )
}

/// Normal samples truncated to `[lower, upper]`, as `mx.random.truncated_normal`. `shape`
/// defaults to the broadcast of `lower` and `upper`.
pub fn truncated_normal(
    lower: impl IntoArray,
    upper: impl IntoArray,
    shape: Option<&[usize]>,
    dtype: impl Into<Option<Dtype>>,
    key: Option<&Array>,
) -> Result<Array> {
    let dtype = float_dtype("truncated_normal", dtype.into())?;
    let (lower, upper) = (lower.into_array(), upper.into_array());
    lower.check()?;
    upper.check()?;
    let shape = match shape {
        Some(s) => s.to_vec(),
        None => broadcast_shapes("truncated_normal", lower.shape(), upper.shape())?,
    };
    check_param_shapes("truncated_normal", &shape, &[&lower, &upper])?;
    sample(
        "truncated_normal",
        Distribution::TruncatedNormal,
        &shape,
        dtype,
        vec![lower, upper],
        key,
    )
}

/// Samples of the standard Gumbel distribution, as `mx.random.gumbel`.
pub fn gumbel(
    shape: &[usize],
    dtype: impl Into<Option<Dtype>>,
    key: Option<&Array>,
) -> Result<Array> {
    let dtype = float_dtype("gumbel", dtype.into())?;
    sample("gumbel", Distribution::Gumbel, shape, dtype, vec![], key)
}

/// Samples of the Laplace distribution with location `loc` and scale `scale`, as
/// `mx.random.laplace`.
pub fn laplace(
    shape: &[usize],
    dtype: impl Into<Option<Dtype>>,
    loc: f64,
    scale: f64,
    key: Option<&Array>,
) -> Result<Array> {
    let dtype = float_dtype("laplace", dtype.into())?;
    let dist = Distribution::Laplace {
        loc: loc as f32,
        scale: scale as f32,
    };
    sample("laplace", dist, shape, dtype, vec![], key)
}

/// What [`permutation`] permutes: the integers `0..n`, or an array along an axis.
pub enum Permutable {
    /// A random ordering of `0..n` (uint32).
    Len(usize),
    /// The array with its entries shuffled along the axis.
    Array(Array),
}

impl From<usize> for Permutable {
    fn from(n: usize) -> Self {
        Permutable::Len(n)
    }
}
impl From<i32> for Permutable {
    /// A negative length is rejected by [`permutation`].
    fn from(n: i32) -> Self {
        Permutable::Len(if n < 0 { usize::MAX } else { n as usize })
    }
}
impl From<&Array> for Permutable {
    fn from(a: &Array) -> Self {
        Permutable::Array(a.clone())
    }
}
impl From<Array> for Permutable {
    fn from(a: Array) -> Self {
        Permutable::Array(a)
    }
}

/// A random permutation of `0..n` (uint32), or of an array's entries along `axis`, as
/// `mx.random.permutation` (the argsort of random bits).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::random;
/// let p = random::permutation(5, 0, Some(&random::key(0)?))?;
/// let mut v = p.to_vec::<u32>()?;
/// v.sort();
/// assert_eq!(v, vec![0, 1, 2, 3, 4]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn permutation(x: impl Into<Permutable>, axis: i64, key: Option<&Array>) -> Result<Array> {
    match x.into() {
        Permutable::Len(n) => {
            if n > u32::MAX as usize {
                bail!("permutation: length must be non-negative and below 2^32");
            }
            let b = bits_for("permutation", &[n], 4, key)?;
            super::sort::argsort(&b, -1)
        }
        Permutable::Array(a) => {
            a.check()?;
            let ax = crate::shape::normalize_axis("permutation", axis, a.ndim())?;
            let n = a.shape()[ax];
            let b = bits_for("permutation", &[n], 4, key)?;
            let perm = super::sort::argsort(&b, -1)?;
            take_along(&a, &perm, ax)
        }
    }
}

/// `a` reordered along `axis` by `perm` (a gather with the indexing family's `take`).
fn take_along(a: &Array, perm: &Array, axis: usize) -> Result<Array> {
    super::indexing::take(a, perm, Some(axis as i64))
}

/// Samples (uint32 category indices) from the categorical distributions whose unnormalised
/// log-probabilities lie along `axis` of `logits`, as `mx.random.categorical` (the argmax of
/// `logits + gumbel noise`).
///
/// Without `shape` and `num_samples`, one sample per distribution (the shape of `logits`
/// without `axis`); `shape` must broadcast with that shape; `num_samples` draws that many per
/// distribution along a new last axis. At most one of `shape` and `num_samples` may be given.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{random, Array};
/// let logits = Array::from_slice(&[0.0f32, 100.0, 0.0, -100.0, -100.0, 100.0], &[2, 3])?;
/// let s = random::categorical(&logits, -1, None, None, Some(&random::key(0)?))?;
/// assert_eq!(s.to_vec::<u32>()?, vec![1, 2]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn categorical(
    logits: &Array,
    axis: i64,
    shape: Option<&[usize]>,
    num_samples: Option<usize>,
    key: Option<&Array>,
) -> Result<Array> {
    logits.check()?;
    let ndim = logits.ndim();
    let ax = crate::shape::normalize_axis("categorical", axis, ndim)?;
    let mut reduced = logits.shape().to_vec();
    reduced.remove(ax);
    match (shape, num_samples) {
        (Some(_), Some(_)) => {
            bail!("categorical: at most one of shape and num_samples can be given")
        }
        (Some(shape), None) => {
            let b = broadcast_shapes("categorical", shape, &reduced)?;
            if b != shape {
                bail!(
                    "categorical: requested shape {} is not broadcast compatible with the reduced \
                     logits shape {}",
                    fmt_shape(shape),
                    fmt_shape(&reduced)
                );
            }
            categorical_impl(logits, ax, shape, key)
        }
        (None, Some(n)) => {
            let expanded = super::shape::expand_dims(logits, -1)?;
            let mut shape = expanded.shape().to_vec();
            shape.remove(ax);
            if let Some(last) = shape.last_mut() {
                *last = n;
            }
            categorical_impl(&expanded, ax, &shape, key)
        }
        (None, None) => categorical_impl(logits, ax, &reduced, key),
    }
}

fn categorical_impl(
    logits: &Array,
    axis: usize,
    shape: &[usize],
    key: Option<&Array>,
) -> Result<Array> {
    let offset = axis + shape.len() + 1 - logits.ndim();
    let mut gumbel_shape = shape.to_vec();
    gumbel_shape.insert(offset, logits.shape()[axis]);
    let g = gumbel(&gumbel_shape, Dtype::Float32, key)?;
    let noisy = super::elementwise::add(&g, logits)?;
    super::reduce::argmax(&noisy, Some(offset as i64), false)
}
