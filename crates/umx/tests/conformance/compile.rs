//! `compile`: compiled functions give exactly what the plain function gives, fuse element-wise
//! chains, retrace when they must (and only then), and compose with the other transformations.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use umx::prelude::*;
use umx::transforms::compile;

type F = Arc<dyn Fn(&[Array]) -> Result<Vec<Array>> + Send + Sync>;

fn rand(shape: &[usize], seed: u64) -> Array {
    random::normal(shape, None, 0.0, 1.0, Some(&random::key(seed).unwrap())).unwrap()
}

fn same(a: &Array, b: &Array) {
    assert_eq!(a.shape(), b.shape());
    assert_eq!(a.dtype(), b.dtype());
    let (x, y) = (a.to_vec::<f64>().unwrap(), b.to_vec::<f64>().unwrap());
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        assert!(
            p == q || (p.is_nan() && q.is_nan()),
            "element {i}: {p} vs {q}"
        );
    }
}

fn close(a: &Array, b: &Array, tol: f64) {
    assert_eq!(a.shape(), b.shape());
    let (x, y) = (a.to_vec::<f64>().unwrap(), b.to_vec::<f64>().unwrap());
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        assert!(
            (p - q).abs() <= tol * (1.0 + q.abs()),
            "element {i}: {p} vs {q}"
        );
    }
}

/// A corpus of functions with their inputs.
fn corpus() -> Vec<(&'static str, F, Vec<Array>)> {
    let x = rand(&[33, 70], 1);
    let y = rand(&[70], 2);
    let pos = ops::add(ops::abs(&rand(&[33, 70], 3)).unwrap(), 0.1).unwrap();
    let h = x.astype(Dtype::Float16).unwrap();
    let i = ops::astype(
        &ops::multiply(rand(&[33, 70], 4), 10.0).unwrap(),
        Dtype::Int32,
    )
    .unwrap();
    let w = rand(&[70, 16], 5);
    let i3 = ops::astype(
        &ops::multiply(rand(&[33, 70], 7), 10.0).unwrap(),
        Dtype::Int32,
    )
    .unwrap();
    let cube = rand(&[5, 6, 7], 8);
    let b = rand(&[16], 6);
    let f =
        |g: fn(&[Array]) -> Result<Array>| -> F { Arc::new(move |a: &[Array]| Ok(vec![g(a)?])) };
    vec![
        (
            "affine chain",
            f(|a| ops::divide(ops::add(ops::multiply(&a[0], 2.0)?, 5.0)?, 3.0)),
            vec![x.clone()],
        ),
        (
            "broadcast",
            f(|a| ops::tanh(&ops::subtract(ops::multiply(&a[0], &a[1])?, &a[1])?)),
            vec![x.clone(), y.clone()],
        ),
        (
            "unary zoo",
            f(|a| {
                let s = ops::sigmoid(&ops::sin(&a[0])?)?;
                let t = ops::log1p(&ops::exp(&ops::negative(&ops::square(&a[0])?)?)?)?;
                ops::maximum(ops::sqrt(&ops::add(&s, &t)?)?, ops::erf(&a[0])?)
            }),
            vec![x.clone()],
        ),
        (
            "positive domain",
            f(|a| ops::power(&ops::log(&a[0])?, 2.0)),
            vec![pos.clone()],
        ),
        (
            "float16",
            f(|a| ops::multiply(ops::add(&a[0], 1.0)?, &a[0])),
            vec![h],
        ),
        (
            "mixed dtypes",
            f(|a| {
                ops::where_(
                    ops::greater(&a[1], 0)?,
                    ops::multiply(&a[0], &a[1])?,
                    ops::negative(&a[0])?,
                )
            }),
            vec![x.clone(), i.clone()],
        ),
        (
            "integers",
            f(|a| ops::remainder(ops::add(ops::multiply(&a[0], 3)?, 7)?, 5)),
            vec![i],
        ),
        (
            "reduction prologue",
            f(|a| ops::sum(&ops::multiply(&a[0], &a[1])?, None, false)),
            vec![x.clone(), y.clone()],
        ),
        (
            "reduction prologue over an axis, kept",
            f(|a| ops::mean(&ops::square(&ops::subtract(&a[0], &a[1])?)?, [1], true)),
            vec![x.clone(), y.clone()],
        ),
        (
            "max of a broadcast product over the leading axis",
            f(|a| ops::max(&ops::multiply(&a[0], &a[1])?, [0], false)),
            vec![x.clone(), y.clone()],
        ),
        (
            "all of a comparison",
            f(|a| ops::all(&ops::greater(&ops::add(&a[0], 0.5)?, 0.0)?, [-1], false)),
            vec![x.clone()],
        ),
        (
            "float16 product prologue",
            f(|a| ops::prod(&ops::add(&ops::multiply(&a[0], 0.01)?, 1.0)?, [1], false)),
            vec![x.astype(Dtype::Float16).unwrap()],
        ),
        (
            "integer sum prologue",
            f(|a| ops::sum(&ops::multiply(&a[0], &a[0])?, None, false)),
            vec![i3.clone()],
        ),
        (
            "reduction over axes that are not one run",
            f(|a| ops::sum(&ops::exp(&ops::multiply(&a[0], 0.5)?)?, [0, 2], false)),
            vec![cube.clone()],
        ),
        (
            "softmax",
            f(|a| ops::softmax(&a[0], -1, false)),
            vec![x.clone()],
        ),
        (
            "a row reduction of values used again",
            f(|a| {
                let e = ops::exp(&ops::multiply(&a[0], 0.5)?)?;
                ops::divide(&e, ops::sum(&e, [1], true)?)
            }),
            vec![x.clone()],
        ),
        (
            "a column reduction of values used again",
            f(|a| {
                let d = ops::tanh(&ops::multiply(&a[0], &a[1])?)?;
                ops::multiply(&d, ops::max(&d, [0], false)?)
            }),
            vec![x.clone(), y.clone()],
        ),
        (
            "a full float16 reduction of values used again",
            f(|a| {
                let d = ops::square(&ops::subtract(&a[0], 0.5)?)?;
                ops::divide(&d, ops::mean(&d, None, false)?)
            }),
            vec![x.astype(Dtype::Float16).unwrap()],
        ),
        (
            "matmul epilogue",
            f(|a| ops::maximum(ops::add(ops::matmul(&a[0], &a[1])?, &a[2])?, 0.0)),
            vec![x.clone(), w, b],
        ),
        (
            "shared subexpressions",
            f(|a| {
                let p = ops::exp(&a[0])?;
                let q = ops::exp(&a[0])?;
                ops::add(ops::multiply(&p, &q)?, ops::multiply(&p, 2.0)?)
            }),
            vec![x],
        ),
    ]
}

