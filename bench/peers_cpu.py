"""CPU peer baselines: numpy and mlx (cpu), on the workloads of bench/src/main.rs.

Run by the bench program (which unsets OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for it, so NumPy's
OpenBLAS picks its best kernel); prints one JSON object. Copied from ../shared/peers/."""
import time, json, sys
import numpy as np
res = {}
def med(f, reps=7):
    f(); ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    ts.sort(); return ts[len(ts)//2]
n = 1 << 26
xn = np.random.randn(n).astype(np.float32)
res["numpy_elementwise_ms"] = med(lambda: (xn * 2 + 5) / 3) * 1e3
yn = np.empty_like(xn)
res["numpy_copy_ms"] = med(lambda: np.copyto(yn, xn)) * 1e3
an = np.random.randn(2048, 2048).astype(np.float32)
res["numpy_matmul2048_gflops"] = 2 * 2048**3 / med(lambda: an @ an) / 1e9
res["numpy_sum_ms"] = med(lambda: xn.sum()) * 1e3
try:
    import mlx.core as mx
    mx.set_default_device(mx.cpu)
    x = mx.array(xn); mx.eval(x)
    f = lambda x: (x * 2 + 5) / 3; fc = mx.compile(f)
    res["mlx_cpu_elementwise_ms"] = med(lambda: mx.eval(f(x))) * 1e3
    res["mlx_cpu_compile_elementwise_ms"] = med(lambda: mx.eval(fc(x))) * 1e3
    a = mx.array(an); mx.eval(a)
    res["mlx_cpu_matmul2048_gflops"] = 2 * 2048**3 / med(lambda: mx.eval(a @ a)) / 1e9
    res["mlx_cpu_sum_ms"] = med(lambda: mx.eval(x.sum())) * 1e3
    y = mx.ones((16,)); mx.eval(y)
    def chain():
        z = y
        for _ in range(1000): z = z + 1.0
        mx.eval(z)
    res["mlx_cpu_tiny_op_us"] = med(chain) / 1000 * 1e6
except ImportError as e:
    res["mlx_error"] = str(e)
yn16 = np.ones(16, dtype=np.float32)
def npchain():
    z = yn16
    for _ in range(1000): z = z + 1.0
res["numpy_tiny_op_us"] = med(npchain) / 1000 * 1e6
try:
    from threadpoolctl import threadpool_info
    res["numpy_blas"] = ", ".join(f"{i.get('internal_api')} {i.get('architecture')} x{i.get('num_threads')}" for i in threadpool_info())
except ImportError:
    pass
print(json.dumps(res))
