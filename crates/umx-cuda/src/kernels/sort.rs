//! sort, argsort, partition, argpartition and topk along one axis, for lanes (the 1-D slices
//! along the axis) of up to [`MAX_LANE`] elements: one block sorts each lane in shared memory
//! with a bitonic network over (value, position) pairs. Ordering is the CPU's: by value with
//! NaNs last (complex64: NumPy's order), ties by position, so argsort is stable and equals
//! the CPU's. A partition is
//! returned fully sorted (a valid partition), and topk gives the `k` largest in ascending
//! order, as the CPU does. Longer lanes run the same network in global memory, one launch a
//! step. `searchsorted` is a binary search per value.

use super::first_out;
use super::source::{
    Args, HEADER, complex_compute_type, complex_prelude, complex_storage_type, complex_store, load,
    storage_type,
};
use crate::compile::{function_for, launch};
use crate::gpu::gpu;
use crate::storage::{input_ptr, output};
use std::sync::Arc;
use umx_core::device::OutSpec;
use umx_core::primitives::SortOp;
use umx_core::primitives::codegen::c_compute_type;
use umx_core::shape::{numel, row_major_strides};
use umx_core::{ArrayData, Dtype, Error, Result};

/// Longest lane sorted on the GPU.
pub const MAX_LANE: usize = 2048;
const MAX_DIMS: usize = 8;

pub fn eval(
    op: &SortOp,
    inputs: &[ArrayData],
    outputs: &[OutSpec],
) -> Result<Option<Vec<ArrayData>>> {
    let (axis, indices, first) = match *op {
        SortOp::Sort { axis } | SortOp::Partition { axis, .. } => (axis, false, 0),
        SortOp::ArgSort { axis } | SortOp::ArgPartition { axis, .. } => (axis, true, 0),
        SortOp::TopK { axis, k } => {
            let n = inputs
                .first()
                .and_then(|x| x.shape.get(axis))
                .copied()
                .unwrap_or(0);
            if k > n {
                return Err(Error::Invalid(format!(
                    "topk: k {k} is larger than axis {axis}"
                )));
            }
            (axis, false, n - k)
        }
        SortOp::SearchSorted { right } => return search_sorted(right, inputs, outputs),
    };
    let name = op.name();
    let [x] = inputs else {
        return Err(Error::Device(format!(
            "{name}: {} inputs, not 1",
            inputs.len()
        )));
    };
    let out = first_out(name, outputs)?;
    let len = x.shape.get(axis).copied().unwrap_or(0);
    if let SortOp::Partition { kth, .. } | SortOp::ArgPartition { kth, .. } = *op
        && kth >= len
        && x.size() > 0
    {
        return Err(Error::Invalid(format!(
            "{name}: kth {kth} is out of range for axis {axis}"
        )));
    }
    if x.shape.len() > MAX_DIMS + 1 {
        return Ok(None);
    }
    let out_dtype = if indices { Dtype::Uint32 } else { x.dtype };
    if out.dtype != out_dtype || out.shape.len() != x.shape.len() {
        return Err(Error::Device(format!(
            "{name}: output {:?} {} does not fit input {:?}",
            out.shape, out.dtype, x.shape
        )));
    }
    let n_out = numel(&out.shape);
    let (buffer, ptr) = output(n_out * out_dtype.size())?;
    let result = ArrayData {
        buffer: Arc::new(buffer),
        shape: out.shape.clone(),
        dtype: out_dtype,
        strides: row_major_strides(&out.shape),
        offset: 0,
    };
    let lanes = x.size().checked_div(len).unwrap_or(0);
    if n_out == 0 || lanes == 0 {
        return Ok(Some(vec![result]));
    }
    // The other axes: their sizes, the input's strides and the output's.
    let mut words = [0i64; 3 * MAX_DIMS + 1];
    let mut nd = 0;
    for d in (0..x.shape.len()).filter(|&d| d != axis) {
        words[nd] = x.shape[d] as i64;
        words[MAX_DIMS + nd] = x.strides[d] as i64;
        words[2 * MAX_DIMS + nd] = result.strides[d] as i64;
        nd += 1;
    }
    words[3 * MAX_DIMS] = nd as i64;
    let dims: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();

    let p = len.next_power_of_two().max(2);
    let key_t = match x.dtype {
        Dtype::Float16 | Dtype::Bfloat16 => Dtype::Float32,
        d => d,
    };
    let ct = key_type(key_t);
    let xs = stored_type(x.dtype);
    let os = stored_type(out_dtype);
    if len > MAX_LANE {
        let lane = Lanes {
            x,
            lanes,
            len,
            p,
            first,
            dims: &dims,
            astride: x.strides[axis] as i64,
            ostride: result.strides[axis] as i64,
        };
        sort_global(&lane, key_t, indices, ptr)?;
        return Ok(Some(vec![result]));
    }
    let shared = p * (key_t.size() + 4);
    let key = format!("sort|{:?}|{indices}", x.dtype);
    let f = function_for(
        &key,
        || {
            let result = if indices {
                "idx[k]".to_string()
            } else {
                complex_store(x.dtype, "key[k]")
            };
            format!(
                r#"{HEADER}{complex}
struct umx_lanes {{ long long shape[{MAX_DIMS}]; long long in[{MAX_DIMS}]; long long out[{MAX_DIMS}]; long long ndim; }};
{before}extern "C" __global__ void umx_sort(const {xs}* __restrict__ x, {os}* __restrict__ out, long long lanes,
    unsigned int len, unsigned int p, long long astride, long long ostride, unsigned int first, umx_lanes d) {{
  extern __shared__ unsigned long long umx_smem[];
  unsigned int* idx = (unsigned int*)umx_smem;
  {ct}* key = ({ct}*)(idx + p); /* 4p bytes in: aligned for 8-byte keys, p being even */
  for (long long lane = blockIdx.x; lane < lanes; lane += gridDim.x) {{
    long long ib = 0, ob = 0, rest = lane;
    for (int a = (int)d.ndim - 1; a >= 0; a--) {{
      long long c = rest % d.shape[a];
      rest /= d.shape[a];
      ib += c * d.in[a];
      ob += c * d.out[a];
    }}
    for (unsigned int k = threadIdx.x; k < p; k += blockDim.x) {{
      key[k] = k < len ? {value} : ({ct})0;
      idx[k] = k;
    }}
    __syncthreads();
    for (unsigned int size = 2; size <= p; size <<= 1) {{
      for (unsigned int stride = size >> 1; stride > 0; stride >>= 1) {{
        for (unsigned int t = threadIdx.x; t < p / 2; t += blockDim.x) {{
          unsigned int i = 2 * t - (t & (stride - 1)), j = i + stride;
          bool up = (i & size) == 0;
          if (umx_before(key[j], idx[j], key[i], idx[i], len) == up) {{
            {ct} tk = key[i]; key[i] = key[j]; key[j] = tk;
            unsigned int ti = idx[i]; idx[i] = idx[j]; idx[j] = ti;
          }}
        }}
        __syncthreads();
      }}
    }}
    for (unsigned int k = first + threadIdx.x; k < len; k += blockDim.x)
      out[ob + (long long)(k - first) * ostride] = {result};
    __syncthreads();
  }}
}}
"#,
                before = before(key_t, ct),
                complex = complex_prelude(key_t == Dtype::Complex64),
                value = load(x.dtype, "x[ib + (long long)k * astride]", ct),
            )
        },
        "umx_sort",
    )?;
    let g = gpu()?;
    let threads = (p / 2).clamp(32, 512) as u32;
    let blocks = lanes.min(g.sm_count as usize * 16).max(1) as u32;
    let mut args = Args::default();
    args.push(input_ptr(x)?)
        .push(ptr)
        .push(lanes as i64)
        .push(len as u32)
        .push(p as u32)
        .push(x.strides[axis] as i64)
        .push(result.strides[axis] as i64)
        .push(first as u32);
    args.push_bytes(&dims);
    launch(f, blocks, threads, shared as u32, &mut args.pointers())?;
    Ok(Some(vec![result]))
}

