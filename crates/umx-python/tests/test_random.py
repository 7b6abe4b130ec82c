"""umx.core.random: keys, determinism, shapes and dtypes, distributions."""

import numpy as np
import pytest
from conftest import assert_array

import umx.core as mx


def test_keys_are_uint32_pairs():
    k = mx.random.key(5)
    assert k.dtype == mx.uint32 and k.tolist() == [0, 5]
    assert mx.random.split(k).shape == (2, 2)
    assert mx.random.split(k, 3).shape == (3, 2)


def test_a_key_determines_the_samples():
    k = mx.random.key(42)
    for f in [lambda key: mx.random.normal((3, 2), key=key),
              lambda key: mx.random.uniform(shape=(4,), key=key),
              lambda key: mx.random.randint(0, 10, (5,), key=key),
              lambda key: mx.random.bernoulli(0.3, (6,), key=key),
              lambda key: mx.random.gumbel((2,), key=key),
              lambda key: mx.random.laplace((2,), key=key),
              lambda key: mx.random.truncated_normal(-1, 1, (3,), key=key),
              lambda key: mx.random.permutation(6, key=key),
              lambda key: mx.random.categorical(mx.zeros((2, 5)), key=key)]:
        assert f(k).tolist() == f(k).tolist()
    a = mx.random.normal((8,), key=mx.random.key(0))
    b = mx.random.normal((8,), key=mx.random.key(1))
    assert a.tolist() != b.tolist()


def test_seed_restarts_the_global_sequence():
    mx.random.seed(3)
    a = mx.random.uniform(shape=(4,))
    mx.random.seed(3)
    b = mx.random.uniform(shape=(4,))
    c = mx.random.uniform(shape=(4,))
    assert a.tolist() == b.tolist() != c.tolist()


def test_samples_match_mlx_for_a_key(mlx):
    for seed in [0, 1, 7]:
        k, mk = mx.random.key(seed), mlx.random.key(seed)
        assert_array(mx.random.uniform(shape=(5,), key=k),
                     np.array(mlx.random.uniform(shape=(5,), key=mk)))
        assert_array(mx.random.normal((5,), key=k), np.array(mlx.random.normal((5,), key=mk)),
                     rtol=1e-5, atol=1e-6)
        assert (mx.random.randint(0, 100, (6,), key=k).tolist()
                == mlx.random.randint(0, 100, (6,), key=mk).tolist())
        assert (mx.random.split(k).tolist() == mlx.random.split(mk).tolist())


def test_shapes_dtypes_and_ranges():
    k = mx.random.key(0)
    u = mx.random.uniform(-2, 3, (1000,), key=k)
    assert u.dtype == mx.float32 and -2 <= u.min().item() and u.max().item() < 3
    assert mx.random.uniform(shape=(2,), dtype=mx.float16, key=k).dtype == mx.float16
    n = mx.random.normal((20000,), key=k, loc=1.0, scale=2.0)
    assert abs(n.mean().item() - 1.0) < 0.05 and abs(n.std().item() - 2.0) < 0.05
    r = mx.random.randint(3, 7, (1000,), key=k)
    assert r.dtype == mx.int32 and r.min().item() == 3 and r.max().item() == 6
    b = mx.random.bernoulli(0.25, (20000,), key=k)
    assert b.dtype == mx.bool_ and abs(b.astype(mx.float32).mean().item() - 0.25) < 0.02
    t = mx.random.truncated_normal(-0.5, 0.5, (1000,), key=k)
    assert -0.5 <= t.min().item() and t.max().item() <= 0.5
    p = mx.random.permutation(10, key=k)
    assert sorted(p.tolist()) == list(range(10))
    q = mx.random.permutation(mx.arange(10) * 2, key=k)
    assert sorted(q.tolist()) == list(range(0, 20, 2))
    c = mx.random.categorical(mx.array([[0.0, 100.0, 0.0]]), num_samples=4, key=k)
    assert c.shape == (1, 4) and c.tolist() == [[1, 1, 1, 1]]
    assert mx.random.normal(key=k).shape == ()


def test_bad_keys_raise_value_error():
    with pytest.raises(ValueError, match="key"):
        mx.random.normal((2,), key=mx.array([1, 2, 3]))
