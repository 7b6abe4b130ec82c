"""Tuning harness for the flash attention backward kernels (crates/umx-cuda/src/kernels/flash.cu,
BACKWARD 1): builds them through CuPy's NVRTC for each block shape given (QW,QBC,KW,KBR: warps and
key tile of the dQ kernel, warps and query tile of the dK/dV kernel), checks dQ, dK, dV against
float32 autograd in torch (flash_harness.py's cases) and times forward + backward beside
torch's SDPA. On the GPU machine, from the repository root (no Rust build needed):

    python3 bench/flash_bwd_harness.py 4,64,4,32 4,64,4,64
"""
import math, os, sys, time
import cupy as cp
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flash_harness  # noqa: E402  (its correctness cases)
from flash_harness import bench  # noqa: E402  (card time)

SRC = flash_harness.kernel_source("flash.cu")
_mods = {}
i64 = np.int64


def module(defs):
    if defs not in _mods:
        t = time.time()
        _mods[defs] = cp.RawModule(code=defs + SRC, options=("-arch=sm_90", "-std=c++17"))
        print(f"  compiled in {time.time()-t:.2f}s: {defs.strip().replace(chr(10), ' ')}", flush=True)
    return _mods[defs]


def common(D, f16, causal, backward):
    return f"#define D {D}\n#define IS_F16 {int(f16)}\n#define CAUSAL {int(causal)}\n#define BACKWARD {backward}\n"


def strides(*ts):
    return [i64(s) for t in ts for s in t.stride()[:3]]


