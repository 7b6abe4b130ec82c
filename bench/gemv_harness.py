"""Tuning harness for the matrix-vector kernel of a decoding step (crates/umx-cuda/src/kernels/
gemv.rs): TinyLlama's products (bfloat16, one row, 22 layers of distinct weights) replayed as a
CUDA graph with programmatic dependent launch, as umx runs them, for each kernel variant in
`variants` (umx's kernel C with its batch of U vectors a lane, its warps, their split over a
column and its blocks an SM as defines); each product's chain alone and the whole step's
chain. On the GPU machine:

    python3 bench/gemv_harness.py
"""
import ctypes
import cupy as cp
import numpy as np

HID, INTER, QKV, VOCAB, LAYERS = 2048, 5632, 2560, 32000, 22

COMMON = r"""
typedef unsigned short bf;
__device__ __forceinline__ float f(bf h) { return __uint_as_float(((unsigned)h) << 16); }
__device__ __forceinline__ bf b(float x) { unsigned short h; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(x)); return h; }
__device__ __forceinline__ void pdl_wait() {
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;");
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
    _fields_ = [("id", ctypes.c_int), ("pad", ctypes.c_char * 4), ("value", ctypes.c_char * 64)]


class Config(ctypes.Structure):
    _fields_ = [("gx", ctypes.c_uint), ("gy", ctypes.c_uint), ("gz", ctypes.c_uint),
                ("bx", ctypes.c_uint), ("by", ctypes.c_uint), ("bz", ctypes.c_uint),
                ("smem", ctypes.c_uint), ("stream", ctypes.c_void_p),
                ("attrs", ctypes.POINTER(Attr)), ("nattrs", ctypes.c_uint)]


def launch(fn, grid, block, args, stream, pdl=True):
    attr = Attr()
    attr.id = 6  # CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
    ctypes.memmove(attr.value, ctypes.byref(ctypes.c_int(1)), 4)
    cfg = Config(grid, 1, 1, block, 1, 1, 0, stream.ptr, ctypes.pointer(attr), 1 if pdl else 0)
    vals = []
    for a in args:
        if isinstance(a, cp.ndarray):
            vals.append(ctypes.c_void_p(a.data.ptr))
        elif isinstance(a, np.int64):
            vals.append(ctypes.c_longlong(int(a)))
        elif isinstance(a, np.int32):
            vals.append(ctypes.c_int(int(a)))
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
                 early=1):
        self.name, self.warps, self.pdl, self.early = name, warps, pdl, early
        self.fn = cp.RawModule(code=defs + src, options=("-arch=sm_90", "-std=c++17")).get_function("gemv")
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


def capture(fn):
    s = cp.cuda.Stream(non_blocking=True)
    s.begin_capture()
    fn(s)
    return s.end_capture(), s


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


# Session 19: the short products (q/k/v and o) ran at a third of the copy rate on the H100;
# more warps a column or more vectors a lane in one batch. The rows of 2026-11-27 17:00 are
# in bench/RESULTS.md. umx's kernel was "C U2 W4 A-split minB12" (minB16 where a block shares
# each column) and is now "small split 2" (two warps a column for q/k/v too).
variants = [
    Variant("C U2 W4 A-split minB12 (umx before)", C, "#define U 2\n#define WARPS 4\n#define MINB 12\n", splits=a_split(4)),
    Variant("C U2 W4 small split 2 minB12 (umx now)", C, "#define U 2\n#define WARPS 4\n#define MINB 12\n", splits=small_split(2)),
    Variant("C U2 W4 small split 4 minB16", C, "#define U 2\n#define WARPS 4\n#define MINB 16\n", splits=small_split(4)),
    Variant("C U4 W4 small split 2 minB12", C, "#define U 4\n#define WARPS 4\n#define MINB 12\n", splits=small_split(2)),
    Variant("C U4 W4 small split 1 minB12", C, "#define U 4\n#define WARPS 4\n#define MINB 12\n", splits=small_split(1)),
    Variant("C U8 W4 small split 1 minB8", C, "#define U 8\n#define WARPS 4\n#define MINB 8\n", splits=small_split(1)),
    Variant("C U2 W8 small split 8 minB8", C, "#define U 2\n#define WARPS 8\n#define MINB 8\n", warps=8, splits=small_split(8)),
    Variant("C U2 W4 A-split minB12 (umx before) again", C, "#define U 2\n#define WARPS 4\n#define MINB 12\n", splits=a_split(4)),
]
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
