//! Solvers and what is built on them: `solve`, `solve_triangular`, `inv`, `tri_inv`,
//! `cholesky_inv`, `pinv`, `det`, `slogdet`. `solve` and `solve_triangular` are primitives;
//! the others are made of them, `svd` and `lu_factor`, so their derivatives come from those.

use super::decompositions::{FLOATS, check_float_matrix, eye_of, matrix_size, one};
use crate::primitives::LinalgOp;
use crate::primitives::linalg::{apply, check_dtype, check_square};
use crate::shape::{broadcast_shapes, fmt_shape};
use crate::{Array, Dtype, Result, bail, ops, promote_types};

/// `a` with its batch dims broadcast to `batch` (a view).
fn with_batch(a: &Array, batch: &[usize]) -> Result<Array> {
    let nd = a.ndim();
    let mut shape = batch.to_vec();
    shape.extend_from_slice(&a.shape()[nd - 2..]);
    if shape == a.shape() {
        return Ok(a.clone());
    }
    ops::broadcast_to(a, &shape)
}

/// `op` (solve or solve_triangular) of `a (…, n, n)` and `b` (`(n,)`: one vector for every
/// matrix; else `(…, n, k)`), with NumPy 2's rules: batch dims broadcast.
fn solve_with(name: &str, op: LinalgOp, a: &Array, b: &Array) -> Result<Array> {
    a.check()?;
    b.check()?;
    check_square(name, a.shape())?;
    let dtype = promote_types(a.dtype(), b.dtype());
    if !FLOATS.contains(&dtype) {
        bail!(
            "{name}: input arrays must promote to float32 or float64, got {} of shape {} and {} \
             of shape {}",
            a.dtype(),
            fmt_shape(a.shape()),
            b.dtype(),
            fmt_shape(b.shape())
        );
    }
    let n = a.shape()[a.ndim() - 1];
    let vector = b.ndim() == 1;
    let rows = match b.ndim() {
        0 => None,
        1 => Some(b.shape()[0]),
        d => Some(b.shape()[d - 2]),
    };
    if rows != Some(n) {
        bail!(
            "{name}: shapes {} and {} do not fit: b must be (n,) or (..., n, k) with n = {n}, the \
             size of a's square matrices",
            fmt_shape(a.shape()),
            fmt_shape(b.shape())
        );
    }
    let a_batch = &a.shape()[..a.ndim() - 2];
    let (b2, b_batch): (Array, &[usize]) = if vector {
        (ops::reshape(b, &[n as i64, 1])?, &[])
    } else {
        (b.clone(), &b.shape()[..b.ndim() - 2])
    };
    let batch = broadcast_shapes(name, a_batch, b_batch).map_err(|_| {
        crate::Error::Invalid(format!(
            "{name}: the batch dimensions of shapes {} and {} cannot be broadcast together",
            fmt_shape(a.shape()),
            fmt_shape(b.shape())
        ))
    })?;
    let a = ops::astype(&with_batch(a, &batch)?, dtype)?;
    let b2 = ops::astype(&with_batch(&b2, &batch)?, dtype)?;
    let x = one(apply(op, vec![a, b2])?);
    if vector {
        let mut shape: Vec<i64> = batch.iter().map(|&d| d as i64).collect();
        shape.push(n as i64);
        ops::reshape(&x, &shape)
    } else {
        Ok(x)
    }
}

/// The solution `x` of `a x = b` for square `a (…, n, n)`, by LU with partial pivoting. `b` is
/// one vector `(n,)` or matrices `(…, n, k)`; batch dims broadcast (NumPy 2's rules). Inputs
/// must promote to float32 or float64. Evaluating fails with "Singular matrix" when an LU pivot
/// is exactly zero.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let a = Array::from_slice(&[2.0f32, 0.0, 0.0, 4.0], &[2, 2])?;
/// let b = Array::from_slice(&[2.0f32, 2.0], &[2])?;
/// assert_eq!(linalg::solve(&a, &b)?.to_vec::<f32>()?, vec![1.0, 0.5]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn solve(a: &Array, b: &Array) -> Result<Array> {
    solve_with("solve", LinalgOp::Solve, a, b)
}

