//! Scaled dot-product attention on the GPU outside the flash kernels: short query blocks
//! (decoding), masks and sinks. Split-K "flash decoding": a block takes up to [`ATTN_ROWS`]
//! query rows that share a key head (of the group of grouped-query heads) and one chunk of
//! the keys, so each key and value row is read once for all its rows; its warps keep
//! online-softmax running values; a second kernel merges the chunks. Rows of 16-byte vectors
//! take the vectorised kernel ([`vector_source`]; its rows a block and chunks:
//! [`vector_blocks`]). Query blocks long enough for the flash kernels, without mask or sinks,
//! go to them (`flash.rs`).

use super::fast::INF;
use super::flash::flash;
use super::row_major;
use super::source::{Args, HEADER, load, storage_type, store};
use crate::compile::{function_for, launch};
use crate::gpu::gpu;
use crate::storage::{fresh, input_ptr};
use umx_core::device::OutSpec;
use umx_core::{ArrayData, Dtype, Error, Result};

type Outs = Result<Option<Vec<ArrayData>>>;

/// Query rows one attention block serves.
pub const ATTN_ROWS: usize = 8;
/// Keys a warp of the general kernel loads at once. Four (more registers) and other shapes of
/// the block (2 or 4 rows, 16 or 32 warps, longer splits) were no faster in a decoding step on
/// the H100.
const GENERAL_KEYS: usize = 2;
/// Warps of an attention block when values are wider than 128 (8 otherwise, which hides more
/// of the memory latency; the block's partial sums must fit shared memory).
const ATTN_WARPS: usize = 4;

/// Strides (in elements) of a 4-d operand, for the attention kernels.
fn strides4(a: &ArrayData) -> [i64; 4] {
    [
        a.strides[0] as i64,
        a.strides[1] as i64,
        a.strides[2] as i64,
        a.strides[3] as i64,
    ]
}

/// `a` with unit stride along its last axis (a copy when it has not).
fn unit_last(a: &ArrayData) -> Result<Option<ArrayData>> {
    if a.shape[3] <= 1 || a.strides[3] == 1 {
        return Ok(Some(a.clone()));
    }
    super::contiguous(a, a.dtype)
}

/// `scaled_dot_product_attention` of `inputs` (queries, keys, values, then the mask and the
/// sinks where the op has them) into `out`; `None` where no GPU kernel takes the case.
pub(super) fn attention(
    inputs: &[ArrayData],
    out: &OutSpec,
    scale: f32,
    causal: bool,
    mask: bool,
    sinks: bool,
) -> Outs {
    let (Some(q), Some(k), Some(v)) = (
        unit_last(&inputs[0])?,
        unit_last(&inputs[1])?,
        unit_last(&inputs[2])?,
    ) else {
        return Ok(None);
    };
    let [b, hq, lq, d] = q.shape[..] else {
        return Err(Error::Device("attention: queries must be 4-d".into()));
    };
    let (hk, lk, dv) = (k.shape[1], k.shape[2], v.shape[3]);
    if d > 256 || dv > 256 || hk == 0 {
        return Ok(None);
    }
    if !mask
        && !sinks
        && let Some(done) = flash(&q, &k, &v, out, scale, causal, false)?
    {
        return Ok(Some(done));
    }
    let m = mask.then(|| &inputs[3]);
    let s = if sinks {
        match row_major(&inputs[3 + mask as usize])? {
            Some(s) => Some(s),
            None => return Ok(None),
        }
    } else {
        None
    };
    let (result, out_ptr) = fresh(&out.shape, out.dtype)?;
    let n_rows = b * hq * lq;
    if n_rows == 0 || dv == 0 {
        return Ok(Some(vec![result]));
    }
    let group = hq / hk;
    // Rows of one key head: `group` heads times `lq` queries, in blocks of `r` rows.
    let rows_per_kh = group * lq;
    let vec = vector_width(&q, &k, &v)?;
    let g = gpu()?;
    let Blocks {
        r,
        row_blocks,
        chunk,
        splits,
    } = match vec {
        Some(vw) => vector_blocks(rows_per_kh, b * hk, lk, d, vw, g.sm_count as usize),
        None => general_blocks(rows_per_kh, b * hk, lk, g.sm_count as usize),
    };
    let base_blocks = b * hk * row_blocks;
    // The kernels index in 32 bits.
    if n_rows > i32::MAX as usize || base_blocks * splits > i32::MAX as usize {
        return Ok(None);
    }

    let warps = warps_for(vec, dv);
    let kernel = AttentionKernel {
        q: q.dtype,
        k: k.dtype,
        v: v.dtype,
        out: out.dtype,
        mask: m.map(|m| m.dtype),
        sinks: s.as_ref().map_or(Dtype::Float32, |s| s.dtype),
        r,
        d,
        dv,
        warps,
        causal,
        vec,
        shape: Heads {
            hk,
            group,
            one_query: lq == 1,
        },
        merge_width: merge_width(splits),
        prefetch: vec.is_some() && prefetch_on(),
    };
    let key = format!("fast-attn|{kernel:?}");
    let make = || kernel.source();
    let f = function_for(&key, make, "umx_attn")?;
    let scratch = if splits > 1 {
        Some(crate::storage::output(n_rows * splits * (dv + 2) * 4)?)
    } else {
        None
    };
    let part_ptr = scratch.as_ref().map_or(0, |s| s.1);
    let m_ptr = match m {
        Some(m) => input_ptr(m)?,
        None => 0,
    };
    let s_ptr = match &s {
        Some(s) => input_ptr(s)?,
        None => 0,
    };
    let s4 = |a: [i64; 4]| -> Vec<u8> { a.iter().flat_map(|w| w.to_le_bytes()).collect() };
    let mst = m.map_or([0; 4], strides4);
    let mut args = Args::default();
    args.push(out_ptr)
        .push(part_ptr)
        .push(input_ptr(&q)?)
        .push(input_ptr(&k)?)
        .push(input_ptr(&v)?)
        .push(m_ptr)
        .push(s_ptr)
        .push(hq as i32)
        .push(lq as i32)
        .push(lk as i64)
        .push(row_blocks as i32)
        .push(chunk as i64)
        .push(splits as i32)
        .push(scale)
        .push(mst[3]);
    args.push_bytes(&s4(strides4(&q)))
        .push_bytes(&s4(strides4(&k)))
        .push_bytes(&s4(strides4(&v)))
        .push_bytes(&s4(mst));
    let blocks = base_blocks * splits;
    // With profiling on, each kernel's own time too (inside the primitive's).
    let start = crate::profile::mark()?;
    launch(
        f,
        blocks as u32,
        (warps * 32) as u32,
        0,
        &mut args.pointers(),
    )?;
    if start.is_some() {
        let attr = |a| {
            let mut v = 0i32;
            // SAFETY: a loaded function and one out-parameter.
            unsafe { cudarc::driver::sys::cuFuncGetAttribute(&mut v, a, f) };
            v
        };
        use cudarc::driver::sys::CUfunction_attribute::*;
        let label = format!(
            " attention: {blocks} blocks over {splits} splits; {} registers, {} B local, {} B shared",
            attr(CU_FUNC_ATTRIBUTE_NUM_REGS),
            attr(CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES),
            attr(CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)
        );
        crate::profile::span(label, start)?;
    }
    if splits > 1 {
        let start = crate::profile::mark()?;
        // The merge kernel is in the same source (so the same module).
        let merge = function_for(&format!("{key}|merge"), make, "umx_attn_merge")?;
        let mut args = Args::default();
        args.push(out_ptr)
            .push(part_ptr)
            .push(s_ptr)
            .push(n_rows as i64)
            .push(hq as i32)
            .push(lq as i32)
            .push(splits as i32);
        let threads = dv.next_multiple_of(32).clamp(32, 1024) as u32;
        let blocks = n_rows.min(g.sm_count as usize * 16) as u32;
        launch(merge, blocks, threads, 0, &mut args.pointers())?;
        crate::profile::span(format!(" attention merge: {blocks} blocks"), start)?;
    }
    // The scratch goes back to the pool; the stream orders its reuse after these launches.
    drop(scratch);
    Ok(Some(vec![result]))
}

