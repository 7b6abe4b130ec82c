"""Conversions between MLX and NumPy arrays for the scripts that take reference values from
MLX itself (creation, random). Needs mlx (CPU) besides numpy."""
import mlx.core as mx
import numpy as np

from common import bfloat16

MX = {"complex64": mx.complex64, "float32": mx.float32, "float16": mx.float16,
      "bfloat16": mx.bfloat16, "int32": mx.int32, "int16": mx.int16, "uint8": mx.uint8,
      "uint32": mx.uint32, "bool": mx.bool_, "int64": mx.int64}


def np_of(a):
    """An MLX array as NumPy (bfloat16 through ml_dtypes)."""
    if a.dtype == mx.bfloat16:
        return np.array(a.astype(mx.float32)).astype(bfloat16)
    return np.array(a)


def mx_of(a):
    """A NumPy array as MLX (bfloat16 through float32)."""
    a = np.asarray(a)
    if a.dtype == bfloat16:
        return mx.array(a.astype(np.float32)).astype(mx.bfloat16)
    return mx.array(a)
