"""NumPy references for the matrix products: matmul, addmm, inner, outer, tensordot, einsum.

Expected values are computed in float64 (complex128) from the inputs as stored, then rounded
to the result dtype once (MLX accumulates float16/bfloat16 in float32 and rounds at the end).
Tolerances are relative to the size of the terms summed: atol = eps(dtype) * max(|a| @ |b|),
so cancellation in a long dot product is not held against half precision.
"""
import numpy as np
from common import Cases, rand, DTYPES, bfloat16

rng = np.random.default_rng(0)
c = Cases()

FLOATS = ["float32", "float16", "bfloat16", "float64", "complex64"]
# Per-dtype factor on max(|a| @ |b|) for atol.
ATOL = {"float32": 2e-6, "float16": 2e-3, "bfloat16": 1.6e-2, "float64": 1e-13, "complex64": 4e-6}


def wide(x):
    x = np.asarray(x)
    if x.dtype == np.complex64:
        return x.astype(np.complex128)
    return x.astype(np.float64)


def result_dtype(*names):
    """MLX's promotion for the cases used here (float16 with bfloat16 gives float32)."""
    names = set(names)
    for d in ["complex64", "float64", "float32"]:
        if d in names:
            return d
    if "float16" in names and "bfloat16" in names:
        return "float32"
    for d in ["float16", "bfloat16"]:
        if d in names:
            return d
    return "float32"  # integers and bool with float32


def name_of(x):
    x = np.asarray(x)
    return "bfloat16" if x.dtype == bfloat16 else x.dtype.name


def scale(*arrays):
    """max of |a| @ |b| (or the product of sizes for other contractions), for atol."""
    a, b = arrays
    m = np.abs(wide(a)) @ np.abs(wide(b)) if np.ndim(a) and np.ndim(b) else np.abs(wide(a) * wide(b))
    return float(np.max(m)) if np.size(m) else 1.0


def add(op, inputs, want_wide, out, sc, **kw):
    want = np.asarray(want_wide).astype(DTYPES[out])
    c.add(op, inputs, want, atol=ATOL[out] * max(sc, 1.0), **kw)


def mm(a_shape, b_shape, da, db=None):
    db = db or da
    a, b = rand(a_shape, da, rng), rand(b_shape, db, rng)
    out = result_dtype(da, db)
    add("matmul", [a, b], np.matmul(wide(a), wide(b)), out, scale(a, b))


SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),  # vector @ matrix
    ((3, 4), (4,)),  # matrix @ vector
    ((4,), (4,)),  # vector @ vector -> 0-d
    ((1, 1), (1, 1)),
    ((2, 1, 3, 4), (5, 4, 2)),  # broadcast batch dims
    ((2, 3, 4), (4, 5)),
    ((4,), (2, 4, 3)),
    ((2, 3, 4), (4,)),
    ((3, 2, 4), (3, 4, 2)),
]
for dt in FLOATS:
    for sa, sb in SHAPES:
        mm(sa, sb, dt)

# Sizes off gemm's register tiles, and long dot products.
mm((9, 17), (17, 10), "float32")
mm((2, 100), (100, 3), "float32")
mm((3, 40), (40, 5), "float16")
mm((3, 40), (40, 5), "bfloat16")
mm((3, 9), (9, 5), "complex64")
mm((1, 2, 3, 5), (4, 1, 5, 2), "float64")

# Mixed dtypes promote (MLX's table).
mm((3, 4), (4, 2), "float16", "float32")
mm((3, 4), (4, 2), "float16", "bfloat16")
mm((3, 4), (4, 2), "int32", "float32")
mm((3, 4), (4, 2), "float16", "int32")
mm((3, 4), (4, 2), "bool", "float32")
mm((3, 4), (4, 2), "float32", "complex64")

# Empty dims: K = 0 gives zeros; M, N or a batch dim of 0 give empty results.
for sa, sb in [((3, 0), (0, 5)), ((0, 4), (4, 5)), ((3, 4), (4, 0)), ((2, 0, 3), (3, 4)),
               ((0,), (0,)), ((0, 2, 3), (3, 1))]:
    mm(sa, sb, "float32")