/// The general decoding kernel (any dtypes and head dims up to 256): a query row's
/// dimensions split over a warp's lanes, each warp over its own keys, [`GENERAL_KEYS`] at a
/// time with all their loads in flight; the block's warps meet in shared memory.
fn general_source(a: &AttentionKernel) -> String {
    let st = |d: Dtype| storage_type(d).unwrap_or("void");
    let (qs, ks, vs, os, ss) = (st(a.q), st(a.k), st(a.v), st(a.out), st(a.sinks));
    let ms = a.mask.map_or("float", st);
    let mask_term = match a.mask {
        Some(Dtype::Bool) => "ok = ok && (mrow[rr][j * ms3] != 0);".to_string(),
        Some(md) => format!("sc += {};", load(md, "mrow[rr][j * ms3]", "float")),
        None => String::new(),
    };
    let sink_load = load(a.sinks, "sinks[h]", "float");
    let (r, d, dv, warps) = (a.r, a.d, a.dv, a.warps);
    let (dpl, dvpl) = (d.div_ceil(32).max(1), dv.div_ceil(32));
    format!(
        r#"{HEADER}{INF}
#define R {r}
#define KEYS {GENERAL_KEYS}
#define WARPS {warps}
#define D {d}
#define DV {dv}
#define DPL {dpl}
#define DVPL {dvpl}
{defines}
struct umx_s4 {{ long long s[4]; }};
/* Merges running (m, l) pairs: the weight of a part with maximum `m` against `M`. */
UMX_FN float umx_w(float m, float M) {{ return m == -INFINITY ? 0.f : expf(m - M); }}
{merge}
extern "C" __global__ void __launch_bounds__(WARPS * 32) umx_attn({os}* out, float* part, const {qs}* q, const {ks}* k,
    const {vs}* v, const {ms}* mk, const {ss}* sinks, int hq, int lq,
    long long lk, int row_blocks, long long chunk, int splits, float scale, long long ms3,
    umx_s4 qst, umx_s4 kst, umx_s4 vst, umx_s4 mst) {{
  __shared__ float sh_m[WARPS][R], sh_l[WARPS][R], sh_acc[WARPS][R][DV];
{index}
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float qr[R][DPL];
  long long seen[R];
  long long hrow[R];
  const {ms}* mrow[R];
  bool live[R];
  long long jend = 0;
  #pragma unroll
  for (int rr = 0; rr < R; rr++) {{
    int g = rb * R + rr;
    live[rr] = g < GROUP * LQ;
    int h = kh * GROUP + (live[rr] ? QHEAD(g) : 0), i = live[rr] ? QPOS(g) : 0;
    hrow[rr] = ((long long)bi * hq + h) * LQ + i;
    const {qs}* qp = q + bi * qst.s[0] + h * qst.s[1] + i * qst.s[2];
    #pragma unroll
    for (int t = 0; t < DPL; t++) {{
      int c = lane + 32 * t;
      qr[rr][t] = (live[rr] && c < D) ? {lq_} * scale : 0.f;
    }}
    seen[rr] = {seen};
    if (!live[rr]) seen[rr] = 0;
    if (seen[rr] > jend) jend = seen[rr];
    mrow[rr] = mk ? mk + bi * mst.s[0] + h * mst.s[1] + i * mst.s[2] : 0;
  }}
  long long j0 = (long long)split * chunk, j1 = min(jend, j0 + chunk);
  float mx[R], l[R], acc[R][DVPL];
  #pragma unroll
  for (int rr = 0; rr < R; rr++) {{
    mx[rr] = -INFINITY; l[rr] = 0.f;
    #pragma unroll
    for (int t = 0; t < DVPL; t++) acc[rr][t] = 0.f;
  }}
  /* KEYS keys per step: all their loads are in flight before any is used. */
  for (long long j2 = j0 + warp; j2 < j1; j2 += KEYS * WARPS) {{
   float kv2[KEYS][DPL], vv2[KEYS][DVPL];
   #pragma unroll
   for (int u = 0; u < KEYS; u++) {{
    long long j = j2 + u * WARPS;
    bool ok = j < j1;
    const {ks}* kp = k + bi * kst.s[0] + kh * kst.s[1] + j * kst.s[2];
    const {vs}* vp = v + bi * vst.s[0] + kh * vst.s[1] + j * vst.s[2];
    #pragma unroll
    for (int t = 0; t < DPL; t++) {{
      int c = lane + 32 * t;
      kv2[u][t] = (ok && c < D) ? {lk_} : 0.f;
    }}
    #pragma unroll
    for (int t = 0; t < DVPL; t++) {{
      int c = lane + 32 * t;
      vv2[u][t] = (ok && c < DV) ? {lv_} : 0.f;
    }}
   }}
   #pragma unroll
   for (int u = 0; u < KEYS; u++) {{
    long long j = j2 + u * WARPS;
    if (j < j1) {{
    /* Every row's score first, their shuffles interleaved, then branch-free updates: the
       rows' dependency chains overlap instead of running one after another. */
    float scs[R];
    #pragma unroll
    for (int rr = 0; rr < R; rr++) {{
      float sc = 0.f;
      #pragma unroll
      for (int t = 0; t < DPL; t++) sc += qr[rr][t] * kv2[u][t];
      scs[rr] = sc;
    }}
    #pragma unroll
    for (int o = 16; o > 0; o /= 2) {{
      #pragma unroll
      for (int rr = 0; rr < R; rr++) scs[rr] += __shfl_xor_sync(0xffffffffu, scs[rr], o);
    }}
    #pragma unroll
    for (int rr = 0; rr < R; rr++) {{
      float sc = scs[rr];
      bool ok = j < seen[rr];
      {mask_term}
      sc = ok ? sc : -INFINITY;
      float nm = fmaxf(mx[rr], sc);
      float corr = umx_w(mx[rr], nm), p = sc == -INFINITY ? 0.f : expf(sc - nm);
      l[rr] = l[rr] * corr + p;
      #pragma unroll
      for (int t = 0; t < DVPL; t++) acc[rr][t] = acc[rr][t] * corr + p * vv2[u][t];
      mx[rr] = nm;
    }}
    }}
   }}
  }}
  #pragma unroll
  for (int rr = 0; rr < R; rr++) {{
    if (lane == 0) {{ sh_m[warp][rr] = mx[rr]; sh_l[warp][rr] = l[rr]; }}
    #pragma unroll
    for (int t = 0; t < DVPL; t++) {{
      int c = lane + 32 * t;
      if (c < DV) sh_acc[warp][rr][c] = acc[rr][t];
    }}
  }}
  __syncthreads();
  for (int idx = threadIdx.x; idx < R * DV; idx += blockDim.x) {{
    int rr = idx / DV, c = idx % DV;
    if (!live[rr]) continue;
    float M = -INFINITY;
    #pragma unroll
    for (int w = 0; w < WARPS; w++) M = fmaxf(M, sh_m[w][rr]);
    float L = 0.f, A = 0.f;
    #pragma unroll
    for (int w = 0; w < WARPS; w++) {{
      float wt = umx_w(sh_m[w][rr], M);
      L += sh_l[w][rr] * wt;
      A += sh_acc[w][rr][c] * wt;
    }}
    long long row = hrow[rr];
{finish}  }}
}}
"#,
        lq_ = load(a.q, "qp[c]", "float"),
        lk_ = load(a.k, "kp[c]", "float"),
        lv_ = load(a.v, "vp[c]", "float"),
        seen = if a.causal {
            "min(lk, max(0LL, i + lk - LQ + 1))"
        } else {
            "lk"
        },
        defines = index_defines(&a.shape),
        index = index_source(""),
        finish = finish_source(&sink_load, a.out, false),
        merge = merge_source(a, &sink_load, false),
    )
}

