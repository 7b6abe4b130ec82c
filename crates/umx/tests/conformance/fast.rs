//! umx::fast against mlx.core.fast (tests/reference/fast.py records the values and the
//! gradients), on contiguous, transposed and strided inputs; plus the fused kernels against
//! their fallbacks on larger inputs, batching against a loop, derivatives against finite
//! differences, compile, and errors.

use crate::common;
use crate::fd::{Dom, Pos, Rng, Tol, VmapInput, build, check_jvp, check_vjp, check_vmap};

use crate::rope_cache::random_caches;
use common::{Layout, kw_bool, kw_f64, kw_i64, kw_str};
use serde_json::Value;
use umx::fast::{self, AttentionMask};
use umx::prelude::*;
use umx::primitives::{FastOp, Primitive};

fn vjp_of(
    f: impl Fn(&[Array]) -> Result<Array>,
    primals: &[Array],
    cot: &Array,
) -> Result<Vec<Array>> {
    let (_, g) = vjp(
        |xs: &[Array]| Ok(vec![f(xs)?]),
        primals,
        std::slice::from_ref(cot),
    )?;
    Ok(g)
}

fn vin(shape: &[usize], mapped: bool) -> VmapInput {
    vin_of(shape, mapped, Dtype::Float32)
}

/// A float64 input takes the fallback (no kernel), which batches a batched weight.
pub(crate) fn vin_of(shape: &[usize], mapped: bool, dtype: Dtype) -> VmapInput {
    VmapInput {
        shape: shape.to_vec(),
        dtype,
        layout: Layout::Contiguous,
        dom: Dom::Real(-2.0, 2.0),
        mapped,
    }
}

fn run(name: &str, a: &[Array], kw: &Value) -> Result<Vec<Array>> {
    let f = |k: &str| kw_f64(kw, k).unwrap() as f32;
    let mask = || match kw_str(kw, "mask") {
        Some("causal") => AttentionMask::Causal,
        _ => AttentionMask::None,
    };
    let rope = |x: &Array, offset: Array, freqs: Option<&Array>| {
        let base = freqs.is_none().then(|| f("base"));
        fast::rope(
            x,
            kw_i64(kw, "dims").unwrap() as usize,
            kw_bool(kw, "traditional").unwrap(),
            base,
            f("scale"),
            offset,
            freqs,
        )
    };
    let offset = || Array::scalar(kw_i64(kw, "offset").unwrap_or(0) as i32);
    let layer_norm = |xs: &[Array]| {
        let (w, b) = match (kw_bool(kw, "weight"), kw_bool(kw, "bias")) {
            (Some(true), Some(true)) => (Some(&xs[1]), Some(&xs[2])),
            (Some(true), _) => (Some(&xs[1]), None),
            (_, Some(true)) => (None, Some(&xs[1])),
            _ => (None, None),
        };
        fast::layer_norm(&xs[0], w, b, f("eps"))
    };
    Ok(match name {
        "rms_norm" => vec![fast::rms_norm(&a[0], a.get(1), f("eps"))?],
        "rms_norm_vjp" => vjp_of(
            |xs| fast::rms_norm(&xs[0], Some(&xs[1]), f("eps")),
            &a[..2],
            &a[2],
        )?,
        "layer_norm" => vec![layer_norm(a)?],
        "layer_norm_vjp" => vjp_of(
            |xs| fast::layer_norm(&xs[0], Some(&xs[1]), Some(&xs[2]), f("eps")),
            &a[..3],
            &a[3],
        )?,
        "softmax" => vec![ops::softmax(&a[0], -1, true)?],
        "softmax_vjp" => vjp_of(|xs| ops::softmax(&xs[0], -1, true), &a[..1], &a[1])?,
        "rope" => vec![rope(&a[0], offset(), None)?],
        "rope_freqs" => vec![rope(&a[0], offset(), Some(&a[1]))?],
        "rope_offsets" => vec![rope(&a[0], a[1].clone(), None)?],
        "rope_vjp" => vjp_of(|xs| rope(&xs[0], offset(), None), &a[..1], &a[1])?,
        "sdpa" => vec![fast::scaled_dot_product_attention(
            &a[0],
            &a[1],
            &a[2],
            f("scale"),
            mask(),
            None,
        )?],
        "sdpa_mask" => vec![fast::scaled_dot_product_attention(
            &a[0],
            &a[1],
            &a[2],
            f("scale"),
            AttentionMask::Array(&a[3]),
            None,
        )?],
        "sdpa_sinks" => vec![fast::scaled_dot_product_attention(
            &a[0],
            &a[1],
            &a[2],
            f("scale"),
            mask(),
            Some(&a[3]),
        )?],
        "sdpa_vjp" => vjp_of(
            |xs| {
                fast::scaled_dot_product_attention(&xs[0], &xs[1], &xs[2], f("scale"), mask(), None)
            },
            &a[..3],
            &a[3],
        )?,
        other => panic!("no op {other}"),
    })
}

#[test]
fn fast_ops_match_mlx() {
    let n = common::run_reference("fast", &run);
    assert!(n >= 50, "{n} cases");
}

pub(crate) fn random(shape: &[usize], dtype: Dtype, seed: u64) -> Array {
    let mut rng = Rng::new(seed);
    let v = rng.draw(Dom::Real(-2.0, 2.0), shape.iter().product());
    build(&v, shape, dtype, Layout::Contiguous)
}

/// A random `(n, k)` weight in `dtype`, scaled by `1 / sqrt(k)` so that its products with
/// random rows of `k` stay near unit size.
pub(crate) fn scaled_weight(n: usize, k: usize, dtype: Dtype, seed: u64) -> Array {
    ops::multiply(
        random(&[n, k], Dtype::Float32, seed),
        1.0 / (k as f64).sqrt(),
    )
    .unwrap()
    .astype(dtype)
    .unwrap()
}

pub(crate) fn assert_close(got: &Array, want: &Array, tol: f64, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    assert_eq!(got.dtype(), want.dtype(), "{what}");
    let (g, w) = (got.to_vec::<f64>().unwrap(), want.to_vec::<f64>().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol * (1.0 + b.abs());
        assert!(ok, "{what}: element {i}: {a} vs {b}");
    }
}

/// The node a fast op made, and its fallback's value for the same inputs.
fn fused_and_fallback(y: &Array) -> (FastOp, Array) {
    let Some(Primitive::Fast(op)) = y.primitive() else {
        panic!("not a fast node: {:?}", y.primitive());
    };
    let inputs = y.inputs();
    let want = op.fallback(&inputs).unwrap().remove(0);
    (op, want)
}

