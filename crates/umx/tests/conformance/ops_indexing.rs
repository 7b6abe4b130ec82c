//! The indexing family against NumPy references (tests/reference/indexing.py), plus plain tests
//! of views, index errors and the `x[...]`-style API.

// `s![1..-1]` and `s![3..0;-1]` are Python-style slices, not empty Rust ranges.
#![allow(clippy::reversed_empty_ranges)]

use crate::common;

use common::{kw_i64, kw_i64s};
use serde_json::Value;
use umx::prelude::*;
use umx::s;

fn kw_list(kw: &Value, key: &str) -> Vec<i64> {
    kw_i64s(kw, key).unwrap_or_default()
}

/// The index list of a `getitem`/`at_*` case: ints, slices, "new", "...", and arrays (by input).
fn parse_index(kw: &Value, arrays: &[Array]) -> Vec<ops::Index> {
    let list = kw["index"].as_array().expect("index list");
    list.iter()
        .map(|e| match e {
            Value::String(s) if s == "new" => ops::Index::NewAxis,
            Value::String(s) if s == "..." => ops::Index::Ellipsis,
            Value::Object(o) if o.contains_key("i") => ops::Index::Int(o["i"].as_i64().unwrap()),
            Value::Object(o) if o.contains_key("s") => {
                let s = o["s"].as_array().unwrap();
                ops::Index::slice(s[0].as_i64(), s[1].as_i64(), s[2].as_i64())
            }
            Value::Object(o) => {
                ops::Index::Array(arrays[o["a"].as_u64().unwrap() as usize].clone())
            }
            other => panic!("bad index entry {other}"),
        })
        .collect()
}

fn run(name: &str, args: &[Array], kw: &Value) -> Result<Vec<Array>> {
    let k = kw_i64(kw, "k").unwrap_or(0);
    if name == "getitem" {
        return Ok(vec![args[0].index(parse_index(kw, &args[1..]))?]);
    }
    if let Some(mode) = name.strip_prefix("at_") {
        let n = args.len();
        let at = args[0].at(parse_index(kw, &args[1..n - 1]));
        let v = &args[n - 1];
        let out = match mode {
            "set" => at.set(v)?,
            "add" => at.add(v)?,
            "subtract" => at.subtract(v)?,
            "multiply" => at.multiply(v)?,
            "divide" => at.divide(v)?,
            "maximum" => at.maximum(v)?,
            "minimum" => at.minimum(v)?,
            other => panic!("unknown at mode {other}"),
        };
        return Ok(vec![out]);
    }
    let out = match name {
        "slice" => ops::slice(
            &args[0],
            &kw_list(kw, "start"),
            &kw_list(kw, "stop"),
            &kw_list(kw, "steps"),
        )?,
        "slice_update" => ops::slice_update(
            &args[0],
            &args[1],
            &kw_list(kw, "start"),
            &kw_list(kw, "stop"),
            &kw_list(kw, "steps"),
        )?,
        "take" => ops::take(&args[0], &args[1], kw_i64(kw, "axis"))?,
        "take_along_axis" => {
            ops::take_along_axis(&args[0], &args[1], kw_i64(kw, "axis").unwrap_or(0))?
        }
        "put_along_axis" => ops::put_along_axis(
            &args[0],
            &args[1],
            &args[2],
            kw_i64(kw, "axis").unwrap_or(0),
        )?,
        "scatter_add_axis" => ops::scatter_add_axis(
            &args[0],
            &args[1],
            &args[2],
            kw_i64(kw, "axis").unwrap_or(0),
        )?,
        "gather" => {
            let sizes: Vec<usize> = kw_list(kw, "slice_sizes")
                .iter()
                .map(|&s| s as usize)
                .collect();
            ops::gather(&args[0], &args[1..], &kw_list(kw, "axes"), &sizes)?
        }
        "scatter" | "scatter_add" | "scatter_prod" | "scatter_max" | "scatter_min" => {
            let n = args.len();
            let (a, idx, upd) = (&args[0], &args[1..n - 1], &args[n - 1]);
            let axes = kw_list(kw, "axes");
            match name {
                "scatter" => ops::scatter(a, idx, upd, &axes)?,
                "scatter_add" => ops::scatter_add(a, idx, upd, &axes)?,
                "scatter_prod" => ops::scatter_prod(a, idx, upd, &axes)?,
                "scatter_max" => ops::scatter_max(a, idx, upd, &axes)?,
                _ => ops::scatter_min(a, idx, upd, &axes)?,
            }
        }
        "diag" => ops::diag(&args[0], k)?,
        "diagonal" => ops::diagonal(
            &args[0],
            kw_i64(kw, "offset").unwrap_or(0),
            kw_i64(kw, "axis1").unwrap_or(0),
            kw_i64(kw, "axis2").unwrap_or(1),
        )?,
        "tril" => ops::tril(&args[0], k)?,
        "triu" => ops::triu(&args[0], k)?,
        other => panic!("unknown op {other}"),
    };
    Ok(vec![out])
}

#[test]
fn indexing_matches_numpy() {
    let n = common::run_reference("indexing", &run);
    assert!(n > 300, "only {n} cases");
}