#[test]
fn compiled_functions_equal_the_plain_ones() {
    for (name, f, args) in corpus() {
        let want = f(&args).unwrap();
        let g = f.clone();
        let cf = compile(move |a: &[Array]| g(a), false);
        for _ in 0..2 {
            let got = cf(&args).unwrap_or_else(|e| panic!("{name}: {e}"));
            if name.starts_with("matmul") {
                // The addition moves into the product's epilogue: another rounding order.
                close(&got[0], &want[0], 1e-5);
            } else {
                same(&got[0], &want[0]);
            }
        }
    }
}

#[test]
fn element_wise_chains_become_one_fused_node() {
    let cf = compile(
        |a: &[Array]| {
            Ok(vec![ops::divide(
                ops::add(ops::multiply(&a[0], 2.0)?, 5.0)?,
                3.0,
            )?])
        },
        false,
    );
    let out = cf(&[rand(&[8], 1)]).unwrap();
    match out[0].primitive() {
        Some(umx::primitives::Primitive::Fused(op)) => assert_eq!(op.program.len(), 3),
        other => panic!("not fused: {other:?}"),
    }
}

/// Values a chain computes on the way that are also outputs (an optimizer's new moments)
/// come out of the same fused node: one pass, several outputs, the same values; grad and vmap
/// through it agree with the uncompiled function.
#[test]
fn chain_values_that_are_also_outputs_come_out_of_one_fused_node() {
    let f = |a: &[Array]| -> umx::Result<Vec<Array>> {
        let m = ops::add(ops::multiply(&a[1], 0.9)?, ops::multiply(&a[0], 0.1)?)?;
        let v = ops::add(
            ops::multiply(&a[2], 0.99)?,
            ops::multiply(ops::square(&a[0])?, 0.01)?,
        )?;
        let step = ops::divide(&m, ops::add(ops::sqrt(&v)?, 1e-8)?)?;
        let p = ops::subtract(ops::multiply(&a[3], 0.999)?, ops::multiply(step, 1e-3)?)?;
        Ok(vec![p, m, v])
    };
    let cf = Arc::new(compile(f, false));
    let args: Vec<Array> = (0..4)
        .map(|i| {
            let x = rand(&[5, 7], 10 + i);
            if i == 2 { ops::abs(&x).unwrap() } else { x }
        })
        .collect();
    let got = cf(&args).unwrap();
    // All three outputs are outputs of one fused node (one primitive over the same inputs).
    for o in &got {
        assert!(
            matches!(o.primitive(), Some(umx::primitives::Primitive::Fused(op)) if op.extra.len() == 2),
            "{:?}",
            o.primitive()
        );
        let same_inputs = o
            .inputs()
            .iter()
            .zip(got[0].inputs())
            .all(|(a, b)| a.same(&b));
        assert!(same_inputs && o.inputs().len() == got[0].inputs().len());
    }
    let want = f(&args).unwrap();
    for (g, w) in got.iter().zip(&want) {
        same(g, w);
    }
    // Gradients of a weighted sum of all three outputs, compiled and not.
    let weighted = |o: Vec<Array>| -> umx::Result<Vec<Array>> {
        let mut total = ops::sum(&o[0], None, false)?;
        for (k, x) in o.iter().enumerate().skip(1) {
            total = ops::add(
                &total,
                ops::sum(&ops::multiply(x, k as f64 + 1.0)?, None, false)?,
            )?;
        }
        Ok(vec![total])
    };
    let seed = [Array::scalar(1.0f32)];
    let c2 = cf.clone();
    let (_, gc) = umx::transforms::vjp(|a| weighted(c2(a)?), &args, &seed).unwrap();
    let (_, gu) = umx::transforms::vjp(|a| weighted(f(a)?), &args, &seed).unwrap();
    for (x, y) in gc.iter().zip(&gu) {
        close(x, y, 1e-5);
    }
    // vmap over a batch equals a loop.
    let c3 = cf.clone();
    let batched = vmap(move |a: &[Array]| c3(a), &[Some(0); 4], &[Some(0); 3]);
    let xs: Vec<Array> = (0..4)
        .map(|i| ops::abs(&rand(&[3, 5, 7], 20 + i)).unwrap())
        .collect();
    let out = batched(&xs).unwrap();
    for b in 0..3 {
        let pick = |a: &Array| {
            ops::take(a, &Array::from_slice(&[b as u32], &[]).unwrap(), Some(0)).unwrap()
        };
        let one: Vec<Array> = xs.iter().map(pick).collect();
        let want = f(&one).unwrap();
        for (o, w) in out.iter().zip(&want) {
            close(&pick(o), w, 1e-6);
        }
    }
}

