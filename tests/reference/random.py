"""MLX reference values for the random family: the same key must give MLX's numbers.

Needs mlx (CPU) besides numpy. Each case's first input is the key (uint32, shape (2,)).
"""
import os
import sys

import mlx.core as mx
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import Cases, bfloat16  # noqa: E402
from mlx_common import MX, mx_of, np_of  # noqa: E402,F401

c = Cases()
keys = [0, 1, 42, 2**40 + 7]
SHAPES = [[5], [2, 3], [4, 4], [7, 1], [], [0], [3, 0, 2], [33]]

for s in [0, 5, 42, 2**40 + 7, 2**64 - 1]:
    c.add("key", [], np_of(mx.random.key(s)), seed=s)

for s in keys:
    k = mx.random.key(s)
    for num in [1, 2, 3, 4]:
        c.add("split", [np_of(k)], np_of(mx.random.split(k, num)), num=num)

# uniform: scalar bounds, every float dtype, odd and even sizes.
for i, shape in enumerate(SHAPES):
    for dt in ["float32", "float16", "bfloat16"]:
        k = mx.random.key(keys[i % len(keys)])
        for lo, hi in [(0.0, 1.0), (-2.0, 3.0)]:
            out = mx.random.uniform(lo, hi, shape, dtype=MX[dt], key=k)
            c.add("uniform", [np_of(k)], np_of(out), shape=shape, dtype=dt, low=lo, high=hi)

# uniform with array bounds (broadcast to the shape), of other dtypes than the output.
rng = np.random.default_rng(0)
for dt in ["float32", "float16"]:
    k = mx.random.key(7)
    lo = rng.uniform(-3, 0, (3, 1)).astype(np.float32)
    hi = rng.uniform(1, 4, (4,)).astype(np.float16)
    out = mx.random.uniform(mx_of(lo), mx_of(hi), (3, 4), dtype=MX[dt], key=k)
    c.add("uniform", [np_of(k), lo, hi], np_of(out), shape=[3, 4], dtype=dt)

# normal
for i, shape in enumerate(SHAPES):
    for dt in ["float32", "float16", "bfloat16"]:
        k = mx.random.key(keys[i % len(keys)] + 3)
        out = mx.random.normal(shape, dtype=MX[dt], key=k)
        c.add("normal", [np_of(k)], np_of(out), shape=shape, dtype=dt)
        out = mx.random.normal(shape, dtype=MX[dt], loc=1.5, scale=0.5, key=k)
        c.add("normal", [np_of(k)], np_of(out), shape=shape, dtype=dt, loc=1.5, scale=0.5)
for dt in ["float32", "bfloat16"]:
    k = mx.random.key(11)
    loc = rng.uniform(-3, 3, (2, 1)).astype(np.float32)
    scale = rng.uniform(0.5, 2, (3,)).astype(np.float32)
    out = mx.random.normal((2, 3), dtype=MX[dt], loc=mx_of(loc), scale=mx_of(scale), key=k)
    c.add("normal", [np_of(k), loc, scale], np_of(out), shape=[2, 3], dtype=dt)

# complex normal
for i, shape in enumerate([[5], [2, 3], [], [0]]):
    k = mx.random.key(keys[i % len(keys)] + 13)
    c.add("normal", [np_of(k)], np_of(mx.random.normal(shape, dtype=mx.complex64, key=k)),
          shape=shape, dtype="complex64")
    out = mx.random.normal(shape, dtype=mx.complex64, loc=1.5, scale=0.5, key=k)
    c.add("normal", [np_of(k)], np_of(out), shape=shape, dtype="complex64", loc=1.5, scale=0.5)
k = mx.random.key(14)
zl = (rng.normal(size=(3,)) + 1j * rng.normal(size=(3,))).astype(np.complex64)
zs = (rng.normal(size=(2, 1)) + 1j * rng.normal(size=(2, 1))).astype(np.complex64)
c.add("normal", [np_of(k), zl, zs],
      np_of(mx.random.normal((2, 3), dtype=mx.complex64, loc=mx.array(zl), scale=mx.array(zs), key=k)),
      shape=[2, 3], dtype="complex64")

# randint
for i, (lo, hi) in enumerate([(0, 10), (-5, 5), (-1000, 7), (3, 4), (0, 2**31 - 1), (5, 2)]):
    for dt in ["int32", "int16", "uint8", "int64"]:
        if dt == "uint8" and lo < 0:
            continue
        if dt == "int16" and hi > 2**15:
            continue
        if dt == "uint8" and hi > 255:
            continue
        k = mx.random.key(keys[i % len(keys)] + 9)
        out = mx.random.randint(lo, hi, (4, 5), dtype=MX[dt], key=k)
        c.add("randint", [np_of(k)], np_of(out), shape=[4, 5], dtype=dt, low=lo, high=hi)
k = mx.random.key(2)
c.add("randint", [np_of(k)], np_of(mx.random.randint(0, 2, (9,), dtype=mx.bool_, key=k)),
      shape=[9], dtype="bool", low=0, high=2)
