"""NumPy reference values for the indexing family: slice, slice_update, take, take_along_axis,
put_along_axis, scatter_add_axis, gather, scatter (all modes), diag, diagonal, tril, triu, and
`x[...]` / `x.at[...]` indexing (ops `getitem` and `at_<mode>`).

MLX's gather/scatter have no NumPy twin; their expected values come from the plain loops
below, which follow MLX's definitions. Indices arrive as int32 inputs (so the harness runs
them on strided layouts too).
"""
import numpy as np
from common import Cases, rand as common_rand


def rand(shape, dtype, rng, low=-3.0, high=3.0):
    """Random values; floats on a grid of 1/4 (exact in every float dtype, short in JSON)."""
    x = common_rand(shape, dtype, rng, low, high)
    if np.asarray(x).dtype.kind == "f" or dtype in ("bfloat16", "float16", "float32"):
        x = (np.round(np.asarray(x, np.float32) * 4) / 4).astype(np.asarray(x).dtype)
    return x

rng = np.random.default_rng(0)
c = Cases()
DT = ["float32", "float16", "bfloat16", "int32", "bool"]


def idx(values, shape=None):
    a = np.array(values, dtype=np.int32)
    return a.reshape(shape) if shape is not None else a


# ----------------------------------------------------------------------------------- slice
SLICES = [
    ((5,), [(1, 4, 1)]),
    ((5,), [(-1, -6, -1)]),
    ((5,), [(4, -10, -2)]),
    ((5,), [(3, 1, 1)]),  # empty
    ((5,), [(-100, 100, 2)]),  # clamped
    ((4, 6), [(0, 4, 2), (5, 0, -2)]),
    ((4, 6), [(1, 2, 1), (-2, 6, 1)]),
    ((2, 3, 4), [(0, 2, 1), (2, -4, -1), (1, 4, 3)]),
    ((2, 3, 4), [(1, 1, 1), (0, 3, 1), (0, 4, 1)]),  # empty axis
    ((0, 3), [(0, 5, 1), (0, 3, 2)]),
]
for i, name in enumerate(DT):
    for shape, sl in SLICES:
        x = rand(shape, name, rng)
        want = x[tuple(slice(a, b, s) for a, b, s in sl)]
        c.add("slice", [x], want, start=[s[0] for s in sl], stop=[s[1] for s in sl],
              steps=[s[2] for s in sl])
# steps may be omitted
x = rand((3, 4), "float32", rng)
c.add("slice", [x], x[1:3, 0:2], start=[1, 0], stop=[3, 2], steps=[])
c.error("slice", [x], "slice:", start=[0], stop=[1], steps=[1])
c.error("slice", [x], "slice: step of axis 1 is 0", start=[0, 0], stop=[1, 1], steps=[1, 0])

# ---------------------------------------------------------------------------- slice_update
for name in DT:
    x = rand((4, 6), name, rng)
    for sl, ushape in [
        ([(0, 4, 2), (5, 0, -2)], (2, 3)),
        ([(1, 3, 1), (0, 6, 1)], (6,)),  # broadcast over rows
        ([(-1, -5, -1), (2, 3, 1)], ()),  # scalar
        ([(2, 2, 1), (0, 6, 1)], (1,)),  # empty region
    ]:
        u = rand(ushape, name, rng)
        want = x.copy()
        want[tuple(slice(a, b, s) for a, b, s in sl)] = u
        c.add("slice_update", [x, u], want, start=[s[0] for s in sl], stop=[s[1] for s in sl],
              steps=[s[2] for s in sl])
# the update is cast to the array's dtype
x = rand((5,), "float32", rng)
u = idx([7, 8])
want = x.copy()
want[1:5:2] = u
c.add("slice_update", [x, u], want, start=[1], stop=[5], steps=[2])
c.error("slice_update", [x, idx([1, 2, 3])], "slice_update: update of shape (3,)",
        start=[0], stop=[5], steps=[3])

# ------------------------------------------------------------------------------------ take
for name in DT:
    x = rand((3, 4), name, rng)
    i1 = idx([2, -1, 0, 2])
    i2 = idx([[0, -3], [1, 1], [2, -2]])
    c.add("take", [x, i1], np.take(x, i1, axis=0), axis=0)
    c.add("take", [x, i2], np.take(x, i2, axis=1), axis=1)
    c.add("take", [x, i2], np.take(x, i2, axis=-1), axis=-1)
    c.add("take", [x, i2], np.take(x, i2), axis=None)
    c.add("take", [x, idx(5)], np.take(x, 5), axis=None)  # 0-d result
    c.add("take", [x, idx([], (0,))], np.take(x, idx([], (0,)), axis=1), axis=1)
    x3 = rand((2, 3, 4), name, rng)
    c.add("take", [x3, i2], np.take(x3, i2, axis=1), axis=1)
