//! `umx::fft`: MLX's discrete Fourier transforms with NumPy's `n`/`s`/`axes` and `norm`.
//!
//! Every transform is a chain of the 1-D primitive of `primitives/fft.rs`, one per axis, after
//! cropping or zero-padding the axis to the length asked for. Results are complex64 (`irfft`
//! and friends: float32), as in MLX, which has no complex128: float64 input to the real
//! transforms is transformed in float64 and rounded once.
//!
//! `norm` is NumPy's: `"backward"` (the inverse transforms divide by `n`), `"ortho"` (both
//! directions divide by `√n`) or `"forward"` (the forward transforms divide by `n`).

use crate::primitives::{FftKind, FftOp, Primitive};
use crate::shape::{fmt_shape, normalize_axis};
use crate::{Array, Axes, Dtype, Result, bail, ops};

/// The factor a transform of length `n` is multiplied by under `norm`.
fn norm_scale(op: &str, norm: &str, n: usize, inverse: bool) -> Result<f64> {
    let n = n as f64;
    Ok(match (norm, inverse) {
        ("backward", false) | ("forward", true) => 1.0,
        ("backward", true) | ("forward", false) => 1.0 / n,
        ("ortho", _) => 1.0 / n.sqrt(),
        (other, _) => {
            bail!("{op}: norm must be \"backward\", \"ortho\" or \"forward\", got {other:?}")
        }
    })
}

/// `x` cropped or zero-padded along `axis` to `len`.
fn fit(x: &Array, axis: usize, len: usize) -> Result<Array> {
    let have = x.shape()[axis];
    if have == len {
        return Ok(x.clone());
    }
    if have > len {
        let mut stop: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
        stop[axis] = len as i64;
        return ops::slice(x, &vec![0; x.ndim()], &stop, &[]);
    }
    let mut widths = vec![(0i64, 0i64); x.ndim()];
    widths[axis] = (0, (len - have) as i64);
    ops::pad(x, &widths, 0.0, ops::PadMode::Constant)
}

/// One 1-D transform of `kind` along `axis`, with NumPy's `n` (default: the axis's length,
/// or `2 (m − 1)` for the inverse real transform).
fn transform(
    op: &str,
    a: &Array,
    n: Option<usize>,
    axis: i64,
    norm: &str,
    kind: FftKind,
) -> Result<Array> {
    a.check()?;
    if a.ndim() == 0 {
        bail!("{op}: the input must have at least one dimension, got a 0-d array");
    }
    let ax = normalize_axis(op, axis, a.ndim())?;
    let have = a.shape()[ax];
    let n = match n {
        Some(n) => n,
        None if kind == FftKind::RealInverse => 2 * have.saturating_sub(1),
        None => have,
    };
    if n == 0 {
        bail!(
            "{op}: invalid number of data points (0) along axis {axis} of shape {}",
            fmt_shape(a.shape())
        );
    }
    let inverse = matches!(kind, FftKind::Inverse | FftKind::RealInverse);
    let scale = norm_scale(op, norm, n, inverse)?;
    let x = match kind {
        FftKind::RealForward => match a.dtype() {
            Dtype::Float64 | Dtype::Float32 => a.clone(),
            Dtype::Complex64 => ops::real(a)?,
            _ => ops::astype(a, Dtype::Float32)?,
        },
        _ => ops::astype(a, Dtype::Complex64)?,
    };
    let prim = FftOp {
        axis: ax,
        kind,
        n,
        scale,
    };
    let x = fit(&x, ax, prim.input_len())?;
    let out = prim.output(x.shape());
    Array::from_primitive(Primitive::Fft(prim), vec![x], out.shape, out.dtype)
}

