//! Unary ops, casts and `where_`: NumPy reference values (tests/reference/unary.py) on every
//! layout, plus the behaviours a reference file cannot show (errors, donation, laziness).

use serde_json::Value;
use umx::prelude::*;

use crate::common;

/// The op table: reference-file op names to umx calls.
fn call(name: &str, args: &[Array], kw: &Value) -> umx::Result<Vec<Array>> {
    let a = &args[0];
    let out = match name {
        "abs" => abs(a),
        "negative" => negative(a),
        "sign" => sign(a),
        "sqrt" => sqrt(a),
        "rsqrt" => rsqrt(a),
        "square" => square(a),
        "reciprocal" => reciprocal(a),
        "exp" => exp(a),
        "expm1" => expm1(a),
        "log" => log(a),
        "log1p" => log1p(a),
        "log2" => log2(a),
        "log10" => log10(a),
        "sin" => sin(a),
        "cos" => cos(a),
        "tan" => tan(a),
        "arcsin" => arcsin(a),
        "arccos" => arccos(a),
        "arctan" => arctan(a),
        "sinh" => sinh(a),
        "cosh" => cosh(a),
        "tanh" => tanh(a),
        "arcsinh" => arcsinh(a),
        "arccosh" => arccosh(a),
        "arctanh" => arctanh(a),
        "floor" => floor(a),
        "ceil" => ceil(a),
        "round" => round(a, common::kw_i64(kw, "decimals").unwrap_or(0) as i32),
        "erf" => erf(a),
        "erfinv" => erfinv(a),
        "sigmoid" => sigmoid(a),
        "degrees" => degrees(a),
        "radians" => radians(a),
        "isnan" => isnan(a),
        "isinf" => isinf(a),
        "isposinf" => isposinf(a),
        "isneginf" => isneginf(a),
        "isfinite" => isfinite(a),
        "logical_not" => logical_not(a),
        "bitwise_invert" => bitwise_invert(a),
        "nan_to_num" => nan_to_num(
            a,
            common::kw_f64(kw, "nan").unwrap_or(0.0),
            common::kw_f64(kw, "posinf"),
            common::kw_f64(kw, "neginf"),
        ),
        "real" => real(a),
        "imag" => imag(a),
        "conj" => conj(a),
        "astype" => {
            let d = common::kw_str(kw, "dtype").and_then(Dtype::from_name);
            a.astype(d.expect("astype case names a dtype"))
        }
        "where" => where_(a, &args[1], &args[2]),
        "where_scalar_y" => where_(a, &args[1], common::kw_f64(kw, "y").unwrap_or(0.0)),
        other => panic!("unknown op {other}"),
    }?;
    Ok(vec![out])
}

#[test]
fn unary_ops_match_numpy_on_every_layout() {
    let n = common::run_reference("unary", &call);
    assert!(n > 400, "only {n} cases");
}

#[test]
fn sqrt_of_int32_is_float32() {
    let a = Array::from_slice(&[4i32, 9, 0], &[3]).unwrap();
    let r = sqrt(&a).unwrap();
    assert_eq!(r.dtype(), Dtype::Float32);
    assert_eq!(r.to_vec::<f32>().unwrap(), vec![2.0, 3.0, 0.0]);
}

#[test]
fn abs_keeps_int32_and_complex_gives_float32() {
    let a = Array::from_slice(&[-4i32, 9, i32::MIN], &[3]).unwrap();
    let r = a.abs().unwrap();
    assert_eq!(r.dtype(), Dtype::Int32);
    assert_eq!(r.to_vec::<i32>().unwrap(), vec![4, 9, i32::MIN]);
    let z = Array::from_slice(&[umx::Complex32::new(3.0, 4.0)], &[1]).unwrap();
    let r = z.abs().unwrap();
    assert_eq!(r.dtype(), Dtype::Float32);
    assert_eq!(r.to_vec::<f32>().unwrap(), vec![5.0]);
}

#[test]
fn bitwise_invert_of_float_is_an_error_naming_the_op() {
    let a = Array::from_slice(&[1.0f32], &[1]).unwrap();
    let e = bitwise_invert(&a).unwrap_err().to_string();
    assert!(e.contains("bitwise_invert") && e.contains("float32"), "{e}");
}

#[test]
fn where_broadcasts_and_takes_weak_scalars() {
    let c = Array::from_slice(&[true, false], &[2, 1]).unwrap();
    let x = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let r = where_(&c, &x, 0.0).unwrap();
    assert_eq!(r.shape(), &[2, 3]);
    assert_eq!(r.dtype(), Dtype::Float32);
    assert_eq!(
        r.to_vec::<f32>().unwrap(),
        vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn where_with_unbroadcastable_shapes_is_an_error_naming_the_op() {
    let x = Array::from_slice(&[1.0f32; 3], &[3]).unwrap();
    let y = Array::from_slice(&[1.0f32; 4], &[4]).unwrap();
    let e = where_(true, &x, &y).unwrap_err().to_string();
    assert!(
        e.starts_with("where:") && e.contains("(3,)") && e.contains("(4,)"),
        "{e}"
    );
}

#[test]
fn astype_chains_round_trip() {
    let a = Array::from_slice(&[1.5f32, -2.0, 300.0], &[3]).unwrap();
    let h = a
        .astype(Dtype::Bfloat16)
        .unwrap()
        .astype(Dtype::Float32)
        .unwrap();
    assert_eq!(h.to_vec::<f32>().unwrap(), vec![1.5, -2.0, 300.0]);
    let i = Array::from_slice(&[-1i32, 300], &[2]).unwrap();
    assert_eq!(
        i.astype(Dtype::Uint8).unwrap().to_vec::<u8>().unwrap(),
        vec![255, 44]
    );
}
