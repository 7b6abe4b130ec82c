//! The linear-algebra primitives on the GPU: cuSOLVER's dense factorizations and cuBLAS's
//! batched LU and triangular solves, giving what the CPU's kernels give
//! (`umx-cpu/src/kernels/linalg.rs`), NumPy's answers to bad input included.
//!
//! umx's matrices are row-major and the libraries' column-major: a row-major buffer read
//! column-major is the matrix's transpose. Each op uses that where it can:
//! - `solve`, `lu_factor`, `qr` and `svd` factor `A` itself, from a column-major copy (one
//!   transposing copy kernel; the libraries overwrite their input anyway).
//! - `cholesky` and `eigh` read one triangle of a symmetric matrix: the row-major copy read
//!   column-major holds that triangle as the other one, so the library is told the other.
//! - `solve_triangular` solves `Xᵀ Aᵀ = Bᵀ` (a right-side `trsm`) on the row-major buffers.
//! - Results a library leaves column-major are returned as transposed views, not copied.
//!
//! Batches of small matrices go through the batched calls (`getrfBatched` and `getrsBatched`,
//! `potrfBatched`, `trsmBatched`, `syevBatched`, and `geqrfBatched` with Q formed from the
//! reflectors by a kernel); the rest are factored one matrix after another on the stream. Each factorization's `info` is read back once the stream is idle:
//! a zero pivot in `solve` is "Singular matrix", a matrix that is not positive definite fails
//! `cholesky`, and non-finite input fails `svd` and `cholesky` and gives NaNs from `eigh`,
//! all before any library sees it, as on the CPU. LU (`solve`, `lu_factor`) of non-finite
//! input is left to the CPU, whose pivoting spreads infs and NaNs as LAPACK's does. `eig` of real matrices is cuSOLVER's
//! `Xgeev`, its packed real eigenvectors unpacked into complex64 ones by a kernel. Complex64
//! input, empty matrices and other dtypes stay on the CPU fallback, and nothing here runs
//! while a CUDA graph is captured (each op waits for the GPU to read its `info`).

// The library calls keep LAPACK's argument lists.
#![allow(clippy::too_many_arguments)]

use super::source;
use crate::compile::{function_for, launch};
use crate::gpu::{driver_err, gpu};
use crate::storage::{CudaStorage, fresh, input_ptr, output};
use cudarc::cublas::sys as blas;
use cudarc::cusolver::sys as dn;
use cudarc::driver::result;
use std::ffi::c_int;
use std::sync::{Arc, Mutex, OnceLock};
use umx_core::device::OutSpec;
use umx_core::primitives::LinalgOp;
use umx_core::shape::numel;
use umx_core::{ArrayData, Buffer, Dtype, Error, Result};

/// Square matrices at most this big go through the batched cuBLAS / cuSOLVER calls when the
/// batch has more than one; bigger ones are factored one at a time.
const BATCHED_MAX_N: usize = 128;

pub fn eval(
    op: &LinalgOp,
    inputs: &[ArrayData],
    outputs: &[OutSpec],
) -> Result<Option<Vec<ArrayData>>> {
    let Some(a) = inputs.first() else {
        return Err(Error::Device(format!("{}: no input", op.name())));
    };
    let nd = a.shape.len();
    if nd < 2 || crate::graph::capturing() {
        return Ok(None);
    }
    // The handles are bound to the stream once; the kernels between their calls must not be
    // held back behind them.
    let _direct = crate::batch::direct()?;
    let (m, n) = (a.shape[nd - 2], a.shape[nd - 1]);
    let count = numel(&a.shape[..nd - 2]);
    // Empty matrices and batches have tiny (or empty) results the CPU makes at once.
    if m == 0 || n == 0 || count == 0 || outputs.iter().any(|o| numel(&o.shape) == 0) {
        return Ok(None);
    }
    if m > c_int::MAX as usize / 2 || n > c_int::MAX as usize / 2 || count > c_int::MAX as usize {
        return Ok(None);
    }
    let job = Job {
        count,
        m,
        n,
        batch: a.shape[..nd - 2].to_vec(),
    };
    match a.dtype {
        Dtype::Float32 => run::<f32>(op, &job, inputs, outputs),
        Dtype::Float64 => run::<f64>(op, &job, inputs, outputs),
        _ => Ok(None),
    }
}

/// The batch and the matrices' size.
struct Job {
    count: usize,
    m: usize,
    n: usize,
    batch: Vec<usize>,
}

impl Job {
    fn shape(&self, dims: &[usize]) -> Vec<usize> {
        let mut s = self.batch.clone();
        s.extend_from_slice(dims);
        s
    }
}

/// The op's outputs, or `None` where the CPU's answer is the one to give.
fn run<T: Float>(
    op: &LinalgOp,
    job: &Job,
    inputs: &[ArrayData],
    outputs: &[OutSpec],
) -> Result<Option<Vec<ArrayData>>> {
    let lock = handles()?;
    let h = lock.lock().unwrap_or_else(|e| e.into_inner());
    // The handles queue on the stream of the node being evaluated.
    let stream = gpu()?.stream();
    // SAFETY: live handles and stream; the lock is held.
    unsafe {
        dn_ok(
            "setting the stream",
            dn::cusolverDnSetStream(h.dn, stream as dn::cudaStream_t),
        )?;
        blas_ok(
            "setting the stream",
            blas::cublasSetStream_v2(h.blas, stream as blas::cudaStream_t),
        )?;
    }
    let outs = match *op {
        LinalgOp::Solve => match solve::<T>(&h, job, &inputs[0], input(op, inputs, 1)?)? {
            Some(outs) => Ok(outs),
            None => return Ok(None),
        },
        LinalgOp::SolveTriangular { upper } => {
            solve_triangular::<T>(&h, job, &inputs[0], input(op, inputs, 1)?, upper)
        }
        LinalgOp::Cholesky { upper } => cholesky::<T>(&h, job, &inputs[0], upper),
        LinalgOp::Qr => qr::<T>(&h, job, &inputs[0]),
        LinalgOp::Svd { compute_uv } => svd::<T>(&h, job, &inputs[0], compute_uv),
        LinalgOp::Eigh { upper, vectors } => eigh::<T>(&h, job, &inputs[0], upper, vectors),
        LinalgOp::LuFactor => match lu_factor::<T>(&h, job, &inputs[0])? {
            Some(outs) => Ok(outs),
            None => return Ok(None),
        },
        LinalgOp::Eig { vectors } => eig::<T>(&h, job, &inputs[0], vectors),
    };
    outs.and_then(|outs| {
        if outs.len() != outputs.len()
            || outs
                .iter()
                .zip(outputs)
                .any(|(o, s)| o.shape != s.shape || o.dtype != s.dtype)
        {
            return Err(Error::Device(format!(
                "{}: the gpu kernel's outputs do not match {outputs:?}",
                op.name()
            )));
        }
        Ok(Some(outs))
    })
}

fn input<'a>(op: &LinalgOp, inputs: &'a [ArrayData], i: usize) -> Result<&'a ArrayData> {
    inputs
        .get(i)
        .ok_or_else(|| Error::Device(format!("{}: input {i} is missing", op.name())))
}

// ---------------------------------------------------------------------------------------------
// Handles and library calls

struct Handles {
    dn: dn::cusolverDnHandle_t,
    blas: blas::cublasHandle_t,
}

// SAFETY: the handles are used under the mutex below, one call at a time.
unsafe impl Send for Handles {}

fn handles() -> Result<&'static Mutex<Handles>> {
    static H: OnceLock<Result<Mutex<Handles>>> = OnceLock::new();
    H.get_or_init(|| {
        gpu()?;
        // SAFETY: only check for the libraries (cudarc panics when one is missing).
        if !unsafe { dn::is_culib_present() } {
            return Err(Error::Device(
                "gpu: cuSOLVER (libcusolver) was not found".into(),
            ));
        }
        if !unsafe { blas::is_culib_present() } {
            return Err(Error::Device(
                "gpu: cuBLAS (libcublas) was not found".into(),
            ));
        }
        let mut d = std::ptr::null_mut();
        let mut b = std::ptr::null_mut();
        // SAFETY: out-parameters. Each call sets the handles' stream (see `run`).
        unsafe {
            dn_ok("creating a handle", dn::cusolverDnCreate(&mut d))?;
            blas_ok("creating a handle", blas::cublasCreate_v2(&mut b))?;
        }
        Ok(Mutex::new(Handles { dn: d, blas: b }))
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn dn_ok(what: &str, s: dn::cusolverStatus_t) -> Result<()> {
    if s == dn::cusolverStatus_t::CUSOLVER_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(Error::Device(format!("cusolver: {what}: {s:?}")))
    }
}

fn blas_ok(what: &str, s: blas::cublasStatus_t) -> Result<()> {
    if s == blas::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(Error::Device(format!("cublas: {what}: {s:?}")))
    }
}

