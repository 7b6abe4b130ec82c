/* Flash attention on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a):
   umx_core::fast::scaled_dot_product_attention on the GPU for query blocks on sm_90. The
   forward pass (BACKWARD 0) takes the arguments of flash.cu's umx_flash, then a counter of
   query blocks taken (zeroed; null: each block takes one) and the tensor maps of Q, K and V;
   the backward pass (BACKWARD 1) is described where it starts below. The forward pass
   follows FlashAttention-3's schedule:

   - A query block is BR = 64 * WG query rows of one head. A block of the launch (one an SM)
     takes query block after query block, its own first and then the launch's next by an
     atomic counter, so that one's loads run under the last one's products and its stores
     (a block a query block, B=4 H=16 L=2048 D=128 on an H200: causal 465 TFLOP/s, full
     561; this way 484 and 576, and 511 and 607 without the warpgroups' turns below; D=64
     H=32 306 -> 345 and 379 -> 410). WG consumer warpgroups take 64 rows each; one thread
     of a producer warpgroup asks the copy engine (TMA) for each query block and each key
     and value tile of BN rows, into NS stages of shared memory, each signalled full on an
     mbarrier; the consumers signal a stage empty when done with it, and the queries once
     their last product with them is in. The producer gives its registers to the consumers
     (setmaxnreg).
   - A consumer computes S = Q K^T with Q and K in shared memory; while the tensor cores run
     S of tile t + 1 and then O += P V of tile t (P from registers: the accumulator fragment
     of S is the A fragment of the product; V transposed by the instruction), it computes
     the softmax of tile t + 1 online in registers (exp2, the scale folded in). With
     PINGPONG the two consumer warpgroups take turns issuing their products (named
     barriers), so that one's softmax overlaps the other's products: since a block takes
     several query blocks, faster only for causal head dim 64 (the caller's choice).
   - Heads run in groups of HEADS_AT_ONCE, their query blocks longest causal rows first, so
     that the group's keys and values stay in L2.

   Tiles sit in shared memory in wgmma's 128-byte-swizzled layout (TMA's SWIZZLE_128B):
   64-column panels (128 bytes a row), rows 128 bytes apart, the 16-byte chunk c of row r
   stored at chunk c ^ (r % 8); every panel starts at a multiple of 1024 bytes. Defines set
   by the caller: D (64 or 128), WG (1 or 2; the backward pass 2), NS, IS_F16, CAUSAL,
   BACKWARD; the forward pass also BN (64 or 128). The helpers this file shares with
   flash.cu (cp.async, pack2, ex2, ...) are in flash_common.cuh, placed before it. */
#define BR (64 * WG)
#ifndef NS
#define NS 2
#endif
#ifndef PINGPONG
#define PINGPONG 0
#endif
#ifndef BACKWARD
#define BACKWARD 0
#endif
#ifndef HEADS_AT_ONCE
#define HEADS_AT_ONCE 8
#endif
/* Registers a thread of the producer warpgroup and of the consumers keep (64K in all). */
#define PRODUCER_REGS 40
#define CONSUMER_REGS ((65536 / 128 - PRODUCER_REGS) / WG / 8 * 8 > 240 ? 240 : (65536 / 128 - PRODUCER_REGS) / WG / 8 * 8)
typedef unsigned long long u64;

UMX_FN void cp_wait_all() { asm volatile("cp.async.wait_group 0;" ::: "memory"); }
/* Shared memory written by cp.async, visible to the tensor cores' (async proxy) reads. */
UMX_FN void fence_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
UMX_FN void wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
UMX_FN void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
UMX_FN void wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
UMX_FN void wg_wait1() { asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory"); }
/* Keeps the compiler from moving accesses of an accumulator across a wgmma fence or wait. */
template <int N>
UMX_FN void hold(float* r) {
#pragma unroll
  for (int i = 0; i < N; i++) asm volatile("" : "+f"(r[i])::"memory");
}
/* A shared-memory matrix descriptor: 128-byte swizzle, byte offsets lbo and sbo. */
UMX_FN u64 desc(u32 addr, u32 lbo, u32 sbo) {
  return (u64)((addr & 0x3FFFF) >> 4) | ((u64)((lbo >> 4) & 0x3FFF) << 16) |
         ((u64)((sbo >> 4) & 0x3FFF) << 32) | (1ull << 62);
}
/* Byte offset of 16-byte chunk c of row r in a swizzled tile of R rows. */
UMX_FN u32 swz(int R, int r, int c) { return (c / 8) * R * 128 + r * 128 + (((c % 8) ^ (r % 8)) << 4); }

/* The warpgroup products m64nNk16 (N = 64 or 128), float32 accumulators d (N / 2 a thread,
   the layout of mma.sync's C fragments, warp w holding rows 16w..16w + 15). ss: A and B from
   shared-memory descriptors, both K-major (rows of K); d is overwritten where scale_d is 0.
   rs: A from registers (the A fragment of mma.sync's m16n8k16, per warp), B from shared
   memory with its rows along K (transposed by the instruction: V's rows are the keys), added
   to d. */
UMX_FN void wgmma_ss_n64(float* d, unsigned long long da, unsigned long long db, int scale_d) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
    "wgmma.mma_async.sync.aligned.m64n64k16.f32." MMA_T "." MMA_T " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
    : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
    : "l"(da), "l"(db), "r"(scale_d));
}
/* The same with both operands transposed by the instruction (A with its rows along K, B
   with its rows along K): dQ = dS K from dS^T and K as they sit in shared memory. */
