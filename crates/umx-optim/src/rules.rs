//! The optimization algorithms, with mlx.optimizers' formulas and defaults.

use crate::Rule;
use umx_core::{Array, Result, ops};

/// `a * x + b * y`.
fn lerp(x: &Array, a: f64, y: &Array, b: f64) -> Result<Array> {
    ops::add(ops::multiply(x, a)?, ops::multiply(y, b)?)
}

/// A per-step number (the learning rate, a bias correction) in the dtype of `like`, as MLX
/// casts its learning rate to the gradient's dtype.
fn like(x: &Array, like: &Array) -> Result<Array> {
    if x.dtype() == like.dtype() {
        Ok(x.clone())
    } else {
        x.astype(like.dtype())
    }
}

/// `lr * g / (sqrt(v) + eps)`: the step of RMSprop and Adagrad.
fn rms_step(g: &Array, lr: &Array, v: &Array, eps: f64) -> Result<Array> {
    ops::divide(
        ops::multiply(g, like(lr, g)?)?,
        ops::add(ops::sqrt(v)?, eps)?,
    )
}

/// Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.
#[derive(Clone, Debug, Default)]
pub struct Sgd {
    pub momentum: f64,
    pub weight_decay: f64,
    pub dampening: f64,
    pub nesterov: bool,
}

impl Rule for Sgd {
    fn state_names(&self) -> &'static [&'static str] {
        &["v"]
    }
    fn apply(
        &self,
        grad: &Array,
        param: &Array,
        state: &mut [Array],
        lr: &Array,
        _: &Array,
    ) -> Result<Array> {
        let lr = like(lr, grad)?;
        let mut g = grad.clone();
        if self.weight_decay != 0.0 {
            g = ops::add(&g, ops::multiply(param, self.weight_decay)?)?;
        }
        if self.momentum <= 0.0 {
            return ops::subtract(param, ops::multiply(&g, &lr)?);
        }
        let v = lerp(
            &state[0],
            self.momentum,
            &g,
            if self.dampening > 0.0 {
                1.0 - self.dampening
            } else {
                1.0
            },
        )?;
        let update = if self.nesterov {
            ops::add(&g, ops::multiply(&v, self.momentum)?)?
        } else {
            v.clone()
        };
        state[0] = v;
        ops::subtract(param, ops::multiply(&update, &lr)?)
    }
}

/// RMSprop: `v = alpha v + (1 - alpha) g^2`, `p -= lr g / (sqrt(v) + eps)`.
#[derive(Clone, Debug)]
pub struct RmsProp {
    pub alpha: f64,
    pub eps: f64,
}

impl Default for RmsProp {
    fn default() -> Self {
        RmsProp {
            alpha: 0.99,
            eps: 1e-8,
        }
    }
}

impl Rule for RmsProp {
    fn state_names(&self) -> &'static [&'static str] {
        &["v"]
    }
    fn apply(
        &self,
        g: &Array,
        p: &Array,
        state: &mut [Array],
        lr: &Array,
        _: &Array,
    ) -> Result<Array> {
        let v = lerp(&state[0], self.alpha, &ops::square(g)?, 1.0 - self.alpha)?;
        let step = rms_step(g, lr, &v, self.eps)?;
        state[0] = v;
        ops::subtract(p, &step)
    }
}

/// Adagrad: `v += g^2`, `p -= lr g / (sqrt(v) + eps)`.
#[derive(Clone, Debug)]
pub struct Adagrad {
    pub eps: f64,
}

impl Default for Adagrad {
    fn default() -> Self {
        Adagrad { eps: 1e-8 }
    }
}

impl Rule for Adagrad {
    fn state_names(&self) -> &'static [&'static str] {
        &["v"]
    }
    fn apply(
        &self,
        g: &Array,
        p: &Array,
        state: &mut [Array],
        lr: &Array,
        _: &Array,
    ) -> Result<Array> {
        let v = ops::add(&state[0], ops::square(g)?)?;
        let step = rms_step(g, lr, &v, self.eps)?;
        state[0] = v;
        ops::subtract(p, &step)
    }
}

/// AdaDelta: running averages of squared gradients `v` and squared updates `u`.
#[derive(Clone, Debug)]
pub struct AdaDelta {
    pub rho: f64,
    pub eps: f64,
}

impl Default for AdaDelta {
    fn default() -> Self {
        AdaDelta {
            rho: 0.9,
            eps: 1e-6,
        }
    }
}

