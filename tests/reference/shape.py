"""NumPy reference values for the shape ops: reshape, flatten, unflatten, squeeze, expand_dims,
transpose, swapaxes, moveaxis, broadcast_to, broadcast_arrays, concatenate, stack, split, tile,
repeat, pad, roll, flip, as_strided, view, atleast_1d/2d/3d, and their bad inputs.

MLX follows NumPy for all of these; where the Rust API differs in form (e.g. `pad` widths are
always (before, after) pairs), the kwargs say what the Rust op table passes."""
import numpy as np
from common import Cases, rand, bfloat16

rng = np.random.default_rng(1)
c = Cases()
DT = ["float32", "float16", "bfloat16", "int32", "bool"]


def r(shape, dt="float32"):
    return rand(shape, dt, rng)


for dt in DT:
    x = r((2, 3, 4), dt)
    # reshape (with -1), flatten, unflatten
    c.add("reshape", [x], x.reshape(4, 6), shape=[4, 6])
    c.add("reshape", [x], x.reshape(-1, 2), shape=[-1, 2])
    c.add("reshape", [x], x.reshape(24), shape=[-1])
    c.add("reshape", [x], x.reshape(2, 1, 12, 1), shape=[2, 1, 12, 1])
    c.add("flatten", [x], x.reshape(-1), start_axis=0, end_axis=-1)
    c.add("flatten", [x], x.reshape(2, 12), start_axis=1, end_axis=2)
    c.add("flatten", [x], x.reshape(6, 4), start_axis=-3, end_axis=-2)
    c.add("unflatten", [x.reshape(2, 12)], x, axis=1, shape=[3, 4])
    c.add("unflatten", [x.reshape(6, 4)], x, axis=0, shape=[-1, 3])
    # transposes
    c.add("transpose", [x], x.transpose(), axes=None)
    c.add("transpose", [x], x.transpose(1, 0, 2), axes=[1, 0, 2])
    c.add("transpose", [x], x.transpose(2, 0, 1), axes=[-1, 0, 1])
    c.add("t", [x[0]], x[0].T)
    c.add("swapaxes", [x], np.swapaxes(x, 0, 2), axis1=0, axis2=-1)
    c.add("moveaxis", [x], np.moveaxis(x, 0, -1), source=0, destination=-1)
    c.add("moveaxis", [x], np.moveaxis(x, 2, 0), source=-1, destination=0)
    # size-1 axes
    y = r((1, 3, 1, 2), dt)
    c.add("squeeze", [y], np.squeeze(y), axis=None)
    c.add("squeeze", [y], np.squeeze(y, 0), axis=0)
    c.add("squeeze", [y], np.squeeze(y, (0, -2)), axis=[0, -2])
    c.add("expand_dims", [x], np.expand_dims(x, 0), axis=0)
    c.add("expand_dims", [x], np.expand_dims(x, -1), axis=-1)
    c.add("expand_dims", [x], np.expand_dims(x, (0, 2, -1)), axis=[0, 2, -1])
    # broadcasting
    v = r((3, 1), dt)
    c.add("broadcast_to", [v], np.broadcast_to(v, (2, 3, 4)), shape=[2, 3, 4])
    w = r((4,), dt)
    c.add("broadcast_to", [w], np.broadcast_to(w, (3, 4)), shape=[3, 4])
    a1, b1 = r((2, 1, 4), dt), r((3, 1), dt)
    c.add("broadcast_arrays", [a1, b1], list(np.broadcast_arrays(a1, b1)))
    # concatenate / stack
    p, q = r((2, 3), dt), r((2, 5), dt)
    c.add("concatenate", [p, q], np.concatenate([p, q], 1), axis=1)
    pa, pb = r((4, 3), dt), r((1, 3), dt)
    c.add("concatenate", [p, pa, pb], np.concatenate([p, pa, pb], 0), axis=0)
    a3, b3, c3 = r((2, 3, 4), dt), r((2, 1, 4), dt), r((2, 2, 4), dt)
    c.add("concatenate", [a3, b3, c3], np.concatenate([a3, b3, c3], -2), axis=-2)
    s1, s2 = r((2, 3), dt), r((2, 3), dt)
    c.add("stack", [s1, s2], np.stack([s1, s2], 0), axis=0)
    c.add("stack", [s1, s2], np.stack([s1, s2], -1), axis=-1)
    c.add("stack", [s1, s2, s1], np.stack([s1, s2, s1], 1), axis=1)
    # split
    z = r((6, 4), dt)
    c.add("split", [z], np.split(z, 3, 0), sections=3, axis=0)
    c.add("split", [z], np.split(z, 2, -1), sections=2, axis=-1)
    c.add("split", [z], np.split(z, [1, 4], 0), indices=[1, 4], axis=0)
    c.add("split", [z], np.split(z, [-1], 0), indices=[-1], axis=0)
    c.add("split", [z], np.split(z, [3, 1, 9], 0), indices=[3, 1, 9], axis=0)
    c.add("split", [z], np.split(z, [0, 2], 1), indices=[0, 2], axis=1)
    # tile / repeat
    c.add("tile", [p], np.tile(p, (2, 3)), reps=[2, 3])
    c.add("tile", [p], np.tile(p, 2), reps=[2])
    c.add("tile", [w], np.tile(w, (2, 1, 2)), reps=[2, 1, 2])
    c.add("repeat", [p], np.repeat(p, 3, 1), repeats=3, axis=1)
    c.add("repeat", [p], np.repeat(p, 2, 0), repeats=2, axis=0)
    c.add("repeat", [p], np.repeat(p, 2), repeats=2, axis=None)
    # pad (constant with a value, edge)
    val = {"bool": True, "int32": 7}.get(dt, 1.5)
    c.add("pad", [p], np.pad(p, ((1, 2), (0, 3))), pad_width=[[1, 2], [0, 3]], mode="constant")
    c.add("pad", [p], np.pad(p, ((2, 2),), constant_values=val).astype(p.dtype),
          pad_width=[[2, 2]], mode="constant", value=val)
    c.add("pad", [x], np.pad(x, ((1, 0), (2, 1), (0, 2)), mode="edge"),
          pad_width=[[1, 0], [2, 1], [0, 2]], mode="edge")
    c.add("pad", [w], np.pad(w, (3, 1), mode="edge"), pad_width=[[3, 1]], mode="edge")
    # roll
    c.add("roll", [p], np.roll(p, 2), shift=[2], axis=None)
    c.add("roll", [p], np.roll(p, -1, 1), shift=[-1], axis=1)
    c.add("roll", [x], np.roll(x, (1, 5), (0, 2)), shift=[1, 5], axis=[0, 2])
    c.add("roll", [x], np.roll(x, 7, (1, 2)), shift=[7], axis=[1, 2])
    c.add("roll", [x], np.roll(x, (1, 2)), shift=[1, 2], axis=None)
    # flip
    c.add("flip", [x], np.flip(x), axis=None)
    c.add("flip", [x], np.flip(x, 1), axis=1)
    c.add("flip", [x], np.flip(x, (0, -1)), axis=[0, -1])
    # as_strided (over the row-major flattening)
    flat = x.reshape(-1)
    c.add("as_strided", [x], np.lib.stride_tricks.as_strided(flat, (5, 3), (flat.itemsize * 4, flat.itemsize)),
          shape=[5, 3], strides=[4, 1], offset=0)
    c.add("as_strided", [x], flat[2:2 + 3 * 4].reshape(3, 4)[::-1].copy(),
          shape=[3, 4], strides=[-4, 1], offset=10)
    c.add("as_strided", [x], np.broadcast_to(flat[5], (2, 3)).copy(), shape=[2, 3], strides=[0, 0], offset=5)
    # atleast
    for k, f in [(1, np.atleast_1d), (2, np.atleast_2d), (3, np.atleast_3d)]:
        for shp in [(), (3,), (2, 3), (2, 3, 4)]:
            a = r(shp, dt)
            c.add(f"atleast_{k}d", [a], f(a))
    c.add("contiguous", [x], x)
    # 0-d and empty arrays
    s0 = r((), dt)
    e = r((0, 3), dt)
    c.add("reshape", [s0], s0.reshape(1, 1), shape=[1, 1])
    c.add("reshape", [s0], s0.reshape(-1), shape=[-1])
    c.add("reshape", [e], e.reshape(3, 0), shape=[3, 0])
    c.add("reshape", [e], e.reshape(-1, 3, 1), shape=[-1, 3, 1])
    c.add("flatten", [s0], s0.reshape(1), start_axis=0, end_axis=-1)
    c.add("transpose", [s0], s0, axes=None)
    c.add("transpose", [e], e.T, axes=None)
    c.add("expand_dims", [s0], s0.reshape(1), axis=0)
    c.add("squeeze", [s0], s0, axis=None)
    c.add("broadcast_to", [s0], np.broadcast_to(s0, (2, 3)), shape=[2, 3])
    c.add("broadcast_to", [e], np.broadcast_to(e, (2, 0, 3)), shape=[2, 0, 3])
    c.add("concatenate", [e, p], np.concatenate([e, p], 0), axis=0)
    c.add("concatenate", [e, e], np.concatenate([e, e], 1), axis=1)
    c.add("stack", [s0, s0], np.stack([s0, s0]), axis=0)
    c.add("split", [e], np.split(e, 3, 1), sections=3, axis=1)
    c.add("split", [e], np.split(e, [1], 0), indices=[1], axis=0)
    c.add("tile", [s0], np.tile(s0, (2, 2)), reps=[2, 2])
    c.add("tile", [e], np.tile(e, (2, 2)), reps=[2, 2])
    c.add("tile", [p], np.tile(p, (0, 1)), reps=[0, 1])
    c.add("repeat", [e], np.repeat(e, 2, 1), repeats=2, axis=1)
    c.add("repeat", [p], np.repeat(p, 0, 1), repeats=0, axis=1)
    c.add("pad", [s0], s0, pad_width=[[1, 1]], mode="constant")
    c.add("pad", [e], np.pad(e, ((1, 1), (0, 0))), pad_width=[[1, 1], [0, 0]], mode="constant")
    c.add("pad", [e], np.pad(e, ((0, 0), (1, 1)), mode="edge"), pad_width=[[0, 0], [1, 1]], mode="edge")
    c.add("roll", [e], np.roll(e, 1, 0), shift=[1], axis=0)
    c.add("roll", [s0], np.roll(s0, 3), shift=[3], axis=None)
    c.add("flip", [e], np.flip(e), axis=None)
    c.add("flip", [s0], s0, axis=None)
    c.add("as_strided", [e], np.zeros((0, 2), e.dtype), shape=[0, 2], strides=[5, 1], offset=0)