type Ptr = u64;

/// The element types cuSOLVER factors, with their single- or double-precision routines. The
/// arguments are LAPACK's; pointers are device addresses. (Kept one call a line.)
#[rustfmt::skip]
trait Float: Copy + Default + Nan + 'static {
    const DTYPE: Dtype;
    const C: &'static str;
    /// The real and complex CUDA data types of this precision.
    const REAL: dn::cudaDataType;
    const COMPLEX: dn::cudaDataType;
    unsafe fn getrf_size(h: DnH, m: c_int, n: c_int, a: Ptr, lda: c_int, lw: &mut c_int) -> DnS;
    unsafe fn getrf(h: DnH, m: c_int, n: c_int, a: Ptr, lda: c_int, work: Ptr, ipiv: Ptr, info: Ptr) -> DnS;
    unsafe fn getrs(h: DnH, n: c_int, nrhs: c_int, a: Ptr, lda: c_int, ipiv: Ptr, b: Ptr, ldb: c_int, info: Ptr) -> DnS;
    unsafe fn potrf_size(h: DnH, uplo: Fill, n: c_int, a: Ptr, lda: c_int, lw: &mut c_int) -> DnS;
    unsafe fn potrf(h: DnH, uplo: Fill, n: c_int, a: Ptr, lda: c_int, work: Ptr, lwork: c_int, info: Ptr) -> DnS;
    unsafe fn potrf_batched(h: DnH, uplo: Fill, n: c_int, arr: Ptr, lda: c_int, info: Ptr, count: c_int) -> DnS;
    unsafe fn geqrf_size(h: DnH, m: c_int, n: c_int, a: Ptr, lda: c_int, lw: &mut c_int) -> DnS;
    unsafe fn geqrf(h: DnH, m: c_int, n: c_int, a: Ptr, lda: c_int, tau: Ptr, work: Ptr, lwork: c_int, info: Ptr) -> DnS;
    unsafe fn orgqr_size(h: DnH, m: c_int, n: c_int, k: c_int, a: Ptr, lda: c_int, tau: Ptr, lw: &mut c_int) -> DnS;
    unsafe fn orgqr(h: DnH, m: c_int, n: c_int, k: c_int, a: Ptr, lda: c_int, tau: Ptr, work: Ptr, lwork: c_int, info: Ptr) -> DnS;
    unsafe fn gesvdj_size(h: DnH, jobz: Eig, m: c_int, n: c_int, a: Ptr, lda: c_int, s: Ptr, u: Ptr, ldu: c_int, v: Ptr, ldv: c_int, lw: &mut c_int, p: dn::gesvdjInfo_t) -> DnS;
    unsafe fn gesvdj(h: DnH, jobz: Eig, m: c_int, n: c_int, a: Ptr, lda: c_int, s: Ptr, u: Ptr, ldu: c_int, v: Ptr, ldv: c_int, work: Ptr, lwork: c_int, info: Ptr, p: dn::gesvdjInfo_t) -> DnS;
    unsafe fn syevd_size(h: DnH, jobz: Eig, uplo: Fill, n: c_int, a: Ptr, lda: c_int, w: Ptr, lw: &mut c_int) -> DnS;
    unsafe fn syevd(h: DnH, jobz: Eig, uplo: Fill, n: c_int, a: Ptr, lda: c_int, w: Ptr, work: Ptr, lwork: c_int, info: Ptr) -> DnS;
    unsafe fn getrf_batched(h: BlasH, n: c_int, arr: Ptr, lda: c_int, ipiv: Ptr, info: Ptr, count: c_int) -> BlasS;
    unsafe fn getrs_batched(h: BlasH, n: c_int, nrhs: c_int, arr: Ptr, lda: c_int, ipiv: Ptr, barr: Ptr, ldb: c_int, info: &mut c_int, count: c_int) -> BlasS;
    unsafe fn geqrf_batched(h: BlasH, m: c_int, n: c_int, arr: Ptr, lda: c_int, tau_arr: Ptr, info: &mut c_int, count: c_int) -> BlasS;
    /// `X op(A) = B` with A on the right, not transposed, non-unit diagonal, alpha 1.
    unsafe fn trsm(h: BlasH, uplo: blas::cublasFillMode_t, m: c_int, n: c_int, a: Ptr, lda: c_int, b: Ptr, ldb: c_int) -> BlasS;
    unsafe fn trsm_batched(h: BlasH, uplo: blas::cublasFillMode_t, m: c_int, n: c_int, arr: Ptr, lda: c_int, barr: Ptr, ldb: c_int, count: c_int) -> BlasS;
}

type DnH = dn::cusolverDnHandle_t;
type DnS = dn::cusolverStatus_t;
type BlasH = blas::cublasHandle_t;
type BlasS = blas::cublasStatus_t;
type Fill = dn::cublasFillMode_t;
type Eig = dn::cusolverEigMode_t;