#[test]
fn slice_is_a_view_sharing_the_buffer() {
    let a = Array::from_slice(&[0i32, 1, 2, 3, 4, 5], &[2, 3]).unwrap();
    let s = ops::slice(&a, &[0, 2], &[2, -4], &[1, -2]).unwrap();
    assert_eq!(s.shape(), &[2, 2]);
    assert_eq!(s.to_vec::<i32>().unwrap(), vec![2, 0, 5, 3]);
    let (da, ds) = (a.data().unwrap(), s.data().unwrap());
    assert!(std::sync::Arc::ptr_eq(&da.buffer, &ds.buffer));
    assert_eq!(ds.strides, vec![3, -2]);
    assert_eq!(ds.offset, 2);
}

#[test]
fn slice_update_leaves_its_input_unchanged() {
    let a = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let b = ops::slice_update(&a, &Array::scalar(0.0f32), &[1], &[3], &[]).unwrap();
    assert_eq!(b.to_vec::<f32>().unwrap(), vec![1.0, 0.0, 0.0]);
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0]);
}

/// Index values known only at eval are checked by the kernel. On the CPU the eval fails; on
/// the GPU, indices made on the device are checked there and the error surfaces at the next
/// read (without a stall after every gather), so the test reads after the eval.
#[test]
fn out_of_range_indices_fail_at_eval_or_the_next_read_when_not_known_before() {
    let read = |x: &Array| x.eval().and_then(|()| x.to_vec::<f32>().map(drop));
    let a = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let base = Array::from_slice(&[5i32, 0], &[2]).unwrap();
    let lazy = ops::contiguous(&base).unwrap(); // not evaluated: checked by the kernel
    let t = ops::take(&a, &lazy, None).unwrap();
    let e = read(&t).unwrap_err().to_string();
    assert!(e.starts_with("take: index 5 is out of range"), "{e}");
    let lazy = ops::contiguous(&base).unwrap();
    let s = ops::scatter_add(
        &a,
        &[lazy],
        &Array::from_slice(&[1.0f32, 1.0], &[2, 1]).unwrap(),
        &[0],
    )
    .unwrap();
    let e = read(&s).unwrap_err().to_string();
    assert!(e.starts_with("scatter_add: index 5 is out of range"), "{e}");
    // The error is reported once; the arrays made after it read normally.
    let ok = ops::take(&a, &Array::from_slice(&[2i32, -3], &[2]).unwrap(), None).unwrap();
    assert_eq!(ok.to_vec::<f32>().unwrap(), vec![3.0, 1.0]);
}

#[test]
fn take_of_a_big_array_runs_in_parallel_and_matches() {
    let n = 300_000usize;
    let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let a = Array::from_slice(&a, &[n / 3, 3]).unwrap();
    let idx: Vec<i32> = (0..n as i32 / 3).rev().collect();
    let idx = Array::from_slice(&idx, &[n / 3]).unwrap();
    let t = ops::take(&a, &idx, Some(0))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(&t[..3], &[(n - 3) as f32, (n - 2) as f32, (n - 1) as f32]);
    assert_eq!(&t[n - 3..], &[0.0, 1.0, 2.0]);
}

#[test]
fn the_s_macro_reads_like_numpy() {
    let x = Array::from_slice(&(0..24).collect::<Vec<i32>>(), &[2, 3, 4]).unwrap();
    assert_eq!(x.index(s![1, 2, 3]).unwrap().item::<i32>().unwrap(), 23);
    assert_eq!(
        x.index(s![-1, ..;-1, 0]).unwrap().to_vec::<i32>().unwrap(),
        vec![20, 16, 12]
    );
    assert_eq!(
        x.index(s![.., 1..-1, 1..;2])
            .unwrap()
            .to_vec::<i32>()
            .unwrap(),
        vec![5, 7, 17, 19]
    );
    assert_eq!(x.index(s![NewAxis, ..., 0]).unwrap().shape(), &[1, 2, 3]);
    assert_eq!(
        x.index(s![Ellipsis, 0, NewAxis]).unwrap().shape(),
        &[2, 3, 1]
    );
    assert_eq!(x.index(s![0, 3..0;-1]).unwrap().shape(), &[2, 4]);
    let i = Array::from_slice(&[2i32, 0], &[2]).unwrap();
    assert_eq!(
        x.index(s![1, &i, -1]).unwrap().to_vec::<i32>().unwrap(),
        vec![23, 15]
    );
    assert_eq!(x.get(&[0, 1, 2]).unwrap().item::<i32>().unwrap(), 6);
    let e = x.get(&[0, 3]).unwrap_err().to_string();
    assert_eq!(e, "index: index 3 is out of range for axis 1 of size 3");
}

#[test]
fn at_updates_return_new_arrays() {
    let y = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    let z = y.at(s![0, 0]).set(0.0).unwrap();
    assert_eq!(z.to_vec::<f32>().unwrap(), vec![0.0, 2.0, 3.0, 4.0]);
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    let i = Array::from_slice(&[1i32, 1, 1], &[3]).unwrap();
    let w = y.at(s![&i]).add(1.0).unwrap();
    assert_eq!(w.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 6.0, 7.0]);
    let h = Array::from_slice(&[1.0f32, 2.0], &[2])
        .unwrap()
        .astype(Dtype::Float16)
        .unwrap();
    let h2 = h.at(s![..]).multiply(3.0).unwrap();
    assert_eq!(h2.dtype(), Dtype::Float16);
    assert_eq!(h2.to_vec::<f32>().unwrap(), vec![3.0, 6.0]);
}
