//! [`Module`]: a tree of named parameters, as mlx.nn's `Module`.

use std::collections::BTreeMap;
use umx_core::{Array, Dtype, Result, bail, ops};

/// Parameters by dotted name (`layers.0.weight`): what [`ModuleExt::parameters`] returns,
/// what gradients come back as, and what [`ModuleExt::update`] takes. A
/// [`Tree`](umx_core::transforms::Tree), so the transformations take and return it.
pub type Params = BTreeMap<String, Array>;

/// One parameter of a module: its value, and whether it is frozen (left out of
/// [`ModuleExt::trainable_parameters`], so no gradient is taken for it).
#[derive(Clone, Debug)]
pub struct Param {
    pub value: Array,
    pub frozen: bool,
}

impl Param {
    /// A trainable parameter.
    pub fn new(value: Array) -> Param {
        Param {
            value,
            frozen: false,
        }
    }

    /// A parameter that does not train (running statistics, fixed tables).
    pub fn frozen(value: Array) -> Param {
        Param {
            value,
            frozen: true,
        }
    }
}

impl std::ops::Deref for Param {
    type Target = Array;
    fn deref(&self) -> &Array {
        &self.value
    }
}

/// `prefix.name`, or `name` at the root.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A structure of parameters: a layer, a model, or one of the containers below. Derive it for
/// your own structs with `#[derive(Module)]`.
///
/// ```
/// # umx_cpu::register();
/// use umx_nn::{Linear, Module, ModuleExt};
/// #[derive(Module, Clone)]
/// #[module(crate = "umx_nn")] // users of the `umx` facade leave this out
/// struct Mlp {
///     layers: Vec<Linear>,
/// }
/// let mlp = Mlp { layers: vec![Linear::new(4, 8, true)?, Linear::new(8, 2, true)?] };
/// let names: Vec<String> = mlp.parameters().into_keys().collect();
/// assert_eq!(names, ["layers.0.bias", "layers.0.weight", "layers.1.bias", "layers.1.weight"]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub trait Module {
    /// Calls `f` on every parameter with its full dotted name (`prefix` joined with the path
    /// inside this module).
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param));

    /// [`Module::visit_params`] with mutable access.
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param));

    /// Switches training behaviour (dropout, batch statistics) on or off, here and in every
    /// submodule.
    fn set_training(&mut self, training: bool) {
        let _ = training;
    }

    /// Calls `f` on every layer that can be quantized ([`Linear`](crate::Linear),
    /// [`Embedding`](crate::Embedding)) here and in every submodule, with its dotted name:
    /// how [`quantize`](crate::quantize) finds them. Containers and derived modules forward it;
    /// a leaf that holds no such layer keeps this default.
    fn visit_quantizable_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn crate::Quantizable),
    ) {
        let _ = (prefix, f);
    }
}

/// The operations every module has, in terms of [`Module`]'s visitors.
pub trait ModuleExt: Module {
    /// Every parameter, frozen ones included, by dotted name.
    fn parameters(&self) -> Params {
        let mut out = Params::new();
        self.visit_params("", &mut |n, p| {
            out.insert(n.to_string(), p.value.clone());
        });
        out
    }

    /// The parameters that train (not frozen).
    fn trainable_parameters(&self) -> Params {
        let mut out = Params::new();
        self.visit_params("", &mut |n, p| {
            if !p.frozen {
                out.insert(n.to_string(), p.value.clone());
            }
        });
        out
    }

    /// Replaces the parameters named in `params` (a subset is fine). An unknown name or a
    /// shape that differs from the parameter's is an error, and nothing is changed then.
    fn update(&mut self, params: &Params) -> Result<()> {
        let mut found = 0;
        let mut bad = None;
        self.visit_params("", &mut |n, p| {
            if let Some(v) = params.get(n) {
                found += 1;
                if v.shape() != p.value.shape() && bad.is_none() {
                    bad = Some(format!(
                        "update: parameter {n} has shape {:?}, the new value {:?}",
                        p.value.shape(),
                        v.shape()
                    ));
                }
            }
        });
        if let Some(m) = bad {
            bail!("{m}");
        }
        if found != params.len() {
            let known = self.parameters();
            let unknown: Vec<&String> = params.keys().filter(|k| !known.contains_key(*k)).collect();
            bail!("update: no parameters named {unknown:?} in this module");
        }
        self.visit_params_mut("", &mut |n, p| {
            if let Some(v) = params.get(n) {
                p.value = v.clone();
            }
        });
        Ok(())
    }

    /// Freezes the parameters whose names start with one of `prefixes` (all of them when
    /// `prefixes` is empty), as mlx.nn's `freeze(keys=...)`.
    fn freeze(&mut self, prefixes: &[&str]) {
        set_frozen(self, prefixes, true)
    }

    /// Unfreezes the parameters whose names start with one of `prefixes` (all when empty).
    fn unfreeze(&mut self, prefixes: &[&str]) {
        set_frozen(self, prefixes, false)
    }

    /// Training mode (dropout active, batch statistics).
    fn train(&mut self) {
        self.set_training(true)
    }

