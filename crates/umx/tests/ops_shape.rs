//! Shape ops against NumPy (tests/reference/shape.py), views sharing memory, and big inputs
//! that take the kernels' parallel paths.

#[path = "conformance/common/mod.rs"]
mod common;

use common::{kw_axes, kw_i64, kw_i64s, kw_str};
use serde_json::Value;
use std::sync::Arc;
use umx::memory;
use umx::ops::PadMode;
use umx::prelude::*;

fn usizes(kw: &Value, key: &str) -> Vec<usize> {
    kw_i64s(kw, key)
        .unwrap_or_else(|| panic!("missing {key}"))
        .into_iter()
        .map(|d| d as usize)
        .collect()
}

fn one(a: Result<Array>) -> Result<Vec<Array>> {
    a.map(|a| vec![a])
}

fn run_op(name: &str, args: &[Array], kw: &Value) -> Result<Vec<Array>> {
    let x = &args[0];
    let i = |key: &str| kw_i64(kw, key).unwrap_or_else(|| panic!("missing {key}"));
    let is = |key: &str| kw_i64s(kw, key).unwrap_or_else(|| panic!("missing {key}"));
    match name {
        "reshape" => one(ops::reshape(x, &is("shape"))),
        "flatten" => one(ops::flatten(x, i("start_axis"), i("end_axis"))),
        "unflatten" => one(ops::unflatten(x, i("axis"), &is("shape"))),
        "squeeze" => one(ops::squeeze(x, kw_axes(kw, "axis"))),
        "expand_dims" => one(ops::expand_dims(x, kw_axes(kw, "axis"))),
        "transpose" => one(ops::transpose(x, kw_axes(kw, "axes"))),
        "t" => one(x.t()),
        "swapaxes" => one(ops::swapaxes(x, i("axis1"), i("axis2"))),
        "moveaxis" => one(ops::moveaxis(x, i("source"), i("destination"))),
        "broadcast_to" => one(ops::broadcast_to(x, &usizes(kw, "shape"))),
        "broadcast_arrays" => ops::broadcast_arrays(args),
        "concatenate" => one(ops::concatenate(args, i("axis"))),
        "stack" => one(ops::stack(args, i("axis"))),
        "split" => match kw_i64(kw, "sections") {
            Some(k) => ops::split(x, k, i("axis")),
            None => ops::split(x, is("indices"), i("axis")),
        },
        "tile" => one(ops::tile(x, &usizes(kw, "reps"))),
        "repeat" => one(ops::repeat(x, i("repeats") as usize, kw_i64(kw, "axis"))),
        "pad" => {
            let widths: Vec<(i64, i64)> = kw["pad_width"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_i64().unwrap(), p[1].as_i64().unwrap()))
                .collect();
            let mode = match kw_str(kw, "mode") {
                Some("edge") => PadMode::Edge,
                _ => PadMode::Constant,
            };
            let value = match kw.get("value") {
                Some(Value::Bool(b)) => Array::weak_bool(*b),
                Some(Value::Number(n)) if n.is_i64() => Array::weak_int(n.as_i64().unwrap()),
                Some(Value::Number(n)) => Array::weak_float(n.as_f64().unwrap()),
                _ => Array::weak_int(0),
            };
            one(ops::pad(x, &widths, value, mode))
        }
        "roll" => one(ops::roll(x, &is("shift"), kw_axes(kw, "axis"))),
        "flip" => one(ops::flip(x, kw_axes(kw, "axis"))),
        "as_strided" => one(ops::as_strided(
            x,
            &usizes(kw, "shape"),
            &is("strides"),
            i("offset") as usize,
        )),
        "view" => one(ops::view(
            x,
            Dtype::from_name(kw_str(kw, "dtype").unwrap()).unwrap(),
        )),
        "atleast_1d" => one(ops::atleast_1d(x)),
        "atleast_2d" => one(ops::atleast_2d(x)),
        "atleast_3d" => one(ops::atleast_3d(x)),
        "contiguous" => one(ops::contiguous(x)),
        other => panic!("unknown op {other}"),
    }
}

#[test]
fn shape_ops_match_numpy() {
    let n = common::run_reference("shape", &run_op);
    assert!(n >= 500, "only {n} cases");
}

fn iota(shape: &[usize]) -> Array {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| i as f32).collect();
    Array::from_slice(&v, shape).unwrap()
}

fn same_buffer(a: &Array, b: &Array) -> bool {
    Arc::ptr_eq(&a.data().unwrap().buffer, &b.data().unwrap().buffer)
}

