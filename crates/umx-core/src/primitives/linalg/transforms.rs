//! vjp, jvp and vmap rules of the linear-algebra primitives.
//!
//! The formulas are the standard ones (Giles, "Collected matrix derivative results"; Murray,
//! "Differentiation of the Cholesky decomposition"; Townsend, "Differentiating the singular
//! value decomposition"), written with matrix products and triangular solves:
//!
//! - solve `X = A⁻¹B`: `dX = A⁻¹(dB − dA X)`; `gB = A⁻ᵀG`, `gA = −gB Xᵀ`.
//! - triangular solve: the same with `A`'s triangle, and `gA` kept to that triangle.
//! - Cholesky `S = L Lᵀ`: `dL = L Φ(L⁻¹ dS L⁻ᵀ)` with `Φ` the lower triangle, diagonal halved.
//! - QR (`m ≥ n`): `dQ = Q(Ω − C) + dA R⁻¹`, `dR = (C − Ω)R` with `C = Qᵀ dA R⁻¹` and `Ω` its
//!   skew part below the diagonal; `m < n` splits `R = [X Y]` and reuses the square case.
//! - SVD: `dS = diag(Uᵀ dA V)`, and for `U`, `Vᵀ` the usual `1/(s_j² − s_i²)` terms.
//! - eigh: `dw = diag(Vᵀ dS V)`, `dV = V(F ∘ Vᵀ dS V)` with `F_ij = 1/(w_j − w_i)`.
//! - LU `PA = LU`: `dL = L tril(F, −1)`, `dU = triu(F) U` with `F = L⁻¹ P dA U⁻¹` (square `A`).
//!
//! Cholesky and eigh read one triangle of their input: the symmetric matrix they factor is
//! `S = tril(A) + tril(A, −1)ᵀ` (or the upper analogue), and their rules differentiate exactly
//! that, so a cotangent lands on the triangle read. Divisions by differences of eigenvalues or
//! singular values that are zero (repeated values) are skipped: their terms are zero whenever
//! the cotangents of the vectors are. `eig` has no derivative rules; the pivots and the
//! permutation of `lu_factor` have zero derivatives.
//!
//! Batching: every primitive already maps over leading axes, so the batch axis moves to the
//! front.

use super::{LinalgOp, apply};
use crate::transforms::rules::*;
use crate::{Array, Dtype, Result, bail, ops};

/// The transpose of the last two axes.
fn mt(x: &Array) -> Result<Array> {
    ops::swapaxes(x, -1, -2)
}

fn mm(a: &Array, b: &Array) -> Result<Array> {
    ops::matmul(a, b)
}

fn sub(a: &Array, b: &Array) -> Result<Array> {
    ops::subtract(a, b)
}

fn add(a: &Array, b: &Array) -> Result<Array> {
    ops::add(a, b)
}

/// `A⁻¹ B`.
fn solve(a: &Array, b: &Array) -> Result<Array> {
    first(apply(LinalgOp::Solve, vec![a.clone(), b.clone()])?)
}

/// `T⁻¹ B` with `T` the lower (`upper`: upper) triangle of `a`.
fn solve_tri(a: &Array, b: &Array, upper: bool) -> Result<Array> {
    first(apply(
        LinalgOp::SolveTriangular { upper },
        vec![a.clone(), b.clone()],
    )?)
}

/// `B T⁻¹` with `T` the lower (`upper`: upper) triangle of `a`.
fn solve_tri_right(b: &Array, a: &Array, upper: bool) -> Result<Array> {
    mt(&solve_tri(&mt(a)?, &mt(b)?, !upper)?)
}

fn first(mut v: Vec<Array>) -> Result<Array> {
    Ok(v.swap_remove(0))
}

/// The main diagonal of the last two axes.
fn diag_of(x: &Array) -> Result<Array> {
    ops::diagonal(x, 0, -2, -1)
}

/// An `(n, n)` constant of `dtype` with `on` on the diagonal, `below` under it, `above` over it.
fn pattern(n: usize, dtype: Dtype, below: f64, on: f64, above: f64) -> Result<Array> {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            v[i * n + j] = match i.cmp(&j) {
                std::cmp::Ordering::Greater => below,
                std::cmp::Ordering::Equal => on,
                std::cmp::Ordering::Less => above,
            };
        }
    }
    Array::from_f64s(&v, &[n, n], dtype)
}

