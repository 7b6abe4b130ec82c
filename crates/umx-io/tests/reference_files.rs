//! Files written by other programs load with the values they were written with: NumPy's
//! `save`/`savez`/`savez_compressed`, the `safetensors` package and a safetensors file encoded by
//! hand after the spec, and GGUF files packed after the GGUF spec. tests/reference/io.py writes
//! them and `io.json`, which says what each must hold.

mod common;

use common::{assert_err_mentions, reference_dir};
use serde_json::Value;
use umx_core::{Array, Complex32, Dtype};
use umx_io::gguf::GgmlType;
use umx_io::{ByteOrder, Gguf, GgufValue, SafeTensors, load_gguf, load_npy, load_npz};

fn manifest() -> Value {
    let text = std::fs::read_to_string(reference_dir().join("io.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Asserts `a` has the dtype, shape and exact values `expected` records (floats as the bits of
/// their float64 value).
fn check(a: &Array, expected: &Value, what: &str) {
    let dtype = Dtype::from_name(expected["dtype"].as_str().unwrap()).unwrap();
    let shape: Vec<usize> = expected["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(a.dtype(), dtype, "{what}: dtype");
    assert_eq!(a.shape(), &shape[..], "{what}: shape");
    let values = expected["values"].as_array().unwrap();
    match dtype {
        Dtype::Bool => {
            let want: Vec<bool> = values.iter().map(|v| v.as_bool().unwrap()).collect();
            assert_eq!(a.to_vec::<bool>().unwrap(), want, "{what}");
        }
        d if d.is_complex() => {
            let got: Vec<[u64; 2]> = a
                .to_vec::<Complex32>()
                .unwrap()
                .iter()
                .map(|z| [(z.re as f64).to_bits(), (z.im as f64).to_bits()])
                .collect();
            let want: Vec<[u64; 2]> = values
                .iter()
                .map(|p| [p[0].as_u64().unwrap(), p[1].as_u64().unwrap()])
                .collect();
            assert_eq!(got, want, "{what}");
        }
        d if d.is_float() => {
            let got: Vec<u64> = a
                .to_vec::<f64>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            let want: Vec<u64> = values.iter().map(|v| v.as_u64().unwrap()).collect();
            assert_eq!(got, want, "{what}");
        }
        d if d.is_signed() => {
            let want: Vec<i64> = values.iter().map(|v| v.as_i64().unwrap()).collect();
            assert_eq!(a.to_vec::<i64>().unwrap(), want, "{what}");
        }
        _ => {
            let want: Vec<u64> = values.iter().map(|v| v.as_u64().unwrap()).collect();
            assert_eq!(a.to_vec::<u64>().unwrap(), want, "{what}");
        }
    }
}

fn entries<'a>(m: &'a Value, format: &str) -> &'a [Value] {
    m[format].as_array().unwrap()
}

#[test]
fn npy_files_from_numpy_load_with_their_values() {
    umx_cpu::register();
    let m = manifest();
    let files = entries(&m, "npy");
    // Every NumPy dtype umx has, big-endian, Fortran order, 0-d, empty, versions 2.0 and 3.0.
    assert!(files.len() >= 27, "{} npy files", files.len());
    for e in files {
        let name = e["file"].as_str().unwrap();
        let a = load_npy(reference_dir().join(name)).unwrap();
        check(&a, e, name);
    }
}

#[test]
fn npz_files_from_numpy_stored_and_deflated_load_with_their_values() {
    umx_cpu::register();
    let m = manifest();
    for e in entries(&m, "npz") {
        let name = e["file"].as_str().unwrap();
        let arrays = load_npz(reference_dir().join(name)).unwrap();
        let want = e["arrays"].as_object().unwrap();
        assert_eq!(
            arrays.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (k, rec) in want {
            check(&arrays[k], rec, &format!("{name}: {k}"));
        }
    }
}

#[test]
fn safetensors_files_from_python_load_with_their_values_and_metadata() {
    umx_cpu::register();
    let m = manifest();
    let files = entries(&m, "safetensors");
    assert!(!files.is_empty());
    for e in files {
        let name = e["file"].as_str().unwrap();
        let file = SafeTensors::open(reference_dir().join(name)).unwrap();
        for (k, v) in e["metadata"].as_object().unwrap() {
            assert_eq!(
                file.metadata()[k],
                v.as_str().unwrap(),
                "{name}: metadata {k}"
            );
        }
        let want = e["arrays"].as_object().unwrap();
        assert_eq!(
            file.names(),
            want.keys().map(String::as_str).collect::<Vec<_>>(),
            "{name}"
        );
        for (k, rec) in want {
            check(&file.get(k).unwrap(), rec, &format!("{name}: {k}"));
        }
    }
}

/// The value io.json records as `[type, value]`.
fn gguf_value(ty: u64, v: &Value) -> GgufValue {
    use GgufValue as G;
    match ty {
        0 => G::U8(v.as_u64().unwrap() as u8),
        1 => G::I8(v.as_i64().unwrap() as i8),
        2 => G::U16(v.as_u64().unwrap() as u16),
        3 => G::I16(v.as_i64().unwrap() as i16),
        4 => G::U32(v.as_u64().unwrap() as u32),
        5 => G::I32(v.as_i64().unwrap() as i32),
        6 => G::F32(v.as_f64().unwrap() as f32),
        7 => G::Bool(v.as_bool().unwrap()),
        8 => G::String(v.as_str().unwrap().to_string()),
        9 => {
            let elem = v[0].as_u64().unwrap();
            G::Array(
                v[1].as_array()
                    .unwrap()
                    .iter()
                    .map(|x| gguf_value(elem, x))
                    .collect(),
            )
        }
        10 => G::U64(v.as_u64().unwrap()),
        11 => G::I64(v.as_i64().unwrap()),
        12 => G::F64(v.as_f64().unwrap()),
        _ => panic!("type {ty}"),
    }
}

#[test]
fn gguf_files_load_metadata_of_every_type_and_tensors_in_umx_shape_order() {
    umx_cpu::register();
    let m = manifest();
    let files = entries(&m, "gguf");
    assert_eq!(files.len(), 3);
    for e in files {
        let name = e["file"].as_str().unwrap();
        let file = Gguf::open(reference_dir().join(name)).unwrap();
        assert_eq!(
            file.version() as u64,
            e["version"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(file.alignment(), e["alignment"].as_u64().unwrap(), "{name}");
        let meta = e["metadata"].as_object().unwrap();
        assert_eq!(file.metadata().len(), meta.len(), "{name}");
        for (k, tv) in meta {
            let want = gguf_value(tv[0].as_u64().unwrap(), &tv[1]);
            assert_eq!(file.metadata()[k], want, "{name}: metadata {k}");
        }
        for (k, rec) in e["arrays"].as_object().unwrap() {
            check(&file.get(k).unwrap(), rec, &format!("{name}: {k}"));
            let info = file.tensor_info(k).unwrap();
            let reversed: Vec<u64> = info.shape.iter().rev().map(|&d| d as u64).collect();
            assert_eq!(info.dims, reversed, "{name}: {k} dims are innermost first");
        }
        let quantized = e["quantized"].as_object().unwrap();
        assert_eq!(
            file.tensors().len(),
            e["arrays"].as_object().unwrap().len() + quantized.len(),
            "{name}"
        );
    }
}

#[test]
fn gguf_big_endian_files_are_detected_and_read() {
    umx_cpu::register();
    let be = Gguf::open(reference_dir().join("v3_big_endian.gguf")).unwrap();
    let le = Gguf::open(reference_dir().join("v3.gguf")).unwrap();
    assert_eq!(be.byte_order(), ByteOrder::Big);
    assert_eq!(le.byte_order(), ByteOrder::Little);
    for name in [
        "t.float32",
        "t.float16",
        "t.bfloat16",
        "t.int64",
        "t.float64",
    ] {
        common::assert_same(&le.get(name).unwrap(), &be.get(name).unwrap(), name);
    }
}

#[test]
fn gguf_q8_0_tensors_load_as_codes_scales_and_biases() {
    umx_cpu::register();
    let path = reference_dir().join("v3.gguf");
    let file = Gguf::open(&path).unwrap();
    let q = file.tensor_info("t.q8_0").unwrap();
    assert_eq!(q.ggml_type, GgmlType::Q8_0);
    assert_eq!(q.ggml_type.name(), Some("Q8_0"));
    assert!(q.ggml_type.is_quantized());
    assert_eq!(q.shape, [1, 32]);
    assert_eq!(q.file_range.as_ref().map(|r| r.len()), Some(34));
    // `get` gives one array, so it points at `get_quantized`.
    assert_err_mentions(
        file.get("t.q8_0"),
        &["gguf", "t.q8_0", "Q8_0", "get_quantized"],
    );
    // The block is a scale of 0.5 and the int8 values 0..31.
    let (w, s, b, bits) = file.get_quantized("t.q8_0").unwrap();
    assert_eq!((w.shape(), s.shape(), bits), (&[1, 8][..], &[1, 1][..], 8));
    let x = umx_core::ops::dequantize(&w, &s, &b, 32, bits).unwrap();
    let want: Vec<f32> = (0..32).map(|i| 0.5 * i as f32).collect();
    assert_eq!(
        umx_core::ops::astype(&x, Dtype::Float32)
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        want
    );
    // Loading everything gives the codes under the tensor's name, and its scales and biases.
    let all = load_gguf(&path).unwrap();
    assert!(all.contains_key("t.q8_0.scales") && all.contains_key("t.q8_0.biases"));
    // A version 2 file with plain tensors loads whole.
    assert_eq!(load_gguf(reference_dir().join("v2.gguf")).unwrap().len(), 3);
}

#[test]
fn gguf_metadata_values_convert_between_widths() {
    assert_eq!(GgufValue::U32(64).as_u64(), Some(64));
    assert_eq!(GgufValue::I8(-1).as_u64(), None);
    assert_eq!(GgufValue::I8(-1).as_i64(), Some(-1));
    assert_eq!(GgufValue::U64(u64::MAX).as_i64(), None);
    assert_eq!(GgufValue::F32(0.5).as_f64(), Some(0.5));
    assert_eq!(GgufValue::String("x".into()).as_str(), Some("x"));
    assert_eq!(GgufValue::Bool(true).as_bool(), Some(true));
    assert_eq!(GgufValue::Array(vec![]).as_array(), Some(&[][..]));
}