/// Fused updates whose values only leave the function (an optimizer's, one per parameter)
/// become one group node, which every transformation sees through.
#[test]
fn independent_updates_that_only_leave_the_function_run_as_one_group() {
    // Parameters of several shapes and dtypes (one empty), their gradients and moments, and
    // a learning rate all of them read.
    let f = |a: &[Array]| -> umx::Result<Vec<Array>> {
        let lr = &a[0];
        let mut outs = Vec::new();
        for k in 0..4 {
            let (p, g, m) = (&a[1 + 3 * k], &a[2 + 3 * k], &a[3 + 3 * k]);
            let m2 = ops::add(ops::multiply(m, 0.9)?, ops::multiply(g, 0.1)?)?;
            let step = ops::divide(&m2, ops::add(ops::abs(g)?, 1e-3)?)?;
            let p2 = ops::subtract(p, ops::multiply(step, lr)?.astype(p.dtype())?)?;
            outs.push(p2);
            if k % 2 == 0 {
                outs.push(m2);
            }
        }
        Ok(outs)
    };
    let shapes: [&[usize]; 4] = [&[5, 7], &[7], &[3, 4], &[0, 3]];
    let mut args = vec![Array::scalar(0.05f32)];
    for (k, shape) in shapes.iter().enumerate() {
        for j in 0..3 {
            let x = rand(shape, 40 + 3 * k as u64 + j);
            args.push(if k == 2 && j == 0 {
                x.astype(Dtype::Float16).unwrap()
            } else {
                x
            });
        }
    }
    let cf = Arc::new(compile(f, false));
    let got = cf(&args).unwrap();
    assert_eq!(got.len(), 6);
    for o in &got {
        match o.primitive() {
            Some(umx::primitives::Primitive::FusedGroup(g)) => {
                assert_eq!(g.members.len(), 4);
                // The learning rate is one input of the node, read by every member.
                let inputs = o.inputs();
                assert_eq!(inputs.iter().filter(|x| x.same(&args[0])).count(), 1);
                let lr = inputs.iter().position(|x| x.same(&args[0])).unwrap();
                assert!(g.members.iter().all(|m| m.inputs.contains(&lr)));
            }
            other => panic!("not a group: {other:?}"),
        }
    }
    let want = f(&args).unwrap();
    for (g, w) in got.iter().zip(&want) {
        same(g, w);
    }
    // Gradients through the group (every input, the shared learning rate included) equal
    // the plain function's.
    let weighted = |o: Vec<Array>| -> umx::Result<Vec<Array>> {
        let mut total = Array::scalar(0.0f32);
        for (k, x) in o.iter().enumerate() {
            let s = ops::sum(
                &ops::multiply(&x.astype(Dtype::Float32)?, k as f64 + 1.0)?,
                None,
                false,
            )?;
            total = ops::add(&total, &s)?;
        }
        Ok(vec![total])
    };
    let seed = [Array::scalar(1.0f32)];
    let c2 = cf.clone();
    let (_, gc) = umx::transforms::vjp(|a| weighted(c2(a)?), &args, &seed).unwrap();
    let (_, gu) = umx::transforms::vjp(|a| weighted(f(a)?), &args, &seed).unwrap();
    for (x, y) in gc.iter().zip(&gu) {
        close(
            &x.astype(Dtype::Float32).unwrap(),
            &y.astype(Dtype::Float32).unwrap(),
            1e-3,
        );
    }
    // jvp likewise.
    let tangents: Vec<Array> = args
        .iter()
        .enumerate()
        .map(|(i, a)| rand(a.shape(), 90 + i as u64).astype(a.dtype()).unwrap())
        .collect();
    let c3 = cf.clone();
    let (_, tc) = umx::transforms::jvp(|a| c3(a), &args, &tangents).unwrap();
    let (_, tu) = umx::transforms::jvp(f, &args, &tangents).unwrap();
    for (x, y) in tc.iter().zip(&tu) {
        close(
            &x.astype(Dtype::Float32).unwrap(),
            &y.astype(Dtype::Float32).unwrap(),
            1e-3,
        );
    }
    // vmap over a batch of every parameter, gradient and moment equals a loop.
    let c4 = cf.clone();
    let mut in_axes = vec![None];
    in_axes.extend(vec![Some(0); 12]);
    let batched = vmap(move |a: &[Array]| c4(a), &in_axes, &[Some(0); 6]);
    let mut xs = vec![args[0].clone()];
    for (k, a) in args.iter().enumerate().skip(1) {
        let shape: Vec<usize> = std::iter::once(2)
            .chain(a.shape().iter().copied())
            .collect();
        xs.push(rand(&shape, 200 + k as u64).astype(a.dtype()).unwrap());
    }
    let out = batched(&xs).unwrap();
    for b in 0..2 {
        let pick = |a: &Array| {
            ops::take(a, &Array::from_slice(&[b as u32], &[]).unwrap(), Some(0)).unwrap()
        };
        let mut one = vec![xs[0].clone()];
        one.extend(xs[1..].iter().map(pick));
        let want = f(&one).unwrap();
        for (o, w) in out.iter().zip(&want) {
            same(&pick(o), w);
        }
    }
    // A shapeless group serves new shapes without a retrace.
    let traces = Arc::new(AtomicUsize::new(0));
    let t = traces.clone();
    let two: F = Arc::new(move |a: &[Array]| {
        t.fetch_add(1, Ordering::SeqCst);
        Ok(vec![
            ops::exp(&ops::subtract(&a[0], 1.0)?)?,
            ops::sqrt(&ops::add(ops::abs(&a[1])?, 2.0)?)?,
        ])
    });
    let g2 = two.clone();
    let cs = compile(move |a: &[Array]| g2(a), true);
    for (n, m) in [(3, 4), (5, 1), (0, 2)] {
        let a = [rand(&[n, m], 1), rand(&[m + 1], 2)];
        let got = cs(&a).unwrap();
        assert!(matches!(
            got[1].primitive(),
            Some(umx::primitives::Primitive::FusedGroup(_))
        ));
        for (g, w) in got.iter().zip(&two(&a).unwrap()) {
            same(g, w);
        }
    }
    assert_eq!(traces.load(Ordering::SeqCst), 4);
}