/// How a decoding attention launch divides its work: `r` query rows a block (`row_blocks`
/// blocks for the rows of one key head), and the keys in `splits` splits of `chunk` keys.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Blocks {
    r: usize,
    row_blocks: usize,
    chunk: usize,
    splits: usize,
}

/// Splits of `lk` keys for `base` blocks of rows, aiming at `per_sm` blocks an SM, each over
/// at least 32 keys (at most 256 splits).
fn split_keys(lk: usize, base: usize, per_sm: usize, sm_count: usize) -> usize {
    (per_sm * sm_count)
        .div_ceil(base.max(1))
        .clamp(1, lk.div_ceil(32).max(1))
        .min(256)
}

/// The general kernel's [`Blocks`]: [`ATTN_ROWS`] rows a block and four blocks an SM (a warp
/// keeps only [`GENERAL_KEYS`] keys in flight, so long splits wait on memory: one split of
/// 1152 keys took 210 us in a decoding step, 36 splits 17 us).
fn general_blocks(rows_per_kh: usize, heads: usize, lk: usize, sm_count: usize) -> Blocks {
    let r = rows_per_kh.clamp(1, ATTN_ROWS);
    let row_blocks = rows_per_kh.div_ceil(r);
    let splits = split_keys(lk, heads * row_blocks, 4, sm_count);
    let chunk = lk.div_ceil(splits).max(1);
    Blocks {
        r,
        row_blocks,
        chunk,
        splits: lk.div_ceil(chunk).max(1),
    }
}

/// Keys each lane of the vectorised kernel keeps in flight: fewer when the rows' registers
/// are many.
fn vector_kif(r: usize, vec: usize) -> usize {
    if r * vec >= 64 { 2 } else { 4 }
}

