"""Tuning harness for the matrix-vector kernel of a decoding step (crates/umx-cuda/src/kernels/
gemv.rs): TinyLlama's products (bfloat16, one row, 22 layers of distinct weights) replayed as a
CUDA graph with programmatic dependent launch, as umx runs them, for each kernel variant in
`variants` (umx's kernel C with its batch of U vectors a lane, its warps, their split over a
column and its blocks an SM as defines); each product's chain alone and the whole step's
chain. On the GPU machine:

    python3 bench/gemv_harness.py
    TRACE=1 python3 bench/gemv_harness.py   # when each T2 kernel's blocks start, wait, end
    MLP=1 python3 bench/gemv_harness.py     # gate/up and down as one kernel (mlp_experiment)

A chain of products alone is not a decoding step: variants that won here lost in `llm --step`
(the streamed T2 form for the down projection, 2026-11-28; more vectors a lane for the short
products, 2026-11-27): take a winner into umx and time the step before keeping it. Before
2026-11-28 the harness ran with programmatic dependent launch off (see `launch`).
"""
import ctypes
import os
import cupy as cp
import numpy as np

HID, INTER, QKV, VOCAB, LAYERS = 2048, 5632, 2560, 32000, 22

COMMON = r"""
typedef unsigned short bf;
__device__ __forceinline__ float f(bf h) { return __uint_as_float(((unsigned)h) << 16); }
__device__ __forceinline__ bf b(float x) { unsigned short h; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(x)); return h; }
__device__ __forceinline__ void pdl_wait() {
  asm volatile("griddepcontrol.launch_dependents;");
  asm volatile("griddepcontrol.wait;" ::: "memory");
}
typedef uint4 vec_t;
__device__ __forceinline__ float dot8(vec_t w, vec_t x) {
  const bf* we = (const bf*)&w; const bf* xe = (const bf*)&x;
  float s = 0.f;
  #pragma unroll
  for (int e = 0; e < 8; e++) s += f(xe[e]) * f(we[e]);
  return s;
}
"""

# C: umx's kernel (gemv.rs, one row, no addend): each warp owns a column (or SPLIT warps share
# one), its loads in guarded batches of U vectors a lane (every load of a batch issued before
# any is used, the row's tail included), WARPS warps a block. (The kernel before 2026-11-27
# 17:00, and a persistent grid streaming each warp's columns, were variants A and B here: their
# figures are in bench/RESULTS.md, their code in git history.)
C = COMMON + r"""
#ifndef MINB
#define MINB 1
#endif
extern "C" __global__ void __launch_bounds__(WARPS * 32, MINB) gemv(bf* y, const bf* x, const bf* w,
    long long n_cols, long long kv, int split, int early) {
  __shared__ float part[WARPS];
  int lane = threadIdx.x % 32, wb = threadIdx.x / 32;
  int group = wb / split, share = wb % split;
  int per_block = WARPS / split;
  int step = split * 32;
  const vec_t* xs = (const vec_t*)x;
  vec_t buf[U];
  long long n_first = (long long)blockIdx.x * per_block + group;
  bool have = early && n_first < n_cols;
  if (have) {
    const vec_t* wr = (const vec_t*)w + n_first * kv;
    #pragma unroll
    for (int u = 0; u < U; u++) {
      long long j = share * 32 + lane + (long long)step * u;
      if (j < kv) buf[u] = __ldg(&wr[j]);
    }
  }
  pdl_wait();
  for (long long base = (long long)blockIdx.x * per_block; base < n_cols;
       base += (long long)gridDim.x * per_block) {
    long long n = base + group;
    bool live = n < n_cols;
    const vec_t* wr = (const vec_t*)w + (live ? n : 0) * kv;
    float acc = 0.f;
    for (long long j0 = share * 32 + lane; j0 < kv + 0 * lane; j0 += (long long)U * step) {
      if (!have) {
        #pragma unroll
        for (int u = 0; u < U; u++) {
          long long j = j0 + (long long)step * u;
          if (j < kv) buf[u] = __ldg(&wr[j]);
        }
      }
      have = false;
      #pragma unroll
      for (int u = 0; u < U; u++) {
        long long j = j0 + (long long)step * u;
        if (j < kv) acc += dot8(buf[u], xs[j]);
      }
    }
    have = false;
    for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (split == 1) {
      if (lane == 0 && live) y[n] = b(acc);
    } else {
      if (lane == 0) part[wb] = acc;
      __syncthreads();
      if (share == 0 && lane == 0 && live) {
        float s = 0.f;
        for (int q = 0; q < split; q++) s += part[group * split + q];
        y[n] = b(s);
      }
      __syncthreads();
    }
  }
}
"""