/// A group made by an inner compiled function (two chains that leave it) comes apart inside an
/// outer compiled function, whose fusion then takes each chain with its neighbours: the
/// outer result is one fused node, not a group and a chain after it.
#[test]
fn an_inner_group_fuses_with_what_the_outer_function_does_with_it() {
    let inner = Arc::new(compile(
        |a: &[Array]| -> umx::Result<Vec<Array>> {
            Ok(vec![
                ops::exp(&ops::subtract(&a[0], 1.0)?)?,
                ops::sqrt(&ops::add(ops::abs(&a[1])?, 2.0)?)?,
            ])
        },
        false,
    ));
    let args = [rand(&[4, 5], 1), rand(&[5], 2)];
    let pair = inner(&args).unwrap();
    assert!(matches!(
        pair[0].primitive(),
        Some(umx::primitives::Primitive::FusedGroup(_))
    ));
    let i2 = inner.clone();
    let outer = compile(
        move |a: &[Array]| -> umx::Result<Vec<Array>> {
            let y = i2(a)?;
            Ok(vec![ops::add(ops::multiply(&y[0], &y[1])?, 1.0)?])
        },
        false,
    );
    let got = outer(&args).unwrap();
    match got[0].primitive() {
        Some(umx::primitives::Primitive::Fused(op)) => {
            // sqrt(|y| + 2) and exp(x - 1), then their product plus one: seven instructions.
            assert_eq!(op.program.len(), 7, "{op:?}");
        }
        other => panic!("not one fused node: {other:?}"),
    }
    let want = ops::add(ops::multiply(&pair[0], &pair[1]).unwrap(), 1.0).unwrap();
    same(&got[0], &want);
}