UMX_FN void wgmma_ss_n64_tt(float* d, unsigned long long da, unsigned long long db, int scale_d) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
    "wgmma.mma_async.sync.aligned.m64n64k16.f32." MMA_T "." MMA_T " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 1, 1;\n}\n"
    : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
    : "l"(da), "l"(db), "r"(scale_d));
}
UMX_FN void wgmma_rs_n64(float* d, const u32* a, unsigned long long db) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
    "wgmma.mma_async.sync.aligned.m64n64k16.f32." MMA_T "." MMA_T " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
    : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}
UMX_FN void wgmma_ss_n128(float* d, unsigned long long da, unsigned long long db, int scale_d) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
    "wgmma.mma_async.sync.aligned.m64n128k16.f32." MMA_T "." MMA_T " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
    : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
    : "l"(da), "l"(db), "r"(scale_d));
}
UMX_FN void wgmma_rs_n128(float* d, const u32* a, unsigned long long db) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
    "wgmma.mma_async.sync.aligned.m64n128k16.f32." MMA_T "." MMA_T " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
    : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

/* mbarriers in shared memory (addresses from smem_addr). */
UMX_FN void bar_init(u32 bar, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
UMX_FN void bar_arrive(u32 bar) {
  asm volatile("{ .reg .b64 st; mbarrier.arrive.shared::cta.b64 st, [%0]; }" ::"r"(bar) : "memory");
}
/* The barrier counts one arrival of this thread once its cp.async copies so far complete. */
UMX_FN void bar_arrive_copies(u32 bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(bar) : "memory");
}
UMX_FN void bar_wait(u32 bar, u32 parity) {
  u32 ok = 0;
  while (!ok)
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(ok) : "r"(bar), "r"(parity) : "memory");
}
/* The driver's tensor map (cuTensorMapEncodeTiled), passed by value. */
struct __align__(64) umx_tensor_map { unsigned long long opaque[16]; };
/* The barrier expects `bytes` more from the copy engine, and this thread arrives. */
UMX_FN void bar_expect(u32 bar, u32 bytes) {
  asm volatile("{ .reg .b64 st; mbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1; }" ::"r"(bar), "r"(bytes) : "memory");
}
/* A box of the 4-d tensor `map` at (c0 innermost .. c3) into shared memory at `dst`, counted
   on `bar` as it lands. */
UMX_FN void tma_load(u32 dst, const umx_tensor_map* map, int c0, int c1, int c2, int c3, u32 bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];"
      ::"r"(dst), "l"((unsigned long long)map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar) : "memory");
}
/* The same box pulled into L2 only. */
UMX_FN void tma_prefetch(const umx_tensor_map* map, int c0, int c1, int c2, int c3) {
  asm volatile("cp.async.bulk.prefetch.tensor.4d.L2.global.tile [%0, {%1, %2, %3, %4}];"
               ::"l"((unsigned long long)map), "r"(c0), "r"(c1), "r"(c2), "r"(c3) : "memory");
}
/* A barrier among the consumer warpgroups only. */
UMX_FN void consumers_sync() { asm volatile("bar.sync 1, %0;" ::"n"(WG * 128) : "memory"); }
/* Warpgroup w's turn to issue its products (barrier 2 + w, with the other warpgroup's
   arrival), and handing the turn to the other one. */
UMX_FN void turn_wait(int w) { asm volatile("bar.sync %0, 256;" ::"r"(2 + w) : "memory"); }
UMX_FN void turn_give(int w) { asm volatile("bar.arrive %0, 256;" ::"r"(2 + (1 - w)) : "memory"); }

#if !BACKWARD
#if BN == 64
#define WG_S wgmma_ss_n64
#else
#define WG_S wgmma_ss_n128
#endif
#if D == 64
#define WG_O wgmma_rs_n64
#else
#define WG_O wgmma_rs_n128
#endif

/* Query block `item` of a launch's bhq * nqb: its head (batch * hq + head) and block of rows.
   Heads run in groups of HEADS_AT_ONCE, whose query blocks run together, the longest causal
   rows first: the group's keys and values stay in L2 while they run (ordered by head first,
   B=4 H=16 L=2048 D=128, 39% of the reads hit L2; head after head, 85%), and the heaviest
   blocks start first. */
UMX_FN void item_at(long long item, long long bhq, long long nqb, long long& bh, long long& qb) {
  long long per = HEADS_AT_ONCE * nqb, grp = item / per, r = item % per;
  long long gsize = min((long long)HEADS_AT_ONCE, bhq - grp * HEADS_AT_ONCE);
  bh = grp * HEADS_AT_ONCE + r % gsize;
  qb = nqb - 1 - r / gsize;
}
/* The key tiles the query rows q0..q0 + BR see. */
UMX_FN int tiles_of(int q0, int Lq, int Lk) {
  int kend = Lk;
#if CAUSAL
  kend = min(Lk, max(0, q0 + BR + Lk - Lq));
#endif
  return (kend + BN - 1) / BN;
}

