//! CPU kernels of the quantization primitives (the format: `umx_core::primitives::quantized`).
//!
//! - `quantize`: rows in parallel, each group through the one shared rule
//!   ([`quantize_group`]), so the codes equal MLX's bit for bit.
//! - `dequantize`: rows in parallel, a group at a time.
//! - `quantized_matmul` with few rows of `x` (decode): the weights are read once, a group at
//!   a time, in parallel over output columns; per group the sum is `s * Σ x q + b * Σ x`, in
//!   float32. With more rows the weights are dequantized once to the activation dtype and the
//!   product goes to `gemm` (the matmul kernel).

use crate::kernels::matmul;
use crate::strided::{PARALLEL_THRESHOLD, alloc, contiguous};
use rayon::prelude::*;
use umx_core::device::OutSpec;
use umx_core::primitives::quantized::{
    SUPPORTED_BITS, SUPPORTED_GROUP_SIZES, pack_codes, quantize_group, unpack_codes,
};
use umx_core::primitives::{MatmulOp, QuantOp};
use umx_core::shape::{numel, row_major_strides};
use umx_core::{ArrayData, Buffer, Dtype, Element, Error, Result, bf16, f16};

/// At most this many rows of `x` go through the direct kernel; more dequantize and use gemm.
const DIRECT_MAX_ROWS: usize = 8;

/// The float types scales, biases and activations come in.
trait Float: Element {
    fn f32(self) -> f32;
    fn of(v: f32) -> Self;
}
impl Float for f32 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn of(v: f32) -> Self {
        v
    }
}
impl Float for f16 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn of(v: f32) -> Self {
        f16::from_f32(v)
    }
}
impl Float for bf16 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn of(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

macro_rules! dispatch_float {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {
        match $dtype {
            Dtype::Float32 => {
                type $T = f32;
                $body
            }
            Dtype::Float16 => {
                type $T = f16;
                $body
            }
            Dtype::Bfloat16 => {
                type $T = bf16;
                $body
            }
            other => Err(Error::Device(format!(
                "{}: the cpu has no kernel for {other}",
                $op
            ))),
        }
    };
}

pub fn eval(op: &QuantOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let (group_size, bits) = op.params();
    let bad = || {
        Error::Device(format!(
            "cpu: {} got {} inputs and {} outputs",
            op.name(),
            inputs.len(),
            outputs.len()
        ))
    };
    // The ops check these; a primitive built by hand must not reach a panicking slice.
    if !SUPPORTED_GROUP_SIZES.contains(&group_size) || !SUPPORTED_BITS.contains(&bits) {
        return Err(Error::Invalid(format!(
            "{}: group size {group_size} and {bits} bits are not supported",
            op.name()
        )));
    }
    let (codes_at, min_rank) = match op {
        QuantOp::QuantizedMatmul { .. } => (1, 2),
        _ => (0, 1),
    };
    if inputs
        .get(codes_at)
        .is_some_and(|q| q.shape.len() < min_rank)
    {
        return Err(Error::Invalid(format!(
            "{}: the quantized matrix has too few dimensions",
            op.name()
        )));
    }
    match (op, &inputs[..], outputs) {
        (QuantOp::Quantize { .. }, [w], [oq, os, ob]) => {
            let w = contiguous(w.clone())?;
            dispatch_float!(w.dtype, op.name(), T => quantize::<T>(&w, group_size, bits, oq, os, ob))
        }
        (QuantOp::Dequantize { .. }, [q, s, b], [out]) => {
            let (q, s, b) = (
                contiguous(q.clone())?,
                contiguous(s.clone())?,
                contiguous(b.clone())?,
            );
            dispatch_float!(out.dtype, op.name(), T => {
                let k = out.shape.last().copied().unwrap_or(0);
                let mut buf = alloc::<T>(out.shape.iter().product())?;
                dequantize_rows::<T>(
                    q.contiguous_slice::<u32>().unwrap_or(&[]),
                    s.contiguous_slice::<T>().unwrap_or(&[]),
                    b.contiguous_slice::<T>().unwrap_or(&[]),
                    k,
                    group_size,
                    bits,
                    buf.as_mut_slice::<T>(),
                );
                Ok(vec![ArrayData::contiguous(buf, &out.shape, out.dtype)])
            })
        }
        (QuantOp::QuantizedMatmul { transpose, .. }, [x, q, s, b], [out]) => {
            let mm = Qmm {
                transpose: *transpose,
                group_size,
                bits,
            };
            dispatch_float!(out.dtype, op.name(), T => mm.run::<T>(x, q, s, b, out))
        }
        _ => Err(bad()),
    }
}

/// One group's input, packed words, scale and bias, as the zipped iterators give them.
type GroupOut<'a, T> = (((&'a [T], &'a mut [u32]), &'a mut T), &'a mut T);

