//! Gathers and scatters: take, take_along_axis, gather, scatter (every mode), put_along_axis,
//! slice_update, triangles and diagonal matrices; concatenate and constant pad as copies into
//! regions of a new array (by the copy engine where an input is row-contiguous and its region
//! rows of one pitch, else by the gather kernel).
//!
//! Every gather and scatter is one generated kernel over an iteration shape: each element's
//! source and destination offsets are dot products of its coordinates with two stride lists,
//! plus, for each index array, the (wrapped, checked) index value times that axis's stride.
//! Gathers iterate over their output; scatters over their updates, writing into a fresh copy
//! of the input: atomic read-modify-writes for the combining modes, since indices may repeat
//! (compare-and-swap loops on the 4-byte word for 1- and 2-byte types), so float `Add` sums
//! in an unspecified order; `Assign` keeps the last update of each destination, as on the CPU
//! (a first pass records the latest update per destination, a second stores it).
//!
//! Index values are checked without reading out of bounds. Indices with a host copy are
//! checked there before the launch, so the op fails at once with the CPU's message. Indices
//! only on the device are checked by the kernel: an element whose index is out of range is
//! skipped (a gather writes 0 there), and the first such index is recorded on the device and
//! reported as an `Err` by the next host read or synchronisation in the thread that queued the
//! kernel (`take_index_error`), as CUDA reports asynchronous errors, without stalling the
//! stream after every gather.

use super::source::{
    Args, HEADER, complex_compute_type, complex_prelude, complex_storage_type, complex_store,
    grid_for, load, storage_type, store,
};
use super::{contiguous, first_out};
use crate::compile::{function_for, launch};
use crate::gpu::{driver_err, gpu};
use crate::storage::{fresh, input_ptr};
use cudarc::driver::result;
use std::cell::RefCell;
use umx_core::device::OutSpec;
use umx_core::primitives::BinaryOp;
use umx_core::primitives::codegen::PRELUDE;
use umx_core::primitives::indexing::{IndexOp, ScatterMode};
use umx_core::shape::{broadcast_many, broadcast_strides, numel, row_major_strides};
use umx_core::{ArrayData, Dtype, Element, Error, Result, dispatch_dtype};

type Outs = Result<Option<Vec<ArrayData>>>;

/// Most axes of an iteration shape, and most index arrays of one op, the kernel takes.
const MAX_DIMS: usize = 8;
const MAX_INDICES: usize = 4;
const THREADS: u32 = 256;

/// The ops whose kernels check indices, by the code the kernel records (position + 1).
const OPS: [&str; 13] = [
    "take",
    "take_along_axis",
    "gather",
    "scatter",
    "scatter_add",
    "scatter_prod",
    "scatter_max",
    "scatter_min",
    "put_along_axis",
    "scatter_add_axis",
    "rope_cache_write",
    "linear_rope_cache_write",
    "quantized_linear_rope_cache_write",
];

pub fn eval(op: &IndexOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    let out = first_out("indexing", outputs)?;
    // complex64 values move as the 8-byte words they are (gathers, assignments, triangles,
    // diagonals) and combine with the CPU's complex arithmetic and lexicographic order.
    // Mixed complex and real values are cast by the ops layer first; these are the CPU's.
    let values = inputs
        .iter()
        .filter(|x| !x.dtype.is_integer() || x.dtype == out.dtype);
    if values.clone().any(|x| x.dtype == Dtype::Complex64) != (out.dtype == Dtype::Complex64) {
        return Ok(None);
    }
    let r = match (op, inputs) {
        (IndexOp::Take { axis }, [a, idx]) => take(a, idx, *axis, &out.shape)?,
        (IndexOp::TakeAlongAxis { axis }, [a, idx]) => take_along_axis(a, idx, *axis, &out.shape)?,
        (IndexOp::Gather { axes, slice_sizes }, [a, idx @ ..]) => {
            gather(a, idx, axes, slice_sizes, &out.shape)?
        }
        (IndexOp::Scatter { axes, mode }, [a, rest @ ..]) if !rest.is_empty() => {
            let (updates, idx) = rest.split_last().expect("not empty");
            scatter(a, idx, updates, axes, *mode)?
        }
        (IndexOp::PutAlongAxis { axis, mode }, [a, idx, values]) => {
            put_along_axis(a, idx, values, *axis, *mode)?
        }
        (
            IndexOp::SliceUpdate {
                start,
                step,
                shape,
                mode,
            },
            [a, update],
        ) => slice_update(a, update, start, step, shape, *mode)?,
        (IndexOp::Triangle { k, upper }, [a]) => triangle(a, *k, *upper)?,
        (IndexOp::DiagMatrix { k }, [v]) => diag_matrix(v, *k, &out.shape)?,
        // Slices and diagonals are views.
        _ => None,
    };
    Ok(r.map(|o| vec![o]))
}

/// An index array as the kernel reads it.
struct Index<'a> {
    data: &'a ArrayData,
    /// Strides over the iteration shape (0 on axes it is broadcast along).
    strides: Vec<isize>,
    /// Size of the indexed axis (negative values wrap by it).
    dim: usize,
    /// Largest index allowed (the axis size minus the window).
    limit: usize,
    /// The indexed axis's stride in the array the index moves through.
    mult: isize,
    axis: usize,
}

