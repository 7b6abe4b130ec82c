//! Unary ops, casts and `where_`: NumPy reference values (tests/reference/unary.py) on every
//! layout, plus the behaviours a reference file cannot show (errors, donation, laziness).

use umx::prelude::*;

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