impl Rule for AdaDelta {
    fn state_names(&self) -> &'static [&'static str] {
        &["v", "u"]
    }
    fn apply(
        &self,
        g: &Array,
        p: &Array,
        state: &mut [Array],
        lr: &Array,
        _: &Array,
    ) -> Result<Array> {
        let v = lerp(&state[0], self.rho, &ops::square(g)?, 1.0 - self.rho)?;
        let d = ops::multiply(
            ops::divide(
                ops::sqrt(&ops::add(&state[1], self.eps)?)?,
                ops::sqrt(&ops::add(&v, self.eps)?)?,
            )?,
            g,
        )?;
        let u = lerp(&state[1], self.rho, &ops::square(&d)?, 1.0 - self.rho)?;
        state[0] = v;
        state[1] = u;
        ops::subtract(p, ops::multiply(&d, like(lr, g)?)?)
    }
}

/// Adam (MLX's: no bias correction unless asked).
#[derive(Clone, Debug)]
pub struct Adam {
    pub betas: (f64, f64),
    pub eps: f64,
    pub bias_correction: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            betas: (0.9, 0.999),
            eps: 1e-8,
            bias_correction: false,
        }
    }
}

impl Rule for Adam {
    fn state_names(&self) -> &'static [&'static str] {
        &["m", "v"]
    }
    fn apply(
        &self,
        g: &Array,
        p: &Array,
        state: &mut [Array],
        lr: &Array,
        step: &Array,
    ) -> Result<Array> {
        let (b1, b2) = self.betas;
        let m = lerp(&state[0], b1, g, 1.0 - b1)?;
        let v = lerp(&state[1], b2, &ops::square(g)?, 1.0 - b2)?;
        let update = if self.bias_correction {
            // MLX's: c1 = lr / (1 - b1^t), c2 = rsqrt(1 - b2^t), in the gradient's dtype.
            let power = |b: f64| ops::power(Array::scalar(b as f32), step);
            let c1 = like(&ops::divide(lr, ops::subtract(1.0, power(b1)?)?)?, g)?;
            let c2 = like(&ops::rsqrt(&ops::subtract(1.0, power(b2)?)?)?, g)?;
            let den = ops::add(ops::multiply(ops::sqrt(&v)?, &c2)?, self.eps)?;
            ops::divide(ops::multiply(&c1, &m)?, &den)?
        } else {
            ops::divide(
                ops::multiply(&m, like(lr, g)?)?,
                ops::add(ops::sqrt(&v)?, self.eps)?,
            )?
        };
        state[0] = m;
        state[1] = v;
        ops::subtract(p, &update)
    }
}

/// AdamW: Adam with decoupled weight decay (`p *= 1 - lr * weight_decay` first).
#[derive(Clone, Debug)]
pub struct AdamW {
    pub adam: Adam,
    pub weight_decay: f64,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW {
            adam: Adam::default(),
            weight_decay: 0.01,
        }
    }
}

impl Rule for AdamW {
    fn state_names(&self) -> &'static [&'static str] {
        &["m", "v"]
    }
    fn apply(
        &self,
        g: &Array,
        p: &Array,
        state: &mut [Array],
        lr: &Array,
        step: &Array,
    ) -> Result<Array> {
        let decay = ops::subtract(1.0, ops::multiply(like(lr, g)?, self.weight_decay)?)?;
        let decayed = ops::multiply(p, &decay)?;
        self.adam.apply(g, &decayed, state, lr, step)
    }
}

/// Adamax: Adam with the infinity norm, `v = max(b2 v, |g|)`.
#[derive(Clone, Debug)]
pub struct Adamax {
    pub betas: (f64, f64),
    pub eps: f64,
}

impl Default for Adamax {
    fn default() -> Self {
        Adamax {
            betas: (0.9, 0.999),
            eps: 1e-8,
        }
    }
}

impl Rule for Adamax {
    fn state_names(&self) -> &'static [&'static str] {
        &["m", "v"]
    }
    fn apply(
        &self,
        g: &Array,
        p: &Array,
        state: &mut [Array],
        lr: &Array,
        _: &Array,
    ) -> Result<Array> {
        let (b1, b2) = self.betas;
        let m = lerp(&state[0], b1, g, 1.0 - b1)?;
        let v = ops::maximum(ops::multiply(&state[1], b2)?, ops::abs(g)?)?;
        let step = ops::divide(ops::multiply(&m, like(lr, g)?)?, ops::add(&v, self.eps)?)?;
        state[0] = m;
        state[1] = v;
        ops::subtract(p, &step)
    }
}