/// `v (…, k)` as the diagonal matrices `(…, k, k)`.
fn diag_embed(v: &Array) -> Result<Array> {
    let k = v.shape()[v.ndim() - 1];
    ops::multiply(
        &ops::expand_dims(v, -1)?,
        &pattern(k, v.dtype(), 0.0, 1.0, 0.0)?,
    )
}

/// `1 / x`, with 0 where `x` is 0: the divisions the rules skip.
fn safe_reciprocal(x: &Array) -> Result<Array> {
    let zero = ops::equal(x, 0.0)?;
    let safe = ops::where_(&zero, 1.0, x)?;
    ops::where_(&zero, 0.0, &ops::reciprocal(&safe)?)
}

/// `F_ij = 1 / (v_j − v_i)` off the diagonal (0 where the difference is 0), 0 on it, for
/// `v (…, k)`.
fn inverse_gaps(v: &Array) -> Result<Array> {
    let gaps = sub(&ops::expand_dims(v, -2)?, &ops::expand_dims(v, -1)?)?;
    safe_reciprocal(&gaps)
}

/// The cotangent of a matrix `A` from that of the symmetric `S` built from its lower
/// (`upper`: upper) triangle: `S_ij` and `S_ji` are both `A_ij` for `i > j`.
fn to_triangle(g: &Array, upper: bool) -> Result<Array> {
    let n = g.shape()[g.ndim() - 1];
    let full = add(g, &mt(g)?)?;
    let mask = if upper {
        pattern(n, g.dtype(), 0.0, 0.5, 1.0)?
    } else {
        pattern(n, g.dtype(), 1.0, 0.5, 0.0)?
    };
    ops::multiply(&full, &mask)
}

/// The tangent of the symmetric `S` built from the lower (`upper`: upper) triangle of `A`.
fn from_triangle(t: &Array, upper: bool) -> Result<Array> {
    let (tri, strict) = if upper {
        (ops::triu(t, 0)?, ops::triu(t, 1)?)
    } else {
        (ops::tril(t, 0)?, ops::tril(t, -1)?)
    };
    add(&tri, &mt(&strict)?)
}

/// Zeros shaped like every output: the tangents of a primitive of empty matrices.
fn zeros_all(outputs: &[Array]) -> Result<Vec<Array>> {
    outputs.iter().map(ops::zeros_like).collect()
}

// ---------------------------------------------------------------------------------------------
// Cholesky

/// `dL` for `S = L Lᵀ` (`L` lower) and a symmetric `dS`.
fn cholesky_lower_jvp(l: &Array, ds: &Array) -> Result<Array> {
    let n = l.shape()[l.ndim() - 1];
    let inner = solve_tri_right(&solve_tri(l, ds, false)?, &mt(l)?, true)?;
    let phi = ops::multiply(&inner, &pattern(n, l.dtype(), 1.0, 0.5, 0.0)?)?;
    mm(l, &phi)
}

/// The symmetric cotangent of `S` given that of `L` (`S = L Lᵀ`, `L` lower).
fn cholesky_lower_vjp(l: &Array, g: &Array) -> Result<Array> {
    let n = l.shape()[l.ndim() - 1];
    let phi = ops::multiply(&mm(&mt(l)?, g)?, &pattern(n, l.dtype(), 1.0, 0.5, 0.0)?)?;
    let sym = ops::multiply(&add(&phi, &mt(&phi)?)?, 0.5)?;
    solve_tri_right(&solve_tri(&mt(l)?, &sym, true)?, l, false)
}

// ---------------------------------------------------------------------------------------------
// QR

/// `(dQ, dR)` of `A = Q R` with `R` square (`m ≥ n`).
fn qr_square_jvp(q: &Array, r: &Array, da: &Array) -> Result<(Array, Array)> {
    let da_rinv = solve_tri_right(da, r, true)?;
    let c = mm(&mt(q)?, &da_rinv)?;
    let low = ops::tril(&c, -1)?;
    let omega = sub(&low, &mt(&low)?)?;
    let dq = add(&mm(q, &sub(&omega, &c)?)?, &da_rinv)?;
    let dr = mm(&sub(&c, &omega)?, r)?;
    Ok((dq, dr))
}

