"""Tuning harness for the flash attention kernel (crates/umx-cuda/src/kernels/flash.cu): builds
it through CuPy's NVRTC for each block shape given (BC,WARPS,MT: keys a tile, warps, 16-row tiles
a warp), checks it against a float32 reference in torch and times it beside torch's SDPA. On the
GPU machine, from the repository root (no Rust build needed):

    python3 bench/flash_harness.py 64,4,2 64,8,1
"""
import math, os, sys, time
import cupy as cp
import numpy as np
import torch
import torch.nn.functional as F

KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "umx-cuda", "src",
                       "kernels")


def kernel_source(name):
    """A flash kernel file after the helpers it shares (flash_common.cuh), as umx builds it."""
    return "".join(open(os.path.join(KERNELS, n)).read() for n in ("flash_common.cuh", name))


SRC = kernel_source("flash.cu")
_mods = {}


def kernel(D, BC, WARPS, MT, f16, causal):
    key = (D, BC, WARPS, MT, f16, causal)
    if key not in _mods:
        defs = f"#define BACKWARD 0\n#define D {D}\n#define BC {BC}\n#define WARPS {WARPS}\n#define MT {MT}\n#define IS_F16 {int(f16)}\n#define CAUSAL {int(causal)}\n"
        t = time.time()
        mod = cp.RawModule(code=defs + SRC, options=("-arch=sm_90", "-std=c++17"))
        k = mod.get_function("umx_flash")
        BR = WARPS * 16 * MT
        smem = (BR * D + 4 * BC * D) * 2
        k.max_dynamic_shared_size_bytes = smem
        print(f"  compiled {key} in {time.time()-t:.2f}s regs={k.num_regs} local={k.local_size_bytes} smem={smem}", flush=True)
        _mods[key] = (k, BR, smem)
    return _mods[key]


def flash(q, k, v, causal, cfg):
    B, HQ, LQ, D = q.shape
    HK, LK = k.shape[1], k.shape[2]
    BC, WARPS, MT = cfg
    kern, BR, smem = kernel(D, BC, WARPS, MT, q.dtype == torch.float16, causal)
    out = torch.empty(B, HQ, LQ, D, device="cuda", dtype=q.dtype)
    nqb = (LQ + BR - 1) // BR
    i64 = np.int64
    args = (cp.from_dlpack(out), np.uint64(0), cp.from_dlpack(q), cp.from_dlpack(k), cp.from_dlpack(v),
            i64(B * HQ), i64(HQ), i64(LQ), i64(LK), i64(HQ // HK), i64(nqb),
            np.float32(1 / math.sqrt(D) * math.log2(math.e)),
            *[i64(s) for s in q.stride()[:3]], *[i64(s) for s in k.stride()[:3]],
            *[i64(s) for s in v.stride()[:3]])
    kern((nqb * B * HQ,), (WARPS * 32,), args, shared_mem=smem)
    return out


def ref(q, k, v, causal):
    LQ, LK = q.shape[2], k.shape[2]
    qf, kf, vf = q.float(), k.float(), v.float()
    g = q.shape[1] // k.shape[1]
    kf = kf.repeat_interleave(g, 1)
    vf = vf.repeat_interleave(g, 1)
    s = qf @ kf.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        mask = torch.ones(LQ, LK, device="cuda", dtype=torch.bool).tril(LK - LQ)
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1) @ vf


def bench(fn, reps=20):
    """Card time a call: the calls queue behind a sleeping kernel, so the host's cost of
    launching them (CuPy's argument handling) is not counted."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    st, en = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(100_000_000)
    st.record()
    for _ in range(reps):
        fn()
    en.record()
    torch.cuda.synchronize()
    return st.elapsed_time(en) / reps


# Correctness cases: (B, HQ, HK, LQ, LK, D, causal, dtype).
CASES = [
    (1, 2, 2, 128, 128, 128, False, torch.bfloat16),
    (2, 4, 2, 200, 333, 128, True, torch.bfloat16),
    (2, 4, 1, 333, 200, 64, True, torch.float16),
    (1, 3, 3, 1000, 1000, 128, True, torch.float16),
    (1, 2, 2, 77, 513, 64, False, torch.bfloat16),
    (1, 4, 2, 300, 300, 256, True, torch.bfloat16),
    (1, 2, 2, 77, 200, 256, False, torch.float16),
]


def check(run, cases):
    """run(q, k, v, causal) against the float32 reference on each case, keys contiguous and
    every other row of a longer array: prints each case's error; True when all are close and
    NaN where the reference is."""
    ok = True
    for (B, HQ, HK, LQ, LK, D, causal, dt) in cases:
        q = torch.randn(B, HQ, LQ, D, device="cuda", dtype=dt)
        k = torch.randn(B, HK, LK, D, device="cuda", dtype=dt)
        v = torch.randn(B, HK, LK, D, device="cuda", dtype=dt)
        # a strided key tensor: every other row of a longer one
        k2 = torch.randn(B, HK, LK * 2, D, device="cuda", dtype=dt)[:, :, ::2]
        for kk in (k, k2):
            got = run(q, kk, v, causal).float()
            want = ref(q, kk, v, causal)
            fin = torch.isfinite(want)
            err = (got - want)[fin].abs().max().item() if fin.any() else 0.0
            nan_match = bool((torch.isnan(got) == torch.isnan(want)).all())
            print(f"  {B},{HQ}/{HK},{LQ}x{LK},D{D},causal={causal},{dt}: max err {err:.4f} nan-match {nan_match}")
            ok = ok and err < 2e-2 and nan_match
    print("  correct:", ok, flush=True)
    return ok


def timings(run, label, shapes):
    """run(q, k, v, causal) and torch's SDPA on random bfloat16 (B, H, L, D) inputs, causal and
    not: a line each."""
    lines = []
    for (B, H, L, D) in shapes:
        q = torch.randn(B, H, L, D, device="cuda", dtype=torch.bfloat16)
        k = torch.randn_like(q)
        v = torch.randn_like(q)
        for causal in (True, False):
            fl = 4 * B * H * L * L * D / (2 if causal else 1)
            t = bench(lambda: run(q, k, v, causal))
            tt = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
            lines.append(f"{label} B{B} H{H} L{L} D{D} causal={causal}: umx {t*1e3:.0f} us {fl/t/1e9:.0f} TFLOP/s, torch {tt*1e3:.0f} us {fl/tt/1e9:.0f} TFLOP/s")
    return lines


def main():
    # --d256: also head dim 256 (checks and timing at B=4 H=8 L=2048).
    d256 = "--d256" in sys.argv
    shapes = [(4, 16, 2048, 128), (4, 32, 2048, 64)] + ([(4, 8, 2048, 256)] if d256 else [])
    cfgs = [tuple(map(int, c.split(","))) for c in sys.argv[1:] if c != "--d256"] or [(64, 4, 2), (64, 8, 1)]
    torch.manual_seed(0)
    summary = []
    for cfg in cfgs:
        print("config BC,WARPS,MT =", cfg)
        check(lambda q, k, v, causal: flash(q, k, v, causal, cfg), CASES)
        summary += timings(lambda q, k, v, causal: flash(q, k, v, causal, cfg), cfg, shapes)
    print("\n".join(summary))


if __name__ == "__main__":
    main()
