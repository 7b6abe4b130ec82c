//! safetensors: an 8-byte little-endian header length, a JSON header (each tensor's dtype,
//! shape and byte range, plus an optional `__metadata__` map of strings), then the tensors'
//! bytes, little-endian and row-major.
//!
//! The header is parsed and checked by the `safetensors` crate; reading maps the file and
//! copies a tensor out only when it is asked for ([`SafeTensors::get`]).
//!
//! Every umx dtype has a safetensors dtype: `BOOL`, `U8`..`U64`, `I8`..`I64`, `F16`, `BF16`,
//! `F32`, `F64` and `C64` (complex64, as MLX writes it). Files may hold dtypes umx lacks
//! (the 8-, 6- and 4-bit floats): they are listed, and [`SafeTensors::get`] refuses them.

use crate::bytes::{ArrayBytes, ByteOrder, array_from_bytes, to_byte_order};
use crate::{format_error, map_file};
use ::safetensors::tensor::{Dtype as StDtype, Metadata, SafeTensorError, View};
use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use umx_core::{Array, Dtype, Error, Result};

const FORMAT: &str = "safetensors";

/// One tensor of a safetensors file, as its header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The umx dtype of the tensor, or `None` for a safetensors dtype umx has no dtype for.
    pub dtype: Option<Dtype>,
    /// The dtype as the file names it (`"F32"`, `"BF16"`, `"F8_E4M3"`, ...).
    pub file_dtype: String,
    /// The shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// Byte range of the tensor's data in the file.
    pub file_range: std::ops::Range<usize>,
}

/// An open safetensors file: the header is parsed and checked, the data is mapped into memory
/// and read only when a tensor is asked for.
///
/// ```
/// # umx_cpu::register();
/// use std::collections::BTreeMap;
/// use umx_core::Array;
/// use umx_io::{SafeTensors, save_safetensors};
/// let path = std::env::temp_dir().join(format!("umx-io-doc-st-{}.safetensors", std::process::id()));
/// let w = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
/// let meta = BTreeMap::from([("format".to_string(), "mlx".to_string())]);
/// save_safetensors(&path, [("w", &w)], Some(&meta))?;
///
/// let file = SafeTensors::open(&path)?;
/// assert_eq!(file.names(), ["w"]);
/// assert_eq!(file.metadata()["format"], "mlx");
/// let w2 = file.get("w")?; // only now is the tensor's data copied out of the file
/// assert_eq!(w2.shape(), &[2, 3]);
/// assert_eq!(w2.to_vec::<f32>()?, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// # drop(file);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), umx_core::Error>(())
/// ```
pub struct SafeTensors {
    path: PathBuf,
    map: memmap2::Mmap,
    tensors: BTreeMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
}