/// One launch: for each element of `shape`, `out[dst] (op)= values[src]`, where the index
/// arrays add to `src` (a gather) or to `dst` (a scatter).
struct Plan<'a> {
    op: &'static str,
    shape: Vec<usize>,
    out: (u64, Dtype),
    dst_strides: Vec<isize>,
    values: &'a ArrayData,
    src_strides: Vec<isize>,
    indices: Vec<Index<'a>>,
    /// `None`: a gather (indices move the source; out-of-range elements store 0).
    /// `Some(mode)`: a scatter (indices move the destination).
    mode: Option<ScatterMode>,
    /// Whether destinations may repeat (scatters through index arrays).
    atomic: bool,
    /// Elements of the destination array (for the `Assign` scatter's winner table).
    out_len: usize,
}

fn run(p: Plan) -> Result<Option<()>> {
    // Gathers and assignments move bits: complex64 values move as the 8-byte words they are.
    let words;
    let p = if p.out.1 == Dtype::Complex64
        && p.values.dtype == Dtype::Complex64
        && matches!(p.mode, None | Some(ScatterMode::Assign))
    {
        words = ArrayData {
            dtype: Dtype::Uint64,
            ..p.values.clone()
        };
        Plan {
            out: (p.out.0, Dtype::Uint64),
            values: &words,
            ..p
        }
    } else {
        p
    };
    let n = numel(&p.shape);
    if n == 0 {
        return Ok(Some(()));
    }
    if p.shape.len() > MAX_DIMS
        || p.indices.len() > MAX_INDICES
        || complex_storage_type(p.out.1).is_none()
        || complex_storage_type(p.values.dtype).is_none()
    {
        return Ok(None);
    }
    for ix in &p.indices {
        if !ix.data.dtype.is_integer() || ix.data.dtype == Dtype::Bool {
            return Err(Error::Invalid(format!(
                "{}: indices must be integers, not {}",
                p.op, ix.data.dtype
            )));
        }
        if ix.data.buffer.residency().host {
            check_on_host(p.op, ix)?;
        }
    }
    let code = OPS.iter().position(|&o| o == p.op).map_or(0, |i| i + 1) as i32;
    // Indices with no host copy are checked by the kernel only.
    let device_indices = p.indices.iter().any(|ix| !ix.data.buffer.residency().host);
    let g = gpu()?;
    let err = error_block(device_indices)?;

    let mut words = vec![0i64; MAX_DIMS * (3 + MAX_INDICES) + 4 * MAX_INDICES + 1];
    let nd = p.shape.len();
    for a in 0..nd {
        words[a] = p.shape[a] as i64;
        words[MAX_DIMS + a] = p.src_strides[a] as i64;
        words[2 * MAX_DIMS + a] = p.dst_strides[a] as i64;
        for (j, ix) in p.indices.iter().enumerate() {
            words[(3 + j) * MAX_DIMS + a] = ix.strides[a] as i64;
        }
    }
    let tail = MAX_DIMS * (3 + MAX_INDICES);
    for (j, ix) in p.indices.iter().enumerate() {
        words[tail + j] = ix.dim as i64;
        words[tail + MAX_INDICES + j] = ix.limit as i64;
        words[tail + 2 * MAX_INDICES + j] = ix.mult as i64;
        words[tail + 3 * MAX_INDICES + j] = ix.axis as i64;
    }
    words[tail + 4 * MAX_INDICES] = nd as i64;
    let dims: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();

    let mut args = Args::default();
    args.push(p.out.0);
    args.push(input_ptr(p.values)?);
    for ix in &p.indices {
        args.push(input_ptr(ix.data)?);
    }
    args.push(n as i64);
    args.push_bytes(&dims);
    args.push(err);
    args.push(code);

    let idx_types: Vec<Dtype> = p.indices.iter().map(|ix| ix.data.dtype).collect();
    let key = format!(
        "ix|{:?}|{:?}|{:?}|{idx_types:?}|{}",
        p.out.1, p.values.dtype, p.mode, p.atomic
    );
    let f = function_for(
        &key,
        || source(p.out.1, p.values.dtype, &idx_types, p.mode, p.atomic),
        "umx_index",
    )?;
    let grid = grid_for(n, THREADS, g.sm_count);
    if p.mode == Some(ScatterMode::Assign) && p.atomic {
        // The last update of each destination wins, as on the CPU: a first pass records the
        // latest update per destination (atomicMax into a zeroed table), the second stores
        // only those.
        if n >= u32::MAX as usize {
            return Ok(None);
        }
        let bytes = p.out_len.max(1) * 4;
        let table = crate::storage::CudaStorage::alloc(bytes)?;
        // SAFETY: the table holds `bytes`; the memset is ordered before both passes.
        unsafe { result::memset_d8_async(table.ptr(), 0, bytes, g.stream()) }
            .map_err(|e| driver_err("zeroing a scatter table", e))?;
        for phase in [0i32, 1] {
            let mut a = args.clone();
            a.push(table.ptr()).push(phase);
            launch(f, grid, THREADS, 0, &mut a.pointers())?;
        }
        // Back to the pool, which hands it out only to work queued after these passes.
        drop(table);
    } else {
        launch(f, grid, THREADS, 0, &mut args.pointers())?;
    }
    Ok(Some(()))
}

