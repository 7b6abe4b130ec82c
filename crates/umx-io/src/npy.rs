//! npy: NumPy's format for one array. A magic string (`\x93NUMPY`), a version (1.0, 2.0 or
//! 3.0), a header length (2 bytes in 1.0, 4 after), a header that is a Python dict literal
//! (`{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`), then the elements.
//!
//! Reading takes either byte order and either C (row-major) or Fortran (column-major) order;
//! a Fortran-order file loads as a column-major view of its data, whose logical values are the
//! same as NumPy's. Writing writes C order in the machine's byte order, version 1.0 unless the
//! header needs 2.0.
//!
//! Every umx dtype but one has a NumPy dtype: bool (`|b1`), the integers, float16/32/64 and
//! complex64 (`<c8`). bfloat16 has none (NumPy itself has no bfloat16), so saving one is an
//! error that says to convert first, e.g. with `ops::astype(&a, Dtype::Float32)`: a silent
//! conversion would not load back as the array that was saved. NumPy dtypes umx lacks
//! (complex128, strings, objects, records, ...) are an error when loading.

use crate::bytes::{ArrayBytes, ByteOrder, checked_nbytes, normalize_in_place};
use crate::{format_error, map_file, write_atomically, write_bytes};
use std::io::{Read, Write};
use std::path::Path;
use umx_core::shape::row_major_strides;
use umx_core::{Array, ArrayData, Buffer, Dtype, Error, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// NumPy aligns the start of the data to this many bytes.
const ALIGN: usize = 64;
/// Nesting of tuples and lists in a header past which it is refused (real headers nest two).
const MAX_DEPTH: usize = 16;

/// What an npy header says.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Header {
    pub(crate) dtype: Dtype,
    pub(crate) order: ByteOrder,
    pub(crate) fortran_order: bool,
    pub(crate) shape: Vec<usize>,
}

/// Loads the array of the `.npy` file at `path`.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, Complex32};
/// let path = std::env::temp_dir().join(format!("umx-io-doc-npy-{}.npy", std::process::id()));
/// let z = Array::from_slice(&[Complex32::new(1.0, -1.0)], &[1])?;
/// umx_io::save_npy(&path, &z)?;
/// assert_eq!(umx_io::load_npy(&path)?.to_vec::<Complex32>()?, [Complex32::new(1.0, -1.0)]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn load_npy(path: impl AsRef<Path>) -> Result<Array> {
    let path = path.as_ref();
    let map = map_file("npy", path)?;
    let err = |p: String| format_error("npy", path, p);
    read(&mut &map[..], map.len() as u64, &err)
}

/// Writes `array` to `path` as `.npy` (C order, the machine's byte order). Views are written
/// as their logical values. bfloat16 is an error (NumPy has no such dtype).
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, Dtype, ops};
/// let path = std::env::temp_dir().join(format!("umx-io-doc-save-npy-{}.npy", std::process::id()));
/// let a = ops::astype(&Array::from_slice(&[1.5f32, 2.5], &[2])?, Dtype::Bfloat16)?;
/// assert!(umx_io::save_npy(&path, &a).is_err()); // NumPy has no bfloat16: convert first
/// umx_io::save_npy(&path, &ops::astype(&a, Dtype::Float32)?)?;
/// assert_eq!(umx_io::load_npy(&path)?.to_vec::<f32>()?, [1.5, 2.5]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn save_npy(path: impl AsRef<Path>, array: &Array) -> Result<()> {
    let path = path.as_ref();
    let err = |p: String| format_error("npy", path, p);
    let bytes = ArrayBytes::of(array)?;
    let header = header_bytes(bytes.dtype(), bytes.shape()).map_err(err)?;
    write_atomically("npy", path, |w| {
        write_bytes(w, &header, "npy", path)?;
        write_bytes(w, &bytes.bytes(), "npy", path)
    })
}

