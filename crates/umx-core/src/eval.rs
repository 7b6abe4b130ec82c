//! Evaluation: order the pending graph, run each node on its stream's backend, detach as it goes.

use crate::Device;
use crate::array::{Array, ArrayData, Node, State, lock};
use crate::device::{Backend, backend};
use crate::{Error, Result};
use foldhash::fast::FixedState;
use std::collections::HashSet;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

/// Computes the given arrays (and everything they depend on that is not yet computed).
///
/// The walk is iterative, so graph depth is bounded by memory, not the stack. Each node's
/// inputs are dropped as soon as it has run, so intermediates are freed during the run, and a
/// buffer whose only owner is its consumer can be reused in place (donated).
/// Two threads evaluating a shared subgraph compute each node once.
///
/// While a transformation traces a function (inside `vjp`, `jvp`, `vmap`, ...), eval keeps the
/// graph: nodes hold on to their inputs and arrays to their nodes, so the transformation can
/// still walk through values the function evaluated.
pub fn eval<'a>(arrays: impl IntoIterator<Item = &'a Array>) -> Result<()> {
    eval_with(arrays, crate::transforms::tracing())
}

fn eval_with<'a>(arrays: impl IntoIterator<Item = &'a Array>, retain: bool) -> Result<()> {
    let roots: Vec<&Array> = arrays.into_iter().collect();
    let order = schedule(&roots)?;
    let mut first_err = None;
    // The backend of the last node's device, looked up again only when the device changes,
    // and every device's, to flush at the end.
    let mut last: Option<(Device, Arc<dyn Backend>)> = None;
    let mut used: Vec<(Device, Arc<dyn Backend>)> = Vec::new();
    for node in order {
        let device = node.stream.device;
        let ran = match &last {
            Some((d, b)) if *d == device => compute(&node, &**b, retain),
            _ => backend(device).and_then(|b| {
                let ran = compute(&node, &*b, retain);
                if !used.iter().any(|(d, _)| *d == device) {
                    used.push((device, b.clone()));
                }
                last = Some((device, b));
                ran
            }),
        };
        if let Err(e) = ran {
            // The node carries its error, so its consumers fail with it instead of running.
            lock(&node.state)
                .result
                .get_or_insert_with(|| Err(e.clone()));
            first_err.get_or_insert(e);
        }
    }
    for (_, b) in &used {
        if let Err(e) = b.flush() {
            first_err.get_or_insert(e);
        }
    }
    for a in roots {
        if retain {
            a.check()?;
            if let Some((node, index)) = a.node() {
                output_of(&node, index)?;
            }
        } else {
            resolve(a)?;
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Starts evaluating the arrays on a background worker and returns at once. A later `eval`
/// or read of them waits for (or joins) that work.
pub fn async_eval<'a>(arrays: impl IntoIterator<Item = &'a Array>) -> Result<()> {
    let arrays: Vec<Array> = arrays.into_iter().cloned().collect();
    for a in &arrays {
        a.check()?;
    }
    type Job = (Vec<Array>, bool);
    static WORKER: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    let tx = WORKER.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("umx-async-eval".into())
            .spawn(move || {
                for (arrays, retain) in rx {
                    // Errors stay in the nodes; the reader's eval reports them.
                    let _ = eval_with(arrays.iter(), retain);
                }
            })
            .expect("spawning the async-eval worker thread");
        Mutex::new(tx)
    });
    lock(tx)
        .send((arrays, crate::transforms::tracing()))
        .map_err(|_| Error::Device("async_eval: the evaluation worker has stopped".into()))
}

/// The pending nodes the roots depend on, producers before consumers (iterative DFS
/// post-order, which keeps few intermediates alive at once).
fn schedule(roots: &[&Array]) -> Result<Vec<Arc<Node>>> {
    let mut order = Vec::new();
    // Nodes whose inputs have been pushed. A node is marked when it is expanded, not when it is
    // pushed: a node pushed early (as a later input of some consumer) and reached again through
    // another input must still come before that input in the order.
    let mut seen: HashSet<*const Node, FixedState> = HashSet::default();
    // (node, whether its inputs have been pushed)
    let mut stack: Vec<(Arc<Node>, bool)> = Vec::new();
    for a in roots {
        if let Some(n) = pending_node(a)? {
            stack.push((n, false));
        }
    }
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(node);
            continue;
        }
        if !seen.insert(Arc::as_ptr(&node)) {
            continue;
        }
        let inputs = {
            let st = lock(&node.state);
            if st.result.is_some() {
                continue;
            }
            st.inputs.clone()
        };
        stack.push((node, true));
        for a in inputs.iter().rev() {
            if let Some(n) = pending_node(a)?
                && !seen.contains(&Arc::as_ptr(&n))
            {
                stack.push((n, false));
            }
        }
    }
    Ok(order)
}

