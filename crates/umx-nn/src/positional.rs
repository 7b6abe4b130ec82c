//! Positional encodings (mlx.nn's RoPE, ALiBi, SinusoidalPositionalEncoding).

use crate::layers::Forward;
use crate::module::{Module, Param};
use umx_core::{Array, Dtype, Result, bail, ops};

/// Rotary positional encoding of the first `dims` features of `(..., L, D)` inputs: feature
/// pairs rotated by `position * base^(-2i / dims)` (mlx.nn.RoPE). `traditional` pairs
/// neighbours `(2i, 2i + 1)`; otherwise the two halves `(i, i + dims / 2)`.
#[derive(Clone, Debug)]
pub struct RoPE {
    pub dims: usize,
    pub traditional: bool,
    pub base: f64,
    pub scale: f64,
}

impl RoPE {
    /// Rotates `dims` features (even).
    pub fn new(dims: usize, traditional: bool, base: f64, scale: f64) -> Result<RoPE> {
        if dims == 0 || !dims.is_multiple_of(2) {
            bail!("RoPE: dims must be even and positive, not {dims}");
        }
        Ok(RoPE {
            dims,
            traditional,
            base,
            scale,
        })
    }

    /// Applies the rotation to positions `offset, offset + 1, ...` along the second to last
    /// axis (one fused [`umx_core::fast::rope`]).
    pub fn forward_at(&self, x: &Array, offset: usize) -> Result<Array> {
        let offset = i32::try_from(offset)
            .map_err(|_| umx_core::Error::Invalid(format!("RoPE: offset {offset} is too large")))?;
        self.forward_offset(x, &Array::scalar(offset))
    }

    /// [`RoPE::forward_at`] with the offset as an integer array: a scalar, or one per index
    /// of the first axis. An array offset lets a compiled decoding step serve every position.
    pub fn forward_offset(&self, x: &Array, offset: &Array) -> Result<Array> {
        umx_core::fast::rope(
            x,
            self.dims,
            self.traditional,
            Some(self.base as f32),
            self.scale as f32,
            offset,
            None,
        )
    }
}

impl Forward for RoPE {
    fn forward(&self, x: &Array) -> Result<Array> {
        self.forward_at(x, 0)
    }
}

/// Sinusoidal positional encoding of scalar positions (mlx.nn.SinusoidalPositionalEncoding):
/// `sin` and `cos` of `x * sigma_i` for `dims / 2` frequencies between `min_freq` and
/// `max_freq`, geometrically spaced, times `scale` (default `sqrt(2 / dims)`).
#[derive(Clone, Debug)]
pub struct SinusoidalPositionalEncoding {
    pub sigmas: Array,
    pub scale: f64,
    pub cos_first: bool,
}

impl SinusoidalPositionalEncoding {
    /// `dims` features (even).
    pub fn new(
        dims: usize,
        min_freq: f64,
        max_freq: f64,
        scale: Option<f64>,
        cos_first: bool,
        full_turns: bool,
    ) -> Result<Self> {
        if dims < 4 || !dims.is_multiple_of(2) {
            bail!("SinusoidalPositionalEncoding: dims must be even and at least 4, not {dims}");
        }
        let half = dims / 2;
        let one_zero = ops::subtract(
            1.0,
            ops::divide(
                ops::arange(0.0, half as f64, 1.0, Dtype::Float32)?,
                (half - 1) as f64,
            )?,
        )?;
        let (lo, hi) = (min_freq.ln(), max_freq.ln());
        let mut sigmas = ops::exp(&ops::add(ops::multiply(&one_zero, hi - lo)?, lo)?)?;
        if full_turns {
            sigmas = ops::multiply(&sigmas, 2.0 * std::f64::consts::PI)?;
        }
        Ok(SinusoidalPositionalEncoding {
            sigmas,
            scale: scale.unwrap_or((2.0 / dims as f64).sqrt()),
            cos_first,
        })
    }
}

impl Forward for SinusoidalPositionalEncoding {
    fn forward(&self, x: &Array) -> Result<Array> {
        let y = ops::multiply(ops::expand_dims(x, -1)?, &self.sigmas)?;
        let (c, s) = (ops::cos(&y)?, ops::sin(&y)?);
        let y = if self.cos_first {
            ops::concatenate(&[c, s], -1)?
        } else {
            ops::concatenate(&[s, c], -1)?
        };
        if self.scale != 1.0 {
            ops::multiply(&y, self.scale)
        } else {
            Ok(y)
        }
    }
}

/// Attention with linear biases (mlx.nn.ALiBi): adds `-slope_h * |i - j|` to the scores of
/// head `h`, slopes `2^(-8 (h + 1) / num_heads)`.
#[derive(Clone, Debug, Default)]
pub struct ALiBi;

impl ALiBi {
    /// The bias of shape `(1, heads, q_len, k_len)` for queries at `offset, offset + 1, ...`.
    pub fn matrix(
        q_len: usize,
        k_len: usize,
        num_heads: usize,
        offset: usize,
        dtype: Dtype,
    ) -> Result<Array> {
        let q = ops::arange(offset as f64, (offset + q_len) as f64, 1.0, Dtype::Float32)?;
        let k = ops::arange(0.0, k_len as f64, 1.0, Dtype::Float32)?;
        let dist = ops::negative(&ops::abs(&ops::subtract(
            ops::expand_dims(&q, 1)?,
            ops::expand_dims(&k, 0)?,
        )?)?)?;
        let base = 256f64.powf(1.0 / num_heads as f64);
        let slopes = ops::power(
            base,
            ops::negative(&ops::arange(
                1.0,
                (num_heads + 1) as f64,
                1.0,
                Dtype::Float32,
            )?)?,
        )?;
        let slopes = ops::reshape(&slopes, &[1, num_heads as i64, 1, 1])?;
        ops::astype(
            &ops::multiply(&ops::expand_dims(&dist, [0i64, 1])?, &slopes)?,
            dtype,
        )
    }

    /// `scores (B, heads, q_len, k_len)` plus the bias (and `mask`, if given).
    pub fn forward_scores(
        &self,
        scores: &Array,
        offset: usize,
        mask: Option<&Array>,
    ) -> Result<Array> {
        let s = scores.shape();
        if s.len() < 3 {
            bail!("ALiBi: scores must be (..., heads, q_len, k_len), not shape {s:?}");
        }
        let n = s.len();
        let bias = ALiBi::matrix(s[n - 2], s[n - 1], s[n - 3], offset, scores.dtype())?;
        let mut out = ops::add(scores, &bias)?;
        if let Some(m) = mask {
            out = ops::add(&out, m)?;
        }
        Ok(out)
    }
}

macro_rules! no_param_module {
    ($($t:ty),*) => {$(
        impl Module for $t {
            fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, &'a Param)) {}
            fn visit_params_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Param)) {}
        }
    )*};
}
no_param_module!(RoPE, SinusoidalPositionalEncoding, ALiBi);
