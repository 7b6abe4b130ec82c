//! Creation ops against MLX's values (tests/reference/creation.py), the `array!` literal, and
//! bad input.

use crate::common;

use common::{kw_bool, kw_i64, kw_i64s, kw_str};
use serde_json::Value;
use umx::prelude::*;

fn kw_dtype(kw: &Value) -> Option<Dtype> {
    kw_str(kw, "dtype").map(|d| Dtype::from_name(d).expect("known dtype"))
}

fn kw_num(kw: &Value, key: &str) -> f64 {
    match kw.get(key) {
        Some(Value::String(s)) if s == "inf" => f64::INFINITY,
        Some(Value::String(s)) if s == "-inf" => f64::NEG_INFINITY,
        Some(v) => v.as_f64().expect("a number"),
        None => panic!("missing {key}"),
    }
}

fn kw_shape(kw: &Value) -> Vec<usize> {
    kw_i64s(kw, "shape")
        .expect("shape")
        .into_iter()
        .map(|d| d as usize)
        .collect()
}

/// The scalar `value` kwarg as the Rust literal MLX's Python scalar stands for.
fn kw_value(kw: &Value) -> Array {
    match kw.get("value") {
        Some(Value::Bool(b)) => b.into_array(),
        Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap().into_array(),
        Some(Value::Number(n)) => n.as_f64().unwrap().into_array(),
        other => panic!("bad value {other:?}"),
    }
}

fn run(name: &str, args: &[Array], kw: &Value) -> Result<Vec<Array>> {
    let dtype = kw_dtype(kw);
    let out = match name {
        "arange" => {
            let (start, stop, step) = (kw_num(kw, "start"), kw_num(kw, "stop"), kw_num(kw, "step"));
            if kw_bool(kw, "ints").unwrap_or(false) {
                ops::arange(start as i64, stop as i64, step as i64, dtype)?
            } else {
                ops::arange(start, stop, step, dtype)?
            }
        }
        "linspace" => ops::linspace(
            kw_num(kw, "start"),
            kw_num(kw, "stop"),
            kw_i64(kw, "num").unwrap() as usize,
            dtype,
        )?,
        "zeros" => ops::zeros(&kw_shape(kw), dtype)?,
        "ones" => ops::ones(&kw_shape(kw), dtype)?,
        "full" => match args.first() {
            Some(v) => ops::full(&kw_shape(kw), v, dtype)?,
            None => ops::full(&kw_shape(kw), kw_value(kw), dtype)?,
        },
        "zeros_like" => ops::zeros_like(&args[0])?,
        "ones_like" => ops::ones_like(&args[0])?,
        "full_like" => ops::full_like(&args[0], kw_value(kw), dtype)?,
        "eye" => ops::eye(
            kw_i64(kw, "n").unwrap() as usize,
            kw_i64(kw, "m").map(|m| m as usize),
            kw_i64(kw, "k").unwrap_or(0),
            dtype,
        )?,
        "identity" => ops::identity(kw_i64(kw, "n").unwrap() as usize, dtype)?,
        "tri" => ops::tri(
            kw_i64(kw, "n").unwrap() as usize,
            kw_i64(kw, "m").map(|m| m as usize),
            kw_i64(kw, "k").unwrap_or(0),
            dtype,
        )?,
        "meshgrid" => {
            let indexing = kw_str(kw, "indexing").unwrap_or("xy");
            return ops::meshgrid(args, kw_bool(kw, "sparse").unwrap_or(false), indexing);
        }
        other => panic!("unknown op {other}"),
    };
    Ok(vec![out])
}

#[test]
fn creation_matches_mlx() {
    let n = common::run_reference("creation", &run);
    assert!(n > 400);
}

#[test]
fn array_literal_infers_shape_and_dtype() {
    let a = umx::array![[1.0, 2.0], [3.0, 4.0]];
    assert_eq!(a.shape(), &[2, 2]);
    assert_eq!(a.dtype(), Dtype::Float32);
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);

    let b = umx::array![1, 2, 3];
    assert_eq!((b.shape(), b.dtype()), (&[3usize][..], Dtype::Int32));
    assert_eq!(b.to_vec::<i32>().unwrap(), vec![1, 2, 3]);

    let c = umx::array![[[true], [false]]];
    assert_eq!((c.shape(), c.dtype()), (&[1usize, 2, 1][..], Dtype::Bool));

    let d = umx::array![1u8, 2];
    assert_eq!(d.dtype(), Dtype::Uint8);

    let e = umx::array![];
    assert_eq!((e.shape(), e.dtype()), (&[0usize][..], Dtype::Float32));

    let f = umx::array![umx::f16::from_f32(1.5)];
    assert_eq!((f.shape(), f.dtype()), (&[1usize][..], Dtype::Float16));
}

#[test]
fn arange_default_dtype_follows_the_arguments() {
    assert_eq!(ops::arange(0, 5, 1, None).unwrap().dtype(), Dtype::Int32);
    assert_eq!(
        ops::arange(0, 5, 0.5, None).unwrap().dtype(),
        Dtype::Float32
    );
    assert_eq!(
        ops::arange(0.0, 5.0, 1.0, Dtype::Float16).unwrap().dtype(),
        Dtype::Float16
    );
    assert_eq!(
        ops::arange(5, 0, -2, None)
            .unwrap()
            .to_vec::<i32>()
            .unwrap(),
        vec![5, 3, 1]
    );
}

#[test]
fn bad_creation_input_names_the_op() {
    let msg = |r: Result<Array>| r.unwrap_err().to_string();
    assert!(msg(ops::arange(0, 5, 0, None)).starts_with("arange:"));
    assert!(msg(ops::arange(0.0, f64::NAN, 1.0, None)).starts_with("arange:"));
    assert!(msg(ops::arange(0, 5, 1, Dtype::Bool)).starts_with("arange:"));
    assert!(msg(ops::arange(0.0, 1e12, 1.0, None)).starts_with("arange:"));
    assert!(msg(ops::eye(0, None, 0, None)).starts_with("eye:"));
    assert!(msg(ops::identity(0, None)).starts_with("identity:"));
    let v = Array::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
    assert!(msg(ops::full(&[3], &v, None)).starts_with("full:"));
    assert!(
        msg(ops::full_like(
            &Array::from_slice(&[1.0f32; 3], &[3]).unwrap(),
            &v,
            None
        ))
        .starts_with("full_like:")
    );
}

#[test]
fn large_fills_use_every_thread_and_stay_right() {
    let z = ops::full(&[300, 1000], 1.5, Dtype::Bfloat16).unwrap();
    let v = z.to_vec::<f32>().unwrap();
    assert!(v.iter().all(|&x| x == 1.5));
    let e = ops::eye(600, None, 0, Dtype::Int32)
        .unwrap()
        .to_vec::<i32>()
        .unwrap();
    assert_eq!(e.iter().sum::<i32>(), 600);
    assert_eq!(e[601], 1);
}