c.add("take", [np.zeros((0, 3), np.float32), idx([1])], np.zeros((0, 1), np.float32), axis=1)
x = rand((3, 4), "float32", rng)
c.error("take", [x, np.array([0.0, 1.0], np.float32)], "take: indices must be integers")
c.error("take", [x, np.array([True], np.bool_)], "take: indices must be integers")
c.error("take", [x, idx([4])], "take: index 4 is out of range", axis=1)
c.error("take", [x, idx([-13])], "take: index -13 is out of range", axis=None)
c.error("take", [x, idx([0])], "take: axis 2 is out of range", axis=2)

# ------------------------------------------------------------------- take / put along axis
for name in DT:
    x = rand((3, 4), name, rng)
    i = idx([[0, 3, -1], [1, 1, 2], [-4, 0, 0]])
    c.add("take_along_axis", [x, i], np.take_along_axis(x, i, axis=1), axis=1)
    i0 = idx([[2, 0, 1, -1]])
    c.add("take_along_axis", [x, i0], np.take_along_axis(x, i0, axis=0), axis=0)
    ib = idx([[1], [0], [3]])
    c.add("take_along_axis", [x, ib], np.take_along_axis(x, ib, axis=-1), axis=-1)
    v = rand((3, 1), name, rng)
    want = x.copy()
    np.put_along_axis(want, ib, v, axis=1)
    c.add("put_along_axis", [x, ib, v], want, axis=1)
    v = rand((1, 4), name, rng)
    want = x.copy()
    np.put_along_axis(want, i0, v, axis=0)
    c.add("put_along_axis", [x, i0, v], want, axis=0)
x = rand((3, 4), "float32", rng)
i = idx([[0, 0, 1], [3, 3, 3], [-1, 0, -1]])
v = rand((3, 3), "float32", rng)
want = x.copy()
for r in range(3):
    for k in range(3):
        want[r, i[r, k]] += v[r, k]
c.add("scatter_add_axis", [x, i, v], want, axis=1)
c.error("take_along_axis", [x, idx([0, 1])], "take_along_axis: indices of shape (2,)", axis=0)
c.error("put_along_axis", [x, idx([[5]]), np.float32(1)], "put_along_axis: index 5", axis=1)


# ---------------------------------------------------------------------- gather / scatter
def mlx_gather(a, indices, axes, sizes):
    b = np.broadcast_shapes(*[i.shape for i in indices]) if indices else ()
    ib = [np.broadcast_to(i, b) for i in indices]
    out = np.zeros(b + tuple(sizes), a.dtype)
    for pos in np.ndindex(*b):
        start = [0] * a.ndim
        for i, ax in zip(ib, axes):
            v = int(i[pos])
            start[ax] = v + a.shape[ax] if v < 0 else v
        out[pos] = a[tuple(slice(s, s + w) for s, w in zip(start, sizes))]
    return out


def mlx_scatter(a, indices, updates, axes, mode):
    out = a.copy()
    b = updates.shape[: updates.ndim - a.ndim]
    ib = [np.broadcast_to(i, b) for i in indices]
    win = updates.shape[len(b):]
    for pos in np.ndindex(*b):
        start = [0] * a.ndim
        for i, ax in zip(ib, axes):
            v = int(i[pos])
            start[ax] = v + a.shape[ax] if v < 0 else v
        region = tuple(slice(s, s + w) for s, w in zip(start, win))
        u = updates[pos].astype(a.dtype)
        if mode == "scatter":
            out[region] = u
        elif mode == "scatter_add":
            out[region] = out[region] + u
        elif mode == "scatter_prod":
            out[region] = out[region] * u
        elif mode == "scatter_max":
            out[region] = np.maximum(out[region], u)
        else:
            out[region] = np.minimum(out[region], u)
    return out


