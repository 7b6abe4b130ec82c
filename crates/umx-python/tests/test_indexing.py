"""Indexing: reading with ints, slices, ellipsis, None, integer arrays; writing through the
same keys and boolean masks; `.at[...]` updates."""

import numpy as np
import pytest
from conftest import assert_array

import umx.core as mx

N = np.arange(24, dtype=np.int32).reshape(2, 3, 4)

KEYS = [
    0,
    -1,
    (1, 2),
    (1, 2, 3),
    slice(None),
    slice(1, None),
    (slice(None), slice(None, None, 2)),
    (slice(None), slice(None, None, -1)),
    (Ellipsis, 1),
    (None, 0),
    (0, None, Ellipsis, None),
    (slice(5, 10),),
    (np.int64(1), 0),
]


@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_basic_indexing_matches_numpy(key):
    assert_array(mx.array(N)[key], N[key])


ARRAY_KEYS = [
    [0, 1, 0],
    ([1, 0], [2, 2]),
    (slice(None), [2, 0]),
    (0, [1, 2], [3, 0]),
    ([0, 1], slice(None), [1, 3]),
    (Ellipsis, [0, 3]),
    ([[0], [1]], [[0, 1, 2]]),
    ([-1, 0],),
]


@pytest.mark.parametrize("key", ARRAY_KEYS, ids=repr)
def test_integer_array_indexing_matches_numpy(key):
    mkey = tuple(mx.array(k) if isinstance(k, list) else k for k in key) if isinstance(key, tuple) else mx.array(key)
    nkey = tuple(np.array(k) if isinstance(k, list) else k for k in key) if isinstance(key, tuple) else np.array(key)
    assert_array(mx.array(N)[mkey], N[nkey])


def test_lists_and_numpy_arrays_index_like_arrays():
    a = mx.array(N)
    assert_array(a[[1, 0]], N[[1, 0]])
    assert_array(a[np.array([1, 0])], N[[1, 0]])
    assert_array(a[:, mx.array(2)], N[:, 2])


def test_indices_out_of_range_raise_index_error():
    a = mx.array([1, 2, 3])
    with pytest.raises(IndexError):
        a[3]
    with pytest.raises(IndexError):
        a[-4]
    with pytest.raises(IndexError):
        a[mx.array([0, 5])]
    with pytest.raises(ValueError):
        a[0, 0]


def test_boolean_masks_are_refused_for_reading_as_in_mlx():
    with pytest.raises(ValueError, match="boolean"):
        mx.array([1, 2])[mx.array([True, False])]


SET_KEYS = [
    0,
    (1, 2, 3),
    (slice(None), 1),
    (Ellipsis, slice(None, None, 2)),
    (slice(None), [0, 2]),
    ([1, 0], [2, 1]),
    (0, slice(1, None), [0, 3]),
]


@pytest.mark.parametrize("key", SET_KEYS, ids=repr)
def test_setitem_matches_numpy(key):
    a = mx.array(N)
    n = N.copy()
    mkey = tuple(mx.array(k) if isinstance(k, list) else k for k in key) if isinstance(key, tuple) else key
    a[mkey] = -5
    n[key if not isinstance(key, tuple) else tuple(np.array(k) if isinstance(k, list) else k for k in key)] = -5
    assert_array(a, n)


def test_setitem_broadcasts_and_casts_the_value():
    a = mx.zeros((2, 3), mx.int32)
    a[:, 1:] = mx.array([7.9, 8.2])
    assert a.tolist() == [[0, 7, 8], [0, 7, 8]]
    b = mx.zeros((3,))
    b[1] = 2
    assert b.dtype == mx.float32 and b.tolist() == [0, 2, 0]


def test_setitem_with_a_boolean_mask_as_in_mlx(mlx):
    a = mx.array([1, 2, 3])
    m = mlx.array([1, 2, 3])
    a[mx.array([True, False, True])] = 0
    m[mlx.array([True, False, True])] = 0
    assert a.tolist() == m.tolist() == [0, 2, 0]
    b = mx.array(N)
    b[np.array([True, False])] = mx.arange(4)
    n = N.copy()
    n[np.array([True, False])] = np.arange(4)
    assert_array(b, n)


def test_setitem_does_not_change_other_views():
    a = mx.array([1, 2, 3])
    b = a[:]
    a[0] = 9
    assert b.tolist() == [1, 2, 3]
    assert a.tolist() == [9, 2, 3]


def test_at_updates_accumulate_repeated_indices():
    x = mx.zeros((4,))
    i = mx.array([0, 2, 0])
    assert x.at[i].add(1.0).tolist() == [2, 0, 1, 0]
    assert x.at[i].subtract(1.0).tolist() == [-2, 0, -1, 0]
    y = mx.ones((4,))
    assert y.at[i].multiply(3.0).tolist() == [9, 1, 3, 1]
    assert y.at[i].divide(2.0).tolist() == [0.25, 1, 0.5, 1]
    assert y.at[1:3].maximum(mx.array([0.0, 5.0])).tolist() == [1, 1, 5, 1]
    assert y.at[::2].minimum(-1.0).tolist() == [-1, 1, -1, 1]
    assert x.tolist() == [0, 0, 0, 0]


def test_at_matches_mlx(mlx):
    a = mx.arange(6).reshape(2, 3)
    m = mlx.arange(6).reshape(2, 3)
    ai = ([0, 1, 0], [2, 2, 2])
    assert (a.at[mx.array(ai[0]), mx.array(ai[1])].add(10).tolist()
            == m.at[mlx.array(ai[0]), mlx.array(ai[1])].add(10).tolist())
