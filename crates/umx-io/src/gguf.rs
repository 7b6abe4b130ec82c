//! GGUF (llama.cpp's format), read. Versions 2 and 3, either byte order (version 3 allows
//! big-endian files):
//!
//! ```text
//! "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count,
//! metadata: (string key, u32 value type, value) * kv_count,
//! tensor infos: (string name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset) * tensor_count,
//! padding to `general.alignment` (default 32), tensor data (each tensor at its offset).
//! ```
//! Strings are a u64 length and UTF-8 bytes; an array value is a u32 element type, a u64
//! count and the elements.
//!
//! GGUF lists dimensions innermost first (ggml's `ne`); umx shapes are outermost first, so a
//! tensor with dims `[4, 3]` loads with shape `[3, 4]` (as MLX and the `gguf` Python package
//! load it). Tensors of type F32, F16, BF16, F64, I8, I16, I32 and I64 load as arrays.
//!
//! Tensors of the block types Q4_0, Q4_1 and Q8_0 load into umx's affine quantization (MLX's,
//! see `umx_core::ops::quantize`), as MLX's `mx.load` does: group size 32, 4 or 8 bits, float16
//! scales and biases. A tensor `x.weight` gives the codes `x.weight` and the arrays
//! `x.scales` and `x.biases` ([`Gguf::get_quantized`], [`Gguf::load_all`]), the names a
//! quantized linear layer takes. ggml's blocks map exactly: Q4_0 (`d * (q - 8)`) has bias
//! `-8 d`, Q4_1 (`d * q + m`) has bias `m`, Q8_0 (`d * q`, `q` signed) has codes `q + 128`
//! and bias `-128 d`. Other block types (the K-quants, ...) are listed with their infos, and
//! loading one is an error naming its type.

use crate::bytes::{ByteOrder, array_from_bytes, checked_nbytes};
use crate::{format_error, map_file};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use umx_core::{Array, Dtype, Error, Result, f16};

const FORMAT: &str = "gguf";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's GGML_MAX_DIMS.
const MAX_DIMS: u32 = 4;
/// Arrays of arrays past this depth are refused (so a hostile file cannot exhaust the stack).
const MAX_NESTING: usize = 8;

/// A metadata value of a GGUF file.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    /// Text; bytes that are not valid UTF-8 are replaced by U+FFFD.
    String(String),
    /// An array: its elements all have one type (arrays of arrays are allowed).
    Array(Vec<GgufValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl GgufValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v as u64),
            GgufValue::U16(v) => Some(v as u64),
            GgufValue::U32(v) => Some(v as u64),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a signed integer, if it is an integer of any width that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            GgufValue::I8(v) => Some(v as i64),
            GgufValue::I16(v) => Some(v as i64),
            GgufValue::I32(v) => Some(v as i64),
            GgufValue::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v as f64),
            GgufValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements of an array value.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// A ggml tensor type, by its number in the file (`GgmlType(0)` is F32, `GgmlType(2)` Q4_0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GgmlType(pub u32);

/// ggml's types: number, name, elements per block, bytes per block. The numbers ggml
/// retired (4, 5, 31-33, 36-38) are left out.
const GGML_TYPES: &[(u32, &str, usize, usize)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
];

impl GgmlType {
    pub const F32: GgmlType = GgmlType(0);
    pub const F16: GgmlType = GgmlType(1);
    pub const Q4_0: GgmlType = GgmlType(2);
    pub const Q4_1: GgmlType = GgmlType(3);
    pub const Q8_0: GgmlType = GgmlType(8);
    pub const BF16: GgmlType = GgmlType(30);

