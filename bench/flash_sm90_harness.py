"""Tuning harness for the Hopper flash attention forward kernel
(crates/umx-cuda/src/kernels/flash_sm90.cu, wgmma): builds it through CuPy's NVRTC for sm_90a for
each block shape given (BN,WG[,NS[,PINGPONG]]: keys a tile, consumer warpgroups of 64 query rows,
shared memory stages (2 by default), whether the warpgroups take turns (1 by default), heads whose
blocks run together (8), whether K and V load through the copy engine (TMA, 0)), checks it against a float32 reference in torch and
times it beside torch's SDPA and the mma.sync kernel (flash.cu, its kept shape). On the GPU
machine, from the repository root (no Rust build needed):

    python3 bench/flash_sm90_harness.py 128,2 64,2
"""
import ctypes, math, os, sys, time
import cupy as cp
import numpy as np
import torch
import torch.nn.functional as F

KDIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "umx-cuda", "src",
                    "kernels")
SRC = open(os.path.join(KDIR, "flash_sm90.cu")).read()
OLD = open(os.path.join(KDIR, "flash.cu")).read()
_mods = {}


def kernel(D, cfg, f16, causal):
    key = (D, cfg, f16, causal)
    if key not in _mods:
        t = time.time()
        if cfg == "old":
            BC, WARPS, MT = (32, 8, 1) if D == 256 else (64, 4, 2)
            defs = f"#define BACKWARD 0\n#define D {D}\n#define BC {BC}\n#define WARPS {WARPS}\n#define MT {MT}\n#define IS_F16 {int(f16)}\n#define CAUSAL {int(causal)}\n"
            mod = cp.RawModule(code=defs + OLD, options=("-arch=sm_90", "-std=c++17"))
            BR, threads = WARPS * 16 * MT, WARPS * 32
            smem = (BR * D + 4 * BC * D) * 2
        else:
            BN, WG, NS, PP, HG, TMA = (list(cfg) + [2, 1, 8, 0][len(cfg) - 2:])[:6]
            defs = f"#define D {D}\n#define BN {BN}\n#define WG {WG}\n#define NS {NS}\n#define PINGPONG {PP}\n#define HEADS_AT_ONCE {HG}\n#define TMA {TMA}\n#define IS_F16 {int(f16)}\n#define CAUSAL {int(causal)}\n"
            mod = cp.RawModule(code=defs + SRC, options=("-arch=sm_90a", "-std=c++17"))
            BR, threads = 64 * WG, 128 * WG + 128
            smem = 2 * (BR * D + 2 * NS * BN * D) + 1024
        k = mod.get_function("umx_flash")
        k.max_dynamic_shared_size_bytes = smem
        print(f"  compiled {key} in {time.time()-t:.2f}s regs={k.num_regs} local={k.local_size_bytes} smem={smem}", flush=True)
        _mods[key] = (k, BR, threads, smem)
    return _mods[key]


