"""Reference values for umx-nn and umx-optim, taken from mlx.nn and mlx.optimizers (CPU):
activations, losses, layers with given weights, and optimizer steps.

Regenerate with `python3 tests/reference/nn.py` (needs mlx and numpy)."""
import math

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from common import Cases
from mlx_common import mx_of, np_of

rng = np.random.default_rng(7)
c = Cases()


def f32(*shape, low=-3.0, high=3.0):
    return rng.uniform(low, high, shape).astype(np.float32)


# ---- activations ------------------------------------------------------------------------
x = f32(3, 4)
acts = {
    "relu": nn.relu, "relu6": nn.relu6, "relu2": nn.relu2, "selu": nn.selu, "gelu": nn.gelu,
    "gelu_approx": nn.gelu_approx, "gelu_fast_approx": nn.gelu_fast_approx, "silu": nn.silu,
    "softplus": nn.softplus, "softsign": nn.softsign, "mish": nn.mish,
    "hardswish": nn.hardswish, "log_sigmoid": nn.log_sigmoid,
    "log_softmax": nn.log_softmax, "softmax": nn.softmax, "softmin": nn.softmin,
    "sigmoid": nn.sigmoid, "tanh": mx.tanh,
}
for name, fn in acts.items():
    c.add(name, [x], np_of(fn(mx_of(x))), rtol=1e-5, atol=1e-6)
c.add("leaky_relu", [x], np_of(nn.leaky_relu(mx_of(x), 0.1)), slope=0.1)
c.add("elu", [x], np_of(nn.elu(mx_of(x), 0.7)), alpha=0.7, rtol=1e-5, atol=1e-6)
c.add("celu", [x], np_of(nn.celu(mx_of(x), 0.7)), alpha=0.7, rtol=1e-5, atol=1e-6)
c.add("hard_tanh", [x], np_of(nn.hard_tanh(mx_of(x), -0.5, 1.5)), min=-0.5, max=1.5)
c.add("hard_shrink", [x], np_of(nn.hard_shrink(mx_of(x), 0.8)), lambd=0.8)
c.add("softshrink", [x], np_of(nn.softshrink(mx_of(x), 0.8)), lambd=0.8, rtol=1e-6, atol=1e-6)
c.add("glu", [x], np_of(nn.glu(mx_of(x), -1)), rtol=1e-5, atol=1e-6)
c.add("step", [x], np_of(nn.step(mx_of(x), 0.5).astype(mx.float32)), threshold=0.5)
alpha = f32(4, low=0.0, high=0.5)
c.add("prelu", [x, alpha], np_of(nn.prelu(mx_of(x), mx_of(alpha))))

# ---- losses -------------------------------------------------------------------------------
logits = f32(5, 4)
cls = rng.integers(0, 4, size=(5,)).astype(np.int32)
probs = np_of(mx.softmax(mx_of(f32(5, 4)), axis=-1))
w = f32(5, low=0.1, high=1.0)
L = nn.losses
for red in ["none", "mean", "sum"]:
    c.add("cross_entropy", [logits, cls], np_of(L.cross_entropy(mx_of(logits), mx_of(cls), reduction=red)),
          reduction=red, rtol=1e-5, atol=1e-6)
c.add("cross_entropy", [logits, probs], np_of(L.cross_entropy(mx_of(logits), mx_of(probs))), reduction="none",
      rtol=1e-5, atol=1e-6)
c.add("cross_entropy", [logits, cls, w],
      np_of(L.cross_entropy(mx_of(logits), mx_of(cls), weights=mx_of(w), label_smoothing=0.1, reduction="mean")),
      reduction="mean", label_smoothing=0.1, rtol=1e-5, atol=1e-6)
p = f32(6, low=0.05, high=0.95)
t = (rng.random(6) < 0.5).astype(np.float32)
z = f32(6)
c.add("binary_cross_entropy", [z, t], np_of(L.binary_cross_entropy(mx_of(z), mx_of(t))), with_logits=True,
      reduction="mean", rtol=1e-5, atol=1e-6)
