"""NumPy references for umx::linalg: norm, cross, inv, pinv, det, slogdet, cholesky,
cholesky_inv, tri_inv, solve, solve_triangular, lu, lu_factor, qr, svd, eig, eigvals, eigh,
eigvalsh; batched, float32 and float64, plus the errors NumPy's LinAlgError stands for.

Factorizations that are unique only up to signs or order are checked through what is unique
(the op names ending in `_props`, computed by the Rust op table from the op's outputs):
- qr_props: [Q @ R, Qᵀ Q, |Q|, |R|]
- svd_props: [S, U_k diag(S) Vt_k, Uᵀ U, Vt Vtᵀ, |U_k|, |Vt_k|]
- eigh_props: [w, S V − V diag(w) (zeros), Vᵀ V, |V|] with S the symmetric matrix read
- eig_props: [sorted w, A V − V diag(w) (zeros), column norms of V (ones)]
and `eigvals` sorted (by real part, then imaginary part). LU follows LAPACK's getf2 (written
out below: NumPy has no LU), pivots included.

Expected values are computed in float64 and rounded to the result dtype; tolerances grow with
the matrices' condition numbers.
"""
import numpy as np
from common import Cases, rand

rng = np.random.default_rng(9)
c = Cases()

TOL = {"float32": (2e-4, 2e-5), "float64": (1e-9, 1e-11)}  # (rtol, atol per unit of scale)


def add(op, inputs, expected, dtype, scale=1.0, **kw):
    rtol, atol = TOL[dtype]
    c.add(op, inputs, expected, rtol=rtol, atol=atol * max(scale, 1.0), **kw)


def well(shape, dtype, spd=False):
    """A random (batch of) well-conditioned matrices: random plus n on the diagonal."""
    a = rng.uniform(-1.0, 1.0, shape)
    n = shape[-1]
    if spd:
        a = a @ np.swapaxes(a, -1, -2) + n * np.eye(n)
    elif shape[-1] == shape[-2]:
        a = a + n * np.eye(n) * np.where(rng.random(shape[:-2] + (1, 1)) < 0.5, -1, 1)
    return a.astype(dtype)


def w64(x):
    return np.asarray(x, dtype=np.float64)


def getf2(a):
    """LU with partial pivoting as LAPACK's getf2: (packed LU, pivots, row order perm)."""
    a = a.copy()
    m, n = a.shape
    k = min(m, n)
    piv = np.zeros(k, dtype=np.uint32)
    perm = np.arange(m)
    for j in range(k):
        p = j + int(np.argmax(np.abs(a[j:, j])))
        piv[j] = p
        if a[p, j] != 0:
            if p != j:
                a[[j, p]] = a[[p, j]]
                perm[[j, p]] = perm[[p, j]]
            a[j + 1:, j] /= a[j, j]
        a[j + 1:, j + 1:] -= np.outer(a[j + 1:, j], a[j, j + 1:])
    return a, piv, perm


def batched(f, a, n_out):
    """f over the leading axes of a (f returns n_out arrays)."""
    lead = a.shape[:-2]
    flat = a.reshape((-1,) + a.shape[-2:])
    outs = [f(x) for x in flat]
    return [np.stack([o[i] for o in outs]).reshape(lead + outs[0][i].shape) for i in range(n_out)]


FLOATS = ["float32", "float64"]
SQUARE = [(3, 3), (1, 1), (2, 4, 4), (2, 1, 3, 3)]
RECT = [(4, 3), (3, 5), (2, 3, 2), (2, 2, 4), (5, 5)]