for name in DT:
    a = rand((4, 5), name, rng)
    i0 = idx([3, -1, 0])
    i1 = idx([[1], [4], [0]])
    c.add("gather", [a, i0], mlx_gather(a, [i0], [0], [1, 5]), axes=[0], slice_sizes=[1, 5])
    c.add("gather", [a, i0, i1], mlx_gather(a, [i0, i1], [0, 1], [1, 1]), axes=[0, 1],
          slice_sizes=[1, 1])
    c.add("gather", [a, i1], mlx_gather(a, [i1], [1], [2, 1]), axes=[1], slice_sizes=[2, 1])
    c.add("gather", [a, idx(2)], mlx_gather(a, [idx(2)], [-1], [4, 3]), axes=[-1],
          slice_sizes=[4, 3])
    c.add("gather", [a], mlx_gather(a, [], [], [2, 2]), axes=[], slice_sizes=[2, 2])
    for mode in ["scatter", "scatter_add", "scatter_prod", "scatter_max", "scatter_min"]:
        rep = idx([1, 3, 1, -4])  # repeated: accumulates (assign: last wins)
        u = rand((4, 1, 5), name, rng)
        c.add(mode, [a, rep, u], mlx_scatter(a, [rep], u, [0], mode), axes=[0])
        u2 = rand((3, 3, 1, 1), name, rng)
        c.add(mode, [a, i0, i1, u2], mlx_scatter(a, [i0, i1], u2, [0, 1], mode), axes=[0, 1])
        u3 = rand((2, 1, 2), name, rng)
        i3 = idx([0, 3])
        c.add(mode, [a, i3, u3], mlx_scatter(a, [i3], u3, [1], mode), axes=[1])
a = rand((4, 5), "float32", rng)
c.add("scatter_add", [a, idx([2, 2, 2]), idx([1, 2, 3], (3, 1, 1))],
      mlx_scatter(a, [idx([2, 2, 2])], idx([1, 2, 3], (3, 1, 1)), [1], "scatter_add"), axes=[1])
c.add("scatter_add", [a, idx([], (0,)), np.zeros((0, 1, 5), np.float32)], a, axes=[0])
c.error("gather", [a, np.array([1.5], np.float32)], "gather: indices must be integers",
        axes=[0], slice_sizes=[1, 5])
c.error("gather", [a, idx([0])], "gather: slice sizes", axes=[0], slice_sizes=[1, 6])
c.error("gather", [a, idx([0])], "gather: 1 slice sizes", axes=[0], slice_sizes=[1])
c.error("gather", [a, idx([4])], "gather: index 4 is out of range", axes=[0],
        slice_sizes=[1, 5])
c.error("gather", [a, idx([0]), idx([0])], "gather: axis 0 is repeated", axes=[0, 0],
        slice_sizes=[1, 1])
c.error("scatter", [a, idx([0, 1]), np.zeros((3, 1, 5), np.float32)], "scatter: updates",
        axes=[0])
c.error("scatter_add", [a, idx([0]), np.zeros((1, 5), np.float32)], "scatter_add: updates",
        axes=[0])
c.error("scatter_max", [a, idx([9]), np.zeros((1, 1, 5), np.float32)],
        "scatter_max: index 9 is out of range", axes=[0])

# ----------------------------------------------------------- diag / diagonal / tril / triu
for name in DT:
    v = rand((3,), name, rng)
    m = rand((3, 4), name, rng)
    t = rand((2, 3, 4), name, rng)
    for k in [0, 2, -1]:
        c.add("diag", [v], np.diag(v, k), k=k)
        c.add("diag", [m], np.diag(m, k), k=k)
        c.add("tril", [m], np.tril(m, k), k=k)
        c.add("triu", [m], np.triu(m, k), k=k)
        c.add("tril", [t], np.tril(t, k), k=k)
        c.add("triu", [t], np.triu(t, k), k=k)
    c.add("diagonal", [t], np.diagonal(t, 1, 0, 2), offset=1, axis1=0, axis2=2)
    c.add("diagonal", [t], np.diagonal(t, -1, 2, 1), offset=-1, axis1=2, axis2=1)
    c.add("diagonal", [t], np.diagonal(t, 5, 1, 2), offset=5, axis1=1, axis2=2)  # empty
c.add("triu", [rand((0, 3), "float32", rng)], np.zeros((0, 3), np.float32), k=0)
c.add("tril", [m], np.tril(m, 10), k=10)
c.add("triu", [m], np.triu(m, -10), k=-10)
c.error("tril", [v], "tril: the array of shape (3,)", k=0)
c.error("diag", [t], "diag: the array of shape (2, 3, 4)", k=0)
c.error("diagonal", [m], "diagonal: axis1 (0) and axis2 (-2) are the same", offset=0, axis1=0,
        axis2=-2)

# ------------------------------------------------------------------ x[...] and x.at[...]
def build_index(spec, arrays):
    out = []
    for e in spec:
        if e == "new":
            out.append(None)
        elif e == "...":
            out.append(Ellipsis)
        elif "i" in e:
            out.append(e["i"])
        elif "s" in e:
            out.append(slice(*e["s"]))
        else:
            out.append(arrays[e["a"]])
    return tuple(out)