c.add("binary_cross_entropy", [p, t], np_of(L.binary_cross_entropy(mx_of(p), mx_of(t), with_logits=False,
                                                                     reduction="none")),
      with_logits=False, reduction="none", rtol=1e-5, atol=1e-6)
a, b = f32(3, 4), f32(3, 4)
c.add("l1_loss", [a, b], np_of(L.l1_loss(mx_of(a), mx_of(b))), reduction="mean", rtol=1e-6)
c.add("mse_loss", [a, b], np_of(L.mse_loss(mx_of(a), mx_of(b), reduction="sum")), reduction="sum", rtol=1e-6)
logp = np_of(nn.log_softmax(mx_of(logits)))
c.add("nll_loss", [logp, cls], np_of(L.nll_loss(mx_of(logp), mx_of(cls), reduction="mean")), reduction="mean",
      rtol=1e-6)
var = f32(3, 4, low=0.1, high=2.0)
c.add("gaussian_nll_loss", [a, b, var], np_of(L.gaussian_nll_loss(mx_of(a), mx_of(b), mx_of(var), full=True)),
      full=True, reduction="mean", rtol=1e-5)
lp = np_of(nn.log_softmax(mx_of(a))); lq = np_of(nn.log_softmax(mx_of(b)))
c.add("kl_div_loss", [lp, lq], np_of(L.kl_div_loss(mx_of(lp), mx_of(lq))), reduction="none", rtol=1e-5, atol=1e-6)
c.add("smooth_l1_loss", [a, b], np_of(L.smooth_l1_loss(mx_of(a), mx_of(b), beta=0.7, reduction="none")),
      beta=0.7, reduction="none", rtol=1e-6, atol=1e-6)
an, po, ne = f32(3, 4), f32(3, 4), f32(3, 4)
c.add("triplet_loss", [an, po, ne], np_of(L.triplet_loss(mx_of(an), mx_of(po), mx_of(ne), margin=0.5)),
      margin=0.5, reduction="none", rtol=1e-5, atol=1e-6)
sgn = np.where(rng.random((3, 4)) < 0.5, -1.0, 1.0).astype(np.float32)
c.add("hinge_loss", [a, sgn], np_of(L.hinge_loss(mx_of(a), mx_of(sgn))), reduction="none")
c.add("huber_loss", [a, b], np_of(L.huber_loss(mx_of(a), mx_of(b), delta=1.3)), delta=1.3, reduction="none",
      rtol=1e-6, atol=1e-6)
c.add("log_cosh_loss", [a, b], np_of(L.log_cosh_loss(mx_of(a), mx_of(b))), reduction="none", rtol=1e-5, atol=1e-6)
c.add("cosine_similarity_loss", [a, b], np_of(L.cosine_similarity_loss(mx_of(a), mx_of(b), axis=1)),
      reduction="none", rtol=1e-5, atol=1e-6)
i1, i2, tt = f32(6), f32(6), np.where(rng.random(6) < 0.5, -1.0, 1.0).astype(np.float32)
c.add("margin_ranking_loss", [i1, i2, tt], np_of(L.margin_ranking_loss(mx_of(i1), mx_of(i2), mx_of(tt), margin=0.2)),
      margin=0.2, reduction="none", rtol=1e-6, atol=1e-6)

# ---- layers with given weights ------------------------------------------------------------
def layer_case(name, layer, inputs, params, **kw):
    layer.update({k: mx_of(v) for k, v in params.items()})
    out = layer(*[mx_of(i) for i in inputs])
    c.add(name, list(inputs) + list(params.values()), np_of(out), rtol=1e-5, atol=1e-5, **kw)


x = f32(2, 3, 5)
layer_case("linear", nn.Linear(5, 4), [x], {"weight": f32(4, 5), "bias": f32(4)})
layer_case("linear_nobias", nn.Linear(5, 4, bias=False), [x], {"weight": f32(4, 5)})
x2 = f32(2, 3, 6)
layer_case("bilinear", nn.Bilinear(5, 6, 3), [x, x2], {"weight": f32(3, 6, 5), "bias": f32(3)})
layer_case("layer_norm", nn.LayerNorm(5), [x], {"weight": f32(5), "bias": f32(5)}, eps=1e-5)
layer_case("rms_norm", nn.RMSNorm(5), [x], {"weight": f32(5)}, eps=1e-5)
xg = f32(2, 3, 4, 6)
layer_case("group_norm", nn.GroupNorm(3, 6, pytorch_compatible=True), [xg], {"weight": f32(6), "bias": f32(6)},
           groups=3, eps=1e-5)