libcuda = ctypes.CDLL("libcuda.so.1")


class Attr(ctypes.Structure):
    # The value is a union of 64 bytes; as `c_char * 64` a field reads back as a copy (bytes),
    # and writing into that copy left the attribute 0: before 2026-11-28 this harness ran with
    # programmatic dependent launch off (bench/pdl_probe.cu).
    _fields_ = [("id", ctypes.c_int), ("pad", ctypes.c_int), ("value", ctypes.c_int * 16)]


class Config(ctypes.Structure):
    _fields_ = [("gx", ctypes.c_uint), ("gy", ctypes.c_uint), ("gz", ctypes.c_uint),
                ("bx", ctypes.c_uint), ("by", ctypes.c_uint), ("bz", ctypes.c_uint),
                ("smem", ctypes.c_uint), ("stream", ctypes.c_void_p),
                ("attrs", ctypes.POINTER(Attr)), ("nattrs", ctypes.c_uint)]


def launch(fn, grid, block, args, stream, pdl=True, smem=0):
    attr = Attr()
    attr.id = 6  # CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
    attr.value[0] = 1
    cfg = Config(grid, 1, 1, block, 1, 1, smem, stream.ptr, ctypes.pointer(attr), 1 if pdl else 0)
    vals = []
    for a in args:
        if isinstance(a, cp.ndarray):
            vals.append(ctypes.c_void_p(a.data.ptr))
        elif isinstance(a, np.int64):
            vals.append(ctypes.c_longlong(int(a)))
        elif isinstance(a, np.int32):
            vals.append(ctypes.c_int(int(a)))
        elif isinstance(a, np.uint64):
            vals.append(ctypes.c_uint64(int(a)))
        else:
            raise TypeError(a)
    params = (ctypes.c_void_p * len(vals))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in vals])
    r = libcuda.cuLaunchKernelEx(ctypes.byref(cfg), ctypes.c_void_p(fn_ptr(fn)), params, None)
    if r != 0:
        raise RuntimeError(f"cuLaunchKernelEx: {r}")


def fn_ptr(fn):
    for path in ("ptr", "kernel.ptr", "_kernel.ptr"):
        o = fn
        try:
            for a in path.split("."):
                o = getattr(o, a)
            return o
        except AttributeError:
            pass
    raise SystemExit(f"no function handle in {dir(fn)}")


SM = cp.cuda.Device().attributes["MultiProcessorCount"]
rng = cp.random.default_rng(0)


def to_bf16(a):
    return (a.astype(cp.float32).view(cp.uint32) >> 16).astype(cp.uint16)


def from_bf16(a):
    return (a.astype(cp.uint32) << 16).view(cp.float32)


def weights(n, k):
    return to_bf16(rng.standard_normal((n, k), dtype=cp.float32) * 0.02)


layers = [dict(qkv=weights(QKV, HID), o=weights(HID, HID), gu=weights(2 * INTER, HID),
               d=weights(HID, INTER)) for _ in range(LAYERS)]
head = weights(VOCAB, HID)
x = to_bf16(rng.standard_normal(INTER, dtype=cp.float32))
xf = from_bf16(x)
y = cp.zeros(VOCAB, dtype=cp.uint16)