impl SafeTensors {
    /// Opens and maps `path`, and parses and checks its header (every tensor's byte range must
    /// fit its shape and dtype, the ranges must tile the data, and the data must end with the
    /// file). No tensor data is read.
    pub fn open(path: impl AsRef<Path>) -> Result<SafeTensors> {
        let path = path.as_ref();
        let map = map_file(FORMAT, path)?;
        let bytes: &[u8] = &map;
        let err = |p: String| format_error(FORMAT, path, p);
        let Some(len_bytes) = bytes.first_chunk::<8>() else {
            return Err(err(format!(
                "the file is {} bytes, shorter than the 8-byte header length",
                bytes.len()
            )));
        };
        let header_len = u64::from_le_bytes(*len_bytes);
        if header_len > (bytes.len() - 8) as u64 {
            return Err(err(format!(
                "header length {header_len} runs past the end of the file ({} bytes)",
                bytes.len()
            )));
        }
        let (n, meta) =
            ::safetensors::SafeTensors::read_metadata(bytes).map_err(|e| err(describe(e)))?;
        let data_start = 8 + n;
        let tensors = tensor_infos(&meta, data_start);
        let metadata = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(SafeTensors {
            path: path.to_path_buf(),
            map,
            tensors,
            metadata,
        })
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensors' names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the file holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// What the header says about tensor `name`.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// The `__metadata__` map of the header (empty when it has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Tensor `name`, copied out of the mapped file into a new array.
    pub fn get(&self, name: &str) -> Result<Array> {
        let Some(info) = self.tensors.get(name) else {
            return Err(Error::Index(format!(
                "{FORMAT}: {}: no tensor named {name:?} (the file has {} tensors)",
                self.path.display(),
                self.tensors.len()
            )));
        };
        let Some(dtype) = info.dtype else {
            return Err(format_error(
                FORMAT,
                &self.path,
                format!(
                    "tensor {name:?} has dtype {}, which umx has no dtype for",
                    info.file_dtype
                ),
            ));
        };
        // `open` checked the range against the file; `get` keeps even that from panicking.
        let bytes = self.map.get(info.file_range.clone()).ok_or_else(|| {
            format_error(
                FORMAT,
                &self.path,
                format!("tensor {name:?} lies past the end of the file"),
            )
        })?;
        array_from_bytes(bytes, &info.shape, dtype, ByteOrder::Little)
    }

    /// Every tensor, copied out, by name. Fails on the first tensor umx has no dtype for.
    pub fn load_all(&self) -> Result<BTreeMap<String, Array>> {
        self.tensors
            .keys()
            .map(|k| Ok((k.clone(), self.get(k)?)))
            .collect()
    }
}

impl std::fmt::Debug for SafeTensors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeTensors")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .field("metadata", &self.metadata)
            .finish()
    }
}

fn tensor_infos(meta: &Metadata, data_start: usize) -> BTreeMap<String, TensorInfo> {
    meta.tensors()
        .into_iter()
        .map(|(name, t)| {
            let (s, e) = t.data_offsets;
            let info = TensorInfo {
                dtype: from_file_dtype(t.dtype),
                file_dtype: t.dtype.to_string(),
                shape: t.shape.clone(),
                file_range: data_start + s..data_start + e,
            };
            (name, info)
        })
        .collect()
}

/// The crate's error, said in words a user of a broken file can act on.
fn describe(e: SafeTensorError) -> String {
    match e {
        SafeTensorError::MetadataIncompleteBuffer => {
            "the tensors' data does not end where the file ends (truncated or trailing bytes)"
                .to_string()
        }
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's byte range does not match its shape and dtype".to_string()
        }
        SafeTensorError::InvalidOffset(name) => format!(
            "tensor {name:?} does not start where the previous one ends (offsets must tile the data)"
        ),
        SafeTensorError::InvalidHeaderDeserialization(e) => format!("header is not valid: {e}"),
        e => e.to_string(),
    }
}

/// Every tensor of the file at `path`, by name.
///
/// The file's `__metadata__` comes with [`SafeTensors::open`]`(path)?.metadata()`.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::Array;
/// let path = std::env::temp_dir().join(format!("umx-io-doc-load-st-{}.safetensors", std::process::id()));
/// let b = Array::from_slice(&[true, false], &[2])?;
/// umx_io::save_safetensors(&path, [("b", &b)], None)?;
/// let arrays = umx_io::load_safetensors(&path)?;
/// assert_eq!(arrays["b"].to_vec::<bool>()?, [true, false]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn load_safetensors(path: impl AsRef<Path>) -> Result<BTreeMap<String, Array>> {
    SafeTensors::open(path)?.load_all()
}

