//! Matrix products through cuBLASLt: float32 (full precision unless [`set_tf32`] allows
//! TensorFloat-32), float16, bfloat16 (accumulating in float32), float64 and complex64;
//! batched, with broadcast batches as zero batch strides.
//!
//! umx arrays are row-major and cuBLASLt is column-major, so `C = A @ B` is computed as
//! `Cᵀ = Bᵀ Aᵀ`: a row-major matrix is its transpose in column-major order, for free. An
//! operand that is transposed (its columns contiguous) is passed with a transpose flag; any
//! other layout is copied to contiguous first. Integer products are still on the
//! fallback. Products of a few rows against a row-major weight (decoding) go to the
//! matrix-vector kernel of `gemv.rs` instead.
//!
//! Plans (descriptor, layouts and the algorithm cuBLASLt's heuristic picks) are cached by the
//! product's shape: asking the heuristic costs tens of microseconds, more than a decoding
//! step's matrix-vector product takes on the card.

use super::contiguous;
use crate::gpu::gpu;
use crate::storage::{input_ptr, output};
use cudarc::cublaslt::{result as lt, sys as ltsys};
use std::collections::HashMap;
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

/// cuBLASLt's scratch memory, which bounds the split-K algorithms its heuristic may pick.
/// With 32 MB it split the MLP step's 1024 x 4096 x 4096 float32 products in two (a grid of
/// 8 x 32 x 2), 10 us (1.5%) slower each under `ncu` than torch's unsplit run of the same
/// kernel (H100). With less the compiled step was faster: 8.089-8.102 ms with 32 MB,
/// 8.064-8.066 with 8, 8.078-8.082 with 4 and 8.066-8.074 with 1 (H200; which kernel the
/// heuristic then picks was not looked at). 8 MB still holds the partial sums of products of
/// few output tiles, where splitting pays.
const WORKSPACE: usize = 8 << 20;

struct Blas {
    handle: ltsys::cublasLtHandle_t,
    /// Kept alive for as long as the handle: cuBLASLt's scratch memory.
    _workspace: Buffer,
    workspace_ptr: u64,
    plans: HashMap<PlanKey, Plan>,
}

/// Plans kept at most; past this the cache starts over (shapes in a program are few).
const MAX_PLANS: usize = 512;

/// What a plan depends on: the dtypes and compute mode, each operand's layout, the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PlanKey {
    dtype: Dtype,
    tf32: bool,
    a: (bool, u64, u64, i64, i64),
    b: (bool, u64, u64, i64, i64),
    m: usize,
    n: usize,
    count: usize,
    /// cuBLASLt's bias epilogue: a vector added to every row of the product.
    bias: bool,
}

/// A product's cuBLASLt descriptors and algorithm, reusable for any pointers.
#[derive(Clone, Copy)]
struct Plan {
    desc: ltsys::cublasLtMatmulDesc_t,
    la: ltsys::cublasLtMatrixLayout_t,
    lb: ltsys::cublasLtMatrixLayout_t,
    lc: ltsys::cublasLtMatrixLayout_t,
    algo: ltsys::cublasLtMatmulAlgo_t,
}

