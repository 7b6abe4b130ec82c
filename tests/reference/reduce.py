"""NumPy references for the reduce family: reductions, arg-reductions and scans.

Expected dtypes follow MLX (sums of bool and small ints give int32, unsigned uint32; means of
ints give float32; argmax/argmin give uint32); values come from NumPy in float64 (one rounding
to the output dtype, as umx accumulates float16/bfloat16 in float32).

Run: python3 tests/reference/reduce.py
"""
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import DTYPES, Cases, bfloat16, rand  # noqa: E402

warnings.filterwarnings("ignore")
rng = np.random.default_rng(7)
c = Cases()

FLOATS = ("float32", "float16", "bfloat16")
SMALL_INTS = ("bool", "int8", "int16", "int32")
UNSIGNED = ("uint8", "uint16", "uint32")

# (shape, axes sets) walked by every reduction; axes None = all.
LAYOUTS = [
    ((), [None]),
    ((7,), [None, 0, -1]),
    ((3, 4), [None, 0, 1, -1, [0, 1]]),
    ((2, 3, 4), [None, 0, 1, 2, [0, 2], [-1, -3], [0, 1], [1, 2]]),
    ((2, 3, 4, 5), [[1, 3], [0, 2], [0, 1, 3], -2]),
    ((0, 3), [None, 0, 1]),
    ((2, 0, 3), [None, 1, [0, 2], 2]),
]


def grid(shape, dtype):
    """Values on a 1/8 grid (exact in every float dtype) or small ints / bools."""
    if dtype in FLOATS:
        return (rng.integers(-24, 25, size=shape) / 8).astype(DTYPES[dtype])
    return rand(shape, dtype, rng)


def np_axes(axes):
    if axes is None:
        return None
    return tuple(axes) if isinstance(axes, list) else axes


def sum_dtype(dt):
    if dt in SMALL_INTS:
        return np.int32
    if dt in UNSIGNED:
        return np.uint32
    return DTYPES[dt]


def wide(x):
    """x in float64 (floats) or int64 (ints, bools) for exact NumPy arithmetic."""
    if x.dtype.kind == "f" or x.dtype == bfloat16:
        return x.astype(np.float64)
    return x.astype(np.int64)


def ref(op, x, axes, keepdims):
    dt = "bfloat16" if x.dtype == bfloat16 else x.dtype.name
    ax = np_axes(axes)
    if op == "sum":
        return np.sum(wide(x), axis=ax, keepdims=keepdims).astype(sum_dtype(dt))
    if op == "prod":
        return np.prod(wide(x), axis=ax, keepdims=keepdims).astype(sum_dtype(dt))
    if op in ("max", "min"):
        f = np.max if op == "max" else np.min
        return np.asarray(f(x, axis=ax, keepdims=keepdims)).astype(x.dtype)
    if op == "mean":
        out = DTYPES[dt] if dt in FLOATS else np.float32
        return np.mean(wide(x).astype(np.float64), axis=ax, keepdims=keepdims).astype(out)
    if op == "all":
        return np.all(x, axis=ax, keepdims=keepdims)
    if op == "any":
        return np.any(x, axis=ax, keepdims=keepdims)
    raise ValueError(op)


def add_reductions():
    ops = {
        "sum": FLOATS + ("int32", "bool", "uint8", "int8"),
        "prod": FLOATS + ("int32", "bool", "uint8"),
        "max": FLOATS + ("int32", "bool", "uint8"),
        "min": FLOATS + ("int32", "bool", "int8"),
        "mean": FLOATS + ("int32", "bool"),
        "all": ("float32", "int32", "bool"),
        "any": ("float32", "int32", "bool"),
    }
    k = 0
    for op, dtypes in ops.items():
        for dt in dtypes:
            for shape, axes_list in LAYOUTS:
                for axes in axes_list:
                    k += 1
                    # Every axes set for float32; a rotating subset for the other dtypes.
                    if k % (2 if dt == "float32" else 5) != 0:
                        continue
                    x = grid(shape, dt)
                    if op == "prod" and dt in FLOATS:
                        x = (rng.integers(-8, 9, size=shape) / 8 + 1).astype(DTYPES[dt])
                    if op in ("all", "any") and x.size > 2:
                        # Mostly-true / mostly-false inputs so both answers occur.
                        flat = x.reshape(-1)
                        flat[rng.random(flat.size) < 0.8] = 1 if op == "all" else 0
                    red = list(range(len(shape))) if axes is None else [a % len(shape) for a in np.atleast_1d(axes)]
                    n_red = int(np.prod([shape[a] for a in red]))
                    n_out = int(np.prod([shape[i] for i in range(len(shape)) if i not in red]))
                    if op in ("max", "min") and n_red == 0 and n_out > 0:
                        c.error(op, [x], f"{op}: cannot reduce an empty axis", axis=axes)
                        continue
                    keepdims = bool(k % 2)
                    c.add(op, [x], ref(op, x, axes, keepdims), axis=axes, keepdims=keepdims)

    # Accuracy of long float32 sums (pairwise): random values, all layouts.
    for shape, axes in [((500,), None), ((3, 100), 1), ((100, 3), 0)]:
        x = (np.round(rng.uniform(-3, 3, shape) * 1024) / 1024).astype(np.float32)
        c.add("sum", [x], ref("sum", x, axes, False), axis=axes, keepdims=False, atol=1e-4)
        c.add("mean", [x], ref("mean", x, axes, False), axis=axes, keepdims=False, atol=1e-6)

    # NaN wins in max/min.
    for op in ("max", "min"):
        for dt in FLOATS:
            x = grid((3, 4), dt)
            x[0, 1] = np.nan
            x[2, 3] = np.nan
            for axes in (None, 0, 1):
                c.add(op, [x], ref(op, x, axes, False), axis=axes, keepdims=False)


