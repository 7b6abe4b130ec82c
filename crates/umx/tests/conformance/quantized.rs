//! Quantization (MLX's affine scheme) against mlx.core (tests/reference/quantized.py records
//! the values: codes bit for bit, dequantized values, products), plus the transformations:
//! gradients against the dequantized product and finite differences, vmap against a loop,
//! compile against eager, and the errors.

use crate::common::{self, kw_bool, kw_i64};
use serde_json::Value;
use umx::nn;
use umx::prelude::*;
use umx::transforms::compile;

fn run(name: &str, a: &[Array], kw: &Value) -> Result<Vec<Array>> {
    let gs = kw_i64(kw, "group_size").unwrap_or(64) as usize;
    let bits = kw_i64(kw, "bits").unwrap_or(4) as usize;
    let transpose = kw_bool(kw, "transpose").unwrap_or(true);
    Ok(match name {
        "quantize" => {
            let (q, s, b) = ops::quantize(&a[0], gs, bits)?;
            vec![q, s, b]
        }
        "dequantize" => vec![ops::dequantize(&a[0], &a[1], &a[2], gs, bits)?],
        "quantized_matmul" => vec![ops::quantized_matmul(
            &a[0], &a[1], &a[2], &a[3], transpose, gs, bits,
        )?],
        "gather_qmm" => {
            let (lhs, rhs) = if a.len() == 6 {
                (Some(&a[4]), Some(&a[5]))
            } else {
                (None, Some(&a[4]))
            };
            vec![ops::gather_qmm(
                &a[0], &a[1], &a[2], &a[3], lhs, rhs, transpose, gs, bits,
            )?]
        }
        "quantized_linear_file" => {
            // A dense layer quantized in place, then MLX's saved QuantizedLinear loaded into it
            // by name through the ordinary weight loading.
            let mut lin = nn::Linear::new(64, 8, true)?;
            nn::quantize(&mut lin, gs, bits, None)?;
            let path = format!(
                "{}/../../tests/reference/quantized_linear.safetensors",
                env!("CARGO_MANIFEST_DIR")
            );
            let report = umx::io::load_weights(&mut lin, &path, true)?;
            assert_eq!(report.loaded, ["bias", "biases", "scales", "weight"]);
            vec![lin.forward(&a[0])?]
        }
        other => panic!("unknown op {other}"),
    })
}

#[test]
fn quantized_ops_match_mlx() {
    let n = common::run_reference("quantized", &run);
    assert!(n >= 90, "only {n} cases");
}

/// Deterministic values in [-1, 1).
fn values(shape: &[usize], seed: u64) -> Array {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Array::from_slice(&v, shape).unwrap()
}

fn max_diff(a: &Array, b: &Array) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let d = ops::abs(&ops::subtract(a, b).unwrap()).unwrap();
    if d.size() == 0 {
        return 0.0;
    }
    ops::max(&d, None, false).unwrap().item::<f32>().unwrap()
}

/// The product through an explicitly dequantized matrix: what quantized_matmul must equal.
fn reference_product(
    x: &Array,
    q: &Array,
    s: &Array,
    b: &Array,
    transpose: bool,
    gs: usize,
    bits: usize,
) -> Array {
    let w = ops::dequantize(q, s, b, gs, bits).unwrap();
    let w = if transpose {
        ops::swapaxes(&w, -1, -2).unwrap()
    } else {
        w
    };
    ops::matmul(x, &w).unwrap()
}