fn quantize<T: Float>(
    w: &ArrayData,
    group_size: usize,
    bits: usize,
    oq: &OutSpec,
    os: &OutSpec,
    ob: &OutSpec,
) -> Result<Vec<ArrayData>> {
    let src = w.contiguous_slice::<T>().unwrap_or(&[]);
    let n_groups = src.len() / group_size;
    let words_per_group = group_size * bits / 32;
    let mut q = Buffer::zeroed(n_groups * words_per_group * 4)?;
    let mut s = alloc::<T>(n_groups)?;
    let mut b = alloc::<T>(n_groups)?;
    let work = |(((g, words), s), b): GroupOut<'_, T>| {
        let mut wf = [0f32; 128];
        let mut codes = [0u32; 128];
        for (d, &v) in wf.iter_mut().zip(g) {
            *d = v.f32();
        }
        let (scale, bias) = quantize_group(&wf[..group_size], bits, &mut codes[..group_size]);
        pack_codes(&codes[..group_size], bits, 0, words);
        *s = T::of(scale);
        *b = T::of(bias);
    };
    let (qs, ss, bs) = (
        q.as_mut_slice::<u32>(),
        s.as_mut_slice::<T>(),
        b.as_mut_slice::<T>(),
    );
    if src.len() >= PARALLEL_THRESHOLD {
        src.par_chunks_exact(group_size)
            .zip(qs.par_chunks_exact_mut(words_per_group))
            .zip(ss.par_iter_mut())
            .zip(bs.par_iter_mut())
            .for_each(work);
    } else {
        src.chunks_exact(group_size)
            .zip(qs.chunks_exact_mut(words_per_group))
            .zip(ss.iter_mut())
            .zip(bs.iter_mut())
            .for_each(work);
    }
    Ok(vec![
        ArrayData::contiguous(q, &oq.shape, Dtype::Uint32),
        ArrayData::contiguous(s, &os.shape, os.dtype),
        ArrayData::contiguous(b, &ob.shape, ob.dtype),
    ])
}

/// Dequantizes contiguous rows of `k` elements into `out` (`rows * k`), in parallel over rows.
#[allow(clippy::too_many_arguments)]
fn dequantize_rows<T: Float>(
    q: &[u32],
    s: &[T],
    b: &[T],
    k: usize,
    group_size: usize,
    bits: usize,
    out: &mut [T],
) {
    if k == 0 {
        return;
    }
    let words = k * bits / 32;
    let groups = k / group_size;
    let row = |(r, o): (usize, &mut [T])| {
        let mut codes = [0f32; 128];
        let qr = &q[r * words..(r + 1) * words];
        for g in 0..groups {
            let (sc, bi) = (s[r * groups + g].f32(), b[r * groups + g].f32());
            unpack_codes(qr, bits, g * group_size, &mut codes[..group_size]);
            for (d, &c) in o[g * group_size..(g + 1) * group_size]
                .iter_mut()
                .zip(&codes[..group_size])
            {
                *d = T::of(sc * c + bi);
            }
        }
    };
    if out.len() >= PARALLEL_THRESHOLD {
        out.par_chunks_mut(k).enumerate().for_each(row);
    } else {
        out.chunks_mut(k).enumerate().for_each(row);
    }
}

