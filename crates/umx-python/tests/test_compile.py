"""mx.compile: the same results as the plain function, retracing per signature, shapeless,
captured state, composition with grad."""

import numpy as np
import pytest
from conftest import assert_array

import umx.core as mx
import umx.nn as nn
import umx.optimizers as optim


def test_compiled_functions_give_the_plain_results():
    def f(x, y):
        return mx.exp(x) * 2 + y / 3

    cf = mx.compile(f)
    x, y = mx.array([0.5, 1.0]), mx.array([3.0, 6.0])
    assert_array(cf(x, y), np.array(f(x, y)), rtol=1e-6)
    assert_array(cf(x * 2, y), np.array(f(x * 2, y)), rtol=1e-6)
    x3 = mx.arange(3, dtype=mx.float32)
    assert_array(cf(x3, x3), np.array(f(x3, x3)), rtol=1e-6)


def test_trees_and_constants_retrace():
    calls = []

    def f(d, scale):
        calls.append(scale)
        return {"out": d["a"] * scale + d["b"]}

    cf = mx.compile(f)
    d = {"a": mx.array([1.0, 2.0]), "b": mx.array([1.0, 1.0])}
    assert_array(cf(d, 2.0)["out"], [3, 5])
    assert_array(cf(d, 2.0)["out"], [3, 5])
    assert_array(cf(d, 3.0)["out"], [4, 7])
    assert calls == [2.0, 3.0]


def test_shapeless_does_not_retrace_for_new_shapes():
    calls = []

    def f(x):
        calls.append(x.shape)
        return mx.sin(x) + 1

    cf = mx.compile(f, shapeless=True)
    assert_array(cf(mx.array([0.0, 1.0])), np.sin([0.0, 1.0]) + 1, rtol=1e-6)
    assert_array(cf(mx.array([0.0, 1.0, 2.0])), np.sin([0.0, 1.0, 2.0]) + 1, rtol=1e-6)
    assert len(calls) == 1


def test_grad_of_a_compiled_function():
    cf = mx.compile(lambda x: mx.sum(mx.sin(x) * x))
    x = mx.array([0.5, 1.5])
    g = mx.grad(cf)(x)
    xs = np.array([0.5, 1.5])
    assert_array(g, np.cos(xs) * xs + np.sin(xs), rtol=1e-5)


def test_captured_state_is_read_and_written():
    state = {"count": mx.array(0.0)}

    def step(x):
        state["count"] = state["count"] + x
        return state["count"] * 2

    cf = mx.compile(step, inputs=state, outputs=state)
    assert cf(mx.array(1.0)).item() == 2.0
    assert cf(mx.array(2.0)).item() == 6.0
    assert cf(mx.array(3.0)).item() == 12.0
    assert state["count"].item() == 6.0


def test_a_compiled_training_step_matches_the_plain_one():
    def make():
        mx.random.seed(1)
        model = nn.Linear(3, 2)
        return model, optim.SGD(learning_rate=0.1, momentum=0.9)

    x = mx.array(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32))
    y = mx.array([0, 1, 1, 0, 1, 0, 0, 1])

    def run(compiled):
        model, opt = make()
        loss_and_grad = nn.value_and_grad(
            model, lambda m, x, y: nn.losses.cross_entropy(m(x), y, reduction="mean"))
        state = [model.state, opt.state]

        def step(x, y):
            loss, grads = loss_and_grad(model, x, y)
            opt.update(model, grads)
            return loss

        if compiled:
            step = mx.compile(step, inputs=state, outputs=state)
        losses = []
        for _ in range(4):
            losses.append(step(x, y).item())
            mx.eval(state)
        return losses, np.array(model.weight)

    plain, w_plain = run(False)
    comp, w_comp = run(True)
    np.testing.assert_allclose(comp, plain, rtol=1e-5)
    np.testing.assert_allclose(w_comp, w_plain, rtol=1e-5, atol=1e-6)


def test_disable_compile_calls_the_function():
    calls = []
    cf = mx.compile(lambda x: calls.append(1) or x + 1)
    mx.disable_compile()
    try:
        cf(mx.array(1.0))
        cf(mx.array(1.0))
    finally:
        mx.enable_compile()
    assert len(calls) == 2


def test_the_random_state_threads_through_a_compiled_function():
    # MLX's recipe: the global key is captured state, so each call draws new numbers, the
    # same ones the uncompiled function draws from the same seed.
    def noisy(x):
        return x + mx.random.uniform(shape=x.shape)

    x = mx.zeros((4,))
    mx.random.seed(3)
    plain = [np.array(noisy(x)) for _ in range(3)]
    state = [mx.random.state]
    compiled = mx.compile(noisy, inputs=state, outputs=state)
    mx.random.seed(3)
    got = [np.array(compiled(x)) for _ in range(3)]
    for p, g in zip(plain, got):
        np.testing.assert_allclose(g, p, rtol=1e-6)
    assert not np.allclose(got[0], got[1])
    # The state is an array list; a key put there is the next draw's.
    mx.random.state[0] = mx.random.key(7)
    a = mx.random.uniform(shape=(3,))
    b = mx.random.uniform(shape=(3,), key=mx.random.split(mx.random.key(7))[1])
    np.testing.assert_allclose(np.array(a), np.array(b))
