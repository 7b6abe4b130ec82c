//! The sort family against NumPy (tests/reference/sort.py), plus properties of large inputs.

use crate::common;

use serde_json::Value;
use std::cmp::Ordering;
use umx::prelude::*;

/// `axis` as the reference cases give it: null = the flattened array.
fn axis(kw: &Value) -> Option<i64> {
    kw.get("axis").and_then(Value::as_i64)
}

/// NaN-last order on f64 (the sort family's order for real values).
fn cmp(a: &f64, b: &f64) -> Ordering {
    a.partial_cmp(b)
        .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
}

/// The lanes of a row-major `shape` along `axis`: the flat index of each lane's elements.
fn lanes(shape: &[usize], axis: usize) -> Vec<Vec<usize>> {
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let mut out = Vec::new();
    for o in 0..outer {
        for i in 0..inner {
            out.push((0..n).map(|j| (o * n + j) * inner + i).collect());
        }
    }
    out
}

/// A partition result made canonical: each side of position `kth` sorted, in every lane.
/// For `argpartition`, `gather` holds the input's values: the indices are checked to be a
/// permutation of each lane and replaced by the values they point to.
fn canonical(result: &Array, kth: i64, axis: Option<i64>, gather: Option<&Array>) -> Result<Array> {
    let shape = result.shape().to_vec();
    let ax = match axis {
        None => 0,
        Some(a) if a < 0 => (a + shape.len() as i64) as usize,
        Some(a) => a as usize,
    };
    let n = shape[ax];
    let kth = if kth < 0 { kth + n as i64 } else { kth } as usize;
    let mut vals = result.to_vec::<f64>()?;
    let dtype = match gather {
        Some(src) => {
            let src_vals = src.to_vec::<f64>()?;
            let src_lanes = lanes(if axis.is_none() { &shape } else { src.shape() }, ax);
            for (lane, src_lane) in lanes(&shape, ax).iter().zip(&src_lanes) {
                let mut seen = vec![false; n];
                for &i in lane {
                    let j = vals[i] as usize;
                    assert!(j < n && !seen[j], "argpartition: {j} is not a fresh index");
                    seen[j] = true;
                    vals[i] = src_vals[src_lane[j]];
                }
            }
            src.dtype()
        }
        None => result.dtype(),
    };
    for lane in lanes(&shape, ax) {
        let mut v: Vec<f64> = lane.iter().map(|&i| vals[i]).collect();
        v[..kth].sort_by(cmp);
        v[kth + 1..].sort_by(cmp);
        for (&i, x) in lane.iter().zip(v) {
            vals[i] = x;
        }
    }
    Array::from_f64s(&vals, &shape, dtype)
}

#[test]
fn sort_family_matches_numpy() {
    let n = common::run_reference("sort", &|name, args, kw| {
        let a = &args[0];
        let k = || common::kw_i64(kw, "kth").unwrap_or(0);
        Ok(vec![match name {
            "sort" => ops::sort(a, axis(kw))?,
            "argsort" => ops::argsort(a, axis(kw))?,
            "partition" => canonical(&ops::partition(a, k(), axis(kw))?, k(), axis(kw), None)?,
            "argpartition" => canonical(
                &ops::argpartition(a, k(), axis(kw))?,
                k(),
                axis(kw),
                Some(a),
            )?,
            "topk" => ops::topk(a, common::kw_i64(kw, "k").unwrap_or(0) as usize, axis(kw))?,
            "searchsorted" => {
                ops::searchsorted(a, &args[1], common::kw_str(kw, "side").unwrap_or("left"))?
            }
            "median" => ops::median(
                a,
                common::kw_axes(kw, "axis"),
                common::kw_bool(kw, "keepdims").unwrap_or(false),
            )?,
            other => panic!("unknown op {other}"),
        }])
    });
    assert!(n > 200);
}

/// Checks that `sorted` is `x` sorted along the last axis of a 2-D array and that `idx` sorts
/// it stably.
fn check_sorted_rows(x: &[f64], rows: usize, cols: usize, sorted: &[f64], idx: &[u32]) {
    for r in 0..rows {
        let lane = &x[r * cols..(r + 1) * cols];
        let mut want: Vec<(f64, usize)> = lane.iter().cloned().zip(0..).collect();
        want.sort_by(|a, b| cmp(&a.0, &b.0));
        for (j, (v, i)) in want.iter().enumerate() {
            assert_eq!(sorted[r * cols + j], *v, "row {r} position {j}");
            assert_eq!(idx[r * cols + j] as usize, *i, "row {r} position {j}");
        }
    }
}

#[test]
fn long_lanes_sort_on_many_threads() {
    let (rows, cols) = (6, 20_000);
    let x: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.5 - 100.0)
        .collect();
    let a = Array::from_slice(&x, &[rows, cols]).unwrap();
    let s = a.sort(-1).unwrap().to_vec::<f64>().unwrap();
    let i = a.argsort(-1).unwrap().to_vec::<u32>().unwrap();
    let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    check_sorted_rows(&xf, rows, cols, &s, &i);
}

#[test]
fn many_short_lanes_along_the_first_axis() {
    // Sorting along axis 0 of (n, m) is sorting the rows of its transpose.
    let (n, m) = (300, 400);
    let x: Vec<i32> = (0..n * m).map(|i| ((i * 31337) % 97) as i32 - 48).collect();
    let a = Array::from_slice(&x, &[n, m]).unwrap();
    let s = a.sort(0).unwrap().to_vec::<f64>().unwrap();
    let i = a.argsort(0).unwrap().to_vec::<u32>().unwrap();
    let t = |v: &[f64]| -> Vec<f64> { (0..m * n).map(|k| v[(k % n) * m + k / n]).collect() };
    let tu = |v: &[u32]| -> Vec<u32> { (0..m * n).map(|k| v[(k % n) * m + k / n]).collect() };
    let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    check_sorted_rows(&t(&xf), m, n, &t(&s), &tu(&i));
}

#[test]
fn partition_and_topk_of_long_lanes() {
    let n = 50_000;
    let x: Vec<f32> = (0..2 * n)
        .map(|i| ((i * 104_729) % 65_521) as f32)
        .collect();
    let a = Array::from_slice(&x, &[2, n]).unwrap();
    let mut want = x[..n].to_vec();
    want.sort_by(f32::total_cmp);
    let p = ops::partition(&a, 1234, -1)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(p[1234], want[1234]);
    assert!(p[..1234].iter().all(|&v| v <= want[1234]));
    assert!(p[1235..n].iter().all(|&v| v >= want[1234]));
    let ip = ops::argpartition(&a, -5, -1)
        .unwrap()
        .to_vec::<u32>()
        .unwrap();
    assert_eq!(x[ip[n - 5] as usize], want[n - 5]);
    let top = a.topk(100, -1).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(&top[..100], &want[n - 100..]);
}

#[test]
fn bad_axes_and_sizes_name_the_op() {
    let a = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let err = |r: Result<Array>| r.unwrap_err().to_string();
    assert!(err(ops::sort(&a, 1)).starts_with("sort:"));
    assert!(err(ops::argsort(&a, -2)).starts_with("argsort:"));
    assert!(err(ops::partition(&a, 3, 0)).starts_with("partition:"));
    assert!(err(ops::argpartition(&a, -4, 0)).starts_with("argpartition:"));
    assert!(err(ops::topk(&a, 4, 0)).starts_with("topk:"));
}
