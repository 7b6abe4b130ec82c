//! npz: a zip archive of `.npy` files, one per array, named `<name>.npy` (NumPy's `savez` and
//! `savez_compressed`). Entries are stored or deflated; reading checks each entry's CRC.

use crate::bytes::ArrayBytes;
use crate::{format_error, map_file, npy, write_atomically};
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use umx_core::{Array, Error, Result};
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

const FORMAT: &str = "npz";

/// Loads every array of the `.npz` file at `path`, by name (the entry's name without `.npy`).
/// Entries whose names do not end in `.npy` are not arrays and are left out.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::Array;
/// let path = std::env::temp_dir().join(format!("umx-io-doc-npz-{}.npz", std::process::id()));
/// let x = Array::from_slice(&[1u8, 2, 3], &[3])?;
/// let y = Array::scalar(2.5f64);
/// umx_io::save_npz_compressed(&path, [("x", &x), ("y", &y)])?;
/// let arrays = umx_io::load_npz(&path)?;
/// assert_eq!(arrays["x"].to_vec::<u8>()?, [1, 2, 3]);
/// assert_eq!(arrays["y"].item::<f64>()?, 2.5);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn load_npz(path: impl AsRef<Path>) -> Result<BTreeMap<String, Array>> {
    let path = path.as_ref();
    let err = |p: String| format_error(FORMAT, path, p);
    let map = map_file(FORMAT, path)?;
    let mut zip = zip::ZipArchive::new(Cursor::new(&map[..]))
        .map_err(|e| err(format!("not a readable zip archive: {e}")))?;
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| err(format!("entry {i} cannot be read: {e}")))?;
        let Some(name) = entry.name().strip_suffix(".npy").map(str::to_string) else {
            continue;
        };
        if entry.is_dir() {
            continue;
        }
        let entry_err = |p: String| err(format!("entry {name:?}: {p}"));
        let size = entry.size();
        let array = npy::read(&mut entry, size, &entry_err)?;
        // Reading to the end is what makes the zip reader check the entry's CRC.
        std::io::copy(&mut entry, &mut std::io::sink())
            .map_err(|e| entry_err(format!("damaged: {e}")))?;
        out.insert(name, array);
    }
    Ok(out)
}

/// Writes `arrays` (pairs of a name and an array) to `path` as an uncompressed `.npz`
/// (NumPy's `savez`). Views are written as their logical values; bfloat16 is an error (see
/// [`save_npy`](crate::save_npy)), and so are two arrays with one name.
///
/// ```
/// # umx_cpu::register();
/// use std::collections::BTreeMap;
/// use umx_core::Array;
/// let path = std::env::temp_dir().join(format!("umx-io-doc-save-npz-{}.npz", std::process::id()));
/// let arrays = BTreeMap::from([("a".to_string(), Array::from_slice(&[1i64, 2], &[2])?)]);
/// umx_io::save_npz(&path, &arrays)?;
/// assert_eq!(umx_io::load_npz(&path)?["a"].to_vec::<i64>()?, [1, 2]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn save_npz<K, A>(
    path: impl AsRef<Path>,
    arrays: impl IntoIterator<Item = (K, A)>,
) -> Result<()>
where
    K: AsRef<str>,
    A: Borrow<Array>,
{
    save(path.as_ref(), arrays, CompressionMethod::Stored)
}

/// [`save_npz`] with every entry deflated (NumPy's `savez_compressed`).
pub fn save_npz_compressed<K, A>(
    path: impl AsRef<Path>,
    arrays: impl IntoIterator<Item = (K, A)>,
) -> Result<()>
where
    K: AsRef<str>,
    A: Borrow<Array>,
{
    save(path.as_ref(), arrays, CompressionMethod::Deflated)
}

fn save<K, A>(
    path: &Path,
    arrays: impl IntoIterator<Item = (K, A)>,
    method: CompressionMethod,
) -> Result<()>
where
    K: AsRef<str>,
    A: Borrow<Array>,
{
    let err = |p: String| format_error(FORMAT, path, p);
    let named: Vec<(String, Array)> = arrays
        .into_iter()
        .map(|(k, a)| (k.as_ref().to_string(), a.borrow().clone()))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for (name, a) in &named {
        if !seen.insert(name.as_str()) {
            return Err(err(format!("two arrays are named {name:?}")));
        }
        if a.dtype() == umx_core::Dtype::Bfloat16 {
            return Err(err(format!(
                "array {name:?} is bfloat16, which has no NumPy dtype: convert it first (e.g. \
                 ops::astype(&a, Dtype::Float32)), or save as safetensors"
            )));
        }
    }
    umx_core::eval(named.iter().map(|(_, a)| a))?;
    write_atomically(FORMAT, path, |w| {
        let mut zip = zip::ZipWriter::new(w);
        for (name, a) in &named {
            let bytes = ArrayBytes::of(a)?;
            let entry_err = |p: String| err(format!("entry {name:?}: {p}"));
            // Zip64 for entries past 4 GiB (the header adds at most a few kilobytes).
            let large = bytes.nbytes() as u64 >= u32::MAX as u64 - (1 << 16);
            let options = SimpleFileOptions::default()
                .compression_method(method)
                .large_file(large);
            zip.start_file(format!("{name}.npy"), options)
                .map_err(|e| entry_err(format!("cannot write: {e}")))?;
            npy::write(&mut zip, &bytes, &entry_err)?;
        }
        zip.finish()
            .map_err(|e: zip::result::ZipError| -> Error { err(format!("cannot write: {e}")) })?;
        Ok(())
    })
}
