//! Binary element-wise ops and operators: NumPy references, promotion, broadcasting,
//! donation, errors.

use umx::prelude::*;

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