class Variant:
    def __init__(self, name, src, defs="", blocks_per_sm=None, splits=None, warps=4, pdl=True,
                 early=1, carveout=None, fmad=True):
        self.name, self.warps, self.pdl, self.early = name, warps, pdl, early
        # umx compiles every kernel with --fmad=false (compile.rs: no contraction of a * b + c).
        opts = ("-arch=sm_90", "-std=c++17") + (() if fmad else ("--fmad=false",))
        self.fn = cp.RawModule(code=defs + src, options=opts).get_function("gemv")
        if carveout is not None:
            # CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: the L1/shared split (percent
            # shared) its blocks ask of an SM; blocks of kernels asking different splits do not
            # share an SM until it drains.
            r = libcuda.cuFuncSetAttribute(ctypes.c_void_p(fn_ptr(self.fn)), 9, carveout)
            if r != 0:
                raise RuntimeError(f"cuFuncSetAttribute: {r}")
        self.blocks_per_sm = blocks_per_sm
        self.splits = splits
        print(f"  {name}: regs={self.fn.num_regs} local={self.fn.local_size_bytes}", flush=True)

    def __call__(self, w, stream):
        n, k = w.shape
        kv = k // 8
        if self.splits:
            split = self.splits(n, kv)
        else:
            split = 1 if n >= SM * 16 else (2 if kv < 4 * 32 * 4 and kv >= 4 * 32 * 2 else 4)
        per_block = self.warps // split
        blocks = (n + per_block - 1) // per_block
        blocks = min(blocks, SM * (self.blocks_per_sm or 32))
        launch(self.fn, blocks, 32 * self.warps, (y, x, w, np.int64(n), np.int64(kv), np.int32(split),
                                                  np.int32(self.early)), stream, pdl=self.pdl)


class Mixed:
    """A kernel variant for each product, picked by the weight's shape."""

    def __init__(self, name, by_shape, default):
        self.name, self.by_shape, self.default = name, by_shape, default

    def __call__(self, w, stream):
        self.by_shape.get(tuple(w.shape), self.default)(w, stream)


def check(v):
    s = cp.cuda.Stream(non_blocking=True)
    for w in (layers[0]["qkv"], layers[0]["o"], layers[0]["gu"], layers[0]["d"], head):
        n, k = w.shape
        v(w, s)
        s.synchronize()
        ref = from_bf16(w) @ xf[:k]
        got = from_bf16(y[:n])
        err = float(cp.max(cp.abs(got - ref)) / (cp.max(cp.abs(ref)) + 1e-6))
        if err > 1e-2:
            raise SystemExit(f"{v.name}: wrong result for {w.shape}: rel err {err}")


class DriverGraph:
    """A graph captured and launched through the driver API, as umx captures its graphs."""

    def __init__(self, fn):
        self.s = cp.cuda.Stream(non_blocking=True)
        check_cu(libcuda.cuStreamBeginCapture_v2(ctypes.c_void_p(self.s.ptr), 2), "begin capture")  # relaxed
        fn(self.s)
        graph = ctypes.c_void_p()
        check_cu(libcuda.cuStreamEndCapture(ctypes.c_void_p(self.s.ptr), ctypes.byref(graph)), "end capture")
        self.exe = ctypes.c_void_p()
        check_cu(libcuda.cuGraphInstantiateWithFlags(ctypes.byref(self.exe), graph, ctypes.c_ulonglong(0)), "instantiate")

    def launch(self, s):
        check_cu(libcuda.cuGraphLaunch(self.exe, ctypes.c_void_p(s.ptr)), "graph launch")


def check_cu(r, what):
    if r != 0:
        raise RuntimeError(f"{what}: CUresult {r}")


def capture(fn):
    g = DriverGraph(fn)
    return g, g.s


def time_graph(g, s, reps=20):
    g.launch(s)
    s.synchronize()
    e0, e1 = cp.cuda.Event(), cp.cuda.Event()
    e0.record(s)
    for _ in range(reps):
        g.launch(s)
    e1.record(s)
    e1.synchronize()
    return cp.cuda.get_elapsed_time(e0, e1) / reps


def chains(v):
    out = {}
    for key in ("qkv", "o", "gu", "d"):
        out[key] = lambda s, key=key: [v(L[key], s) for L in layers]

    def step(s):
        for L in layers:
            for key in ("qkv", "o", "gu", "d"):
                v(L[key], s)
        v(head, s)
    out["step"] = step
    return out


def nbytes(key):
    if key == "step":
        return sum(w.nbytes for L in layers for w in L.values()) + head.nbytes
    return sum(L[key].nbytes for L in layers)


def a_split(warps):
    """gemv.rs's warps a column before 2026-11-27 21:50: one where the columns fill 16 an SM,
    else two where a lane would have fewer than four vectors of a row, else all of a block's."""
    return lambda n, kv: 1 if n >= SM * 16 else (2 if kv < 4 * 32 * warps and kv >= 4 * 32 * 2 else warps)


