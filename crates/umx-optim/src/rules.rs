//! The optimization algorithms, with mlx.optimizers' formulas and defaults.

use crate::Rule;
use umx_core::{Array, Result, ops};

/// `a * x + b * y`.
fn lerp(x: &Array, a: f64, y: &Array, b: f64) -> Result<Array> {
    ops::add(ops::multiply(x, a)?, ops::multiply(y, b)?)
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
        lr: f64,
        _: usize,
    ) -> Result<Array> {
        let mut g = grad.clone();
        if self.weight_decay != 0.0 {
            g = ops::add(&g, ops::multiply(param, self.weight_decay)?)?;
        }
        if self.momentum <= 0.0 {
            return ops::subtract(param, ops::multiply(&g, lr)?);
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
        ops::subtract(param, ops::multiply(&update, lr)?)
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
    fn apply(&self, g: &Array, p: &Array, state: &mut [Array], lr: f64, _: usize) -> Result<Array> {
        let v = lerp(&state[0], self.alpha, &ops::square(g)?, 1.0 - self.alpha)?;
        let step = ops::divide(ops::multiply(g, lr)?, ops::add(ops::sqrt(&v)?, self.eps)?)?;
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
    fn apply(&self, g: &Array, p: &Array, state: &mut [Array], lr: f64, _: usize) -> Result<Array> {
        let v = ops::add(&state[0], ops::square(g)?)?;
        let step = ops::divide(ops::multiply(g, lr)?, ops::add(ops::sqrt(&v)?, self.eps)?)?;
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
    fn apply(&self, g: &Array, p: &Array, state: &mut [Array], lr: f64, _: usize) -> Result<Array> {
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
        ops::subtract(p, ops::multiply(&d, lr)?)
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
        lr: f64,
        step: usize,
    ) -> Result<Array> {
        let (b1, b2) = self.betas;
        let m = lerp(&state[0], b1, g, 1.0 - b1)?;
        let v = lerp(&state[1], b2, &ops::square(g)?, 1.0 - b2)?;
        let update = if self.bias_correction {
            let t = step as i32;
            let num = ops::multiply(&m, lr / (1.0 - b1.powi(t)))?;
            let den = ops::add(
                ops::divide(ops::sqrt(&v)?, (1.0 - b2.powi(t)).sqrt())?,
                self.eps,
            )?;
            ops::divide(&num, &den)?
        } else {
            ops::divide(ops::multiply(&m, lr)?, ops::add(ops::sqrt(&v)?, self.eps)?)?
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
        lr: f64,
        step: usize,
    ) -> Result<Array> {
        let decayed = ops::multiply(p, 1.0 - lr * self.weight_decay)?;
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
    fn apply(&self, g: &Array, p: &Array, state: &mut [Array], lr: f64, _: usize) -> Result<Array> {
        let (b1, b2) = self.betas;
        let m = lerp(&state[0], b1, g, 1.0 - b1)?;
        let v = ops::maximum(ops::multiply(&state[1], b2)?, ops::abs(g)?)?;
        let step = ops::divide(ops::multiply(&m, lr)?, ops::add(&v, self.eps)?)?;
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
    fn apply(&self, g: &Array, p: &Array, state: &mut [Array], lr: f64, _: usize) -> Result<Array> {
        let (b1, b2) = self.betas;
        let c = lerp(&state[0], b1, g, 1.0 - b1)?;
        state[0] = lerp(&state[0], b2, g, 1.0 - b2)?;
        let p = if self.weight_decay > 0.0 {
            ops::multiply(p, 1.0 - lr * self.weight_decay)?
        } else {
            p.clone()
        };
        ops::subtract(&p, ops::multiply(ops::sign(&c)?, lr)?)
    }
}
