//! The Fourier transform on the GPU through cuFFT, with its plans cached.
//!
//! Every lane along the axis is transformed at once by one batched plan. A lane's values
//! are `inner` elements apart (the product of the dimensions after the axis): when nothing
//! precedes the axis, or nothing follows it, the plan reads the input where it is (a
//! row-major copy first if it is not row-major); otherwise the axis is moved last by one copy
//! kernel and the output is returned as the view that moves it back. The scale is applied by
//! a small kernel after the transform.
//!
//! The kinds and precisions are the CPU's (`umx-cpu/src/kernels/fft.rs`): complex64 in
//! single precision; a float64 real signal is transformed in double precision (D2Z) and its
//! spectrum rounded to complex64. cuFFT's complex-to-real transform overwrites its input, so
//! that one always works on a copy. Nothing here runs while a CUDA graph is captured (plans
//! allocate their work areas when made).

use super::source;
use crate::compile::{function_for, launch};
use crate::gpu::gpu;
use crate::storage::{fresh, input_ptr, output};
use cudarc::cufft::sys as fft;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use umx_core::device::OutSpec;
use umx_core::primitives::{FftKind, FftOp};
use umx_core::shape::{numel, row_major_strides};
use umx_core::{ArrayData, Dtype, Error, Result};

/// Plans kept at most; past this the cache starts over.
const MAX_PLANS: usize = 64;

/// What a plan depends on: the transform type, length, layout and batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PlanKey {
    kind: fft::cufftType,
    n: i64,
    stride: i64,
    in_dist: i64,
    out_dist: i64,
    batch: i64,
}

struct Plans(HashMap<PlanKey, fft::cufftHandle>);