def add_arg_reductions():
    layouts = [((7,), [None, -1]), ((3, 4), [None, 0, 1]),
               ((2, 3, 4), [None, 0, 1, 2, -2]), ((), [None])]
    for op in ("argmax", "argmin"):
        f = np.argmax if op == "argmax" else np.argmin
        for dt in FLOATS + ("int32", "bool", "uint8"):
            for shape, axes_list in (layouts if dt == "float32" else layouts[1:3]):
                for axis in axes_list:
                    x = grid(shape, dt)
                    for keepdims in ((False, True) if dt == "float32" else (len(shape) == 2,)):
                        want = np.asarray(f(x, axis=axis, keepdims=keepdims)).astype(np.uint32)
                        c.add(op, [x], want, axis=axis, keepdims=keepdims)
        # Ties give the first index; NaN gives the first NaN.
        x = np.array([[1, 3, 3, 0], [2, 2, 1, 2], [0, 5, 5, 5]], np.float32)
        for axis in (None, 0, 1):
            c.add(op, [x], np.asarray(f(x, axis=axis)).astype(np.uint32), axis=axis)
        for dt in FLOATS:
            x = grid((3, 5), dt)
            x[0, 3] = np.nan
            x[0, 4] = np.nan
            x[2, 0] = np.nan
            x[1, 2] = np.nan
            for axis in (None, 0, 1):
                c.add(op, [x], np.asarray(f(x, axis=axis)).astype(np.uint32), axis=axis)
        c.error(op, [np.zeros((0, 3), np.float32)], f"{op}: cannot reduce an empty", axis=1)
        c.error(op, [np.zeros((2, 3), np.float32)], f"{op}: axis 2 is out of range", axis=2)


def add_errors():
    x = np.zeros((2, 3), np.float32)
    for op in ("sum", "prod", "max", "min", "mean", "all", "any"):
        c.error(op, [x], f"{op}: axis 2 is out of range", axis=2)
        c.error(op, [x], f"{op}: axis -3 is out of range", axis=-3)
        c.error(op, [x], f"{op}: axis -1 is repeated", axis=[1, -1])


def scan_ref(op, x, axis, reverse, inclusive):
    dt = "bfloat16" if x.dtype == bfloat16 else x.dtype.name
    if axis is None:
        x, ax = x.reshape(-1), 0
    else:
        ax = axis % x.ndim
    floaty = dt in FLOATS
    if op in ("cumsum", "cumprod"):
        uf, w = (np.add, 0) if op == "cumsum" else (np.multiply, 1)
        ident, w = w, wide(x)
        out = np.int32 if dt == "bool" else x.dtype
    elif op in ("cummax", "cummin"):
        uf = np.maximum if op == "cummax" else np.minimum
        w = wide(x)
        if floaty:
            ident = -np.inf if op == "cummax" else np.inf
        elif dt == "bool":
            ident = 0 if op == "cummax" else 1
        else:
            info = np.iinfo(x.dtype)
            ident = info.min if op == "cummax" else info.max
        out = x.dtype
    else:
        uf, w, ident = np.logaddexp, x.astype(np.float64), -np.inf
        out = x.dtype if floaty else np.float32
    if reverse:
        w = np.flip(w, ax)
    acc = uf.accumulate(w, axis=ax)
    if not inclusive and acc.shape[ax] > 0:
        first = np.full_like(np.take(acc, [0], axis=ax), ident)
        acc = np.concatenate([first, np.take(acc, range(acc.shape[ax] - 1), axis=ax)], axis=ax)
    if reverse:
        acc = np.flip(acc, ax)
    return acc.astype(out)