/// The vectorised kernel's [`Blocks`] for `heads` key heads (times the batch) of
/// `rows_per_kh` query rows each, `lk` keys of head dim `d` in `vec`-element vectors: two
/// blocks an SM, and of 4, 2 or 1 rows a block the one whose blocks take the fewest passes
/// over their keys (a pass: each of the block's lane groups summing [`vector_kif`] keys),
/// then, where the keys are split, the fewest rows. A split longer than a pass is cut to
/// whole passes, so that no pass runs with lanes idle. A pass's instruction chain is longer
/// the more rows it serves: a TinyLlama decoding step (32 query heads on 4 key heads, 1152
/// keys of D 64: one pass a block either way) takes 2 rows a block and splits of 64 keys,
/// 0.813 -> 0.786 ms a step on the H200 (before: 4 rows, splits of 35 keys), where longer
/// rows of keys (4096 keys of D 128, 32 heads on 8: 3 passes of 4 rows, or 7 of 2) keep 4.
fn vector_blocks(
    rows_per_kh: usize,
    heads: usize,
    lk: usize,
    d: usize,
    vec: usize,
    sm_count: usize,
) -> Blocks {
    // The passes a block takes with `r` rows a block, and the division.
    let plan = |r: usize| {
        let row_blocks = rows_per_kh.div_ceil(r);
        let splits = split_keys(lk, heads * row_blocks, 2, sm_count);
        let mut chunk = lk.div_ceil(splits).max(1);
        let pass = VECTOR_WARPS * (32 / (d / vec)) * vector_kif(r, vec);
        if chunk > pass && lk.div_ceil(chunk / pass * pass) <= 256 {
            chunk = chunk / pass * pass;
        }
        let blocks = Blocks {
            r,
            row_blocks,
            chunk,
            splits: lk.div_ceil(chunk).max(1),
        };
        (chunk.div_ceil(pass), blocks)
    };
    let mut r = rows_per_kh.clamp(1, VECTOR_ROWS);
    let mut best = plan(r);
    while r > 1 {
        r /= 2;
        let (passes, blocks) = plan(r);
        // A tie takes the fewer rows where the keys are split (where the rows alone fill
        // the card, fewer rows a block only read the keys more often).
        if passes < best.0 || (passes == best.0 && blocks.splits > 1) {
            best = (passes, blocks);
        }
    }
    best.1
}

/// Warps of a decoding block: more hide more latency; the block's partial sums must fit
/// shared memory.
fn warps_for(vec: Option<usize>, dv: usize) -> usize {
    match vec {
        Some(_) => VECTOR_WARPS,
        None if dv <= 128 => 8,
        None => ATTN_WARPS,
    }
}

/// Warps of a block of the vectorised decoding kernel.
const VECTOR_WARPS: usize = 4;
/// The most query rows a block of the vectorised decoding kernel serves ([`vector_blocks`]
/// takes 4, 2 or 1): each lane holds a vector of every row's query and sums (eight rows of
/// bfloat16 took all 255 registers and spilled).
const VECTOR_ROWS: usize = 4;

/// The elements of one 16-byte vector when queries, keys and values share a dtype, their
/// head dims are equal and split over a power of two of lanes in 16-byte vectors, and every
/// row starts 16-byte aligned: the vectorised decoding kernel's case.
fn vector_width(q: &ArrayData, k: &ArrayData, v: &ArrayData) -> Result<Option<usize>> {
    let dt = q.dtype;
    if k.dtype != dt
        || v.dtype != dt
        || !matches!(dt, Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16)
    {
        return Ok(None);
    }
    let (d, dv) = (q.shape[3], v.shape[3]);
    let vec = 16 / dt.size();
    if d != dv || d % vec != 0 || !(d / vec).is_power_of_two() || d / vec > 32 {
        return Ok(None);
    }
    for a in [q, k, v] {
        let p = input_ptr(a)?;
        let bytes = |s: isize| (s * dt.size() as isize) % 16 == 0;
        if p % 16 != 0 || !a.strides[..3].iter().all(|&s| bytes(s)) {
            return Ok(None);
        }
    }
    Ok(Some(vec))
}

/// What a decoding kernel's source depends on (its `Debug` form is its cache key).
#[derive(Debug)]
struct AttentionKernel {
    q: Dtype,
    k: Dtype,
    v: Dtype,
    out: Dtype,
    /// The mask's dtype, where there is one.
    mask: Option<Dtype>,
    /// The sinks' dtype (whether there are sinks is the kernel's parameter).
    sinks: Dtype,
    /// Query rows a block.
    r: usize,
    d: usize,
    dv: usize,
    warps: usize,
    causal: bool,
    /// The elements of a 16-byte vector, for the vectorised kernel ([`vector_width`]).
    vec: Option<usize>,
    shape: Heads,
    /// Splits the merge kernel reads at once ([`merge_width`]).
    merge_width: usize,
    /// Whether the vectorised kernel asks its key and value rows into L2 before it waits for
    /// the kernel before (keys of earlier steps sit in memory, not in L2, behind a step's
    /// weights): a TinyLlama decoding step 0.992 -> 0.981 ms on an H100. Off with
    /// `UMX_ATTN_PREFETCH=0`.
    prefetch: bool,
}

impl AttentionKernel {
    /// The kernel's source (with the merge kernel's).
    fn source(&self) -> String {
        match self.vec {
            Some(vec) => vector_source(self, vec),
            None => general_source(self),
        }
    }
}

