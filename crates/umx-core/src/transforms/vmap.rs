//! [`vmap`]: a function of single examples made into one of batches, through each primitive's
//! batching rule (the batch runs as one op, not a loop).

use super::Tracing;
use super::graph::{key, tape};
use crate::primitives::{Primitive, TransformOp};
use crate::shape::{fmt_shape, normalize_axis};
use crate::{Array, Result, bail, ops};
use std::collections::{HashMap, HashSet};

/// `f` mapped over axis `in_axes[i]` of argument `i` (`None`: the argument is shared by every
/// example), with the batch axis of output `j` at `out_axes[j]` (`None`: the output must not
/// depend on the batch). A single entry in `in_axes` or `out_axes` applies to all.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops, transforms::vmap};
/// // A dot product of two vectors, mapped over the rows of x and shared y.
/// let dot = |a: &[Array]| Ok(vec![ops::sum(&(&a[0] * &a[1]), None, false)?]);
/// let rows = vmap(dot, &[Some(0), None], &[Some(0)]);
/// let x = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
/// let y = Array::from_slice(&[1.0f32, 10.0], &[2])?;
/// assert_eq!(rows(&[x, y])?[0].to_vec::<f32>()?, [21.0, 43.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn vmap(
    f: impl Fn(&[Array]) -> Result<Vec<Array>>,
    in_axes: &[Option<i64>],
    out_axes: &[Option<i64>],
) -> impl Fn(&[Array]) -> Result<Vec<Array>> {
    let in_axes = in_axes.to_vec();
    let out_axes = out_axes.to_vec();
    move |args| {
        let pick = |spec: &[Option<i64>], i: usize, what: &str, n: usize| -> Result<Option<i64>> {
            match spec.len() {
                1 => Ok(spec[0]),
                len if len == n => Ok(spec[i]),
                len => bail!("vmap: {len} {what} axes given for {n} {what}s"),
            }
        };
        let mut axes = Vec::with_capacity(args.len());
        let mut size: Option<(usize, usize, usize)> = None;
        for (i, a) in args.iter().enumerate() {
            a.check()?;
            let ax = match pick(&in_axes, i, "input", args.len())? {
                None => None,
                Some(ax) => {
                    let ax = normalize_axis("vmap", ax, a.ndim()).map_err(|_| {
                        crate::Error::Invalid(format!(
                            "vmap: in_axes {ax} is out of range for input {i} of shape {}",
                            fmt_shape(a.shape())
                        ))
                    })?;
                    let n = a.shape()[ax];
                    match size {
                        Some((m, j, jax)) if m != n => bail!(
                            "vmap: mapped inputs have different sizes: {m} (input {j}, axis \
                             {jax}) and {n} (input {i}, axis {ax})"
                        ),
                        _ => size = Some((n, i, ax)),
                    }
                    Some(ax)
                }
            };
            axes.push(ax);
        }
        let Some((n, _, _)) = size else {
            bail!("vmap: at least one input must be mapped (every in_axes is None)");
        };
        let (outs, out_batch) = vmap_apply(&f, args, &axes)?;
        let n_outs = outs.len();
        outs.into_iter()
            .zip(out_batch)
            .enumerate()
            .map(|(j, (o, b))| {
                let want = pick(&out_axes, j, "output", n_outs)?;
                place(o, b, want, n, j)
            })
            .collect()
    }
}

