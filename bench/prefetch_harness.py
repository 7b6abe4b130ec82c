"""Experiment: does an L2 prefetch of the next products' weights, issued by the latency-bound
kernels of a decoding layer (rope, cache writes, attention, merge, norms), shorten a decoding
step? A TinyLlama-shaped layer (bfloat16, 22 layers, distinct weights, 1.9 GB) is replayed as a
CUDA graph of umx's matrix-vector kernel (a copy of the one gemv.rs generates, one row, no
addend) and one-block stand-ins for the small kernels; the stand-ins optionally issue
`cp.async.bulk.prefetch.L2` for the weights of the products after them. On the GPU machine:

    python3 bench/prefetch_harness.py
"""
import sys
import cupy as cp
import numpy as np

HID, INTER, QKV, VOCAB, LAYERS = 2048, 5632, 2560, 32000, 22

SRC = r"""
typedef unsigned short bf;
__device__ __forceinline__ float f(bf h) { return __uint_as_float(((unsigned)h) << 16); }
__device__ __forceinline__ bf b(float x) { unsigned short h; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(x)); return h; }
typedef uint4 vec_t;
#define WARPS 4
extern "C" __global__ void __launch_bounds__(128) gemv(bf* y, const bf* x, const bf* w,
    long long n_cols, long long kv, int split) {
  __shared__ float part[WARPS];
  int lane = threadIdx.x % 32, wb = threadIdx.x / 32;
  int group = wb / split, share = wb % split;
  int per_block = WARPS / split;
  int step = split * 32;
  const vec_t* xs = (const vec_t*)x;
  for (long long base = (long long)blockIdx.x * per_block; base < n_cols;
       base += (long long)gridDim.x * per_block) {
    long long n = base + group;
    bool live = n < n_cols;
    const vec_t* wr = (const vec_t*)w + (live ? n : 0) * kv;
    float acc = 0.f;
    long long j = share * 32 + lane;
    for (; j + 3 * step < kv; j += 4 * step) {
      vec_t wq[4];
      #pragma unroll
      for (int u = 0; u < 4; u++) wq[u] = __ldg(&wr[j + step * u]);
      #pragma unroll
      for (int u = 0; u < 4; u++) {
        const bf* we = (const bf*)&wq[u];
        vec_t xq = xs[j + step * u];
        const bf* xe = (const bf*)&xq;
        #pragma unroll
        for (int e = 0; e < 8; e++) acc += f(xe[e]) * f(we[e]);
      }
    }
    for (; j < kv; j += step) {
      vec_t wq = __ldg(&wr[j]);
      const bf* we = (const bf*)&wq;
      vec_t xq = xs[j];
      const bf* xe = (const bf*)&xq;
      #pragma unroll
      for (int e = 0; e < 8; e++) acc += f(xe[e]) * f(we[e]);
    }
    for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (split == 1) {
      if (lane == 0 && live) y[n] = b(acc);
    } else {
      if (lane == 0) part[wb] = acc;
      __syncthreads();
      if (wb == 0 && lane == 0 && live) {
        float s = 0.f;
        for (int q = 0; q < split; q++) s += part[q];
        y[n] = b(s);
      }
      __syncthreads();
    }
  }
}

/* A stand-in for a small kernel: a block reads and writes a few KB (dependent on the last
   output), and thread i < n_pf issues a bulk L2 prefetch of chunk i of the ranges given. */
extern "C" __global__ void tiny(float* a, int n, const char* p1, long long b1,
    const char* p2, long long b2, long long chunk, int policy) {
  long long c1 = (b1 + chunk - 1) / chunk, c2 = (b2 + chunk - 1) / chunk;
  unsigned long long pol = 0;
  if (policy) asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(pol));
  for (long long i = blockIdx.x * blockDim.x + threadIdx.x; i < c1 + c2;
       i += (long long)gridDim.x * blockDim.x) {
    const char* p = i < c1 ? p1 + i * chunk : p2 + (i - c1) * chunk;
    long long left = i < c1 ? b1 - i * chunk : b2 - (i - c1) * chunk;
    unsigned int sz = (unsigned int)(left < chunk ? left : chunk);
    if (policy)
      asm volatile("cp.async.bulk.prefetch.L2.global.L2::cache_hint [%0], %1, %2;" :: "l"(p), "r"(sz), "l"(pol) : "memory");
    else
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" :: "l"(p), "r"(sz) : "memory");
  }
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    a[i] = a[i] * 0.5f + 1.f;
}
"""

