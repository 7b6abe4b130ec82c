// Does an L2 prefetch of a decoding layer's next weights, issued while its latency-bound
// kernels (attention, merge) leave memory idle, shorten the step? A TinyLlama-shaped step
// (bfloat16, 22 layers of distinct weights, the head) replayed as a CUDA graph with
// programmatic dependent launch: one-warp-a-column matrix-vector kernels that load their first
// weights before the wait (as umx's do) and two spinning stand-ins for the attention and its
// merge. The prefetch of the SwiGLU's weights (`prefetch.global.L2`, optionally with the
// evict_last policy) comes from a kernel on a side branch of the graph that forks after the
// q/k/v product and joins only at the graph's end, from the output projection's blocks before
// their wait, or from the attention stand-in's blocks.
// On the GPU machine:
//   nvcc -O3 -arch=sm_90 -o /tmp/l2p bench/l2_prefetch_probe.cu && /tmp/l2p
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_runtime.h>

typedef unsigned short bf;
#define CK(x) do { cudaError_t e_ = (x); if (e_) { printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); exit(1); } } while (0)

__device__ __forceinline__ float f(bf h) { return __uint_as_float(((unsigned)h) << 16); }
__device__ __forceinline__ void trigger() { asm volatile("griddepcontrol.launch_dependents;"); }
__device__ __forceinline__ void wait_before() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ unsigned long long now() {
  unsigned long long t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); return t;
}
// Every thread of the grid takes every n-th 128-byte line of [p, p + bytes).
__device__ __forceinline__ void prefetch(const char* p, long long bytes, int last) {
  long long n = (long long)gridDim.x * blockDim.x;
  for (long long o = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * 128; o < bytes; o += n * 128) {
    if (last) asm volatile("prefetch.global.L2::evict_last [%0];" ::"l"(p + o));
    else asm volatile("prefetch.global.L2 [%0];" ::"l"(p + o));
  }
}

#define B 8
// y = w x for row-major w [n_cols][kv 16-byte vectors]; a warp a column.
__global__ void __launch_bounds__(128) gemv(bf* y, const uint4* x, const uint4* w, int n_cols, int kv,
                                            const char* pf, long long pf_bytes, int pf_last) {
  trigger();
  if (pf) prefetch(pf, pf_bytes, pf_last);
  int lane = threadIdx.x & 31, col = blockIdx.x * 4 + (threadIdx.x >> 5);
  bool live = col < n_cols;
  const uint4* wr = w + (long long)(live ? col : 0) * kv;
  uint4 wq[B];
#pragma unroll
  for (int u = 0; u < B; u++) {
    int j = lane + 32 * u;
    wq[u] = j < kv ? __ldg(wr + j) : make_uint4(0, 0, 0, 0);
  }
  wait_before();
  float acc = 0.f;
  for (int j0 = 0; j0 < kv; j0 += 32 * B) {
#pragma unroll
    for (int u = 0; u < B; u++) {
      int j = j0 + lane + 32 * u;
      if (j < kv) {
        uint4 xq = x[j];
        const bf* we = (const bf*)&wq[u];
        const bf* xe = (const bf*)&xq;
#pragma unroll
        for (int e = 0; e < 8; e++) acc = fmaf(f(xe[e]), f(we[e]), acc);
      }
    }
    int n0 = j0 + 32 * B;
#pragma unroll
    for (int u = 0; u < B; u++) {
      int j = n0 + lane + 32 * u;
      if (j < kv) wq[u] = __ldg(wr + j);
    }
  }
  for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0 && live) y[col] = (bf)(__float_as_uint(acc) >> 16);
}

// A latency-bound kernel's stand-in: waits for the kernel before, then spins `ns`.
__global__ void spin(long long ns, const char* pf, long long pf_bytes, int pf_last) {
  trigger();
  if (pf) prefetch(pf, pf_bytes, pf_last);
  wait_before();
  unsigned long long s = now();
  while (now() - s < (unsigned long long)ns) {}
}

__global__ void side(const char* pf, long long pf_bytes, int pf_last) { prefetch(pf, pf_bytes, pf_last); }

