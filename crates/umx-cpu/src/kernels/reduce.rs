//! CPU kernels of the reduce primitives.
//!
//! Every reduction is `init`, `load` (element to accumulator), `comb` (accumulator pair) and
//! `store` (accumulator to output element), monomorphised per dtype so the loops vectorise.
//! The input's dimensions are first collapsed (size-1 dims dropped, adjacent dims that are
//! contiguous with each other merged) and the shape of what is left picks the loop:
//!
//! - full or last-axis ("rows"): contiguous runs, summed with [`LANES`] independent
//!   accumulators in blocks of [`BLOCK`] elements and combined pairwise (accurate like NumPy's
//!   pairwise sum), split across threads by `rayon::join` when long;
//! - leading-axis ("columns"): whole rows are added into a vector of accumulators, in blocks
//!   of rows combined at the end;
//! - anything else: a strided loop per output element.

use crate::strided::{PARALLEL_THRESHOLD, alloc};
use rayon::prelude::*;
use umx_core::device::OutSpec;
use umx_core::primitives::reduce::{ArgReduceKind, ReduceKind, ReduceOp};
use umx_core::shape::numel;
use umx_core::{ArrayData, Complex32, Dtype, Element, Error, Result, bf16, f16};

/// Independent accumulators of a contiguous run: enough for LLVM to fill several vector
/// registers, so the adds pipeline.
const LANES: usize = 32;
/// Longest run reduced by one set of lanes; longer runs split in halves (pairwise).
const BLOCK: usize = 4096;
/// Runs at least this long split their halves across threads.
const PAR_RUN: usize = 1 << 16;
/// Rows of a column reduction added into one partial before it joins the total.
const ROW_BLOCK: usize = 256;

pub fn eval(op: &ReduceOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let (Some(x), Some(out)) = (inputs.into_iter().next(), outputs.first()) else {
        return Err(Error::Device(format!(
            "{}: expects one input and one output",
            op.name()
        )));
    };
    let data = match op {
        ReduceOp::Reduce { kind, axes } => reduce(*kind, axes, &x, out)?,
        ReduceOp::ArgReduce { kind, axis } => arg_reduce(*kind, *axis, &x, out)?,
    };
    Ok(vec![data])
}

/// The arithmetic reductions and scans need of an accumulator type.
pub(crate) trait Acc: Element {
    const ZERO: Self;
    const ONE: Self;
    /// The identity of `max`.
    const LOWEST: Self;
    /// The identity of `min`.
    const HIGHEST: Self;
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// The larger; NaN wins.
    fn max(self, o: Self) -> Self;
    /// The smaller; NaN wins.
    fn min(self, o: Self) -> Self;
    /// `self * s` (the mean's division by the count).
    fn scale(self, s: f64) -> Self;
    /// `log(exp(self) + exp(o))`, without overflow.
    fn logaddexp(self, o: Self) -> Self;
}

macro_rules! acc_float {
    ($t:ty) => {
        impl Acc for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            const HIGHEST: Self = <$t>::INFINITY;
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            #[inline(always)]
            fn max(self, o: Self) -> Self {
                if self > o || self.is_nan() { self } else { o }
            }
            #[inline(always)]
            fn min(self, o: Self) -> Self {
                if self < o || self.is_nan() { self } else { o }
            }
            #[inline(always)]
            fn scale(self, s: f64) -> Self {
                self * s as $t
            }
            #[inline(always)]
            fn logaddexp(self, o: Self) -> Self {
                if self.is_nan() || o.is_nan() {
                    <$t>::NAN
                } else if self == o {
                    // Also covers two equal infinities, where `self - o` would be NaN.
                    self + std::f64::consts::LN_2 as $t
                } else {
                    let (hi, lo) = if self > o { (self, o) } else { (o, self) };
                    hi + (lo - hi).exp().ln_1p()
                }
            }
        }
    };
}
acc_float!(f32);
acc_float!(f64);

macro_rules! acc_int {
    ($($t:ty),*) => {$(
        impl Acc for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const LOWEST: Self = <$t>::MIN;
            const HIGHEST: Self = <$t>::MAX;
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline(always)]
            fn max(self, o: Self) -> Self {
                Ord::max(self, o)
            }
            #[inline(always)]
            fn min(self, o: Self) -> Self {
                Ord::min(self, o)
            }
            #[inline(always)]
            fn scale(self, s: f64) -> Self {
                <$t>::from_f64(self as f64 * s)
            }
            #[inline(always)]
            fn logaddexp(self, o: Self) -> Self {
                <$t>::from_f64((self as f64).logaddexp(o as f64))
            }
        }
    )*};
}
acc_int!(i8, i16, i32, i64, u8, u16, u32, u64);

