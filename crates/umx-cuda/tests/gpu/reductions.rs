//! Reductions on the GPU against the CPU: every axis set, and complex64 extremes and truth tests
//! (with the empty products and integer rounding that left the CPU fallback with them).

use crate::*;

#[test]
fn reductions_agree_with_the_cpu_over_every_axis_set() {
    if !setup() {
        return;
    }
    for dtype in [
        Dtype::Float32,
        Dtype::Float16,
        Dtype::Bfloat16,
        Dtype::Int32,
    ] {
        let x = input(&[6, 70, 9], dtype, 6);
        let rtol = if dtype == Dtype::Float32 { 1e-5 } else { 2e-2 };
        for axes in [
            vec![],
            vec![2i64],
            vec![1],
            vec![0],
            vec![0, 2],
            vec![1, 2],
            vec![0, 1, 2],
        ] {
            let sel = || {
                if axes.is_empty() {
                    Axes::All
                } else {
                    Axes::List(axes.clone())
                }
            };
            let (c, g) = both(|| ops::sum(&x, sel(), false));
            assert_close(&format!("sum {dtype} {axes:?}"), &c, &g, rtol);
            let (c, g) = both(|| ops::max(&x, sel(), false));
            assert_close(&format!("max {dtype} {axes:?}"), &c, &g, 0.0);
            let (c, g) = both(|| ops::min(&x, sel(), true));
            assert_close(&format!("min {dtype} {axes:?}"), &c, &g, 0.0);
            if dtype != Dtype::Int32 {
                let (c, g) = both(|| ops::mean(&x, sel(), false));
                assert_close(&format!("mean {dtype} {axes:?}"), &c, &g, rtol);
            }
        }
    }
    // Few long columns: the reduced axis splits into parts, reduced again.
    let x = input(&[1000, 10], Dtype::Float32, 7);
    let (c, g) = both(|| ops::sum(&x, 0, false));
    assert_close("sum of long columns", &c, &g, 1e-4);
    let (c, g) = both(|| ops::mean(&x, 0, true));
    assert_close("mean of long columns", &c, &g, 1e-4);
    let (c, g) = both(|| ops::max(&x, 0, false));
    assert_close("max of long columns", &c, &g, 0.0);
    let (c, g) = both(|| ops::any(&ops::greater(&x, 3.5)?, 0, false));
    assert_close("any of long columns", &c, &g, 0.0);
    // Column tiles: a bias gradient's shape (split into parts, every thread's unrolled
    // loads), columns of an odd count straddling tiles (inner 37, and 3 outputs in a block of
    // 256 threads), in float32 and bfloat16 (accumulated in float32).
    for (shape, axis) in [
        (vec![1024usize, 4096], 0i64),
        (vec![3, 1000, 37], 1),
        (vec![67, 3], 0),
        (vec![4, 9, 2], 1),
    ] {
        for dtype in [Dtype::Float32, Dtype::Bfloat16] {
            let x = input(&shape, dtype, 9);
            let rtol = if dtype == Dtype::Float32 { 1e-4 } else { 2e-2 };
            let (c, g) = both(|| ops::sum(&x, axis, true));
            assert_close(&format!("column sum {dtype} {shape:?}"), &c, &g, rtol);
            let (c, g) = both(|| ops::max(&x, axis, false));
            assert_close(&format!("column max {dtype} {shape:?}"), &c, &g, 0.0);
            let (c, g) = both(|| ops::min(&x, axis, false));
            assert_close(&format!("column min {dtype} {shape:?}"), &c, &g, 0.0);
        }
    }
    // A NaN in one column (row 150 of 200: a later part) comes through max and sum.
    let mut v: Vec<f32> = (0..200 * 33).map(|i| (i % 17) as f32 - 8.0).collect();
    v[150 * 33 + 5] = f32::NAN;
    let h = Array::from_slice(&v, &[200, 33]).unwrap();
    for (what, (c, g)) in [
        ("max", both(|| ops::max(&h, 0, false))),
        ("sum", both(|| ops::sum(&h, 0, false))),
    ] {
        assert!(c[5].is_nan() && g[5].is_nan(), "{what} of a NaN column");
        assert_close(&format!("{what} with a NaN column"), &c, &g, 1e-5);
    }
    // all/any test truth: 0.5 is true.
    let h = Array::from_slice(&[0.5f32, 2.0, 0.0, -1.0, 0.5, 0.25], &[2, 3]).unwrap();
    for axes in [Axes::All, Axes::List(vec![0]), Axes::List(vec![1])] {
        let (c, g) = both(|| ops::all(&h, axes.clone(), false));
        assert_close("all", &c, &g, 0.0);
        let (c, g) = both(|| ops::any(&h, axes.clone(), false));
        assert_close("any", &c, &g, 0.0);
    }
    // A long reduction takes the split (two-pass) path.
    let big = input(&[1 << 20], Dtype::Float32, 7);
    let (c, g) = both(|| ops::sum(&big, None, false));
    assert_close("sum 2^20", &c, &g, 1e-4);
}