def small_split(split):
    """`split` warps a column for the short products (q/k/v: 2560 columns, o: 2048, both of
    2048 inputs), umx's choice for the others."""
    return lambda n, kv: split if kv == HID // 8 and n <= QKV else a_split(4)(n, kv)


# Bulk copies into shared memory completing on an mbarrier (sm_90), for T2.
BULK = r"""
typedef unsigned int u32;
__device__ __forceinline__ u32 saddr(const void* p) { return (u32)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void bar_init(u32 bar, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void bar_wait(u32 bar, u32 parity) {
  u32 ok = 0;
  while (!ok)
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(ok) : "r"(bar), "r"(parity) : "memory");
}
__device__ __forceinline__ void bar_expect(u32 bar, u32 bytes) {
  asm volatile("{ .reg .b64 st; mbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1; }" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bulk_load(u32 dst, const void* src, u32 bytes, u32 bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
               ::"r"(dst), "l"(src), "r"(bytes), "r"(bar) : "memory");
}
"""


# T2: each block streams a contiguous run of weight rows through shared memory with the bulk
# copy engine (STAGES buffers of whole rows), its first chunks issued before the wait for the
# kernel before; a chunk is one row for each group of `split` warps (each warp a share of the
# row, x's matching vectors in its registers or, with XSMEM, in shared memory), so a chunk's
# rows are summed at once; one barrier a chunk frees its buffer and meets the shares. (A first
# form, T, one block of 4 warps an SM summing a chunk's rows one after another, was 60%
# slower; it is in git history.)
T2 = COMMON + BULK + r"""
#define ISSUE(c) do { int s_ = (c) % STAGES; int rows_ = min(rpc, rows_b - (c) * rpc); \
    u32 bytes_ = (u32)rows_ * row_bytes, bar_ = saddr(&full[s_]); bar_expect(bar_, bytes_); \
    bulk_load(saddr(sm + (size_t)s_ * stage_bytes), (const char*)w + (size_t)(c0 + (long long)(c) * rpc) * row_bytes, bytes_, bar_); } while (0)
#ifndef MINB
#define MINB 1
#endif
extern "C" __global__ void __launch_bounds__(WARPS * 32, MINB) gemv(bf* y, const bf* x, const bf* w,
    long long n_cols, long long kv, int split, int early, unsigned long long* trace) {
  unsigned long long t_start; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t_start));
  extern __shared__ __align__(128) unsigned char sm[];
  __shared__ __align__(8) unsigned long long full[STAGES];
  __shared__ float red[2][WARPS];
  int lane = threadIdx.x % 32, wp = threadIdx.x / 32;
  int group = wp / split, share = wp % split, rpc = WARPS / split;
  long long c0 = n_cols * blockIdx.x / gridDim.x, c1 = n_cols * (blockIdx.x + 1) / gridDim.x;
  int rows_b = (int)(c1 - c0);
  int chunks = (rows_b + rpc - 1) / rpc;
  u32 row_bytes = (u32)(kv * 16), stage_bytes = (u32)rpc * row_bytes;
  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; s++) bar_init(saddr(&full[s]), 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  int pre = min(STAGES, chunks);
  if (threadIdx.x == 0 && early) for (int c = 0; c < pre; c++) ISSUE(c);
  pdl_wait();
  unsigned long long t_wait; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t_wait));
  if (threadIdx.x == 0 && !early) for (int c = 0; c < pre; c++) ISSUE(c);
  const vec_t* xs = (const vec_t*)x;
  long long step = (long long)split * 32;
#if XSMEM
  vec_t* xr = (vec_t*)(sm + (size_t)STAGES * stage_bytes);
  for (long long j = threadIdx.x; j < kv; j += blockDim.x) xr[j] = xs[j];
  __syncthreads();
#define XAT(t) xr[share * 32 + lane + step * (t)]
#else
  vec_t xr[XT];
  #pragma unroll
  for (int t = 0; t < XT; t++) { long long j = share * 32 + lane + step * t; if (j < kv) xr[t] = xs[j]; }
#define XAT(t) xr[t]
#endif
  for (int c = 0; c < chunks; c++) {
    int s = c % STAGES;
    int rows = min(rpc, rows_b - c * rpc);
    bar_wait(saddr(&full[s]), (c / STAGES) & 1);
    const vec_t* st = (const vec_t*)(sm + (size_t)s * stage_bytes) + (long long)group * kv;
    float acc = 0.f;
    if (group < rows) {
      #pragma unroll
      for (int t = 0; t < XT; t++) {
        long long j = share * 32 + lane + step * t;
        if (j < kv) acc += dot8(st[j], XAT(t));
      }
    }
    for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) red[c & 1][wp] = acc;
    __syncthreads();
    if (threadIdx.x == 0 && c + STAGES < chunks) ISSUE(c + STAGES);
    if (threadIdx.x < rows) {
      float t2 = 0.f;
      for (int q = 0; q < split; q++) t2 += red[c & 1][threadIdx.x * split + q];
      y[c0 + (long long)c * rpc + threadIdx.x] = b(t2);
    }
  }
  if (trace && threadIdx.x == 0) {
    unsigned long long t_end; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t_end));
    trace[blockIdx.x * 3] = t_start; trace[blockIdx.x * 3 + 1] = t_wait; trace[blockIdx.x * 3 + 2] = t_end;
  }
}
"""