for dt in FLOATS:
    # inv, det, slogdet
    for s in SQUARE:
        a = well(s, dt)
        add("inv", [a], np.linalg.inv(w64(a)).astype(dt), dt, scale=4)
        add("det", [a], np.linalg.det(w64(a)).astype(dt), dt, scale=float(np.max(np.abs(np.linalg.det(w64(a))))))
        sign, logdet = np.linalg.slogdet(w64(a))
        add("slogdet", [a], [sign.astype(dt), logdet.astype(dt)], dt, scale=4)
    # solve: vectors, matrices, broadcast batches
    for sa, sb in [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (3,)), ((2, 3, 3), (2, 3, 1)),
                   ((2, 1, 3, 3), (4, 3, 2)), ((3, 3), (2, 3, 4))]:
        a, b = well(sa, dt), rand(sb, dt, rng)
        if len(sb) == 1:
            want = np.linalg.solve(w64(a), w64(b)[..., None])[..., 0]
        else:
            want = np.linalg.solve(w64(a), w64(b))
        add("solve", [a, b], want.astype(dt), dt, scale=4)
    for upper in [False, True]:
        for sa, sb in [((3, 3), (3,)), ((2, 4, 4), (2, 4, 3)), ((3, 3), (2, 3, 2))]:
            a, b = well(sa, dt), rand(sb, dt, rng)
            t = np.triu(w64(a)) if upper else np.tril(w64(a))
            bb = w64(b)[..., None] if len(sb) == 1 else w64(b)
            want = np.linalg.solve(t, bb)
            if len(sb) == 1:
                want = want[..., 0]
            add("solve_triangular", [a, b], want.astype(dt), dt, scale=4, upper=upper)
        for s in [(3, 3), (2, 4, 4)]:
            a = well(s, dt)
            t = np.triu(w64(a)) if upper else np.tril(w64(a))
            add("tri_inv", [a], np.linalg.inv(t).astype(dt), dt, scale=4, upper=upper)
    # cholesky (reads one triangle: the other holds garbage), cholesky_inv
    for s in [(3, 3), (1, 1), (2, 4, 4)]:
        spd = w64(well(s, dt, spd=True))
        for upper in [False, True]:
            garbage = rng.uniform(-9, 9, s)
            a = np.where(np.triu(np.ones(s[-2:]), 1).astype(bool), garbage, spd) if not upper else \
                np.where(np.tril(np.ones(s[-2:]), -1).astype(bool), garbage, spd)
            l = np.linalg.cholesky(spd)
            want = np.swapaxes(l, -1, -2) if upper else l
            add("cholesky", [a.astype(dt)], want.astype(dt), dt, scale=4, upper=upper)
            add("cholesky_inv", [want.astype(dt)], np.linalg.inv(spd).astype(dt), dt, scale=4,
                upper=upper)
    # pinv of full-rank and rank-deficient matrices
    for s in RECT:
        a = rand(s, dt, rng)
        add("pinv", [a], np.linalg.pinv(w64(a)).astype(dt), dt, scale=20)
    a = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]], dtype=dt)  # rank 1
    add("pinv", [a], np.linalg.pinv(w64(a)).astype(dt), dt, scale=4)
    # lu_factor and lu (LAPACK's pivots)
    for s in [(3, 3), (4, 4), (2, 3, 3), (4, 3), (3, 5)]:
        a = rand(s, dt, rng)
        lu, piv, perm = batched(lambda x: getf2(w64(x)), a, 3)
        add("lu_factor", [a], [lu.astype(dt), piv.astype(np.uint32)], dt, scale=20)
        m, n = s[-2:]
        k = min(m, n)
        l = np.tril(lu[..., :, :k], -1) + np.eye(m, k)
        u = np.triu(lu[..., :k, :])
        p = np.argsort(perm, axis=-1).astype(np.uint32)  # row i of a is row p[i] of L U
        add("lu", [a], [p, l.astype(dt), u.astype(dt)], dt, scale=20)
    # qr
    for s in RECT:
        a = rand(s, dt, rng)
        q, r = np.linalg.qr(w64(a))
        k = min(s[-2:])
        qtq = np.broadcast_to(np.eye(k), s[:-2] + (k, k))
        add("qr_props", [a], [w64(a).astype(dt), qtq.astype(dt), np.abs(q).astype(dt),
                              np.abs(r).astype(dt)], dt, scale=10)
    # svd
    for s in RECT:
        a = rand(s, dt, rng)
        u, sv, vt = np.linalg.svd(w64(a))
        m, n = s[-2:]
        k = min(m, n)
        lead = s[:-2]
        add("svd_props", [a], [sv.astype(dt), w64(a).astype(dt),
                               np.broadcast_to(np.eye(m), lead + (m, m)).astype(dt),
                               np.broadcast_to(np.eye(n), lead + (n, n)).astype(dt),
                               np.abs(u[..., :, :k]).astype(dt), np.abs(vt[..., :k, :]).astype(dt)],
            dt, scale=10)
        add("svdvals", [a], np.linalg.svd(w64(a), compute_uv=False).astype(dt), dt, scale=10)
    # eigh / eigvalsh from either triangle (the other holds garbage)
    for s in [(3, 3), (4, 4), (2, 3, 3)]:
        sym = rng.uniform(-2, 2, s)
        sym = sym + np.swapaxes(sym, -1, -2)
        for uplo in ["L", "U"]:
            garbage = rng.uniform(-9, 9, s)
            mask = np.triu(np.ones(s[-2:]), 1) if uplo == "L" else np.tril(np.ones(s[-2:]), -1)
            a = np.where(mask.astype(bool), garbage, sym).astype(dt)
            w, v = np.linalg.eigh(w64(a), UPLO=uplo)
            n = s[-1]
            add("eigh_props", [a], [w.astype(dt), np.zeros(s, dt),
                                    np.broadcast_to(np.eye(n), s).astype(dt), np.abs(v).astype(dt)],
                dt, scale=10, UPLO=uplo)
            add("eigvalsh", [a], w.astype(dt), dt, scale=10, UPLO=uplo)
    # eig / eigvals: real eigenvalues, and complex pairs
    for s in [(3, 3), (2, 4, 4)]:
        a = rand(s, dt, rng)
        w = np.sort_complex(np.linalg.eigvals(w64(a)).reshape(-1, s[-1])).reshape(s[:-1])
        n = s[-1]
        # Complex64 results whatever the input: float32 tolerances.
        add("eig_props", [a], [w.astype(np.complex64), np.zeros(s, np.complex64),
                               np.ones(s[:-1], np.float32)], "float32", scale=10)
        add("eigvals", [a], w.astype(np.complex64), "float32", scale=10)
    # norms: vectors, matrices, flattened; keepdims
    x = rand((2, 3, 4), dt, rng)
    for ord_, axis in [(None, None), (None, 2), (2, 1), (1, 0), ("inf", -1), ("-inf", 2), (0, 1),
                       (3, 2), (0.5, 1), (-1, 0)]:
        o = {"inf": np.inf, "-inf": -np.inf}.get(ord_, ord_)
        for keepdims in [False, True]:
            want = np.linalg.norm(w64(x), ord=o, axis=axis, keepdims=keepdims)
            add("norm", [x], want.astype(dt), dt, scale=10, ord=ord_, axis=axis, keepdims=keepdims)
    for ord_ in [None, "fro", "nuc", 1, -1, 2, -2, "inf", "-inf"]:
        o = {"inf": np.inf, "-inf": -np.inf}.get(ord_, ord_)
        for axis in [(1, 2), (2, 0)]:
            want = np.linalg.norm(w64(x), ord=o, axis=axis)
            add("norm", [x], want.astype(dt), dt, scale=10, ord=ord_, axis=list(axis))
        m = x[0]
        add("norm", [m], np.linalg.norm(w64(m), ord=o).astype(dt), dt, scale=10, ord=ord_)
        add("norm", [m], np.linalg.norm(w64(m), ord=o, axis=(0, 1), keepdims=True).astype(dt), dt,
            scale=10, ord=ord_, axis=[0, 1], keepdims=True)
    v = rand((5,), dt, rng)
    for ord_ in [None, 1, 2, "inf", "-inf", 0, 3]:
        o = {"inf": np.inf, "-inf": -np.inf}.get(ord_, ord_)
        add("norm", [v], np.linalg.norm(w64(v), ord=o).astype(dt), dt, scale=10, ord=ord_)
    # cross, with broadcasting and another axis
    for sa, sb, axis in [((3,), (3,), -1), ((2, 3), (3,), -1), ((3, 2), (3, 1), 0), ((4, 3), (4, 3), 1)]:
        a, b = rand(sa, dt, rng), rand(sb, dt, rng)
        want = np.cross(w64(a), w64(b), axisa=axis, axisb=axis, axisc=axis)
        add("cross", [a, b], want.astype(dt), dt, scale=10, axis=axis)

