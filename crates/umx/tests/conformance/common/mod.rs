//! The op-conformance harness: reads NumPy reference cases (`tests/reference/<family>.json`,
//! written by the committed `<family>.py`) and checks an op table against them.
//!
//! Every case runs on three layouts of the same logical inputs: contiguous, transposed (a view
//! whose strides are reversed) and strided (every other element of a larger buffer, at an
//! offset). Expected dtype, shape and values must all match; float values within tolerances
//! chosen by dtype (a case may override them).
#![allow(dead_code)]

use serde_json::Value;
use std::sync::Arc;
use umx::{Array, ArrayData, Buffer, Complex32, Dtype, Element, Result};

/// The op under test: name, inputs, keyword arguments -> outputs.
pub type OpFn<'a> = &'a dyn Fn(&str, &[Array], &Value) -> Result<Vec<Array>>;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layout {
    Contiguous,
    Transposed,
    Strided,
}

/// Logical input values, as read from the reference file.
pub struct Input {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub values: Vec<(f64, f64)>, // (real, imaginary)
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Bool(b) => *b as u8 as f64,
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => match s.as_str() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => panic!("bad number {other}"),
        },
        other => panic!("bad number {other}"),
    }
}

pub fn parse_input(v: &Value) -> Input {
    let dtype = Dtype::from_name(v["dtype"].as_str().unwrap()).unwrap();
    let shape = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let values = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| match x {
            Value::Array(p) => (num(&p[0]), num(&p[1])),
            x => (num(x), 0.0),
        })
        .collect();
    Input {
        dtype,
        shape,
        values,
    }
}

fn element<T: Element>(v: (f64, f64)) -> T {
    if T::DTYPE.is_complex() {
        T::from_c64(Complex32::new(v.0 as f32, v.1 as f32))
    } else if T::DTYPE.is_integer() {
        // i64 and u64 values beyond 2^53 do not occur in the cases.
        if v.0 < 0.0 {
            T::from_i64(v.0 as i64)
        } else {
            T::from_f64(v.0)
        }
    } else {
        T::from_f64(v.0)
    }
}

/// Builds the input as an array with the given layout (same logical values every time).
pub fn make(input: &Input, layout: Layout) -> Array {
    let n = input.values.len();
    let shape = &input.shape;
    let nd = shape.len();
    umx::dispatch_dtype!(input.dtype, T => {
        let logical: Vec<T> = input.values.iter().map(|&v| element::<T>(v)).collect();
        let rm = umx::shape::row_major_strides(shape);
        let (buf, strides, offset): (Vec<T>, Vec<isize>, isize) = match layout {
            Layout::Transposed if nd >= 2 => {
                // Store in reversed-axes (column-major) order; view with reversed strides.
                let rev: Vec<usize> = shape.iter().rev().cloned().collect();
                let rev_rm = umx::shape::row_major_strides(&rev);
                let strides: Vec<isize> = rev_rm.iter().rev().cloned().collect();
                let mut buf = vec![T::default(); n];
                for (k, v) in logical.iter().enumerate() {
                    let mut rem = k;
                    let mut pos = 0isize;
                    for d in (0..nd).rev() {
                        let i = rem % shape[d].max(1);
                        rem /= shape[d].max(1);
                        pos += i as isize * strides[d];
                    }
                    buf[pos as usize] = *v;
                }
                (buf, strides, 0)
            }
            Layout::Strided if n > 0 => {
                let filler = element::<T>((7.0, 7.0));
                let mut buf = vec![filler; 2 * n + 1];
                for (k, v) in logical.iter().enumerate() {
                    buf[1 + 2 * k] = *v;
                }
                (buf, rm.iter().map(|s| 2 * s).collect(), 1)
            }
            _ => (logical, rm, 0),
        };
        let data = ArrayData {
            buffer: Arc::new(Buffer::from_slice(&buf).unwrap()),
            shape: shape.clone(),
            dtype: input.dtype,
            strides,
            offset,
        };
        Array::from_data(data)
    })
}

fn default_tol(dtype: Dtype) -> (f64, f64) {
    match dtype {
        Dtype::Float16 => (2e-3, 2e-3),
        Dtype::Bfloat16 => (1.6e-2, 1.6e-2),
        Dtype::Float32 | Dtype::Complex64 => (2e-5, 1e-6),
        Dtype::Float64 => (1e-10, 1e-12),
        _ => (0.0, 0.0),
    }
}

fn close(got: f64, want: f64, rtol: f64, atol: f64) -> bool {
    if want.is_nan() {
        return got.is_nan();
    }
    if want.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= atol + rtol * want.abs()
}

/// Compares one output with its expected value; returns a description of the first mismatch.
pub fn compare(got: &Array, want: &Input, rtol: f64, atol: f64) -> std::result::Result<(), String> {
    if got.dtype() != want.dtype {
        return Err(format!("dtype {} != expected {}", got.dtype(), want.dtype));
    }
    if got.shape() != &want.shape[..] {
        return Err(format!(
            "shape {:?} != expected {:?}",
            got.shape(),
            want.shape
        ));
    }
    let vals: Vec<(f64, f64)> = if got.dtype().is_complex() {
        got.to_vec::<Complex32>()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|z| (z.re as f64, z.im as f64))
            .collect()
    } else if got.dtype() == Dtype::Int64 || got.dtype() == Dtype::Uint64 {
        got.to_vec::<i64>()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|v| {
                if got.dtype() == Dtype::Uint64 {
                    v as u64 as f64
                } else {
                    v as f64
                }
            })
            .map(|v| (v, 0.0))
            .collect()
    } else {
        got.to_vec::<f64>()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|v| (v, 0.0))
            .collect()
    };
    for (i, (g, w)) in vals.iter().zip(&want.values).enumerate() {
        if !close(g.0, w.0, rtol, atol) || !close(g.1, w.1, rtol, atol) {
            return Err(format!("element {i}: got {g:?}, expected {w:?}"));
        }
    }
    Ok(())
}

