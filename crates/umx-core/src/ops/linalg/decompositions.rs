//! The factorizations of `umx::linalg`: `cholesky`, `qr`, `svd`, `eig`, `eigvals`, `eigh`,
//! `eigvalsh`, `lu`, `lu_factor`. Each is one primitive (`primitives/linalg.rs`), batched over
//! the leading axes.

use crate::primitives::LinalgOp;
use crate::primitives::linalg::{apply, check_dtype, check_matrix, check_square};
use crate::{Array, Dtype, Result, bail, ops};

/// The dtypes MLX's factorizations take.
pub(super) const FLOATS: [Dtype; 2] = [Dtype::Float32, Dtype::Float64];

/// Checks a float32/float64 (batch of) matrices, square if asked.
pub(super) fn check_float_matrix(op: &str, a: &Array, square: bool) -> Result<()> {
    a.check()?;
    if square {
        check_square(op, a.shape())?;
    } else {
        check_matrix(op, a.shape())?;
    }
    check_dtype(op, a.shape(), a.dtype(), &FLOATS)
}

/// `(rows, cols)` of the matrices of `a` (at least 2-D).
pub(super) fn matrix_size(a: &Array) -> (usize, usize) {
    let nd = a.ndim();
    (a.shape()[nd - 2], a.shape()[nd - 1])
}

/// The `(n, m)` matrix of `dtype` with ones on its main diagonal (any size, zero included).
pub(super) fn eye_of(n: usize, m: usize, dtype: Dtype) -> Result<Array> {
    let mut v = vec![0.0; n * m];
    for i in 0..n.min(m) {
        v[i * m + i] = 1.0;
    }
    Array::from_f64s(&v, &[n, m], dtype)
}

/// The one output of a single-output primitive.
pub(super) fn one(mut outs: Vec<Array>) -> Array {
    outs.swap_remove(0)
}

/// Whether `eigh` and `eigvalsh` read the upper triangle, from NumPy's `UPLO`.
fn reads_upper(op: &str, uplo: &str) -> Result<bool> {
    match uplo {
        "L" | "l" => Ok(false),
        "U" | "u" => Ok(true),
        other => bail!("{op}: UPLO must be \"L\" or \"U\", got {other:?}"),
    }
}

/// The Cholesky factor of symmetric positive-definite matrices: lower `L` with `a = L Lᵀ`, or
/// (`upper`) upper `U` with `a = Uᵀ U`. Only the lower (`upper`: upper) triangle of `a` is
/// read, as NumPy does. Evaluating fails with "not positive definite" when a matrix is not.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let a = Array::from_slice(&[4.0f32, 2.0, 2.0, 5.0], &[2, 2])?;
/// assert_eq!(linalg::cholesky(&a, false)?.to_vec::<f32>()?, vec![2.0, 0.0, 1.0, 2.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn cholesky(a: &Array, upper: bool) -> Result<Array> {
    check_float_matrix("cholesky", a, true)?;
    Ok(one(apply(LinalgOp::Cholesky { upper }, vec![a.clone()])?))
}

/// The reduced QR factorization `a = Q R`: `Q (…, m, k)` with orthonormal columns and upper
/// triangular `R (…, k, n)`, `k = min(m, n)` (NumPy's `mode="reduced"`).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg, ops};
/// let a = Array::from_slice(&[3.0f64, 1.0, 4.0, 2.0], &[2, 2])?;
/// let (q, r) = linalg::qr(&a)?;
/// assert!(ops::allclose(&ops::matmul(&q, &r)?, &a, 1e-12, 1e-12, false)?.item::<bool>()?);
/// assert_eq!(r.to_vec::<f64>()?[2], 0.0);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn qr(a: &Array) -> Result<(Array, Array)> {
    check_float_matrix("qr", a, false)?;
    let mut outs = apply(LinalgOp::Qr, vec![a.clone()])?;
    let r = outs.pop().expect("qr has two outputs");
    Ok((outs.pop().expect("qr has two outputs"), r))
}

/// The singular value decomposition `a = U[:, :k] diag(S) Vt[:k]`: with `compute_uv`,
/// `[U (…, m, m), S (…, k), Vt (…, n, n)]`, else `[S]`; singular values in non-increasing
/// order (NumPy's `full_matrices=True`). Non-finite input fails at evaluation ("SVD did not
/// converge").
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let a = Array::from_slice(&[3.0f32, 0.0, 0.0, -4.0], &[2, 2])?;
/// let s = linalg::svd(&a, false)?;
/// assert_eq!(s[0].to_vec::<f32>()?, vec![4.0, 3.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn svd(a: &Array, compute_uv: bool) -> Result<Vec<Array>> {
    check_float_matrix("svd", a, false)?;
    apply(LinalgOp::Svd { compute_uv }, vec![a.clone()])
}

/// Checks the input of `eig` and `eigvals`: square, float32, float64 or complex64.
fn check_eig(op: &str, a: &Array) -> Result<()> {
    a.check()?;
    check_square(op, a.shape())?;
    check_dtype(
        op,
        a.shape(),
        a.dtype(),
        &[Dtype::Float32, Dtype::Float64, Dtype::Complex64],
    )
}

