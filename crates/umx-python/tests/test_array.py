"""The array class: construction and dtypes, properties, conversions, printing."""

import numpy as np
import pytest
from conftest import assert_array

import umx.core as mx


def test_python_scalars_take_mlx_default_dtypes():
    assert mx.array(True).dtype == mx.bool_
    assert mx.array(3).dtype == mx.int32
    assert mx.array(2**40).dtype == mx.int64
    assert mx.array(1.5).dtype == mx.float32
    assert mx.array(1 + 2j).dtype == mx.complex64


def test_nested_lists_promote_their_elements():
    assert_array(mx.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]], mx.int32)
    assert mx.array([1, 2.0]).dtype == mx.float32
    assert mx.array([True, 2]).dtype == mx.int32
    assert mx.array([1, 2**40]).dtype == mx.int64
    assert mx.array([1, 2j]).dtype == mx.complex64
    assert mx.array((1.0, 2.0)).shape == (2,)


def test_empty_lists_are_float32():
    assert (mx.array([]).shape, mx.array([]).dtype) == ((0,), mx.float32)
    assert mx.array([[]]).shape == (1, 0)


def test_ragged_lists_are_refused():
    with pytest.raises(ValueError, match="non-uniform"):
        mx.array([[1], [2, 3]])


def test_lists_of_arrays_are_stacked_with_scalars_weak():
    a = mx.array([mx.array([1, 2], mx.int8), mx.array([3, 4], mx.int8)])
    assert_array(a, [[1, 2], [3, 4]], mx.int8)
    assert mx.array([mx.array(1.0, mx.float16), 2]).dtype == mx.float16
    assert mx.array([mx.array(1), 2.5]).dtype == mx.float32


def test_dtype_argument_converts_values():
    assert_array(mx.array([1.7, -2.5], mx.int32), [1, -2], mx.int32)
    assert_array(mx.array([0, 2], mx.bool_), [False, True], mx.bool_)
    a = mx.array(0.1, mx.float64)
    assert a.dtype == mx.float64 and a.item() == 0.1


def test_numpy_arrays_keep_their_dtype_but_doubles_narrow():
    for dt in ["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32",
               "int64", "float16", "float32", "complex64"]:
        n = np.arange(6).reshape(2, 3).astype(dt)
        a = mx.array(n)
        assert a.dtype == getattr(mx, "bool_" if dt == "bool" else dt)
        np.testing.assert_array_equal(np.array(a), n)
    # MLX's rule: float64 from NumPy becomes float32 unless asked for.
    assert mx.array(np.array([1.5])).dtype == mx.float32
    assert mx.array(np.array([1.5]), mx.float64).dtype == mx.float64
    assert mx.array(np.array([1 + 1j])).dtype == mx.complex64


def test_numpy_views_and_scalars_convert():
    n = np.arange(12, dtype=np.int32).reshape(3, 4)
    assert_array(mx.array(n[:, ::2]), n[:, ::2])
    assert_array(mx.array(n.T), n.T)
    assert_array(mx.array(np.float32(2.5)), 2.5, mx.float32)
    big = np.arange(4, dtype=">i4")
    assert_array(mx.array(big), [0, 1, 2, 3], mx.int32)


def test_np_array_of_an_array_shares_the_evaluated_data():
    a = mx.arange(6).reshape(2, 3)
    n = np.asarray(a)
    assert n.dtype == np.int32 and n.shape == (2, 3)
    assert not n.flags.writeable
    c = np.array(a)
    c[0, 0] = 7  # a copy
    assert a[0, 0].item() == 0
    t = np.array(a.T)
    np.testing.assert_array_equal(t, np.arange(6).reshape(2, 3).T)
    np.testing.assert_array_equal(np.array(a[:, ::-1]), np.arange(6).reshape(2, 3)[:, ::-1])
    assert np.array(mx.array(3.0)).shape == ()


def test_bfloat16_has_no_numpy_dtype():
    with pytest.raises(ValueError, match="bfloat16"):
        np.array(mx.array([1.0], mx.bfloat16))


def test_properties():
    a = mx.zeros((2, 3, 4), mx.float16)
    assert a.shape == (2, 3, 4)
    assert a.ndim == 3 and a.size == 24
    assert a.itemsize == 2 and a.nbytes == 48
    assert a.dtype == mx.float16
    assert a.T.shape == (4, 3, 2)
    assert a.mT.shape == (2, 4, 3)
    assert len(a) == 2
    with pytest.raises(TypeError):
        len(mx.array(1))


