"""GPU peers of bench/src/bin/gpu.rs: torch eager, torch.compile and jax.jit on the same
workloads, timed the same way (after warm-up, `reps` calls back to back, one synchronisation,
mean per call). Prints one JSON object: {"workload/peer": milliseconds}; a peer that fails
gives "workload/peer:error" instead. Usage: python3 peers_gpu.py [torch] [jax]"""
import json, os, sys, time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
res = {}
N = 1 << 28
only = sys.argv[1:]


def timed(fn, sync, reps):
    for _ in range(3):
        out = fn()
    sync(out)
    t0 = time.perf_counter()
    for _ in range(reps):
        out = fn()
    sync(out)
    return (time.perf_counter() - t0) / reps * 1e3


def record(key, thunk):
    try:
        res[key] = thunk()
    except Exception as e:  # a peer that cannot run is reported, not fatal
        res[key + ":error"] = repr(e)[:200]


def torch_mlp():
    """The MLP of gpu.rs's training step on the GPU: 4 x Linear(4096) + GELU, a 10-way head."""
    from torch import nn

    layers = [m for _ in range(4) for m in (nn.Linear(4096, 4096), nn.GELU())]
    return nn.Sequential(*layers, nn.Linear(4096, 10)).cuda()


def torch_compiled_step(xb, yb):
    """torch.compile's training step of a fresh `torch_mlp()` (seed 0) on the batch (xb, yb),
    torch's recommended recipe: the model through torch.compile (forward and, by AOTAutograd,
    backward) and AdamW's step compiled too. Returns the step (it returns the loss)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = torch_mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cmodel = torch.compile(model)

    @torch.compile(fullgraph=False)
    def opt_step():
        opt.step()

    def cstep():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(cmodel(xb), yb)
        loss.backward()
        opt_step()
        return loss

    return cstep


def bench_torch():
    import torch
    import torch.nn.functional as F

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sync = lambda _: torch.cuda.synchronize()
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(N, device="cuda", generator=g)
    y = torch.randn(N, device="cuda", generator=g)
    chain = lambda x: (x * 2 + 5) / 3
    dot = lambda x, y: (x * y).sum()
    a = torch.randn(1024, 4096, device="cuda", generator=g)
    w = torch.randn(4096, 4096, device="cuda", generator=g) / 64
    b = torch.randn(4096, device="cuda", generator=g)
    layer = lambda a, w, b: F.gelu(a @ w + b)
    small = x[: 1 << 12].clone()
    for name, f, args in [("chain_4k", chain, (small,)), ("chain", chain, (x,)), ("sum_xy", dot, (x, y)), ("gelu_linear", layer, (a, w, b))]:
        reps = 500 if name == "chain_4k" else 20
        record(f"{name}/torch", lambda: timed(lambda: f(*args), sync, reps))
        fc = torch.compile(f)
        record(f"{name}/torch.compile", lambda: timed(lambda: fc(*args), sync, reps))
    torch.manual_seed(0)
    model = torch_mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    xb = torch.randn(1024, 4096, device="cuda")
    yb = torch.randint(0, 10, (1024,), device="cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    record("mlp_step/torch", lambda: timed(step, sync, 20))
    del model, opt

    # The step compiled (torch's recommended recipe, on a fresh model).
    cstep = torch_compiled_step(xb, yb)
    record("mlp_step/torch.compile", lambda: timed(cstep, sync, 20))
    del cstep
    record("sum/torch", lambda: timed(lambda: x.sum(), sync, 20))
    del x, y
    torch.cuda.empty_cache()
    for name, dt, tf32 in [("matmul_f32", torch.float32, False), ("matmul_tf32", torch.float32, True), ("matmul_bf16", torch.bfloat16, False)]:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        p = torch.randn(8192, 8192, device="cuda", generator=g).to(dt)
        q = torch.randn(8192, 8192, device="cuda", generator=g).to(dt)
        record(f"{name}/torch", lambda: timed(lambda: p @ q, sync, 5))
        del p, q
    torch.backends.cuda.matmul.allow_tf32 = False
    s = torch.ones(16, device="cuda")

    def adds():
        t = s
        for _ in range(1000):
            t = t + s
        return t

    record("tiny_add/torch", lambda: timed(adds, sync, 5) / 1000)


def bench_jax():
    import jax
    import jax.numpy as jnp

    sync = lambda out: jax.block_until_ready(out)
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    x = jax.random.normal(k[0], (N,))
    y = jax.random.normal(k[1], (N,))
    a = jax.random.normal(k[2], (1024, 4096))
    w = jax.random.normal(k[3], (4096, 4096)) / 64
    b = jax.random.normal(k[4], (4096,))
    prec = jax.lax.Precision.HIGHEST
    cases = [
        ("chain_4k", lambda x: (x * 2 + 5) / 3, (x[: 1 << 12],)),
        ("chain", lambda x: (x * 2 + 5) / 3, (x,)),
        ("sum_xy", lambda x, y: (x * y).sum(), (x, y)),
        ("gelu_linear", lambda a, w, b: jax.nn.gelu(jnp.matmul(a, w, precision=prec) + b, approximate=False), (a, w, b)),
    ]
    for name, f, args in cases:
        fj = jax.jit(f)
        reps = 500 if name == "chain_4k" else 20
        record(f"{name}/jax.jit", lambda: timed(lambda: fj(*args), sync, reps))
    del x, y
    record("mlp_step/jax.jit", lambda: jax_mlp_step(jax, jnp, prec, sync))


def jax_mlp_step(jax, jnp, prec, sync):
    """The MLP training step jitted whole: forward, backward and AdamW (umx's defaults:
    betas 0.9/0.999, eps 1e-8, weight decay 0.01, lr 1e-4), buffers donated."""
    k = jax.random.split(jax.random.PRNGKey(1), 8)
    dims = [4096] * 5 + [10]
    params = []
    for i in range(5):
        bound = 1 / dims[i] ** 0.5
        w = jax.random.uniform(k[i], (dims[i], dims[i + 1]), minval=-bound, maxval=bound)
        params.append((w, jnp.zeros(dims[i + 1])))
    xb = jax.random.normal(k[5], (1024, 4096))
    yb = jax.random.randint(k[6], (1024,), 0, 10)

    def loss(params, x, y):
        h = x
        for w, b in params[:-1]:
            h = jax.nn.gelu(jnp.matmul(h, w, precision=prec) + b, approximate=False)
        w, b = params[-1]
        logits = jnp.matmul(h, w, precision=prec) + b
        return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, y[:, None], -1)[:, 0])

    def step(params, m, v, x, y):
        l, g = jax.value_and_grad(loss)(params, x, y)
        tm = jax.tree_util.tree_map
        m = tm(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = tm(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
        params = tm(lambda p, m, v: p * (1 - 1e-4 * 0.01) - 1e-4 * m / (jnp.sqrt(v) + 1e-8), params, m, v)
        return params, m, v, l

    stepj = jax.jit(step, donate_argnums=(0, 1, 2))
    state = [params] + [jax.tree_util.tree_map(jnp.zeros_like, params) for _ in range(2)]

    def call():
        state[0], state[1], state[2], l = stepj(state[0], state[1], state[2], xb, yb)
        return l

    return timed(call, sync, 20)


if __name__ == "__main__":
    for name, fn in [("torch", bench_torch), ("jax", bench_jax)]:
        if only and name not in only:
            continue
        try:
            fn()
        except Exception as e:
            res[f"{name}:error"] = repr(e)[:300]
    print(json.dumps(res))