#[test]
fn quantized_matmul_equals_the_dequantized_product_for_every_width() {
    for bits in [1, 2, 3, 4, 5, 6, 8] {
        for (transpose, gs) in [(true, 32), (false, 64), (true, 128)] {
            let w = values(if transpose { &[24, 128] } else { &[128, 64] }, bits as u64);
            let (q, s, b) = ops::quantize(&w, gs, bits).unwrap();
            for rows in [1, 5, 17] {
                let x = values(&[rows, 128], 99 + rows as u64);
                let y = ops::quantized_matmul(&x, &q, &s, &b, transpose, gs, bits).unwrap();
                let want = reference_product(&x, &q, &s, &b, transpose, gs, bits);
                let d = max_diff(&y, &want);
                assert!(
                    d < 1e-4,
                    "bits {bits} gs {gs} transpose {transpose} rows {rows}: {d}"
                );
            }
        }
    }
}

#[test]
fn quantize_dequantize_error_is_within_a_step() {
    // Values in [-1, 1): a step is at most 2 / (2^bits - 1) (MLX's scale is nudged so one
    // edge of the group is exact, so the error can pass half a step, never a whole one).
    for bits in [1, 2, 3, 4, 5, 6, 8] {
        let w = values(&[8, 256], 7);
        let (q, s, b) = ops::quantize(&w, 64, bits).unwrap();
        let back = ops::dequantize(&q, &s, &b, 64, bits).unwrap();
        let step = 2.0 / ((1u32 << bits) - 1) as f32;
        assert!(max_diff(&back, &w) <= step + 1e-5, "bits {bits}");
    }
}

#[test]
fn gradient_with_respect_to_x_matches_the_dequantized_product() {
    for transpose in [true, false] {
        let w = values(&[64, 64], 3);
        let (q, s, b) = ops::quantize(&w, 32, 4).unwrap();
        let x = values(&[2, 3, 64], 5);
        let c = values(&[2, 3, 64], 6);
        let f = |a: &[Array]| {
            Ok(vec![ops::quantized_matmul(
                &a[0], &q, &s, &b, transpose, 32, 4,
            )?])
        };
        let (_, g) = vjp(f, std::slice::from_ref(&x), std::slice::from_ref(&c)).unwrap();
        let wd = ops::dequantize(&q, &s, &b, 32, 4).unwrap();
        let wt = if transpose { wd.t().unwrap() } else { wd };
        let fr = |a: &[Array]| Ok(vec![ops::matmul(&a[0], &wt)?]);
        let (_, gr) = vjp(fr, std::slice::from_ref(&x), std::slice::from_ref(&c)).unwrap();
        assert!(max_diff(&g[0], &gr[0]) < 1e-4, "transpose {transpose}");
        // The product is linear in x: a central difference is exact up to rounding.
        let v = values(&[2, 3, 64], 8);
        let eps = 0.5f32;
        let l = |x: &Array| {
            let y = ops::quantized_matmul(x, &q, &s, &b, transpose, 32, 4).unwrap();
            ops::sum(&ops::multiply(&y, &c).unwrap(), None, false)
                .unwrap()
                .item::<f32>()
                .unwrap()
        };
        let xp = ops::add(&x, ops::multiply(&v, eps).unwrap()).unwrap();
        let xm = ops::subtract(&x, ops::multiply(&v, eps).unwrap()).unwrap();
        let fd = (l(&xp) - l(&xm)) / (2.0 * eps);
        let an = ops::sum(&ops::multiply(&g[0], &v).unwrap(), None, false)
            .unwrap()
            .item::<f32>()
            .unwrap();
        assert!((fd - an).abs() < 1e-3 * (1.0 + an.abs()), "{fd} vs {an}");
    }
}

