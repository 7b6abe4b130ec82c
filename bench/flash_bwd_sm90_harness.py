"""Tuning harness for the Hopper flash attention backward kernel (crates/umx-cuda/src/kernels/
flash_sm90.cu, BACKWARD 1: wgmma, a producer warpgroup, dQ summed in float32 by the copy
engine): builds it through CuPy's NVRTC for sm_90a for each configuration given,
NS,HEADS[,NAME[=V]...] (shared-memory stages of query tiles, heads whose key blocks run
together, trial defines), checks dQ, dK, dV against float32 autograd in torch (the forward from
the Hopper forward kernel, which also gives the log-sum-exp; configurations with trial defines
only with --check) and times forward + backward beside torch's SDPA, card time only, with the
backward's three kernels apart. --profile runs one forward and backward for ncu. On the GPU
machine, from the repository root (no Rust build needed):

    python3 bench/flash_bwd_sm90_harness.py 2,8 2,16
"""
import math, os, sys, time
import cupy as cp
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import flash_harness  # noqa: E402  (the correctness cases)
import flash_sm90_harness as fwd  # noqa: E402  (the forward kernel, tensor maps, raw launches)
from flash_bwd_harness import bench, ref, rel  # noqa: E402  (reference, error, card time)

SRC = flash_harness.kernel_source("flash_sm90.cu")
FWD_CFG = (128, 2, 3, 0, 8, 1)
_mods = {}
i64 = np.int64


def forward(q, k, v, causal):
    """The Hopper forward kernel with its log-sum-exp."""
    B, HQ, LQ, _ = q.shape
    lse = torch.empty(B, HQ, LQ, device="cuda", dtype=torch.float32)
    return fwd.flash(q, k, v, causal, FWD_CFG, lse), lse


def module(D, f16, causal, cfg):
    key = (D, f16, causal, cfg)
    if key not in _mods:
        t = time.time()
        NS, HG = cfg[:2]
        defs = "".join(f"#define {x.replace('=', ' ')}\n" if "=" in x else f"#define {x} 1\n" for x in cfg[2:]) + (f"#define D {D}\n#define WG 2\n#define NS {NS}\n#define HEADS_AT_ONCE {HG}\n"
                f"#define BACKWARD 1\n#define IS_F16 {int(f16)}\n#define CAUSAL {int(causal)}\n")
        mod = cp.RawModule(code=defs + SRC, options=("-arch=sm_90a", "-std=c++17"))
        k = mod.get_function("umx_flash_bwd")
        BNK, BM = 128, 64
        smem = 1024 + 2 * BNK * D * 2 + 2 * NS * BM * D * 2 + 2 * BNK * BM * 2 + 2 * BM * 64 * 4 + 2 * NS * BM * 4
        k.max_dynamic_shared_size_bytes = smem
        print(f"  compiled {key} in {time.time()-t:.2f}s regs={k.num_regs} local={k.local_size_bytes} smem={smem}", flush=True)
        _mods[key] = (mod, k, smem)
    return _mods[key]