fn source(
    out: Dtype,
    values: Dtype,
    idx_types: &[Dtype],
    mode: Option<ScatterMode>,
    atomic: bool,
) -> String {
    let out_s = complex_storage_type(out).unwrap_or("void");
    let val_s = complex_storage_type(values).unwrap_or("void");
    let ct = complex_compute_type(out).unwrap_or("void");
    let store = complex_store;
    let mut params = format!("{out_s}* __restrict__ out, const {val_s}* __restrict__ src");
    let mut offs = String::new();
    let mut step = String::new();
    let mut checks = String::new();
    let moved = if mode.is_some() { "dof" } else { "so" };
    for (j, &t) in idx_types.iter().enumerate() {
        let s = storage_type(t).unwrap_or("void");
        params += &format!(", const {s}* __restrict__ ix{j}");
        offs += &format!(" long long io{j} = 0;");
        step += &format!(" io{j} += c * d.istr[{j}][a];");
        checks += &format!(
            "    {{ long long v = (long long)ix{j}[io{j}]; long long w = v < 0 ? v + d.dim[{j}] : v;\n\
             \x20     if (w < 0 || w > d.limit[{j}]) {{ umx_flag(err, code, (int)d.axis[{j}], v, d.dim[{j}]); ok = false; }}\n\
             \x20     else {moved} += w * d.mult[{j}]; }}\n"
        );
    }
    let value = load(values, "src[so]", ct);
    let body = match mode {
        None => format!(
            "    out[dof] = ok ? {} : {};\n",
            store(out, &value),
            store(out, &format!("(({ct})0)"))
        ),
        Some(m) => {
            let comb = combine(m, out, "o", "u");
            let rmw = if atomic && m == ScatterMode::Assign {
                format!(
                    "    if (phase == 0) {{ atomicMax(win + dof, (unsigned int)(i + 1)); continue; }}\n    if (win[dof] != (unsigned int)(i + 1)) continue;\n    out[dof] = {};\n",
                    store(out, &value)
                )
            } else if atomic {
                format!(
                    "    {{ {ct} u = {value}; umx_rmw(out + dof, [&]({out_s} s) {{ {ct} o = {}; return {}; }}); }}\n",
                    load(out, "s", ct),
                    store(out, &comb)
                )
            } else {
                format!(
                    "    {{ {ct} u = {value}; {ct} o = {}; out[dof] = {}; }}\n",
                    load(out, "out[dof]", ct),
                    store(out, &comb)
                )
            };
            format!("    if (!ok) continue;\n{rmw}")
        }
    };
    let winner = if atomic && mode == Some(ScatterMode::Assign) {
        ", unsigned int* win, int phase"
    } else {
        ""
    };
    let complex = complex_prelude(out == Dtype::Complex64 || values == Dtype::Complex64);
    let mut src = format!("{HEADER}{PRELUDE}{complex}{ERROR_FLAG}{INDEX_PRELUDE}");
    src += &format!(
        r#"
struct umx_ix {{
  long long shape[{MAX_DIMS}]; long long sstr[{MAX_DIMS}]; long long dstr[{MAX_DIMS}];
  long long istr[{MAX_INDICES}][{MAX_DIMS}];
  long long dim[{MAX_INDICES}]; long long limit[{MAX_INDICES}]; long long mult[{MAX_INDICES}];
  long long axis[{MAX_INDICES}]; long long ndim;
}};
extern "C" __global__ void umx_index({params}, long long n, umx_ix d, umx_err* err, int code{winner}) {{
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {{
    long long so = 0, dof = 0;{offs}
    long long rest = i;
    for (int a = (int)d.ndim - 1; a >= 0; a--) {{
      long long c = rest % d.shape[a];
      rest /= d.shape[a];
      so += c * d.sstr[a]; dof += c * d.dstr[a];{step}
    }}
    bool ok = true;
{checks}{body}  }}
}}
"#
    );
    src
}

/// `o (mode) u` over compute values of `dtype`, as the CPU's `Combine` does.
fn combine(mode: ScatterMode, dtype: Dtype, o: &str, u: &str) -> String {
    if dtype == Dtype::Complex64 {
        // Real part first, then imaginary (a NaN part compares false, as Rust's tuples do).
        let pick = |cmp: &str| {
            format!(
                "umx_cpick({o}, {u}, ({o}.re != {u}.re ? {o}.re {cmp} {u}.re : {o}.im {cmp} {u}.im))"
            )
        };
        return match mode {
            ScatterMode::Assign => u.to_string(),
            ScatterMode::Add => format!("({o} + {u})"),
            ScatterMode::Prod => format!("({o} * {u})"),
            ScatterMode::Max => pick(">"),
            ScatterMode::Min => pick("<"),
        };
    }
    let op = match mode {
        ScatterMode::Assign => return u.to_string(),
        ScatterMode::Add => BinaryOp::Add,
        ScatterMode::Prod => BinaryOp::Multiply,
        ScatterMode::Max => BinaryOp::Maximum,
        ScatterMode::Min => BinaryOp::Minimum,
    };
    op.c_expr(dtype, o, u).unwrap_or_else(|| u.to_string())
}

/// The error record of a kernel that checks indices made on the device (`umx_flag(err,
/// code, axis, index, size)`, `code` an op's position in [`OPS`] plus one).
pub(crate) const ERROR_FLAG: &str = r#"
struct umx_err { int code; int axis; long long value; long long dim; };
/* Records the first out-of-range index (later ones are dropped). */
UMX_FN void umx_flag(umx_err* e, int code, int axis, long long v, long long dim) {
  if (atomicCAS(&e->code, 0, -1) == 0) {
    e->axis = axis; e->value = v; e->dim = dim;
    __threadfence();
    atomicExch(&e->code, code);
  }
}
"#;

/// The code `umx_flag` records for `op` (one of [`OPS`]).
pub(crate) fn error_code(op: &str) -> i32 {
    OPS.iter()
        .position(|&o| o == op)
        .map_or(0, |i| i as i32 + 1)
}

