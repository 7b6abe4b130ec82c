/* Flash attention on the tensor cores' mma.sync (umx_core::fast::scaled_dot_product_attention
   on the GPU for query blocks, in bfloat16 or float16): FlashAttention-2's schedules.

   Forward (umx_flash): a block takes BR = WARPS * 16 * MT query rows of one head; each warp MT
   tiles of 16 rows. Key and value tiles of BC rows stream through shared memory in two stages
   (cp.async: the next tile loads while this one is used); S = Q K^T and O += P V run as
   m16n8k16 products with float32 accumulators, the softmax online in registers (exp2 with the
   scale folded in). With `lse` it also writes each row's log-sum-exp of the scaled scores
   (natural log, float32; +inf for a row that sees no key), which the backward pass reuses.

   Backward (BACKWARD 1): umx_flash_delta takes each row's dot(dO, O); umx_flash_dq gives dQ
   a block of QW * 16 query rows at a time, sweeping the keys (tiles of QBC); umx_flash_dkv
   gives dK and dV a block of KW * 16 keys at a time, sweeping the query rows of every query
   head that shares them (tiles of KBR). Both recompute P = exp(S - lse) from the saved
   log-sum-exp; neither needs atomics, and the group's sum over query heads is a loop.

   Rows in shared memory have their 16-byte chunks permuted by row (`sw`) so that ldmatrix
   reads hit distinct banks. Defines set by the caller: D (64, 128 or 256), IS_F16, CAUSAL,
   BACKWARD; forward: BC, WARPS, MT; backward: QW, QBC, KW, KBR. The helpers this file shares with
   flash_sm90.cu (cp.async, pack2, ex2, ...) are in flash_common.cuh, placed before it. */