/// The decoding attention kernel for 16-byte rows (see [`vector_width`]), with the same
/// parameters as the general one: a key row is split over `d / vec` lanes, one 16-byte vector
/// each, so a warp reads `32 / (d / vec)` keys per load and each lane keeps `KIF` keys' loads
/// in flight; the scores reduce over the key's lanes only, and one running maximum covers a
/// step's keys (one rescaling a step, not one a key). The lane groups' partial sums meet in
/// shared memory. Its dot products and weighted sums are written as fused multiply-adds
/// (`fmaf`: umx compiles kernels with `--fmad=false`, so nothing is contracted unless the
/// source says so): fewer instructions in a kernel whose time is its warps' instruction
/// chains (a TinyLlama decoding step, with the matrix-vector kernel's, 1.120 -> 1.106 ms on
/// the H100).
fn vector_source(a: &AttentionKernel, vec: usize) -> String {
    let t = storage_type(a.q).unwrap_or("void");
    let os = storage_type(a.out).unwrap_or("void");
    let ms = a
        .mask
        .map_or("float", |m| storage_type(m).unwrap_or("void"));
    let ss = storage_type(a.sinks).unwrap_or("void");
    let unpack = match a.q {
        Dtype::Bfloat16 => {
            "const unsigned int* w = (const unsigned int*)&x;\n  #pragma unroll\n  for (int i = 0; i < 4; i++) { f[2 * i] = __uint_as_float(w[i] << 16); f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u); }"
        }
        Dtype::Float16 => {
            "const unsigned int* w = (const unsigned int*)&x;\n  #pragma unroll\n  for (int i = 0; i < 4; i++) { f[2 * i] = umx_h2f((unsigned short)(w[i] & 0xffffu)); f[2 * i + 1] = umx_h2f((unsigned short)(w[i] >> 16)); }"
        }
        _ => {
            "f[0] = __uint_as_float(x.x); f[1] = __uint_as_float(x.y); f[2] = __uint_as_float(x.z); f[3] = __uint_as_float(x.w);"
        }
    };
    // A float mask adds natural logits: base 2 like the scores. The mask's values are
    // loaded with the keys (`mn`, a batch ahead; `mc`, this batch's), not after the scores.
    let mask_term = match a.mask {
        Some(Dtype::Bool) => "ok = ok && (mc[u][rr] != 0);".to_string(),
        Some(md) => format!(
            "if (ok) s += {} * 1.4426950408889634f;",
            load(md, "mc[u][rr]", "float")
        ),
        None => String::new(),
    };
    let (mask_decl, mask_load, mask_zero, mask_copy) = if a.mask.is_some() {
        (
            format!("\n  {ms} mn[KIF][R];"),
            " _Pragma(\"unroll\") for (int rr = 0; rr < R; rr++) mn[u][rr] = mrow[rr][(j0 + j) * ms3];",
            " _Pragma(\"unroll\") for (int rr = 0; rr < R; rr++) mn[u][rr] = 0;",
            format!(
                "\n    {ms} mc[KIF][R];\n    #pragma unroll\n    for (int u = 0; u < KIF; u++)\n      \
                 #pragma unroll\n      for (int rr = 0; rr < R; rr++) mc[u][rr] = mn[u][rr];"
            ),
        )
    } else {
        (String::new(), "", "", String::new())
    };
    let kif = vector_kif(a.r, vec);
    let sink_load = load(a.sinks, "sinks[h]", "float");
    let merge = merge_source(a, &sink_load, true);
    let defines = index_defines(&a.shape);
    let index = index_source(if a.prefetch { PREFETCH_SOURCE } else { "" });
    let seen = if a.causal {
        "min(lk, max(0LL, i + lk - LQ + 1))"
    } else {
        "lk"
    };
    let finish = finish_source(&sink_load, a.out, true);
    let (r, d, warps) = (a.r, a.d, a.warps);
    format!(
        r#"{HEADER}{INF}
#define R {r}
#define D {d}
#define DV {d}
#define VEC {vec}
#define LPK (D / VEC)
#define GPW (32 / LPK)
#define WARPS {warps}
#define G (WARPS * GPW)
#define KIF {kif}
{defines}
struct umx_s4 {{ long long s[4]; }};
UMX_FN float umx_ex2(float x) {{ float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }}
/* Merges running (m, l) pairs of base-2 logits: the weight of a part with maximum `m`
   against `M`. */
UMX_FN float umx_w(float m, float M) {{ return m == -INFINITY ? 0.f : umx_ex2(m - M); }}
struct alignas(16) umx_u4 {{ unsigned int x, y, z, w; }};
UMX_FN void umx_unpack(umx_u4 x, float* f) {{
  {unpack}
}}
{merge}
extern "C" __global__ void __launch_bounds__(WARPS * 32) umx_attn({os}* out, float* part, const {t}* q, const {t}* k,
    const {t}* v, const {ms}* mk, const {ss}* sinks, int hq, int lq,
    long long lk, int row_blocks, long long chunk, int splits, float scale, long long ms3,
    umx_s4 qst, umx_s4 kst, umx_s4 vst, umx_s4 mst) {{
  __shared__ float sh_m[G][R], sh_l[G][R], sh_acc[G][R][D];
{index}
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int sub = lane % LPK, gid = warp * GPW + lane / LPK;
  /* The rows' bounds first (no loads), then the split's first keys and values, then the
     queries: both kinds of load in flight at once after the wait. */
  float qr[R][VEC];
  long long seen[R];
  const {ms}* mrow[R];
  const {t}* qrow[R];
  long long jend = 0;
  #pragma unroll
  for (int rr = 0; rr < R; rr++) {{
    int g = rb * R + rr;
    bool live = g < GROUP * LQ;
    int h = kh * GROUP + (live ? QHEAD(g) : 0), i = live ? QPOS(g) : 0;
    qrow[rr] = q + bi * qst.s[0] + h * qst.s[1] + i * qst.s[2] + sub * VEC;
    seen[rr] = live ? {seen} : 0;
    if (seen[rr] > jend) jend = seen[rr];
    mrow[rr] = mk ? mk + bi * mst.s[0] + h * mst.s[1] + i * mst.s[2] : 0;
  }}
  /* Keys of this split counted from its first (32-bit offsets in the loop). */
  long long j0 = (long long)split * chunk, j1 = min(jend, j0 + chunk);
  int n = (int)max(0LL, j1 - j0), lim[R];
  const {t}* kb = k + bi * kst.s[0] + kh * kst.s[1] + j0 * kst.s[2] + sub * VEC;
  const {t}* vb = v + bi * vst.s[0] + kh * vst.s[1] + j0 * vst.s[2] + sub * VEC;
  /* A batch's loads: KIF keys and values a lane, zeros past the split's end. */
  umx_u4 kn[KIF], vn[KIF];{mask_decl}
#define UMX_LOAD_KV(jb) \
  _Pragma("unroll") for (int u = 0; u < KIF; u++) {{ \
    int j = (jb) + gid + u * G; \
    if (j < n) {{ kn[u] = *(const umx_u4*)(kb + j * kst.s[2]); vn[u] = *(const umx_u4*)(vb + j * vst.s[2]);{mask_load} }} \
    else {{ kn[u] = umx_u4{{0u, 0u, 0u, 0u}}; vn[u] = kn[u];{mask_zero} }} \
  }}
  UMX_LOAD_KV(0)
  #pragma unroll
  for (int rr = 0; rr < R; rr++) {{
    umx_unpack(*(const umx_u4*)qrow[rr], qr[rr]);
    /* Scores as base-2 logits: exp(x) = 2^(x log2 e). */
    #pragma unroll
    for (int e = 0; e < VEC; e++) qr[rr][e] *= scale * 1.4426950408889634f;
  }}
  float mx[R], l[R], acc[R][VEC];
  #pragma unroll
  for (int rr = 0; rr < R; rr++) {{
    lim[rr] = (int)max(0LL, min(seen[rr], j1) - j0);
    mx[rr] = -INFINITY; l[rr] = 0.f;
    #pragma unroll
    for (int e = 0; e < VEC; e++) acc[rr][e] = 0.f;
  }}
  for (int jb = 0; jb < n; jb += G * KIF) {{
    umx_u4 kv[KIF], vv[KIF];
    #pragma unroll
    for (int u = 0; u < KIF; u++) {{ kv[u] = kn[u]; vv[u] = vn[u]; }}{mask_copy}
    /* The next batch's loads in flight while this one is summed. */
    if (jb + G * KIF < n) {{ UMX_LOAD_KV(jb + G * KIF) }}
    /* Every lane takes part in the shuffles (keys past the end score zero, then -inf). */
    float sc[KIF][R];
    #pragma unroll
    for (int u = 0; u < KIF; u++) {{
      float kf[VEC];
      umx_unpack(kv[u], kf);
      #pragma unroll
      for (int rr = 0; rr < R; rr++) {{
        float s = 0.f;
        #pragma unroll
        for (int e = 0; e < VEC; e++) s = fmaf(qr[rr][e], kf[e], s);
        sc[u][rr] = s;
      }}
    }}
    #pragma unroll
    for (int o = LPK / 2; o > 0; o /= 2) {{
      #pragma unroll
      for (int u = 0; u < KIF; u++) {{
        #pragma unroll
        for (int rr = 0; rr < R; rr++) sc[u][rr] += __shfl_xor_sync(0xffffffffu, sc[u][rr], o);
      }}
    }}
    #pragma unroll
    for (int rr = 0; rr < R; rr++) {{
      float nm = mx[rr];
      #pragma unroll
      for (int u = 0; u < KIF; u++) {{
        int j = jb + gid + u * G;
        float s = sc[u][rr];
        bool ok = j < lim[rr];
        {mask_term}
        sc[u][rr] = ok ? s : -INFINITY;
        nm = fmaxf(nm, sc[u][rr]);
      }}
      /* With every score so far masked, any finite reference keeps the weights zero. */
      float ref = nm == -INFINITY ? 0.f : nm;
      float corr = umx_ex2(mx[rr] - ref);
      l[rr] *= corr;
      #pragma unroll
      for (int e = 0; e < VEC; e++) acc[rr][e] *= corr;
      #pragma unroll
      for (int u = 0; u < KIF; u++) {{
        float p = umx_ex2(sc[u][rr] - ref);
        sc[u][rr] = p;
        l[rr] += p;
      }}
      mx[rr] = nm;
    }}
    #pragma unroll
    for (int u = 0; u < KIF; u++) {{
      float vf[VEC];
      umx_unpack(vv[u], vf);
      #pragma unroll
      for (int rr = 0; rr < R; rr++) {{
        #pragma unroll
        for (int e = 0; e < VEC; e++) acc[rr][e] = fmaf(sc[u][rr], vf[e], acc[rr][e]);
      }}
    }}
  }}
  #pragma unroll
  for (int rr = 0; rr < R; rr++) {{
    if (sub == 0) {{ sh_m[gid][rr] = mx[rr]; sh_l[gid][rr] = l[rr]; }}
    #pragma unroll
    for (int e = 0; e < VEC; e++) sh_acc[gid][rr][sub * VEC + e] = acc[rr][e];
  }}
  __syncthreads();
  for (int idx = threadIdx.x; idx < R * D; idx += blockDim.x) {{
    int rr = idx / D, c = idx % D;
    int g = rb * R + rr;
    if (g >= GROUP * LQ) continue;
    long long row = ((long long)bi * hq + kh * GROUP + QHEAD(g)) * LQ + QPOS(g);
    float M = -INFINITY;
    #pragma unroll
    for (int w = 0; w < G; w++) M = fmaxf(M, sh_m[w][rr]);
    float L = 0.f, A = 0.f;
    #pragma unroll
    for (int w = 0; w < G; w++) {{
      float wt = umx_w(sh_m[w][rr], M);
      L = fmaf(sh_l[w][rr], wt, L);
      A = fmaf(sh_acc[w][rr][c], wt, A);
    }}
{finish}  }}
}}
"#
    )
}

