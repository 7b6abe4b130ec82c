"""NumPy references for the binary element-wise ops (umx's `ops/elementwise.rs`).

Result dtypes follow MLX (its promotion table, true division to float32, shifts promoted with
uint8, float16 with bfloat16 giving float32); values come from NumPy computed in that dtype
(float16 and bfloat16 in float32, rounded once, as MLX does).

Case conventions read by `crates/umx/tests/conformance/ops_binary.rs`:
- kwarg `scalar` (+ `side`: "right" or "left"): the second operand is a weak Rust scalar
  (f64 for a float, i64 for an int, bool) instead of an array input;
- `isclose` takes `isclose_rtol`, `isclose_atol`, `equal_nan`; `clip` takes `a_min`/`a_max` (a number or null)
  or array inputs (`bounds`: "arrays").
"""
import numpy as np
from common import Cases, rand, DTYPES, bfloat16

rng = np.random.default_rng(0)
np.seterr(all="ignore")
c = Cases()

# ---- MLX's promotion (mirrors umx's dtype.rs) ----
KIND = {"bool": "b", "uint8": "u", "uint16": "u", "uint32": "u", "uint64": "u",
        "int8": "i", "int16": "i", "int32": "i", "int64": "i",
        "float16": "f", "bfloat16": "f", "float32": "f", "float64": "f", "complex64": "c"}
SIZE = {"bool": 1, "uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "float16": 2, "bfloat16": 2,
        "uint32": 4, "int32": 4, "float32": 4, "uint64": 8, "int64": 8, "float64": 8,
        "complex64": 8}


def name_of(x):
    x = np.asarray(x)
    return "bfloat16" if x.dtype == bfloat16 else x.dtype.name


def promote(a, b):
    if a == b:
        return a
    ka, kb = KIND[a], KIND[b]
    if ka == "b":
        return b
    if kb == "b":
        return a
    if "c" in (ka, kb):
        return "complex64"
    if ka == "f" and kb == "f":
        if "float64" in (a, b):
            return "float64"
        return "float32"
    if ka == "f":
        return a
    if kb == "f":
        return b
    if ka == kb:
        return a if SIZE[a] >= SIZE[b] else b
    u, s = (a, b) if ka == "u" else (b, a)
    if u == "uint64":
        return "float32"
    need = max(SIZE[u] * 2, SIZE[s])
    return {1: "int8", 2: "int16", 4: "int32", 8: "int64"}[need]


def weak_promote(arr, scalar):
    rank = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
    sd = "bool" if isinstance(scalar, bool) else ("int32" if isinstance(scalar, int) else "float32")
    return sd if rank[KIND[sd]] > rank[KIND[arr]] else arr


def at_least_float(d):
    return d if KIND[d] in "fc" else "float32"


def compute_dtype(op, p):
    if op in ("divide", "arctan2", "logaddexp", "isclose"):
        return at_least_float(p)
    if op in ("logical_and", "logical_or"):
        return "bool"
    if op in ("left_shift", "right_shift"):
        return promote(p, "uint8")
    return p


COMPARISONS = {"equal": np.equal, "not_equal": np.not_equal, "less": np.less,
               "less_equal": np.less_equal, "greater": np.greater,
               "greater_equal": np.greater_equal}


def wide(x, d):
    """x as dtype d, widened to float32 for float16/bfloat16 (the compute width)."""
    x = np.asarray(x).astype(DTYPES[d])
    if d in ("float16", "bfloat16"):
        x = x.astype(np.float32)
    return x


