"""Ops of every family on broadcast (stride-0) and sliced views: the harness gives each input
`broadcast_to` its case's target shape before calling the op, so kernels see zero strides."""
import numpy as np
from common import Cases, rand

rng = np.random.default_rng(7)
c = Cases()


def bcase(op, small, target, expected_fn, **kw):
    big = np.broadcast_to(small, target)
    c.add(op, [small], expected_fn(big), broadcast_to=[list(target)], **kw)


for dt in ["float32", "float16", "bfloat16", "int32"]:
    x = rand((3, 1), dt, rng)
    bcase("sum", x, (3, 4), lambda b: b.astype(np.float64).sum(axis=1).astype(
        {"float32": np.float32, "float16": np.float16, "int32": np.int32}.get(dt, b.dtype)), axis=1)
    bcase("max", x, (3, 4), lambda b: b.max(axis=0), axis=0)
    bcase("cumsum", rand((1, 5), dt, rng), (3, 5), lambda b: np.cumsum(b.astype(np.float64), axis=0).astype(b.dtype) if dt != "int32" else np.cumsum(b, axis=0).astype(np.int32), axis=0)
    bcase("sort", rand((1, 6), dt, rng), (2, 6), lambda b: np.sort(b.astype(np.float64), axis=0).astype(b.dtype), axis=0)
    bcase("copy", x, (2, 3, 4), lambda b: np.array(b))

for dt in ["float32", "float16"]:
    x = rand((1, 4), dt, rng)
    bcase("exp", x, (3, 4), lambda b: np.exp(b.astype(np.float32)).astype(b.dtype))
bcase("matmul_self_t", rand((4, 1), "float32", rng), (4, 3),
      lambda b: (b.astype(np.float64) @ b.T.astype(np.float64)).astype(np.float32))
c.save(__file__)