#[test]
fn fused_kernels_agree_with_their_fallbacks_on_long_rows_and_every_dtype() {
    for (dt, tol) in [
        (Dtype::Float32, 1e-5),
        (Dtype::Float16, 2e-3),
        (Dtype::Bfloat16, 1e-2),
    ] {
        let x = random(&[5, 3000], dt, 1);
        let w = random(&[3000], dt, 2);
        let b = random(&[3000], Dtype::Float32, 3);
        for y in [
            fast::rms_norm(&x, Some(&w), 1e-5).unwrap(),
            fast::layer_norm(&x, Some(&w), Some(&b), 1e-5).unwrap(),
            ops::softmax(&x, -1, false).unwrap(),
            ops::logsumexp(&x, -1, false).unwrap(),
            fast::rope(
                &x.reshape(&[5, 30, 100]).unwrap(),
                64,
                false,
                Some(1e4),
                1.0,
                7,
                None,
            )
            .unwrap(),
        ] {
            let (op, want) = fused_and_fallback(&y);
            assert_close(&y, &want, tol, &format!("{} {dt}", op.name()));
        }
        // Attention for decoding: one query against many keys, grouped heads, every mask
        // (float and boolean); 6000 keys take a GPU block several passes over its keys.
        let q = random(&[2, 8, 1, 64], dt, 4);
        let sinks = random(&[8], Dtype::Float32, 8);
        for lk in [500, 6000] {
            let k = random(&[2, 2, lk, 64], dt, 5);
            let v = random(&[2, 2, lk, 64], dt, 6);
            let m = random(&[2, 1, 1, lk], Dtype::Float32, 7);
            let keep = m.greater(-1.0f32).unwrap();
            for (mask, s) in [
                (AttentionMask::None, None),
                (AttentionMask::Causal, Some(&sinks)),
                (AttentionMask::Array(&m), None),
                (AttentionMask::Array(&keep), None),
            ] {
                let y = fast::scaled_dot_product_attention(&q, &k, &v, 0.125, mask, s).unwrap();
                let (op, want) = fused_and_fallback(&y);
                assert_close(&y, &want, tol.max(2e-3), &format!("{op:?} {dt} {lk} keys"));
            }
        }
    }
}

/// `logsumexp` over the last axis is one fast node (float32, float16, bfloat16) with the
/// fallback's values, on rows of large entries, -inf, +inf and NaN too, with and without the
/// kept axis, and rows of an empty batch; its closed-form vjp equals float64's composite, its
/// jvp (through the fallback) too, and batching equals a loop.
#[test]
fn logsumexp_over_the_last_axis_is_one_pass_that_follows_its_fallback() {
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    #[rustfmt::skip]
    let rows = Array::from_slice(
        &[1000.0f32, 1000.0, -3.0, -inf, -inf, -inf, -inf, inf, 1.0, nan, 2.0, 0.5, 0.0, 0.0, 0.0],
        &[5, 3],
    )
    .unwrap();
    let ln3 = 3f64.ln();
    for (dt, tol) in [
        (Dtype::Float32, 1e-6),
        (Dtype::Float16, 2e-3),
        (Dtype::Bfloat16, 1e-2),
    ] {
        let x = rows.astype(dt).unwrap();
        let y = ops::logsumexp(&x, -1, false).unwrap();
        let (op, want) = fused_and_fallback(&y);
        assert_eq!(op, FastOp::LogSumExp);
        assert_close(&y, &want, tol, &format!("logsumexp {dt}"));
        let v = y.to_vec::<f64>().unwrap();
        let big = 1000.0 + 2f64.ln();
        assert!((v[0] - big).abs() <= tol * big, "{dt}: {v:?}");
        assert_eq!(v[1], f64::NEG_INFINITY, "{dt}");
        assert_eq!(v[2], f64::INFINITY, "{dt}");
        assert!(v[3].is_nan(), "{dt}");
        assert!((v[4] - ln3).abs() <= tol * ln3, "{dt}: {v:?}");
        let kept = ops::logsumexp(&x, -1, true).unwrap();
        assert_eq!(kept.shape(), &[5, 1]);
        assert_close(&kept.reshape(&[5]).unwrap(), &y, 0.0, "keepdims");
    }
    let empty = ops::logsumexp(&random(&[0, 4], Dtype::Float32, 1), -1, false).unwrap();
    assert_eq!(empty.shape(), &[0]);
    // The vjp (softmax times the cotangent) against float64's composite.
    let x = random(&[3, 7], Dtype::Float32, 2);
    let cot = random(&[3], Dtype::Float32, 3);
    let f = |a: &[Array]| ops::logsumexp(&a[0], -1, false);
    let got = vjp_of(f, std::slice::from_ref(&x), &cot).unwrap();
    let up = |a: &Array| a.astype(Dtype::Float64).unwrap();
    let want = vjp_of(f, &[up(&x)], &up(&cot)).unwrap();
    assert_close(&up(&got[0]), &want[0], 1e-6, "logsumexp vjp");
    let t = random(&[3, 7], Dtype::Float32, 4);
    let fv = |a: &[Array]| Ok(vec![ops::logsumexp(&a[0], -1, false)?]);
    let (_, got) = jvp(fv, std::slice::from_ref(&x), std::slice::from_ref(&t)).unwrap();
    let (_, want) = jvp(fv, &[up(&x)], &[up(&t)]).unwrap();
    assert_close(&up(&got[0]), &want[0], 1e-6, "logsumexp jvp");
    for pos in [Pos::First, Pos::Middle, Pos::Last] {
        check_vmap(&fv, &[vin(&[4, 6], true)], pos, 3, 7).unwrap();
    }
}

#[test]
fn fast_ops_with_float64_or_long_queries_take_the_fallback() {
    let x = random(&[3, 8], Dtype::Float64, 1);
    let y = fast::rms_norm(&x, None, 1e-5).unwrap();
    assert!(!matches!(y.primitive(), Some(Primitive::Fast(_))));
    let q = random(&[1, 2, 40, 8], Dtype::Float32, 2);
    let y =
        fast::scaled_dot_product_attention(&q, &q, &q, 0.3, AttentionMask::Causal, None).unwrap();
    assert!(!matches!(y.primitive(), Some(Primitive::Fast(_))));
    // The same values through the fused kernel, a block of queries at a time.
    let parts: Vec<Array> = (0..40)
        .step_by(10)
        .map(|s| {
            let qs = ops::slice(&q, &[0, 0, s, 0], &[1, 2, s + 10, 8], &[]).unwrap();
            // Keys up to the block's end; causal alignment is at the end.
            let ks = ops::slice(&q, &[0, 0, 0, 0], &[1, 2, s + 10, 8], &[]).unwrap();
            fast::scaled_dot_product_attention(&qs, &ks, &ks, 0.3, AttentionMask::Causal, None)
                .unwrap()
        })
        .collect();
    assert_close(&ops::concatenate(&parts, 2).unwrap(), &y, 1e-5, "blocks");
}

