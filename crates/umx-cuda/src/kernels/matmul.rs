//! Matrix products through cuBLASLt: float32 (full precision unless [`set_tf32`] allows
//! TensorFloat-32), float16, bfloat16 (accumulating in float32) and float64; batched, with
//! broadcast batches as zero batch strides.
//!
//! umx arrays are row-major and cuBLASLt is column-major, so `C = A @ B` is computed as
//! `Cᵀ = Bᵀ Aᵀ`: a row-major matrix is its transpose in column-major order, for free. An
//! operand that is transposed (its columns contiguous) is passed with a transpose flag; any
//! other layout is copied to contiguous first. Integer products are still on the
//! fallback.

use super::contiguous;
use crate::gpu::gpu;
use crate::storage::{input_ptr, output};
use cudarc::cublaslt::{result as lt, sys as ltsys};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use umx_core::device::OutSpec;
use umx_core::primitives::MatmulOp;
use umx_core::primitives::matmul::matrix_dims;
use umx_core::shape::{broadcast_strides, row_major_strides};
use umx_core::{ArrayData, Buffer, Dtype, Error, Result};

static TF32: AtomicBool = AtomicBool::new(false);

/// Lets float32 matrix products use TensorFloat-32 (about 8x faster on an H100, with 10-bit
/// mantissas in the products). Off by default, so float32 means float32. Returns the previous
/// setting.
pub fn set_tf32(allow: bool) -> bool {
    TF32.swap(allow, Ordering::Relaxed)
}

const WORKSPACE: usize = 32 << 20;

struct Blas {
    handle: ltsys::cublasLtHandle_t,
    /// Kept alive for as long as the handle: cuBLASLt's scratch memory.
    _workspace: Buffer,
    workspace_ptr: u64,
}

// SAFETY: the handle is used under the mutex below, one call at a time.
unsafe impl Send for Blas {}

