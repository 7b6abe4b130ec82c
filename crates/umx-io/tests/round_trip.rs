//! What umx writes, umx reads back bit for bit: every dtype, 0-d and empty shapes, and views.

mod common;

use common::{TempDir, arbitrary, assert_err_mentions, assert_same};
use std::collections::BTreeMap;
use umx_core::{Array, Complex32, Dtype, ops};
use umx_io::{
    SafeTensors, load_npy, load_npz, load_safetensors, save_npy, save_npz, save_npz_compressed,
    save_safetensors,
};

const SHAPES: [&[usize]; 5] = [&[], &[0], &[3, 0, 2], &[7], &[2, 3, 5]];

fn numpy_dtypes() -> impl Iterator<Item = Dtype> {
    Dtype::ALL.into_iter().filter(|&d| d != Dtype::Bfloat16)
}

#[test]
fn safetensors_round_trips_every_dtype_and_shape_bit_for_bit() {
    umx_cpu::register();
    let dir = TempDir::new("st");
    let mut arrays = BTreeMap::new();
    for (i, d) in Dtype::ALL.into_iter().enumerate() {
        for (j, shape) in SHAPES.iter().enumerate() {
            arrays.insert(format!("{d}.{j}"), arbitrary(d, shape, (i * 10 + j) as u64));
        }
    }
    let path = dir.path("all.safetensors");
    save_safetensors(&path, &arrays, None).unwrap();
    let back = load_safetensors(&path).unwrap();
    assert_eq!(back.len(), arrays.len());
    for (name, a) in &arrays {
        assert_same(a, &back[name], name);
    }
}

#[test]
fn npy_round_trips_every_numpy_dtype_and_shape_bit_for_bit() {
    umx_cpu::register();
    let dir = TempDir::new("npy");
    for (i, d) in numpy_dtypes().enumerate() {
        for (j, shape) in SHAPES.iter().enumerate() {
            let a = arbitrary(d, shape, (i * 10 + j) as u64);
            let path = dir.path(&format!("{d}-{j}.npy"));
            save_npy(&path, &a).unwrap();
            assert_same(&a, &load_npy(&path).unwrap(), &format!("{d} {shape:?}"));
        }
    }
}

#[test]
fn npz_round_trips_every_numpy_dtype_stored_and_deflated() {
    umx_cpu::register();
    let dir = TempDir::new("npz");
    let mut arrays = BTreeMap::new();
    for (i, d) in numpy_dtypes().enumerate() {
        for (j, shape) in SHAPES.iter().enumerate() {
            arrays.insert(format!("{d}_{j}"), arbitrary(d, shape, (i * 10 + j) as u64));
        }
    }
    // Compressible data too, so deflate really shrinks something.
    arrays.insert(
        "zeros".into(),
        ops::zeros(&[64, 64], Some(Dtype::Float32)).unwrap(),
    );
    let stored = dir.path("stored.npz");
    let deflated = dir.path("deflated.npz");
    save_npz(&stored, &arrays).unwrap();
    save_npz_compressed(&deflated, &arrays).unwrap();
    assert!(
        std::fs::metadata(&deflated).unwrap().len() < std::fs::metadata(&stored).unwrap().len()
    );
    for path in [&stored, &deflated] {
        let back = load_npz(path).unwrap();
        assert_eq!(back.len(), arrays.len());
        for (name, a) in &arrays {
            assert_same(a, &back[name], name);
        }
    }
}

#[test]
fn transposed_and_strided_views_save_as_their_logical_values() {
    umx_cpu::register();
    let dir = TempDir::new("views");
    let a = Array::from_slice(&(0..24).collect::<Vec<i32>>(), &[2, 3, 4]).unwrap();
    let t = ops::transpose(&a, None).unwrap(); // shape [4, 3, 2]
    let s = ops::slice(&a, &[0, 0, 1], &[2, 3, 4], &[1, 2, 2]).unwrap(); // shape [2, 2, 2]
    let b = ops::broadcast_to(&Array::from_slice(&[1.5f32, -2.0], &[2]).unwrap(), &[3, 2]).unwrap();
    let expected_t: Vec<i32> = (0..4)
        .flat_map(|k| (0..3).flat_map(move |j| (0..2).map(move |i| i * 12 + j * 4 + k)))
        .collect();
    assert_eq!(t.to_vec::<i32>().unwrap(), expected_t);
    assert_eq!(s.to_vec::<i32>().unwrap(), [1, 3, 9, 11, 13, 15, 21, 23]);

    let st = dir.path("views.safetensors");
    save_safetensors(&st, [("t", &t), ("s", &s), ("b", &b)], None).unwrap();
    let back = load_safetensors(&st).unwrap();
    assert_eq!(back["t"].shape(), &[4, 3, 2]);
    assert_eq!(back["t"].to_vec::<i32>().unwrap(), expected_t);
    assert_eq!(
        back["s"].to_vec::<i32>().unwrap(),
        [1, 3, 9, 11, 13, 15, 21, 23]
    );
    assert_eq!(
        back["b"].to_vec::<f32>().unwrap(),
        [1.5, -2.0, 1.5, -2.0, 1.5, -2.0]
    );

    let npy = dir.path("t.npy");
    save_npy(&npy, &t).unwrap();
    assert_eq!(load_npy(&npy).unwrap().to_vec::<i32>().unwrap(), expected_t);

    let npz = dir.path("views.npz");
    save_npz_compressed(&npz, [("t", &t), ("s", &s)]).unwrap();
    let back = load_npz(&npz).unwrap();
    assert_eq!(back["t"].to_vec::<i32>().unwrap(), expected_t);
    assert_eq!(
        back["s"].to_vec::<i32>().unwrap(),
        [1, 3, 9, 11, 13, 15, 21, 23]
    );
}