#[test]
fn gradients_of_scales_and_biases_match_finite_differences() {
    for transpose in [true, false] {
        let w = values(&[32, 64], 13);
        let (q, s, b) = ops::quantize(&w, 32, 3).unwrap();
        let x = values(&[3, if transpose { 64 } else { 32 }], 14);
        let n = if transpose { 32 } else { 64 };
        let c = values(&[3, n], 15);
        let f = |a: &[Array]| {
            Ok(vec![ops::quantized_matmul(
                &x, &q, &a[0], &a[1], transpose, 32, 3,
            )?])
        };
        let (_, g) = vjp(f, &[s.clone(), b.clone()], std::slice::from_ref(&c)).unwrap();
        let l = |s: &Array, b: &Array| {
            let y = ops::quantized_matmul(&x, &q, s, b, transpose, 32, 3).unwrap();
            ops::sum(&ops::multiply(&y, &c).unwrap(), None, false)
                .unwrap()
                .item::<f32>()
                .unwrap()
        };
        // Linear in the scales and in the biases: exact central differences.
        for (i, p) in [&s, &b].into_iter().enumerate() {
            let v = values(p.shape(), 20 + i as u64);
            let eps = 0.25f32;
            let plus = ops::add(p, ops::multiply(&v, eps).unwrap()).unwrap();
            let minus = ops::subtract(p, ops::multiply(&v, eps).unwrap()).unwrap();
            let (lp, lm) = if i == 0 {
                (l(&plus, &b), l(&minus, &b))
            } else {
                (l(&s, &plus), l(&s, &minus))
            };
            let fd = (lp - lm) / (2.0 * eps);
            let an = ops::sum(&ops::multiply(&g[i], &v).unwrap(), None, false)
                .unwrap()
                .item::<f32>()
                .unwrap();
            assert!(
                (fd - an).abs() < 2e-3 * (1.0 + an.abs()),
                "input {i} transpose {transpose}: {fd} vs {an}"
            );
        }
        // jvp along the same directions agrees with the vjp.
        let ts = values(s.shape(), 30);
        let tb = values(b.shape(), 31);
        let (_, t) = jvp(f, &[s.clone(), b.clone()], &[ts.clone(), tb.clone()]).unwrap();
        let lhs = ops::sum(&ops::multiply(&t[0], &c).unwrap(), None, false)
            .unwrap()
            .item::<f32>()
            .unwrap();
        let rhs = ops::add(
            ops::sum(&ops::multiply(&g[0], &ts).unwrap(), None, false).unwrap(),
            ops::sum(&ops::multiply(&g[1], &tb).unwrap(), None, false).unwrap(),
        )
        .unwrap()
        .item::<f32>()
        .unwrap();
        assert!(
            (lhs - rhs).abs() < 1e-3 * (1.0 + rhs.abs()),
            "{lhs} vs {rhs}"
        );
    }
}

#[test]
fn jvp_with_respect_to_x_is_the_product_of_the_tangent() {
    let (q, s, b) = ops::quantize(&values(&[16, 64], 40), 64, 6).unwrap();
    let x = values(&[4, 64], 41);
    let t = values(&[4, 64], 42);
    let f = |a: &[Array]| Ok(vec![ops::quantized_matmul(&a[0], &q, &s, &b, true, 64, 6)?]);
    let (_, jt) = jvp(f, &[x], std::slice::from_ref(&t)).unwrap();
    let want = ops::quantized_matmul(&t, &q, &s, &b, true, 64, 6).unwrap();
    assert!(max_diff(&jt[0], &want) < 1e-5);
}

#[test]
fn dequantize_gradients_are_group_sums() {
    let (q, s, b) = ops::quantize(&values(&[2, 64], 50), 32, 4).unwrap();
    let c = values(&[2, 64], 51);
    let f = |a: &[Array]| Ok(vec![ops::dequantize(&q, &a[0], &a[1], 32, 4)?]);
    let (_, g) = vjp(f, &[s.clone(), b.clone()], std::slice::from_ref(&c)).unwrap();
    let sums = ops::sum(&ops::reshape(&c, &[2, 2, 32]).unwrap(), -1, false).unwrap();
    assert!(max_diff(&g[1], &sums) < 1e-5);
    let codes = ops::dequantize(
        &q,
        &ops::ones_like(&s).unwrap(),
        &ops::zeros_like(&b).unwrap(),
        32,
        4,
    )
    .unwrap();
    let ds = ops::sum(
        &ops::reshape(&ops::multiply(&c, &codes).unwrap(), &[2, 2, 32]).unwrap(),
        -1,
        false,
    )
    .unwrap();
    assert!(max_diff(&g[0], &ds) < 1e-4);
}

