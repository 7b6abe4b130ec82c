//! Binary element-wise ops and operators: NumPy references (every op, dtype, broadcast, weak
//! scalar and special value in tests/reference/binary.py), operators, donation, deep chains and
//! bad input.

use crate::common;

use common::{kw_bool, kw_f64, kw_str};
use serde_json::Value;
use umx::prelude::*;

/// A weak Rust scalar from a JSON value: bool, integer or float.
fn weak(v: &Value) -> Array {
    match v {
        Value::Bool(b) => Array::weak_bool(*b),
        Value::Number(n) if n.is_i64() => Array::weak_int(n.as_i64().unwrap()),
        Value::Number(n) => Array::weak_float(n.as_f64().unwrap()),
        other => panic!("bad scalar {other}"),
    }
}

fn bound(v: Option<&Value>) -> Option<Array> {
    match v {
        None | Some(Value::Null) => None,
        Some(v) => Some(weak(v)),
    }
}

fn one(name: &str, a: Array, b: Array, kw: &Value) -> Result<Array> {
    match name {
        "add" => ops::add(a, b),
        "subtract" => ops::subtract(a, b),
        "multiply" => ops::multiply(a, b),
        "divide" => ops::divide(a, b),
        "floor_divide" => ops::floor_divide(a, b),
        "remainder" => ops::remainder(a, b),
        "power" => ops::power(a, b),
        "arctan2" => ops::arctan2(a, b),
        "logaddexp" => ops::logaddexp(a, b),
        "maximum" => ops::maximum(a, b),
        "minimum" => ops::minimum(a, b),
        "equal" => ops::equal(a, b),
        "not_equal" => ops::not_equal(a, b),
        "less" => ops::less(a, b),
        "less_equal" => ops::less_equal(a, b),
        "greater" => ops::greater(a, b),
        "greater_equal" => ops::greater_equal(a, b),
        "logical_and" => ops::logical_and(a, b),
        "logical_or" => ops::logical_or(a, b),
        "bitwise_and" => ops::bitwise_and(a, b),
        "bitwise_or" => ops::bitwise_or(a, b),
        "bitwise_xor" => ops::bitwise_xor(a, b),
        "left_shift" => ops::left_shift(a, b),
        "right_shift" => ops::right_shift(a, b),
        "isclose" => ops::isclose(
            a,
            b,
            kw_f64(kw, "isclose_rtol").unwrap(),
            kw_f64(kw, "isclose_atol").unwrap(),
            kw_bool(kw, "equal_nan").unwrap(),
        ),
        other => panic!("unknown op {other}"),
    }
}

fn table(name: &str, args: &[Array], kw: &Value) -> Result<Vec<Array>> {
    if let Some(s) = kw.get("scalar") {
        let s = weak(s);
        let a = args[0].clone();
        let (x, y) = if kw_str(kw, "side") == Some("left") {
            (s, a)
        } else {
            (a, s)
        };
        return match name {
            "divmod" => ops::divmod(x, y).map(|(q, r)| vec![q, r]),
            _ => one(name, x, y, kw).map(|o| vec![o]),
        };
    }
    match name {
        "divmod" => ops::divmod(&args[0], &args[1]).map(|(q, r)| vec![q, r]),
        "clip" if kw_str(kw, "bounds") == Some("arrays") => {
            Ok(vec![ops::clip(&args[0], &args[1], &args[2])?])
        }
        "clip" => Ok(vec![ops::clip(
            &args[0],
            bound(kw.get("a_min")),
            bound(kw.get("a_max")),
        )?]),
        _ => Ok(vec![one(name, args[0].clone(), args[1].clone(), kw)?]),
    }
}

#[test]
fn binary_ops_match_numpy() {
    let n = common::run_reference("binary", &table);
    assert!(n > 500, "{n} cases");
}

fn f32s(a: &Array) -> Vec<f32> {
    a.to_vec::<f32>().unwrap()
}