/// Lion: the sign of an interpolated momentum, with decoupled weight decay.
#[derive(Clone, Debug)]
pub struct Lion {
    pub betas: (f64, f64),
    pub weight_decay: f64,
}

impl Default for Lion {
    fn default() -> Self {
        Lion {
            betas: (0.9, 0.99),
            weight_decay: 0.0,
        }
    }
}

impl Rule for Lion {
    fn state_names(&self) -> &'static [&'static str] {
        &["m"]
    }
    fn apply(
        &self,
        g: &Array,
        p: &Array,
        state: &mut [Array],
        lr: &Array,
        _: &Array,
    ) -> Result<Array> {
        let (b1, b2) = self.betas;
        let c = lerp(&state[0], b1, g, 1.0 - b1)?;
        state[0] = lerp(&state[0], b2, g, 1.0 - b2)?;
        let lr = like(lr, g)?;
        let p = if self.weight_decay > 0.0 {
            ops::multiply(
                p,
                ops::subtract(1.0, ops::multiply(&lr, self.weight_decay)?)?,
            )?
        } else {
            p.clone()
        };
        ops::subtract(&p, ops::multiply(ops::sign(&c)?, &lr)?)
    }
}

/// Adafactor: second moments factored into row and column averages for matrices, a relative
/// step size and update clipping (mlx.optimizers.Adafactor; the learning rate is used only
/// when `relative_step` is off).
#[derive(Clone, Debug)]
pub struct Adafactor {
    pub eps: (f64, f64),
    pub clip_threshold: f64,
    pub decay_rate: f64,
    pub beta_1: Option<f64>,
    pub weight_decay: f64,
    pub scale_parameter: bool,
    pub relative_step: bool,
    pub warmup_init: bool,
}

impl Default for Adafactor {
    fn default() -> Self {
        Adafactor {
            eps: (1e-30, 1e-3),
            clip_threshold: 1.0,
            decay_rate: -0.8,
            beta_1: None,
            weight_decay: 0.0,
            scale_parameter: true,
            relative_step: true,
            warmup_init: false,
        }
    }
}

fn rms(x: &Array) -> Result<Array> {
    ops::sqrt(&ops::mean(&ops::square(x)?, None, false)?)
}

impl Rule for Adafactor {
    fn state_names(&self) -> &'static [&'static str] {
        &["exp_avg_sq_row", "exp_avg_sq_col", "exp_avg_sq", "exp_avg"]
    }

    fn init(&self, p: &Array) -> Result<Vec<Array>> {
        let empty = || ops::zeros(&[0], p.dtype());
        let s = p.shape();
        let (row, col, sq) = if p.ndim() >= 2 {
            let mut col_shape = s[..s.len() - 2].to_vec();
            col_shape.push(s[s.len() - 1]);
            (
                ops::zeros(&s[..s.len() - 1], p.dtype())?,
                ops::zeros(&col_shape, p.dtype())?,
                empty()?,
            )
        } else {
            (empty()?, empty()?, ops::zeros_like(p)?)
        };
        let avg = if self.beta_1.is_some() {
            ops::zeros_like(p)?
        } else {
            empty()?
        };
        Ok(vec![row, col, sq, avg])
    }

    fn apply(
        &self,
        g: &Array,
        p: &Array,
        state: &mut [Array],
        lr: &Array,
        step: &Array,
    ) -> Result<Array> {
        let p_rms = rms(p)?;
        // MLX's relative step size: min(1e-2 or 1e-6 t, rsqrt(t)), or the learning rate.
        let rel = if self.relative_step {
            let min_step = if self.warmup_init {
                ops::multiply(step, 1e-6)?
            } else {
                Array::scalar(1e-2f32)
            };
            ops::minimum(&min_step, ops::rsqrt(step)?)?
        } else {
            lr.clone()
        };
        let rel = like(&rel, &p_rms)?;
        let lr = if self.scale_parameter {
            ops::multiply(ops::maximum(&p_rms, self.eps.1)?, &rel)?
        } else {
            rel
        };
        let beta_2 = like(&ops::subtract(1.0, ops::power(step, self.decay_rate)?)?, g)?;
        let one_minus = ops::subtract(1.0, &beta_2)?;
        let mix = |old: &Array, new: &Array| {
            ops::add(
                ops::multiply(old, &beta_2)?,
                ops::multiply(new, &one_minus)?,
            )
        };
        let upd = ops::add(ops::square(g)?, self.eps.0)?;
        let mut update = if g.ndim() >= 2 {
            let row = mix(&state[0], &ops::mean(&upd, -1, false)?)?;
            let col = mix(&state[1], &ops::mean(&upd, -2, false)?)?;
            let r = ops::rsqrt(&ops::divide(&row, ops::mean(&row, -1, true)?)?)?;
            let c = ops::rsqrt(&col)?;
            state[0] = row;
            state[1] = col;
            ops::multiply(
                ops::multiply(ops::expand_dims(&r, -1)?, ops::expand_dims(&c, -2)?)?,
                g,
            )?
        } else {
            let sq = mix(&state[2], &upd)?;
            let u = ops::multiply(ops::rsqrt(&sq)?, g)?;
            state[2] = sq;
            u
        };
        update = ops::divide(
            &update,
            ops::maximum(ops::divide(rms(&update)?, self.clip_threshold)?, 1.0)?,
        )?;
        update = ops::multiply(&update, &lr)?;
        if let Some(b1) = self.beta_1 {
            let avg = lerp(&state[3], b1, &update, 1.0 - b1)?;
            state[3] = avg.clone();
            update = avg;
        }
        let p = if self.weight_decay != 0.0 {
            ops::add(
                p,
                ops::multiply(p, ops::multiply(&lr, -self.weight_decay)?)?,
            )?
        } else {
            p.clone()
        };
        ops::subtract(&p, &update)
    }
}

