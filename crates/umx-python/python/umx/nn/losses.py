"""Loss functions (a subset of MLX's ``mlx.nn.losses``). ``reduction`` is ``"none"``,
``"mean"`` or ``"sum"``."""

import math

import umx.core as mx

__all__ = [
    "cross_entropy", "binary_cross_entropy", "nll_loss", "mse_loss", "l1_loss",
    "smooth_l1_loss", "huber_loss", "kl_div_loss", "log_cosh_loss", "hinge_loss",
]


def _reduce(loss, reduction="none"):
    if reduction == "mean":
        return mx.mean(loss)
    if reduction == "sum":
        return mx.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"losses: reduction must be 'none', 'mean' or 'sum', not {reduction!r}")


def cross_entropy(logits, targets, weights=None, axis=-1, label_smoothing=0.0, reduction="none"):
    """Cross entropy of ``logits`` against class indices ``targets`` (the shape of
    ``logits`` without ``axis``) or probabilities (the shape of ``logits``)."""
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1), not {label_smoothing}")
    as_probs = targets.ndim == logits.ndim
    reduced = list(logits.shape)
    reduced.pop(axis)
    if (as_probs and targets.shape != logits.shape) or (
        not as_probs and targets.shape != tuple(reduced)
    ):
        raise ValueError(
            f"cross_entropy: targets of shape {targets.shape} do not fit logits of shape "
            f"{logits.shape}"
        )
    if as_probs:
        score = mx.sum(logits * targets, axis=axis)
    else:
        score = mx.take_along_axis(logits, mx.expand_dims(targets, axis), axis).squeeze(axis)
    lse = mx.logsumexp(logits, axis=axis)
    if label_smoothing > 0:
        loss = lse - (1 - label_smoothing) * score - label_smoothing * mx.mean(logits, axis=axis)
    else:
        loss = lse - score
    if weights is not None:
        if weights.shape != loss.shape:
            raise ValueError(
                f"cross_entropy: weights of shape {weights.shape} do not fit the loss of shape "
                f"{loss.shape}"
            )
        loss = loss * weights
    return _reduce(loss, reduction)


def binary_cross_entropy(inputs, targets, weights=None, with_logits=True, reduction="mean"):
    """Binary cross entropy of logits (or probabilities, ``with_logits=False``)."""
    if with_logits:
        loss = mx.logaddexp(0.0, inputs) - inputs * targets
    else:
        eps = 1e-12
        loss = -(targets * mx.log(mx.maximum(inputs, eps)) + (1 - targets) * mx.log(mx.maximum(1 - inputs, eps)))
    if weights is not None:
        loss = loss * weights
    return _reduce(loss, reduction)


def nll_loss(inputs, targets, axis=-1, reduction="none"):
    """Negative log likelihood of log-probabilities ``inputs`` at class indices ``targets``."""
    loss = -mx.take_along_axis(inputs, mx.expand_dims(targets, axis), axis).squeeze(axis)
    return _reduce(loss, reduction)


def mse_loss(predictions, targets, reduction="mean"):
    """Mean squared error."""
    if predictions.shape != targets.shape:
        raise ValueError(
            f"mse_loss: predictions of shape {predictions.shape} and targets of shape "
            f"{targets.shape} differ"
        )
    return _reduce(mx.square(predictions - targets), reduction)


def l1_loss(predictions, targets, reduction="mean"):
    """Mean absolute error."""
    if predictions.shape != targets.shape:
        raise ValueError(
            f"l1_loss: predictions of shape {predictions.shape} and targets of shape "
            f"{targets.shape} differ"
        )
    return _reduce(mx.abs(predictions - targets), reduction)


def smooth_l1_loss(predictions, targets, beta=1.0, reduction="mean"):
    """Squared error below ``beta``, absolute error above."""
    diff = mx.abs(predictions - targets)
    loss = mx.where(diff < beta, 0.5 * mx.square(diff) / beta, diff - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(inputs, targets, delta=1.0, reduction="none"):
    """Quadratic below ``delta``, linear above."""
    err = inputs - targets
    abs_err = mx.abs(err)
    quadratic = mx.minimum(abs_err, delta)
    linear = abs_err - quadratic
    return _reduce(0.5 * quadratic**2 + delta * linear, reduction)


def kl_div_loss(inputs, targets, axis=-1, reduction="none"):
    """Kullback-Leibler divergence of log-probabilities ``targets`` from ``inputs``."""
    loss = mx.sum(mx.exp(targets) * (targets - inputs), axis)
    return _reduce(loss, reduction)


def log_cosh_loss(inputs, targets, reduction="none"):
    """``log(cosh(inputs - targets))``, computed stably."""
    err = inputs - targets
    loss = mx.logaddexp(err, -err) - math.log(2)
    return _reduce(loss, reduction)


def hinge_loss(inputs, targets, reduction="none"):
    """``max(0, 1 - inputs * targets)``."""
    return _reduce(mx.maximum(1 - inputs * targets, 0), reduction)
