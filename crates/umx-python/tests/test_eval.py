"""Evaluation: laziness, and the interpreter released while arrays compute."""

import threading

import numpy as np
from conftest import assert_array

import umx.core as mx


def test_arrays_are_lazy_until_read():
    a = mx.array([1.0, 2.0])
    b = mx.exp(a) * 2  # builds a graph; nothing computes yet
    assert b.shape == (2,) and b.dtype == mx.float32
    mx.eval(b)
    assert_array(b, 2 * np.exp([1.0, 2.0]), rtol=1e-6)


def test_other_python_threads_run_while_an_array_evaluates():
    x = mx.random.normal((384, 384), key=mx.random.key(0))
    mx.eval(x)
    y = x
    for _ in range(12):
        y = mx.tanh(y @ x) * 0.1
    started, done = threading.Event(), threading.Event()

    def work():
        started.set()
        mx.eval(y)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    started.wait()
    count = 0
    while not done.is_set():
        count += 1
    t.join()
    # With the interpreter held during eval, this thread could not count until it finished.
    assert count > 100, count