/// Bool accumulates logically: `add` is or, `mul` is and.
impl Acc for bool {
    const ZERO: Self = false;
    const ONE: Self = true;
    const LOWEST: Self = false;
    const HIGHEST: Self = true;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self | o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self & o
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        self | o
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        self & o
    }
    fn scale(self, _s: f64) -> Self {
        self
    }
    fn logaddexp(self, o: Self) -> Self {
        self | o
    }
}

/// Complex numbers order by real part, then imaginary part (as MLX does).
impl Acc for Complex32 {
    const ZERO: Self = Complex32::new(0.0, 0.0);
    const ONE: Self = Complex32::new(1.0, 0.0);
    const LOWEST: Self = Complex32::new(f32::NEG_INFINITY, f32::NEG_INFINITY);
    const HIGHEST: Self = Complex32::new(f32::INFINITY, f32::INFINITY);
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
    fn max(self, o: Self) -> Self {
        if (self.re, self.im) > (o.re, o.im) {
            self
        } else {
            o
        }
    }
    fn min(self, o: Self) -> Self {
        if (self.re, self.im) < (o.re, o.im) {
            self
        } else {
            o
        }
    }
    fn scale(self, s: f64) -> Self {
        self * s as f32
    }
    fn logaddexp(self, o: Self) -> Self {
        (self.exp() + o.exp()).ln()
    }
}

/// One reduction: identity, element-to-accumulator and accumulator combination.
#[derive(Clone, Copy)]
struct Red<A, L, C> {
    init: A,
    load: L,
    comb: C,
}

trait Reducer<T>: Copy + Send + Sync {
    type A: Acc;
    fn init(&self) -> Self::A;
    fn load(&self, v: T) -> Self::A;
    fn comb(&self, a: Self::A, b: Self::A) -> Self::A;
}

impl<T, A, L, C> Reducer<T> for Red<A, L, C>
where
    A: Acc,
    L: Fn(T) -> A + Copy + Send + Sync,
    C: Fn(A, A) -> A + Copy + Send + Sync,
{
    type A = A;
    #[inline(always)]
    fn init(&self) -> A {
        self.init
    }
    #[inline(always)]
    fn load(&self, v: T) -> A {
        (self.load)(v)
    }
    #[inline(always)]
    fn comb(&self, a: A, b: A) -> A {
        (self.comb)(a, b)
    }
}

