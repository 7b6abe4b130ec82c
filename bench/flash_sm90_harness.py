"""Tuning harness for the Hopper flash attention forward kernel
(crates/umx-cuda/src/kernels/flash_sm90.cu, wgmma): builds it through CuPy's NVRTC for sm_90a for
each configuration given, BN,WG[,NS[,PINGPONG[,HEADS[,PERSIST]]]]: keys a tile, consumer
warpgroups of 64 query rows, shared-memory stages (2), whether the warpgroups take turns (0),
heads whose query blocks run together (8), whether a block of the launch (one an SM) takes
query block after query block by a counter (1; 0: a block each). It checks each
against a float32 reference in torch and times it beside torch's SDPA and the mma.sync kernel
(flash.cu in its kept shape, through bench/flash_harness.py, whose checks and timings this
shares). On the GPU machine, from the repository root (no Rust build needed):

    python3 bench/flash_sm90_harness.py 128,2,3,0,8,1 128,2,3,1,8,1
"""
import ctypes, math, os, sys, time
import cupy as cp
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import flash_harness as mma  # noqa: E402  (its reference, checks and timings; the mma.sync kernel)

SRC = mma.kernel_source("flash_sm90.cu")
_mods = {}


def full(cfg):
    """The configuration with its defaults: (BN, WG, NS, PINGPONG, HEADS, PERSIST), then any
    trial defines (NAME or NAME=V)."""
    nums = [c for c in cfg if isinstance(c, int)]
    return tuple((nums + [2, 0, 8, 1][len(nums) - 2:])[:6]) + tuple(c for c in cfg if not isinstance(c, int))


def kernel(D, cfg, f16, causal):
    key = (D, cfg, f16, causal)
    if key not in _mods:
        t = time.time()
        BN, WG, NS, PP, HG = cfg[:5]
        defs = f"#define D {D}\n#define BN {BN}\n#define WG {WG}\n#define NS {NS}\n#define PINGPONG {PP}\n#define HEADS_AT_ONCE {HG}\n#define IS_F16 {int(f16)}\n#define CAUSAL {int(causal)}\n"
        defs += "".join(f"#define {d.replace('=', ' ')}\n" if "=" in d else f"#define {d} 1\n" for d in cfg[6:])
        mod = cp.RawModule(code=defs + SRC, options=("-arch=sm_90a", "-std=c++17"))
        BR, threads = 64 * WG, 128 * WG + 128
        smem = 2 * (BR * D + 2 * NS * BN * D) + 1024
        k = mod.get_function("umx_flash")
        k.max_dynamic_shared_size_bytes = smem
        print(f"  compiled {key} in {time.time()-t:.2f}s regs={k.num_regs} local={k.local_size_bytes} smem={smem}", flush=True)
        _mods[key] = (k, BR, threads, smem)
    return _mods[key]


def flash(q, k, v, causal, cfg, lse=None):
    """The kernel's output (and each row's log-sum-exp into `lse`, where given)."""
    B, HQ, LQ, D = q.shape
    HK, LK = k.shape[1], k.shape[2]
    kern, BR, threads, smem = kernel(D, cfg, q.dtype == torch.float16, causal)
    out = torch.empty(B, HQ, LQ, D, device="cuda", dtype=q.dtype)
    nqb = (LQ + BR - 1) // BR
    i64 = np.int64
    args = (cp.from_dlpack(out), np.uint64(0) if lse is None else cp.from_dlpack(lse), cp.from_dlpack(q), cp.from_dlpack(k), cp.from_dlpack(v),
            i64(B * HQ), i64(HQ), i64(LQ), i64(LK), i64(HQ // HK), i64(nqb),
            np.float32(1 / math.sqrt(D) * math.log2(math.e)),
            *[i64(s) for s in q.stride()[:3]], *[i64(s) for s in k.stride()[:3]],
            *[i64(s) for s in v.stride()[:3]])
    items = nqb * B * HQ
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    if cfg[5] and items > sms:
        counter = torch.zeros(1, device="cuda", dtype=torch.int32)
        args += (cp.from_dlpack(counter),)
        grid = sms
    else:
        args += (np.uint64(0),)
        grid = items
    maps = [tensor_map(q, BR), tensor_map(k, cfg[0]), tensor_map(v, cfg[0])]
    launch_raw(kern, grid, threads, smem, args, maps)
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


def main():
    shapes = [(4, 16, 2048, 128), (4, 32, 2048, 64)]
    # --d=N: head dim N only (its cases and shapes).
    only_d = [int(a.split("=")[1]) for a in sys.argv[1:] if a.startswith("--d=")]
    shapes = [s for s in shapes if not only_d or s[3] in only_d]
    cfgs = [full(tuple(int(x) if x.isdigit() else x for x in c.split(","))) for c in sys.argv[1:] if not c.startswith("--")] or [full((128, 2, 3, 0, 8, 1))]
    # flash.cu's cases and some of more query blocks than SMs (a block takes several; rows
    # without keys where causal queries outnumber the keys)
    cases = [c for c in mma.CASES if c[5] <= 128] + [
        (4, 16, 4, 1000, 1000, 128, True, torch.bfloat16),
        (3, 16, 16, 700, 900, 64, False, torch.float16),
        (2, 32, 8, 900, 300, 64, True, torch.bfloat16),
    ]
    cases = [c for c in cases if not only_d or c[5] in only_d]
    torch.manual_seed(0)
    summary = []
    for cfg in cfgs:
        print("config", cfg)
        if mma.check(lambda q, k, v, causal: flash(q, k, v, causal, cfg), cases):
            summary += mma.timings(lambda q, k, v, causal: flash(q, k, v, causal, cfg), cfg, shapes)
        else:
            summary.append(f"{cfg}: WRONG")
    if "--no-mma" in sys.argv:
        print("\n".join(summary))
        return
    print("config mma.sync (flash.cu)")
    old = lambda q, k, v, causal: mma.flash(q, k, v, causal, (64, 4, 2))  # noqa: E731
    if mma.check(old, cases):
        summary += mma.timings(old, "mma.sync", shapes)
    print("\n".join(summary))


if __name__ == "__main__":
    main()
