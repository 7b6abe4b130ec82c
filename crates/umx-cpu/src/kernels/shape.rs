//! CPU kernels of the shape primitives. Views (reshape, transpose, broadcast, flip,
//! as_strided, split, view) return the input's `Arc<Buffer>` with new strides and offset;
//! copies (copy, concatenate, pad, reshape of non-viewable data) gather into a new buffer,
//! copying contiguous runs with `memcpy` and splitting big outputs over rayon threads.
//!
//! Moving elements does not depend on their type, only on their size, so the copy loops are
//! instantiated for 1-, 2-, 4- and 8-byte words rather than for every dtype.

use crate::strided::PARALLEL_THRESHOLD;
use rayon::prelude::*;
use std::sync::Arc;
use umx_core::device::OutSpec;
use umx_core::primitives::ShapeOp;
use umx_core::primitives::shape::PadMode;
use umx_core::shape::{numel, row_major_strides};
use umx_core::{ArrayData, Buffer, Dtype, Element, Error, Result, dispatch_dtype};

/// Runs `$body` with `$T` bound to an unsigned integer of `$dtype`'s size.
macro_rules! by_size {
    ($dtype:expr, $T:ident => $body:expr) => {{
        match $dtype.size() {
            1 => {
                type $T = u8;
                $body
            }
            2 => {
                type $T = u16;
                $body
            }
            4 => {
                type $T = u32;
                $body
            }
            _ => {
                type $T = u64;
                $body
            }
        }
    }};
}

pub fn eval(op: &ShapeOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let name = op.name();
    let first = || {
        inputs
            .first()
            .cloned()
            .ok_or_else(|| Error::Device(format!("{name}: no input")))
    };
    let out = |i: usize| {
        outputs
            .get(i)
            .ok_or_else(|| Error::Device(format!("{name}: no output {i}")))
    };
    match op {
        ShapeOp::Copy => {
            let x = first()?;
            let spec = out(0)?;
            if x.dtype != spec.dtype {
                return Ok(vec![cast_contiguous(&x, spec.dtype)?]);
            }
            Ok(vec![contiguous(x)?])
        }
        ShapeOp::Reshape { shape } => Ok(vec![reshape(first()?, shape)?]),
        ShapeOp::Transpose { perm } => {
            let x = first()?;
            check_view(name, &x, perm.len())?;
            let mut seen = vec![false; perm.len()];
            for &p in perm {
                if p >= perm.len() || std::mem::replace(&mut seen[p], true) {
                    return Err(Error::Device(format!(
                        "{name}: {perm:?} is not a permutation"
                    )));
                }
            }
            let shape = perm.iter().map(|&p| x.shape[p]).collect();
            let strides = perm.iter().map(|&p| x.strides[p]).collect();
            Ok(vec![ArrayData {
                shape,
                strides,
                ..x
            }])
        }
        ShapeOp::Broadcast { shape } => {
            let x = first()?;
            let off = shape.len().wrapping_sub(x.shape.len());
            let fits = x.shape.len() <= shape.len()
                && x.strides.len() == x.shape.len()
                && (0..x.shape.len()).all(|i| x.shape[i] == shape[off + i] || x.shape[i] == 1);
            if !fits {
                return Err(Error::Device(format!(
                    "{name}: the input does not broadcast"
                )));
            }
            let strides = umx_core::shape::broadcast_strides(&x.shape, &x.strides, shape);
            Ok(vec![ArrayData {
                shape: shape.clone(),
                strides,
                ..x
            }])
        }
        ShapeOp::Flip { axes } => {
            let mut x = first()?;
            for &ax in axes {
                check_view(name, &x, ax + 1)?;
                if x.shape[ax] > 0 {
                    x.offset += (x.shape[ax] as isize - 1) * x.strides[ax];
                    x.strides[ax] = -x.strides[ax];
                }
            }
            Ok(vec![x])
        }
        ShapeOp::AsStrided {
            shape,
            strides,
            offset,
        } => {
            let x = contiguous_anywhere(first()?)?;
            let data = ArrayData {
                shape: shape.clone(),
                strides: strides.clone(),
                offset: x.offset + *offset as isize,
                ..x
            };
            check_in_bounds(name, &data)?;
            Ok(vec![data])
        }
        ShapeOp::Split { axis, bounds } => {
            let x = first()?;
            check_view(name, &x, axis + 1)?;
            bounds
                .iter()
                .map(|&(start, stop)| {
                    if start > stop || stop > x.shape[*axis] {
                        return Err(Error::Device(format!("{name}: piece out of range")));
                    }
                    let mut shape = x.shape.clone();
                    shape[*axis] = stop - start;
                    let offset = if stop > start {
                        x.offset + start as isize * x.strides[*axis]
                    } else {
                        x.offset
                    };
                    Ok(ArrayData {
                        shape,
                        offset,
                        ..x.clone()
                    })
                })
                .collect()
        }
        ShapeOp::Concatenate { axis } => Ok(vec![concatenate(inputs, *axis, out(0)?)?]),
        ShapeOp::Pad { low, high, mode } => Ok(vec![pad(inputs, low, high, *mode, out(0)?)?]),
        ShapeOp::View { dtype } => Ok(vec![view(first()?, *dtype, out(0)?)?]),
    }
}