#[test]
fn views_share_the_input_buffer() {
    let a = iota(&[4, 6]);
    a.eval().unwrap();
    let views = [
        ops::reshape(&a, &[2, 12]).unwrap(),
        ops::transpose(&a, None).unwrap(),
        a.t().unwrap(),
        ops::broadcast_to(&a, &[3, 4, 6]).unwrap(),
        ops::expand_dims(&a, [0, 2]).unwrap(),
        ops::squeeze(&ops::expand_dims(&a, 1).unwrap(), None).unwrap(),
        ops::flip(&a, None).unwrap(),
        ops::as_strided(&a, &[3, 4], &[2, 1], 1).unwrap(),
        ops::view(&a, Dtype::Int32).unwrap(),
        ops::swapaxes(&a, 0, 1).unwrap(),
        // Reshape of a transposed view that splits an axis needs no copy either.
        ops::reshape(&a.t().unwrap(), &[2, 3, 4]).unwrap(),
    ];
    for v in &views {
        assert!(same_buffer(&a, v), "{v:?} does not share the buffer");
    }
    for p in ops::split(&a, 2, 1).unwrap() {
        assert!(same_buffer(&a, &p));
    }
    // Merging the axes of a transposed array cannot be a view.
    let merged = ops::reshape(&a.t().unwrap(), &[-1]).unwrap();
    assert!(!same_buffer(&a, &merged));
    let want: Vec<f32> = (0..6)
        .flat_map(|j| (0..4).map(move |i| (i * 6 + j) as f32))
        .collect();
    assert_eq!(merged.to_vec::<f32>().unwrap(), want);
}

/// Held by the tests that allocate much, so the memory statistics test sees only its own.
static BIG: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn transposing_an_evaluated_array_allocates_nothing() {
    let _big = BIG.lock().unwrap_or_else(|e| e.into_inner());
    let a = iota(&[1024, 1024]);
    a.eval().unwrap();
    let before = memory::active_memory();
    let t = ops::transpose(&a, None).unwrap();
    let r = ops::reshape(&a, &[-1, 256]).unwrap();
    let e = ops::expand_dims(&a, 0).unwrap();
    let b = ops::broadcast_to(&a, &[8, 1024, 1024]).unwrap();
    eval([&t, &r, &b, &e]).unwrap();
    // Other tests run at once in this process: allow small allocations, but not one array.
    assert!(memory::active_memory() < before + a.nbytes() / 2);
    assert_eq!(t.to_vec::<f32>().unwrap()[1], 1024.0);
}

#[test]
fn bool_view_normalises_bytes() {
    let a = Array::from_slice(&[0u8, 1, 2, 255], &[4]).unwrap();
    let b = ops::view(&a, Dtype::Bool).unwrap();
    assert_eq!(b.to_vec::<bool>().unwrap(), vec![false, true, true, true]);
    assert_eq!(b.to_vec::<u8>().unwrap(), vec![0, 1, 1, 1]);
    assert_eq!(
        ops::view(&b, Dtype::Uint8).unwrap().to_vec::<u8>().unwrap(),
        vec![0, 1, 1, 1]
    );
}

#[test]
fn view_of_an_offset_buffer_copies_when_misaligned() {
    // Bytes 1.. of an int8 array viewed as int16: the offset is not on an int16 boundary.
    let a = Array::from_slice(&[9i8, 1, 0, 2, 0], &[5]).unwrap();
    let tail = ops::split(&a, [1], 0).unwrap().pop().unwrap();
    let v = ops::view(&tail, Dtype::Int16).unwrap();
    assert_eq!(v.to_vec::<i16>().unwrap(), vec![1, 2]);
}

