"""Reference values for the creation family, from MLX itself (its arange accumulates in the
output dtype, so MLX, not NumPy, gives the exact values); NumPy checks they agree in spirit.
"""
import os
import sys

import mlx.core as mx
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import Cases, bfloat16, rand  # noqa: E402
from mlx_common import MX, mx_of, np_of  # noqa: E402,F401

c = Cases()
rng = np.random.default_rng(0)

# arange: integer and float arguments, negative steps, empty ranges, every dtype.
ARANGES = [(0, 10, 1), (0, 10, 3), (5, 0, -1), (10, 0, -3), (3, 3, 1), (5, 0, 1), (0, 5, -1),
           (-7, 8, 2), (0.0, 1.0, 0.1), (1.0, 0.0, -0.25), (0.1, 30.0, 0.3), (-2.5, 2.5, 0.5),
           (0.5, 5, 1), (0, 1e-3, 1e-4)]
for start, stop, step in ARANGES:
    is_int = all(isinstance(v, int) for v in (start, stop, step))
    c.add("arange", [], np_of(mx.arange(start, stop, step)), start=start, stop=stop, step=step,
          ints=is_int)
    for dt in ["float32", "float16", "bfloat16", "int32"]:
        out = mx.arange(start, stop, step, dtype=MX[dt])
        c.add("arange", [], np_of(out), start=start, stop=stop, step=step, dtype=dt, ints=is_int)
# float32 arange agrees with NumPy's up to float rounding
assert np.allclose(np.array(mx.arange(0.1, 30.0, 0.3)), np.arange(0.1, 30.0, 0.3), atol=1e-4)
c.add("arange", [], np_of(mx.arange(0, 5, float("inf"))), start=0, stop=5, step="inf", ints=False)
c.error("arange", [], "arange", start=0, stop=5, step=0, ints=True)
c.error("arange", [], "arange", start=0, stop=5, step=1, dtype="bool", ints=True)
c.error("arange", [], "arange", start=0, stop="inf", step=1, ints=False)

# linspace
for start, stop in [(0.0, 1.0), (-3.0, 7.5), (10.0, -10.0), (0.0, 10.0)]:
    for num in [0, 1, 2, 5, 7, 50]:
        for dt in ["float32", "float16", "bfloat16", "int32"]:
            out = mx.linspace(start, stop, num, dtype=MX[dt])
            c.add("linspace", [], np_of(out), start=start, stop=stop, num=num, dtype=dt)

# zeros, ones, full
SHAPES = [[2, 3], [], [0], [3, 0, 2], [4, 1, 5], [7]]
for shape in SHAPES:
    for dt in ["float32", "float16", "bfloat16", "int32", "bool"]:
        c.add("zeros", [], np_of(mx.zeros(shape, dtype=MX[dt])), shape=shape, dtype=dt)
        c.add("ones", [], np_of(mx.ones(shape, dtype=MX[dt])), shape=shape, dtype=dt)
        # MLX's C++ full(shape, vals, dtype) casts to dtype (Python's binding ignores dtype for
        # float scalars and arrays; umx follows the C++ op).
        c.add("full", [], np_of(mx.full(shape, 2.5).astype(MX[dt])), shape=shape, value=2.5, dtype=dt)
    c.add("full", [], np_of(mx.full(shape, 3)), shape=shape, value=3)
    c.add("full", [], np_of(mx.full(shape, 3.0)), shape=shape, value=3.0)
    c.add("full", [], np_of(mx.full(shape, True)), shape=shape, value=True)
    c.add("zeros", [], np_of(mx.zeros(shape)), shape=shape)
# full with an array value broadcast to the shape, with and without a dtype
for dt in ["float32", "float16", "bfloat16", "int32", "bool"]:
    v = rand([3], dt, rng)
    c.add("full", [v], np_of(mx.full([2, 3], mx_of(v))), shape=[2, 3])
    c.add("full", [v], np_of(mx.full([4, 2, 3], mx_of(v)).astype(mx.float32)), shape=[4, 2, 3],
          dtype="float32")
    v2 = rand([2, 1], dt, rng)
    c.add("full", [v2], np_of(mx.full([2, 5], mx_of(v2))), shape=[2, 5])
    s0 = rand([], dt, rng)
    c.add("full", [s0], np_of(mx.full([3], mx_of(s0)).astype(mx.int32)), shape=[3], dtype="int32")
    # _like
    a = rand([2, 3], dt, rng)
    c.add("zeros_like", [a], np_of(mx.zeros_like(mx_of(a))))
    c.add("ones_like", [a], np_of(mx.ones_like(mx_of(a))))
    c.add("full_like", [a], np_of(mx.full_like(mx_of(a), 7)), value=7)
    c.add("full_like", [a], np_of(mx.full_like(mx_of(a), 0.5, dtype=mx.float16)), value=0.5,
          dtype="float16")
    e = rand([0, 3], dt, rng)
    c.add("zeros_like", [e], np_of(mx.zeros_like(mx_of(e))))
    c.add("ones_like", [rand([], dt, rng)], np_of(mx.ones_like(mx_of(rand([], dt, rng)))))
c.error("full", [np.ones((4,), np.float32)], "full", shape=[2, 3])

# eye, identity, tri
for n, m, k in [(3, None, 0), (3, 4, 0), (4, 3, 0), (3, 4, 1), (3, 4, -1), (3, 4, 3), (3, 4, 4),
                (3, 4, -3), (5, 2, -2), (1, 1, 0), (2, 6, 2)]:
    for dt in ["float32", "float16", "bfloat16", "int32", "bool"]:
        c.add("eye", [], np_of(mx.eye(n, m, k, dtype=MX[dt])), n=n, m=m, k=k, dtype=dt)
        c.add("tri", [], np_of(mx.tri(n, m, k, dtype=MX[dt])), n=n, m=m, k=k, dtype=dt)
c.add("eye", [], np_of(mx.eye(3)), n=3)
c.add("tri", [], np_of(mx.tri(3)), n=3)
c.add("tri", [], np_of(mx.tri(0, 3)), n=0, m=3)
for n in [1, 4]:
    for dt in ["float32", "int32", "bool"]:
        c.add("identity", [], np_of(mx.identity(n, dtype=MX[dt])), n=n, dtype=dt)
c.error("eye", [], "eye", n=0)
c.error("identity", [], "identity", n=0)

# meshgrid (needs reshape and broadcast from the shape family)
WITH_SHAPE = True
if WITH_SHAPE:
    for dt in ["float32", "int32", "bool", "bfloat16"]:
        xs = [rand([3], dt, rng), rand([4], dt, rng), rand([2], dt, rng)]
        for count in [1, 2, 3]:
            for indexing in ["xy", "ij"]:
                for sparse in [False, True]:
                    arrs = [mx_of(x) for x in xs[:count]]
                    outs = mx.meshgrid(*arrs, sparse=sparse, indexing=indexing)
                    c.add("meshgrid", xs[:count], [np_of(o) for o in outs], sparse=sparse,
                          indexing=indexing)
    c.error("meshgrid", [rand([3], "float32", rng)], "meshgrid", indexing="xz")

c.save(__file__)
