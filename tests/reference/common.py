"""Shared helpers for the scripts that write NumPy reference values for the op tests.

Each family has its own script (`unary.py`, `reduce.py`, ...) that builds a list of cases and
writes `<family>.json` beside it. The Rust harness (`crates/umx/tests/conformance/common/mod.rs`) reads
them and runs each case on contiguous, transposed and strided inputs.

Regenerate with `python3 tests/reference/<family>.py` (needs numpy and ml_dtypes).
"""
import json
import math
import os

import numpy as np
import ml_dtypes

bfloat16 = ml_dtypes.bfloat16
DTYPES = {
    "bool": np.bool_, "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32,
    "uint64": np.uint64, "int8": np.int8, "int16": np.int16, "int32": np.int32,
    "int64": np.int64, "float16": np.float16, "bfloat16": bfloat16, "float32": np.float32,
    "float64": np.float64, "complex64": np.complex64,
}


def dtype_name(a):
    a = np.asarray(a)
    if a.dtype == bfloat16:
        return "bfloat16"
    return a.dtype.name


def _num(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def encode(a):
    """An array as {dtype, shape, data}; data is flat, row-major."""
    a = np.asarray(a)
    name = dtype_name(a)
    flat = a.reshape(-1)
    if name == "complex64":
        data = [[_num(z.real), _num(z.imag)] for z in flat]
    elif name in ("bfloat16", "float16"):
        data = [_num(v) for v in flat.astype(np.float64)]
    else:
        data = [_num(v) for v in flat.tolist()]
    return {"dtype": name, "shape": list(a.shape), "data": data}


def rand(shape, dtype, rng, low=-3.0, high=3.0):
    """Random values of a dtype: floats uniform in [low, high), ints in a small range."""
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    if name == "bool":
        return rng.random(shape) < 0.5
    if name.startswith("uint"):
        return rng.integers(0, 10, size=shape).astype(DTYPES[name])
    if name.startswith("int"):
        return rng.integers(-10, 10, size=shape).astype(DTYPES[name])
    if name == "complex64":
        return (rng.uniform(low, high, shape) + 1j * rng.uniform(low, high, shape)).astype(np.complex64)
    return rng.uniform(low, high, shape).astype(DTYPES[name])


class Cases:
    """Collects cases and writes them as JSON."""

    def __init__(self):
        self.cases = []

    def add(self, op, inputs, expected, rtol=None, atol=None, layouts=True, **kwargs):
        """`expected` is an array or a list of arrays (several outputs)."""
        multi = isinstance(expected, (list, tuple))
        case = {
            "op": op,
            "inputs": [encode(x) for x in inputs],
            "kwargs": kwargs,
            "expected": [encode(e) for e in expected] if multi else [encode(expected)],
            "layouts": layouts,
        }
        if rtol is not None:
            case["rtol"] = rtol
        if atol is not None:
            case["atol"] = atol
        self.cases.append(case)

    def error(self, op, inputs, contains, **kwargs):
        """A case whose op must return an Err whose message contains `contains`."""
        self.cases.append({
            "op": op, "inputs": [encode(x) for x in inputs], "kwargs": kwargs,
            "error": contains, "layouts": False,
        })

    def save(self, script_file):
        path = os.path.splitext(script_file)[0] + ".json"
        with open(path, "w") as f:
            json.dump({"cases": self.cases}, f, separators=(",", ":"))
        print(f"{path}: {len(self.cases)} cases")