def backward(q, k, v, out, lse, dout, causal, cfg, only_kernel=False, parts=("pre", "main", "convert")):
    """dQ, dK, dV (only_kernel: the main kernel alone, for its time; dQ then is not summed;
    parts: the kernels run, for their times)."""
    if only_kernel:
        parts = ("main",)
    B, HQ, LQ, D = q.shape
    HK, LK = k.shape[1], k.shape[2]
    mod, kern, smem = module(D, q.dtype == torch.float16, causal, cfg)
    dout = dout.contiguous()
    rows = B * HQ * LQ
    delta = torch.empty(rows, device="cuda", dtype=torch.float32)
    dqacc = torch.empty(B, HQ, LQ, D, device="cuda", dtype=torch.float32)
    if "pre" in parts and "NOZERO" in cfg:
        dqacc.zero_()
    if "pre" in parts:
        mod.get_function("umx_flash_bwd_pre")(((rows * D // 8 + 255) // 256,), (256,), (cp.from_dlpack(delta),
        cp.from_dlpack(dqacc), cp.from_dlpack(dout), cp.from_dlpack(out), cp.from_dlpack(lse), i64(rows)))
    dq = torch.empty(B, HQ, LQ, D, device="cuda", dtype=q.dtype)
    dk = torch.empty(B, HK, LK, D, device="cuda", dtype=q.dtype)
    dv = torch.empty_like(dk)
    scale = 1 / math.sqrt(D)
    nkb = (LK + 127) // 128
    if "main" in parts:
      fwd.launch_raw(kern, nkb * B * HK, 384, smem, (cp.from_dlpack(dqacc), cp.from_dlpack(dk),
         cp.from_dlpack(dv), cp.from_dlpack(q), cp.from_dlpack(k), cp.from_dlpack(v),
         cp.from_dlpack(dout), cp.from_dlpack(lse), cp.from_dlpack(delta), i64(B * HK), i64(HK),
         i64(LQ), i64(LK), i64(HQ // HK), i64(nkb), np.float32(scale * math.log2(math.e)),
         np.float32(scale), *[i64(s) for t in (q, k, v) for s in t.stride()[:3]]), [dq_map(dqacc, 64)])
    groups = rows * D // 8
    if "convert" in parts:
        mod.get_function("umx_flash_dq_convert")(((groups + 255) // 256,), (256,),
        (cp.from_dlpack(dq), cp.from_dlpack(dqacc), np.float32(scale), i64(groups)))
    return dq, dk, dv


def dq_map(dqacc, rows):
    """The copy engine's map of the float32 dQ (B * H, L, D): boxes of 32 columns by `rows`
    rows of one head, 128-byte swizzled (rows past L clipped)."""
    import ctypes
    BH, L, D = dqacc.shape[0] * dqacc.shape[1], dqacc.shape[2], dqacc.shape[3]
    m = (ctypes.c_uint64 * 16)()
    dims = (ctypes.c_uint64 * 3)(D, L, BH)
    strides = (ctypes.c_uint64 * 2)(D * 4, L * D * 4)
    box = (ctypes.c_uint32 * 3)(32, rows, 1)
    ones = (ctypes.c_uint32 * 3)(1, 1, 1)
    r = fwd.libcuda.cuTensorMapEncodeTiled(ctypes.byref(m), 7, 3, ctypes.c_void_p(dqacc.data_ptr()),
                                           dims, strides, box, ones, 0, 3, 3, 0)
    if r != 0:
        raise RuntimeError(f"cuTensorMapEncodeTiled: {r}")
    return m


# The correctness cases with head dims up to 128, and grouped heads of 4 over two key blocks
# and three keys (a block mostly past the end).
CASES = [c for c in flash_harness.CASES if c[5] <= 128] + [
    (2, 8, 2, 256, 256, 128, True, torch.bfloat16),
    (1, 4, 4, 64, 3, 64, False, torch.bfloat16),
    # more key blocks than SMs
    (4, 16, 4, 700, 1100, 128, True, torch.bfloat16),
    (2, 32, 8, 900, 1300, 64, True, torch.float16),
    (3, 16, 16, 700, 900, 64, False, torch.bfloat16),
]


def profile():
    """--profile: one causal forward and backward at B=4 H=16 L=2048 D=128 after a warm-up
    (for ncu)."""
    q = torch.randn(4, 16, 2048, 128, device="cuda", dtype=torch.bfloat16)
    k, v, do = torch.randn_like(q), torch.randn_like(q), torch.randn_like(q)
    for _ in range(2):
        out, lse = forward(q, k, v, True)
        backward(q, k, v, out, lse, do, True, (2, 8))
    torch.cuda.synchronize()


def main():
    if "--profile" in sys.argv:
        return profile()
    # NS,HEADS[,NAME[=V]...]: NAME defined to V or 1.
    cfgs = [tuple(int(x) if x.isdigit() else x for x in c.split(",")) for c in sys.argv[1:] if c != "--check"] or [(2, 8)]
    torch.manual_seed(0)
    summary = []
    for cfg in cfgs:
        print("config NS,HEADS =", cfg)
        ok = True
        for (B, HQ, HK, LQ, LK, D, causal, dt) in ([] if len(cfg) > 2 and "--check" not in sys.argv else CASES):
            q = torch.randn(B, HQ, LQ, D, device="cuda", dtype=dt)
            k = torch.randn(B, HK, LK * 2, D, device="cuda", dtype=dt)[:, :, ::2]
            v = torch.randn(B, HK, LK, D, device="cuda", dtype=dt)
            do = torch.randn(B, HQ, LQ, D, device="cuda", dtype=dt)
            try:
                out, lse = forward(q, k, v, causal)
                dq, dk, dv = backward(q, k, v, out, lse, do, causal, cfg)
                torch.cuda.synchronize()
            except Exception as e:
                print("  failed:", e)
                ok = False
                continue
            o, rq, rk, rv = ref(q, k, v, do, causal)
            errs = [rel(out, o), rel(dq, rq), rel(dk, rk), rel(dv, rv)]
            print(f"  {B},{HQ}/{HK},{LQ}x{LK},D{D},causal={causal},{dt}: rel err o/dq/dk/dv "
                  + " ".join(f"{e:.4f}" for e in errs), flush=True)
            ok = ok and max(errs) < 2e-2
        print("  correct:", ok)
        if not ok:
            summary.append(f"{cfg}: WRONG")
            continue
        for (B, H, L, D) in [(4, 16, 2048, 128), (4, 32, 2048, 64)]:
            q = torch.randn(B, H, L, D, device="cuda", dtype=torch.bfloat16)
            k, v, do = torch.randn_like(q), torch.randn_like(q), torch.randn_like(q)
            for causal in (True, False):
                fl = 4 * B * H * L * L * D / (2 if causal else 1)
                out, lse = forward(q, k, v, causal)
                tf = bench(lambda: forward(q, k, v, causal))
                tb = bench(lambda: backward(q, k, v, out, lse, do, causal, cfg))
                tk = bench(lambda: backward(q, k, v, out, lse, do, causal, cfg, True))
                tp = bench(lambda: backward(q, k, v, out, lse, do, causal, cfg, parts=("pre",)))
                tc = bench(lambda: backward(q, k, v, out, lse, do, causal, cfg, parts=("convert",)))
                qt, kt, vt = (t.clone().requires_grad_() for t in (q, k, v))
                tt = bench(lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal).backward(do))
                ttf = bench(lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal))
                summary.append(
                    f"{cfg} B{B} H{H} L{L} D{D} causal={causal}: umx fwd {tf*1e3:.0f} bwd {tb*1e3:.0f} (kernel {tk*1e3:.0f}, pre {tp*1e3:.0f}, convert {tc*1e3:.0f}) us, "
                    f"fwd+bwd {3.5*fl/(tf+tb)/1e9:.0f} TFLOP/s (bwd {2.5*fl/tb/1e9:.0f}); torch fwd+bwd "
                    f"{tt*1e3:.0f} us {3.5*fl/tt/1e9:.0f} TFLOP/s (fwd {fl/ttf/1e9:.0f})")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
