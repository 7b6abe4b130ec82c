//! The vjp, jvp and vmap rules of the linalg and fft primitives, and of the ops built on them:
//! derivatives against central finite differences in float64, batching against a loop over
//! the examples.
//!
//! Inputs are chosen where the functions are smooth: matrices made well conditioned by adding
//! a multiple of the identity, symmetric positive-definite ones by dominating the diagonal,
//! and random values (distinct singular values and eigenvalues, no ties in pivots or norms).
//! The Fourier transforms compute in complex64, so their checks take large steps (they are
//! linear: the differences are exact but for rounding) and float32 tolerances. Complex inputs
//! are made from real ones as a slice of a spectrum, so every path starts from float64.

use crate::common;
use crate::fd;

use common::Layout;
use fd::{Dom, Pos, Rng, Tol, VmapInput, check_jvp, check_vjp, check_vmap};
use umx::linalg::{self, NormOrd};
use umx::prelude::*;
use umx::{Axes, fft};

type Fun = Box<dyn Fn(&[Array]) -> Result<Vec<Array>>>;

/// One function to check: its inputs' shapes and where their values come from.
struct Case {
    name: String,
    f: Fun,
    shapes: Vec<Vec<usize>>,
    dom: Dom,
    tol: Tol,
    vmap: bool,
}

fn case(
    name: &str,
    shapes: &[&[usize]],
    f: impl Fn(&[Array]) -> Result<Vec<Array>> + 'static,
) -> Case {
    Case {
        name: name.to_string(),
        f: Box::new(f),
        shapes: shapes.iter().map(|s| s.to_vec()).collect(),
        dom: Dom::Real(-1.0, 1.0),
        tol: Tol {
            eps: 1e-6,
            rtol: 1e-5,
            atol: 1e-6,
        },
        vmap: true,
    }
}

/// Tolerances for the Fourier transforms (complex64 inside).
const FFT_TOL: Tol = Tol {
    eps: 0.5,
    rtol: 2e-4,
    atol: 2e-4,
};

/// `x + c I` over the last two axes.
fn shift(x: &Array, c: f64) -> Result<Array> {
    let n = x.shape()[x.ndim() - 1];
    ops::add(x, ops::multiply(ops::eye(n, None, 0, x.dtype())?, c)?)
}

fn eye_plus(c: f64) -> impl Fn(&Array) -> Result<Array> {
    move |x| shift(x, c)
}

/// `[real(z), imag(z)]`.
fn parts(z: Array) -> Result<Vec<Array>> {
    Ok(vec![ops::real(&z)?, ops::imag(&z)?])
}

/// A general complex array `(…, m)` from a real one `(…, 2m + 2)`: bins 1..=m of its spectrum.
fn complex_from(a: &Array) -> Result<Array> {
    let nd = a.ndim();
    let m = (a.shape()[nd - 1] - 2) / 2;
    let spec = fft::fft(a, None, -1, "ortho")?;
    let mut start = vec![0i64; nd];
    let mut stop: Vec<i64> = spec.shape().iter().map(|&d| d as i64).collect();
    start[nd - 1] = 1;
    stop[nd - 1] = m as i64 + 1;
    ops::slice(&spec, &start, &stop, &[])
}