# view: reinterpret the row-major bytes (the last axis scales by the size ratio)
for src, dst in [("float32", "int32"), ("float32", "uint16"), ("float16", "bfloat16"),
                 ("bfloat16", "int16"), ("int32", "float16"), ("uint8", "int32"),
                 ("int32", "uint8"), ("float32", "bool"), ("int32", "bool"), ("bool", "uint8"),
                 ("int8", "bool"), ("float32", "float32")]:
    x = r((2, 3, 4), src)
    if src == "uint8":
        x = rng.integers(0, 256, size=(2, 3, 8)).astype(np.uint8)
    if src == "int8":
        x = rng.integers(-128, 128, size=(3, 5)).astype(np.int8)
    np_dst = bfloat16 if dst == "bfloat16" else np.dtype(dst)
    c.add("view", [x], np.ascontiguousarray(x).view(np_dst), dtype=dst)
    c.add("view", [x[0]], np.ascontiguousarray(x[0]).view(np_dst), dtype=dst)
s32 = np.array(1.5, np.float32)
c.add("view", [s32], s32.view(np.int32), dtype="int32")
c.add("view", [np.zeros((2, 0), np.float32)], np.zeros((2, 0), np.uint8), dtype="uint8")

# promotion in concatenate (MLX's table: int32 with float16 gives float16; bool with int32
# gives int32; float16 with bfloat16 gives float32)
ci, cf, cb, cbf = r((2, 2), "int32"), r((1, 2), "float16"), r((3, 2), "bool"), r((1, 2), "bfloat16")
c.add("concatenate", [ci, cf], np.concatenate([ci.astype(np.float16), cf]), axis=0)
c.add("concatenate", [cb, ci], np.concatenate([cb.astype(np.int32), ci]), axis=0)
c.add("concatenate", [cf, cbf], np.concatenate([cf.astype(np.float32), cbf.astype(np.float32)]), axis=0)
c.add("concatenate", [ci, cb, cf], np.concatenate([ci, cb, cf]).astype(np.float16), axis=0)