def compute(op, a, b, d, **kw):
    """The op on a, b already converted to compute dtype d; returns the raw result."""
    x, y = wide(a, d), wide(b, d)
    with np.errstate(all="ignore"):
        if d == "bool" and op in ("add", "subtract", "multiply", "maximum", "minimum"):
            return {"add": np.logical_or, "subtract": np.logical_xor, "multiply": np.logical_and,
                    "maximum": np.logical_or, "minimum": np.logical_and}[op](x, y)
        if op == "add":
            return x + y
        if op == "subtract":
            return x - y
        if op == "multiply":
            return x * y
        if op == "divide":
            return x / y
        if op == "floor_divide":
            if KIND[d] == "f":
                return np.floor(x / y)
            return np.floor_divide(x, y)  # 0 for a zero divisor, as umx
        if op == "remainder":
            return np.remainder(x, y)
        if op == "power":
            return np.power(x, y)
        if op == "arctan2":
            return np.arctan2(x, y)
        if op == "logaddexp":
            return np.logaddexp(x, y)
        if op == "maximum":
            return np.maximum(x, y)
        if op == "minimum":
            return np.minimum(x, y)
        if op in COMPARISONS:
            return COMPARISONS[op](x, y)
        if op == "logical_and":
            return np.logical_and(x, y)
        if op == "logical_or":
            return np.logical_or(x, y)
        if op == "bitwise_and":
            return x & y
        if op == "bitwise_or":
            return x | y
        if op == "bitwise_xor":
            return x ^ y
        if op == "left_shift":
            return np.left_shift(x, y)
        if op == "right_shift":
            return np.right_shift(x, y)
        if op == "isclose":
            return np.isclose(x, y, rtol=kw["rtol"], atol=kw["atol"], equal_nan=kw["equal_nan"])
    raise ValueError(op)


def out_dtype(op, d):
    if op in COMPARISONS or op in ("logical_and", "logical_or", "isclose"):
        return "bool"
    return d


def expected(op, a, b, d, **kw):
    if op == "divmod":
        return [expected("floor_divide", a, b, d), expected("remainder", a, b, d)]
    r = compute(op, a, b, d, **kw)
    return np.asarray(r).astype(DTYPES[out_dtype(op, d)])


def case(op, a, b, **kw):
    d = compute_dtype(op, promote(name_of(a), name_of(b)))
    want = expected(op, a, b, d, **kw)
    if op == "isclose":
        # `rtol`/`atol` name the harness's tolerances, so the op's go under other keys.
        kw = {"isclose_rtol": kw["rtol"], "isclose_atol": kw["atol"], "equal_nan": kw["equal_nan"]}
    c.add(op, [a, b], want, **kw)


def scalar_case(op, a, s, side="right"):
    """`op(a, s)` (or `op(s, a)`) with `s` a weak Rust scalar."""
    d = compute_dtype(op, weak_promote(name_of(a), s))
    sv = np.asarray(s).astype(DTYPES[d]) if not (isinstance(s, int) and not isinstance(s, bool)) \
        else np.asarray(s, dtype=np.int64).astype(DTYPES[d])
    x, y = (a, sv) if side == "right" else (sv, a)
    c.add(op, [a], expected(op, x, y, d), scalar=s, side=side)


SHAPES = [((2, 3), (2, 3)), ((3, 1), (4,)), ((), (2, 3)), ((0, 3), (1, 3)), ((2, 1, 3), (4, 1))]
ARITH = ["add", "subtract", "multiply", "divide", "floor_divide", "remainder", "power",
         "maximum", "minimum"]
FLOAT_MATH = ["arctan2", "logaddexp"]
FLOATS = ["float32", "float16", "bfloat16"]


def nonzero(shape, d):
    x = rand(shape, d, rng)
    if KIND[d] in "iu":
        x = np.where(x == 0, 3, x).astype(DTYPES[d])
    elif KIND[d] == "f":
        x = np.where(np.abs(x.astype(np.float32)) < 0.25, 1.5, x.astype(np.float32)).astype(DTYPES[d])
    return x


# ---- every op over the main dtypes, same shapes and broadcasting ----
for op in ARITH + FLOAT_MATH + list(COMPARISONS):
    for d in FLOATS + ["int32"] + (["bool"] if op in ("add", "subtract", "multiply", "maximum", "minimum") or op in COMPARISONS else []):
        for sa, sb in (SHAPES if d in ("float32", "int32") else SHAPES[:2]):
            a = rand(sa, d, rng)
            if op == "power" and KIND[d] in "iu":
                b = rng.integers(0, 5, size=sb).astype(DTYPES[d])
            elif op == "power" and d != "bool":
                a = np.abs(a.astype(np.float32)).astype(DTYPES[d])
                b = rand(sb, d, rng)
            elif op in ("divide", "floor_divide", "remainder") and d != "bool":
                b = nonzero(sb, d)
            else:
                b = rand(sb, d, rng)
            case(op, a, b)

