//! Malformed and truncated files give an error that names the format and the problem: never a
//! panic, an abort, or a read out of bounds. Each format is cut at every length and has its
//! header bytes flipped, and specific damage is checked for its message.

mod common;

use common::{TempDir, arbitrary, assert_err_mentions, reference_dir};
use std::path::Path;
use umx_core::{Array, Dtype};
use umx_io::{
    Gguf, SafeTensors, load_npy, load_npz, save_npy, save_npz_compressed, save_safetensors,
};

/// Opens the file and reads every array in it; any error is fine, a panic is not.
type Loader = fn(&Path) -> umx_core::Result<()>;

fn read_safetensors(p: &Path) -> umx_core::Result<()> {
    let f = SafeTensors::open(p)?;
    for name in f.names() {
        if f.info(name).unwrap().dtype.is_some() {
            f.get(name)?.to_vec::<f64>()?;
        }
    }
    Ok(())
}

fn read_npy(p: &Path) -> umx_core::Result<()> {
    load_npy(p)?.to_vec::<f64>().map(drop)
}

fn read_npz(p: &Path) -> umx_core::Result<()> {
    for a in load_npz(p)?.values() {
        a.to_vec::<f64>()?;
    }
    Ok(())
}

fn read_gguf(p: &Path) -> umx_core::Result<()> {
    let f = Gguf::open(p)?;
    for t in f.tensors() {
        if t.ggml_type.dtype().is_some() {
            f.get(&t.name)?.to_vec::<f64>()?;
        }
    }
    Ok(())
}

/// Writes `bytes` cut to every length below `whole.len()` (all of them for small files) and
/// checks each cut file is an error that names `format`, except where `ok_from` says a cut
/// this long is still a whole file.
fn truncations(dir: &TempDir, whole: &[u8], format: &str, ok_from: usize, load: Loader) {
    let path = dir.path(&format!("cut.{format}"));
    for len in 0..whole.len() {
        std::fs::write(&path, &whole[..len]).unwrap();
        match load(&path) {
            Err(e) => assert!(
                e.to_string().starts_with(&format!("{format}: ")),
                "cut at {len}: {e}"
            ),
            Ok(()) => assert!(len >= ok_from, "a {format} file cut to {len} bytes loaded"),
        }
    }
}

/// Writes `whole` with each of its first `n` bytes flipped in a few ways; loading must not
/// panic, and an error must name `format`.
fn flips(dir: &TempDir, whole: &[u8], n: usize, format: &str, load: Loader) -> usize {
    let path = dir.path(&format!("flip.{format}"));
    let mut errors = 0;
    for i in 0..n.min(whole.len()) {
        for mask in [0x01u8, 0x80, 0xff, 0x20] {
            let mut b = whole.to_vec();
            b[i] ^= mask;
            std::fs::write(&path, &b).unwrap();
            if let Err(e) = load(&path) {
                assert!(
                    e.to_string().starts_with(&format!("{format}: ")),
                    "byte {i}: {e}"
                );
                errors += 1;
            }
        }
    }
    errors
}

fn sample_arrays() -> Vec<(String, Array)> {
    [
        Dtype::Float32,
        Dtype::Int64,
        Dtype::Bool,
        Dtype::Complex64,
        Dtype::Float16,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, d)| (format!("a{i}"), arbitrary(d, &[2, 3], i as u64)))
    .collect()
}

#[test]
fn safetensors_cut_at_any_length_or_with_flipped_header_bytes_is_an_error_not_a_panic() {
    umx_cpu::register();
    let dir = TempDir::new("st-fuzz");
    let path = dir.path("ok.safetensors");
    save_safetensors(&path, sample_arrays(), None).unwrap();
    let whole = std::fs::read(&path).unwrap();
    truncations(&dir, &whole, "safetensors", usize::MAX, read_safetensors);
    let header = 8 + u64::from_le_bytes(whole[..8].try_into().unwrap()) as usize;
    let errors = flips(&dir, &whole, header, "safetensors", read_safetensors);
    assert!(errors > header, "most header flips are errors ({errors})");
}