#[test]
fn gradient_with_respect_to_the_codes_is_an_error() {
    use umx::primitives::{Primitive, QuantOp};
    let (q, s, b) = ops::quantize(&values(&[8, 32], 60), 32, 4).unwrap();
    let x = values(&[2, 32], 61);
    let c = values(&[2, 8], 62);
    // vjp never traces an integer input, so the rule is reached only by asking it directly
    // (as a transformation that marks w_q would).
    let y = ops::quantized_matmul(&x, &q, &s, &b, true, 32, 4).unwrap();
    let prim = Primitive::Quantized(QuantOp::QuantizedMatmul {
        transpose: true,
        group_size: 32,
        bits: 4,
    });
    let inputs = [x.clone(), q.clone(), s.clone(), b.clone()];
    let err = prim
        .vjp(
            &inputs,
            std::slice::from_ref(&c),
            &[1],
            std::slice::from_ref(&y),
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("quantized_matmul") && err.contains("w_q"),
        "{err}"
    );
    // The others are fine.
    let g = prim.vjp(&inputs, &[c], &[0, 2, 3], &[y]).unwrap();
    assert_eq!(g[0].shape(), x.shape());
    assert_eq!(g[1].shape(), s.shape());
    assert_eq!(g[2].shape(), b.shape());
}

/// vmap(f) over axis 0 of the inputs that `batched` marks, against a loop over examples.
fn check_vmap(f: &dyn Fn(&[Array]) -> Result<Vec<Array>>, args: &[Array], batched: &[bool]) {
    let in_axes: Vec<Option<i64>> = batched.iter().map(|&b| b.then_some(0)).collect();
    let got = vmap(f, &in_axes, &[Some(0)])(args).unwrap();
    let n = args
        .iter()
        .zip(batched)
        .find(|(_, b)| **b)
        .map(|(a, _)| a.shape()[0])
        .unwrap();
    let mut each = Vec::new();
    for i in 0..n {
        let ex: Vec<Array> = args
            .iter()
            .zip(batched)
            .map(|(a, &b)| {
                if b {
                    ops::take(a, &Array::scalar(i as i32), Some(0)).unwrap()
                } else {
                    a.clone()
                }
            })
            .collect();
        each.push(f(&ex).unwrap().remove(0));
    }
    let want = ops::stack(&each, 0).unwrap();
    assert!(max_diff(&got[0], &want) < 1e-5, "batched {batched:?}");
}

#[test]
fn vmap_matches_a_loop() {
    let w = values(&[3, 16, 64], 70);
    let (q, s, b) = ops::quantize(&w, 32, 4).unwrap();
    let (q0, s0, b0) = ops::quantize(&values(&[16, 64], 71), 32, 4).unwrap();
    let x = values(&[3, 2, 64], 72);
    let qmm = |a: &[Array]| {
        Ok(vec![ops::quantized_matmul(
            &a[0], &a[1], &a[2], &a[3], true, 32, 4,
        )?])
    };
    // Only x batched; only the weights batched; everything batched.
    check_vmap(
        &qmm,
        &[x.clone(), q0.clone(), s0.clone(), b0.clone()],
        &[true, false, false, false],
    );
    check_vmap(
        &qmm,
        &[values(&[2, 64], 73), q.clone(), s.clone(), b.clone()],
        &[false, true, true, true],
    );
    check_vmap(
        &qmm,
        &[x.clone(), q.clone(), s.clone(), b.clone()],
        &[true; 4],
    );
    // A vector x per example, batched weights.
    check_vmap(
        &qmm,
        &[values(&[3, 64], 74), q.clone(), s.clone(), b.clone()],
        &[true, true, true, true],
    );
    // Only the scales batched.
    let s3 = ops::stack(&[s0.clone(), ops::multiply(&s0, 2.0).unwrap()], 0).unwrap();
    check_vmap(
        &qmm,
        &[values(&[2, 64], 75), q0.clone(), s3, b0.clone()],
        &[false, false, true, false],
    );
    let deq = |a: &[Array]| Ok(vec![ops::dequantize(&a[0], &a[1], &a[2], 32, 4)?]);
    check_vmap(
        &deq,
        &[q.clone(), s.clone(), b.clone()],
        &[true, true, true],
    );
    check_vmap(
        &deq,
        &[q0.clone(), s.clone(), b0.clone()],
        &[false, true, false],
    );
    let quant = |a: &[Array]| Ok(vec![ops::quantize(&a[0], 32, 4)?.1]);
    check_vmap(&quant, std::slice::from_ref(&w), &[true]);
    let codes = |a: &[Array]| {
        Ok(vec![ops::astype(
            &ops::quantize(&a[0], 32, 4)?.0,
            Dtype::Float32,
        )?])
    };
    check_vmap(&codes, &[w], &[true]);
}

