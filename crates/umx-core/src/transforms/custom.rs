//! Functions with their own rules: [`custom_function`], [`checkpoint`]; and the graph-level
//! helpers [`stop_gradient`] and [`depends`]. The rules of the transformation primitives
//! ([`TransformOp`]) live here too.

use crate::device::OutSpec;
use crate::primitives::{Primitive, TransformOp};
use crate::shape::fmt_shape;
use crate::{Array, Result, bail, ops};
use std::sync::Arc;

/// A function of arrays to arrays, shareable across threads.
pub type ArrayFn = Arc<dyn Fn(&[Array]) -> Result<Vec<Array>> + Send + Sync>;
/// A custom vjp: `(primals, cotangents, outputs)` to one cotangent per primal.
pub type VjpFn = Arc<dyn Fn(&[Array], &[Array], &[Array]) -> Result<Vec<Array>> + Send + Sync>;
/// A custom jvp: `(primals, tangents)` (a tangent per primal, zeros where none) to one
/// tangent per output.
pub type JvpFn = Arc<dyn Fn(&[Array], &[Array]) -> Result<Vec<Array>> + Send + Sync>;
/// A custom batching rule: `(inputs, batch axis of each input)` to `(outputs, batch axis of
/// each output)`.
pub type VmapFn = Arc<
    dyn Fn(&[Array], &[Option<usize>]) -> Result<(Vec<Array>, Vec<Option<usize>>)> + Send + Sync,
>;

/// The rules of one custom function: the [`TransformOp::Custom`] primitive's payload.
#[derive(Clone)]
pub struct CustomOp {
    rules: Arc<CustomFunction>,
    /// How many of the node's inputs are the function's arguments (the rest are its outputs).
    n_args: usize,
}

impl PartialEq for CustomOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.rules, &other.rules) && self.n_args == other.n_args
    }
}

impl std::fmt::Debug for CustomOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Custom({})", self.rules.name)
    }
}

/// A function with its own vjp, jvp or vmap rules (MLX's `custom_function`). Rules left out
/// are derived from the function itself.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops, transforms::{custom_function, grad}};
/// // exp, whose gradient is clipped to at most 1.
/// let f = custom_function("clipped_exp", |x| Ok(vec![ops::exp(&x[0])?]))
///     .with_vjp(|_, cots, outs| Ok(vec![ops::minimum(&(&cots[0] * &outs[0]), 1.0)?]));
/// let df = grad(move |x: &Array| Ok(f.call(&[x.clone()])?.remove(0)));
/// assert_eq!(df(&Array::scalar(2.0f32))?.item::<f32>()?, 1.0);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub struct CustomFunction {
    name: String,
    fun: ArrayFn,
    vjp: Option<VjpFn>,
    jvp: Option<JvpFn>,
    vmap: Option<VmapFn>,
}

/// A [`CustomFunction`] computing `fun`; add rules with its `with_*` methods.
pub fn custom_function(
    name: &str,
    fun: impl Fn(&[Array]) -> Result<Vec<Array>> + Send + Sync + 'static,
) -> CustomFunction {
    CustomFunction {
        name: name.to_string(),
        fun: Arc::new(fun),
        vjp: None,
        jvp: None,
        vmap: None,
    }
}

impl CustomFunction {
    /// Sets the vjp rule: `(primals, cotangents, outputs)` to a cotangent per primal.
    pub fn with_vjp(
        mut self,
        f: impl Fn(&[Array], &[Array], &[Array]) -> Result<Vec<Array>> + Send + Sync + 'static,
    ) -> Self {
        self.vjp = Some(Arc::new(f));
        self
    }

    /// Sets the jvp rule: `(primals, tangents)` to a tangent per output.
    pub fn with_jvp(
        mut self,
        f: impl Fn(&[Array], &[Array]) -> Result<Vec<Array>> + Send + Sync + 'static,
    ) -> Self {
        self.jvp = Some(Arc::new(f));
        self
    }

    /// Sets the batching rule: `(inputs, axes)` to `(outputs, axes)`.
    pub fn with_vmap(
        mut self,
        f: impl Fn(&[Array], &[Option<usize>]) -> Result<(Vec<Array>, Vec<Option<usize>>)>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.vmap = Some(Arc::new(f));
        self
    }

