//! The discrete Fourier transform along one axis: the primitive of `umx::fft`, its shapes and
//! dtypes, and the one definition every backend computes. The n-dimensional transforms, the
//! cropping and zero-padding of NumPy's `n`/`s`, and the shifts and frequencies are ops built
//! on it (`ops/fft.rs`).
//!
//! With `n` the transform's length and `w = exp(-2πi/n)`, along `axis`:
//! - [`FftKind::Forward`]: `y[k] = scale · Σ_t x[t] w^(kt)`, complex64 → complex64, `n` → `n`.
//! - [`FftKind::Inverse`]: `y[t] = scale · Σ_k x[k] w^(-kt)`, complex64 → complex64.
//! - [`FftKind::RealForward`]: the first `n/2 + 1` values of the forward transform of a real
//!   signal, float32 or float64 (computed in float64) → complex64.
//! - [`FftKind::RealInverse`]: the real signal of length `n` whose forward transform has the
//!   `n/2 + 1` values given (the rest follow by Hermitian symmetry; the imaginary parts of the
//!   zero frequency and, for even `n`, of the Nyquist frequency are ignored, as NumPy does),
//!   times `scale`: complex64 → float32.
//!
//! The input's length along `axis` is exactly what the kind reads (`n`, or `n/2 + 1` for
//! [`FftKind::RealInverse`]): the ops crop or pad first. Unnormalised transforms have
//! `scale = 1`; NumPy's norm modes are scales the ops choose.

mod transforms;

use crate::Dtype;
use crate::device::OutSpec;

/// Which transform [`FftOp`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FftKind {
    /// Complex to complex, `exp(-2πi kt/n)`.
    Forward,
    /// Complex to complex, `exp(+2πi kt/n)`, unnormalised.
    Inverse,
    /// Real to the non-negative half of the spectrum.
    RealForward,
    /// The non-negative half of a Hermitian spectrum to real, unnormalised.
    RealInverse,
}

/// A 1-D discrete Fourier transform of every lane along `axis` (see the module's docs).
#[derive(Clone, Debug, PartialEq)]
pub struct FftOp {
    pub axis: usize,
    pub kind: FftKind,
    /// The transform's length: of the complex signal, or of the real one for the real kinds.
    pub n: usize,
    /// What the sums are multiplied by.
    pub scale: f64,
}

impl FftOp {
    /// The op's name, for messages.
    pub fn name(&self) -> &'static str {
        match self.kind {
            FftKind::Forward => "fft",
            FftKind::Inverse => "ifft",
            FftKind::RealForward => "rfft",
            FftKind::RealInverse => "irfft",
        }
    }

    /// How many values along the axis the input must have.
    pub fn input_len(&self) -> usize {
        match self.kind {
            FftKind::RealInverse => self.n / 2 + 1,
            _ => self.n,
        }
    }

    /// How many values along the axis the output has.
    pub fn output_len(&self) -> usize {
        match self.kind {
            FftKind::RealForward => self.n / 2 + 1,
            _ => self.n,
        }
    }

    /// The output's shape and dtype for an input of this shape.
    pub fn output(&self, shape: &[usize]) -> OutSpec {
        let mut shape = shape.to_vec();
        shape[self.axis] = self.output_len();
        let dtype = match self.kind {
            FftKind::RealInverse => Dtype::Float32,
            _ => Dtype::Complex64,
        };
        OutSpec { shape, dtype }
    }
}