/// A view whose last two dims are row-contiguous matrices: its buffer and each batch's
/// matrix start (in elements). Broadcast batch dims (stride 0) stay uncopied.
fn matrices(data: &ArrayData) -> Result<(ArrayData, Vec<usize>)> {
    let nd = data.shape.len();
    let inner_ok = |d: &ArrayData| {
        let (r, c) = (d.shape[nd - 2], d.shape[nd - 1]);
        (c <= 1 || d.strides[nd - 1] == 1) && (r <= 1 || d.strides[nd - 2] == c as isize)
    };
    let d = if nd >= 2 && inner_ok(data) && data.strides[..nd - 2].iter().all(|&s| s >= 0) {
        data.clone()
    } else {
        contiguous(data.clone())?
    };
    let batch = &d.shape[..nd.saturating_sub(2)];
    let mut starts = Vec::with_capacity(numel(batch));
    let mut idx = vec![0usize; batch.len()];
    for _ in 0..numel(batch) {
        let off: isize = d.offset
            + idx
                .iter()
                .zip(&d.strides)
                .map(|(&i, &s)| i as isize * s)
                .sum::<isize>();
        starts.push(off.max(0) as usize);
        for a in (0..batch.len()).rev() {
            idx[a] += 1;
            if idx[a] < batch[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    Ok((d, starts))
}

/// One quantized product.
struct Qmm {
    transpose: bool,
    group_size: usize,
    bits: usize,
}

impl Qmm {
    fn run<T: Float>(
        &self,
        x: &ArrayData,
        q: &ArrayData,
        s: &ArrayData,
        b: &ArrayData,
        out: &OutSpec,
    ) -> Result<Vec<ArrayData>> {
        let qn = q.shape.len();
        let (rows, cols) = (q.shape[qn - 2], q.shape[qn - 1] * 32 / self.bits);
        let (k, n) = if self.transpose {
            (cols, rows)
        } else {
            (rows, cols)
        };
        let batched = qn > 2;
        // x as (batch, m, k) rows, contiguous.
        let x = contiguous(x.clone())?;
        let nb = if batched {
            numel(&q.shape[..qn - 2])
        } else {
            1
        };
        let m = if nb == 0 || k == 0 {
            0
        } else {
            x.size() / k / nb
        };
        let total = numel(&out.shape);
        if total == 0 {
            return Ok(vec![ArrayData::contiguous(
                alloc::<T>(0)?,
                &out.shape,
                out.dtype,
            )]);
        }
        if k == 0 {
            let buf = Buffer::zeroed(total * std::mem::size_of::<T>())?;
            return Ok(vec![ArrayData::contiguous(buf, &out.shape, out.dtype)]);
        }
        let (q, q_starts) = matrices(q)?;
        let (s, s_starts) = matrices(s)?;
        let (b, b_starts) = matrices(b)?;
        if m > DIRECT_MAX_ROWS {
            return self.via_gemm::<T>(&x, (&q, &q_starts), (&s, &s_starts), (&b, &b_starts), out);
        }
        let xs = x.contiguous_slice::<T>().unwrap_or(&[]);
        let mut buf = alloc::<T>(total)?;
        let o = buf.as_mut_slice::<T>();
        let (qa, sa, ba) = (
            q.buffer.as_slice::<u32>(),
            s.buffer.as_slice::<T>(),
            b.buffer.as_slice::<T>(),
        );
        let wpr = q.shape[qn - 1];
        let gpr = s.shape[qn - 1];
        for bi in 0..nb {
            let xb: Vec<f32> = xs[bi * m * k..(bi + 1) * m * k]
                .iter()
                .map(|v| v.f32())
                .collect();
            let ob = &mut o[bi * m * n..(bi + 1) * m * n];
            let w = Packed {
                q: &qa[q_starts[bi]..q_starts[bi] + rows * wpr],
                s: &sa[s_starts[bi]..s_starts[bi] + rows * gpr],
                b: &ba[b_starts[bi]..b_starts[bi] + rows * gpr],
                words_per_row: wpr,
                groups_per_row: gpr,
                group_size: self.group_size,
                bits: self.bits,
            };
            if self.transpose {
                w.times_transposed(&xb, m, k, n, ob);
            } else {
                w.times(&xb, m, k, n, ob);
            }
        }
        Ok(vec![ArrayData::contiguous(buf, &out.shape, out.dtype)])
    }

    /// Many rows: dequantize the weights once to `T`, then one (batched) gemm.
    fn via_gemm<T: Float>(
        &self,
        x: &ArrayData,
        q: (&ArrayData, &[usize]),
        s: (&ArrayData, &[usize]),
        b: (&ArrayData, &[usize]),
        out: &OutSpec,
    ) -> Result<Vec<ArrayData>> {
        let qn = q.0.shape.len();
        let (rows, wpr, gpr) = (q.0.shape[qn - 2], q.0.shape[qn - 1], s.0.shape[qn - 1]);
        let k_row = wpr * 32 / self.bits;
        let per = rows * k_row;
        let mut w = alloc::<T>(per * q.1.len())?;
        let (qa, sa, ba) = (
            q.0.buffer.as_slice::<u32>(),
            s.0.buffer.as_slice::<T>(),
            b.0.buffer.as_slice::<T>(),
        );
        for (i, dst) in w.as_mut_slice::<T>().chunks_mut(per.max(1)).enumerate() {
            dequantize_rows::<T>(
                &qa[q.1[i]..q.1[i] + rows * wpr],
                &sa[s.1[i]..s.1[i] + rows * gpr],
                &ba[b.1[i]..b.1[i] + rows * gpr],
                k_row,
                self.group_size,
                self.bits,
                dst,
            );
        }
        let mut wshape = q.0.shape.clone();
        wshape[qn - 1] = k_row;
        let mut w = ArrayData::contiguous(w, &wshape, T::DTYPE);
        if self.transpose {
            w.strides.swap(qn - 1, qn - 2);
            w.shape.swap(qn - 1, qn - 2);
        }
        let xm = if qn == 2 {
            // Every leading dim of x is a row.
            let k = *x.shape.last().unwrap_or(&0);
            let mut x2 = x.clone();
            x2.shape = vec![x.size() / k.max(1), k];
            x2.strides = row_major_strides(&x2.shape);
            x2
        } else {
            x.clone()
        };
        let mut mshape = xm.shape.clone();
        if let Some(l) = mshape.last_mut() {
            *l = w.shape[qn - 1];
        }
        let spec = OutSpec {
            shape: mshape,
            dtype: out.dtype,
        };
        let mut r = matmul::eval(&MatmulOp::Matmul, vec![xm, w], &[spec])?;
        let mut y = r
            .pop()
            .ok_or_else(|| Error::Device("qmm: no output".into()))?;
        y.shape = out.shape.clone();
        y.strides = row_major_strides(&out.shape);
        Ok(vec![y])
    }
}

/// `Σ a b` over slices whose length is a multiple of 8, with eight running sums (one float32
/// sum would be one long chain of dependent adds; eight vectorize).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    acc.iter().sum()
}

/// The packed weights of one matrix: `rows` rows of `words_per_row` words.
struct Packed<'a, T> {
    q: &'a [u32],
    s: &'a [T],
    b: &'a [T],
    words_per_row: usize,
    groups_per_row: usize,
    group_size: usize,
    bits: usize,
}

impl<T: Float> Packed<'_, T> {
    /// `out (m, n) = x (m, k) @ W^T` with `W` `(n, k)`: parallel over output columns, each
    /// row of `W` read once for all `m` rows of `x`.
    fn times_transposed(&self, x: &[f32], m: usize, k: usize, n: usize, out: &mut [T]) {
        let gs = self.group_size;
        let gpr = self.groups_per_row;
        // Σ x over each group, per row of x.
        let xsum: Vec<f32> = x.chunks(gs).map(|c| c.iter().sum()).collect();
        let col = |j: usize| -> [f32; DIRECT_MAX_ROWS] {
            let mut acc = [0f32; DIRECT_MAX_ROWS];
            let mut codes = [0f32; 128];
            let qr = &self.q[j * self.words_per_row..(j + 1) * self.words_per_row];
            if self.bits == 4 {
                // The common case, fused: each word is eight codes, one per running sum.
                let wpg = gs / 8;
                for g in 0..gpr {
                    let (sc, bi) = (self.s[j * gpr + g].f32(), self.b[j * gpr + g].f32());
                    let words = &qr[g * wpg..(g + 1) * wpg];
                    for (i, a) in acc.iter_mut().enumerate().take(m) {
                        let xg = &x[i * k + g * gs..i * k + (g + 1) * gs];
                        let mut lanes = [0f32; 8];
                        for (&w, xs) in words.iter().zip(xg.chunks_exact(8)) {
                            for (l, (lane, &xv)) in lanes.iter_mut().zip(xs).enumerate() {
                                *lane += xv * ((w >> (4 * l)) & 15) as f32;
                            }
                        }
                        *a += sc * lanes.iter().sum::<f32>() + bi * xsum[i * gpr + g];
                    }
                }
                return acc;
            }
            for g in 0..gpr {
                unpack_codes(qr, self.bits, g * gs, &mut codes[..gs]);
                let (sc, bi) = (self.s[j * gpr + g].f32(), self.b[j * gpr + g].f32());
                for (i, a) in acc.iter_mut().enumerate().take(m) {
                    let xg = &x[i * k + g * gs..i * k + (g + 1) * gs];
                    let xq = dot(xg, &codes[..gs]);
                    *a += sc * xq + bi * xsum[i * gpr + g];
                }
            }
            acc
        };
        let cols: Vec<[f32; DIRECT_MAX_ROWS]> = if n * k >= PARALLEL_THRESHOLD {
            (0..n).into_par_iter().map(col).collect()
        } else {
            (0..n).map(col).collect()
        };
        for (j, acc) in cols.iter().enumerate() {
            for i in 0..m {
                out[i * n + j] = T::of(acc[i]);
            }
        }
    }

    /// `out (m, n) = x (m, k) @ W` with `W` `(k, n)`: parallel over groups of output columns,
    /// each walking down the `k` rows of `W`.
    fn times(&self, x: &[f32], m: usize, k: usize, n: usize, out: &mut [T]) {
        let gs = self.group_size;
        let gpr = self.groups_per_row;
        let block = |g: usize| -> Vec<f32> {
            let mut acc = vec![0f32; m * gs];
            let mut codes = [0f32; 128];
            for r in 0..k {
                let qr = &self.q[r * self.words_per_row..(r + 1) * self.words_per_row];
                unpack_codes(qr, self.bits, g * gs, &mut codes[..gs]);
                let (sc, bi) = (self.s[r * gpr + g].f32(), self.b[r * gpr + g].f32());
                for i in 0..m {
                    let xv = x[i * k + r];
                    let (a, c) = (xv * sc, xv * bi);
                    for (o, &q) in acc[i * gs..(i + 1) * gs].iter_mut().zip(&codes[..gs]) {
                        *o += a * q + c;
                    }
                }
            }
            acc
        };
        let blocks: Vec<Vec<f32>> = if n * k >= PARALLEL_THRESHOLD {
            (0..gpr).into_par_iter().map(block).collect()
        } else {
            (0..gpr).map(block).collect()
        };
        for (g, acc) in blocks.iter().enumerate() {
            for i in 0..m {
                for c in 0..gs {
                    out[i * n + g * gs + c] = T::of(acc[i * gs + c]);
                }
            }
        }
    }
}