/// A value used twice inside a chain (as GELU's gradient uses `x / sqrt 2`) stays inside one
/// fused node.
#[test]
fn values_used_twice_within_a_chain_stay_in_one_fused_node() {
    let f = |a: &[Array]| -> umx::Result<Vec<Array>> {
        let h = ops::multiply(&a[0], 2.0)?;
        Ok(vec![ops::add(&h, ops::exp(&h)?)?])
    };
    let cf = compile(f, false);
    let x = rand(&[6, 5], 5);
    let got = cf(std::slice::from_ref(&x)).unwrap();
    match got[0].primitive() {
        Some(umx::primitives::Primitive::Fused(op)) => assert_eq!(op.program.len(), 3),
        other => panic!("not one fused node: {other:?}"),
    }
    same(&got[0], &f(std::slice::from_ref(&x)).unwrap()[0]);
}

/// nn's activations are compiled; the gradient of a fused node is traced and fused as well,
/// with the program's constants held fixed: GELU's backward pass is one fused node over the
/// input and the cotangent, equal to the gradient of the uncompiled GELU.
#[test]
fn a_compiled_activations_gradient_is_one_fused_node() {
    let x = rand(&[8, 16], 9);
    let loss = |f: fn(&Array) -> Result<Array>| {
        move |x: &Array| -> Result<Array> { ops::sum(&f(x)?, None, false) }
    };
    let g = grad(loss(umx::nn::gelu))(&x).unwrap();
    match g.primitive() {
        Some(umx::primitives::Primitive::Fused(op)) => assert!(op.program.len() > 5),
        other => panic!("not fused: {other:?}"),
    }
    let unfused = g.inputs().iter().any(|i| {
        matches!(
            i.primitive(),
            Some(umx::primitives::Primitive::Unary(_) | umx::primitives::Primitive::Binary(_))
        )
    });
    assert!(!unfused, "an element-wise op outside the fused gradient");
    let plain = |x: &Array| -> Result<Array> {
        let cdf = ops::multiply(
            ops::add(
                ops::erf(&ops::multiply(x, std::f64::consts::FRAC_1_SQRT_2)?)?,
                1.0,
            )?,
            0.5,
        )?;
        ops::multiply(x, &cdf)
    };
    let want = grad(loss(plain))(&x).unwrap();
    close(&g, &want, 1e-6);
}

/// A compiled function that calls a compiled activation (a fused node already) fuses across
/// it: SwiGLU's `silu(g) * u` is one node, with the same values and gradients.
#[test]
fn compiled_activations_inside_a_compiled_function_fuse_with_their_neighbours() {
    let f = |a: &[Array]| -> umx::Result<Vec<Array>> {
        Ok(vec![ops::multiply(umx::nn::silu(&a[0])?, &a[1])?])
    };
    let cf = Arc::new(compile(f, false));
    let args = [rand(&[6, 9], 31), rand(&[6, 9], 32)];
    let got = cf(&args).unwrap();
    match got[0].primitive() {
        Some(umx::primitives::Primitive::Fused(op)) => assert!(op.program.len() >= 3),
        other => panic!("not fused: {other:?}"),
    }
    assert!(
        got[0]
            .inputs()
            .iter()
            .all(|i| !matches!(i.primitive(), Some(umx::primitives::Primitive::Fused(_)))),
        "the activation stayed a node of its own"
    );
    same(&got[0], &f(&args).unwrap()[0]);
    let seed = [ops::ones(&[6, 9], Dtype::Float32).unwrap()];
    let c = cf.clone();
    let (_, gc) = umx::transforms::vjp(|a| c(a), &args, &seed).unwrap();
    let (_, gu) = umx::transforms::vjp(f, &args, &seed).unwrap();
    for (x, y) in gc.iter().zip(&gu) {
        close(x, y, 1e-6);
    }
}