# Integers: det, slogdet and norm take them (float32); cross keeps them.
ai = np.array([[2, 1], [1, 3]], dtype=np.int32)
add("det", [ai], np.float32(5.0), "float32")
add("norm", [ai], np.float32(np.linalg.norm(ai)), "float32", ord=None, axis=None, keepdims=False)
a3, b3 = np.array([1, 2, 3], np.int32), np.array([4, 5, 6], np.int32)
c.add("cross", [a3, b3], np.cross(a3, b3).astype(np.int32), axis=-1)
# complex64: eig, eigvals, and the norm of magnitudes
az = (rng.uniform(-1, 1, (3, 3)) + 1j * rng.uniform(-1, 1, (3, 3))).astype(np.complex64)
wz = np.sort_complex(np.linalg.eigvals(az.astype(np.complex128)))
add("eig_props", [az], [wz.astype(np.complex64), np.zeros((3, 3), np.complex64),
                        np.ones(3, np.float32)], "float32", scale=10)
add("eigvals", [az], wz.astype(np.complex64), "float32", scale=10)
add("norm", [az], np.float32(np.linalg.norm(az.astype(np.complex128))), "float32", ord=None,
    axis=None, keepdims=False)

# Singular matrices: NumPy's answers.
for dt in FLOATS:
    s1 = np.array([[1.0, 2.0], [2.0, 4.0]], dtype=dt)
    z = np.array([[0.0, 0.0], [0.0, 1.0]], dtype=dt)  # a zero column: LAPACK's zero pivot
    for a in [s1, z]:
        add("det", [a], np.array(0.0, dt), dt)
        add("slogdet", [a], [np.array(0.0, dt), np.array(-np.inf, dt)], dt)
        lu, piv, perm = getf2(w64(a))
        add("lu_factor", [a], [lu.astype(dt), piv], dt)
        c.error("inv", [a], "Singular matrix")
        c.error("solve", [a, np.ones(2, dt)], "Singular matrix")
    z3 = np.array([[0.0, 1.0, 2.0], [0.0, 3.0, 4.0], [0.0, 5.0, 7.0]], dtype=dt)
    lu, piv, perm = getf2(w64(z3))
    add("lu_factor", [z3], [lu.astype(dt), piv], dt)
    add("lu", [z3], [np.argsort(perm).astype(np.uint32),
                     (np.tril(lu, -1) + np.eye(3)).astype(dt), np.triu(lu).astype(dt)], dt)
    c.error("cholesky", [np.array([[1.0, 2.0], [2.0, 1.0]], dtype=dt)], "not positive definite")
    nan = np.array([[1.0, np.nan], [2.0, 3.0]], dtype=dt)
    c.error("svdvals", [nan], "did not converge")
    c.error("eigvals", [nan], "infs or NaNs")
    c.error("cholesky", [nan], "not positive definite")
    add("inv", [nan], np.full((2, 2), np.nan, dt), dt)

