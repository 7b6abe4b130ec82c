//! Building blocks of the primitives' transformation rules (`primitives/<family>/transforms.rs`).

use crate::{Array, Result, ops};

/// `g` summed down to `shape`, undoing a broadcast from `shape` to `g`'s shape.
///
/// `shape` may have more dimensions than `g` when they are leading 1s (an operand that was
/// squeezed before it was broadcast).
pub(crate) fn unbroadcast(g: &Array, shape: &[usize]) -> Result<Array> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    if g.ndim() < shape.len() {
        let mut padded = vec![1i64; shape.len() - g.ndim()];
        padded.extend(g.shape().iter().map(|&d| d as i64));
        return unbroadcast(&ops::reshape(g, &padded)?, shape);
    }
    let lead = g.ndim() - shape.len();
    let mut axes: Vec<i64> = (0..lead as i64).collect();
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 && g.shape()[lead + i] != 1 {
            axes.push((lead + i) as i64);
        }
    }
    let s = if axes.is_empty() {
        g.clone()
    } else {
        ops::sum(g, axes, true)?
    };
    let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    ops::reshape(&s, &shape)
}

/// Zero cotangents for the inputs numbered `argnums`: the vjp of a non-differentiable output.
pub(crate) fn zeros_vjp(inputs: &[Array], argnums: &[usize]) -> Result<Vec<Array>> {
    argnums
        .iter()
        .map(|&i| ops::zeros_like(&inputs[i]))
        .collect()
}

/// Zero tangents for every output: the jvp of a non-differentiable primitive.
pub(crate) fn zeros_jvp(outputs: &[Array]) -> Result<Vec<Array>> {
    outputs.iter().map(ops::zeros_like).collect()
}

/// Tangent `i`, or zeros shaped like input `i`.
pub(crate) fn tangent_or_zeros(
    inputs: &[Array],
    tangents: &[Option<Array>],
    i: usize,
) -> Result<Array> {
    match &tangents[i] {
        Some(t) => Ok(t.clone()),
        None => ops::zeros_like(&inputs[i]),
    }
}

/// `x` with its batch axis (if any) moved to the front.
pub(crate) fn to_front(x: &Array, axis: Option<usize>) -> Result<Array> {
    match axis {
        Some(a) if a != 0 => ops::moveaxis(x, a as i64, 0),
        _ => Ok(x.clone()),
    }
}

/// The batch size of a batched primitive's inputs.
pub(crate) fn batch_size(inputs: &[Array], axes: &[Option<usize>]) -> usize {
    inputs
        .iter()
        .zip(axes)
        .find_map(|(x, a)| a.map(|a| x.shape()[a]))
        .expect("a batched primitive has a batched input")
}

/// Batched `x` (batch at the front) with size-1 axes inserted after the batch axis so that an
/// example has `rank` dimensions (so it broadcasts against unbatched operands of that rank).
pub(crate) fn pad_example_rank(x: &Array, rank: usize) -> Result<Array> {
    let have = x.ndim() - 1;
    if have >= rank {
        return Ok(x.clone());
    }
    let axes: Vec<i64> = (1..=(rank - have) as i64).collect();
    ops::expand_dims(x, axes)
}

/// Element-wise operands made ready for one batched op: batched ones with their batch axis in
/// front and padded to the examples' common rank, unbatched ones as they are (they broadcast).
/// The result's batch axis is 0.
pub(crate) fn align_elementwise(inputs: &[Array], axes: &[Option<usize>]) -> Result<Vec<Array>> {
    let rank = inputs
        .iter()
        .zip(axes)
        .map(|(x, a)| x.ndim() - a.is_some() as usize)
        .max()
        .unwrap_or(0);
    inputs
        .iter()
        .zip(axes)
        .map(|(x, &a)| match a {
            None => Ok(x.clone()),
            Some(_) => pad_example_rank(&to_front(x, a)?, rank),
        })
        .collect()
}

/// Every input with its batch axis in front; unbatched inputs broadcast along a new front axis
/// of size `n`.
pub(crate) fn all_to_front(
    inputs: &[Array],
    axes: &[Option<usize>],
    n: usize,
) -> Result<Vec<Array>> {
    inputs
        .iter()
        .zip(axes)
        .map(|(x, &a)| match a {
            Some(_) => to_front(x, a),
            None => {
                let mut shape = vec![n];
                shape.extend_from_slice(x.shape());
                ops::broadcast_to(&ops::expand_dims(x, 0)?, &shape)
            }
        })
        .collect()
}

/// The element-wise primitive `prim` over aligned batched operands (see
/// [`align_elementwise`]): its outputs, of the given dtypes and the operands' broadcast shape.
pub(crate) fn elementwise_node(
    prim: crate::primitives::Primitive,
    inputs: Vec<Array>,
    dtypes: &[crate::Dtype],
) -> Result<Vec<Array>> {
    let mut shape: Vec<usize> = Vec::new();
    for x in &inputs {
        shape = crate::shape::broadcast_shapes("vmap", &shape, x.shape())?;
    }
    let specs = dtypes
        .iter()
        .map(|&dtype| crate::device::OutSpec {
            shape: shape.clone(),
            dtype,
        })
        .collect();
    Array::from_primitive_multi(prim, inputs, specs)
}

/// The batching rule of an element-wise primitive: one node over the aligned operands, with
/// its batch axis in front.
pub(crate) fn elementwise_vmap(
    prim: crate::primitives::Primitive,
    inputs: &[Array],
    axes: &[Option<usize>],
    outputs: &[Array],
) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
    let aligned = align_elementwise(inputs, axes)?;
    let dtypes: Vec<crate::Dtype> = outputs.iter().map(|o| o.dtype()).collect();
    let outs = elementwise_node(prim, aligned, &dtypes)?;
    let n = outs.len();
    Ok((outs, vec![Some(0); n]))
}