mm((3, 0), (0, 2), "bfloat16")

# addmm: alpha * (a @ b) + beta * c, c broadcast.
for dt in ["float32", "float16", "bfloat16", "float64"]:
    for cs, sa, sb, alpha, beta in [
        ((3, 5), (3, 4), (4, 5), 1.0, 1.0),
        ((5,), (3, 4), (4, 5), 0.5, 2.0),
        ((), (2, 3, 4), (4, 2), -1.0, 0.5),
        ((3, 1), (2, 3, 4), (2, 4, 5), 2.0, 0.0),
        ((5,), (4,), (4, 5), 1.5, -1.0),
        ((3, 5), (3, 0), (0, 5), 1.0, 3.0),
    ]:
        cc, a, b = rand(cs, dt, rng), rand(sa, dt, rng), rand(sb, dt, rng)
        want = alpha * np.matmul(wide(a), wide(b)) + beta * wide(cc)
        sc = scale(a, b) * abs(alpha) + 3.0 * abs(beta)
        add("addmm", [cc, a, b], want, dt, sc, alpha=alpha, beta=beta)


def contraction(op, arrays, want_wide, **kw):
    """A case for inner/outer/tensordot/einsum: atol from the contraction of |inputs|."""
    out = result_dtype(*[name_of(x) for x in arrays])
    absw = [np.abs(wide(x)) for x in arrays]
    if op == "einsum":
        sc = np.max(np.einsum(kw["subscripts"], *absw), initial=1.0)
    else:
        sc = np.max(np.abs(want_wide), initial=1.0) * 4
    add(op, arrays, want_wide, out, float(sc), **kw)


# inner, outer, tensordot
for dt in ["float32", "float16", "bfloat16"]:
    for sa, sb in [((3,), (3,)), ((2, 3), (4, 3)), ((2, 3, 4), (5, 4)), ((), (3,))]:
        a, b = rand(sa, dt, rng), rand(sb, dt, rng)
        contraction("inner", [a, b], np.inner(wide(a), wide(b)))
    for sa, sb in [((3,), (4,)), ((2, 2), (3,))]:
        a, b = rand(sa, dt, rng), rand(sb, dt, rng)
        contraction("outer", [a, b], np.outer(wide(a), wide(b)))
a, b = rand((3,), "int32", rng), rand((2, 2), "int32", rng)
c.add("outer", [a, b], np.outer(a, b).astype(np.int32))
for dt in ["float32", "float16", "float64"]:
    for sa, sb, axes in [((2, 3, 4), (3, 4, 5), 2), ((3, 4), (4, 5), 1), ((2,), (3,), 0),
                         ((3, 4, 5), (4, 3, 2), [[1, 0], [0, 1]]),
                         ((3, 4, 5), (5, 2, 4), [[-1, 1], [0, -1]])]:
        a, b = rand(sa, dt, rng), rand(sb, dt, rng)
        contraction("tensordot", [a, b], np.tensordot(wide(a), wide(b), axes), axes=axes)

