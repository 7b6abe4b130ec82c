"""GPU peer of bench/src/bin/fast.rs: torch on the same workloads, timed the same way (after
warm-up, `reps` calls back to back, one synchronisation, mean per call). Prints one JSON
object: {"workload/torch": milliseconds}; a workload that fails gives "workload/torch:error"."""
import json, time

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


try:
    bench_torch()
except Exception as e:
    res["torch:error"] = repr(e)[:300]
print(json.dumps(res))
