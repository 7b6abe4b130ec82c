"""Layers and activations (a subset of MLX's ``mlx.nn``)."""

import math

import umx.core as mx
from umx.nn.module import Module

__all__ = [
    # activations
    "relu", "relu6", "leaky_relu", "elu", "gelu", "gelu_approx", "gelu_fast_approx", "silu",
    "sigmoid", "tanh", "softplus", "softsign", "mish", "log_sigmoid", "softmax",
    "log_softmax", "hardswish", "celu", "selu", "glu",
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Softplus",
    "Softsign", "Mish", "LogSigmoid", "Softmax", "LogSoftmax", "Hardswish", "CELU", "SELU",
    "GLU",
    # layers
    "Identity", "Linear", "Bilinear", "Sequential", "Dropout", "Embedding", "LayerNorm",
    "RMSNorm", "Conv1d", "Conv2d",
]

# ---- activations ------------------------------------------------------------------------


def relu(x):
    return mx.maximum(x, 0)


def relu6(x):
    return mx.minimum(mx.maximum(x, 0), 6.0)


def leaky_relu(x, negative_slope=0.01):
    return mx.maximum(negative_slope * x, x)


def elu(x, alpha=1.0):
    return mx.where(x > 0, x, alpha * (mx.exp(x) - 1))


def celu(x, alpha=1.0):
    return mx.maximum(x, 0.0) + alpha * (mx.exp(mx.minimum(x, 0.0) / alpha) - 1)


def selu(x):
    return elu(x, 1.67326) * 1.0507


def gelu(x):
    return x * (1 + mx.erf(x / math.sqrt(2))) / 2