mod = cp.RawModule(code=SRC, options=("-arch=sm_90", "-std=c++17"))
gemv_k = mod.get_function("gemv")
tiny_k = mod.get_function("tiny")
SM = cp.cuda.Device().attributes["MultiProcessorCount"]

rng = cp.random.default_rng(0)


def weights(n, k):
    return (rng.standard_normal((n, k), dtype=cp.float32) * 0.02).astype(cp.float16).view(cp.uint16)


layers = [dict(qkv=weights(QKV, HID), o=weights(HID, HID), gu=weights(2 * INTER, HID),
               d=weights(HID, INTER)) for _ in range(LAYERS)]
head = weights(VOCAB, HID)
x = cp.zeros(INTER, dtype=cp.uint16)
y = cp.zeros(2 * INTER + VOCAB, dtype=cp.uint16)
scratch = cp.zeros(4096, dtype=cp.float32)
MB = 1 << 20


def gemv(w):
    n, k = w.shape
    kv = k // 8
    split = 1 if n >= SM * 16 else (2 if kv < 4 * 32 * 4 and kv >= 4 * 32 * 2 else 4)
    per_block = 4 // split
    blocks = min((n + per_block - 1) // per_block, SM * 32)
    gemv_k((blocks,), (128,), (y, x, w, np.int64(n), np.int64(kv), np.int32(split)))


def tiny(pf=(), grid=1, chunk=64 << 10, policy=0):
    ptrs = list(pf) + [(None, 0)] * (2 - len(pf))
    args = []
    for w, nbytes in ptrs:
        args += [w if w is not None else scratch, np.int64(nbytes)]
    tiny_k((grid,), (256,), (scratch, np.int32(1024), *args, np.int64(chunk), np.int32(policy)))


def step(plan):
    """One decoding step; plan names what each stand-in prefetches."""
    for i, L in enumerate(layers):
        nxt = layers[(i + 1) % LAYERS]
        tiny()                                   # rms_norm
        gemv(L["qkv"])
        pf = []
        if "o" in plan:
            pf.append((L["o"], L["o"].nbytes))
        if "gu" in plan:
            pf.append((L["gu"], min(plan["gu"] * MB, L["gu"].nbytes)))
        tiny(pf, grid=max(1, len(pf) and 8), policy=plan.get("policy", 0))  # rope
        tiny()                                   # k cache
        tiny()                                   # v cache
        tiny(grid=64)                            # attention
        tiny()                                   # merge
        gemv(L["o"])
        tiny()                                   # rms_norm
        gemv(L["gu"])
        pf = []
        if "d" in plan:
            pf.append((L["d"], min(plan["d"] * MB, L["d"].nbytes)))
        if "qkv" in plan:
            pf.append((nxt["qkv"], nxt["qkv"].nbytes))
        tiny(pf, grid=max(1, len(pf) and 8), policy=plan.get("policy", 0))  # silu * up
        gemv(L["d"])
    tiny()
    gemv(head)


def gemvs_only():
    for L in layers:
        for k in ("qkv", "o", "gu", "d"):
            gemv(L[k])
    gemv(head)


def capture(fn):
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        s.begin_capture()
        fn()
        g = s.end_capture()
    return g, s


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


wbytes = sum(w.nbytes for L in layers for w in L.values()) + head.nbytes
plans = {
    "gemvs only": None,
    "no prefetch": {},
    "o": {"o": 1},
    "o + gu 8MB": {"o": 1, "gu": 8},
    "o + gu 16MB": {"o": 1, "gu": 16},
    "o + gu 24MB": {"o": 1, "gu": 24},
    "o + gu 16MB + d 8MB": {"o": 1, "gu": 16, "d": 8},
    "o + gu 16MB, evict_last": {"o": 1, "gu": 16, "policy": 1},
    "o + gu 16MB + next qkv": {"o": 1, "gu": 16, "qkv": 1},
}
graphs = {}
for name, plan in plans.items():
    graphs[name] = capture(gemvs_only if plan is None else (lambda p=plan: step(p)))
res = {k: [] for k in plans}
for _ in range(3):
    for name, (g, s) in graphs.items():
        res[name].append(time_graph(g, s))
print(f"{cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}, weights {wbytes / 1e9:.2f} GB")
print("| plan | step ms | GB/s of weights |")
print("|---|---|---|")
for name, t in res.items():
    m = min(t)
    print(f"| {name} | {' / '.join(f'{v:.3f}' for v in t)} | {wbytes / m / 1e6:.0f} |")
