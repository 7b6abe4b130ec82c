//! [`TrainStep`]: a whole training step (forward, backward and the optimizer's update)
//! compiled as one function, with the model's parameters, the optimizer's state and the
//! random key captured as explicit inputs and outputs: the Rust form of MLX's
//! `mx.compile(step, inputs=state, outputs=state)`.
//!
//! A compiled function bakes every array it closes over into its trace as a constant, so a
//! step that read the model's weights from a closure would replay the first step's weights
//! forever. `TrainStep` instead passes every parameter, every optimizer state array, the
//! learning rate, the step number and the global random key as inputs of the compiled
//! function, and takes the new parameters, the new state and the advanced key from its
//! outputs; after each call it writes them back into the model, the optimizer and
//! [`random`]. The trace is replayed while the structure (parameter names, batch arity) and
//! the input shapes and dtypes stay the same, and retraced when they change.

use crate::{Optimizer, Rule};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use umx_core::transforms::compile;
use umx_core::{Array, Error, Result, ops, random};
use umx_nn::{Module, ModuleExt, Params};

type Compiled = Arc<dyn Fn(&[Array]) -> Result<Vec<Array>> + Send + Sync>;
type LossFn<M> = Arc<dyn Fn(&M, &[Array]) -> Result<Array> + Send + Sync>;

/// A compiled training step: `loss_fn(model, batch)`'s value and gradients, and one update of
/// the optimizer, traced once and replayed on every call (see the module documentation).
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops};
/// use umx_nn::Linear;
/// use umx_optim::{Adam, Optimizer, TrainStep};
/// let mut model = Linear::new(2, 1, true)?;
/// let mut opt = Optimizer::new(Adam::default(), 0.05);
/// let step = TrainStep::new(|m: &Linear, b: &[Array]| {
///     ops::mean(&ops::square(&ops::subtract(&m.forward(&b[0])?, &b[1])?)?, None, false)
/// });
/// // Targets far from any initial output: 21 steps of 0.05 all move toward them.
/// let (x, y) = (ops::ones(&[4, 2], None)?, ops::full(&[4, 1], 3.0, None)?);
/// let first = step.step(&mut model, &mut opt, &[x.clone(), y.clone()])?.item::<f32>()?;
/// for _ in 0..20 {
///     step.step(&mut model, &mut opt, &[x.clone(), y.clone()])?;
/// }
/// assert!(step.step(&mut model, &mut opt, &[x, y])?.item::<f32>()? < first);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub struct TrainStep<M> {
    loss_fn: LossFn<M>,
    /// One compiled function per structure: parameter names, which are trained, batch arity.
    compiled: Mutex<HashMap<String, Compiled>>,
}

/// Where each kind of input sits in the compiled function's argument list.
#[derive(Clone)]
struct Layout {
    /// Every parameter (frozen ones too), by name.
    params: Vec<String>,
    /// The trained ones (each has a gradient and optimizer state), by name.
    trained: Vec<String>,
    /// State arrays per trained parameter.
    per_param: usize,
}

impl Layout {
    fn state_at(&self) -> usize {
        self.params.len()
    }
    fn scalars_at(&self) -> usize {
        self.state_at() + self.trained.len() * self.per_param
    }
    fn batch_at(&self) -> usize {
        self.scalars_at() + 3
    }
}