/// Runs every case of `tests/reference/<family>.json` through `op`; panics listing every
/// failure. Returns the number of cases run.
pub fn run_reference(family: &str, op: OpFn) -> usize {
    let path = format!(
        "{}/../../tests/reference/{family}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let root: Value = serde_json::from_str(&text).unwrap();
    let cases = root["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for (ci, case) in cases.iter().enumerate() {
        let name = case["op"].as_str().unwrap();
        let kwargs = &case["kwargs"];
        let inputs: Vec<Input> = case["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(parse_input)
            .collect();
        let label = |layout: Layout| {
            let shapes: Vec<String> = inputs
                .iter()
                .map(|i| format!("{}{:?}", i.dtype, i.shape))
                .collect();
            format!(
                "case {ci} {name}({}) {kwargs} [{layout:?}]",
                shapes.join(", ")
            )
        };
        if let Some(want) = case.get("error") {
            let args: Vec<Array> = inputs.iter().map(|i| make(i, Layout::Contiguous)).collect();
            match op(name, &args, kwargs).and_then(|outs| {
                outs.iter().try_for_each(|o| o.eval())?;
                Ok(outs)
            }) {
                Ok(_) => failures.push(format!(
                    "{}: expected an error, got Ok",
                    label(Layout::Contiguous)
                )),
                Err(e) => {
                    let msg = e.to_string();
                    let want = want.as_str().unwrap();
                    if !msg.contains(want) {
                        failures.push(format!(
                            "{}: error {msg:?} does not contain {want:?}",
                            label(Layout::Contiguous)
                        ));
                    }
                }
            }
            continue;
        }
        let expected: Vec<Input> = case["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(parse_input)
            .collect();
        let layouts: &[Layout] = if case["layouts"].as_bool().unwrap_or(true) {
            &[Layout::Contiguous, Layout::Transposed, Layout::Strided]
        } else {
            &[Layout::Contiguous]
        };
        for &layout in layouts {
            let mut args: Vec<Array> = inputs.iter().map(|i| make(i, layout)).collect();
            // `broadcast_to` in a case: view each input as that shape (zero strides) first.
            if let Some(targets) = kwargs.get("broadcast_to").and_then(Value::as_array) {
                for (a, t) in args.iter_mut().zip(targets) {
                    if let Some(t) = t.as_array() {
                        let shape: Vec<usize> =
                            t.iter().map(|d| d.as_u64().unwrap() as usize).collect();
                        *a = umx::ops::broadcast_to(a, &shape).unwrap();
                    }
                }
            }
            let outs = match op(name, &args, kwargs) {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{}: {e}", label(layout)));
                    continue;
                }
            };
            if outs.len() != expected.len() {
                failures.push(format!(
                    "{}: {} outputs, expected {}",
                    label(layout),
                    outs.len(),
                    expected.len()
                ));
                continue;
            }
            for (k, (o, w)) in outs.iter().zip(&expected).enumerate() {
                let (mut rtol, mut atol) = default_tol(w.dtype);
                if let Some(r) = case.get("rtol").and_then(Value::as_f64) {
                    rtol = r;
                }
                if let Some(a) = case.get("atol").and_then(Value::as_f64) {
                    atol = a;
                }
                if let Err(msg) = compare(o, w, rtol, atol) {
                    failures.push(format!("{} output {k}: {msg}", label(layout)));
                }
            }
        }
    }
    if !failures.is_empty() {
        let shown: Vec<&String> = failures.iter().take(40).collect();
        panic!(
            "{} of the {family} reference checks failed:\n{}",
            failures.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    cases.len()
}

/// Keyword-argument readers for op tables.
pub fn kw_i64(kw: &Value, key: &str) -> Option<i64> {
    kw.get(key).and_then(Value::as_i64)
}
pub fn kw_f64(kw: &Value, key: &str) -> Option<f64> {
    kw.get(key).and_then(Value::as_f64)
}
pub fn kw_bool(kw: &Value, key: &str) -> Option<bool> {
    kw.get(key).and_then(Value::as_bool)
}
pub fn kw_str<'a>(kw: &'a Value, key: &str) -> Option<&'a str> {
    kw.get(key).and_then(Value::as_str)
}
pub fn kw_i64s(kw: &Value, key: &str) -> Option<Vec<i64>> {
    kw.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
}
/// `axis`/`axes` as MLX takes them: absent or null = all axes; an int; or a list.
pub fn kw_axes(kw: &Value, key: &str) -> umx::Axes {
    match kw.get(key) {
        None | Some(Value::Null) => umx::Axes::All,
        Some(Value::Number(n)) => umx::Axes::List(vec![n.as_i64().unwrap()]),
        Some(Value::Array(a)) => umx::Axes::List(a.iter().filter_map(Value::as_i64).collect()),
        Some(other) => panic!("bad axes {other}"),
    }
}