GET = [
    ((4, 5), [{"i": 1}], []),
    ((4, 5), [{"i": -1}, {"i": 0}], []),  # 0-d
    ((4, 5), [{"s": [None, None, -1]}, {"s": [1, -1, 2]}], []),
    ((4, 5), [{"s": [3, 3, None]}], []),  # empty
    ((4, 5), ["new", {"i": 2}, "...", "new"], []),
    ((2, 3, 4), ["...", {"i": -2}], []),
    ((2, 3, 4), [{"s": [None, None, -1]}, "new", {"s": [-1, None, -2]}], []),
    ((4, 5), [{"a": 0}], [idx([3, -1, 0, 3])]),
    ((4, 5), [{"s": [1, None, None]}, {"a": 0}], [idx([[4, 0], [-2, 1]])]),
    ((2, 3, 4), [{"a": 0}, {"s": [None, None, None]}, {"a": 1}], [idx([1, 0]), idx([[3], [-1]])]),
    ((2, 3, 4), [{"s": [None, None, None]}, {"a": 0}, {"a": 1}], [idx([2, 0]), idx([1, 3])]),
    ((2, 3, 4), [{"i": 1}, {"s": [None, None, -1]}, {"a": 0}], [idx([0, 2, 3])]),
    ((2, 3, 4), ["new", {"a": 0}, "..."], [idx(1)]),
]
for name in DT:
    for shape, spec, arrays in GET:
        x = rand(shape, name, rng)
        c.add("getitem", [x] + arrays, x[build_index(spec, arrays)], index=spec)

AT = [
    ((4, 5), [{"i": 1}], [], (5,)),
    ((4, 5), [{"s": [None, None, 2]}, {"s": [4, 0, -2]}], [], (1, 2)),
    ((4, 5), [{"i": -1}, {"i": 0}], [], ()),
    ((4, 5), [{"a": 0}], [idx([3, -1, 0, 3])], (4, 5)),  # repeated rows
    ((4, 5), [{"a": 0}, {"a": 1}], [idx([1, 1, 2]), idx([0, 0, -1])], (3,)),  # repeated
    ((2, 3, 4), [{"s": [None, None, -1]}, {"a": 0}, {"s": [1, 3, None]}], [idx([2, 2])], (2, 1, 2)),
    ((2, 3, 4), [{"a": 0}, {"i": 1}, "new", {"a": 1}], [idx([1, 0]), idx([[3], [3]])], (2, 2, 1)),
]
UFUNC = {"at_add": np.add, "at_subtract": np.subtract, "at_multiply": np.multiply,
         "at_maximum": np.maximum, "at_minimum": np.minimum, "at_divide": np.divide}
for name in DT:
    for shape, spec, arrays, ushape in AT:
        x = rand(shape, name, rng)
        ix = build_index(spec, arrays)
        for op in ["at_set", "at_add", "at_subtract", "at_multiply", "at_maximum", "at_minimum",
                   "at_divide"]:
            if name == "bool" and op in ("at_subtract", "at_divide"):
                continue
            if name == "int32" and op == "at_divide":
                continue
            if name in ("float16", "bfloat16", "bool") and op not in ("at_set", "at_add"):
                continue
            u = rand(ushape, name, rng, low=0.5, high=2.0) if op == "at_divide" else rand(ushape, name, rng)
            want = x.copy()
            if op == "at_set":
                want[ix] = u
            else:
                UFUNC[op].at(want, ix, u)
            c.add(op, [x] + arrays + [u], want, index=spec)
x = rand((4, 5), "float32", rng)
c.error("getitem", [x], "index: too many indices (3)", index=[{"i": 0}, {"i": 0}, {"i": 0}])
c.error("getitem", [x], "index: index 4 is out of range for axis 0", index=[{"i": 4}])
c.error("getitem", [x], "index: index -6 is out of range for axis 1", index=[{"i": 0}, {"i": -6}])
c.error("getitem", [x], "index: an index can have only one ellipsis", index=["...", "..."])
c.error("getitem", [x, np.array([1.0], np.float32)], "index: indices must be integers",
        index=[{"a": 0}])
c.error("getitem", [x, idx([5])], "index: index 5 is out of range", index=[{"a": 0}])
c.error("at_set", [x, np.zeros(3, np.float32)], "at.set: update of shape (3,)",
        index=[{"i": 0}])
c.error("at_add", [x, idx([0, 1]), np.zeros(3, np.float32)], "at.add: update of shape (3,)",
        index=[{"a": 0}, {"s": [0, 1, None]}])
c.error("at_add", [x, np.zeros(5, np.float32)], "at.add: too many indices",
        index=[{"i": 0}, {"i": 0}, {"i": 0}])

c.save(__file__)