fn check_view(name: &str, x: &ArrayData, need_ndim: usize) -> Result<()> {
    if x.shape.len() < need_ndim || x.strides.len() != x.shape.len() {
        return Err(Error::Device(format!(
            "{name}: the input has {} axes, the primitive needs {need_ndim}",
            x.shape.len()
        )));
    }
    Ok(())
}

/// Errs unless every element `data` can reach lies inside its buffer (so no view made here can
/// read out of bounds, whatever the arguments).
fn check_in_bounds(name: &str, data: &ArrayData) -> Result<()> {
    if data.size() == 0 {
        return Ok(());
    }
    let (mut lo, mut hi) = (data.offset, data.offset);
    for (&d, &s) in data.shape.iter().zip(&data.strides) {
        let reach = (d as isize - 1) * s;
        if reach < 0 {
            lo += reach;
        } else {
            hi += reach;
        }
    }
    if lo < 0 || hi >= data.buffer.len_of(data.dtype) as isize {
        return Err(Error::Index(format!(
            "{name}: the view reaches elements {lo}..={hi} of a buffer of {}",
            data.buffer.len_of(data.dtype)
        )));
    }
    Ok(())
}

/// The data itself when it is one row-major run (at any offset), else a contiguous copy.
fn contiguous_anywhere(x: ArrayData) -> Result<ArrayData> {
    if umx_core::shape::is_row_contiguous(&x.shape, &x.strides) {
        Ok(x)
    } else {
        gather(&x)
    }
}

/// `x` as a row-major array starting at its buffer's first element (a copy unless it is one).
pub fn contiguous(x: ArrayData) -> Result<ArrayData> {
    if x.is_row_contiguous() && x.buffer.len_of(x.dtype) == x.size() {
        return Ok(x);
    }
    gather(&x)
}

/// A new row-major buffer holding the elements of the view `x`.
fn gather(x: &ArrayData) -> Result<ArrayData> {
    let n = x.size();
    let buf = by_size!(x.dtype, W => {
        let mut buf = Buffer::uninit(n * std::mem::size_of::<W>())?;
        gather_into(
            x.buffer.as_slice::<W>(),
            &x.shape,
            &x.strides,
            x.offset,
            buf.as_mut_slice::<W>(),
            true,
        );
        buf
    });
    Ok(ArrayData::contiguous(buf, &x.shape, x.dtype))
}

/// A row-major copy of `x` converted to `dtype` (C++ `static_cast` semantics).
fn cast_contiguous(x: &ArrayData, dtype: Dtype) -> Result<ArrayData> {
    if x.dtype == dtype {
        return gather(x);
    }
    let x = contiguous_anywhere(x.clone())?;
    let n = x.size();
    let start = x.offset.max(0) as usize;
    let buf = dispatch_dtype!(x.dtype, S => {
        let src = &x.buffer.as_slice::<S>()[start..start + n];
        dispatch_dtype!(dtype, T => {
            let mut buf = Buffer::uninit(n * std::mem::size_of::<T>())?;
            for (d, s) in buf.as_mut_slice::<T>().iter_mut().zip(src) {
                *d = s.cast::<T>();
            }
            buf
        })
    });
    Ok(ArrayData::contiguous(buf, &x.shape, dtype))
}