#[rustfmt::skip]
impl Float for f32 {
    const DTYPE: Dtype = Dtype::Float32;
    const C: &'static str = "float";
    const REAL: dn::cudaDataType = dn::cudaDataType::CUDA_R_32F;
    const COMPLEX: dn::cudaDataType = dn::cudaDataType::CUDA_C_32F;
    unsafe fn getrf_size(h: DnH, m: c_int, n: c_int, a: Ptr, lda: c_int, lw: &mut c_int) -> DnS {
        unsafe { dn::cusolverDnSgetrf_bufferSize(h, m, n, a as *mut f32, lda, lw) }
    }
    unsafe fn getrf(h: DnH, m: c_int, n: c_int, a: Ptr, lda: c_int, work: Ptr, ipiv: Ptr, info: Ptr) -> DnS {
        unsafe { dn::cusolverDnSgetrf(h, m, n, a as *mut f32, lda, work as *mut f32, ipiv as *mut c_int, info as *mut c_int) }
    }
    unsafe fn getrs(h: DnH, n: c_int, nrhs: c_int, a: Ptr, lda: c_int, ipiv: Ptr, b: Ptr, ldb: c_int, info: Ptr) -> DnS {
        unsafe { dn::cusolverDnSgetrs(h, dn::cublasOperation_t::CUBLAS_OP_N, n, nrhs, a as *const f32, lda, ipiv as *const c_int, b as *mut f32, ldb, info as *mut c_int) }
    }
    unsafe fn potrf_size(h: DnH, uplo: Fill, n: c_int, a: Ptr, lda: c_int, lw: &mut c_int) -> DnS {
        unsafe { dn::cusolverDnSpotrf_bufferSize(h, uplo, n, a as *mut f32, lda, lw) }
    }
    unsafe fn potrf(h: DnH, uplo: Fill, n: c_int, a: Ptr, lda: c_int, work: Ptr, lwork: c_int, info: Ptr) -> DnS {
        unsafe { dn::cusolverDnSpotrf(h, uplo, n, a as *mut f32, lda, work as *mut f32, lwork, info as *mut c_int) }
    }
    unsafe fn potrf_batched(h: DnH, uplo: Fill, n: c_int, arr: Ptr, lda: c_int, info: Ptr, count: c_int) -> DnS {
        unsafe { dn::cusolverDnSpotrfBatched(h, uplo, n, arr as *mut *mut f32, lda, info as *mut c_int, count) }
    }
    unsafe fn geqrf_size(h: DnH, m: c_int, n: c_int, a: Ptr, lda: c_int, lw: &mut c_int) -> DnS {
        unsafe { dn::cusolverDnSgeqrf_bufferSize(h, m, n, a as *mut f32, lda, lw) }
    }
    unsafe fn geqrf(h: DnH, m: c_int, n: c_int, a: Ptr, lda: c_int, tau: Ptr, work: Ptr, lwork: c_int, info: Ptr) -> DnS {
        unsafe { dn::cusolverDnSgeqrf(h, m, n, a as *mut f32, lda, tau as *mut f32, work as *mut f32, lwork, info as *mut c_int) }
    }
    unsafe fn orgqr_size(h: DnH, m: c_int, n: c_int, k: c_int, a: Ptr, lda: c_int, tau: Ptr, lw: &mut c_int) -> DnS {
        unsafe { dn::cusolverDnSorgqr_bufferSize(h, m, n, k, a as *const f32, lda, tau as *const f32, lw) }
    }
    unsafe fn orgqr(h: DnH, m: c_int, n: c_int, k: c_int, a: Ptr, lda: c_int, tau: Ptr, work: Ptr, lwork: c_int, info: Ptr) -> DnS {
        unsafe { dn::cusolverDnSorgqr(h, m, n, k, a as *mut f32, lda, tau as *const f32, work as *mut f32, lwork, info as *mut c_int) }
    }
    unsafe fn gesvdj_size(h: DnH, jobz: Eig, m: c_int, n: c_int, a: Ptr, lda: c_int, s: Ptr, u: Ptr, ldu: c_int, v: Ptr, ldv: c_int, lw: &mut c_int, p: dn::gesvdjInfo_t) -> DnS {
        unsafe { dn::cusolverDnSgesvdj_bufferSize(h, jobz, 0, m, n, a as *const f32, lda, s as *const f32, u as *const f32, ldu, v as *const f32, ldv, lw, p) }
    }
    unsafe fn gesvdj(h: DnH, jobz: Eig, m: c_int, n: c_int, a: Ptr, lda: c_int, s: Ptr, u: Ptr, ldu: c_int, v: Ptr, ldv: c_int, work: Ptr, lwork: c_int, info: Ptr, p: dn::gesvdjInfo_t) -> DnS {
        unsafe { dn::cusolverDnSgesvdj(h, jobz, 0, m, n, a as *mut f32, lda, s as *mut f32, u as *mut f32, ldu, v as *mut f32, ldv, work as *mut f32, lwork, info as *mut c_int, p) }
    }
    unsafe fn syevd_size(h: DnH, jobz: Eig, uplo: Fill, n: c_int, a: Ptr, lda: c_int, w: Ptr, lw: &mut c_int) -> DnS {
        unsafe { dn::cusolverDnSsyevd_bufferSize(h, jobz, uplo, n, a as *const f32, lda, w as *const f32, lw) }
    }
    unsafe fn syevd(h: DnH, jobz: Eig, uplo: Fill, n: c_int, a: Ptr, lda: c_int, w: Ptr, work: Ptr, lwork: c_int, info: Ptr) -> DnS {
        unsafe { dn::cusolverDnSsyevd(h, jobz, uplo, n, a as *mut f32, lda, w as *mut f32, work as *mut f32, lwork, info as *mut c_int) }
    }
    unsafe fn getrf_batched(h: BlasH, n: c_int, arr: Ptr, lda: c_int, ipiv: Ptr, info: Ptr, count: c_int) -> BlasS {
        unsafe { blas::cublasSgetrfBatched(h, n, arr as *const *mut f32, lda, ipiv as *mut c_int, info as *mut c_int, count) }
    }
    unsafe fn getrs_batched(h: BlasH, n: c_int, nrhs: c_int, arr: Ptr, lda: c_int, ipiv: Ptr, barr: Ptr, ldb: c_int, info: &mut c_int, count: c_int) -> BlasS {
        unsafe { blas::cublasSgetrsBatched(h, blas::cublasOperation_t::CUBLAS_OP_N, n, nrhs, arr as *const *const f32, lda, ipiv as *const c_int, barr as *const *mut f32, ldb, info, count) }
    }
    unsafe fn geqrf_batched(h: BlasH, m: c_int, n: c_int, arr: Ptr, lda: c_int, tau_arr: Ptr, info: &mut c_int, count: c_int) -> BlasS {
        unsafe { blas::cublasSgeqrfBatched(h, m, n, arr as *const *mut f32, lda, tau_arr as *const *mut f32, info, count) }
    }
    unsafe fn trsm(h: BlasH, uplo: blas::cublasFillMode_t, m: c_int, n: c_int, a: Ptr, lda: c_int, b: Ptr, ldb: c_int) -> BlasS {
        let one: f32 = 1.0;
        unsafe { blas::cublasStrsm_v2(h, blas::cublasSideMode_t::CUBLAS_SIDE_RIGHT, uplo, blas::cublasOperation_t::CUBLAS_OP_N, blas::cublasDiagType_t::CUBLAS_DIAG_NON_UNIT, m, n, &one, a as *const f32, lda, b as *mut f32, ldb) }
    }
    unsafe fn trsm_batched(h: BlasH, uplo: blas::cublasFillMode_t, m: c_int, n: c_int, arr: Ptr, lda: c_int, barr: Ptr, ldb: c_int, count: c_int) -> BlasS {
        let one: f32 = 1.0;
        unsafe { blas::cublasStrsmBatched(h, blas::cublasSideMode_t::CUBLAS_SIDE_RIGHT, uplo, blas::cublasOperation_t::CUBLAS_OP_N, blas::cublasDiagType_t::CUBLAS_DIAG_NON_UNIT, m, n, &one, arr as *const *const f32, lda, barr as *const *mut f32, ldb, count) }
    }
}

#[rustfmt::skip]
impl Float for f64 {
    const DTYPE: Dtype = Dtype::Float64;
    const C: &'static str = "double";
    const REAL: dn::cudaDataType = dn::cudaDataType::CUDA_R_64F;
    const COMPLEX: dn::cudaDataType = dn::cudaDataType::CUDA_C_64F;
    unsafe fn getrf_size(h: DnH, m: c_int, n: c_int, a: Ptr, lda: c_int, lw: &mut c_int) -> DnS {
        unsafe { dn::cusolverDnDgetrf_bufferSize(h, m, n, a as *mut f64, lda, lw) }
    }
    unsafe fn getrf(h: DnH, m: c_int, n: c_int, a: Ptr, lda: c_int, work: Ptr, ipiv: Ptr, info: Ptr) -> DnS {
        unsafe { dn::cusolverDnDgetrf(h, m, n, a as *mut f64, lda, work as *mut f64, ipiv as *mut c_int, info as *mut c_int) }
    }
    unsafe fn getrs(h: DnH, n: c_int, nrhs: c_int, a: Ptr, lda: c_int, ipiv: Ptr, b: Ptr, ldb: c_int, info: Ptr) -> DnS {
        unsafe { dn::cusolverDnDgetrs(h, dn::cublasOperation_t::CUBLAS_OP_N, n, nrhs, a as *const f64, lda, ipiv as *const c_int, b as *mut f64, ldb, info as *mut c_int) }
    }
    unsafe fn potrf_size(h: DnH, uplo: Fill, n: c_int, a: Ptr, lda: c_int, lw: &mut c_int) -> DnS {
        unsafe { dn::cusolverDnDpotrf_bufferSize(h, uplo, n, a as *mut f64, lda, lw) }
    }
    unsafe fn potrf(h: DnH, uplo: Fill, n: c_int, a: Ptr, lda: c_int, work: Ptr, lwork: c_int, info: Ptr) -> DnS {
        unsafe { dn::cusolverDnDpotrf(h, uplo, n, a as *mut f64, lda, work as *mut f64, lwork, info as *mut c_int) }
    }
    unsafe fn potrf_batched(h: DnH, uplo: Fill, n: c_int, arr: Ptr, lda: c_int, info: Ptr, count: c_int) -> DnS {
        unsafe { dn::cusolverDnDpotrfBatched(h, uplo, n, arr as *mut *mut f64, lda, info as *mut c_int, count) }
    }
    unsafe fn geqrf_size(h: DnH, m: c_int, n: c_int, a: Ptr, lda: c_int, lw: &mut c_int) -> DnS {
        unsafe { dn::cusolverDnDgeqrf_bufferSize(h, m, n, a as *mut f64, lda, lw) }
    }
    unsafe fn geqrf(h: DnH, m: c_int, n: c_int, a: Ptr, lda: c_int, tau: Ptr, work: Ptr, lwork: c_int, info: Ptr) -> DnS {
        unsafe { dn::cusolverDnDgeqrf(h, m, n, a as *mut f64, lda, tau as *mut f64, work as *mut f64, lwork, info as *mut c_int) }
    }
    unsafe fn orgqr_size(h: DnH, m: c_int, n: c_int, k: c_int, a: Ptr, lda: c_int, tau: Ptr, lw: &mut c_int) -> DnS {
        unsafe { dn::cusolverDnDorgqr_bufferSize(h, m, n, k, a as *const f64, lda, tau as *const f64, lw) }
    }
    unsafe fn orgqr(h: DnH, m: c_int, n: c_int, k: c_int, a: Ptr, lda: c_int, tau: Ptr, work: Ptr, lwork: c_int, info: Ptr) -> DnS {
        unsafe { dn::cusolverDnDorgqr(h, m, n, k, a as *mut f64, lda, tau as *const f64, work as *mut f64, lwork, info as *mut c_int) }
    }
    unsafe fn gesvdj_size(h: DnH, jobz: Eig, m: c_int, n: c_int, a: Ptr, lda: c_int, s: Ptr, u: Ptr, ldu: c_int, v: Ptr, ldv: c_int, lw: &mut c_int, p: dn::gesvdjInfo_t) -> DnS {
        unsafe { dn::cusolverDnDgesvdj_bufferSize(h, jobz, 0, m, n, a as *const f64, lda, s as *const f64, u as *const f64, ldu, v as *const f64, ldv, lw, p) }
    }
    unsafe fn gesvdj(h: DnH, jobz: Eig, m: c_int, n: c_int, a: Ptr, lda: c_int, s: Ptr, u: Ptr, ldu: c_int, v: Ptr, ldv: c_int, work: Ptr, lwork: c_int, info: Ptr, p: dn::gesvdjInfo_t) -> DnS {
        unsafe { dn::cusolverDnDgesvdj(h, jobz, 0, m, n, a as *mut f64, lda, s as *mut f64, u as *mut f64, ldu, v as *mut f64, ldv, work as *mut f64, lwork, info as *mut c_int, p) }
    }
    unsafe fn syevd_size(h: DnH, jobz: Eig, uplo: Fill, n: c_int, a: Ptr, lda: c_int, w: Ptr, lw: &mut c_int) -> DnS {
        unsafe { dn::cusolverDnDsyevd_bufferSize(h, jobz, uplo, n, a as *const f64, lda, w as *const f64, lw) }
    }
    unsafe fn syevd(h: DnH, jobz: Eig, uplo: Fill, n: c_int, a: Ptr, lda: c_int, w: Ptr, work: Ptr, lwork: c_int, info: Ptr) -> DnS {
        unsafe { dn::cusolverDnDsyevd(h, jobz, uplo, n, a as *mut f64, lda, w as *mut f64, work as *mut f64, lwork, info as *mut c_int) }
    }
    unsafe fn getrf_batched(h: BlasH, n: c_int, arr: Ptr, lda: c_int, ipiv: Ptr, info: Ptr, count: c_int) -> BlasS {
        unsafe { blas::cublasDgetrfBatched(h, n, arr as *const *mut f64, lda, ipiv as *mut c_int, info as *mut c_int, count) }
    }
    unsafe fn getrs_batched(h: BlasH, n: c_int, nrhs: c_int, arr: Ptr, lda: c_int, ipiv: Ptr, barr: Ptr, ldb: c_int, info: &mut c_int, count: c_int) -> BlasS {
        unsafe { blas::cublasDgetrsBatched(h, blas::cublasOperation_t::CUBLAS_OP_N, n, nrhs, arr as *const *const f64, lda, ipiv as *const c_int, barr as *const *mut f64, ldb, info, count) }
    }
    unsafe fn geqrf_batched(h: BlasH, m: c_int, n: c_int, arr: Ptr, lda: c_int, tau_arr: Ptr, info: &mut c_int, count: c_int) -> BlasS {
        unsafe { blas::cublasDgeqrfBatched(h, m, n, arr as *const *mut f64, lda, tau_arr as *const *mut f64, info, count) }
    }
    unsafe fn trsm(h: BlasH, uplo: blas::cublasFillMode_t, m: c_int, n: c_int, a: Ptr, lda: c_int, b: Ptr, ldb: c_int) -> BlasS {
        let one: f64 = 1.0;
        unsafe { blas::cublasDtrsm_v2(h, blas::cublasSideMode_t::CUBLAS_SIDE_RIGHT, uplo, blas::cublasOperation_t::CUBLAS_OP_N, blas::cublasDiagType_t::CUBLAS_DIAG_NON_UNIT, m, n, &one, a as *const f64, lda, b as *mut f64, ldb) }
    }
    unsafe fn trsm_batched(h: BlasH, uplo: blas::cublasFillMode_t, m: c_int, n: c_int, arr: Ptr, lda: c_int, barr: Ptr, ldb: c_int, count: c_int) -> BlasS {
        let one: f64 = 1.0;
        unsafe { blas::cublasDtrsmBatched(h, blas::cublasSideMode_t::CUBLAS_SIDE_RIGHT, uplo, blas::cublasOperation_t::CUBLAS_OP_N, blas::cublasDiagType_t::CUBLAS_DIAG_NON_UNIT, m, n, &one, arr as *const *const f64, lda, barr as *const *mut f64, ldb, count) }
    }
}

