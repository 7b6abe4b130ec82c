//! umx-io: reading and writing arrays in the formats machine-learning weights come in.
//!
//! - [safetensors](mod@safetensors): read (memory-mapped; each tensor is copied out only when
//!   asked for, through [`SafeTensors`]) and write, with the `__metadata__` string map;
//! - [npy](mod@npy) and [npz](mod@npz): NumPy's formats, read and write (npz stored or
//!   deflated);
//! - [gguf](mod@gguf): read (memory-mapped), with metadata and tensor infos of every type;
//! - module weights ([`save_weights`], [`load_weights`]), behind the default feature `nn`.
//!
//! Every reader checks what it reads against the file's length before it allocates or copies:
//! a malformed or truncated file gives an [`Error`] whose message names the format, the file
//! and the problem, never a panic. Writers write a sibling temporary file and rename it over
//! the destination, so a file that a reader has mapped is never changed under it.
//!
//! Depends on umx-core (and umx-nn with the `nn` feature). Start reading at `safetensors.rs`;
//! `bytes.rs` is where every format meets umx's buffers.
//!
//! ```
//! # umx_cpu::register();
//! use umx_core::Array;
//! let dir = std::env::temp_dir().join(format!("umx-io-doc-lib-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let a = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
//! umx_io::save_npy(dir.join("a.npy"), &a)?;
//! assert_eq!(umx_io::load_npy(dir.join("a.npy"))?.to_vec::<f32>()?, [1.0, 2.0, 3.0, 4.0]);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), umx_core::Error>(())
//! ```

mod bytes;
pub mod gguf;
pub mod npy;
pub mod npz;
pub mod safetensors;
#[cfg(feature = "nn")]
mod weights;

pub use bytes::ByteOrder;
pub use gguf::{Gguf, GgufValue, load_gguf};
pub use npy::{load_npy, save_npy};
pub use npz::{load_npz, save_npz, save_npz_compressed};
pub use safetensors::{SafeTensors, load_safetensors, save_safetensors};
#[cfg(feature = "nn")]
pub use weights::{LoadedWeights, load_weights, save_weights};

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use umx_core::{Error, Result};

/// An error about a file of `format`: `"{format}: {path}: {problem}"`.
pub(crate) fn format_error(format: &str, path: &Path, problem: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{format}: {}: {problem}", path.display()))
}

/// Opens `path` and maps it into memory, read-only.
pub(crate) fn map_file(format: &str, path: &Path) -> Result<memmap2::Mmap> {
    let file =
        File::open(path).map_err(|e| format_error(format, path, format!("cannot open: {e}")))?;
    // SAFETY: the map is read-only and outlives no borrow of it past the owner. Like every
    // memory-mapped reader, this assumes nobody truncates or rewrites the file while it is
    // mapped; this crate's writers never do (they write a new file and rename it over).
    unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| format_error(format, path, format!("cannot map into memory: {e}")))
}

/// Writes `path` through `write`: into a sibling temporary file first, then renamed over
/// `path`, so readers never see half a file and a mapped old file stays intact.
pub(crate) fn write_atomically(
    format: &str,
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let tmp = temporary_sibling(path);
    let result = (|| {
        let file = File::create(&tmp)
            .map_err(|e| format_error(format, path, format!("cannot create: {e}")))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        write(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| format_error(format, path, format!("cannot write: {}", e.error())))?;
        file.sync_all()
            .map_err(|e| format_error(format, path, format!("cannot write: {e}")))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| format_error(format, path, format!("cannot write: {e}")))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn temporary_sibling(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

/// `write_all` with the error told as a problem of `format`'s file at `path`.
pub(crate) fn write_bytes(
    w: &mut impl Write,
    bytes: &[u8],
    format: &str,
    path: &Path,
) -> Result<()> {
    w.write_all(bytes)
        .map_err(|e| format_error(format, path, format!("cannot write: {e}")))
}