/// The eigenvalues `w (…, n)` and right eigenvectors `V (…, n, n)` (columns of unit norm,
/// `a V = V diag(w)`) of general square matrices, both complex64 as in MLX, in no particular
/// order. Non-finite input fails at evaluation.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Complex32, linalg};
/// let a = Array::from_slice(&[0.0f32, -1.0, 1.0, 0.0], &[2, 2])?; // a rotation
/// let (w, _v) = linalg::eig(&a)?;
/// let mut im: Vec<f32> = w.to_vec::<Complex32>()?.iter().map(|z| z.im).collect();
/// im.sort_by(f32::total_cmp);
/// assert_eq!(im, vec![-1.0, 1.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn eig(a: &Array) -> Result<(Array, Array)> {
    check_eig("eig", a)?;
    let mut outs = apply(LinalgOp::Eig { vectors: true }, vec![a.clone()])?;
    let v = outs.pop().expect("eig has two outputs");
    Ok((outs.pop().expect("eig has two outputs"), v))
}

/// The eigenvalues (complex64) of general square matrices, as [`eig`] gives them.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Complex32, linalg};
/// let a = Array::from_slice(&[2.0f32, 0.0, 0.0, 3.0], &[2, 2])?;
/// let mut re: Vec<f32> = linalg::eigvals(&a)?.to_vec::<Complex32>()?.iter().map(|z| z.re).collect();
/// re.sort_by(f32::total_cmp);
/// assert_eq!(re, vec![2.0, 3.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn eigvals(a: &Array) -> Result<Array> {
    check_eig("eigvals", a)?;
    Ok(one(apply(
        LinalgOp::Eig { vectors: false },
        vec![a.clone()],
    )?))
}

/// The eigenvalues `w (…, n)`, ascending, and orthonormal eigenvectors `V (…, n, n)` (columns)
/// of symmetric matrices, read from their lower (`uplo = "L"`) or upper (`"U"`) triangle.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let a = Array::from_slice(&[2.0f64, 1.0, 1.0, 2.0], &[2, 2])?;
/// let (w, _v) = linalg::eigh(&a, "L")?;
/// let w = w.to_vec::<f64>()?;
/// assert!((w[0] - 1.0).abs() < 1e-12 && (w[1] - 3.0).abs() < 1e-12);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn eigh(a: &Array, uplo: &str) -> Result<(Array, Array)> {
    check_float_matrix("eigh", a, true)?;
    let upper = reads_upper("eigh", uplo)?;
    let op = LinalgOp::Eigh {
        upper,
        vectors: true,
    };
    let mut outs = apply(op, vec![a.clone()])?;
    let v = outs.pop().expect("eigh has two outputs");
    Ok((outs.pop().expect("eigh has two outputs"), v))
}

/// The eigenvalues, ascending, of symmetric matrices read from their lower (`"L"`) or upper
/// (`"U"`) triangle.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let a = Array::from_slice(&[2.0f64, 0.0, 0.0, 1.0], &[2, 2])?;
/// assert_eq!(linalg::eigvalsh(&a, "U")?.to_vec::<f64>()?, vec![1.0, 2.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn eigvalsh(a: &Array, uplo: &str) -> Result<Array> {
    check_float_matrix("eigvalsh", a, true)?;
    let upper = reads_upper("eigvalsh", uplo)?;
    let op = LinalgOp::Eigh {
        upper,
        vectors: false,
    };
    Ok(one(apply(op, vec![a.clone()])?))
}

/// The LU factorization with partial pivoting, packed as LAPACK's `getrf` leaves it:
/// `(LU, pivots)` where the strictly lower part of `LU` is `L` (its unit diagonal implied),
/// the upper part is `U`, and row `i` was swapped with row `pivots[i]` (uint32), in order.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let a = Array::from_slice(&[1.0f32, 2.0, 4.0, 2.0], &[2, 2])?;
/// let (lu, piv) = linalg::lu_factor(&a)?;
/// assert_eq!(lu.to_vec::<f32>()?, vec![4.0, 2.0, 0.25, 1.5]);
/// assert_eq!(piv.to_vec::<u32>()?, vec![1, 1]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn lu_factor(a: &Array) -> Result<(Array, Array)> {
    check_float_matrix("lu_factor", a, false)?;
    let mut outs = apply(LinalgOp::LuFactor, vec![a.clone()])?;
    outs.truncate(2);
    let piv = outs.pop().expect("lu_factor has three outputs");
    Ok((outs.pop().expect("lu_factor has three outputs"), piv))
}

/// The LU factorization with partial pivoting as MLX's `lu`: `(p, L, U)` with the uint32 row
/// order `p (…, m)`, unit lower-triangular `L (…, m, k)` and upper-triangular `U (…, k, n)`,
/// such that `a = L[p] @ U` (row `i` of `a` is row `p[i]` of `L U`).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let a = Array::from_slice(&[1.0f32, 2.0, 4.0, 2.0], &[2, 2])?;
/// let (p, l, u) = linalg::lu(&a)?;
/// assert_eq!(p.to_vec::<u32>()?, vec![1, 0]);
/// assert_eq!(l.to_vec::<f32>()?, vec![1.0, 0.0, 0.25, 1.0]);
/// assert_eq!(u.to_vec::<f32>()?, vec![4.0, 2.0, 0.0, 1.5]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn lu(a: &Array) -> Result<(Array, Array, Array)> {
    check_float_matrix("lu", a, false)?;
    let outs = apply(LinalgOp::LuFactor, vec![a.clone()])?;
    let (m, n) = matrix_size(a);
    let k = m.min(n);
    let nd = a.ndim();
    // L is the first k columns of the packed factors, U their first k rows.
    let first = |axis: usize| -> Result<Array> {
        let mut stop: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
        stop[axis] = k as i64;
        ops::slice(&outs[0], &vec![0; nd], &stop, &[])
    };
    let l = ops::add(&ops::tril(&first(nd - 1)?, -1)?, &eye_of(m, k, a.dtype())?)?;
    let u = ops::triu(&first(nd - 2)?, 0)?;
    Ok((outs[2].clone(), l, u))
}