static void launch(cudaStream_t st, int grid, int block, void* fn, void** args) {
  cudaLaunchConfig_t c = {};
  c.gridDim = grid; c.blockDim = block; c.stream = st;
  cudaLaunchAttribute a[1];
  a[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  a[0].val.programmaticStreamSerializationAllowed = 1;
  c.attrs = a; c.numAttrs = 1;
  CK(cudaLaunchKernelExC(&c, fn, args));
}

static void mv(cudaStream_t st, bf* y, const uint4* x, const uint4* w, int n, int k,
               const char* pf = nullptr, long long pfb = 0, int last = 0) {
  int kv = k / 8;
  void* args[] = {&y, &x, &w, &n, &kv, &pf, &pfb, &last};
  launch(st, (n + 3) / 4, 128, (void*)gemv, args);
}
static void sp(cudaStream_t st, int grid, long long ns, const char* pf = nullptr, long long pfb = 0, int last = 0) {
  void* args[] = {&ns, &pf, &pfb, &last};
  launch(st, grid, 128, (void*)spin, args);
}

struct Variant {
  const char* name;
  long long attn_ns, merge_ns;
  int where;  // 0 none, 1 side branch, 2 output projection's blocks, 3 attention's blocks
  long long mb;
  int last;
  int side_grid;
};

int main() {
  const int H = 2048, I = 5632, QKV = 2560, V = 32000, L = 22;
  const size_t layer = (size_t)H * (QKV + H + 2 * I + I);
  char* wall;
  size_t total = (layer * L + (size_t)V * H) * 2;
  CK(cudaMalloc(&wall, total));
  CK(cudaMemset(wall, 1, total));
  bf* act;
  CK(cudaMalloc(&act, 1 << 20));
  CK(cudaMemset(act, 0, 1 << 20));
  const uint4* x = (const uint4*)act;
  bf* y = act + (1 << 18);
  auto wl = [&](int l, size_t off) { return (const uint4*)(wall + (layer * l + off) * 2); };
  const size_t o_qkv = 0, o_o = (size_t)H * QKV, o_gu = o_o + (size_t)H * H, o_d = o_gu + (size_t)H * 2 * I;
  const uint4* head = (const uint4*)(wall + layer * L * 2);

  cudaStream_t s0, s1;
  CK(cudaStreamCreateWithFlags(&s0, cudaStreamNonBlocking));
  CK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
  std::vector<cudaEvent_t> ev(L + 1);
  for (auto& e : ev) CK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));

  std::vector<Variant> vs = {
      {"products only", 0, 0, 0, 0, 0, 0},
      {"spins, no prefetch", 5000, 2000, 0, 0, 0, 0},
      {"side 8 MB last", 5000, 2000, 1, 8, 1, 32},
      {"side 16 MB last", 5000, 2000, 1, 16, 1, 32},
      {"side 24 MB last", 5000, 2000, 1, 24, 1, 32},
      {"side 32 MB last", 5000, 2000, 1, 32, 1, 32},
      {"side 24 MB normal", 5000, 2000, 1, 24, 0, 32},
      {"side 24 MB last, 8 blocks", 5000, 2000, 1, 24, 1, 8},
      {"side 24 MB last, 132 blocks", 5000, 2000, 1, 24, 1, 132},
      {"o blocks 16 MB last", 5000, 2000, 2, 16, 1, 0},
      {"o blocks 24 MB last", 5000, 2000, 2, 24, 1, 0},
      {"attn blocks 24 MB last", 5000, 2000, 3, 24, 1, 0},
      {"spins 3+1 us, none", 3000, 1000, 0, 0, 0, 0},
      {"spins 3+1 us, side 16 MB", 3000, 1000, 1, 16, 1, 32},
  };
  printf("%-32s %10s %10s\n", "variant", "step ms", "GB/s");
  for (int round = 0; round < 2; round++)
  for (auto& v : vs) {
    cudaGraph_t g;
    CK(cudaStreamBeginCapture(s0, cudaStreamCaptureModeGlobal));
    bool forked = false;
    for (int l = 0; l < L; l++) {
      const char* pf = (const char*)wl(l, o_gu);
      long long pfb = v.mb << 20;
      mv(s0, y, x, wl(l, o_qkv), QKV, H);
      if (v.where == 1) {
        CK(cudaEventRecord(ev[l], s0));
        CK(cudaStreamWaitEvent(s1, ev[l], 0));
        const char* p = pf; int last = v.last;
        void* args[] = {&p, &pfb, &last};
        CK(cudaLaunchKernel((void*)side, v.side_grid, 256, args, 0, s1));
        forked = true;
      }
      if (v.attn_ns) sp(s0, 264, v.attn_ns, v.where == 3 ? pf : nullptr, pfb, v.last);
      if (v.merge_ns) sp(s0, 32, v.merge_ns);
      if (v.where == 2) mv(s0, y, x, wl(l, o_o), H, H, pf, pfb, v.last);
      else mv(s0, y, x, wl(l, o_o), H, H);
      mv(s0, y, x, wl(l, o_gu), 2 * I, H);
      mv(s0, y, x, wl(l, o_d), H, I);
    }
    mv(s0, y, x, head, V, H);
    if (forked) {
      CK(cudaEventRecord(ev[L], s1));
      CK(cudaStreamWaitEvent(s0, ev[L], 0));
    }
    CK(cudaStreamEndCapture(s0, &g));
    cudaGraphExec_t ge;
    CK(cudaGraphInstantiate(&ge, g, 0));
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < 5; i++) CK(cudaGraphLaunch(ge, s0));
    const int n = 40;
    CK(cudaEventRecord(a, s0));
    for (int i = 0; i < n; i++) CK(cudaGraphLaunch(ge, s0));
    CK(cudaEventRecord(b, s0));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    ms /= n;
    printf("%-32s %10.4f %10.0f\n", v.name, ms, total / (ms * 1e6));
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
  }
  return 0;
}
