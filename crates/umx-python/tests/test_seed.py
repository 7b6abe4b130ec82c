"""The seed program of the foundation issue, with only its import changed."""

import numpy as np


def test_seed_program_runs():
    import umx.core as mx

    x = mx.random.normal(shape=(1024, 1024)); y = mx.matmul(x, x.T); print(y[0, 0])  # noqa: E702
    y[0, 0] = 0.0; z = mx.sum(y)  # noqa: E702
    a = mx.array([1, 2, 3, 4]); b = a * 2; c = b + 5; d = mx.sum(c); mx.eval(d)  # noqa: E702

    assert d.item() == 40
    nx = np.array(x)
    ny = nx @ nx.T
    ny[0, 0] = 0
    assert abs(z.item() - ny.sum()) <= 1e-3 * abs(ny).sum()
    assert y[0, 0].item() == 0.0
