/* What flash.cu and flash_sm90.cu share (umx places it after the caller's defines, before
   either file): shared-memory addresses, cp.async copies, 16-bit pairs packed and unpacked in
   the dtype of the products (IS_F16: float16, else bfloat16), exp2. Needs D and IS_F16. */
#define UMX_FN __device__ __forceinline__
#define INFINITY __int_as_float(0x7f800000)
#define CH (D / 8)
typedef unsigned short u16;
typedef unsigned int u32;
#if IS_F16
#define MMA_T "f16"
#else
#define MMA_T "bf16"
#endif
#define LOG2E 1.4426950408889634f

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
UMX_FN void cp4(u32 dst, const void* src, bool ok) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(dst), "l"(src), "r"(ok ? 4 : 0));
}
/* Two floats as one register of two 16-bit values, `lo` in the low half. */
UMX_FN u32 pack2(float lo, float hi) {
  u32 r;
  asm("cvt.rn." MMA_T "x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
UMX_FN float ex2(float x) { float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }
/* The two 16-bit floats of `x` (`lo` from the low half) as float32. */
UMX_FN void unpack2(u32 x, float& lo, float& hi) {
#if IS_F16
  asm("{ .reg .f16 a, b; mov.b32 {a, b}, %2; cvt.f32.f16 %0, a; cvt.f32.f16 %1, b; }"
      : "=f"(lo), "=f"(hi) : "r"(x));
#else
  lo = __uint_as_float(x << 16);
  hi = __uint_as_float(x & 0xffff0000u);
#endif
}
