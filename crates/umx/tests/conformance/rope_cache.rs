//! The fused rope and cache writes of a decoding step (`fast::rope_cache_write`, and with the
//! q/k/v product `fast::linear_rope_cache_write` / `fast::quantized_linear_rope_cache_write`)
//! against the ops they stand for: values over dtypes and shapes, gradients, batching, rows
//! past the cache, and errors.

use crate::fast::{assert_close, random, scaled_weight, vin_of};
use crate::fd::{Pos, Tol, check_jvp, check_vjp, check_vmap};
use umx::fast;
use umx::prelude::*;
use umx::primitives::{FastOp, Primitive, Projection};

/// `fast::rope_cache_write` as the ops it stands for: views of `qkv`, `fast::rope` of the
/// query and key heads, and a scatter of the keys and of the values along the cache's axis 2.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rope_cache_composite(
    qkv: &Array,
    heads: usize,
    kv_heads: usize,
    keys: &Array,
    values: &Array,
    offset: i32,
    dims: usize,
    traditional: bool,
    base: Option<f32>,
    freqs: Option<&Array>,
) -> Result<(Array, Array, Array)> {
    let (b, l, d) = (
        qkv.shape()[0] as i64,
        qkv.shape()[1] as i64,
        keys.shape()[3],
    );
    let split = |from: usize, n: usize| -> Result<Array> {
        let (from, to) = ((from * d) as i64, ((from + n) * d) as i64);
        let part = ops::slice(qkv, &[0, 0, from], &[b, l, to], &[])?;
        let part = ops::reshape(&part, &[b, l, n as i64, d as i64])?;
        ops::transpose(&part, [0i64, 2, 1, 3])
    };
    let rope = |a: &Array| fast::rope(a, dims, traditional, base, 1.0, offset, freqs);
    let q = rope(&split(0, heads)?)?;
    let k = rope(&split(heads, kv_heads)?)?;
    let v = split(heads + kv_heads, kv_heads)?;
    let at = [Array::from_slice(&[offset], &[1])?];
    let keys = ops::scatter(keys, &at, &ops::expand_dims(&k, 0)?, &[2])?;
    let values = ops::scatter(values, &at, &ops::expand_dims(&v, 0)?, &[2])?;
    Ok((q, keys, values))
}

/// A key cache and a value cache of `shape` `(B, kv_heads, capacity, D)` in `dt`, random
/// from `seed` and `seed + 1`.
pub(crate) fn random_caches(shape: [usize; 4], dt: Dtype, seed: u64) -> (Array, Array) {
    let cache = |s| random(&shape, Dtype::Float32, s).astype(dt).unwrap();
    (cache(seed), cache(seed + 1))
}

/// The rope's `base` (10000) or, with `with_freqs`, `freqs`: the two ways to give it.
fn base_or(freqs: &Array, with_freqs: bool) -> (Option<f32>, Option<&Array>) {
    if with_freqs {
        (None, Some(freqs))
    } else {
        (Some(10000.0), None)
    }
}

/// `f`'s gradients at `primals` are `composite`'s, both taking cotangents random from `seed`
/// (queries (1, 2, 2, 4), caches (1, 1, 5, 4): the shapes `f` writes).
fn assert_vjp_is_composite(
    f: impl Fn(&[Array]) -> Result<Vec<Array>>,
    composite: impl Fn(&[Array]) -> Result<Vec<Array>>,
    primals: &[Array],
    seed: u64,
    what: &str,
) {
    let cots = [
        random(&[1, 2, 2, 4], Dtype::Float32, seed),
        random(&[1, 1, 5, 4], Dtype::Float32, seed + 1),
        random(&[1, 1, 5, 4], Dtype::Float32, seed + 2),
    ];
    let (_, got) = vjp(f, primals, &cots).unwrap();
    let (_, want) = vjp(composite, primals, &cots).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert_close(g, w, 1e-5, &format!("{what} vjp"));
    }
}

/// `write(offset)` whose rows pass the cache's end from offset `past`: there an error naming
/// `rope_cache_write`, at the latest at the next read; then (the GPU's record read and
/// cleared) at `past - 1` a write that reads back.
fn assert_rows_past_the_cache_fail(
    write: impl Fn(i32) -> Result<(Array, Array, Array)>,
    past: i32,
    what: &str,
) {
    let e = write(past)
        .and_then(|(_, k, _)| k.to_vec::<f32>())
        .unwrap_err()
        .to_string();
    assert!(e.contains("rope_cache_write"), "{what}: {e}");
    let (_, k, _) = write(past - 1).unwrap();
    k.to_vec::<f32>().unwrap();
}