impl Plan {
    /// Frees the descriptors.
    ///
    /// # Safety
    /// No queued or later call may use the plan.
    unsafe fn destroy(self) {
        unsafe {
            let _ = lt::destroy_matrix_layout(self.la);
            let _ = lt::destroy_matrix_layout(self.lb);
            let _ = lt::destroy_matrix_layout(self.lc);
            let _ = lt::destroy_matmul_desc(self.desc);
        }
    }
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
            plans: HashMap::new(),
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
    // then `alpha * (a @ b) + beta * out` in place; or, for a bias vector, the bias epilogue.
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
        Dtype::Complex64 => (
            ltsys::cudaDataType::CUDA_C_32F,
            ltsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ltsys::cudaDataType::CUDA_C_32F,
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
    if let Some(o) = super::gemv::try_gemv(a, b, c.map(|c| (c, alpha, beta)), &out.shape, dt)? {
        return Ok(Some(vec![o]));
    }
    if k == 0 && dt != Dtype::Complex64 {
        // An empty sum: `beta * c` (broadcast), or zeros.
        let t = umx_core::primitives::codegen::c_compute_type(dt).unwrap_or("float");
        let (ins, expr) = match c {
            Some(c) if beta != 0.0 => (std::slice::from_ref(c), format!("(x0 * ({t}){beta:e})")),
            _ => (&[][..], "0".to_string()),
        };
        let compute: Vec<Dtype> = ins.iter().map(|_| dt).collect();
        let out = super::elementwise::run(ins, &compute, &expr, &out.shape, dt)?;
        return Ok(out.map(|o| vec![o]));
    }
    // A bias (`c` a vector along the output's rows, in its dtype, added once: `nn::Linear`,
    // or `x @ w + b` compiled) goes to cuBLASLt's bias epilogue: no broadcast copy of it into
    // the output and no read of that copy.
    let bias = match c {
        Some(c) if beta == 1.0 && k > 0 && is_bias(c, n, dt) => {
            let p = input_ptr(c)?;
            (p % 16 == 0).then_some(p)
        }
        _ => None,
    };
    let (result, out_ptr) = match c {
        Some(c) if beta != 0.0 && bias.is_none() => {
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
        // complex64 `beta * c` alone (the other dtypes returned above): rare enough for the
        // CPU.
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
    let mut blas = blas.lock().unwrap_or_else(|e| e.into_inner());
    let g = gpu()?;
    let key = PlanKey {
        dtype: dt,
        tf32: compute == ltsys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32,
        a: (ob.trans, ob.rows, ob.cols, ob.ld, ob.batch_stride),
        b: (oa.trans, oa.rows, oa.cols, oa.ld, oa.batch_stride),
        m,
        n,
        count,
        bias: bias.is_some(),
    };
    let plan = match blas.plans.get(&key) {
        Some(p) => *p,
        None => {
            // SAFETY: the descriptors made here are kept in the cache (or freed on error).
            let p = unsafe { make_plan(blas.handle, &key, (data_type, compute, scale_type)) }?;
            if blas.plans.len() >= MAX_PLANS {
                // The streams may still hold products queued with old plans: wait for them.
                let _ = g.synchronize();
                for (_, old) in blas.plans.drain() {
                    // SAFETY: the streams have finished every product.
                    unsafe { old.destroy() };
                }
            }
            blas.plans.insert(key, p);
            p
        }
    };
    if let Some(p) = bias {
        // SAFETY: the descriptor is alive and ours while the lock is held; cuBLASLt reads the
        // pointer when the product is queued.
        unsafe {
            lt::set_matmul_desc_attribute(
                plan.desc,
                ltsys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                &p as *const u64 as *const c_void,
                8,
            )
        }
        .map_err(|e| blas_err("bias", e))?;
    }
    let beta = if bias.is_some() { 0.0 } else { beta };
    // The scale type's alpha and beta: double, float, or a complex float (real part set).
    let (alpha32, beta32) = ([alpha as f32, 0.0], [beta as f32, 0.0]);
    let (alpha, beta): (*const c_void, *const c_void) = if dt == Dtype::Float64 {
        (&alpha as *const f64 as _, &beta as *const f64 as _)
    } else {
        (alpha32.as_ptr() as _, beta32.as_ptr() as _)
    };
    // SAFETY: the plan's descriptors are alive (cached); pointers are device memory alive
    // until the stream has run the product (the pool reuses it only in stream order).
    unsafe {
        lt::matmul(
            blas.handle,
            plan.desc,
            alpha,
            beta,
            ob.ptr as *const c_void,
            plan.la,
            oa.ptr as *const c_void,
            plan.lb,
            out_ptr as *const c_void,
            plan.lc,
            out_ptr as *mut c_void,
            plan.lc,
            &plan.algo,
            blas.workspace_ptr as *mut c_void,
            WORKSPACE,
            g.stream() as ltsys::cudaStream_t,
        )
    }
    .map_err(|e| blas_err("matmul", e))?;
    Ok(Some(vec![result]))
}

/// Whether `c` is a bias of the product: `n` values along the output's last axis (every
/// other axis of length 1), unit-strided, in a dtype cuBLASLt's bias epilogue takes.
fn is_bias(c: &ArrayData, n: usize, dt: Dtype) -> bool {
    let Some((&last, rest)) = c.shape.split_last() else {
        return false;
    };
    matches!(dt, Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16)
        && c.dtype == dt
        && last == n
        && rest.iter().all(|&d| d == 1)
        && (n == 1 || c.strides.last() == Some(&1))
}

/// Descriptors and the heuristic's algorithm for the product `key` describes.
///
/// # Safety
/// `handle` is a live cuBLASLt handle.
unsafe fn make_plan(
    handle: ltsys::cublasLtHandle_t,
    key: &PlanKey,
    (data_type, compute, scale_type): (
        ltsys::cudaDataType,
        ltsys::cublasComputeType_t,
        ltsys::cudaDataType,
    ),
) -> Result<Plan> {
    let layout = |(_, rows, cols, ld, stride): (bool, u64, u64, i64, i64)| -> Result<_> {
        let l = lt::create_matrix_layout(data_type, rows, cols, ld)
            .map_err(|e| blas_err("layout", e))?;
        unsafe { set_batch(l, key.count, stride)? };
        Ok(l)
    };
    unsafe {
        let desc = lt::create_matmul_desc(compute, scale_type).map_err(|e| blas_err("desc", e))?;
        let mut made: Vec<ltsys::cublasLtMatrixLayout_t> = Vec::new();
        let r = (|| -> Result<Plan> {
            for (attr, t) in [
                (
                    ltsys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
                    key.a.0,
                ),
                (
                    ltsys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSB,
                    key.b.0,
                ),
            ] {
                let v: i32 = t as i32;
                lt::set_matmul_desc_attribute(desc, attr, &v as *const i32 as *const c_void, 4)
                    .map_err(|e| blas_err("transpose", e))?;
            }
            if key.bias {
                // The bias is in the output's dtype (cuBLASLt's default for these types).
                let e = ltsys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS as u32;
                lt::set_matmul_desc_attribute(
                    desc,
                    ltsys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_EPILOGUE,
                    &e as *const u32 as *const c_void,
                    4,
                )
                .map_err(|e| blas_err("bias epilogue", e))?;
            }
            let la = layout(key.a)?;
            made.push(la);
            let lb = layout(key.b)?;
            made.push(lb);
            let (m, n) = (key.m, key.n);
            let lc = layout((false, n as u64, m as u64, n as i64, (m * n) as i64))?;
            made.push(lc);
            let pref = lt::create_matmul_pref().map_err(|e| blas_err("pref", e))?;
            let ws = WORKSPACE as u64;
            let mut set = lt::set_matmul_pref_attribute(
                pref,
                ltsys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                &ws as *const u64 as *const c_void,
                8,
            );
            // Split-K partial sums may be combined in the compute type (float32) only, never
            // in the output type: float16 products then round once, as on the CPU.
            let scheme: u32 = 2; // CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE (NONE is always allowed)
            if set.is_ok() {
                set = lt::set_matmul_pref_attribute(
                    pref,
                    ltsys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                    &scheme as *const u32 as *const c_void,
                    4,
                );
            }
            let heur = set.map_err(|e| blas_err("pref", e)).and_then(|_| {
                lt::get_matmul_algo_heuristic(handle, desc, la, lb, lc, lc, pref)
                    .map_err(|e| blas_err("no algorithm for this product", e))
            });
            let _ = lt::destroy_matmul_pref(pref);
            Ok(Plan {
                desc,
                la,
                lb,
                lc,
                algo: heur?.algo,
            })
        })();
        if r.is_err() {
            for l in made {
                let _ = lt::destroy_matrix_layout(l);
            }
            let _ = lt::destroy_matmul_desc(desc);
        }
        r
    }
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
