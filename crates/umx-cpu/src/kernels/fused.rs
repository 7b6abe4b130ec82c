//! The CPU kernel of fused element-wise programs (what `compile` makes of element-wise
//! chains): the output is computed in cache-sized chunks, in parallel, each chunk running the
//! whole program on chunk-sized temporaries, so no full-size intermediate is ever written.
//!
//! Each instruction runs through the ordinary kernel of its primitive, so fused results are
//! bit-identical to unfused ones.

use rayon::prelude::*;
use umx_core::device::OutSpec;
use umx_core::primitives::Primitive;
use umx_core::primitives::fused::{FusedArg, FusedGroup, FusedOp};
use umx_core::primitives::reduce::ReduceOp;
use umx_core::shape::{broadcast_shapes, numel};
use umx_core::{ArrayData, Buffer, Error, Result, dispatch_dtype};

/// Output elements per chunk: the temporaries of a chunk stay in the core's cache.
const CHUNK: usize = 16384;

/// A group of independent fused programs: each member in turn, on its own inputs.
pub fn eval_group(
    op: &FusedGroup,
    inputs: &[ArrayData],
    outputs: &[OutSpec],
) -> Result<Vec<ArrayData>> {
    let mut outs = Vec::with_capacity(outputs.len());
    for (m, picked, range) in op.split(inputs) {
        let specs = outputs.get(range).ok_or_else(|| {
            Error::Device(format!("fused_group: {} outputs asked for", outputs.len()))
        })?;
        outs.extend(eval(&m.op, picked, specs)?);
    }
    Ok(outs)
}

pub fn eval(op: &FusedOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    if let Some(r) = &op.reduce {
        // The element-wise result (and the extra outputs), then the ordinary reduction
        // kernel over it.
        let mut shape: Vec<usize> = Vec::new();
        for x in &inputs {
            shape = broadcast_shapes("fused", &shape, &x.shape)?;
        }
        let (first, extra) = outputs
            .split_first()
            .ok_or_else(|| Error::Device("fused: no output".into()))?;
        if extra.len() != op.extra.len() {
            return Err(Error::Device(format!(
                "fused: {} outputs asked for a program with {}",
                outputs.len(),
                op.extra.len() + 1
            )));
        }
        // The values reduced are computed once even when they are kept too.
        let last = op.program.len().saturating_sub(1);
        let mut others: Vec<usize> = Vec::new();
        let mut specs = vec![OutSpec {
            shape,
            dtype: op.program_dtype(),
        }];
        for (&i, spec) in op.extra.iter().zip(extra) {
            if i != last && !others.contains(&i) {
                others.push(i);
                specs.push(spec.clone());
            }
        }
        let program = FusedOp {
            program: op.program.clone(),
            reduce: None,
            extra: others.clone(),
        };
        let values = eval(&program, inputs, &specs)?;
        let kept: Vec<ArrayData> = op
            .extra
            .iter()
            .map(|&i| match others.iter().position(|&j| j == i) {
                Some(k) => values[k + 1].clone(),
                None => values[0].clone(),
            })
            .collect();
        let reduce = ReduceOp::Reduce {
            kind: r.kind,
            axes: r.axes.clone(),
        };
        let mut out = super::reduce::eval(
            &reduce,
            vec![values[0].clone()],
            std::slice::from_ref(first),
        )?;
        out.extend(kept);
        return Ok(out);
    }
    let outs = op.output_instrs();
    if outputs.len() != outs.len() {
        return Err(Error::Device(format!(
            "fused: {} outputs asked for a program with {}",
            outputs.len(),
            outs.len()
        )));
    }
    let shape = &outputs[0].shape;
    if outputs.iter().any(|o| &o.shape != shape) {
        return Err(Error::Device("fused: outputs of different shapes".into()));
    }
    let n = numel(shape);
    let mut bufs = outputs
        .iter()
        .map(|o| Buffer::uninit(n * o.dtype.size()))
        .collect::<Result<Vec<_>>>()?;
    // Inputs as views broadcast to the output's shape.
    let views: Vec<ArrayData> = inputs
        .iter()
        .map(|x| broadcast_view(x, shape))
        .collect::<Result<_>>()?;
    // Unary kernels make outputs of their input's shape: their inputs are never 0-d.
    let scalar_ok: Vec<bool> = (0..views.len())
        .map(|i| {
            !op.program.iter().any(|ins| {
                matches!(ins.prim, Primitive::Unary(_)) && ins.args.contains(&FusedArg::Input(i))
            })
        })
        .collect();
    // Each chunk: one slice of every output buffer.
    let sizes: Vec<usize> = outputs.iter().map(|o| o.dtype.size()).collect();
    let mut chunks: Vec<Vec<&mut [u8]>> = (0..n.div_ceil(CHUNK)).map(|_| Vec::new()).collect();
    for (buf, &size) in bufs.iter_mut().zip(&sizes) {
        for (c, part) in buf.bytes_mut()[..n * size]
            .chunks_mut(CHUNK * size)
            .enumerate()
        {
            chunks[c].push(part);
        }
    }
    let run = |(c, dsts): (usize, Vec<&mut [u8]>)| -> Result<()> {
        let start = c * CHUNK;
        let len = (n - start).min(CHUNK);
        let values = run_chunk(op, &views, &scalar_ok, start, len)?;
        for ((dst, &i), &size) in dsts.into_iter().zip(&outs).zip(&sizes) {
            dst.copy_from_slice(&values[i].buffer.bytes()[..len * size]);
        }
        Ok(())
    };
    if n > CHUNK {
        chunks.into_par_iter().enumerate().try_for_each(run)?;
    } else if n > 0 {
        chunks.into_iter().enumerate().try_for_each(run)?;
    }
    Ok(bufs
        .into_iter()
        .zip(outputs)
        .map(|(b, o)| ArrayData::contiguous(b, shape, o.dtype))
        .collect())
}

