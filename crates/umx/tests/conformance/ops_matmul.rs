//! Matrix products against NumPy references (`tests/reference/matmul.py`), plus checks that
//! need sizes too big for the reference file: gemm's threaded path and the batch-parallel path.

use crate::common;

use common::{kw_f64, kw_str};
use serde_json::Value;
use umx::f16;
use umx::prelude::*;

fn matmul_op(name: &str, args: &[Array], kw: &Value) -> Result<Vec<Array>> {
    let out = match name {
        "matmul" => ops::matmul(&args[0], &args[1])?,
        "addmm" => ops::addmm(
            &args[0],
            &args[1],
            &args[2],
            kw_f64(kw, "alpha").unwrap_or(1.0),
            kw_f64(kw, "beta").unwrap_or(1.0),
        )?,
        "inner" => ops::inner(&args[0], &args[1])?,
        "outer" => ops::outer(&args[0], &args[1])?,
        "tensordot" => ops::tensordot(&args[0], &args[1], tensordot_axes(&kw["axes"]))?,
        "einsum" => {
            let operands: Vec<&Array> = args.iter().collect();
            ops::einsum(kw_str(kw, "subscripts").unwrap_or(""), &operands)?
        }
        other => panic!("unknown op {other}"),
    };
    Ok(vec![out])
}

/// `axes` as NumPy takes it: an int, or two lists.
fn tensordot_axes(v: &Value) -> ops::TensordotAxes {
    let list = |x: &Value| -> Vec<i64> {
        x.as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default()
    };
    match v {
        Value::Array(pair) => ops::TensordotAxes::Lists(
            pair.first().map(list).unwrap_or_default(),
            pair.get(1).map(list).unwrap_or_default(),
        ),
        other => ops::TensordotAxes::Count(other.as_u64().unwrap_or(2) as usize),
    }
}

#[test]
fn matrix_products_match_numpy() {
    let n = common::run_reference("matmul", &matmul_op);
    assert!(n > 200, "only {n} cases");
}

/// Deterministic values in [-1, 1) without a random module.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `a @ b` by the definition, in f64, for row-major `a (m, k)` and `b (k, n)`.
fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a[i * k + p] as f64;
            for j in 0..n {
                out[i * n + j] += x * b[p * n + j] as f64;
            }
        }
    }
    out
}

fn assert_close(got: &[f32], want: &[f64], k: usize) {
    assert_eq!(got.len(), want.len());
    let tol = 4.0 * f32::EPSILON as f64 * k as f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= tol,
            "element {i}: got {g}, expected {w}"
        );
    }
}

#[test]
fn big_products_use_threaded_gemm_and_stay_exact() {
    let (m, k, n) = (257, 300, 263);
    let (av, bv) = (values(m * k, 1), values(k * n, 2));
    let a = Array::from_slice(&av, &[m, k]).unwrap();
    let b = Array::from_slice(&bv, &[k, n]).unwrap();
    let got = a.matmul(&b).unwrap().to_vec::<f32>().unwrap();
    assert_close(&got, &naive(&av, &bv, m, k, n), k);
}

#[test]
fn many_small_products_run_in_parallel_over_the_batch() {
    let (batch, m, k, n) = (300, 12, 16, 10);
    let (av, bv) = (values(batch * m * k, 3), values(k * n, 4));
    let a = Array::from_slice(&av, &[batch, m, k]).unwrap();
    let b = Array::from_slice(&bv, &[k, n]).unwrap();
    let got = ops::matmul(&a, &b).unwrap().to_vec::<f32>().unwrap();
    for i in 0..batch {
        let want = naive(&av[i * m * k..(i + 1) * m * k], &bv, m, k, n);
        assert_close(&got[i * m * n..(i + 1) * m * n], &want, k);
    }
}

#[test]
fn matmul_of_integers_is_an_error_naming_the_op() {
    let a = Array::from_slice(&[1i32, 2, 3, 4], &[2, 2]).unwrap();
    let err = ops::matmul(&a, &a).unwrap_err().to_string();
    assert!(err.starts_with("matmul:"), "{err}");
    assert!(err.contains("int32"), "{err}");
}

#[test]
fn mismatched_inner_dims_name_both_shapes() {
    let a = Array::from_slice(&[0.0f32; 12], &[3, 4]).unwrap();
    let b = Array::from_slice(&[0.0f32; 30], &[5, 6]).unwrap();
    let err = ops::matmul(&a, &b).unwrap_err().to_string();
    assert!(err.contains("(3, 4)") && err.contains("(5, 6)"), "{err}");
}

#[test]
fn long_float16_dot_products_round_once() {
    let (m, k, n) = (3, 1500, 4);
    let (av, bv) = (values(m * k, 5), values(k * n, 6));
    let a16: Vec<f16> = av.iter().map(|&x| f16::from_f32(x)).collect();
    let b16: Vec<f16> = bv.iter().map(|&x| f16::from_f32(x)).collect();
    let (aw, bw): (Vec<f32>, Vec<f32>) = (
        a16.iter().map(|x| x.to_f32()).collect(),
        b16.iter().map(|x| x.to_f32()).collect(),
    );
    let a = Array::from_slice(&a16, &[m, k]).unwrap();
    let b = Array::from_slice(&b16, &[k, n]).unwrap();
    let got = a.matmul(&b).unwrap().to_vec::<f32>().unwrap();
    for (g, w) in got.iter().zip(naive(&aw, &bw, m, k, n)) {
        let want = f16::from_f64(w).to_f32();
        assert!(
            (g - want).abs() <= want.abs() * 1e-3 + 1e-3,
            "got {g}, expected {want}"
        );
    }
}