class T2Variant(Variant):
    """T2 with `stages` buffers, `warps` warps, `splits(kv)` warps a row, `bps` blocks an SM."""

    def __init__(self, name, stages, warps, splits, bps=1, early=1, minb=1, xsmem=0, carveout=100,
                 pdl=True, fmad=True):
        defs = (f"#define STAGES {stages}\n#define WARPS {warps}\n#define XT {12 if xsmem else 8}\n"
                f"#define MINB {minb}\n#define XSMEM {xsmem}\n")
        super().__init__(name, T2, defs, warps=warps, early=early, carveout=carveout, pdl=pdl,
                         fmad=fmad)
        self.stages, self.split_of, self.bps = stages, splits, bps
        self.trace = np.uint64(0)
        self.fn.max_dynamic_shared_size_bytes = 220 * 1024

    def __call__(self, w, stream):
        n, k = w.shape
        kv = k // 8
        split = self.split_of(kv)
        rpc = self.warps // split
        blocks = min(n, SM * self.bps)
        smem = self.stages * rpc * kv * 16 + kv * 16
        launch(self.fn, blocks, 32 * self.warps, (y, x, w, np.int64(n), np.int64(kv), np.int32(split),
                                                  np.int32(self.early), self.trace), stream, smem=smem, pdl=self.pdl)


# Session 21 (figures in bench/RESULTS.md): umx's kernel, the bulk-copy kernels, per-product
# mixes (`Mixed`), and umx's `--fmad=false` (the C kernel now sums with explicit fmaf).
c_now = Variant("C U2 W4 small split 2 minB12 (umx now)", C, "#define U 2\n#define WARPS 4\n#define MINB 12\n", splits=small_split(2))
t2_3 = T2Variant("T2 3 st W16 split 2/4", 3, 16, lambda kv: 2 if kv <= 256 else 4)

