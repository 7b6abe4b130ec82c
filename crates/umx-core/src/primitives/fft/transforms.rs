//! vjp, jvp and vmap rules of the Fourier transform.
//!
//! Every kind is linear, so the jvp is the transform of the tangent. A cotangent of a complex
//! value `z` holds `∂L/∂Re z + i ∂L/∂Im z` (the convention of the `real`/`imag` rules), so the
//! vjp of a complex-linear map is its conjugate transpose: the forward transform's is the
//! inverse one (unnormalised, with the same scale) and the other way round.
//!
//! The real kinds are only real-linear. `rfft` keeps half of the spectrum, each of whose
//! bins but the zero and Nyquist frequencies stands for two conjugate bins of the full one:
//! its vjp halves those bins and takes `irfft` (which counts them twice). `irfft` counts those
//! bins twice: its vjp is `rfft` of the cotangent with them doubled.

use super::{FftKind, FftOp};
use crate::primitives::Primitive;
use crate::transforms::rules::*;
use crate::{Array, Dtype, Result, ops};

/// The transform `op` of `x`, cast to the dtype the kind reads.
fn transform(op: FftOp, x: &Array) -> Result<Array> {
    let x = match op.kind {
        FftKind::RealForward if x.dtype() == Dtype::Float64 => x.clone(),
        FftKind::RealForward => ops::astype(x, Dtype::Float32)?,
        _ => ops::astype(x, Dtype::Complex64)?,
    };
    let out = op.output(x.shape());
    Array::from_primitive(Primitive::Fft(op), vec![x], out.shape, out.dtype)
}

/// The weights of the `n/2 + 1` bins of a half spectrum along `axis` of an array of `ndim`
/// dimensions: `edge` for the zero frequency and (even `n`) the Nyquist one, `middle` for the
/// others.
fn half_spectrum_weights(
    n: usize,
    axis: usize,
    ndim: usize,
    edge: f32,
    middle: f32,
) -> Result<Array> {
    let len = n / 2 + 1;
    let w: Vec<f32> = (0..len)
        .map(|k| {
            if k == 0 || (n.is_multiple_of(2) && k == n / 2) {
                edge
            } else {
                middle
            }
        })
        .collect();
    let mut shape = vec![1; ndim];
    shape[axis] = len;
    Array::from_slice(&w, &shape)
}

impl FftOp {
    fn with_kind(&self, kind: FftKind) -> FftOp {
        FftOp {
            kind,
            ..self.clone()
        }
    }

    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        _outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let (x, g) = (&inputs[0], &cotangents[0]);
        let d = match self.kind {
            FftKind::Forward => transform(self.with_kind(FftKind::Inverse), g)?,
            FftKind::Inverse => transform(self.with_kind(FftKind::Forward), g)?,
            FftKind::RealForward => {
                let w = half_spectrum_weights(self.n, self.axis, x.ndim(), 1.0, 0.5)?;
                let g = ops::multiply(&ops::astype(g, Dtype::Complex64)?, &w)?;
                transform(self.with_kind(FftKind::RealInverse), &g)?
            }
            FftKind::RealInverse => {
                let w = half_spectrum_weights(self.n, self.axis, x.ndim(), 1.0, 2.0)?;
                let g = ops::astype(g, Dtype::Float32)?;
                ops::multiply(&transform(self.with_kind(FftKind::RealForward), &g)?, &w)?
            }
        };
        let d = ops::astype(&d, x.dtype())?;
        Ok(argnums.iter().map(|_| d.clone()).collect())
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        _outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let t = tangent_or_zeros(inputs, tangents, 0)?;
        Ok(vec![transform(self.clone(), &t)?])
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        _outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        let x = to_front(&inputs[0], axes[0])?;
        let op = FftOp {
            axis: self.axis + 1,
            ..self.clone()
        };
        Ok((vec![transform(op, &x)?], vec![Some(0)]))
    }
}