fn reduce(kind: ReduceKind, axes: &[usize], x: &ArrayData, out: &OutSpec) -> Result<ArrayData> {
    if axes.iter().any(|&a| a >= x.shape.len()) {
        return Err(Error::Device(format!(
            "{}: axes {axes:?} out of range",
            kind.name()
        )));
    }
    let n: usize = axes.iter().map(|&a| x.shape[a]).product();
    use Dtype::*;
    macro_rules! arith {
        ($T:ty, $A:ty, $O:ty) => {
            arith::<$T, $A, $O>(kind, axes, x, out, n)
        };
    }
    macro_rules! extreme {
        ($T:ty, $A:ty) => {
            extreme::<$T, $A>(kind, axes, x, out)
        };
    }
    match kind {
        ReduceKind::Sum | ReduceKind::Prod => match x.dtype {
            Bool => arith!(bool, i32, i32),
            Int8 => arith!(i8, i32, i32),
            Int16 => arith!(i16, i32, i32),
            Int32 => arith!(i32, i32, i32),
            Int64 => arith!(i64, i64, i64),
            Uint8 => arith!(u8, u32, u32),
            Uint16 => arith!(u16, u32, u32),
            Uint32 => arith!(u32, u32, u32),
            Uint64 => arith!(u64, u64, u64),
            Float16 => arith!(f16, f32, f16),
            Bfloat16 => arith!(bf16, f32, bf16),
            Float32 => arith!(f32, f32, f32),
            Float64 => arith!(f64, f64, f64),
            Complex64 => arith!(Complex32, Complex32, Complex32),
        },
        ReduceKind::Mean => match x.dtype {
            Bool => arith!(bool, f32, f32),
            Int8 => arith!(i8, f32, f32),
            Int16 => arith!(i16, f32, f32),
            Int32 => arith!(i32, f32, f32),
            Int64 => arith!(i64, f32, f32),
            Uint8 => arith!(u8, f32, f32),
            Uint16 => arith!(u16, f32, f32),
            Uint32 => arith!(u32, f32, f32),
            Uint64 => arith!(u64, f32, f32),
            Float16 => arith!(f16, f32, f16),
            Bfloat16 => arith!(bf16, f32, bf16),
            Float32 => arith!(f32, f32, f32),
            Float64 => arith!(f64, f64, f64),
            Complex64 => arith!(Complex32, Complex32, Complex32),
        },
        ReduceKind::Max | ReduceKind::Min => match x.dtype {
            Bool => extreme!(bool, bool),
            Int8 => extreme!(i8, i8),
            Int16 => extreme!(i16, i16),
            Int32 => extreme!(i32, i32),
            Int64 => extreme!(i64, i64),
            Uint8 => extreme!(u8, u8),
            Uint16 => extreme!(u16, u16),
            Uint32 => extreme!(u32, u32),
            Uint64 => extreme!(u64, u64),
            Float16 => extreme!(f16, f32),
            Bfloat16 => extreme!(bf16, f32),
            Float32 => extreme!(f32, f32),
            Float64 => extreme!(f64, f64),
            Complex64 => extreme!(Complex32, Complex32),
        },
        ReduceKind::All | ReduceKind::Any => {
            umx_core::dispatch_dtype!(x.dtype, T => logical::<T>(kind, axes, x, out))
        }
    }
}

fn arith<T: Element, A: Acc, O: Element>(
    kind: ReduceKind,
    axes: &[usize],
    x: &ArrayData,
    out: &OutSpec,
    n: usize,
) -> Result<ArrayData> {
    let load = |v: T| v.cast::<A>();
    let store = |a: A| a.cast::<O>();
    match kind {
        ReduceKind::Prod => run::<T, O, _, _>(
            x,
            axes,
            out,
            Red {
                init: A::ONE,
                load,
                comb: A::mul,
            },
            store,
        ),
        ReduceKind::Mean => {
            // 1/0 = inf, and 0 * inf = NaN: the mean of nothing is NaN, as in NumPy.
            let s = 1.0 / n as f64;
            run::<T, O, _, _>(
                x,
                axes,
                out,
                Red {
                    init: A::ZERO,
                    load,
                    comb: A::add,
                },
                move |a: A| a.scale(s).cast::<O>(),
            )
        }
        _ => run::<T, O, _, _>(
            x,
            axes,
            out,
            Red {
                init: A::ZERO,
                load,
                comb: A::add,
            },
            store,
        ),
    }
}

fn extreme<T: Element, A: Acc>(
    kind: ReduceKind,
    axes: &[usize],
    x: &ArrayData,
    out: &OutSpec,
) -> Result<ArrayData> {
    let load = |v: T| v.cast::<A>();
    let store = |a: A| a.cast::<T>();
    if kind == ReduceKind::Max {
        run::<T, T, _, _>(
            x,
            axes,
            out,
            Red {
                init: A::LOWEST,
                load,
                comb: A::max,
            },
            store,
        )
    } else {
        run::<T, T, _, _>(
            x,
            axes,
            out,
            Red {
                init: A::HIGHEST,
                load,
                comb: A::min,
            },
            store,
        )
    }
}

fn logical<T: Element>(
    kind: ReduceKind,
    axes: &[usize],
    x: &ArrayData,
    out: &OutSpec,
) -> Result<ArrayData> {
    let load = |v: T| v.is_nonzero();
    let store = |a: bool| a;
    if kind == ReduceKind::All {
        run::<T, bool, _, _>(
            x,
            axes,
            out,
            Red {
                init: true,
                load,
                comb: <bool as Acc>::mul,
            },
            store,
        )
    } else {
        run::<T, bool, _, _>(
            x,
            axes,
            out,
            Red {
                init: false,
                load,
                comb: <bool as Acc>::add,
            },
            store,
        )
    }
}

/// A run of dimensions as (size, stride), walked in row-major order.
struct Odometer<'a> {
    dims: &'a [(usize, isize)],
    idx: Vec<usize>,
    pos: isize,
}