    fn entry(self) -> Option<&'static (u32, &'static str, usize, usize)> {
        GGML_TYPES.iter().find(|t| t.0 == self.0)
    }

    /// ggml's name of the type (`"F32"`, `"Q4_K"`), or `None` for a number umx does not know.
    pub fn name(self) -> Option<&'static str> {
        self.entry().map(|t| t.1)
    }

    /// Elements per block and bytes per block (1 and the element size for plain types).
    pub fn block(self) -> Option<(usize, usize)> {
        self.entry().map(|t| (t.2, t.3))
    }

    /// Whether values are stored in quantized blocks.
    pub fn is_quantized(self) -> bool {
        self.block().is_some_and(|(n, _)| n > 1)
    }

    /// The umx dtype of a plain (not quantized) type.
    pub fn dtype(self) -> Option<Dtype> {
        Some(match self.0 {
            0 => Dtype::Float32,
            1 => Dtype::Float16,
            24 => Dtype::Int8,
            25 => Dtype::Int16,
            26 => Dtype::Int32,
            27 => Dtype::Int64,
            28 => Dtype::Float64,
            30 => Dtype::Bfloat16,
            _ => return None,
        })
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "ggml type {}", self.0),
        }
    }
}

/// One tensor of a GGUF file, as its info describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub name: String,
    /// How its values are stored: a plain type or a quantized block type.
    pub ggml_type: GgmlType,
    /// Dimensions as the file lists them: innermost first.
    pub dims: Vec<u64>,
    /// The umx shape: `dims` reversed.
    pub shape: Vec<usize>,
    /// Offset of the data from the start of the data section (a multiple of the alignment).
    pub offset: u64,
    /// Byte range of the data in the file; `None` for a type umx does not know the size of.
    pub file_range: Option<std::ops::Range<usize>>,
}

/// An open GGUF file: header, metadata and tensor infos parsed and checked; the data mapped
/// into memory and copied out only when a tensor is asked for.
///
/// ```
/// # umx_cpu::register();
/// // A GGUF v3 file with one metadata key and one F32 tensor of dims [2, 1] (umx shape [1, 2]).
/// let mut f = b"GGUF".to_vec();
/// f.extend(3u32.to_le_bytes());
/// f.extend(1u64.to_le_bytes()); // tensors
/// f.extend(1u64.to_le_bytes()); // metadata keys
/// let string = |s: &str| [&(s.len() as u64).to_le_bytes()[..], s.as_bytes()].concat();
/// f.extend(string("general.name"));
/// f.extend(8u32.to_le_bytes()); // a string value
/// f.extend(string("tiny"));
/// f.extend(string("w"));
/// f.extend(2u32.to_le_bytes()); // n_dims
/// f.extend(2u64.to_le_bytes());
/// f.extend(1u64.to_le_bytes());
/// f.extend(0u32.to_le_bytes()); // F32
/// f.extend(0u64.to_le_bytes()); // offset
/// f.resize(f.len().next_multiple_of(32), 0);
/// f.extend(1.5f32.to_le_bytes());
/// f.extend((-2.0f32).to_le_bytes());
/// let path = std::env::temp_dir().join(format!("umx-io-doc-gguf-{}.gguf", std::process::id()));
/// std::fs::write(&path, &f).unwrap();
///
/// let file = umx_io::Gguf::open(&path)?;
/// assert_eq!(file.metadata()["general.name"].as_str(), Some("tiny"));
/// assert_eq!(file.tensors()[0].ggml_type.name(), Some("F32"));
/// let w = file.get("w")?;
/// assert_eq!(w.shape(), &[1, 2]);
/// assert_eq!(w.to_vec::<f32>()?, [1.5, -2.0]);
/// # drop(file);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), umx_core::Error>(())
/// ```
pub struct Gguf {
    path: PathBuf,
    map: memmap2::Mmap,
    version: u32,
    byte_order: ByteOrder,
    alignment: u64,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<GgufTensorInfo>,
    index: HashMap<String, usize>,
}