/// Shape and strides with size-1 axes dropped and axes merged where one steps over the next
/// exactly, so copies run over as few and as long rows as possible. Never empty.
fn collapse(shape: &[usize], strides: &[isize]) -> (Vec<usize>, Vec<isize>) {
    let mut sh: Vec<usize> = Vec::with_capacity(shape.len());
    let mut st: Vec<isize> = Vec::with_capacity(shape.len());
    for (&d, &s) in shape.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        if let (Some(ld), Some(ls)) = (sh.last_mut(), st.last_mut())
            && *ls == s * d as isize
        {
            *ld *= d;
            *ls = s;
            continue;
        }
        sh.push(d);
        st.push(s);
    }
    if sh.is_empty() {
        sh.push(1);
        st.push(1);
    }
    (sh, st)
}

/// Walks the positions of the rows (all axes but the last) of a strided view in row-major
/// order, from any starting row.
struct Rows<'a> {
    shape: &'a [usize],
    strides: &'a [isize],
    idx: Vec<usize>,
    pos: isize,
}

impl<'a> Rows<'a> {
    fn starting_at(
        shape: &'a [usize],
        strides: &'a [isize],
        offset: isize,
        mut row: usize,
    ) -> Self {
        let mut idx = vec![0; shape.len()];
        let mut pos = offset;
        for d in (0..shape.len()).rev() {
            idx[d] = row % shape[d];
            row /= shape[d];
            pos += idx[d] as isize * strides[d];
        }
        Rows {
            shape,
            strides,
            idx,
            pos,
        }
    }

    /// The current row's position; then moves to the next row.
    fn next_pos(&mut self) -> isize {
        let cur = self.pos;
        for d in (0..self.shape.len()).rev() {
            self.idx[d] += 1;
            self.pos += self.strides[d];
            if self.idx[d] < self.shape[d] {
                break;
            }
            self.pos -= self.strides[d] * self.shape[d] as isize;
            self.idx[d] = 0;
        }
        cur
    }
}

/// Copies one row of `n` elements starting at `pos` with step `stride` into `dst`.
#[inline]
fn copy_row<W: Copy>(src: &[W], pos: isize, stride: isize, dst: &mut [W]) {
    if dst.is_empty() {
        return;
    }
    let p = pos as usize;
    match stride {
        1 => dst.copy_from_slice(&src[p..p + dst.len()]),
        0 => dst.fill(src[p]),
        _ => {
            let mut q = pos;
            for d in dst {
                *d = src[q as usize];
                q += stride;
            }
        }
    }
}

/// Writes the elements of the view (`shape`, `strides`, `offset` over `src`) into `dst` in
/// row-major order; over rayon threads when `parallel` and the copy is big.
fn gather_into<W: Copy + Send + Sync>(
    src: &[W],
    shape: &[usize],
    strides: &[isize],
    offset: isize,
    dst: &mut [W],
    parallel: bool,
) {
    let n = numel(shape);
    if n == 0 {
        return;
    }
    let (sh, st) = collapse(shape, strides);
    let nd = sh.len();
    let (inner, inner_stride) = (sh[nd - 1], st[nd - 1]);
    if nd >= 2 && st[nd - 2] == 1 && inner_stride.abs() > 1 && inner >= TILE && sh[nd - 2] >= TILE {
        gather_transposing(src, &sh, &st, offset, &mut dst[..n], parallel);
        return;
    }
    let (outer_shape, outer_strides) = (&sh[..nd - 1], &st[..nd - 1]);
    let fill = |first_row: usize, chunk: &mut [W]| {
        let mut rows = Rows::starting_at(outer_shape, outer_strides, offset, first_row);
        for row in chunk.chunks_mut(inner) {
            copy_row(src, rows.next_pos(), inner_stride, row);
        }
    };
    if parallel && n > PARALLEL_THRESHOLD && n / inner > 1 {
        let rows_per_task = (PARALLEL_THRESHOLD / inner).max(1);
        dst[..n]
            .par_chunks_mut(rows_per_task * inner)
            .enumerate()
            .for_each(|(i, chunk)| fill(i * rows_per_task, chunk));
    } else {
        fill(0, &mut dst[..n]);
    }
}

/// Side of the square tiles a transposing copy moves at a time.
const TILE: usize = 32;