def flash(q, k, v, causal, cfg):
    B, HQ, LQ, D = q.shape
    HK, LK = k.shape[1], k.shape[2]
    kern, BR, threads, smem = kernel(D, cfg, q.dtype == torch.float16, causal)
    out = torch.empty(B, HQ, LQ, D, device="cuda", dtype=q.dtype)
    nqb = (LQ + BR - 1) // BR
    i64 = np.int64
    args = (cp.from_dlpack(out), np.uint64(0), cp.from_dlpack(q), cp.from_dlpack(k), cp.from_dlpack(v),
            i64(B * HQ), i64(HQ), i64(LQ), i64(LK), i64(HQ // HK), i64(nqb),
            np.float32(1 / math.sqrt(D) * math.log2(math.e)),
            *[i64(s) for s in q.stride()[:3]], *[i64(s) for s in k.stride()[:3]],
            *[i64(s) for s in v.stride()[:3]])
    if cfg != "old" and (list(cfg) + [2, 1, 8, 0][len(cfg) - 2:])[5]:
        BN = cfg[0]
        tk, tv = tensor_map(k, BN), tensor_map(v, BN)
        launch_raw(kern, nqb * B * HQ, threads, smem, args, [tk, tv])
    else:
        kern((nqb * B * HQ,), (threads,), args, shared_mem=smem)
    return out


libcuda = ctypes.CDLL("libcuda.so.1")


_maps = {}


def tensor_map(x, BN):
    """A 4-d TMA map of (B, H, L, D) 16-bit x: boxes of 64 columns by BN rows, 128-byte swizzle
    (cached: encoding it each call costs the host more than the kernel runs)."""
    key = (x.data_ptr(), tuple(x.shape), tuple(x.stride()), x.dtype, BN)
    if key not in _maps:
        _maps[key] = (x, encode_map(x, BN))
    return _maps[key][1]


def encode_map(x, BN):
    B, H, L, D = x.shape
    m = (ctypes.c_uint64 * 16)()
    dims = (ctypes.c_uint64 * 4)(D, L, H, B)
    strides = (ctypes.c_uint64 * 3)(*[x.stride(i) * 2 for i in (2, 1, 0)])
    box = (ctypes.c_uint32 * 4)(64, BN, 1, 1)
    ones = (ctypes.c_uint32 * 4)(1, 1, 1, 1)
    dt = 6 if x.dtype == torch.float16 else 9
    r = libcuda.cuTensorMapEncodeTiled(ctypes.byref(m), dt, 4, ctypes.c_void_p(x.data_ptr()), dims,
                                       strides, box, ones, 0, 3, 3, 0)
    if r != 0:
        raise RuntimeError(f"cuTensorMapEncodeTiled: {r}")
    return m


def fn_ptr(fn):
    for path in ("ptr", "kernel.ptr", "_kernel.ptr"):
        o = fn
        try:
            for a in path.split("."):
                o = getattr(o, a)
            return o
        except AttributeError:
            pass
    raise SystemExit(f"no function handle in {dir(fn)}")


def launch_raw(kern, grid, block, smem, args, maps):
    vals = []
    for a in args:
        if isinstance(a, cp.ndarray):
            vals.append(ctypes.c_void_p(a.data.ptr))
        elif isinstance(a, np.uint64):
            vals.append(ctypes.c_uint64(int(a)))
        elif isinstance(a, np.int64):
            vals.append(ctypes.c_longlong(int(a)))
        elif isinstance(a, np.float32):
            vals.append(ctypes.c_float(float(a)))
        else:
            raise TypeError(type(a))
    vals += maps
    params = (ctypes.c_void_p * len(vals))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in vals])
    stream = torch.cuda.current_stream().cuda_stream
    r = libcuda.cuLaunchKernel(ctypes.c_void_p(fn_ptr(kern)), grid, 1, 1, block, 1, 1, smem,
                               ctypes.c_void_p(stream), params, None)
    if r != 0:
        raise RuntimeError(f"cuLaunchKernel: {r}")


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
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    st, en = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    st.record()
    for _ in range(reps):
        fn()
    en.record()
    torch.cuda.synchronize()
    return st.elapsed_time(en) / reps


SHAPES = [(4, 16, 2048, 128), (4, 32, 2048, 64)]
cfgs = [tuple(map(int, c.split(","))) for c in sys.argv[1:]] or [(128, 2), (64, 2)]
torch.manual_seed(0)
summary = []
for cfg in cfgs + ["old"]:
    print("config", cfg)
    ok = True
    for (B, HQ, HK, LQ, LK, D, causal, dt) in [
        (1, 2, 2, 128, 128, 128, False, torch.bfloat16),
        (2, 4, 2, 200, 333, 128, True, torch.bfloat16),
        (2, 4, 1, 333, 200, 64, True, torch.float16),
        (1, 3, 3, 1000, 1000, 128, True, torch.float16),
        (1, 2, 2, 77, 513, 64, False, torch.bfloat16),
    ]:
        q = torch.randn(B, HQ, LQ, D, device="cuda", dtype=dt)
        k = torch.randn(B, HK, LK, D, device="cuda", dtype=dt)
        v = torch.randn(B, HK, LK, D, device="cuda", dtype=dt)
        # a strided key tensor: every other row of a longer one
        k2 = torch.randn(B, HK, LK * 2, D, device="cuda", dtype=dt)[:, :, ::2]
        for kk in (k, k2):
            got = flash(q, kk, v, causal, cfg).float()
            want = ref(q, kk, v, causal)
            fin = torch.isfinite(want)
            err = (got - want)[fin].abs().max().item() if fin.any() else 0.0
            nan_match = bool((torch.isnan(got) == torch.isnan(want)).all())
            print(f"  {B},{HQ}/{HK},{LQ}x{LK},D{D},causal={causal},{dt}: max err {err:.4f} nan-match {nan_match}")
            ok = ok and err < 2e-2 and nan_match
    print("  correct:", ok, flush=True)
    if not ok:
        summary.append(f"{cfg}: WRONG")
        continue
    for (B, H, L, D) in SHAPES:
        q = torch.randn(B, H, L, D, device="cuda", dtype=torch.bfloat16)
        k = torch.randn_like(q)
        v = torch.randn_like(q)
        for causal in (True, False):
            fl = 4 * B * H * L * L * D / (2 if causal else 1)
            t = bench(lambda: flash(q, k, v, causal, cfg))
            tt = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
            summary.append(f"{cfg} B{B} H{H} L{L} D{D} causal={causal}: umx {t*1e3:.0f} us {fl/t/1e9:.0f} TFLOP/s, torch {tt*1e3:.0f} us {fl/tt/1e9:.0f} TFLOP/s")
print("\n".join(summary))
