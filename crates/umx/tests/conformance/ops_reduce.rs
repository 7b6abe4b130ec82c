//! Reductions, arg-reductions and scans against NumPy (tests/reference/reduce.py), plus the
//! sizes too large for the reference file: long sums, parallel paths, every layout kernel.

use crate::common;

use common::{kw_axes, kw_bool, kw_i64};
use serde_json::Value;
use umx::prelude::*;
use umx::{bf16, f16};

fn axis_opt(kw: &Value) -> Option<i64> {
    kw_i64(kw, "axis")
}

fn run(name: &str, args: &[Array], kw: &Value) -> Result<Vec<Array>> {
    let a = &args[0];
    let keepdims = kw_bool(kw, "keepdims").unwrap_or(false);
    let axes = || kw_axes(kw, "axis");
    let out = match name {
        "sum" => ops::sum(a, axes(), keepdims)?,
        "prod" => ops::prod(a, axes(), keepdims)?,
        "max" => ops::max(a, axes(), keepdims)?,
        "min" => ops::min(a, axes(), keepdims)?,
        "mean" => ops::mean(a, axes(), keepdims)?,
        "all" => ops::all(a, axes(), keepdims)?,
        "any" => ops::any(a, axes(), keepdims)?,
        "var" => ops::var(a, axes(), keepdims, kw_i64(kw, "ddof").unwrap_or(0))?,
        "std" => ops::std(a, axes(), keepdims, kw_i64(kw, "ddof").unwrap_or(0))?,
        "logsumexp" => ops::logsumexp(a, axes(), keepdims)?,
        "softmax" => ops::softmax(a, axes(), kw_bool(kw, "precise").unwrap_or(false))?,
        "count_nonzero" => ops::count_nonzero(a, axes(), keepdims)?,
        "argmax" => ops::argmax(a, axis_opt(kw), keepdims)?,
        "argmin" => ops::argmin(a, axis_opt(kw), keepdims)?,
        "cumsum" | "cumprod" | "cummax" | "cummin" | "logcumsumexp" => {
            let reverse = kw_bool(kw, "reverse").unwrap_or(false);
            let inclusive = kw_bool(kw, "inclusive").unwrap_or(true);
            let f = match name {
                "cumsum" => ops::cumsum,
                "cumprod" => ops::cumprod,
                "cummax" => ops::cummax,
                "cummin" => ops::cummin,
                _ => ops::logcumsumexp,
            };
            f(a, axis_opt(kw), reverse, inclusive)?
        }
        other => panic!("unknown op {other}"),
    };
    Ok(vec![out])
}

#[test]
fn reduce_family_matches_numpy() {
    let n = common::run_reference("reduce", &run);
    assert!(n > 500, "{n} cases");
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
        .collect()
}

fn exact_sum(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum()
}

#[test]
fn long_float32_sum_is_accurate() {
    let n = (1 << 22) + 13;
    let v = ramp(n);
    let a = Array::from_slice(&v, &[n]).unwrap();
    let got = a.sum(None).unwrap().item::<f32>().unwrap() as f64;
    let want = exact_sum(&v);
    assert!(
        (got - want).abs() <= 1e-6 * v.iter().map(|x| x.abs() as f64).sum::<f64>(),
        "{got} vs {want}"
    );
    let ones = Array::from_slice(&vec![1.0f32; 1 << 25], &[1 << 25]).unwrap();
    assert_eq!(
        ones.sum(None).unwrap().item::<f32>().unwrap(),
        (1 << 25) as f32
    );
}

