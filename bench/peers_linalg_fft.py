"""CPU peer baselines of bench/src/bin/linalg_fft.rs: NumPy (and MLX's CPU build when
installed) on the same workloads, in the same order: solve, qr, svd, eigh of a batch of 64x64
and of one NxN float32 matrix, then a 2^k-point complex64 FFT. Usage: peers_linalg_fft.py N
BATCH LOG2; prints one JSON object {"numpy": [seconds...], "mlx": [...]}. MLX skips matrices
bigger than 2048 (null times) unless UMX_BENCH_MLX_BIG is set."""
import json
import os
import sys
import time

import numpy as np

n, batch, log2 = (int(v) for v in sys.argv[1:4])


def med(f, reps):
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


rng = np.random.default_rng(0)


def mats(shape):
    a = rng.uniform(-1, 1, shape).astype(np.float32)
    a = a + shape[-1] * np.eye(shape[-1], dtype=np.float32)
    return a, a + np.swapaxes(a, -1, -2)


res = {"numpy": [], "mlx": []}
cases = [((batch, 64, 64), 5), ((n, n), 3)]
x = (rng.uniform(-1, 1, 1 << log2)).astype(np.complex64)
for shape, reps in cases:
    a, s = mats(shape)
    b = rng.uniform(-1, 1, shape[:-1] + (1,)).astype(np.float32)
    res["numpy"] += [med(lambda: np.linalg.solve(a, b), reps), med(lambda: np.linalg.qr(a), reps),
                     med(lambda: np.linalg.svd(a), reps), med(lambda: np.linalg.eigh(s), reps)]
res["numpy"].append(med(lambda: np.fft.fft(x), 5))
try:
    import mlx.core as mx
    cpu = mx.cpu
    for shape, reps in cases:
        if shape[-1] > 2048 and not os.environ.get("UMX_BENCH_MLX_BIG"):
            # MLX's CPU factorizations of a 4096 matrix take minutes each on a small machine.
            res["mlx"] += [None] * 4
            continue
        a, s = mats(shape)
        a, s = mx.array(a), mx.array(s)
        b = mx.array(rng.uniform(-1, 1, shape[:-1] + (1,)).astype(np.float32))
        res["mlx"] += [med(lambda: mx.eval(mx.linalg.solve(a, b, stream=cpu)), reps),
                       med(lambda: mx.eval(*mx.linalg.qr(a, stream=cpu)), reps),
                       med(lambda: mx.eval(*mx.linalg.svd(a, stream=cpu)), reps),
                       med(lambda: mx.eval(*mx.linalg.eigh(s, stream=cpu)), reps)]
    xm = mx.array(x)
    res["mlx"].append(med(lambda: mx.eval(mx.fft.fft(xm, stream=cpu)), 5))
except ImportError as e:
    res["mlx_error"] = str(e)
print(json.dumps(res))
