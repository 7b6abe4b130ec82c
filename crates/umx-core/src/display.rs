//! Printing arrays as MLX does: `array([[1, 2],\n       [3, 4]], dtype=int32)`.
//! Printing evaluates the array; an array that fails to evaluate prints its error.

use crate::{Array, Complex32, Dtype};
use std::fmt;

/// Arrays with more elements than this print the first and last `EDGE` items of each axis.
const SUMMARY_THRESHOLD: usize = 1000;
const EDGE: usize = 3;

fn format_complex(re: f64, im: f64) -> String {
    let sign = if im < 0.0 || (im == 0.0 && im.is_sign_negative()) {
        '-'
    } else {
        '+'
    };
    format!("{}{sign}{}j", float(re), float(im.abs()))
}

/// A float as C++'s `std::ostream` writes it by default (`%g`, 6 significant digits), which
/// is how MLX prints array elements: `1.5`, `1e-05`, `1.23457e+08`, `-0`, `nan`, `inf`.
fn float(x: f64) -> String {
    const PRECISION: i32 = 6;
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // The decimal exponent after rounding to PRECISION significant digits.
    let sci = format!("{:.*e}", (PRECISION - 1) as usize, x);
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    if !(-4..PRECISION).contains(&exp) {
        let m = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        trim_fraction(&format!("{:.*}", (PRECISION - 1 - exp) as usize, x)).to_string()
    }
}

/// `1.500` to `1.5`, `2.000` to `2`.
fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn write_axis(out: &mut String, vals: &[String], shape: &[usize], indent: usize, summarize: bool) {
    if shape.is_empty() {
        out.push_str(&vals[0]);
        return;
    }
    let n = shape[0];
    if n == 0 {
        // MLX stops at the first empty axis: `[]`, whatever comes after it.
        out.push_str("[]");
        return;
    }
    let inner: usize = shape[1..].iter().product();
    out.push('[');
    let idx: Vec<Option<usize>> = if summarize && n > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain([None])
            .chain((n - EDGE..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    };
    for (k, i) in idx.iter().enumerate() {
        if k > 0 {
            out.push(',');
            if shape.len() > 1 {
                out.push('\n');
                out.push_str(&" ".repeat(indent + 1));
            } else {
                out.push(' ');
            }
        }
        match i {
            None => out.push_str("..."),
            Some(i) => write_axis(
                out,
                &vals[i * inner..(i + 1) * inner],
                &shape[1..],
                indent + 1,
                summarize,
            ),
        }
    }
    out.push(']');
}

impl fmt::Display for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dtype = self.dtype();
        let strs: Result<Vec<String>, _> = match dtype {
            Dtype::Bool => self.to_vec::<bool>().map(|v| {
                v.into_iter()
                    .map(|b| if b { "True" } else { "False" }.to_string())
                    .collect()
            }),
            Dtype::Uint64 => self
                .to_vec::<u64>()
                .map(|v| v.into_iter().map(|x| x.to_string()).collect()),
            d if d.is_integer() => self
                .to_vec::<i64>()
                .map(|v| v.into_iter().map(|x| x.to_string()).collect()),
            Dtype::Complex64 => self.to_vec::<Complex32>().map(|v| {
                v.into_iter()
                    .map(|z| format_complex(z.re as f64, z.im as f64))
                    .collect()
            }),
            _ => self
                .to_vec::<f64>()
                .map(|v| v.into_iter().map(float).collect()),
        };
        let strs = match strs {
            Ok(v) => v,
            Err(e) => return write!(f, "array(<error: {e}>)"),
        };
        let mut body = String::new();
        write_axis(
            &mut body,
            &strs,
            self.shape(),
            "array(".len(),
            self.size() > SUMMARY_THRESHOLD,
        );
        write!(f, "array({body}, dtype={dtype})")
    }
}

#[cfg(test)]
mod tests {
    use crate::Array;

    #[test]
    fn prints_like_mlx() {
        let a = Array::from_slice(&[1i32, 2, 3, 4], &[2, 2]).unwrap();
        assert_eq!(
            a.to_string(),
            "array([[1, 2],\n       [3, 4]], dtype=int32)"
        );
        let b = Array::from_slice(&[1.5f32, -2.0], &[2]).unwrap();
        assert_eq!(b.to_string(), "array([1.5, -2], dtype=float32)");
        assert_eq!(Array::scalar(true).to_string(), "array(True, dtype=bool)");
        let c = Array::from_slice(&[1e-5f32, 123456789.0, -0.0, 1e20], &[4]).unwrap();
        assert_eq!(
            c.to_string(),
            "array([1e-05, 1.23457e+08, -0, 1e+20], dtype=float32)"
        );
        let e = Array::from_slice::<f32>(&[], &[2, 0, 3]).unwrap();
        assert_eq!(e.to_string(), "array([[],\n       []], dtype=float32)");
        let cube = Array::from_slice(&[0u8; 8], &[2, 2, 2]).unwrap();
        assert_eq!(
            cube.to_string(),
            "array([[[0, 0],\n        [0, 0]],\n       [[0, 0],\n        [0, 0]]], dtype=uint8)"
        );
        let big = Array::scalar(i64::MAX);
        assert_eq!(big.to_string(), "array(9223372036854775807, dtype=int64)");
    }
}
