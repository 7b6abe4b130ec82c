//! umx::linalg against NumPy references (`tests/reference/linalg.py`): every function,
//! batched, float32 and float64, on contiguous, transposed and strided inputs. Factorizations
//! with sign or order freedom are checked through what is unique (the `_props` ops below).
//! Then checks too big or too specific for the reference file.

use crate::common;

use common::{kw_bool, kw_i64};
use serde_json::Value;
use umx::linalg::{self, NormOrd};
use umx::prelude::*;
use umx::{Axes, Complex32};

fn mt(x: &Array) -> Result<Array> {
    ops::swapaxes(x, -1, -2)
}

/// Columns `[0, k)` of the last axis, or rows `[0, k)` of the one before.
fn leading(x: &Array, k: usize, rows: bool) -> Result<Array> {
    let nd = x.ndim();
    let mut stop: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
    stop[if rows { nd - 2 } else { nd - 1 }] = k as i64;
    ops::slice(x, &vec![0; nd], &stop, &[])
}

fn norm_ord(v: Option<&Value>) -> Option<NormOrd> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "fro" => NormOrd::Fro,
            "nuc" => NormOrd::Nuc,
            "inf" => NormOrd::INF,
            "-inf" => NormOrd::NEG_INF,
            other => panic!("bad ord {other}"),
        }),
        Some(Value::Number(n)) => Some(NormOrd::P(n.as_f64().unwrap())),
        Some(other) => panic!("bad ord {other}"),
    }
}

fn linalg_op(name: &str, args: &[Array], kw: &Value) -> Result<Vec<Array>> {
    let a = &args[0];
    let upper = kw_bool(kw, "upper").unwrap_or(false);
    let uplo = kw.get("UPLO").and_then(Value::as_str).unwrap_or("L");
    Ok(match name {
        "inv" => vec![linalg::inv(a)?],
        "pinv" => vec![linalg::pinv(a)?],
        "det" => vec![linalg::det(a)?],
        "slogdet" => {
            let (s, l) = linalg::slogdet(a)?;
            vec![s, l]
        }
        "solve" => vec![linalg::solve(a, &args[1])?],
        "solve_triangular" => vec![linalg::solve_triangular(a, &args[1], upper)?],
        "tri_inv" => vec![linalg::tri_inv(a, upper)?],
        "cholesky" => vec![linalg::cholesky(a, upper)?],
        "cholesky_inv" => vec![linalg::cholesky_inv(a, upper)?],
        "lu_factor" => {
            let (lu, piv) = linalg::lu_factor(a)?;
            vec![lu, piv]
        }
        "lu" => {
            let (p, l, u) = linalg::lu(a)?;
            vec![p, l, u]
        }
        "qr_props" => {
            let (q, r) = linalg::qr(a)?;
            vec![
                ops::matmul(&q, &r)?,
                ops::matmul(&mt(&q)?, &q)?,
                ops::abs(&q)?,
                ops::abs(&r)?,
            ]
        }
        "svd_props" => {
            let usv = linalg::svd(a, true)?;
            let (u, s, vt) = (&usv[0], &usv[1], &usv[2]);
            let k = s.shape()[s.ndim() - 1];
            let (uk, vtk) = (leading(u, k, false)?, leading(vt, k, true)?);
            let us = ops::multiply(&uk, &ops::expand_dims(s, -2)?)?;
            vec![
                s.clone(),
                ops::matmul(&us, &vtk)?,
                ops::matmul(&mt(u)?, u)?,
                ops::matmul(vt, &mt(vt)?)?,
                ops::abs(&uk)?,
                ops::abs(&vtk)?,
            ]
        }
        "svdvals" => linalg::svd(a, false)?,
        "eigh_props" => {
            let (w, v) = linalg::eigh(a, uplo)?;
            // The symmetric matrix read: one triangle mirrored.
            let (tri, strict) = if uplo == "U" {
                (ops::triu(a, 0)?, ops::triu(a, 1)?)
            } else {
                (ops::tril(a, 0)?, ops::tril(a, -1)?)
            };
            let s = ops::add(&tri, &mt(&strict)?)?;
            let residual = ops::subtract(
                ops::matmul(&s, &v)?,
                ops::multiply(&v, &ops::expand_dims(&w, -2)?)?,
            )?;
            vec![w, residual, ops::matmul(&mt(&v)?, &v)?, ops::abs(&v)?]
        }
        "eigvalsh" => vec![linalg::eigvalsh(a, uplo)?],
        "eig_props" => {
            let (w, v) = linalg::eig(a)?;
            let ac = ops::astype(a, Dtype::Complex64)?;
            let residual = ops::subtract(
                ops::matmul(&ac, &v)?,
                ops::multiply(&v, &ops::expand_dims(&w, -2)?)?,
            )?;
            let norms = ops::sqrt(&ops::sum(&ops::square(&ops::abs(&v)?)?, -2, false)?)?;
            vec![ops::sort(&w, -1)?, residual, norms]
        }
        "eigvals" => vec![ops::sort(&linalg::eigvals(a)?, -1)?],
        "norm" => {
            let axis = match kw.get("axis") {
                None | Some(Value::Null) => Axes::All,
                Some(Value::Number(n)) => Axes::List(vec![n.as_i64().unwrap()]),
                Some(Value::Array(l)) => Axes::List(l.iter().filter_map(Value::as_i64).collect()),
                Some(other) => panic!("bad axis {other}"),
            };
            let keepdims = kw_bool(kw, "keepdims").unwrap_or(false);
            vec![linalg::norm(a, norm_ord(kw.get("ord")), axis, keepdims)?]
        }
        "cross" => vec![linalg::cross(
            a,
            &args[1],
            kw_i64(kw, "axis").unwrap_or(-1),
        )?],
        other => panic!("unknown op {other}"),
    })
}

