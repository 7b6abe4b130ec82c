/* Flash attention, forward (umx_core::fast::scaled_dot_product_attention on the GPU for query
   blocks, in bfloat16 or float16): the FlashAttention-2 schedule on the tensor cores' mma.sync.
   A block takes BR = WARPS * 16 * MT query rows of one head; each warp MT tiles of 16 rows.
   Key and value tiles of BC rows stream through shared memory in two stages (cp.async: the
   next tile loads while this one is used); S = Q K^T and O += P V run as m16n8k16 products
   with float32 accumulators, the softmax online in registers (exp2 with the scale folded in).
   Rows in shared memory have their 16-byte chunks permuted by row (`sw`) so that ldmatrix
   reads hit distinct banks. Defines set by the caller: D (64, 128 or 256), BC, WARPS, MT, IS_F16,
   CAUSAL. */
#define UMX_FN __device__ __forceinline__
#define INFINITY __int_as_float(0x7f800000)
#define BR (WARPS * 16 * MT)
#define CH (D / 8)
typedef unsigned short u16;
typedef unsigned int u32;

UMX_FN u32 smem_addr(const void* p) {
  u32 r;
  asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
  return r;
}
UMX_FN void cp16(u32 dst, const void* src, bool ok) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(ok ? 16 : 0));
}
UMX_FN void cp_commit() { asm volatile("cp.async.commit_group;"); }
UMX_FN void cp_wait1() { asm volatile("cp.async.wait_group 1;" ::: "memory"); }
UMX_FN void ldsm4(u32* r, u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
UMX_FN void ldsm4t(u32* r, u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
#if IS_F16
#define MMA_T "f16"
#else
#define MMA_T "bf16"
#endif
UMX_FN void mma(float* c, const u32* a, u32 b0, u32 b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32." MMA_T "." MMA_T ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/* Two floats as one register of two 16-bit values, `lo` in the low half. */
UMX_FN u32 pack2(float lo, float hi) {
  u32 r;
  asm("cvt.rn." MMA_T "x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
UMX_FN float ex2(float x) { float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }
/* Element offset of 16-byte chunk `c` of row `r` in a tile of rows of D elements: the chunks
   of eight consecutive rows are permuted so that ldmatrix's eight row reads hit distinct
   banks. */
UMX_FN int sw(int r, int c) { return r * D + ((c ^ (r & 7)) << 3); }

extern "C" __global__ void __launch_bounds__(WARPS * 32) umx_flash(u16* out, const u16* q,
    const u16* k, const u16* v, long long bhq, long long hq, long long lq, long long lk,
    long long group, long long nqb, float scale_log2, long long qs0, long long qs1,
    long long qs2, long long ks0, long long ks1, long long ks2, long long vs0, long long vs1,
    long long vs2) {
  extern __shared__ __align__(128) u16 sm[];
  u16* sQ = sm;
  u16* sK = sm + BR * D;
  u16* sV = sK + 2 * BC * D;
  long long bh = blockIdx.x % bhq;
  long long qb = nqb - 1 - blockIdx.x / bhq;
  long long bi = bh / hq, h = bh % hq, kh = h / group;
  const u16* qp = q + bi * qs0 + h * qs1;
  const u16* kp = k + bi * ks0 + kh * ks1;
  const u16* vp = v + bi * vs0 + kh * vs1;
  /* Lengths fit 32 bits (the caller checks): offsets within a head are ints. */
  int Lq = (int)lq, Lk = (int)lk, q0 = (int)qb * BR;
  int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  int kend = Lk;
#if CAUSAL
  kend = min(Lk, max(0, q0 + BR + Lk - Lq));
#endif
  int ntiles = (kend + BC - 1) / BC;
  for (int i = tid; i < BR * CH; i += WARPS * 32) {
    int r = i / CH, c = i % CH;
    bool ok = q0 + r < Lq;
    cp16(smem_addr(sQ + sw(r, c)), qp + (ok ? (q0 + r) * qs2 + c * 8 : 0), ok);
  }
#define LOAD_KV(t, st)                                                              \
  for (int i = tid; i < BC * CH; i += WARPS * 32) {                                 \
    int r = i / CH, c = i % CH;                                                     \
    int j = (t) * BC + r;                                                           \
    bool ok = j < Lk;                                                               \
    cp16(smem_addr(sK + (st) * BC * D + sw(r, c)), kp + (ok ? j * ks2 + c * 8 : 0), ok); \
    cp16(smem_addr(sV + (st) * BC * D + sw(r, c)), vp + (ok ? j * vs2 + c * 8 : 0), ok); \
  }
  if (ntiles > 0) { LOAD_KV(0, 0); }
  cp_commit();
  float o[MT][D / 8][4];
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int nb = 0; nb < D / 8; nb++)
#pragma unroll
      for (int e = 0; e < 4; e++) o[mt][nb][e] = 0.f;
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.f;
  }
  int wrow = warp * 16 * MT;
  u32 sq = smem_addr(sQ), sk0 = smem_addr(sK), sv0 = smem_addr(sV);
  for (int t = 0; t < ntiles; t++) {
    int st = t & 1;
    if (t + 1 < ntiles) { LOAD_KV(t + 1, st ^ 1); }
    cp_commit();
    cp_wait1();
    __syncthreads();
    u32 sk = sk0 + st * BC * D * 2, sv = sv0 + st * BC * D * 2;
    float s[MT][BC / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int nb = 0; nb < BC / 8; nb++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[mt][nb][e] = 0.f;
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
      u32 a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
        ldsm4(a[mt], sq + 2 * sw(wrow + mt * 16 + lane % 16, kc * 2 + lane / 16));
#pragma unroll
      for (int np = 0; np < BC / 16; np++) {
        u32 b[4];
        ldsm4(b, sk + 2 * sw(np * 16 + lane % 8 + 8 * (lane / 16), kc * 2 + (lane / 8) % 2));
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          mma(s[mt][2 * np], a[mt], b[0], b[1]);
          mma(s[mt][2 * np + 1], a[mt], b[2], b[3]);
        }
      }
    }
    int kbase = t * BC;
    bool need_mask = kbase + BC > Lk;
#if CAUSAL
    need_mask = need_mask || kbase + BC - 1 > q0 + Lk - Lq;
#endif
    if (need_mask) {
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nb = 0; nb < BC / 8; nb++)
#pragma unroll
          for (int e = 0; e < 4; e++) {
            int key = kbase + nb * 8 + 2 * (lane % 4) + (e & 1);
            bool ok = key < Lk;
#if CAUSAL
            int row = q0 + wrow + mt * 16 + lane / 4 + 8 * (e >> 1);
            ok = ok && key <= row + Lk - Lq;
#endif
            if (!ok) s[mt][nb][e] = -INFINITY;
          }
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int hf = 0; hf < 2; hf++) {
        float mx = -INFINITY;
#pragma unroll
        for (int nb = 0; nb < BC / 8; nb++) mx = fmaxf(mx, fmaxf(s[mt][nb][2 * hf], s[mt][nb][2 * hf + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float mnew = fmaxf(m[mt][hf], mx * scale_log2);
        float mref = mnew == -INFINITY ? 0.f : mnew;
        float corr = ex2(m[mt][hf] - mref);
        m[mt][hf] = mnew;
        float rs = 0.f;
#pragma unroll
        for (int nb = 0; nb < BC / 8; nb++)
#pragma unroll
          for (int e = 0; e < 2; e++) {
            float p = ex2(fmaf(s[mt][nb][2 * hf + e], scale_log2, -mref));
            s[mt][nb][2 * hf + e] = p;
            rs += p;
          }
        l[mt][hf] = l[mt][hf] * corr + rs;
#pragma unroll
        for (int nb = 0; nb < D / 8; nb++) {
          o[mt][nb][2 * hf] *= corr;
          o[mt][nb][2 * hf + 1] *= corr;
        }
      }
#pragma unroll
    for (int kc = 0; kc < BC / 16; kc++) {
      u32 a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
        a[mt][0] = pack2(s[mt][2 * kc][0], s[mt][2 * kc][1]);
        a[mt][1] = pack2(s[mt][2 * kc][2], s[mt][2 * kc][3]);
        a[mt][2] = pack2(s[mt][2 * kc + 1][0], s[mt][2 * kc + 1][1]);
        a[mt][3] = pack2(s[mt][2 * kc + 1][2], s[mt][2 * kc + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; dp++) {
        u32 b[4];
        ldsm4t(b, sv + 2 * sw(kc * 16 + lane % 8 + 8 * ((lane / 8) % 2), dp * 2 + lane / 16));
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          mma(o[mt][2 * dp], a[mt], b[0], b[1]);
          mma(o[mt][2 * dp + 1], a[mt], b[2], b[3]);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
      float L = l[mt][hf];
      L += __shfl_xor_sync(0xffffffffu, L, 1);
      L += __shfl_xor_sync(0xffffffffu, L, 2);
      float inv = 1.f / L;
      int row = q0 + wrow + mt * 16 + lane / 4 + 8 * hf;
      if (row < Lq) {
        u32* op = (u32*)(out + ((bh * lq) + row) * D);
#pragma unroll
        for (int nb = 0; nb < D / 8; nb++)
          op[nb * 4 + lane % 4] = pack2(o[mt][nb][2 * hf] * inv, o[mt][nb][2 * hf + 1] * inv);
      }
    }
}