/// The atomic read-modify-write helpers of the indexing kernels (after [`ERROR_FLAG`]).
const INDEX_PRELUDE: &str = r#"
/* *p = f(*p) atomically: a compare-and-swap loop on the element's own 4- or 8-byte word, or on
   the aligned 4-byte word holding a 1- or 2-byte element (device blocks are 256-byte aligned,
   so that word is inside the block). */
template<class T, class F> UMX_FN void umx_rmw(T* p, F f) {
  if (sizeof(T) == 8) {
    unsigned long long* w = (unsigned long long*)p;
    unsigned long long old = *w, seen;
    do { seen = old; T cur = *(T*)&seen; T nv = f(cur);
         old = atomicCAS(w, seen, *(unsigned long long*)&nv); } while (old != seen);
  } else if (sizeof(T) == 4) {
    unsigned int* w = (unsigned int*)p;
    unsigned int old = *w, seen;
    do { seen = old; T cur = *(T*)&seen; T nv = f(cur);
         old = atomicCAS(w, seen, *(unsigned int*)&nv); } while (old != seen);
  } else {
    unsigned long long at = (unsigned long long)p;
    unsigned int* w = (unsigned int*)(at & ~3ull);
    unsigned int shift = (unsigned int)(at & 3ull) * 8u;
    unsigned int mask = sizeof(T) == 1 ? 0xffu : 0xffffu;
    unsigned int old = *w, seen;
    do { seen = old;
         T cur = (T)((seen >> shift) & mask);
         T nv = f(cur);
         unsigned int bits = ((unsigned int)nv & mask) << shift;
         old = atomicCAS(w, seen, (seen & ~(mask << shift)) | bits); } while (old != seen);
  }
}
"#;

