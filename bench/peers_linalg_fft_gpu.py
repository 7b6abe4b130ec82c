"""GPU peer baselines of `linalg_fft --gpu` (bench/src/bin/linalg_fft.rs): PyTorch (and JAX
when it has a GPU) on the same workloads, in the same order: solve, qr, svd, eigh of a batch of
64x64 and of one NxN float32 matrix, then a 2^k-point complex64 FFT, each timed to the end of
its GPU work. Usage: peers_linalg_fft_gpu.py N BATCH LOG2; prints one JSON object
{"torch": [seconds...], "jax": [...]}."""
import json
import os
import sys
import time

import numpy as np

n, batch, log2 = (int(v) for v in sys.argv[1:4])
# JAX takes most of the card up front unless told not to; umx and torch hold some of it.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def med(f, sync, reps):
    f()
    sync()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        sync()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


rng = np.random.default_rng(0)


def mats(shape):
    a = rng.uniform(-1, 1, shape).astype(np.float32)
    a = a + shape[-1] * np.eye(shape[-1], dtype=np.float32)
    return a, a + np.swapaxes(a, -1, -2)


res = {"torch": [], "jax": []}
cases = [((batch, 64, 64), 5), ((n, n), 3)]
x = (rng.uniform(-1, 1, 1 << log2)).astype(np.complex64)
inputs = []
for shape, reps in cases:
    a, s = mats(shape)
    b = rng.uniform(-1, 1, shape[:-1] + (1,)).astype(np.float32)
    inputs.append((a, s, b, reps))
try:
    import torch
    dev = torch.device("cuda")
    sync = torch.cuda.synchronize
    for a, s, b, reps in inputs:
        a, s, b = (torch.from_numpy(v).to(dev) for v in (a, s, b))
        res["torch"] += [med(lambda: torch.linalg.solve(a, b), sync, reps),
                         med(lambda: torch.linalg.qr(a), sync, reps),
                         med(lambda: torch.linalg.svd(a), sync, reps),
                         med(lambda: torch.linalg.eigh(s), sync, reps)]
    xt = torch.from_numpy(x).to(dev)
    res["torch"].append(med(lambda: torch.fft.fft(xt), sync, 5))
    del a, s, b, xt
    torch.cuda.empty_cache()
except Exception as e:  # noqa: BLE001 - report any failure of the peer, keep the others
    res["torch_error"] = str(e)
try:
    import jax
    import jax.numpy as jnp
    if jax.default_backend() != "gpu":
        raise RuntimeError("no JAX GPU backend")
    out = {}

    def sync():
        jax.block_until_ready(out.get("v"))

    def run(f):
        return lambda: out.__setitem__("v", f())

    for a, s, b, reps in inputs:
        a, s, b = (jnp.asarray(v) for v in (a, s, b))
        res["jax"] += [med(run(lambda: jnp.linalg.solve(a, b)), sync, reps),
                       med(run(lambda: jnp.linalg.qr(a)), sync, reps),
                       med(run(lambda: jnp.linalg.svd(a)), sync, reps),
                       med(run(lambda: jnp.linalg.eigh(s)), sync, reps)]
    xj = jnp.asarray(x)
    res["jax"].append(med(run(lambda: jnp.fft.fft(xj)), sync, 5))
except Exception as e:  # noqa: BLE001
    res["jax_error"] = str(e)
print(json.dumps(res))