def add_scans():
    layouts = [((7,), [None, 0, -1]), ((3, 4), [None, 0, 1]), ((2, 3, 4), [0, 1, -1]),
               ((), [None]), ((0, 3), [0, 1, None])]
    ops = {
        "cumsum": FLOATS + ("int32", "bool", "int8"),
        "cumprod": ("float32", "float16", "int32", "bool"),
        "cummax": FLOATS + ("int32", "bool"),
        "cummin": ("float32", "bfloat16", "int32", "uint8"),
        "logcumsumexp": FLOATS + ("int32",),
    }
    k = 0
    for op, dtypes in ops.items():
        for dt in dtypes:
            for shape, axes in layouts:
                for axis in axes:
                    for reverse, inclusive in ((False, True), (True, False), (True, True), (False, False)):
                        k += 1
                        if k % (3 if dt == "float32" else 7) != 0:
                            continue
                        x = grid(shape, dt)
                        if op == "cumprod" and dt in FLOATS:
                            x = (rng.integers(-8, 9, size=shape) / 8 + 1).astype(DTYPES[dt])
                        c.add(op, [x], scan_ref(op, x, axis, reverse, inclusive),
                              axis=axis, reverse=reverse, inclusive=inclusive)
        # NaN, once seen, stays.
        if op != "cumprod":
            x = grid((2, 5), "float32")
            x[0, 2] = np.nan
            x[1, 4] = np.nan
            c.add(op, [x], scan_ref(op, x, 1, False, True), axis=1, reverse=False, inclusive=True)
        c.error(op, [np.zeros((2, 3), np.float32)], f"{op}: axis 2 is out of range", axis=2,
                reverse=False, inclusive=True)
    # Infinities in logcumsumexp.
    x = np.array([-np.inf, -np.inf, 0.0, np.inf, 1.0, np.inf], np.float32)
    c.add("logcumsumexp", [x], scan_ref("logcumsumexp", x, 0, False, True), axis=0,
          reverse=False, inclusive=True)


def add_composites():
    layouts = [((7,), [None, 0]), ((3, 4), [None, 0, -1]), ((2, 3, 4), [[0, 2], 1, -1]), ((), [None])]
    k = 0
    for dt in FLOATS + ("int32", "bool"):
        out = DTYPES[dt] if dt in FLOATS else np.float32
        for shape, axes_list in layouts:
            for axes in axes_list:
                k += 1
                x = grid(shape, dt)
                ax = np_axes(axes)
                w = wide(x).astype(np.float64)
                keepdims = bool(k % 2)
                if dt != "bool":
                    for ddof in ((0, 1) if k % 3 == 0 else (0,)):
                        n = x.size if axes is None else int(np.prod([shape[a] for a in np.atleast_1d(axes)]))
                        if n - ddof <= 0:
                            continue
                        v = np.var(w, axis=ax, keepdims=keepdims, ddof=ddof)
                        c.add("var", [x], v.astype(out), axis=axes, keepdims=keepdims, ddof=ddof)
                        c.add("std", [x], np.sqrt(v).astype(out), axis=axes, keepdims=keepdims, ddof=ddof)
                    m = np.max(w, axis=ax, keepdims=True)
                    lse = np.log(np.sum(np.exp(w - m), axis=ax, keepdims=True)) + m
                    if not keepdims:
                        lse = np.squeeze(lse, axis=ax) if ax is not None else lse.reshape(())
                    c.add("logsumexp", [x], lse.astype(out), axis=axes, keepdims=keepdims)
                    e = np.exp(w - np.max(w, axis=ax, keepdims=True))
                    sm = e / np.sum(e, axis=ax, keepdims=True)
                    c.add("softmax", [x], sm.astype(out), axis=axes, precise=bool(k % 2))
                cnt = np.count_nonzero(x, axis=ax, keepdims=keepdims)
                c.add("count_nonzero", [x], np.asarray(cnt).astype(np.int32), axis=axes, keepdims=keepdims)
    # Infinities: all -inf rows give -inf; +inf gives +inf (logsumexp) and NaN-free softmax rows.
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, np.inf, 1.0], [1.0, 2.0, 3.0]], np.float32)
    with np.errstate(all="ignore"):
        lse = np.array([-np.inf, np.inf, np.log(np.exp(1.0) + np.exp(2.0) + np.exp(3.0))], np.float32)
    c.add("logsumexp", [x], lse, axis=1, keepdims=False, layouts=False)
    # Large values do not overflow.
    x = np.array([1000.0, 1000.0, 999.0], np.float32)
    w = x.astype(np.float64)
    c.add("logsumexp", [x], np.float32(np.log(np.sum(np.exp(w - 1000))) + 1000), axis=None, keepdims=False)
    c.add("softmax", [x], (np.exp(w - 1000) / np.sum(np.exp(w - 1000))).astype(np.float32), axis=None, precise=False)
    # Empty arrays.
    c.add("var", [np.zeros((0, 3), np.float32)], np.full((3,), np.nan, np.float32), axis=0, keepdims=False, ddof=0)
    c.add("count_nonzero", [np.zeros((0, 3), np.float32)], np.zeros((3,), np.int32), axis=0, keepdims=False)
    c.add("softmax", [np.zeros((0, 3), np.float32)], np.zeros((0, 3), np.float32), axis=1, precise=False)
    c.error("logsumexp", [np.zeros((0, 3), np.float32)], "logsumexp: cannot reduce an empty axis", axis=0)
    for op in ("var", "std", "logsumexp", "softmax", "count_nonzero"):
        c.error(op, [np.zeros((2, 3), np.float32)], f"{op}: axis 2 is out of range", axis=2)


add_reductions()
add_composites()
add_arg_reductions()
add_errors()
add_scans()
c.save(__file__)