/// `fast::rope_cache_write` is one node with three outputs whose values are the composite's
/// (float32, float16, bfloat16; one and several positions and sequences; all features or the
/// first `dims` rotated, halves or neighbours, `base` or `freqs`; a strided `qkv`); its
/// gradients are the composite's (float64 against finite differences), batching equals a
/// loop, rows past the cache are an error at the next read, and bad shapes, dtypes and
/// offsets are errors naming the op.
#[test]
fn rope_cache_write_computes_the_composite_in_one_node() {
    let freqs = Array::from_slice(&[1.0f32, 3.0, 7.0, 20.0], &[4]).unwrap();
    // (B, L, heads, kv heads, D, dims, capacity, offset, traditional, freqs)
    let cases = [
        (1, 1, 32, 4, 64, 64, 40, 7, false, false),
        (2, 3, 4, 2, 16, 8, 10, 7, true, false),
        (1, 2, 2, 1, 8, 8, 5, 0, false, true),
        (3, 1, 6, 3, 32, 16, 9, 8, false, false),
    ];
    for (dt, tol) in [
        (Dtype::Float32, 1e-5),
        (Dtype::Float16, 2e-3),
        (Dtype::Bfloat16, 2e-2),
    ] {
        for (i, &(b, l, h, kh, d, dims, cap, off, trad, with_freqs)) in cases.iter().enumerate() {
            let seed = 100 + 10 * i as u64;
            let qkv = random(&[b, l, (h + 2 * kh) * d], Dtype::Float32, seed)
                .astype(dt)
                .unwrap();
            let (keys, values) = random_caches([b, kh, cap, d], dt, seed + 1);
            let (base, f) = base_or(&freqs, with_freqs);
            let what = format!("rope_cache_write {dt} case {i}");
            let (q, k, v) =
                fast::rope_cache_write(&qkv, h, kh, &keys, &values, off, dims, trad, base, 1.0, f)
                    .unwrap();
            assert!(
                matches!(
                    q.primitive(),
                    Some(Primitive::Fast(FastOp::RopeCacheWrite { .. }))
                ),
                "{what}"
            );
            assert_eq!(q.shape(), &[b, h, l, d], "{what}");
            let (wq, wk, wv) =
                rope_cache_composite(&qkv, h, kh, &keys, &values, off, dims, trad, base, f)
                    .unwrap();
            assert_close(&q, &wq, tol, &format!("{what}: queries"));
            assert_close(&k, &wk, tol, &format!("{what}: keys"));
            assert_close(&v, &wv, 0.0, &format!("{what}: values"));
        }
    }
    // A strided qkv (a transposed array) and the fallback's own value.
    let t = random(&[24, 2], Dtype::Float32, 50);
    let qkv = ops::reshape(&ops::transpose(&t, [1i64, 0]).unwrap(), &[1, 2, 24]).unwrap();
    let cache = random(&[1, 2, 4, 4], Dtype::Float32, 51);
    let zeros = ops::zeros(&[1, 2, 4, 4], Dtype::Float32).unwrap();
    let (q, k, v) = fast::rope_cache_write(
        &qkv,
        2,
        2,
        &cache,
        &zeros,
        1,
        4,
        false,
        Some(10.0),
        1.0,
        None,
    )
    .unwrap();
    let Some(Primitive::Fast(op)) = q.primitive() else {
        panic!("not a fast node");
    };
    let fb = op.fallback(&q.inputs()).unwrap();
    let (wq, wk, wv) =
        rope_cache_composite(&qkv, 2, 2, &cache, &zeros, 1, 4, false, Some(10.0), None).unwrap();
    assert_close(&q, &wq, 1e-6, "strided queries");
    assert_close(&k, &wk, 1e-6, "strided keys");
    assert_close(&v, &wv, 0.0, "strided values");
    for (g, w) in fb.iter().zip([&wq, &wk, &wv]) {
        assert_close(g, w, 1e-5, "the fallback");
    }
    // Gradients through the node are the composite's; float64 against finite differences.
    let f = |a: &[Array]| {
        let (q, k, v) = fast::rope_cache_write(
            &a[0],
            2,
            1,
            &a[1],
            &a[2],
            2,
            4,
            false,
            Some(10.0),
            1.0,
            None,
        )?;
        Ok(vec![q, k, v])
    };
    let composite = |a: &[Array]| {
        let (q, k, v) =
            rope_cache_composite(&a[0], 2, 1, &a[1], &a[2], 2, 4, false, Some(10.0), None)?;
        Ok(vec![q, k, v])
    };
    let primals = [
        random(&[1, 2, 16], Dtype::Float32, 60),
        random(&[1, 1, 5, 4], Dtype::Float32, 61),
        random(&[1, 1, 5, 4], Dtype::Float32, 62),
    ];
    assert_vjp_is_composite(f, composite, &primals, 63, "rope_cache_write");
    let p64: Vec<Array> = primals
        .iter()
        .map(|p| p.astype(Dtype::Float64).unwrap())
        .collect();
    check_vjp(&f, &p64, 66, Tol::default()).unwrap();
    check_jvp(&f, &p64, 67, Tol::default()).unwrap();
    for pos in [Pos::First, Pos::Last] {
        let ins = [
            vin_of(&[1, 2, 16], true, Dtype::Float64),
            vin_of(&[1, 1, 5, 4], false, Dtype::Float64),
            vin_of(&[1, 1, 5, 4], true, Dtype::Float64),
        ];
        check_vmap(&f, &ins, pos, 3, 68).unwrap();
    }
    // Rows past the capacity: an error naming the op, at the latest at the next read.
    let qkv = random(&[1, 2, 12], Dtype::Float32, 70);
    let cache = random(&[1, 1, 4, 4], Dtype::Float32, 71);
    let write = |off: i32| {
        fast::rope_cache_write(
            &qkv,
            1,
            1,
            &cache,
            &cache,
            off,
            4,
            false,
            Some(10.0),
            1.0,
            None,
        )
    };
    assert_rows_past_the_cache_fail(write, 3, "rope_cache_write");
    // Bad input.
    let bad = |qkv: &Array, keys: &Array, values: &Array, off: Array, dims: usize| {
        fast::rope_cache_write(
            qkv,
            1,
            1,
            keys,
            values,
            off,
            dims,
            false,
            Some(10.0),
            1.0,
            None,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    let scalar = || Array::scalar(0i32);
    for (e, what) in [
        (
            bad(
                &random(&[1, 2, 13], Dtype::Float32, 72),
                &cache,
                &cache,
                scalar(),
                4,
            ),
            "features",
        ),
        (
            bad(
                &qkv,
                &random(&[1, 2, 4, 4], Dtype::Float32, 73),
                &cache,
                scalar(),
                4,
            ),
            "caches",
        ),
        (
            bad(
                &qkv,
                &cache,
                &cache.astype(Dtype::Float16).unwrap(),
                scalar(),
                4,
            ),
            "dtype",
        ),
        (
            bad(
                &qkv,
                &cache,
                &cache,
                Array::from_slice(&[0i32, 1], &[2]).unwrap(),
                4,
            ),
            "offset",
        ),
        (
            bad(&qkv, &cache, &cache, Array::scalar(0.5f32), 4),
            "offset",
        ),
        (bad(&qkv, &cache, &cache, scalar(), 3), "dims"),
        (
            bad(
                &random(&[1, 5, 12], Dtype::Float32, 74),
                &cache,
                &cache,
                scalar(),
                4,
            ),
            "fit",
        ),
    ] {
        assert!(
            e.contains("rope_cache_write") && e.contains(what),
            "{what}: {e}"
        );
    }
}

/// `fast::linear_rope_cache_write` is one node for a few rows with the composite's values
/// (`x @ w.T` rounded to the dtype, then `rope_cache_write`'s composite): float32, float16,
/// bfloat16; one and several rows and sequences, halves and neighbours, `base` and `freqs`,
/// head dims 8 to 128, some features not rotated (on the GPU the product, then the rope
/// kernel); more rows than a node takes give the composite too; gradients are the
/// composite's, rows past the cache are an error, and bad shapes are errors naming the op.
#[test]
fn linear_rope_cache_write_computes_the_composite_for_a_few_rows_in_one_node() {
    let is_node = |y: &Array| {
        matches!(
            y.primitive(),
            Some(Primitive::Fast(FastOp::RopeCacheWrite {
                project: Projection::Linear,
                ..
            }))
        )
    };
    let freqs = Array::from_slice(&[1.0f32, 3.0, 7.0, 20.0], &[4]).unwrap();
    // (B, L, heads, kv heads, D, dims, K, capacity, offset, traditional, freqs)
    let cases = [
        (1, 1, 32, 4, 64, 64, 256, 40, 7, false, false),
        (1, 1, 4, 2, 128, 128, 64, 9, 8, true, false),
        (2, 3, 4, 2, 16, 16, 32, 10, 7, false, false),
        (1, 2, 2, 1, 8, 8, 24, 5, 0, false, true),
        (3, 1, 6, 3, 32, 16, 48, 9, 8, false, false),
        (1, 9, 2, 1, 16, 16, 32, 12, 3, false, false),
    ];
    for (dt, tol) in [
        (Dtype::Float32, 1e-5),
        (Dtype::Float16, 4e-3),
        (Dtype::Bfloat16, 3e-2),
    ] {
        for (i, &(b, l, h, kh, d, dims, k, cap, off, trad, with_freqs)) in cases.iter().enumerate()
        {
            let seed = 200 + 10 * i as u64;
            let n = (h + 2 * kh) * d;
            let x = random(&[b, l, k], Dtype::Float32, seed).astype(dt).unwrap();
            let w = scaled_weight(n, k, dt, seed + 1);
            let (keys, values) = random_caches([b, kh, cap, d], dt, seed + 2);
            let (base, f) = base_or(&freqs, with_freqs);
            let what = format!("linear_rope_cache_write {dt} case {i}");
            let (q, nk, nv) = fast::linear_rope_cache_write(
                &x, &w, h, kh, &keys, &values, off, dims, trad, base, 1.0, f,
            )
            .unwrap();
            assert_eq!(is_node(&q), b * l <= fast::PROJECTION_ROWS, "{what}");
            let qkv = ops::matmul(&x, &ops::transpose(&w, [1i64, 0]).unwrap()).unwrap();
            let (wq, wk, wv) =
                rope_cache_composite(&qkv, h, kh, &keys, &values, off, dims, trad, base, f)
                    .unwrap();
            assert_close(&q, &wq, tol, &format!("{what}: queries"));
            assert_close(&nk, &wk, tol, &format!("{what}: keys"));
            assert_close(&nv, &wv, tol, &format!("{what}: values"));
        }
    }
    // Gradients through the node are the composite's.
    let f = |a: &[Array]| {
        let (q, k, v) = fast::linear_rope_cache_write(
            &a[0],
            &a[1],
            2,
            1,
            &a[2],
            &a[3],
            2,
            4,
            false,
            Some(10.0),
            1.0,
            None,
        )?;
        Ok(vec![q, k, v])
    };
    let composite = |a: &[Array]| {
        let qkv = ops::matmul(&a[0], &ops::transpose(&a[1], [1i64, 0])?)?;
        let (q, k, v) =
            rope_cache_composite(&qkv, 2, 1, &a[2], &a[3], 2, 4, false, Some(10.0), None)?;
        Ok(vec![q, k, v])
    };
    let primals = [
        random(&[1, 2, 8], Dtype::Float32, 80),
        random(&[16, 8], Dtype::Float32, 81),
        random(&[1, 1, 5, 4], Dtype::Float32, 82),
        random(&[1, 1, 5, 4], Dtype::Float32, 83),
    ];
    assert_vjp_is_composite(f, composite, &primals, 84, "linear_rope_cache_write");
    // Rows past the capacity: an error naming the op, at the latest at the next read.
    let x = random(&[1, 2, 8], Dtype::Float32, 90);
    let w = random(&[12, 8], Dtype::Float32, 91);
    let cache = random(&[1, 1, 4, 4], Dtype::Float32, 92);
    let write = |off: i32| {
        let (b, r) = (Some(10.0), 1.0);
        fast::linear_rope_cache_write(&x, &w, 1, 1, &cache, &cache, off, 4, false, b, r, None)
    };
    assert_rows_past_the_cache_fail(write, 3, "linear_rope_cache_write");
    // Bad shapes.
    for (x, w, what) in [
        (
            random(&[1, 2, 8], Dtype::Float32, 93),
            random(&[12, 7], Dtype::Float32, 94),
            "(B, L, K)",
        ),
        (
            random(&[2, 8], Dtype::Float32, 95),
            random(&[12, 8], Dtype::Float32, 96),
            "(B, L, K)",
        ),
        (
            random(&[1, 2, 8], Dtype::Float32, 97),
            random(&[10, 8], Dtype::Float32, 98),
            "features",
        ),
    ] {
        let e = fast::linear_rope_cache_write(
            &x,
            &w,
            1,
            1,
            &cache,
            &cache,
            0,
            4,
            false,
            Some(10.0),
            1.0,
            None,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("linear_rope_cache_write") && e.contains(what),
            "{what}: {e}"
        );
    }
}

/// `fast::quantized_linear_rope_cache_write` is one node for a few rows with the composite's
/// values (`quantized_matmul` rounded to the dtype, then `rope_cache_write`'s composite):
/// float32, float16, bfloat16; bits 3, 4 and 8, group sizes 32, 64 and 128; one row (on the
/// GPU in bfloat16 with 4 bits the 4-bit kernel's rope form: a TinyLlama layer's heads,
/// head dim 128 with neighbours and `freqs`) and several rows and sequences, some features not
/// rotated (the product, then the rope kernel); more rows than a node takes give the
/// composite too; gradients are the composite's, rows past the cache are an error, and bad
/// shapes are errors naming the op.
#[test]
fn quantized_linear_rope_cache_write_computes_the_composite_for_a_few_rows_in_one_node() {
    let is_node = |y: &Array| {
        matches!(
            y.primitive(),
            Some(Primitive::Fast(FastOp::RopeCacheWrite {
                project: Projection::Quantized { .. },
                ..
            }))
        )
    };
    let freqs =
        Array::from_slice(&(0..64).map(|i| 1.0 + i as f32).collect::<Vec<_>>(), &[64]).unwrap();
    // (B, L, heads, kv heads, D, dims, K, capacity, offset, traditional, freqs, group, bits)
    let cases = [
        (1, 1, 32, 4, 64, 64, 256, 40, 7, false, false, 64, 4),
        (1, 1, 4, 2, 128, 128, 128, 9, 8, true, true, 32, 4),
        (1, 1, 8, 2, 64, 64, 512, 16, 15, false, false, 128, 4),
        (1, 1, 4, 1, 32, 32, 128, 6, 2, false, false, 64, 8),
        (2, 3, 4, 2, 16, 16, 64, 10, 7, false, false, 32, 4),
        (1, 1, 6, 3, 32, 16, 96, 9, 8, false, false, 32, 3),
        (1, 9, 2, 1, 16, 16, 64, 12, 3, false, false, 64, 4),
    ];
    for (dt, tol) in [
        (Dtype::Float32, 1e-4),
        (Dtype::Float16, 4e-3),
        (Dtype::Bfloat16, 3e-2),
    ] {
        for (i, &(b, l, h, kh, d, dims, k, cap, off, trad, with_freqs, gs, bits)) in
            cases.iter().enumerate()
        {
            let seed = 300 + 10 * i as u64;
            let n = (h + 2 * kh) * d;
            let x = random(&[b, l, k], Dtype::Float32, seed).astype(dt).unwrap();
            let w = scaled_weight(n, k, dt, seed + 1);
            let (wq, sc, bi) = ops::quantize(&w, gs, bits).unwrap();
            let (keys, values) = random_caches([b, kh, cap, d], dt, seed + 2);
            let f = with_freqs.then(|| ops::slice(&freqs, &[0], &[dims as i64 / 2], &[]).unwrap());
            let base = (!with_freqs).then_some(10000.0);
            let what = format!("quantized_linear_rope_cache_write {dt} case {i}");
            let (q, nk, nv) = fast::quantized_linear_rope_cache_write(
                &x,
                &wq,
                &sc,
                &bi,
                gs,
                bits,
                h,
                kh,
                &keys,
                &values,
                off,
                dims,
                trad,
                base,
                1.0,
                f.as_ref(),
            )
            .unwrap();
            assert_eq!(is_node(&q), b * l <= fast::PROJECTION_ROWS, "{what}");
            let qkv = ops::quantized_matmul(&x, &wq, &sc, &bi, true, gs, bits).unwrap();
            let (wantq, wantk, wantv) = rope_cache_composite(
                &qkv,
                h,
                kh,
                &keys,
                &values,
                off,
                dims,
                trad,
                base,
                f.as_ref(),
            )
            .unwrap();
            assert_close(&q, &wantq, tol, &format!("{what}: queries"));
            assert_close(&nk, &wantk, tol, &format!("{what}: keys"));
            assert_close(&nv, &wantv, tol, &format!("{what}: values"));
        }
    }
    // Gradients (of x and the caches) through the node are the composite's.
    let w = random(&[16, 32], Dtype::Float32, 180);
    let (wq, sc, bi) = ops::quantize(&w, 32, 4).unwrap();
    let f = |a: &[Array]| {
        let (q, k, v) = fast::quantized_linear_rope_cache_write(
            &a[0],
            &wq,
            &sc,
            &bi,
            32,
            4,
            2,
            1,
            &a[1],
            &a[2],
            2,
            4,
            false,
            Some(10.0),
            1.0,
            None,
        )?;
        Ok(vec![q, k, v])
    };
    let composite = |a: &[Array]| {
        let qkv = ops::quantized_matmul(&a[0], &wq, &sc, &bi, true, 32, 4)?;
        let (q, k, v) =
            rope_cache_composite(&qkv, 2, 1, &a[1], &a[2], 2, 4, false, Some(10.0), None)?;
        Ok(vec![q, k, v])
    };
    let primals = [
        random(&[1, 2, 32], Dtype::Float32, 181),
        random(&[1, 1, 5, 4], Dtype::Float32, 182),
        random(&[1, 1, 5, 4], Dtype::Float32, 183),
    ];
    assert_vjp_is_composite(
        f,
        composite,
        &primals,
        184,
        "quantized_linear_rope_cache_write",
    );
    // Rows past the capacity: an error naming the op, at the latest at the next read (the
    // 4-bit kernel's rope form in bfloat16 on the GPU, the product then the rope kernel in
    // float32).
    for dt in [Dtype::Bfloat16, Dtype::Float32] {
        let w = random(&[12, 64], Dtype::Float32, 190).astype(dt).unwrap();
        let (wq, sc, bi) = ops::quantize(&w, 64, 4).unwrap();
        let x = random(&[1, 1, 64], Dtype::Float32, 191).astype(dt).unwrap();
        let cache = random(&[1, 1, 4, 4], Dtype::Float32, 192)
            .astype(dt)
            .unwrap();
        let write = |off: i32| {
            let (b, r) = (Some(10.0), 1.0);
            fast::quantized_linear_rope_cache_write(
                &x, &wq, &sc, &bi, 64, 4, 1, 1, &cache, &cache, off, 4, false, b, r, None,
            )
        };
        assert_rows_past_the_cache_fail(
            write,
            4,
            &format!("quantized_linear_rope_cache_write {dt}"),
        );
    }
    // Bad shapes and weights: x not (B, L, K) of the weight's K, a weight not uint32, and
    // rows that are not (heads + 2 kv_heads) * D features.
    let quantized = |rows: usize, seed: u64| {
        ops::quantize(&random(&[rows, 64], Dtype::Float32, seed), 64, 4).unwrap()
    };
    let ((wq, sc, bi), (wq10, sc10, bi10)) = (quantized(12, 193), quantized(10, 198));
    let cache = random(&[1, 1, 4, 4], Dtype::Float32, 194);
    for (x, [w, s, b], what) in [
        (
            random(&[1, 2, 32], Dtype::Float32, 195),
            [&wq, &sc, &bi],
            "(B, L, K)",
        ),
        (
            random(&[2, 64], Dtype::Float32, 196),
            [&wq, &sc, &bi],
            "(B, L, K)",
        ),
        (
            random(&[1, 2, 64], Dtype::Float32, 197),
            [&sc, &sc, &bi],
            "uint32",
        ),
        (
            random(&[1, 1, 64], Dtype::Float32, 199),
            [&wq10, &sc10, &bi10],
            "features",
        ),
    ] {
        let (base, r) = (Some(10.0), 1.0);
        let e = fast::quantized_linear_rope_cache_write(
            &x, w, s, b, 64, 4, 1, 1, &cache, &cache, 0, 4, false, base, r, None,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("quantized_linear_rope_cache_write") && e.contains(what),
            "{what}: {e}"
        );
    }
}
