//! CPU kernels of the unary primitives and casts.
//!
//! One generic element-wise loop ([`map`]) with a contiguous fast path (plain slices, rayon
//! above [`PARALLEL_THRESHOLD`]), a strided general path, and buffer donation (the output is
//! written over the input when nothing else holds it). What each op computes per element lives
//! in `umx_core::primitives::unary`; float16 and bfloat16 compute in float32.

use crate::strided::{PARALLEL_THRESHOLD, alloc};
use rayon::prelude::*;
use std::any::Any;
use std::sync::Arc;
use umx_core::device::OutSpec;
use umx_core::primitives::UnaryOp;
use umx_core::primitives::unary::UnaryClass;
use umx_core::shape::row_major_strides;
use umx_core::{ArrayData, Complex32, Dtype, Element, Error, Result, bf16, dispatch_dtype, f16};

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

pub fn eval(op: &UnaryOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let name = op.name();
    let x = inputs
        .into_iter()
        .next()
        .ok_or_else(|| Error::Device(format!("{name}: no input")))?;
    let out = outputs
        .first()
        .ok_or_else(|| Error::Device(format!("{name}: no output")))?;
    let want = op.output_dtype(x.dtype)?;
    if want != out.dtype || x.shape != out.shape {
        return Err(Error::Device(format!(
            "{name}: the node asks for {} but the input gives {want}",
            out.dtype
        )));
    }
    let result = match (op.class(), *op) {
        (UnaryClass::Cast, UnaryOp::AsType(to)) => cast(x, to),
        (UnaryClass::Predicate, op) => predicate(op, x),
        (_, op) => math(op, x, want),
    }?;
    Ok(vec![result])
}

/// `static_cast` of every element.
fn cast(x: ArrayData, to: Dtype) -> Result<ArrayData> {
    dispatch_dtype!(x.dtype, S => {
        dispatch_dtype!(to, D => map::<S, D>(x, |v: S| v.cast::<D>()))
    })
}

/// Bool-valued ops.
fn predicate(op: UnaryOp, x: ArrayData) -> Result<ArrayData> {
    match x.dtype {
        Dtype::Float32 => map(x, move |v: f32| op.float_predicate(v)),
        Dtype::Float64 => map(x, move |v: f64| op.float_predicate(v)),
        Dtype::Float16 => map(x, move |v: f16| op.float_predicate(v.to_f32())),
        Dtype::Bfloat16 => map(x, move |v: bf16| op.float_predicate(v.to_f32())),
        Dtype::Complex64 => map(x, move |v: Complex32| op.complex_predicate(v)),
        other => dispatch_dtype!(other, T => map(x, move |v: T| op.int_predicate(v.is_nonzero()))),
    }
}

/// Runs `$body` with `$o` bound to `$op` as a constant for every op without parameters, so each
/// gets its own loop with the op folded in (no per-element `match`); ops with parameters share
/// one loop.
macro_rules! specialize {
    ($op:expr, $o:ident => $body:expr) => {
        specialize!(@arms $op, $o, $body; Abs Negative Sign Sqrt Rsqrt Square Reciprocal Exp
            Expm1 Log Log1p Log2 Log10 Sin Cos Tan Arcsin Arccos Arctan Sinh Cosh Tanh Arcsinh
            Arccosh Arctanh Floor Ceil Erf ErfInv Sigmoid Degrees Radians)
    };
    (@arms $op:expr, $o:ident, $body:expr; $($v:ident)*) => {
        match $op {
            $(UnaryOp::$v => {
                const $o: UnaryOp = UnaryOp::$v;
                $body
            })*
            other => {
                #[allow(non_snake_case)]
                let $o = other;
                $body
            }
        }
    };
}

macro_rules! int_math {
    ($op:expr, $x:expr, $($d:ident => $t:ty),*) => {
        match $x.dtype {
            $(Dtype::$d => map($x, move |v: $t| $op.int(v)),)*
            other => Err(Error::Device(format!("{}: no kernel for {other}", $op.name()))),
        }
    };
}