    /// Calls the function: its outputs, which transformations handle with the given rules.
    pub fn call(&self, args: &[Array]) -> Result<Vec<Array>> {
        let op = CustomOp {
            rules: Arc::new(CustomFunction {
                name: self.name.clone(),
                fun: self.fun.clone(),
                vjp: self.vjp.clone(),
                jvp: self.jvp.clone(),
                vmap: self.vmap.clone(),
            }),
            n_args: args.len(),
        };
        let outs = (self.fun)(args)?;
        let specs = outs
            .iter()
            .map(|o| OutSpec {
                shape: o.shape().to_vec(),
                dtype: o.dtype(),
            })
            .collect();
        let mut inputs = args.to_vec();
        for o in &outs {
            inputs.push(stop_gradient(o)?);
        }
        Array::from_primitive_multi(Primitive::Transform(TransformOp::Custom(op)), inputs, specs)
    }
}

/// `f` with its activations recomputed during the backward pass instead of kept from the
/// forward one: less memory for more compute (MLX's `checkpoint`).
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops, transforms::{checkpoint, grad}};
/// let block = checkpoint(|x: &[Array]| Ok(vec![ops::tanh(&ops::sin(&x[0])?)?]));
/// let df = grad(move |x: &Array| ops::sum(&block(&[x.clone()])?[0], None, false));
/// let x = Array::scalar(0.5f64);
/// let expected = (1.0 - 0.5f64.sin().tanh().powi(2)) * 0.5f64.cos();
/// assert!((df(&x)?.item::<f64>()? - expected).abs() < 1e-12);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn checkpoint(
    f: impl Fn(&[Array]) -> Result<Vec<Array>> + Send + Sync + 'static,
) -> impl Fn(&[Array]) -> Result<Vec<Array>> + Send + Sync + 'static {
    let f: ArrayFn = Arc::new(f);
    let recompute = f.clone();
    let cf = CustomFunction {
        name: "checkpoint".into(),
        fun: f,
        vjp: Some(Arc::new(move |primals, cots, outs| {
            // Recompute only once the cotangents (and so the whole forward pass) exist, so the
            // recomputed activations live only while this block's backward pass runs.
            let mut after: Vec<Array> = cots.to_vec();
            after.extend_from_slice(outs);
            let primals = depends(primals, &after)?;
            let argnums: Vec<usize> = (0..primals.len()).collect();
            vjp_of(&recompute, &primals, cots, &argnums)
        })),
        jvp: None,
        vmap: None,
    };
    move |args| cf.call(args)
}

/// The vjp of `fun` for the inputs numbered `argnums` (float ones; others get zeros).
fn vjp_of(
    fun: &ArrayFn,
    primals: &[Array],
    cots: &[Array],
    argnums: &[usize],
) -> Result<Vec<Array>> {
    let diff: Vec<usize> = argnums
        .iter()
        .copied()
        .filter(|&i| primals[i].dtype().is_inexact())
        .collect();
    let picked: Vec<Array> = diff.iter().map(|&i| primals[i].clone()).collect();
    let (_, grads) = super::vjp(
        |xs| {
            let mut full = primals.to_vec();
            for (&i, x) in diff.iter().zip(xs) {
                full[i] = x.clone();
            }
            fun(&full)
        },
        &picked,
        cots,
    )?;
    argnums
        .iter()
        .map(|&i| match diff.iter().position(|&d| d == i) {
            Some(k) => Ok(grads[k].clone()),
            None => ops::zeros_like(&primals[i]),
        })
        .collect()
}

/// `a` with no derivative flowing through it (its value unchanged).
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops, transforms::{grad, stop_gradient}};
/// let df = grad(|x: &Array| ops::multiply(x, &stop_gradient(x)?));
/// assert_eq!(df(&Array::scalar(3.0f32))?.item::<f32>()?, 3.0);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn stop_gradient(a: &Array) -> Result<Array> {
    Array::from_primitive(
        Primitive::Transform(TransformOp::StopGradient),
        vec![a.clone()],
        a.shape().to_vec(),
        a.dtype(),
    )
}

/// `inputs` unchanged, computed only after `deps`: a scheduling edge (MLX's `depends`).
pub fn depends(inputs: &[Array], deps: &[Array]) -> Result<Vec<Array>> {
    let specs = inputs
        .iter()
        .map(|a| OutSpec {
            shape: a.shape().to_vec(),
            dtype: a.dtype(),
        })
        .collect();
    let mut all = inputs.to_vec();
    all.extend_from_slice(deps);
    Array::from_primitive_multi(
        Primitive::Transform(TransformOp::Depends { n: inputs.len() }),
        all,
        specs,
    )
}

/// An identity node over `a`: the tracer a transformation starts from.
pub(crate) fn identity(a: &Array) -> Result<Array> {
    Ok(depends(std::slice::from_ref(a), &[])?.remove(0))
}

