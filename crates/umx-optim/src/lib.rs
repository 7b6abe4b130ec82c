//! umx-optim: optimizers and learning-rate schedules on umx-core, after `mlx.optimizers`.
//!
//! An [`Optimizer`] turns gradients (a [`Params`] map, as `umx_nn::value_and_grad` returns)
//! into new parameters, keeping its state (moments, step count) as arrays by name. Each
//! algorithm is one [`Rule`]: its per-parameter state and its update, with MLX's formulas
//! and defaults. Schedules are plain functions of the step (`schedules.rs`). Each
//! parameter's update is traced and fused (`compile_once`), so an update of a dozen
//! element-wise ops runs as a few kernels (`UMX_DISABLE_COMPILE=1` runs them one by one).
//! [`TrainStep`] compiles a whole training step (loss, gradients and update) with the
//! parameters, the optimizer's state and the random key as its inputs and outputs.

mod rules;
pub mod schedules;
mod step;

pub use rules::*;
pub use schedules::Schedule;
pub use step::TrainStep;

use std::collections::BTreeMap;
use umx_core::transforms::compile_once;
use umx_core::{Array, Result, bail, ops};
use umx_nn::{Module, ModuleExt, Params};

/// One optimization algorithm: how it updates one parameter.
pub trait Rule {
    /// The names of the state arrays it keeps per parameter.
    fn state_names(&self) -> &'static [&'static str];

    /// The initial state of `param` (one array per name; zeros unless a rule says otherwise).
    fn init(&self, param: &Array) -> Result<Vec<Array>> {
        self.state_names()
            .iter()
            .map(|_| ops::zeros_like(param))
            .collect()
    }

    /// The new parameter from its gradient, updating `state` (arrays named by
    /// [`Rule::state_names`]). `lr` is this step's learning rate and `step` its number,
    /// counting from 1: 0-d float32 arrays, so that a traced update (a compiled training
    /// step, [`TrainStep`]) reads each call's values instead of baking the first ones in.
    fn apply(
        &self,
        grad: &Array,
        param: &Array,
        state: &mut [Array],
        lr: &Array,
        step: &Array,
    ) -> Result<Array>;
}

/// A [`Rule`] with its learning-rate schedule and state: call [`Optimizer::update`] each step.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops};
/// use umx_nn::{Linear, ModuleExt, value_and_grad};
/// use umx_optim::{Optimizer, Sgd};
/// let mut model = Linear::new(2, 1, true)?;
/// let mut opt = Optimizer::new(Sgd::default(), 0.1);
/// let loss = |m: &Linear, x: Array| ops::mean(&ops::square(&m.forward(&x)?)?, None, false);
/// let vg = value_and_grad(loss);
/// let x = ops::ones(&[4, 2], None)?;
/// let before = vg(&model, x.clone())?.0.item::<f32>()?;
/// for _ in 0..20 {
///     let (_, grads) = vg(&model, x.clone())?;
///     opt.update(&mut model, &grads)?;
/// }
/// assert!(vg(&model, x)?.0.item::<f32>()? < before);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub struct Optimizer<R: Rule> {
    pub rule: R,
    schedule: Schedule,
    step: usize,
    state: BTreeMap<String, Vec<Array>>,
}

impl<R: Rule> Optimizer<R> {
    /// `rule` with a learning rate: a number or a [`Schedule`].
    pub fn new(rule: R, learning_rate: impl Into<Schedule>) -> Self {
        Optimizer {
            rule,
            schedule: learning_rate.into(),
            step: 0,
            state: BTreeMap::new(),
        }
    }

    /// Steps taken so far.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The learning rate of the next step.
    pub fn learning_rate(&self) -> f64 {
        self.schedule.at(self.step)
    }

    /// New values for the parameters that have gradients, one step of the rule.
    pub fn apply_gradients(&mut self, grads: &Params, params: &Params) -> Result<Params> {
        let lr = Array::scalar(self.schedule.at(self.step) as f32);
        self.step += 1;
        let step = Array::scalar(self.step as f32);
        let mut out = Params::new();
        for (name, g) in grads {
            let Some(p) = params.get(name) else {
                bail!("optimizer: a gradient for {name}, which is not a parameter");
            };
            if g.shape() != p.shape() {
                bail!(
                    "optimizer: the gradient of {name} has shape {:?}, the parameter {:?}",
                    g.shape(),
                    p.shape()
                );
            }
            let state = match self.state.get_mut(name) {
                Some(s) => s,
                None => {
                    let fresh = self.rule.init(p)?;
                    self.state.entry(name.clone()).or_insert(fresh)
                }
            };
            // Traced and fused (compile_once): the update's element-wise chains run as a few
            // fused kernels instead of one pass over the parameter per op.
            let rule = &self.rule;
            let update = |a: &[Array]| -> Result<Vec<Array>> {
                let mut st = a[4..].to_vec();
                let new = rule.apply(&a[0], &a[1], &mut st, &a[2], &a[3])?;
                Ok(std::iter::once(new).chain(st).collect())
            };
            let args: Vec<Array> = [g.clone(), p.clone(), lr.clone(), step.clone()]
                .into_iter()
                .chain(state.iter().cloned())
                .collect();
            let mut outs = compile_once(&update, &args)?.into_iter();
            let new = outs
                .next()
                .ok_or_else(|| umx_core::Error::Invalid("optimizer: no update".into()))?;
            for (s, v) in state.iter_mut().zip(outs) {
                *s = v;
            }
            out.insert(name.clone(), new);
        }
        Ok(out)
    }