/// Writes `arrays` (pairs of a name and an array, e.g. `&BTreeMap<String, Array>` or
/// `[("w", &w)]`) to `path` as safetensors, with `metadata` as the header's `__metadata__`.
///
/// Arrays are evaluated, and views (transposes, slices) written as their logical values.
/// Two arrays with one name, or an array named `__metadata__`, are an error.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops};
/// let path = std::env::temp_dir().join(format!("umx-io-doc-save-st-{}.safetensors", std::process::id()));
/// let a = Array::from_slice(&[1i32, 2, 3, 4, 5, 6], &[2, 3])?;
/// let at = ops::transpose(&a, None)?; // a view: written as its values, [[1, 4], [2, 5], [3, 6]]
/// umx_io::save_safetensors(&path, [("at", &at)], None)?;
/// assert_eq!(umx_io::load_safetensors(&path)?["at"].to_vec::<i32>()?, [1, 4, 2, 5, 3, 6]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn save_safetensors<K, A>(
    path: impl AsRef<Path>,
    arrays: impl IntoIterator<Item = (K, A)>,
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<()>
where
    K: AsRef<str>,
    A: Borrow<Array>,
{
    let path = path.as_ref();
    let err = |p: String| format_error(FORMAT, path, p);
    let named: Vec<(String, Array)> = arrays
        .into_iter()
        .map(|(k, a)| (k.as_ref().to_string(), a.borrow().clone()))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in &named {
        if name == "__metadata__" {
            return Err(err("an array may not be named __metadata__".into()));
        }
        if !seen.insert(name.as_str()) {
            return Err(err(format!("two arrays are named {name:?}")));
        }
    }
    umx_core::eval(named.iter().map(|(_, a)| a))?;
    let mut views = Vec::with_capacity(named.len());
    for (name, a) in &named {
        let bytes = ArrayBytes::of(a)?;
        views.push((
            name.clone(),
            TensorView {
                dtype: to_file_dtype(a.dtype()),
                bytes,
            },
        ));
    }
    let metadata: Option<HashMap<String, String>> =
        metadata.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    ::safetensors::serialize_to_file(views, metadata, path).map_err(|e| err(describe(e)))
}

/// An array as the `safetensors` crate's writer sees it.
struct TensorView {
    dtype: StDtype,
    bytes: ArrayBytes,
}

impl View for TensorView {
    fn dtype(&self) -> StDtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        self.bytes.shape()
    }
    fn data(&self) -> Cow<'_, [u8]> {
        to_byte_order(self.bytes.bytes(), self.bytes.dtype(), ByteOrder::Little)
    }
    fn data_len(&self) -> usize {
        self.bytes.nbytes()
    }
}

fn to_file_dtype(d: Dtype) -> StDtype {
    match d {
        Dtype::Bool => StDtype::BOOL,
        Dtype::Uint8 => StDtype::U8,
        Dtype::Uint16 => StDtype::U16,
        Dtype::Uint32 => StDtype::U32,
        Dtype::Uint64 => StDtype::U64,
        Dtype::Int8 => StDtype::I8,
        Dtype::Int16 => StDtype::I16,
        Dtype::Int32 => StDtype::I32,
        Dtype::Int64 => StDtype::I64,
        Dtype::Float16 => StDtype::F16,
        Dtype::Bfloat16 => StDtype::BF16,
        Dtype::Float32 => StDtype::F32,
        Dtype::Float64 => StDtype::F64,
        Dtype::Complex64 => StDtype::C64,
    }
}

fn from_file_dtype(d: StDtype) -> Option<Dtype> {
    Some(match d {
        StDtype::BOOL => Dtype::Bool,
        StDtype::U8 => Dtype::Uint8,
        StDtype::U16 => Dtype::Uint16,
        StDtype::U32 => Dtype::Uint32,
        StDtype::U64 => Dtype::Uint64,
        StDtype::I8 => Dtype::Int8,
        StDtype::I16 => Dtype::Int16,
        StDtype::I32 => Dtype::Int32,
        StDtype::I64 => Dtype::Int64,
        StDtype::F16 => Dtype::Float16,
        StDtype::BF16 => Dtype::Bfloat16,
        StDtype::F32 => Dtype::Float32,
        StDtype::F64 => Dtype::Float64,
        StDtype::C64 => Dtype::Complex64,
        _ => return None,
    })
}