#[test]
fn npy_cut_at_any_length_or_with_flipped_header_bytes_is_an_error_not_a_panic() {
    umx_cpu::register();
    let dir = TempDir::new("npy-fuzz");
    for (name, a) in sample_arrays() {
        let path = dir.path(&format!("{name}.npy"));
        save_npy(&path, &a).unwrap();
        let whole = std::fs::read(&path).unwrap();
        truncations(&dir, &whole, "npy", usize::MAX, read_npy);
        flips(&dir, &whole, 64, "npy", read_npy);
    }
    // NumPy's own files too: big-endian and Fortran order.
    for f in [
        "float64_big_endian.npy",
        "int16_fortran_big_endian.npy",
        "version_3_0.npy",
    ] {
        let whole = std::fs::read(reference_dir().join(f)).unwrap();
        truncations(&dir, &whole, "npy", usize::MAX, read_npy);
        flips(&dir, &whole, 64, "npy", read_npy);
    }
}

#[test]
fn npz_cut_at_any_length_or_with_any_byte_flipped_is_an_error_not_a_panic() {
    umx_cpu::register();
    let dir = TempDir::new("npz-fuzz");
    let path = dir.path("ok.npz");
    save_npz_compressed(&path, sample_arrays().into_iter().take(2)).unwrap();
    let whole = std::fs::read(&path).unwrap();
    truncations(&dir, &whole, "npz", usize::MAX, read_npz);
    flips(&dir, &whole, whole.len(), "npz", read_npz);
    let stored = std::fs::read(reference_dir().join("positional.npz")).unwrap();
    truncations(&dir, &stored, "npz", usize::MAX, read_npz);
    // Every byte of a stored entry's data is covered by its CRC.
    let errors = flips(&dir, &stored, stored.len(), "npz", read_npz);
    assert!(
        errors > stored.len() * 2,
        "most flips are errors ({errors})"
    );
}

#[test]
fn gguf_cut_at_any_length_or_with_flipped_header_bytes_is_an_error_not_a_panic() {
    umx_cpu::register();
    let dir = TempDir::new("gguf-fuzz");
    for f in ["v3.gguf", "v2.gguf", "v3_big_endian.gguf"] {
        let whole = std::fs::read(reference_dir().join(f)).unwrap();
        let file = Gguf::open(reference_dir().join(f)).unwrap();
        // Cut in the padding after the last tensor's data, the file is still whole.
        let data_end = file
            .tensors()
            .iter()
            .filter_map(|t| t.file_range.clone())
            .map(|r| r.end)
            .max()
            .unwrap();
        truncations(&dir, &whole, "gguf", data_end, read_gguf);
        let data_start = file
            .tensors()
            .iter()
            .filter_map(|t| t.file_range.clone())
            .map(|r| r.start)
            .min()
            .unwrap();
        flips(&dir, &whole, data_start, "gguf", read_gguf);
    }
}

