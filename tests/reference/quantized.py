"""Reference values for quantization (MLX's affine scheme), taken from mlx.core on the CPU:
mx.quantize (codes, scales and biases bit for bit), mx.dequantize, mx.quantized_matmul and
mx.gather_qmm, for every bit width, a few group sizes, transposed and not, float32, float16 and
bfloat16, batched and broadcast x, empty x; and the errors of bad arguments.

float16/bfloat16 products are taken from MLX in float32 (the same weights and activations,
upcast exactly) and rounded once to the dtype: MLX's CPU kernel accumulates in the low
precision, umx accumulates in float32, as MLX's GPU kernels do.

Inputs are multiples of 1/32 (activations of 1/16) so the file stays small. Regenerate with
`python3 tests/reference/quantized.py` (needs mlx and numpy)."""
import mlx.core as mx
import numpy as np

from common import Cases
from mlx_common import mx_of, np_of, MX

rng = np.random.default_rng(11)
c = Cases()
BITS = [1, 2, 3, 4, 5, 6, 8]
# Exact up to the last bit of float64 parsing (the Rust side's JSON reader may round the last
# digit): far below a float32 ulp, so codes, scales and biases must be MLX's bit for bit.
EXACT = 1e-12


def vals(*shape, scale=1.0):
    return (np.round(rng.uniform(-1, 1, shape) * 32 * scale) / 32).astype(np.float32)


def xs(*shape):
    """Activations: multiples of 1/16 (short in the file)."""
    return (np.round(rng.uniform(-1, 1, shape) * 16) / 16).astype(np.float32)


def as_dt(a, dt):
    return np_of(mx_of(a).astype(MX[dt]))


# ---- quantize / dequantize ----------------------------------------------------------------
for bits in BITS:
    for gs in [32, 64]:
        for dt in (["float32", "float16", "bfloat16"] if gs == 64 else ["float32"]):
            w = as_dt(vals(2, 64, scale=2.0), dt)
            q, s, b = mx.quantize(mx_of(w), group_size=gs, bits=bits)
            c.add("quantize", [w], [np_of(q), np_of(s), np_of(b)], rtol=EXACT, atol=0,
                  group_size=gs, bits=bits)
            if dt != "float32" and bits not in (3, 4):
                continue
            c.add("dequantize", [np_of(q), np_of(s), np_of(b)],
                  np_of(mx.dequantize(q, s, b, group_size=gs, bits=bits)), group_size=gs, bits=bits)
w = vals(2, 2, 128)
q, s, b = mx.quantize(mx_of(w), group_size=128, bits=4)
c.add("quantize", [w], [np_of(q), np_of(s), np_of(b)], rtol=EXACT, atol=0, group_size=128,
      bits=4)
# A constant group and a group with one outlier.
w = np.zeros((2, 64), np.float32)
w[1, :32] = 0.5
w[1, 40] = -3.0
q, s, b = mx.quantize(mx_of(w), group_size=32, bits=4)
c.add("quantize", [w], [np_of(q), np_of(s), np_of(b)], rtol=EXACT, atol=0, group_size=32,
      bits=4)


# ---- quantized_matmul ---------------------------------------------------------------------
def qmm_case(x, w, transpose, gs, bits, dt="float32", label=None, **kw):
    wq, s, b = mx.quantize(mx_of(w).astype(MX[dt]), group_size=gs, bits=bits)
    xd = as_dt(x, dt)
    xb = np.broadcast_to(xd, kw["broadcast_to"][0]) if "broadcast_to" in kw else xd
    y = mx.quantized_matmul(mx_of(xb).astype(mx.float32), wq, s.astype(mx.float32),
                            b.astype(mx.float32), transpose=transpose, group_size=gs, bits=bits)
    y = np_of(y.astype(MX[dt]))
    tol = {"float32": (1e-5, 1e-5), "float16": (3e-3, 3e-3), "bfloat16": (2e-2, 2e-2)}[dt]
    c.add("quantized_matmul", [xd, np_of(wq), np_of(s), np_of(b)], y, rtol=tol[0], atol=tol[1],
          transpose=transpose, group_size=gs, bits=bits, **kw)


for bits in BITS:
    qmm_case(xs(2, 64), vals(16, 64), True, 32, bits)
    qmm_case(xs(2, 32), vals(32, 32), False, 32, bits)
qmm_case(xs(2, 32), vals(32, 64), False, 64, 4)
qmm_case(xs(2, 64), vals(16, 64), True, 64, 5)
# Large group, more rows than the decode kernel takes (the dequantize + gemm path).
qmm_case(xs(9, 128), vals(8, 128), True, 128, 4)
qmm_case(xs(1, 9, 32), vals(32, 64), False, 64, 2)
qmm_case(xs(12, 64), vals(16, 64), True, 32, 3)
for dt in ["float16", "bfloat16"]:
    for transpose in [True, False]:
        qmm_case(xs(2, 32) if not transpose else xs(2, 64), vals(32, 64) if not transpose else vals(16, 64), transpose, 64, 4,
                 dt)
        qmm_case(xs(9, 32) if not transpose else xs(9, 64), vals(32, 32) if not transpose else vals(16, 64), transpose, 32, 6,
                 dt)