impl Gguf {
    /// Opens and maps `path`, and parses and checks the header, the metadata and the tensor
    /// infos (every tensor's data must lie inside the file). No tensor data is read.
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf> {
        let path = path.as_ref();
        let map = map_file(FORMAT, path)?;
        let parsed = parse(&map).map_err(|p| format_error(FORMAT, path, p))?;
        let index = parsed
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Gguf {
            path: path.to_path_buf(),
            map,
            version: parsed.version,
            byte_order: parsed.byte_order,
            alignment: parsed.alignment,
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            index,
        })
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format version: 2 or 3.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The byte order of the file's numbers and tensor data.
    pub fn byte_order(&self) -> ByteOrder {
        self.byte_order
    }

    /// The alignment of tensor data (`general.alignment`, 32 when absent).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// The metadata key/value pairs.
    pub fn metadata(&self) -> &BTreeMap<String, GgufValue> {
        &self.metadata
    }

    /// Every tensor's info, in the file's order; quantized ones included.
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// The info of tensor `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// Tensor `name`, copied out of the mapped file into a new array (in umx's shape order,
    /// see the module docs). Quantized types are an error naming the type (Q4_0, Q4_1 and Q8_0
    /// load with [`Gguf::get_quantized`]).
    pub fn get(&self, name: &str) -> Result<Array> {
        let Some(info) = self.tensor_info(name) else {
            return Err(Error::Index(format!(
                "{FORMAT}: {}: no tensor named {name:?} (the file has {} tensors)",
                self.path.display(),
                self.tensors.len()
            )));
        };
        let err = |p: String| format_error(FORMAT, &self.path, format!("tensor {name:?}: {p}"));
        let Some(dtype) = info.ggml_type.dtype() else {
            return Err(err(if info.ggml_type.is_quantized() {
                if quantized_kind(info.ggml_type).is_some() {
                    format!(
                        "its type {} is a quantized block type: load it with \
                         Gguf::get_quantized (codes, scales and biases)",
                        info.ggml_type
                    )
                } else {
                    format!(
                        "its type {} is a quantized block type umx cannot load yet (Q4_0, Q4_1 \
                         and Q8_0 load; its info is listed by Gguf::tensors)",
                        info.ggml_type
                    )
                }
            } else {
                format!("its type ({}) is not one umx knows", info.ggml_type)
            }));
        };
        let bytes = info
            .file_range
            .clone()
            .and_then(|r| self.map.get(r))
            .ok_or_else(|| err("its data lies past the end of the file".into()))?;
        array_from_bytes(bytes, &info.shape, dtype, self.byte_order)
    }

    /// Tensor `name` of type Q4_0, Q4_1 or Q8_0 in umx's affine quantization: `(w_q,
    /// scales, biases)` for `umx_core::ops::dequantize(.., 32, bits)` or a quantized layer,
    /// with bits 4 (Q4_0, Q4_1) or 8 (Q8_0) and float16 scales and biases; also the bits.
    pub fn get_quantized(&self, name: &str) -> Result<(Array, Array, Array, usize)> {
        let Some(info) = self.tensor_info(name) else {
            return Err(Error::Index(format!(
                "{FORMAT}: {}: no tensor named {name:?} (the file has {} tensors)",
                self.path.display(),
                self.tensors.len()
            )));
        };
        let err = |p: String| format_error(FORMAT, &self.path, format!("tensor {name:?}: {p}"));
        let Some(kind) = quantized_kind(info.ggml_type) else {
            return Err(err(format!(
                "its type {} is not Q4_0, Q4_1 or Q8_0",
                info.ggml_type
            )));
        };
        if info.shape.is_empty() {
            return Err(err("a quantized tensor needs at least one dimension".into()));
        }
        let bytes = info
            .file_range
            .clone()
            .and_then(|r| self.map.get(r))
            .ok_or_else(|| err("its data lies past the end of the file".into()))?;
        let (q, s, b) = unpack_blocks(kind, bytes, self.byte_order);
        let mut q_shape = info.shape.clone();
        let mut s_shape = info.shape.clone();
        let last = q_shape.len() - 1;
        q_shape[last] = q_shape[last] * kind.bits() / 32;
        s_shape[last] /= 32;
        Ok((
            Array::from_slice(&q, &q_shape)?,
            Array::from_slice(&s, &s_shape)?,
            Array::from_slice(&b, &s_shape)?,
            kind.bits(),
        ))
    }