    /// Evaluation mode.
    fn eval(&mut self) {
        self.set_training(false)
    }

    /// Converts every floating-point parameter to `dtype` (integer ones are left alone).
    fn set_dtype(&mut self, dtype: Dtype) -> Result<()> {
        let mut err = None;
        self.visit_params_mut("", &mut |_, p| {
            if p.value.dtype().is_float() && err.is_none() {
                match ops::astype(&p.value, dtype) {
                    Ok(v) => p.value = v,
                    Err(e) => err = Some(e),
                }
            }
        });
        err.map_or(Ok(()), Err)
    }

    /// The number of parameter elements.
    fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit_params("", &mut |_, p| n += p.value.size());
        n
    }
}

impl<M: Module + ?Sized> ModuleExt for M {}

fn set_frozen<M: Module + ?Sized>(m: &mut M, prefixes: &[&str], frozen: bool) {
    m.visit_params_mut("", &mut |n, p| {
        let hit = prefixes.is_empty()
            || prefixes
                .iter()
                .any(|k| n == *k || n.starts_with(&format!("{k}.")));
        if hit {
            p.frozen = frozen;
        }
    });
}

impl Module for Param {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        f(prefix, self)
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(prefix, self)
    }
}

impl<T: Module> Module for Vec<T> {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        for (i, m) in self.iter().enumerate() {
            m.visit_params(&join(prefix, &i.to_string()), f);
        }
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        for (i, m) in self.iter_mut().enumerate() {
            m.visit_params_mut(&join(prefix, &i.to_string()), f);
        }
    }
    fn set_training(&mut self, training: bool) {
        self.iter_mut().for_each(|m| m.set_training(training))
    }
    fn visit_quantizable_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn crate::Quantizable),
    ) {
        for (i, m) in self.iter_mut().enumerate() {
            m.visit_quantizable_mut(&join(prefix, &i.to_string()), f);
        }
    }
}

impl<T: Module> Module for Option<T> {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        if let Some(m) = self {
            m.visit_params(prefix, f)
        }
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        if let Some(m) = self {
            m.visit_params_mut(prefix, f)
        }
    }
    fn set_training(&mut self, training: bool) {
        if let Some(m) = self {
            m.set_training(training)
        }
    }
    fn visit_quantizable_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn crate::Quantizable),
    ) {
        if let Some(m) = self {
            m.visit_quantizable_mut(prefix, f)
        }
    }
}

impl<T: Module> Module for BTreeMap<String, T> {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        for (k, m) in self {
            m.visit_params(&join(prefix, k), f);
        }
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        for (k, m) in self.iter_mut() {
            m.visit_params_mut(&join(prefix, k), f);
        }
    }
    fn set_training(&mut self, training: bool) {
        self.values_mut().for_each(|m| m.set_training(training))
    }
    fn visit_quantizable_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn crate::Quantizable),
    ) {
        for (k, m) in self.iter_mut() {
            m.visit_quantizable_mut(&join(prefix, k), f);
        }
    }
}

impl<T: Module + ?Sized> Module for Box<T> {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        (**self).visit_params(prefix, f)
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        (**self).visit_params_mut(prefix, f)
    }
    fn set_training(&mut self, training: bool) {
        (**self).set_training(training)
    }
    fn visit_quantizable_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn crate::Quantizable),
    ) {
        (**self).visit_quantizable_mut(prefix, f)
    }
}

/// Plain values hold no parameters, so structs can keep their configuration beside their
/// layers.
macro_rules! no_params {
    ($($t:ty),*) => {$(
        impl Module for $t {
            fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, &'a Param)) {}
            fn visit_params_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Param)) {}
        }
    )*};
}
no_params!(
    bool, usize, isize, i32, i64, u32, u64, f32, f64, String, Dtype
);

/// `loss_fn`'s value and its gradient with respect to the module's trainable parameters
/// (mlx.nn's `value_and_grad(model, loss_fn)`): call it with the model and the rest of the
/// arguments (usually owned arrays: they are cheap handles, and owning them keeps the
/// returned closure free of borrows across loop iterations).
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops};
/// use umx_nn::{Linear, Module, value_and_grad};
/// let model = Linear::new(3, 1, true)?;
/// let loss = |m: &Linear, x: Array| ops::mean(&ops::square(&m.forward(&x)?)?, None, false);
/// let vg = value_and_grad(loss);
/// let (l, grads) = vg(&model, ops::ones(&[5, 3], None)?)?;
/// assert_eq!(l.shape(), &[] as &[usize]);
/// assert_eq!(grads["weight"].shape(), &[1, 3]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn value_and_grad<M, A>(
    loss_fn: impl Fn(&M, A) -> Result<Array>,
) -> impl Fn(&M, A) -> Result<(Array, Params)>
where
    M: Module + Clone,
    A: Clone,
{
    move |model: &M, args: A| {
        let params = model.trainable_parameters();
        let vg = umx_core::transforms::value_and_grad(|p: &Params| {
            let mut m = model.clone();
            m.update(p)?;
            loss_fn(&m, args.clone())
        });
        vg(&params)
    }
}