UMX_FN void ldsm4(u32* r, u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
UMX_FN void ldsm4t(u32* r, u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
UMX_FN void mma(float* c, const u32* a, u32 b0, u32 b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32." MMA_T "." MMA_T ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/* Element offset of 16-byte chunk `c` of row `r` in a tile of rows of D elements: the chunks
   of eight consecutive rows are permuted so that ldmatrix's eight row reads hit distinct
   banks. */
UMX_FN int sw(int r, int c) { return r * D + ((c ^ (r & 7)) << 3); }
/* Fragments from row-major tiles of rows of D elements at shared address `base` (bytes).
   ldA: the A operand (16 x 16) of rows row0.. and columns 16 kc..; ldB: the B operands of two
   n-blocks (b[0], b[1]: n0..n0 + 7; b[2], b[3]: n0 + 8..) where the tile's rows are n and its
   columns k (columns 16 kc..); ldBt: the same where the tile's rows are k (k0..k0 + 15) and
   its columns n (16 nc..). */
UMX_FN void ldA(u32* a, u32 base, int row0, int kc) {
  int lane = threadIdx.x % 32;
  ldsm4(a, base + 2 * sw(row0 + lane % 16, kc * 2 + lane / 16));
}
UMX_FN void ldB(u32* b, u32 base, int n0, int kc) {
  int lane = threadIdx.x % 32;
  ldsm4(b, base + 2 * sw(n0 + lane % 8 + 8 * (lane / 16), kc * 2 + (lane / 8) % 2));
}
UMX_FN void ldBt(u32* b, u32 base, int k0, int nc) {
  int lane = threadIdx.x % 32;
  ldsm4t(b, base + 2 * sw(k0 + lane % 8 + 8 * ((lane / 8) % 2), nc * 2 + lane / 16));
}

#if !BACKWARD
#define BR (WARPS * 16 * MT)

extern "C" __global__ void __launch_bounds__(WARPS * 32) umx_flash(u16* out, float* lse, const u16* q,
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
/* The K and V tiles in one loop: copying them through one function, a tile after the other,
   measured 3-5% slower forward and backward (187-190 against 195-196 TFLOP/s, H200). */
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
      if (lse && lane % 4 == 0 && row < Lq)
        lse[bh * lq + row] = L > 0.f ? (m[mt][hf] + __log2f(L)) * 0.69314718055994531f : INFINITY;
      if (row < Lq) {
        u32* op = (u32*)(out + ((bh * lq) + row) * D);
#pragma unroll
        for (int nb = 0; nb < D / 8; nb++)
          op[nb * 4 + lane % 4] = pack2(o[mt][nb][2 * hf] * inv, o[mt][nb][2 * hf + 1] * inv);
      }
    }
}
#endif

#if BACKWARD

/* delta[r] = dot(dO[r], O[r]) in float32, a warp a row; dO and O row-major (B * Hq * Lq, D).
   A row that sees no key (its log-sum-exp +inf, its output NaN) gets 0: it takes no part in
   the gradients. */
extern "C" __global__ void umx_flash_delta(float* delta, const u16* dout, const u16* out,
    const float* lse, long long rows) {
  long long r = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const u32* a = (const u32*)(dout + r * D);
  const u32* b = (const u32*)(out + r * D);
  float acc = 0.f;
  for (int c = lane; c < D / 2; c += 32) {
    float x0, x1, y0, y1;
    unpack2(a[c], x0, x1);
    unpack2(b[c], y0, y1);
    acc = fmaf(x0, y0, fmaf(x1, y1, acc));
  }
#pragma unroll
  for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) delta[r] = lse[r] == INFINITY ? 0.f : acc;
}

/* Writes a warp's 16 x D float32 tile `acc` times `mul` as 16-bit rows row0.. of `dst` (row
   stride D), rows below `rows`. */
UMX_FN void store_rows(u16* dst, float (*acc)[4], float mul, int row0, int rows) {
  int lane = threadIdx.x % 32;
#pragma unroll
  for (int hf = 0; hf < 2; hf++) {
    int row = row0 + lane / 4 + 8 * hf;
    if (row < rows) {
      u32* p = (u32*)(dst + (long long)row * D);
#pragma unroll
      for (int nb = 0; nb < D / 8; nb++)
        p[nb * 4 + lane % 4] = pack2(acc[nb][2 * hf] * mul, acc[nb][2 * hf + 1] * mul);
    }
  }
}

/* dQ = scale * dS K, dS = P * (dP - delta), dP = dO V^T, P = exp(scale * Q K^T - lse): a block
   of QW * 16 query rows of one head (a warp 16 rows) over key tiles of QBC rows. */
#define QBR (QW * 16)
extern "C" __global__ void __launch_bounds__(QW * 32) umx_flash_dq(u16* dq, const u16* q,
    const u16* k, const u16* v, const u16* dout, const float* lse, const float* delta,
    long long bhq, long long hq, long long lq, long long lk, long long group, long long nqb,
    float scale, long long qs0, long long qs1, long long qs2, long long ks0, long long ks1,
    long long ks2, long long vs0, long long vs1, long long vs2) {
  extern __shared__ __align__(128) u16 sm[];
  u16* sQ = sm;
  u16* sO = sQ + QBR * D;
  u16* sK = sO + QBR * D;
  u16* sV = sK + 2 * QBC * D;
  long long bh = blockIdx.x % bhq;
  long long qb = nqb - 1 - blockIdx.x / bhq;
  long long bi = bh / hq, h = bh % hq, kh = h / group;
  const u16* qp = q + bi * qs0 + h * qs1;
  const u16* op = dout + bh * lq * D;
  const u16* kp = k + bi * ks0 + kh * ks1;
  const u16* vp = v + bi * vs0 + kh * vs1;
  int Lq = (int)lq, Lk = (int)lk, q0 = (int)qb * QBR;
  int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  float scale_log2 = scale * LOG2E;
  int kend = Lk;
#if CAUSAL
  kend = min(Lk, max(0, q0 + QBR + Lk - Lq));
#endif
  int ntiles = (kend + QBC - 1) / QBC;
  for (int i = tid; i < QBR * CH; i += QW * 32) {
    int r = i / CH, c = i % CH;
    bool ok = q0 + r < Lq;
    cp16(smem_addr(sQ + sw(r, c)), qp + (ok ? (q0 + r) * qs2 + c * 8 : 0), ok);
    cp16(smem_addr(sO + sw(r, c)), op + (ok ? (q0 + r) * D + c * 8 : 0), ok);
  }
#define LOAD_KV(t, st)                                                              \
  for (int i = tid; i < QBC * CH; i += QW * 32) {                                   \
    int r = i / CH, c = i % CH;                                                     \
    int j = (t) * QBC + r;                                                          \
    bool ok = j < Lk;                                                               \
    cp16(smem_addr(sK + (st) * QBC * D + sw(r, c)), kp + (ok ? j * ks2 + c * 8 : 0), ok); \
    cp16(smem_addr(sV + (st) * QBC * D + sw(r, c)), vp + (ok ? j * vs2 + c * 8 : 0), ok); \
  }
  if (ntiles > 0) { LOAD_KV(0, 0); }
  cp_commit();
  int wrow = warp * 16;
  /* This lane's two rows: their log-sum-exp (base 2) and delta; rows past the end get no
     weight. */
  float l2[2], dl[2];
#pragma unroll
  for (int hf = 0; hf < 2; hf++) {
    int row = q0 + wrow + lane / 4 + 8 * hf;
    bool ok = row < Lq;
    l2[hf] = ok ? lse[bh * lq + row] * LOG2E : INFINITY;
    dl[hf] = ok ? delta[bh * lq + row] : 0.f;
  }
  float acc[D / 8][4];
#pragma unroll
  for (int nb = 0; nb < D / 8; nb++)
#pragma unroll
    for (int e = 0; e < 4; e++) acc[nb][e] = 0.f;
  u32 sq = smem_addr(sQ), so = smem_addr(sO), sk0 = smem_addr(sK), sv0 = smem_addr(sV);
  for (int t = 0; t < ntiles; t++) {
    int st = t & 1;
    if (t + 1 < ntiles) { LOAD_KV(t + 1, st ^ 1); }
    cp_commit();
    cp_wait1();
    __syncthreads();
    u32 sk = sk0 + st * QBC * D * 2, sv = sv0 + st * QBC * D * 2;
    float s[QBC / 8][4], dp[QBC / 8][4];
#pragma unroll
    for (int nb = 0; nb < QBC / 8; nb++)
#pragma unroll
      for (int e = 0; e < 4; e++) s[nb][e] = dp[nb][e] = 0.f;
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
      u32 a[4], ao[4];
      ldA(a, sq, wrow, kc);
      ldA(ao, so, wrow, kc);
#pragma unroll
      for (int np = 0; np < QBC / 16; np++) {
        u32 b[4];
        ldB(b, sk, np * 16, kc);
        mma(s[2 * np], a, b[0], b[1]);
        mma(s[2 * np + 1], a, b[2], b[3]);
        ldB(b, sv, np * 16, kc);
        mma(dp[2 * np], ao, b[0], b[1]);
        mma(dp[2 * np + 1], ao, b[2], b[3]);
      }
    }
    int kbase = t * QBC;
    bool need_mask = kbase + QBC > Lk;
#if CAUSAL
    need_mask = need_mask || kbase + QBC - 1 > q0 + Lk - Lq;
#endif
#pragma unroll
    for (int nb = 0; nb < QBC / 8; nb++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        int hf = e >> 1;
        float p = ex2(fmaf(s[nb][e], scale_log2, -l2[hf]));
        if (need_mask) {
          int key = kbase + nb * 8 + 2 * (lane % 4) + (e & 1);
          bool ok = key < Lk;
#if CAUSAL
          int row = q0 + wrow + lane / 4 + 8 * hf;
          ok = ok && key <= row + Lk - Lq;
#endif
          if (!ok) p = 0.f;
        }
        s[nb][e] = p * (dp[nb][e] - dl[hf]);
      }
#pragma unroll
    for (int kc = 0; kc < QBC / 16; kc++) {
      u32 a[4];
      a[0] = pack2(s[2 * kc][0], s[2 * kc][1]);
      a[1] = pack2(s[2 * kc][2], s[2 * kc][3]);
      a[2] = pack2(s[2 * kc + 1][0], s[2 * kc + 1][1]);
      a[3] = pack2(s[2 * kc + 1][2], s[2 * kc + 1][3]);
#pragma unroll
      for (int dc = 0; dc < D / 16; dc++) {
        u32 b[4];
        ldBt(b, sk, kc * 16, dc);
        mma(acc[2 * dc], a, b[0], b[1]);
        mma(acc[2 * dc + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();
  }
#undef LOAD_KV
  store_rows(dq + (bh * lq + q0) * D, acc, scale, wrow, Lq - q0);
}

/* dV = P^T dO and dK = scale * dS^T Q: a block of KW * 16 keys of one key head (a warp 16
   keys) over tiles of KBR query rows of each query head of its group. The products are
   transposed: S^T = K Q^T and dP^T = V dO^T, with keys as rows. DK and DV pick the
   gradients taken (umx_flash_dkv both; umx_flash_dk and umx_flash_dv one each, for head dim
   256, where both accumulators would not fit the registers). */
#define KBC (KW * 16)
#define DKV_PARAMS u16 *dk, u16 *dv, const u16 *q, const u16 *k, const u16 *v, \
    const u16 *dout, const float *lse, const float *delta, long long bhk, long long hk, \
    long long lq, long long lk, long long group, float scale, long long qs0, long long qs1, \
    long long qs2, long long ks0, long long ks1, long long ks2, long long vs0, long long vs1, \
    long long vs2
#define DKV_ARGS dk, dv, q, k, v, dout, lse, delta, bhk, hk, lq, lk, group, scale, qs0, qs1, \
    qs2, ks0, ks1, ks2, vs0, vs1, vs2
template <bool DK, bool DV>
__device__ __forceinline__ void dkv(DKV_PARAMS) {
  extern __shared__ __align__(128) u16 sm[];
  u16* sK = sm;
  u16* sV = sK + KBC * D;
  u16* sQ = sV + KBC * D;
  u16* sO = sQ + 2 * KBR * D;
  float* sL = (float*)(sO + 2 * KBR * D);
  float* sD = sL + 2 * KBR;
  long long bkh = blockIdx.x % bhk;
  long long kb = blockIdx.x / bhk;
  long long bi = bkh / hk, kh = bkh % hk;
  long long hq = hk * group;
  const u16* kp = k + bi * ks0 + kh * ks1;
  const u16* vp = v + bi * vs0 + kh * vs1;
  int Lq = (int)lq, Lk = (int)lk, k0 = (int)kb * KBC;
  int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  float scale_log2 = scale * LOG2E;
  /* The first query tile with a row that sees one of these keys. */
  int qstart = 0;
#if CAUSAL
  qstart = max(0, k0 - (Lk - Lq)) / KBR;
#endif
  int nqt = (Lq + KBR - 1) / KBR;
  int per_head = max(0, nqt - qstart);
  int iters = per_head * (int)group;
  for (int i = tid; i < KBC * CH; i += KW * 32) {
    int r = i / CH, c = i % CH;
    int j = k0 + r;
    bool ok = j < Lk;
    cp16(smem_addr(sK + sw(r, c)), kp + (ok ? j * ks2 + c * 8 : 0), ok);
    cp16(smem_addr(sV + sw(r, c)), vp + (ok ? j * vs2 + c * 8 : 0), ok);
  }
  /* Iteration `it` takes query tile qstart + it % per_head of query head kh * group +
     it / per_head. */
#define LOAD_Q(it, st)                                                                   \
  {                                                                                      \
    long long h = kh * group + (it) / per_head;                                          \
    int q0 = (qstart + (it) % per_head) * KBR;                                           \
    const u16* qp = q + bi * qs0 + h * qs1;                                              \
    long long rb = (bi * hq + h) * lq;                                                   \
    for (int i = tid; i < KBR * CH; i += KW * 32) {                                      \
      int r = i / CH, c = i % CH;                                                        \
      bool ok = q0 + r < Lq;                                                             \
      cp16(smem_addr(sQ + (st) * KBR * D + sw(r, c)), qp + (ok ? (q0 + r) * qs2 + c * 8 : 0), ok); \
      cp16(smem_addr(sO + (st) * KBR * D + sw(r, c)), dout + (ok ? (rb + q0 + r) * D + c * 8 : 0), ok); \
    }                                                                                    \
    for (int r = tid; r < KBR; r += KW * 32) {                                           \
      bool ok = q0 + r < Lq;                                                             \
      cp4(smem_addr(sL + (st) * KBR + r), lse + (ok ? rb + q0 + r : 0), ok);             \
      cp4(smem_addr(sD + (st) * KBR + r), delta + (ok ? rb + q0 + r : 0), ok);           \
    }                                                                                    \
  }
  if (iters > 0) LOAD_Q(0, 0);
  cp_commit();
  float gk[D / 8][4], gv[D / 8][4];
#pragma unroll
  for (int nb = 0; nb < D / 8; nb++)
#pragma unroll
    for (int e = 0; e < 4; e++) gk[nb][e] = gv[nb][e] = 0.f;
  int wkey = warp * 16;
  u32 skk = smem_addr(sK), svv = smem_addr(sV), sq0 = smem_addr(sQ), so0 = smem_addr(sO);
  for (int it = 0; it < iters; it++) {
    int st = it & 1;
    if (it + 1 < iters) LOAD_Q(it + 1, st ^ 1);
    cp_commit();
    cp_wait1();
    __syncthreads();
    int q0 = (qstart + it % per_head) * KBR;
    u32 sq = sq0 + st * KBR * D * 2, so = so0 + st * KBR * D * 2;
    const float* L = sL + st * KBR;
    const float* Dl = sD + st * KBR;
    float s[KBR / 8][4], dp[KBR / 8][4];
#pragma unroll
    for (int nb = 0; nb < KBR / 8; nb++)
#pragma unroll
      for (int e = 0; e < 4; e++) s[nb][e] = dp[nb][e] = 0.f;
#pragma unroll
    for (int kc = 0; kc < D / 16; kc++) {
      u32 ak[4], av[4];
      ldA(ak, skk, wkey, kc);
      if (DK) ldA(av, svv, wkey, kc);
#pragma unroll
      for (int np = 0; np < KBR / 16; np++) {
        u32 b[4];
        ldB(b, sq, np * 16, kc);
        mma(s[2 * np], ak, b[0], b[1]);
        mma(s[2 * np + 1], ak, b[2], b[3]);
        if (DK) {
          ldB(b, so, np * 16, kc);
          mma(dp[2 * np], av, b[0], b[1]);
          mma(dp[2 * np + 1], av, b[2], b[3]);
        }
      }
    }
    bool need_mask = q0 + KBR > Lq;
#if CAUSAL
    need_mask = need_mask || k0 + KBC - 1 > q0 + Lk - Lq;
#endif
    /* s becomes P^T (16-bit, kept for dV) and dp becomes dS^T. */
#pragma unroll
    for (int nb = 0; nb < KBR / 8; nb++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        int col = nb * 8 + 2 * (lane % 4) + (e & 1);
        float p = ex2(fmaf(s[nb][e], scale_log2, -L[col] * LOG2E));
        if (need_mask) {
          int row = q0 + col;
          bool ok = row < Lq;
#if CAUSAL
          int key = k0 + wkey + lane / 4 + 8 * (e >> 1);
          ok = ok && key <= row + Lk - Lq;
#endif
          if (!ok) p = 0.f;
        }
        s[nb][e] = p;
        dp[nb][e] = p * (dp[nb][e] - Dl[col]);
      }
#pragma unroll
    for (int kc = 0; kc < KBR / 16; kc++) {
      u32 a[4], g[4];
      a[0] = pack2(s[2 * kc][0], s[2 * kc][1]);
      a[1] = pack2(s[2 * kc][2], s[2 * kc][3]);
      a[2] = pack2(s[2 * kc + 1][0], s[2 * kc + 1][1]);
      a[3] = pack2(s[2 * kc + 1][2], s[2 * kc + 1][3]);
      g[0] = pack2(dp[2 * kc][0], dp[2 * kc][1]);
      g[1] = pack2(dp[2 * kc][2], dp[2 * kc][3]);
      g[2] = pack2(dp[2 * kc + 1][0], dp[2 * kc + 1][1]);
      g[3] = pack2(dp[2 * kc + 1][2], dp[2 * kc + 1][3]);
#pragma unroll
      for (int dc = 0; dc < D / 16; dc++) {
        u32 b[4];
        if (DV) {
          ldBt(b, so, kc * 16, dc);
          mma(gv[2 * dc], a, b[0], b[1]);
          mma(gv[2 * dc + 1], a, b[2], b[3]);
        }
        if (DK) {
          ldBt(b, sq, kc * 16, dc);
          mma(gk[2 * dc], g, b[0], b[1]);
          mma(gk[2 * dc + 1], g, b[2], b[3]);
        }
      }
    }
    __syncthreads();
  }
#undef LOAD_Q
  long long base = (bkh * lk + k0) * D;
  if (DK) store_rows(dk + base, gk, scale, wkey, Lk - k0);
  if (DV) store_rows(dv + base, gv, 1.f, wkey, Lk - k0);
}
extern "C" __global__ void __launch_bounds__(KW * 32) umx_flash_dkv(DKV_PARAMS) {
  dkv<true, true>(DKV_ARGS);
}
extern "C" __global__ void __launch_bounds__(KW * 32) umx_flash_dk(DKV_PARAMS) {
  dkv<true, false>(DKV_ARGS);
}
extern "C" __global__ void __launch_bounds__(KW * 32) umx_flash_dv(DKV_PARAMS) {
  dkv<false, true>(DKV_ARGS);
}
#endif