/// What the decoding kernels' indexing takes as constants: the key heads, the query heads a
/// key head serves, and whether one query a head is decoded (query length 1). All are fixed
/// for a model (query lengths other than 1 share one kernel), so the kernel divides by
/// constants (multiplications) where it would otherwise divide by parameters.
#[derive(Clone, Copy, Debug)]
struct Heads {
    hk: usize,
    group: usize,
    one_query: bool,
}

/// The `#define`s of [`Heads`] for the decoding kernels' sources: `HK`, `GROUP`, `LQ` (the
/// query length, 1 or the parameter `lq`), `NRB` (row blocks a key head) and `QHEAD(g)` /
/// `QPOS(g)` (the head within the group and the query position of a key head's row `g`).
fn index_defines(h: &Heads) -> String {
    let Heads {
        hk,
        group,
        one_query,
    } = *h;
    let lq = if one_query {
        "#define LQ 1\n#define NRB ((GROUP + R - 1) / R)\n#define QHEAD(g) (g)\n#define QPOS(g) 0"
    } else {
        "#define LQ lq\n#define NRB row_blocks\n#define QHEAD(g) ((g) / lq)\n#define QPOS(g) ((g) % lq)"
    };
    format!("#define HK {hk}\n#define GROUP {group}\n{lq}")
}

