//! CPU kernels of the scan primitives.
//!
//! The input is viewed as (outer, len, inner) around the scanned axis (copied to row-major
//! first when it is not). With `inner == 1` each row is one sequential running value, rows
//! split across threads; otherwise whole rows of `inner` running values advance together, a
//! loop that vectorises.

use crate::kernels::reduce::Acc;
use crate::strided::{PARALLEL_THRESHOLD, alloc, contiguous};
use rayon::prelude::*;
use umx_core::device::OutSpec;
use umx_core::primitives::scan::{ScanKind, ScanOp};
use umx_core::{ArrayData, Complex32, Dtype, Element, Error, Result, bf16, f16};

pub fn eval(op: &ScanOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let (Some(x), Some(out)) = (inputs.into_iter().next(), outputs.first()) else {
        return Err(Error::Device(format!(
            "{}: expects one input and one output",
            op.name()
        )));
    };
    let ScanOp::Scan {
        kind,
        axis,
        reverse,
        inclusive,
    } = *op;
    if axis >= x.shape.len().max(1) || x.shape != out.shape {
        return Err(Error::Device(format!(
            "{}: output {:?} does not fit input {:?} scanned along axis {axis}",
            kind.name(),
            out.shape,
            x.shape
        )));
    }
    let x = contiguous(x)?;
    let geo = Geometry {
        outer: x.shape[..axis].iter().product(),
        len: x.shape.get(axis).copied().unwrap_or(1),
        inner: x.shape.get(axis + 1..).map_or(1, |s| s.iter().product()),
        reverse,
        inclusive,
    };
    use Dtype::*;
    macro_rules! go {
        ($T:ty, $A:ty, $O:ty) => {
            scan::<$T, $A, $O>(kind, &x, out, geo)
        };
    }
    let data = match kind {
        ScanKind::Sum | ScanKind::Prod | ScanKind::Max | ScanKind::Min => match x.dtype {
            Bool if matches!(kind, ScanKind::Sum | ScanKind::Prod) => go!(bool, i32, i32),
            Bool => go!(bool, bool, bool),
            Int8 => go!(i8, i8, i8),
            Int16 => go!(i16, i16, i16),
            Int32 => go!(i32, i32, i32),
            Int64 => go!(i64, i64, i64),
            Uint8 => go!(u8, u8, u8),
            Uint16 => go!(u16, u16, u16),
            Uint32 => go!(u32, u32, u32),
            Uint64 => go!(u64, u64, u64),
            Float16 => go!(f16, f32, f16),
            Bfloat16 => go!(bf16, f32, bf16),
            Float32 => go!(f32, f32, f32),
            Float64 => go!(f64, f64, f64),
            Complex64 => go!(Complex32, Complex32, Complex32),
        },
        ScanKind::LogAddExp => match x.dtype {
            Float16 => go!(f16, f32, f16),
            Bfloat16 => go!(bf16, f32, bf16),
            Float64 => go!(f64, f64, f64),
            Complex64 => go!(Complex32, Complex32, Complex32),
            _ => umx_core::dispatch_dtype!(x.dtype, T => go!(T, f32, f32)),
        },
    }?;
    Ok(vec![data])
}

#[derive(Clone, Copy)]
struct Geometry {
    outer: usize,
    len: usize,
    inner: usize,
    reverse: bool,
    inclusive: bool,
}

fn scan<T: Element, A: Acc, O: Element>(
    kind: ScanKind,
    x: &ArrayData,
    out: &OutSpec,
    g: Geometry,
) -> Result<ArrayData> {
    let load = |v: T| v.cast::<A>();
    match kind {
        ScanKind::Sum => run::<T, A, O>(x, out, g, A::ZERO, load, A::add),
        ScanKind::Prod => run::<T, A, O>(x, out, g, A::ONE, load, A::mul),
        ScanKind::Max => run::<T, A, O>(x, out, g, A::LOWEST, load, A::max),
        ScanKind::Min => run::<T, A, O>(x, out, g, A::HIGHEST, load, A::min),
        ScanKind::LogAddExp => run::<T, A, O>(x, out, g, A::LOWEST, load, A::logaddexp),
    }
}