fn linalg_cases() -> Vec<Case> {
    let well = eye_plus(4.0);
    let mut v = vec![
        case("inv", &[&[3, 3]], move |x| {
            Ok(vec![linalg::inv(&well(&x[0])?)?])
        }),
        case("inv batched", &[&[2, 3, 3]], |x| {
            Ok(vec![linalg::inv(&shift(&x[0], 4.0)?)?])
        }),
        case("solve matrix", &[&[3, 3], &[3, 2]], |x| {
            Ok(vec![linalg::solve(&shift(&x[0], 4.0)?, &x[1])?])
        }),
        case("solve vector", &[&[3, 3], &[3]], |x| {
            Ok(vec![linalg::solve(&shift(&x[0], 4.0)?, &x[1])?])
        }),
        case("solve broadcast", &[&[2, 3, 3], &[3, 1]], |x| {
            Ok(vec![linalg::solve(&shift(&x[0], 4.0)?, &x[1])?])
        }),
        case("tri_inv", &[&[3, 3]], |x| {
            Ok(vec![linalg::tri_inv(&shift(&x[0], 3.0)?, false)?])
        }),
        case("cholesky_inv", &[&[3, 3]], |x| {
            Ok(vec![linalg::cholesky_inv(
                &shift(&ops::triu(&x[0], 0)?, 3.0)?,
                true,
            )?])
        }),
        case("cholesky lower", &[&[3, 3]], |x| {
            Ok(vec![linalg::cholesky(&shift(&x[0], 4.0)?, false)?])
        }),
        case("cholesky upper batched", &[&[2, 3, 3]], |x| {
            Ok(vec![linalg::cholesky(&shift(&x[0], 4.0)?, true)?])
        }),
        case("qr square", &[&[3, 3]], |x| {
            let (q, r) = linalg::qr(&x[0])?;
            Ok(vec![q, r])
        }),
        case("qr tall batched", &[&[2, 4, 3]], |x| {
            let (q, r) = linalg::qr(&x[0])?;
            Ok(vec![q, r])
        }),
        case("qr wide", &[&[2, 4]], |x| {
            let (q, r) = linalg::qr(&x[0])?;
            Ok(vec![q, r])
        }),
        case("svd values", &[&[4, 3]], |x| linalg::svd(&x[0], false)),
        case("svd values wide batched", &[&[2, 2, 3]], |x| {
            linalg::svd(&x[0], false)
        }),
        case("svd square", &[&[3, 3]], |x| linalg::svd(&x[0], true)),
        case("svd tall (thin factors)", &[&[4, 2]], |x| {
            let usv = linalg::svd(&x[0], true)?;
            let u = ops::slice(&usv[0], &[0, 0], &[4, 2], &[])?;
            Ok(vec![u, usv[1].clone(), usv[2].clone()])
        }),
        case("svd wide (thin factors)", &[&[2, 4]], |x| {
            let usv = linalg::svd(&x[0], true)?;
            let vt = ops::slice(&usv[2], &[0, 0], &[2, 4], &[])?;
            Ok(vec![usv[0].clone(), usv[1].clone(), vt])
        }),
        case("pinv", &[&[4, 3]], |x| Ok(vec![linalg::pinv(&x[0])?])),
        case("eigh lower", &[&[3, 3]], |x| {
            let (w, v) = linalg::eigh(&x[0], "L")?;
            Ok(vec![w, v])
        }),
        case("eigh upper batched", &[&[2, 3, 3]], |x| {
            let (w, v) = linalg::eigh(&x[0], "U")?;
            Ok(vec![w, v])
        }),
        case("eigvalsh", &[&[4, 4]], |x| {
            Ok(vec![linalg::eigvalsh(&x[0], "L")?])
        }),
        case("det", &[&[3, 3]], |x| Ok(vec![linalg::det(&x[0])?])),
        case("det batched", &[&[2, 4, 4]], |x| {
            Ok(vec![linalg::det(&x[0])?])
        }),
        case("slogdet", &[&[3, 3]], |x| {
            let (s, l) = linalg::slogdet(&x[0])?;
            Ok(vec![s, l])
        }),
        case("lu_factor", &[&[3, 3]], |x| {
            Ok(vec![linalg::lu_factor(&x[0])?.0])
        }),
        case("lu", &[&[2, 3, 3]], |x| {
            let (_, l, u) = linalg::lu(&x[0])?;
            Ok(vec![l, u])
        }),
        case("solve_triangular lower", &[&[3, 3], &[3, 2]], |x| {
            Ok(vec![linalg::solve_triangular(
                &shift(&x[0], 3.0)?,
                &x[1],
                false,
            )?])
        }),
        case("solve_triangular upper vector", &[&[3, 3], &[3]], |x| {
            Ok(vec![linalg::solve_triangular(
                &shift(&x[0], 3.0)?,
                &x[1],
                true,
            )?])
        }),
        case("cross", &[&[2, 3], &[3]], |x| {
            Ok(vec![linalg::cross(&x[0], &x[1], -1)?])
        }),
    ];
    let norms: Vec<(&str, Option<NormOrd>, Axes)> = vec![
        ("norm flat", None, Axes::All),
        ("norm vector 2", Some(NormOrd::P(2.0)), Axes::List(vec![1])),
        ("norm vector 1", Some(NormOrd::P(1.0)), Axes::List(vec![0])),
        ("norm vector inf", Some(NormOrd::INF), Axes::List(vec![1])),
        ("norm vector 3", Some(NormOrd::P(3.0)), Axes::List(vec![1])),
        ("norm fro", Some(NormOrd::Fro), Axes::List(vec![0, 1])),
        ("norm nuc", Some(NormOrd::Nuc), Axes::List(vec![0, 1])),
        ("norm 2", Some(NormOrd::P(2.0)), Axes::List(vec![0, 1])),
        ("norm -2", Some(NormOrd::P(-2.0)), Axes::List(vec![1, 0])),
        ("norm 1", Some(NormOrd::P(1.0)), Axes::List(vec![0, 1])),
        ("norm -inf", Some(NormOrd::NEG_INF), Axes::List(vec![0, 1])),
    ];
    for (name, ord, axes) in norms {
        v.push(case(name, &[&[3, 4]], move |x| {
            Ok(vec![linalg::norm(&x[0], ord, axes.clone(), false)?])
        }));
    }
    // Away from zero, where |x| and the vector norms bend.
    for c in v.iter_mut().filter(|c| c.name.starts_with("norm")) {
        c.dom = Dom::AwayZero(0.2, 1.0);
    }
    // The SVD's and eigh's vectors have signs that vmap's batched kernel and the loop agree
    // on, but the float64 checks of the vector rules are all they need.
    v
}

