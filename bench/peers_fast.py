"""GPU peer of bench/src/bin/fast.rs: torch, and MLX's CUDA build where it imports (pip
`mlx[cuda13]`, see ../shared/peers/prepare-mlx-cuda.sh), on the same workloads, timed the same
way (after warm-up, `reps` calls back to back, one synchronisation, mean per call; MLX's calls
queued with async_eval). Prints one JSON object: {"workload/torch": milliseconds,
"workload/mlx": ...}; a workload that fails gives "workload/PEER:error"."""
import json, time

from peers_common import run_peer

res = {}


def timed(fn, reps):
    import torch
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps * 1e3


def record(key, thunk):
    try:
        res[key] = thunk()
    except Exception as e:
        res[key + ":error"] = repr(e)[:200]


def bench_torch():
    import torch
    import torch.nn.functional as F

    bf = torch.bfloat16
    n = 8192
    x = torch.randn(n, n, device="cuda", dtype=bf)
    w = torch.randn(n, device="cuda", dtype=bf)
    b = torch.randn(n, device="cuda", dtype=bf)
    record("softmax/torch", lambda: timed(lambda: F.softmax(x, -1), 20))
    record("layer_norm/torch", lambda: timed(lambda: F.layer_norm(x, (n,), w, b, 1e-5), 20))
    record("rms_norm/torch", lambda: timed(lambda: F.rms_norm(x, (n,), w, 1e-5), 20))
    del x, w, b
    q = torch.randn(1, 32, 1, 128, device="cuda", dtype=bf)
    k = torch.randn(1, 8, 4096, 128, device="cuda", dtype=bf)
    v = torch.randn(1, 8, 4096, 128, device="cuda", dtype=bf)
    record("sdpa_decode/torch",
           lambda: timed(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True), 500))

    def graph_decode():
        x = q.clone()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                y = x
                for _ in range(20):
                    y = F.scaled_dot_product_attention(y, k, v, enable_gqa=True)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            y = x
            for _ in range(20):
                y = F.scaled_dot_product_attention(y, k, v, enable_gqa=True)
        return timed(g.replay, 50) / 20

    record("sdpa_decode_graph/torch", graph_decode)
    q = torch.randn(4, 16, 2048, 128, device="cuda", dtype=bf)
    k = torch.randn(4, 16, 2048, 128, device="cuda", dtype=bf)
    v = torch.randn(4, 16, 2048, 128, device="cuda", dtype=bf)
    record("sdpa_causal/torch",
           lambda: timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), 10))
    record("sdpa_full/torch",
           lambda: timed(lambda: F.scaled_dot_product_attention(q, k, v), 10))
    dout = torch.randn_like(q)
    qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))

    def train():
        o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=True)
        return torch.autograd.grad(o, (qg, kg, vg), dout)

    record("sdpa_causal_train/torch", lambda: timed(train, 3))


def bench_mlx():
    import mlx.core as mx

    def timed_mx(fn, reps):
        for _ in range(3):
            mx.eval(fn())
        mx.synchronize()
        t0 = time.perf_counter()
        outs = []
        for _ in range(reps):
            o = fn()
            mx.async_eval(o)
            outs.append(o)
        mx.eval(outs)
        mx.synchronize()
        return (time.perf_counter() - t0) / reps * 1e3

    bf = mx.bfloat16
    n = 8192
    x = mx.random.normal((n, n)).astype(bf)
    w = mx.random.normal((n,)).astype(bf)
    b = mx.random.normal((n,)).astype(bf)
    mx.eval(x, w, b)
    record("softmax/mlx", lambda: timed_mx(lambda: mx.softmax(x, axis=-1), 20))
    record("layer_norm/mlx", lambda: timed_mx(lambda: mx.fast.layer_norm(x, w, b, 1e-5), 20))
    record("rms_norm/mlx", lambda: timed_mx(lambda: mx.fast.rms_norm(x, w, 1e-5), 20))
    del x, w, b
    sdpa = mx.fast.scaled_dot_product_attention
    q = mx.random.normal((1, 32, 1, 128)).astype(bf)
    k = mx.random.normal((1, 8, 4096, 128)).astype(bf)
    v = mx.random.normal((1, 8, 4096, 128)).astype(bf)
    mx.eval(q, k, v)
    record("sdpa_decode/mlx", lambda: timed_mx(lambda: sdpa(q, k, v, scale=128 ** -0.5), 500))
    q = mx.random.normal((4, 16, 2048, 128)).astype(bf)
    k = mx.random.normal((4, 16, 2048, 128)).astype(bf)
    v = mx.random.normal((4, 16, 2048, 128)).astype(bf)
    dout = mx.random.normal((4, 16, 2048, 128)).astype(bf)
    mx.eval(q, k, v, dout)
    s = 128 ** -0.5
    record("sdpa_causal/mlx", lambda: timed_mx(lambda: sdpa(q, k, v, scale=s, mask="causal"), 10))
    record("sdpa_full/mlx", lambda: timed_mx(lambda: sdpa(q, k, v, scale=s), 10))

    def train():
        _, grads = mx.vjp(lambda a, b_, c: sdpa(a, b_, c, scale=s, mask="causal"), [q, k, v], [dout])
        return grads

    record("sdpa_causal_train/mlx", lambda: timed_mx(train, 3))


run_peer(res, "torch", bench_torch)
run_peer(res, "mlx", bench_mlx, "mlx.core")
print(json.dumps(res))
