//! Helpers shared by the kernels: parallel thresholds and strided-to-contiguous copies.

use umx_core::{ArrayData, Buffer, Element, Result, dispatch_dtype};

/// Below this many elements a kernel runs on one thread: splitting costs more than it saves.
pub const PARALLEL_THRESHOLD: usize = 1 << 15;

/// A fresh buffer for `n` elements of `T`.
pub fn alloc<T: Element>(n: usize) -> Result<Buffer> {
    Buffer::uninit(n * std::mem::size_of::<T>())
}

/// The elements of `data` in row-major order as a new contiguous array (or `data` itself when it
/// already is one).
pub fn contiguous(data: ArrayData) -> Result<ArrayData> {
    if data.is_row_contiguous() && data.buffer.len_of(data.dtype) == data.size() {
        return Ok(data);
    }
    dispatch_dtype!(data.dtype, T => {
        let mut buf = alloc::<T>(data.size())?;
        let src = data.buffer.as_slice::<T>();
        let dst = buf.as_mut_slice::<T>();
        let mut k = 0;
        data.for_each_index(|i| {
            dst[k] = src[i];
            k += 1;
        });
        Ok(ArrayData::contiguous(buf, &data.shape, data.dtype))
    })
}