def test_item_and_tolist_give_python_scalars():
    assert mx.array(3).item() == 3 and isinstance(mx.array(3).item(), int)
    assert isinstance(mx.array(2.5).item(), float)
    assert mx.array(True).item() is True
    assert mx.array(1 + 2j).item() == 1 + 2j
    assert mx.array([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert mx.array([1.5, 2], mx.float16).tolist() == [1.5, 2.0]
    assert mx.array(2**63 + 1, mx.uint64).item() == 2**63 + 1
    assert mx.array(4).tolist() == 4
    with pytest.raises(ValueError):
        mx.array([1, 2]).item()


def test_scalar_conversions():
    assert float(mx.array(2.5)) == 2.5
    assert int(mx.array(2.5)) == 2
    assert bool(mx.array(0)) is False
    assert [1, 2, 3][mx.array(1)] == 2
    with pytest.raises(ValueError):
        bool(mx.array([1, 2]))


def test_iteration_goes_along_the_first_axis():
    rows = list(mx.array([[1, 2], [3, 4]]))
    assert len(rows) == 2
    assert_array(rows[1], [3, 4])
    with pytest.raises(TypeError):
        iter(mx.array(1))


def test_repr_prints_like_mlx(mlx):
    for v, dt in [([1, 2, 3], None), ([[1.5, 2], [3, 4]], None), ([True, False], None),
                  (3, None), ([1.5, -2.25], "float16"), (7, "int8")]:
        a = mx.array(v, getattr(mx, dt) if dt else None)
        m = mlx.array(v, getattr(mlx, dt) if dt else None)
        assert repr(a) == repr(m)
    assert repr(mx.arange(2000)) == repr(mlx.arange(2000))
    n = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    for v in [n, n * 1e6, n * 1e-6, n.astype(np.float16), np.arange(60).reshape(3, 4, 5),
              np.array([1 + 2j, -3.5 - 0.25j], np.complex64), np.zeros((2, 0)),
              np.zeros((0, 3)), np.zeros((1, 2, 0)), np.arange(1200).reshape(2, 600),
              np.arange(1200).reshape(600, 2), np.array([-0.0, 1e20, 1e-5])]:
        assert repr(mx.array(v)) == repr(mlx.array(v))


def test_dtypes_print_and_compare():
    assert repr(mx.float32) == "umx.core.float32"
    assert mx.float32 == mx.float32 and mx.float32 != mx.float16
    assert mx.int64.size == 8
    assert len({mx.float32, mx.float32, mx.int8}) == 2


def test_issubdtype_follows_the_category_tree():
    assert mx.issubdtype(mx.float16, mx.floating)
    assert mx.issubdtype(mx.float32, mx.inexact)
    assert mx.issubdtype(mx.int8, mx.signedinteger)
    assert mx.issubdtype(mx.uint8, mx.integer)
    assert not mx.issubdtype(mx.uint8, mx.signedinteger)
    assert mx.issubdtype(mx.complex64, mx.number)
    assert mx.issubdtype(mx.floating, mx.inexact)
    assert not mx.issubdtype(mx.bool_, mx.number)


def test_finfo_and_iinfo():
    assert mx.finfo(mx.float32).max == float(np.finfo(np.float32).max)
    assert mx.finfo(mx.float16).eps == float(np.finfo(np.float16).eps)
    assert mx.finfo(mx.bfloat16).eps == 2.0**-7
    assert (mx.iinfo(mx.int8).min, mx.iinfo(mx.int8).max) == (-128, 127)
    assert mx.iinfo(mx.uint64).max == 2**64 - 1
    with pytest.raises(ValueError):
        mx.iinfo(mx.float32)


def test_astype_and_copy():
    a = mx.array([1.7, -0.2])
    assert_array(a.astype(mx.int32), [1, 0], mx.int32)
    assert_array(a.astype(mx.bool_), [True, True], mx.bool_)
    import copy

    b = copy.copy(a)
    assert_array(b, [1.7, -0.2])


def test_arrays_hash_by_identity():
    a = mx.array(1)
    b = mx.array(1)
    assert hash(a) != hash(b)
    assert len({a, b}) == 2