/// The node still to be computed for `a`, if any.
fn pending_node(a: &Array) -> Result<Option<Arc<Node>>> {
    match &*lock(&a.inner.state) {
        State::Ready(_) => Ok(None),
        State::Failed(e) => Err(e.clone()),
        State::Pending { node, .. } => {
            if lock(&node.state).result.is_some() {
                Ok(None)
            } else {
                Ok(Some(node.clone()))
            }
        }
    }
}

/// Runs one node unless it already ran; stores its outputs or its error. The node lets go of
/// its inputs unless the graph is `retain`ed.
fn compute(node: &Arc<Node>, backend: &dyn Backend, retain: bool) -> Result<()> {
    let mut st = lock(&node.state);
    if let Some(r) = &st.result {
        return r.as_ref().map(|_| ()).map_err(Clone::clone);
    }
    let inputs = if retain {
        st.inputs.clone()
    } else {
        std::mem::take(&mut st.inputs)
    };
    let result = (|| {
        let mut datas = Vec::with_capacity(inputs.len());
        for a in inputs {
            datas.push(take_data(a, retain)?);
        }
        let outs = backend.eval(&node.prim, datas, &node.outputs, node.stream)?;
        if outs.len() != node.outputs.len() {
            return Err(Error::Device(format!(
                "{:?}: the backend returned {} outputs, not {}",
                node.prim,
                outs.len(),
                node.outputs.len()
            )));
        }
        Ok(outs)
    })();
    let ret = result.as_ref().map(|_| ()).map_err(Clone::clone);
    st.result = Some(result);
    ret
}

/// The data of an input that has been computed. When the consumer holds the only handle, the
/// data is moved out (so its buffer may be donated); otherwise it is shared.
fn take_data(a: Array, retain: bool) -> Result<ArrayData> {
    let state = match Arc::try_unwrap(a.inner) {
        Ok(inner) => inner.state.into_inner().unwrap_or_else(|e| e.into_inner()),
        Err(shared) => {
            if !retain {
                resolve(&Array {
                    inner: shared.clone(),
                })?;
            }
            return match &*lock(&shared.state) {
                State::Ready(d) => Ok(d.clone()),
                State::Failed(e) => Err(e.clone()),
                State::Pending { node, index } => output_of(node, *index),
            };
        }
    };
    match state {
        State::Ready(d) => Ok(d),
        State::Failed(e) => Err(e),
        State::Pending { node, index } => match Arc::try_unwrap(node) {
            Ok(mut node) => {
                let st = node.state.get_mut().unwrap_or_else(|e| e.into_inner());
                match st.result.take() {
                    Some(Ok(mut outs)) => Ok(outs.swap_remove(index)),
                    Some(Err(e)) => Err(e),
                    None => Err(not_computed()),
                }
            }
            Err(node) => output_of(&node, index),
        },
    }
}

/// Output `index` of a node that has run.
pub(crate) fn output_of(node: &Node, index: usize) -> Result<ArrayData> {
    match &lock(&node.state).result {
        Some(Ok(outs)) => Ok(outs[index].clone()),
        Some(Err(e)) => Err(e.clone()),
        None => Err(not_computed()),
    }
}

fn not_computed() -> Error {
    Error::Device("eval: an input was used before it was computed".into())
}

/// Moves a computed node's output into the array and lets go of the node (detach).
fn resolve(a: &Array) -> Result<()> {
    let mut state = lock(&a.inner.state);
    let new = match &*state {
        State::Ready(_) => return Ok(()),
        State::Failed(e) => return Err(e.clone()),
        State::Pending { node, index } => match &lock(&node.state).result {
            Some(Ok(outs)) => State::Ready(outs[*index].clone()),
            Some(Err(e)) => State::Failed(e.clone()),
            None => return Err(not_computed()),
        },
    };
    let old = std::mem::replace(&mut *state, new);
    drop(state);
    drop(old);
    a.check()
}
