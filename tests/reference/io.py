"""Writes the small files that umx-io's tests read (crates/umx-io/tests/reference_files.rs):

- .npy files from NumPy itself: every dtype umx shares with NumPy, big-endian, Fortran order,
  0-d, empty, and format versions 1.0, 2.0 and 3.0;
- .npz files from np.savez (stored) and np.savez_compressed (deflated);
- a .safetensors file encoded by hand after the format's spec (8-byte little-endian header
  length, JSON header with __metadata__, data), and one from the `safetensors` package when
  it is installed;
- .gguf files encoded with struct.pack after the GGUF spec: version 3 little-endian with
  metadata of every value type, version 2, version 3 big-endian, and a quantized (Q8_0) tensor.

It also writes io.json: for each file and array, the dtype, shape and values (row-major) that
umx must load. Regenerate with `python3 tests/reference/io.py` (needs numpy and ml_dtypes).
"""
import json
import os
import struct

import ml_dtypes
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "io")

# Values that probe each dtype's range and sign; six of each, so they fit a (2, 3) shape.
VALUES = {
    "bool": [True, False, True, True, False, False],
    "uint8": [0, 1, 2, 127, 128, 255],
    "uint16": [0, 1, 256, 32768, 65534, 65535],
    "uint32": [0, 1, 65536, 2**31, 2**32 - 2, 2**32 - 1],
    "uint64": [0, 1, 2**32, 2**63, 2**64 - 2, 2**64 - 1],
    "int8": [-128, -1, 0, 1, 2, 127],
    "int16": [-32768, -1, 0, 1, 256, 32767],
    "int32": [-(2**31), -1, 0, 1, 65536, 2**31 - 1],
    "int64": [-(2**63), -1, 0, 1, 2**32, 2**63 - 1],
    "float16": [0.0, -1.5, 3.25, 65504.0, 0.0009765625, -2.0**-24],
    "bfloat16": [0.0, -1.5, 3.25, 3.3895313892515355e38, 0.0009765625, -(2.0**-133)],
    "float32": [0.0, -1.5, 3.25, 3.4028234663852886e38, 1e-3, -(2.0**-149)],
    "float64": [0.0, -1.5, 3.25, 1.7976931348623157e308, 1e-3, -5e-324],
    "complex64": [0, 1 + 2j, -1.5 - 0.25j, 3e38j, 1e-3, -1],
}
NP = {
    "bool": np.bool_, "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32,
    "uint64": np.uint64, "int8": np.int8, "int16": np.int16, "int32": np.int32,
    "int64": np.int64, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
    "float32": np.float32, "float64": np.float64, "complex64": np.complex64,
}
NUMPY_DTYPES = [d for d in NP if d != "bfloat16"]

manifest = {"npy": [], "npz": [], "safetensors": [], "gguf": []}


def bits(x):
    """A float as the bits of its float64 value: exact through any JSON parser."""
    return int(np.float64(x).view(np.uint64))


def values_of(a):
    """The row-major values of `a` as JSON: ints, bools, floats as float64 bits (see `bits`),
    complex numbers as [re bits, im bits]."""
    flat = np.ascontiguousarray(a).reshape(-1)
    if np.issubdtype(a.dtype, np.complexfloating):
        return [[bits(z.real), bits(z.imag)] for z in flat]
    if a.dtype == np.bool_:
        return [bool(v) for v in flat]
    if np.issubdtype(a.dtype, np.integer):
        return [int(v) for v in flat]
    return [bits(v) for v in flat.astype(np.float64)]


def dtype_name(a):
    return "bfloat16" if a.dtype == ml_dtypes.bfloat16 else np.dtype(a.dtype.newbyteorder("=")).name


def record(a):
    return {"dtype": dtype_name(a), "shape": list(a.shape), "values": values_of(a)}


def sample(name, shape=(2, 3)):
    return np.array(VALUES[name], dtype=NP[name]).reshape(shape)