/// `x` as a view of `shape` (NumPy broadcasting: stride 0 along new or size-1 axes).
fn broadcast_view(x: &ArrayData, shape: &[usize]) -> Result<ArrayData> {
    let nd = shape.len();
    if x.shape.len() > nd {
        return Err(Error::Device(
            "fused: an input has more dimensions than the output".into(),
        ));
    }
    let lead = nd - x.shape.len();
    let mut strides = vec![0isize; nd];
    for (i, (&d, &s)) in x.shape.iter().zip(&x.strides).enumerate() {
        strides[lead + i] = if d == 1 && shape[lead + i] != 1 { 0 } else { s };
    }
    Ok(ArrayData {
        buffer: x.buffer.clone(),
        shape: shape.to_vec(),
        dtype: x.dtype,
        strides,
        offset: x.offset,
    })
}

/// Elements `[start, start + len)` (row-major) of a view as a 1-D array for the ordinary
/// kernels: a one-element input as a 0-d array (the kernels broadcast it), a row-contiguous
/// one as a view of its buffer, anything else gathered.
fn chunk_of(x: &ArrayData, start: usize, len: usize, scalar_ok: bool) -> Result<ArrayData> {
    let constant = x
        .shape
        .iter()
        .zip(&x.strides)
        .all(|(&d, &s)| d == 1 || s == 0);
    if scalar_ok && constant {
        return Ok(ArrayData {
            buffer: x.buffer.clone(),
            shape: vec![],
            dtype: x.dtype,
            strides: vec![],
            offset: x.offset,
        });
    }
    if umx_core::shape::is_row_contiguous(&x.shape, &x.strides) {
        return Ok(ArrayData {
            buffer: x.buffer.clone(),
            shape: vec![len],
            dtype: x.dtype,
            strides: vec![1],
            offset: x.offset + start as isize,
        });
    }
    gather(x, start, len)
}

/// Elements `[start, start + len)` (row-major) of a view, as a contiguous 1-D array.
fn gather(x: &ArrayData, start: usize, len: usize) -> Result<ArrayData> {
    dispatch_dtype!(x.dtype, T => {
        let src = x.buffer.as_slice::<T>();
        let mut buf = Buffer::uninit(len * std::mem::size_of::<T>())?;
        let dst = buf.as_mut_slice::<T>();
        if x.is_row_contiguous() || umx_core::shape::is_row_contiguous(&x.shape, &x.strides) {
            let base = x.offset as usize + start;
            dst.copy_from_slice(&src[base..base + len]);
        } else {
            // Walk the multi-index from `start`.
            let nd = x.shape.len();
            let mut idx = vec![0usize; nd];
            let mut rem = start;
            for d in (0..nd).rev() {
                idx[d] = rem % x.shape[d].max(1);
                rem /= x.shape[d].max(1);
            }
            let mut pos: isize = x.offset + idx.iter().zip(&x.strides).map(|(&i, &s)| i as isize * s).sum::<isize>();
            for v in dst.iter_mut() {
                *v = src[pos as usize];
                for d in (0..nd).rev() {
                    idx[d] += 1;
                    pos += x.strides[d];
                    if idx[d] < x.shape[d] {
                        break;
                    }
                    pos -= x.strides[d] * x.shape[d] as isize;
                    idx[d] = 0;
                }
            }
        }
        Ok(ArrayData::contiguous(buf, &[len], x.dtype))
    })
}

/// The program's values over one chunk of the output (one per instruction);
/// `scalar_ok[i]`: input `i` may be passed 0-d.
fn run_chunk(
    op: &FusedOp,
    views: &[ArrayData],
    scalar_ok: &[bool],
    start: usize,
    len: usize,
) -> Result<Vec<ArrayData>> {
    let ins: Vec<ArrayData> = views
        .iter()
        .zip(scalar_ok)
        .map(|(v, &ok)| chunk_of(v, start, len, ok))
        .collect::<Result<_>>()?;
    let mut values: Vec<ArrayData> = Vec::with_capacity(op.program.len());
    for instr in op.program.iter() {
        let args: Vec<ArrayData> = instr
            .args
            .iter()
            .map(|a| match a {
                FusedArg::Input(i) => ins[*i].clone(),
                FusedArg::Instr(i) => values[*i].clone(),
            })
            .collect();
        let spec = [OutSpec {
            shape: vec![len],
            dtype: instr.dtype,
        }];
        let mut out = match &instr.prim {
            Primitive::Unary(o) => super::unary::eval(o, args, &spec)?,
            Primitive::Binary(o) => super::binary::eval(o, args, &spec)?,
            Primitive::Ternary(o) => super::ternary::eval(o, args, &spec)?,
            other => {
                return Err(Error::Device(format!(
                    "fused: {} cannot be fused",
                    other.family()
                )));
            }
        };
        values.push(out.remove(0));
    }
    if values.is_empty() {
        return Err(Error::Device("fused: an empty program".into()));
    }
    Ok(values)
}