layer_case("instance_norm", nn.InstanceNorm(6, affine=True), [xg], {"weight": f32(6), "bias": f32(6)}, eps=1e-5)
bn = nn.BatchNorm(6)
layer_case("batch_norm_train", bn, [xg], {"weight": f32(6), "bias": f32(6)}, eps=1e-5)
bn.eval()
rm, rv = f32(6), f32(6, low=0.5, high=2.0)
layer_case("batch_norm_eval", bn, [xg], {"weight": f32(6), "bias": f32(6), "running_mean": rm, "running_var": rv},
           eps=1e-5)
emb_w = f32(10, 4)
idx = rng.integers(0, 10, size=(2, 3)).astype(np.int32)
layer_case("embedding", nn.Embedding(10, 4), [idx], {"weight": emb_w})

# ---- convolution, pooling, positional, recurrent and attention layers ---------------------
from mlx.utils import tree_unflatten


def nested_case(name, layer, inputs, params, call=None, **kw):
    layer.update(tree_unflatten([(k, mx_of(v)) for k, v in params.items()]))
    out = (call or layer)(*[mx_of(i) for i in inputs])
    outs = [np_of(o) for o in out] if isinstance(out, (tuple, list)) else np_of(out)
    c.add(name, list(inputs) + list(params.values()), outs, rtol=1e-4, atol=1e-5, layouts=False, **kw)


xc = f32(2, 7, 3)
nested_case("conv1d_layer", nn.Conv1d(3, 4, 3, stride=2, padding=1), [xc], {"weight": f32(4, 3, 3), "bias": f32(4)},
            stride=2, padding=1)
x2d = f32(2, 6, 5, 4)
nested_case("conv2d_layer", nn.Conv2d(4, 6, (3, 2), padding=1, groups=2), [x2d],
            {"weight": f32(6, 3, 2, 2), "bias": f32(6)}, stride=1, padding=1, groups=2)
nested_case("conv_transpose2d_layer", nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1), [x2d],
            {"weight": f32(3, 3, 3, 4), "bias": f32(3)}, stride=2, padding=1)
c.add("max_pool2d", [x2d], np_of(nn.MaxPool2d(2, stride=1, padding=1)(mx_of(x2d))), kernel=2, stride=1, padding=1)
c.add("avg_pool1d", [xc], np_of(nn.AvgPool1d(3, stride=2)(mx_of(xc))), kernel=3, stride=2, padding=0, rtol=1e-6)
xr = f32(2, 3, 5, 8)
c.add("rope", [xr], np_of(nn.RoPE(6, traditional=False, base=500.0)(mx_of(xr), offset=3)), dims=6,
      traditional=False, base=500.0, offset=3, rtol=1e-4, atol=1e-5)
c.add("rope", [xr], np_of(nn.RoPE(8, traditional=True)(mx_of(xr))), dims=8, traditional=True, base=10000.0,
      offset=0, rtol=1e-4, atol=1e-5)