/// NumPy's `s` and `axes` of an n-dimensional transform, resolved: one length per axis
/// (`s[i]` for `axes[i]`), transformed from the last to the first. Without `axes` the last
/// `len(s)` axes, or all of them; without `s` the axes' lengths (`inverse_real`: the last one
/// as `2 (m − 1)`).
fn nd_args(
    op: &str,
    a: &Array,
    s: Option<&[usize]>,
    axes: Option<&[i64]>,
    inverse_real: bool,
) -> Result<Vec<(usize, usize)>> {
    a.check()?;
    let nd = a.ndim();
    let axes: Vec<usize> = match (axes, s) {
        (Some(axes), _) => axes
            .iter()
            .map(|&ax| normalize_axis(op, ax, nd))
            .collect::<Result<_>>()?,
        (None, Some(s)) => {
            if s.len() > nd {
                bail!(
                    "{op}: {} sizes given for an array of shape {}",
                    s.len(),
                    fmt_shape(a.shape())
                );
            }
            (nd - s.len()..nd).collect()
        }
        (None, None) => (0..nd).collect(),
    };
    if axes.is_empty() {
        bail!(
            "{op}: no axes to transform (array of shape {})",
            fmt_shape(a.shape())
        );
    }
    let lens: Vec<usize> = match s {
        Some(s) => {
            if s.len() != axes.len() {
                bail!(
                    "{op}: s {s:?} and axes {axes:?} have different lengths (array of shape {})",
                    fmt_shape(a.shape())
                );
            }
            s.to_vec()
        }
        None => {
            let mut l: Vec<usize> = axes.iter().map(|&ax| a.shape()[ax]).collect();
            if inverse_real {
                let last = l.len() - 1;
                l[last] = 2 * l[last].saturating_sub(1);
            }
            l
        }
    };
    Ok(axes.into_iter().zip(lens).collect())
}

/// The complex transform over several axes, last axis first.
fn fft_nd(
    op: &str,
    a: &Array,
    s: Option<&[usize]>,
    axes: Option<&[i64]>,
    norm: &str,
    kind: FftKind,
) -> Result<Array> {
    let plan = nd_args(op, a, s, axes, false)?;
    let mut x = a.clone();
    for &(ax, n) in plan.iter().rev() {
        x = transform(op, &x, Some(n), ax as i64, norm, kind)?;
    }
    Ok(x)
}

/// The default axes of the 2-D transforms.
const LAST_TWO: [i64; 2] = [-2, -1];

/// The 1-D discrete Fourier transform along `axis`, of length `n` (default: the axis's; the
/// input is cropped or zero-padded to it).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Complex32, fft};
/// let x = Array::from_slice(&[1.0f32, 0.0, -1.0, 0.0], &[4])?;
/// let y = fft::fft(&x, None, -1, "backward")?;
/// assert_eq!(y.to_vec::<Complex32>()?[1], Complex32::new(2.0, 0.0));
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn fft(a: &Array, n: Option<usize>, axis: i64, norm: &str) -> Result<Array> {
    transform("fft", a, n, axis, norm, FftKind::Forward)
}

/// The inverse of [`fft`] along `axis`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Complex32, fft};
/// let x = Array::from_slice(&[4.0f32, 0.0, 0.0, 0.0], &[4])?;
/// let y = fft::ifft(&x, None, -1, "backward")?;
/// assert_eq!(y.to_vec::<Complex32>()?, vec![Complex32::new(1.0, 0.0); 4]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn ifft(a: &Array, n: Option<usize>, axis: i64, norm: &str) -> Result<Array> {
    transform("ifft", a, n, axis, norm, FftKind::Inverse)
}

/// The 2-D transform over `axes` (default the last two), with sizes `s`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Complex32, fft};
/// let x = Array::from_slice(&[1.0f32; 4], &[2, 2])?;
/// let y = fft::fft2(&x, None, None, "backward")?;
/// assert_eq!(y.to_vec::<Complex32>()?[0], Complex32::new(4.0, 0.0));
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn fft2(a: &Array, s: Option<&[usize]>, axes: Option<&[i64]>, norm: &str) -> Result<Array> {
    let axes = axes.unwrap_or(&LAST_TWO);
    fft_nd("fft2", a, s, Some(axes), norm, FftKind::Forward)
}

/// The inverse of [`fft2`].
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Complex32, fft};
/// let x = Array::from_slice(&[4.0f32, 0.0, 0.0, 0.0], &[2, 2])?;
/// let y = fft::ifft2(&x, None, None, "backward")?;
/// assert_eq!(y.to_vec::<Complex32>()?, vec![Complex32::new(1.0, 0.0); 4]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn ifft2(a: &Array, s: Option<&[usize]>, axes: Option<&[i64]>, norm: &str) -> Result<Array> {
    let axes = axes.unwrap_or(&LAST_TWO);
    fft_nd("ifft2", a, s, Some(axes), norm, FftKind::Inverse)
}

/// The n-dimensional transform over `axes` (default: the last `len(s)` axes, or all), with
/// sizes `s` (default: the axes' lengths).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Complex32, fft};
/// let x = Array::from_slice(&[1.0f32; 8], &[2, 2, 2])?;
/// let y = fft::fftn(&x, None, None, "backward")?;
/// assert_eq!(y.to_vec::<Complex32>()?[0], Complex32::new(8.0, 0.0));
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn fftn(a: &Array, s: Option<&[usize]>, axes: Option<&[i64]>, norm: &str) -> Result<Array> {
    fft_nd("fftn", a, s, axes, norm, FftKind::Forward)
}

