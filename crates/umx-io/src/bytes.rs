//! Arrays to and from the raw bytes of their elements: the one place every format's reader and
//! writer meets umx's storage (byte order, bool bytes, non-contiguous views).

use std::borrow::Cow;
use umx_core::shape::is_row_contiguous;
use umx_core::{Array, ArrayData, Buffer, Dtype, Result};

/// The byte order of numbers in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    /// Least significant byte first (x86, ARM, and every format's usual order).
    Little,
    /// Most significant byte first.
    Big,
}

impl ByteOrder {
    /// The byte order of this machine: what umx's buffers hold.
    pub const NATIVE: ByteOrder = if cfg!(target_endian = "big") {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };
}

/// An evaluated array whose elements can be read as bytes in row-major order, in the machine's
/// byte order: a borrow of the buffer when the array is a contiguous view, else a gathered copy
/// made when asked for (so a writer holding many of them holds no copies).
pub(crate) struct ArrayBytes {
    data: ArrayData,
}

impl ArrayBytes {
    /// Evaluates `a` if needed.
    pub(crate) fn of(a: &Array) -> Result<ArrayBytes> {
        Ok(ArrayBytes { data: a.data()? })
    }

    pub(crate) fn bytes(&self) -> Cow<'_, [u8]> {
        let d = &self.data;
        if let Some(r) = contiguous_range(d) {
            return d.buffer.bytes()[r].into();
        }
        let es = d.dtype.size();
        let all = d.buffer.bytes();
        let mut out = Vec::with_capacity(d.size() * es);
        d.for_each_index(|i| out.extend_from_slice(&all[i * es..(i + 1) * es]));
        out.into()
    }

    pub(crate) fn dtype(&self) -> Dtype {
        self.data.dtype
    }

    pub(crate) fn shape(&self) -> &[usize] {
        &self.data.shape
    }

    /// Size of the elements in bytes.
    pub(crate) fn nbytes(&self) -> usize {
        self.data.size() * self.data.dtype.size()
    }
}

/// The byte range of a row-major contiguous view inside its buffer, if it is one.
fn contiguous_range(d: &ArrayData) -> Option<std::ops::Range<usize>> {
    let es = d.dtype.size();
    let n = d.size() * es;
    if n == 0 {
        return Some(0..0);
    }
    // The range is checked against the buffer, so even a view this crate did not make can
    // never index past it.
    if !is_row_contiguous(&d.shape, &d.strides) || d.offset < 0 {
        return None;
    }
    let start = (d.offset as usize).checked_mul(es)?;
    let end = start.checked_add(n)?;
    (end <= d.buffer.size()).then_some(start..end)
}

/// The size in bytes of one number that byte order applies to: an element, or for complex
/// numbers each of their two parts.
fn swap_unit(dtype: Dtype) -> usize {
    if dtype.is_complex() {
        dtype.size() / 2
    } else {
        dtype.size()
    }
}

/// Puts freshly read element bytes into umx's form, in place: reverses the bytes of each
/// number when the file's byte order is not the machine's, and makes every bool byte 0 or 1
/// (any other byte would be an invalid `bool`).
pub(crate) fn normalize_in_place(bytes: &mut [u8], dtype: Dtype, order: ByteOrder) {
    if dtype == Dtype::Bool {
        for b in bytes.iter_mut() {
            *b = (*b != 0) as u8;
        }
        return;
    }
    let unit = swap_unit(dtype);
    if order != ByteOrder::NATIVE && unit > 1 {
        for chunk in bytes.chunks_exact_mut(unit) {
            chunk.reverse();
        }
    }
}

/// A new buffer holding `bytes` in umx's form (see [`normalize_in_place`]).
pub(crate) fn buffer_from_bytes(bytes: &[u8], dtype: Dtype, order: ByteOrder) -> Result<Buffer> {
    let mut buf = Buffer::uninit(bytes.len())?;
    buf.bytes_mut().copy_from_slice(bytes);
    normalize_in_place(buf.bytes_mut(), dtype, order);
    Ok(buf)
}

/// A row-major array of `shape` over a copy of `bytes` (whose length the caller has checked
/// against the shape and dtype).
pub(crate) fn array_from_bytes(
    bytes: &[u8],
    shape: &[usize],
    dtype: Dtype,
    order: ByteOrder,
) -> Result<Array> {
    let buf = buffer_from_bytes(bytes, dtype, order)?;
    Ok(Array::from_data(ArrayData::contiguous(buf, shape, dtype)))
}

/// Element bytes in `order`, from bytes in the machine's: unchanged when the two agree.
pub(crate) fn to_byte_order(bytes: Cow<'_, [u8]>, dtype: Dtype, order: ByteOrder) -> Cow<'_, [u8]> {
    let unit = swap_unit(dtype);
    if order == ByteOrder::NATIVE || unit == 1 {
        return bytes;
    }
    let mut v = bytes.into_owned();
    for chunk in v.chunks_exact_mut(unit) {
        chunk.reverse();
    }
    v.into()
}

/// The number of elements of `shape` and their size in bytes, or `None` when either
/// overflows.
pub(crate) fn checked_nbytes(shape: &[usize], elem_size: usize) -> Option<(usize, usize)> {
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
    Some((n, n.checked_mul(elem_size)?))
}
