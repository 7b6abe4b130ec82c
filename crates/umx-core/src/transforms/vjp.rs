//! Reverse and forward mode: [`vjp`], [`jvp`], and on top of them [`grad`],
//! [`value_and_grad`] and friends.

use super::graph::{key, tape};
use super::{Tracing, Tree};
use crate::shape::fmt_shape;
use crate::{Array, Error, Result, bail, ops};
use std::collections::{HashMap, HashSet};

/// The identity nodes a transformation traces from: one per input.
fn tracers(op: &str, primals: &[Array]) -> Result<Vec<Array>> {
    primals
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.check()?;
            if !p.dtype().is_inexact() {
                bail!(
                    "{op}: input {i} is {} (shape {}); derivatives are taken only with respect \
                     to floating-point or complex inputs",
                    p.dtype(),
                    fmt_shape(p.shape())
                );
            }
            super::custom::identity(p)
        })
        .collect()
}

fn node_key(a: &Array) -> Option<(usize, usize)> {
    a.node().map(|(n, i)| (key(&n), i))
}

/// Checks a rule's result for input `i` of a primitive and casts it to the input's dtype.
fn fit(what: &str, prim: &crate::primitives::Primitive, d: Array, input: &Array) -> Result<Array> {
    if d.shape() != input.shape() {
        return Err(Error::Invalid(format!(
            "{what}: the rule of {prim:?} gave shape {} for an input of shape {} (a bug in umx)",
            fmt_shape(d.shape()),
            fmt_shape(input.shape())
        )));
    }
    if d.dtype() != input.dtype() {
        return ops::astype(&d, input.dtype());
    }
    Ok(d)
}

/// The outputs of `f` at `primals`, and the vector-Jacobian product: the cotangents of
/// `f`'s outputs (`cotangents[i]` for output `i`, of its shape) carried back to each primal.
///
/// Outputs past `cotangents.len()` get no cotangent (they do not contribute). A primal that
/// the outputs do not depend on gets zeros.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops, transforms::vjp};
/// let x = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3])?;
/// let (out, grads) = vjp(|x| Ok(vec![ops::square(&x[0])?]), &[x], &[ops::ones(&[3], None)?])?;
/// assert_eq!(out[0].to_vec::<f32>()?, [1.0, 4.0, 9.0]);
/// assert_eq!(grads[0].to_vec::<f32>()?, [2.0, 4.0, 6.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn vjp(
    f: impl FnOnce(&[Array]) -> Result<Vec<Array>>,
    primals: &[Array],
    cotangents: &[Array],
) -> Result<(Vec<Array>, Vec<Array>)> {
    vjp_with("vjp", f, primals, |_| Ok(cotangents.to_vec()))
}