/// The C type a sort compares keys of `d` in.
fn key_type(d: Dtype) -> &'static str {
    complex_compute_type(d).unwrap_or("void")
}

fn stored_type(d: Dtype) -> &'static str {
    complex_storage_type(d).unwrap_or("void")
}

/// The sort order as `umx_before((a, ia), (b, ib))`: padding last, then by value with NaNs
/// last, ties by position. complex64 is the CPU's (NumPy's) order: by real part, then
/// imaginary part, with `R + nanj`, `nan + Rj` and `nan + nanj` after every other value, in
/// that order.
fn before(key_t: Dtype, ct: &str) -> String {
    let values = if key_t == Dtype::Complex64 {
        r#"  int ca = (a.re != a.re ? 2 : 0) + (a.im != a.im ? 1 : 0);
  int cb = (b.re != b.re ? 2 : 0) + (b.im != b.im ? 1 : 0);
  if (ca != cb) return ca < cb;
  if (ca < 2 && a.re != b.re) return a.re < b.re;
  if ((ca & 1) == 0 && a.im != b.im) return a.im < b.im;
  return ia < ib;"#
            .to_string()
    } else {
        let nan = |v: &str| {
            if key_t.is_float() {
                format!("({v} != {v})")
            } else {
                "false".into()
            }
        };
        format!(
            "  bool na = {}, nb = {};
  if (na || nb) return na != nb ? nb : ia < ib;
  if (a != b) return a < b;
  return ia < ib;",
            nan("a"),
            nan("b")
        )
    };
    format!(
        r#"__device__ __forceinline__ bool umx_before({ct} a, unsigned int ia, {ct} b, unsigned int ib, unsigned int len) {{
  bool pa = ia >= len, pb = ib >= len;
  if (pa || pb) return pa != pb ? pb : ia < ib;
{values}
}}
"#
    )
}