#[test]
fn linalg_matches_numpy() {
    let n = common::run_reference("linalg", &linalg_op);
    assert!(n > 300, "only {n} cases");
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn max_abs_diff(a: &Array, b: &Array) -> f64 {
    ops::max(
        &ops::abs(&ops::subtract(a, b).unwrap()).unwrap(),
        Axes::All,
        false,
    )
    .unwrap()
    .item::<f64>()
    .unwrap()
}

#[test]
fn big_solve_runs_inside_faer_threads_and_is_accurate() {
    let n = 300;
    let mut v = values(n * n, 1);
    for i in 0..n {
        v[i * n + i] += n as f64;
    }
    let a = Array::from_slice(&v, &[n, n]).unwrap();
    let x = Array::from_slice(&values(n * 2, 2), &[n, 2]).unwrap();
    let b = ops::matmul(&a, &x).unwrap();
    let got = linalg::solve(&a, &b).unwrap();
    assert!(max_abs_diff(&got, &x) < 1e-12);
}

#[test]
fn many_small_factorizations_run_over_the_batch() {
    let (batch, n) = (200, 6);
    let mut v = values(batch * n * n, 3);
    for b in 0..batch {
        for i in 0..n {
            v[b * n * n + i * n + i] += n as f64;
        }
    }
    let a = Array::from_slice(&v, &[batch, n, n]).unwrap();
    let (q, r) = linalg::qr(&a).unwrap();
    assert!(max_abs_diff(&ops::matmul(&q, &r).unwrap(), &a) < 1e-12);
    let inv = linalg::inv(&a).unwrap();
    let eye = ops::broadcast_to(
        &ops::eye(n, None, 0, Dtype::Float64).unwrap(),
        &[batch, n, n],
    )
    .unwrap();
    assert!(max_abs_diff(&ops::matmul(&a, &inv).unwrap(), &eye) < 1e-12);
}

#[test]
fn singular_and_non_finite_input_give_numpy_answers_not_panics() {
    let z = Array::from_slice(&[0.0f64; 9], &[3, 3]).unwrap();
    assert_eq!(linalg::det(&z).unwrap().item::<f64>().unwrap(), 0.0);
    let err = linalg::inv(&z).unwrap().eval().unwrap_err().to_string();
    assert!(err.contains("Singular matrix"), "{err}");
    let inf = Array::from_slice(&[f64::INFINITY, 0.0, 0.0, 1.0], &[2, 2]).unwrap();
    assert!(linalg::svd(&inf, true).unwrap()[1].eval().is_err());
    assert!(linalg::eig(&inf).unwrap().0.eval().is_err());
    let w = linalg::eigvalsh(&inf, "L")
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    assert!(w.iter().all(|x| x.is_nan()));
    // QR and LU of non-finite input finish.
    linalg::qr(&inf).unwrap().1.eval().unwrap();
    linalg::lu_factor(&inf).unwrap().0.eval().unwrap();
}

#[test]
fn empty_matrices_factor_to_empty_results() {
    let a = ops::zeros(&[2, 0, 0], Dtype::Float32).unwrap();
    assert_eq!(linalg::inv(&a).unwrap().shape(), &[2, 0, 0]);
    assert_eq!(
        linalg::det(&a).unwrap().to_vec::<f32>().unwrap(),
        vec![1.0, 1.0]
    );
    let b = ops::zeros(&[3, 0], Dtype::Float64).unwrap();
    let usv = linalg::svd(&b, true).unwrap();
    assert_eq!(
        usv[0].to_vec::<f64>().unwrap(),
        ops::eye(3, None, 0, Dtype::Float64)
            .unwrap()
            .to_vec::<f64>()
            .unwrap()
    );
    assert_eq!(usv[1].shape(), &[0]);
    let (q, r) = linalg::qr(&b).unwrap();
    assert_eq!((q.shape(), r.shape()), (&[3usize, 0][..], &[0usize, 0][..]));
    assert_eq!(linalg::pinv(&b).unwrap().shape(), &[0, 3]);
    let e = ops::zeros(&[0, 0], Dtype::Float64).unwrap();
    assert_eq!(linalg::eigvals(&e).unwrap().shape(), &[0]);
    assert_eq!(linalg::eigh(&e, "L").unwrap().1.shape(), &[0, 0]);
    assert_eq!(linalg::cholesky(&e, false).unwrap().size(), 0);
    let x = linalg::solve(&e, &ops::zeros(&[0, 2], Dtype::Float64).unwrap()).unwrap();
    assert_eq!(x.shape(), &[0, 2]);
    x.eval().unwrap();
    linalg::eigvals(&e).unwrap().eval().unwrap();
    linalg::cholesky(&e, false).unwrap().eval().unwrap();
    let (p, l, u) = linalg::lu(&b).unwrap();
    assert_eq!(p.to_vec::<u32>().unwrap(), vec![0, 1, 2]);
    assert_eq!((l.shape(), u.shape()), (&[3usize, 0][..], &[0usize, 0][..]));
}

#[test]
fn eig_of_a_rotation_has_conjugate_eigenvalues() {
    let a = Array::from_slice(&[0.0f32, -2.0, 2.0, 0.0], &[2, 2]).unwrap();
    let w = ops::sort(&linalg::eigvals(&a).unwrap(), -1).unwrap();
    let w = w.to_vec::<Complex32>().unwrap();
    assert!((w[0] - Complex32::new(0.0, -2.0)).norm() < 1e-6);
    assert!((w[1] - Complex32::new(0.0, 2.0)).norm() < 1e-6);
}

#[test]
fn vmap_of_a_factorization_maps_over_the_batch() {
    let v = values(3 * 4 * 4, 5);
    let a = Array::from_slice(&v, &[4, 4, 3]).unwrap(); // batch on the last axis
    let f = |x: &[Array]| -> Result<Vec<Array>> { Ok(vec![linalg::svd(&x[0], false)?.remove(0)]) };
    let got = vmap(f, &[Some(-1)], &[Some(0)])(std::slice::from_ref(&a))
        .unwrap()
        .remove(0);
    let want = linalg::svd(&ops::moveaxis(&a, -1, 0).unwrap(), false)
        .unwrap()
        .remove(0);
    assert!(max_abs_diff(&got, &want) < 1e-12);
}

#[test]
fn errors_name_the_op_and_the_shape() {
    let a = ops::ones(&[2, 3], Dtype::Float32).unwrap();
    let e = linalg::inv(&a).unwrap_err().to_string();
    assert!(e.contains("inv") && e.contains("(2, 3)"), "{e}");
    let i = ops::ones(&[2, 2], Dtype::Int32).unwrap();
    let e = linalg::qr(&i).unwrap_err().to_string();
    assert!(
        e.contains("qr") && e.contains("int32") && e.contains("(2, 2)"),
        "{e}"
    );
}