#[test]
fn big_copies_match_small_loops() {
    // Past PARALLEL_THRESHOLD (32768 elements): the kernels split the work over threads.
    let _big = BIG.lock().unwrap_or_else(|e| e.into_inner());
    let (m, n) = (300usize, 257usize);
    let a = iota(&[m, n]);
    let at = ops::transpose(&iota(&[n, m]), None).unwrap();
    let get = |v: &[f32], i: usize, j: usize, cols: usize| v[i * cols + j];

    let c = ops::concatenate(&[a.clone(), at.clone()], 1).unwrap();
    let cv = c.to_vec::<f32>().unwrap();
    for i in (0..m).step_by(7) {
        for j in (0..2 * n).step_by(5) {
            let want = if j < n {
                (i * n + j) as f32
            } else {
                ((j - n) * m + i) as f32
            };
            assert_eq!(get(&cv, i, j, 2 * n), want);
        }
    }

    let c0 = ops::concatenate(&[a.clone(), a.clone()], 0).unwrap();
    assert_eq!(c0.to_vec::<f32>().unwrap()[m * n + 5], 5.0);

    let p = ops::pad(&at, &[(1, 2), (3, 4)], 0, PadMode::Edge).unwrap();
    assert_eq!(p.shape(), &[m + 3, n + 7]);
    let pv = p.to_vec::<f32>().unwrap();
    for i in (0..m + 3).step_by(11) {
        for j in (0..n + 7).step_by(3) {
            let (si, sj) = (i.clamp(1, m) - 1, j.clamp(3, n + 2) - 3);
            assert_eq!(get(&pv, i, j, n + 7), (sj * m + si) as f32);
        }
    }

    let pc = ops::pad(&a, &[(2, 2)], -1.0, PadMode::Constant).unwrap();
    let pcv = pc.to_vec::<f32>().unwrap();
    assert_eq!(get(&pcv, 0, 0, n + 4), -1.0);
    assert_eq!(get(&pcv, 2, 2, n + 4), 0.0);
    assert_eq!(get(&pcv, m + 1, n + 1, n + 4), ((m - 1) * n + n - 1) as f32);

    let t = ops::tile(&at, &[2, 1]).unwrap();
    let tv = t.to_vec::<f32>().unwrap();
    assert_eq!(get(&tv, m + 3, 4, n), (4 * m + 3) as f32);

    let flat = ops::reshape(&at, &[-1]).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(flat[n + 1], (m + 1) as f32);
}

#[test]
fn transposed_copies_match_index_arithmetic() {
    // Sizes that are not multiples of the copy's 32x32 tiles, with a batch axis, both with and
    // without threads; and a flipped (negative stride) transpose.
    for (p, m, n) in [(3usize, 45usize, 70usize), (2, 200, 130)] {
        let a = iota(&[p, m, n]);
        let t = ops::transpose(&a, [0, 2, 1]).unwrap();
        let v = ops::contiguous(&t).unwrap().to_vec::<f32>().unwrap();
        for k in 0..p {
            for j in 0..n {
                for i in (0..m).step_by(3) {
                    assert_eq!(v[(k * n + j) * m + i], ((k * m + i) * n + j) as f32);
                }
            }
        }
        let f = ops::flip(&ops::transpose(&a, [0, 2, 1]).unwrap(), 1).unwrap();
        let v = ops::reshape(&f, &[-1]).unwrap().to_vec::<f32>().unwrap();
        for k in 0..p {
            for j in (0..n).step_by(7) {
                for i in 0..m {
                    assert_eq!(
                        v[(k * n + j) * m + i],
                        ((k * m + i) * n + (n - 1 - j)) as f32
                    );
                }
            }
        }
    }
}

#[test]
fn methods_mirror_the_functions() {
    let a = iota(&[2, 3, 4]);
    assert_eq!(a.reshape(&[6, -1]).unwrap().shape(), &[6, 4]);
    assert_eq!(a.flatten(0, 1).unwrap().shape(), &[6, 4]);
    assert_eq!(a.transpose([2, 0, 1]).unwrap().shape(), &[4, 2, 3]);
    assert_eq!(a.swapaxes(0, 2).unwrap().shape(), &[4, 3, 2]);
    assert_eq!(a.moveaxis(0, 2).unwrap().shape(), &[3, 4, 2]);
    assert_eq!(
        a.expand_dims(1).unwrap().squeeze(1).unwrap().shape(),
        &[2, 3, 4]
    );
    assert_eq!(a.split(2, 0).unwrap().len(), 2);
    assert_eq!(
        a.broadcast_to(&[5, 2, 3, 4]).unwrap().shape(),
        &[5, 2, 3, 4]
    );
}

#[test]
fn errors_name_the_op() {
    let a = iota(&[2, 3]);
    let e = ops::reshape(&a, &[4]).unwrap_err().to_string();
    assert!(e.starts_with("reshape:") && e.contains("(2, 3)"), "{e}");
    let e = ops::concatenate(&[a.clone(), iota(&[3, 3])], 1)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("concatenate:") && e.contains("(3, 3)"), "{e}");
    let e = ops::broadcast_to(&a, &[3, 3]).unwrap_err().to_string();
    assert!(e.starts_with("broadcast_to:"), "{e}");
    let e = ops::pad(&a, &[(1, 1), (0, -2)], 0, PadMode::Constant)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("pad:"), "{e}");
    assert!(
        ops::concatenate(&[], 0)
            .unwrap_err()
            .to_string()
            .starts_with("concatenate:")
    );
    assert!(
        ops::stack(&[], 0)
            .unwrap_err()
            .to_string()
            .starts_with("stack:")
    );
}
