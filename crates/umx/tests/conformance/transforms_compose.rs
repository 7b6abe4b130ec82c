//! Compositions of the transformations (Hessian-vector products by grad of grad, jvp of vjp,
//! vmap of grad, grad of vmap, nested vmap, custom_function, checkpoint) against finite
//! differences and loops, and small models that must train. The per-op rules are checked
//! over the op table in `transforms.rs`.

use crate::common;
use crate::fd;

use common::Layout;
use fd::{Dom, Pos, Rng, Tol, VmapInput, check_jvp, check_vjp, f64s, vals};
use std::collections::BTreeMap;
use umx::prelude::*;
use umx::transforms::{
    checkpoint, custom_function, grad, grad_argnums, jvp, stop_gradient, value_and_grad,
    value_and_grad_aux, vjp, vmap,
};
use umx::{Axes, Tree};

// ---------------------------------------------------------------------------------------------
// Compositions.
// ---------------------------------------------------------------------------------------------

pub(crate) fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}: element {i}: got {g}, expected {w}\n got {got:?}\nwant {want:?}"
        );
    }
}

fn randn(rng: &mut Rng, shape: &[usize]) -> Array {
    f64s(&rng.normals(shape.iter().product()), shape)
}

/// A scalar function of x with non-trivial second derivatives: sum(tanh(A x)^2) +
/// sum(sin(x) * x^2) + logsumexp(x).
fn scalar_fn(a: &Array, x: &Array) -> Result<Array> {
    let h = ops::tanh(&ops::matmul(a, x)?)?;
    let t1 = ops::sum(&ops::square(&h)?, Axes::All, false)?;
    let t2 = ops::sum(
        &ops::multiply(&ops::sin(x)?, &ops::square(x)?)?,
        Axes::All,
        false,
    )?;
    let t3 = ops::logsumexp(x, Axes::All, false)?;
    ops::add(&ops::add(&t1, &t2)?, &t3)
}

#[test]
fn hessian_vector_product_by_grad_of_grad() {
    let mut rng = Rng::new(11);
    let a = randn(&mut rng, &[4, 5]);
    let x = randn(&mut rng, &[5]);
    let v = randn(&mut rng, &[5]);
    let a2 = a.clone();
    let df = move |x: &Array| grad(|x: &Array| scalar_fn(&a2, x))(x);
    // H v = grad_x <grad f(x), v>.
    let vv = v.clone();
    let hvp = grad(move |x: &Array| ops::sum(&ops::multiply(&df(x)?, &vv)?, Axes::All, false));
    let got = vals(&hvp(&x).unwrap()).unwrap();
    // Central differences of the (first-order) gradient along v.
    let eps = 1e-6;
    let xv = vals(&x).unwrap();
    let vv = vals(&v).unwrap();
    let at = |s: f64| {
        let xs: Vec<f64> = xv.iter().zip(&vv).map(|(x, v)| x + s * v).collect();
        vals(&grad(|x: &Array| scalar_fn(&a, x))(&f64s(&xs, &[5])).unwrap()).unwrap()
    };
    let (p, m) = (at(eps), at(-eps));
    let want: Vec<f64> = p
        .iter()
        .zip(&m)
        .map(|(p, m)| (p - m) / (2.0 * eps))
        .collect();
    assert_close("Hv", &got, &want, 1e-5, 1e-6);

    // The Hessian is symmetric: <u, H v> = <v, H u>.
    let u = randn(&mut rng, &[5]);
    let a3 = a.clone();
    let hvp_of = |dir: Array| {
        let a3 = a3.clone();
        let x = x.clone();
        let df = move |x: &Array| grad(|x: &Array| scalar_fn(&a3, x))(x);
        grad(move |x: &Array| ops::sum(&ops::multiply(&df(x)?, &dir)?, Axes::All, false))(&x)
            .unwrap()
    };
    let uhv = fd::dot(&vals(&u).unwrap(), &vals(&hvp_of(v.clone())).unwrap());
    let vhu = fd::dot(&vals(&v).unwrap(), &vals(&hvp_of(u.clone())).unwrap());
    assert!(
        (uhv - vhu).abs() < 1e-10 * (1.0 + uhv.abs()),
        "{uhv} vs {vhu}"
    );
}