/// A safetensors file with the given JSON header and data.
fn safetensors_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn safetensors_damage_is_named_in_the_error() {
    umx_cpu::register();
    let dir = TempDir::new("st-bad");
    let p = dir.path("bad.safetensors");
    let case = |bytes: &[u8], parts: &[&str]| {
        std::fs::write(&p, bytes).unwrap();
        assert_err_mentions(
            SafeTensors::open(&p),
            &[&["safetensors: ", p.to_str().unwrap()][..], parts].concat(),
        );
    };
    case(b"\x05\0\0", &["shorter than the 8-byte header length"]);
    case(
        &u64::MAX.to_le_bytes(),
        &["header length 18446744073709551615 runs past the end"],
    );
    case(
        &safetensors_bytes("{\"a\": 1", &[]),
        &["header is not valid"],
    );
    case(b"\x01\0\0\0\0\0\0\0\xff", &["UTF-8"]);
    let t = |dtype: &str, shape: &str, offsets: &str| {
        format!(r#"{{"t":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}}}"#)
    };
    case(
        &safetensors_bytes(&t("F32", "[2]", "[0,8]"), &[0; 4]),
        &["truncated"],
    );
    case(
        &safetensors_bytes(&t("F32", "[2]", "[0,8]"), &[0; 12]),
        &["trailing"],
    );
    case(
        &safetensors_bytes(&t("F32", "[3]", "[0,8]"), &[0; 8]),
        &["does not match its shape and dtype"],
    );
    case(
        &safetensors_bytes(&t("F32", "[2]", "[4,12]"), &[0; 12]),
        &["\"t\"", "offsets must tile"],
    );
    case(
        &safetensors_bytes(&t("Q7", "[2]", "[0,8]"), &[0; 8]),
        &["header is not valid", "Q7"],
    );
    case(
        &safetensors_bytes(
            &t("F32", "[4294967296,4294967296,4294967296]", "[0,8]"),
            &[0; 8],
        ),
        &["overflow"],
    );
    // A dtype of the format that umx lacks: listed, and refused by name when read.
    std::fs::write(
        &p,
        safetensors_bytes(&t("F8_E4M3", "[2]", "[0,2]"), &[1, 2]),
    )
    .unwrap();
    let f = SafeTensors::open(&p).unwrap();
    assert_eq!(f.info("t").unwrap().dtype, None);
    assert_err_mentions(f.get("t"), &["safetensors", "\"t\"", "F8_E4M3", "no dtype"]);
}

/// An npy file: magic, version, header length, header, data.
fn npy_bytes(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = b"\x93NUMPY".to_vec();
    b.extend_from_slice(&[version, 0]);
    if version == 1 {
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        b.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn npy_damage_is_named_in_the_error() {
    umx_cpu::register();
    let dir = TempDir::new("npy-bad");
    let p = dir.path("bad.npy");
    let case = |bytes: &[u8], parts: &[&str]| {
        std::fs::write(&p, bytes).unwrap();
        assert_err_mentions(
            load_npy(&p),
            &[&["npy: ", p.to_str().unwrap()][..], parts].concat(),
        );
    };
    let h = |descr: &str, shape: &str| {
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n")
    };
    case(b"PK\x03\x04 not npy at all", &["not an npy file"]);
    case(b"\x93NUMPY", &["too short"]);
    case(
        &npy_bytes(4, &h("<f4", "(1,)"), &[0; 4]),
        &["unsupported format version 4.0"],
    );
    case(
        &npy_bytes(1, &h("<f4", "(2,)"), &[0; 4]),
        &["needs 8 bytes", "truncated"],
    );
    case(
        &npy_bytes(1, &h("<c16", "(1,)"), &[0; 16]),
        &["\"<c16\" has no umx dtype"],
    );
    case(&npy_bytes(1, &h("|O", "(1,)"), &[0; 8]), &["\"|O\""]);
    case(&npy_bytes(1, &h("<U3", "(1,)"), &[0; 12]), &["\"<U3\""]);
    case(
        &npy_bytes(1, &h("<f4", "(-1,)"), &[]),
        &["bad header", "negative"],
    );
    case(
        &npy_bytes(1, &h("<f4", "(4294967296, 4294967296, 4294967296)"), &[]),
        &["too large"],
    );
    case(
        &npy_bytes(1, "{'descr': '<f4', 'shape': (1,)}", &[0; 4]),
        &["no \"fortran_order\" key"],
    );
    case(
        &npy_bytes(1, "{'descr': '<f4', 'fortran", &[]),
        &["bad header"],
    );
    case(
        &npy_bytes(
            1,
            "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,)}",
            &[0; 4],
        ),
        &["structured dtypes"],
    );
    // A header length past the end of the file, in both header-length widths.
    let mut b = npy_bytes(1, &h("<f4", "()"), &[0; 4]);
    b[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
    case(&b, &["header length 65535 runs past the end"]);
    let mut b = npy_bytes(2, &h("<f4", "()"), &[0; 4]);
    b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    case(&b, &["header length 4294967295 runs past the end"]);
    // Bools that are not 0 or 1 load as true (every nonzero byte), never as invalid bools.
    std::fs::write(&p, npy_bytes(1, &h("|b1", "(3,)"), &[0, 2, 255])).unwrap();
    assert_eq!(
        load_npy(&p).unwrap().to_vec::<bool>().unwrap(),
        [false, true, true]
    );
}

#[test]
fn npz_damage_is_named_in_the_error() {
    umx_cpu::register();
    let dir = TempDir::new("npz-bad");
    let p = dir.path("bad.npz");
    std::fs::write(&p, b"not a zip file").unwrap();
    assert_err_mentions(load_npz(&p), &["npz: ", "not a readable zip archive"]);
    std::fs::write(&p, b"").unwrap();
    assert_err_mentions(load_npz(&p), &["npz: ", "zip"]);
    // An entry that is not a valid npy file: the error names the entry and the npy problem.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("x.npy", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut zip, b"\x93NUMPY\x01\x00\xff\x00{").unwrap();
    zip.start_file("notes.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::fs::write(&p, zip.finish().unwrap().into_inner()).unwrap();
    assert_err_mentions(
        load_npz(&p),
        &[
            "npz: ",
            "entry \"x\"",
            "header length 255 runs past the end",
        ],
    );
    // Only .npy entries are arrays: other entries are left out.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("notes.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut zip, b"hello").unwrap();
    std::fs::write(&p, zip.finish().unwrap().into_inner()).unwrap();
    assert!(load_npz(&p).unwrap().is_empty());
    // A corrupted stored entry fails its CRC check.
    let mut b = std::fs::read(reference_dir().join("positional.npz")).unwrap();
    let at = b.windows(4).position(|w| w == b"\x93NUM").unwrap() + 130; // in arr_0's data
    b[at] ^= 0x40;
    std::fs::write(&p, &b).unwrap();
    assert_err_mentions(load_npz(&p), &["npz: ", "entry \"arr_0\""]);
}

/// GGUF bytes: a header, metadata as (key, type, encoded value), tensor infos as
/// (name, dims, ggml type, offset), padding to `align`, then `data`.
fn gguf_bytes(
    version: u32,
    kvs: &[(&str, u32, Vec<u8>)],
    tensors: &[(&str, &[u64], u32, u64)],
    align: usize,
    data: &[u8],
) -> Vec<u8> {
    let string = |s: &str| [&(s.len() as u64).to_le_bytes()[..], s.as_bytes()].concat();
    let mut b = b"GGUF".to_vec();
    b.extend(version.to_le_bytes());
    b.extend((tensors.len() as u64).to_le_bytes());
    b.extend((kvs.len() as u64).to_le_bytes());
    for (k, ty, v) in kvs {
        b.extend(string(k));
        b.extend(ty.to_le_bytes());
        b.extend(v);
    }
    for (name, dims, ty, offset) in tensors {
        b.extend(string(name));
        b.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
        b.extend(ty.to_le_bytes());
        b.extend(offset.to_le_bytes());
    }
    b.resize(b.len().next_multiple_of(align), 0);
    b.extend(data);
    b
}

#[test]
fn gguf_damage_is_named_in_the_error() {
    umx_cpu::register();
    let dir = TempDir::new("gguf-bad");
    let p = dir.path("bad.gguf");
    let case = |bytes: &[u8], parts: &[&str]| {
        std::fs::write(&p, bytes).unwrap();
        assert_err_mentions(
            Gguf::open(&p),
            &[&["gguf: ", p.to_str().unwrap()][..], parts].concat(),
        );
    };
    let f32x2: &[(&str, &[u64], u32, u64)] = &[("w", &[2], 0, 0)];
    assert!(
        Gguf::open({
            std::fs::write(&p, gguf_bytes(3, &[], f32x2, 32, &[0; 8])).unwrap();
            &p
        })
        .is_ok()
    );
    case(b"GGU", &["too short"]);
    case(b"GGML\x03\0\0\0", &["not a GGUF file"]);
    case(
        &gguf_bytes(1, &[], &[], 32, &[]),
        &["version 1 is not supported"],
    );
    case(
        &gguf_bytes(7, &[], &[], 32, &[]),
        &["unsupported GGUF version 7"],
    );
    case(
        &gguf_bytes(3, &[], f32x2, 32, &[0; 4]),
        &["\"w\"", "runs past the end of the file"],
    );
    case(
        &gguf_bytes(3, &[], &[("w", &[2], 0, 8)], 32, &[0; 64]),
        &["offset 8, not a multiple of the alignment 32"],
    );
    case(
        &gguf_bytes(3, &[], &[("w", &[1, 1, 1, 1, 1], 0, 0)], 32, &[0; 4]),
        &["5 dimensions"],
    );
    case(
        &gguf_bytes(3, &[], &[("q", &[31], 2, 0)], 32, &[0; 64]),
        &["Q4_0", "not a multiple of its block of 32"],
    );
    case(
        &gguf_bytes(3, &[], &[("w", &[u64::MAX, u64::MAX], 0, 0)], 32, &[0; 8]),
        &["\"w\" is too large"],
    );
    case(
        &gguf_bytes(3, &[], &[("w", &[2], 0, 0), ("w", &[2], 0, 0)], 32, &[0; 8]),
        &["\"w\" appears twice"],
    );
    case(
        &gguf_bytes(3, &[("k", 13, vec![])], &[], 32, &[]),
        &["metadata \"k\" has unknown value type 13"],
    );
    case(
        &gguf_bytes(3, &[("k", 0, vec![1]), ("k", 0, vec![2])], &[], 32, &[]),
        &["\"k\" appears twice"],
    );
    case(
        &gguf_bytes(
            3,
            &[("general.alignment", 4, 24u32.to_le_bytes().to_vec())],
            &[],
            32,
            &[],
        ),
        &["general.alignment", "not a power of two"],
    );
    // Counts that the rest of the file cannot hold are refused before anything is allocated.
    let mut huge_array = 0u32.to_le_bytes().to_vec();
    huge_array.extend(u64::MAX.to_le_bytes());
    case(
        &gguf_bytes(3, &[("k", 9, huge_array)], &[], 32, &[]),
        &["more than the", "bytes left"],
    );
    case(
        &gguf_bytes(
            3,
            &[("k", 8, u64::MAX.to_le_bytes().to_vec())],
            &[],
            32,
            &[],
        ),
        &["length of metadata \"k\""],
    );
    let mut b = gguf_bytes(3, &[], &[], 32, &[]);
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    case(&b, &["the tensor count", "more than the"]);
    // Arrays nested past any real use are refused (the stack stays safe).
    let mut nested = Vec::new();
    for _ in 0..20 {
        nested.extend(9u32.to_le_bytes());
        nested.extend(1u64.to_le_bytes());
    }
    nested.extend(0u32.to_le_bytes());
    nested.extend(0u64.to_le_bytes());
    case(
        &gguf_bytes(3, &[("k", 9, nested)], &[], 32, &[]),
        &["nests arrays more than"],
    );
    // An unknown tensor type is listed; reading it says so.
    std::fs::write(&p, gguf_bytes(3, &[], &[("x", &[2], 99, 0)], 32, &[0; 8])).unwrap();
    let f = Gguf::open(&p).unwrap();
    assert_eq!(f.tensors()[0].file_range, None);
    assert_err_mentions(
        f.get("x"),
        &["gguf", "\"x\"", "ggml type 99", "not one umx knows"],
    );
    assert_err_mentions(f.get("y"), &["gguf", "no tensor named \"y\""]);
}