/// Checks index values still on the host, with the CPU backend's message.
fn check_on_host(op: &str, ix: &Index) -> Result<()> {
    let (n, limit) = (ix.dim as i64, ix.limit as i64);
    let mut bad = None;
    let d = ix.data;
    dispatch_dtype!(d.dtype, T => {
        let src = d.buffer.as_slice::<T>();
        d.for_each_index(|i| {
            let v = src[i].to_i64();
            let w = if v < 0 { v.wrapping_add(n) } else { v };
            if bad.is_none() && (w < 0 || w > limit) {
                bad = Some(v);
            }
        });
    });
    match bad {
        Some(v) => Err(Error::Index(format!(
            "{op}: index {v} is out of range for axis {} of size {}",
            ix.axis, ix.dim
        ))),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// The error record

/// Each thread's error record (24 bytes of device memory, zeroed when made, back to the pool
/// when the thread ends) and whether a kernel that checks device-made indices was queued from
/// the thread since its last look. Errors are per thread so that one thread's bad index
/// surfaces in its own next read, not in another thread's.
struct Record {
    storage: crate::storage::CudaStorage,
    armed: bool,
}
thread_local! {
    static RECORD: RefCell<Option<Record>> = const { RefCell::new(None) };
}
const ERROR_BYTES: usize = 24;

/// The device address of this thread's error record; `arm` marks it to be looked at.
pub(crate) fn error_block(arm: bool) -> Result<u64> {
    RECORD.with(|r| {
        let mut r = r.borrow_mut();
        if r.is_none() {
            let g = gpu()?;
            let storage = crate::storage::CudaStorage::alloc(ERROR_BYTES)?;
            // SAFETY: the block holds ERROR_BYTES; zeroed in stream order, before any kernel
            // that writes it.
            unsafe { result::memset_d8_async(storage.ptr(), 0, ERROR_BYTES, g.stream()) }
                .map_err(|e| driver_err("zeroing the index error record", e))?;
            *r = Some(Record {
                storage,
                armed: false,
            });
        }
        let rec = r.as_mut().expect("made above");
        rec.armed |= arm;
        Ok(rec.storage.ptr())
    })
}

/// Makes this thread's index-error record now, so a graph capture does not capture its
/// zeroing.
pub(crate) fn ensure_error_record() -> Result<()> {
    error_block(false).map(|_| ())
}

/// After the stream has been synchronised: the out-of-range index a kernel queued from this
/// thread recorded since the last look, as an `Err` naming the op (the record is cleared).
/// Costs nothing unless such a kernel checked indices made on the device.
pub(crate) fn take_index_error() -> Result<()> {
    let p = RECORD.with(|r| {
        let mut r = r.borrow_mut();
        match r.as_mut() {
            Some(rec) if rec.armed => {
                rec.armed = false;
                Some(rec.storage.ptr())
            }
            _ => None,
        }
    });
    let Some(p) = p else { return Ok(()) };
    let mut rec = [0u8; ERROR_BYTES];
    // SAFETY: the record holds ERROR_BYTES bytes and the stream is idle.
    unsafe { result::memcpy_dtoh_sync(&mut rec, p) }
        .map_err(|e| driver_err("reading the index error record", e))?;
    let code = i32::from_le_bytes(rec[0..4].try_into().expect("4 bytes"));
    if code == 0 {
        return Ok(());
    }
    unsafe { result::memset_d8_sync(p, 0, ERROR_BYTES) }
        .map_err(|e| driver_err("clearing the index error record", e))?;
    let word = |i: usize| i64::from_le_bytes(rec[i..i + 8].try_into().expect("8 bytes"));
    let axis = i32::from_le_bytes(rec[4..8].try_into().expect("4 bytes"));
    let op = OPS.get(code as usize - 1).copied().unwrap_or("index");
    Err(Error::Index(format!(
        "{op}: index {} is out of range for axis {axis} of size {} (found by a GPU kernel, \
         reported at the next read)",
        word(8),
        word(16)
    )))
}

// ---------------------------------------------------------------------------------------------
// The ops

/// The dtype whose values a kernel that only moves and zeroes elements of `d` handles them
/// as: complex64 as 8-byte words (zero is both parts zero).
fn moved_as(d: Dtype) -> Dtype {
    if d == Dtype::Complex64 {
        Dtype::Uint64
    } else {
        d
    }
}

/// A row-major copy of `a` on the device that this op may write into (`a` itself when it is
/// its buffer's last handle), and its device pointer; `None` where no kernel copies it.
pub(crate) fn writable_copy(a: &ArrayData) -> Result<Option<(ArrayData, u64)>> {
    // Donation: an input whose buffer nothing else holds (the op's own handle is the last) is
    // updated in place, as MLX does, so a cache updated one row at a time is not copied whole.
    if std::sync::Arc::strong_count(&a.buffer) == 1
        && a.is_row_contiguous()
        && a.buffer.size() == a.size() * a.dtype.size()
        && !a.buffer.residency().host
        && a.buffer.residency().device.is_some()
    {
        let p = input_ptr(a)?;
        return Ok(Some((a.clone(), p)));
    }
    let Some(c) = contiguous(a, a.dtype)? else {
        return Ok(None);
    };
    let p = input_ptr(&c)?;
    Ok(Some((c, p)))
}

/// `x` viewed with `target`'s shape: leading axes beyond `target`'s rank (all 1) dropped, the
/// rest broadcast.
fn strides_to(what: &str, x: &ArrayData, target: &[usize]) -> Result<Vec<isize>> {
    let extra = x.shape.len().saturating_sub(target.len());
    if x.shape[..extra].iter().any(|&s| s != 1) {
        return Err(Error::Device(format!(
            "{what}: shape {:?} does not broadcast to {target:?}",
            x.shape
        )));
    }
    let (shape, strides) = (&x.shape[extra..], &x.strides[extra..]);
    let off = target.len() - shape.len();
    if shape
        .iter()
        .enumerate()
        .any(|(i, &s)| s != 1 && s != target[off + i])
    {
        return Err(Error::Device(format!(
            "{what}: shape {:?} does not broadcast to {target:?}",
            x.shape
        )));
    }
    Ok(broadcast_strides(shape, strides, target))
}

fn take(a: &ArrayData, idx: &ArrayData, axis: Option<usize>, shape: &[usize]) -> Outs1 {
    let Some(ax) = axis else {
        // Over the flattened array: a row-major one, copied first when it is a view.
        return match a.is_row_contiguous() {
            true => take_flat(a, idx, shape),
            false => match contiguous(a, a.dtype)? {
                Some(c) => take_flat(&c, idx, shape),
                None => Ok(None),
            },
        };
    };
    let (out, ptr) = fresh(shape, a.dtype)?;
    let ni = idx.shape.len();
    let post = a.shape.len() - ax - 1;
    let mut src_strides = a.strides[..ax].to_vec();
    src_strides.extend(std::iter::repeat_n(0, ni));
    src_strides.extend_from_slice(&a.strides[ax + 1..]);
    let mut istr = vec![0isize; ax];
    istr.extend_from_slice(&idx.strides);
    istr.extend(std::iter::repeat_n(0, post));
    let plan = Plan {
        op: "take",
        shape: shape.to_vec(),
        out: (ptr, a.dtype),
        dst_strides: row_major_strides(shape),
        values: a,
        src_strides,
        indices: vec![Index {
            data: idx,
            strides: istr,
            dim: a.shape[ax],
            limit: a.shape[ax].saturating_sub(1),
            mult: a.strides[ax],
            axis: ax,
        }],
        mode: None,
        atomic: false,
        out_len: 0,
    };
    Ok(run(plan)?.map(|()| out))
}

type Outs1 = Result<Option<ArrayData>>;

fn take_flat(flat: &ArrayData, idx: &ArrayData, shape: &[usize]) -> Outs1 {
    let (out, ptr) = fresh(shape, flat.dtype)?;
    let plan = Plan {
        op: "take",
        shape: shape.to_vec(),
        out: (ptr, flat.dtype),
        dst_strides: row_major_strides(shape),
        values: flat,
        src_strides: vec![0; shape.len()],
        indices: vec![Index {
            data: idx,
            strides: idx.strides.clone(),
            dim: flat.size(),
            limit: flat.size().saturating_sub(1),
            mult: 1,
            axis: 0,
        }],
        mode: None,
        atomic: false,
        out_len: 0,
    };
    Ok(run(plan)?.map(|()| out))
}

fn take_along_axis(a: &ArrayData, idx: &ArrayData, axis: usize, shape: &[usize]) -> Outs1 {
    let (out, ptr) = fresh(shape, a.dtype)?;
    let mut a_shape = a.shape.clone();
    a_shape[axis] = 1;
    let mut src_strides = broadcast_strides(&a_shape, &a.strides, shape);
    src_strides[axis] = 0;
    let plan = Plan {
        op: "take_along_axis",
        shape: shape.to_vec(),
        out: (ptr, a.dtype),
        dst_strides: row_major_strides(shape),
        values: a,
        src_strides,
        indices: vec![Index {
            data: idx,
            strides: strides_to("take_along_axis", idx, shape)?,
            dim: a.shape[axis],
            limit: a.shape[axis].saturating_sub(1),
            mult: a.strides[axis],
            axis,
        }],
        mode: None,
        atomic: false,
        out_len: 0,
    };
    Ok(run(plan)?.map(|()| out))
}

fn gather(
    a: &ArrayData,
    idx: &[ArrayData],
    axes: &[usize],
    slice_sizes: &[usize],
    shape: &[usize],
) -> Outs1 {
    if idx.len() != axes.len() || shape.len() < slice_sizes.len() {
        return Err(Error::Device("gather: inputs do not match the op".into()));
    }
    let (out, ptr) = fresh(shape, a.dtype)?;
    let b_shape = &shape[..shape.len() - slice_sizes.len()];
    let mut src_strides = vec![0isize; b_shape.len()];
    src_strides.extend_from_slice(&a.strides);
    let indices = idx
        .iter()
        .zip(axes)
        .map(|(ix, &ax)| {
            let mut strides = strides_to("gather", ix, b_shape)?;
            strides.extend(std::iter::repeat_n(0, slice_sizes.len()));
            Ok(Index {
                data: ix,
                strides,
                dim: a.shape[ax],
                limit: a.shape[ax].saturating_sub(slice_sizes[ax]),
                mult: a.strides[ax],
                axis: ax,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let plan = Plan {
        op: "gather",
        shape: shape.to_vec(),
        out: (ptr, a.dtype),
        dst_strides: row_major_strides(shape),
        values: a,
        src_strides,
        indices,
        mode: None,
        atomic: false,
        out_len: 0,
    };
    Ok(run(plan)?.map(|()| out))
}

fn scatter(
    a: &ArrayData,
    idx: &[ArrayData],
    updates: &ArrayData,
    axes: &[usize],
    mode: ScatterMode,
) -> Outs1 {
    let nd = a.shape.len();
    let b_len = updates.shape.len().saturating_sub(nd);
    if idx.len() != axes.len() || updates.shape.len() != b_len + nd {
        return Err(Error::Device(format!(
            "{}: inputs do not match the op",
            mode.op_name()
        )));
    }
    let Some((out, ptr)) = writable_copy(a)? else {
        return Ok(None);
    };
    let (b_shape, window) = updates.shape.split_at(b_len);
    let rm = row_major_strides(&a.shape);
    let mut dst_strides = vec![0isize; b_len];
    dst_strides.extend_from_slice(&rm);
    let indices = idx
        .iter()
        .zip(axes)
        .map(|(ix, &ax)| {
            let mut strides = strides_to(mode.op_name(), ix, b_shape)?;
            strides.extend(std::iter::repeat_n(0, nd));
            Ok(Index {
                data: ix,
                strides,
                dim: a.shape[ax],
                limit: a.shape[ax].saturating_sub(window[ax]),
                mult: rm[ax],
                axis: ax,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let plan = Plan {
        op: mode.op_name(),
        shape: updates.shape.clone(),
        out: (ptr, a.dtype),
        dst_strides,
        values: updates,
        src_strides: updates.strides.clone(),
        indices,
        mode: Some(mode),
        // One index per axis (a single window) writes each destination once.
        atomic: idx.iter().any(|ix| ix.size() > 1),
        out_len: a.size(),
    };
    Ok(run(plan)?.map(|()| out))
}

fn put_along_axis(
    a: &ArrayData,
    idx: &ArrayData,
    values: &ArrayData,
    axis: usize,
    mode: ScatterMode,
) -> Outs1 {
    let op = match mode {
        ScatterMode::Assign => "put_along_axis",
        _ => "scatter_add_axis",
    };
    let nd = a.shape.len();
    let extra = values.shape.len().saturating_sub(nd);
    let b = broadcast_many(op, &[&idx.shape, &values.shape[extra..]])?;
    if b.len() != nd {
        return Err(Error::Device(format!("{op}: inputs do not match the op")));
    }
    let Some((out, ptr)) = writable_copy(a)? else {
        return Ok(None);
    };
    let mut shape = a.shape.clone();
    shape[axis] = b[axis];
    let rm = row_major_strides(&a.shape);
    let mut dst_strides = rm.clone();
    dst_strides[axis] = 0;
    let plan = Plan {
        op,
        shape: shape.clone(),
        out: (ptr, a.dtype),
        dst_strides,
        values,
        src_strides: strides_to(op, values, &shape)?,
        indices: vec![Index {
            data: idx,
            strides: strides_to(op, idx, &shape)?,
            dim: a.shape[axis],
            limit: a.shape[axis].saturating_sub(1),
            mult: rm[axis],
            axis,
        }],
        mode: Some(mode),
        atomic: true,
        out_len: a.size(),
    };
    Ok(run(plan)?.map(|()| out))
}

fn slice_update(
    a: &ArrayData,
    update: &ArrayData,
    start: &[usize],
    step: &[i64],
    shape: &[usize],
    mode: ScatterMode,
) -> Outs1 {
    let Some((out, ptr)) = writable_copy(a)? else {
        return Ok(None);
    };
    if numel(shape) == 0 {
        return Ok(Some(out));
    }
    let rm = row_major_strides(&a.shape);
    let dst_strides: Vec<isize> = rm.iter().zip(step).map(|(&s, &k)| s * k as isize).collect();
    let base: isize = rm.iter().zip(start).map(|(&s, &k)| s * k as isize).sum();
    let plan = Plan {
        op: "slice_update",
        shape: shape.to_vec(),
        out: (
            ptr.wrapping_add((base * a.dtype.size() as isize) as u64),
            a.dtype,
        ),
        dst_strides,
        values: update,
        src_strides: strides_to("slice_update", update, shape)?,
        indices: Vec::new(),
        mode: Some(mode),
        atomic: false,
        out_len: 0,
    };
    Ok(run(plan)?.map(|()| out))
}

/// tril / triu of the last two axes: a copy with the other side zeroed in place.
fn triangle(a: &ArrayData, k: i64, upper: bool) -> Outs1 {
    let Some((out, ptr)) = writable_copy(a)? else {
        return Ok(None);
    };
    let nd = a.shape.len();
    if nd < 2 || out.size() == 0 {
        return Ok(Some(out));
    }
    let (rows, cols) = (a.shape[nd - 2] as i64, a.shape[nd - 1] as i64);
    let words = moved_as(a.dtype);
    let s = storage_type(words).unwrap_or("void");
    let zero = store(words, "0");
    // Row i keeps columns j with j - i <= k (tril) or j - i >= k (triu).
    let cond = if upper { "j - i < k" } else { "j - i > k" };
    let key = format!("tri|{:?}|{upper}", a.dtype);
    let f = function_for(
        &key,
        || {
            format!(
                r#"{HEADER}
extern "C" __global__ void umx_triangle({s}* out, long long n, long long rows, long long cols, long long k) {{
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride) {{
    long long j = e % cols, i = (e / cols) % rows;
    if ({cond}) out[e] = {zero};
  }}
}}
"#
            )
        },
        "umx_triangle",
    )?;
    let n = out.size();
    let g = gpu()?;
    let mut args = Args::default();
    args.push(ptr).push(n as i64).push(rows).push(cols).push(k);
    launch(
        f,
        grid_for(n, THREADS, g.sm_count),
        THREADS,
        0,
        &mut args.pointers(),
    )?;
    Ok(Some(out))
}

/// A square matrix with `v` on its `k`-th diagonal.
fn diag_matrix(v: &ArrayData, k: i64, shape: &[usize]) -> Outs1 {
    let (out, ptr) = fresh(shape, v.dtype)?;
    let n = out.size();
    if n == 0 {
        return Ok(Some(out));
    }
    let side = shape[0] as i64;
    let words = moved_as(v.dtype);
    let s = storage_type(words).unwrap_or("void");
    let zero = store(words, "0");
    let key = format!("diagm|{:?}", v.dtype);
    let f = function_for(
        &key,
        || {
            format!(
                r#"{HEADER}
extern "C" __global__ void umx_diag_matrix({s}* out, const {s}* v, long long vstride, long long n, long long side, long long k) {{
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride) {{
    long long i = e / side, j = e % side;
    long long t = k >= 0 ? i : j;
    out[e] = (j - i == k) ? v[t * vstride] : {zero};
  }}
}}
"#
            )
        },
        "umx_diag_matrix",
    )?;
    let g = gpu()?;
    let mut args = Args::default();
    args.push(ptr)
        .push(input_ptr(v)?)
        .push(v.strides.first().copied().unwrap_or(1) as i64)
        .push(n as i64)
        .push(side)
        .push(k);
    launch(
        f,
        grid_for(n, THREADS, g.sm_count),
        THREADS,
        0,
        &mut args.pointers(),
    )?;
    Ok(Some(out))
}

// ---------------------------------------------------------------------------------------------
// Shape ops that move data: concatenate and constant pad, as copies into regions of a new
// array.

/// Copies `x` (converted to the output's dtype) into the region of a row-major output of
/// `out_shape` that starts at coordinates `at`.
fn copy_into(
    x: &ArrayData,
    (ptr, dtype): (u64, Dtype),
    out_shape: &[usize],
    at: &[usize],
) -> Result<Option<()>> {
    let rm = row_major_strides(out_shape);
    let base: isize = rm.iter().zip(at).map(|(&s, &k)| s * k as isize).sum();
    let dst = ptr.wrapping_add((base * dtype.size() as isize) as u64);
    if copy_rows(x, dst, dtype, out_shape)? {
        return Ok(Some(()));
    }
    run(Plan {
        op: "copy",
        shape: x.shape.clone(),
        out: (dst, dtype),
        dst_strides: rm,
        values: x,
        src_strides: x.strides.clone(),
        indices: Vec::new(),
        mode: Some(ScatterMode::Assign),
        atomic: false,
        out_len: 0,
    })
}

/// [`copy_into`] by the copy engine where it can: `x` row-contiguous in the output's dtype and
/// its region rows of one pitch (`x` spans the output on every axis but one), as a
/// concatenation's inputs are: one device copy or a 2D copy, where the element kernel moved
/// about 360 GB/s (a TinyLlama's stacked projections on an H100, ncu; the copies not yet
/// timed). Whether it did.
fn copy_rows(x: &ArrayData, dst: u64, dtype: Dtype, out_shape: &[usize]) -> Result<bool> {
    if x.dtype != dtype
        || x.size() == 0
        || !umx_core::shape::is_row_contiguous(&x.shape, &x.strides)
    {
        return Ok(false);
    }
    let mut apart = (0..x.shape.len()).filter(|&d| x.shape[d] != out_shape[d]);
    let axis = apart.next().unwrap_or(0);
    if apart.next().is_some() {
        return Ok(false);
    }
    let size = dtype.size();
    let rows: usize = x.shape[..axis].iter().product();
    let width = x.shape[axis..].iter().product::<usize>() * size;
    let pitch = out_shape[axis..].iter().product::<usize>() * size;
    let src = input_ptr(x)?;
    let g = gpu()?;
    if rows == 1 {
        // SAFETY: both regions hold `width` bytes; ordered on the stream as below.
        unsafe { result::memcpy_dtod_async(dst, src, width, g.stream()) }
            .map_err(|e| driver_err("copying into a region of an array", e))?;
        return Ok(true);
    }
    if pitch > i32::MAX as usize {
        // Past what a 2D copy's pitch may be.
        return Ok(false);
    }
    use cudarc::driver::sys::{CUDA_MEMCPY2D, CUmemorytype};
    let copy = CUDA_MEMCPY2D {
        srcXInBytes: 0,
        srcY: 0,
        srcMemoryType: CUmemorytype::CU_MEMORYTYPE_DEVICE,
        srcHost: std::ptr::null(),
        srcDevice: src,
        srcArray: std::ptr::null_mut(),
        srcPitch: width,
        dstXInBytes: 0,
        dstY: 0,
        dstMemoryType: CUmemorytype::CU_MEMORYTYPE_DEVICE,
        dstHost: std::ptr::null_mut(),
        dstDevice: dst,
        dstArray: std::ptr::null_mut(),
        dstPitch: pitch,
        WidthInBytes: width,
        Height: rows,
    };
    // SAFETY: the descriptor names two device regions of `rows` rows of `width` bytes, each
    // inside its allocation; the copy is ordered on the stream (which submits kernels held
    // back first).
    unsafe { cudarc::driver::sys::cuMemcpy2DAsync_v2(&copy, g.stream()) }
        .result()
        .map_err(|e| driver_err("copying into a region of an array", e))?;
    Ok(true)
}

/// The inputs joined along `axis` into a new array of `spec`.
pub fn concatenate(inputs: &[ArrayData], axis: usize, spec: &OutSpec) -> Outs1 {
    let movable = |d: Dtype| storage_type(d).is_some() || d == Dtype::Complex64;
    if !movable(spec.dtype) || inputs.iter().any(|x| !movable(x.dtype)) {
        return Ok(None);
    }
    let (out, ptr) = fresh(&spec.shape, spec.dtype)?;
    let mut at = vec![0usize; spec.shape.len()];
    for x in inputs {
        if x.shape.len() != spec.shape.len() {
            return Err(Error::Device(
                "concatenate: inputs do not match the output".into(),
            ));
        }
        if copy_into(x, (ptr, spec.dtype), &spec.shape, &at)?.is_none() {
            return Ok(None);
        }
        at[axis] += x.shape[axis];
    }
    Ok(Some(out))
}

/// `x` with `low`/`high` elements of the 0-d `value` around it on each axis.
pub fn pad_constant(x: &ArrayData, value: &ArrayData, low: &[usize], spec: &OutSpec) -> Outs1 {
    if x.shape.len() != spec.shape.len() || low.len() != x.shape.len() || value.size() != 1 {
        return Err(Error::Device("pad: widths do not fit the input".into()));
    }
    let Some(out) = super::elementwise::run(
        std::slice::from_ref(value),
        &[value.dtype],
        "x0",
        &spec.shape,
        spec.dtype,
    )?
    else {
        return Ok(None);
    };
    if x.size() > 0 {
        let ptr = input_ptr(&out)?;
        if copy_into(x, (ptr, spec.dtype), &spec.shape, low)?.is_none() {
            return Ok(None);
        }
    }
    Ok(Some(out))
}

/// `x` padded by repeating its edge values `low`/`high` times along each axis: the input
/// copied into the middle, then, axis by axis, the edge rows of the output broadcast over the
/// borders (after the axes done before, whose borders are filled, and inside the interior of
/// the ones after).
pub fn pad_edge(x: &ArrayData, low: &[usize], spec: &OutSpec) -> Outs1 {
    let nd = x.shape.len();
    if spec.shape.len() != nd
        || low.len() != nd
        || (0..nd).any(|d| spec.shape[d] < x.shape[d] + low[d])
    {
        return Err(Error::Device("pad: widths do not fit the input".into()));
    }
    let movable = storage_type(spec.dtype).is_some() || spec.dtype == Dtype::Complex64;
    if !movable || x.dtype != spec.dtype {
        return Ok(None);
    }
    let (out, ptr) = fresh(&spec.shape, spec.dtype)?;
    if out.size() == 0 {
        return Ok(Some(out));
    }
    if x.size() == 0 {
        // No edge to repeat: the CPU names the error.
        return Ok(None);
    }
    if copy_into(x, (ptr, spec.dtype), &spec.shape, low)?.is_none() {
        return Ok(None);
    }
    let rm = row_major_strides(&spec.shape);
    let offset_of =
        |at: &[usize]| -> isize { rm.iter().zip(at).map(|(&s, &k)| s * k as isize).sum() };
    for d in 0..nd {
        let high = spec.shape[d] - low[d] - x.shape[d];
        for (width, start, edge) in [
            (low[d], 0, low[d]),
            (high, low[d] + x.shape[d], low[d] + x.shape[d] - 1),
        ] {
            if width == 0 {
                continue;
            }
            let mut shape = Vec::with_capacity(nd);
            let mut at = Vec::with_capacity(nd);
            for (a, ((&full, &inner), &lo)) in spec.shape.iter().zip(&x.shape).zip(low).enumerate()
            {
                let (n, k) = match a.cmp(&d) {
                    std::cmp::Ordering::Less => (full, 0),
                    std::cmp::Ordering::Equal => (width, start),
                    std::cmp::Ordering::Greater => (inner, lo),
                };
                shape.push(n);
                at.push(k);
            }
            let mut src_at = at.clone();
            src_at[d] = edge;
            let mut strides = rm.clone();
            strides[d] = 0;
            let edge_rows = ArrayData {
                shape,
                strides,
                offset: offset_of(&src_at),
                ..out.clone()
            };
            if copy_into(&edge_rows, (ptr, spec.dtype), &spec.shape, &at)?.is_none() {
                return Ok(None);
            }
        }
    }
    Ok(Some(out))
}