// ---------------------------------------------------------------------------------------------
// Device memory and the small kernels around the library calls

/// Scratch device memory of `bytes` bytes (at least one).
fn scratch(bytes: usize) -> Result<(Buffer, Ptr)> {
    output(bytes.max(1))
}

/// A row-major copy of `x` (the libraries write over their input).
fn row_major<T: Float>(x: &ArrayData) -> Result<(ArrayData, Ptr)> {
    let c = super::contiguous(x, T::DTYPE)?
        .ok_or_else(|| Error::Device(format!("linalg: no copy kernel for {}", x.dtype)))?;
    let p = input_ptr(&c)?;
    Ok((c, p))
}

/// A copy of `x (…, r, c)` with each matrix column-major: matrix `b` starts at `b·r·c`, with
/// leading dimension `r`.
fn col_major<T: Float>(x: &ArrayData) -> Result<(ArrayData, Ptr)> {
    let nd = x.shape.len();
    let mut t = x.clone();
    t.shape.swap(nd - 2, nd - 1);
    t.strides.swap(nd - 2, nd - 1);
    row_major::<T>(&t)
}

/// `data` (holding column-major `r × c` matrices `stride` elements apart, the first at
/// `offset`) as the row-major array `(…, r, c)`.
fn col_major_view(data: &ArrayData, job: &Job, r: usize, c: usize, stride: usize) -> ArrayData {
    let shape = job.shape(&[r, c]);
    let mut strides = vec![0isize; shape.len()];
    let nb = job.batch.len();
    let mut s = stride as isize;
    for k in (0..nb).rev() {
        strides[k] = s;
        s *= job.batch[k] as isize;
    }
    strides[nb] = 1;
    strides[nb + 1] = r as isize;
    ArrayData {
        buffer: Arc::clone(&data.buffer),
        shape,
        dtype: data.dtype,
        strides,
        offset: 0,
    }
}

/// The addresses `base + i·step·size_of::<T>()` for each matrix, on the device (for the
/// batched calls). The buffer must outlive the queued call.
fn pointer_array<T>(base: Ptr, step: usize, count: usize) -> Result<(CudaStorage, Ptr)> {
    let bytes: Vec<u8> = (0..count)
        .flat_map(|i| (base + (i * step * std::mem::size_of::<T>()) as u64).to_le_bytes())
        .collect();
    let s = CudaStorage::upload(&bytes)?;
    let p = s.ptr();
    Ok((s, p))
}

/// `count` device ints, zeroed.
fn ints(count: usize) -> Result<(Buffer, Ptr)> {
    let (b, p) = scratch(count * 4)?;
    let g = gpu()?;
    // SAFETY: the buffer holds count ints; the stream is live.
    unsafe { result::memset_d8_async(p, 0, count * 4, g.stream()) }
        .map_err(|e| driver_err("clearing info", e))?;
    Ok((b, p))
}