/// `gelu(x @ w + b)`: the bias moves into the product (one `addmm` node, which the GPU runs
/// with cuBLASLt's bias epilogue), GELU stays one fused node after it; values and gradients
/// equal the plain function's. A product used elsewhere too, or an addend of another dtype,
/// is left alone.
#[test]
fn a_matmul_takes_the_addition_after_it_as_its_epilogue() {
    use umx::primitives::{MatmulOp, Primitive};
    let layer = |a: &[Array]| -> Result<Vec<Array>> {
        Ok(vec![umx::nn::gelu(&ops::add(
            ops::matmul(&a[0], &a[1])?,
            &a[2],
        )?)?])
    };
    let cf = Arc::new(compile(layer, false));
    for (m, k, n) in [(33, 70, 16), (4, 8, 1), (1, 5, 7)] {
        let args = [rand(&[m, k], 40), rand(&[k, n], 41), rand(&[n], 42)];
        let got = cf(&args).unwrap();
        let addmm = |a: &Array| {
            matches!(
                a.primitive(),
                Some(Primitive::Matmul(MatmulOp::AddMm { .. }))
            )
        };
        assert!(
            matches!(got[0].primitive(), Some(Primitive::Fused(_)))
                && got[0].inputs().iter().any(addmm),
            "{m}x{k}x{n}: gelu not fused after an addmm: {:?}",
            got[0].primitive()
        );
        close(&got[0], &layer(&args).unwrap()[0], 1e-5);
        let seed = [ops::ones(&[m, n], Dtype::Float32).unwrap()];
        let c = cf.clone();
        let (_, gc) = umx::transforms::vjp(|a| c(a), &args, &seed).unwrap();
        let (_, gu) = umx::transforms::vjp(layer, &args, &seed).unwrap();
        for (x, y) in gc.iter().zip(&gu) {
            close(x, y, 1e-5);
        }
    }
    // The bias of a batch of products, and a full-size addend on the left of the addition.
    let f = |a: &[Array]| -> Result<Vec<Array>> {
        Ok(vec![ops::add(&a[2], ops::matmul(&a[0], &a[1])?)?])
    };
    let args = [
        rand(&[3, 5, 4], 43),
        rand(&[4, 6], 44),
        rand(&[3, 5, 6], 45),
    ];
    let got = compile(f, false)(&args).unwrap();
    assert!(matches!(
        got[0].primitive(),
        Some(Primitive::Matmul(MatmulOp::AddMm { .. }))
    ));
    close(&got[0], &f(&args).unwrap()[0], 1e-5);
    // Not folded: the product is an output too; the addend is float16 (the sum promotes).
    let f = |a: &[Array]| -> Result<Vec<Array>> {
        let p = ops::matmul(&a[0], &a[1])?;
        Ok(vec![ops::add(&p, &a[2])?, p])
    };
    let args = [rand(&[4, 3], 46), rand(&[3, 2], 47), rand(&[2], 48)];
    let got = compile(f, false)(&args).unwrap();
    assert!(matches!(got[0].primitive(), Some(Primitive::Binary(_))));
    same(&got[0], &f(&args).unwrap()[0]);
    let f = |a: &[Array]| -> Result<Vec<Array>> {
        Ok(vec![ops::add(ops::matmul(&a[0], &a[1])?, &a[2])?])
    };
    let args = [
        rand(&[4, 3], 49),
        rand(&[3, 2], 50),
        rand(&[2], 51).astype(Dtype::Float16).unwrap(),
    ];
    let got = compile(f, false)(&args).unwrap();
    assert!(!matches!(got[0].primitive(), Some(Primitive::Matmul(_))));
    same(&got[0], &f(&args).unwrap()[0]);
}

#[test]
fn a_reduction_takes_its_element_wise_producers_as_a_prologue() {
    let cf = compile(
        |a: &[Array]| Ok(vec![ops::sum(&ops::multiply(&a[0], &a[1])?, [1], true)?]),
        false,
    );
    let (x, y) = (rand(&[4, 9], 1), rand(&[4, 9], 2));
    let out = cf(&[x.clone(), y.clone()]).unwrap();
    match out[0].primitive() {
        Some(umx::primitives::Primitive::Fused(op)) => {
            assert_eq!(op.program.len(), 1);
            let r = op.reduce.as_ref().expect("a reduction");
            assert_eq!((r.axes.as_slice(), r.keepdims), (&[1usize][..], true));
        }
        other => panic!("not fused: {other:?}"),
    }
    assert_eq!(out[0].shape(), &[4, 1]);
    same(
        &out[0],
        &ops::sum(&ops::multiply(&x, &y).unwrap(), [1], true).unwrap(),
    );
    // vmap of the compiled reduction equals a loop over the batch.
    let c = Arc::new(cf);
    let c1 = c.clone();
    let batched = vmap(move |a: &[Array]| c1(a), &[Some(0), Some(0)], &[Some(0)]);
    let xs = rand(&[3, 4, 9], 3);
    let ys = rand(&[3, 4, 9], 4);
    let got = batched(&[xs.clone(), ys.clone()]).unwrap();
    for b in 0..3 {
        let pick = |a: &Array| {
            ops::take(a, &Array::from_slice(&[b as u32], &[]).unwrap(), Some(0)).unwrap()
        };
        let want = c(&[pick(&xs), pick(&ys)]).unwrap();
        same(&pick(&got[0]), &want[0]);
    }
}