/// The start of both decoding kernels: the block's key split `split`, row block `rb`, key
/// head `kh` and batch index `bi`, in 32-bit arithmetic (a 64-bit division is a long software
/// routine), then `before_wait` (work that needs nothing from the kernel before), then the
/// wait for the kernel before (with programmatic launches, everything above it may overlap
/// that kernel's end).
fn index_source(before_wait: &str) -> String {
    format!(
        r#"  unsigned blk = blockIdx.x;
  int split = (int)(blk % (unsigned)splits); blk /= (unsigned)splits;
  int rb = (int)(blk % NRB); blk /= NRB;
  int kh = (int)(blk % HK), bi = (int)(blk / HK);
{before_wait}  {}"#,
        crate::compile::pdl_wait_source(crate::compile::pdl_trigger_after())
    )
}

/// What the vectorised kernel does before its wait with `prefetch` (see
/// [`AttentionKernel::prefetch`]): its block's key and value rows asked into L2, a 128-byte
/// line a thread at a time (a hint only, so rows the kernel before is writing come out the
/// same).
const PREFETCH_SOURCE: &str = r#"  {
    long long p0 = (long long)split * chunk;
    int np = (int)max(0LL, min(lk, p0 + chunk) - p0);
    const int lines = (D * (int)sizeof(*k) + 127) / 128;
    for (int t = threadIdx.x; t < 2 * np * lines; t += blockDim.x) {
      int j = t / (2 * lines), rest = t % (2 * lines), line = rest / 2;
      const char* p = (rest % 2)
          ? (const char*)(v + bi * vst.s[0] + kh * vst.s[1] + (p0 + j) * vst.s[2])
          : (const char*)(k + bi * kst.s[0] + kh * kst.s[1] + (p0 + j) * kst.s[2]);
      asm volatile("prefetch.L2 [%0];" ::"l"(p + line * 128));
    }
  }
"#;

/// The end of both decoding kernels, for output column `c` of row `row` once the block's
/// running maximum `M`, weight sum `L` and weighted value `A` are combined: with one split,
/// the sink joins and the output is written; else the partial result goes to `part` for the
/// merge. With `log2`, `M` is a base-2 logit (the vectorised kernel's).
fn finish_source(sink_load: &str, out: Dtype, log2: bool) -> String {
    let store_y = store(out, "y");
    let (exp, sink_scale) = if log2 {
        ("umx_ex2", " * 1.4426950408889634f")
    } else {
        ("expf", "")
    };
    format!(
        r#"    if (splits == 1) {{
      if (sinks) {{
        int h = (int)((unsigned)row / (unsigned)LQ % (unsigned)hq);
        float sk = {sink_load}{sink_scale};
        float M2 = fmaxf(M, sk);
        float wt = umx_w(M, M2);
        L = L * wt + {exp}(sk - M2);
        A *= wt;
      }}
      float y = A / L;
      out[row * DV + c] = {store_y};
    }} else {{
      float* pp = part + (row * splits + split) * (DV + 2);
      if (c == 0) {{ pp[0] = M; pp[1] = L; }}
      pp[2 + c] = A;
    }}
"#
    )
}

/// The kernel merging the key splits' partial results of one row (running maximum, weight
/// sum, weighted values): a thread per output column, one pass over the splits `width` at a
/// time with all their loads in flight (one pass for most decoding steps: [`merge_width`]),
/// merged online (each group of splits rescales what came before to its new maximum); then
/// the sink, and the output. With `log2`, the partial maxima are base-2 logits (the
/// vectorised kernel's), and a sink's natural logit is converted.
fn merge_source(a: &AttentionKernel, sink_load: &str, log2: bool) -> String {
    let st = |d: Dtype| storage_type(d).unwrap_or("void");
    let (os, ss, dv, width) = (st(a.out), st(a.sinks), a.dv, a.merge_width);
    let store_y = store(a.out, "y");
    let (exp, sink_scale) = if log2 {
        ("umx_ex2", "1.4426950408889634f")
    } else {
        ("expf", "1.f")
    };
    let wait = crate::compile::pdl_wait_source(crate::compile::pdl_trigger_after());
    format!(
        r#"
/* The weight of a part with maximum `m` against the reference `M` (0 for an empty part). */
UMX_FN float umx_mw(float m, float M) {{ return m == -INFINITY ? 0.f : {exp}(m - M); }}
#define MW {width}
extern "C" __global__ void umx_attn_merge({os}* out, const float* part, const {ss}* sinks,
    long long rows, int hq, int lq, int splits) {{
  const int W = {dv} + 2;
  {wait}
  for (long long row = blockIdx.x; row < rows; row += gridDim.x) {{
    const float* pp = part + row * splits * W;
    for (int c = threadIdx.x; c < {dv}; c += blockDim.x) {{
      float M = -INFINITY, L = 0.f, A = 0.f;
      for (int s0 = 0; s0 < splits; s0 += MW) {{
        float mv[MW], lv[MW], av[MW];
#pragma unroll
        for (int u = 0; u < MW; u++) {{
          bool in = s0 + u < splits;
          const float* ps = pp + (s0 + u) * W;
          mv[u] = in ? ps[0] : -INFINITY;
          lv[u] = in ? ps[1] : 0.f;
          av[u] = in ? ps[2 + c] : 0.f;
        }}
        float nM = M;
#pragma unroll
        for (int u = 0; u < MW; u++) nM = fmaxf(nM, mv[u]);
        float ref = nM == -INFINITY ? 0.f : nM;
        float k = umx_mw(M, ref);
        L *= k;
        A *= k;
#pragma unroll
        for (int u = 0; u < MW; u++) {{
          float w = umx_mw(mv[u], ref);
          L = fmaf(lv[u], w, L);
          A = fmaf(av[u], w, A);
        }}
        M = nM;
      }}
      if (sinks) {{
        int h = (int)((unsigned)row / (unsigned)lq % (unsigned)hq);
        float sk = {sink_load} * {sink_scale};
        float nM = fmaxf(M, sk);
        float k = umx_mw(M, nM);
        L = L * k + {exp}(sk - nM);
        A *= k;
      }}
      float y = A / L;
      out[row * {dv} + c] = {store_y};
    }}
  }}
}}
"#
    )
}

