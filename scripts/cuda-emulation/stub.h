// Enough of CUDA for g++ to run a generated kernel on the CPU: grid indices as thread-locals,
// one std::thread per lane, and warp shuffles through a barrier. See scripts/quantized-kernels-on-cpu.sh.
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>
#define __device__
#define __global__
#define __forceinline__ inline
struct umx_dim3 { unsigned x, y, z; };
thread_local umx_dim3 blockIdx, threadIdx;
umx_dim3 blockDim, gridDim;
/* What umx's launch defines before a source that waits for the kernel before it itself. */
inline void umx_pdl_wait() {}
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
static std::barrier<>* umx_bar;
static float umx_shfl[32];
inline float __shfl_xor_sync(unsigned, float v, int off) {
  int l = threadIdx.x & 31;
  umx_shfl[l] = v; umx_bar->arrive_and_wait();
  float r = umx_shfl[l ^ off]; umx_bar->arrive_and_wait();
  return r;
}