/// The inverse of [`fftn`].
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Complex32, fft};
/// let x = Array::from_slice(&[8.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], &[2, 2, 2])?;
/// let y = fft::ifftn(&x, None, None, "backward")?;
/// assert_eq!(y.to_vec::<Complex32>()?, vec![Complex32::new(1.0, 0.0); 8]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn ifftn(a: &Array, s: Option<&[usize]>, axes: Option<&[i64]>, norm: &str) -> Result<Array> {
    fft_nd("ifftn", a, s, axes, norm, FftKind::Inverse)
}

/// The transform of a real signal along `axis`: the `n/2 + 1` non-negative frequencies.
/// Complex input loses its imaginary part.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Complex32, fft};
/// let x = Array::from_slice(&[1.0f64, 2.0, 3.0, 4.0], &[4])?;
/// let y = fft::rfft(&x, None, -1, "backward")?;
/// assert_eq!(y.shape(), &[3]);
/// assert_eq!(y.to_vec::<Complex32>()?[2], Complex32::new(-2.0, 0.0));
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn rfft(a: &Array, n: Option<usize>, axis: i64, norm: &str) -> Result<Array> {
    transform("rfft", a, n, axis, norm, FftKind::RealForward)
}

/// The inverse of [`rfft`]: the real signal of length `n` (default `2 (m − 1)` for `m` input
/// values along `axis`) with that half spectrum; float32.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Complex32, fft};
/// let x = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[4])?;
/// let y = fft::irfft(&fft::rfft(&x, None, -1, "backward")?, None, -1, "backward")?;
/// assert_eq!(y.to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 4.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn irfft(a: &Array, n: Option<usize>, axis: i64, norm: &str) -> Result<Array> {
    transform("irfft", a, n, axis, norm, FftKind::RealInverse)
}

/// The real transform over several axes: [`rfft`] along the last, then [`fft`] along the
/// others.
fn rfft_nd(
    op: &str,
    a: &Array,
    s: Option<&[usize]>,
    axes: Option<&[i64]>,
    norm: &str,
) -> Result<Array> {
    let plan = nd_args(op, a, s, axes, false)?;
    let (&(last_ax, last_n), rest) = plan.split_last().expect("nd_args gives an axis");
    let mut x = transform(
        op,
        a,
        Some(last_n),
        last_ax as i64,
        norm,
        FftKind::RealForward,
    )?;
    for &(ax, n) in rest.iter().rev() {
        x = transform(op, &x, Some(n), ax as i64, norm, FftKind::Forward)?;
    }
    Ok(x)
}

/// The inverse real transform over several axes: [`ifft`] along all but the last, then
/// [`irfft`] along the last.
fn irfft_nd(
    op: &str,
    a: &Array,
    s: Option<&[usize]>,
    axes: Option<&[i64]>,
    norm: &str,
) -> Result<Array> {
    let plan = nd_args(op, a, s, axes, true)?;
    let (&(last_ax, last_n), rest) = plan.split_last().expect("nd_args gives an axis");
    let mut x = a.clone();
    for &(ax, n) in rest.iter().rev() {
        x = transform(op, &x, Some(n), ax as i64, norm, FftKind::Inverse)?;
    }
    transform(
        op,
        &x,
        Some(last_n),
        last_ax as i64,
        norm,
        FftKind::RealInverse,
    )
}

/// The 2-D real transform over `axes` (default the last two).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, fft};
/// let x = Array::from_slice(&[1.0f32; 12], &[3, 4])?;
/// assert_eq!(fft::rfft2(&x, None, None, "backward")?.shape(), &[3, 3]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn rfft2(a: &Array, s: Option<&[usize]>, axes: Option<&[i64]>, norm: &str) -> Result<Array> {
    rfft_nd("rfft2", a, s, Some(axes.unwrap_or(&LAST_TWO)), norm)
}

/// The inverse of [`rfft2`].
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, fft};
/// let x = Array::from_slice(&[1.0f32; 12], &[3, 4])?;
/// let y = fft::irfft2(&fft::rfft2(&x, None, None, "backward")?, Some(&[3, 4]), None, "backward")?;
/// assert!(y.to_vec::<f32>()?.iter().all(|v| (v - 1.0).abs() < 1e-6));
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn irfft2(a: &Array, s: Option<&[usize]>, axes: Option<&[i64]>, norm: &str) -> Result<Array> {
    irfft_nd("irfft2", a, s, Some(axes.unwrap_or(&LAST_TWO)), norm)
}

