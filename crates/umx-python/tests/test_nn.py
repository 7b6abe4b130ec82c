"""umx.nn, umx.optimizers and umx.utils: modules, layers, losses, optimizers, tree helpers,
and a small training loop."""

import numpy as np
import pytest
from conftest import assert_array

import umx.core as mx
import umx.nn as nn
import umx.optimizers as optim
from umx.utils import tree_flatten, tree_map, tree_merge, tree_reduce, tree_unflatten


class MLP(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.layers = [nn.Linear(i, o) for i, o in zip(dims[:-1], dims[1:])]
        self.act = nn.ReLU()

    def __call__(self, x):
        for l in self.layers[:-1]:
            x = self.act(l(x))
        return self.layers[-1](x)


def test_modules_hold_their_parameters_as_nested_dicts():
    m = MLP([3, 4, 2])
    p = m.parameters()
    assert list(p) == ["layers", "act"] and p["act"] == {}  # as MLX: modules are dicts
    assert p["layers"][0]["weight"].shape == (4, 3)
    assert p["layers"][1]["bias"].shape == (2,)
    assert len(tree_flatten(p)) == 4
    assert m.layers[0].weight is p["layers"][0]["weight"]


def test_freeze_and_unfreeze_change_trainable_parameters():
    m = MLP([3, 4, 2])
    m.layers[0].freeze()
    keys = [k for k, _ in tree_flatten(m.trainable_parameters())]
    assert keys == ["layers.1.weight", "layers.1.bias"]
    m.unfreeze()
    assert len(tree_flatten(m.trainable_parameters())) == 4
    m.freeze(keys="bias")
    assert [k for k, _ in tree_flatten(m.trainable_parameters())] == [
        "layers.0.weight", "layers.1.weight"]


def test_update_puts_new_arrays_in_place():
    m = nn.Linear(2, 1)
    m.update({"weight": mx.ones((1, 2)), "bias": mx.zeros((1,))})
    assert_array(m(mx.array([[1.0, 2.0]])), [[3.0]])
    with pytest.raises(ValueError):
        m.update({"nope": mx.ones((1,))})


def test_train_and_eval_modes():
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    assert m.training and m.layers[1].training
    m.eval()
    assert not m.layers[1].training
    x = mx.ones((3, 2))
    assert_array(m.layers[1](x), np.ones((3, 2)))
    m.train()
    assert m.layers[1].training


def test_linear_matches_numpy():
    m = nn.Linear(3, 2)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    w, b = np.array(m.weight), np.array(m.bias)
    assert_array(m(mx.array(x)), x @ w.T + b, rtol=1e-5, atol=1e-6)
    assert "bias" not in nn.Linear(3, 2, bias=False)


def test_activations_match_numpy():
    x = np.linspace(-3, 3, 7).astype(np.float32)
    a = mx.array(x)
    assert_array(nn.relu(a), np.maximum(x, 0))
    assert_array(nn.ReLU()(a), np.maximum(x, 0))
    assert_array(nn.leaky_relu(a), np.where(x > 0, x, 0.01 * x), rtol=1e-6)
    assert_array(nn.silu(a), x / (1 + np.exp(-x)), rtol=1e-5, atol=1e-6)
    assert_array(nn.softplus(a), np.log1p(np.exp(x)), rtol=1e-5)
    assert_array(nn.GELU()(a), nn.gelu(a))
    assert_array(nn.log_softmax(a), x - np.log(np.exp(x).sum()), rtol=1e-5, atol=1e-6)
    assert_array(nn.tanh(a), np.tanh(x), rtol=1e-6)


def test_norms_and_embedding():
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    ln = nn.LayerNorm(6)
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    assert_array(ln(mx.array(x)), ref, rtol=1e-4, atol=1e-5)
    rms = nn.RMSNorm(6)
    assert_array(rms(mx.array(x)), x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-5),
                 rtol=1e-4, atol=1e-5)
    e = nn.Embedding(10, 3)
    assert e(mx.array([[1, 2]])).shape == (1, 2, 3)
    assert_array(e(mx.array([4])), np.array(e.weight)[[4]])


def test_losses_match_numpy():
    logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], dtype=np.float32)
    targets = np.array([0, 1])
    lse = np.log(np.exp(logits).sum(-1))
    ce = lse - logits[np.arange(2), targets]
    l, t = mx.array(logits), mx.array(targets)
    assert_array(nn.losses.cross_entropy(l, t), ce, rtol=1e-5)
    assert nn.losses.cross_entropy(l, t, reduction="mean").item() == pytest.approx(ce.mean(), rel=1e-5)
    probs = np.eye(3, dtype=np.float32)[targets]
    assert_array(nn.losses.cross_entropy(l, mx.array(probs)), ce, rtol=1e-5)
    smooth = nn.losses.cross_entropy(l, t, label_smoothing=0.1)
    ref = lse - 0.9 * logits[np.arange(2), targets] - 0.1 * logits.mean(-1)
    assert_array(smooth, ref, rtol=1e-5)
    p, q = mx.array([1.0, 2.0, 3.0]), mx.array([1.5, 2.0, 1.0])
    assert nn.losses.mse_loss(p, q).item() == pytest.approx((0.25 + 0 + 4) / 3)
    assert nn.losses.l1_loss(p, q, reduction="sum").item() == pytest.approx(2.5)
    assert_array(nn.losses.nll_loss(l, t), -logits[np.arange(2), targets])
    with pytest.raises(ValueError):
        nn.losses.cross_entropy(l, mx.array([0, 1, 2]))