fn blas() -> Result<&'static Mutex<Blas>> {
    static BLAS: OnceLock<Result<Mutex<Blas>>> = OnceLock::new();
    BLAS.get_or_init(|| {
        gpu()?;
        // SAFETY: only checks for the library (cudarc panics when it is missing).
        if !unsafe { ltsys::is_culib_present() } {
            return Err(Error::Device(
                "gpu: cuBLASLt (libcublasLt) was not found".into(),
            ));
        }
        let handle = lt::create_handle().map_err(|e| blas_err("creating a handle", e))?;
        let (workspace, workspace_ptr) = output(WORKSPACE)?;
        Ok(Mutex::new(Blas {
            handle,
            _workspace: workspace,
            workspace_ptr,
        }))
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn blas_err(what: &str, e: cudarc::cublaslt::result::CublasError) -> Error {
    Error::Device(format!("cublasLt: {what}: {:?}", e.0))
}

/// One operand as cuBLASLt reads it: column-major `rows x cols` with leading dimension `ld`,
/// transposed or not, `count` matrices `batch_stride` elements apart.
struct Operand {
    ptr: u64,
    trans: bool,
    rows: u64,
    cols: u64,
    ld: i64,
    batch_stride: i64,
}

/// The column-major view of row-major `m x n` matrices with strides `(sr, sc)`: `n x m` with
/// leading dimension `sr` when rows are contiguous, or (as a transposed operand) `m x n` with
/// leading dimension `sc` when columns are.
fn layout(m: usize, n: usize, sr: isize, sc: isize) -> Option<(bool, u64, u64, i64)> {
    let (m64, n64) = (m as u64, n as u64);
    if (sc == 1 || n == 1) && (m == 1 || sr >= n as isize) {
        Some((
            false,
            n64,
            m64,
            (if m == 1 { n as isize } else { sr }).max(1) as i64,
        ))
    } else if (sr == 1 || m == 1) && (n == 1 || sc >= m as isize) {
        Some((
            true,
            m64,
            n64,
            (if n == 1 { m as isize } else { sc }).max(1) as i64,
        ))
    } else {
        None
    }
}

/// The batch stride of an operand broadcast over `batch`, when its batch axes collapse into
/// one stride.
fn batch_stride(batch: &[usize], strides: &[isize]) -> Option<isize> {
    let mut stride: Option<isize> = None;
    let mut span = 1isize; // batches spanned by the axes after this one
    for (&n, &s) in batch.iter().zip(strides).rev() {
        if n != 1 {
            match stride {
                None => stride = Some(s / span.max(1)).filter(|&b| b * span == s),
                Some(b) if b * span == s => {}
                Some(_) => return None,
            }
            stride?;
        }
        span *= n as isize;
    }
    Some(stride.unwrap_or(0))
}

fn operand(
    x: &ArrayData,
    left: bool,
    batch: &[usize],
    dtype: Dtype,
) -> Result<Option<(Operand, Option<ArrayData>)>> {
    let dims = matrix_dims(&x.shape, left);
    let (m, n) = (dims.rows, dims.cols);
    // The operand as (batch..., m, n), broadcast to the output's batch.
    let mut full_shape = dims.batch.clone();
    full_shape.extend([m, n]);
    let (sr, sc) = match x.shape.len() {
        0 => (1, 1),
        1 if left => (0, x.strides[0]),
        1 => (x.strides[0], 0),
        d => (x.strides[d - 2], x.strides[d - 1]),
    };
    let mut own_strides: Vec<isize> = x.strides[..dims.batch.len()].to_vec();
    own_strides.extend([sr, sc]);
    let mut target = batch.to_vec();
    target.extend([m, n]);
    let st = broadcast_strides(&full_shape, &own_strides, &target);
    let view = ArrayData {
        shape: target.clone(),
        strides: st.clone(),
        ..x.clone()
    };
    let nb = batch.len();
    let fits = x.dtype == dtype
        && layout(m, n, st[nb], st[nb + 1]).is_some()
        && batch_stride(batch, &st[..nb]).is_some();
    let (data, st, keep) = if fits {
        (view, st, None)
    } else {
        let Some(c) = contiguous(&view, dtype)? else {
            return Ok(None);
        };
        let st = row_major_strides(&target);
        (c.clone(), st, Some(c))
    };
    let (trans, rows, cols, ld) = layout(m, n, st[nb], st[nb + 1])
        .ok_or_else(|| Error::Device("matmul: no layout for a contiguous operand".into()))?;
    let bs = batch_stride(batch, &st[..nb])
        .ok_or_else(|| Error::Device("matmul: no batch stride for a contiguous operand".into()))?;
    Ok(Some((
        Operand {
            ptr: input_ptr(&data)?,
            trans,
            rows,
            cols,
            ld,
            batch_stride: bs as i64,
        },
        keep,
    )))
}

pub fn eval(
    op: &MatmulOp,
    inputs: &[ArrayData],
    outputs: &[OutSpec],
) -> Result<Option<Vec<ArrayData>>> {
    // `addmm` is the product with cuBLASLt's C operand: `c` broadcast into the output first,
    // then `alpha * (a @ b) + beta * out` in place.
    let (a, b, c, alpha, beta) = match (op, inputs) {
        (MatmulOp::Matmul, [a, b]) => (a, b, None, 1.0, 0.0),
        (MatmulOp::AddMm { alpha, beta }, [c, a, b]) => (a, b, Some(c), *alpha, *beta),
        _ => {
            return Err(Error::Device(format!(
                "matmul: {op:?} with {} inputs",
                inputs.len()
            )));
        }
    };
    let name = match op {
        MatmulOp::Matmul => "matmul",
        MatmulOp::AddMm { .. } => "addmm",
    };
    let out = super::first_out(name, outputs)?;
    let dt = out.dtype;
    let (data_type, compute, scale_type) = match dt {
        Dtype::Float32 => (
            ltsys::cudaDataType::CUDA_R_32F,
            if TF32.load(Ordering::Relaxed) {
                ltsys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
            } else {
                ltsys::cublasComputeType_t::CUBLAS_COMPUTE_32F
            },
            ltsys::cudaDataType::CUDA_R_32F,
        ),
        Dtype::Float16 => (
            ltsys::cudaDataType::CUDA_R_16F,
            ltsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ltsys::cudaDataType::CUDA_R_32F,
        ),
        Dtype::Bfloat16 => (
            ltsys::cudaDataType::CUDA_R_16BF,
            ltsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ltsys::cudaDataType::CUDA_R_32F,
        ),
        Dtype::Float64 => (
            ltsys::cudaDataType::CUDA_R_64F,
            ltsys::cublasComputeType_t::CUBLAS_COMPUTE_64F,
            ltsys::cudaDataType::CUDA_R_64F,
        ),
        _ => return Ok(None),
    };
    let da = matrix_dims(&a.shape, true);
    let db = matrix_dims(&b.shape, false);
    let (m, k, n) = (da.rows, da.cols, db.cols);
    if db.rows != k {
        return Err(Error::Invalid(format!(
            "matmul: inner dimensions {k} and {} do not match",
            db.rows
        )));
    }
    let count: usize = out.shape.iter().product::<usize>() / (m * n).max(1);
    let batch_len = da.batch.len().max(db.batch.len());
    let batch: Vec<usize> = umx_core::shape::broadcast_shapes("matmul", &da.batch, &db.batch)
        .map_err(|_| Error::Device("matmul: batch dims do not broadcast".into()))?;
    debug_assert_eq!(batch.len(), batch_len);
    let (result, out_ptr) = match c {
        Some(c) if beta != 0.0 => {
            let Some(init) =
                super::elementwise::run(std::slice::from_ref(c), &[c.dtype], "x0", &out.shape, dt)?
            else {
                return Ok(None);
            };
            let ptr = input_ptr(&init)?;
            (init, ptr)
        }
        _ => {
            let (buffer, out_ptr) = output(out.shape.iter().product::<usize>() * dt.size())?;
            let result = ArrayData {
                buffer: Arc::new(buffer),
                shape: out.shape.clone(),
                dtype: dt,
                strides: row_major_strides(&out.shape),
                offset: 0,
            };
            (result, out_ptr)
        }
    };
    if m * n * count == 0 {
        return Ok(Some(vec![result]));
    }
    if k == 0 && c.is_some() {
        // `beta * c` alone: rare enough for the CPU.
        return Ok(None);
    }
    if k == 0 {
        // An empty sum: zeros.
        let zero = super::elementwise::run(&[], &[], "0", &out.shape, dt)?;
        return Ok(zero.map(|z| vec![z]));
    }
    // cuBLASLt's A is our B (n x k, column-major), its B is our A (k x m).
    let Some((ob, _keep_b)) = operand(b, false, &batch, dt)? else {
        return Ok(None);
    };
    let Some((oa, _keep_a)) = operand(a, true, &batch, dt)? else {
        return Ok(None);
    };
    let blas = blas()?;
    let blas = blas.lock().unwrap_or_else(|e| e.into_inner());
    let g = gpu()?;
    // SAFETY: descriptors are created, used and destroyed here; pointers are device memory
    // alive until the stream has run the product (the pool reuses it only in stream order).
    unsafe {
        let desc = lt::create_matmul_desc(compute, scale_type).map_err(|e| blas_err("desc", e))?;
        let set_trans = |attr, t: bool| {
            let v: i32 = t as i32;
            lt::set_matmul_desc_attribute(desc, attr, &v as *const i32 as *const c_void, 4)
        };
        let mk = |o: &Operand| -> Result<ltsys::cublasLtMatrixLayout_t> {
            let l = lt::create_matrix_layout(data_type, o.rows, o.cols, o.ld)
                .map_err(|e| blas_err("layout", e))?;
            set_batch(l, count, o.batch_stride)?;
            Ok(l)
        };
        let run = (|| -> Result<()> {
            set_trans(
                ltsys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
                ob.trans,
            )
            .map_err(|e| blas_err("transa", e))?;
            set_trans(
                ltsys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSB,
                oa.trans,
            )
            .map_err(|e| blas_err("transb", e))?;
            let la = mk(&ob)?;
            let lb = mk(&oa)?;
            let lc = lt::create_matrix_layout(data_type, n as u64, m as u64, n as i64)
                .map_err(|e| blas_err("layout", e))?;
            set_batch(lc, count, (m * n) as i64)?;
            let pref = lt::create_matmul_pref().map_err(|e| blas_err("pref", e))?;
            let ws = WORKSPACE as u64;
            lt::set_matmul_pref_attribute(
                pref,
                ltsys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                &ws as *const u64 as *const c_void,
                8,
            )
            .map_err(|e| blas_err("pref", e))?;
            // Split-K partial sums may be combined in the compute type (float32) only, never in
            // the output type: float16 products then round once, as on the CPU.
            let scheme: u32 = 2; // CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE (NONE is always allowed)
            lt::set_matmul_pref_attribute(
                pref,
                ltsys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                &scheme as *const u32 as *const c_void,
                4,
            )
            .map_err(|e| blas_err("pref", e))?;
            let heur = lt::get_matmul_algo_heuristic(blas.handle, desc, la, lb, lc, lc, pref)
                .map_err(|e| blas_err("no algorithm for this product", e));
            let r = heur.and_then(|h| {
                let (alpha32, beta32) = (alpha as f32, beta as f32);
                let (alpha, beta): (*const c_void, *const c_void) = if dt == Dtype::Float64 {
                    (&alpha as *const f64 as _, &beta as *const f64 as _)
                } else {
                    (&alpha32 as *const f32 as _, &beta32 as *const f32 as _)
                };
                lt::matmul(
                    blas.handle,
                    desc,
                    alpha,
                    beta,
                    ob.ptr as *const c_void,
                    la,
                    oa.ptr as *const c_void,
                    lb,
                    out_ptr as *const c_void,
                    lc,
                    out_ptr as *mut c_void,
                    lc,
                    &h.algo,
                    blas.workspace_ptr as *mut c_void,
                    WORKSPACE,
                    g.stream as ltsys::cudaStream_t,
                )
                .map_err(|e| blas_err("matmul", e))
            });
            let _ = lt::destroy_matmul_pref(pref);
            let _ = lt::destroy_matrix_layout(la);
            let _ = lt::destroy_matrix_layout(lb);
            let _ = lt::destroy_matrix_layout(lc);
            r
        })();
        let _ = lt::destroy_matmul_desc(desc);
        run?;
    }
    Ok(Some(vec![result]))
}

unsafe fn set_batch(l: ltsys::cublasLtMatrixLayout_t, count: usize, stride: i64) -> Result<()> {
    let c = count as i32;
    unsafe {
        lt::set_matrix_layout_attribute(
            l,
            ltsys::cublasLtMatrixLayoutAttribute_t::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
            &c as *const i32 as *const c_void,
            4,
        )
        .map_err(|e| blas_err("batch count", e))?;
        lt::set_matrix_layout_attribute(
            l,
            ltsys::cublasLtMatrixLayoutAttribute_t::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
            &stride as *const i64 as *const c_void,
            8,
        )
        .map_err(|e| blas_err("batch stride", e))?;
    }
    Ok(())
}
