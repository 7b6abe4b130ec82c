//! Walking a traced graph: the nodes between a transformation's inputs and outputs.

use crate::array::{Node, lock};
use crate::primitives::{Primitive, TransformOp};
use crate::{Array, Result};
use std::collections::HashSet;
use std::sync::Arc;

/// A node's identity while the walk holds it.
pub(crate) fn key(node: &Arc<Node>) -> usize {
    Arc::as_ptr(node) as usize
}

/// A node of a traced graph, with its inputs.
pub(crate) struct TapeNode {
    pub(crate) node: Arc<Node>,
    pub(crate) inputs: Vec<Array>,
}

impl TapeNode {
    pub(crate) fn prim(&self) -> &Primitive {
        &self.node.prim
    }

    /// Handles to the node's outputs (siblings).
    pub(crate) fn outputs(&self) -> Vec<Array> {
        (0..self.node.outputs.len())
            .map(|i| Array::from_node(&self.node, i))
            .collect()
    }
}

/// The nodes of the graph of `outputs` that depend on a node of `sources`, producers before
/// consumers. Source nodes are not entered (nor listed); with `stop_gradients`, nothing flows
/// through a stop_gradient node. Also returns the keys of every listed or source node.
pub(crate) fn tape(
    outputs: &[Array],
    sources: &HashSet<usize>,
    stop_gradients: bool,
) -> Result<(Vec<TapeNode>, HashSet<usize>)> {
    let mut depends: HashSet<usize> = sources.clone();
    let mut seen: HashSet<usize> = sources.clone();
    let mut tape = Vec::new();
    let mut stack: Vec<(Arc<Node>, Option<Vec<Array>>)> = Vec::new();
    for a in outputs {
        a.check()?;
        if let Some((n, _)) = a.node() {
            stack.push((n, None));
        }
    }
    while let Some((node, inputs)) = stack.pop() {
        if let Some(inputs) = inputs {
            let blocked = stop_gradients
                && matches!(node.prim, Primitive::Transform(TransformOp::StopGradient));
            let hit = !blocked
                && inputs
                    .iter()
                    .any(|a| a.node().is_some_and(|(n, _)| depends.contains(&key(&n))));
            if hit {
                depends.insert(key(&node));
                tape.push(TapeNode { node, inputs });
            }
            continue;
        }
        if !seen.insert(key(&node)) {
            continue;
        }
        let inputs = lock(&node.state).inputs.clone();
        // Nothing flows through a stop_gradient: what is behind it is not walked.
        let children: Vec<Arc<Node>> = if stop_gradients
            && matches!(node.prim, Primitive::Transform(TransformOp::StopGradient))
        {
            Vec::new()
        } else {
            inputs
                .iter()
                .filter_map(|a| a.node().map(|(n, _)| n))
                .filter(|n| !seen.contains(&key(n)))
                .collect()
        };
        stack.push((node, Some(inputs)));
        for n in children.into_iter().rev() {
            stack.push((n, None));
        }
    }
    Ok((tape, depends))
}