impl<'a> Odometer<'a> {
    /// Starts at the `linear`-th position (row-major) from `base`.
    fn new(dims: &'a [(usize, isize)], linear: usize, base: isize) -> Self {
        let mut idx = vec![0; dims.len()];
        let mut pos = base;
        let mut rest = linear;
        for (d, &(size, stride)) in dims.iter().enumerate().rev() {
            if size > 0 {
                idx[d] = rest % size;
                rest /= size;
            }
            pos += idx[d] as isize * stride;
        }
        Odometer { dims, idx, pos }
    }

    /// Back to the first position, now from `base`.
    fn reset(&mut self, base: isize) {
        self.idx.fill(0);
        self.pos = base;
    }

    #[inline]
    fn step(&mut self) {
        for d in (0..self.dims.len()).rev() {
            let (size, stride) = self.dims[d];
            self.idx[d] += 1;
            self.pos += stride;
            if self.idx[d] < size {
                return;
            }
            self.pos -= stride * size as isize;
            self.idx[d] = 0;
        }
    }
}

/// Runs `f(first_index, chunk)` over chunks of `dst`, on several threads when `work` (elements
/// read) is large enough.
fn split<O: Send>(dst: &mut [O], work: usize, f: impl Fn(usize, &mut [O]) + Sync + Send) {
    let n = dst.len();
    if work < PARALLEL_THRESHOLD || n < 2 {
        f(0, dst);
        return;
    }
    let tasks = 4 * rayon::current_num_threads();
    let chunk = n.div_ceil(tasks).max(1);
    dst.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i * chunk, c));
}

/// Collapses the input's dims: drops size-1 dims and merges neighbours that are contiguous with
/// each other and both reduced or both kept. Returns (kept, reduced) as (size, stride) lists.
type Dims = Vec<(usize, isize)>;
fn collapse(x: &ArrayData, axes: &[usize]) -> Vec<(usize, isize, bool)> {
    let mut dims: Vec<(usize, isize, bool)> = Vec::new();
    for (i, (&size, &stride)) in x.shape.iter().zip(&x.strides).enumerate() {
        if size == 1 {
            continue;
        }
        let red = axes.contains(&i);
        if let Some(last) = dims.last_mut()
            && last.2 == red
            && last.1 == stride * size as isize
        {
            last.0 *= size;
            last.1 = stride;
            continue;
        }
        dims.push((size, stride, red));
    }
    dims
}

/// The reduction of `x` over `axes` with reducer `r`, written through `store`.
fn run<T, O, R, S>(
    x: &ArrayData,
    axes: &[usize],
    out: &OutSpec,
    r: R,
    store: S,
) -> Result<ArrayData>
where
    T: Element,
    O: Element,
    R: Reducer<T>,
    S: Fn(R::A) -> O + Copy + Send + Sync,
{
    let out_n = numel(&out.shape);
    let kept_n: usize = (0..x.shape.len())
        .filter(|i| !axes.contains(i))
        .map(|i| x.shape[i])
        .product();
    if out_n != kept_n || O::DTYPE != out.dtype {
        return Err(Error::Device(format!(
            "reduce: output {:?} {} does not fit input {:?} reduced over {axes:?}",
            out.shape, out.dtype, x.shape
        )));
    }
    let mut buf = alloc::<O>(out_n)?;
    let dst = buf.as_mut_slice::<O>();
    if out_n > 0 {
        if x.size() == 0 {
            dst.fill(store(r.init()));
        } else {
            reduce_into(x, axes, r, store, dst);
        }
    }
    Ok(ArrayData::contiguous(buf, &out.shape, out.dtype))
}