#[test]
fn fast_ops_batch_like_a_loop() {
    let x = || vin(&[4, 6], true);
    let w_shared = || vin(&[6], false);
    let (x64, w64) = (
        || vin_of(&[4, 6], true, Dtype::Float64),
        || vin_of(&[6], true, Dtype::Float64),
    );
    let rms = |a: &[Array]| Ok(vec![fast::rms_norm(&a[0], Some(&a[1]), 1e-5)?]);
    let ln = |a: &[Array]| Ok(vec![fast::layer_norm(&a[0], Some(&a[1]), None, 1e-5)?]);
    for pos in [Pos::First, Pos::Middle, Pos::Last] {
        check_vmap(&rms, &[x(), w_shared()], pos, 3, 1).unwrap();
        check_vmap(&rms, &[x64(), w64()], pos, 3, 2).unwrap();
        check_vmap(&ln, &[x(), w_shared()], pos, 3, 3).unwrap();
        check_vmap(&ln, &[x64(), w64()], pos, 3, 6).unwrap();
    }
    let rope = |a: &[Array]| Ok(vec![fast::rope(&a[0], 4, true, Some(100.0), 1.0, 2, None)?]);
    check_vmap(&rope, &[vin(&[2, 3, 6], true)], Pos::Middle, 3, 4).unwrap();
    let sdpa = |a: &[Array]| {
        Ok(vec![fast::scaled_dot_product_attention(
            &a[0],
            &a[1],
            &a[2],
            0.5,
            AttentionMask::Causal,
            None,
        )?])
    };
    // Batched attention runs its fallback (float64 here, so the loop computes the same way).
    let f64_in = |s: &[usize], m| vin_of(s, m, Dtype::Float64);
    let (q, k, v) = (
        f64_in(&[1, 2, 2, 4], true),
        f64_in(&[1, 1, 5, 4], true),
        f64_in(&[1, 1, 5, 4], false),
    );
    check_vmap(&sdpa, &[q, k, v], Pos::First, 3, 5).unwrap();
}

#[test]
fn fast_op_derivatives_match_finite_differences() {
    let tol = Tol::default();
    let x = random(&[3, 5], Dtype::Float64, 1);
    let w = random(&[5], Dtype::Float64, 2);
    let f = |a: &[Array]| Ok(vec![fast::layer_norm(&a[0], Some(&a[1]), None, 1e-5)?]);
    check_vjp(&f, &[x.clone(), w.clone()], 1, tol).unwrap();
    check_jvp(&f, &[x.clone(), w.clone()], 2, tol).unwrap();
    let f = |a: &[Array]| Ok(vec![fast::rms_norm(&a[0], Some(&a[1]), 1e-5)?]);
    check_vjp(&f, &[x.clone(), w], 3, tol).unwrap();
    let q = random(&[1, 2, 3, 4], Dtype::Float64, 4);
    let k = random(&[1, 1, 6, 4], Dtype::Float64, 5);
    let s = random(&[2], Dtype::Float64, 6);
    let f = |a: &[Array]| {
        Ok(vec![fast::scaled_dot_product_attention(
            &a[0],
            &a[1],
            &a[2],
            0.7,
            AttentionMask::Causal,
            Some(&a[3]),
        )?])
    };
    check_vjp(&f, &[q.clone(), k.clone(), k.clone(), s.clone()], 7, tol).unwrap();
    check_jvp(&f, &[q, k.clone(), k, s], 8, tol).unwrap();
    // The float32 kernels' jvp (through the fallback) against float64's.
    let x32 = random(&[2, 7], Dtype::Float32, 9);
    let t = random(&[2, 7], Dtype::Float32, 10);
    let (_, got) = jvp(
        |a: &[Array]| Ok(vec![fast::rms_norm(&a[0], None, 1e-5)?]),
        std::slice::from_ref(&x32),
        std::slice::from_ref(&t),
    )
    .unwrap();
    let (_, want) = jvp(
        |a: &[Array]| Ok(vec![fast::rms_norm(&a[0], None, 1e-5)?]),
        &[x32.astype(Dtype::Float64).unwrap()],
        &[t.astype(Dtype::Float64).unwrap()],
    )
    .unwrap();
    assert_close(
        &got[0].astype(Dtype::Float64).unwrap(),
        &want[0],
        1e-5,
        "jvp",
    );
}

#[test]
fn compiled_fast_ops_equal_the_uncompiled_ones_over_several_shapes() {
    let block = |a: &[Array]| -> Result<Vec<Array>> {
        let h = fast::rms_norm(&a[0], Some(&a[1]), 1e-5)?;
        let r = fast::rope(&h, 8, false, Some(1e4), 1.0, 3, None)?;
        Ok(vec![ops::softmax(&ops::multiply(&r, 2.0)?, -1, true)?])
    };
    let compiled = umx::transforms::compile(block, true);
    for l in [3, 5, 9] {
        let x = random(&[2, l, 8], Dtype::Float32, l as u64);
        let w = random(&[8], Dtype::Float32, 99);
        let got = compiled(&[x.clone(), w.clone()]).unwrap();
        let want = block(&[x, w]).unwrap();
        assert_close(&got[0], &want[0], 1e-6, &format!("L = {l}"));
    }
}

/// Under `compile`, a residual sum of a quantized product of a few rows (a decoding step's
/// output projections) folds into `quantized_linear_add` (on the GPU the matrix-vector kernel
/// adds it as it writes): the compiled function equals the uncompiled one for float32,
/// float16 and bfloat16, 4 bits (group size 64) and 8 (32), one row and several, many output
/// columns and few, the
/// residual on either side and a transposed view; its gradient with respect to `x` and the
/// residual too, and batching over the rows is a loop of the uncompiled function.
#[test]
fn a_residual_sum_folded_into_a_quantized_product_computes_the_uncompiled_values() {
    let f = |a: &[Array]| -> Result<Vec<Array>> {
        let bits = a[2].shape()[1] * 32 / a[0].shape()[a[0].ndim() - 1];
        let group = if bits == 4 { 64 } else { 32 };
        let y = ops::quantized_matmul(&a[0], &a[2], &a[3], &a[4], true, group, bits)?;
        Ok(vec![ops::add(&a[1], &y)?])
    };
    let compiled = umx::transforms::compile(f, false);
    for (dt, tol) in [
        (Dtype::Float32, 1e-5),
        (Dtype::Float16, 4e-3),
        (Dtype::Bfloat16, 3e-2),
    ] {
        // (On the GPU one bfloat16 row with 4 bits takes the 4-bit kernel, whose warps split
        // a row 2 or 4 ways where its columns are few.)
        for (rows, n, k, bits, group) in [
            (1, 2048, 2048, 4, 64),
            (1, 2048, 5632, 4, 64),
            (1, 37, 5632, 4, 64),
            (5, 300, 256, 8, 32),
        ] {
            let what = format!("quantized_linear_add {dt} rows {rows} N {n} K {k} bits {bits}");
            let x = random(&[rows, 1, k], Dtype::Float32, 61)
                .astype(dt)
                .unwrap();
            let c = random(&[rows, 1, n], Dtype::Float32, 62)
                .astype(dt)
                .unwrap();
            let w = scaled_weight(n, k, dt, 63);
            let (wq, sc, bi) = ops::quantize(&w, group, bits).unwrap();
            let args = [x, c, wq, sc, bi];
            let (got, want) = (compiled(&args).unwrap(), f(&args).unwrap());
            assert_close(&got[0], &want[0], tol, &what);
        }
    }
    // The residual a transposed view (copied by the kernel's caller).
    let (k, n) = (64, 24);
    let x = random(&[3, k], Dtype::Float32, 71);
    let ct = random(&[n, 3], Dtype::Float32, 72);
    let c = ops::transpose(&ct, [1i64, 0]).unwrap();
    let w = ops::multiply(random(&[n, k], Dtype::Float32, 73), 0.125).unwrap();
    let (wq, sc, bi) = ops::quantize(&w, 64, 4).unwrap();
    let args = [x.clone(), c.clone(), wq.clone(), sc.clone(), bi.clone()];
    assert_close(
        &compiled(&args).unwrap()[0],
        &f(&args).unwrap()[0],
        1e-5,
        "quantized_linear_add, a transposed residual",
    );
    // Gradients with respect to x and the residual: the uncompiled function's.
    let (wq2, sc2, bi2) = (wq.clone(), sc.clone(), bi.clone());
    let residual = move |a: &[Array]| -> Result<Vec<Array>> {
        let y = ops::quantized_matmul(&a[0], &wq2, &sc2, &bi2, true, 64, 4)?;
        Ok(vec![ops::add(&y, &a[1])?])
    };
    let c_residual = umx::transforms::compile(residual.clone(), false);
    let loss = |f: &(dyn Fn(&[Array]) -> Result<Vec<Array>> + Sync), a: &[Array]| {
        ops::sum(&ops::square(&f(a)?[0])?, None, false)
    };
    let pair = vec![x.clone(), c.clone()];
    let want = grad(|a: &Vec<Array>| loss(&residual, a))(&pair).unwrap();
    let got = grad(|a: &Vec<Array>| loss(&c_residual, a))(&pair).unwrap();
    for (j, (a, b)) in got.iter().zip(&want).enumerate() {
        assert_close(a, b, 1e-4, &format!("quantized_linear_add gradient {j}"));
    }
    // Batching the compiled function over x's and the residual's rows: a loop.
    let (wq3, sc3, bi3) = (wq, sc, bi);
    let row = move |a: &[Array]| -> Result<Vec<Array>> {
        let y = ops::quantized_matmul(&a[0], &wq3, &sc3, &bi3, true, 64, 4)?;
        Ok(vec![ops::add(&y, &a[1])?])
    };
    let c_row = umx::transforms::compile(row.clone(), false);
    let batched =
        umx::transforms::vmap(&c_row, &[Some(0), Some(0)], &[Some(0)])(&[x.clone(), c.clone()])
            .unwrap();
    for i in 0..3 {
        let xi = ops::slice(&x, &[i, 0], &[i + 1, k as i64], &[]).unwrap();
        let ci = ops::slice(&c, &[i, 0], &[i + 1, n as i64], &[]).unwrap();
        let want = row(&[xi, ci]).unwrap();
        let got = ops::slice(&batched[0], &[i, 0], &[i + 1, n as i64], &[]).unwrap();
        assert_close(
            &got,
            &want[0],
            1e-5,
            &format!("quantized_linear_add vmap row {i}"),
        );
    }
}