/// The lanes of one sort and where they go.
struct Lanes<'a> {
    x: &'a ArrayData,
    lanes: usize,
    len: usize,
    /// `len` rounded up to a power of two.
    p: usize,
    /// The first sorted position written out (topk writes the last `k`).
    first: usize,
    /// The other axes (`umx_lanes`'s bytes).
    dims: &'a [u8],
    astride: i64,
    ostride: i64,
}

/// Lanes longer than shared memory holds: the same bitonic network over (value, position)
/// pairs, in global memory, one launch per step of the network (`log2(p) (log2(p) + 1) / 2`
/// launches), every lane at once. Writes to `out` as the shared-memory kernel does.
fn sort_global(l: &Lanes, key_t: Dtype, indices: bool, out: u64) -> Result<()> {
    let x = l.x;
    let out_dtype = if indices { Dtype::Uint32 } else { x.dtype };
    let ct = key_type(key_t);
    let xs = stored_type(x.dtype);
    let os = stored_type(out_dtype);
    let total = l.lanes * l.p;
    let (_keys, kp) = output(total * key_t.size())?;
    let (_idx, ip) = output(total * 4)?;
    let key = format!("sort_global|{:?}|{indices}", x.dtype);
    let source = || {
        let result = if indices {
            "idx[at]".to_string()
        } else {
            complex_store(x.dtype, "key[at]")
        };
        format!(
            r#"{HEADER}{complex}
struct umx_lanes {{ long long shape[{MAX_DIMS}]; long long in[{MAX_DIMS}]; long long out[{MAX_DIMS}]; long long ndim; }};
__device__ __forceinline__ void umx_lane(long long lane, const umx_lanes& d, long long* ib, long long* ob) {{
  long long rest = lane; *ib = 0; *ob = 0;
  for (int a = (int)d.ndim - 1; a >= 0; a--) {{
    long long c = rest % d.shape[a];
    rest /= d.shape[a];
    *ib += c * d.in[a];
    *ob += c * d.out[a];
  }}
}}
{before}extern "C" __global__ void umx_sort_load(const {xs}* __restrict__ x, {ct}* key, unsigned int* idx,
    long long total, long long p, long long len, long long astride, umx_lanes d) {{
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
       e += (long long)gridDim.x * blockDim.x) {{
    long long k = e % p, ib, ob;
    umx_lane(e / p, d, &ib, &ob);
    key[e] = k < len ? {value} : ({ct})0;
    idx[e] = (unsigned int)k;
  }}
}}
extern "C" __global__ void umx_sort_step({ct}* key, unsigned int* idx, long long pairs, long long p,
    unsigned int len, long long size, long long stride) {{
  long long half = p / 2;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < pairs;
       t += (long long)gridDim.x * blockDim.x) {{
    long long base = (t / half) * p, tt = t % half;
    long long i = 2 * tt - (tt & (stride - 1)), j = i + stride;
    bool up = (i & size) == 0;
    long long a = base + i, b = base + j;
    if (umx_before(key[b], idx[b], key[a], idx[a], len) == up) {{
      {ct} tk = key[a]; key[a] = key[b]; key[b] = tk;
      unsigned int ti = idx[a]; idx[a] = idx[b]; idx[b] = ti;
    }}
  }}
}}
extern "C" __global__ void umx_sort_store(const {ct}* key, const unsigned int* idx, {os}* __restrict__ out,
    long long total, long long count, long long p, long long first, long long ostride, umx_lanes d) {{
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
       e += (long long)gridDim.x * blockDim.x) {{
    long long lane = e / count, k = e % count, ib, ob;
    umx_lane(lane, d, &ib, &ob);
    long long at = lane * p + first + k;
    out[ob + k * ostride] = {result};
  }}
}}
"#,
            before = before(key_t, ct),
            complex = complex_prelude(key_t == Dtype::Complex64),
            value = load(x.dtype, "x[ib + k * astride]", ct),
        )
    };
    let g = gpu()?;
    let grid = |n: usize| super::source::grid_for(n, 256, g.sm_count);
    let f = function_for(&format!("{key}|load"), source, "umx_sort_load")?;
    let mut args = Args::default();
    args.push(input_ptr(x)?)
        .push(kp)
        .push(ip)
        .push(total as i64)
        .push(l.p as i64)
        .push(l.len as i64)
        .push(l.astride);
    args.push_bytes(l.dims);
    launch(f, grid(total), 256, 0, &mut args.pointers())?;
    let f = function_for(&format!("{key}|step"), source, "umx_sort_step")?;
    let pairs = total / 2;
    let mut size = 2;
    while size <= l.p {
        let mut stride = size / 2;
        while stride > 0 {
            let mut args = Args::default();
            args.push(kp)
                .push(ip)
                .push(pairs as i64)
                .push(l.p as i64)
                .push(l.len as u32)
                .push(size as i64)
                .push(stride as i64);
            launch(f, grid(pairs), 256, 0, &mut args.pointers())?;
            stride /= 2;
        }
        size *= 2;
    }
    let count = l.len - l.first;
    let f = function_for(&format!("{key}|store"), source, "umx_sort_store")?;
    let mut args = Args::default();
    args.push(kp)
        .push(ip)
        .push(out)
        .push((l.lanes * count) as i64)
        .push(count as i64)
        .push(l.p as i64)
        .push(l.first as i64)
        .push(l.ostride);
    args.push_bytes(l.dims);
    launch(f, grid(l.lanes * count), 256, 0, &mut args.pointers())
}