/// Waits for the stream and reads `count` device ints.
fn read_ints(p: Ptr, count: usize) -> Result<Vec<c_int>> {
    gpu()?.synchronize()?;
    let mut bytes = vec![0u8; count * 4];
    // SAFETY: the stream is idle and `p` holds count ints.
    unsafe { result::memcpy_dtoh_sync(&mut bytes, p) }
        .map_err(|e| driver_err("reading info", e))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| c_int::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The source of the helper kernels for element type `t` (`float` or `double`).
fn helpers(t: &str) -> String {
    format!(
        r#"{header}
typedef {t} T;
#define UMX_LOOP(total) \
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < (total); \
       e += (long long)gridDim.x * blockDim.x)
// flags[b] = 1 when matrix b (per elements, contiguous) holds an inf or a NaN.
extern "C" __global__ void umx_la_nonfinite(const T* x, long long per, long long total, int* flags) {{
  UMX_LOOP(total) {{ T v = x[e]; if (!(v - v == (T)0)) flags[e / per] = 1; }}
}}
// Zeroes the strictly upper (upper != 0) or strictly lower triangle of row-major n x n matrices.
extern "C" __global__ void umx_la_zero_triangle(T* a, long long n, long long total, int upper) {{
  UMX_LOOP(total) {{
    long long i = (e / n) % n, j = e % n;
    if (upper ? j > i : j < i) a[e] = (T)0;
  }}
}}
// r (row-major k x n) = the upper triangle of the first k rows of column-major m x n matrices.
extern "C" __global__ void umx_la_upper_rows(const T* a, T* r, long long m, long long n, long long k, long long total) {{
  UMX_LOOP(total) {{
    long long b = e / (k * n), i = (e / n) % k, j = e % n;
    r[e] = j >= i ? a[b * m * n + i + j * m] : (T)0;
  }}
}}
// Eigenvectors of real matrices as LAPACK packs them (a complex pair's vectors as the real
// and imaginary parts in two columns, the eigenvalue with positive imaginary part first) into
// row-major complex64 matrices; w holds the complex eigenvalues.
extern "C" __global__ void umx_la_eig_vectors(const T* w, const T* vr, float* v, long long n, long long total) {{
  UMX_LOOP(total) {{
    long long b = e / (n * n), i = (e / n) % n, j = e % n;
    const T* vb = vr + b * n * n;
    T im = w[(b * n + j) * 2 + 1], re_v, im_v;
    if (im > (T)0 && j + 1 < n) {{ re_v = vb[i + j * n]; im_v = vb[i + (j + 1) * n]; }}
    else if (im < (T)0 && j > 0) {{ re_v = vb[i + (j - 1) * n]; im_v = -vb[i + j * n]; }}
    else {{ re_v = vb[i + j * n]; im_v = (T)0; }}
    v[2 * e] = (float)re_v; v[2 * e + 1] = (float)im_v;
  }}
}}
extern "C" __global__ void umx_la_narrow(const T* x, float* y, long long total) {{
  UMX_LOOP(total) {{ y[e] = (float)x[e]; }}
}}
// Q (row-major m x k) = H_0 ... H_(k-1) I[:, :k] from the reflectors geqrf leaves below the
// diagonal of column-major m x n matrices (LAPACK's org2r), one block per matrix; v is m
// values of shared memory.
extern "C" __global__ void umx_la_orgqr(const T* a, const T* tau, T* q, long long m, long long n, long long k) {{
  extern __shared__ unsigned char umx_smem[];
  T* v = (T*)umx_smem;
  const T* ab = a + blockIdx.x * m * n;
  T* qb = q + blockIdx.x * m * k;
  for (long long e = threadIdx.x; e < m * k; e += blockDim.x) qb[e] = (e / k == e % k) ? (T)1 : (T)0;
  for (long long i = k - 1; i >= 0; i--) {{
    __syncthreads();
    for (long long r = threadIdx.x; r < m; r += blockDim.x) v[r] = r < i ? (T)0 : (r == i ? (T)1 : ab[r + i * m]);
    __syncthreads();
    T t = tau[blockIdx.x * k + i];
    // Columns before i are zero in rows i and below: H_i leaves them.
    for (long long c = i + threadIdx.x; c < k; c += blockDim.x) {{
      T w = (T)0;
      for (long long r = i; r < m; r++) w += v[r] * qb[r * k + c];
      w *= t;
      for (long long r = i; r < m; r++) qb[r * k + c] -= w * v[r];
    }}
  }}
}}
// Flips each column of column-major n x n matrices whose largest-magnitude entry (the first
// such) is negative, so eigenvectors do not depend on which library call found them.
extern "C" __global__ void umx_la_sign_columns(T* a, long long n, long long total) {{
  UMX_LOOP(total) {{
    T* col = a + e * n;
    T best = (T)0, big = (T)-1;
    for (long long i = 0; i < n; i++) {{ T x = col[i], m = x < (T)0 ? -x : x; if (m > big) {{ big = m; best = x; }} }}
    if (best < (T)0) for (long long i = 0; i < n; i++) col[i] = -col[i];
  }}
}}
extern "C" __global__ void umx_la_fill(T* a, long long total, T v) {{
  UMX_LOOP(total) {{ a[e] = v; }}
}}
// LAPACK's 1-based row swaps ipiv (k per matrix) as 0-based uint32 pivots, and MLX's
// permutation (row i of a is row perm[i] of L U); order is scratch (m per matrix).
extern "C" __global__ void umx_la_pivots(const int* ipiv, unsigned* piv, unsigned* perm, int* order, long long m, long long k, long long count) {{
  UMX_LOOP(count) {{
    const int* s = ipiv + e * k;
    int* o = order + e * m;
    for (long long i = 0; i < m; i++) o[i] = (int)i;
    for (long long i = 0; i < k; i++) {{
      int r = s[i] - 1;
      piv[e * k + i] = (unsigned)r;
      int t = o[i]; o[i] = o[r]; o[r] = t;
    }}
    for (long long i = 0; i < m; i++) perm[e * m + o[i]] = (unsigned)i;
  }}
}}
"#,
        header = source::HEADER
    )
}

/// Launches helper `name` for `T` over `total` items with these arguments.
fn helper<T: Float>(name: &str, total: usize, args: &mut source::Args) -> Result<()> {
    if total == 0 {
        return Ok(());
    }
    let f = function_for(&format!("linalg|{name}|{}", T::C), || helpers(T::C), name)?;
    let g = gpu()?;
    launch(
        f,
        source::grid_for(total, 256, g.sm_count),
        256,
        0,
        &mut args.pointers(),
    )
}

/// For each matrix of a contiguous batch (`per` elements each), whether it holds an inf or a
/// NaN. Waits for the stream.
fn non_finite<T: Float>(p: Ptr, per: usize, count: usize) -> Result<Vec<bool>> {
    let (_flags, fp) = ints(count)?;
    let mut args = source::Args::default();
    args.push(p)
        .push(per as i64)
        .push((per * count) as i64)
        .push(fp);
    helper::<T>("umx_la_nonfinite", per * count, &mut args)?;
    Ok(read_ints(fp, count)?.into_iter().map(|f| f != 0).collect())
}

fn fill<T: Float>(p: Ptr, len: usize, v: T) -> Result<()> {
    let mut args = source::Args::default();
    args.push(p).push(len as i64).push(v);
    helper::<T>("umx_la_fill", len, &mut args)
}

/// The `lwork` a `_bufferSize` call reports.
fn size(what: &str, f: impl FnOnce(&mut c_int) -> dn::cusolverStatus_t) -> Result<usize> {
    let mut lw: c_int = 0;
    dn_ok(what, f(&mut lw))?;
    Ok(lw.max(1) as usize)
}

fn ci(v: usize) -> c_int {
    v as c_int
}

// ---------------------------------------------------------------------------------------------
// The ops

/// `None` when `a` holds an inf or a NaN: how those spread through LAPACK's pivoting is what
/// NumPy answers, and the CPU's LU reproduces it where cuSOLVER's does not.
fn solve<T: Float>(
    h: &Handles,
    job: &Job,
    a: &ArrayData,
    b: &ArrayData,
) -> Result<Option<Vec<ArrayData>>> {
    let n = job.n;
    let nd = b.shape.len();
    let k = b.shape[nd - 1];
    if b.shape[..nd - 2] != job.batch[..] || b.shape[nd - 2] != n {
        return Err(Error::Device(format!(
            "solve: the gpu kernel got a {:?} and b {:?}",
            a.shape, b.shape
        )));
    }
    let count = job.count;
    let (lu, ap) = col_major::<T>(a)?;
    if non_finite::<T>(ap, n * n, count)?.contains(&true) {
        return Ok(None);
    }
    let (x, bp) = col_major::<T>(b)?;
    let (_ipiv, ipiv) = scratch(count * n * 4)?;
    let (_info, info) = ints(count)?;
    let sz = std::mem::size_of::<T>();
    if count > 1 && n <= BATCHED_MAX_N {
        let (_aa, arr) = pointer_array::<T>(ap, n * n, count)?;
        // SAFETY: `count` column-major n x n matrices, their pointers, n pivots and one info
        // each; all buffers live until the stream is waited for below.
        unsafe {
            blas_ok(
                "getrfBatched",
                T::getrf_batched(h.blas, ci(n), arr, ci(n), ipiv, info, ci(count)),
            )?;
        }
        check_singular(info, count)?;
        let (_ba, barr) = pointer_array::<T>(bp, n * k, count)?;
        let mut arg_info: c_int = 0;
        // SAFETY: as above, with the right-hand sides' pointers.
        unsafe {
            blas_ok(
                "getrsBatched",
                T::getrs_batched(
                    h.blas,
                    ci(n),
                    ci(k),
                    arr,
                    ci(n),
                    ipiv,
                    barr,
                    ci(n),
                    &mut arg_info,
                    ci(count),
                ),
            )?;
        }
        gpu()?.synchronize()?;
        if arg_info != 0 {
            return Err(Error::Device(format!(
                "solve: getrsBatched argument {arg_info}"
            )));
        }
    } else {
        let lwork = size("getrf_bufferSize", |lw| unsafe {
            T::getrf_size(h.dn, ci(n), ci(n), ap, ci(n), lw)
        })?;
        let (_work, work) = scratch(lwork * sz)?;
        for i in 0..count {
            let (am, ip, inf) = (
                ap + (i * n * n * sz) as u64,
                ipiv + (i * n * 4) as u64,
                info + (i * 4) as u64,
            );
            // SAFETY: matrix i, its pivots and info, and the workspace the library asked for.
            unsafe {
                dn_ok(
                    "getrf",
                    T::getrf(h.dn, ci(n), ci(n), am, ci(n), work, ip, inf),
                )?;
            }
        }
        check_singular(info, count)?;
        for i in 0..count {
            let (am, ip, bm, inf) = (
                ap + (i * n * n * sz) as u64,
                ipiv + (i * n * 4) as u64,
                bp + (i * n * k * sz) as u64,
                info + (i * 4) as u64,
            );
            // SAFETY: the factors of matrix i and its right-hand sides.
            unsafe {
                dn_ok(
                    "getrs",
                    T::getrs(h.dn, ci(n), ci(k), am, ci(n), ip, bm, ci(n), inf),
                )?;
            }
        }
        gpu()?.synchronize()?;
    }
    drop(lu);
    Ok(Some(vec![col_major_view(&x, job, n, k, n * k)]))
}