#[test]
fn large_rows_columns_and_strided_reductions_agree_with_a_loop() {
    let (r, k) = (1500, 70);
    let v = ramp(r * k);
    let a = Array::from_slice(&v, &[r, k]).unwrap();
    let cols: Vec<f64> = (0..k)
        .map(|j| (0..r).map(|i| v[i * k + j] as f64).sum())
        .collect();
    let rows: Vec<f64> = (0..r)
        .map(|i| (0..k).map(|j| v[i * k + j] as f64).sum())
        .collect();
    let got_cols = a.sum(0).unwrap().to_vec::<f32>().unwrap();
    let got_rows = a.sum(1).unwrap().to_vec::<f32>().unwrap();
    for (g, w) in got_cols.iter().zip(&cols) {
        assert!((*g as f64 - w).abs() < 1e-2, "{g} vs {w}");
    }
    for (g, w) in got_rows.iter().zip(&rows) {
        assert!((*g as f64 - w).abs() < 1e-3, "{g} vs {w}");
    }
    // Outer x reduced x inner, big enough for the parallel paths.
    let (o, m, i) = (3, 4000, 20);
    let v = ramp(o * m * i);
    let a = Array::from_slice(&v, &[o, m, i]).unwrap();
    let got = ops::max(&a, 1, false).unwrap().to_vec::<f32>().unwrap();
    for p in 0..o {
        for q in 0..i {
            let want = (0..m)
                .map(|j| v[(p * m + j) * i + q])
                .fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(got[p * i + q], want);
        }
    }
    let got = ops::argmin(&a, Some(1), false)
        .unwrap()
        .to_vec::<u32>()
        .unwrap();
    for p in 0..o {
        for q in 0..i {
            let col: Vec<f32> = (0..m).map(|j| v[(p * m + j) * i + q]).collect();
            let mut best = 0;
            for (j, &x) in col.iter().enumerate() {
                if x < col[best] {
                    best = j;
                }
            }
            assert_eq!(got[p * i + q], best as u32);
        }
    }
    // Columns of one wide outer slice (parallel over column ranges) and of a tall thin one
    // (parallel over row blocks).
    for (rr, kk) in [(40, 5000), (50000, 3)] {
        let v = ramp(rr * kk);
        let a = Array::from_slice(&v, &[rr, kk]).unwrap();
        let got = ops::sum(&a, 0, false).unwrap().to_vec::<f32>().unwrap();
        for j in 0..kk {
            let want: f64 = (0..rr).map(|q| v[q * kk + j] as f64).sum();
            assert!((got[j] as f64 - want).abs() < 1e-2, "{} vs {want}", got[j]);
        }
    }
}

#[test]
fn float16_sums_accumulate_in_float32() {
    // 4096 ones in float16 summed one by one would stop at 2048.
    let v = vec![f16::from_f32(1.0); 4096];
    let a = Array::from_slice(&v, &[4096]).unwrap();
    assert_eq!(a.sum(None).unwrap().item::<f32>().unwrap(), 4096.0);
    let b = vec![bf16::from_f32(1.0); 1000];
    let b = Array::from_slice(&b, &[1000]).unwrap();
    assert_eq!(b.mean(None).unwrap().item::<f32>().unwrap(), 1.0);
    assert_eq!(b.mean(None).unwrap().dtype(), Dtype::Bfloat16);
}

#[test]
fn sum_over_empty_axis_is_zero_and_mean_is_nan() {
    let a = Array::from_slice::<f32>(&[], &[0, 3]).unwrap();
    assert_eq!(a.sum(0).unwrap().to_vec::<f32>().unwrap(), vec![0.0; 3]);
    assert_eq!(a.prod(None).unwrap().item::<f32>().unwrap(), 1.0);
    assert!(a.mean(None).unwrap().item::<f32>().unwrap().is_nan());
    assert!(a.all(None).unwrap().item::<bool>().unwrap());
    assert!(!a.any(None).unwrap().item::<bool>().unwrap());
}

#[test]
fn bad_reductions_name_the_op() {
    let a = Array::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
    let e = ops::sum(&a, 1, false).unwrap_err().to_string();
    assert!(e.starts_with("sum: axis 1 is out of range"), "{e}");
    let e = ops::max(&a, [0, 0], false).unwrap_err().to_string();
    assert!(e.starts_with("max: axis 0 is repeated"), "{e}");
    let empty = Array::from_slice::<f32>(&[], &[0]).unwrap();
    let e = empty.max(None).unwrap_err().to_string();
    assert!(e.starts_with("max: cannot reduce an empty axis"), "{e}");
    let e = empty.argmax(None).unwrap_err().to_string();
    assert!(e.starts_with("argmax: cannot reduce an empty array"), "{e}");
}

#[test]
fn reductions_keep_the_dtype_rules_of_mlx() {
    let u = Array::from_slice(&[200u8, 100], &[2]).unwrap();
    let s = u.sum(None).unwrap();
    assert_eq!(s.dtype(), Dtype::Uint32);
    assert_eq!(s.item::<u32>().unwrap(), 300);
    let i = Array::from_slice(&[1i64 << 40, 1], &[2]).unwrap();
    assert_eq!(i.sum(None).unwrap().dtype(), Dtype::Int64);
    assert_eq!(
        i.sum(None).unwrap().item::<i64>().unwrap(),
        (1i64 << 40) + 1
    );
    let b = Array::from_slice(&[true, true, false], &[3]).unwrap();
    assert_eq!(b.sum(None).unwrap().dtype(), Dtype::Int32);
    assert_eq!(b.mean(None).unwrap().dtype(), Dtype::Float32);
    assert_eq!(b.max(None).unwrap().dtype(), Dtype::Bool);
    assert_eq!(b.argmax(None).unwrap().dtype(), Dtype::Uint32);
}