extern "C" __global__ void __launch_bounds__(WG * 128 + 128, 1) umx_flash(u16* out, float* lse, const u16* q,
    const u16* k, const u16* v, long long bhq, long long hq, long long lq, long long lk,
    long long group, long long nqb, float scale_log2, long long qs0, long long qs1,
    long long qs2, long long ks0, long long ks1, long long ks2, long long vs0, long long vs1,
    long long vs2, int* next_item, const __grid_constant__ umx_tensor_map tq,
    const __grid_constant__ umx_tensor_map tk, const __grid_constant__ umx_tensor_map tv) {
  extern __shared__ __align__(1024) unsigned char smraw[];
  /* full[s]: stage s holds its tile; empty[s]: every consumer thread is done with it; qfull:
     the query block is in, and items[j % 2] says which one the block's j-th is (-1: none
     left); qempty: every consumer thread's last product with it is done. */
  __shared__ __align__(8) unsigned long long bars[2 * NS + 2];
  __shared__ long long items[2];
  u32 base = (smem_addr(smraw) + 1023) & ~1023u;
  u32 sQ = base;
  u32 sK = sQ + BR * D * 2;
  u32 sV = sK + NS * BN * D * 2;
  u32 full = smem_addr(bars), empty = full + NS * 8, qfull = empty + NS * 8, qempty = qfull + 8;
  long long nitems = bhq * nqb;
  int Lq = (int)lq, Lk = (int)lk;
  int tid = threadIdx.x, lane = tid % 32;
  if (tid == 0) {
    for (int i = 0; i < NS; i++) {
      bar_init(full + 8 * i, 1);
      bar_init(empty + 8 * i, WG * 128);
    }
    bar_init(qfull, 1);
    bar_init(qempty, WG * 128);
  }
  __syncthreads();
  if (tid >= WG * 128) {
    /* The producer warpgroup gives its registers to the consumers (setmaxnreg), which hold
       the accumulators; one of its threads asks the copy engine for every tile. */
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(PRODUCER_REGS));
    if (tid != WG * 128) return;
    int g = 0; /* key tiles asked for so far, over all the block's query blocks */
    auto load_tile = [&](int t, int kh, int bi) {
      int st = g % NS, use = g / NS;
      if (use > 0) bar_wait(empty + 8 * st, (use - 1) & 1);
      bar_expect(full + 8 * st, 2 * BN * D * 2);
#pragma unroll
      for (int p = 0; p < D / 64; p++) {
        tma_load(sK + st * BN * D * 2 + p * BN * 128, &tk, p * 64, t * BN, kh, bi, full + 8 * st);
        tma_load(sV + st * BN * D * 2 + p * BN * 128, &tv, p * 64, t * BN, kh, bi, full + 8 * st);
      }
      g++;
    };
    /* The block's own query block first, then the launch's next while any is left (from a
       counter every block takes from). */
    long long item = blockIdx.x;
    for (int j = 0;; j++) {
      if (item >= nitems) {
        if (j > 0) bar_wait(qempty, (j - 1) & 1);
        items[j % 2] = -1;
        bar_arrive(qfull);
        return;
      }
      long long bh, qb;
      item_at(item, bhq, nqb, bh, qb);
      int bi = (int)(bh / hq), h = (int)(bh % hq), kh = h / (int)group;
      int q0 = (int)qb * BR, nt = tiles_of(q0, Lq, Lk);
      /* The first key tile may land while the consumers finish the query block before;
         the queries wait for them to be done with its last, and meanwhile come into L2. */
      if (j > 0)
        for (int p = 0; p < D / 64; p++) tma_prefetch(&tq, p * 64, q0, h, bi);
      if (nt > 0) load_tile(0, kh, bi);
      if (j > 0) bar_wait(qempty, (j - 1) & 1);
      items[j % 2] = item;
      bar_expect(qfull, BR * D * 2);
#pragma unroll
      for (int p = 0; p < D / 64; p++) tma_load(sQ + p * BR * 128, &tq, p * 64, q0, h, bi, qfull);
      for (int t = 1; t < nt; t++) load_tile(t, kh, bi);
      /* The next query block, taken as this one's last tile goes out: a block whose
         products run longer takes its next later (taken as this one started, the causal
         forward pass of B=4 H=16 L=2048 D=128 took 157 us, 142 this way). */
      item = next_item ? gridDim.x + atomicAdd(next_item, 1) : nitems;
    }
  } else {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(CONSUMER_REGS));
  int wg = tid / 128, warp = (tid / 32) % 4;
  /* This thread's rows within the block. */
  int row0 = wg * 64 + warp * 16 + lane / 4;
  bool pingpong = PINGPONG && WG == 2;
  float o[D / 2];
  float s[BN / 2];
  u32 pa[BN / 16][4];
  float m[2], l[2], corr[2];
  int g = 0; /* key tiles done, over all the block's query blocks: tile t is g + t's stage */
  for (int j = 0;; j++) {
  bar_wait(qfull, j & 1);
  long long item = items[j % 2];
  if (item < 0) break;
  long long bh, qb;
  item_at(item, bhq, nqb, bh, qb);
  int q0 = (int)qb * BR, ntiles = tiles_of(q0, Lq, Lk);
  if (ntiles == 0) bar_arrive(qempty);
#pragma unroll
  for (int i = 0; i < D / 2; i++) o[i] = 0.f;
  m[0] = m[1] = -INFINITY;
  l[0] = l[1] = 0.f;
  /* The scores of tile t of this warpgroup's rows, S = Q K_t, into s. */
#define SCORES(t)                                                                           \
  {                                                                                         \
    u32 sk = sK + ((g + (t)) % NS) * BN * D * 2;                                            \
    hold<BN / 2>(s);                                                                        \
    wg_fence();                                                                             \
    _Pragma("unroll") for (int kk = 0; kk < D / 16; kk++) {                                 \
      u64 da = desc(sQ + (kk / 4) * BR * 128 + wg * 64 * 128 + (kk % 4) * 32, 16, 1024);    \
      u64 db = desc(sk + (kk / 4) * BN * 128 + (kk % 4) * 32, 16, 1024);                    \
      WG_S(s, da, db, kk > 0);                                                              \
    }                                                                                       \
    wg_commit();                                                                            \
  }
  /* P = exp(S - max) for tile t in s (masked past the keys and the diagonal), the running
     max and sum updated; corr: how much the output so far shrinks. */
#define SOFTMAX(t)                                                                          \
  {                                                                                         \
    int kbase = (t) * BN;                                                                   \
    bool need_mask = kbase + BN > Lk;                                                       \
    if (CAUSAL) need_mask = need_mask || kbase + BN - 1 > q0 + Lk - Lq;                     \
    if (need_mask) {                                                                        \
      _Pragma("unroll") for (int nb = 0; nb < BN / 8; nb++)                                 \
      _Pragma("unroll") for (int e = 0; e < 4; e++) {                                       \
        int key = kbase + nb * 8 + 2 * (lane % 4) + (e & 1);                                \
        bool ok = key < Lk;                                                                 \
        if (CAUSAL) ok = ok && key <= q0 + row0 + 8 * (e >> 1) + Lk - Lq;                   \
        if (!ok) s[nb * 4 + e] = -INFINITY;                                                 \
      }                                                                                     \
    }                                                                                       \
    _Pragma("unroll") for (int hf = 0; hf < 2; hf++) {                                      \
      float mx = -INFINITY;                                                                 \
      _Pragma("unroll") for (int nb = 0; nb < BN / 8; nb++)                                 \
        mx = fmaxf(mx, fmaxf(s[nb * 4 + 2 * hf], s[nb * 4 + 2 * hf + 1]));                  \
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));                                  \
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));                                  \
      float mnew = fmaxf(m[hf], mx * scale_log2);                                           \
      float mref = mnew == -INFINITY ? 0.f : mnew;                                          \
      corr[hf] = ex2(m[hf] - mref);                                                         \
      m[hf] = mnew;                                                                         \
      float rs = 0.f;                                                                       \
      _Pragma("unroll") for (int nb = 0; nb < BN / 8; nb++)                                 \
      _Pragma("unroll") for (int e = 0; e < 2; e++) {                                       \
        float p = ex2(fmaf(s[nb * 4 + 2 * hf + e], scale_log2, -mref));                     \
        s[nb * 4 + 2 * hf + e] = p;                                                         \
        rs += p;                                                                            \
      }                                                                                     \
      l[hf] = l[hf] * corr[hf] + rs;                                                        \
    }                                                                                       \
  }
  /* P as the A operand of the product with V: the accumulator fragment of S is its
     register fragment, two 16-bit values a register. */