/// Under `compile`, an RMS norm that feeds `swiglu_linear` or `linear_rope_cache_write` folds
/// into it (on the GPU the matrix-vector kernel normalises its rows itself): the compiled
/// function equals the uncompiled one for float32, float16 and bfloat16, few and many output
/// columns, short and long rows, one and several rows; with a strided norm weight (the
/// norm's kernel first, then the product) and with the norm's output also returned (no
/// fold); the quantized SwiGLU and q/k/v product after a norm (not folded); a transposed
/// `x`; and batching
/// and the gradients are the uncompiled function's.
#[test]
fn an_rms_norm_folded_into_its_product_computes_the_uncompiled_values() {
    const EPS: f32 = 1e-5;
    let swiglu = |a: &[Array]| -> Result<Vec<Array>> {
        let n = fast::rms_norm(&a[0], Some(&a[1]), EPS)?;
        Ok(vec![fast::swiglu_linear(&n, &a[2])?])
    };
    let both = |a: &[Array]| -> Result<Vec<Array>> {
        let n = fast::rms_norm(&a[0], Some(&a[1]), EPS)?;
        Ok(vec![fast::swiglu_linear(&n, &a[2])?, n])
    };
    let (c_swiglu, c_both) = (
        umx::transforms::compile(swiglu, false),
        umx::transforms::compile(both, false),
    );
    for (dt, tol) in [
        (Dtype::Float32, 1e-5),
        (Dtype::Float16, 4e-3),
        (Dtype::Bfloat16, 3e-2),
    ] {
        for (rows, i, k) in [(1, 2200, 64), (3, 40, 1024), (1, 700, 2048), (2, 5, 5632)] {
            let what = format!("rms_norm + swiglu_linear {dt} rows {rows} I {i} K {k}");
            let x = random(&[rows, k], Dtype::Float32, 11).astype(dt).unwrap();
            let g = random(&[k], Dtype::Float32, 12).astype(dt).unwrap();
            let w = scaled_weight(2 * i, k, dt, 13);
            let args = [x, g, w];
            let want = swiglu(&args).unwrap();
            assert_close(&c_swiglu(&args).unwrap()[0], &want[0], tol, &what);
            let got = c_both(&args).unwrap();
            assert_close(&got[0], &want[0], tol, &format!("{what}, norm returned"));
            // A norm weight of every other element of a wider one.
            let wide = random(&[2 * k], Dtype::Float32, 14).astype(dt).unwrap();
            let g = ops::slice(&wide, &[0], &[2 * k as i64], &[2]).unwrap();
            let args = [args[0].clone(), g, args[2].clone()];
            let want = swiglu(&args).unwrap();
            let what = format!("{what}, strided weight");
            assert_close(&c_swiglu(&args).unwrap()[0], &want[0], tol, &what);
        }
        // The q/k/v product with its rope and cache writes: (B, L, heads, kv heads, D, K).
        for (b, l, h, kh, d, k) in [(1, 1, 32, 4, 64, 2048), (2, 3, 4, 2, 16, 32)] {
            let what = format!("rms_norm + linear_rope_cache_write {dt} B {b} L {l} K {k}");
            let rope = move |a: &[Array]| -> Result<Vec<Array>> {
                let n = fast::rms_norm(&a[0], Some(&a[1]), EPS)?;
                let (q, k, v) = fast::linear_rope_cache_write(
                    &n,
                    &a[2],
                    h,
                    kh,
                    &a[3],
                    &a[4],
                    5,
                    d,
                    false,
                    Some(1e4),
                    1.0,
                    None,
                )?;
                Ok(vec![q, k, v])
            };
            let compiled = umx::transforms::compile(rope, false);
            let n = (h + 2 * kh) * d;
            let x = random(&[b, l, k], Dtype::Float32, 21).astype(dt).unwrap();
            let g = random(&[k], Dtype::Float32, 22).astype(dt).unwrap();
            let w = scaled_weight(n, k, dt, 23);
            let (keys, values) = random_caches([b, kh, 12, d], dt, 24);
            let args = [x, g, w, keys, values];
            let (got, want) = (compiled(&args).unwrap(), rope(&args).unwrap());
            for (j, part) in ["queries", "keys", "values"].iter().enumerate() {
                assert_close(&got[j], &want[j], tol, &format!("{what}: {part}"));
            }
        }
        // The final norm and the head: `x @ w.T` of the normalised rows through a reshape,
        // `w` an argument transposed in the function, or a constant (as a captured decoding
        // step's head is). Rows (B, 1, K); the head's N outputs.
        for (b, n, k) in [(1, 4096, 2048), (3, 100, 64), (9, 40, 32)] {
            let what = format!("rms_norm + head {dt} B {b} N {n} K {k}");
            let head = move |a: &[Array]| -> Result<Vec<Array>> {
                let h = ops::reshape(&fast::rms_norm(&a[0], Some(&a[1]), EPS)?, &[-1, k as i64])?;
                Ok(vec![ops::matmul(&h, &ops::transpose(&a[2], [1i64, 0])?)?])
            };
            let x = random(&[b, 1, k], Dtype::Float32, 31).astype(dt).unwrap();
            let g = random(&[k], Dtype::Float32, 32).astype(dt).unwrap();
            let w = scaled_weight(n, k, dt, 33);
            let args = [x, g, w.clone()];
            let want = head(&args).unwrap();
            let compiled = umx::transforms::compile(head, false);
            assert_close(&compiled(&args).unwrap()[0], &want[0], tol, &what);
            let wt = ops::transpose(&w, [1i64, 0]).unwrap();
            let constant = move |a: &[Array]| -> Result<Vec<Array>> {
                let h = ops::reshape(&fast::rms_norm(&a[0], Some(&a[1]), EPS)?, &[-1, k as i64])?;
                Ok(vec![ops::matmul(&h, &wt)?])
            };
            let compiled = umx::transforms::compile(constant, false);
            let got = compiled(&args[..2]).unwrap();
            assert_close(
                &got[0],
                &want[0],
                tol,
                &format!("{what}, a constant weight"),
            );
        }
    }
    // The quantized SwiGLU (4 bits, group size 64 or 128; 3 bits, 32) and q/k/v product
    // after a norm, whose norm stays a step (`compile`'s `norm_prologues`).
    let quantized = |a: &[Array]| -> Result<Vec<Array>> {
        let n = fast::rms_norm(&a[0], Some(&a[1]), EPS)?;
        let k = a[0].shape()[a[0].ndim() - 1];
        let (bits, group) = match a[2].shape()[1] * 32 / k {
            4 if k > 2048 => (4, 128),
            4 => (4, 64),
            _ => (3, 32),
        };
        Ok(vec![fast::swiglu_quantized_linear(
            &n, &a[2], &a[3], &a[4], group, bits,
        )?])
    };
    let c_quantized = umx::transforms::compile(quantized, false);
    for (dt, tol) in [
        (Dtype::Float32, 1e-5),
        (Dtype::Float16, 4e-3),
        (Dtype::Bfloat16, 3e-2),
    ] {
        for (rows, i, k, bits, group) in [
            (1, 700, 2048, 4, 64),
            (1, 2816, 2048, 4, 64),
            (1, 24, 5632, 4, 128),
            (2, 40, 256, 4, 64),
            (3, 40, 256, 3, 32),
        ] {
            let what = format!("rms_norm + swiglu_quantized_linear {dt} rows {rows} K {k}");
            let x = random(&[rows, k], Dtype::Float32, 41).astype(dt).unwrap();
            let g = random(&[k], Dtype::Float32, 42).astype(dt).unwrap();
            let w = scaled_weight(2 * i, k, dt, 43);
            let (wq, sc, bi) = ops::quantize(&w, group, bits).unwrap();
            let args = [x, g, wq.clone(), sc.clone(), bi.clone()];
            let (got, want) = (c_quantized(&args).unwrap(), quantized(&args).unwrap());
            assert_close(&got[0], &want[0], tol, &what);
            let wide = random(&[2 * k], Dtype::Float32, 44).astype(dt).unwrap();
            let g = ops::slice(&wide, &[0], &[2 * k as i64], &[2]).unwrap();
            let args = [args[0].clone(), g, wq, sc, bi];
            let (got, want) = (c_quantized(&args).unwrap(), quantized(&args).unwrap());
            assert_close(&got[0], &want[0], tol, &format!("{what}, strided weight"));
        }
        // The quantized q/k/v product with its rope and cache writes (4 bits):
        // (B, L, heads, kv heads, D, K, group size, traditional).
        for (b, l, h, kh, d, k, group, trad) in [
            (1, 1, 32, 4, 64, 2048, 64, false),
            (1, 1, 4, 2, 128, 256, 32, true),
            (2, 3, 4, 2, 16, 64, 64, false),
        ] {
            let what = format!("rms_norm + quantized_linear_rope_cache_write {dt} B {b} L {l}");
            let rope = move |a: &[Array]| -> Result<Vec<Array>> {
                let n = fast::rms_norm(&a[0], Some(&a[1]), EPS)?;
                let (q, k, v) = fast::quantized_linear_rope_cache_write(
                    &n,
                    &a[2],
                    &a[3],
                    &a[4],
                    group,
                    4,
                    h,
                    kh,
                    &a[5],
                    &a[6],
                    5,
                    d,
                    trad,
                    Some(1e4),
                    1.0,
                    None,
                )?;
                Ok(vec![q, k, v])
            };
            let compiled = umx::transforms::compile(rope, false);
            let n = (h + 2 * kh) * d;
            let x = random(&[b, l, k], Dtype::Float32, 61).astype(dt).unwrap();
            let g = random(&[k], Dtype::Float32, 62).astype(dt).unwrap();
            let w = scaled_weight(n, k, dt, 63);
            let (wq, sc, bi) = ops::quantize(&w, group, 4).unwrap();
            let (keys, values) = random_caches([b, kh, 12, d], dt, 64);
            let args = [x, g, wq, sc, bi, keys, values];
            let (got, want) = (compiled(&args).unwrap(), rope(&args).unwrap());
            for (j, part) in ["queries", "keys", "values"].iter().enumerate() {
                assert_close(&got[j], &want[j], tol, &format!("{what}: {part}"));
            }
        }
    }
    // A transposed x (a view: the products copy it), and batching the compiled function over
    // x's rows: a loop of the uncompiled one.
    let k = 64;
    let xt = random(&[k, 3], Dtype::Float32, 51);
    let x = ops::transpose(&xt, [1i64, 0]).unwrap();
    let g = random(&[k], Dtype::Float32, 52);
    let w = ops::multiply(random(&[48, k], Dtype::Float32, 53), 0.125).unwrap();
    let args = [x.clone(), g.clone(), w.clone()];
    let what = "rms_norm + swiglu_linear, transposed x";
    assert_close(
        &c_swiglu(&args).unwrap()[0],
        &swiglu(&args).unwrap()[0],
        1e-5,
        what,
    );
    let batched = umx::transforms::vmap(&c_swiglu, &[Some(0), None, None], &[Some(0)]);
    let got = batched(&[
        ops::reshape(&x, &[3, 1, k as i64]).unwrap(),
        g.clone(),
        w.clone(),
    ])
    .unwrap()
    .remove(0);
    for r in 0..3 {
        let row = ops::slice(&x, &[r, 0], &[r + 1, k as i64], &[]).unwrap();
        let want = swiglu(&[row, g.clone(), w.clone()]).unwrap().remove(0);
        let one = ops::slice(&got, &[r, 0, 0], &[r + 1, 1, 24], &[]).unwrap();
        let one = ops::reshape(&one, &[1, 24]).unwrap();
        assert_close(
            &one,
            &want,
            1e-5,
            &format!("vmap of the folded op, row {r}"),
        );
    }
    // Gradients through the folded op: the uncompiled function's.
    let x = random(&[2, 64], Dtype::Float32, 31);
    let g = random(&[64], Dtype::Float32, 32);
    let w = ops::multiply(random(&[24, 64], Dtype::Float32, 33), 0.125).unwrap();
    let loss = |f: &(dyn Fn(&[Array]) -> Result<Vec<Array>> + Sync), a: &[Array]| {
        ops::sum(&f(a)?[0], None, false)
    };
    let args = vec![x, g, w];
    let want = grad(|a: &Vec<Array>| loss(&swiglu, a))(&args).unwrap();
    let got = grad(|a: &Vec<Array>| loss(&c_swiglu, a))(&args).unwrap();
    for (j, (a, b)) in got.iter().zip(&want).enumerate() {
        assert_close(
            a,
            b,
            1e-4,
            &format!("rms_norm + swiglu_linear gradient {j}"),
        );
    }
}

