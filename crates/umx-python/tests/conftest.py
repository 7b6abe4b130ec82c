"""Shared helpers for the umx Python tests."""

import numpy as np
import pytest

import umx.core as mx


def assert_array(a, expected, dtype=None, rtol=1e-6, atol=1e-6):
    """``a`` (a umx array) equals ``expected`` (anything NumPy takes) in shape and values,
    and has ``dtype`` when given."""
    assert isinstance(a, mx.array), type(a)
    e = np.asarray(expected)
    assert a.shape == e.shape, (a.shape, e.shape)
    if dtype is not None:
        assert a.dtype == dtype, (a.dtype, dtype)
    got = np.array(a.astype(mx.float32) if a.dtype == mx.bfloat16 else a)
    if e.dtype.kind in "biu" and got.dtype.kind in "biu":
        np.testing.assert_array_equal(got, e)
    else:
        np.testing.assert_allclose(got, e, rtol=rtol, atol=atol, equal_nan=True)


@pytest.fixture
def mlx():
    """MLX's ``mlx.core`` on the CPU, to compare behaviour against (skips without MLX)."""
    m = pytest.importorskip("mlx.core")
    m.set_default_device(m.cpu)
    return m
