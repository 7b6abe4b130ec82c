//! CPU kernels of the Fourier transform: rustfft for complex transforms, realfft for the real
//! ones, with their plans cached (one planner per kind and precision, behind a lock held only
//! while a plan is fetched).
//!
//! The input is made contiguous; every lane along the axis is copied into a buffer,
//! transformed and scaled, and written to the contiguous output. The blocks before the axis
//! run in parallel (each block's lanes write one contiguous stretch of the output).

use crate::strided::{PARALLEL_THRESHOLD, alloc, contiguous};
use rayon::prelude::*;
use realfft::RealFftPlanner;
use rustfft::num_traits::Zero;
use rustfft::{FftNum, FftPlanner};
use std::sync::{Arc, LazyLock, Mutex};
use umx_core::device::OutSpec;
use umx_core::primitives::{FftKind, FftOp};
use umx_core::shape::numel;
use umx_core::{ArrayData, Complex32, Dtype, Element, Error, Result};

static COMPLEX32: LazyLock<Mutex<FftPlanner<f32>>> =
    LazyLock::new(|| Mutex::new(FftPlanner::new()));
static REAL32: LazyLock<Mutex<RealFftPlanner<f32>>> =
    LazyLock::new(|| Mutex::new(RealFftPlanner::new()));
static REAL64: LazyLock<Mutex<RealFftPlanner<f64>>> =
    LazyLock::new(|| Mutex::new(RealFftPlanner::new()));

fn planner<P>(p: &Mutex<P>) -> std::sync::MutexGuard<'_, P> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn eval(op: &FftOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let (Some(x), Some(out)) = (inputs.into_iter().next(), outputs.first()) else {
        return Err(Error::Device(format!(
            "cpu: {op:?} expects one input and one output"
        )));
    };
    let x = contiguous(x)?;
    let expect = |d: Dtype| -> Result<()> {
        if x.dtype != d || x.shape[op.axis] != op.input_len() {
            return Err(Error::Device(format!(
                "{}: the cpu kernel got {} {:?}, expected {d} with {} values along axis {}",
                op.name(),
                x.dtype,
                x.shape,
                op.input_len(),
                op.axis
            )));
        }
        Ok(())
    };
    let lanes = Lanes::new(&x.shape, op.axis, out);
    let buffer = match op.kind {
        FftKind::Forward | FftKind::Inverse => {
            expect(Dtype::Complex64)?;
            let plan = {
                let mut p = planner(&COMPLEX32);
                if op.kind == FftKind::Forward {
                    p.plan_fft_forward(op.n)
                } else {
                    p.plan_fft_inverse(op.n)
                }
            };
            let scale = op.scale as f32;
            let scratch_len = plan.get_inplace_scratch_len();
            lanes.run::<Complex32, Complex32>(&x, |input, output| {
                let mut scratch = vec![Complex32::zero(); scratch_len];
                output.copy_from_slice(input);
                plan.process_with_scratch(output, &mut scratch);
                scale_all(output, scale);
            })?
        }
        FftKind::RealForward if x.dtype == Dtype::Float64 => {
            expect(Dtype::Float64)?;
            let plan = planner(&REAL64).plan_fft_forward(op.n);
            real_forward::<f64>(&lanes, &x, plan, op.scale)?
        }
        FftKind::RealForward => {
            expect(Dtype::Float32)?;
            let plan = planner(&REAL32).plan_fft_forward(op.n);
            real_forward::<f32>(&lanes, &x, plan, op.scale)?
        }
        FftKind::RealInverse => {
            expect(Dtype::Complex64)?;
            let plan = planner(&REAL32).plan_fft_inverse(op.n);
            let scale = op.scale as f32;
            let even = op.n.is_multiple_of(2);
            lanes.run::<Complex32, f32>(&x, |input, output| {
                let mut spectrum = input.to_vec();
                let mut scratch = plan.make_scratch_vec();
                // NumPy ignores the imaginary parts of the zero and Nyquist frequencies.
                spectrum[0].im = 0.0;
                if even {
                    let last = spectrum.len() - 1;
                    spectrum[last].im = 0.0;
                }
                // The lengths fit the plan and the imaginary parts were cleared: nothing is
                // left for it to refuse.
                let _ = plan.process_with_scratch(&mut spectrum, output, &mut scratch);
                for v in output.iter_mut() {
                    *v *= scale;
                }
            })?
        }
    };
    Ok(vec![ArrayData::contiguous(buffer, &out.shape, out.dtype)])
}

/// `rfft` in precision `F` (float32 or float64 input), rounded to complex64.
fn real_forward<F: FftNum + Element>(
    lanes: &Lanes,
    x: &ArrayData,
    plan: Arc<dyn realfft::RealToComplex<F>>,
    scale: f64,
) -> Result<umx_core::Buffer> {
    let scale = <F as Element>::from_f64(scale);
    lanes.run::<F, Complex32>(x, |input, output| {
        let mut signal = input.to_vec();
        let mut spectrum = plan.make_output_vec();
        let mut scratch = plan.make_scratch_vec();
        // The lengths fit the plan.
        let _ = plan.process_with_scratch(&mut signal, &mut spectrum, &mut scratch);
        for (o, z) in output.iter_mut().zip(&spectrum) {
            *o = Complex32::new(
                Element::to_f64(z.re * scale) as f32,
                Element::to_f64(z.im * scale) as f32,
            );
        }
    })
}

fn scale_all(v: &mut [Complex32], scale: f32) {
    if scale != 1.0 {
        for z in v.iter_mut() {
            *z *= scale;
        }
    }
}

/// The lanes of a transform along one axis of a contiguous array: `outer` blocks of `inner`
/// interleaved lanes.
struct Lanes {
    outer: usize,
    inner: usize,
    in_len: usize,
    out_len: usize,
    out_size: usize,
}

impl Lanes {
    fn new(shape: &[usize], axis: usize, out: &OutSpec) -> Lanes {
        Lanes {
            outer: numel(&shape[..axis]),
            inner: numel(&shape[axis + 1..]),
            in_len: shape[axis],
            out_len: out.shape[axis],
            out_size: numel(&out.shape),
        }
    }

    /// `f(lane in, lane out)` for every lane, writing a new buffer of `O`.
    fn run<I: Element, O: Element>(
        &self,
        x: &ArrayData,
        f: impl Fn(&[I], &mut [O]) + Sync + Send,
    ) -> Result<umx_core::Buffer> {
        let mut buf = alloc::<O>(self.out_size)?;
        if self.out_size == 0 {
            return Ok(buf);
        }
        let input = &x.buffer.as_slice::<I>()[x.offset as usize..];
        let (inner, in_len, out_len) = (self.inner, self.in_len, self.out_len);
        let block = |(o, chunk): (usize, &mut [O])| {
            let mut lane_in = vec![I::default(); in_len];
            let mut lane_out = vec![O::default(); out_len];
            for i in 0..inner {
                let base = o * in_len * inner + i;
                for (t, v) in lane_in.iter_mut().enumerate() {
                    *v = input[base + t * inner];
                }
                f(&lane_in, &mut lane_out);
                for (t, v) in lane_out.iter().enumerate() {
                    chunk[i + t * inner] = *v;
                }
            }
        };
        let out = buf.as_mut_slice::<O>();
        if self.outer > 1 && self.out_size >= PARALLEL_THRESHOLD {
            out.par_chunks_mut(out_len * inner)
                .enumerate()
                .for_each(block);
        } else {
            out.chunks_mut(out_len * inner).enumerate().for_each(block);
        }
        Ok(buf)
    }
}
