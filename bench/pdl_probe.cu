// Does programmatic dependent launch start a secondary kernel before its primary ends?
// The CUDA programming guide's pattern: the primary triggers first thing and then runs
// 300 us on one SM; the secondary (launched with cudaLaunchAttributeProgrammaticStreamSerialization)
// records when its block starts. Launched through the runtime API, then the driver API (as
// umx launches), with kernels from nvcc and from NVRTC (cubin and PTX, as umx compiles).
// On the GPU machine:
//   nvcc -arch=sm_90 -o /tmp/pdl_probe bench/pdl_probe.cu -lcuda -lnvrtc && /tmp/pdl_probe
// An H100 (2026-11-28): -293 to -296 us with the attribute in every case, +1.6 to +1.9 without.
#include <cstdio>
#include <cuda_runtime.h>
#include <cuda.h>
#include <cstddef>
#include <nvrtc.h>
#include <vector>
// The same two kernels compiled at run time by NVRTC to an sm_90 cubin (as umx compiles).
static const char* SRC = R"(
__device__ unsigned long long now() { unsigned long long t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); return t; }
extern "C" __global__ void primary(unsigned long long* t) {
  asm volatile("griddepcontrol.launch_dependents;");
  unsigned long long s = now(), n;
  do { n = now(); } while (n - s < 300000);
  if (threadIdx.x == 0) { t[0] = s; t[1] = n; }
}
extern "C" __global__ void secondary(unsigned long long* t) {
  unsigned long long s = now();
  asm volatile("griddepcontrol.wait;" ::: "memory");
  if (threadIdx.x == 0) { t[2] = s; t[3] = now(); }
}
)";
static CUmodule nvrtc_module(const char* arch_opt, bool cubin) {
  nvrtcProgram p; nvrtcCreateProgram(&p, SRC, "k.cu", 0, nullptr, nullptr);
  const char* opts[] = {arch_opt};
  nvrtcResult r = nvrtcCompileProgram(p, 1, opts);
  if (r) { size_t n; nvrtcGetProgramLogSize(p, &n); std::vector<char> l(n); nvrtcGetProgramLog(p, l.data()); printf("nvrtc: %s\n", l.data()); }
  size_t n; std::vector<char> img;
  if (cubin) { nvrtcGetCUBINSize(p, &n); img.resize(n); nvrtcGetCUBIN(p, img.data()); }
  else { nvrtcGetPTXSize(p, &n); img.resize(n); nvrtcGetPTX(p, img.data()); }
  CUmodule m; CUresult e = cuModuleLoadData(&m, img.data());
  if (e) printf("load %d\n", (int)e);
  return m;
}
static void run_pair(const char* what, CUfunction a, CUfunction b, unsigned long long* t, cudaStream_t st) {
  for (int pdl = 0; pdl < 2; pdl++) {
    void* args[] = {&t};
    CUlaunchAttribute da[1]; da[0].id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    da[0].value.programmaticStreamSerializationAllowed = 1;
    CUlaunchConfig dc = {}; dc.gridDimX = dc.gridDimY = dc.gridDimZ = 1; dc.blockDimX = 128; dc.blockDimY = dc.blockDimZ = 1;
    dc.hStream = st; dc.attrs = da; dc.numAttrs = 0;
    cuLaunchKernelEx(&dc, a, args, nullptr);
    dc.numAttrs = pdl;
    cuLaunchKernelEx(&dc, b, args, nullptr);
    cudaStreamSynchronize(st);
    unsigned long long h[4]; cudaMemcpy(h, t, 32, cudaMemcpyDeviceToHost);
    printf("%s pdl %d: secondary starts %+.2f us after the primary's end\n", what, pdl, ((long long)(h[2] - h[1])) / 1e3);
  }
}
__device__ unsigned long long now() { unsigned long long t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); return t; }
__global__ void primary(unsigned long long* t) {
  cudaTriggerProgrammaticLaunchCompletion();
  unsigned long long s = now(), n;
  do { n = now(); } while (n - s < 300000);
  if (threadIdx.x == 0) { t[0] = s; t[1] = n; }
}
__global__ void secondary(unsigned long long* t) {
  unsigned long long s = now();
  cudaGridDependencySynchronize();
  if (threadIdx.x == 0) { t[2] = s; t[3] = now(); }
}
int main() {
  printf("CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION %d, sizeof attr %zu, value at %zu; config: stream at %zu, attrs at %zu, numAttrs at %zu, size %zu\n",
         (int)CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, sizeof(CUlaunchAttribute), offsetof(CUlaunchAttribute, value),
         offsetof(CUlaunchConfig, hStream), offsetof(CUlaunchConfig, attrs), offsetof(CUlaunchConfig, numAttrs), sizeof(CUlaunchConfig));
  unsigned long long* t; cudaMalloc(&t, 32);
  unsigned long long h[4];
  cudaStream_t st; cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
  for (int pdl = 0; pdl < 2; pdl++) for (int rep = 0; rep < 3; rep++) {
    primary<<<1, 128, 0, st>>>(t);
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = 1; cfg.blockDim = 128; cfg.stream = st;
    cudaLaunchAttribute a[1];
    a[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    a[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = a; cfg.numAttrs = pdl;
    cudaError_t e = cudaSuccess;
    if (rep < 2) e = cudaLaunchKernelEx(&cfg, secondary, t);
    else {
      // The driver API, as umx and the Python harnesses launch.
      CUfunction f; cudaGetFuncBySymbol(&f, (const void*)secondary);
      CUlaunchAttribute da[1]; da[0].id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
      da[0].value.programmaticStreamSerializationAllowed = 1;
      CUlaunchConfig dc = {}; dc.gridDimX = dc.gridDimY = dc.gridDimZ = 1; dc.blockDimX = 128; dc.blockDimY = dc.blockDimZ = 1;
      dc.hStream = st; dc.attrs = da; dc.numAttrs = pdl;
      void* args[] = {&t};
      CUresult r = cuLaunchKernelEx(&dc, f, args, nullptr);
      if (r) printf("cuLaunchKernelEx %d\n", (int)r);
    }
    cudaStreamSynchronize(st);
    cudaMemcpy(h, t, 32, cudaMemcpyDeviceToHost);
    printf("%s, pdl %d (%s): secondary starts %+.2f us after the primary's end (primary ran %.0f us), its wait returns %+.2f\n",
           rep < 2 ? "runtime API" : "driver API", pdl, cudaGetErrorString(e), ((long long)(h[2] - h[1])) / 1e3, (h[1] - h[0]) / 1e3, ((long long)(h[3] - h[1])) / 1e3);
  }

  CUfunction np_, ns_; cudaGetFuncBySymbol(&np_, (const void*)primary); cudaGetFuncBySymbol(&ns_, (const void*)secondary);
  run_pair("nvcc/nvcc          ", np_, ns_, t, st);
  const char* archs[] = {"-arch=sm_90", "-arch=compute_90"};
  for (int k = 0; k < 2; k++) {
    CUmodule m = nvrtc_module(archs[k], k == 0);
    CUfunction rp, rs; cuModuleGetFunction(&rp, m, "primary"); cuModuleGetFunction(&rs, m, "secondary");
    char w[64];
    snprintf(w, 64, "nvrtc %-12s both", archs[k] + 6); run_pair(w, rp, rs, t, st);
    snprintf(w, 64, "nvcc/nvrtc %-8s", archs[k] + 6); run_pair(w, np_, rs, t, st);
    snprintf(w, 64, "nvrtc %-8s/nvcc", archs[k] + 6); run_pair(w, rp, ns_, t, st);
  }
}