lo = np.array([[-10], [0], [100]], dtype=np.int32)
hi = np.array([0, 50], dtype=np.int32)
c.add("randint", [np_of(k), lo, hi], np_of(mx.random.randint(mx_of(lo), mx_of(hi), (3, 2), key=k)),
      shape=[3, 2], dtype="int32")

# bernoulli
for i, p in enumerate([0.5, 0.1, 0.9, 0.0, 1.0]):
    k = mx.random.key(keys[i % len(keys)] + 1)
    c.add("bernoulli", [np_of(k)], np_of(mx.random.bernoulli(p, (6, 5), key=k)), p=p, shape=[6, 5])
p = rng.uniform(0, 1, (4, 3)).astype(np.float32)
k = mx.random.key(3)
c.add("bernoulli", [np_of(k), p], np_of(mx.random.bernoulli(mx_of(p), key=k)))
c.add("bernoulli", [np_of(k), p[0]], np_of(mx.random.bernoulli(mx_of(p[0]), (2, 3), key=k)), shape=[2, 3])
p16 = p.astype(np.float16)
c.add("bernoulli", [np_of(k), p16], np_of(mx.random.bernoulli(mx_of(p16), key=k)))

# gumbel, laplace, truncated_normal
for i, shape in enumerate([[5], [3, 4], [], [0]]):
    for dt in ["float32", "float16", "bfloat16"]:
        k = mx.random.key(keys[i % len(keys)] + 5)
        c.add("gumbel", [np_of(k)], np_of(mx.random.gumbel(shape, dtype=MX[dt], key=k)),
              shape=shape, dtype=dt)
        c.add("laplace", [np_of(k)], np_of(mx.random.laplace(shape, dtype=MX[dt], key=k)),
              shape=shape, dtype=dt)
        c.add("laplace", [np_of(k)],
              np_of(mx.random.laplace(shape, dtype=MX[dt], loc=2.0, scale=3.0, key=k)),
              shape=shape, dtype=dt, loc=2.0, scale=3.0)
        c.add("truncated_normal", [np_of(k)],
              np_of(mx.random.truncated_normal(-1.0, 2.0, shape, dtype=MX[dt], key=k)),
              shape=shape, dtype=dt, lower=-1.0, upper=2.0)
lower = np.array([-2.0, -0.5, 0.0], dtype=np.float32)
upper = np.array([[0.5], [3.0]], dtype=np.float32)
k = mx.random.key(8)
c.add("truncated_normal", [np_of(k), lower, upper],
      np_of(mx.random.truncated_normal(mx_of(lower), mx_of(upper), key=k)))

# categorical and permutation (need argmax / argsort from other families)
WITH_SORT = True
logits = rng.normal(size=(4, 6)).astype(np.float32)
for i in range(3 if WITH_SORT else 0):
    k = mx.random.key(keys[i] + 20)
    c.add("categorical", [np_of(k), logits], np_of(mx.random.categorical(mx_of(logits), key=k)))
    c.add("categorical", [np_of(k), logits], np_of(mx.random.categorical(mx_of(logits), axis=0, key=k)),
          axis=0)
    c.add("categorical", [np_of(k), logits],
          np_of(mx.random.categorical(mx_of(logits), num_samples=5, key=k)), num_samples=5)
    c.add("categorical", [np_of(k), logits],
          np_of(mx.random.categorical(mx_of(logits), shape=(2, 4), key=k)), shape=[2, 4])
for i, n in enumerate([1, 5, 10, 100] if WITH_SORT else []):
    k = mx.random.key(keys[i] + 30)
    c.add("permutation", [np_of(k)], np_of(mx.random.permutation(n, key=k)), n=n)
x = rng.normal(size=(5, 3)).astype(np.float32)
k = mx.random.key(31)
if WITH_SORT:
    c.add("permutation", [np_of(k), x], np_of(mx.random.permutation(mx_of(x), key=k)))
    c.add("permutation", [np_of(k), x], np_of(mx.random.permutation(mx_of(x), axis=1, key=k)), axis=1)

# bad input
k = mx.random.key(0)
c.error("uniform", [np.array([0, 0], dtype=np.int32)], "uniform", shape=[3])
c.error("uniform", [np.array([0, 0, 0], dtype=np.uint32)], "uniform", shape=[3])
c.error("normal", [np_of(k)], "normal", shape=[3], dtype="int32")
c.error("uniform", [np_of(k), np.zeros((4,), np.float32), np.ones((4,), np.float32)], "uniform", shape=[3])
c.error("randint", [np_of(k)], "randint", shape=[3], dtype="float32", low=0, high=3)
c.error("bernoulli", [np_of(k), np.array([1, 0], np.int32)], "bernoulli")
if WITH_SORT:
    c.error("categorical", [np_of(k), logits], "categorical", axis=2)
c.error("split", [np.array([0, 0], dtype=np.float32)], "split", num=2)
c.error("categorical", [np_of(k), logits], "categorical", shape=[3])
c.error("permutation", [np_of(k), x], "permutation", axis=2)

c.save(__file__)