/// The cotangent of `A = Q R` with `R` square (`m ≥ n`).
fn qr_square_vjp(q: &Array, r: &Array, gq: &Array, gr: &Array) -> Result<Array> {
    let m = sub(&mm(gr, &mt(r)?)?, &mm(&mt(q)?, gq)?)?;
    let up = ops::triu(&m, 0)?;
    let copied = add(&up, &mt(&ops::triu(&m, 1)?)?)?;
    let z = add(gq, &mm(q, &copied)?)?;
    solve_tri_right(&z, &mt(r)?, false)
}

/// Columns `[from, to)` of the last axis.
fn cols(x: &Array, from: usize, to: usize) -> Result<Array> {
    let nd = x.ndim();
    let mut start = vec![0i64; nd];
    let mut stop: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
    start[nd - 1] = from as i64;
    stop[nd - 1] = to as i64;
    ops::slice(x, &start, &stop, &[])
}

/// Rows `[from, to)` of the second-to-last axis.
fn rows(x: &Array, from: usize, to: usize) -> Result<Array> {
    mt(&cols(&mt(x)?, from, to)?)
}

// ---------------------------------------------------------------------------------------------
// SVD

/// The thin factors `(U_k, S, Vt_k)` of `a` from a full decomposition's outputs.
fn thin(u: &Array, vt: &Array, k: usize) -> Result<(Array, Array)> {
    Ok((cols(u, 0, k)?, rows(vt, 0, k)?))
}

/// `(dU, dS, dVt)` of the full SVD `A = U S Vt`, from the thin formulas; the columns of `U`
/// (rows of `Vt`) past `k` turn with the first `k` so as to stay orthogonal to them.
fn svd_jvp(a: &Array, u: &Array, s: &Array, vt: &Array, da: &Array) -> Result<[Array; 3]> {
    let (m, n) = (a.shape()[a.ndim() - 2], a.shape()[a.ndim() - 1]);
    let k = m.min(n);
    let (uk, vtk) = thin(u, vt, k)?;
    let vk = mt(&vtk)?;
    let ds_mat = mm(&mm(&mt(&uk)?, da)?, &vk)?;
    let ds = diag_of(&ds_mat)?;
    let s_row = ops::expand_dims(s, -2)?;
    let s_col = ops::expand_dims(s, -1)?;
    let f = inverse_gaps(&ops::square(s)?)?;
    let dss = ops::multiply(&ds_mat, &s_row)?;
    let sds = ops::multiply(&s_col, &ds_mat)?;
    let mut duk = mm(&uk, &ops::multiply(&f, &add(&dss, &mt(&dss)?)?)?)?;
    let mut dvk = mm(&vk, &ops::multiply(&f, &add(&sds, &mt(&sds)?)?)?)?;
    let s_inv = ops::expand_dims(&safe_reciprocal(s)?, -2)?;
    if m > n {
        let dav = mm(da, &vk)?;
        let perp = sub(&dav, &mm(&uk, &mt(&uk)?.matmul(&dav)?)?)?;
        duk = add(&duk, &ops::multiply(&perp, &s_inv)?)?;
    }
    if n > m {
        let datu = mm(&mt(da)?, &uk)?;
        let perp = sub(&datu, &mm(&vk, &mm(&vtk, &datu)?)?)?;
        dvk = add(&dvk, &ops::multiply(&perp, &s_inv)?)?;
    }
    let du = complete_tangent(u, &duk, k)?;
    let dv = complete_tangent(&mt(vt)?, &dvk, k)?;
    Ok([du, ds, mt(&dv)?])
}

/// The tangent of a full orthogonal `U` whose first `k` columns move by `duk`: the others
/// move by `−U_k duk^T U_⊥`, the smallest turn that keeps them orthogonal to the first.
fn complete_tangent(u: &Array, duk: &Array, k: usize) -> Result<Array> {
    let m = u.shape()[u.ndim() - 1];
    if m == k {
        return Ok(duk.clone());
    }
    let uk = cols(u, 0, k)?;
    let rest = cols(u, k, m)?;
    let d_rest = ops::negative(&mm(&uk, &mm(&mt(duk)?, &rest)?)?)?;
    ops::concatenate(&[duk.clone(), d_rest], -1)
}