    /// Every tensor, copied out, by name; a Q4_0, Q4_1 or Q8_0 tensor `x.weight` as the three
    /// arrays `x.weight` (codes), `x.scales` and `x.biases` (see the module docs). Fails on
    /// the first tensor of another quantized type.
    pub fn load_all(&self) -> Result<BTreeMap<String, Array>> {
        let mut out = BTreeMap::new();
        let mut put = |k: String, v: Array| {
            if out.insert(k.clone(), v).is_some() {
                return Err(format_error(
                    FORMAT,
                    &self.path,
                    format!("tensor {k:?} is both in the file and made by a quantized tensor"),
                ));
            }
            Ok(())
        };
        for t in &self.tensors {
            if quantized_kind(t.ggml_type).is_some() {
                let (q, s, b, _) = self.get_quantized(&t.name)?;
                let prefix = t.name.strip_suffix(".weight").unwrap_or(&t.name);
                put(t.name.clone(), q)?;
                put(format!("{prefix}.scales"), s)?;
                put(format!("{prefix}.biases"), b)?;
            } else {
                put(t.name.clone(), self.get(&t.name)?)?;
            }
        }
        Ok(out)
    }
}

/// The ggml block types that load into umx's affine quantization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QuantKind {
    Q4_0,
    Q4_1,
    Q8_0,
}

impl QuantKind {
    fn bits(self) -> usize {
        match self {
            QuantKind::Q4_0 | QuantKind::Q4_1 => 4,
            QuantKind::Q8_0 => 8,
        }
    }
}

fn quantized_kind(t: GgmlType) -> Option<QuantKind> {
    match t {
        GgmlType::Q4_0 => Some(QuantKind::Q4_0),
        GgmlType::Q4_1 => Some(QuantKind::Q4_1),
        GgmlType::Q8_0 => Some(QuantKind::Q8_0),
        _ => None,
    }
}

/// ggml's blocks of 32 as umx codes (uint32 words), float16 scales and biases. Every block
/// is 32 elements: one group.
fn unpack_blocks(kind: QuantKind, data: &[u8], order: ByteOrder) -> (Vec<u32>, Vec<f16>, Vec<f16>) {
    let f16_at = |b: &[u8]| {
        let pair = [b[0], b[1]];
        f16::from_bits(match order {
            ByteOrder::Little => u16::from_le_bytes(pair),
            ByteOrder::Big => u16::from_be_bytes(pair),
        })
    };
    let block_bytes = match kind {
        QuantKind::Q4_0 => 18,
        QuantKind::Q4_1 => 20,
        QuantKind::Q8_0 => 34,
    };
    let n = data.len() / block_bytes;
    let words = 32 * kind.bits() / 32;
    let mut q = Vec::with_capacity(n * words);
    let mut s = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n);
    for block in data.chunks_exact(block_bytes) {
        let d = f16_at(block);
        match kind {
            QuantKind::Q4_0 | QuantKind::Q4_1 => {
                let (bias, nibbles) = if kind == QuantKind::Q4_0 {
                    (f16::from_f32(-8.0 * d.to_f32()), &block[2..18])
                } else {
                    (f16_at(&block[2..]), &block[4..20])
                };
                // ggml keeps element j in the low nibble of byte j and element j + 16 in its
                // high nibble; umx's stream keeps element i in nibble i.
                let mut codes = [0u8; 32];
                for (j, &byte) in nibbles.iter().enumerate() {
                    codes[j] = byte & 0x0f;
                    codes[j + 16] = byte >> 4;
                }
                for w in 0..4 {
                    let mut word = 0u32;
                    for k in 0..8 {
                        word |= (codes[w * 8 + k] as u32) << (4 * k);
                    }
                    q.push(word);
                }
                s.push(d);
                b.push(bias);
            }
            QuantKind::Q8_0 => {
                // Signed int8 codes, shifted to unsigned by flipping the sign bit (+128).
                for w in 0..8 {
                    let mut word = 0u32;
                    for k in 0..4 {
                        word |= ((block[2 + w * 4 + k] ^ 0x80) as u32) << (8 * k);
                    }
                    q.push(word);
                }
                s.push(d);
                b.push(f16::from_f32(-128.0 * d.to_f32()));
            }
        }
    }
    (q, s, b)
}