for op in ["logical_and", "logical_or"]:
    for d in ["bool", "int32", "float32"]:
        for sa, sb in SHAPES[:3]:
            case(op, rand(sa, d, rng), rand(sb, d, rng))

for op in ["bitwise_and", "bitwise_or", "bitwise_xor"]:
    for d in ["int32", "uint8", "bool", "int64"]:
        for sa, sb in SHAPES[:3]:
            case(op, rand(sa, d, rng), rand(sb, d, rng))

for op in ["left_shift", "right_shift"]:
    for d, hi in [("int32", 31), ("uint8", 7), ("int64", 40), ("int8", 7)]:
        a = rand((3, 4), d, rng)
        b = rng.integers(0, hi + 1, size=(4,)).astype(DTYPES[d])
        case(op, a, b)
    case(op, rand((2, 3), "bool", rng), rand((2, 3), "bool", rng))  # bool shifts as uint8

# ---- divmod, isclose, clip ----
for d in ["float32", "int32", "float16", "bfloat16"]:
    for sa, sb in SHAPES[:3]:
        a, b = rand(sa, d, rng), nonzero(sb, d)
        dd = promote(name_of(a), name_of(b))
        c.add("divmod", [a, b], expected("divmod", a, b, dd))

for d in FLOATS + ["int32"]:
    a = rand((3, 4), d, rng)
    b = (a.astype(np.float32) + rng.choice([0.0, 1e-6, 1e-3, 0.5], size=(3, 4))).astype(DTYPES[d])
    for rtol, atol in [(1e-5, 1e-8), (1e-2, 1e-3)]:
        case("isclose", a, b, rtol=rtol, atol=atol, equal_nan=False)
sp = np.array([0.0, 1.0, np.inf, -np.inf, np.nan, np.nan, np.inf, 1.0], dtype=np.float32)
sq = np.array([0.0, 1.0 + 1e-7, np.inf, np.inf, np.nan, 1.0, 1e30, np.nan], dtype=np.float32)
for equal_nan in [False, True]:
    case("isclose", sp, sq, rtol=1e-5, atol=1e-8, equal_nan=equal_nan)

for d in FLOATS + ["int32"]:
    a = rand((3, 4), d, rng)
    for lo, hi in [(-1.0, 1.0), (None, 0.5), (-0.5, None)]:
        if KIND[d] in "iu":
            lo = None if lo is None else int(lo * 4)
            hi = None if hi is None else int(hi * 4)
        r = np.clip(a.astype(np.float32), lo, hi).astype(DTYPES[d])
        c.add("clip", [a], r, a_min=lo, a_max=hi)
a = rand((3, 4), "float32", rng)
lo, hi = rand((4,), "float32", rng) - 1.0, rand((3, 1), "float32", rng) + 1.0
c.add("clip", [a, lo, hi], np.minimum(np.maximum(a, lo), hi), bounds="arrays")
ai = rand((3, 4), "int32", rng)
c.add("clip", [ai], np.clip(ai, -1.5, 2.5).astype(np.float32), a_min=-1.5, a_max=2.5)

# ---- mixed dtypes (MLX's promotion) ----
MIXED = [("uint8", "int8"), ("int32", "float16"), ("float16", "bfloat16"), ("bool", "int8"),
         ("uint32", "int32"), ("uint64", "int8"), ("int64", "float32"), ("bool", "float16"),
         ("uint8", "uint16"), ("int16", "float32"), ("bfloat16", "float32"), ("int8", "int32")]
for da, db in MIXED:
    for op in ["add", "multiply", "subtract", "divide", "maximum", "less", "equal"]:
        a, b = rand((2, 3), da, rng), rand((3,), db, rng)
        if op == "subtract" and "bool" in (da, db) and promote(da, db) == "bool":
            continue
        if da.startswith("uint") or db.startswith("uint"):
            if op == "subtract" and KIND[promote(da, db)] == "u":
                continue  # wraps differently in NumPy's wider promotion
        case(op, a, b)