/// NumPy's "Singular matrix" for the first matrix whose LU met an exactly zero pivot.
fn check_singular(info: Ptr, count: usize) -> Result<()> {
    let infos = read_ints(info, count)?;
    if let Some((b, &row)) = infos.iter().enumerate().find(|(_, i)| **i != 0) {
        if row < 0 {
            return Err(Error::Device(format!("solve: getrf argument {}", -row)));
        }
        return Err(Error::Invalid(format!(
            "solve: Singular matrix (the LU factorization of matrix {b} of the batch has a zero \
             pivot at row {})",
            row - 1
        )));
    }
    Ok(())
}

fn solve_triangular<T: Float>(
    h: &Handles,
    job: &Job,
    a: &ArrayData,
    b: &ArrayData,
    upper: bool,
) -> Result<Vec<ArrayData>> {
    let (n, count) = (job.n, job.count);
    let nd = b.shape.len();
    let k = b.shape[nd - 1];
    if b.shape[..nd - 2] != job.batch[..] || b.shape[nd - 2] != n {
        return Err(Error::Device(format!(
            "solve_triangular: the gpu kernel got a {:?} and b {:?}",
            a.shape, b.shape
        )));
    }
    let (at, ap) = row_major::<T>(a)?;
    let (x, bp) = row_major::<T>(b)?;
    // Row-major A read column-major is Aᵀ: its other triangle holds A's.
    let uplo = if upper {
        blas::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER
    } else {
        blas::cublasFillMode_t::CUBLAS_FILL_MODE_UPPER
    };
    let sz = std::mem::size_of::<T>();
    if count > 1 && n <= BATCHED_MAX_N {
        let (_aa, arr) = pointer_array::<T>(ap, n * n, count)?;
        let (_ba, barr) = pointer_array::<T>(bp, n * k, count)?;
        // SAFETY: `count` n x n matrices and n x k right-hand sides (k x n column-major), and
        // their pointers, alive until the wait below.
        unsafe {
            blas_ok(
                "trsmBatched",
                T::trsm_batched(
                    h.blas,
                    uplo,
                    ci(k),
                    ci(n),
                    arr,
                    ci(n),
                    barr,
                    ci(k),
                    ci(count),
                ),
            )?;
        }
    } else {
        for i in 0..count {
            let (am, bm) = (ap + (i * n * n * sz) as u64, bp + (i * n * k * sz) as u64);
            // SAFETY: matrix i and its right-hand sides.
            unsafe {
                blas_ok(
                    "trsm",
                    T::trsm(h.blas, uplo, ci(k), ci(n), am, ci(n), bm, ci(k)),
                )?;
            }
        }
    }
    gpu()?.synchronize()?;
    drop(at);
    Ok(vec![x])
}

fn cholesky<T: Float>(
    h: &Handles,
    job: &Job,
    a: &ArrayData,
    upper: bool,
) -> Result<Vec<ArrayData>> {
    let (n, count) = (job.n, job.count);
    // The factorization reads the lower triangle of a column-major matrix: for the lower
    // factor that is a column-major copy of A (the factor comes back column-major); for the
    // upper one a row-major copy, whose lower triangle read column-major is A's upper one,
    // and whose factor L read row-major is Lᵀ, the upper factor asked for.
    let (l, ap) = if upper {
        row_major::<T>(a)?
    } else {
        col_major::<T>(a)?
    };
    if let Some(b) = non_finite::<T>(ap, n * n, count)?.iter().position(|&f| f) {
        return Err(not_positive_definite(b));
    }
    let uplo = dn::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER;
    let (_info, info) = ints(count)?;
    let sz = std::mem::size_of::<T>();
    if count > 1 && n <= BATCHED_MAX_N {
        let (_aa, arr) = pointer_array::<T>(ap, n * n, count)?;
        // SAFETY: `count` n x n matrices, their pointers and one info each.
        unsafe {
            dn_ok(
                "potrfBatched",
                T::potrf_batched(h.dn, uplo, ci(n), arr, ci(n), info, ci(count)),
            )?;
        }
        gpu()?.synchronize()?;
    } else {
        let lwork = size("potrf_bufferSize", |lw| unsafe {
            T::potrf_size(h.dn, uplo, ci(n), ap, ci(n), lw)
        })?;
        let (_work, work) = scratch(lwork * sz)?;
        for i in 0..count {
            // SAFETY: matrix i, the workspace and matrix i's info.
            unsafe {
                dn_ok(
                    "potrf",
                    T::potrf(
                        h.dn,
                        uplo,
                        ci(n),
                        ap + (i * n * n * sz) as u64,
                        ci(n),
                        work,
                        ci(lwork),
                        info + (i * 4) as u64,
                    ),
                )?;
            }
        }
    }
    if let Some(b) = read_ints(info, count)?.iter().position(|&i| i != 0) {
        return Err(not_positive_definite(b));
    }
    // The library leaves the column-major upper triangle as it was: in the buffer's row-major
    // order, the strictly lower one.
    let mut args = source::Args::default();
    args.push(ap)
        .push(n as i64)
        .push((n * n * count) as i64)
        .push(0 as c_int);
    helper::<T>("umx_la_zero_triangle", n * n * count, &mut args)?;
    Ok(vec![if upper {
        l
    } else {
        col_major_view(&l, job, n, n, n * n)
    }])
}

fn not_positive_definite(b: usize) -> Error {
    Error::Invalid(format!(
        "cholesky: Matrix is not positive definite (matrix {b} of the batch)"
    ))
}

fn qr<T: Float>(h: &Handles, job: &Job, a: &ArrayData) -> Result<Vec<ArrayData>> {
    let (m, n, count) = (job.m, job.n, job.count);
    if count > 1 && m >= n && m <= BATCHED_MAX_N {
        return qr_batched::<T>(h, job, a);
    }
    let k = m.min(n);
    let sz = std::mem::size_of::<T>();
    let (q, ap) = col_major::<T>(a)?;
    let (_tau, tau) = scratch(count * k * sz)?;
    let (_info, info) = ints(count)?;
    let lwork = size("geqrf_bufferSize", |lw| unsafe {
        T::geqrf_size(h.dn, ci(m), ci(n), ap, ci(m), lw)
    })?
    .max(size("orgqr_bufferSize", |lw| unsafe {
        T::orgqr_size(h.dn, ci(m), ci(k), ci(k), ap, ci(m), tau, lw)
    })?);
    let (_work, work) = scratch(lwork * sz)?;
    let at = |i: usize| ap + (i * m * n * sz) as u64;
    let tau_at = |i: usize| tau + (i * k * sz) as u64;
    for i in 0..count {
        // SAFETY: matrix i, its k reflector scales, the workspace and its info.
        unsafe {
            dn_ok(
                "geqrf",
                T::geqrf(
                    h.dn,
                    ci(m),
                    ci(n),
                    at(i),
                    ci(m),
                    tau_at(i),
                    work,
                    ci(lwork),
                    info + (i * 4) as u64,
                ),
            )?;
        }
    }
    let (r, rp) = fresh(&job.shape(&[k, n]), T::DTYPE)?;
    let mut args = source::Args::default();
    args.push(ap)
        .push(rp)
        .push(m as i64)
        .push(n as i64)
        .push(k as i64)
        .push((count * k * n) as i64);
    helper::<T>("umx_la_upper_rows", count * k * n, &mut args)?;
    for i in 0..count {
        // SAFETY: as above; Q's k columns replace the reflectors.
        unsafe {
            dn_ok(
                "orgqr",
                T::orgqr(
                    h.dn,
                    ci(m),
                    ci(k),
                    ci(k),
                    at(i),
                    ci(m),
                    tau_at(i),
                    work,
                    ci(lwork),
                    info + (i * 4) as u64,
                ),
            )?;
        }
    }
    if let Some(&bad) = read_ints(info, count)?.iter().find(|&&i| i != 0) {
        return Err(Error::Device(format!("qr: geqrf/orgqr info {bad}")));
    }
    Ok(vec![col_major_view(&q, job, m, k, m * n), r])
}

