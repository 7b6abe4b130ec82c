//! CPU kernels of the matmul primitives. Every product is a call of the `gemm` crate (packed,
//! AVX-512/AVX2 micro-kernels), never a naive loop.
//!
//! - float32, float64, complex64 and float16 go to `gemm` directly (float16 accumulates in
//!   float32 inside it); bfloat16 and any input whose dtype differs from the output's are
//!   converted first (bfloat16 computes in float32 and rounds once at the end).
//! - Operands are passed with their own row and column strides, so transposed and sliced 2-D
//!   views cost no copy; only a matrix with no unit stride in either direction is copied.
//! - Batch dims broadcast through stride-0 offsets. Small matrices run in parallel over the
//!   batch; big ones run one after another, each parallelised inside `gemm`.

use crate::strided::alloc;
use rayon::prelude::*;
use std::sync::Arc;
use umx_core::device::OutSpec;
use umx_core::primitives::MatmulOp;
use umx_core::primitives::matmul::matrix_dims;
use umx_core::shape::{broadcast_shapes, broadcast_strides, numel, row_major_strides};
use umx_core::{
    ArrayData, Buffer, Complex32, Dtype, Element, Error, Result, bf16, dispatch_dtype, f16,
};

/// Below this many multiply-adds per matrix, a batch runs in parallel over its matrices rather
/// than inside each product (`gemm` keeps small products on one thread anyway).
const BATCH_PARALLEL_WORK: usize = 1 << 21;

/// The smallest depth block `gemm` uses (its `kernel_params` clamps `kc` to at least 512).
const GEMM_MIN_KC: usize = 512;

/// Rounds a float32 result to a half-precision type, once.
fn narrow<H: Element>(wide: &Buffer, round: fn(f32) -> H) -> Result<Buffer> {
    let wide = wide.as_slice::<f32>();
    let mut out = alloc::<H>(wide.len())?;
    for (d, &s) in out.as_mut_slice::<H>().iter_mut().zip(wide) {
        *d = round(s);
    }
    Ok(out)
}

/// Element types `gemm` multiplies natively.
trait GemmElement: Element {}
impl GemmElement for f32 {}
impl GemmElement for f64 {}
impl GemmElement for f16 {}
impl GemmElement for Complex32 {}

pub fn eval(op: &MatmulOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let Some(out) = outputs.first() else {
        return Err(Error::Device(format!("cpu: {op:?} expects one output")));
    };
    let (c, a, b, alpha, beta) = match (op, &inputs[..]) {
        (MatmulOp::Matmul, [a, b]) => (None, a, b, 1.0, 0.0),
        (MatmulOp::AddMm { alpha, beta }, [c, a, b]) => (Some(c), a, b, *alpha, *beta),
        _ => {
            return Err(Error::Device(format!(
                "cpu: {op:?} got {} inputs",
                inputs.len()
            )));
        }
    };
    let product = Product {
        a,
        b,
        c,
        alpha,
        beta,
        out_shape: &out.shape,
    };
    let k = matrix_dims(&a.shape, true).cols;
    let buffer = match out.dtype {
        Dtype::Float32 => product.run::<f32>()?,
        Dtype::Float64 => product.run::<f64>()?,
        Dtype::Complex64 => product.run::<Complex32>()?,
        // gemm's float16 path accumulates in float32 but rounds the output to float16 after
        // each block of `kc >= 512` depths: below that it rounds once, as MLX does.
        Dtype::Float16 if k <= GEMM_MIN_KC => product.run::<f16>()?,
        Dtype::Float16 => narrow(&product.run::<f32>()?, f16::from_f32)?,
        Dtype::Bfloat16 => narrow(&product.run::<f32>()?, bf16::from_f32)?,
        other => {
            return Err(Error::Device(format!(
                "matmul: the cpu has no kernel for {other} products"
            )));
        }
    };
    Ok(vec![ArrayData::contiguous(buffer, &out.shape, out.dtype)])
}

/// One (batched) product `alpha * a @ b + beta * c` to compute.
struct Product<'a> {
    a: &'a ArrayData,
    b: &'a ArrayData,
    c: Option<&'a ArrayData>,
    alpha: f64,
    beta: f64,
    out_shape: &'a [usize],
}

/// An operand ready for `gemm`: elements of the compute type, batch strides broadcast to the
/// output's batch dims, and the strides of its matrices.
struct Operand {
    buffer: Arc<Buffer>,
    offset: isize,
    batch_strides: Vec<isize>,
    rs: isize,
    cs: isize,
}

impl Operand {
    fn new<C: Element>(data: &ArrayData, left: bool, out_batch: &[usize]) -> Result<Operand> {
        let dims = matrix_dims(&data.shape, left);
        let nd = data.shape.len();
        let (rs, cs) = matrix_strides(&data.strides);
        // gemm reads any strides, but is fast only with a unit stride in one direction, and
        // flipped views are copied rather than trusted to every packing routine.
        let fast = (dims.rows <= 1 || dims.cols <= 1 || rs == 1 || cs == 1) && rs >= 0 && cs >= 0;
        let (buffer, strides, offset) = if data.dtype == C::DTYPE && fast {
            (data.buffer.clone(), data.strides.clone(), data.offset)
        } else {
            let buf = converted::<C>(data)?;
            (Arc::new(buf), row_major_strides(&data.shape), 0)
        };
        let (rs, cs) = matrix_strides(&strides);
        let nb = nd.saturating_sub(2);
        let batch_strides = broadcast_strides(&dims.batch, &strides[..nb], out_batch);
        Ok(Operand {
            buffer,
            offset,
            batch_strides,
            rs,
            cs,
        })
    }