#[test]
fn quantized_matmul_inside_compile_equals_eager() {
    let (q, s, b) = ops::quantize(&values(&[32, 64], 80), 64, 4).unwrap();
    let f = |a: &[Array]| {
        let y = ops::quantized_matmul(&a[0], &a[1], &a[2], &a[3], true, 64, 4)?;
        Ok(vec![ops::add(&ops::multiply(&y, 2.0)?, 1.0)?])
    };
    let cf = compile(f, false);
    for rows in [1, 12] {
        let args = [values(&[rows, 64], 81), q.clone(), s.clone(), b.clone()];
        let eager = f(&args).unwrap();
        let compiled = cf(&args).unwrap();
        assert!(max_diff(&eager[0], &compiled[0]) < 1e-6);
    }
}

#[test]
fn half_precision_activations_accumulate_in_float32() {
    let (q, s, b) = ops::quantize(&values(&[16, 256], 90), 64, 4).unwrap();
    let x = values(&[2, 256], 91);
    for dt in [Dtype::Float16, Dtype::Bfloat16] {
        let (s2, b2) = (ops::astype(&s, dt).unwrap(), ops::astype(&b, dt).unwrap());
        let y = ops::quantized_matmul(&ops::astype(&x, dt).unwrap(), &q, &s2, &b2, true, 64, 4)
            .unwrap();
        assert_eq!(y.dtype(), dt);
        let want = reference_product(
            &ops::astype(&ops::astype(&x, dt).unwrap(), Dtype::Float32).unwrap(),
            &q,
            &ops::astype(&s2, Dtype::Float32).unwrap(),
            &ops::astype(&b2, Dtype::Float32).unwrap(),
            true,
            64,
            4,
        );
        let got = ops::astype(&y, Dtype::Float32).unwrap();
        let tol = if dt == Dtype::Float16 { 2e-2 } else { 1e-1 };
        assert!(max_diff(&got, &want) < tol, "{dt}");
    }
}

#[test]
fn bad_arguments_are_errors_that_name_the_op() {
    let w = values(&[4, 64], 100);
    let (q, s, b) = ops::quantize(&w, 32, 4).unwrap();
    let e = |r: Result<Array>| r.map(|_| ()).unwrap_err().to_string();
    let msg = e(ops::quantized_matmul(
        &values(&[2, 63], 1),
        &q,
        &s,
        &b,
        true,
        32,
        4,
    ));
    assert!(
        msg.starts_with("quantized_matmul:") && msg.contains("(2, 63)"),
        "{msg}"
    );
    let msg = e(ops::quantized_matmul(&w, &q, &s, &b, true, 32, 5));
    assert!(msg.contains("do not fit"), "{msg}");
    let msg = e(ops::dequantize(&q, &s, &b, 48, 4));
    assert!(msg.contains("group size 48"), "{msg}");
    let msg = e(ops::quantized_matmul(
        &ops::astype(&values(&[2, 64], 1), Dtype::Float64).unwrap(),
        &q,
        &s,
        &b,
        true,
        32,
        4,
    ));
    assert!(msg.contains("float64"), "{msg}");
    let msg = e(ops::gather_qmm(
        &values(&[2, 1, 64], 1),
        &q,
        &s,
        &b,
        Some(&values(&[2], 3)),
        None,
        true,
        32,
        4,
    ));
    assert!(
        msg.contains("gather_qmm") && msg.contains("integer"),
        "{msg}"
    );
}