/// [`vjp`] with the cotangents made from the outputs (so a seed can take their dtype).
fn vjp_with(
    op: &str,
    f: impl FnOnce(&[Array]) -> Result<Vec<Array>>,
    primals: &[Array],
    seed: impl FnOnce(&[Array]) -> Result<Vec<Array>>,
) -> Result<(Vec<Array>, Vec<Array>)> {
    let _tracing = Tracing::start();
    let tracers = tracers(op, primals)?;
    let outputs = {
        let _grad = Tracing::grad();
        f(&tracers)?
    };
    if outputs.is_empty() {
        bail!("{op}: the function returned no outputs");
    }
    let cotangents = seed(&outputs)?;
    if cotangents.len() > outputs.len() {
        bail!(
            "{op}: {} cotangents given for a function of {} outputs",
            cotangents.len(),
            outputs.len()
        );
    }
    for (i, (o, c)) in outputs.iter().zip(&cotangents).enumerate() {
        c.check()?;
        if o.shape() != c.shape() {
            bail!(
                "{op}: cotangent {i} has shape {} but output {i} has shape {}",
                fmt_shape(c.shape()),
                fmt_shape(o.shape())
            );
        }
    }
    let sources: HashSet<usize> = tracers
        .iter()
        .filter_map(|t| t.node().map(|(n, _)| key(&n)))
        .collect();
    let (tape, depends) = tape(&outputs, &sources, true)?;

    let mut cotans: HashMap<(usize, usize), Array> = HashMap::new();
    for (o, c) in outputs.iter().zip(&cotangents) {
        if let Some(k) = node_key(o)
            && depends.contains(&k.0)
        {
            let c = if c.dtype() == o.dtype() {
                c.clone()
            } else {
                ops::astype(c, o.dtype())?
            };
            accumulate(&mut cotans, k, c)?;
        }
    }
    for t in tape.iter().rev() {
        let k = key(&t.node);
        let outs = t.outputs();
        let keys: Vec<(usize, usize)> = (0..outs.len()).map(|i| (k, i)).collect();
        if !keys.iter().any(|k| cotans.contains_key(k)) {
            continue;
        }
        let cots = keys
            .iter()
            .zip(&outs)
            .map(|(k, o)| match cotans.remove(k) {
                Some(c) => Ok(c),
                None => ops::zeros_like(o),
            })
            .collect::<Result<Vec<_>>>()?;
        // Integer inputs (indices made from the traced values, say) carry no derivative.
        let argnums: Vec<usize> = (0..t.inputs.len())
            .filter(|&i| {
                t.inputs[i].dtype().is_inexact()
                    && node_key(&t.inputs[i]).is_some_and(|(n, _)| depends.contains(&n))
            })
            .collect();
        if argnums.is_empty() {
            continue;
        }
        let grads = t.prim().vjp(&t.inputs, &cots, &argnums, &outs)?;
        for (&i, g) in argnums.iter().zip(grads) {
            let input = &t.inputs[i];
            let g = fit("vjp", t.prim(), g, input)?;
            accumulate(
                &mut cotans,
                node_key(input).expect("argnums are graph nodes"),
                g,
            )?;
        }
    }
    let grads = tracers
        .iter()
        .map(|t| match node_key(t).and_then(|k| cotans.remove(&k)) {
            Some(g) => Ok(g),
            None => ops::zeros_like(t),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((outputs, grads))
}

/// Adds `g` to the cotangent of output `k`.
fn accumulate(
    cotans: &mut HashMap<(usize, usize), Array>,
    k: (usize, usize),
    g: Array,
) -> Result<()> {
    let g = match cotans.remove(&k) {
        Some(prev) => ops::add(&prev, &g)?,
        None => g,
    };
    cotans.insert(k, g);
    Ok(())
}

/// The outputs of `f` at `primals`, and the Jacobian-vector product: the change of each output
/// along `tangents` (one per primal, of its shape).
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops, transforms::jvp};
/// let x = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3])?;
/// let (_, t) = jvp(|x| Ok(vec![ops::square(&x[0])?]), &[x], &[ops::ones(&[3], None)?])?;
/// assert_eq!(t[0].to_vec::<f32>()?, [2.0, 4.0, 6.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn jvp(
    f: impl FnOnce(&[Array]) -> Result<Vec<Array>>,
    primals: &[Array],
    tangents: &[Array],
) -> Result<(Vec<Array>, Vec<Array>)> {
    if primals.len() != tangents.len() {
        bail!(
            "jvp: {} tangents given for {} primals",
            tangents.len(),
            primals.len()
        );
    }
    for (i, (p, t)) in primals.iter().zip(tangents).enumerate() {
        t.check()?;
        if p.shape() != t.shape() {
            bail!(
                "jvp: tangent {i} has shape {} but primal {i} has shape {}",
                fmt_shape(t.shape()),
                fmt_shape(p.shape())
            );
        }
    }
    let _tracing = Tracing::start();
    let tracers = tracers("jvp", primals)?;
    let outputs = f(&tracers)?;
    let sources: HashSet<usize> = tracers
        .iter()
        .filter_map(|t| t.node().map(|(n, _)| key(&n)))
        .collect();
    let (tape, _) = tape(&outputs, &sources, true)?;
    let mut tans: HashMap<(usize, usize), Array> = HashMap::new();
    for (t, tan) in tracers.iter().zip(tangents) {
        let tan = if tan.dtype() == t.dtype() {
            tan.clone()
        } else {
            ops::astype(tan, t.dtype())?
        };
        tans.insert(node_key(t).expect("tracers are nodes"), tan);
    }
    for t in &tape {
        let ins: Vec<Option<Array>> = t
            .inputs
            .iter()
            .map(|a| node_key(a).and_then(|k| tans.get(&k).cloned()))
            .collect();
        if ins.iter().all(Option::is_none) {
            continue;
        }
        let outs = t.outputs();
        let out_tans = t.prim().jvp(&t.inputs, &ins, &outs)?;
        let k = key(&t.node);
        for (i, (o, d)) in outs.iter().zip(out_tans).enumerate() {
            tans.insert((k, i), fit("jvp", t.prim(), d, o)?);
        }
    }
    let out_tans = outputs
        .iter()
        .map(|o| match node_key(o).and_then(|k| tans.get(&k).cloned()) {
            Some(t) => Ok(t),
            None => ops::zeros_like(o),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((outputs, out_tans))
}

/// The value of `f` (a scalar, its first output) and the vjp of 1 for it; later outputs are
/// auxiliary and get no cotangent. The common step of `grad` and friends.
fn scalar_vjp(
    op: &str,
    f: impl FnOnce(&[Array]) -> Result<Vec<Array>>,
    primals: &[Array],
) -> Result<(Vec<Array>, Vec<Array>)> {
    let seed = |outs: &[Array]| -> Result<Vec<Array>> {
        let v = &outs[0];
        if v.ndim() != 0 {
            bail!(
                "{op}: the function must return a scalar (shape ()), not an array of shape {}",
                fmt_shape(v.shape())
            );
        }
        if !v.dtype().is_inexact() {
            bail!(
                "{op}: the function must return a floating-point scalar, not {}",
                v.dtype()
            );
        }
        Ok(vec![ops::ones_like(v)?])
    };
    vjp_with(op, f, primals, seed)
}

/// `f`'s value and its gradient with respect to every leaf of `params` (in the same tree
/// structure). `f` must return a float scalar; arguments it should not differentiate are
/// captured by the closure.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops, transforms::value_and_grad};
/// let loss = |(w, b): &(Array, Array)| ops::sum(&ops::square(&(w * 3.0 + b))?, None, false);
/// let (v, (dw, db)) = value_and_grad(loss)(&(Array::scalar(1.0f32), Array::scalar(1.0f32)))?;
/// assert_eq!((v.item::<f32>()?, dw.item::<f32>()?, db.item::<f32>()?), (16.0, 24.0, 8.0));
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn value_and_grad<P: Tree>(
    f: impl Fn(&P) -> Result<Array>,
) -> impl Fn(&P) -> Result<(Array, P)> {
    value_and_grad_named("value_and_grad", f)
}

fn value_and_grad_named<P: Tree>(
    op: &'static str,
    f: impl Fn(&P) -> Result<Array>,
) -> impl Fn(&P) -> Result<(Array, P)> {
    move |params| {
        let leaves = params.leaves();
        let (mut outs, grads) = scalar_vjp(
            op,
            |xs| Ok(vec![f(&params.with_leaves(xs.to_vec())?)?]),
            &leaves,
        )?;
        Ok((outs.remove(0), params.with_leaves(grads)?))
    }
}

/// [`value_and_grad`] of a function that also returns auxiliary data (not differentiated):
/// gives `((value, aux), grads)`.
pub fn value_and_grad_aux<P: Tree, A>(
    f: impl Fn(&P) -> Result<(Array, A)>,
) -> impl Fn(&P) -> Result<((Array, A), P)> {
    move |params| {
        let leaves = params.leaves();
        let mut aux = None;
        let (mut outs, grads) = scalar_vjp(
            "value_and_grad",
            |xs| {
                let (v, a) = f(&params.with_leaves(xs.to_vec())?)?;
                aux = Some(a);
                Ok(vec![v])
            },
            &leaves,
        )?;
        let aux = aux.expect("the function ran");
        Ok(((outs.remove(0), aux), params.with_leaves(grads)?))
    }
}

/// The gradient of `f` (which returns a float scalar) with respect to every leaf of its
/// argument, in the same structure.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops, transforms::grad};
/// let df = grad(|x: &Array| ops::sum(&ops::square(x)?, None, false));
/// let x = Array::from_slice(&[1.0f32, -2.0], &[2])?;
/// assert_eq!(df(&x)?.to_vec::<f32>()?, [2.0, -4.0]);
/// let d2f = grad(move |x: &Array| ops::sum(&df(x)?, None, false)); // grad of grad
/// assert_eq!(d2f(&x)?.to_vec::<f32>()?, [2.0, 2.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn grad<P: Tree>(f: impl Fn(&P) -> Result<Array>) -> impl Fn(&P) -> Result<P> {
    let vg = value_and_grad_named("grad", f);
    move |params| Ok(vg(params)?.1)
}

/// The gradient of `f` with respect to the arguments numbered `argnums` (MLX's `argnums`):
/// one gradient per listed argument, in that order. The other arguments may be of any dtype.
pub fn grad_argnums(
    f: impl Fn(&[Array]) -> Result<Array>,
    argnums: &[usize],
) -> impl Fn(&[Array]) -> Result<Vec<Array>> {
    let argnums = argnums.to_vec();
    move |args| {
        for &i in &argnums {
            if i >= args.len() {
                bail!(
                    "grad: argnum {i} is out of range for a function called with {} arguments",
                    args.len()
                );
            }
        }
        let picked: Vec<Array> = argnums.iter().map(|&i| args[i].clone()).collect();
        let (_, grads) = scalar_vjp(
            "grad",
            |xs| {
                let mut full = args.to_vec();
                for (&i, x) in argnums.iter().zip(xs) {
                    full[i] = x.clone();
                }
                Ok(vec![f(&full)?])
            },
            &picked,
        )?;
        Ok(grads)
    }
}