/// Ops that ran on the CPU fallback until now: complex64 max/min (real part, then imaginary
/// part) and all/any over every axis set, `addmm` with an empty inner dimension (`beta * c`),
/// and integer `round` to tens and hundreds. Each agrees with the CPU.
#[test]
fn complex_extremes_truth_tests_empty_products_and_integer_rounding_run_on_the_gpu() {
    if !setup() {
        return;
    }
    use umx_core::fft;
    let x = input(&[6, 10], Dtype::Float32, 80);
    let zc = with_device(Device::Cpu, || fft::fft(&x, None, -1, "ortho")).unwrap();
    // Ties on the real part (the imaginary part decides) and zeros (false for all/any).
    let tie = with_device(Device::Cpu, || {
        let re = Array::from_slice(&[1.0f32, 1.0, 0.0, 0.0, -2.0, 1.0], &[2, 3])?;
        let im = Array::from_slice(&[0.5f32, 2.0, 0.0, 1.0, 3.0, -1.0], &[2, 3])?;
        ops::add(
            &re.astype(Dtype::Complex64)?,
            ops::multiply(
                &im.astype(Dtype::Complex64)?,
                &Array::from_slice(&[umx_core::Complex32::new(0.0, 1.0)], &[])?,
            )?,
        )
    })
    .unwrap();
    umx_core::eval(&[zc.clone(), tie.clone()]).unwrap();
    for (name, z) in [("spectrum", &zc), ("ties", &tie)] {
        for axes in [None, Some(0i64), Some(1)] {
            type Red = fn(&Array, Axes, bool) -> umx_core::Result<Array>;
            let ops_: [(&str, Red); 4] = [
                ("max", |z, a, k| ops::max(z, a, k)),
                ("min", |z, a, k| ops::min(z, a, k)),
                ("all", |z, a, k| ops::all(z, a, k)),
                ("any", |z, a, k| ops::any(z, a, k)),
            ];
            for (op, f) in ops_ {
                let (c, g) = both_complex(|| f(z, Axes::from(axes), false));
                assert_eq!(c, g, "{op} of {name} over {axes:?}");
            }
        }
    }
    let c = input(&[4, 5], Dtype::Float32, 81);
    let b = input(&[5], Dtype::Float32, 82);
    let a0 = input(&[4, 0], Dtype::Float32, 83);
    let b0 = input(&[0, 5], Dtype::Float32, 84);
    for (what, beta) in [("beta 2", 2.0), ("beta 0", 0.0)] {
        let (cc, g) = both(|| ops::addmm(&c, &a0, &b0, 1.0, beta));
        assert_eq!(cc, g, "addmm k=0 {what}");
        let (cc, g) = both(|| ops::addmm(&b, &a0, &b0, 1.0, beta));
        assert_eq!(cc, g, "addmm k=0 broadcast {what}");
    }
    let i = with_device(Device::Cpu, || {
        Array::from_slice(
            &[
                -251i32, -250, -249, -15, 5, 15, 25, 149, 150, 151, 2147483647,
            ],
            &[11],
        )
    })
    .unwrap();
    for d in [-1, -2, -3] {
        let (cc, g) = both(|| ops::round(&i, d));
        assert_eq!(cc, g, "round int32 to {d} decimals");
    }
}

