"""Reference values for umx::fast, taken from mlx.core.fast (CPU): rms_norm, layer_norm, rope,
scaled_dot_product_attention and softmax, in float32, float16 and bfloat16, with their
gradients (mx.vjp) in float32.

Regenerate with `python3 tests/reference/fast.py` (needs mlx, numpy and ml_dtypes)."""
import mlx.core as mx
import numpy as np

from common import Cases, bfloat16
from mlx_common import mx_of, np_of

rng = np.random.default_rng(11)
c = Cases()
TOL = {"float32": (2e-5, 2e-5), "float16": (2e-2, 2e-2), "bfloat16": (5e-2, 5e-2)}
NP = {"float32": np.float32, "float16": np.float16, "bfloat16": bfloat16}


def arr(shape, dtype="float32", low=-2.0, high=2.0):
    """Random values on a grid of 1/16 (short in JSON, exact in every dtype)."""
    v = np.round(rng.uniform(low, high, shape) * 16) / 16
    return v.astype(np.float32).astype(NP[dtype])


def case(op, inputs, out, dtype="float32", layouts=True, **kw):
    r, a = TOL[dtype]
    c.add(op, inputs, out, rtol=r, atol=a, layouts=layouts, **kw)


def grads(f, inputs, cot):
    """The vjp of f at inputs (mlx arrays) for cotangent cot."""
    _, g = mx.vjp(f, inputs, [cot])
    return [np_of(x) for x in g]


# ---- rms_norm ---------------------------------------------------------------------------
for dt in ["float32", "float16", "bfloat16"]:
    x, w = arr((3, 4, 37), dt), arr((37,), dt)
    case("rms_norm", [x, w], np_of(mx.fast.rms_norm(mx_of(x), mx_of(w), 1e-5)), dt, eps=1e-5)
    case("rms_norm", [x], np_of(mx.fast.rms_norm(mx_of(x), None, 1e-4)), dt, eps=1e-4)
x, w = arr((2, 256)), arr((256,))
case("rms_norm", [x, w], np_of(mx.fast.rms_norm(mx_of(x), mx_of(w), 1e-6)), eps=1e-6)
x = arr((2, 1024), "bfloat16")
w32 = arr((1024,))
case("rms_norm", [x, w32], np_of(mx.fast.rms_norm(mx_of(x), mx_of(w32), 1e-5)), "bfloat16", eps=1e-5)
case("rms_norm", [np.zeros((0, 8), np.float32)], np.zeros((0, 8), np.float32), eps=1e-5)
x, w, g = arr((3, 16)), arr((16,)), arr((3, 16))
case("rms_norm_vjp", [x, w, g],
     grads(lambda a, b: mx.fast.rms_norm(a, b, 1e-5), [mx_of(x), mx_of(w)], mx_of(g)), eps=1e-5)

# ---- layer_norm -------------------------------------------------------------------------
for dt in ["float32", "float16", "bfloat16"]:
    x, w, b = arr((3, 4, 37), dt), arr((37,), dt), arr((37,), dt)
    case("layer_norm", [x, w, b], np_of(mx.fast.layer_norm(mx_of(x), mx_of(w), mx_of(b), 1e-5)), dt,
         eps=1e-5, weight=True, bias=True)
    case("layer_norm", [x], np_of(mx.fast.layer_norm(mx_of(x), None, None, 1e-5)), dt, eps=1e-5,
         weight=False, bias=False)
    case("layer_norm", [x, w], np_of(mx.fast.layer_norm(mx_of(x), mx_of(w), None, 1e-5)), dt, eps=1e-5,
         weight=True, bias=False)
x, b = arr((5, 8)), arr((8,))
case("layer_norm", [x, b], np_of(mx.fast.layer_norm(mx_of(x), None, mx_of(b), 1e-5)), eps=1e-5,
     weight=False, bias=True)
x, w, b, g = arr((3, 16)), arr((16,)), arr((16,)), arr((3, 16))
case("layer_norm_vjp", [x, w, b, g],
     grads(lambda a, ww, bb: mx.fast.layer_norm(a, ww, bb, 1e-5), [mx_of(x), mx_of(w), mx_of(b)], mx_of(g)),
     eps=1e-5)

# ---- softmax ----------------------------------------------------------------------------
for dt in ["float32", "float16", "bfloat16"]:
    x = arr((4, 5, 33), dt, -6, 6)
    case("softmax", [x], np_of(mx.softmax(mx_of(x), axis=-1, precise=True)), dt)
x = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 1.0]], np.float32)
case("softmax", [x], np_of(mx.softmax(mx_of(x), axis=-1)), layouts=False)
x, g = arr((3, 7)), arr((3, 7))
case("softmax_vjp", [x, g], grads(lambda a: mx.softmax(a, axis=-1), [mx_of(x)], mx_of(g)))

# ---- rope -------------------------------------------------------------------------------
for dt in ["float32", "float16", "bfloat16"]:
    x = arr((2, 3, 5, 16), dt)
    for trad in [False, True]:
        case("rope", [x], np_of(mx.fast.rope(mx_of(x), 16, traditional=trad, base=10000.0, scale=1.0, offset=3)),
             dt, dims=16, traditional=trad, base=10000.0, scale=1.0, offset=3)
x = arr((2, 4, 7, 24))
case("rope", [x], np_of(mx.fast.rope(mx_of(x), 16, traditional=False, base=500.0, scale=0.5, offset=11)),
     dims=16, traditional=False, base=500.0, scale=0.5, offset=11)
freqs = rng.uniform(1.0, 50.0, (8,)).astype(np.float32)
case("rope_freqs", [x, freqs],
     np_of(mx.fast.rope(mx_of(x), 16, traditional=True, base=None, scale=1.0, offset=2, freqs=mx_of(freqs))),
     dims=16, traditional=True, scale=1.0, offset=2)
x = arr((3, 2, 4, 8))
offs = np.array([0, 5, 17], np.int32)
case("rope_offsets", [x, offs],
     np_of(mx.fast.rope(mx_of(x), 8, traditional=False, base=10000.0, scale=1.0, offset=mx_of(offs))),
     dims=8, traditional=False, base=10000.0, scale=1.0, layouts=False)
x, g = arr((1, 2, 3, 8)), arr((1, 2, 3, 8))
case("rope_vjp", [x, g],
     grads(lambda a: mx.fast.rope(a, 8, traditional=False, base=10000.0, scale=1.0, offset=4), [mx_of(x)],
           mx_of(g)), dims=8, traditional=False, base=10000.0, scale=1.0, offset=4)


# ---- scaled_dot_product_attention ---------------------------------------------------------
def sdpa(q, k, v, scale, mask=None, sinks=None):
    kw = {} if sinks is None else {"sinks": sinks}
    return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask, **kw)


for dt in ["float32", "float16", "bfloat16"]:
    for (b, hq, hk, lq, lk, d) in [(2, 2, 2, 1, 19, 16), (1, 4, 2, 3, 24, 16), (1, 2, 1, 20, 20, 8)]:
        q, k, v = arr((b, hq, lq, d), dt), arr((b, hk, lk, d), dt), arr((b, hk, lk, d), dt)
        s = d ** -0.5
        case("sdpa", [q, k, v], np_of(sdpa(mx_of(q), mx_of(k), mx_of(v), s)), dt, scale=s, mask="none")
        case("sdpa", [q, k, v], np_of(sdpa(mx_of(q), mx_of(k), mx_of(v), s, "causal")), dt, scale=s,
             mask="causal")
q, k, v = arr((1, 4, 2, 64)), arr((1, 2, 70, 64)), arr((1, 2, 70, 48))
case("sdpa", [q, k, v], np_of(sdpa(mx_of(q), mx_of(k), mx_of(v), 0.125)), scale=0.125, mask="none")
q, k, v = arr((2, 4, 3, 16)), arr((2, 2, 9, 16)), arr((2, 2, 9, 16))
bm = rng.random((2, 1, 3, 9)) < 0.7
bm[..., 0] = True
case("sdpa_mask", [q, k, v, bm], np_of(sdpa(mx_of(q), mx_of(k), mx_of(v), 0.25, mx_of(bm))), scale=0.25)
am = arr((3, 9))
case("sdpa_mask", [q, k, v, am], np_of(sdpa(mx_of(q), mx_of(k), mx_of(v), 0.25, mx_of(am))), scale=0.25)
sk = arr((4,))
case("sdpa_sinks", [q, k, v, sk], np_of(sdpa(mx_of(q), mx_of(k), mx_of(v), 0.25, "causal", mx_of(sk))),
     scale=0.25, mask="causal")
q, k, v, g = arr((1, 2, 3, 8)), arr((1, 1, 5, 8)), arr((1, 1, 5, 8)), arr((1, 2, 3, 8))
case("sdpa_vjp", [q, k, v, g],
     grads(lambda a, b, cc: sdpa(a, b, cc, 0.3, "causal"), [mx_of(q), mx_of(k), mx_of(v)], mx_of(g)),
     scale=0.3, mask="causal")

c.save(__file__)
