"""Errors: the core's messages in the Python exception MLX raises."""

import pytest

import umx.core as mx


def test_shape_errors_are_value_errors_with_the_core_message():
    with pytest.raises(ValueError, match="add: shapes \\(2,\\) and \\(3,\\)"):
        mx.array([1, 2]) + mx.array([1, 2, 3])
    with pytest.raises(ValueError, match="reshape"):
        mx.array([1, 2]).reshape(3)
    with pytest.raises(ValueError, match="matmul"):
        mx.matmul(mx.ones((2, 3)), mx.ones((2, 3)))
    with pytest.raises(ValueError):
        mx.sum(mx.array([1, 2]), axis=3)


def test_dtype_errors_are_value_errors():
    with pytest.raises(ValueError):
        mx.array([1.0]) << 1
    with pytest.raises(ValueError):
        mx.random.normal((2,), dtype=mx.int32)


def test_unsupported_operands_raise_like_mlx():
    with pytest.raises(ValueError, match="Cannot perform addition"):
        mx.array([1, 2]) + "a"


def test_wrong_argument_types_are_type_errors():
    with pytest.raises(TypeError):
        mx.array(object())
    with pytest.raises(TypeError):
        mx.zeros("abc")
    with pytest.raises(TypeError):
        mx.array([1])[1.5]
    with pytest.raises(TypeError):
        mx.sum(mx.array([1]), axis="x")


def test_index_errors():
    with pytest.raises(IndexError):
        mx.array([[1, 2]])[1]
    with pytest.raises(IndexError):
        mx.take(mx.array([1, 2]), mx.array([7]))
