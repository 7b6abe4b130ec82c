"""umx.core.fast: MLX's fused ops with its signatures, against NumPy."""

import numpy as np
import pytest

import umx.core as mx


def rng_arr(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype(np.float32)


def test_rms_and_layer_norm_match_numpy():
    x, w, b = rng_arr(3, 8), rng_arr(8, seed=1), rng_arr(8, seed=2)
    got = np.array(mx.fast.rms_norm(mx.array(x), mx.array(w), 1e-5))
    want = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * w
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    got = np.array(mx.fast.layer_norm(mx.array(x), mx.array(w), mx.array(b), 1e-5))
    xc = x - x.mean(-1, keepdims=True)
    want = xc / np.sqrt((xc * xc).mean(-1, keepdims=True) + 1e-5) * w + b
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    got = np.array(mx.fast.rms_norm(mx.array(x), None, 1e-5))
    np.testing.assert_allclose(got, x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5), rtol=1e-5)


def test_rope_turns_feature_pairs_by_position():
    x = rng_arr(1, 3, 4)
    got = np.array(mx.fast.rope(mx.array(x), 4, traditional=False, base=10000.0, scale=1.0, offset=2))
    pos = np.arange(2, 5)[:, None] * 10000.0 ** (-np.arange(2) / 2)
    c, s = np.cos(pos), np.sin(pos)
    a, b = x[0, :, :2], x[0, :, 2:]
    want = np.concatenate([a * c - b * s, a * s + b * c], -1)[None]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    offs = mx.array(np.array([2], np.int32))
    got2 = np.array(mx.fast.rope(mx.array(x), 4, traditional=False, base=10000.0, scale=1.0, offset=offs))
    np.testing.assert_allclose(got2, want, rtol=1e-5, atol=1e-6)


def test_attention_with_grouped_heads_and_a_causal_mask():
    q, k, v = rng_arr(1, 4, 3, 8), rng_arr(1, 2, 5, 8, seed=1), rng_arr(1, 2, 5, 8, seed=2)
    got = np.array(mx.fast.scaled_dot_product_attention(
        mx.array(q), mx.array(k), mx.array(v), scale=0.5, mask="causal"))
    kk, vv = np.repeat(k, 2, 1), np.repeat(v, 2, 1)
    s = q @ kk.transpose(0, 1, 3, 2) * 0.5
    s = np.where(np.arange(5)[None, :] <= np.arange(3)[:, None] + 2, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(got, p @ vv, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="causal"):
        mx.fast.scaled_dot_product_attention(mx.array(q), mx.array(k), mx.array(v), scale=0.5, mask="upper")


def test_cuda_kernel_runs_mlxs_example_on_a_gpu_and_refuses_the_cpu():
    source = """
        auto elem = cooperative_groups::this_grid().thread_rank();
        if (elem < n) { T tmp = inp[elem]; out[elem] = exp(tmp); }
    """
    kernel = mx.fast.cuda_kernel(
        name="myexp", input_names=["inp"], output_names=["out"], source=source)
    a = mx.array(rng_arr(4, 16))

    def run(stream):
        return kernel(inputs=[a], template=[("T", mx.float32), ("n", a.size)],
                      grid=(a.size, 1, 1), threadgroup=(256, 1, 1),
                      output_shapes=[a.shape], output_dtypes=[a.dtype], stream=stream)[0]

    with pytest.raises(Exception, match="GPU only"):
        mx.eval(run(mx.cpu))
    with pytest.raises(ValueError, match="C identifier"):
        mx.fast.cuda_kernel(name="my exp", input_names=["inp"], output_names=["out"], source="")
    if not mx.is_available(mx.gpu):
        pytest.skip("no GPU")
    np.testing.assert_allclose(np.array(run(mx.gpu)), np.exp(np.array(a)), rtol=1e-6)
