"""NumPy reference values for the sort family: sort, argsort, partition, argpartition, topk,
searchsorted, median. Writes sort.json beside this file.

Conventions the Rust op table relies on:
- `axis` is always given; null means the flattened array (MLX's axis=None).
- partition/argpartition leave the order within each side unspecified, so the Rust side
  sorts each side of position kth of the result (argpartition: of the gathered values) and
  compares with a full sort: that checks the kth element and which elements went to each side.
- umx's topk is sorted ascending: the last k of a sort.
- argsort and searchsorted give uint32 (MLX's index dtype); argsort is stable.
- float16/bfloat16 orders are computed on exact float32 copies of the values.
"""
import numpy as np

from common import Cases, bfloat16, rand

rng = np.random.default_rng(7)
c = Cases()

FLOATS = ["float32", "float16", "bfloat16"]
ALL = FLOATS + ["int32", "bool", "uint8", "int64"]


def as_dtype(x, dtype):
    return x.astype(bfloat16) if dtype == "bfloat16" else x.astype(dtype)


def exact(x):
    """A copy NumPy sorts by value: float32 for the half types."""
    if x.dtype == bfloat16 or x.dtype == np.float16:
        return x.astype(np.float32)
    return x


def sample(shape, dtype, nan=False, dups=False):
    x = rand(shape, dtype, rng)
    if dtype in FLOATS:
        # Multiples of 1/8 (exact in every float dtype, and short in the JSON); whole
        # numbers when duplicates are wanted.
        step = 1.0 if dups else 8.0
        x = as_dtype(np.round(x.astype(np.float32) * step) / step, dtype)
    if nan and dtype in FLOATS and x.size > 0:
        flat = x.reshape(-1)
        flat[rng.integers(0, x.size, size=max(1, x.size // 5))] = np.nan
    return x


def np_axis(x, axis):
    return (x.reshape(-1), 0) if axis is None else (x, axis)


def sort_ref(x, axis):
    y, ax = np_axis(x, axis)
    return np.sort(exact(y), axis=ax, kind="stable").astype(y.dtype)


def argsort_ref(x, axis):
    y, ax = np_axis(x, axis)
    return np.argsort(exact(y), axis=ax, kind="stable").astype(np.uint32)


def topk_ref(x, k, axis):
    s = sort_ref(x, axis)
    ax = 0 if axis is None else axis
    n = s.shape[ax]
    return np.take(s, np.arange(n - k, n), axis=ax)


# ---- sort and argsort over dtypes, shapes and axes --------------------------------------
for dtype in ALL:
    for shape, axes in [((7,), [0, -1, None]), ((3, 5), [0, 1, -1, -2, None]),
                        ((2, 3, 4), [0, 1, 2, -1, None]), ((), [None])]:
        for i, axis in enumerate(axes):
            x = sample(shape, dtype, nan=True, dups=i % 2 == 0)
            c.add("sort", [x], sort_ref(x, axis), axis=axis)
            c.add("argsort", [x], argsort_ref(x, axis), axis=axis)

# NaNs, infinities and signed zeros: NaNs last, -0.0 == 0.0 (stable order kept).
special = np.array([np.nan, 1.0, -np.inf, 0.0, np.nan, -0.0, np.inf, -2.0, 0.0, -0.0], np.float32)
for dtype in FLOATS:
    x = as_dtype(special, dtype)
    c.add("sort", [x], sort_ref(x, 0), axis=0)
    c.add("argsort", [x], argsort_ref(x, 0), axis=0)

# Many duplicates: stability decides argsort.
x = rng.integers(0, 3, size=(4, 33)).astype(np.int32)
c.add("argsort", [x], argsort_ref(x, 1), axis=1)
c.add("argsort", [x], argsort_ref(x, 0), axis=0)

# (Lanes long enough to run on several threads are checked in ops_sort.rs: they would make
# this file large.)

# Complex: lexicographic, as NumPy.
z = (rng.integers(-2, 3, size=(3, 6)) + 1j * rng.integers(-2, 3, size=(3, 6))).astype(np.complex64)
z[0, 1] = complex(np.nan, 1.0)
z[1, 2] = complex(1.0, np.nan)
for axis in [0, 1]:
    c.add("sort", [z], np.sort(z, axis=axis), axis=axis)
    c.add("argsort", [z], np.argsort(z, axis=axis, kind="stable").astype(np.uint32), axis=axis)

# Empty arrays.
for shape, axis in [((0,), 0), ((3, 0), 1), ((3, 0), 0), ((0, 4), 1), ((0, 4), 0), ((0, 4), None)]:
    x = np.zeros(shape, np.float32)
    c.add("sort", [x], sort_ref(x, axis), axis=axis)
    c.add("argsort", [x], argsort_ref(x, axis), axis=axis)

# ---- partition and argpartition (checked against a full sort; see the docstring) ---------
for dtype in ["float32", "float16", "bfloat16", "int32", "bool"]:
    for shape, axis, kth in [((9,), 0, 4), ((9,), -1, -1), ((9,), None, 0),
                             ((4, 6), 1, 2), ((4, 6), 0, -2), ((2, 3, 5), 2, 4), ((4, 6), None, 7),
                             ((2, 3, 5), 1, 1)]:
        x = sample(shape, dtype, nan=True, dups=True)
        c.add("partition", [x], sort_ref(x, axis), axis=axis, kth=kth)
        c.add("argpartition", [x], sort_ref(x, axis), axis=axis, kth=kth)

# ---- topk ----------------------------------------------------------------------------
for dtype in ["float32", "float16", "bfloat16", "int32", "bool"]:
    for shape, axis, k in [((9,), 0, 3), ((9,), -1, 9), ((9,), 0, 0), ((9,), None, 1),
                           ((4, 6), 1, 2), ((4, 6), 0, 3), ((2, 3, 5), -2, 2), ((2, 3, 5), None, 4)]:
        x = sample(shape, dtype, nan=True, dups=True)
        c.add("topk", [x], topk_ref(x, k, axis), axis=axis, k=k)
x = np.zeros((3, 0), np.float32)
c.add("topk", [x], np.zeros((3, 0), np.float32), axis=1, k=0)
c.add("topk", [x], np.zeros((0, 0), np.float32), axis=0, k=0)

# ---- searchsorted (NumPy's; uint32 indices) --------------------------------------------
def search_ref(a, v, side):
    return np.searchsorted(exact(a), exact(v), side=side).astype(np.uint32)


for dtype in ["float32", "float16", "bfloat16", "int32", "uint8", "bool"]:
    a = sort_ref(sample((11,), dtype, nan=True, dups=True), 0)
    for vshape in [(6,), (2, 4), (), (0,)]:
        v = sample(vshape, dtype, nan=True, dups=True)
        if v.size > 2:
            v.reshape(-1)[:2] = a[[0, 5]]  # hit exact matches
        for side in ["left", "right"]:
            c.add("searchsorted", [a, v], search_ref(a, v, side), side=side)
# Mixed dtypes compare in the promoted dtype; an empty sorted array gives zeros.
a = np.array([-3, -1, 0, 0, 2, 5], np.int32)
v = np.array([[-1.5, 0.0, 0.5], [5.0, 7.25, -9.0]], np.float32)
for side in ["left", "right"]:
    c.add("searchsorted", [a, v], search_ref(a, v, side), side=side)
    c.add("searchsorted", [np.zeros((0,), np.float32), v], np.zeros(v.shape, np.uint32), side=side)

# ---- median (MLX's: the middle of a sort, NaNs last; float32 for integers) ----------------
def median_ref(x, axis, keepdims):
    out_dtype = x.dtype if x.dtype.kind in "fc" else np.dtype(np.float32)
    nd = x.ndim
    axes = list(range(nd)) if axis is None else [a % nd for a in np.atleast_1d(axis)]
    kept = [i for i in range(nd) if i not in axes]
    y = np.transpose(exact(x).astype(np.float64), kept + axes)
    y = np.sort(y.reshape([x.shape[i] for i in kept] + [-1]), axis=-1)
    m = y.shape[-1]
    med = y[..., m // 2] if m % 2 else (y[..., m // 2] + y[..., m // 2 - 1]) * 0.5
    if not np.isnan(x.astype(np.float64)).any():
        assert np.allclose(med, np.median(x.astype(np.float64), axis=axis))
    if keepdims:
        med = np.expand_dims(med, axes)
    return as_dtype(np.asarray(med), "bfloat16" if x.dtype == bfloat16 else out_dtype)


for dtype in ["float32", "float16", "bfloat16", "int32", "bool"]:
    for shape, axis in [((7,), None), ((8,), 0), ((2, 3, 4), None), ((2, 3, 4), 0),
                        ((2, 3, 4), -1), ((2, 3, 4), [0, 2]), ((2, 3, 4), [1, 2]), ((), None)]:
        for keepdims in [False, True]:
            x = sample(shape, dtype)
            c.add("median", [x], median_ref(x, axis, keepdims), axis=axis, keepdims=keepdims)
x = sample((3, 6), "float32", nan=True)
c.add("median", [x], median_ref(x, 1, False), axis=1, keepdims=False)
x = np.zeros((0, 3), np.float32)
c.add("median", [x], np.zeros((0,), np.float32), axis=1, keepdims=False)
c.add("median", [x], np.zeros((0, 1), np.float32), axis=[1], keepdims=True)

# ---- bad input -------------------------------------------------------------------------
x = rand((3, 4), "float32", rng)
c.error("sort", [x], "sort", axis=2)
c.error("argsort", [x], "argsort", axis=-3)
c.error("sort", [np.float32(1.0)], "sort", axis=0)
c.error("partition", [x], "partition", axis=1, kth=4)
c.error("partition", [x], "partition", axis=2, kth=0)
c.error("argpartition", [x], "argpartition", axis=0, kth=-4)
c.error("topk", [x], "topk", axis=1, k=5)
c.error("topk", [x], "topk", axis=-3, k=1)
c.error("searchsorted", [x, x], "searchsorted", side="left")
c.error("median", [x], "median", axis=2, keepdims=False)
c.error("median", [x], "median", axis=[0, -2], keepdims=False)
c.error("median", [np.zeros((3, 0), np.float32)], "median", axis=1, keepdims=False)
c.error("median", [np.zeros((3, 0), np.float32)], "median", axis=None, keepdims=False)
c.error("searchsorted", [x[0], x], "searchsorted", side="middle")

c.save(__file__)