/// QR of a batch of small matrices with at least as many rows as columns: cuBLAS's batched
/// Householder factorization, then Q formed from the reflectors by one block per matrix.
fn qr_batched<T: Float>(h: &Handles, job: &Job, a: &ArrayData) -> Result<Vec<ArrayData>> {
    let (m, n, count) = (job.m, job.n, job.count);
    let sz = std::mem::size_of::<T>();
    let (_a, ap) = col_major::<T>(a)?;
    let (_tau, tau) = scratch(count * n * sz)?;
    let (_aa, arr) = pointer_array::<T>(ap, m * n, count)?;
    let (_ta, tau_arr) = pointer_array::<T>(tau, n, count)?;
    let mut arg_info: c_int = 0;
    // SAFETY: `count` column-major m x n matrices and n reflector scales each, their
    // pointers, alive until the stream is waited for below.
    unsafe {
        blas_ok(
            "geqrfBatched",
            T::geqrf_batched(
                h.blas,
                ci(m),
                ci(n),
                arr,
                ci(m),
                tau_arr,
                &mut arg_info,
                ci(count),
            ),
        )?;
    }
    if arg_info != 0 {
        return Err(Error::Device(format!(
            "qr: geqrfBatched argument {arg_info}"
        )));
    }
    let (r, rp) = fresh(&job.shape(&[n, n]), T::DTYPE)?;
    let mut args = source::Args::default();
    args.push(ap)
        .push(rp)
        .push(m as i64)
        .push(n as i64)
        .push(n as i64)
        .push((count * n * n) as i64);
    helper::<T>("umx_la_upper_rows", count * n * n, &mut args)?;
    let (q, qp) = fresh(&job.shape(&[m, n]), T::DTYPE)?;
    let f = function_for(
        &format!("linalg|umx_la_orgqr|{}", T::C),
        || helpers(T::C),
        "umx_la_orgqr",
    )?;
    let mut args = source::Args::default();
    args.push(ap)
        .push(tau)
        .push(qp)
        .push(m as i64)
        .push(n as i64)
        .push(n as i64);
    launch(f, count as u32, 128, (m * sz) as u32, &mut args.pointers())?;
    gpu()?.synchronize()?;
    Ok(vec![q, r])
}

fn svd<T: Float>(
    h: &Handles,
    job: &Job,
    a: &ArrayData,
    compute_uv: bool,
) -> Result<Vec<ArrayData>> {
    let (m, n, count) = (job.m, job.n, job.count);
    let k = m.min(n);
    let sz = std::mem::size_of::<T>();
    let (_a, ap) = col_major::<T>(a)?;
    if let Some(b) = non_finite::<T>(ap, m * n, count)?.iter().position(|&f| f) {
        return Err(svd_failed(b));
    }
    let (s, sp) = fresh(&job.shape(&[k]), T::DTYPE)?;
    let jobz = if compute_uv {
        dn::cusolverEigMode_t::CUSOLVER_EIG_MODE_VECTOR
    } else {
        dn::cusolverEigMode_t::CUSOLVER_EIG_MODE_NOVECTOR
    };
    // U is m x m column-major (returned as a transposed view); V is n x n column-major, which
    // read row-major is Vᵀ, the output itself. Without vectors the library still wants room
    // for one matrix's U and V (it works in them), shared by the batch.
    let (u, vt, up, vp, u_step, v_step);
    if compute_uv {
        let (d, p) = fresh(&job.shape(&[m, m]), T::DTYPE)?;
        let (e, q) = fresh(&job.shape(&[n, n]), T::DTYPE)?;
        (u, vt, up, vp, u_step, v_step) = (Some(d), Some(e), p, q, m * m * sz, n * n * sz);
    } else {
        let (d, p) = fresh(&[m, m], T::DTYPE)?;
        let (e, q) = fresh(&[n, n], T::DTYPE)?;
        (u, vt, up, vp, u_step, v_step) = (Some(d), Some(e), p, q, 0, 0);
    }
    let mut params: dn::gesvdjInfo_t = std::ptr::null_mut();
    // SAFETY: an out-parameter; destroyed below.
    dn_ok("gesvdjInfo", unsafe {
        dn::cusolverDnCreateGesvdjInfo(&mut params)
    })?;
    let result = (|| {
        let lwork = size("gesvdj_bufferSize", |lw| unsafe {
            T::gesvdj_size(
                h.dn,
                jobz,
                ci(m),
                ci(n),
                ap,
                ci(m),
                sp,
                up,
                ci(m),
                vp,
                ci(n),
                lw,
                params,
            )
        })?;
        let (_work, work) = scratch(lwork * sz)?;
        let (_info, info) = ints(count)?;
        for i in 0..count {
            let (ui, vi) = (up + (i * u_step) as u64, vp + (i * v_step) as u64);
            // SAFETY: matrix i, its k singular values, U and V (when asked for), the
            // workspace and its info.
            unsafe {
                dn_ok(
                    "gesvdj",
                    T::gesvdj(
                        h.dn,
                        jobz,
                        ci(m),
                        ci(n),
                        ap + (i * m * n * sz) as u64,
                        ci(m),
                        sp + (i * k * sz) as u64,
                        ui,
                        ci(m),
                        vi,
                        ci(n),
                        work,
                        ci(lwork),
                        info + (i * 4) as u64,
                        params,
                    ),
                )?;
            }
        }
        match read_ints(info, count)?.iter().position(|&i| i != 0) {
            Some(b) => Err(svd_failed(b)),
            None => Ok(()),
        }
    })();
    // SAFETY: the stream was waited for (or the calls failed); nothing uses the params now.
    unsafe { dn::cusolverDnDestroyGesvdjInfo(params) };
    result?;
    Ok(match (u, vt) {
        (Some(u), Some(vt)) if compute_uv => vec![col_major_view(&u, job, m, m, m * m), s, vt],
        _ => vec![s],
    })
}

fn svd_failed(b: usize) -> Error {
    Error::Invalid(format!(
        "svd: SVD did not converge (matrix {b} of the batch)"
    ))
}

fn eigh<T: Float>(
    h: &Handles,
    job: &Job,
    a: &ArrayData,
    upper: bool,
    vectors: bool,
) -> Result<Vec<ArrayData>> {
    let (n, count) = (job.n, job.count);
    let sz = std::mem::size_of::<T>();
    let (v, ap) = row_major::<T>(a)?;
    let bad = non_finite::<T>(ap, n * n, count)?;
    let (w, wp) = fresh(&job.shape(&[n]), T::DTYPE)?;
    let jobz = if vectors {
        dn::cusolverEigMode_t::CUSOLVER_EIG_MODE_VECTOR
    } else {
        dn::cusolverEigMode_t::CUSOLVER_EIG_MODE_NOVECTOR
    };
    // As in `cholesky`: the column-major reading holds the triangle as the other one. The
    // eigenvectors overwrite it column-major.
    let uplo = if upper {
        dn::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER
    } else {
        dn::cublasFillMode_t::CUBLAS_FILL_MODE_UPPER
    };
    let (_info, info) = ints(count)?;
    let at = |i: usize| ap + (i * n * n * sz) as u64;
    // Matrices holding an inf or a NaN are not factored (they are zeroed for the batched
    // call): their eigenvalues and vectors are NaNs, NumPy's answer, not an error.
    for (i, _) in bad.iter().enumerate().filter(|(_, b)| **b) {
        fill::<T>(at(i), n * n, T::default())?;
    }
    if count > 1 && n <= BATCHED_MAX_N {
        let mut params: dn::cusolverDnParams_t = std::ptr::null_mut();
        // SAFETY: an out-parameter; destroyed below.
        dn_ok("params", unsafe { dn::cusolverDnCreateParams(&mut params) })?;
        let result = (|| {
            let (mut dev_bytes, mut host_bytes) = (0usize, 0usize);
            // SAFETY: sizes for `count` n x n matrices of this precision.
            dn_ok("syevBatched_bufferSize", unsafe {
                dn::cusolverDnXsyevBatched_bufferSize(
                    h.dn,
                    params,
                    jobz,
                    uplo,
                    n as i64,
                    T::REAL,
                    ap as *const _,
                    n as i64,
                    T::REAL,
                    wp as *const _,
                    T::REAL,
                    &mut dev_bytes,
                    &mut host_bytes,
                    count as i64,
                )
            })?;
            let (_work, work) = scratch(dev_bytes)?;
            let mut host = vec![0u8; host_bytes.max(1)];
            // SAFETY: the batch, its eigenvalues, the workspaces (the host one lives until
            // the stream is waited for) and one info each.
            dn_ok("syevBatched", unsafe {
                dn::cusolverDnXsyevBatched(
                    h.dn,
                    params,
                    jobz,
                    uplo,
                    n as i64,
                    T::REAL,
                    ap as *mut _,
                    n as i64,
                    T::REAL,
                    wp as *mut _,
                    T::REAL,
                    work as *mut _,
                    dev_bytes,
                    host.as_mut_ptr() as *mut _,
                    host_bytes,
                    info as *mut c_int,
                    count as i64,
                )
            })?;
            gpu()?.synchronize()?;
            drop(host);
            Ok(())
        })();
        // SAFETY: the stream was waited for (or the call failed).
        unsafe { dn::cusolverDnDestroyParams(params) };
        result?;
    } else {
        let lwork = size("syevd_bufferSize", |lw| unsafe {
            T::syevd_size(h.dn, jobz, uplo, ci(n), ap, ci(n), wp, lw)
        })?;
        let (_work, work) = scratch(lwork * sz)?;
        for (i, _) in bad.iter().enumerate().filter(|(_, b)| !**b) {
            // SAFETY: matrix i, its n eigenvalues, the workspace and its info.
            unsafe {
                dn_ok(
                    "syevd",
                    T::syevd(
                        h.dn,
                        jobz,
                        uplo,
                        ci(n),
                        at(i),
                        ci(n),
                        wp + (i * n * sz) as u64,
                        work,
                        ci(lwork),
                        info + (i * 4) as u64,
                    ),
                )?;
            }
        }
    }
    if vectors {
        // The batched and the one-matrix calls pick different signs: one convention for both.
        let mut args = source::Args::default();
        args.push(ap).push(n as i64).push((count * n) as i64);
        helper::<T>("umx_la_sign_columns", count * n, &mut args)?;
    }
    let infos = read_ints(info, count)?;
    for (i, _) in bad.iter().enumerate().filter(|(_, b)| **b) {
        fill::<T>(wp + (i * n * sz) as u64, n, T::nan())?;
        fill::<T>(at(i), n * n, T::nan())?;
    }
    if let Some(b) = (0..count).find(|&i| infos[i] != 0 && !bad[i]) {
        return Err(Error::Invalid(format!(
            "eigh: no convergence (matrix {b} of the batch)"
        )));
    }
    Ok(if vectors {
        vec![w, col_major_view(&v, job, n, n, n * n)]
    } else {
        vec![w]
    })
}

