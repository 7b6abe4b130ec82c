//! Loss functions (mlx.nn.losses): each takes a [`Reduction`] as MLX's `reduction` argument.

use crate::activations::log_softmax;
use umx_core::{Array, Result, bail, ops};

/// How a loss's per-element values are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// Per-element losses.
    None,
    /// Their mean.
    Mean,
    /// Their sum.
    Sum,
}

fn reduce(loss: Array, reduction: Reduction) -> Result<Array> {
    match reduction {
        Reduction::None => Ok(loss),
        Reduction::Mean => ops::mean(&loss, None, false),
        Reduction::Sum => ops::sum(&loss, None, false),
    }
}

fn same_shape(op: &str, a: &Array, b: &Array) -> Result<()> {
    if a.shape() != b.shape() {
        bail!(
            "{op}: predictions of shape {:?} and targets of shape {:?} differ",
            a.shape(),
            b.shape()
        );
    }
    Ok(())
}

/// Cross entropy of `logits` along `axis` against class indices (integer `targets`, the
/// logits' shape without `axis`) or class probabilities (float `targets`, the logits' shape),
/// with optional per-example `weights` and label smoothing.
pub fn cross_entropy(
    logits: &Array,
    targets: &Array,
    weights: Option<&Array>,
    axis: i64,
    label_smoothing: f64,
    reduction: Reduction,
) -> Result<Array> {
    if !(0.0..1.0).contains(&label_smoothing) {
        bail!("cross_entropy: label smoothing must be in [0, 1), not {label_smoothing}");
    }
    let probs = targets.dtype().is_float();
    let score = if probs {
        same_shape("cross_entropy", logits, targets)?;
        ops::sum(&ops::multiply(logits, targets)?, axis, false)?
    } else {
        if targets.ndim() + 1 != logits.ndim() {
            bail!(
                "cross_entropy: class-index targets of shape {:?} do not fit logits of shape {:?}",
                targets.shape(),
                logits.shape()
            );
        }
        let t = ops::expand_dims(targets, axis)?;
        ops::squeeze(&ops::take_along_axis(logits, &t, axis)?, axis)?
    };
    let lse = ops::logsumexp(logits, axis, false)?;
    let mut loss = if label_smoothing > 0.0 {
        let adjusted = ops::multiply(&score, 1.0 - label_smoothing)?;
        let smoothed = ops::multiply(ops::mean(logits, axis, false)?, -label_smoothing)?;
        ops::add(ops::subtract(&lse, &adjusted)?, &smoothed)?
    } else {
        ops::subtract(&lse, &score)?
    };
    if let Some(w) = weights {
        loss = ops::multiply(&loss, w)?;
    }
    reduce(loss, reduction)
}

/// Binary cross entropy of `inputs` (logits when `with_logits`, else probabilities) against
/// `targets` in `[0, 1]`.
pub fn binary_cross_entropy(
    inputs: &Array,
    targets: &Array,
    weights: Option<&Array>,
    with_logits: bool,
    reduction: Reduction,
) -> Result<Array> {
    same_shape("binary_cross_entropy", inputs, targets)?;
    let mut loss = if with_logits {
        ops::subtract(
            ops::logaddexp(0.0, inputs)?,
            ops::multiply(inputs, targets)?,
        )?
    } else {
        let log_p = ops::clip(ops::log(inputs)?, -100.0, ())?;
        let log_q = ops::clip(ops::log(&ops::subtract(1.0, inputs)?)?, -100.0, ())?;
        ops::negative(&ops::add(
            ops::multiply(targets, &log_p)?,
            ops::multiply(ops::subtract(1.0, targets)?, &log_q)?,
        )?)?
    };
    if let Some(w) = weights {
        loss = ops::multiply(&loss, w)?;
    }
    reduce(loss, reduction)
}

/// Mean absolute error.
pub fn l1_loss(predictions: &Array, targets: &Array, reduction: Reduction) -> Result<Array> {
    same_shape("l1_loss", predictions, targets)?;
    reduce(ops::abs(&ops::subtract(predictions, targets)?)?, reduction)
}

/// Mean squared error.
pub fn mse_loss(predictions: &Array, targets: &Array, reduction: Reduction) -> Result<Array> {
    same_shape("mse_loss", predictions, targets)?;
    reduce(
        ops::square(&ops::subtract(predictions, targets)?)?,
        reduction,
    )
}

/// Negative log likelihood of log-probabilities `inputs` at class indices `targets`.
pub fn nll_loss(inputs: &Array, targets: &Array, axis: i64, reduction: Reduction) -> Result<Array> {
    let t = ops::expand_dims(targets, axis)?;
    let picked = ops::squeeze(&ops::take_along_axis(inputs, &t, axis)?, axis)?;
    reduce(ops::negative(&picked)?, reduction)
}

/// Negative Gaussian log likelihood of `targets` under means `inputs` and variances `vars`.
pub fn gaussian_nll_loss(
    inputs: &Array,
    targets: &Array,
    vars: &Array,
    full: bool,
    eps: f64,
    reduction: Reduction,
) -> Result<Array> {
    same_shape("gaussian_nll_loss", inputs, targets)?;
    let vars = ops::clip(vars, eps, ())?;
    let mut loss = ops::multiply(
        ops::add(
            ops::log(&vars)?,
            ops::divide(ops::square(&ops::subtract(targets, inputs)?)?, &vars)?,
        )?,
        0.5,
    )?;
    if full {
        loss = ops::add(&loss, 0.5 * (2.0 * std::f64::consts::PI).ln())?;
    }
    reduce(loss, reduction)
}