impl std::fmt::Debug for Gguf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// Every tensor of the GGUF file at `path`, by name (see the module docs for shapes). Q4_0,
/// Q4_1 and Q8_0 tensors load as codes, scales and biases ([`Gguf::load_all`]); other
/// quantized types are an error, and [`Gguf::open`] lists them and gives the metadata.
pub fn load_gguf(path: impl AsRef<Path>) -> Result<BTreeMap<String, Array>> {
    Gguf::open(path)?.load_all()
}

struct Parsed {
    version: u32,
    byte_order: ByteOrder,
    alignment: u64,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<GgufTensorInfo>,
}

/// A reader of the file's numbers that never reads past its end.
struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    order: ByteOrder,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .i
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                format!(
                    "the file ends at byte {} while reading {what} at byte {} (truncated)",
                    self.b.len(),
                    self.i
                )
            })?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut a: [u8; N] = self.take(N, what)?.try_into().expect("take gave N bytes");
        if self.order != ByteOrder::Little {
            a.reverse();
        }
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count of items of at least `min_size` bytes each, checked against the bytes left.
    fn count(&mut self, min_size: usize, what: &str) -> Result<usize, String> {
        let at = self.i;
        let n = self.u64(what)?;
        let left = (self.b.len() - self.i) as u64;
        if n.saturating_mul(min_size as u64) > left {
            return Err(format!(
                "{what} at byte {at} is {n}, more than the {left} bytes left in the file can hold"
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let n = self.count(1, &format!("the length of {what}"))?;
        Ok(String::from_utf8_lossy(self.take(n, what)?).into_owned())
    }

    fn value(&mut self, ty: u32, depth: usize, what: &str) -> Result<GgufValue, String> {
        use GgufValue as V;
        Ok(match ty {
            0 => V::U8(self.u8(what)?),
            1 => V::I8(self.u8(what)? as i8),
            2 => V::U16(self.u16(what)?),
            3 => V::I16(self.u16(what)? as i16),
            4 => V::U32(self.u32(what)?),
            5 => V::I32(self.u32(what)? as i32),
            6 => V::F32(f32::from_bits(self.u32(what)?)),
            7 => V::Bool(self.u8(what)? != 0),
            8 => V::String(self.string(what)?),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(format!("{what} nests arrays more than {MAX_NESTING} deep"));
                }
                let at = self.i;
                let elem = self.u32(what)?;
                let min = value_min_size(elem).ok_or_else(|| {
                    format!("{what} at byte {at} has unknown element type {elem}")
                })?;
                let n = self.count(min, &format!("the length of {what}"))?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem, depth + 1, what)?);
                }
                V::Array(items)
            }
            10 => V::U64(self.u64(what)?),
            11 => V::I64(self.u64(what)? as i64),
            12 => V::F64(f64::from_bits(self.u64(what)?)),
            _ => return Err(format!("{what} has unknown value type {ty}")),
        })
    }
}

/// The fewest bytes a value of type `ty` takes, or `None` for an unknown type.
fn value_min_size(ty: u32) -> Option<usize> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,
        9 => 12,
        10..=12 => 8,
        _ => return None,
    })
}