fn plans() -> Result<&'static Mutex<Plans>> {
    static PLANS: OnceLock<Result<Mutex<Plans>>> = OnceLock::new();
    PLANS
        .get_or_init(|| {
            gpu()?;
            // SAFETY: only checks for the library (cudarc panics when it is missing).
            if !unsafe { fft::is_culib_present() } {
                return Err(Error::Device("gpu: cuFFT (libcufft) was not found".into()));
            }
            Ok(Mutex::new(Plans(HashMap::new())))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn ok(what: &str, r: fft::cufftResult) -> Result<()> {
    if r == fft::cufftResult::CUFFT_SUCCESS {
        Ok(())
    } else {
        Err(Error::Device(format!("cufft: {what}: {r:?}")))
    }
}

impl Plans {
    /// The plan for `key`, made (on the stream) if it is new.
    fn get(&mut self, key: PlanKey, in_len: i64, out_len: i64) -> Result<fft::cufftHandle> {
        let plan = self.get_or_make(key, in_len, out_len)?;
        // The transform queues on the stream of the node being evaluated.
        // SAFETY: a live plan and stream; the plans' lock is held.
        ok("setting the stream", unsafe {
            fft::cufftSetStream(plan, gpu()?.stream() as fft::cudaStream_t)
        })?;
        Ok(plan)
    }

    fn get_or_make(&mut self, key: PlanKey, in_len: i64, out_len: i64) -> Result<fft::cufftHandle> {
        if let Some(&p) = self.0.get(&key) {
            return Ok(p);
        }
        if self.0.len() >= MAX_PLANS {
            gpu()?.synchronize()?;
            for (_, p) in self.0.drain() {
                // SAFETY: the stream is idle, so no queued transform uses the plan.
                unsafe { fft::cufftDestroy(p) };
            }
        }
        let mut plan: fft::cufftHandle = 0;
        let (mut n, mut inembed, mut onembed) = ([key.n], [in_len], [out_len]);
        let mut work = 0usize;
        // SAFETY: out-parameters and one-element arrays for a rank-1 plan; the stream is live.
        unsafe {
            ok("cufftCreate", fft::cufftCreate(&mut plan))?;
            let made = fft::cufftMakePlanMany64(
                plan,
                1,
                n.as_mut_ptr(),
                inembed.as_mut_ptr(),
                key.stride,
                key.in_dist,
                onembed.as_mut_ptr(),
                key.stride,
                key.out_dist,
                key.kind,
                key.batch,
                &mut work,
            );
            if let Err(e) = ok("making a plan", made) {
                fft::cufftDestroy(plan);
                return Err(e);
            }
        }
        self.0.insert(key, plan);
        Ok(plan)
    }
}

pub fn eval(
    op: &FftOp,
    inputs: &[ArrayData],
    outputs: &[OutSpec],
) -> Result<Option<Vec<ArrayData>>> {
    let ([x], [out]) = (inputs, outputs) else {
        return Err(Error::Device(format!(
            "{}: {} inputs and {} outputs, not 1 and 1",
            op.name(),
            inputs.len(),
            outputs.len()
        )));
    };
    if crate::graph::capturing() || numel(&x.shape) == 0 || numel(&out.shape) == 0 {
        return Ok(None);
    }
    let ax = op.axis;
    if ax >= x.shape.len() || x.shape[ax] != op.input_len() {
        return Ok(None);
    }
    let kind = match (op.kind, x.dtype) {
        (FftKind::Forward | FftKind::Inverse, Dtype::Complex64) => fft::cufftType::CUFFT_C2C,
        (FftKind::RealForward, Dtype::Float32) => fft::cufftType::CUFFT_R2C,
        (FftKind::RealForward, Dtype::Float64) => fft::cufftType::CUFFT_D2Z,
        (FftKind::RealInverse, Dtype::Complex64) => fft::cufftType::CUFFT_C2R,
        _ => return Ok(None),
    };
    let (in_len, out_len) = (op.input_len(), op.output_len());
    let outer = numel(&x.shape[..ax]);
    let inner = numel(&x.shape[ax + 1..]);
    // The input as lanes: row-major, with the axis last unless nothing precedes it.
    let moved = outer > 1 && inner > 1;
    let src = if moved {
        let nd = x.shape.len();
        let mut order: Vec<usize> = (0..nd).filter(|&d| d != ax).collect();
        order.push(ax);
        let view = ArrayData {
            shape: order.iter().map(|&d| x.shape[d]).collect(),
            strides: order.iter().map(|&d| x.strides[d]).collect(),
            ..x.clone()
        };
        copy(&view)?
    } else if x.is_row_contiguous() && kind != fft::cufftType::CUFFT_C2R {
        x.clone()
    } else {
        copy(x)?
    };
    let (stride, lanes) = if moved || inner == 1 {
        (1, outer * inner)
    } else {
        (inner, inner)
    };
    let (in_dist, out_dist) = if stride == 1 {
        (in_len, out_len)
    } else {
        (1, 1)
    };
    // The output, in the lanes' order.
    let lanes_shape: Vec<usize> = if moved {
        let mut s: Vec<usize> = (0..x.shape.len())
            .filter(|&d| d != ax)
            .map(|d| x.shape[d])
            .collect();
        s.push(out_len);
        s
    } else {
        out.shape.clone()
    };
    let (y, yp) = fresh(&lanes_shape, out.dtype)?;
    let total = numel(&lanes_shape);
    // A double-precision spectrum (16-byte values) is written apart and rounded into `y`.
    let wide = match kind {
        fft::cufftType::CUFFT_D2Z => Some(output(total * 16)?),
        _ => None,
    };
    let ip = input_ptr(&src)?;
    {
        let lock = plans()?;
        let mut plans = lock.lock().unwrap_or_else(|e| e.into_inner());
        let key = PlanKey {
            kind,
            n: op.n as i64,
            stride: stride as i64,
            in_dist: in_dist as i64,
            out_dist: out_dist as i64,
            batch: lanes as i64,
        };
        let plan = plans.get(key, in_len as i64, out_len as i64)?;
        // SAFETY: the plan was made for these lanes; `src` holds them (and is a copy where
        // the transform writes over its input); the output holds the transformed lanes.
        let r = unsafe {
            match kind {
                fft::cufftType::CUFFT_C2C => fft::cufftExecC2C(
                    plan,
                    ip as *mut fft::cufftComplex,
                    yp as *mut fft::cufftComplex,
                    if op.kind == FftKind::Forward { -1 } else { 1 },
                ),
                fft::cufftType::CUFFT_R2C => {
                    fft::cufftExecR2C(plan, ip as *mut f32, yp as *mut fft::cufftComplex)
                }
                fft::cufftType::CUFFT_C2R => {
                    fft::cufftExecC2R(plan, ip as *mut fft::cufftComplex, yp as *mut f32)
                }
                _ => {
                    let wp = wide.as_ref().map_or(0, |w| w.1);
                    fft::cufftExecD2Z(plan, ip as *mut f64, wp as *mut fft::cufftDoubleComplex)
                }
            }
        };
        ok(op.name(), r)?;
    }
    // Scale (and round a double-precision spectrum).
    let floats = if out.dtype == Dtype::Complex64 {
        total * 2
    } else {
        total
    };
    if let Some((_w, wp)) = &wide {
        scale("umx_fft_narrow", *wp, yp, floats, op.scale)?;
    } else if op.scale != 1.0 {
        scale("umx_fft_scale", yp, yp, floats, op.scale)?;
    }
    drop(src);
    if !moved {
        return Ok(Some(vec![y]));
    }
    // Back to the output's axis order: a view of the lanes.
    let lane_strides = row_major_strides(&lanes_shape);
    let mut strides = Vec::with_capacity(out.shape.len());
    let mut k = 0;
    for d in 0..out.shape.len() {
        if d == ax {
            strides.push(1);
        } else {
            strides.push(lane_strides[k]);
            k += 1;
        }
    }
    Ok(Some(vec![ArrayData {
        buffer: Arc::clone(&y.buffer),
        shape: out.shape.clone(),
        dtype: out.dtype,
        strides,
        offset: 0,
    }]))
}

/// `y[e] = x[e] * s` over `floats` values: in place for float32 (`x == y`), or from
/// double-precision values rounded to float32 (`umx_fft_narrow`).
fn scale(name: &str, x: u64, y: u64, floats: usize, s: f64) -> Result<()> {
    let f = function_for(
        &format!("fft|{name}"),
        || {
            format!(
                r#"{}
extern "C" __global__ void umx_fft_scale(const float* x, float* y, long long n, double s) {{
  float sf = (float)s;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
       e += (long long)gridDim.x * blockDim.x) y[e] = x[e] * sf;
}}
extern "C" __global__ void umx_fft_narrow(const double* x, float* y, long long n, double s) {{
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
       e += (long long)gridDim.x * blockDim.x) y[e] = (float)(x[e] * s);
}}
"#,
                source::HEADER
            )
        },
        name,
    )?;
    let g = gpu()?;
    let mut args = source::Args::default();
    args.push(x).push(y).push(floats as i64).push(s);
    launch(
        f,
        source::grid_for(floats, 256, g.sm_count),
        256,
        0,
        &mut args.pointers(),
    )
}

/// A row-major copy of `x`.
fn copy(x: &ArrayData) -> Result<ArrayData> {
    super::contiguous(x, x.dtype)?
        .ok_or_else(|| Error::Device(format!("fft: no copy kernel for {}", x.dtype)))
}
