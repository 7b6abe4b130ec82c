//! Upsampling of channels-last inputs `(N, spatial..., C)` (mlx.nn.Upsample): nearest,
//! (bi/tri)linear and cubic interpolation, with or without aligned corners.

use crate::layers::Forward;
use crate::module::{Module, Param};
use umx_core::{Array, Result, bail, ops};

/// How [`Upsample`] interpolates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsampleMode {
    Nearest,
    Linear,
    Cubic,
}

/// Scales every spatial axis by its factor (mlx.nn.Upsample without antialiasing).
#[derive(Clone, Debug)]
pub struct Upsample {
    pub scale_factor: Vec<f64>,
    pub mode: UpsampleMode,
    pub align_corners: bool,
}

impl Upsample {
    /// One factor per spatial axis (or one for all).
    pub fn new(
        scale_factor: Vec<f64>,
        mode: UpsampleMode,
        align_corners: bool,
    ) -> Result<Upsample> {
        if scale_factor.is_empty() || scale_factor.iter().any(|&s| s <= 0.0) {
            bail!("Upsample: scale factors must be positive, not {scale_factor:?}");
        }
        Ok(Upsample {
            scale_factor,
            mode,
            align_corners,
        })
    }
}

/// Source positions (float) of the `m` outputs along an axis of `n` inputs.
fn scaled_positions(n: usize, scale: f64, align_corners: bool) -> Vec<f64> {
    let m = (scale * n as f64) as usize;
    if align_corners {
        let step = (n as f64 - 1.0) / (m.max(2) - 1) as f64;
        (0..m).map(|i| i as f64 * step).collect()
    } else {
        let step = 1.0 / scale;
        let start = ((m as f64 - 1.0) * step - n as f64 + 1.0) / 2.0;
        (0..m).map(|i| i as f64 * step - start).collect()
    }
}

/// `x` gathered along `axis` at `idx` and weighted by `w` (both per output position),
/// summed over taps.
fn taps(x: &Array, axis: usize, taps: &[(Vec<u32>, Vec<f32>)]) -> Result<Array> {
    let mut wshape = vec![1usize; x.ndim()];
    let mut total: Option<Array> = None;
    for (idx, w) in taps {
        wshape[axis] = w.len();
        let gathered = ops::take(x, &Array::from_slice(idx, &[idx.len()])?, Some(axis as i64))?;
        let term = ops::multiply(
            &gathered,
            &Array::from_slice(w, &wshape)?.astype(x.dtype())?,
        )?;
        total = Some(match total {
            Some(t) => ops::add(&t, &term)?,
            None => term,
        });
    }
    total.ok_or_else(|| umx_core::Error::Invalid("Upsample: no taps".into()))
}

fn clamp(i: f64, n: usize) -> u32 {
    i.clamp(0.0, n as f64 - 1.0) as u32
}

impl Forward for Upsample {
    fn forward(&self, x: &Array) -> Result<Array> {
        let d = x.ndim().saturating_sub(2);
        if d == 0 {
            bail!(
                "Upsample: input must be (N, spatial..., C), not shape {:?}",
                x.shape()
            );
        }
        let scales = match self.scale_factor.len() {
            1 => vec![self.scale_factor[0]; d],
            k if k == d => self.scale_factor.clone(),
            k => bail!("Upsample: {k} scale factors for {d} spatial axes"),
        };
        let mut y = x.clone();
        for (i, &s) in scales.iter().enumerate() {
            let axis = i + 1;
            let n = y.shape()[axis];
            let m = (s * n as f64) as usize;
            y = match self.mode {
                UpsampleMode::Nearest => {
                    let idx: Vec<u32> = (0..m)
                        .map(|j| {
                            let j = j as f64;
                            let src = if m > n {
                                ((j + 0.5) * (n as f64 / m as f64) - 0.5).round_ties_even()
                            } else {
                                j * (n as f64 / m as f64)
                            };
                            clamp(src.floor(), n)
                        })
                        .collect();
                    ops::take(&y, &Array::from_slice(&idx, &[m])?, Some(axis as i64))?
                }
                UpsampleMode::Linear => {
                    let pos: Vec<f64> = scaled_positions(n, s, self.align_corners)
                        .into_iter()
                        .map(|p| p.clamp(0.0, n as f64 - 1.0))
                        .collect();
                    let l: Vec<u32> = pos.iter().map(|p| p.floor() as u32).collect();
                    let r: Vec<u32> = pos.iter().map(|p| p.ceil() as u32).collect();
                    let w: Vec<f32> = pos.iter().map(|p| (p - p.floor()) as f32).collect();
                    let wl: Vec<f32> = w.iter().map(|w| 1.0 - w).collect();
                    taps(&y, axis, &[(l, wl), (r, w)])?
                }
                UpsampleMode::Cubic => {
                    let a = -0.75;
                    let near = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
                    let far = |x: f64| (((x - 5.0) * x + 8.0) * x - 4.0) * a;
                    let pos = scaled_positions(n, s, self.align_corners);
                    let mut t: Vec<(Vec<u32>, Vec<f32>)> = vec![(Vec::new(), Vec::new()); 4];
                    for p in pos {
                        let l1 = p.floor();
                        let r1 = (p + 1.0).floor();
                        for (k, (src, w)) in [
                            (l1, near((p - l1).abs())),
                            (r1, near((p - r1).abs())),
                            (l1 - 1.0, far((p - (l1 - 1.0)).abs())),
                            (r1 + 1.0, far((p - (r1 + 1.0)).abs())),
                        ]
                        .into_iter()
                        .enumerate()
                        {
                            t[k].0.push(clamp(src, n));
                            t[k].1.push(w as f32);
                        }
                    }
                    taps(&y, axis, &t)?
                }
            };
        }
        if y.dtype() != x.dtype() {
            y = ops::astype(&y, x.dtype())?;
        }
        Ok(y)
    }
}

impl Module for Upsample {
    fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, &'a Param)) {}
    fn visit_params_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Param)) {}
}