#define PACK_P                                                                              \
  _Pragma("unroll") for (int kc = 0; kc < BN / 16; kc++) {                                  \
    pa[kc][0] = pack2(s[(2 * kc) * 4 + 0], s[(2 * kc) * 4 + 1]);                            \
    pa[kc][1] = pack2(s[(2 * kc) * 4 + 2], s[(2 * kc) * 4 + 3]);                            \
    pa[kc][2] = pack2(s[(2 * kc + 1) * 4 + 0], s[(2 * kc + 1) * 4 + 1]);                    \
    pa[kc][3] = pack2(s[(2 * kc + 1) * 4 + 2], s[(2 * kc + 1) * 4 + 3]);                    \
  }
#define PV(t)                                                                               \
  {                                                                                         \
    u32 sv = sV + ((g + (t)) % NS) * BN * D * 2;                                            \
    hold<D / 2>(o);                                                                         \
    wg_fence();                                                                             \
    _Pragma("unroll") for (int kc = 0; kc < BN / 16; kc++)                                  \
      WG_O(o, pa[kc], desc(sv + kc * 16 * 128, BN * 128, 1024));                            \
    wg_commit();                                                                            \
  }
  /* FlashAttention-3's pipeline within a warpgroup: while the tensor cores run S of tile
     t + 1 and then P V of tile t, the softmax of tile t + 1 runs here. Once the last S is
     in, the producer may load the next query block's queries. */
  if (ntiles > 0) {
    bar_wait(full + 8 * (g % NS), (g / NS) & 1);
    SCORES(0);
    wg_wait0();
    hold<BN / 2>(s);
    if (ntiles == 1) bar_arrive(qempty);
    SOFTMAX(0);
    PACK_P;
  }
  /* With PINGPONG the two consumer warpgroups take turns issuing their products
     (FlashAttention-3's ping-pong), so that one's softmax runs while the other's products
     do. Warpgroup 1 starts each query block by giving warpgroup 0 the first turn and gives
     none after its last. */
  if (pingpong && wg == 1 && ntiles > 1) turn_give(wg);
  for (int t = 0; t + 1 < ntiles; t++) {
    bar_wait(full + 8 * ((g + t + 1) % NS), ((g + t + 1) / NS) & 1);
    if (pingpong) turn_wait(wg);
    SCORES(t + 1);
    PV(t);
    if (pingpong && (wg == 0 || t + 2 < ntiles)) turn_give(wg);
    wg_wait1();
    hold<BN / 2>(s);
    if (t + 2 == ntiles) bar_arrive(qempty);
    SOFTMAX(t + 1);
    wg_wait0();
    hold<D / 2>(o);
    /* Done with this tile's stage: the producer may refill it. */
    bar_arrive(empty + 8 * ((g + t) % NS));
#pragma unroll
    for (int nb = 0; nb < D / 8; nb++) {
      o[nb * 4] *= corr[0];
      o[nb * 4 + 1] *= corr[0];
      o[nb * 4 + 2] *= corr[1];
      o[nb * 4 + 3] *= corr[1];
    }
    PACK_P;
  }
  if (ntiles > 0) {
    PV(ntiles - 1);
    wg_wait0();
    hold<D / 2>(o);
    bar_arrive(empty + 8 * ((g + ntiles - 1) % NS));
  }
  g += ntiles;
