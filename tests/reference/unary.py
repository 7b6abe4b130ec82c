"""NumPy reference values for the unary ops, casts (astype) and where.

Expected values are computed in float64 from the exact input values and rounded once to the
output dtype (MLX computes float16/bfloat16 in float32 and rounds once; the difference is far
below the float16/bfloat16 tolerances). Output dtypes follow MLX: math functions of int32/bool
give float32; abs/negative/sign/square/floor/ceil/round keep integer dtypes; predicates give bool.

Run: python3 tests/reference/unary.py
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import Cases, rand, DTYPES, bfloat16  # noqa: E402

import ml_dtypes  # noqa: E402

rng = np.random.default_rng(7)
c = Cases()
np.seterr(all="ignore")

FLOATS = ["float32", "float16", "bfloat16"]


def erfinv1(y):
    if math.isnan(y) or abs(y) > 1:
        return math.nan
    if abs(y) == 1:
        return math.copysign(math.inf, y)
    lo, hi = -30.0, 30.0
    for _ in range(200):
        m = (lo + hi) / 2
        if math.erf(m) < y:
            lo = m
        else:
            hi = m
    return (lo + hi) / 2


def vec(f):
    return lambda x: np.vectorize(f, otypes=[np.float64])(x) if x.size else x.astype(np.float64)


def sign_real(x):
    return np.where(np.isnan(x), x, np.sign(x))


def sign_complex(z):
    r = np.abs(z)
    return np.where(r == 0, 0, z / np.where(r == 0, 1, r))


# name -> (float64 function, domain (low, high), special values, takes complex)
MATH = {
    "sqrt": (np.sqrt, (0, 9), [0.0, -1.0, np.inf, np.nan], True),
    "rsqrt": (lambda x: 1 / np.sqrt(x), (0.1, 9), [0.0, -1.0, np.inf, np.nan], True),
    "reciprocal": (lambda x: 1 / x, (-3, 3), [0.0, -0.0, np.inf, np.nan], True),
    "exp": (np.exp, (-4, 4), [0.0, np.inf, -np.inf, np.nan], True),
    "expm1": (np.expm1, (-2, 2), [1e-5, 0.0, -np.inf, np.nan], False),
    "log": (np.log, (0.01, 10), [0.0, -1.0, np.inf, np.nan], True),
    "log1p": (np.log1p, (-0.9, 5), [1e-5, -1.0, -2.0, np.inf], False),
    "log2": (np.log2, (0.01, 10), [0.0, -1.0, np.inf, np.nan], False),
    "log10": (np.log10, (0.01, 10), [0.0, -1.0, np.inf, np.nan], False),
    "sin": (np.sin, (-6, 6), [0.0, np.inf, np.nan], True),
    "cos": (np.cos, (-6, 6), [0.0, -np.inf, np.nan], True),
    "tan": (np.tan, (-1.4, 1.4), [0.0, np.inf, np.nan], False),
    "arcsin": (np.arcsin, (-1, 1), [1.0, -1.0, 2.0, np.nan], False),
    "arccos": (np.arccos, (-1, 1), [1.0, -1.0, -2.0, np.nan], False),
    "arctan": (np.arctan, (-5, 5), [np.inf, -np.inf, 0.0, np.nan], False),
    "sinh": (np.sinh, (-4, 4), [np.inf, -np.inf, 0.0, np.nan], False),
    "cosh": (np.cosh, (-4, 4), [np.inf, -np.inf, 0.0, np.nan], False),
    "tanh": (np.tanh, (-4, 4), [np.inf, -np.inf, 20.0, np.nan], True),
    "arcsinh": (np.arcsinh, (-5, 5), [np.inf, -np.inf, 0.0, np.nan], False),
    "arccosh": (np.arccosh, (1, 6), [1.0, 0.5, np.inf, np.nan], False),
    "arctanh": (np.arctanh, (-0.99, 0.99), [1.0, -1.0, 2.0, np.nan], False),
    "erf": (vec(math.erf), (-3, 3), [np.inf, -np.inf, 0.0, np.nan], False),
    "erfinv": (vec(erfinv1), (-0.999, 0.999), [1.0, -1.0, 1.5, np.nan], False),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), (-8, 8), [np.inf, -np.inf, -30.0, np.nan], False),
    "degrees": (lambda x: x * (180 / np.pi), (-7, 7), [np.inf, 0.0, np.nan], True),
    "radians": (lambda x: x * (np.pi / 180), (-400, 400), [np.inf, 0.0, np.nan], True),
}

# ops that keep the input dtype: float64 function, int function (None: identity), complex
SAME = {
    "abs": (np.abs, np.abs, True),
    "negative": (np.negative, np.negative, True),
    "sign": (sign_real, np.sign, True),
    "square": (np.square, np.square, True),
    "floor": (np.floor, None, False),
    "ceil": (np.ceil, None, False),
}

PREDICATES = {
    "isnan": np.isnan,
    "isinf": np.isinf,
    "isposinf": lambda x: np.isposinf(x),
    "isneginf": lambda x: np.isneginf(x),
    "isfinite": np.isfinite,
    "logical_not": np.logical_not,
}


def with_specials(x, specials):
    x = np.array(x)
    flat = x.reshape(-1)
    for i, v in enumerate(specials[: flat.size]):
        flat[i] = v
    return x


def float_input(dtype, shape, domain, specials):
    x = rand(shape, "float64", rng, *domain)
    x = with_specials(x, specials)
    return x.astype(DTYPES[dtype])


def shapes_for(dtype):
    return [(), (0, 3), (3, 5)] if dtype == "float32" else [(3, 5)]


def f64(x):
    return np.asarray(x).astype(np.float64)


def int_input(dtype, shape):
    return rand(shape, dtype, rng)


# ---- float-valued math: float inputs keep their dtype, int32/bool give float32 ----
for name, (f, dom, specials, cplx) in MATH.items():
    for dtype in FLOATS:
        for shape in shapes_for(dtype):
            x = float_input(dtype, shape, dom, specials)
            c.add(name, [x], f(f64(x)).astype(DTYPES[dtype]))
    for dtype, shape in (("int32", (3, 4)), ("bool", (2, 3))):
        x = int_input(dtype, shape)
        c.add(name, [x], f(f64(x)).astype(np.float32))
    if cplx:
        z = rand((2, 3), "complex64", rng, -2, 2)
        want = f(z.astype(np.complex128)).astype(np.complex64)
        c.add(name, [z], want, rtol=1e-4, atol=1e-5)

# ---- dtype-keeping ops ----
for name, (f, fi, cplx) in SAME.items():
    for dtype in FLOATS:
        for shape in shapes_for(dtype):
            x = float_input(dtype, shape, (-4, 4), [np.nan, np.inf, -np.inf, -0.0, 0.5, -2.5])
            c.add(name, [x], f(f64(x)).astype(DTYPES[dtype]))
    x = int_input("int32", (3, 4))
    x.reshape(-1)[0] = np.iinfo(np.int32).min if name in ("abs", "negative") else x.reshape(-1)[0]
    with np.errstate(all="ignore"):
        c.add(name, [x], x.copy() if fi is None else fi(x).astype(np.int32))
    if name != "negative":
        b = int_input("bool", (2, 3))
        c.add(name, [b], b.copy())
    if cplx:
        z = rand((2, 3), "complex64", rng, -2, 2)
        zz = z.astype(np.complex128)
        if name == "abs":
            want = np.abs(zz).astype(np.float32)
        elif name == "sign":
            want = sign_complex(zz).astype(np.complex64)
        else:
            want = f(zz).astype(np.complex64)
        c.add(name, [z], want, rtol=1e-5, atol=1e-6)

# ---- round, with decimals ----
for decimals in (0, 1, -1):
    for dtype in FLOATS:
        for shape in shapes_for(dtype):
            x = float_input(dtype, shape, (-40, 40), [0.5, 1.5, 2.5, -0.5, np.nan, np.inf])
            c.add("round", [x], np.round(f64(x), decimals).astype(DTYPES[dtype]), decimals=decimals)
    x = rand((3, 4), "int32", rng) * 7
    c.add("round", [x], np.round(x, decimals).astype(np.int32), decimals=decimals)
    b = int_input("bool", (2, 3))
    if decimals >= 0:
        c.add("round", [b], b.copy(), decimals=decimals)

# ---- predicates ----
for name, f in PREDICATES.items():
    for dtype in FLOATS:
        for shape in shapes_for(dtype):
            x = float_input(dtype, shape, (-3, 3), [np.nan, np.inf, -np.inf, 0.0, -0.0])
            c.add(name, [x], f(f64(x)))
    for dtype, shape in (("int32", (3, 4)), ("bool", (2, 3))):
        x = int_input(dtype, shape)
        c.add(name, [x], f(x))
    if name in ("isnan", "isfinite", "logical_not", "isinf"):
        z = rand((2, 3), "complex64", rng)
        z.reshape(-1)[0] = complex(np.nan, 1)
        z.reshape(-1)[1] = complex(0, np.inf)
        z.reshape(-1)[2] = 0
        c.add(name, [z], f(z))

# ---- nan_to_num ----
def ftype_max(dtype):
    return float(ml_dtypes.finfo(DTYPES[dtype]).max)


for dtype in FLOATS:
    for shape in shapes_for(dtype):
        x = float_input(dtype, shape, (-3, 3), [np.nan, np.inf, -np.inf, 1.0])
        for kw in ({}, {"nan": 2.5, "posinf": 100.0, "neginf": -7.0}):
            nan = kw.get("nan", 0.0)
            pos = kw.get("posinf", ftype_max(dtype))
            neg = kw.get("neginf", -ftype_max(dtype))
            v = f64(x)
            want = np.where(np.isnan(v), nan, np.where(v == np.inf, pos, np.where(v == -np.inf, neg, v)))
            c.add("nan_to_num", [x], want.astype(DTYPES[dtype]), **kw)
x = int_input("int32", (3, 4))
c.add("nan_to_num", [x], x.copy())

# ---- logical / bitwise ----
for dtype, shape in (("int32", (3, 4)), ("bool", (2, 3)), ("int32", ()), ("int32", (0,))):
    x = int_input(dtype, shape)
    c.add("bitwise_invert", [x], np.invert(x))
x = int_input("uint8", (5,))
c.add("bitwise_invert", [x], np.invert(x))

# ---- complex parts ----
for shape in [(), (0, 2), (2, 3)]:
    z = rand(shape, "complex64", rng)
    c.add("real", [z], np.real(z).astype(np.float32))
    c.add("imag", [z], np.imag(z).astype(np.float32))
    c.add("conj", [z], np.conj(z))
for dtype in ("float32", "int32"):
    x = rand((2, 3), dtype, rng)
    c.add("real", [x], x.copy())
    c.add("imag", [x], np.zeros_like(x))
    c.add("conj", [x], x.copy())

# ---- astype ----
CAST = ["float32", "float16", "bfloat16", "int32", "bool", "complex64", "uint8", "int64", "float64"]
for src in CAST:
    for dst in CAST:
        if src == "complex64":
            x = rand((2, 3), "complex64", rng, 0, 9)
            real = np.real(x)
            if dst == "complex64":
                want = x.copy()
            elif dst == "bool":
                want = x != 0
            else:
                want = real.astype(np.float64).astype(DTYPES[dst]) if DTYPES[dst] in (np.float16, np.float32, np.float64, bfloat16) else np.trunc(real).astype(DTYPES[dst])
        else:
            if src in ("float32", "float16", "bfloat16", "float64"):
                lo = 0 if dst in ("uint8",) else -100
                x = rand((3, 4), "float64", rng, lo, 100)
                x.reshape(-1)[0] = 0.0
                if dst not in ("int32", "uint8", "int64", "bool"):
                    x.reshape(-1)[1] = np.nan
                    x.reshape(-1)[2] = -np.inf
                x = x.astype(DTYPES[src])
            else:
                x = rand((3, 4), src, rng)
            if dst == "bfloat16" or src == "bfloat16":
                want = f64(x).astype(DTYPES[dst]) if dst != "bool" else f64(x) != 0
            else:
                want = x.astype(DTYPES[dst])
        c.add("astype", [x], want, dtype=dst)
c.add("astype", [np.zeros((0, 2), np.float32)], np.zeros((0, 2), np.int32), dtype="int32")
c.add("astype", [np.array(3.75, np.float32)], np.array(3, np.int32), dtype="int32")
c.add("astype", [np.array([-1, 300, 7], np.int32)], np.array([255, 44, 7], np.uint8), dtype="uint8")

# ---- where ----
def where_case(cs, cd, xs, xd, ys, yd, out=None):
    cond = rand(cs, cd, rng) if cd != "bool" else rand(cs, "bool", rng)
    if cd == "float32":
        cond = np.where(rng.random(cs) < 0.5, 0.0, cond).astype(np.float32)
    x = rand(xs, xd, rng)
    y = rand(ys, yd, rng)
    from_dtype = np.result_type if False else None  # noqa: F841
    out_dtype = out or xd
    want = np.where(cond != 0, f64(x) if xd != "complex64" else x, f64(y) if yd != "complex64" else y)
    want = np.asarray(want)
    if out_dtype == "bool":
        want = want != 0
    c.add("where", [cond, x, y], want.astype(DTYPES[out_dtype]))


where_case((3, 4), "bool", (3, 4), "float32", (3, 4), "float32")
where_case((3, 1), "bool", (1, 4), "float32", (), "float32")
where_case((2, 3, 4), "bool", (4,), "float16", (3, 1), "float16")
where_case((4, 5), "bool", (4, 5), "bfloat16", (5,), "bfloat16")
where_case((3, 4), "bool", (3, 4), "int32", (3, 4), "int32")
where_case((3, 4), "bool", (3, 4), "bool", (3, 4), "bool")
where_case((3, 4), "int32", (3, 4), "int32", (3, 4), "float32", out="float32")
where_case((3, 4), "float32", (4,), "float16", (3, 4), "float32", out="float32")
where_case((), "bool", (), "float32", (), "float32")
where_case((0, 3), "bool", (3,), "float32", (), "float32")
where_case((2, 3), "bool", (2, 3), "complex64", (2, 3), "complex64")
where_case((), "bool", (2, 3), "float32", (1, 3), "float32")
# a weak Rust scalar y takes x's dtype: where(c, x_f16, 0.5) stays float16; with int32 x, float32
for xd, out in (("float16", "float16"), ("int32", "float32"), ("bfloat16", "bfloat16")):
    cond = rand((3, 4), "bool", rng)
    x = rand((3, 4), xd, rng)
    c.add("where_scalar_y", [cond, x], np.where(cond, f64(x), 0.5).astype(DTYPES[out]), y=0.5)

# ---- bad input: errors that name the op ----
c.error("bitwise_invert", [rand((2,), "float32", rng)], "bitwise_invert")
c.error("bitwise_invert", [rand((2,), "complex64", rng)], "bitwise_invert")
c.error("negative", [rand((2,), "bool", rng)], "negative")
for name in ("floor", "ceil", "erf", "erfinv", "sigmoid"):
    c.error(name, [rand((2,), "complex64", rng)], name)
c.error("where", [rand((3,), "bool", rng), rand((3,), "float32", rng), rand((4,), "float32", rng)], "where")
c.error("where", [rand((2, 3), "bool", rng), rand((3, 2), "float32", rng), rand((1,), "float32", rng)], "where")

c.save(__file__)