# einsum
EINSUM = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("i,i->", [(5,), (5,)]),
    ("ij->ji", [(3, 4)]),
    ("ij", [(3, 4)]),
    ("ba", [(3, 4)]),
    ("...ij,...jk", [(2, 3, 4), (4, 5)]),
    ("...ij,...jk->...ik", [(5, 1, 2, 3), (4, 3, 2)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("ij,jk,k->i", [(2, 3), (3, 4), (4,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ijk->", [(2, 3, 4)]),
    ("ijk->ki", [(2, 3, 4)]),
    ("iij->ji", [(3, 3, 2)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("bi,bi->b", [(3, 4), (3, 4)]),
    ("ij,jk->ik", [(3, 1), (4, 5)]),  # a size-1 label broadcasts
    ("bij,jk->bik", [(2, 3, 4), (4, 0)]),
    ("ij,jk->ik", [(3, 0), (0, 2)]),
    (",i->i", [(), (3,)]),
    ("i...->...", [(3, 2, 2)]),
    ("ab,cd->", [(2, 3), (3, 2)]),
]
for subs, shapes in EINSUM:
    for dt in ["float32", "float16"] if len(shapes) < 3 else ["float32"]:
        arrays = [rand(s, dt, rng) for s in shapes]
        contraction("einsum", arrays, np.einsum(subs, *[wide(x) for x in arrays]), subscripts=subs)
for subs, dt in [("ij,jk->ik", "bfloat16"), ("ii", "float64"), ("bij,bjk->bik", "complex64")]:
    shapes = dict(EINSUM)[subs] if subs != "ii" else [(3, 3)]
    arrays = [rand(s, dt, rng) for s in shapes]
    contraction("einsum", arrays, np.einsum(subs, *[wide(x) for x in arrays]), subscripts=subs)
for subs, shapes in [("ij->ji", [(3, 4)]), ("ii->i", [(3, 3)]), ("ij->", [(3, 4)]),
                     ("i,j->ij", [(3,), (2,)])]:
    arrays = [rand(s, "int32", rng) for s in shapes]
    c.add("einsum", arrays, np.einsum(subs, *arrays).astype(np.int32), subscripts=subs)

# Bad input: the message names the op.
f = lambda s, d="float32": rand(s, d, rng)
c.error("matmul", [f(()), f((3,))], "matmul")
c.error("matmul", [f((3, 4)), f(())], "matmul")
c.error("matmul", [f((3, 4)), f((5, 6))], "matmul")
c.error("matmul", [f((4,)), f((5,))], "matmul")
c.error("matmul", [f((2, 3, 4)), f((3, 4, 5))], "matmul")
c.error("matmul", [f((3, 4), "int32"), f((4, 2), "int32")], "matmul")
c.error("matmul", [f((3, 4), "bool"), f((4, 2), "bool")], "matmul")
c.error("matmul", [f((3, 4), "uint8"), f((4, 2), "int8")], "matmul")
c.error("addmm", [f((4, 4)), f((3, 4)), f((4, 5))], "addmm")
c.error("addmm", [f((2, 3, 5)), f((3, 4)), f((4, 5))], "addmm")
c.error("addmm", [f((3, 5)), f((3, 4)), f((5, 5))], "addmm")
c.error("addmm", [f((3, 5), "int32"), f((3, 4), "int32"), f((4, 5), "int32")], "addmm")

c.error("inner", [f((3, 4)), f((3, 5))], "inner")
c.error("tensordot", [f((3, 4)), f((3, 4))], "tensordot", axes=1)
c.error("tensordot", [f((3, 4)), f((4, 5))], "tensordot", axes=3)
c.error("tensordot", [f((3, 4)), f((4, 3))], "tensordot", axes=[[0], [0, 1]])
c.error("tensordot", [f((3, 4)), f((4, 3))], "tensordot", axes=[[2], [0]])
c.error("einsum", [f((3, 4))], "einsum", subscripts="ij,jk->ik")
c.error("einsum", [f((3, 4)), f((4, 5))], "einsum", subscripts="ij->ij")
c.error("einsum", [f((3, 4))], "einsum", subscripts="i1->i")
c.error("einsum", [f((3, 4))], "einsum", subscripts="ijk")
c.error("einsum", [f((3, 4))], "einsum", subscripts="ij->k")
c.error("einsum", [f((3, 4))], "einsum", subscripts="ij->ii")
c.error("einsum", [f((3, 4))], "einsum", subscripts="ii")
c.error("einsum", [f((3, 4)), f((5, 6))], "einsum", subscripts="ij,jk")
c.error("einsum", [f((3,))], "einsum", subscripts="i..->i")
c.error("einsum", [f((3, 4), "int32"), f((4, 2), "int32")], "einsum", subscripts="ij,jk->ik")

c.save(__file__)