#[test]
fn fast_ops_reject_bad_input_by_name() {
    let x = random(&[2, 4], Dtype::Float32, 1);
    let err = |r: Result<Array>| r.unwrap_err().to_string();
    let e = err(fast::rms_norm(
        &x,
        Some(&random(&[3], Dtype::Float32, 2)),
        1e-5,
    ));
    assert!(
        e.contains("rms_norm") && e.contains("(4,)") && e.contains("(3,)"),
        "{e}"
    );
    let e = err(fast::rms_norm(
        &Array::from_slice(&[1i32, 2], &[2]).unwrap(),
        None,
        1e-5,
    ));
    assert!(e.contains("rms_norm") && e.contains("int32"), "{e}");
    let e = err(fast::layer_norm(&Array::scalar(1.0f32), None, None, 1e-5));
    assert!(e.contains("layer_norm") && e.contains("scalar"), "{e}");
    let e = err(fast::rope(&x, 3, false, Some(1e4), 1.0, 0, None));
    assert!(e.contains("rope") && e.contains("even"), "{e}");
    let e = err(fast::rope(&x, 4, false, None, 1.0, 0, None));
    assert!(e.contains("rope") && e.contains("base and freqs"), "{e}");
    let e = err(fast::rope(&x, 4, false, Some(1e4), 1.0, 0.5f32, None));
    assert!(e.contains("rope") && e.contains("integer"), "{e}");
    let q = random(&[1, 3, 1, 4], Dtype::Float32, 3);
    let k = random(&[1, 2, 5, 4], Dtype::Float32, 4);
    let e = err(fast::scaled_dot_product_attention(
        &q,
        &k,
        &k,
        1.0,
        AttentionMask::None,
        None,
    ));
    assert!(
        e.contains("scaled_dot_product_attention") && e.contains("3 query heads"),
        "{e}"
    );
    let q = random(&[1, 2, 1, 4], Dtype::Float32, 5);
    let m = random(&[3, 5], Dtype::Float32, 6);
    let e = err(fast::scaled_dot_product_attention(
        &q,
        &k,
        &k,
        1.0,
        AttentionMask::Array(&m),
        None,
    ));
    assert!(e.contains("mask") && e.contains("(3, 5)"), "{e}");
    let e = err(fast::scaled_dot_product_attention(
        &q,
        &k,
        &k,
        1.0,
        AttentionMask::None,
        Some(&random(&[3], Dtype::Float32, 7)),
    ));
    assert!(e.contains("sinks") && e.contains("(2,)"), "{e}");
}

