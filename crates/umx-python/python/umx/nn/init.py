"""Parameter initializers (MLX's ``mlx.nn.init``): each returns a function of an array
giving a new array of its shape and dtype."""

import math

import umx.core as mx

__all__ = [
    "constant", "normal", "uniform", "identity", "glorot_normal", "glorot_uniform",
    "he_normal", "he_uniform",
]


def constant(value, dtype=mx.float32):
    return lambda a: mx.full(a.shape, value, dtype=dtype)


def normal(mean=0.0, std=1.0, dtype=mx.float32):
    return lambda a: mx.random.normal(shape=a.shape, dtype=dtype, loc=mean, scale=std)


def uniform(low=0.0, high=1.0, dtype=mx.float32):
    return lambda a: mx.random.uniform(low, high, a.shape, dtype=dtype)


def identity(dtype=mx.float32):
    def init(a):
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"identity: needs a square matrix, not shape {a.shape}")
        return mx.eye(a.shape[0], dtype=dtype)

    return init


def _fans(a):
    if a.ndim < 2:
        raise ValueError(f"initializer: needs at least 2 dimensions, not shape {a.shape}")
    receptive = 1
    for d in a.shape[1:-1]:
        receptive *= d
    return a.shape[-1] * receptive, a.shape[0] * receptive


def glorot_normal(dtype=mx.float32):
    def init(a, gain=1.0):
        fan_in, fan_out = _fans(a)
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        return mx.random.normal(shape=a.shape, dtype=dtype, scale=std)

    return init


def glorot_uniform(dtype=mx.float32):
    def init(a, gain=1.0):
        fan_in, fan_out = _fans(a)
        limit = gain * math.sqrt(6.0 / (fan_in + fan_out))
        return mx.random.uniform(-limit, limit, a.shape, dtype=dtype)

    return init


def he_normal(dtype=mx.float32):
    def init(a, mode="fan_in", gain=1.0):
        fan_in, fan_out = _fans(a)
        fan = fan_in if mode == "fan_in" else fan_out
        return mx.random.normal(shape=a.shape, dtype=dtype, scale=gain / math.sqrt(fan))

    return init


def he_uniform(dtype=mx.float32):
    def init(a, mode="fan_in", gain=1.0):
        fan_in, fan_out = _fans(a)
        fan = fan_in if mode == "fan_in" else fan_out
        limit = gain * math.sqrt(3.0 / fan)
        return mx.random.uniform(-limit, limit, a.shape, dtype=dtype)

    return init