#pragma unroll
  for (int hf = 0; hf < 2; hf++) {
    float L = l[hf];
    L += __shfl_xor_sync(0xffffffffu, L, 1);
    L += __shfl_xor_sync(0xffffffffu, L, 2);
    float inv = 1.f / L;
    int row = q0 + row0 + 8 * hf;
    if (lse && lane % 4 == 0 && row < Lq)
      lse[bh * lq + row] = L > 0.f ? (m[hf] + __log2f(L)) * 0.69314718055994531f : INFINITY;
    if (row < Lq) {
      u32* op = (u32*)(out + ((bh * lq) + row) * D);
#pragma unroll
      for (int nb = 0; nb < D / 8; nb++)
        op[nb * 4 + lane % 4] = pack2(o[nb * 4 + 2 * hf] * inv, o[nb * 4 + 2 * hf + 1] * inv);
    }
  }
  }
  }
}
#endif

#if BACKWARD
#if D == 64
#define WG_OB wgmma_rs_n64
#else
#define WG_OB wgmma_rs_n128
#endif
/* Backward (BACKWARD 1), FlashAttention-3's schedule: a block takes BNK = 64 * WG keys of one
   key head and sweeps the query tiles (BM rows) of every query head of its group; consumer
   warpgroup w holds keys 64w.. and their dK and dV accumulators in registers, and a producer
   warpgroup loads each tile's Q, dO, log-sum-exp and delta into NS stages. Per tile, with
   keys as the rows of every product:
     S^T = K Q^T and dP^T = V dO^T (both operands in shared memory),
     P^T = exp(scale S^T - lse), dS^T = P^T (dP^T - delta) in registers,
     dV += P^T dO and dK += dS^T Q (P^T and dS^T from registers, dO and Q transposed by the
     instruction),
     dS^T to shared memory, and the tile's share of dQ = dS K (both transposed by the
     instruction) staged in shared memory, which the copy engine adds to a float32 dQ in
     global memory (cp.reduce.async.bulk.tensor; umx_flash_dq_convert then scales and rounds
     it; umx_flash_bwd_pre zeroes it and takes delta = rowsum(dO O) first).
   Head dim 128: warpgroup w takes dQ's columns 64w.. over all the block's keys (the two
   warpgroups meet on a barrier once both wrote dS^T); 64: its own keys' share of all columns.
   Tried and not kept (bench/RESULTS.md): dQ added with red.global.add.v2.f32 from registers
   (135 us more at B=4 H=16 L=2048 D=128 causal), each warp handing its own rows to the copy
   engine, S^T of the next tile issued before this one's dQ is staged (and S^T and dP^T of the
   next tile issued before this one's dQ is waited for: with dQ's accumulators in flight too,
   ptxas spills and serializes the products, C7515), dV's product issued before dP^T is in
   (with float32 P^T kept: C7512, serialized for want of registers; with dS^T from the
   rounded P^T: causal 453 -> 465 us, full 825 -> 801), three stages (no room in shared
   memory for head dim 128), a block an SM taking key block after key block from a counter as
   the forward pass does, the next one's keys and values prefetched into L2 (the main kernel,
   B=4 H=16 L=2048 on an H200: D=128 causal 444 -> 449 us, full 810 -> 787-790; D=64 H=32
   611 -> 610-614 and 1091 -> 1134: its blocks already sweep 17-32 query tiles each). */
#define BM 64
#define BNK (64 * WG)

UMX_FN void st_shared(u32 addr, u32 v) { asm volatile("st.shared.u32 [%0], %1;" ::"r"(addr), "r"(v) : "memory"); }

/* delta[r] = dot(dO[r], O[r]) in float32 (0 for a row that sees no key: its log-sum-exp is
   +inf), and row r of the float32 dQ zeroed; D / 8 threads a row (16 bytes of each), dO, O
   and dQ row-major (B * Hq * Lq, D). */
#define TPR (D / 8)
extern "C" __global__ void umx_flash_bwd_pre(float* delta, float* dqacc, const u16* dout,
    const u16* out, const float* lse, long long rows) {
  long long r = (long long)blockIdx.x * (blockDim.x / TPR) + threadIdx.x / TPR;
  int c = threadIdx.x % TPR;
  float acc = 0.f;
  if (r < rows) {
    uint4 a = ((const uint4*)(dout + r * D))[c];
    uint4 b = ((const uint4*)(out + r * D))[c];
    u32 av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
      float x0, x1, y0, y1;
      unpack2(av[i], x0, x1);
      unpack2(bv[i], y0, y1);
      acc = fmaf(x0, y0, fmaf(x1, y1, acc));
    }
  }