/// The cotangent of `A` from those of its full SVD's outputs; the cotangents of the columns
/// of `U` (rows of `Vt`) past `k`, which are not determined by `A`, are dropped.
fn svd_vjp(a: &Array, u: &Array, s: &Array, vt: &Array, g: [&Array; 3]) -> Result<Array> {
    let (m, n) = (a.shape()[a.ndim() - 2], a.shape()[a.ndim() - 1]);
    let k = m.min(n);
    let (uk, vtk) = thin(u, vt, k)?;
    let (guk, gvtk) = thin(g[0], g[2], k)?;
    let skew = |x: Array| -> Result<Array> { sub(&x, &mt(&x)?) };
    let uhgu = skew(mm(&mt(&uk)?, &guk)?)?;
    let vhgv = skew(mm(&vtk, &mt(&gvtk)?)?)?;
    let s_row = ops::expand_dims(s, -2)?;
    let s_col = ops::expand_dims(s, -1)?;
    let f = inverse_gaps(&ops::square(s)?)?;
    // F_ij = 1/(s_j² − s_i²): (UᵀgU S + S VᵀgV) / E with E_ij = s_j² − s_i².
    let core = ops::multiply(
        &add(
            &ops::multiply(&uhgu, &s_row)?,
            &ops::multiply(&s_col, &vhgv)?,
        )?,
        &f,
    )?;
    let core = add(&core, &diag_embed(g[1])?)?;
    let s_inv = safe_reciprocal(s)?;
    if m > n {
        let gus = ops::multiply(&guk, &ops::expand_dims(&s_inv, -2)?)?;
        let left = add(
            &mm(&uk, &core)?,
            &sub(&gus, &mm(&uk, &mm(&mt(&uk)?, &gus)?)?)?,
        )?;
        mm(&left, &vtk)
    } else if n > m {
        let sgv = ops::multiply(&ops::expand_dims(&s_inv, -1)?, &gvtk)?;
        let right = add(
            &mm(&core, &vtk)?,
            &sub(&sgv, &mm(&mm(&sgv, &mt(&vtk)?)?, &vtk)?)?,
        )?;
        mm(&uk, &right)
    } else {
        mm(&mm(&uk, &core)?, &vtk)
    }
}

// ---------------------------------------------------------------------------------------------
// LU

/// The rows of `x` in the order `perm`: row `i` of the result is row `perm[i]` of `x`.
fn permute_rows(x: &Array, perm: &Array) -> Result<Array> {
    let idx = ops::expand_dims(perm, -1)?;
    ops::take_along_axis(x, &idx, -2)
}

/// `L` (unit lower) and `U` from the packed factors of a square matrix.
fn unpack_lu(lu: &Array) -> Result<(Array, Array)> {
    let n = lu.shape()[lu.ndim() - 1];
    let l = add(&ops::tril(lu, -1)?, &pattern(n, lu.dtype(), 0.0, 1.0, 0.0)?)?;
    Ok((l, ops::triu(lu, 0)?))
}

fn square_only(op: &LinalgOp, a: &Array, what: &str) -> Result<()> {
    let nd = a.ndim();
    if a.shape()[nd - 1] != a.shape()[nd - 2] {
        bail!(
            "{}: {what} is only implemented for square matrices, got shape {}",
            op.name(),
            crate::shape::fmt_shape(a.shape())
        );
    }
    Ok(())
}