fn reduce_into<T, O, R, S>(x: &ArrayData, axes: &[usize], r: R, store: S, dst: &mut [O])
where
    T: Element,
    O: Element,
    R: Reducer<T>,
    S: Fn(R::A) -> O + Copy + Send + Sync,
{
    let src = x.buffer.as_slice::<T>();
    let off = x.offset;
    let dims = collapse(x, axes);
    let kept: Dims = dims.iter().filter(|d| !d.2).map(|d| (d.0, d.1)).collect();
    let red: Dims = dims.iter().filter(|d| d.2).map(|d| (d.0, d.1)).collect();
    let work = x.size();

    // No axis of size > 1 is reduced: each output is its one input element.
    if red.is_empty() {
        split(dst, work, |start, ch| {
            let mut od = Odometer::new(&kept, start, off);
            for o in ch {
                *o = store(r.comb(r.init(), r.load(src[od.pos as usize])));
                od.step();
            }
        });
        return;
    }
    let last = dims[dims.len() - 1];
    // Rows: the reduced elements of each output are one contiguous run.
    if red.len() == 1 && last.2 && last.1 == 1 {
        let len = last.0;
        split(dst, work, |start, ch| {
            let mut od = Odometer::new(&kept, start, off);
            for o in ch {
                let s = od.pos as usize;
                *o = store(tree(&src[s..s + len], r));
                od.step();
            }
        });
        return;
    }
    // Columns: outputs sit along the last (contiguous) kept axis, and one reduced axis group
    // comes before it: whole rows add into a vector of accumulators.
    if red.len() == 1 && !last.2 && last.1 == 1 && dims.len() >= 2 && dims[dims.len() - 2].2 {
        let k = last.0;
        let (rows, sr) = red[0];
        let outer = &kept[..kept.len() - 1];
        let n_outer = dst.len() / k;
        let threads = rayon::current_num_threads();
        if work < PARALLEL_THRESHOLD || n_outer >= 2 * threads {
            split(dst, work, |start, ch| {
                // Chunks hold whole multiples of k only when split by outer index.
                let mut acc = vec![r.init(); k];
                let mut done = 0;
                while done < ch.len() {
                    let i = start + done;
                    let (oi, j) = (i / k, i % k);
                    let width = (k - j).min(ch.len() - done);
                    let base = Odometer::new(outer, oi, off).pos + j as isize;
                    columns(src, base, rows, sr, &mut acc[..width], r);
                    for (o, &a) in ch[done..done + width].iter_mut().zip(&acc[..width]) {
                        *o = store(a);
                    }
                    done += width;
                }
            });
        } else {
            for (oi, dst_o) in dst.chunks_mut(k).enumerate() {
                let base = Odometer::new(outer, oi, off).pos;
                columns_parallel(src, base, rows, sr, dst_o, r, store);
            }
        }
        return;
    }
    general(src, off, &kept, &red, r, store, dst, work);
}

/// The reduction of a contiguous run: lanes in blocks, blocks combined pairwise, halves of long
/// runs on separate threads.
fn tree<T: Element, R: Reducer<T>>(xs: &[T], r: R) -> R::A {
    if xs.len() <= BLOCK {
        return lanes(xs, r);
    }
    let mid = xs.len() / 2 / LANES * LANES;
    let (a, b) = xs.split_at(mid);
    let (ra, rb) = if xs.len() >= PAR_RUN {
        rayon::join(|| tree(a, r), || tree(b, r))
    } else {
        (tree(a, r), tree(b, r))
    };
    r.comb(ra, rb)
}

#[inline]
fn lanes<T: Element, R: Reducer<T>>(xs: &[T], r: R) -> R::A {
    if xs.len() < LANES {
        return xs.iter().fold(r.init(), |a, &v| r.comb(a, r.load(v)));
    }
    let mut acc = [r.init(); LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = r.comb(*a, r.load(v));
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(r.init(), |a, &v| r.comb(a, r.load(v)));
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] = r.comb(acc[i], acc[i + w]);
        }
    }
    r.comb(acc[0], tail)
}

/// Adds `rows` rows of `acc.len()` contiguous elements (row `i` at `base + i * sr`) into `acc`,
/// in blocks of [`ROW_BLOCK`] rows each summed apart first (for accuracy).
fn columns<T: Element, R: Reducer<T>>(
    src: &[T],
    base: isize,
    rows: usize,
    sr: isize,
    acc: &mut [R::A],
    r: R,
) {
    let k = acc.len();
    acc.fill(r.init());
    let add_rows = |acc: &mut [R::A], from: usize, to: usize| {
        for i in from..to {
            let s = (base + i as isize * sr) as usize;
            for (a, &v) in acc.iter_mut().zip(&src[s..s + k]) {
                *a = r.comb(*a, r.load(v));
            }
        }
    };
    if rows <= ROW_BLOCK {
        add_rows(acc, 0, rows);
        return;
    }
    let mut part = vec![r.init(); k];
    let mut from = 0;
    while from < rows {
        let to = (from + ROW_BLOCK).min(rows);
        part.fill(r.init());
        add_rows(&mut part, from, to);
        for (a, &p) in acc.iter_mut().zip(&part) {
            *a = r.comb(*a, p);
        }
        from = to;
    }
}

