//! Printing arrays as MLX does: `array([[1, 2],\n       [3, 4]], dtype=int32)`.
//! Printing evaluates the array; an array that fails to evaluate prints its error.

use crate::{Array, Complex32, Dtype};
use std::fmt;

/// Arrays with more elements than this print the first and last `EDGE` items of each axis.
const SUMMARY_THRESHOLD: usize = 1000;
const EDGE: usize = 3;

fn format_value(v: (f64, f64), dtype: Dtype) -> String {
    match dtype {
        Dtype::Bool => if v.0 != 0.0 { "true" } else { "false" }.to_string(),
        d if d.is_integer() => format!("{}", v.0 as i128),
        Dtype::Complex64 => {
            let sign = if v.1 < 0.0 || (v.1 == 0.0 && v.1.is_sign_negative()) {
                '-'
            } else {
                '+'
            };
            format!("{}{sign}{}j", float(v.0), float(v.1.abs()))
        }
        _ => float(v.0),
    }
}

fn float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else if x == x.trunc() && x.abs() < 1e16 {
        format!("{}", x as i64)
    } else {
        let s = format!("{:.6}", x);
        let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
        if s == "0" || s == "-0" {
            format!("{x:e}")
        } else {
            s
        }
    }
}

fn write_axis(out: &mut String, vals: &[String], shape: &[usize], indent: usize, summarize: bool) {
    if shape.is_empty() {
        out.push_str(&vals[0]);
        return;
    }
    let n = shape[0];
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
                out.push_str(&"\n".repeat(shape.len() - 1));
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
        let values: Result<Vec<(f64, f64)>, _> = if dtype.is_complex() {
            self.to_vec::<Complex32>()
                .map(|v| v.into_iter().map(|z| (z.re as f64, z.im as f64)).collect())
        } else {
            self.to_vec::<f64>()
                .map(|v| v.into_iter().map(|x| (x, 0.0)).collect())
        };
        let values = match values {
            Ok(v) => v,
            Err(e) => return write!(f, "array(<error: {e}>)"),
        };
        let strs: Vec<String> = values.iter().map(|&v| format_value(v, dtype)).collect();
        let mut body = String::new();
        if self.size() == 0 && self.ndim() > 0 {
            body.push_str(&format!(
                "[], shape={}",
                crate::shape::fmt_shape(self.shape())
            ));
        } else {
            write_axis(
                &mut body,
                &strs,
                self.shape(),
                "array(".len(),
                self.size() > SUMMARY_THRESHOLD,
            );
        }
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
        assert_eq!(Array::scalar(true).to_string(), "array(true, dtype=bool)");
    }
}
