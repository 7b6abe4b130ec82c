//! umx::fft against NumPy references (`tests/reference/fft.py`): the 16 functions with
//! NumPy's n/s/axes and norm modes, batched, on contiguous, transposed and strided inputs; then
//! transforms too big for the reference file.

use crate::common;

use common::{kw_f64, kw_i64, kw_str};
use serde_json::Value;
use umx::prelude::*;
use umx::{Axes, Complex32, fft};

fn list(kw: &Value, key: &str) -> Option<Vec<i64>> {
    kw.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
}

fn fft_op(name: &str, args: &[Array], kw: &Value) -> Result<Vec<Array>> {
    let n = kw_i64(kw, "n").map(|n| n as usize);
    let axis = kw_i64(kw, "axis").unwrap_or(-1);
    let norm = kw_str(kw, "norm").unwrap_or("backward");
    let s: Option<Vec<usize>> = list(kw, "s").map(|v| v.iter().map(|&d| d as usize).collect());
    let axes = list(kw, "axes");
    let (s, axes) = (s.as_deref(), axes.as_deref());
    let shift_axes = match kw.get("axes") {
        None | Some(Value::Null) => Axes::All,
        Some(Value::Number(n)) => Axes::List(vec![n.as_i64().unwrap()]),
        Some(Value::Array(l)) => Axes::List(l.iter().filter_map(Value::as_i64).collect()),
        Some(other) => panic!("bad axes {other}"),
    };
    let d = kw_f64(kw, "d").unwrap_or(1.0);
    let count = kw_i64(kw, "n").unwrap_or(0) as usize;
    Ok(vec![match name {
        "fft" => fft::fft(&args[0], n, axis, norm)?,
        "ifft" => fft::ifft(&args[0], n, axis, norm)?,
        "rfft" => fft::rfft(&args[0], n, axis, norm)?,
        "irfft" => fft::irfft(&args[0], n, axis, norm)?,
        "fft2" => fft::fft2(&args[0], s, axes, norm)?,
        "ifft2" => fft::ifft2(&args[0], s, axes, norm)?,
        "rfft2" => fft::rfft2(&args[0], s, axes, norm)?,
        "irfft2" => fft::irfft2(&args[0], s, axes, norm)?,
        "fftn" => fft::fftn(&args[0], s, axes, norm)?,
        "ifftn" => fft::ifftn(&args[0], s, axes, norm)?,
        "rfftn" => fft::rfftn(&args[0], s, axes, norm)?,
        "irfftn" => fft::irfftn(&args[0], s, axes, norm)?,
        "fftfreq" => fft::fftfreq(count, d)?,
        "rfftfreq" => fft::rfftfreq(count, d)?,
        "fftshift" => fft::fftshift(&args[0], shift_axes)?,
        "ifftshift" => fft::ifftshift(&args[0], shift_axes)?,
        other => panic!("unknown op {other}"),
    }])
}

#[test]
fn fft_matches_numpy() {
    let n = common::run_reference("fft", &fft_op);
    assert!(n > 140, "only {n} cases");
}

#[test]
fn a_long_transform_of_a_tone_has_one_peak() {
    let n = 1 << 16;
    let k = 1234;
    let v: Vec<f32> = (0..n)
        .map(|t| (2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64).cos() as f32)
        .collect();
    let x = Array::from_slice(&v, &[n]).unwrap();
    let y = fft::rfft(&x, None, -1, "forward")
        .unwrap()
        .to_vec::<Complex32>()
        .unwrap();
    for (i, z) in y.iter().enumerate() {
        let want = if i == k { 0.5 } else { 0.0 };
        assert!((z.norm() - want).abs() < 1e-4, "bin {i}: {z}");
    }
}

#[test]
fn round_trips_restore_the_signal_over_many_lanes() {
    // Enough lanes to run in parallel, along a middle axis.
    let shape = [64, 30, 40];
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let x = Array::from_slice(&v, &shape).unwrap();
    let y = fft::ifft(&fft::fft(&x, None, 1, "ortho").unwrap(), None, 1, "ortho").unwrap();
    let back = ops::real(&y).unwrap().to_vec::<f32>().unwrap();
    assert!(back.iter().zip(&v).all(|(a, b)| (a - b).abs() < 1e-5));
    let r = fft::irfftn(
        &fft::rfftn(&x, None, None, "backward").unwrap(),
        Some(&shape),
        None,
        "backward",
    )
    .unwrap()
    .to_vec::<f32>()
    .unwrap();
    assert!(r.iter().zip(&v).all(|(a, b)| (a - b).abs() < 1e-4));
}

#[test]
fn vmap_of_fft_maps_over_the_batch() {
    let v: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let x = Array::from_slice(&v, &[4, 6]).unwrap(); // batch on the last axis
    let f =
        |x: &[Array]| -> Result<Vec<Array>> { Ok(vec![fft::rfft(&x[0], None, -1, "backward")?]) };
    let got = vmap(f, &[Some(-1)], &[Some(0)])(std::slice::from_ref(&x))
        .unwrap()
        .remove(0);
    let want = fft::rfft(&ops::transpose(&x, [1, 0]).unwrap(), None, -1, "backward").unwrap();
    assert_eq!(
        got.to_vec::<Complex32>().unwrap(),
        want.to_vec::<Complex32>().unwrap()
    );
}