#pragma unroll
  for (int o = TPR / 2; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (r < rows) {
    if (c == 0) delta[r] = lse[r] == INFINITY ? 0.f : acc;
#ifndef NOZERO
    float4* z = (float4*)(dqacc + r * D) + 2 * c;
    z[0] = z[1] = make_float4(0.f, 0.f, 0.f, 0.f);
#endif
  }
}

/* dQ = scale * the float32 sums, rounded to 16 bits, eight values (`groups` of them) a
   thread. */
extern "C" __global__ void umx_flash_dq_convert(u16* dq, const float* dqacc, float scale, long long groups) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= groups) return;
  float4 a = ((const float4*)dqacc)[2 * i], b = ((const float4*)dqacc)[2 * i + 1];
  ((uint4*)dq)[i] = make_uint4(pack2(a.x * scale, a.y * scale), pack2(a.z * scale, a.w * scale),
                               pack2(b.x * scale, b.y * scale), pack2(b.z * scale, b.w * scale));
}

extern "C" __global__ void __launch_bounds__(WG * 128 + 128, 1) umx_flash_bwd(float* dqacc,
    u16* dk, u16* dv, const u16* q, const u16* k, const u16* v, const u16* dout,
    const float* lse, const float* delta, long long bhk, long long hk, long long lq,
    long long lk, long long group, long long nkb, float scale_log2, float scale,
    long long qs0, long long qs1, long long qs2, long long ks0, long long ks1, long long ks2,
    long long vs0, long long vs1, long long vs2, const __grid_constant__ umx_tensor_map tdq) {
  extern __shared__ __align__(1024) unsigned char smraw[];
  __shared__ __align__(8) unsigned long long bars[2 * NS];
  u32 raw = smem_addr(smraw);
  u32 base = (raw + 1023) & ~1023u;
  u32 sK = base;
  u32 sV = sK + BNK * D * 2;
  u32 sQ = sV + BNK * D * 2;
  u32 sO = sQ + NS * BM * D * 2;
  u32 sS = sO + NS * BM * D * 2;
  u32 sDQ = sS + 2 * BNK * BM * 2;
  u32 sL = sDQ + WG * BM * 64 * 4;
  u32 sDl = sL + NS * BM * 4;
  const float* lsm = (const float*)(smraw + (sL - raw));
  const float* dsm = (const float*)(smraw + (sDl - raw));
  u32 full = smem_addr(bars), empty = full + NS * 8;
  /* Heads in groups of HEADS_AT_ONCE whose key blocks run together (their queries and
     gradients stay in L2), the blocks of the first keys (under a causal mask, the most query
     tiles) first. */
  long long per = HEADS_AT_ONCE * nkb, grp = blockIdx.x / per, r = blockIdx.x % per;
  long long gsize = min((long long)HEADS_AT_ONCE, bhk - grp * HEADS_AT_ONCE);
  long long bkh = grp * HEADS_AT_ONCE + r % gsize;
  long long kb = r / gsize;
  long long bi = bkh / hk, kh = bkh % hk, hq = hk * group;
  int Lq = (int)lq, Lk = (int)lk, k0 = (int)kb * BNK;
  int tid = threadIdx.x, lane = tid % 32;
  /* The first query tile with a row that sees one of these keys. */
  int qstart = 0;
#if CAUSAL
  qstart = max(0, k0 - (Lk - Lq)) / BM;
#endif
  int per_head = max(0, (Lq + BM - 1) / BM - qstart);
  int iters = per_head * (int)group;
  if (tid == 0) {
    for (int i = 0; i < NS; i++) {
      bar_init(full + 8 * i, 128);
      bar_init(empty + 8 * i, WG * 128);
    }
  }
  __syncthreads();
  if (tid >= WG * 128) {
    /* The producer: tile `it` (query tile qstart + it % per_head of query head
       kh * group + it / per_head) into stage it % NS once the consumers released it. */
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(PRODUCER_REGS));
    int ptid = tid - WG * 128;
    for (int it = 0; it < iters; it++) {
      int st = it % NS, use = it / NS;
      if (use > 0) bar_wait(empty + 8 * st, (use - 1) & 1);
      long long h = kh * group + it / per_head;
      int q0 = (qstart + it % per_head) * BM;
      const u16* qp = q + bi * qs0 + h * qs1;
      long long rb = (bi * hq + h) * lq;
      for (int i = ptid; i < BM * CH; i += 128) {
        int r = i / CH, c = i % CH;
        bool ok = q0 + r < Lq;
        cp16(sQ + st * BM * D * 2 + swz(BM, r, c), qp + (ok ? (q0 + r) * qs2 + c * 8 : 0), ok);
        cp16(sO + st * BM * D * 2 + swz(BM, r, c), dout + (ok ? (rb + q0 + r) * D + c * 8 : 0), ok);
      }
      {
        int r = ptid % BM;
        bool ok = q0 + r < Lq;
        if (ptid < BM)
          cp4(sL + (st * BM + r) * 4, lse + (ok ? rb + q0 + r : 0), ok);
        else
          cp4(sDl + (st * BM + r) * 4, delta + (ok ? rb + q0 + r : 0), ok);
      }
      bar_arrive_copies(full + 8 * st);
    }
    cp_wait_all();
  } else {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(CONSUMER_REGS));
  int w = tid / 128, warp = (tid / 32) % 4;
  const u16* kp = k + bi * ks0 + kh * ks1;
  const u16* vp = v + bi * vs0 + kh * vs1;
  for (int i = tid; i < BNK * CH; i += WG * 128) {
    int r = i / CH, c = i % CH;
    bool ok = k0 + r < Lk;
    cp16(sK + swz(BNK, r, c), kp + (ok ? (k0 + r) * ks2 + c * 8 : 0), ok);
    cp16(sV + swz(BNK, r, c), vp + (ok ? (k0 + r) * vs2 + c * 8 : 0), ok);
  }
  cp_commit();
  cp_wait_all();
  fence_async();
  consumers_sync();
  float gk[D / 2], gv[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; i++) gk[i] = gv[i] = 0.f;
  float s[BM / 2], dp[BM / 2], dq[32];
  u32 pa[BM / 16][4], pd[BM / 16][4];
  /* This thread's key rows within the warpgroup's 64 (and + 8). */
  int krow = warp * 16 + lane / 4;
  int key0 = k0 + w * 64 + krow;
  for (int it = 0; it < iters; it++) {
    int st = it % NS;
    int q0 = (qstart + it % per_head) * BM;
    u32 sq = sQ + st * BM * D * 2, so = sO + st * BM * D * 2;
    bar_wait(full + 8 * st, (it / NS) & 1);
    fence_async();
    /* S^T and dP^T, each its own group: the softmax starts once S^T is in. */
    hold<BM / 2>(s);
    hold<BM / 2>(dp);
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      u64 da = desc(sK + (kk / 4) * BNK * 128 + w * 64 * 128 + (kk % 4) * 32, 16, 1024);
      u64 db = desc(sq + (kk / 4) * BM * 128 + (kk % 4) * 32, 16, 1024);
      wgmma_ss_n64(s, da, db, kk > 0);
    }
    wg_commit();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      u64 da = desc(sV + (kk / 4) * BNK * 128 + w * 64 * 128 + (kk % 4) * 32, 16, 1024);
      u64 db = desc(so + (kk / 4) * BM * 128 + (kk % 4) * 32, 16, 1024);
      wgmma_ss_n64(dp, da, db, kk > 0);
    }
    wg_commit();
    wg_wait1();
    hold<BM / 2>(s);
    /* P^T into s while dP^T is computed, then dS^T into dp; keys past the end, rows past the
       end and keys after a row (causal) take no part. */
    bool need_mask = k0 + BNK > Lk || q0 + BM > Lq;
    if (CAUSAL) need_mask = need_mask || k0 + BNK - 1 > q0 + Lk - Lq;
