"""Reference values for the convolutions (conv_general, conv1d/2d/3d, conv_transpose1d/2d/3d),
taken from MLX (CPU). Regenerate with `python3 tests/reference/conv.py` (needs mlx, numpy)."""
import mlx.core as mx
import numpy as np

from common import Cases
from mlx_common import mx_of, np_of

rng = np.random.default_rng(11)
c = Cases()


def f32(*shape):
    return rng.uniform(-1, 1, shape).astype(np.float32)


TOL = dict(rtol=1e-4, atol=1e-5)
for (xs, ws, stride, pad, dil, groups) in [
    ((2, 9, 3), (4, 3, 3), 1, 0, 1, 1),
    ((2, 9, 4), (6, 2, 2), 2, 1, 2, 2),
    ((1, 5, 1), (2, 5, 1), 1, 2, 1, 1),
]:
    x, w = f32(*xs), f32(*ws)
    c.add("conv1d", [x, w], np_of(mx.conv1d(mx_of(x), mx_of(w), stride, pad, dil, groups)),
          stride=stride, padding=pad, dilation=dil, groups=groups, **TOL)
for (xs, ws, stride, pad, dil, groups) in [
    ((2, 6, 5, 3), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 7, 8, 4), (4, 3, 2, 2), (2, 3), (1, 0), (2, 1), 2),
]:
    x, w = f32(*xs), f32(*ws)
    c.add("conv2d", [x, w], np_of(mx.conv2d(mx_of(x), mx_of(w), stride, pad, dil, groups)),
          stride=list(stride), padding=list(pad), dilation=list(dil), groups=groups, **TOL)
x, w = f32(1, 4, 5, 4, 2), f32(3, 2, 3, 2, 2)
c.add("conv3d", [x, w], np_of(mx.conv3d(mx_of(x), mx_of(w), (1, 2, 1), (1, 0, 1))),
      stride=[1, 2, 1], padding=[1, 0, 1], dilation=[1, 1, 1], groups=1, **TOL)
x, w = f32(1, 6, 3), f32(2, 3, 3)
c.add("conv_general", [x, w],
      np_of(mx.conv_general(mx_of(x), mx_of(w), stride=2, padding=([1], [2]), kernel_dilation=2,
                            input_dilation=2, flip=True)),
      stride=2, lo=1, hi=2, kernel_dilation=2, input_dilation=2, flip=True, **TOL)
for (xs, ws, stride, pad, dil, opad) in [((2, 5, 3), (4, 3, 3), 2, 1, 1, 1), ((1, 4, 2), (3, 2, 2), 3, 0, 2, 0)]:
    x, w = f32(*xs), f32(*ws)
    c.add("conv_transpose1d", [x, w],
          np_of(mx.conv_transpose1d(mx_of(x), mx_of(w), stride, pad, dil, opad)),
          stride=stride, padding=pad, dilation=dil, output_padding=opad, **TOL)
x, w = f32(2, 3, 4, 3), f32(2, 3, 2, 3)
c.add("conv_transpose2d", [x, w], np_of(mx.conv_transpose2d(mx_of(x), mx_of(w), (2, 1), (1, 0), 1, (1, 0))),
      stride=[2, 1], padding=[1, 0], dilation=[1, 1], output_padding=[1, 0], **TOL)
x, w = f32(1, 2, 3, 2, 2), f32(2, 2, 2, 2, 2)
c.add("conv_transpose3d", [x, w], np_of(mx.conv_transpose3d(mx_of(x), mx_of(w), 2, 0)),
      stride=[2, 2, 2], padding=[0, 0, 0], dilation=[1, 1, 1], output_padding=[0, 0, 0], **TOL)

c.error("conv1d", [f32(2, 9, 3), f32(4, 3, 2)], "conv", stride=1, padding=0, dilation=1, groups=1)
c.error("conv1d", [f32(2, 2, 3), f32(4, 3, 3)], "conv", stride=1, padding=0, dilation=1, groups=1)
c.error("conv2d", [f32(2, 9, 3), f32(4, 3, 3)], "conv2d", stride=[1, 1], padding=[0, 0], dilation=[1, 1],
        groups=1)
c.save(__file__)