pos = np.arange(5, dtype=np.float32)
c.add("sinusoidal", [pos], np_of(nn.SinusoidalPositionalEncoding(8)(mx_of(pos))), dims=8, rtol=1e-5, atol=1e-5)
sc = f32(2, 4, 3, 5)
c.add("alibi", [sc], np_of(nn.ALiBi()(mx_of(sc), offset=2)), offset=2, rtol=1e-5, atol=1e-5)
xs = f32(2, 4, 3)
nested_case("rnn", nn.RNN(3, 5), [xs], {"Wxh": f32(5, 3), "Whh": f32(5, 5), "bias": f32(5)})
nested_case("gru", nn.GRU(3, 5), [xs], {"Wx": f32(15, 3), "Wh": f32(15, 5), "b": f32(15), "bhn": f32(5)})
nested_case("lstm", nn.LSTM(3, 5), [xs], {"Wx": f32(20, 3), "Wh": f32(20, 5), "bias": f32(20)})
q, kv = f32(2, 4, 8), f32(2, 6, 8)
mha_params = {f"{n}.weight": f32(8, 8, low=-0.5, high=0.5) for n in ["query_proj", "key_proj", "value_proj", "out_proj"]}
mask = np_of(nn.MultiHeadAttention.create_additive_causal_mask(4))
mha = nn.MultiHeadAttention(8, 2)
nested_case("mha", mha, [q, kv], mha_params, call=lambda a, b: mha(a, b, b))
mha2 = nn.MultiHeadAttention(8, 2)
nested_case("mha_masked", mha2, [q, mask], mha_params, call=lambda a, m: mha2(a, a, a, m))
for norm_first in [True, False]:
    enc = nn.TransformerEncoderLayer(8, 2, mlp_dims=16, norm_first=norm_first)
    ps = dict(mha_params)
    ps = {f"attention.{k}": v for k, v in ps.items()}
    ps.update({"ln1.weight": f32(8), "ln1.bias": f32(8), "ln2.weight": f32(8), "ln2.bias": f32(8),
               "linear1.weight": f32(16, 8), "linear1.bias": f32(16), "linear2.weight": f32(8, 16),
               "linear2.bias": f32(8)})
    nested_case("encoder_layer", enc, [q, mask], ps, call=lambda a, m, enc=enc: enc(a, m), norm_first=norm_first)

xu = f32(2, 3, 4, 2)
for mode, align, scale in [("nearest", False, (2, 3)), ("nearest", False, (1.5, 0.5)), ("linear", False, (2, 1.5)),
                           ("linear", True, (2, 2)), ("cubic", False, (2, 2)), ("cubic", True, (1.5, 2))]:
    up = nn.Upsample(scale_factor=scale, mode=mode, align_corners=align)
    c.add("upsample", [xu], np_of(up(mx_of(xu))), mode=mode, align_corners=align, scale=list(scale),
          rtol=1e-4, atol=1e-5)

# ---- optimizers: three steps from the same parameter ----------------------------------------
p0 = f32(3, 4)
grads = [f32(3, 4) for _ in range(3)]
OPTS = {
    "sgd": lambda: optim.SGD(0.1),
    "sgd_momentum": lambda: optim.SGD(0.1, momentum=0.9, weight_decay=0.01, dampening=0.1),
    "sgd_nesterov": lambda: optim.SGD(0.1, momentum=0.9, nesterov=True),
    "rmsprop": lambda: optim.RMSprop(0.01),
    "adagrad": lambda: optim.Adagrad(0.1),
    "adadelta": lambda: optim.AdaDelta(1.0),
    "adam": lambda: optim.Adam(0.01),
    "adam_bias_correction": lambda: optim.Adam(0.01, bias_correction=True),
    "adamw": lambda: optim.AdamW(0.01, weight_decay=0.1),
    "adamax": lambda: optim.Adamax(0.01),
    "lion": lambda: optim.Lion(0.01, weight_decay=0.1),
    "adafactor": lambda: optim.Adafactor(),
    "adafactor_lr_beta1": lambda: optim.Adafactor(0.01, relative_step=False, beta_1=0.9, weight_decay=0.1),
    "muon": lambda: optim.Muon(0.01),
}
for name, make in OPTS.items():
    opt = make()
    params = {"w": mx_of(p0)}
    for g in grads:
        params = opt.apply_gradients({"w": mx_of(g)}, params)
    c.add("optimizer", [p0] + grads, np_of(params["w"]), name=name, rtol=1e-5, atol=1e-6, layouts=False)
p1 = f32(5)
grads1 = [f32(5) for _ in range(3)]
for name in ["adafactor", "adafactor_lr_beta1", "adam", "muon"]:
    opt = OPTS[name]()
    params = {"w": mx_of(p1)}
    for g in grads1:
        params = opt.apply_gradients({"w": mx_of(g)}, params)
    c.add("optimizer", [p1] + grads1, np_of(params["w"]), name=name, rtol=1e-5, atol=1e-6, layouts=False)

c.save(__file__)