#[test]
fn a_row_that_sees_no_key_is_nan_and_empty_inputs_work() {
    let q = random(&[1, 1, 2, 4], Dtype::Float32, 1);
    let k = random(&[1, 1, 3, 4], Dtype::Float32, 2);
    let m = Array::from_slice(&[false, false, false, true, true, false], &[2, 3]).unwrap();
    let y = fast::scaled_dot_product_attention(&q, &k, &k, 1.0, AttentionMask::Array(&m), None)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert!(y[..4].iter().all(|v| v.is_nan()) && y[4..].iter().all(|v| v.is_finite()));
    let empty = random(&[1, 1, 0, 4], Dtype::Float32, 3);
    let y =
        fast::scaled_dot_product_attention(&empty, &k, &k, 1.0, AttentionMask::None, None).unwrap();
    assert_eq!(y.shape(), &[1, 1, 0, 4]);
    y.eval().unwrap();
    let y = fast::rope(
        &random(&[0, 3, 4], Dtype::Float32, 4),
        4,
        false,
        Some(1e4),
        1.0,
        0,
        None,
    )
    .unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap().len(), 0);
}

/// What the GPU's backward pass of attention rests on, checked on the CPU: attention with its
/// log-sum-exp (the CPU kernel against the fallback, +inf for a row that sees no key), its
/// batching rule (two outputs) against a loop, and the gradient node's fallback against the
/// vjp of attention (rows that see no key get no gradient). The GPU kernels are checked
/// against these in umx-cuda's tests.
#[test]
fn attention_log_sum_exp_and_its_gradient_node_follow_the_fallback() {
    let scale = 0.3;
    for causal in [false, true] {
        for (lq, lk) in [(5, 7), (7, 4)] {
            let what = format!("causal={causal} {lq}x{lk}");
            let q = random(&[2, 4, lq, 8], Dtype::Float32, 1);
            let k = random(&[2, 2, lk, 8], Dtype::Float32, 2);
            let v = random(&[2, 2, lk, 6], Dtype::Float32, 3);
            let op = FastOp::Attention {
                scale,
                causal,
                mask: false,
                sinks: false,
                lse: true,
            };
            let inputs = [q.clone(), k.clone(), v.clone()];
            let attend = |inputs: &[Array]| {
                Array::from_primitive_multi(
                    Primitive::Fast(op.clone()),
                    inputs.to_vec(),
                    op.outputs(inputs),
                )
            };
            let outs = attend(&inputs).unwrap();
            let want = op.fallback(&inputs).unwrap();
            assert_close(&outs[0], &want[0], 1e-5, &format!("{what}: output"));
            assert_close(&outs[1], &want[1], 1e-5, &format!("{what}: log-sum-exp"));
            let l = outs[1].to_vec::<f32>().unwrap();
            let unseen = if causal { lq.saturating_sub(lk) } else { 0 };
            for (r, l) in l.iter().enumerate() {
                assert_eq!(*l == f32::INFINITY, r % lq < unseen, "{what}: row {r}: {l}");
            }
            // Batched queries: both outputs, example by example.
            let qs = random(&[3, 2, 4, lq, 8], Dtype::Float32, 5);
            let f = umx::vmap(attend, &[Some(0), None, None], &[Some(0), Some(0)]);
            let got = f(&[qs.clone(), k.clone(), v.clone()]).unwrap();
            for i in 0..3 {
                let at = |a: &Array| ops::take(a, &Array::scalar(i), Some(0)).unwrap();
                let want = op.fallback(&[at(&qs), k.clone(), v.clone()]).unwrap();
                for (j, w) in want.iter().enumerate() {
                    assert_close(&at(&got[j]), w, 1e-5, &format!("{what}: vmap {i} {j}"));
                }
            }

            let g = random(&[2, 4, lq, 6], Dtype::Float32, 4);
            let mut args = inputs.to_vec();
            args.extend([outs[0].clone(), outs[1].clone(), g.clone()]);
            let grads = FastOp::AttentionVjp { scale, causal }
                .fallback(&args)
                .unwrap();
            // The reference: attention over the rows that see a key.
            let rows = |a: &Array| {
                let s = a.shape().iter().map(|&n| n as i64).collect::<Vec<_>>();
                ops::slice(a, &[0, 0, unseen as i64, 0], &s, &[]).unwrap()
            };
            let mask = if causal {
                AttentionMask::Causal
            } else {
                AttentionMask::None
            };
            let (_, want) = umx::vjp(
                |p| {
                    Ok(vec![fast::scaled_dot_product_attention(
                        &p[0], &p[1], &p[2], scale, mask, None,
                    )?])
                },
                &[rows(&q), k.clone(), v.clone()],
                &[rows(&g)],
            )
            .unwrap();
            assert_close(&rows(&grads[0]), &want[0], 1e-5, &format!("{what}: dq"));
            if unseen > 0 {
                let head = ops::slice(&grads[0], &[0, 0, 0, 0], &[2, 4, unseen as i64, 8], &[]);
                let head = head.unwrap().to_vec::<f32>().unwrap();
                assert!(head.iter().all(|&x| x == 0.0), "{what}: unseen rows' dq");
            }
            assert_close(&grads[1], &want[1], 1e-5, &format!("{what}: dk"));
            assert_close(&grads[2], &want[2], 1e-5, &format!("{what}: dv"));
        }
    }
}