fn fft_cases() -> Vec<Case> {
    let mut v = vec![
        case("fft of real", &[&[2, 6]], |x| {
            parts(fft::fft(&x[0], None, -1, "backward")?)
        }),
        case("fft of real, padded, ortho", &[&[2, 5]], |x| {
            parts(fft::fft(&x[0], Some(8), 1, "ortho")?)
        }),
        case("fft of real, cropped, forward", &[&[6, 2]], |x| {
            parts(fft::fft(&x[0], Some(4), 0, "forward")?)
        }),
        case("fft of complex", &[&[2, 12]], |x| {
            parts(fft::fft(&complex_from(&x[0])?, None, -1, "backward")?)
        }),
        case("ifft of complex", &[&[2, 12]], |x| {
            parts(fft::ifft(&complex_from(&x[0])?, Some(7), -1, "backward")?)
        }),
        case("fft2 of complex", &[&[3, 10]], |x| {
            parts(fft::fft2(&complex_from(&x[0])?, None, None, "ortho")?)
        }),
        case("ifftn of complex", &[&[2, 3, 10]], |x| {
            parts(fft::ifftn(
                &complex_from(&x[0])?,
                Some(&[3, 2, 5]),
                None,
                "backward",
            )?)
        }),
        case("rfft even", &[&[2, 8]], |x| {
            parts(fft::rfft(&x[0], None, -1, "backward")?)
        }),
        case("rfft odd, ortho", &[&[7, 2]], |x| {
            parts(fft::rfft(&x[0], None, 0, "ortho")?)
        }),
        case("rfft2", &[&[3, 4]], |x| {
            parts(fft::rfft2(&x[0], None, None, "backward")?)
        }),
        case("rfftn cropped", &[&[2, 3, 6]], |x| {
            parts(fft::rfftn(&x[0], Some(&[2, 5]), Some(&[0, 2]), "forward")?)
        }),
        case("irfft even", &[&[2, 10]], |x| {
            Ok(vec![fft::irfft(
                &complex_from(&x[0])?,
                Some(8),
                -1,
                "backward",
            )?])
        }),
        case("irfft odd, ortho", &[&[2, 10]], |x| {
            Ok(vec![fft::irfft(
                &complex_from(&x[0])?,
                Some(7),
                -1,
                "ortho",
            )?])
        }),
        case("irfft2", &[&[3, 8]], |x| {
            Ok(vec![fft::irfft2(
                &complex_from(&x[0])?,
                None,
                None,
                "backward",
            )?])
        }),
        case("irfftn", &[&[2, 2, 8]], |x| {
            Ok(vec![fft::irfftn(
                &complex_from(&x[0])?,
                Some(&[2, 2, 5]),
                None,
                "forward",
            )?])
        }),
        case("fftshift", &[&[3, 5]], |x| {
            Ok(vec![fft::fftshift(&x[0], Axes::All)?])
        }),
        case("ifftshift", &[&[3, 5]], |x| {
            Ok(vec![fft::ifftshift(&x[0], 1)?])
        }),
    ];
    for c in v.iter_mut() {
        if !c.name.contains("shift") {
            c.tol = FFT_TOL;
        }
    }
    v
}