#[test]
fn lazy_arrays_are_evaluated_before_saving() {
    umx_cpu::register();
    let dir = TempDir::new("lazy");
    let x = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let y = ops::multiply(&x, &x).unwrap();
    assert!(!y.is_evaluated());
    let path = dir.path("y.safetensors");
    save_safetensors(&path, [("y", &y)], None).unwrap();
    assert_eq!(
        load_safetensors(&path).unwrap()["y"]
            .to_vec::<f32>()
            .unwrap(),
        [1.0, 4.0, 9.0]
    );
}

#[test]
fn safetensors_metadata_round_trips_and_tensors_are_read_only_when_asked() {
    umx_cpu::register();
    let dir = TempDir::new("meta");
    let path = dir.path("m.safetensors");
    let meta = BTreeMap::from([
        ("format".to_string(), "mlx".to_string()),
        ("ünïcode".to_string(), "\"quoted\" \n text".to_string()),
    ]);
    let w =
        Array::from_slice(&[Complex32::new(1.0, 2.0), Complex32::new(-3.0, 0.5)], &[2]).unwrap();
    save_safetensors(&path, [("w", &w)], Some(&meta)).unwrap();
    let file = SafeTensors::open(&path).unwrap();
    assert_eq!(file.metadata(), &meta);
    assert_eq!(file.len(), 1);
    let info = file.info("w").unwrap();
    assert_eq!(
        (info.dtype, info.file_dtype.as_str(), &info.shape[..]),
        (Some(Dtype::Complex64), "C64", &[2usize][..])
    );
    assert_same(&w, &file.get("w").unwrap(), "w");
    assert_err_mentions(
        file.get("nope"),
        &["safetensors", "no tensor named \"nope\""],
    );

    // No metadata at all: an empty map.
    save_safetensors(&path, [("w", &w)], None).unwrap();
    assert!(SafeTensors::open(&path).unwrap().metadata().is_empty());
}

#[test]
fn a_file_open_for_reading_survives_being_saved_over() {
    umx_cpu::register();
    let dir = TempDir::new("overwrite");
    let path = dir.path("w.safetensors");
    let old = Array::from_slice(&[1.0f32; 1000], &[1000]).unwrap();
    save_safetensors(&path, [("w", &old)], None).unwrap();
    let file = SafeTensors::open(&path).unwrap();
    let new = Array::from_slice(&[2.0f64; 10], &[10]).unwrap();
    save_safetensors(&path, [("w", &new)], None).unwrap();
    // The open file still reads the old contents; a new open reads the new ones.
    assert_same(&old, &file.get("w").unwrap(), "old");
    assert_same(&new, &load_safetensors(&path).unwrap()["w"], "new");
    // No temporary files are left behind.
    assert_eq!(std::fs::read_dir(dir.path("")).unwrap().count(), 1);
}

#[test]
fn bfloat16_in_npy_or_npz_is_refused_with_the_way_out() {
    umx_cpu::register();
    let dir = TempDir::new("bf16");
    let a = arbitrary(Dtype::Bfloat16, &[2], 1);
    assert_err_mentions(
        save_npy(dir.path("a.npy"), &a),
        &["npy", "bfloat16", "astype"],
    );
    assert_err_mentions(
        save_npz(dir.path("a.npz"), [("a", &a)]),
        &["npz", "bfloat16", "astype"],
    );
    assert!(!dir.path("a.npy").exists() && !dir.path("a.npz").exists());
}

#[test]
fn two_arrays_with_one_name_are_refused() {
    umx_cpu::register();
    let dir = TempDir::new("dup");
    let a = Array::scalar(1i32);
    assert_err_mentions(
        save_safetensors(dir.path("d.safetensors"), [("a", &a), ("a", &a)], None),
        &["safetensors", "two arrays are named \"a\""],
    );
    assert_err_mentions(
        save_npz(dir.path("d.npz"), [("a", &a), ("a", &a)]),
        &["npz", "two arrays are named \"a\""],
    );
    assert_err_mentions(
        save_safetensors(dir.path("d.safetensors"), [("__metadata__", &a)], None),
        &["__metadata__"],
    );
}

#[test]
fn loaded_fortran_order_arrays_work_in_ops() {
    umx_cpu::register();
    let a = load_npy(common::reference_dir().join("float32_fortran.npy")).unwrap();
    let b = ops::add(&a, 7.5f32).unwrap();
    let expected: Vec<f32> = (0..24).map(|i| i as f32).collect();
    assert_eq!(b.to_vec::<f32>().unwrap(), expected);
    let r = ops::reshape(&a, &[4, 6]).unwrap();
    let expected: Vec<f32> = (0..24).map(|i| i as f32 - 7.5).collect();
    assert_eq!(r.to_vec::<f32>().unwrap(), expected);
}

#[test]
fn saving_to_a_missing_directory_is_an_error_naming_the_file() {
    umx_cpu::register();
    let path = std::path::Path::new("/nonexistent-umx-dir/x.npy");
    assert_err_mentions(
        save_npy(path, &Array::scalar(1u8)),
        &["npy", "/nonexistent-umx-dir/x.npy", "cannot create"],
    );
    assert_err_mentions(
        load_npy(path),
        &["npy", "/nonexistent-umx-dir/x.npy", "cannot open"],
    );
    assert_err_mentions(load_safetensors(path), &["safetensors", "cannot open"]);
}