/// A reduction of element-wise values that something else uses too (a bias gradient: the
/// column sums of the gradient the weight's product reads as well) keeps them: one fused node
/// outputs the reduction and the values, both equal to the plain function's; grad through the
/// compiled function equals grad through the plain one, and vmap equals a loop.
#[test]
fn a_reduction_keeps_the_values_it_reduces_when_they_are_used_again() {
    let f = |a: &[Array]| -> Result<Vec<Array>> {
        let d = ops::tanh(&ops::multiply(&a[0], &a[1])?)?;
        let s = ops::sum(&d, [0], false)?;
        Ok(vec![s, ops::matmul(&d, &a[2])?, d])
    };
    let cf = Arc::new(compile(f, false));
    let args = [rand(&[6, 5], 1), rand(&[5], 2), rand(&[5, 3], 3)];
    let got = cf(&args).unwrap();
    // The reduction and the values come from one node (the values as its second output).
    match got[0].primitive() {
        Some(umx::primitives::Primitive::Fused(op)) => {
            assert_eq!(op.program.len(), 2);
            assert_eq!(op.extra, [1]);
            let r = op.reduce.as_ref().expect("a reduction");
            assert_eq!((r.axes.as_slice(), r.keepdims), (&[0usize][..], false));
        }
        other => panic!("not fused: {other:?}"),
    }
    match got[2].primitive() {
        Some(umx::primitives::Primitive::Fused(op)) => assert!(op.reduce.is_some()),
        other => panic!("the values do not come from the reduction's node: {other:?}"),
    }
    let want = f(&args).unwrap();
    for (g, w) in got.iter().zip(&want) {
        same(g, w);
    }
    // grad through the compiled function equals grad through the plain one.
    let loss = |g: F| {
        move |a: &Vec<Array>| -> Result<Array> {
            let out = g(a)?;
            let total = ops::add(
                ops::sum(&ops::multiply(&out[0], 0.5)?, None, false)?,
                ops::sum(&ops::square(&out[1])?, None, false)?,
            )?;
            ops::add(total, ops::sum(&out[2], None, false)?)
        }
    };
    let c1 = cf.clone();
    let compiled: F = Arc::new(move |a: &[Array]| c1(a));
    let plain: F = Arc::new(f);
    let got = grad(loss(compiled))(&args.to_vec()).unwrap();
    let want = grad(loss(plain))(&args.to_vec()).unwrap();
    for (g, w) in got.iter().zip(&want) {
        close(g, w, 1e-6);
    }
    // vmap of the compiled function equals a loop over the batch.
    let c2 = cf.clone();
    let batched = vmap(move |a: &[Array]| c2(a), &[Some(0), None, None], &[Some(0)]);
    let xs = rand(&[3, 6, 5], 4);
    let got = batched(&[xs.clone(), args[1].clone(), args[2].clone()]).unwrap();
    for b in 0..3 {
        let pick = |a: &Array| {
            ops::take(a, &Array::from_slice(&[b as u32], &[]).unwrap(), Some(0)).unwrap()
        };
        let want = cf(&[pick(&xs), args[1].clone(), args[2].clone()]).unwrap();
        for (g, w) in got.iter().zip(&want) {
            close(&pick(g), w, 1e-6);
        }
    }
}

#[test]
fn retraces_only_on_new_shapes_or_dtypes() {
    let traces = Arc::new(AtomicUsize::new(0));
    let t = traces.clone();
    let f = move |a: &[Array]| {
        t.fetch_add(1, Ordering::SeqCst);
        Ok(vec![ops::add(ops::multiply(&a[0], &a[0])?, 1.0)?])
    };
    let cf = compile(f, false);
    cf(&[rand(&[4], 1)]).unwrap();
    cf(&[rand(&[4], 2)]).unwrap();
    assert_eq!(traces.load(Ordering::SeqCst), 1);
    cf(&[rand(&[5], 2)]).unwrap();
    assert_eq!(traces.load(Ordering::SeqCst), 2);
    cf(&[rand(&[5], 2).astype(Dtype::Float16).unwrap()]).unwrap();
    assert_eq!(traces.load(Ordering::SeqCst), 3);
}

