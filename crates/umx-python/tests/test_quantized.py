"""Quantization from Python, as mlx.core's and mlx.nn's: quantize / dequantize /
quantized_matmul / gather_qmm, QuantizedLinear, QuantizedEmbedding and nn.quantize."""

import numpy as np
import pytest
from conftest import assert_array

import umx.core as mx
import umx.nn as nn


def rows(*shape, seed=0):
    return mx.array(np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32))


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
def test_quantize_dequantize_is_within_a_step(bits):
    w = rows(4, 128)
    q, s, b = mx.quantize(w, group_size=64, bits=bits)
    assert q.dtype == mx.uint32 and q.shape == (4, 128 * bits // 32)
    assert s.shape == b.shape == (4, 2)
    back = mx.dequantize(q, s, b, group_size=64, bits=bits)
    step = 2.0 / (2**bits - 1)
    assert float(mx.max(mx.abs(back - w))) <= step + 1e-5


def test_quantized_matmul_equals_the_dequantized_product():
    w = rows(16, 64, seed=1)
    x = rows(3, 64, seed=2)
    q, s, b = mx.quantize(w, 32, 4)
    y = mx.quantized_matmul(x, q, s, b, transpose=True, group_size=32, bits=4)
    want = x @ mx.dequantize(q, s, b, 32, 4).T
    assert_array(y, np.array(want), rtol=1e-5, atol=1e-5)
    idx = mx.array([0, 0], dtype=mx.uint32)
    g = mx.gather_qmm(x[None], q[None], s[None], b[None], rhs_indices=idx, group_size=32, bits=4)
    assert g.shape == (2, 3, 16)


def test_bad_arguments_raise_with_the_op_name():
    with pytest.raises(ValueError, match="quantize"):
        mx.quantize(rows(4, 48), group_size=32, bits=4)
    q, s, b = mx.quantize(rows(4, 64), 32, 4)
    with pytest.raises(ValueError, match="quantized_matmul"):
        mx.quantized_matmul(rows(2, 63), q, s, b, group_size=32, bits=4)


def test_quantized_layers_and_nn_quantize():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 64)
            self.proj = nn.Linear(64, 8)

        def __call__(self, ids):
            return self.proj(self.emb(ids))

    net = Net()
    ids = mx.array([1, 4, 7])
    before = net(ids)
    nn.quantize(net, group_size=32, bits=8)
    assert isinstance(net.proj, nn.QuantizedLinear)
    assert isinstance(net.emb, nn.QuantizedEmbedding)
    after = net(ids)
    assert_array(after, np.array(before), rtol=5e-2, atol=5e-2)
    trainable = net.trainable_parameters()
    assert "weight" not in trainable["proj"] and "bias" in trainable["proj"]
    assert net.emb.as_linear(rows(2, 64)).shape == (2, 10)