/// Output `j` with its batch axis (`from`) moved to `to`; an output that does not depend on the
/// batch is broadcast along it.
fn place(o: Array, from: Option<usize>, to: Option<i64>, n: usize, j: usize) -> Result<Array> {
    match (from, to) {
        (_, None) if from.is_some() => {
            bail!("vmap: output {j} depends on the mapped inputs, so its out_axes cannot be None")
        }
        (_, None) => Ok(o),
        (Some(b), Some(to)) => {
            let to = normalize_axis("vmap", to, o.ndim()).map_err(|_| {
                crate::Error::Invalid(format!(
                    "vmap: out_axes {to} is out of range for output {j} of {} dimensions",
                    o.ndim()
                ))
            })?;
            ops::moveaxis(&o, b as i64, to as i64)
        }
        (None, Some(to)) => {
            let to = normalize_axis("vmap", to, o.ndim() + 1).map_err(|_| {
                crate::Error::Invalid(format!(
                    "vmap: out_axes {to} is out of range for output {j} of {} dimensions",
                    o.ndim() + 1
                ))
            })?;
            let e = ops::expand_dims(&o, to as i64)?;
            let mut shape = e.shape().to_vec();
            shape[to] = n;
            ops::broadcast_to(&e, &shape)
        }
    }
}

/// `f` applied to batched `inputs` (batch axis `axes[i]` of input `i`, `None` for shared
/// ones): its outputs and their batch axes. Traces `f` on placeholders, then replays the graph
/// with each primitive's batching rule.
pub(crate) fn vmap_apply(
    f: &dyn Fn(&[Array]) -> Result<Vec<Array>>,
    inputs: &[Array],
    axes: &[Option<usize>],
) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
    let _tracing = Tracing::start();
    let mut mapped: HashMap<(usize, usize), (Array, Option<usize>)> = HashMap::new();
    let mut sources = HashSet::new();
    let mut traced = Vec::with_capacity(inputs.len());
    for (a, &ax) in inputs.iter().zip(axes) {
        match ax {
            None => traced.push(a.clone()),
            Some(ax) => {
                let mut shape = a.shape().to_vec();
                shape.remove(ax);
                let p = Array::from_primitive(
                    Primitive::Transform(TransformOp::Placeholder),
                    vec![],
                    shape,
                    a.dtype(),
                )?;
                let (node, _) = p.node().expect("a new node");
                sources.insert(key(&node));
                mapped.insert((key(&node), 0), (a.clone(), Some(ax)));
                traced.push(p);
            }
        }
    }
    let n = inputs
        .iter()
        .zip(axes)
        .find_map(|(a, ax)| ax.map(|ax| a.shape()[ax]));
    let outs = f(&traced)?;
    let (tape, _) = tape(&outs, &sources, false)?;
    for t in &tape {
        let (ins, in_axes): (Vec<Array>, Vec<Option<usize>>) = t
            .inputs
            .iter()
            .map(|a| {
                a.node()
                    .and_then(|(n, i)| mapped.get(&(key(&n), i)).cloned())
                    .unwrap_or((a.clone(), None))
            })
            .unzip();
        let originals = t.outputs();
        let (new, new_axes) = t.prim().vmap(&ins, &in_axes, &originals)?;
        let k = key(&t.node);
        if new.len() != originals.len() || new_axes.len() != originals.len() {
            bail!(
                "vmap: the rule of {:?} gave {} outputs for {} (a bug in umx)",
                t.prim(),
                new.len(),
                originals.len()
            );
        }
        for (i, ((o, ax), orig)) in new.into_iter().zip(new_axes).zip(&originals).enumerate() {
            let mut unbatched = o.shape().to_vec();
            if let Some(ax) = ax {
                unbatched.remove(ax);
            }
            let size_ok = match (ax, n) {
                (Some(ax), Some(n)) => o.shape()[ax] == n,
                _ => true,
            };
            if unbatched != orig.shape() || !size_ok || o.dtype() != orig.dtype() {
                bail!(
                    "vmap: the rule of {:?} gave {} of shape {} (batch axis {ax:?}, batch size \
                     {n:?}) for an output of {} and shape {} (a bug in umx)",
                    t.prim(),
                    o.dtype(),
                    fmt_shape(o.shape()),
                    orig.dtype(),
                    fmt_shape(orig.shape())
                );
            }
            mapped.insert((k, i), (o, ax));
        }
    }
    Ok(outs
        .iter()
        .map(|o| {
            o.node()
                .and_then(|(n, i)| mapped.get(&(key(&n), i)).cloned())
                .unwrap_or((o.clone(), None))
        })
        .unzip())
}