D = (HID, INTER)  # the down projection's weight
c_nofma = Variant("C (umx now) --fmad=false", C, "#define U 2\n#define WARPS 4\n#define MINB 12\n", splits=small_split(2), fmad=False)
t2_3_nofma = T2Variant("T2 3 st W16 split 4 --fmad=false", 3, 16, lambda kv: 4, fmad=False)
variants = [
    c_now, c_nofma,
    Mixed("mixed: d T2 3 st W16 split 4", {D: t2_3}, c_now),
    Mixed("mixed: d T2 3 st W16 split 4, all --fmad=false", {D: t2_3_nofma}, c_nofma),
    Mixed("C --fmad=false, d T2 (fma)", {D: t2_3}, c_nofma),
    c_now, c_nofma,
]
# MLP=1: a layer's gate/up product (with the SwiGLU) and its down product as one kernel of a
# block an SM, a grid-wide barrier between them; with PREFETCH each block's down rows come
# into shared memory through the copy engine from its start (1) or once its share of the
# gate/up product is done (2), so that the down product after the barrier reads no DRAM. Against umx's kernel (c_now) for the
# two products apart, 22 layers in a CUDA graph each.
MLP = COMMON + BULK + r"""
#define KV 256   /* vectors of 8 in a gate/up row (2048 inputs) */
#define HV 704   /* vectors of 8 in a down row (5632 inputs) */
#ifndef WARPS
#define WARPS 16
#endif
#ifndef PIPE
#define PIPE 0
#endif
extern "C" __global__ void __launch_bounds__(WARPS * 32, 1) mlp(bf* out, const bf* x, const bf* wgu,
    const bf* wd, bf* h, unsigned* counter, int inter, int hid) {
  extern __shared__ __align__(128) unsigned char sm[];
  __shared__ __align__(8) unsigned long long full;
  int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  int r0 = (int)((long long)hid * blockIdx.x / gridDim.x);
  int r1 = (int)((long long)hid * (blockIdx.x + 1) / gridDim.x);
  unsigned row_bytes = (unsigned)inter * 2;
  if (tid == 0) {
    bar_init(saddr(&full), 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
#define PREFETCH_DOWN                                                                        \
  if (tid == 0) {                                                                            \
    bar_expect(saddr(&full), (unsigned)(r1 - r0) * row_bytes);                               \
    for (int r = r0; r < r1; r++)                                                            \
      bulk_load(saddr(sm + (size_t)(r - r0) * row_bytes), (const char*)wd + (size_t)r * row_bytes, \
                row_bytes, saddr(&full));                                                    \
  }
#if PREFETCH == 1
  PREFETCH_DOWN
#endif
  const vec_t* xs = (const vec_t*)x;
  int gw = blockIdx.x * WARPS + warp, nw = gridDim.x * WARPS;
  vec_t xr[8];
  /* Pair i's gate and up rows (i and inter + i) into G and U. */
#define LOAD(G, U, i)                                                                        \
  {                                                                                          \
    const vec_t* g_ = (const vec_t*)wgu + (long long)(i) * KV;                               \
    const vec_t* u_ = (const vec_t*)wgu + (long long)(inter + (i)) * KV;                     \
    _Pragma("unroll") for (int t = 0; t < 8; t++) {                                          \
      G[t] = __ldg(g_ + lane + 32 * t);                                                      \
      U[t] = __ldg(u_ + lane + 32 * t);                                                      \
    }                                                                                        \
  }
#define SUM(G, U, i)                                                                         \
  {                                                                                          \
    float a = 0.f, c = 0.f;                                                                  \
    _Pragma("unroll") for (int t = 0; t < 8; t++) {                                          \
      a += dot8(G[t], xr[t]);                                                                \
      c += dot8(U[t], xr[t]);                                                                \
    }                                                                                        \
    for (int o = 16; o > 0; o /= 2) {                                                        \
      a += __shfl_xor_sync(0xffffffffu, a, o);                                               \
      c += __shfl_xor_sync(0xffffffffu, c, o);                                               \
    }                                                                                        \
    if (lane == 0) h[i] = b(a / (1.f + __expf(-a)) * c);                                     \
  }
#if PIPE
  /* Each warp's next pair's loads go out before the pair before is summed. */
  vec_t ga[8], ua[8], gb[8], ub[8];
  if (gw < inter) LOAD(ga, ua, gw);
  pdl_wait();
#pragma unroll
  for (int t = 0; t < 8; t++) xr[t] = xs[lane + 32 * t];
  for (int i = gw; i < inter; i += 2 * nw) {
    if (i + nw < inter) LOAD(gb, ub, i + nw);
    SUM(ga, ua, i);
    if (i + 2 * nw < inter) LOAD(ga, ua, i + 2 * nw);
    if (i + nw < inter) SUM(gb, ub, i + nw);
  }
#else
  vec_t wg[8], wu[8];
  int i = gw;
  if (i < inter) LOAD(wg, wu, i);
  pdl_wait();
#pragma unroll
  for (int t = 0; t < 8; t++) xr[t] = xs[lane + 32 * t];
  for (; i < inter; i += nw) {
    if (i != gw) LOAD(wg, wu, i);
    SUM(wg, wu, i);
  }
#endif
#if PREFETCH == 2
  PREFETCH_DOWN
#endif
  /* Every block's share of h written before any block reads h. */
  __syncthreads();
  if (tid == 0) {
    __threadfence();
    atomicAdd(counter, 1u);
    unsigned v;
    do { asm volatile("ld.acquire.gpu.u32 %0, [%1];" : "=r"(v) : "l"(counter) : "memory"); } while (v < gridDim.x);
  }
  __syncthreads();
#if PREFETCH
  if (warp < r1 - r0) bar_wait(saddr(&full), 0);
#endif
  for (int r = warp; r < r1 - r0; r += WARPS) {
#if PREFETCH
    const vec_t* wr = (const vec_t*)(sm + (size_t)r * row_bytes);
#else
    const vec_t* wr = (const vec_t*)wd + (long long)(r0 + r) * HV;
#endif
    const vec_t* hs = (const vec_t*)h;
    float acc = 0.f;
    for (int j = lane; j < HV; j += 32) acc += dot8(wr[j], __ldcg(hs + j));
    for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) out[r0 + r] = b(acc);
  }
}
"""