#[test]
fn second_derivatives_of_unary_ops_by_grad_of_grad() {
    // d2/dx2 of sum(f(x)) against central differences of the analytic first derivative.
    type U = fn(&Array) -> Result<Array>;
    let cases: [(&str, U, f64, f64); 8] = [
        ("sin", ops::sin, -2.0, 2.0),
        ("exp", ops::exp, -1.0, 1.0),
        ("log", ops::log, 0.5, 2.0),
        ("tanh", ops::tanh, -2.0, 2.0),
        ("sigmoid", ops::sigmoid, -2.0, 2.0),
        ("sqrt", ops::sqrt, 0.5, 2.0),
        ("reciprocal", ops::reciprocal, 0.5, 2.0),
        ("erf", ops::erf, -1.5, 1.5),
    ];
    let mut failures = Vec::new();
    for (name, f, lo, hi) in cases {
        let xv = Rng::new(3).draw(Dom::Real(lo, hi), 6);
        let x = f64s(&xv, &[6]);
        let d1 = move |x: &Array| grad(move |x: &Array| ops::sum(&f(x)?, Axes::All, false))(x);
        let d2 = grad(move |x: &Array| ops::sum(&d1(x)?, Axes::All, false));
        let got = match d2(&x).and_then(|g| vals(&g)) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let eps = 1e-6;
        let d1 = move |x: &Array| grad(move |x: &Array| ops::sum(&f(x)?, Axes::All, false))(x);
        let shifted = |s: f64| {
            let xs: Vec<f64> = xv.iter().map(|x| x + s).collect();
            vals(&d1(&f64s(&xs, &[6])).unwrap()).unwrap()
        };
        let (p, m) = (shifted(eps), shifted(-eps));
        let want: Vec<f64> = p
            .iter()
            .zip(&m)
            .map(|(p, m)| (p - m) / (2.0 * eps))
            .collect();
        if got
            .iter()
            .zip(&want)
            .any(|(g, w)| (g - w).abs() > 1e-6 + 1e-5 * w.abs())
        {
            failures.push(format!("{name}: got {got:?}, fd {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A vector function for the jvp-of-vjp test: R^5 -> R^4.
fn vector_fn(a: &Array, x: &Array) -> Result<Array> {
    let h = ops::tanh(&ops::matmul(a, x)?)?;
    ops::multiply(&h, &ops::sum(&ops::exp(x)?, Axes::All, false)?)
}

#[test]
fn jvp_of_vjp_matches_finite_differences_of_the_vjp() {
    let mut rng = Rng::new(12);
    let a = randn(&mut rng, &[4, 5]);
    let x = randn(&mut rng, &[5]);
    let c = randn(&mut rng, &[4]);
    let v = randn(&mut rng, &[5]);
    let vjp_at = {
        let (a, c) = (a.clone(), c.clone());
        move |xs: &[Array]| -> Result<Vec<Array>> {
            let (_, g) = vjp(
                |x| Ok(vec![vector_fn(&a, &x[0])?]),
                xs,
                std::slice::from_ref(&c),
            )?;
            Ok(g)
        }
    };
    let (primal, tangent) =
        jvp(&vjp_at, std::slice::from_ref(&x), std::slice::from_ref(&v)).unwrap();
    let got = vals(&tangent[0]).unwrap();
    let eps = 1e-6;
    let (xv, vv) = (vals(&x).unwrap(), vals(&v).unwrap());
    let at = |s: f64| {
        let xs: Vec<f64> = xv.iter().zip(&vv).map(|(x, v)| x + s * v).collect();
        vals(&vjp_at(&[f64s(&xs, &[5])]).unwrap()[0]).unwrap()
    };
    let (p, m) = (at(eps), at(-eps));
    let want: Vec<f64> = p
        .iter()
        .zip(&m)
        .map(|(p, m)| (p - m) / (2.0 * eps))
        .collect();
    assert_close("jvp of vjp", &got, &want, 1e-5, 1e-6);
    assert_close(
        "jvp of vjp, primal",
        &vals(&primal[0]).unwrap(),
        &at(0.0),
        1e-12,
        1e-12,
    );
    // And vjp of jvp: <c2, d/dx jvp(x; v)> against the jvp of the vjp (both are the
    // mixed second derivative c^T f''(x)[v, .] when contracted with c).
    let (a2, c2) = (a.clone(), c.clone());
    let jvp_then_dot = move |xs: &[Array]| -> Result<Vec<Array>> {
        let (_, t) = jvp(
            |x| Ok(vec![vector_fn(&a2, &x[0])?]),
            xs,
            std::slice::from_ref(&v),
        )?;
        Ok(vec![ops::sum(
            &ops::multiply(&t[0], &c2)?,
            Axes::All,
            false,
        )?])
    };
    let (_, g) = vjp(
        &jvp_then_dot,
        std::slice::from_ref(&x),
        &[Array::scalar(1.0f64)],
    )
    .unwrap();
    assert_close("vjp of jvp", &vals(&g[0]).unwrap(), &got, 1e-9, 1e-10);
}

/// A per-example loss for the vmap/grad compositions.
fn example_loss(x: &Array, w: &Array) -> Result<Array> {
    let h = ops::tanh(&ops::matmul(w, x)?)?;
    ops::add(
        &ops::sum(&ops::square(&h)?, Axes::All, false)?,
        &ops::max(&ops::multiply(x, &ops::sin(x)?)?, Axes::All, false)?,
    )
}

#[test]
fn vmap_of_grad_matches_a_loop_of_grads() {
    let mut rng = Rng::new(13);
    let xs = randn(&mut rng, &[6, 5]);
    let w = randn(&mut rng, &[3, 5]);
    let per_example = |a: &[Array]| -> Result<Vec<Array>> {
        let w = a[1].clone();
        Ok(vec![grad(move |x: &Array| example_loss(x, &w))(&a[0])?])
    };
    let got = vmap(per_example, &[Some(0), None], &[Some(0)])(&[xs.clone(), w.clone()]).unwrap();
    let mut want = Vec::new();
    for b in 0..6 {
        let x = ops::take(&xs, &Array::scalar(b), Some(0)).unwrap();
        want.push(per_example(&[x, w.clone()]).unwrap().remove(0));
    }
    let want = ops::stack(&want, 0).unwrap();
    fd::same("vmap of grad", &got[0], &want).unwrap();

    // Batched on the last axis, with the result's batch axis last too.
    let xt = ops::transpose(&xs, Axes::All).unwrap();
    let got = vmap(per_example, &[Some(1), None], &[Some(1)])(&[xt, w.clone()]).unwrap();
    fd::same(
        "vmap of grad, axis 1",
        &got[0],
        &ops::transpose(&want, Axes::All).unwrap(),
    )
    .unwrap();
}

#[test]
fn grad_of_vmap_matches_grad_of_a_loop() {
    let mut rng = Rng::new(14);
    let xs = randn(&mut rng, &[6, 5]);
    let w = randn(&mut rng, &[3, 5]);
    let xs2 = xs.clone();
    let batched = move |w: &Array| -> Result<Array> {
        let f = vmap(
            |a: &[Array]| Ok(vec![example_loss(&a[0], &a[1])?]),
            &[Some(0), None],
            &[Some(0)],
        );
        let losses = f(&[xs2.clone(), w.clone()])?.remove(0);
        ops::sum(&losses, Axes::All, false)
    };
    let looped = move |w: &Array| -> Result<Array> {
        let mut total = Array::scalar(0.0f64);
        for b in 0..6 {
            let x = ops::take(&xs, &Array::scalar(b), Some(0))?;
            total = ops::add(&total, &example_loss(&x, w)?)?;
        }
        Ok(total)
    };
    let (vb, gb) = value_and_grad(batched)(&w).unwrap();
    let (vl, gl) = value_and_grad(looped)(&w).unwrap();
    assert_close(
        "loss",
        &vals(&vb).unwrap(),
        &vals(&vl).unwrap(),
        1e-12,
        1e-12,
    );
    assert_close(
        "grad of vmap",
        &vals(&gb).unwrap(),
        &vals(&gl).unwrap(),
        1e-10,
        1e-12,
    );
}

#[test]
fn nested_vmap_matches_a_double_loop() {
    let mut rng = Rng::new(15);
    let xs = randn(&mut rng, &[3, 4]);
    let ys = randn(&mut rng, &[5, 4]);
    // f(x, y) for vectors x, y: a scalar.
    let f = |a: &[Array]| -> Result<Vec<Array>> {
        let s = ops::sum(&ops::multiply(&a[0], &ops::tanh(&a[1])?)?, Axes::All, false)?;
        Ok(vec![ops::add(&s, &ops::max(&a[0], Axes::All, false)?)?])
    };
    // Inner: over the rows of y (x shared); outer: over the rows of x (y shared).
    let inner = vmap(f, &[None, Some(0)], &[Some(0)]);
    let outer = vmap(inner, &[Some(0), None], &[Some(0)]);
    let got = outer(&[xs.clone(), ys.clone()]).unwrap().remove(0);
    assert_eq!(got.shape(), &[3, 5]);
    let mut want = Vec::new();
    for i in 0..3 {
        for j in 0..5 {
            let x = ops::take(&xs, &Array::scalar(i), Some(0)).unwrap();
            let y = ops::take(&ys, &Array::scalar(j), Some(0)).unwrap();
            want.push(f(&[x, y]).unwrap()[0].item::<f64>().unwrap());
        }
    }
    assert_close("nested vmap", &vals(&got).unwrap(), &want, 1e-12, 1e-12);

    // The same with the batch axes last (y transposed, mapped over its axis 1) and the outer
    // result's batch axis last: shape [5, 3].
    let inner = vmap(f, &[None, Some(-1)], &[Some(0)]);
    let outer = vmap(inner, &[Some(0), None], &[Some(-1)]);
    let yt = ops::transpose(&ys, Axes::All).unwrap();
    let got = outer(&[xs, yt]).unwrap().remove(0);
    assert_eq!(got.shape(), &[5, 3]);
    let got_t = vals(&ops::transpose(&got, Axes::All).unwrap()).unwrap();
    assert_close("nested vmap, last axes", &got_t, &want, 1e-12, 1e-12);
}

#[test]
fn grad_through_a_custom_function_uses_its_rules() {
    // sin with a vjp scaled by 2 and a jvp scaled by 3: the rules, not sin's, are used.
    let f = custom_function("scaled_sin", |x| Ok(vec![ops::sin(&x[0])?]))
        .with_vjp(|p, c, _| {
            Ok(vec![ops::multiply(
                &ops::multiply(&c[0], &ops::cos(&p[0])?)?,
                2.0,
            )?])
        })
        .with_jvp(|p, t| {
            Ok(vec![ops::multiply(
                &ops::multiply(&t[0], &ops::cos(&p[0])?)?,
                3.0,
            )?])
        });
    let f = std::sync::Arc::new(f);
    let xv = [0.3f64, -1.2, 2.0];
    let x = f64s(&xv, &[3]);
    let f1 = f.clone();
    // grad of sum(custom(x)^2) = 2 sin(x) * (2 cos(x)).
    let g = grad(move |x: &Array| {
        let y = f1.call(std::slice::from_ref(x))?.remove(0);
        ops::sum(&ops::square(&y)?, Axes::All, false)
    })(&x)
    .unwrap();
    let want: Vec<f64> = xv.iter().map(|x| 2.0 * x.sin() * 2.0 * x.cos()).collect();
    assert_close("custom vjp", &vals(&g).unwrap(), &want, 1e-12, 1e-12);
    let f2 = f.clone();
    let (out, t) = jvp(
        move |x| f2.call(x),
        std::slice::from_ref(&x),
        &[f64s(&[1.0, 1.0, 1.0], &[3])],
    )
    .unwrap();
    let want: Vec<f64> = xv.iter().map(|x| 3.0 * x.cos()).collect();
    assert_close("custom jvp", &vals(&t[0]).unwrap(), &want, 1e-12, 1e-12);
    let sin: Vec<f64> = xv.iter().map(|x| x.sin()).collect();
    assert_close("custom value", &vals(&out[0]).unwrap(), &sin, 1e-12, 1e-12);
    // vmap of a custom function without a batching rule maps its body.
    let f3 = f.clone();
    let xs = f64s(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], &[2, 3]);
    let got = vmap(move |a| f3.call(a), &[Some(1)], &[Some(1)])(&[xs]).unwrap();
    let want: Vec<f64> = [0.1f64, 0.2, 0.3, 0.4, 0.5, 0.6]
        .iter()
        .map(|x| x.sin())
        .collect();
    assert_close(
        "vmap of custom",
        &vals(&got[0]).unwrap(),
        &want,
        1e-12,
        1e-12,
    );

    // Without rules, the derivative comes from the body.
    let plain = custom_function("plain", |x| Ok(vec![ops::exp(&ops::sin(&x[0])?)?]));
    let g = grad(move |x: &Array| {
        ops::sum(&plain.call(std::slice::from_ref(x))?[0], Axes::All, false)
    })(&f64s(&xv, &[3]))
    .unwrap();
    let want: Vec<f64> = xv.iter().map(|x| x.sin().exp() * x.cos()).collect();
    assert_close("derived vjp", &vals(&g).unwrap(), &want, 1e-12, 1e-12);
}

#[test]
fn stop_gradient_and_grad_variants() {
    let x = f64s(&[1.5, -0.5], &[2]);
    // d/dx x * stop(x) = stop(x).
    let g =
        grad(|x: &Array| ops::sum(&ops::multiply(x, &stop_gradient(x)?)?, Axes::All, false))(&x)
            .unwrap();
    assert_eq!(vals(&g).unwrap(), vec![1.5, -0.5]);
    // grad_argnums: derivative for argument 1 only; argument 0 is an integer array.
    let n = Array::from_slice(&[2i32, 3], &[2]).unwrap();
    let g = grad_argnums(
        |a| {
            ops::sum(
                &ops::multiply(&a[0], &ops::square(&a[1])?)?,
                Axes::All,
                false,
            )
        },
        &[1],
    )(&[n, x.clone()])
    .unwrap();
    assert_eq!(g.len(), 1);
    assert_eq!(vals(&g[0]).unwrap(), vec![6.0, -3.0]);
    // value_and_grad_aux: the auxiliary output comes back untouched.
    let ((v, aux), g) = value_and_grad_aux(|x: &Array| {
        let y = ops::square(x)?;
        Ok((ops::sum(&y, Axes::All, false)?, y))
    })(&x)
    .unwrap();
    assert_eq!(v.item::<f64>().unwrap(), 2.5);
    assert_eq!(vals(&aux).unwrap(), vec![2.25, 0.25]);
    assert_eq!(vals(&g).unwrap(), vec![3.0, -1.0]);
    // A tree of parameters: a map of a tuple and a Vec.
    let mut params: BTreeMap<String, (Array, Vec<Array>)> = BTreeMap::new();
    params.insert(
        "layer".into(),
        (
            f64s(&[2.0], &[1]),
            vec![f64s(&[3.0], &[1]), f64s(&[4.0], &[1])],
        ),
    );
    let g = grad(|p: &BTreeMap<String, (Array, Vec<Array>)>| {
        let (a, v) = &p["layer"];
        let s = ops::multiply(&ops::multiply(a, &v[0])?, &v[1])?;
        ops::sum(&s, Axes::All, false)
    })(&params)
    .unwrap();
    let leaves: Vec<f64> = g
        .leaves()
        .iter()
        .map(|a| a.item::<f64>().unwrap())
        .collect();
    assert_eq!(leaves, vec![12.0, 8.0, 6.0]);
}

/// A small MLP in float64: layers of tanh(h @ W + b).
fn mlp_forward(params: &[(Array, Array)], x: &Array, ckpt: bool) -> Result<Array> {
    let mut h = x.clone();
    for (w, b) in params {
        let layer = |a: &[Array]| -> Result<Vec<Array>> {
            Ok(vec![ops::tanh(&ops::add(
                &ops::matmul(&a[0], &a[1])?,
                &a[2],
            )?)?])
        };
        h = if ckpt {
            checkpoint(layer)(&[h, w.clone(), b.clone()])?.remove(0)
        } else {
            layer(&[h, w.clone(), b.clone()])?.remove(0)
        };
    }
    ops::sum(&ops::square(&h)?, Axes::All, false)
}

#[test]
fn checkpoint_gives_the_same_gradient() {
    let mut rng = Rng::new(16);
    let x = randn(&mut rng, &[4, 6]);
    let params: Vec<(Array, Array)> = (0..3)
        .map(|_| (randn(&mut rng, &[6, 6]), randn(&mut rng, &[6])))
        .collect();
    let x1 = x.clone();
    let (v0, g0) =
        value_and_grad(move |p: &Vec<(Array, Array)>| mlp_forward(p, &x1, false))(&params).unwrap();
    let (v1, g1) =
        value_and_grad(move |p: &Vec<(Array, Array)>| mlp_forward(p, &x, true))(&params).unwrap();
    assert_close(
        "value",
        &vals(&v1).unwrap(),
        &vals(&v0).unwrap(),
        1e-12,
        1e-12,
    );
    for (a, b) in g1.leaves().iter().zip(g0.leaves()) {
        assert_close(
            "checkpointed grad",
            &vals(a).unwrap(),
            &vals(&b).unwrap(),
            1e-12,
            1e-12,
        );
    }

    // A checkpointed block also passes jvp and vmap through (derived from its body).
    let w = params[0].0.clone();
    let block = checkpoint(move |a: &[Array]| Ok(vec![ops::tanh(&ops::matmul(&a[0], &w)?)?]));
    let xs = randn(&mut rng, &[5, 6]);
    let f = |a: &[Array]| block(a);
    check_jvp(&f, std::slice::from_ref(&xs), 3, Tol::default()).unwrap();
    check_vjp(&f, std::slice::from_ref(&xs), 3, Tol::default()).unwrap();
    let ex = |last| VmapInput {
        shape: vec![6],
        dtype: Dtype::Float64,
        layout: Layout::Contiguous,
        dom: Dom::Real(-1.0, 1.0),
        mapped: last,
    };
    for pos in [Pos::First, Pos::Middle, Pos::Last] {
        fd::check_vmap(&f, &[ex(true)], pos, 4, 5).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Training.
// ---------------------------------------------------------------------------------------------

/// Plain gradient descent: `steps` updates of `lr`; returns the losses before each step and
/// after the last.
fn descend<P: Tree>(
    loss: impl Fn(&P) -> Result<Array>,
    mut params: P,
    lr: f64,
    steps: usize,
) -> Vec<f32> {
    let vg = value_and_grad(loss);
    let mut losses = Vec::with_capacity(steps + 1);
    for _ in 0..steps {
        let (l, g) = vg(&params).unwrap();
        let mut gl = g.leaves().into_iter();
        params = params
            .map_leaves(&mut |p| ops::subtract(p, &ops::multiply(gl.next().unwrap(), lr)?))
            .unwrap();
        let mut all = params.leaves();
        all.push(l.clone());
        eval(&all).unwrap();
        losses.push(l.item::<f32>().unwrap());
    }
    let (l, _) = vg(&params).unwrap();
    losses.push(l.item::<f32>().unwrap());
    losses
}

fn f32s(v: &[f64], shape: &[usize]) -> Array {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Array::from_slice(&v, shape).unwrap()
}

#[test]
fn logistic_regression_trains() {
    // 128 points in the plane; the label is the side of the line 1.5 x0 - x1 + 0.3 = 0.
    let mut rng = Rng::new(21);
    let n = 128;
    let xv = rng.normals(2 * n);
    let yv: Vec<f64> = (0..n)
        .map(|i| (1.5 * xv[2 * i] - xv[2 * i + 1] + 0.3 > 0.0) as u8 as f64)
        .collect();
    let x = f32s(&xv, &[n, 2]);
    let y = f32s(&yv, &[n]);
    let loss = move |(w, b): &(Array, Array)| -> Result<Array> {
        let z = ops::add(&ops::matmul(&x, w)?, b)?;
        // Binary cross-entropy with logits: log(1 + e^z) - y z.
        let l = ops::subtract(&ops::logaddexp(0.0, &z)?, &ops::multiply(&y, &z)?)?;
        ops::mean(&l, Axes::All, false)
    };
    let params = (
        ops::zeros(&[2], Dtype::Float32).unwrap(),
        Array::scalar(0.0f32),
    );
    let losses = descend(loss, params, 1.0, 300);
    let (first, last) = (losses[0], *losses.last().unwrap());
    eprintln!("logistic regression: loss {first} -> {last}");
    // Measured: ln 2 = 0.693 -> 0.0765 after 300 steps (float32, CPU).
    assert!((first - std::f32::consts::LN_2).abs() < 1e-6, "{first}");
    assert!(last < 0.1, "final loss {last}");
    assert!(last < first / 5.0, "{first} -> {last}");
    assert!(
        losses.windows(2).all(|w| w[1] <= w[0] + 1e-6),
        "the loss must not rise"
    );
}

#[test]
fn two_layer_mlp_trains() {
    // y = sin(2 x) on 64 points of [-1.5, 1.5], a tanh MLP 1 -> 32 -> 1, mean squared error.
    let n = 64;
    let xv: Vec<f64> = (0..n)
        .map(|i| -1.5 + 3.0 * i as f64 / (n - 1) as f64)
        .collect();
    let yv: Vec<f64> = xv.iter().map(|x| (2.0 * x).sin()).collect();
    let x = f32s(&xv, &[n, 1]);
    let y = f32s(&yv, &[n, 1]);
    let mut rng = Rng::new(22);
    let h = 32;
    let w1 = f32s(&rng.normals(h), &[1, h]);
    let b1 = f32s(&rng.normals(h), &[h]);
    let w2 = f32s(
        &rng.normals(h)
            .iter()
            .map(|v| v / (h as f64).sqrt())
            .collect::<Vec<_>>(),
        &[h, 1],
    );
    let b2 = ops::zeros(&[1], Dtype::Float32).unwrap();
    let loss = move |p: &Vec<Array>| -> Result<Array> {
        let hid = ops::tanh(&ops::add(&ops::matmul(&x, &p[0])?, &p[1])?)?;
        let out = ops::add(&ops::matmul(&hid, &p[2])?, &p[3])?;
        ops::mean(&ops::square(&ops::subtract(&out, &y)?)?, Axes::All, false)
    };
    // (lr 0.2 diverges: the curvature along w2 is about 2 * 32 * E[h^2].)
    let losses = descend(loss, vec![w1, b1, w2, b2], 0.1, 2000);
    let (first, last) = (losses[0], *losses.last().unwrap());
    eprintln!("MLP: loss {first} -> {last}");
    // Measured: 1.187 -> 6.4e-4 (float32, CPU).
    assert!(last < 2e-3, "final loss {last}");
    assert!(last < first / 500.0, "{first} -> {last}");
}