#pragma unroll
    for (int nb = 0; nb < BM / 8; nb++) {
      int col = nb * 8 + 2 * (lane % 4);
      float2 l = *(const float2*)(lsm + st * BM + col);
#pragma unroll
      for (int e = 0; e < 4; e++) {
        int i = nb * 4 + e, c = col + (e & 1);
        float p = ex2(fmaf(s[i], scale_log2, -((e & 1) ? l.y : l.x) * LOG2E));
        if (need_mask) {
          int key = key0 + 8 * (e >> 1), row = q0 + c;
          bool ok = key < Lk && row < Lq;
          if (CAUSAL) ok = ok && key <= row + Lk - Lq;
          if (!ok) p = 0.f;
        }
        s[i] = p;
      }
    }
    wg_wait0();
    hold<BM / 2>(dp);
#pragma unroll
    for (int nb = 0; nb < BM / 8; nb++) {
      float2 dl = *(const float2*)(dsm + st * BM + nb * 8 + 2 * (lane % 4));
#pragma unroll
      for (int e = 0; e < 4; e++) dp[nb * 4 + e] = s[nb * 4 + e] * (dp[nb * 4 + e] - ((e & 1) ? dl.y : dl.x));
    }
#pragma unroll
    for (int kc = 0; kc < BM / 16; kc++) {
      pa[kc][0] = pack2(s[(2 * kc) * 4 + 0], s[(2 * kc) * 4 + 1]);
      pa[kc][1] = pack2(s[(2 * kc) * 4 + 2], s[(2 * kc) * 4 + 3]);
      pa[kc][2] = pack2(s[(2 * kc + 1) * 4 + 0], s[(2 * kc + 1) * 4 + 1]);
      pa[kc][3] = pack2(s[(2 * kc + 1) * 4 + 2], s[(2 * kc + 1) * 4 + 3]);
      pd[kc][0] = pack2(dp[(2 * kc) * 4 + 0], dp[(2 * kc) * 4 + 1]);
      pd[kc][1] = pack2(dp[(2 * kc) * 4 + 2], dp[(2 * kc) * 4 + 3]);
      pd[kc][2] = pack2(dp[(2 * kc + 1) * 4 + 0], dp[(2 * kc + 1) * 4 + 1]);
      pd[kc][3] = pack2(dp[(2 * kc + 1) * 4 + 2], dp[(2 * kc + 1) * 4 + 3]);
    }
    /* dV += P^T dO (dK's product comes after dQ's, so that dQ is staged while it runs). */
    hold<D / 2>(gv);
    wg_fence();
