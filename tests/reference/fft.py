"""NumPy references for umx::fft: fft, ifft, fft2, ifft2, fftn, ifftn, rfft, irfft, rfft2,
irfft2, rfftn, irfftn, fftfreq, rfftfreq, fftshift, ifftshift, with NumPy's n/s/axes (crop and
zero-pad) and norm modes, batched, from float32, float64, complex64 and int32 input.

Results are complex64 (float32 for the inverse real transforms), as MLX gives them: expected
values are computed in complex128 and rounded once. The tolerance grows with the transform's
size: atol = 4e-6 * sum(|x|) per lane, at most.
"""
import numpy as np
from common import Cases, rand

rng = np.random.default_rng(16)
c = Cases()


def out_dtype(op):
    return np.float32 if op.startswith("irfft") else np.complex64


def add(op, x, want, **kw):
    scale = float(np.sum(np.abs(np.asarray(x, dtype=np.complex128)))) if np.size(x) else 1.0
    c.add(op, [x], np.asarray(want).astype(out_dtype(op)), rtol=1e-5, atol=4e-6 * max(scale, 1.0),
          **kw)


def signal(shape, dtype):
    return rand(shape, dtype, rng, -1.0, 1.0)


NORMS = ["backward", "ortho", "forward"]

# 1-D complex transforms: dtypes, n (crop, pad), axis, norm, batches.
for dt, shapes in [("complex64", 6), ("float32", 3), ("float64", 3), ("int32", 1)]:
    for shape, n, axis in [((8,), None, -1), ((2, 6), 4, 1), ((2, 3), 7, -1), ((2, 5), None, -1),
                           ((4, 3), None, 0), ((3, 2, 4), None, 1)][:shapes]:
        x = signal(shape, dt)
        for op, f in [("fft", np.fft.fft), ("ifft", np.fft.ifft)]:
            add(op, x, f(x.astype(np.complex128), n=n, axis=axis), n=n, axis=axis, norm="backward")
for op, f in [("fft", np.fft.fft), ("ifft", np.fft.ifft)]:
    for norm in NORMS:
        x = signal((3, 10), "complex64")
        add(op, x, f(x.astype(np.complex128), norm=norm), n=None, axis=-1, norm=norm)
# A length with a large prime factor (Bluestein in rustfft) and one of 1.
for n in [1, 17, 53]:
    x = signal((n,), "complex64")
    add("fft", x, np.fft.fft(x.astype(np.complex128)), n=None, axis=-1, norm="backward")

# 2-D and n-D, with s (crop and pad) and axes.
for dt in ["complex64", "float64"]:
    x = signal((2, 3, 4), dt)
    xc = x.astype(np.complex128)
    for op, f in [("fft2", np.fft.fft2), ("ifft2", np.fft.ifft2)]:
        for s, axes in [(None, None), ([3, 8], None), (None, [0, 2]), ([5, 2], [2, 0])]:
            add(op, x, f(xc, s=s, axes=axes if axes else (-2, -1)), s=s, axes=axes, norm="backward")
    for op, f in [("fftn", np.fft.fftn), ("ifftn", np.fft.ifftn)]:
        for s, axes in [(None, None), (None, [1, 2]), ([3, 5], [0, 1]), ([2, 3, 4], None)]:
            add(op, x, f(xc, s=s, axes=axes), s=s, axes=axes, norm="backward")
        add(op, x, f(xc, norm="ortho"), s=None, axes=None, norm="ortho")

# Real transforms: even and odd lengths, n, axis, norm.
for dt, shapes in [("float32", 5), ("float64", 3), ("int32", 1)]:
    for shape, n, axis in [((8,), None, -1), ((2, 6), 5, 1), ((2, 6), 9, -1), ((2, 7), None, -1),
                           ((5, 3), None, 0)][:shapes]:
        x = signal(shape, dt)
        add("rfft", x, np.fft.rfft(x.astype(np.float64), n=n, axis=axis), n=n, axis=axis,
            norm="backward")