impl LinalgOp {
    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let a = &inputs[0];
        if inputs.iter().any(|x| x.size() == 0) {
            return zeros_vjp(inputs, argnums);
        }
        let dt = a.dtype();
        let g: Vec<Array> = cotangents
            .iter()
            .zip(outputs)
            .map(|(g, o)| {
                if o.dtype().is_inexact() && o.dtype() != Dtype::Complex64 {
                    ops::astype(g, dt)
                } else {
                    Ok(g.clone())
                }
            })
            .collect::<Result<_>>()?;
        let grads: Vec<Array> = match *self {
            LinalgOp::Solve => {
                let gb = solve(&mt(a)?, &g[0])?;
                let ga = ops::negative(&mm(&gb, &mt(&outputs[0])?)?)?;
                vec![ga, gb]
            }
            LinalgOp::SolveTriangular { upper } => {
                let gb = solve_tri(&mt(a)?, &g[0], !upper)?;
                let full = ops::negative(&mm(&gb, &mt(&outputs[0])?)?)?;
                let ga = if upper {
                    ops::triu(&full, 0)?
                } else {
                    ops::tril(&full, 0)?
                };
                vec![ga, gb]
            }
            LinalgOp::Cholesky { upper } => {
                let (l, gl) = if upper {
                    (mt(&outputs[0])?, mt(&g[0])?)
                } else {
                    (outputs[0].clone(), g[0].clone())
                };
                let gs = cholesky_lower_vjp(&l, &gl)?;
                // The upper factor is that of the transpose: its cotangent is transposed back.
                let ga = to_triangle(&gs, false)?;
                vec![if upper { mt(&ga)? } else { ga }]
            }
            LinalgOp::Qr => {
                let (q, r) = (&outputs[0], &outputs[1]);
                let (m, n) = (a.shape()[a.ndim() - 2], a.shape()[a.ndim() - 1]);
                if m >= n {
                    vec![qr_square_vjp(q, r, &g[0], &g[1])?]
                } else {
                    // A = Q [X Y]: X the QR of the first m columns, Y = Qᵀ A₂.
                    let (x, a2) = (cols(r, 0, m)?, cols(a, m, n)?);
                    let (gx, gy) = (cols(&g[1], 0, m)?, cols(&g[1], m, n)?);
                    let gq = add(&g[0], &mm(&a2, &mt(&gy)?)?)?;
                    let ga1 = qr_square_vjp(q, &x, &gq, &gx)?;
                    let ga2 = mm(q, &gy)?;
                    vec![ops::concatenate(&[ga1, ga2], -1)?]
                }
            }
            LinalgOp::Svd { compute_uv } => {
                let ga = if compute_uv {
                    svd_vjp(
                        a,
                        &outputs[0],
                        &outputs[1],
                        &outputs[2],
                        [&g[0], &g[1], &g[2]],
                    )?
                } else {
                    let full = apply(LinalgOp::Svd { compute_uv: true }, vec![a.clone()])?;
                    let k = outputs[0].shape()[outputs[0].ndim() - 1];
                    let (uk, vtk) = thin(&full[0], &full[2], k)?;
                    let gs = ops::expand_dims(&g[0], -2)?;
                    mm(&ops::multiply(&uk, &gs)?, &vtk)?
                };
                vec![ga]
            }
            LinalgOp::Eig { .. } => bail!(
                "eig: derivatives of the general eigendecomposition are not implemented (use \
                 eigh for symmetric matrices)"
            ),
            LinalgOp::Eigh { upper, vectors } => {
                let (w, v, gv) = if vectors {
                    (outputs[0].clone(), outputs[1].clone(), Some(&g[1]))
                } else {
                    let full = apply(
                        LinalgOp::Eigh {
                            upper,
                            vectors: true,
                        },
                        vec![a.clone()],
                    )?;
                    (full[0].clone(), full[1].clone(), None)
                };
                let mut inner = diag_embed(&g[0])?;
                if let Some(gv) = gv {
                    let f = inverse_gaps(&w)?;
                    inner = add(&inner, &ops::multiply(&f, &mm(&mt(&v)?, gv)?)?)?;
                }
                let gs = mm(&mm(&v, &inner)?, &mt(&v)?)?;
                vec![to_triangle(&gs, upper)?]
            }
            LinalgOp::LuFactor => {
                square_only(self, a, "the derivative of lu_factor")?;
                let (lu, perm) = (&outputs[0], &outputs[2]);
                let (l, u) = unpack_lu(lu)?;
                let gl = ops::tril(&g[0], -1)?;
                let gu = ops::triu(&g[0], 0)?;
                let gf = add(
                    &ops::tril(&mm(&mt(&l)?, &gl)?, -1)?,
                    &ops::triu(&mm(&gu, &mt(&u)?)?, 0)?,
                )?;
                let gpa = solve_tri_right(&solve_tri(&mt(&l)?, &gf, true)?, &mt(&u)?, false)?;
                // Row i of A is row p[i] of L U = P A.
                vec![permute_rows(&gpa, perm)?]
            }
        };
        Ok(argnums.iter().map(|&i| grads[i].clone()).collect())
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let a = &inputs[0];
        if inputs.iter().any(|x| x.size() == 0) {
            return zeros_all(outputs);
        }
        let dt = a.dtype();
        let t = |i: usize| -> Result<Array> {
            ops::astype(&tangent_or_zeros(inputs, tangents, i)?, dt)
        };
        Ok(match *self {
            LinalgOp::Solve => {
                let x = &outputs[0];
                let mut rhs = match &tangents[1] {
                    Some(_) => t(1)?,
                    None => ops::zeros_like(x)?,
                };
                if tangents[0].is_some() {
                    rhs = sub(&rhs, &mm(&t(0)?, x)?)?;
                }
                vec![solve(a, &rhs)?]
            }
            LinalgOp::SolveTriangular { upper } => {
                let x = &outputs[0];
                let mut rhs = match &tangents[1] {
                    Some(_) => t(1)?,
                    None => ops::zeros_like(x)?,
                };
                if tangents[0].is_some() {
                    let ta = if upper {
                        ops::triu(&t(0)?, 0)?
                    } else {
                        ops::tril(&t(0)?, 0)?
                    };
                    rhs = sub(&rhs, &mm(&ta, x)?)?;
                }
                vec![solve_tri(a, &rhs, upper)?]
            }
            LinalgOp::Cholesky { upper } => {
                // The upper factor is the transpose of the lower factor of Aᵀ.
                let (l, ta) = if upper {
                    (mt(&outputs[0])?, mt(&t(0)?)?)
                } else {
                    (outputs[0].clone(), t(0)?)
                };
                let dl = cholesky_lower_jvp(&l, &from_triangle(&ta, false)?)?;
                vec![if upper { mt(&dl)? } else { dl }]
            }
            LinalgOp::Qr => {
                let (q, r) = (&outputs[0], &outputs[1]);
                let (m, n) = (a.shape()[a.ndim() - 2], a.shape()[a.ndim() - 1]);
                let da = t(0)?;
                if m >= n {
                    let (dq, dr) = qr_square_jvp(q, r, &da)?;
                    vec![dq, dr]
                } else {
                    let x = cols(r, 0, m)?;
                    let (dq, dx) = qr_square_jvp(q, &x, &cols(&da, 0, m)?)?;
                    let dy = add(
                        &mm(&mt(&dq)?, &cols(a, m, n)?)?,
                        &mm(&mt(q)?, &cols(&da, m, n)?)?,
                    )?;
                    vec![dq, ops::concatenate(&[dx, dy], -1)?]
                }
            }
            LinalgOp::Svd { compute_uv } => {
                let da = t(0)?;
                if compute_uv {
                    svd_jvp(a, &outputs[0], &outputs[1], &outputs[2], &da)?.to_vec()
                } else {
                    let full = apply(LinalgOp::Svd { compute_uv: true }, vec![a.clone()])?;
                    let k = outputs[0].shape()[outputs[0].ndim() - 1];
                    let (uk, vtk) = thin(&full[0], &full[2], k)?;
                    vec![diag_of(&mm(&mm(&mt(&uk)?, &da)?, &mt(&vtk)?)?)?]
                }
            }
            LinalgOp::Eig { .. } => bail!(
                "eig: derivatives of the general eigendecomposition are not implemented (use \
                 eigh for symmetric matrices)"
            ),
            LinalgOp::Eigh { upper, vectors } => {
                let (w, v) = if vectors {
                    (outputs[0].clone(), outputs[1].clone())
                } else {
                    let full = apply(
                        LinalgOp::Eigh {
                            upper,
                            vectors: true,
                        },
                        vec![a.clone()],
                    )?;
                    (full[0].clone(), full[1].clone())
                };
                let ds = from_triangle(&t(0)?, upper)?;
                let inner = mm(&mm(&mt(&v)?, &ds)?, &v)?;
                let dw = diag_of(&inner)?;
                if vectors {
                    let dv = mm(&v, &ops::multiply(&inverse_gaps(&w)?, &inner)?)?;
                    vec![dw, dv]
                } else {
                    vec![dw]
                }
            }
            LinalgOp::LuFactor => {
                square_only(self, a, "the derivative of lu_factor")?;
                let (lu, perm) = (&outputs[0], &outputs[2]);
                let (l, u) = unpack_lu(lu)?;
                let pda = permute_rows(&t(0)?, &ops::argsort(perm, -1)?)?;
                let f = solve_tri_right(&solve_tri(&l, &pda, false)?, &u, true)?;
                let dlu = add(&mm(&l, &ops::tril(&f, -1)?)?, &mm(&ops::triu(&f, 0)?, &u)?)?;
                vec![
                    dlu,
                    ops::zeros_like(&outputs[1])?,
                    ops::zeros_like(&outputs[2])?,
                ]
            }
        })
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        _outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        let n = batch_size(inputs, axes);
        let moved = all_to_front(inputs, axes, n)?;
        let outs = apply(self.clone(), moved)?;
        let k = outs.len();
        Ok((outs, vec![Some(0); k]))
    }
}
