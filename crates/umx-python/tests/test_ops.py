"""Operators and functions against NumPy: promotion with Python scalars, element-wise math,
reductions, shape ops, creation, linear algebra, sorting."""

import math

import numpy as np
import pytest
from conftest import assert_array

import umx.core as mx

X = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -6.0]], dtype=np.float32)


def test_python_scalars_are_weak():
    h = mx.array([1, 2], mx.float16)
    assert (h * 2.0).dtype == mx.float16
    assert (2.0 * h).dtype == mx.float16
    assert (mx.array([1, 2]) + 2.5).dtype == mx.float32
    assert (mx.array([1, 2], mx.uint8) + 3).dtype == mx.uint8
    assert (mx.array([True]) + 2).dtype == mx.int32
    assert (mx.array([1], mx.int8) + (1 + 2j)).dtype == mx.complex64
    assert (mx.array([1], mx.int64) + 2**40).tolist() == [2**40 + 1]
    assert mx.add(2, 3).dtype == mx.int32


def test_array_promotion_follows_mlx():
    cases = [
        (mx.uint8, mx.int8, mx.int16),
        (mx.uint32, mx.int32, mx.int64),
        (mx.uint64, mx.int8, mx.float32),
        (mx.int64, mx.float16, mx.float16),
        (mx.float16, mx.bfloat16, mx.float32),
        (mx.float32, mx.float64, mx.float64),
        (mx.bool_, mx.int8, mx.int8),
    ]
    for a, b, want in cases:
        assert (mx.zeros((1,), a) + mx.zeros((1,), b)).dtype == want
        assert mx.result_type(a, b) == want