#pragma unroll
    for (int kc = 0; kc < BM / 16; kc++) WG_OB(gv, pa[kc], desc(so + kc * 16 * 128, BM * 128, 1024));
    wg_commit();
    /* dS^T into shared memory while it runs: the block's key rows of BM query columns (one
       swizzled panel), in buffer it % 2 (the other warpgroup may still read the other). */
    u32 sds = sS + (it & 1) * BNK * BM * 2;
#pragma unroll
    for (int kc = 0; kc < BM / 16; kc++) {
      int r0 = w * 64 + krow, off = 4 * (lane % 4);
      st_shared(sds + swz(BNK, r0, 2 * kc) + off, pd[kc][0]);
      st_shared(sds + swz(BNK, r0 + 8, 2 * kc) + off, pd[kc][1]);
      st_shared(sds + swz(BNK, r0, 2 * kc + 1) + off, pd[kc][2]);
      st_shared(sds + swz(BNK, r0 + 8, 2 * kc + 1) + off, pd[kc][3]);
    }
    fence_async();
    /* (And the copy engine is done reading the last dQ staged, to be written below.) */
    if (tid % 128 == 0) asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
#if D == 128
    consumers_sync();
#else
    asm volatile("bar.sync %0, 128;" ::"r"(2 + w) : "memory");
#endif
    /* dQ (BM rows, 64 columns): all keys for columns 64w.. (D 128), or this warpgroup's keys
       for all columns (D 64). */
    hold<32>(dq);
    wg_fence();
#if D == 128
#pragma unroll
    for (int kc = 0; kc < BNK / 16; kc++)
      wgmma_ss_n64_tt(dq, desc(sds + kc * 16 * 128, BNK * 128, 1024),
                      desc(sK + w * BNK * 128 + kc * 16 * 128, BNK * 128, 1024), kc > 0);
    int dcol = w * 64;
#else
#pragma unroll
    for (int kc = 0; kc < 4; kc++)
      wgmma_ss_n64_tt(dq, desc(sds + (w * 64 + kc * 16) * 128, BNK * 128, 1024),
                      desc(sK + (w * 64 + kc * 16) * 128, BNK * 128, 1024), kc > 0);
    int dcol = 0;
#endif
    wg_commit();
    /* dK += dS^T Q. */
    hold<D / 2>(gk);
    wg_fence();
#pragma unroll
    for (int kc = 0; kc < BM / 16; kc++) WG_OB(gk, pd[kc], desc(sq + kc * 16 * 128, BM * 128, 1024));
    wg_commit();
    /* dV and dQ are in; dK's product runs on. */
    wg_wait1();
    hold<D / 2>(gv);
    hold<32>(dq);
    /* dQ's share into this warpgroup's staging tile (two boxes of 32 columns, 128-byte
       swizzled; the copy engine has read the last one, as waited for above), which it adds to
       the float32 dQ (rows past the end clipped). */
    u32 stage = sDQ + w * BM * 64 * 4;
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
      int row = warp * 16 + lane / 4 + 8 * hf;
#pragma unroll
      for (int nb = 0; nb < 8; nb++) {
        int c = (nb % 4) * 2 + (lane % 4) / 2;
        u32 a = stage + (nb / 4) * BM * 128 + row * 128 + ((c ^ (row % 8)) << 4) + (lane % 2) * 8;
        asm volatile("st.shared.v2.f32 [%0], {%1, %2};" ::"r"(a), "f"(dq[nb * 4 + 2 * hf]), "f"(dq[nb * 4 + 2 * hf + 1]) : "memory");
      }
    }
    fence_async();
    asm volatile("bar.sync %0, 128;" ::"r"(2 + w) : "memory");
    if (tid % 128 == 0) {
      int bh = (int)((bi * hq) + kh * group + it / per_head);
#pragma unroll
      for (int j = 0; j < 2; j++)
        asm volatile("cp.reduce.async.bulk.tensor.3d.global.shared::cta.add.tile.bulk_group [%0, {%1, %2, %3}], [%4];"
                     ::"l"((unsigned long long)&tdq), "r"(dcol + 32 * j), "r"(q0), "r"(bh), "r"(stage + j * BM * 128) : "memory");
      asm volatile("cp.async.bulk.commit_group;" ::: "memory");
    }
    wg_wait0();
    hold<D / 2>(gk);
    /* Done with the stage: the producer may refill it. */
    bar_arrive(empty + 8 * st);
  }
  if (tid % 128 == 0) asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
#pragma unroll
  for (int hf = 0; hf < 2; hf++) {
    int key = key0 + 8 * hf;
    if (key < Lk) {
      u32* kq = (u32*)(dk + (bkh * lk + key) * D);
      u32* vq = (u32*)(dv + (bkh * lk + key) * D);
#pragma unroll
      for (int nb = 0; nb < D / 8; nb++) {
        kq[nb * 4 + lane % 4] = pack2(gk[nb * 4 + 2 * hf] * scale, gk[nb * 4 + 2 * hf + 1] * scale);
        vq[nb * 4 + lane % 4] = pack2(gv[nb * 4 + 2 * hf], gv[nb * 4 + 2 * hf + 1]);
      }
    }
  }
  }
}
#endif