impl<M> TrainStep<M>
where
    M: Module + Clone + Send + Sync + 'static,
{
    /// A step minimising `loss_fn(model, batch)`.
    pub fn new(loss_fn: impl Fn(&M, &[Array]) -> Result<Array> + Send + Sync + 'static) -> Self {
        TrainStep {
            loss_fn: Arc::new(loss_fn),
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// One step on `batch`: updates `model`'s trainable parameters, `optimizer`'s state and
    /// step count and the global random key, and returns the loss (all lazy, as after an
    /// uncompiled `value_and_grad` and [`Optimizer::update`]; evaluate them together).
    pub fn step<R>(
        &self,
        model: &mut M,
        optimizer: &mut Optimizer<R>,
        batch: &[Array],
    ) -> Result<Array>
    where
        R: Rule + Clone + Send + Sync + 'static,
    {
        let params = model.parameters();
        let trainable = model.trainable_parameters();
        let layout = Layout {
            params: params.keys().cloned().collect(),
            trained: trainable.keys().cloned().collect(),
            per_param: optimizer.rule.state_names().len(),
        };
        for (name, p) in &trainable {
            if !optimizer.state.contains_key(name) {
                let fresh = optimizer.rule.init(p)?;
                optimizer.state.insert(name.clone(), fresh);
            }
        }
        let key_before = random::state()?;
        let mut args: Vec<Array> = params.values().cloned().collect();
        for name in &layout.trained {
            args.extend(optimizer.state[name].iter().cloned());
        }
        args.push(Array::scalar(optimizer.learning_rate() as f32));
        args.push(Array::scalar((optimizer.step + 1) as f32));
        args.push(key_before.clone());
        args.extend(batch.iter().cloned());

        let compiled = self.compiled_for(model, &optimizer.rule, &layout, batch.len());
        let outs = match compiled(&args) {
            Ok(outs) => outs,
            Err(e) => {
                // A failed trace may leave its stand-in as the global key.
                random::set_state(&key_before)?;
                return Err(e);
            }
        };
        let n = layout.trained.len();
        if outs.len() != 2 + n * (1 + layout.per_param) {
            return Err(Error::Invalid(format!(
                "train step: {} outputs for {n} trained parameters",
                outs.len()
            )));
        }
        // Outputs: the loss, each trained parameter, each one's state, the advanced key.
        let per = layout.per_param;
        let mut new = Params::new();
        for (i, name) in layout.trained.iter().enumerate() {
            new.insert(name.clone(), outs[1 + i].clone());
            let at = 1 + n + i * per;
            optimizer
                .state
                .insert(name.clone(), outs[at..at + per].to_vec());
        }
        random::set_state(&outs[1 + n + n * per])?;
        model.update(&new)?;
        optimizer.step += 1;
        Ok(outs[0].clone())
    }

    /// The compiled function for this structure, traced on first use.
    fn compiled_for<R>(&self, model: &M, rule: &R, layout: &Layout, batch: usize) -> Compiled
    where
        R: Rule + Clone + Send + Sync + 'static,
    {
        let key = format!(
            "{}|{}|{}|{batch}",
            layout.params.join(","),
            layout.trained.join(","),
            layout.per_param
        );
        let mut cache = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&key) {
            return c.clone();
        }
        // The trace runs the loss on a copy of the model whose parameters are the trace's
        // stand-ins. Until then the copy holds unevaluated zeros, so that it keeps no
        // parameter's memory alive.
        let mut template = model.clone();
        let blank: Params = model
            .parameters()
            .iter()
            .filter_map(|(k, p)| Some((k.clone(), ops::zeros(p.shape(), p.dtype()).ok()?)))
            .collect();
        let _ = template.update(&blank);
        let (loss_fn, rule, layout) = (self.loss_fn.clone(), rule.clone(), layout.clone());
        let traced = move |a: &[Array]| -> Result<Vec<Array>> {
            let mut m = template.clone();
            let params: Params = layout
                .params
                .iter()
                .cloned()
                .zip(a.iter().cloned())
                .collect();
            m.update(&params)?;
            let s = layout.scalars_at();
            let (lr, step, key) = (&a[s], &a[s + 1], &a[s + 2]);
            random::set_state(key)?;
            let loss_fn = loss_fn.clone();
            let vg = umx_nn::value_and_grad(move |m: &M, b: Vec<Array>| loss_fn(m, &b));
            let (loss, grads) = vg(&m, a[layout.batch_at()..].to_vec())?;
            let mut new_params = Vec::with_capacity(layout.trained.len());
            let mut new_state = Vec::new();
            for (i, name) in layout.trained.iter().enumerate() {
                let at = layout.state_at() + i * layout.per_param;
                let mut state = a[at..at + layout.per_param].to_vec();
                let p = &params[name];
                let new = match grads.get(name) {
                    Some(g) => rule.apply(g, p, &mut state, lr, step)?,
                    None => p.clone(),
                };
                new_params.push(new);
                new_state.extend(state);
            }
            let mut out = vec![loss];
            out.extend(new_params);
            out.extend(new_state);
            out.push(random::state()?);
            Ok(out)
        };
        let c: Compiled = Arc::new(compile(traced, false));
        cache.insert(key, c.clone());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AdamW, Sgd, schedules};
    use umx_core::Dtype;
    use umx_nn::losses::{Reduction, cross_entropy};
    use umx_nn::{Dropout, GELU, Linear, Sequential, value_and_grad};

    /// The global random key is process-wide: tests that seed it run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn mlp(seed: u64) -> Sequential {
        random::seed(seed);
        Sequential::new()
            .push(Linear::new(6, 16, true).unwrap())
            .push(GELU)
            .push(Dropout::new(0.25).unwrap())
            .push(Linear::new(16, 3, true).unwrap())
    }

    fn loss(m: &Sequential, b: &[Array]) -> Result<Array> {
        cross_entropy(&m.forward(&b[0])?, &b[1], None, -1, 0.0, Reduction::Mean)
    }

    fn batch(rows: usize) -> Vec<Array> {
        let x = ops::reshape(
            &ops::sin(&ops::arange(0.0, (rows * 6) as f64, 1.0, Dtype::Float32).unwrap()).unwrap(),
            &[rows as i64, 6],
        )
        .unwrap();
        let y: Vec<u32> = (0..rows as u32).map(|i| i % 3).collect();
        vec![x, Array::from_slice(&y, &[rows]).unwrap()]
    }

    fn close(a: &Array, b: &Array, what: &str) {
        let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 + 1e-5 * y.abs(),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// Five steps of AdamW with bias correction under a decaying schedule, through a model
    /// with dropout (random draws from the global key), compiled and not: the same losses,
    /// parameters and optimizer state. Nothing of the first step may be baked into the
    /// replayed trace: not the weights, the learning rate, the step's bias corrections nor
    /// the dropout mask.
    #[test]
    fn compiled_steps_equal_plain_steps() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        umx_cpu::register();
        let rule = AdamW {
            adam: crate::Adam {
                bias_correction: true,
                ..Default::default()
            },
            weight_decay: 0.05,
        };
        let b = batch(8);
        let (mut plain, mut compiled) = (mlp(3), mlp(3));
        let mut opt_p = Optimizer::new(rule.clone(), schedules::cosine_decay(0.05, 10, 0.001));
        let mut opt_c = Optimizer::new(rule, schedules::cosine_decay(0.05, 10, 0.001));
        let vg = value_and_grad(|m: &Sequential, b: Vec<Array>| loss(m, &b));
        let step = TrainStep::new(loss);
        let mut losses = Vec::new();
        for i in 0..5 {
            random::seed(100 + i);
            let (lp, grads) = vg(&plain, b.clone()).unwrap();
            opt_p.update(&mut plain, &grads).unwrap();
            random::seed(100 + i);
            let lc = step.step(&mut compiled, &mut opt_c, &b).unwrap();
            close(&lc, &lp, &format!("loss {i}"));
            losses.push(lc.item::<f32>().unwrap());
            for (name, p) in plain.parameters() {
                close(
                    &compiled.parameters()[&name],
                    &p,
                    &format!("{name} after step {i}"),
                );
            }
            let (sp, sc) = (opt_p.state().unwrap(), opt_c.state().unwrap());
            for (name, s) in &sp {
                if name != "step" {
                    close(&sc[name], s, name);
                }
            }
            assert_eq!(opt_c.step(), i as usize + 1);
        }
        // The loss moved: the replays used each step's new weights.
        assert!(losses.windows(2).all(|w| w[0] != w[1]), "{losses:?}");
        // One trace served every step.
        assert_eq!(step.compiled.lock().unwrap().len(), 1);
    }

    /// Frozen parameters are inputs too: changing one between calls changes the result.
    /// A new batch shape retraces.
    #[test]
    fn frozen_parameters_are_read_each_call_and_shapes_retrace() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        umx_cpu::register();
        let mut model = Linear::new(4, 2, true).unwrap();
        model.freeze(&["bias"]);
        let mut opt = Optimizer::new(Sgd::default(), 0.1);
        let loss = |m: &Linear, b: &[Array]| ops::sum(&m.forward(&b[0])?, None, false);
        let step = TrainStep::new(loss);
        let x = ops::ones(&[3, 4], Dtype::Float32).unwrap();
        let l1 = step
            .step(&mut model, &mut opt, std::slice::from_ref(&x))
            .unwrap();
        let bias_before = model.parameters()["bias"].to_vec::<f32>().unwrap();
        let mut bias = Params::new();
        bias.insert(
            "bias".into(),
            ops::full(&[2], 10.0, Dtype::Float32).unwrap(),
        );
        model.update(&bias).unwrap();
        let w = model.parameters()["weight"].clone();
        let l2 = step
            .step(&mut model, &mut opt, std::slice::from_ref(&x))
            .unwrap();
        // sum(x W^T + b) over 3 rows: the new bias counts 3 x 2 x 10.
        let want = ops::sum(
            &ops::add(
                ops::matmul(&x, &ops::transpose(&w, [1i64, 0]).unwrap()).unwrap(),
                10.0,
            )
            .unwrap(),
            None,
            false,
        )
        .unwrap();
        close(&l2, &want, "loss with the new bias");
        assert_ne!(l1.item::<f32>().unwrap(), l2.item::<f32>().unwrap());
        // The frozen bias is not trained; SGD moved the weight by lr * 3 (sum over 3 ones rows).
        assert_eq!(
            model.parameters()["bias"].to_vec::<f32>().unwrap(),
            vec![10.0; 2]
        );
        assert_ne!(bias_before, vec![10.0; 2]);
        close(
            &model.parameters()["weight"],
            &ops::subtract(&w, 0.3).unwrap(),
            "weight",
        );
        let y = ops::ones(&[5, 4], Dtype::Float32).unwrap();
        let l3 = step.step(&mut model, &mut opt, &[y]).unwrap();
        assert!(l3.item::<f32>().unwrap().is_finite());
    }
}