/// One column reduction big enough to share out: by column ranges when the rows are wide, else
/// by blocks of rows whose partial vectors are combined.
fn columns_parallel<T, O, R, S>(
    src: &[T],
    base: isize,
    rows: usize,
    sr: isize,
    dst: &mut [O],
    r: R,
    store: S,
) where
    T: Element,
    O: Element,
    R: Reducer<T>,
    S: Fn(R::A) -> O + Copy + Send + Sync,
{
    let k = dst.len();
    let threads = rayon::current_num_threads();
    if k >= 64 * threads {
        let chunk = k.div_ceil(4 * threads);
        dst.par_chunks_mut(chunk).enumerate().for_each(|(ci, ch)| {
            let mut acc = vec![r.init(); ch.len()];
            columns(src, base + (ci * chunk) as isize, rows, sr, &mut acc, r);
            for (o, &a) in ch.iter_mut().zip(&acc) {
                *o = store(a);
            }
        });
        return;
    }
    let block = rows.div_ceil(4 * threads).max(ROW_BLOCK);
    let nb = rows.div_ceil(block);
    let total = (0..nb)
        .into_par_iter()
        .map(|b| {
            let from = b * block;
            let to = (from + block).min(rows);
            let mut acc = vec![r.init(); k];
            columns(src, base + from as isize * sr, to - from, sr, &mut acc, r);
            acc
        })
        .reduce(
            || vec![r.init(); k],
            |mut a, b| {
                for (x, &y) in a.iter_mut().zip(&b) {
                    *x = r.comb(*x, y);
                }
                a
            },
        );
    for (o, &a) in dst.iter_mut().zip(&total) {
        *o = store(a);
    }
}

/// Any layout: each output walks its reduced elements through their strides.
#[allow(clippy::too_many_arguments)]
fn general<T, O, R, S>(
    src: &[T],
    off: isize,
    kept: &[(usize, isize)],
    red: &[(usize, isize)],
    r: R,
    store: S,
    dst: &mut [O],
    work: usize,
) where
    T: Element,
    O: Element,
    R: Reducer<T>,
    S: Fn(R::A) -> O + Copy + Send + Sync,
{
    let Some((&(inner_n, inner_s), outer_red)) = red.split_last() else {
        return;
    };
    let n_outer: usize = outer_red.iter().map(|d| d.0).product();
    split(dst, work, |start, ch| {
        let mut ok = Odometer::new(kept, start, off);
        let mut orr = Odometer::new(outer_red, 0, off);
        for o in ch {
            let mut acc = r.init();
            orr.reset(ok.pos);
            for _ in 0..n_outer {
                let mut p = orr.pos;
                for _ in 0..inner_n {
                    acc = r.comb(acc, r.load(src[p as usize]));
                    p += inner_s;
                }
                orr.step();
            }
            *o = store(acc);
            ok.step();
        }
    });
}

/// The values argmax/argmin compare: floats of 16 bits compare as f32.
trait ArgKey: Element {
    type K: Copy + PartialOrd + Send + Sync;
    fn key(self) -> Self::K;
    fn nan(k: Self::K) -> bool;
}

