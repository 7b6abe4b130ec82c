"""Neural networks (MLX's ``mlx.nn``): ``Module``, layers, activations, losses and
``value_and_grad(model, fn)``, in plain Python over ``umx.core``."""

from umx.nn import init, losses
from umx.nn.layers import *  # noqa: F401,F403
from umx.nn.layers import __all__ as _layers
from umx.nn.module import Module
from umx.nn.quantized import QuantizedEmbedding, QuantizedLinear, quantize
from umx.nn.utils import value_and_grad

__all__ = ["Module", "value_and_grad", "losses", "init", "QuantizedLinear",
           "QuantizedEmbedding", "quantize", *_layers]