fn parse(b: &[u8]) -> Result<Parsed, String> {
    if b.len() < 8 {
        return Err(format!(
            "the file is {} bytes, too short for a GGUF header",
            b.len()
        ));
    }
    if &b[..4] != b"GGUF" {
        return Err("not a GGUF file (the magic \"GGUF\" is missing)".into());
    }
    let v = [b[4], b[5], b[6], b[7]];
    let (version, order) = match (u32::from_le_bytes(v), u32::from_be_bytes(v)) {
        (le @ (2 | 3), _) => (le, ByteOrder::Little),
        (_, be @ (2 | 3)) => (be, ByteOrder::Big),
        (1, _) => return Err("GGUF version 1 is not supported (only 2 and 3)".into()),
        (le, _) => return Err(format!("unsupported GGUF version {le} (only 2 and 3)")),
    };
    let mut r = Reader { b, i: 8, order };
    // A tensor info takes at least 8 + 4 + 4 + 8 bytes; a key/value 8 + 4 + 1.
    let n_tensors = r.count(24, "the tensor count")?;
    let n_kv = r.count(13, "the metadata count")?;

    let mut metadata = BTreeMap::new();
    for k in 0..n_kv {
        let key = r.string(&format!("metadata key {k}"))?;
        let ty = r.u32(&format!("the type of metadata {key:?}"))?;
        let value = r.value(ty, 0, &format!("metadata {key:?}"))?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(format!("metadata key {key:?} appears twice"));
        }
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() => a,
            _ => return Err(format!("general.alignment is {v:?}, not a power of two")),
        },
    };

    let mut tensors = Vec::with_capacity(n_tensors);
    let mut names = std::collections::HashSet::new();
    for t in 0..n_tensors {
        let name = r.string(&format!("the name of tensor {t}"))?;
        let what = format!("the info of tensor {name:?}");
        let n_dims = r.u32(&what)?;
        if n_dims > MAX_DIMS {
            return Err(format!(
                "tensor {name:?} has {n_dims} dimensions, more than {MAX_DIMS}"
            ));
        }
        let dims = (0..n_dims)
            .map(|_| r.u64(&what))
            .collect::<Result<Vec<u64>, _>>()?;
        let ggml_type = GgmlType(r.u32(&what)?);
        let offset = r.u64(&what)?;
        let shape = dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).map_err(|_| format!("tensor {name:?} has dimension {d}")))
            .collect::<Result<Vec<usize>, String>>()?;
        if offset % alignment != 0 {
            return Err(format!(
                "tensor {name:?} starts at offset {offset}, not a multiple of the alignment {alignment}"
            ));
        }
        if !names.insert(name.clone()) {
            return Err(format!("tensor {name:?} appears twice"));
        }
        tensors.push((name, ggml_type, dims, shape, offset));
    }

    // The data section starts at the next multiple of the alignment.
    let data_start = (r.i as u64).next_multiple_of(alignment);
    let tensors = tensors
        .into_iter()
        .map(|(name, ggml_type, dims, shape, offset)| {
            let file_range = match ggml_type.block() {
                None => None,
                Some((block, bytes)) => {
                    let inner = dims.first().copied().unwrap_or(1);
                    if inner % block as u64 != 0 {
                        return Err(format!(
                            "tensor {name:?} of type {ggml_type} has {inner} values per row, not a \
                             multiple of its block of {block}"
                        ));
                    }
                    let (n, _) = checked_nbytes(&shape, 1)
                        .ok_or_else(|| format!("tensor {name:?} is too large"))?;
                    let size = (n / block)
                        .checked_mul(bytes)
                        .ok_or_else(|| format!("tensor {name:?} is too large"))?;
                    let start = data_start.checked_add(offset);
                    let end = start.and_then(|s| s.checked_add(size as u64));
                    match (start, end) {
                        (Some(s), Some(e)) if e <= b.len() as u64 => Some(s as usize..e as usize),
                        _ => {
                            return Err(format!(
                                "the data of tensor {name:?} ({size} bytes at offset {offset} of the \
                                 data section, which starts at byte {data_start}) runs past the end \
                                 of the file ({} bytes)",
                                b.len()
                            ));
                        }
                    }
                }
            };
            Ok(GgufTensorInfo {
                name,
                ggml_type,
                dims,
                shape,
                offset,
                file_range,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Parsed {
        version,
        byte_order: order,
        alignment,
        metadata,
        tensors,
    })
}