/// The npy file of `array` (header and data) into `w`: what npz entries hold.
pub(crate) fn write(
    w: &mut impl Write,
    array: &ArrayBytes,
    err: &dyn Fn(String) -> Error,
) -> Result<()> {
    let header = header_bytes(array.dtype(), array.shape()).map_err(err)?;
    w.write_all(&header)
        .and_then(|_| w.write_all(&array.bytes()))
        .map_err(|e| err(format!("cannot write: {e}")))
}

/// Reads one npy file of `total` bytes from `r`. Nothing is allocated before the header is
/// checked against `total`.
pub(crate) fn read(r: &mut impl Read, total: u64, err: &dyn Fn(String) -> Error) -> Result<Array> {
    let read_err = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            err("the file ends early (truncated)".into())
        } else {
            err(format!("cannot read: {e}"))
        }
    };
    let mut start = [0u8; 8];
    if total < 10 {
        return Err(err(format!(
            "{total} bytes are too short for an npy header"
        )));
    }
    r.read_exact(&mut start).map_err(read_err)?;
    if &start[..6] != MAGIC {
        return Err(err(
            "not an npy file (the magic string \\x93NUMPY is missing)".into(),
        ));
    }
    let (major, minor) = (start[6], start[7]);
    let (header_len, preamble) = match (major, minor) {
        (1, 0) => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(read_err)?;
            (u16::from_le_bytes(b) as u64, 10u64)
        }
        (2, 0) | (3, 0) => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(read_err)?;
            (u32::from_le_bytes(b) as u64, 12u64)
        }
        _ => return Err(err(format!("unsupported format version {major}.{minor}"))),
    };
    if preamble + header_len > total {
        return Err(err(format!(
            "header length {header_len} runs past the end of the file ({total} bytes)"
        )));
    }
    let mut text = vec![0u8; header_len as usize];
    r.read_exact(&mut text).map_err(read_err)?;
    let header = parse_header(&text).map_err(|p| err(format!("bad header: {p}")))?;
    let remaining = total - preamble - header_len;
    let (n, nbytes) = checked_nbytes(&header.shape, header.dtype.size())
        .ok_or_else(|| err(format!("shape {:?} is too large", header.shape)))?;
    if nbytes as u64 > remaining {
        return Err(err(format!(
            "the data of shape {:?} and dtype {} needs {nbytes} bytes, but the file has {remaining} \
             after the header (truncated)",
            header.shape, header.dtype
        )));
    }
    let mut buf = Buffer::uninit(nbytes)?;
    r.read_exact(buf.bytes_mut()).map_err(read_err)?;
    normalize_in_place(buf.bytes_mut(), header.dtype, header.order);
    let strides = if header.fortran_order {
        column_major_strides(&header.shape)
    } else {
        row_major_strides(&header.shape)
    };
    debug_assert_eq!(n * header.dtype.size(), buf.size());
    Ok(Array::from_data(ArrayData {
        buffer: std::sync::Arc::new(buf),
        shape: header.shape,
        dtype: header.dtype,
        strides,
        offset: 0,
    }))
}

fn column_major_strides(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut s = 1isize;
    for (st, &d) in strides.iter_mut().zip(shape) {
        *st = s;
        s = s.saturating_mul(d.max(1) as isize);
    }
    strides
}

/// The descr of `dtype` in the machine's byte order, or why there is none.
fn descr(dtype: Dtype) -> Result<String, String> {
    let order = if ByteOrder::NATIVE == ByteOrder::Little {
        '<'
    } else {
        '>'
    };
    Ok(match dtype {
        Dtype::Bool => "|b1".into(),
        Dtype::Uint8 => "|u1".into(),
        Dtype::Int8 => "|i1".into(),
        Dtype::Bfloat16 => {
            return Err(
                "bfloat16 has no NumPy dtype: convert the array first (e.g. \
                        ops::astype(&a, Dtype::Float32)), or save it as safetensors"
                    .into(),
            );
        }
        d => {
            let kind = match d {
                d if d.is_complex() => 'c',
                d if d.is_float() => 'f',
                d if d.is_signed() => 'i',
                _ => 'u',
            };
            format!("{order}{kind}{}", d.size())
        }
    })
}