fn inputs(c: &Case, seed: u64) -> Vec<Array> {
    let mut rng = Rng::new(seed);
    c.shapes
        .iter()
        .map(|s| {
            let v = rng.draw(c.dom, s.iter().product());
            fd::build(&v, s, Dtype::Float64, Layout::Contiguous)
        })
        .collect()
}

fn run(cases: &[Case], check: &str) {
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let seed = 1000 + i as u64;
        let xs = inputs(c, seed);
        let f: fd::Fun = &c.f;
        let r = match check {
            "vjp" => check_vjp(f, &xs, seed, c.tol),
            "jvp" => check_jvp(f, &xs, seed, c.tol),
            _ => {
                if !c.vmap {
                    continue;
                }
                let ins = |mapped: &[bool]| -> Vec<VmapInput> {
                    c.shapes
                        .iter()
                        .zip(mapped)
                        .map(|(s, &m)| VmapInput {
                            shape: s.clone(),
                            dtype: Dtype::Float64,
                            layout: Layout::Contiguous,
                            dom: c.dom,
                            mapped: m,
                        })
                        .collect()
                };
                let all = vec![true; c.shapes.len()];
                let mut first = vec![false; c.shapes.len()];
                first[0] = true;
                check_vmap(f, &ins(&all), Pos::First, 3, seed)
                    .and_then(|_| check_vmap(f, &ins(&all), Pos::Last, 3, seed))
                    .and_then(|_| check_vmap(f, &ins(&all), Pos::Middle, 2, seed))
                    .and_then(|_| check_vmap(f, &ins(&first), Pos::Last, 2, seed))
            }
        };
        if let Err(e) = r {
            failures.push(format!("{} ({check}): {e}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn linalg_vjp_matches_finite_differences() {
    run(&linalg_cases(), "vjp");
}

#[test]
fn linalg_jvp_matches_finite_differences() {
    run(&linalg_cases(), "jvp");
}

#[test]
fn linalg_vmap_matches_a_loop() {
    run(&linalg_cases(), "vmap");
}

#[test]
fn fft_vjp_matches_finite_differences() {
    run(&fft_cases(), "vjp");
}

#[test]
fn fft_jvp_matches_finite_differences() {
    run(&fft_cases(), "jvp");
}

#[test]
fn fft_vmap_matches_a_loop() {
    run(&fft_cases(), "vmap");
}

#[test]
fn grad_of_a_log_determinant_is_the_inverse_transpose() {
    let v = [2.0f64, 0.5, 0.3, 0.1, 3.0, 0.2, 0.4, 0.1, 4.0];
    let a = Array::from_slice(&v, &[3, 3]).unwrap();
    let g = grad(|x: &Array| linalg::slogdet(x).map(|(_, l)| l))(&a).unwrap();
    let want = ops::swapaxes(&linalg::inv(&a).unwrap(), 0, 1).unwrap();
    let diff = ops::max(
        &ops::abs(&ops::subtract(&g, &want).unwrap()).unwrap(),
        Axes::All,
        false,
    )
    .unwrap()
    .item::<f64>()
    .unwrap();
    assert!(diff < 1e-12, "{diff}");
}

#[test]
fn eig_has_no_derivative_and_says_so() {
    let a = Array::from_slice(&[1.0f64, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    let e = vjp(
        |x| Ok(vec![ops::real(&linalg::eigvals(&x[0])?)?]),
        &[a],
        &[ops::ones(&[2], Dtype::Float32).unwrap()],
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(e.contains("eig"), "{e}");
}
