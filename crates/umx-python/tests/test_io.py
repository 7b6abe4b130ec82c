"""Saving and loading: npy, npz, safetensors, against NumPy's own readers."""

import numpy as np
from conftest import assert_array

import umx.core as mx


def test_npy_round_trips_and_numpy_reads_it(tmp_path):
    a = mx.arange(6, dtype=mx.float32).reshape(2, 3)
    mx.save(str(tmp_path / "a"), a)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.array(a))
    b = mx.load(str(tmp_path / "a.npy"))
    assert_array(b, np.array(a), mx.float32)
    np.save(tmp_path / "n.npy", np.arange(4, dtype=np.int16))
    assert_array(mx.load(tmp_path / "n.npy"), np.arange(4), mx.int16)


def test_npz_and_safetensors_round_trip(tmp_path):
    a, b = mx.array([1, 2, 3]), mx.ones((2, 2), mx.float16)
    mx.savez(tmp_path / "w.npz", a, bias=b)
    with np.load(tmp_path / "w.npz") as z:
        assert set(z.files) == {"arr_0", "bias"}
    d = mx.load(tmp_path / "w.npz")
    assert_array(d["arr_0"], [1, 2, 3], mx.int32)
    assert_array(d["bias"], np.ones((2, 2)), mx.float16)
    mx.save_safetensors(str(tmp_path / "w.safetensors"), {"a": a, "b": b}, {"k": "v"})
    d, meta = mx.load(str(tmp_path / "w.safetensors"), return_metadata=True)
    assert meta == {"k": "v"}
    assert_array(d["a"], [1, 2, 3])