/// The preamble and header of an npy file of `dtype` and `shape`, padded so the data starts
/// at a multiple of 64 bytes, as NumPy writes it.
pub(crate) fn header_bytes(dtype: Dtype, shape: &[usize]) -> Result<Vec<u8>, String> {
    let shape_text = match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        ds => format!(
            "({})",
            ds.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        descr(dtype)?
    );
    // The header ends with '\n' and is padded with spaces before it.
    let padded = |preamble: usize| (preamble + dict.len() + 1).next_multiple_of(ALIGN) - preamble;
    let (version, len_size) = if padded(10) <= u16::MAX as usize {
        (1u8, 2usize)
    } else {
        (2u8, 4usize)
    };
    let header_len = padded(8 + len_size);
    let mut out = Vec::with_capacity(8 + len_size + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if len_size == 2 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        let len = u32::try_from(header_len).map_err(|_| "the header is too long".to_string())?;
        out.extend_from_slice(&len.to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + header_len - dict.len() - 1, b' ');
    out.push(b'\n');
    Ok(out)
}

/// A value of the header's Python literal.
#[derive(Debug, PartialEq)]
enum Lit {
    Str(String),
    Bool(bool),
    Int(u64),
    None,
    /// A tuple or a list.
    Seq(Vec<Lit>),
    Dict,
}

/// Parses the header dict: `descr`, `fortran_order` and `shape` must be there (other keys are
/// ignored).
pub(crate) fn parse_header(text: &[u8]) -> Result<Header, String> {
    let mut p = Parser { s: text, i: 0 };
    let entries = p.dict()?;
    p.ws();
    if p.i != text.len() {
        return Err(format!("unexpected text after the dict at byte {}", p.i));
    }
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("no {key:?} key"))
    };
    let (dtype, order) = match get("descr")? {
        Lit::Str(s) => parse_descr(s)?,
        Lit::Seq(_) => {
            return Err("structured dtypes (records) are not supported; only plain arrays".into());
        }
        v => return Err(format!("'descr' is {v:?}, not a string")),
    };
    let fortran_order = match get("fortran_order")? {
        Lit::Bool(b) => *b,
        v => return Err(format!("'fortran_order' is {v:?}, not True or False")),
    };
    let shape = match get("shape")? {
        Lit::Seq(items) => items
            .iter()
            .map(|v| match v {
                Lit::Int(d) => {
                    usize::try_from(*d).map_err(|_| format!("dimension {d} is too large"))
                }
                v => Err(format!("shape holds {v:?}, not an integer")),
            })
            .collect::<Result<Vec<usize>, String>>()?,
        v => return Err(format!("'shape' is {v:?}, not a tuple")),
    };
    Ok(Header {
        dtype,
        order,
        fortran_order,
        shape,
    })
}