def test_optimizers_match_their_update_rules():
    w0 = np.array([1.0, -2.0], dtype=np.float32)
    g = np.array([0.5, 0.25], dtype=np.float32)

    class P(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = mx.array(w0)

    grads = {"w": mx.array(g)}
    m = P()
    optim.SGD(learning_rate=0.1).update(m, grads)
    assert_array(m.w, w0 - 0.1 * g)

    m = P()
    opt = optim.SGD(learning_rate=0.1, momentum=0.9)
    opt.update(m, grads)
    opt.update(m, grads)
    assert_array(m.w, w0 - 0.1 * g - 0.1 * (0.9 * g + g), rtol=1e-6)

    m = P()
    opt = optim.Adam(learning_rate=0.01)
    opt.update(m, grads)
    mm = 0.1 * g
    v = 0.001 * g * g
    assert_array(m.w, w0 - 0.01 * mm / (np.sqrt(v) + 1e-8), rtol=1e-5)
    assert opt.state["step"].item() == 1
    assert set(opt.state["w"]) == {"m", "v"}

    m = P()
    optim.AdamW(learning_rate=0.01, weight_decay=0.1).update(m, grads)
    decayed = w0 * (1 - 0.01 * 0.1)
    assert_array(m.w, decayed - 0.01 * mm / (np.sqrt(v) + 1e-8), rtol=1e-5)


def test_schedules_and_grad_clipping():
    s = optim.cosine_decay(1.0, 10)
    assert s(mx.array(0)).item() == pytest.approx(1.0)
    assert s(mx.array(10)).item() == pytest.approx(0.0, abs=1e-6)
    lin = optim.linear_schedule(0.0, 1.0, 4)
    assert lin(mx.array(2)).item() == pytest.approx(0.5)
    opt = optim.SGD(learning_rate=optim.step_decay(1.0, 0.5, 1))
    m = nn.Linear(1, 1)
    opt.update(m, tree_map(mx.zeros_like, m.trainable_parameters()))
    assert opt.learning_rate.item() == pytest.approx(1.0)
    opt.update(m, tree_map(mx.zeros_like, m.trainable_parameters()))
    assert opt.learning_rate.item() == pytest.approx(0.5)
    clipped, norm = optim.clip_grad_norm({"a": mx.array([3.0, 4.0])}, 1.0)
    assert norm.item() == pytest.approx(5.0)
    assert_array(clipped["a"], [0.6, 0.8], rtol=1e-5)


def test_tree_utils():
    tree = {"a": [mx.array(1), mx.array(2)], "b": {"c": mx.array(3)}}
    flat = tree_flatten(tree)
    assert [k for k, _ in flat] == ["a.0", "a.1", "b.c"]
    back = tree_unflatten(flat)
    assert back["a"][1].item() == 2 and back["b"]["c"].item() == 3
    doubled = tree_map(lambda x: x * 2, tree)
    assert doubled["b"]["c"].item() == 6
    total = tree_reduce(lambda acc, x: acc + x.item(), tree, 0)
    assert total == 6
    merged = tree_merge({"a": 1}, {"b": 2})
    assert merged == {"a": 1, "b": 2}
    assert tree_flatten([1, [2, 3]]) == [("0", 1), ("1.0", 2), ("1.1", 3)]


def test_training_loop_learns_a_classifier():
    """A classifier of points in two blobs, with nn.value_and_grad, optimizer.update and
    nn.losses.cross_entropy (the seed's training loop)."""
    mx.random.seed(0)
    rng = np.random.default_rng(0)
    n = 64
    x = np.concatenate([rng.normal(-1, 0.5, (n, 2)), rng.normal(1, 0.5, (n, 2))]).astype(np.float32)
    y = np.concatenate([np.zeros(n), np.ones(n)]).astype(np.int32)
    X, Y = mx.array(x), mx.array(y)

    model = MLP([2, 16, 2])
    mx.eval(model.parameters())

    def loss_fn(model, X, Y):
        return nn.losses.cross_entropy(model(X), Y, reduction="mean")

    loss_and_grad = nn.value_and_grad(model, loss_fn)
    optimizer = optim.Adam(learning_rate=0.05)
    losses = []
    for _ in range(30):
        loss, grads = loss_and_grad(model, X, Y)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state)
        losses.append(loss.item())
    accuracy = (mx.argmax(model(X), axis=1) == Y).astype(mx.float32).mean().item()
    assert losses[-1] < 0.5 * losses[0]
    assert accuracy > 0.95
    # The model holds its own parameters again, not the transformation's stand-ins.
    assert all(isinstance(v, mx.array) for _, v in tree_flatten(model.parameters()))


def test_weights_save_and_load(tmp_path):
    m = MLP([3, 4, 2])
    for name in ["w.safetensors", "w.npz"]:
        m.save_weights(tmp_path / name)
        other = MLP([3, 4, 2])
        other.load_weights(str(tmp_path / name))
        for (k, a), (_, b) in zip(tree_flatten(m.parameters()), tree_flatten(other.parameters())):
            assert_array(b, np.array(a))
    with pytest.raises(ValueError, match="missing"):
        MLP([3, 4, 2]).load_weights([("layers.0.weight", mx.zeros((4, 3)))])