# The card's rate of reading alone, for the products' share of it: a grid-stride sum of
# 16-byte loads, U of them in flight a thread.
READ = r"""
extern "C" __global__ void readall(const uint4* p, long long n, unsigned* out) {
  unsigned acc = 0;
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += U * stride) {
    uint4 v[U];
#pragma unroll
    for (int u = 0; u < U; u++) v[u] = i + u * stride < n ? __ldg(p + i + u * stride) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < U; u++) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == 0x12345678u) out[0] = acc;
}
"""


def read_rate():
    buf = cp.zeros(1 << 30, dtype=cp.uint8)
    sink = cp.zeros(1, dtype=cp.uint32)
    n = buf.nbytes // 16
    for u, bps, threads in ((4, 4, 512), (8, 4, 512), (4, 8, 256), (8, 2, 1024)):
        fn = cp.RawModule(code=f"#define U {u}\n" + READ, options=("-arch=sm_90",)).get_function("readall")
        s = cp.cuda.Stream(non_blocking=True)
        args = (buf, np.int64(n), sink)
        with s:
            fn((SM * bps,), (threads,), args)
        s.synchronize()
        e0, e1 = cp.cuda.Event(), cp.cuda.Event()
        e0.record(s)
        with s:
            for _ in range(10):
                fn((SM * bps,), (threads,), args)
        e1.record(s)
        e1.synchronize()
        t = cp.cuda.get_elapsed_time(e0, e1) / 10
        print(f"| read 1 GiB, {u} loads in flight a thread, {bps} blocks of {threads} an SM | {buf.nbytes / t / 1e6:.0f} GB/s |")