macro_rules! arg_key_plain {
    ($($t:ty),*) => {$(
        impl ArgKey for $t {
            type K = $t;
            #[inline(always)]
            fn key(self) -> $t { self }
            #[inline(always)]
            #[allow(clippy::eq_op)]
            fn nan(k: $t) -> bool { k != k }
        }
    )*};
}
arg_key_plain!(bool, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

macro_rules! arg_key_half {
    ($($t:ty),*) => {$(
        impl ArgKey for $t {
            type K = f32;
            #[inline(always)]
            fn key(self) -> f32 { self.to_f32() }
            #[inline(always)]
            fn nan(k: f32) -> bool { k.is_nan() }
        }
    )*};
}
arg_key_half!(f16, bf16);

fn arg_reduce(kind: ArgReduceKind, axis: usize, x: &ArrayData, out: &OutSpec) -> Result<ArrayData> {
    use Dtype::*;
    let max = kind == ArgReduceKind::ArgMax;
    match x.dtype {
        Bool => arg::<bool>(max, axis, x, out),
        Int8 => arg::<i8>(max, axis, x, out),
        Int16 => arg::<i16>(max, axis, x, out),
        Int32 => arg::<i32>(max, axis, x, out),
        Int64 => arg::<i64>(max, axis, x, out),
        Uint8 => arg::<u8>(max, axis, x, out),
        Uint16 => arg::<u16>(max, axis, x, out),
        Uint32 => arg::<u32>(max, axis, x, out),
        Uint64 => arg::<u64>(max, axis, x, out),
        Float16 => arg::<f16>(max, axis, x, out),
        Bfloat16 => arg::<bf16>(max, axis, x, out),
        Float32 => arg::<f32>(max, axis, x, out),
        Float64 => arg::<f64>(max, axis, x, out),
        Complex64 => Err(Error::Device(format!(
            "{}: complex64 is not supported",
            kind.name()
        ))),
    }
}

/// Whether `v` replaces `best` (first NaN wins, then the first extreme).
#[inline(always)]
fn beats<T: ArgKey>(max: bool, v: T::K, best: T::K) -> bool {
    !T::nan(best) && (T::nan(v) || if max { v > best } else { v < best })
}

fn arg<T: ArgKey>(max: bool, axis: usize, x: &ArrayData, out: &OutSpec) -> Result<ArrayData> {
    let name = if max { "argmax" } else { "argmin" };
    let out_n = numel(&out.shape);
    if axis >= x.shape.len() || out_n * x.shape[axis] != x.size() || out.dtype != Dtype::Uint32 {
        return Err(Error::Device(format!(
            "{name}: output {:?} does not fit input {:?}",
            out.shape, x.shape
        )));
    }
    let len = x.shape[axis];
    let sa = x.strides[axis];
    let mut buf = alloc::<u32>(out_n)?;
    let dst = buf.as_mut_slice::<u32>();
    if out_n == 0 {
        return Ok(ArrayData::contiguous(buf, &out.shape, out.dtype));
    }
    if len == 0 {
        return Err(Error::Device(format!(
            "{name}: cannot reduce an empty axis"
        )));
    }
    let src = x.buffer.as_slice::<T>();
    let off = x.offset;
    let mut kept: Dims = Vec::new();
    for (i, (&size, &stride)) in x.shape.iter().zip(&x.strides).enumerate() {
        if i == axis || size == 1 {
            continue;
        }
        match kept.last_mut() {
            Some(last) if last.1 == stride * size as isize => {
                last.0 *= size;
                last.1 = stride;
            }
            _ => kept.push((size, stride)),
        }
    }
    let work = x.size();
    let column = sa != 1 && len > 1 && kept.last().is_some_and(|d| d.1 == 1);
    if column {
        // Whole rows at a time: a best value and index per output along the contiguous axis.
        let k = kept[kept.len() - 1].0;
        let outer = &kept[..kept.len() - 1];
        split(dst, work, |start, ch| {
            let mut best: Vec<T::K> = Vec::with_capacity(k);
            let mut done = 0;
            while done < ch.len() {
                let i = start + done;
                let (oi, j) = (i / k, i % k);
                let width = (k - j).min(ch.len() - done);
                let base = Odometer::new(outer, oi, off).pos + j as isize;
                let idx = &mut ch[done..done + width];
                let s = base as usize;
                best.clear();
                best.extend(src[s..s + width].iter().map(|v| v.key()));
                idx.fill(0);
                for row in 1..len {
                    let s = (base + row as isize * sa) as usize;
                    for ((b, ix), v) in best.iter_mut().zip(idx.iter_mut()).zip(&src[s..s + width])
                    {
                        let v = v.key();
                        if beats::<T>(max, v, *b) {
                            *b = v;
                            *ix = row as u32;
                        }
                    }
                }
                done += width;
            }
        });
    } else {
        split(dst, work, |start, ch| {
            let mut od = Odometer::new(&kept, start, off);
            for o in ch {
                let mut p = od.pos;
                let mut best = src[p as usize].key();
                let mut bi = 0u32;
                for i in 1..len {
                    p += sa;
                    let v = src[p as usize].key();
                    if beats::<T>(max, v, best) {
                        best = v;
                        bi = i as u32;
                    }
                }
                *o = bi;
                od.step();
            }
        });
    }
    Ok(ArrayData::contiguous(buf, &out.shape, out.dtype))
}