for da, db in [("uint8", "int8"), ("int8", "uint8"), ("bool", "int32")]:
    case("bitwise_or", rand((2, 3), da, rng), rand((2, 3), db, rng))
    a = rand((2, 3), da, rng)
    if da != "bool":
        a = (a % 4).astype(DTYPES[da])
    case("left_shift", a, rng.integers(0, 4, size=(2, 3)).astype(DTYPES[db]))

# ---- weak scalars ----
for d in FLOATS + ["int32", "uint8", "bool", "int8"]:
    a = rand((2, 3), d, rng)
    for op, s in [("add", 2.0), ("multiply", 2.5), ("subtract", 3), ("divide", 2), ("add", True),
                  ("maximum", 0.5), ("less", 1), ("greater_equal", 0.5), ("power", 2),
                  ("multiply", 2)]:
        if d == "bool" and op == "subtract" and isinstance(s, bool):
            continue
        scalar_case(op, a, s, "right")
    for op, s in [("subtract", 1.0), ("divide", 1.0), ("add", 7), ("less", 0)]:
        if d == "bool" and op == "divide":
            pass
        scalar_case(op, a, s, "left")
scalar_case("add", rand((2, 3), "uint8", rng), 300)  # wraps into uint8 as C++ does
scalar_case("bitwise_and", rand((2, 3), "int32", rng), 6)
scalar_case("left_shift", (rand((2, 3), "int32", rng) % 8).astype(np.int32), 2)
scalar_case("right_shift", rand((2, 3), "int32", rng), 1)

# ---- special values and division by zero ----
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 2.5, -3.5], dtype=np.float32)
X = np.repeat(SPECIAL, len(SPECIAL)).reshape(len(SPECIAL), len(SPECIAL))
Y = X.T.copy()
for op in ARITH + FLOAT_MATH + list(COMPARISONS):
    for d in ["float32", "float16", "bfloat16"]:
        case(op, X.astype(DTYPES[d]), Y.astype(DTYPES[d]))
IX = np.array([[-7, 7, 0, -1, 5, -2147483648]], dtype=np.int32).T * np.ones((1, 4), np.int32)
IY = np.array([3, -3, 0, -1], dtype=np.int32)
for op in ["floor_divide", "remainder", "divide"]:
    case(op, IX[:5], IY)  # (5, 4) with (4,): zero divisors give 0
for d in ["uint8", "int8", "int64"]:
    a = np.array([[7, 0, 5]], dtype=DTYPES[d]).T * np.ones((1, 3), DTYPES[d])
    b = np.array([2, 0, 3], dtype=DTYPES[d])
    case("floor_divide", a, b)
    case("remainder", a, b)
c.add("divmod", [IX[:5], IY], [np.floor_divide(IX[:5], IY), np.remainder(IX[:5], IY)])
# Integer powers: exponent 0 and growth (wrapping beyond int32 is not exercised).
case("power", np.array([2, -3, 0, 1, -1], np.int32), np.array([10, 3, 0, 7, 5], np.int32))

# ---- bad inputs: every message names the op ----
c.error("add", [rand((3,), "float32", rng), rand((4,), "float32", rng)], "add: shapes (3,) and (4,)")
c.error("less", [rand((2, 3), "int32", rng), rand((3, 2), "int32", rng)], "less: shapes (2, 3) and (3, 2)")
c.error("divmod", [rand((2,), "int32", rng), rand((3,), "int32", rng)], "divmod: shapes")
for op in ["left_shift", "right_shift", "bitwise_and", "bitwise_or", "bitwise_xor"]:
    c.error(op, [rand((2,), "float32", rng), rand((2,), "int32", rng)], op + ": ")
c.error("floor_divide", [rand((2,), "complex64", rng), rand((2,), "complex64", rng)], "floor_divide: ")
c.error("less", [rand((2,), "complex64", rng), rand((2,), "float32", rng)], "less: ")
c.error("arctan2", [rand((2,), "complex64", rng), rand((2,), "float32", rng)], "arctan2: ")

c.save(__file__)