# Bad input: each an Err naming the op.
f = np.ones((2, 3), np.float32)
c.error("inv", [f], "inv: expected square matrices")
c.error("det", [f], "det: expected square matrices")
c.error("cholesky", [f], "cholesky: expected square matrices")
c.error("eigh_props", [f], "eigh: expected square matrices")
c.error("inv", [np.ones(3, np.float32)], "at least 2 dimensions")
c.error("inv", [np.ones((2, 2), np.int32)], "inv: arrays must have type float32 or float64")
c.error("qr_props", [np.ones((2, 2), np.float16)], "qr: arrays must have type float32 or float64")
c.error("solve", [np.ones((2, 2), np.int32), np.ones(2, np.int32)], "promote to float32 or float64")
c.error("solve", [np.eye(3, dtype=np.float32), np.ones((4, 3), np.float32)], "do not fit")
c.error("det", [np.ones((2, 2), np.complex64)], "det: complex inputs are not supported")
c.error("norm", [np.ones((2, 3), np.float32)], "norm: axis 2 is out of range", ord=None, axis=2,
        keepdims=False)
c.error("norm", [np.ones((2, 3), np.float32)], "matrix norm", ord="fro", axis=1, keepdims=False)
c.error("norm", [np.ones((2, 3), np.float32)], "invalid norm order 3", ord=3, axis=[0, 1],
        keepdims=False)
c.error("eigvalsh", [np.eye(2, dtype=np.float32)], "UPLO", UPLO="X")
c.error("cross", [np.ones(4, np.float32), np.ones(4, np.float32)], "2 or 3 elements", axis=-1)

c.save(__file__)