def mlp_experiment():
    read_rate()
    h = cp.zeros(INTER, dtype=cp.uint16)
    out = cp.zeros(HID, dtype=cp.uint16)
    counters = cp.zeros(LAYERS, dtype=cp.uint32)
    smem_rows = -(-HID // SM) * INTER * 2
    # (name, PREFETCH, WARPS, PIPE, blocks an SM: every block must fit on the card at once,
    # or the barrier waits forever)
    cfgs = [("down rows read after the barrier, 16 warps", 0, 16, 0, 1),
            ("the same, 8 warps, each warp's next pair loaded before the last is summed", 0, 8, 1, 1),
            ("pipelined, 8 warps, down rows prefetched once the gate/up share is done", 2, 8, 1, 1),
            ("16 warps, down rows prefetched from the start", 1, 16, 0, 1)]
    fns = {}
    for name, pf, warps, pipe, bps in cfgs:
        fn = cp.RawModule(code=f"#define PREFETCH {pf}\n#define WARPS {warps}\n#define PIPE {pipe}\n" + MLP,
                          options=("-arch=sm_90", "-std=c++17")).get_function("mlp")
        smem = smem_rows if pf else 0
        fn.max_dynamic_shared_size_bytes = max(smem, 1)
        print(f"  mlp {name}: regs={fn.num_regs} local={fn.local_size_bytes} smem={smem}", flush=True)
        fns[name] = (fn, smem, warps, bps)

    def run(name, li, L, s):
        fn, smem, warps, bps = fns[name]
        launch(fn, SM * bps, 32 * warps, (out, x, L["gu"], L["d"], h, np.uint64(counters.data.ptr + 4 * li),
                                          np.int32(INTER), np.int32(HID)), s, smem=smem)

    def fused(name):
        def chain(s):
            cp.cuda.runtime.memsetAsync(counters.data.ptr, 0, counters.nbytes, s.ptr)
            for li, L in enumerate(layers):
                run(name, li, L, s)
        return chain

    def apart(s):
        for L in layers:
            c_now(L["gu"], s)
            c_now(L["d"], s)

    # correctness of each on layer 0
    gu, d = from_bf16(layers[0]["gu"]), from_bf16(layers[0]["d"])
    g = gu[:INTER] @ xf[:HID]
    u = gu[INTER:] @ xf[:HID]
    want = d @ from_bf16(to_bf16(g / (1 + cp.exp(-g)) * u))
    for name in fns:
        st = cp.cuda.Stream(non_blocking=True)
        cp.cuda.runtime.memsetAsync(counters.data.ptr, 0, counters.nbytes, st.ptr)
        run(name, 0, layers[0], st)
        st.synchronize()
        err = float(cp.max(cp.abs(from_bf16(out) - want)) / cp.max(cp.abs(want)))
        print(f"  mlp {name}: rel err {err:.4f}", flush=True)
        if err > 2e-2:
            raise SystemExit("mlp: wrong result")
    graphs = {"apart (umx's kernel, two products)": capture(apart)}
    graphs.update({f"one kernel, {name}": capture(fused(name)) for name in fns})
    res = {k: [] for k in graphs}
    for _ in range(4):
        for k, (g_, s_) in graphs.items():
            res[k].append(time_graph(g_, s_))
    mb = sum(L["gu"].nbytes + L["d"].nbytes for L in layers)
    print(cp.cuda.runtime.getDeviceProperties(0)["name"].decode())
    for k, t in res.items():
        per = min(t) * 1e3 / LAYERS
        print(f"| {k} | {per:.2f} us a layer ({mb / min(t) / 1e6:.0f} GB/s) | {' '.join(f'{v * 1e3 / LAYERS:.2f}' for v in t)} |")


if os.environ.get("MLP"):
    mlp_experiment()
    raise SystemExit
if os.environ.get("TRACE"):
    for v in [T2Variant("T2 2 st W16 split 2/4 xsmem minB2", 2, 16, lambda kv: 2 if kv <= 256 else 4, xsmem=1, minb=2),
              T2Variant("T2 2 st W16 split 2/4 xsmem minB2 no early", 2, 16, lambda kv: 2 if kv <= 256 else 4, xsmem=1, minb=2, early=0),
              T2Variant("T2 2 st W16 split 2/4 xsmem minB2 no PDL", 2, 16, lambda kv: 2 if kv <= 256 else 4, xsmem=1, minb=2, pdl=False)]:
        for key in ("qkv", "d"):
            bufs = [cp.zeros(SM * 3, dtype=cp.uint64) for _ in range(6)]
            def chain(s):
                for i, L in enumerate(layers[:6]):
                    v.trace = np.uint64(bufs[i].data.ptr)
                    v(L[key], s)
            g, st = capture(chain)
            for _ in range(3):
                g.launch(st)
            st.synchronize()
            v.trace = np.uint64(0)
            t = [b.get().reshape(SM, 3).astype(np.int64) for b in bufs]
            t0 = t[0][:, 0].min()
            print(f"{v.name} {key}: per kernel (us from first start): start min/max, wait-return min/max, end min/max")
            for i, a in enumerate(t):
                a = (a - t0) / 1e3
                print(f"  {i}: start {a[:,0].min():7.2f} {a[:,0].max():7.2f}  wait {a[:,1].min():7.2f} {a[:,1].max():7.2f}  end {a[:,2].min():7.2f} {a[:,2].max():7.2f}")
    raise SystemExit
for v in variants:
    check(v)
graphs = {(v.name, k): capture(fn) for v in variants for k, fn in chains(v).items()}
res = {key: [] for key in graphs}
for _ in range(3):
    for key, (g, s) in graphs.items():
        res[key].append(time_graph(g, s))
print(cp.cuda.runtime.getDeviceProperties(0)["name"].decode())
keys = ("qkv", "o", "gu", "d", "step")
print("| variant | " + " | ".join(f"{k} us (GB/s)" for k in keys) + " |")
print("|---|" + "---|" * len(keys))
for v in variants:
    cells = []
    for k in keys:
        t = min(res[(v.name, k)])
        per = t * 1e3 / (LAYERS if k != "step" else 1)
        cells.append(f"{per:.2f} ({nbytes(k) / t / 1e6:.0f})")
    print(f"| {v.name} | " + " | ".join(cells) + " |")