fn run<T: Element, A: Acc, O: Element>(
    x: &ArrayData,
    out: &OutSpec,
    g: Geometry,
    init: A,
    load: impl Fn(T) -> A + Copy + Send + Sync,
    comb: impl Fn(A, A) -> A + Copy + Send + Sync,
) -> Result<ArrayData> {
    let n = x.size();
    let mut buf = alloc::<O>(n)?;
    let dst = buf.as_mut_slice::<O>();
    let src = x
        .contiguous_slice::<T>()
        .ok_or_else(|| Error::Device("scan: the input is not contiguous after the copy".into()))?;
    let Geometry {
        len,
        inner,
        reverse,
        inclusive,
        ..
    } = g;
    let row = len * inner;
    if n == 0 {
        return Ok(ArrayData::contiguous(buf, &out.shape, out.dtype));
    }
    let order = move |i: usize| if reverse { len - 1 - i } else { i };
    let store = |a: A| a.cast::<O>();
    // One outer slice: `len` rows of `inner` contiguous elements.
    let slice = |xs: &[T], ys: &mut [O], acc: &mut [A]| {
        acc.fill(init);
        for i in 0..len {
            let r = order(i) * inner;
            let (xr, yr) = (&xs[r..r + inner], &mut ys[r..r + inner]);
            if inclusive {
                for ((a, y), &v) in acc.iter_mut().zip(yr.iter_mut()).zip(xr) {
                    *a = comb(*a, load(v));
                    *y = store(*a);
                }
            } else {
                for ((a, y), &v) in acc.iter_mut().zip(yr.iter_mut()).zip(xr) {
                    *y = store(*a);
                    *a = comb(*a, load(v));
                }
            }
        }
    };
    if inner == 1 {
        let line = |xs: &[T], ys: &mut [O]| {
            let mut a = init;
            for i in 0..len {
                let k = order(i);
                if inclusive {
                    a = comb(a, load(xs[k]));
                    ys[k] = store(a);
                } else {
                    ys[k] = store(a);
                    a = comb(a, load(xs[k]));
                }
            }
        };
        if n >= PARALLEL_THRESHOLD && g.outer > 1 {
            dst.par_chunks_mut(row)
                .zip(src.par_chunks(row))
                .for_each(|(ys, xs)| line(xs, ys));
        } else {
            for (ys, xs) in dst.chunks_mut(row).zip(src.chunks(row)) {
                line(xs, ys);
            }
        }
    } else if n >= PARALLEL_THRESHOLD && g.outer >= 2 * rayon::current_num_threads() {
        dst.par_chunks_mut(row)
            .zip(src.par_chunks(row))
            .for_each_init(|| vec![init; inner], |acc, (ys, xs)| slice(xs, ys, acc));
    } else if n >= PARALLEL_THRESHOLD && inner >= 64 {
        // Few outer slices: share out column ranges of each.
        let threads = rayon::current_num_threads();
        let width = inner.div_ceil(2 * threads);
        for (ys, xs) in dst.chunks_mut(row).zip(src.chunks(row)) {
            let cols = inner.div_ceil(width);
            let ys_ptr = SendPtr(ys.as_mut_ptr());
            (0..cols).into_par_iter().for_each(|c| {
                let j0 = c * width;
                let w = width.min(inner - j0);
                let mut acc = vec![init; w];
                for i in 0..len {
                    let r = order(i) * inner + j0;
                    let xr = &xs[r..r + w];
                    // SAFETY: tasks write disjoint column ranges [j0, j0 + w) of each row,
                    // all inside `ys` (r + w <= row), and `ys` outlives the parallel loop.
                    let yr = unsafe { std::slice::from_raw_parts_mut(ys_ptr.get().add(r), w) };
                    for ((a, y), &v) in acc.iter_mut().zip(yr.iter_mut()).zip(xr) {
                        if inclusive {
                            *a = comb(*a, load(v));
                            *y = store(*a);
                        } else {
                            *y = store(*a);
                            *a = comb(*a, load(v));
                        }
                    }
                }
            });
        }
    } else {
        let mut acc = vec![init; inner];
        for (ys, xs) in dst.chunks_mut(row).zip(src.chunks(row)) {
            slice(xs, ys, &mut acc);
        }
    }
    Ok(ArrayData::contiguous(buf, &out.shape, out.dtype))
}

/// A pointer tasks may share to write disjoint parts of one slice.
#[derive(Clone, Copy)]
struct SendPtr<O>(*mut O);
// SAFETY: only used for disjoint writes (see the one use above).
unsafe impl<O> Send for SendPtr<O> {}
unsafe impl<O> Sync for SendPtr<O> {}
impl<O> SendPtr<O> {
    fn get(self) -> *mut O {
        self.0
    }
}