#[test]
fn shapeless_compilation_serves_every_shape_of_a_rank() {
    let traces = Arc::new(AtomicUsize::new(0));
    let t = traces.clone();
    let f: F = Arc::new(move |a: &[Array]| {
        t.fetch_add(1, Ordering::SeqCst);
        Ok(vec![ops::exp(&ops::subtract(&a[0], &a[1])?)?])
    });
    let g = f.clone();
    let cf = compile(move |a: &[Array]| g(a), true);
    for (n, m) in [(3, 4), (5, 4), (2, 9), (7, 1)] {
        let args = [rand(&[n, m], 1), rand(&[m], 2)];
        let got = cf(&args).unwrap();
        let want = f(&args).unwrap();
        same(&got[0], &want[0]);
    }
    // One trace for the compiled function (the plain calls above counted 4 more).
    assert_eq!(traces.load(Ordering::SeqCst), 5);
}

#[test]
fn compile_composes_with_grad_and_vmap() {
    let f = |x: &Array| -> Result<Array> {
        ops::sum(
            &ops::multiply(&ops::tanh(&ops::multiply(x, 1.5)?)?, x)?,
            None,
            false,
        )
    };
    let cf = Arc::new(compile(move |a: &[Array]| Ok(vec![f(&a[0])?]), false));
    let x = rand(&[6], 3);
    let want = grad(f)(&x).unwrap();
    let c1 = cf.clone();
    let got = grad(move |x: &Array| Ok(c1(std::slice::from_ref(x))?.remove(0)))(&x).unwrap();
    let (w, g) = (want.to_vec::<f32>().unwrap(), got.to_vec::<f32>().unwrap());
    for (p, q) in w.iter().zip(&g) {
        assert!((p - q).abs() < 1e-6, "{p} vs {q}");
    }
    // compile(grad(f))
    let cg = compile(move |a: &[Array]| Ok(vec![grad(f)(&a[0])?]), false);
    same(&cg(std::slice::from_ref(&x)).unwrap()[0], &want);
    // vmap(compile(f)) against a loop
    let c2 = cf.clone();
    let batched = vmap(move |a: &[Array]| c2(a), &[Some(0)], &[Some(0)]);
    let xs = rand(&[4, 6], 4);
    let got = batched(std::slice::from_ref(&xs)).unwrap()[0]
        .to_vec::<f32>()
        .unwrap();
    for (i, g) in got.iter().enumerate() {
        let row = ops::take(&xs, &Array::scalar(i as i32), Some(0)).unwrap();
        let w = f(&row).unwrap().item::<f32>().unwrap();
        assert!((w - g).abs() < 1e-5, "{w} vs {g}");
    }
}

#[test]
fn a_compiled_training_step_updates_state_like_the_plain_one() {
    // State (the parameters) goes in and out explicitly.
    let x = rand(&[16, 3], 7);
    let y = rand(&[16], 8);
    let step = move |a: &[Array]| -> Result<Vec<Array>> {
        let (w, b) = (&a[0], &a[1]);
        let loss = |p: &(Array, Array)| {
            let pred = ops::add(&ops::matmul(&x, &p.0)?, &p.1)?;
            ops::mean(&ops::square(&ops::subtract(&pred, &y)?)?, None, false)
        };
        let (_, (gw, gb)) = value_and_grad(loss)(&(w.clone(), b.clone()))?;
        Ok(vec![
            ops::subtract(w, ops::multiply(&gw, 0.1)?)?,
            ops::subtract(b, ops::multiply(&gb, 0.1)?)?,
        ])
    };
    let step = Arc::new(step);
    let s2 = step.clone();
    let cstep = compile(move |a: &[Array]| s2(a), false);
    let init = vec![ops::zeros(&[3], None).unwrap(), Array::scalar(0.0f32)];
    let (mut plain, mut comp) = (init.clone(), init);
    for _ in 0..20 {
        plain = step(&plain).unwrap();
        comp = cstep(&comp).unwrap();
        eval(plain.iter().chain(&comp)).unwrap();
    }
    for (p, c) in plain.iter().zip(&comp) {
        let (p, c) = (p.to_vec::<f32>().unwrap(), c.to_vec::<f32>().unwrap());
        for (a, b) in p.iter().zip(&c) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