# A vector x, batched x with a 2-D w, batched w with broadcast batch dims, empty x.
qmm_case(xs(64), vals(32, 64), True, 32, 4)
qmm_case(xs(2, 3, 2, 64), vals(8, 64), True, 32, 4)
qmm_case(xs(3, 1, 2, 64), vals(2, 16, 64), True, 32, 4)
qmm_case(xs(2, 3, 32), vals(2, 32, 32), False, 32, 3)
qmm_case(xs(1, 2, 32), vals(32, 32), False, 32, 2, broadcast_to=[[4, 2, 32], None, None, None])
# MLX 0.32.4 dies of a floating point exception evaluating an empty x (0 rows) on the CPU, so
# that result is written by hand: (0, 32).
wq, s, b = mx.quantize(mx_of(vals(32, 64)), group_size=32, bits=4)
c.add("quantized_matmul", [np.zeros((0, 64), np.float32), np_of(wq), np_of(s), np_of(b)],
      np.zeros((0, 32), np.float32), transpose=True, group_size=32, bits=4)

# ---- gather_qmm ---------------------------------------------------------------------------
x = xs(2, 1, 64)
w = vals(3, 16, 64)
wq, s, b = mx.quantize(mx_of(w), group_size=32, bits=4)
lhs = np.array([1, 0, 1, 1], np.uint32)
rhs = np.array([2, 2, 0, 1], np.uint32)
y = mx.gather_qmm(mx_of(x), wq, s, b, lhs_indices=mx_of(lhs), rhs_indices=mx_of(rhs),
                  transpose=True, group_size=32, bits=4)
c.add("gather_qmm", [x, np_of(wq), np_of(s), np_of(b), lhs, rhs], np_of(y), rtol=1e-5, atol=1e-5,
      transpose=True, group_size=32, bits=4)
x = xs(1, 64)
y = mx.gather_qmm(mx_of(x), wq, s, b, rhs_indices=mx_of(rhs.reshape(2, 2)),
                  transpose=True, group_size=32, bits=4)
c.add("gather_qmm", [x, np_of(wq), np_of(s), np_of(b), rhs.reshape(2, 2)], np_of(y), rtol=1e-5,
      atol=1e-5, transpose=True, group_size=32, bits=4)

# ---- a QuantizedLinear saved by MLX (safetensors, MLX's names) ------------------------------
import mlx.nn as nn  # noqa: E402
import os  # noqa: E402

lin = nn.Linear(64, 8)
lin.update({"weight": mx_of(vals(8, 64)), "bias": mx_of(vals(8))})
ql = nn.QuantizedLinear.from_linear(lin, group_size=32, bits=4)
ql.save_weights(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "quantized_linear.safetensors"))
x = xs(2, 64)
c.add("quantized_linear_file", [x], np_of(ql(mx_of(x))), rtol=1e-5, atol=1e-5,
      group_size=32, bits=4)

# ---- errors -------------------------------------------------------------------------------
z = np.zeros((4, 64), np.float32)
c.error("quantize", [np.zeros((4, 48), np.float32)], "divisible by the group size", group_size=32, bits=4)
c.error("quantize", [z], "7 bits are not supported", group_size=32, bits=7)
c.error("quantize", [z], "group size 16 is not supported", group_size=16, bits=4)
c.error("quantize", [np.zeros(64, np.float32)], "at least 2 dimensions", group_size=32, bits=4)
c.error("quantize", [np.zeros((4, 64), np.int32)], "has type int32", group_size=32, bits=4)
wq, s, b = (np_of(a) for a in mx.quantize(mx_of(vals(4, 64)), group_size=32, bits=4))
c.error("dequantize", [wq.astype(np.int32), s, b], "must be uint32", group_size=32, bits=4)
c.error("dequantize", [wq, s[:, :1], b[:, :1]], "do not fit", group_size=32, bits=4)
c.error("dequantize", [wq, s, b[:, :1]], "same shape", group_size=32, bits=4)
c.error("quantized_matmul", [np.zeros((2, 63), np.float32), wq, s, b], "does not match",
        transpose=True, group_size=32, bits=4)
c.error("quantized_matmul", [np.zeros((2, 64), np.float32), wq, s, b], "does not match",
        transpose=False, group_size=32, bits=4)
c.error("quantized_matmul", [np.zeros((2, 64), np.float32), wq, s, b], "do not fit",
        transpose=True, group_size=64, bits=4)


def shorten(enc):
    """float32 values written with the fewest digits that still read back as the same float32
    (they are compared in float64 within float32 tolerances)."""
    if enc["dtype"] == "float32":
        enc["data"] = [float(str(np.float32(v))) if isinstance(v, float) else v
                       for v in enc["data"]]


for case in c.cases:
    # Codes, scales and biases are compared exactly: those keep every digit.
    for enc in case["inputs"] + (case.get("expected", []) if case["op"] != "quantize" else []):
        shorten(enc)
c.save(__file__)
