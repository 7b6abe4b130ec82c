//! Helpers shared by umx-io's tests: a temporary directory, arrays of every dtype with
//! arbitrary bits, and reading an array's values back as bytes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use umx_core::{Array, ArrayData, Buffer, Dtype};

/// A fresh directory, removed on drop: in memory (`/dev/shm`) where there is one, since the
/// malformed-file tests write thousands of small files, else under the temporary directory.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "umx-io-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let in_memory = Path::new("/dev/shm").join(&name);
        if std::fs::create_dir_all(&in_memory).is_ok() {
            return TempDir(in_memory);
        }
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The directory of the files written by tests/reference/io.py.
pub fn reference_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/reference/io"
    ))
}

/// Pseudo-random bytes (xorshift), the same for the same seed.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An array of `dtype` and `shape` whose elements are arbitrary bit patterns (NaNs and
/// subnormals included; bools 0 or 1), so a round trip must keep every bit.
pub fn arbitrary(dtype: Dtype, shape: &[usize], seed: u64) -> Array {
    let n: usize = shape.iter().product();
    let mut bytes = noise(n * dtype.size(), seed);
    if dtype == Dtype::Bool {
        bytes.iter_mut().for_each(|b| *b &= 1);
    }
    let buf = Buffer::from_slice(&bytes).unwrap();
    Array::from_data(ArrayData::contiguous(buf, shape, dtype))
}

/// The bytes of `a`'s elements in row-major logical order (whatever its strides).
pub fn logical_bytes(a: &Array) -> Vec<u8> {
    let d = a.data().unwrap();
    let es = d.dtype.size();
    let all = d.buffer.bytes();
    let mut out = Vec::new();
    d.for_each_index(|i| out.extend_from_slice(&all[i * es..(i + 1) * es]));
    out
}

/// Asserts that `b` has `a`'s dtype, shape and exact element bits.
pub fn assert_same(a: &Array, b: &Array, what: &str) {
    assert_eq!(a.dtype(), b.dtype(), "{what}: dtype");
    assert_eq!(a.shape(), b.shape(), "{what}: shape");
    assert_eq!(logical_bytes(a), logical_bytes(b), "{what}: values");
}

/// Asserts that `r` is an error whose message contains every one of `parts`.
pub fn assert_err_mentions<T: std::fmt::Debug>(r: umx_core::Result<T>, parts: &[&str]) {
    let msg = r.expect_err("expected an error").to_string();
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} does not mention {p:?}");
    }
}
