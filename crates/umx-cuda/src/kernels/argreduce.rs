//! argmax and argmin along one axis: one warp per output element, each lane keeping the best
//! of a strided share of the axis, then warp shuffles; a few long rows (the logits of a
//! decoding step) get a block each instead. The CPU's rules: the first NaN wins,
//! then the first extreme (ties go to the lower index); indices are uint32.

use super::first_out;
use super::source::{Args, HEADER, load, storage_type};
use crate::compile::{function_for, launch};
use crate::gpu::gpu;
use crate::storage::{input_ptr, output};
use std::sync::Arc;
use umx_core::device::OutSpec;
use umx_core::primitives::codegen::c_compute_type;
use umx_core::primitives::reduce::ArgReduceKind;
use umx_core::shape::{numel, row_major_strides};
use umx_core::{ArrayData, Dtype, Error, Result};

const MAX_DIMS: usize = 8;
const WARPS: u32 = 8;

pub fn eval(
    kind: ArgReduceKind,
    axis: usize,
    inputs: &[ArrayData],
    outputs: &[OutSpec],
) -> Result<Option<Vec<ArrayData>>> {
    let name = kind.name();
    let [x] = inputs else {
        return Err(Error::Device(format!(
            "{name}: {} inputs, not 1",
            inputs.len()
        )));
    };
    let out = first_out(name, outputs)?;
    if x.dtype == Dtype::Complex64 {
        return Ok(None);
    }
    let n_out = numel(&out.shape);
    if axis >= x.shape.len() || n_out * x.shape[axis] != x.size() || out.dtype != Dtype::Uint32 {
        return Err(Error::Device(format!(
            "{name}: output {:?} does not fit input {:?}",
            out.shape, x.shape
        )));
    }
    let len = x.shape[axis];
    if n_out > 0 && len == 0 {
        return Err(Error::Device(format!(
            "{name}: cannot reduce an empty axis"
        )));
    }
    // The kept axes (size-1 ones dropped), outermost first.
    let kept: Vec<(usize, isize)> = (0..x.shape.len())
        .filter(|&d| d != axis && x.shape[d] != 1)
        .map(|d| (x.shape[d], x.strides[d]))
        .collect();
    if kept.len() > MAX_DIMS {
        return Ok(None);
    }
    let (buffer, ptr) = output(n_out * 4)?;
    let result = ArrayData {
        buffer: Arc::new(buffer),
        shape: out.shape.clone(),
        dtype: Dtype::Uint32,
        strides: row_major_strides(&out.shape),
        offset: 0,
    };
    if n_out == 0 {
        return Ok(Some(vec![result]));
    }
    let mut words = [0i64; 2 * MAX_DIMS + 1];
    for (a, &(size, stride)) in kept.iter().enumerate() {
        words[a] = size as i64;
        words[MAX_DIMS + a] = stride as i64;
    }
    words[2 * MAX_DIMS] = kept.len() as i64;
    let dims: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();

    let max = kind == ArgReduceKind::ArgMax;
    let key = format!("arg|{:?}|{max}", x.dtype);
    let make = || source(x.dtype, max);
    let g = gpu()?;
    // Fewer rows than the card has warps to spare, each long: a block per row.
    let by_block = len >= 4096 && n_out < g.sm_count as usize * 8;
    let (f, threads, blocks) = if by_block {
        let f = function_for(&format!("{key}|block"), make, "umx_argreduce_block")?;
        (f, 1024, n_out.min(g.sm_count as usize * 8).max(1) as u32)
    } else {
        let f = function_for(&key, make, "umx_argreduce")?;
        let blocks = (n_out.div_ceil(WARPS as usize))
            .min(g.sm_count as usize * 32)
            .max(1) as u32;
        (f, WARPS * 32, blocks)
    };
    let mut args = Args::default();
    args.push(ptr)
        .push(input_ptr(x)?)
        .push(n_out as i64)
        .push(len as i64)
        .push(x.strides[axis] as i64);
    args.push_bytes(&dims);
    launch(f, blocks, threads, 0, &mut args.pointers())?;
    Ok(Some(vec![result]))
}