/// Ops whose output has the input's kind (and `abs`/`real`/`imag` of complex, giving float32).
fn math(op: UnaryOp, x: ArrayData, out: Dtype) -> Result<ArrayData> {
    match x.dtype {
        Dtype::Float32 => specialize!(op, OP => map(x, |v: f32| OP.float(v))),
        Dtype::Float64 => specialize!(op, OP => map(x, |v: f64| OP.float(v))),
        Dtype::Float16 => map(x, move |v: f16| f16::from_f32(op.float(v.to_f32()))),
        Dtype::Bfloat16 => map(x, move |v: bf16| bf16::from_f32(op.float(v.to_f32()))),
        Dtype::Complex64 if out == Dtype::Float32 => {
            map(x, move |z: Complex32| op.complex_to_real(z))
        }
        Dtype::Complex64 => map(x, move |z: Complex32| op.complex(z)),
        Dtype::Bool => map(x, move |v: bool| op.boolean(v)),
        _ => int_math!(op, x, Int8 => i8, Int16 => i16, Int32 => i32, Int64 => i64,
            Uint8 => u8, Uint16 => u16, Uint32 => u32, Uint64 => u64),
    }
}

/// The element-wise loop: `f` of every element of `x`, as a new row-major array of `D`.
///
/// Contiguous input: a loop over slices (split over rayon tasks when large); when `D` is `S`
/// and nothing else holds the input's buffer, the result is written over it (donation).
/// Strided input: a walk in logical order.
pub fn map<S: Element, D: Element>(
    mut x: ArrayData,
    f: impl Fn(S) -> D + Sync + Send,
) -> Result<ArrayData> {
    let n = x.size();
    let shape = std::mem::take(&mut x.shape);
    let donatable = S::DTYPE == D::DTYPE
        && x.offset == 0
        && umx_core::shape::is_row_contiguous(&shape, &x.strides)
        && x.buffer.len_of(x.dtype) == n;
    if donatable && let Some(buf) = Arc::get_mut(&mut x.buffer) {
        let s = buf.as_mut_slice::<S>();
        // D is S here (one Rust type per dtype); the downcast only tells the compiler so.
        let g = |v: &mut S| {
            let d = f(*v);
            if let Some(d) = (&d as &dyn Any).downcast_ref::<S>() {
                *v = *d;
            }
        };
        if n >= PARALLEL_THRESHOLD {
            s.par_chunks_mut(CHUNK)
                .for_each(|c| c.iter_mut().for_each(g));
        } else {
            s.iter_mut().for_each(g);
        }
        x.strides = row_major_strides(&shape);
        x.shape = shape;
        return Ok(x);
    }
    x.shape = shape;
    let mut buf = alloc::<D>(n)?;
    {
        let dst = &mut buf.as_mut_slice::<D>()[..n];
        if let Some(src) = x.contiguous_slice::<S>() {
            let run = |d: &mut [D], s: &[S]| {
                for (o, &i) in d.iter_mut().zip(s) {
                    *o = f(i);
                }
            };
            if n >= PARALLEL_THRESHOLD {
                dst.par_chunks_mut(CHUNK)
                    .zip(src.par_chunks(CHUNK))
                    .for_each(|(d, s)| run(d, s));
            } else {
                run(dst, src);
            }
        } else {
            let src = x.buffer.as_slice::<S>();
            let mut k = 0;
            x.for_each_index(|i| {
                dst[k] = f(src[i]);
                k += 1;
            });
        }
    }
    Ok(ArrayData::contiguous(buf, &x.shape, D::DTYPE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use umx_core::Buffer;

    fn data(v: &[f32]) -> ArrayData {
        ArrayData::contiguous(Buffer::from_slice(v).unwrap(), &[v.len()], Dtype::Float32)
    }

    #[test]
    fn a_uniquely_held_buffer_is_reused() {
        let x = data(&[1.0, 4.0, 9.0]);
        let ptr = x.buffer.as_ptr();
        let y = map(x, |v: f32| UnaryOp::Sqrt.float(v)).unwrap();
        assert_eq!(y.buffer.as_ptr(), ptr);
        assert_eq!(y.buffer.as_slice::<f32>(), &[1.0, 2.0, 3.0]);
    }

    #[test]
    fn a_shared_buffer_is_not_written() {
        let x = data(&[1.0, 4.0]);
        let keep = x.clone();
        let y = map(x, |v: f32| -v).unwrap();
        assert_eq!(keep.buffer.as_slice::<f32>(), &[1.0, 4.0]);
        assert_eq!(y.buffer.as_slice::<f32>(), &[-1.0, -4.0]);
    }
}