#[test]
fn arithmetic_chain_matches_scalar_math() {
    let x = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[4]).unwrap();
    let y = (&x * 2.0 + 5.0) / 3.0;
    assert_eq!(y.dtype(), Dtype::Float32);
    assert_eq!(f32s(&y), vec![7.0 / 3.0, 3.0, 11.0 / 3.0, 13.0 / 3.0]);
    let z = 2.0 * &x - &x;
    assert_eq!(f32s(&z), vec![1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn operators_take_arrays_and_scalars_on_either_side() {
    let a = Array::from_slice(&[1i32, 2, 3, 4], &[2, 2]).unwrap();
    let b = Array::from_slice(&[10i32, 20], &[2]).unwrap();
    assert_eq!((&a + &b).to_vec::<i32>().unwrap(), vec![11, 22, 13, 24]);
    assert_eq!(
        (a.clone() - b.clone()).to_vec::<i32>().unwrap(),
        vec![-9, -18, -7, -16]
    );
    assert_eq!((&a * 3).to_vec::<i32>().unwrap(), vec![3, 6, 9, 12]);
    assert_eq!((10i32 - &a).to_vec::<i32>().unwrap(), vec![9, 8, 7, 6]);
    assert_eq!((&a % 3).to_vec::<i32>().unwrap(), vec![1, 2, 0, 1]);
    assert_eq!((-7i64 % &a).to_vec::<i32>().unwrap(), vec![0, 1, 2, 1]);
    assert_eq!((&a << 2).to_vec::<i32>().unwrap(), vec![4, 8, 12, 16]);
    assert_eq!((&a >> 1u8).to_vec::<i32>().unwrap(), vec![0, 1, 1, 2]);
    assert_eq!((&a & 6).to_vec::<i32>().unwrap(), vec![0, 2, 2, 4]);
    assert_eq!((&a | &b).to_vec::<i32>().unwrap(), vec![11, 22, 11, 20]);
    assert_eq!((5i32 ^ &a).to_vec::<i32>().unwrap(), vec![4, 7, 6, 1]);
    let d = &a / 2; // true division
    assert_eq!(d.dtype(), Dtype::Float32);
    assert_eq!(f32s(&d), vec![0.5, 1.0, 1.5, 2.0]);
    assert_eq!((-&a).to_vec::<i32>().unwrap(), vec![-1, -2, -3, -4]);
    assert_eq!((!&a).to_vec::<i32>().unwrap(), vec![-2, -3, -4, -5]);
    let t = Array::from_slice(&[true, false], &[2]).unwrap();
    assert_eq!((!&t).to_vec::<bool>().unwrap(), vec![false, true]);
    assert_eq!((&t & true).to_vec::<bool>().unwrap(), vec![true, false]);
    let mut m = a.clone();
    m += 1;
    m *= &b;
    assert_eq!(m.to_vec::<i32>().unwrap(), vec![20, 60, 40, 100]);
    let u = Array::from_slice(&[0u8, 1, 200], &[3]).unwrap();
    assert_eq!((-&u).to_vec::<u8>().unwrap(), vec![0, 255, 56]);
    assert_eq!((!&u).to_vec::<u8>().unwrap(), vec![255, 254, 55]);
}

#[test]
fn weak_scalars_keep_the_array_dtype() {
    let h = Array::from_slice(&[umx::f16::from_f32(1.5)], &[1]).unwrap();
    assert_eq!((&h * 2.0).dtype(), Dtype::Float16);
    assert_eq!((2.0f64 * &h).dtype(), Dtype::Float16);
    let i = Array::from_slice(&[3i32], &[1]).unwrap();
    let f = &i * 2.5;
    assert_eq!(f.dtype(), Dtype::Float32);
    assert_eq!(f32s(&f), vec![7.5]);
    assert_eq!((&i * 2).dtype(), Dtype::Int32);
    let u = Array::from_slice(&[250u8], &[1]).unwrap();
    assert_eq!((&u + 10).to_vec::<u8>().unwrap(), vec![4]); // wraps in uint8
    let b = Array::from_slice(&[true], &[1]).unwrap();
    assert_eq!((&b + 1).dtype(), Dtype::Int32);
    assert_eq!((&b + true).dtype(), Dtype::Bool);
}

#[test]
fn integer_division_by_zero_gives_zero() {
    let a = Array::from_slice(&[7i32, -7, 0], &[3]).unwrap();
    assert_eq!(
        ops::floor_divide(&a, 0).unwrap().to_vec::<i32>().unwrap(),
        vec![0, 0, 0]
    );
    assert_eq!(
        ops::remainder(&a, 0).unwrap().to_vec::<i32>().unwrap(),
        vec![0, 0, 0]
    );
    let m = Array::from_slice(&[i32::MIN], &[1]).unwrap();
    assert_eq!(
        ops::floor_divide(&m, -1).unwrap().to_vec::<i32>().unwrap(),
        vec![i32::MIN]
    );
    assert_eq!(
        ops::remainder(&m, -1).unwrap().to_vec::<i32>().unwrap(),
        vec![0]
    );
    assert_eq!(
        ops::power(&a, -1).unwrap().to_vec::<i32>().unwrap(),
        vec![0, 0, 0]
    );
    let d = ops::divide(&a, 0).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(&d[..2], &[f32::INFINITY, f32::NEG_INFINITY]);
    assert!(d[2].is_nan());
}

#[test]
fn shifts_past_the_bit_width_are_total() {
    let a = Array::from_slice(&[1i32, -8], &[2]).unwrap();
    assert_eq!(
        ops::left_shift(&a, 40).unwrap().to_vec::<i32>().unwrap(),
        vec![0, 0]
    );
    assert_eq!(
        ops::right_shift(&a, 40).unwrap().to_vec::<i32>().unwrap(),
        vec![0, -1]
    );
    assert_eq!(
        ops::left_shift(&a, -1).unwrap().to_vec::<i32>().unwrap(),
        vec![0, 0]
    );
}

#[test]
fn a_uniquely_owned_intermediate_is_donated() {
    let x = Array::from_slice(&[1.0f32; 64], &[8, 8]).unwrap();
    let y = &x * 2.0;
    y.eval().unwrap();
    let ptr = y.data().unwrap().buffer.as_ptr() as usize;
    let z = y + 5.0; // y moves into the node: its buffer has one owner
    z.eval().unwrap();
    assert_eq!(z.data().unwrap().buffer.as_ptr() as usize, ptr);
    assert_eq!(f32s(&z), vec![7.0; 64]);
    // x is still held by the caller: never overwritten.
    let w = &x + 1.0;
    assert_eq!(f32s(&w), vec![2.0; 64]);
    assert_eq!(f32s(&x), vec![1.0; 64]);
}

#[test]
fn large_arrays_take_the_parallel_paths() {
    let n = 1 << 17;
    let v: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let x = Array::from_slice(&v, &[n]).unwrap();
    let y = (&x * 2.0 + 5.0) / 3.0;
    let got = f32s(&y);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(*g, (i as f32 * 2.0 + 5.0) / 3.0);
    }
    // Broadcast rows: (512, 256) + (256,) and + (512, 1).
    let m = Array::from_slice(&v, &[512, 256]).unwrap();
    let r = Array::from_slice(&v[..256], &[256]).unwrap();
    let c = Array::from_slice(&v[..512], &[512, 1]).unwrap();
    let s = (&m + &r) - &c;
    let got = f32s(&s);
    for i in 0..512 {
        for j in 0..256 {
            assert_eq!(got[i * 256 + j], v[i * 256 + j] + j as f32 - i as f32);
        }
    }
}

#[test]
fn a_chain_of_a_million_dependent_adds_evaluates_and_drops() {
    let one = Array::from_slice(&[1.0f32; 16], &[16]).unwrap();
    let mut x = Array::from_slice(&[0.0f32; 16], &[16]).unwrap();
    for _ in 0..1_000_000 {
        x = &x + &one;
    }
    assert_eq!(f32s(&x), vec![1_000_000.0; 16]);
    let mut y = Array::from_slice(&[0.0f32; 16], &[16]).unwrap();
    for _ in 0..1_000_000 {
        y = &y + &one;
    }
    drop(y); // never evaluated: dropping must not recurse
}

#[test]
fn failed_operators_carry_their_error_to_later_ops_and_reads() {
    let a = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let b = Array::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
    let bad = &a + &b;
    let later = (&bad * 2.0) - 1.0;
    let e = later.to_vec::<f32>().unwrap_err().to_string();
    assert_eq!(e, "add: shapes (3,) and (2,) cannot be broadcast together");
    assert!(
        ops::multiply(&bad, 2.0)
            .unwrap_err()
            .to_string()
            .starts_with("add: ")
    );
    let s = &a << 1;
    assert!(
        s.eval()
            .unwrap_err()
            .to_string()
            .starts_with("left_shift: ")
    );
    let t = Array::from_slice(&[true], &[1]).unwrap();
    assert!(
        (-&t)
            .eval()
            .unwrap_err()
            .to_string()
            .starts_with("negative: ")
    );
    assert!(
        (!&a)
            .eval()
            .unwrap_err()
            .to_string()
            .starts_with("bitwise_invert: ")
    );
}

#[test]
fn clip_needs_a_bound_and_names_itself() {
    let a = Array::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
    let e = ops::clip(&a, (), None::<f64>).unwrap_err().to_string();
    assert!(e.starts_with("clip: "), "{e}");
    let lo = Array::from_slice(&[0.0f32; 3], &[3]).unwrap();
    let e = ops::clip(&a, &lo, ()).unwrap_err().to_string();
    assert!(e.starts_with("clip: "), "{e}");
    assert_eq!(f32s(&a.clip(1.5, ()).unwrap()), vec![1.5, 2.0]);
}

#[test]
fn divmod_gives_floor_quotient_and_remainder() {
    let a = Array::from_slice(&[7.5f32, -7.5], &[2]).unwrap();
    let (q, r) = ops::divmod(&a, 2.0).unwrap();
    assert_eq!(f32s(&q), vec![3.0, -4.0]);
    assert_eq!(f32s(&r), vec![1.5, 0.5]);
}

#[test]
fn allclose_and_array_equal_reduce_to_one_bool() {
    let a = Array::from_slice(&[1.0f32, f32::NAN], &[2]).unwrap();
    let b = Array::from_slice(&[1.0f32 + 1e-7, f32::NAN], &[2]).unwrap();
    assert!(
        !ops::allclose(&a, &b, 1e-5, 1e-8, false)
            .unwrap()
            .item::<bool>()
            .unwrap()
    );
    assert!(
        ops::allclose(&a, &b, 1e-5, 1e-8, true)
            .unwrap()
            .item::<bool>()
            .unwrap()
    );
    assert!(
        ops::array_equal(&a, &a, true)
            .unwrap()
            .item::<bool>()
            .unwrap()
    );
    assert!(
        !ops::array_equal(&a, &a, false)
            .unwrap()
            .item::<bool>()
            .unwrap()
    );
    let c = Array::from_slice(&[1.0f32], &[1]).unwrap();
    assert!(
        !ops::array_equal(&a, &c, false)
            .unwrap()
            .item::<bool>()
            .unwrap()
    );
    let i = Array::from_slice(&[1i32, 2], &[2]).unwrap();
    let f = Array::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
    assert!(
        ops::array_equal(&i, &f, false)
            .unwrap()
            .item::<bool>()
            .unwrap()
    );
}
