//! The errors of the transformations (each names the transformation and what was wrong), and
//! MLX's choices at kinks, ties and edge cases of vmap and vjp.

use crate::fd;
use crate::transforms_compose::assert_close;
use fd::{f64s, vals};
use umx::Axes;
use umx::prelude::*;
use umx::transforms::{grad, grad_argnums, jvp, stop_gradient, value_and_grad, vjp, vmap};

// ---------------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------------

fn err_of<T>(r: Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_name_the_transformation() {
    let x = f64s(&[1.0, 2.0, 3.0], &[3]);
    // grad of a non-scalar output.
    let e = err_of(grad(|x: &Array| ops::sin(x))(&x));
    assert!(
        e.contains("grad") && e.contains("scalar") && e.contains("(3,)"),
        "{e}"
    );
    let e = err_of(value_and_grad(|x: &Array| ops::sin(x))(&x));
    assert!(
        e.starts_with("value_and_grad:") && e.contains("scalar"),
        "{e}"
    );
    let e = err_of(grad_argnums(|a| ops::sin(&a[0]), &[0])(
        std::slice::from_ref(&x),
    ));
    assert!(e.starts_with("grad:") && e.contains("scalar"), "{e}");
    // grad of an integer output.
    let e = err_of(grad(|x: &Array| ops::argmax(x, None, false))(&x));
    assert!(e.contains("grad") && e.contains("floating-point"), "{e}");
    // grad with respect to an integer input.
    let xi = Array::from_slice(&[1i32, 2, 3], &[3]).unwrap();
    let e = err_of(grad(|x: &Array| ops::sum(x, Axes::All, false))(&xi));
    assert!(e.contains("grad") && e.contains("int32"), "{e}");
    let e = err_of(grad_argnums(|a| ops::sum(&a[0], Axes::All, false), &[0])(
        std::slice::from_ref(&xi),
    ));
    assert!(e.starts_with("grad:") && e.contains("int32"), "{e}");
    let e = err_of(grad_argnums(|a| ops::sum(&a[0], Axes::All, false), &[2])(
        std::slice::from_ref(&x),
    ));
    assert!(e.starts_with("grad:") && e.contains("argnum 2"), "{e}");
    // vmap with mismatched axis sizes.
    let a = f64s(&[0.0; 6], &[2, 3]);
    let b = f64s(&[0.0; 12], &[4, 3]);
    let add = |x: &[Array]| Ok(vec![ops::add(&x[0], &x[1])?]);
    let e = err_of(vmap(add, &[Some(0)], &[Some(0)])(&[a.clone(), b.clone()]));
    assert!(
        e.starts_with("vmap:")
            && e.contains("different sizes")
            && e.contains("2")
            && e.contains("4"),
        "{e}"
    );
    // vmap with an axis out of range.
    let e = err_of(vmap(add, &[Some(2), Some(0)], &[Some(0)])(&[
        a.clone(),
        a.clone(),
    ]));
    assert!(
        e.starts_with("vmap:") && e.contains("in_axes 2") && e.contains("out of range"),
        "{e}"
    );
    let e = err_of(vmap(add, &[Some(-3)], &[Some(0)])(&[a.clone(), a.clone()]));
    assert!(e.starts_with("vmap:") && e.contains("out of range"), "{e}");
    // (An identity with its own batching rule: these need no primitive's rule.)
    let id = |x: &[Array]| Ok(vec![stop_gradient(&x[0])?]);
    let e = err_of(vmap(id, &[Some(0)], &[Some(3)])(std::slice::from_ref(&a)));
    assert!(e.starts_with("vmap:") && e.contains("out_axes 3"), "{e}");
    // vmap with every input unmapped, or too many in_axes.
    let e = err_of(vmap(add, &[None], &[Some(0)])(&[a.clone(), a.clone()]));
    assert!(e.starts_with("vmap:") && e.contains("mapped"), "{e}");
    let e = err_of(vmap(add, &[Some(0), Some(0), Some(0)], &[Some(0)])(&[
        a.clone(),
        a.clone(),
    ]));
    assert!(e.starts_with("vmap:"), "{e}");
    // An output that depends on the batch cannot have out_axes None.
    let e = err_of(vmap(id, &[Some(0)], &[None])(std::slice::from_ref(&a)));
    assert!(e.starts_with("vmap:") && e.contains("out_axes"), "{e}");
    // vjp with a cotangent of the wrong shape, or too many cotangents.
    let sin = |x: &[Array]| Ok(vec![ops::sin(&x[0])?]);
    let e = err_of(vjp(
        sin,
        std::slice::from_ref(&x),
        &[f64s(&[1.0, 1.0], &[2])],
    ));
    assert!(
        e.starts_with("vjp:") && e.contains("cotangent 0") && e.contains("(2,)"),
        "{e}"
    );
    let e = err_of(vjp(sin, std::slice::from_ref(&x), &[x.clone(), x.clone()]));
    assert!(e.starts_with("vjp:") && e.contains("2 cotangents"), "{e}");
    // jvp with a tangent of the wrong shape, or a missing one.
    let e = err_of(jvp(sin, std::slice::from_ref(&x), &[f64s(&[1.0], &[1])]));
    assert!(e.starts_with("jvp:") && e.contains("tangent 0"), "{e}");
    let e = err_of(jvp(sin, std::slice::from_ref(&x), &[]));
    assert!(e.starts_with("jvp:") && e.contains("tangents"), "{e}");
    // vjp and jvp with respect to integer inputs.
    let e = err_of(vjp(
        sin,
        std::slice::from_ref(&xi),
        std::slice::from_ref(&x),
    ));
    assert!(e.starts_with("vjp:") && e.contains("int32"), "{e}");
    let e = err_of(jvp(
        sin,
        std::slice::from_ref(&xi),
        std::slice::from_ref(&xi),
    ));
    assert!(e.starts_with("jvp:") && e.contains("int32"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// MLX's choices at kinks and ties, where finite differences cannot decide.
// ---------------------------------------------------------------------------------------------

#[test]
fn derivatives_at_kinks_and_ties_follow_mlx() {
    let g = |f: fn(&Array) -> Result<Array>, xv: &[f64]| -> Vec<f64> {
        let x = f64s(xv, &[xv.len()]);
        vals(&grad(move |x: &Array| ops::sum(&f(x)?, Axes::All, false))(&x).unwrap()).unwrap()
    };
    // abs: sign(x), so 0 at 0.
    assert_eq!(g(ops::abs, &[-2.0, 0.0, 3.0]), vec![-1.0, 0.0, 1.0]);
    // max and min over an axis share the cotangent equally among tied maxima.
    assert_eq!(
        g(|x| ops::max(x, Axes::All, false), &[1.0, 3.0, 3.0, 2.0]),
        vec![0.0, 0.5, 0.5, 0.0]
    );
    assert_eq!(
        g(|x| ops::min(x, Axes::All, false), &[1.0, 3.0, 1.0, 1.0]),
        vec![1.0 / 3.0, 0.0, 1.0 / 3.0, 1.0 / 3.0]
    );
    // maximum(a, b) and minimum(a, b): a tie sends the cotangent to b.
    let a = f64s(&[1.0, 2.0, 3.0], &[3]);
    let b = f64s(&[1.0, 5.0, 0.0], &[3]);
    type B = fn(&Array, &Array) -> Result<Array>;
    let pairs: [(&str, B); 2] = [
        ("maximum", |a, b| ops::maximum(a, b)),
        ("minimum", |a, b| ops::minimum(a, b)),
    ];
    for (name, f) in pairs {
        let gs = grad_argnums(
            move |x| ops::sum(&f(&x[0], &x[1])?, Axes::All, false),
            &[0, 1],
        )(&[a.clone(), b.clone()])
        .unwrap();
        let (ga, gb) = (vals(&gs[0]).unwrap(), vals(&gs[1]).unwrap());
        let want_a = if name == "maximum" {
            [0.0, 0.0, 1.0]
        } else {
            [0.0, 1.0, 0.0]
        };
        assert_eq!(ga, want_a, "{name} a");
        let want_b: Vec<f64> = want_a
            .iter()
            .enumerate()
            .map(|(i, v)| if i == 0 { 1.0 } else { 1.0 - v })
            .collect();
        assert_eq!(gb, want_b, "{name} b");
    }
    // floor, ceil, round and sign have zero derivatives.
    for f in [ops::floor, ops::ceil, ops::sign, |x: &Array| {
        ops::round(x, 0)
    }] {
        assert_eq!(g(f, &[-1.5, 0.25, 2.0]), vec![0.0, 0.0, 0.0]);
    }
    // A function that does not depend on its input has a zero gradient, of the input's shape.
    let x = f64s(&[1.0, 2.0], &[2]);
    let (_, gs) = vjp(
        |_| Ok(vec![ops::ones(&[3], Dtype::Float64)?]),
        std::slice::from_ref(&x),
        &[f64s(&[1.0, 1.0, 1.0], &[3])],
    )
    .unwrap();
    assert_eq!(vals(&gs[0]).unwrap(), vec![0.0, 0.0]);
    // An input used twice accumulates both paths: d/dx (x * x + x) = 2x + 1.
    let gx = grad(|x: &Array| ops::sum(&ops::add(&ops::multiply(x, x)?, x)?, Axes::All, false))(&x)
        .unwrap();
    assert_eq!(vals(&gx).unwrap(), vec![3.0, 5.0]);
}

#[test]
fn vmap_and_vjp_edge_cases() {
    let xv: Vec<f64> = (0..6).map(|i| i as f64 * 0.5 - 1.0).collect();
    let x = f64s(&xv, &[2, 3]);
    // An output that does not depend on the batch is broadcast along the out axis; the
    // identity maps its input straight through (its batch axis moved to out_axes).
    let f = |a: &[Array]| -> Result<Vec<Array>> {
        Ok(vec![
            ops::ones(&[4], Dtype::Float32)?,
            a[0].clone(),
            ops::sin(&a[0])?,
        ])
    };
    let outs = vmap(f, &[Some(1)], &[Some(0), Some(1), Some(0)])(std::slice::from_ref(&x)).unwrap();
    assert_eq!(outs[0].shape(), &[3, 4]);
    assert_eq!(vals(&outs[0]).unwrap(), vec![1.0; 12]);
    assert_eq!(outs[1].shape(), &[2, 3]);
    assert_eq!(vals(&outs[1]).unwrap(), xv);
    assert_eq!(outs[2].shape(), &[3, 2]);
    let want: Vec<f64> = [0, 3, 1, 4, 2, 5].iter().map(|&i| xv[i].sin()).collect();
    assert_close("sin", &vals(&outs[2]).unwrap(), &want, 1e-15, 0.0);
    // An unmapped output with out_axes None stays as it is.
    let outs = vmap(f, &[Some(0)], &[None, Some(0), Some(0)])(std::slice::from_ref(&x)).unwrap();
    assert_eq!(outs[0].shape(), &[4]);
    // A batch of one.
    let one = f64s(&[0.5, 1.5], &[1, 2]);
    let outs = vmap(
        |a: &[Array]| Ok(vec![ops::sum(&ops::exp(&a[0])?, Axes::All, false)?]),
        &[Some(0)],
        &[Some(0)],
    )(std::slice::from_ref(&one))
    .unwrap();
    assert_eq!(outs[0].shape(), &[1]);
    assert_close(
        "batch of one",
        &vals(&outs[0]).unwrap(),
        &[0.5f64.exp() + 1.5f64.exp()],
        1e-15,
        0.0,
    );
    // vjp with fewer cotangents than outputs: the later outputs do not contribute.
    let (outs, g) = vjp(
        |a| Ok(vec![ops::sin(&a[0])?, ops::exp(&a[0])?]),
        std::slice::from_ref(&x),
        &[ops::ones(&[2, 3], Dtype::Float64).unwrap()],
    )
    .unwrap();
    assert_eq!(outs.len(), 2);
    let want: Vec<f64> = xv.iter().map(|v| v.cos()).collect();
    assert_close(
        "vjp of first output",
        &vals(&g[0]).unwrap(),
        &want,
        1e-15,
        0.0,
    );
    // float32 inputs get float32 cotangents (a float64 cotangent is cast).
    let x32 = Array::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
    let (_, g) = vjp(
        |a| Ok(vec![ops::square(&a[0])?]),
        std::slice::from_ref(&x32),
        &[f64s(&[1.0, 1.0], &[2])],
    )
    .unwrap();
    assert_eq!(g[0].dtype(), Dtype::Float32);
    assert_eq!(g[0].to_vec::<f32>().unwrap(), vec![2.0, 4.0]);
}