def write_npy():
    cases = {}
    for name in NUMPY_DTYPES:
        cases[f"{name}.npy"] = sample(name)
    for name in ["uint16", "int32", "int64", "float16", "float32", "float64", "complex64"]:
        cases[f"{name}_big_endian.npy"] = sample(name).astype(np.dtype(NP[name]).newbyteorder(">"))
    grid = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 7.5
    cases["float32_fortran.npy"] = np.asfortranarray(grid)
    cases["int16_fortran_big_endian.npy"] = np.asfortranarray(
        (np.arange(12).reshape(3, 4) - 6).astype(">i2"))
    cases["complex64_fortran.npy"] = np.asfortranarray(sample("complex64"))
    cases["scalar_float64.npy"] = np.array(-2.5)
    cases["empty_float32.npy"] = np.zeros((0, 3), dtype=np.float32)
    cases["vector_bool.npy"] = np.array([True, False, True])
    for fname, a in cases.items():
        np.save(os.path.join(OUT, fname), a)
        manifest["npy"].append({"file": fname, **record(a)})
    for version in [(2, 0), (3, 0)]:
        fname = f"version_{version[0]}_0.npy"
        a = np.asfortranarray(np.arange(6, dtype="<i4").reshape(2, 3))
        with open(os.path.join(OUT, fname), "wb") as f:
            np.lib.format.write_array(f, a, version=version)
        manifest["npy"].append({"file": fname, **record(a)})


def write_npz():
    arrays = {name: sample(name) for name in NUMPY_DTYPES}
    arrays["fortran"] = np.asfortranarray(np.arange(6, dtype=">f8").reshape(2, 3))
    arrays["scalar"] = np.array(7, dtype=np.int32)
    arrays["empty"] = np.zeros((2, 0), dtype=np.uint8)
    for fname, save in [("stored.npz", np.savez), ("deflated.npz", np.savez_compressed)]:
        save(os.path.join(OUT, fname), **arrays)
        manifest["npz"].append(
            {"file": fname, "arrays": {k: record(v) for k, v in arrays.items()}})
    # Positional arrays are named arr_0, arr_1, ...
    pos = [np.arange(3, dtype=np.int64), np.ones((2, 2), dtype=np.float16)]
    np.savez(os.path.join(OUT, "positional.npz"), *pos)
    manifest["npz"].append({"file": "positional.npz",
                            "arrays": {f"arr_{i}": record(a) for i, a in enumerate(pos)}})


ST_DTYPES = {
    "bool": "BOOL", "uint8": "U8", "uint16": "U16", "uint32": "U32", "uint64": "U64",
    "int8": "I8", "int16": "I16", "int32": "I32", "int64": "I64", "float16": "F16",
    "bfloat16": "BF16", "float32": "F32", "float64": "F64", "complex64": "C64",
}


def write_safetensors_by_hand(path, arrays, metadata):
    """The format, as its spec says: u64 LE header size, JSON header, little-endian data."""
    header = {"__metadata__": metadata}
    data = b""
    for name, a in arrays.items():
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": ST_DTYPES[dtype_name(a)], "shape": list(a.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def write_safetensors():
    arrays = {name: sample(name) for name in NP}
    arrays["scalar"] = np.array(1.25, dtype=np.float32)
    arrays["empty"] = np.zeros((0,), dtype=np.int32)
    arrays["nested.name.0"] = np.arange(4, dtype=np.int8).reshape(2, 2)
    metadata = {"format": "pt", "note": "written by tests/reference/io.py"}
    write_safetensors_by_hand(os.path.join(OUT, "by_hand.safetensors"), arrays, metadata)
    manifest["safetensors"].append(
        {"file": "by_hand.safetensors", "metadata": metadata,
         "arrays": {k: record(v) for k, v in arrays.items()}})
    try:
        from safetensors.numpy import save_file
    except ImportError:
        return
    # The package takes every dtype above but bfloat16 and complex64 from NumPy arrays.
    pkg = {k: v for k, v in arrays.items() if dtype_name(v) not in ("bfloat16", "complex64")}
    save_file(pkg, os.path.join(OUT, "package.safetensors"), metadata=metadata)
    manifest["safetensors"].append(
        {"file": "package.safetensors", "metadata": metadata,
         "arrays": {k: record(v) for k, v in pkg.items()}})


# GGUF metadata value types.
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FORMATS = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f",
                  BOOL: "?", U64: "Q", I64: "q", F64: "d"}
GGML = {"float32": 0, "float16": 1, "int8": 24, "int16": 25, "int32": 26, "int64": 27,
        "float64": 28, "bfloat16": 30}
Q8_0 = 8