# Big inputs (past the kernels' parallel threshold) are checked in ops_shape.rs against
# results built in Rust, to keep this file small.

# bad inputs: every message names the op
x = r((2, 3, 4))
c.error("reshape", [x], "reshape", shape=[5, 5])
c.error("reshape", [x], "reshape", shape=[-1, -1])
c.error("reshape", [x], "reshape", shape=[-2, 12])
c.error("reshape", [np.zeros((0, 3), np.float32)], "reshape", shape=[0, -1])
c.error("flatten", [x], "flatten", start_axis=2, end_axis=1)
c.error("flatten", [x], "flatten", start_axis=3, end_axis=3)
c.error("unflatten", [x], "unflatten", axis=1, shape=[2, 2])
c.error("squeeze", [x], "squeeze", axis=1)
c.error("squeeze", [x], "squeeze", axis=3)
c.error("expand_dims", [x], "expand_dims", axis=5)
c.error("expand_dims", [x], "expand_dims", axis=[0, 0])
c.error("transpose", [x], "transpose", axes=[0, 1])
c.error("transpose", [x], "transpose", axes=[0, 1, 1])
c.error("transpose", [x], "transpose", axes=[0, 1, 3])
c.error("swapaxes", [x], "swapaxes", axis1=0, axis2=3)
c.error("moveaxis", [x], "moveaxis", source=-4, destination=0)
c.error("broadcast_to", [x], "broadcast_to", shape=[2, 3, 5])
c.error("broadcast_to", [x], "broadcast_to", shape=[3, 4])
c.error("broadcast_arrays", [x, r((3,))], "broadcast_arrays")
c.error("concatenate", [x, r((2, 4, 4))], "concatenate", axis=0)
c.error("concatenate", [x, r((2, 3))], "concatenate", axis=0)
c.error("concatenate", [x, x], "concatenate", axis=3)
c.error("concatenate", [np.float32(1), np.float32(2)], "concatenate", axis=0)
c.error("stack", [x, r((2, 3, 5))], "stack", axis=0)
c.error("stack", [x, x], "stack", axis=4)
c.error("split", [x], "split", sections=4, axis=1)
c.error("split", [x], "split", sections=0, axis=1)
c.error("split", [x], "split", sections=2, axis=3)
c.error("repeat", [x], "repeat", repeats=2, axis=3)
c.error("pad", [x], "pad", pad_width=[[1, 1], [1, 1]], mode="constant")
c.error("pad", [x], "pad", pad_width=[[-1, 1]], mode="constant")
c.error("pad", [np.zeros((0, 2), np.float32)], "pad", pad_width=[[1, 0], [0, 0]], mode="edge")
c.error("roll", [x], "roll", shift=[1, 2], axis=[0, 1, 2])
c.error("roll", [x], "roll", shift=[1], axis=3)
c.error("flip", [x], "flip", axis=3)
c.error("as_strided", [x], "as_strided", shape=[5, 5], strides=[5, 1], offset=0)
c.error("as_strided", [x], "as_strided", shape=[2], strides=[-1], offset=0)
c.error("as_strided", [x], "as_strided", shape=[2, 2], strides=[1], offset=0)
c.error("view", [np.float32(1)], "view", dtype="float16")
c.error("view", [r((2, 3), "int8")], "view", dtype="int32")
c.save(__file__)