    /// Offset of the matrix at batch index `b` (row-major over the output's batch dims).
    fn offset_of(&self, mut b: usize, out_batch: &[usize]) -> isize {
        let mut off = self.offset;
        for (&d, &s) in out_batch.iter().zip(&self.batch_strides).rev() {
            off += (b % d) as isize * s;
            b /= d;
        }
        off
    }
}

/// Row and column strides of an operand's matrices (1-D: a row on the left, a column on the
/// right; the stride of the added unit dim never matters).
fn matrix_strides(strides: &[isize]) -> (isize, isize) {
    match strides.len() {
        0 => (1, 1),
        1 => (strides[0], strides[0]),
        n => (strides[n - 2], strides[n - 1]),
    }
}

/// The elements of `data` in row-major order, converted to `C`.
fn converted<C: Element>(data: &ArrayData) -> Result<Buffer> {
    let mut buf = alloc::<C>(data.size())?;
    let dst = buf.as_mut_slice::<C>();
    dispatch_dtype!(data.dtype, S => {
        let src = data.buffer.as_slice::<S>();
        let mut k = 0;
        data.for_each_index(|i| {
            dst[k] = src[i].cast::<C>();
            k += 1;
        });
    });
    Ok(buf)
}

impl Product<'_> {
    /// Computes the product in `C`, as a contiguous buffer of the output's shape.
    fn run<C: GemmElement>(&self) -> Result<Buffer> {
        let (ma, mb) = (
            matrix_dims(&self.a.shape, true),
            matrix_dims(&self.b.shape, false),
        );
        let (m, k, n) = (ma.rows, ma.cols, mb.cols);
        let out_batch = broadcast_shapes("matmul", &ma.batch, &mb.batch)?;
        let nbatch = numel(&out_batch);
        let total = nbatch * m * n;
        let mut out = alloc::<C>(total)?;
        if total == 0 {
            return Ok(out);
        }
        let read_dst = self.c.is_some() && self.beta != 0.0;
        if let (Some(c), true) = (self.c, read_dst) {
            fill_broadcast(out.as_mut_slice::<C>(), c, self.out_shape);
        }
        let a = Operand::new::<C>(self.a, true, &out_batch)?;
        let b = Operand::new::<C>(self.b, false, &out_batch)?;
        let (a_all, b_all) = (a.buffer.as_slice::<C>(), b.buffer.as_slice::<C>());
        let (alpha, beta) = (C::from_f64(self.alpha), C::from_f64(self.beta));
        let one = |bi: usize, dst: &mut [C], parallelism: gemm::Parallelism| {
            let pa = a_all.as_ptr().wrapping_offset(a.offset_of(bi, &out_batch));
            let pb = b_all.as_ptr().wrapping_offset(b.offset_of(bi, &out_batch));
            // SAFETY: `dst` holds exactly m * n elements, written row-major (row stride n,
            // column stride 1). `pa`/`pb` with their strides address the elements of one
            // matrix of a valid view of a live buffer (an ArrayData's view stays inside its
            // buffer, and converted operands are contiguous copies), and `gemm` reads only
            // those (none at all when k == 0). `dst` is read only when `read_dst`, after
            // `fill_broadcast` wrote every element.
            unsafe {
                gemm::gemm::<C>(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    read_dst,
                    pa,
                    a.cs,
                    a.rs,
                    pb,
                    b.cs,
                    b.rs,
                    beta,
                    alpha,
                    false,
                    false,
                    false,
                    parallelism,
                )
            }
        };
        let dst = out.as_mut_slice::<C>();
        let work = m * n * k.max(1);
        if nbatch > 1 && work < BATCH_PARALLEL_WORK && nbatch * work >= 1 << 16 {
            dst.par_chunks_mut(m * n)
                .enumerate()
                .for_each(|(bi, d)| one(bi, d, gemm::Parallelism::None));
        } else {
            for (bi, d) in dst.chunks_mut(m * n).enumerate() {
                one(bi, d, gemm::Parallelism::Rayon(0));
            }
        }
        Ok(out)
    }
}

/// Writes `c`, broadcast to `shape` and converted to `C`, into the contiguous `dst`.
fn fill_broadcast<C: Element>(dst: &mut [C], c: &ArrayData, shape: &[usize]) {
    let view = ArrayData {
        buffer: c.buffer.clone(),
        shape: shape.to_vec(),
        dtype: c.dtype,
        strides: broadcast_strides(&c.shape, &c.strides, shape),
        offset: c.offset,
    };
    dispatch_dtype!(c.dtype, S => {
        let src = view.buffer.as_slice::<S>();
        let mut k = 0;
        view.for_each_index(|i| {
            dst[k] = src[i].cast::<C>();
            k += 1;
        });
    });
}