/// A NumPy dtype string (`'<f4'`, `'|b1'`, `'>c8'`) as a umx dtype and byte order.
fn parse_descr(s: &str) -> Result<(Dtype, ByteOrder), String> {
    let (order, code) = match s.as_bytes().first() {
        Some(b'<') => (ByteOrder::Little, &s[1..]),
        Some(b'>') => (ByteOrder::Big, &s[1..]),
        Some(b'|' | b'=') => (ByteOrder::NATIVE, &s[1..]),
        _ => (ByteOrder::NATIVE, s),
    };
    let dtype = match code {
        "b1" | "?" => Dtype::Bool,
        "u1" | "B" => Dtype::Uint8,
        "u2" => Dtype::Uint16,
        "u4" => Dtype::Uint32,
        "u8" => Dtype::Uint64,
        "i1" | "b" => Dtype::Int8,
        "i2" => Dtype::Int16,
        "i4" => Dtype::Int32,
        "i8" => Dtype::Int64,
        "f2" | "e" => Dtype::Float16,
        "f4" => Dtype::Float32,
        "f8" => Dtype::Float64,
        "c8" => Dtype::Complex64,
        _ => return Err(format!("dtype {s:?} has no umx dtype")),
    };
    Ok((dtype, order))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", c as char, self.i))
        }
    }

    fn dict(&mut self) -> Result<Vec<(String, Lit)>, String> {
        self.expect(b'{')?;
        let mut out = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(out);
            }
            let key = match self.value(1)? {
                Lit::Str(k) => k,
                v => return Err(format!("dict key {v:?} is not a string")),
            };
            self.expect(b':')?;
            let v = self.value(1)?;
            out.push((key, v));
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected ',' or '}}' at byte {}", self.i)),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Lit, String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != q {
                    if self.s[self.i] == b'\\' {
                        return Err("escapes in strings are not supported".into());
                    }
                    self.i += 1;
                }
                if self.i >= self.s.len() {
                    return Err("a string is not closed".into());
                }
                // Latin-1 (versions 1 and 2) or UTF-8 (version 3): keys and dtype codes are
                // ASCII either way, and anything else is refused later by name.
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Ok(Lit::Str(text))
            }
            Some(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(close) {
                        self.i += 1;
                        return Ok(Lit::Seq(items));
                    }
                    items.push(self.value(depth + 1)?);
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(c) if c == close => {}
                        _ => {
                            return Err(format!(
                                "expected ',' or a closing bracket at byte {}",
                                self.i
                            ));
                        }
                    }
                }
            }
            Some(b'{') => {
                self.dict()?;
                Ok(Lit::Dict)
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
                let v = digits
                    .parse::<u64>()
                    .map_err(|_| format!("integer {digits} is too large"))?;
                // Python 2 wrote long integers with an `L`.
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                Ok(Lit::Int(v))
            }
            Some(b'-') => Err(format!("a negative number at byte {}", self.i)),
            Some(_) => {
                for (word, lit) in [
                    ("True", Lit::Bool(true)),
                    ("False", Lit::Bool(false)),
                    ("None", Lit::None),
                ] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Ok(lit);
                    }
                }
                Err(format!("unexpected text at byte {}", self.i))
            }
            None => Err("the header ends early".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parses_numpy_dicts_with_either_quotes_and_long_integers() {
        let h = parse_header(b"{'descr': '>f8', 'fortran_order': True, 'shape': (2L, 3), }    \n")
            .unwrap();
        assert_eq!(
            h,
            Header {
                dtype: Dtype::Float64,
                order: ByteOrder::Big,
                fortran_order: true,
                shape: vec![2, 3]
            }
        );
        let h = parse_header(br#"{"shape": (), "fortran_order": False, "descr": "|b1"}"#).unwrap();
        assert_eq!(h.shape, Vec::<usize>::new());
        assert_eq!(h.dtype, Dtype::Bool);
    }

    #[test]
    fn header_refuses_records_negative_sizes_and_missing_keys() {
        let bad: [&[u8]; 6] = [
            b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
            b"{'descr': '<f4', 'shape': (2,), }",
            b"{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }",
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
            b"{'descr': '<f4', 'fortran_order': False, 'shape': ((((((((((((((((((1,),),),),),),),),),),),),),),),),),),), }",
        ];
        for h in bad {
            assert!(parse_header(h).is_err(), "{}", String::from_utf8_lossy(h));
        }
    }

    #[test]
    fn written_headers_align_the_data_to_64_bytes() {
        for shape in [vec![], vec![3], vec![2, 3, 4]] {
            let h = header_bytes(Dtype::Float32, &shape).unwrap();
            assert_eq!(h.len() % 64, 0);
            assert_eq!(h.last(), Some(&b'\n'));
            assert_eq!(parse_header(&h[10..]).unwrap().shape, shape);
        }
    }
}