/// The n-dimensional real transform over `axes` (default: the last `len(s)` axes, or all).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, fft};
/// let x = Array::from_slice(&[1.0f32; 24], &[2, 3, 4])?;
/// assert_eq!(fft::rfftn(&x, None, None, "backward")?.shape(), &[2, 3, 3]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn rfftn(a: &Array, s: Option<&[usize]>, axes: Option<&[i64]>, norm: &str) -> Result<Array> {
    rfft_nd("rfftn", a, s, axes, norm)
}

/// The inverse of [`rfftn`].
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, fft};
/// let x = Array::from_slice(&[1.0f32; 24], &[2, 3, 4])?;
/// let y = fft::irfftn(&fft::rfftn(&x, None, None, "backward")?, Some(&[2, 3, 4]), None, "backward")?;
/// assert_eq!(y.shape(), &[2, 3, 4]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn irfftn(a: &Array, s: Option<&[usize]>, axes: Option<&[i64]>, norm: &str) -> Result<Array> {
    irfft_nd("irfftn", a, s, axes, norm)
}

/// The sample frequencies of an `n`-point transform with sample spacing `d`:
/// `[0, 1, …, ⌈n/2⌉ − 1, −⌊n/2⌋, …, −1] / (d n)`, float32.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::fft;
/// assert_eq!(fft::fftfreq(4, 0.5)?.to_vec::<f32>()?, vec![0.0, 0.5, -1.0, -0.5]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn fftfreq(n: usize, d: f64) -> Result<Array> {
    if n == 0 {
        bail!("fftfreq: n must be positive, got 0");
    }
    let positive = n.div_ceil(2);
    let v: Vec<f64> = (0..n)
        .map(|i| {
            let k = if i < positive {
                i as f64
            } else {
                i as f64 - n as f64
            };
            k / (d * n as f64)
        })
        .collect();
    Array::from_f64s(&v, &[n], Dtype::Float32)
}

/// The sample frequencies of [`rfft`]: `[0, 1, …, ⌊n/2⌋] / (d n)`, float32.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::fft;
/// assert_eq!(fft::rfftfreq(4, 0.5)?.to_vec::<f32>()?, vec![0.0, 0.5, 1.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn rfftfreq(n: usize, d: f64) -> Result<Array> {
    if n == 0 {
        bail!("rfftfreq: n must be positive, got 0");
    }
    let v: Vec<f64> = (0..n / 2 + 1).map(|k| k as f64 / (d * n as f64)).collect();
    Array::from_f64s(&v, &[n / 2 + 1], Dtype::Float32)
}

/// `a` rolled by `sign · ⌊len/2⌋` along each of `axes` (default: all).
fn shift(op: &str, a: &Array, axes: Axes, inverse: bool) -> Result<Array> {
    a.check()?;
    let axes = match axes {
        Axes::All => (0..a.ndim()).collect(),
        Axes::List(list) => list
            .iter()
            .map(|&ax| normalize_axis(op, ax, a.ndim()))
            .collect::<Result<Vec<usize>>>()?,
    };
    if axes.is_empty() {
        return Ok(a.clone());
    }
    let shifts: Vec<i64> = axes
        .iter()
        .map(|&ax| {
            let half = (a.shape()[ax] / 2) as i64;
            if inverse { -half } else { half }
        })
        .collect();
    let axes: Vec<i64> = axes.iter().map(|&ax| ax as i64).collect();
    ops::roll(a, &shifts, axes)
}

/// The zero frequency moved to the middle of `axes` (default: all): a roll by half of each.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Axes, fft};
/// let f = fft::fftfreq(5, 1.0)?;
/// let s = fft::fftshift(&f, Axes::All)?;
/// assert_eq!(s.to_vec::<f32>()?, vec![-0.4, -0.2, 0.0, 0.2, 0.4]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn fftshift(a: &Array, axes: impl Into<Axes>) -> Result<Array> {
    shift("fftshift", a, axes.into(), false)
}

/// The inverse of [`fftshift`] (they differ for odd lengths).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Axes, fft};
/// let f = fft::fftfreq(5, 1.0)?;
/// let back = fft::ifftshift(&fft::fftshift(&f, Axes::All)?, Axes::All)?;
/// assert_eq!(back.to_vec::<f32>()?, f.to_vec::<f32>()?);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn ifftshift(a: &Array, axes: impl Into<Axes>) -> Result<Array> {
    shift("ifftshift", a, axes.into(), true)
}