    /// One step on `model`'s parameters (MLX's `optimizer.update(model, grads)`).
    pub fn update<M: Module>(&mut self, model: &mut M, grads: &Params) -> Result<()> {
        let new = self.apply_gradients(grads, &model.parameters())?;
        model.update(&new)
    }

    /// The state as arrays by name (`weight.m`, ...) plus `step`: to evaluate with the model
    /// each step, and to save.
    pub fn state(&self) -> Result<Params> {
        let mut out = Params::new();
        for (name, arrays) in &self.state {
            for (s, a) in self.rule.state_names().iter().zip(arrays) {
                out.insert(format!("{name}.{s}"), a.clone());
            }
        }
        out.insert("step".into(), Array::scalar(self.step as u64));
        Ok(out)
    }

    /// Restores state saved by [`Optimizer::state`].
    pub fn set_state(&mut self, state: &Params) -> Result<()> {
        let Some(step) = state.get("step") else {
            bail!("optimizer: the saved state has no step");
        };
        let names = self.rule.state_names();
        let mut restored: BTreeMap<String, Vec<Option<Array>>> = BTreeMap::new();
        for (key, a) in state {
            if key == "step" {
                continue;
            }
            let Some((param, s)) = key.rsplit_once('.') else {
                bail!("optimizer: unexpected state entry {key}");
            };
            let Some(i) = names.iter().position(|n| *n == s) else {
                bail!("optimizer: {s} is not state of this optimizer ({key})");
            };
            restored
                .entry(param.to_string())
                .or_insert_with(|| vec![None; names.len()])[i] = Some(a.clone());
        }
        let mut full = BTreeMap::new();
        for (param, arrays) in restored {
            let arrays: Option<Vec<Array>> = arrays.into_iter().collect();
            let Some(arrays) = arrays else {
                bail!("optimizer: the saved state of {param} is incomplete");
            };
            full.insert(param, arrays);
        }
        self.step = step.item::<u64>()? as usize;
        self.state = full;
        Ok(())
    }
}

/// Scales `grads` so that their global L2 norm is at most `max_norm`; returns the scaled
/// gradients and the norm before scaling (MLX's `clip_grad_norm`).
pub fn clip_grad_norm(grads: &Params, max_norm: f64) -> Result<(Params, Array)> {
    let mut total: Option<Array> = None;
    for g in grads.values() {
        let s = ops::sum(&ops::square(g)?, None, false)?;
        total = Some(match total {
            Some(t) => ops::add(&t, &s)?,
            None => s,
        });
    }
    let Some(total) = total else {
        return Ok((grads.clone(), Array::scalar(0.0f32)));
    };
    let norm = ops::sqrt(&total)?;
    let scale = ops::minimum(ops::divide(max_norm, ops::add(&norm, 1e-6)?)?, 1.0)?;
    let clipped = grads
        .iter()
        .map(|(k, g)| Ok((k.clone(), ops::multiply(g, &scale)?)))
        .collect::<Result<Params>>()?;
    Ok((clipped, norm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use umx_core::primitives::Primitive;

    #[test]
    fn fused_updates_equal_the_rule_applied_op_by_op() {
        umx_cpu::register();
        let p = ops::linspace(-1.0, 1.0, 64, None).unwrap();
        let g = ops::multiply(ops::sin(&p).unwrap(), 0.3).unwrap();
        let mut params = Params::new();
        params.insert("w".into(), p.clone());
        let mut grads = Params::new();
        grads.insert("w".into(), g.clone());
        let rule = AdamW::default();
        let mut opt = Optimizer::new(rule.clone(), 1e-2);
        let mut state = rule.init(&p).unwrap();
        let (mut want, mut got) = (p.clone(), p.clone());
        for step in 1..=3 {
            let (lr, t) = (Array::scalar(1e-2f32), Array::scalar(step as f32));
            want = rule.apply(&g, &want, &mut state, &lr, &t).unwrap();
            params.insert("w".into(), got.clone());
            got = opt.apply_gradients(&grads, &params).unwrap()["w"].clone();
            // The update's element-wise chain became one fused node, whose other outputs
            // are the new moments.
            assert!(matches!(got.primitive(), Some(Primitive::Fused(op)) if op.extra.len() == 2));
            assert_eq!(
                got.to_vec::<f32>().unwrap(),
                want.to_vec::<f32>().unwrap(),
                "step {step}"
            );
        }
    }
}