/// `fast::cuda_kernel` checks its arguments when it is made and called, and a CPU stream
/// refuses to run it with an error (its values are checked on the GPU, in umx-cuda's tests).
#[test]
fn cuda_kernel_checks_its_arguments() {
    let err = |r: Result<fast::CudaKernel>| r.unwrap_err().to_string();
    let src = "out[0] = inp[0];";
    assert!(
        err(fast::cuda_kernel(
            "my exp",
            &["inp"],
            &["out"],
            src,
            "",
            true,
            0
        ))
        .contains("C identifier")
    );
    assert!(err(fast::cuda_kernel("k", &["a"], &["a"], src, "", true, 0)).contains("used twice"));
    assert!(
        err(fast::cuda_kernel("k", &["a"], &[], src, "", true, 0)).contains("at least one output")
    );
    let k = fast::cuda_kernel("k", &["inp"], &["out"], src, "", true, 0).unwrap();
    let x = Array::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
    let call = fast::KernelCall {
        grid: [2, 1, 1],
        threadgroup: [32, 1, 1],
        output_shapes: vec![vec![2]],
        output_dtypes: vec![Dtype::Float32],
        ..Default::default()
    };
    let bad = |c: fast::KernelCall, xs: &[Array]| k.call(xs, &c).unwrap_err().to_string();
    assert!(bad(call.clone(), &[x.clone(), x.clone()]).contains("2 inputs for 1 input names"));
    assert!(
        bad(
            fast::KernelCall {
                output_dtypes: vec![],
                ..call.clone()
            },
            std::slice::from_ref(&x)
        )
        .contains("output dtypes")
    );
    assert!(
        bad(
            fast::KernelCall {
                threadgroup: [64, 32, 1],
                ..call.clone()
            },
            std::slice::from_ref(&x)
        )
        .contains("over 1024 threads")
    );
    assert!(
        bad(
            fast::KernelCall {
                grid: [0, 1, 1],
                ..call.clone()
            },
            std::slice::from_ref(&x)
        )
        .contains("positive")
    );
    let y = umx::with_device(Device::Cpu, || k.call(std::slice::from_ref(&x), &call)).unwrap();
    let e = y[0].eval().unwrap_err().to_string();
    assert!(e.contains("GPU only"), "{e}");
    // No gradient or batching rule: a clear error, not a wrong answer.
    let g =
        grad(|x: &Array| ops::sum(&k.call(std::slice::from_ref(x), &call)?[0], None, false))(&x);
    assert!(g.unwrap_err().to_string().contains("cuda_kernel"));
}

/// `silu(x @ gate.T) * (x @ up.T)` for `w = [gate; up]`, as plain ops.
fn swiglu_composite(x: &Array, w: &Array) -> Result<Array> {
    let (i, k) = (w.shape()[0] as i64 / 2, w.shape()[1] as i64);
    let half = |from: i64| -> Result<Array> {
        let part = ops::slice(w, &[from, 0], &[from + i, k], &[])?;
        ops::matmul(x, &ops::transpose(&part, [1i64, 0])?)
    };
    let (g, u) = (half(0)?, half(i)?);
    ops::multiply(&ops::multiply(&g, &ops::sigmoid(&g)?)?, &u)
}