/// The solution `x` of `t x = b` where `t` is the lower (`upper`: upper) triangle of `a`; the
/// other triangle is not read. Shapes and dtypes as [`solve`]; a zero on the diagonal gives
/// infinities or NaNs.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let a = Array::from_slice(&[2.0f32, 9.0, 1.0, 1.0], &[2, 2])?; // 9 is above: ignored
/// let b = Array::from_slice(&[2.0f32, 3.0], &[2])?;
/// assert_eq!(linalg::solve_triangular(&a, &b, false)?.to_vec::<f32>()?, vec![1.0, 2.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn solve_triangular(a: &Array, b: &Array, upper: bool) -> Result<Array> {
    solve_with(
        "solve_triangular",
        LinalgOp::SolveTriangular { upper },
        a,
        b,
    )
}

/// The identity matrices `(…, n, n)` matching square `a`.
fn identity_like(a: &Array) -> Result<Array> {
    let (n, _) = matrix_size(a);
    with_batch(&eye_of(n, n, a.dtype())?, &a.shape()[..a.ndim() - 2])
}

/// The inverse of square matrices (float32 or float64), as `solve(a, I)`. Evaluating fails
/// with "Singular matrix" when an LU pivot is exactly zero.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let a = Array::from_slice(&[2.0f32, 0.0, 0.0, 4.0], &[2, 2])?;
/// assert_eq!(linalg::inv(&a)?.to_vec::<f32>()?, vec![0.5, 0.0, 0.0, 0.25]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn inv(a: &Array) -> Result<Array> {
    check_float_matrix("inv", a, true)?;
    Ok(one(apply(
        LinalgOp::Solve,
        vec![a.clone(), identity_like(a)?],
    )?))
}

/// The inverse of triangular matrices: of the lower (`upper`: upper) triangle of `a`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let a = Array::from_slice(&[2.0f32, 7.0, 0.0, 4.0], &[2, 2])?;
/// assert_eq!(linalg::tri_inv(&a, true)?.to_vec::<f32>()?, vec![0.5, -0.875, 0.0, 0.25]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn tri_inv(a: &Array, upper: bool) -> Result<Array> {
    check_float_matrix("tri_inv", a, true)?;
    let op = LinalgOp::SolveTriangular { upper };
    Ok(one(apply(op, vec![a.clone(), identity_like(a)?])?))
}

/// The inverse of `A = L Lᵀ` (`upper`: `A = Uᵀ U`) from its Cholesky factor `l`, as MLX's
/// `cholesky_inv`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let l = Array::from_slice(&[2.0f32, 0.0, 0.0, 4.0], &[2, 2])?;
/// assert_eq!(linalg::cholesky_inv(&l, false)?.to_vec::<f32>()?, vec![0.25, 0.0, 0.0, 0.0625]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn cholesky_inv(l: &Array, upper: bool) -> Result<Array> {
    check_float_matrix("cholesky_inv", l, true)?;
    let op = LinalgOp::SolveTriangular { upper };
    let t_inv = one(apply(op, vec![l.clone(), identity_like(l)?])?);
    let t = ops::swapaxes(&t_inv, -1, -2)?;
    if upper {
        ops::matmul(&t_inv, &t)
    } else {
        ops::matmul(&t, &t_inv)
    }
}

/// The Moore–Penrose pseudo-inverse `(…, n, m)` of matrices `(…, m, n)`, from their SVD:
/// singular values up to `max(m, n) · eps · max(S)` count as zero (NumPy's default).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let a = Array::from_slice(&[1.0f64, 1.0], &[1, 2])?;
/// let p = linalg::pinv(&a)?.to_vec::<f64>()?;
/// assert!(p.iter().all(|v| (v - 0.5).abs() < 1e-15));
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn pinv(a: &Array) -> Result<Array> {
    check_float_matrix("pinv", a, false)?;
    let (m, n) = matrix_size(a);
    let k = m.min(n);
    let nd = a.ndim();
    if k == 0 {
        let mut shape = a.shape().to_vec();
        shape.swap(nd - 2, nd - 1);
        return ops::zeros(&shape, a.dtype());
    }
    let usv = apply(LinalgOp::Svd { compute_uv: true }, vec![a.clone()])?;
    let (u, s, vt) = (&usv[0], &usv[1], &usv[2]);
    let first = |x: &Array, axis: usize| -> Result<Array> {
        let mut stop: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
        stop[axis] = k as i64;
        ops::slice(x, &vec![0; x.ndim()], &stop, &[])
    };
    let (uk, vtk) = (first(u, nd - 1)?, first(vt, nd - 2)?);
    let eps = match a.dtype() {
        Dtype::Float64 => f64::EPSILON,
        _ => f32::EPSILON as f64,
    };
    let cutoff = ops::multiply(&ops::max(s, -1, true)?, m.max(n) as f64 * eps)?;
    let keep = ops::greater(s, &cutoff)?;
    let safe = ops::where_(&keep, s, 1.0)?;
    let s_inv = ops::where_(&keep, &ops::reciprocal(&safe)?, 0.0)?;
    let v_scaled = ops::multiply(
        &ops::swapaxes(&vtk, -1, -2)?,
        &ops::expand_dims(&s_inv, -2)?,
    )?;
    ops::matmul(&v_scaled, &ops::swapaxes(&uk, -1, -2)?)
}