for norm in NORMS:
    x = signal((2, 9), "float32")
    add("rfft", x, np.fft.rfft(x.astype(np.float64), norm=norm), n=None, axis=-1, norm=norm)
for shape, n, axis in [((5,), None, -1), ((2, 5), 9, -1), ((4, 3), None, 0), ((2, 5), 6, 1),
                       ((3, 4), 3, -1)]:
    for norm in NORMS:
        x = signal(shape, "complex64")
        add("irfft", x, np.fft.irfft(x.astype(np.complex128), n=n, axis=axis, norm=norm), n=n,
            axis=axis, norm=norm)
x = signal((5,), "float32")
add("irfft", x, np.fft.irfft(x.astype(np.float64)), n=None, axis=-1, norm="backward")

for dt in ["float32", "float64"]:
    x = signal((2, 3, 4), dt)
    xw = x.astype(np.float64)
    for s, axes in [(None, None), ([3, 8], None), (None, [0, 2]), ([5, 3], [2, 1])]:
        add("rfft2", x, np.fft.rfft2(xw, s=s, axes=axes if axes else (-2, -1)), s=s, axes=axes,
            norm="backward")
    for s, axes in [(None, None), (None, [1, 2]), ([3, 5], [0, 1]), ([2, 3, 7], None)]:
        add("rfftn", x, np.fft.rfftn(xw, s=s, axes=axes), s=s, axes=axes, norm="backward")
    add("rfftn", x, np.fft.rfftn(xw, norm="forward"), s=None, axes=None, norm="forward")
z = signal((2, 3, 4), "complex64")
zw = z.astype(np.complex128)
for s, axes in [(None, None), ([4, 8], None), ([3, 6], [0, 2]), (None, [2, 1])]:
    add("irfft2", z, np.fft.irfft2(zw, s=s, axes=axes if axes else (-2, -1)), s=s, axes=axes,
        norm="backward")
for s, axes in [(None, None), ([2, 4, 7], None), ([3, 5], [1, 2]), (None, [0, 2])]:
    add("irfftn", z, np.fft.irfftn(zw, s=s, axes=axes), s=s, axes=axes, norm="backward")
add("irfftn", z, np.fft.irfftn(zw, norm="ortho"), s=None, axes=None, norm="ortho")

# Frequencies and shifts.
for n, d in [(1, 1.0), (4, 1.0), (5, 0.1), (8, 2.0)]:
    c.add("fftfreq", [], np.fft.fftfreq(n, d).astype(np.float32), rtol=1e-6, atol=1e-7, n=n, d=d)
    c.add("rfftfreq", [], np.fft.rfftfreq(n, d).astype(np.float32), rtol=1e-6, atol=1e-7, n=n, d=d)
for shape, axes in [((5,), None), ((4, 5), None), ((4, 5), [1]), ((3, 4, 5), [0, 2]), ((6,), -1)]:
    x = signal(shape, "float32")
    c.add("fftshift", [x], np.fft.fftshift(x, axes=axes), axes=axes)
    c.add("ifftshift", [x], np.fft.ifftshift(x, axes=axes), axes=axes)

# Bad input: an Err naming the op.
x = signal((4,), "float32")
c.error("fft", [x], "fft: invalid number of data points (0)", n=0, axis=-1, norm="backward")
c.error("fft", [x], "fft: axis 1 is out of range", n=None, axis=1, norm="backward")
c.error("ifft", [x], "norm must be", n=None, axis=-1, norm="sideways")
c.error("fft", [np.array(1.0, np.float32)], "at least one dimension", n=None, axis=-1,
        norm="backward")
c.error("irfft", [signal((1,), "complex64")], "irfft: invalid number of data points (0)", n=None,
        axis=-1, norm="backward")
c.error("fftn", [signal((2, 3), "float32")], "different lengths", s=[2], axes=[0, 1],
        norm="backward")
c.error("rfft2", [signal((2, 3), "float32")], "rfft2: axis -3 is out of range", s=None,
        axes=[-3, -1], norm="backward")

c.save(__file__)