/// Decode speed of a 4-bit product against the dense bfloat16 one (run on the GPU machine with
/// `--ignored --nocapture`): 64 independent matrix-vector products per evaluation, so launch
/// costs overlap and the time is the weights' reading.
#[test]
#[ignore]
fn quantized_decode_speed() {
    use std::time::Instant;
    // UMX_QDECODE=n,k,reps,dtype (float32 or bfloat16) for other sizes, as on the CPU.
    let spec = std::env::var("UMX_QDECODE").unwrap_or_else(|_| "8192,8192,64,bfloat16".into());
    let parts: Vec<&str> = spec.split(',').collect();
    let num = |i: usize, d: usize| parts.get(i).and_then(|p| p.parse().ok()).unwrap_or(d);
    let (n, k, reps) = (num(0, 8192), num(1, 8192), num(2, 64));
    let dt = Dtype::from_name(parts.get(3).copied().unwrap_or("bfloat16")).unwrap();
    let w = ops::astype(&values(&[n, k], 200), dt).unwrap();
    let (q, s, b) = ops::quantize(&w, 64, 4).unwrap();
    umx::eval(&[q.clone(), s.clone(), b.clone(), w.clone()]).unwrap();
    let xs: Vec<Array> = (0..reps)
        .map(|i| ops::astype(&values(&[1, k], 300 + i as u64), dt).unwrap())
        .collect();
    umx::eval(&xs).unwrap();
    let time = |f: &dyn Fn(&Array) -> Array| {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            let ys: Vec<Array> = xs.iter().map(f).collect();
            let total = ys
                .iter()
                .fold(ops::zeros(&[1, n], Dtype::Float32).unwrap(), |acc, y| {
                    ops::add(&acc, y).unwrap()
                });
            total.eval().unwrap();
            let _ = total.to_vec::<f32>().unwrap();
            best = best.min(t.elapsed().as_secs_f64() / reps as f64);
        }
        best
    };
    let tq = time(&|x| ops::quantized_matmul(x, &q, &s, &b, true, 64, 4).unwrap());
    let wt = w.t().unwrap();
    let td = time(&|x| ops::matmul(x, &wt).unwrap());
    let qbytes = (q.nbytes() + s.nbytes() + b.nbytes()) as f64;
    println!(
        "decode {n}x{k} on {:?}: 4-bit {:.1} us ({:.0} GB/s of weights), {dt} {:.1} us ({:.0} \
         GB/s), 4-bit is {:.2}x faster",
        umx::default_device(),
        tq * 1e6,
        qbytes / tq / 1e9,
        td * 1e6,
        w.nbytes() as f64 / td / 1e9,
        td / tq
    );
    let y = ops::quantized_matmul(&xs[0], &q, &s, &b, true, 64, 4).unwrap();
    let want = ops::matmul(
        &ops::astype(&xs[0], Dtype::Float32).unwrap(),
        &ops::dequantize(&q, &s, &b, 64, 4)
            .unwrap()
            .astype(Dtype::Float32)
            .unwrap()
            .t()
            .unwrap(),
    )
    .unwrap();
    let d = max_diff(&ops::astype(&y, Dtype::Float32).unwrap(), &want);
    assert!(d < 0.5, "{d}");
}