/// For every element of `v`, where it would go into the sorted 1-D `a` (before equal elements,
/// or after them when `right`), in the sort order above (NaNs last): a binary search per
/// element, one thread each.
fn search_sorted(
    right: bool,
    inputs: &[ArrayData],
    outputs: &[OutSpec],
) -> Result<Option<Vec<ArrayData>>> {
    let [a, v] = inputs else {
        return Err(Error::Device(format!(
            "searchsorted: {} inputs, not 2",
            inputs.len()
        )));
    };
    let out = first_out("searchsorted", outputs)?;
    if a.dtype != v.dtype || a.dtype == Dtype::Complex64 || a.shape.len() != 1 {
        return Ok(None);
    }
    if out.dtype != Dtype::Uint32 || out.shape != v.shape {
        return Err(Error::Device(format!(
            "searchsorted: output {:?} {} does not fit values {:?}",
            out.shape, out.dtype, v.shape
        )));
    }
    let key_t = match a.dtype {
        Dtype::Float16 | Dtype::Bfloat16 => Dtype::Float32,
        d => d,
    };
    let (Some(ct), Some(s)) = (c_compute_type(key_t), storage_type(a.dtype)) else {
        return Ok(None);
    };
    let (result, rp) = crate::storage::fresh(&out.shape, Dtype::Uint32)?;
    let n = v.size();
    if n == 0 {
        return Ok(Some(vec![result]));
    }
    let values = if umx_core::shape::is_row_contiguous(&v.shape, &v.strides) {
        v.clone()
    } else {
        match super::contiguous(v, v.dtype)? {
            Some(c) => c,
            None => return Ok(None),
        }
    };
    let nan = |x: &str| {
        if key_t.is_float() {
            format!("({x} != {x})")
        } else {
            "false".into()
        }
    };
    let f = function_for(
        &format!("searchsorted|{:?}", a.dtype),
        || {
            format!(
                r#"{HEADER}
/* x before y in the sort order: NaNs last. */
__device__ __forceinline__ bool umx_less({ct} x, {ct} y) {{
  bool nx = {nx}, ny = {ny};
  if (nx || ny) return !nx && ny;
  return x < y;
}}
extern "C" __global__ void umx_searchsorted(const {s}* __restrict__ a, long long len, long long astride,
    const {s}* __restrict__ v, unsigned int* __restrict__ out, long long n, int right) {{
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
       e += (long long)gridDim.x * blockDim.x) {{
    {ct} x = {load_v};
    long long lo = 0, hi = len;
    while (lo < hi) {{
      long long mid = (lo + hi) >> 1;
      {ct} y = {load_a};
      bool after = right ? !umx_less(x, y) : umx_less(y, x);
      if (after) lo = mid + 1; else hi = mid;
    }}
    out[e] = (unsigned int)lo;
  }}
}}
"#,
                nx = nan("x"),
                ny = nan("y"),
                load_v = load(a.dtype, "v[e]", ct),
                load_a = load(a.dtype, "a[mid * astride]", ct),
            )
        },
        "umx_searchsorted",
    )?;
    let g = gpu()?;
    let mut args = Args::default();
    args.push(input_ptr(a)?)
        .push(a.shape[0] as i64)
        .push(a.strides[0] as i64)
        .push(input_ptr(&values)?)
        .push(rp)
        .push(n as i64)
        .push(right as i32);
    launch(
        f,
        super::source::grid_for(n, 256, g.sm_count),
        256,
        0,
        &mut args.pointers(),
    )?;
    Ok(Some(vec![result]))
}