/// Muon: momentum orthogonalised by five Newton-Schulz iterations for matrices (and
/// higher-rank parameters flattened to matrices), plain momentum otherwise
/// (mlx.optimizers.Muon).
#[derive(Clone, Debug)]
pub struct Muon {
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub ns_steps: usize,
}

impl Default for Muon {
    fn default() -> Self {
        Muon {
            momentum: 0.95,
            weight_decay: 0.01,
            nesterov: true,
            ns_steps: 5,
        }
    }
}

/// The nearest semi-orthogonal matrix to `x`, approximately (Newton-Schulz, quintic).
fn newton_schulz(x: &Array, steps: usize) -> Result<Array> {
    let (a, b, c) = (3.4445, -4.7750, 2.0315);
    let tall = x.shape()[0] > x.shape()[1];
    let mut x = if tall {
        ops::transpose(x, [1i64, 0])?
    } else {
        x.clone()
    };
    x = ops::divide(
        &x,
        ops::add(ops::sqrt(&ops::sum(&ops::square(&x)?, None, true)?)?, 1e-7)?,
    )?;
    for _ in 0..steps {
        let xt = ops::transpose(&x, [1i64, 0])?;
        let m = ops::matmul(&x, &xt)?;
        let bm = ops::addmm(&ops::multiply(&m, b)?, &m, &m, c, 1.0)?;
        x = ops::addmm(&ops::multiply(&x, a)?, &bm, &x, 1.0, 1.0)?;
    }
    if tall {
        ops::transpose(&x, [1i64, 0])
    } else {
        Ok(x)
    }
}

impl Rule for Muon {
    fn state_names(&self) -> &'static [&'static str] {
        &["v"]
    }
    fn apply(
        &self,
        g: &Array,
        p: &Array,
        state: &mut [Array],
        lr: &Array,
        _: &Array,
    ) -> Result<Array> {
        let mut g = g.clone();
        if self.weight_decay != 0.0 {
            g = ops::add(&g, ops::multiply(p, self.weight_decay)?)?;
        }
        let v = lerp(&state[0], self.momentum, &g, 1.0 - self.momentum)?;
        state[0] = v.clone();
        let mut update = if self.nesterov {
            lerp(&g, 1.0 - self.momentum, &v, self.momentum)?
        } else {
            v
        };
        let mut lr = like(lr, &g)?;
        if update.ndim() >= 2 {
            let shape: Vec<i64> = update.shape().iter().map(|&d| d as i64).collect();
            let flat = ops::reshape(&update, &[shape[0], -1])?;
            let o = newton_schulz(&flat, self.ns_steps)?;
            let scale = (o.shape()[0] as f64 / o.shape()[1] as f64).max(1.0).sqrt();
            lr = ops::multiply(&lr, scale)?;
            update = ops::reshape(&o, &shape)?;
        }
        ops::subtract(p, ops::multiply(&update, &lr)?)
    }
}