def gelu_approx(x):
    return 0.5 * x * (1 + mx.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def gelu_fast_approx(x):
    return x * mx.sigmoid(1.702 * x)


def silu(x):
    return x * mx.sigmoid(x)


def sigmoid(x):
    return mx.sigmoid(x)


def tanh(x):
    return mx.tanh(x)


def softplus(x):
    return mx.logaddexp(x, 0)


def softsign(x):
    return x / (1 + mx.abs(x))


def mish(x):
    return x * mx.tanh(softplus(x))


def log_sigmoid(x):
    return -softplus(-x)


def softmax(x, axis=-1):
    return mx.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return x - mx.logsumexp(x, axis=axis, keepdims=True)


def hardswish(x):
    return x * mx.minimum(mx.maximum(x + 3, 0), 6) / 6


def glu(x, axis=-1):
    a, b = mx.split(x, 2, axis=axis)
    return a * mx.sigmoid(b)


def _activation(name, fn, **defaults):
    def __init__(self, **kwargs):
        Module.__init__(self)
        for k, v in {**defaults, **kwargs}.items():
            object.__setattr__(self, k, v)

    def __call__(self, x):
        return fn(x, **{k: getattr(self, k) for k in defaults})

    return type(name, (Module,), {"__init__": __init__, "__call__": __call__})


ReLU = _activation("ReLU", relu)
ReLU6 = _activation("ReLU6", relu6)
LeakyReLU = _activation("LeakyReLU", leaky_relu, negative_slope=0.01)
ELU = _activation("ELU", elu, alpha=1.0)
CELU = _activation("CELU", celu, alpha=1.0)
SELU = _activation("SELU", selu)
SiLU = _activation("SiLU", silu)
Sigmoid = _activation("Sigmoid", sigmoid)
Tanh = _activation("Tanh", tanh)
Softplus = _activation("Softplus", softplus)
Softsign = _activation("Softsign", softsign)
Mish = _activation("Mish", mish)
LogSigmoid = _activation("LogSigmoid", log_sigmoid)
Softmax = _activation("Softmax", softmax, axis=-1)
LogSoftmax = _activation("LogSoftmax", log_softmax, axis=-1)
Hardswish = _activation("Hardswish", hardswish)
GLU = _activation("GLU", glu, axis=-1)


class GELU(Module):
    """GELU, exact (``approx="none"``) or approximated (``"precise"``/``"tanh"``, ``"fast"``)."""

    def __init__(self, approx="none"):
        super().__init__()
        fns = {"none": gelu, "precise": gelu_approx, "tanh": gelu_approx, "fast": gelu_fast_approx}
        if approx not in fns:
            raise ValueError(f"GELU: unknown approximation {approx!r}")
        self._fn = fns[approx]

    def __call__(self, x):
        return self._fn(x)


# ---- layers -------------------------------------------------------------------------------


class Identity(Module):
    """Returns its input."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def __call__(self, x):
        return x


class Linear(Module):
    """``y = x @ W.T + b``, with ``W`` and ``b`` uniform in ``±1/sqrt(input_dims)``."""

    def __init__(self, input_dims, output_dims, bias=True):
        super().__init__()
        scale = math.sqrt(1.0 / input_dims)
        self.weight = mx.random.uniform(-scale, scale, (output_dims, input_dims))
        if bias:
            self.bias = mx.random.uniform(-scale, scale, (output_dims,))

    def _extra_repr(self):
        o, i = self.weight.shape
        return f"input_dims={i}, output_dims={o}, bias={'bias' in self}"

    def __call__(self, x):
        if "bias" in self:
            return mx.addmm(self["bias"], x, self["weight"].T)
        return x @ self["weight"].T


class Bilinear(Module):
    """``y = x1 @ W @ x2 + b`` for each output feature."""

    def __init__(self, input1_dims, input2_dims, output_dims, bias=True):
        super().__init__()
        scale = math.sqrt(1.0 / input1_dims)
        self.weight = mx.random.uniform(-scale, scale, (output_dims, input2_dims, input1_dims))
        if bias:
            self.bias = mx.random.uniform(-scale, scale, (output_dims,))

    def __call__(self, x1, x2):
        out, in2, in1 = self.weight.shape
        lead = x1.shape[:-1]
        x1 = x1.reshape(-1, in1)
        x2 = x2.reshape(-1, 1, in2)
        w = self.weight.reshape(out * in2, in1)
        y = (x1 @ w.T).reshape(-1, out, in2).swapaxes(-2, -1)
        y = (x2 @ y).squeeze(1)
        if "bias" in self:
            y = y + self.bias
        return y.reshape(*lead, out)


class Sequential(Module):
    """Calls its layers in order."""

    def __init__(self, *modules):
        super().__init__()
        self.layers = list(modules)

    def __call__(self, x):
        for m in self.layers:
            x = m(x)
        return x


class Dropout(Module):
    """Zeroes each element with probability ``p`` in training mode (scaling the rest by
    ``1 / (1 - p)``); the identity in eval mode."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), not {p}")
        self._p_1 = 1 - p

    def __call__(self, x):
        if self._p_1 == 1 or not self.training:
            return x
        mask = mx.random.bernoulli(self._p_1, x.shape)
        return (mask * x) * (1 / self._p_1)


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of ``dims``, indexed by integer arrays."""

    def __init__(self, num_embeddings, dims):
        super().__init__()
        scale = math.sqrt(1 / dims)
        self.weight = mx.random.normal(shape=(num_embeddings, dims), scale=scale)

    def __call__(self, x):
        return self.weight[x]

    def as_linear(self, x):
        return x @ self.weight.T


class LayerNorm(Module):
    """Normalises the last axis to mean 0 and variance 1, then scales and shifts."""

    def __init__(self, dims, eps=1e-5, affine=True, bias=True):
        super().__init__()
        if affine:
            self.weight = mx.ones((dims,))
            if bias:
                self.bias = mx.zeros((dims,))
        self.eps = eps
        self.dims = dims

    def __call__(self, x):
        weight = self.weight if "weight" in self else None
        bias = self.bias if "bias" in self else None
        return mx.fast.layer_norm(x, weight, bias, self.eps)


class RMSNorm(Module):
    """Divides the last axis by its root mean square, then scales."""

    def __init__(self, dims, eps=1e-5):
        super().__init__()
        self.weight = mx.ones((dims,))
        self.eps = eps

    def __call__(self, x):
        return mx.fast.rms_norm(x, self.weight, self.eps)


def _pair(v, n):
    return (v,) * n if isinstance(v, int) else tuple(v)


class Conv1d(Module):
    """1-D convolution of ``(N, L, C_in)`` inputs (channels last)."""

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
        groups=1, bias=True,
    ):
        super().__init__()
        scale = math.sqrt(1 / (in_channels * kernel_size))
        self.weight = mx.random.uniform(
            -scale, scale, (out_channels, kernel_size, in_channels // groups)
        )
        if bias:
            self.bias = mx.zeros((out_channels,))
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def __call__(self, x):
        y = mx.conv1d(x, self.weight, self.stride, self.padding, self.dilation, self.groups)
        return y + self.bias if "bias" in self else y


class Conv2d(Module):
    """2-D convolution of ``(N, H, W, C_in)`` inputs (channels last)."""

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
        groups=1, bias=True,
    ):
        super().__init__()
        kh, kw = _pair(kernel_size, 2)
        scale = math.sqrt(1 / (in_channels * kh * kw))
        self.weight = mx.random.uniform(
            -scale, scale, (out_channels, kh, kw, in_channels // groups)
        )
        if bias:
            self.bias = mx.zeros((out_channels,))
        self.stride = _pair(stride, 2)
        self.padding = _pair(padding, 2)
        self.dilation = _pair(dilation, 2)
        self.groups = groups

    def __call__(self, x):
        y = mx.conv2d(x, self.weight, self.stride, self.padding, self.dilation, self.groups)
        return y + self.bias if "bias" in self else y