/// Kullback-Leibler divergence with log-probabilities `inputs` and `targets` along `axis`.
pub fn kl_div_loss(
    inputs: &Array,
    targets: &Array,
    axis: i64,
    reduction: Reduction,
) -> Result<Array> {
    let loss = ops::sum(
        &ops::multiply(ops::exp(targets)?, ops::subtract(targets, inputs)?)?,
        axis,
        false,
    )?;
    reduce(loss, reduction)
}

/// Smooth L1: `0.5 d^2 / beta` below `beta`, `d - 0.5 beta` above, with `d = |pred - target|`.
pub fn smooth_l1_loss(
    predictions: &Array,
    targets: &Array,
    beta: f64,
    reduction: Reduction,
) -> Result<Array> {
    same_shape("smooth_l1_loss", predictions, targets)?;
    let d = ops::abs(&ops::subtract(predictions, targets)?)?;
    let loss = ops::where_(
        ops::less(&d, beta)?,
        ops::divide(ops::multiply(ops::square(&d)?, 0.5)?, beta)?,
        ops::subtract(&d, 0.5 * beta)?,
    )?;
    reduce(loss, reduction)
}

/// Triplet margin loss with the `p`-norm distance along `axis`.
#[allow(clippy::too_many_arguments)] // MLX's arguments, in MLX's order
pub fn triplet_loss(
    anchors: &Array,
    positives: &Array,
    negatives: &Array,
    axis: i64,
    p: f64,
    margin: f64,
    eps: f64,
    reduction: Reduction,
) -> Result<Array> {
    let dist = |other: &Array| -> Result<Array> {
        let s = ops::sum(
            &ops::power(&ops::subtract(anchors, other)?, p)?,
            axis,
            false,
        )?;
        ops::sqrt(&ops::add(&s, eps)?)
    };
    let loss = ops::maximum(
        ops::add(ops::subtract(dist(positives)?, dist(negatives)?)?, margin)?,
        0.0,
    )?;
    reduce(loss, reduction)
}

/// Hinge loss: `max(1 - inputs * targets, 0)` for targets in {-1, 1}.
pub fn hinge_loss(inputs: &Array, targets: &Array, reduction: Reduction) -> Result<Array> {
    reduce(
        ops::maximum(ops::subtract(1.0, ops::multiply(inputs, targets)?)?, 0.0)?,
        reduction,
    )
}

/// Huber loss: quadratic up to `delta`, linear beyond.
pub fn huber_loss(
    inputs: &Array,
    targets: &Array,
    delta: f64,
    reduction: Reduction,
) -> Result<Array> {
    let e = ops::abs(&ops::subtract(inputs, targets)?)?;
    let quad = ops::minimum(&e, delta)?;
    let lin = ops::subtract(&e, &quad)?;
    let loss = ops::add(
        ops::multiply(ops::square(&quad)?, 0.5)?,
        ops::multiply(&lin, delta)?,
    )?;
    reduce(loss, reduction)
}

/// `log(cosh(inputs - targets))`, computed stably.
pub fn log_cosh_loss(inputs: &Array, targets: &Array, reduction: Reduction) -> Result<Array> {
    let e = ops::subtract(inputs, targets)?;
    let loss = ops::subtract(
        ops::logaddexp(&e, ops::negative(&e)?)?,
        std::f64::consts::LN_2,
    )?;
    reduce(loss, reduction)
}

/// Cosine similarity of `x1` and `x2` along `axis` (MLX calls it a loss; it is the similarity).
pub fn cosine_similarity_loss(
    x1: &Array,
    x2: &Array,
    axis: i64,
    eps: f64,
    reduction: Reduction,
) -> Result<Array> {
    let norm = |x: &Array| ops::sqrt(&ops::sum(&ops::square(x)?, axis, false)?);
    let den = ops::maximum(ops::multiply(norm(x1)?, norm(x2)?)?, eps)?;
    let loss = ops::divide(ops::sum(&ops::multiply(x1, x2)?, axis, false)?, &den)?;
    reduce(loss, reduction)
}

/// Margin ranking loss: `max(-targets (inputs1 - inputs2) + margin, 0)`.
pub fn margin_ranking_loss(
    inputs1: &Array,
    inputs2: &Array,
    targets: &Array,
    margin: f64,
    reduction: Reduction,
) -> Result<Array> {
    let d = ops::subtract(inputs1, inputs2)?;
    let loss = ops::maximum(
        ops::add(ops::multiply(ops::negative(targets)?, &d)?, margin)?,
        0.0,
    )?;
    reduce(loss, reduction)
}

/// Cross entropy from log-probabilities computed here: `nll_loss(log_softmax(logits))`.
pub fn log_softmax_cross_entropy(
    logits: &Array,
    targets: &Array,
    reduction: Reduction,
) -> Result<Array> {
    nll_loss(&log_softmax(logits, -1)?, targets, -1, reduction)
}