/// [`gather_into`] for views whose last two axes are transposed (the source steps by one
/// along the second-to-last axis and far along the last): copied tile by tile, so every
/// source cache line loaded is used whole instead of for one element.
fn gather_transposing<W: Copy + Send + Sync>(
    src: &[W],
    sh: &[usize],
    st: &[isize],
    offset: isize,
    dst: &mut [W],
    parallel: bool,
) {
    let nd = sh.len();
    let (a, b) = (sh[nd - 2], sh[nd - 1]);
    let (sa, sb) = (st[nd - 2], st[nd - 1]);
    let (planes_shape, planes_strides) = (&sh[..nd - 2], &st[..nd - 2]);
    // Rows `TILE * blk ..` of plane `plane`, all columns, into `chunk`.
    let block = |plane: usize, blk: usize, chunk: &mut [W]| {
        let base = Rows::starting_at(planes_shape, planes_strides, offset, plane).pos;
        let i0 = blk * TILE;
        let rows = chunk.len() / b;
        for j0 in (0..b).step_by(TILE) {
            let j1 = (j0 + TILE).min(b);
            for i in 0..rows {
                let p = base + (i0 + i) as isize * sa;
                for (j, d) in (j0..j1).zip(&mut chunk[i * b + j0..i * b + j1]) {
                    *d = src[(p + j as isize * sb) as usize];
                }
            }
        }
    };
    if parallel && dst.len() > PARALLEL_THRESHOLD {
        dst.par_chunks_mut(a * b)
            .enumerate()
            .for_each(|(plane, p)| {
                p.par_chunks_mut(TILE * b)
                    .enumerate()
                    .for_each(|(blk, c)| block(plane, blk, c))
            });
    } else {
        for (plane, p) in dst.chunks_mut(a * b).enumerate() {
            for (blk, c) in p.chunks_mut(TILE * b).enumerate() {
                block(plane, blk, c);
            }
        }
    }
}

/// Strides that show `shape`/`strides` data as `new_shape` (same elements, row-major order)
/// without moving anything, if there are any (NumPy's no-copy reshape).
pub fn reshape_strides(
    shape: &[usize],
    strides: &[isize],
    new_shape: &[usize],
) -> Option<Vec<isize>> {
    if numel(shape) == 0 {
        return Some(row_major_strides(new_shape));
    }
    let (os, ost): (Vec<usize>, Vec<isize>) = shape
        .iter()
        .zip(strides)
        .filter(|(d, _)| **d != 1)
        .map(|(&d, &s)| (d, s))
        .unzip();
    let mut out = vec![0isize; new_shape.len()];
    let (mut oi, mut ni) = (0, 0);
    while oi < os.len() && ni < new_shape.len() {
        let (mut np, mut op) = (new_shape[ni], os[oi]);
        let (mut nj, mut oj) = (ni + 1, oi + 1);
        while np != op {
            if np < op {
                np *= *new_shape.get(nj)?;
                nj += 1;
            } else {
                op *= *os.get(oj)?;
                oj += 1;
            }
        }
        // The old axes of this group must step over each other exactly.
        for k in oi..oj - 1 {
            if ost[k] != ost[k + 1] * os[k + 1] as isize {
                return None;
            }
        }
        out[nj - 1] = ost[oj - 1];
        for k in (ni..nj - 1).rev() {
            out[k] = out[k + 1] * new_shape[k + 1] as isize;
        }
        ni = nj;
        oi = oj;
    }
    // Trailing new axes are of size 1 (sizes match): any stride will do.
    for s in out.iter_mut().skip(ni) {
        *s = 1;
    }
    Some(out)
}

fn reshape(x: ArrayData, shape: &[usize]) -> Result<ArrayData> {
    if numel(shape) != x.size() {
        return Err(Error::Device("reshape: the sizes differ".into()));
    }
    if let Some(strides) = reshape_strides(&x.shape, &x.strides, shape) {
        return Ok(ArrayData {
            shape: shape.to_vec(),
            strides,
            ..x
        });
    }
    let c = gather(&x)?;
    Ok(ArrayData {
        shape: shape.to_vec(),
        strides: row_major_strides(shape),
        ..c
    })
}