class Gguf:
    def __init__(self, version, endian):
        self.version, self.e = version, endian

    def pack(self, fmt, *v):
        return struct.pack(self.e + fmt, *v)

    def string(self, s):
        b = s.encode()
        return self.pack("Q", len(b)) + b

    def value(self, ty, v):
        if ty == STRING:
            return self.string(v)
        if ty == ARRAY:
            elem, items = v
            return self.pack("IQ", elem, len(items)) + b"".join(self.value(elem, x) for x in items)
        return self.pack(SCALAR_FORMATS[ty], v)

    def file(self, kvs, tensors, alignment=32):
        """kvs: [(key, type, value)]; tensors: [(name, ggml type, numpy shape, raw bytes)]."""
        out = b"GGUF" + self.pack("I", self.version) + self.pack("QQ", len(tensors), len(kvs))
        for key, ty, v in kvs:
            out += self.string(key) + self.pack("I", ty) + self.value(ty, v)
        offset, blobs = 0, b""
        for name, ty, shape, raw in tensors:
            dims = list(reversed(shape))  # GGUF lists dimensions innermost first
            out += self.string(name) + self.pack("I", len(dims))
            out += b"".join(self.pack("Q", d) for d in dims) + self.pack("IQ", ty, offset)
            blobs += raw + b"\0" * (-len(raw) % alignment)
            offset = len(blobs)
        out += b"\0" * (-len(out) % alignment)
        return out + blobs


def write_gguf():
    kvs = [
        ("general.architecture", STRING, "tiny"),
        ("general.alignment", U32, 64),
        ("test.u8", U8, 200), ("test.i8", I8, -100), ("test.u16", U16, 60000),
        ("test.i16", I16, -30000), ("test.u32", U32, 4000000000), ("test.i32", I32, -2000000000),
        ("test.f32", F32, 0.5), ("test.bool", BOOL, True), ("test.string", STRING, "héllo"),
        ("test.u64", U64, 2**64 - 1), ("test.i64", I64, -(2**63)), ("test.f64", F64, -0.125),
        ("test.array_i32", ARRAY, (I32, [1, -2, 3])),
        ("test.array_string", ARRAY, (STRING, ["a", "bc", ""])),
        ("test.array_nested", ARRAY, (ARRAY, [(U8, [1, 2]), (U8, [])])),
        ("test.array_empty", ARRAY, (F32, [])),
    ]
    tensors, expected = [], {}
    for name, ty in GGML.items():
        shape = (3, 2) if name == "int8" else (2, 3)
        a = sample(name).reshape(shape)
        tensors.append((f"t.{name}", ty, shape, a.astype(a.dtype.newbyteorder("<")).tobytes()))
        expected[f"t.{name}"] = record(a)
    vec = np.array([1.0, -2.0, 0.5, 4.0], dtype=np.float32)
    tensors.append(("t.vector", 0, (4,), vec.tobytes()))
    expected["t.vector"] = record(vec)
    # One Q8_0 block: an f16 scale and 32 int8 values, 34 bytes for 32 values.
    q = struct.pack("<e", 0.5) + bytes(range(32))
    tensors.append(("t.q8_0", Q8_0, (1, 32), q))
    meta = {k: [ty, v] for k, ty, v in kvs}
    g = Gguf(3, "<")
    with open(os.path.join(OUT, "v3.gguf"), "wb") as f:
        f.write(g.file(kvs, tensors, alignment=64))
    manifest["gguf"].append({"file": "v3.gguf", "version": 3, "alignment": 64,
                             "metadata": meta, "arrays": expected,
                             "quantized": {"t.q8_0": ["Q8_0", [1, 32]]}})
    # Version 2, default alignment, no quantized tensor.
    small = [("general.architecture", STRING, "tiny2"), ("n", U64, 3)]
    plain = [t for t in tensors if t[0] in ("t.float32", "t.float16", "t.bfloat16")]
    with open(os.path.join(OUT, "v2.gguf"), "wb") as f:
        f.write(Gguf(2, "<").file(small, plain))
    manifest["gguf"].append({"file": "v2.gguf", "version": 2, "alignment": 32,
                             "metadata": {k: [ty, v] for k, ty, v in small},
                             "arrays": {t[0]: expected[t[0]] for t in plain}, "quantized": {}})
    # Version 3, big-endian: numbers and tensor data both.
    be = []
    for name, ty, shape, raw in plain + [t for t in tensors if t[0] in ("t.int64", "t.float64")]:
        size = np.dtype(NP[name[2:]]).itemsize
        swapped = np.frombuffer(raw, dtype=np.uint8).reshape(-1, size)[:, ::-1].tobytes()
        be.append((name, ty, shape, swapped))
    with open(os.path.join(OUT, "v3_big_endian.gguf"), "wb") as f:
        f.write(Gguf(3, ">").file(small, be))
    manifest["gguf"].append({"file": "v3_big_endian.gguf", "version": 3, "alignment": 32,
                             "metadata": {k: [ty, v] for k, ty, v in small},
                             "arrays": {t[0]: expected[t[0]] for t in be}, "quantized": {}})


def main():
    os.makedirs(OUT, exist_ok=True)
    write_npy()
    write_npz()
    write_safetensors()
    write_gguf()
    with open(os.path.join(OUT, "io.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