/// Both kernels' source for `dtype`: argmax (`max`) or argmin.
fn source(dtype: Dtype, max: bool) -> String {
    let s = storage_type(dtype).unwrap_or("void");
    // Shuffles move 32- and 64-bit values: small types widen (order is kept).
    let ct = c_compute_type(match dtype {
        Dtype::Float16 | Dtype::Bfloat16 => Dtype::Float32,
        Dtype::Bool | Dtype::Int8 | Dtype::Int16 => Dtype::Int32,
        Dtype::Uint8 | Dtype::Uint16 => Dtype::Uint32,
        d => d,
    })
    .unwrap_or("void");
    let float = dtype.is_float();
    let value = load(dtype, "x[at]", ct);
    let nan = |v: &str| {
        if float {
            format!("({v} != {v})")
        } else {
            "false".into()
        }
    };
    let cmp = if max { ">" } else { "<" };
    format!(
        r#"{HEADER}
struct umx_kept {{ long long shape[{MAX_DIMS}]; long long strides[{MAX_DIMS}]; long long ndim; }};
/* Whether (v, i) should replace (b, j): the first NaN, then the first extreme. */
__device__ __forceinline__ bool umx_better({ct} v, unsigned int i, {ct} b, unsigned int j) {{
  bool vn = {vn}, bn = {bn};
  if (vn || bn) return vn && (!bn || i < j);
  if (v == b) return i < j;
  return v {cmp} b;
}}
extern "C" __global__ void umx_argreduce(unsigned int* out, const {s}* x, long long n_out,
    long long len, long long astride, umx_kept d) {{
  long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  int lane = threadIdx.x % 32;
  long long warps = (long long)gridDim.x * blockDim.x / 32;
  for (long long o = warp; o < n_out; o += warps) {{
    long long base = 0, rest = o;
    for (int a = (int)d.ndim - 1; a >= 0; a--) {{
      base += (rest % d.shape[a]) * d.strides[a];
      rest /= d.shape[a];
    }}
    {ct} best = 0; unsigned int bi = 0xffffffffu;
    for (long long k = lane; k < len; k += 32) {{
      long long at = base + k * astride;
      {ct} v = {value};
      if (bi == 0xffffffffu || umx_better(v, (unsigned int)k, best, bi)) {{ best = v; bi = (unsigned int)k; }}
    }}
    for (int off = 16; off > 0; off /= 2) {{
      {ct} ov = __shfl_down_sync(0xffffffffu, best, off);
      unsigned int oi = __shfl_down_sync(0xffffffffu, bi, off);
      if (oi != 0xffffffffu && (bi == 0xffffffffu || umx_better(ov, oi, best, bi))) {{ best = ov; bi = oi; }}
    }}
    if (lane == 0) out[o] = bi;
  }}
}}
/* Few long rows (a vocabulary's logits): a block of BLOCK threads per output, each thread
   with four loads in flight, then warps, then the block through shared memory. */
#define BLOCK 1024
/* Elements of a 16-byte vector. */
#define VE {ve}
extern "C" __global__ void __launch_bounds__(BLOCK) umx_argreduce_block(unsigned int* out,
    const {s}* x, long long n_out, long long len, long long astride, umx_kept d) {{
  __shared__ {ct} sv[BLOCK / 32];
  __shared__ unsigned int si[BLOCK / 32];
  int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  for (long long o = blockIdx.x; o < n_out; o += gridDim.x) {{
    long long base = 0, rest = o;
    for (int a = (int)d.ndim - 1; a >= 0; a--) {{
      base += (rest % d.shape[a]) * d.strides[a];
      rest /= d.shape[a];
    }}
    {ct} best = 0; unsigned int bi = 0xffffffffu;
    long long k = threadIdx.x;
    if (astride == 1 && ((unsigned long long)(x + base) & 15) == 0) {{
      /* A contiguous, aligned row: 16-byte vectors, four a thread in flight (a 32000-word
         bfloat16 row in one round), then the tail element by element. */
      const uint4* xv = (const uint4*)(x + base);
      long long nv = len / VE;
      for (long long b = threadIdx.x; b < nv; b += 4 * BLOCK) {{
        uint4 vs[4];
        #pragma unroll
        for (int u = 0; u < 4; u++)
          if (b + u * BLOCK < nv) vs[u] = xv[b + u * BLOCK];
        #pragma unroll
        for (int u = 0; u < 4; u++) {{
          if (b + u * BLOCK >= nv) break;
          const {s}* e = (const {s}*)&vs[u];
          #pragma unroll
          for (int t = 0; t < VE; t++) {{
            unsigned int i = (unsigned int)((b + u * BLOCK) * VE + t);
            {ct} v = {vector_value};
            if (bi == 0xffffffffu || umx_better(v, i, best, bi)) {{ best = v; bi = i; }}
          }}
        }}
      }}
      k = nv * VE + threadIdx.x;
    }}
    for (; k + 3 * BLOCK < len; k += 4 * BLOCK) {{
      {ct} vs[4];
      for (int u = 0; u < 4; u++) {{ long long at = base + (k + u * BLOCK) * astride; vs[u] = {value}; }}
      for (int u = 0; u < 4; u++) {{
        unsigned int i = (unsigned int)(k + u * BLOCK);
        if (bi == 0xffffffffu || umx_better(vs[u], i, best, bi)) {{ best = vs[u]; bi = i; }}
      }}
    }}
    for (; k < len; k += BLOCK) {{
      long long at = base + k * astride;
      {ct} v = {value};
      if (bi == 0xffffffffu || umx_better(v, (unsigned int)k, best, bi)) {{ best = v; bi = (unsigned int)k; }}
    }}
    for (int off = 16; off > 0; off /= 2) {{
      {ct} ov = __shfl_down_sync(0xffffffffu, best, off);
      unsigned int oi = __shfl_down_sync(0xffffffffu, bi, off);
      if (oi != 0xffffffffu && (bi == 0xffffffffu || umx_better(ov, oi, best, bi))) {{ best = ov; bi = oi; }}
    }}
    if (lane == 0) {{ sv[w] = best; si[w] = bi; }}
    __syncthreads();
    if (w == 0) {{
      best = sv[lane]; bi = si[lane];
      for (int off = 16; off > 0; off /= 2) {{
        {ct} ov = __shfl_down_sync(0xffffffffu, best, off);
        unsigned int oi = __shfl_down_sync(0xffffffffu, bi, off);
        if (oi != 0xffffffffu && (bi == 0xffffffffu || umx_better(ov, oi, best, bi))) {{ best = ov; bi = oi; }}
      }}
      if (lane == 0) out[o] = bi;
    }}
    __syncthreads();
  }}
}}
"#,
        vn = nan("v"),
        bn = nan("b"),
        ve = 16 / dtype.size(),
        vector_value = load(dtype, "e[t]", ct),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every dtype's source has balanced braces and names both kernels; with
    /// `UMX_DUMP_ARGREDUCE_SOURCES=dir` they are also written there (to compile them with
    /// NVRTC where no GPU is at hand).
    #[test]
    fn sources_are_well_formed() {
        let dump = std::env::var("UMX_DUMP_ARGREDUCE_SOURCES").ok();
        // Complex arrays take the CPU fallback.
        for dtype in Dtype::ALL.into_iter().filter(|&d| d != Dtype::Complex64) {
            for max in [false, true] {
                let src = source(dtype, max);
                let count = |c: char| src.chars().filter(|&x| x == c).count();
                assert_eq!(count('{'), count('}'), "{dtype:?}");
                assert_eq!(count('('), count(')'), "{dtype:?}");
                assert!(src.contains("void umx_argreduce("));
                assert!(src.contains("umx_argreduce_block("));
                if let Some(dir) = &dump {
                    std::fs::write(format!("{dir}/arg_{dtype:?}_{max}.cu"), &src).unwrap();
                }
            }
        }
    }
}
