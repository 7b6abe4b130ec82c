"""Transforms over pytrees: grad, value_and_grad, vjp, jvp, vmap, stop_gradient, checkpoint,
custom_function."""

import math

import numpy as np
import pytest
from conftest import assert_array

import umx.core as mx


def test_grad_of_a_scalar_function():
    df = mx.grad(lambda x: mx.sum(mx.sin(x)))
    x = mx.array([0.0, 1.0, 2.0])
    assert_array(df(x), np.cos([0.0, 1.0, 2.0]), rtol=1e-6)


def test_grad_of_grad():
    d2f = mx.grad(mx.grad(lambda x: x**3))
    assert d2f(mx.array(2.0)).item() == pytest.approx(12.0)


def test_grad_with_argnums_and_argnames():
    def f(x, y, z=None):
        return (x * y + z * z).sum()

    x, y, z = mx.array([1.0, 2.0]), mx.array([3.0, 4.0]), mx.array([5.0, 6.0])
    assert_array(mx.grad(f)(x, y, z=z), [3, 4])
    dx, dy = mx.grad(f, argnums=(0, 1))(x, y, z=z)
    assert_array(dx, [3, 4])
    assert_array(dy, [1, 2])
    (dy,), kw = mx.grad(f, argnums=[1], argnames="z")(x, y, z=z)
    assert_array(dy, [1, 2])
    assert_array(kw["z"], [10, 12])
    pos, kw = mx.grad(f, argnames=["z"])(x, y, z=z)
    assert pos == () and list(kw) == ["z"]


def test_grad_over_pytrees_keeps_their_structure():
    params = {"w": mx.array([1.0, 2.0]), "layers": [mx.array(3.0), (mx.array(4.0),)]}

    def loss(p):
        return (p["w"] ** 2).sum() + p["layers"][0] * p["layers"][1][0]

    g = mx.grad(loss)(params)
    assert set(g) == {"w", "layers"}
    assert_array(g["w"], [2, 4])
    assert g["layers"][0].item() == 4.0
    assert isinstance(g["layers"][1], tuple) and g["layers"][1][0].item() == 3.0


def test_value_and_grad_returns_aux_outputs():
    def f(x):
        y = (x * x).sum()
        return y, {"double": 2 * x}

    (v, aux), g = mx.value_and_grad(f)(mx.array([1.0, 2.0]))
    assert v.item() == 5.0
    assert_array(aux["double"], [2, 4])
    assert_array(g, [2, 4])


def test_grad_needs_a_scalar_output():
    with pytest.raises(ValueError, match="scalar"):
        mx.grad(lambda x: x * 2)(mx.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        mx.grad(lambda x: x, argnums=3)(mx.array(1.0))


def test_exceptions_in_the_function_come_through_unchanged():
    def f(x):
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        mx.grad(f)(mx.array(1.0))
    with pytest.raises(ZeroDivisionError):
        mx.vmap(lambda x: 1 / 0)(mx.array([1.0]))


def test_vjp_and_jvp():
    f = lambda x, y: [x * y, mx.sin(x)]  # noqa: E731
    x, y = mx.array([1.0, 2.0]), mx.array([3.0, 4.0])
    outs, vjps = mx.vjp(f, [x, y], [mx.ones((2,)), mx.zeros((2,))])
    assert_array(outs[0], [3, 8])
    assert_array(vjps[0], [3, 4])
    assert_array(vjps[1], [1, 2])
    outs, jvps = mx.jvp(f, [x, y], [mx.ones((2,)), mx.zeros((2,))])
    assert_array(jvps[0], [3, 4])
    assert_array(jvps[1], np.cos([1.0, 2.0]), rtol=1e-6)


def test_vmap_maps_over_axes():
    dot = lambda a, b: (a * b).sum()  # noqa: E731
    x = mx.array([[1.0, 2.0], [3.0, 4.0]])
    y = mx.array([1.0, 10.0])
    assert_array(mx.vmap(dot, in_axes=(0, None))(x, y), [21, 43])
    assert_array(mx.vmap(dot, in_axes=(1, None))(x, y), [31, 42])
    assert_array(mx.vmap(lambda a: a * 2, in_axes=1, out_axes=1)(x), x * 2)
    assert_array(mx.vmap(lambda a: a.sum())(mx.arange(6).reshape(3, 2)), [1, 5, 9])


def test_vmap_over_pytrees():
    def f(d):
        return {"s": d["a"] + d["b"], "p": d["a"] * 2}

    d = {"a": mx.array([1.0, 2.0]), "b": mx.array([10.0, 20.0])}
    out = mx.vmap(f)(d)
    assert_array(out["s"], [11, 22])
    out = mx.vmap(f, in_axes=({"a": 0, "b": 0},), out_axes={"s": 0, "p": 0})(d)
    assert_array(out["p"], [2, 4])


def test_vmap_of_grad_is_per_example_gradients():
    f = lambda w, x: ((w * x).sum()) ** 2  # noqa: E731
    per_example = mx.vmap(mx.grad(f), in_axes=(None, 0))
    w = mx.array([1.0, 2.0])
    xs = mx.array([[1.0, 0.0], [0.0, 1.0]])
    assert_array(per_example(w, xs), [[2, 0], [0, 4]])


def test_stop_gradient_blocks_derivatives():
    g = mx.grad(lambda x: x * mx.stop_gradient(x))(mx.array(3.0))
    assert g.item() == 3.0


def test_checkpoint_gives_the_same_gradient():
    def block(x, scale=2.0):
        return mx.tanh(mx.sin(x)) * scale

    ck = mx.checkpoint(block)
    x = mx.array([0.5, -1.0])
    g1 = mx.grad(lambda x: ck(x, scale=3.0).sum())(x)
    g2 = mx.grad(lambda x: block(x, scale=3.0).sum())(x)
    assert_array(g1, np.array(g2), rtol=1e-6)


def test_custom_function_rules():
    @mx.custom_function
    def f(x, y):
        return mx.sin(x) * y

    @f.vjp
    def f_vjp(primals, cotangent, output):
        x, y = primals
        return cotangent * mx.cos(x) * y * 10, cotangent * mx.sin(x)

    @f.jvp
    def f_jvp(primals, tangents):
        x, y = primals
        dx, dy = tangents
        return dx * mx.cos(x) * y + dy * mx.sin(x)

    x, y = mx.array(0.5), mx.array(2.0)
    assert f(x, y).item() == pytest.approx(math.sin(0.5) * 2)
    dx, dy = mx.grad(lambda x, y: f(x, y), argnums=(0, 1))(x, y)
    assert dx.item() == pytest.approx(math.cos(0.5) * 2 * 10, rel=1e-6)
    assert dy.item() == pytest.approx(math.sin(0.5), rel=1e-6)
    _, (t,) = mx.jvp(lambda x, y: f(x, y), [x, y], [mx.array(1.0), mx.array(0.0)])
    assert t.item() == pytest.approx(math.cos(0.5) * 2, rel=1e-6)


def test_custom_function_vmap_rule():
    calls = []

    @mx.custom_function
    def g(x):
        return x * 2

    @g.vmap
    def g_vmap(inputs, axes):
        calls.append(axes)
        (x,) = inputs
        return x * 2, axes[0]

    assert_array(mx.vmap(g)(mx.array([1.0, 2.0])), [2, 4])
    assert calls == [(0,)]