fn concatenate(inputs: Vec<ArrayData>, axis: usize, spec: &OutSpec) -> Result<ArrayData> {
    let dtype = spec.dtype;
    let inputs = inputs
        .into_iter()
        .map(|x| {
            if x.dtype == dtype {
                Ok(x)
            } else {
                cast_contiguous(&x, dtype)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let shape = &spec.shape;
    if axis >= shape.len() || inputs.iter().any(|x| x.shape.len() != shape.len()) {
        return Err(Error::Device(
            "concatenate: inputs do not fit the output".into(),
        ));
    }
    let n = numel(shape);
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let row = shape[axis] * inner;
    // Where each input's part of an output row starts.
    let mut starts = Vec::with_capacity(inputs.len());
    let mut at = 0;
    for x in &inputs {
        starts.push(at);
        at += x.shape[axis] * inner;
    }
    let buf = by_size!(dtype, W => {
        let mut buf = Buffer::uninit(n * std::mem::size_of::<W>())?;
        if n > 0 {
            let srcs: Vec<&[W]> = inputs.iter().map(|x| x.buffer.as_slice::<W>()).collect();
            let outer_shape = &shape[..axis];
            let fill_row = |o: usize, dst: &mut [W], parallel: bool| {
                for (k, x) in inputs.iter().enumerate() {
                    let len = x.shape[axis] * inner;
                    let pos = Rows::starting_at(outer_shape, &x.strides[..axis], x.offset, o).pos;
                    gather_into(
                        srcs[k],
                        &x.shape[axis..],
                        &x.strides[axis..],
                        pos,
                        &mut dst[starts[k]..starts[k] + len],
                        parallel,
                    );
                }
            };
            let dst = buf.as_mut_slice::<W>();
            if outer > 1 && n > PARALLEL_THRESHOLD {
                dst[..n].par_chunks_mut(row).enumerate().for_each(|(o, d)| fill_row(o, d, false));
            } else {
                for (o, d) in dst[..n].chunks_mut(row).enumerate() {
                    fill_row(o, d, true);
                }
            }
        }
        buf
    });
    Ok(ArrayData::contiguous(buf, shape, dtype))
}

fn pad(
    inputs: Vec<ArrayData>,
    low: &[usize],
    high: &[usize],
    mode: PadMode,
    spec: &OutSpec,
) -> Result<ArrayData> {
    let mut inputs = inputs.into_iter();
    let x = inputs
        .next()
        .ok_or_else(|| Error::Device("pad: no input".into()))?;
    let dtype = x.dtype;
    let value = match mode {
        PadMode::Constant => {
            let v = inputs
                .next()
                .ok_or_else(|| Error::Device("pad: no pad value".into()))?;
            if v.size() != 1 {
                return Err(Error::Device("pad: the pad value is not a scalar".into()));
            }
            Some(cast_contiguous(&v, dtype)?)
        }
        PadMode::Edge => None,
    };
    let nd = x.shape.len();
    let fits = low.len() == nd
        && high.len() == nd
        && spec.shape.len() == nd
        && (0..nd).all(|d| spec.shape[d] == x.shape[d] + low[d] + high[d]);
    if !fits {
        return Err(Error::Device("pad: widths do not fit the input".into()));
    }
    // A 0-d array pads to itself; view it as one element of a 1-d array.
    let (in_shape, in_strides, low, out_shape) = if nd == 0 {
        (vec![1], vec![1], vec![0], vec![1])
    } else {
        (
            x.shape.clone(),
            x.strides.clone(),
            low.to_vec(),
            spec.shape.clone(),
        )
    };
    let nd = in_shape.len();
    let n = numel(&out_shape);
    let buf = by_size!(dtype, W => {
        let mut buf = Buffer::uninit(n * std::mem::size_of::<W>())?;
        let last = out_shape[nd - 1];
        if n > 0 {
            let src = x.buffer.as_slice::<W>();
            let fill_value: Option<W> = value.as_ref().map(|v| v.buffer.as_slice::<W>()[0]);
            let (n_last, s_last) = (in_shape[nd - 1], in_strides[nd - 1]);
            let lo_last = low[nd - 1];
            let fill_row = |r: usize, dst: &mut [W]| {
                // The source row: `None` when the row lies in the border of constant padding.
                let mut rem = r;
                let mut pos = Some(x.offset);
                for d in (0..nd - 1).rev() {
                    let i = rem % out_shape[d];
                    rem /= out_shape[d];
                    let j = i as isize - low[d] as isize;
                    let j = match fill_value {
                        Some(_) if j < 0 || j >= in_shape[d] as isize => {
                            pos = None;
                            break;
                        }
                        Some(_) => j,
                        None => j.clamp(0, in_shape[d] as isize - 1),
                    };
                    pos = pos.map(|p| p + j * in_strides[d]);
                }
                let Some(p) = pos else {
                    if let Some(v) = fill_value {
                        dst.fill(v);
                    }
                    return;
                };
                let (before, rest) = dst.split_at_mut(lo_last);
                let (middle, after) = rest.split_at_mut(n_last);
                copy_row(src, p, s_last, middle);
                match fill_value {
                    Some(v) => {
                        before.fill(v);
                        after.fill(v);
                    }
                    None if n_last > 0 => {
                        before.fill(src[p as usize]);
                        after.fill(src[(p + (n_last as isize - 1) * s_last) as usize]);
                    }
                    None => {}
                }
            };
            let dst = &mut buf.as_mut_slice::<W>()[..n];
            if n > PARALLEL_THRESHOLD {
                dst.par_chunks_mut(last).enumerate().for_each(|(r, d)| fill_row(r, d));
            } else {
                for (r, d) in dst.chunks_mut(last).enumerate() {
                    fill_row(r, d);
                }
            }
        }
        buf
    });
    Ok(ArrayData::contiguous(buf, &spec.shape, dtype))
}

fn view(x: ArrayData, dtype: Dtype, spec: &OutSpec) -> Result<ArrayData> {
    let x = contiguous_anywhere(x)?;
    let (isize_, osize) = (x.dtype.size(), dtype.size());
    let byte_offset = x.offset as usize * isize_;
    let nbytes = x.size() * isize_;
    if numel(&spec.shape) * osize != nbytes {
        return Err(Error::Device(
            "view: the output does not hold the input's bytes".into(),
        ));
    }
    let bytes = &x.buffer.bytes()[byte_offset..byte_offset + nbytes];
    if dtype == Dtype::Bool {
        // Any byte but 0 or 1 is not a bool: normalise (a non-zero byte is true).
        let mut buf = Buffer::uninit(nbytes)?;
        for (d, &s) in buf.bytes_mut().iter_mut().zip(bytes) {
            *d = (s != 0) as u8;
        }
        return Ok(ArrayData::contiguous(buf, &spec.shape, dtype));
    }
    if !byte_offset.is_multiple_of(osize) {
        let mut buf = Buffer::uninit(nbytes)?;
        buf.bytes_mut().copy_from_slice(bytes);
        return Ok(ArrayData::contiguous(buf, &spec.shape, dtype));
    }
    Ok(ArrayData {
        buffer: Arc::clone(&x.buffer),
        shape: spec.shape.clone(),
        dtype,
        strides: row_major_strides(&spec.shape),
        offset: (byte_offset / osize) as isize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_views_where_strides_allow() {
        // A transposed (3, 2) of a (2, 3): merging its axes needs a copy; splitting them not.
        assert_eq!(reshape_strides(&[3, 2], &[1, 3], &[6]), None);
        // The stride of a size-1 axis is never used, so only the others are checked.
        let split = reshape_strides(&[3, 2], &[1, 3], &[3, 1, 2]).expect("a view");
        assert_eq!((split[0], split[2]), (1, 3));
        assert_eq!(
            reshape_strides(&[2, 3, 4], &[12, 4, 1], &[6, 4]),
            Some(vec![4, 1])
        );
        assert_eq!(reshape_strides(&[4], &[2], &[2, 2]), Some(vec![4, 2]));
    }

    #[test]
    fn collapse_merges_contiguous_axes() {
        assert_eq!(collapse(&[2, 3, 4], &[12, 4, 1]), (vec![24], vec![1]));
        assert_eq!(collapse(&[2, 1, 3], &[3, 9, 1]), (vec![6], vec![1]));
        assert_eq!(collapse(&[2, 3], &[1, 2]), (vec![2, 3], vec![1, 2]));
        assert_eq!(collapse(&[], &[]), (vec![1], vec![1]));
    }
}