/// Whether [`AttentionKernel::prefetch`] is on (unless `UMX_ATTN_PREFETCH=0`).
fn prefetch_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !std::env::var("UMX_ATTN_PREFETCH").is_ok_and(|v| v == "0"))
}

/// Splits the merge kernel reads at once for `splits` (see [`merge_source`]): 16, 32 or 48
/// (three variants of a module at most; 48 covers the 33 splits of a decoding step that fills
/// an H100 with eight row blocks).
fn merge_width(splits: usize) -> usize {
    match splits {
        0..=16 => 16,
        17..=32 => 32,
        _ => 48,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form of the decoding kernels' source has balanced braces and parentheses and
    /// names both kernels; with `UMX_DUMP_ATTENTION_SOURCES=dir` they are also written there
    /// (to compile them with NVRTC where no GPU is at hand).
    #[test]
    fn generated_sources_are_well_formed() {
        let dump = std::env::var("UMX_DUMP_ATTENTION_SOURCES").ok();
        let dtypes = [Dtype::Float32, Dtype::Float16, Dtype::Bfloat16];
        for (i, (dtype, mask, causal, one_query, vec, d)) in dtypes
            .iter()
            .flat_map(|&t| {
                [
                    (t, None, false, true, Some(16 / t.size()), 64),
                    (t, Some(Dtype::Bool), true, false, Some(16 / t.size()), 128),
                    (t, Some(t), false, false, None, 96),
                    (t, None, true, true, None, 256),
                    (t, Some(t), false, true, Some(16 / t.size()), 64),
                ]
            })
            .enumerate()
        {
            let kernel = AttentionKernel {
                q: dtype,
                k: dtype,
                v: dtype,
                out: dtype,
                mask,
                sinks: Dtype::Float32,
                r: if vec.is_some() {
                    [VECTOR_ROWS, 2, 1][i % 3]
                } else {
                    ATTN_ROWS
                },
                d,
                dv: d,
                warps: warps_for(vec, d),
                causal,
                vec,
                shape: Heads {
                    hk: 4,
                    group: 8,
                    one_query,
                },
                merge_width: merge_width(8 * i + 1),
                prefetch: vec.is_some() && i % 2 == 0,
            };
            let src = kernel.source();
            let count = |c: char| src.chars().filter(|&x| x == c).count();
            assert_eq!(count('{'), count('}'), "{kernel:?}");
            assert_eq!(count('('), count(')'), "{kernel:?}");
            assert!(src.contains("void __launch_bounds__(WARPS * 32) umx_attn("));
            assert!(src.contains("void umx_attn_merge("));
            if let Some(dir) = &dump {
                std::fs::write(format!("{dir}/attention_{i}.cu"), &src).unwrap();
            }
        }
    }

    /// The vectorised kernel's division of the work: the TinyLlama decoding step's shape
    /// takes 2 rows a block and one full pass a block; longer key rows keep 4 rows and whole
    /// passes; rows that fill the card alone keep 4 rows and one split; and for many shapes
    /// the splits cover the keys exactly once, within the bounds.
    #[test]
    fn vector_blocks_divide_the_keys() {
        // 32 query heads on 4 key heads, 1152 keys of D 64 (bfloat16: 8-element vectors).
        let step = vector_blocks(8, 4, 1152, 64, 8, 132);
        assert_eq!(
            step,
            Blocks {
                r: 2,
                row_blocks: 4,
                chunk: 64,
                splits: 18
            }
        );
        // 32 on 8 heads, 4096 keys of D 128: a pass is 32 keys.
        let long = vector_blocks(4, 8, 4096, 128, 8, 132);
        assert_eq!((long.r, long.chunk, long.splits), (4, 96, 43));
        // 8 heads a key head times 100 queries: rows enough for the card, no split.
        let rows = vector_blocks(800, 4, 1152, 64, 8, 132);
        assert_eq!((rows.r, rows.splits, rows.chunk), (4, 1, 1152));
        for rows_per_kh in [1, 2, 3, 4, 5, 8, 16, 64] {
            for heads in [1, 2, 8, 32] {
                for lk in [1, 2, 31, 33, 64, 100, 1152, 4097, 100_000] {
                    for (d, vec) in [(64, 8), (128, 8), (256, 8), (64, 4), (32, 8)] {
                        let b = vector_blocks(rows_per_kh, heads, lk, d, vec, 132);
                        let what = format!("{rows_per_kh} {heads} {lk} {d} {vec}: {b:?}");
                        assert!((1..=VECTOR_ROWS.min(rows_per_kh)).contains(&b.r), "{what}");
                        assert_eq!(b.row_blocks, rows_per_kh.div_ceil(b.r), "{what}");
                        assert!(b.chunk * b.splits >= lk, "{what}");
                        assert!((b.splits - 1) * b.chunk < lk, "{what}");
                        assert!(b.splits <= 256, "{what}");
                    }
                }
            }
        }
    }
}