/// `None` for non-finite input, as [`solve`].
fn lu_factor<T: Float>(h: &Handles, job: &Job, a: &ArrayData) -> Result<Option<Vec<ArrayData>>> {
    let (m, n, count) = (job.m, job.n, job.count);
    let k = m.min(n);
    let sz = std::mem::size_of::<T>();
    let (lu, ap) = col_major::<T>(a)?;
    if non_finite::<T>(ap, m * n, count)?.contains(&true) {
        return Ok(None);
    }
    let (_ipiv, ipiv) = scratch(count * k * 4)?;
    let (_info, info) = ints(count)?;
    if count > 1 && m == n && n <= BATCHED_MAX_N {
        let (_aa, arr) = pointer_array::<T>(ap, n * n, count)?;
        // SAFETY: `count` n x n matrices, their pointers, n pivots and one info each.
        unsafe {
            blas_ok(
                "getrfBatched",
                T::getrf_batched(h.blas, ci(n), arr, ci(n), ipiv, info, ci(count)),
            )?;
        }
        gpu()?.synchronize()?;
    } else {
        let lwork = size("getrf_bufferSize", |lw| unsafe {
            T::getrf_size(h.dn, ci(m), ci(n), ap, ci(m), lw)
        })?;
        let (_work, work) = scratch(lwork * sz)?;
        for i in 0..count {
            // SAFETY: matrix i, its k pivots and info, and the workspace.
            unsafe {
                dn_ok(
                    "getrf",
                    T::getrf(
                        h.dn,
                        ci(m),
                        ci(n),
                        ap + (i * m * n * sz) as u64,
                        ci(m),
                        work,
                        ipiv + (i * k * 4) as u64,
                        info + (i * 4) as u64,
                    ),
                )?;
            }
        }
    }
    // A zero pivot (info > 0) is kept, as LAPACK leaves it; only argument errors fail.
    if let Some(&bad) = read_ints(info, count)?.iter().find(|&&i| i < 0) {
        return Err(Error::Device(format!("lu_factor: getrf argument {}", -bad)));
    }
    let (piv, pp) = fresh(&job.shape(&[k]), Dtype::Uint32)?;
    let (perm, permp) = fresh(&job.shape(&[m]), Dtype::Uint32)?;
    let (_order, order) = scratch(count * m * 4)?;
    let mut args = source::Args::default();
    args.push(ipiv)
        .push(pp)
        .push(permp)
        .push(order)
        .push(m as i64)
        .push(k as i64)
        .push(count as i64);
    helper::<T>("umx_la_pivots", count, &mut args)?;
    Ok(Some(vec![col_major_view(&lu, job, m, n, m * n), piv, perm]))
}

fn eig<T: Float>(h: &Handles, job: &Job, a: &ArrayData, vectors: bool) -> Result<Vec<ArrayData>> {
    let (n, count) = (job.n, job.count);
    let sz = std::mem::size_of::<T>();
    let (_a, ap) = col_major::<T>(a)?;
    if let Some(b) = non_finite::<T>(ap, n * n, count)?.iter().position(|&f| f) {
        return Err(Error::Invalid(format!(
            "eig: Array must not contain infs or NaNs (matrix {b} of the batch)"
        )));
    }
    // The eigenvalues in this precision (complex), the real packed eigenvectors.
    let (_w, wp) = scratch(count * n * 2 * sz)?;
    let (_vr, vrp) = scratch(if vectors { count * n * n * sz } else { sz })?;
    let jobvr = if vectors {
        dn::cusolverEigMode_t::CUSOLVER_EIG_MODE_VECTOR
    } else {
        dn::cusolverEigMode_t::CUSOLVER_EIG_MODE_NOVECTOR
    };
    let novector = dn::cusolverEigMode_t::CUSOLVER_EIG_MODE_NOVECTOR;
    let mut params: dn::cusolverDnParams_t = std::ptr::null_mut();
    // SAFETY: an out-parameter; destroyed below.
    dn_ok("params", unsafe { dn::cusolverDnCreateParams(&mut params) })?;
    let result = (|| {
        let (mut dev_bytes, mut host_bytes) = (0usize, 0usize);
        // SAFETY: sizes for an n x n matrix of this precision.
        dn_ok("geev_bufferSize", unsafe {
            dn::cusolverDnXgeev_bufferSize(
                h.dn,
                params,
                novector,
                jobvr,
                n as i64,
                T::REAL,
                ap as *const _,
                n as i64,
                T::COMPLEX,
                wp as *const _,
                T::REAL,
                std::ptr::null(),
                1,
                T::REAL,
                vrp as *const _,
                n as i64,
                T::REAL,
                &mut dev_bytes,
                &mut host_bytes,
            )
        })?;
        let (_work, work) = scratch(dev_bytes)?;
        let mut host = vec![0u8; host_bytes.max(1)];
        let (_info, info) = ints(count)?;
        for i in 0..count {
            let vri = if vectors {
                vrp + (i * n * n * sz) as u64
            } else {
                vrp
            };
            // SAFETY: matrix i, its n complex eigenvalues and packed vectors, the workspaces
            // (the host one lives until the stream is waited for) and its info.
            dn_ok("geev", unsafe {
                dn::cusolverDnXgeev(
                    h.dn,
                    params,
                    novector,
                    jobvr,
                    n as i64,
                    T::REAL,
                    (ap + (i * n * n * sz) as u64) as *mut _,
                    n as i64,
                    T::COMPLEX,
                    (wp + (i * n * 2 * sz) as u64) as *mut _,
                    T::REAL,
                    std::ptr::null_mut(),
                    1,
                    T::REAL,
                    vri as *mut _,
                    n as i64,
                    T::REAL,
                    work as *mut _,
                    dev_bytes,
                    host.as_mut_ptr() as *mut _,
                    host_bytes,
                    (info + (i * 4) as u64) as *mut c_int,
                )
            })?;
        }
        let infos = read_ints(info, count)?;
        drop(host);
        match infos.iter().position(|&i| i != 0) {
            Some(b) => Err(Error::Invalid(format!(
                "eig: Eigenvalues did not converge (matrix {b} of the batch)"
            ))),
            None => Ok(()),
        }
    })();
    // SAFETY: the stream was waited for (or the calls failed); nothing uses the params now.
    unsafe { dn::cusolverDnDestroyParams(params) };
    result?;
    let (w, wout) = fresh(&job.shape(&[n]), Dtype::Complex64)?;
    let mut args = source::Args::default();
    args.push(wp).push(wout).push((count * n * 2) as i64);
    helper::<T>("umx_la_narrow", count * n * 2, &mut args)?;
    if !vectors {
        return Ok(vec![w]);
    }
    let (v, vout) = fresh(&job.shape(&[n, n]), Dtype::Complex64)?;
    let mut args = source::Args::default();
    args.push(wp)
        .push(vrp)
        .push(vout)
        .push(n as i64)
        .push((count * n * n) as i64);
    helper::<T>("umx_la_eig_vectors", count * n * n, &mut args)?;
    Ok(vec![w, v])
}

trait Nan {
    fn nan() -> Self;
}
impl Nan for f32 {
    fn nan() -> f32 {
        f32::NAN
    }
}
impl Nan for f64 {
    fn nan() -> f64 {
        f64::NAN
    }
}