def forward(q, k, v, causal):
    B, HQ, LQ, D = q.shape
    HK, LK = k.shape[1], k.shape[2]
    BC, WARPS, MT = (32, 8, 1) if D == 256 else (64, 4, 2)
    mod = module(common(D, q.dtype == torch.float16, causal, 0) +
                 f"#define BC {BC}\n#define WARPS {WARPS}\n#define MT {MT}\n")
    kern = mod.get_function("umx_flash")
    BR = WARPS * 16 * MT
    smem = (BR * D + 4 * BC * D) * 2
    kern.max_dynamic_shared_size_bytes = smem
    out = torch.empty(B, HQ, LQ, D, device="cuda", dtype=q.dtype)
    lse = torch.empty(B, HQ, LQ, device="cuda", dtype=torch.float32)
    nqb = (LQ + BR - 1) // BR
    kern((nqb * B * HQ,), (WARPS * 32,), (cp.from_dlpack(out), cp.from_dlpack(lse),
         cp.from_dlpack(q), cp.from_dlpack(k), cp.from_dlpack(v), i64(B * HQ), i64(HQ), i64(LQ),
         i64(LK), i64(HQ // HK), i64(nqb), np.float32(1 / math.sqrt(D) * math.log2(math.e)),
         *strides(q, k, v)), shared_mem=smem)
    return out, lse


def backward(q, k, v, out, lse, dout, causal, cfg):
    QW, QBC, KW, KBR = D256_CFG if q.shape[3] == 256 else cfg
    B, HQ, LQ, D = q.shape
    HK, LK = k.shape[1], k.shape[2]
    mod = module(common(D, q.dtype == torch.float16, causal, 1) +
                 f"#define QW {QW}\n#define QBC {QBC}\n#define KW {KW}\n#define KBR {KBR}\n")
    dout = dout.contiguous()
    rows = B * HQ * LQ
    delta = torch.empty(rows, device="cuda", dtype=torch.float32)
    mod.get_function("umx_flash_delta")(((rows + 7) // 8,), (256,), (cp.from_dlpack(delta),
        cp.from_dlpack(dout), cp.from_dlpack(out), cp.from_dlpack(lse), i64(rows)))
    dq = torch.empty_like(q, memory_format=torch.contiguous_format)
    dk = torch.empty(B, HK, LK, D, device="cuda", dtype=q.dtype)
    dv = torch.empty_like(dk)
    scale = np.float32(1 / math.sqrt(D))
    QBR = QW * 16
    nqb = (LQ + QBR - 1) // QBR
    kq = mod.get_function("umx_flash_dq")
    smq = (2 * QBR * D + 4 * QBC * D) * 2
    kq.max_dynamic_shared_size_bytes = smq
    kq((nqb * B * HQ,), (QW * 32,), (cp.from_dlpack(dq), cp.from_dlpack(q), cp.from_dlpack(k),
       cp.from_dlpack(v), cp.from_dlpack(dout), cp.from_dlpack(lse), cp.from_dlpack(delta),
       i64(B * HQ), i64(HQ), i64(LQ), i64(LK), i64(HQ // HK), i64(nqb), scale,
       *strides(q, k, v)), shared_mem=smq)
    KBC = KW * 16
    nkb = (LK + KBC - 1) // KBC
    smk = (2 * KBC * D + 4 * KBR * D) * 2 + 4 * KBR * 4
    # Head dim 256: dK and dV by separate kernels (both accumulators overflow the registers).
    for name in (["umx_flash_dk", "umx_flash_dv"] if D == 256 and SPLIT256 else ["umx_flash_dkv"]):
        kk = mod.get_function(name)
        kk.max_dynamic_shared_size_bytes = smk
        kk((nkb * B * HK,), (KW * 32,), (cp.from_dlpack(dk), cp.from_dlpack(dv), cp.from_dlpack(q),
           cp.from_dlpack(k), cp.from_dlpack(v), cp.from_dlpack(dout), cp.from_dlpack(lse),
           cp.from_dlpack(delta), i64(B * HK), i64(HK), i64(LQ), i64(LK), i64(HQ // HK), scale,
           *strides(q, k, v)), shared_mem=smk)
    return dq, dk, dv, (kq.num_regs, kq.local_size_bytes, kk.num_regs, kk.local_size_bytes)


def ref(q, k, v, dout, causal):
    LQ, LK = q.shape[2], k.shape[2]
    qf, kf, vf = (t.detach().float().requires_grad_() for t in (q, k, v))
    g = q.shape[1] // k.shape[1]
    s = qf @ kf.repeat_interleave(g, 1).transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        mask = torch.ones(LQ, LK, device="cuda", dtype=torch.bool).tril(LK - LQ)
        s = s.masked_fill(~mask, float("-inf"))
    p = torch.softmax(s, -1)
    # A row that sees no key: NaN out (as the kernel), no gradient (the kernel gives it none).
    o = p.detach() @ vf.detach().repeat_interleave(g, 1)
    (p.nan_to_num(0.0) @ vf.repeat_interleave(g, 1)).backward(dout.float())
    return o, qf.grad, kf.grad, vf.grad


def rel(got, want):
    fin = torch.isfinite(want)
    return ((got.float() - want)[fin].abs().max() / want[fin].abs().max().clamp_min(1e-6)).item()


# --d256=QW,QBC,KW,KBR: the block shapes for head dim 256 (whose tiles take twice the shared
# memory), and time it too (B=4 H=8 L=2048).
d256 = [a for a in sys.argv[1:] if a.startswith("--d256")]
D256 = bool(d256)
SPLIT256 = "--no-split" not in sys.argv
D256_CFG = tuple(map(int, d256[0].split("=")[1].split(","))) if d256 and "=" in d256[0] else (4, 32, 4, 32)


def main():
    cfgs = [tuple(map(int, c.split(","))) for c in sys.argv[1:] if not c.startswith("--")] or [(4, 64, 4, 32)]
    torch.manual_seed(0)
    summary = []
    for cfg in cfgs:
        print("config QW,QBC,KW,KBR =", cfg)
        ok = True
        for (B, HQ, HK, LQ, LK, D, causal, dt) in flash_harness.CASES:
            q = torch.randn(B, HQ, LQ, D, device="cuda", dtype=dt)
            k = torch.randn(B, HK, LK * 2, D, device="cuda", dtype=dt)[:, :, ::2]
            v = torch.randn(B, HK, LK, D, device="cuda", dtype=dt)
            do = torch.randn(B, HQ, LQ, D, device="cuda", dtype=dt)
            try:
                out, lse = forward(q, k, v, causal)
                dq, dk, dv, regs = backward(q, k, v, out, lse, do, causal, cfg)
            except Exception as e:
                print("  failed:", e)
                ok = False
                continue
            o, rq, rk, rv = ref(q, k, v, do, causal)
            errs = [rel(out, o), rel(dq, rq), rel(dk, rk), rel(dv, rv)]
            print(f"  {B},{HQ}/{HK},{LQ}x{LK},D{D},causal={causal},{dt}: rel err o/dq/dk/dv "
                  + " ".join(f"{e:.4f}" for e in errs) + f"  regs/local {regs}")
            ok = ok and max(errs) < 2e-2
        print("  correct:", ok)
        for (B, H, L, D) in [(4, 16, 2048, 128), (4, 32, 2048, 64)] + ([(4, 8, 2048, 256)] if D256 else []):
            q = torch.randn(B, H, L, D, device="cuda", dtype=torch.bfloat16)
            k, v, do = torch.randn_like(q), torch.randn_like(q), torch.randn_like(q)
            for causal in (True,):
                fl = 4 * B * H * L * L * D / (2 if causal else 1) * 3.5
                def ours():
                    out, lse = forward(q, k, v, causal)
                    backward(q, k, v, out, lse, do, causal, cfg)
                qt, kt, vt = (t.clone().requires_grad_() for t in (q, k, v))
                def theirs():
                    F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal).backward(do)
                t, tt = bench(ours), bench(theirs)
                summary.append(f"{cfg} B{B} H{H} L{L} D{D} causal={causal} fwd+bwd: umx-proto {t*1e3:.0f} us {fl/t/1e9:.0f} TFLOP/s, torch {tt*1e3:.0f} us {fl/tt/1e9:.0f} TFLOP/s")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
