"""Quantized layers and ``quantize(model)``, as ``mlx.nn``'s: the weights are stored with
MLX's affine quantization (``mx.quantize``) under the names ``weight``, ``scales`` and
``biases``, and are frozen."""

import math

import umx.core as mx
from umx.nn.module import Module
from umx.utils import tree_map_with_path


class QuantizedLinear(Module):
    """``y = x @ W.T + b`` with ``W`` quantized (``group_size``, ``bits``)."""

    def __init__(self, input_dims, output_dims, bias=True, group_size=64, bits=4):
        super().__init__()
        self.group_size = group_size
        self.bits = bits
        scale = math.sqrt(1 / input_dims)
        weight = mx.random.uniform(-scale, scale, (output_dims, input_dims))
        self.weight, self.scales, self.biases = mx.quantize(weight, group_size, bits)
        if bias:
            self.bias = mx.zeros((output_dims,))
        self.freeze()

    def _extra_repr(self):
        o, i = self.weight.shape
        i = i * 32 // self.bits
        return (f"input_dims={i}, output_dims={o}, bias={'bias' in self}, "
                f"group_size={self.group_size}, bits={self.bits}")

    def __call__(self, x):
        x = mx.quantized_matmul(x, self["weight"], self["scales"], self["biases"],
                                transpose=True, group_size=self.group_size, bits=self.bits)
        if "bias" in self:
            x = x + self["bias"]
        return x

    @classmethod
    def from_linear(cls, linear_layer, group_size=64, bits=4):
        """The quantized form of a ``Linear`` (its bias kept, trainable)."""
        output_dims, input_dims = linear_layer.weight.shape
        ql = cls(input_dims, output_dims, False, group_size, bits)
        ql.weight, ql.scales, ql.biases = mx.quantize(linear_layer.weight, group_size, bits)
        if "bias" in linear_layer:
            ql.bias = linear_layer.bias
        return ql


class QuantizedEmbedding(Module):
    """An embedding table stored quantized; rows are dequantized as they are looked up."""

    def __init__(self, num_embeddings, dims, group_size=64, bits=4):
        super().__init__()
        self.group_size = group_size
        self.bits = bits
        scale = math.sqrt(1 / dims)
        weight = mx.random.normal(shape=(num_embeddings, dims), scale=scale)
        self.weight, self.scales, self.biases = mx.quantize(weight, group_size, bits)
        self.num_embeddings = num_embeddings
        self.dims = dims
        self.freeze()

    def __call__(self, x):
        return mx.dequantize(self["weight"][x], self["scales"][x], self["biases"][x],
                             group_size=self.group_size, bits=self.bits)

    def as_linear(self, x):
        """``x @ W.T`` without dequantizing the table (weight tying)."""
        return mx.quantized_matmul(x, self["weight"], self["scales"], self["biases"],
                                   transpose=True, group_size=self.group_size, bits=self.bits)

    @classmethod
    def from_embedding(cls, embedding_layer, group_size=64, bits=4):
        """The quantized form of an ``Embedding``."""
        num_embeddings, dims = embedding_layer.weight.shape
        ql = cls(num_embeddings, dims, group_size, bits)
        ql.weight, ql.scales, ql.biases = mx.quantize(embedding_layer.weight, group_size, bits)
        return ql


def _to_quantized(m, group_size, bits):
    from umx.nn.layers import Embedding, Linear

    if isinstance(m, Linear):
        return QuantizedLinear.from_linear(m, group_size, bits)
    if isinstance(m, Embedding):
        return QuantizedEmbedding.from_embedding(m, group_size, bits)
    raise ValueError(f"Unable to quantize model of type {type(m)}")


def _quantizable(m):
    from umx.nn.layers import Embedding, Linear

    return isinstance(m, (Linear, Embedding))


def quantize(model, group_size=64, bits=4, *, class_predicate=None):
    """Replaces, in place, the ``Linear`` and ``Embedding`` layers of ``model`` for which
    ``class_predicate(path, module)`` holds (by default all) by their quantized forms.
    ``class_predicate`` may also return a dict of ``group_size`` and ``bits`` for that layer."""
    class_predicate = class_predicate or (lambda _, m: _quantizable(m))

    def maybe(path, m):
        p = class_predicate(path, m)
        if not p:
            return m
        if not _quantizable(m):
            raise ValueError(f"Unable to quantize model of type {type(m)}")
        if isinstance(p, dict):
            return _to_quantized(m, p.get("group_size", group_size), p.get("bits", bits))
        return _to_quantized(m, group_size, bits)

    leaves = model.leaf_modules()
    leaves = tree_map_with_path(maybe, leaves, is_leaf=lambda x: isinstance(x, Module))
    model.update_modules(leaves)