/// A compiled reduction whose element-wise values are used again keeps them (`compile` gives
/// the fused node a second output), from its one pass over rows (16-byte packs, and rows
/// that are not whole packs) and everything (split into blocks), stored and then summed over
/// columns (one part, and a bias gradient's shape split into parts), in float32, float16 and
/// bfloat16, with the program's scalar constants passed by value and an input that starts
/// inside its buffer. Both outputs equal the CPU's, and the node is the reduction with the
/// values as its extra output.
#[test]
fn compiled_reductions_keep_the_values_they_reduce() {
    if !setup() {
        return;
    }
    let f = |a: &[Array], axes: Axes| -> umx_core::Result<Vec<Array>> {
        let d = ops::add(
            ops::tanh(&ops::multiply(ops::multiply(&a[0], &a[1])?, 0.5)?)?,
            1.0,
        )?;
        let s = ops::sum(&d, axes, true)?;
        Ok(vec![s, ops::multiply(&d, 3.0)?])
    };
    for (shape, axes) in [
        (vec![64usize, 1000], Axes::List(vec![1])),
        (vec![5, 999], Axes::List(vec![1])),
        (vec![3, 1000, 37], Axes::List(vec![1])),
        (vec![1024, 4096], Axes::List(vec![0])),
        (vec![1 << 20], Axes::All),
    ] {
        for dtype in [Dtype::Float32, Dtype::Float16, Dtype::Bfloat16] {
            // x: rows 1.. of a taller array (row-major, at an offset).
            let mut tall = shape.clone();
            tall[0] += 1;
            let x = input(&tall, dtype, 20);
            let start: Vec<i64> = (0..shape.len()).map(|a| (a == 0) as i64).collect();
            let stop: Vec<i64> = tall.iter().map(|&d| d as i64).collect();
            let x = with_device(Device::Cpu, || ops::slice(&x, &start, &stop, &[])).unwrap();
            let y = input(&shape, dtype, 21);
            let ax = axes.clone();
            let cf = umx_core::transforms::compile(move |a: &[Array]| f(a, ax.clone()), false);
            let what = format!("{shape:?} {axes:?} {dtype}");
            let run = |k: usize| {
                let out = cf(&[x.clone(), y.clone()])?;
                Ok(out[k].clone())
            };
            let out = with_device(Device::Gpu(0), || cf(&[x.clone(), y.clone()])).unwrap();
            match out[0].primitive() {
                Some(umx_core::primitives::Primitive::Fused(op)) => {
                    assert!(op.reduce.is_some(), "{what}: no reduction");
                    assert_eq!(op.extra, [op.program.len() - 1], "{what}");
                }
                other => panic!("{what}: not fused: {other:?}"),
            }
            let rtol = if dtype == Dtype::Float32 { 1e-4 } else { 2e-2 };
            let (c, g) = both(|| run(0));
            // Sums of many values round differently: compare on the sums' scale.
            let scale = c.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let (c, g): (Vec<f64>, Vec<f64>) = (
                c.iter().map(|v| v / scale).collect(),
                g.iter().map(|v| v / scale).collect(),
            );
            assert_close(&format!("{what}: sums"), &c, &g, rtol);
            let (c, g) = both(|| run(1));
            assert_close(&format!("{what}: values"), &c, &g, rtol);
        }
    }
}