impl TransformOp {
    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        _outputs: &[Array],
    ) -> Result<Vec<Array>> {
        match self {
            TransformOp::Depends { n } => argnums
                .iter()
                .map(|&i| {
                    if i < *n {
                        Ok(cotangents[i].clone())
                    } else {
                        ops::zeros_like(&inputs[i])
                    }
                })
                .collect(),
            TransformOp::StopGradient | TransformOp::Placeholder => argnums
                .iter()
                .map(|&i| ops::zeros_like(&inputs[i]))
                .collect(),
            TransformOp::Custom(op) => {
                let n_args = op.n_args;
                let primals = &inputs[..n_args];
                let outputs = &inputs[n_args..];
                let all = match &op.rules.vjp {
                    Some(vjp) => {
                        let g = vjp(primals, cotangents, outputs)?;
                        if g.len() != n_args {
                            bail!(
                                "{}: the custom vjp returned {} cotangents for {n_args} inputs",
                                op.rules.name,
                                g.len()
                            );
                        }
                        g
                    }
                    None => {
                        let argnums: Vec<usize> = (0..n_args).collect();
                        vjp_of(&op.rules.fun, primals, cotangents, &argnums)?
                    }
                };
                argnums
                    .iter()
                    .map(|&i| match all.get(i) {
                        Some(g) => check_like(&op.rules.name, "vjp", g, &inputs[i]),
                        None => ops::zeros_like(&inputs[i]),
                    })
                    .collect()
            }
        }
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        match self {
            TransformOp::Depends { n } => (0..*n)
                .map(|i| match &tangents[i] {
                    Some(t) => Ok(t.clone()),
                    None => ops::zeros_like(&inputs[i]),
                })
                .collect(),
            TransformOp::StopGradient | TransformOp::Placeholder => {
                outputs.iter().map(ops::zeros_like).collect()
            }
            TransformOp::Custom(op) => {
                let n_args = op.n_args;
                let primals = &inputs[..n_args];
                let tans = (0..n_args)
                    .map(|i| match &tangents[i] {
                        Some(t) => Ok(t.clone()),
                        None => ops::zeros_like(&inputs[i]),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let out = match &op.rules.jvp {
                    Some(jvp) => jvp(primals, &tans)?,
                    None => {
                        let diff: Vec<usize> = (0..n_args)
                            .filter(|&i| primals[i].dtype().is_inexact())
                            .collect();
                        let picked: Vec<Array> = diff.iter().map(|&i| primals[i].clone()).collect();
                        let picked_tans: Vec<Array> =
                            diff.iter().map(|&i| tans[i].clone()).collect();
                        super::jvp(
                            |xs| {
                                let mut full = primals.to_vec();
                                for (&i, x) in diff.iter().zip(xs) {
                                    full[i] = x.clone();
                                }
                                (op.rules.fun)(&full)
                            },
                            &picked,
                            &picked_tans,
                        )?
                        .1
                    }
                };
                if out.len() != outputs.len() {
                    bail!(
                        "{}: the custom jvp returned {} tangents for {} outputs",
                        op.rules.name,
                        out.len(),
                        outputs.len()
                    );
                }
                out.iter()
                    .zip(outputs)
                    .map(|(t, o)| check_like(&op.rules.name, "jvp", t, o))
                    .collect()
            }
        }
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        match self {
            TransformOp::Depends { n } => {
                let outs = depends(&inputs[..*n], &inputs[*n..])?;
                Ok((outs, axes[..*n].to_vec()))
            }
            TransformOp::StopGradient => Ok((vec![stop_gradient(&inputs[0])?], axes.to_vec())),
            TransformOp::Placeholder => bail!("vmap: a placeholder has no batching rule"),
            TransformOp::Custom(op) => {
                let args = &inputs[..op.n_args];
                let arg_axes = &axes[..op.n_args];
                match &op.rules.vmap {
                    Some(vmap) => vmap(args, arg_axes),
                    None => super::vmap::vmap_apply(&*op.rules.fun, args, arg_axes),
                }
            }
        }
    }
}

/// Checks a custom rule's result against the array it is the derivative of.
fn check_like(name: &str, rule: &str, d: &Array, like: &Array) -> Result<Array> {
    if d.shape() != like.shape() {
        bail!(
            "{name}: the custom {rule} gave shape {} where shape {} was expected",
            fmt_shape(d.shape()),
            fmt_shape(like.shape())
        );
    }
    if d.dtype() != like.dtype() {
        return ops::astype(d, like.dtype());
    }
    Ok(d.clone())
}