def test_operators_match_numpy():
    a, b = mx.array(X), mx.array(X[::-1])
    na, nb = X, X[::-1]
    assert_array(a + b, na + nb)
    assert_array(a - b, na - nb)
    assert_array(a * b, na * nb)
    assert_array(a / b, na / nb)
    assert_array(a // b, na // nb)
    assert_array(a % b, na % nb)
    assert_array(a**2, na**2)
    assert_array(2**a, 2**na, rtol=1e-5)
    assert_array(-a, -na)
    assert_array(abs(a), abs(na))
    assert_array(1 - a, 1 - na)
    assert_array(3 / a, 3 / na)
    assert_array(a @ b.T, na @ nb.T, rtol=1e-5)


def test_integer_operators_match_python():
    a = mx.array([-7, 7, 5])
    b = mx.array([2, -3, 5])
    assert (a // b).tolist() == [-7 // 2, 7 // -3, 1]
    assert (a % b).tolist() == [-7 % 2, 7 % -3, 0]
    assert (a & 3).tolist() == [-7 & 3, 7 & 3, 5 & 3]
    assert (a | 8).tolist() == [-7 | 8, 7 | 8, 5 | 8]
    assert (a ^ b).tolist() == [-7 ^ 2, 7 ^ -3, 0]
    assert (mx.array([1, 2]) << 3).tolist() == [8, 16]
    assert (mx.array([16, -16]) >> 2).tolist() == [4, -4]
    assert (~mx.array([0, 5])).tolist() == [-1, -6]
    assert (~mx.array([True, False])).tolist() == [False, True]
    assert divmod(mx.array([7, -7]), 3)[1].tolist() == [1, 2]


def test_in_place_operators_rebind_the_same_object():
    a = mx.array([1.0, 2.0])
    alias = a
    a += 1
    a *= 2
    a -= 1
    a /= 2
    assert alias is a
    assert_array(a, [1.5, 2.5])
    i = mx.array([5, 6])
    i //= 2
    i <<= 1
    assert i.tolist() == [4, 6]


def test_comparisons():
    a = mx.array([1, 2, 3])
    assert (a == 2).tolist() == [False, True, False]
    assert (a != 2).tolist() == [True, False, True]
    assert (a < 2).tolist() == [True, False, False]
    assert (a <= 2).tolist() == [True, True, False]
    assert (2 < a).tolist() == [False, False, True]
    assert (a >= mx.array([3, 2, 1])).tolist() == [False, True, True]
    assert (a == None) is False  # noqa: E711 (not an operand: Python's fallback)
    assert (a == "x") is False


def test_unary_functions_match_numpy():
    x = np.array([0.1, 0.5, 0.9], dtype=np.float32)
    a = mx.array(x)
    for name, ref in [("exp", np.exp), ("log", np.log), ("sin", np.sin), ("cos", np.cos),
                      ("tan", np.tan), ("tanh", np.tanh), ("sqrt", np.sqrt),
                      ("arcsin", np.arcsin), ("arccos", np.arccos), ("arctan", np.arctan),
                      ("sinh", np.sinh), ("cosh", np.cosh), ("arcsinh", np.arcsinh),
                      ("arctanh", np.arctanh), ("log1p", np.log1p), ("expm1", np.expm1),
                      ("log2", np.log2), ("log10", np.log10), ("square", np.square),
                      ("reciprocal", np.reciprocal), ("floor", np.floor), ("ceil", np.ceil),
                      ("sign", np.sign), ("negative", np.negative), ("abs", np.abs),
                      ("degrees", np.degrees), ("radians", np.radians)]:
        assert_array(getattr(mx, name)(a), ref(x), rtol=1e-5, atol=1e-6)
    assert_array(mx.rsqrt(a), 1 / np.sqrt(x), rtol=1e-5)
    assert_array(mx.sigmoid(a), 1 / (1 + np.exp(-x)), rtol=1e-5)
    assert_array(mx.erf(a), [math.erf(v) for v in x], rtol=1e-5)
    assert_array(mx.erfinv(mx.erf(a)), x, rtol=1e-4)
    assert mx.sqrt(mx.array([4, 9])).dtype == mx.float32


def test_method_forms_agree_with_functions():
    a = mx.array(X)
    assert_array(a.exp(), np.exp(X), rtol=1e-5)
    assert_array(a.abs(), np.abs(X))
    assert_array(a.square(), X**2)
    assert_array(a.round(), np.round(X))
    assert_array(a.sum(axis=1), X.sum(axis=1))


def test_binary_functions_match_numpy():
    a, b = mx.array(X), mx.array(X[::-1])
    na, nb = X, X[::-1]
    assert_array(mx.maximum(a, b), np.maximum(na, nb))
    assert_array(mx.minimum(a, 0), np.minimum(na, 0))
    assert_array(mx.arctan2(a, b), np.arctan2(na, nb), rtol=1e-5)
    assert_array(mx.logaddexp(a, b), np.logaddexp(na, nb), rtol=1e-5)
    assert_array(mx.power(mx.abs(a), 0.5), np.abs(na) ** 0.5, rtol=1e-5)
    assert_array(mx.logical_and(a > 0, b > 0), (na > 0) & (nb > 0))
    assert_array(mx.logical_or(a > 0, b > 0), (na > 0) | (nb > 0))
    assert_array(mx.logical_xor(a > 0, b > 0), (na > 0) ^ (nb > 0))
    assert_array(mx.logical_not(a > 0), ~(na > 0))
    assert_array(mx.where(a > 0, a, 0.0), np.where(na > 0, na, 0))
    assert_array(mx.clip(a, -1, 2), np.clip(na, -1, 2))
    assert_array(mx.clip(a, None, 2), np.minimum(na, 2))
    assert mx.allclose(a, a + 1e-9).item()
    assert_array(mx.isclose(a, b), np.isclose(na, nb))
    assert mx.array_equal(a, mx.array(X)).item()
    assert not mx.array_equal(a, b).item()


def test_float_predicates_and_nan_to_num():
    a = mx.array([1.0, math.nan, math.inf, -math.inf])
    assert mx.isnan(a).tolist() == [False, True, False, False]
    assert mx.isinf(a).tolist() == [False, False, True, True]
    assert mx.isposinf(a).tolist() == [False, False, True, False]
    assert mx.isneginf(a).tolist() == [False, False, False, True]
    assert mx.isfinite(a).tolist() == [True, False, False, False]
    assert_array(mx.nan_to_num(a, posinf=5.0, neginf=-5.0), [1, 0, 5, -5])


@pytest.mark.parametrize("name", ["sum", "prod", "max", "min", "mean", "all", "any"])
def test_reductions_match_numpy(name):
    a = mx.array(X)
    ref = {"all": np.all, "any": np.any}.get(name, getattr(np, name))
    assert_array(getattr(mx, name)(a), ref(X), rtol=1e-5)
    assert_array(getattr(mx, name)(a, axis=0), ref(X, axis=0), rtol=1e-5)
    assert_array(getattr(mx, name)(a, axis=-1, keepdims=True), ref(X, axis=-1, keepdims=True),
                 rtol=1e-5)
    assert_array(getattr(mx, name)(a, axis=(0, 1)), ref(X, axis=(0, 1)), rtol=1e-5)
    assert_array(getattr(a, name)(1), ref(X, axis=1), rtol=1e-5)


def test_reduction_dtypes_follow_mlx():
    i8 = mx.array([1, 2, 3], mx.int8)
    assert mx.sum(i8).dtype == mx.int32
    assert mx.sum(mx.array([1, 2], mx.uint8)).dtype == mx.uint32
    assert mx.mean(i8).dtype == mx.float32
    assert mx.max(i8).dtype == mx.int8
    assert mx.argmax(i8).dtype == mx.uint32
    assert mx.sum(mx.array([True, True, False])).item() == 2


def test_statistics_match_numpy():
    a = mx.array(X)
    assert_array(mx.var(a), np.var(X), rtol=1e-5)
    assert_array(mx.std(a, axis=0, ddof=1), np.std(X, axis=0, ddof=1), rtol=1e-5)
    assert_array(a.var(axis=1, keepdims=True), X.var(axis=1, keepdims=True), rtol=1e-5)
    lse = np.log(np.sum(np.exp(X), axis=1))
    assert_array(mx.logsumexp(a, axis=1), lse, rtol=1e-5)
    e = np.exp(X - X.max(axis=1, keepdims=True))
    assert_array(mx.softmax(a, axis=1), e / e.sum(axis=1, keepdims=True), rtol=1e-5)
    assert_array(mx.argmax(a, axis=1), np.argmax(X, axis=1))
    assert_array(mx.argmin(a), np.argmin(X))
    assert_array(mx.median(a, axis=1), np.median(X, axis=1))
    assert_array(mx.count_nonzero(mx.array([0, 1, 2])), 2)


def test_scans_match_numpy():
    a = mx.array(X)
    assert_array(mx.cumsum(a, axis=1), np.cumsum(X, axis=1), rtol=1e-5)
    assert_array(mx.cumprod(a, axis=0), np.cumprod(X, axis=0), rtol=1e-5)
    assert_array(mx.cummax(a, axis=1), np.maximum.accumulate(X, axis=1))
    assert_array(mx.cummin(a, axis=1), np.minimum.accumulate(X, axis=1))
    assert_array(mx.cumsum(a), np.cumsum(X), rtol=1e-5)
    assert_array(mx.cumsum(a, axis=1, reverse=True), np.cumsum(X[:, ::-1], axis=1)[:, ::-1])
    assert_array(mx.cumsum(a, axis=1, inclusive=False),
                 np.cumsum(X, axis=1) - X, rtol=1e-5, atol=1e-6)
    assert_array(a.cumsum(1), np.cumsum(X, axis=1), rtol=1e-5)


def test_shape_ops_match_numpy():
    n = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    a = mx.array(n)
    assert_array(a.reshape(4, 6), n.reshape(4, 6))
    assert_array(a.reshape((-1, 4)), n.reshape(-1, 4))
    assert_array(mx.reshape(a, [6, -1]), n.reshape(6, -1))
    assert_array(a.transpose(), n.transpose())
    assert_array(a.transpose(1, 0, 2), n.transpose(1, 0, 2))
    assert_array(mx.transpose(a, [2, 0, 1]), n.transpose(2, 0, 1))
    assert_array(a.swapaxes(0, 2), n.swapaxes(0, 2))
    assert_array(a.moveaxis(0, -1), np.moveaxis(n, 0, -1))
    assert_array(a.flatten(), n.flatten())
    assert_array(mx.flatten(a, 1), n.reshape(2, 12))
    assert_array(mx.unflatten(a, 2, (2, 2)), n.reshape(2, 3, 2, 2))
    assert_array(mx.expand_dims(a, (0, 2)).squeeze(), n)
    assert mx.expand_dims(a, -1).shape == (2, 3, 4, 1)
    assert_array(mx.squeeze(mx.zeros((1, 3, 1)), 0), np.zeros((3, 1)))
    assert_array(mx.broadcast_to(mx.array([1, 2]), (3, 2)), np.broadcast_to([1, 2], (3, 2)))
    assert mx.broadcast_shapes((3, 1), (4,)) == (3, 4) or mx.broadcast_shapes((3, 1), (4,)) == [3, 4]
    b1, b2 = mx.broadcast_arrays(mx.zeros((3, 1)), mx.zeros((4,)))
    assert b1.shape == b2.shape == (3, 4)


def test_joining_and_splitting_match_numpy():
    n = np.arange(12, dtype=np.int32).reshape(3, 4)
    a = mx.array(n)
    assert_array(mx.concatenate([a, a], axis=1), np.concatenate([n, n], axis=1))
    assert_array(mx.concatenate([a, a], axis=None), np.concatenate([n.ravel(), n.ravel()]))
    assert_array(mx.concat([a, a]), np.concatenate([n, n]))
    assert_array(mx.stack([a, a], axis=1), np.stack([n, n], axis=1))
    parts = mx.split(a, 2, axis=1)
    assert len(parts) == 2 and all(p.shape == (3, 2) for p in parts)
    parts = a.split([1, 3], axis=1)
    for p, q in zip(parts, np.split(n, [1, 3], axis=1)):
        assert_array(p, q)
    assert [u.shape for u in mx.unstack(a)] == [(4,)] * 3
    assert_array(mx.tile(a, (2, 1)), np.tile(n, (2, 1)))
    assert_array(mx.repeat(a, 2, axis=0), np.repeat(n, 2, axis=0))
    assert_array(mx.repeat(a, 2), np.repeat(n, 2))
    assert_array(mx.pad(a, 1), np.pad(n, 1))
    assert_array(mx.pad(a, ((0, 1), (2, 0)), constant_values=9),
                 np.pad(n, ((0, 1), (2, 0)), constant_values=9))
    assert_array(mx.pad(a, (1, 2), mode="edge"), np.pad(n, (1, 2), mode="edge"))
    assert_array(mx.roll(a, 1, axis=1), np.roll(n, 1, axis=1))
    assert_array(mx.roll(a, 5), np.roll(n, 5))
    assert_array(mx.flip(a, 0), np.flip(n, 0))
    assert_array(mx.atleast_2d(mx.array(1)), np.atleast_2d(1))
    assert len(mx.atleast_1d(mx.array(1), mx.array([1, 2]))) == 2


def test_creation_matches_numpy():
    assert_array(mx.arange(5), np.arange(5), mx.int32)
    assert_array(mx.arange(1, 7, 2), np.arange(1, 7, 2))
    assert_array(mx.arange(0.0, 1.0, 0.25), np.arange(0, 1, 0.25), mx.float32)
    assert_array(mx.arange(3, dtype=mx.float16), [0, 1, 2], mx.float16)
    assert_array(mx.linspace(0, 1, 5), np.linspace(0, 1, 5))
    assert_array(mx.linspace(0, 1, 4, endpoint=False), np.linspace(0, 1, 4, endpoint=False))
    assert_array(mx.zeros((2, 3)), np.zeros((2, 3)), mx.float32)
    assert_array(mx.ones(3, mx.int8), np.ones(3), mx.int8)
    assert_array(mx.full((2, 2), 7), np.full((2, 2), 7), mx.int32)
    assert_array(mx.full((2, 2), 1.5, mx.float16), np.full((2, 2), 1.5), mx.float16)
    assert_array(mx.full((2, 3), mx.array([1, 2, 3])), np.tile([1, 2, 3], (2, 1)))
    a = mx.array([[1, 2]], mx.int8)
    assert_array(mx.zeros_like(a), [[0, 0]], mx.int8)
    assert_array(mx.ones_like(a, mx.float32), [[1, 1]], mx.float32)
    assert_array(mx.full_like(a, 3), [[3, 3]], mx.int8)
    assert_array(mx.eye(3, 4, k=1), np.eye(3, 4, k=1))
    assert_array(mx.identity(2), np.identity(2))
    assert_array(mx.tri(3, k=-1), np.tri(3, k=-1))
    m = np.arange(9, dtype=np.float32).reshape(3, 3)
    assert_array(mx.tril(mx.array(m)), np.tril(m))
    assert_array(mx.triu(mx.array(m), 1), np.triu(m, 1))
    xs, ys = mx.meshgrid(mx.arange(3), mx.arange(2))
    nx, ny = np.meshgrid(np.arange(3), np.arange(2))
    assert_array(xs, nx)
    assert_array(ys, ny)


def test_linear_algebra_matches_numpy():
    rng = np.random.default_rng(0)
    p = rng.standard_normal((3, 4)).astype(np.float32)
    q = rng.standard_normal((4, 5)).astype(np.float32)
    c = rng.standard_normal((3, 5)).astype(np.float32)
    a, b = mx.array(p), mx.array(q)
    assert_array(mx.matmul(a, b), p @ q, rtol=1e-5, atol=1e-5)
    assert_array(mx.addmm(mx.array(c), a, b, alpha=2.0, beta=0.5), 0.5 * c + 2 * (p @ q),
                 rtol=1e-5, atol=1e-5)
    assert_array(mx.inner(a, a), np.inner(p, p), rtol=1e-5, atol=1e-5)
    assert_array(mx.outer(a[0], b[0]), np.outer(p[0], q[0]), rtol=1e-5)
    assert_array(mx.tensordot(a, b, axes=1), np.tensordot(p, q, axes=1), rtol=1e-5, atol=1e-5)
    assert_array(mx.tensordot(a, a, axes=([1], [1])), np.tensordot(p, p, axes=([1], [1])),
                 rtol=1e-5, atol=1e-5)
    assert_array(mx.einsum("ij,jk->ik", a, b), np.einsum("ij,jk->ik", p, q), rtol=1e-5,
                 atol=1e-5)
    assert_array(mx.diag(a), np.diag(p))
    assert_array(mx.diagonal(a, 1), np.diagonal(p, 1))
    assert_array(mx.trace(a), np.trace(p), rtol=1e-5)


def test_sorting_matches_numpy():
    n = np.array([[3, 1, 2], [9, 7, 8]], dtype=np.int32)
    a = mx.array(n)
    assert_array(mx.sort(a), np.sort(n))
    assert_array(mx.sort(a, axis=0), np.sort(n, axis=0))
    assert_array(mx.sort(a, axis=None), np.sort(n, axis=None))
    assert_array(mx.argsort(a), np.argsort(n))
    assert_array(mx.sort(mx.topk(a, 2)), np.sort(n)[:, 1:])
    p = mx.partition(a, 1)
    assert (np.array(p)[:, 1] == np.sort(n)[:, 1]).all()
    assert_array(mx.searchsorted(mx.array([1, 3, 5]), mx.array([0, 3, 6])),
                 np.searchsorted([1, 3, 5], [0, 3, 6]))


def test_take_and_along_axis_match_numpy():
    n = np.arange(12, dtype=np.int32).reshape(3, 4)
    a = mx.array(n)
    idx = np.array([[2], [0], [1]])
    assert_array(mx.take(a, mx.array([2, 0]), axis=1), np.take(n, [2, 0], axis=1))
    assert_array(mx.take(a, mx.array([5, 0])), np.take(n, [5, 0]))
    assert_array(mx.take_along_axis(a, mx.array(idx), axis=1),
                 np.take_along_axis(n, idx, axis=1))
    m = n.copy()
    np.put_along_axis(m, idx, 0, axis=1)
    assert_array(mx.put_along_axis(a, mx.array(idx), mx.array(0), axis=1), m)


def test_convolution_matches_a_direct_sum():
    x = np.arange(8, dtype=np.float32).reshape(1, 8, 1)
    w = np.array([1, 0, -1], dtype=np.float32).reshape(1, 3, 1)
    y = mx.conv1d(mx.array(x), mx.array(w), padding=1)
    xp = np.pad(x[0, :, 0], 1)
    ref = np.array([xp[i] - xp[i + 2] for i in range(8)])
    assert_array(y.reshape(-1), ref)
    img = mx.ones((1, 4, 4, 2))
    k = mx.ones((3, 2, 2, 2))
    assert mx.conv2d(img, k, stride=2).shape == (1, 2, 2, 3)
    assert_array(mx.conv2d(img, k)[0, 0, 0], [8, 8, 8])


def test_stream_argument_is_honoured():
    s = mx.default_stream(mx.cpu)
    assert s.device == mx.default_device() or s.device == mx.Device(mx.cpu)
    assert_array(mx.add(1, 2, stream=mx.cpu), 3)
    assert_array(mx.sum(mx.array([1, 2]), stream=s), 3)
    with mx.stream(mx.cpu):
        assert_array(mx.array([1.0]) * 2, [2.0])


def test_new_streams_take_work_and_hand_results_across():
    dev = mx.default_device()
    s1, s2 = mx.new_stream(dev), mx.new_stream(dev)
    assert s1.index != s2.index and s1.index > 0 and s1.device == dev
    x = mx.arange(1000, dtype=mx.float32)
    with mx.stream(s1):
        y = (x * 2 + 1) * 0.5
    z = mx.sum(y, stream=s2)
    mx.synchronize(s2)
    assert z.item() == float(np.sum((np.arange(1000, dtype=np.float32) * 2 + 1) * 0.5))


def test_eval_takes_trees_and_async_eval_returns():
    a = mx.array([1.0]) + 1
    b = {"x": [mx.array(2.0) * 3]}
    mx.eval(a, b)
    mx.async_eval(a * 2)
    assert a.item() == 2.0
    assert b["x"][0].item() == 6.0