/// `fast::swiglu_linear` is one node for a decoding step's few rows (float32, float16,
/// bfloat16; on the GPU the matrix-vector kernel with its columns split over a block's warps
/// and not: few and many output columns, short and long rows) with the composite's values;
/// views of `x` and `w` give the same; more rows, mixed dtypes and widths that are no whole
/// number of 16-byte vectors take the composite; its gradients are the composite's, batching
/// equals a loop, and bad shapes are errors naming the op.
#[test]
fn swiglu_linear_computes_the_composite_for_a_few_rows_in_one_node() {
    let is_node = |y: &Array| matches!(y.primitive(), Some(Primitive::Fast(FastOp::SwigluLinear)));
    let scaled = |shape: &[usize], k: usize, seed: u64| {
        ops::multiply(random(shape, Dtype::Float32, seed), 1.0 / (k as f64).sqrt()).unwrap()
    };
    for (dt, tol) in [
        (Dtype::Float32, 1e-5),
        (Dtype::Float16, 4e-3),
        (Dtype::Bfloat16, 3e-2),
    ] {
        for (rows, i, k) in [
            (1, 2200, 64),
            (3, 40, 1024),
            (8, 24, 2048),
            (2, 5, 5632),
            (1, 7, 8),
        ] {
            let x = random(&[rows, k], Dtype::Float32, 1).astype(dt).unwrap();
            let w = scaled_weight(2 * i, k, dt, 2);
            let y = fast::swiglu_linear(&x, &w).unwrap();
            assert!(is_node(&y), "{dt} {rows}x{k} ({i})");
            assert_eq!(y.shape(), &[rows, i]);
            let want = swiglu_composite(&x, &w).unwrap();
            let what = format!("swiglu_linear {dt} rows {rows} I {i} K {k}");
            assert_close(&y, &want, tol, &what);
        }
        // A transposed x, leading axes, and a weight that is a slice of wider rows.
        let k = 64;
        let xt = random(&[k, 3], Dtype::Float32, 3).astype(dt).unwrap();
        let x = ops::reshape(&ops::transpose(&xt, [1i64, 0]).unwrap(), &[3, 1, k as i64]).unwrap();
        let wide = scaled(&[20, k + 8], k, 4).astype(dt).unwrap();
        let w = ops::slice(&wide, &[0, 4], &[20, k as i64 + 4], &[]).unwrap();
        let y = fast::swiglu_linear(&x, &w).unwrap();
        assert!(is_node(&y));
        assert_eq!(y.shape(), &[3, 1, 10]);
        let want = swiglu_composite(&x, &w).unwrap();
        assert_close(&y, &want, tol, &format!("swiglu_linear views {dt}"));
    }
    // The composite: nine rows, mixed dtypes, a width of 6 float32s, no rows.
    let w = random(&[8, 16], Dtype::Float32, 5);
    for (x, w) in [
        (random(&[9, 16], Dtype::Float32, 6), w.clone()),
        (
            random(&[2, 16], Dtype::Float32, 7),
            w.astype(Dtype::Bfloat16).unwrap(),
        ),
        (
            random(&[2, 6], Dtype::Float32, 8),
            random(&[8, 6], Dtype::Float32, 9),
        ),
        (random(&[0, 16], Dtype::Float32, 10), w.clone()),
    ] {
        let y = fast::swiglu_linear(&x, &w).unwrap();
        assert!(!is_node(&y), "{:?} {:?}", x.shape(), w.dtype());
        assert_close(&y, &swiglu_composite(&x, &w).unwrap(), 1e-6, "composite");
    }
    // Gradients through the node are the composite's; float64 against finite differences.
    let (x, w) = (
        random(&[2, 16], Dtype::Float32, 11),
        random(&[8, 16], Dtype::Float32, 12),
    );
    let cot = random(&[2, 4], Dtype::Float32, 13);
    let got = vjp_of(
        |a| fast::swiglu_linear(&a[0], &a[1]),
        &[x.clone(), w.clone()],
        &cot,
    )
    .unwrap();
    let want = vjp_of(|a| swiglu_composite(&a[0], &a[1]), &[x, w], &cot).unwrap();
    for (g, e) in got.iter().zip(&want) {
        assert_close(g, e, 1e-5, "swiglu_linear vjp");
    }
    let f = |a: &[Array]| Ok(vec![fast::swiglu_linear(&a[0], &a[1])?]);
    let x64 = random(&[2, 5], Dtype::Float64, 14);
    let w64 = random(&[6, 5], Dtype::Float64, 15);
    check_vjp(&f, &[x64.clone(), w64.clone()], 16, Tol::default()).unwrap();
    check_jvp(&f, &[x64, w64], 17, Tol::default()).unwrap();
    for pos in [Pos::First, Pos::Middle, Pos::Last] {
        check_vmap(&f, &[vin(&[2, 16], true), vin(&[6, 16], false)], pos, 3, 18).unwrap();
        // A batched weight: the composite (float64, as the loop's is too).
        let (x64, w64) = (
            vin_of(&[2, 8], true, Dtype::Float64),
            vin_of(&[6, 8], true, Dtype::Float64),
        );
        check_vmap(&f, &[x64, w64], pos, 3, 19).unwrap();
    }
    // Bad shapes and dtypes.
    let x = random(&[2, 16], Dtype::Float32, 20);
    for (w, what) in [
        (random(&[7, 16], Dtype::Float32, 21), "(2I, 16)"),
        (random(&[8, 15], Dtype::Float32, 22), "(2I, 16)"),
        (random(&[16], Dtype::Float32, 23), "(2I, 16)"),
    ] {
        let e = fast::swiglu_linear(&x, &w).unwrap_err().to_string();
        assert!(e.contains("swiglu_linear") && e.contains(what), "{e}");
    }
    let xi = Array::from_slice(&[1i32, 2], &[1, 2]).unwrap();
    let e = fast::swiglu_linear(&xi, &random(&[2, 2], Dtype::Float32, 24)).unwrap_err();
    assert!(e.to_string().contains("swiglu_linear"), "{e}");
}

/// `fast::swiglu_quantized_linear` is one node for a few rows (bits 3, 4 and 8; group sizes
/// 32, 64 and 128; float32, float16, bfloat16) with the composite's values
/// (`quantized_matmul`, then the SwiGLU of its halves); more rows take the composite, vmap
/// equals a loop, and an odd number of weight rows or a batched weight is an error naming
/// the op.
#[test]
fn swiglu_quantized_linear_computes_the_composite_for_a_few_rows_in_one_node() {
    let is_node = |y: &Array| {
        matches!(
            y.primitive(),
            Some(Primitive::Fast(FastOp::SwigluQuantizedLinear { .. }))
        )
    };
    let composite = |x: &Array, q: &Array, s: &Array, b: &Array, gs, bits| {
        let y = ops::quantized_matmul(x, q, s, b, true, gs, bits).unwrap();
        let i = y.shape()[y.ndim() - 1] as i64 / 2;
        let r = y.shape()[0] as i64;
        let g = ops::slice(&y, &[0, 0], &[r, i], &[]).unwrap();
        let u = ops::slice(&y, &[0, i], &[r, 2 * i], &[]).unwrap();
        ops::multiply(ops::multiply(&g, ops::sigmoid(&g).unwrap()).unwrap(), &u).unwrap()
    };
    for (dt, tol) in [
        (Dtype::Float32, 1e-5),
        (Dtype::Float16, 4e-3),
        (Dtype::Bfloat16, 3e-2),
    ] {
        for (rows, i, k, gs, bits) in [
            (1, 2200, 128, 64, 4),
            (3, 40, 1024, 128, 8),
            (8, 24, 2048, 64, 4),
            (2, 5, 192, 32, 3),
            (9, 6, 128, 64, 4),
        ] {
            let x = random(&[rows, k], Dtype::Float32, 1).astype(dt).unwrap();
            let w = scaled_weight(2 * i, k, dt, 2);
            let (q, s, b) = ops::quantize(&w, gs, bits).unwrap();
            let y = fast::swiglu_quantized_linear(&x, &q, &s, &b, gs, bits).unwrap();
            assert_eq!(is_node(&y), rows <= 8, "{dt} rows {rows}");
            assert_eq!(y.shape(), &[rows, i]);
            let want = composite(&x, &q, &s, &b, gs, bits);
            let what = format!("swiglu_quantized_linear {dt} rows {rows} I {i} K {k} {bits} bits");
            assert_close(&y, &want, tol, &what);
        }
    }
    let w = random(&[8, 64], Dtype::Float32, 3);
    let (q, s, b) = ops::quantize(&w, 64, 4).unwrap();
    let f = |a: &[Array]| {
        Ok(vec![fast::swiglu_quantized_linear(
            &a[0], &q, &s, &b, 64, 4,
        )?])
    };
    for pos in [Pos::First, Pos::Middle, Pos::Last] {
        check_vmap(&f, &[vin(&[2, 64], true)], pos, 3, 4).unwrap();
    }
    let x = random(&[1, 64], Dtype::Float32, 5);
    let (q3, s3, b3) = ops::quantize(&random(&[6, 64], Dtype::Float32, 6), 64, 4).unwrap();
    let odd = |a: &Array| ops::slice(a, &[0, 0], &[5, a.shape()[1] as i64], &[]).unwrap();
    let e = fast::swiglu_quantized_linear(&x, &odd(&q3), &odd(&s3), &odd(&b3), 64, 4).unwrap_err();
    assert!(e.to_string().contains("swiglu_quantized_linear"), "{e}");
    let stack = |a: &Array| ops::stack(&[a.clone(), a.clone()], 0).unwrap();
    let e = fast::swiglu_quantized_linear(&x, &stack(&q3), &stack(&s3), &stack(&b3), 64, 4)
        .unwrap_err();
    assert!(e.to_string().contains("swiglu_quantized_linear"), "{e}");
    let e =
        fast::swiglu_quantized_linear(&random(&[1, 32], Dtype::Float32, 7), &q3, &s3, &b3, 64, 4)
            .unwrap_err();
    assert!(e.to_string().contains("swiglu_quantized_linear"), "{e}");
}