/// The dtype `det` and `slogdet` compute in, and the one they return.
fn det_dtypes(op: &str, a: &Array) -> Result<(Dtype, Dtype)> {
    a.check()?;
    check_square(op, a.shape())?;
    let d = a.dtype();
    if d.is_complex() {
        bail!(
            "{op}: complex inputs are not supported, got {d} of shape {}",
            fmt_shape(a.shape())
        );
    }
    Ok(match d {
        Dtype::Float64 => (Dtype::Float64, Dtype::Float64),
        Dtype::Float16 | Dtype::Bfloat16 => (Dtype::Float32, d),
        _ => (Dtype::Float32, Dtype::Float32),
    })
}

/// The diagonal of `U` and the sign of the row permutation, from an LU factorization of `a`.
fn lu_parts(a: &Array, compute: Dtype) -> Result<(Array, Array)> {
    check_dtype("det", a.shape(), compute, &FLOATS)?;
    let outs = apply(LinalgOp::LuFactor, vec![ops::astype(a, compute)?])?;
    let diag = ops::diagonal(&outs[0], 0, -2, -1)?;
    let k = outs[1].shape()[outs[1].ndim() - 1];
    let steps = ops::arange(0.0, k as f64, 1.0, Dtype::Uint32)?;
    let swaps = ops::sum(&ops::not_equal(&outs[1], &steps)?, -1, false)?;
    let odd = ops::remainder(&swaps, 2)?;
    let sign = ops::subtract(1.0, &ops::multiply(&ops::astype(&odd, compute)?, 2.0)?)?;
    Ok((diag, sign))
}

/// The determinants of square matrices, from their LU factorization. Integer and bool inputs
/// give float32; float16 and bfloat16 compute in float32 and round once; complex inputs are an
/// error (as in MLX). Singular matrices give 0.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let a = Array::from_slice(&[2.0f32, 1.0, 1.0, 3.0], &[2, 2])?;
/// assert_eq!(linalg::det(&a)?.item::<f32>()?, 5.0);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn det(a: &Array) -> Result<Array> {
    let (compute, out) = det_dtypes("det", a)?;
    let (diag, sign) = lu_parts(a, compute)?;
    let d = ops::multiply(&ops::prod(&diag, -1, false)?, &sign)?;
    ops::astype(&d, out)
}

/// The sign and the natural logarithm of the absolute value of the determinants:
/// `(sign, logabsdet)` with `det = sign · exp(logabsdet)`, which does not overflow where
/// [`det`] would. Singular matrices give `(0, -inf)`. Dtypes as [`det`].
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let a = Array::from_slice(&[-2.0f64, 0.0, 0.0, 3.0], &[2, 2])?;
/// let (sign, logdet) = linalg::slogdet(&a)?;
/// assert_eq!(sign.item::<f64>()?, -1.0);
/// assert!((logdet.item::<f64>()? - 6.0f64.ln()).abs() < 1e-12);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn slogdet(a: &Array) -> Result<(Array, Array)> {
    let (compute, out) = det_dtypes("slogdet", a)?;
    let (diag, sign) = lu_parts(a, compute)?;
    let sign = ops::multiply(&sign, &ops::prod(&ops::sign(&diag)?, -1, false)?)?;
    let logdet = ops::sum(&ops::log(&ops::abs(&diag)?)?, -1, false)?;
    Ok((ops::astype(&sign, out)?, ops::astype(&logdet, out)?))
}
