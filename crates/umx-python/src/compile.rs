//! `mx.compile`: a Python function of pytrees compiled by the core (traced once per input
//! signature, simplified, element-wise chains fused), with MLX's `inputs`/`outputs` state
//! capture and `shapeless`.
//!
//! The core compiles functions of flat arrays. Each distinct argument structure (the trees,
//! and the values of non-array leaves, which the trace bakes in as constants) gets its own
//! core compiled function. Captured state (`inputs=`, `outputs=`: trees of arrays the function
//! reads or writes besides its arguments, such as `model.state`) travels as extra inputs and
//! outputs: during a trace the state's arrays are swapped for the trace's stand-ins and then
//! back, and after each call the new state arrays are written into the `outputs` trees.

use crate::array::PyArray;
use crate::error::{OrRaise, OrStash};
use crate::transforms::{CallDef, TreeDef, flatten, unflatten};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use umx::Array;

type Compiled = Arc<dyn Fn(&[Array]) -> umx::Result<Vec<Array>> + Send + Sync>;

/// One compiled form of the function, for one argument structure.
struct Variant {
    compiled: Compiled,
    /// The structure of the function's result and how many arrays it has, set by the trace.
    result: Arc<Mutex<Option<(TreeDef, usize)>>>,
}

/// The function `compile` returns.
#[pyclass(name = "_CompiledFunction", module = "umx.core")]
pub struct CompiledFunction {
    fun: Arc<Py<PyAny>>,
    inputs: Option<Arc<Py<PyAny>>>,
    outputs: Option<Arc<Py<PyAny>>>,
    shapeless: bool,
    variants: Mutex<HashMap<String, Variant>>,
}

/// A key telling argument structures (and their non-array values) apart.
fn describe(py: Python<'_>, def: &TreeDef, out: &mut String) -> PyResult<()> {
    match def {
        TreeDef::Array => out.push('A'),
        TreeDef::Other(o) => {
            let o = o.bind(py);
            out.push_str(&format!("<{}:{}>", o.get_type().name()?, o.repr()?));
        }
        TreeDef::List(v) | TreeDef::Tuple(v) => {
            out.push(if matches!(def, TreeDef::List(_)) {
                '['
            } else {
                '('
            });
            for d in v {
                describe(py, d, out)?;
                out.push(',');
            }
            out.push(']');
        }
        TreeDef::Dict(v) => {
            out.push('{');
            for (k, d) in v {
                out.push_str(&k.bind(py).repr()?.to_string());
                out.push(':');
                describe(py, d, out)?;
                out.push(',');
            }
            out.push('}');
        }
    }
    Ok(())
}

fn next_array(arrays: &mut impl Iterator<Item = Array>) -> PyResult<Array> {
    arrays.next().ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(
            "compile: the captured state changed its structure during the call",
        )
    })
}

/// Puts `arrays`, in order, in place of the array leaves of a tree of lists and dicts (arrays
/// in tuples, which cannot change, are changed themselves).
fn fill(obj: &Bound<'_, PyAny>, arrays: &mut impl Iterator<Item = Array>) -> PyResult<()> {
    let py = obj.py();
    if let Ok(a) = obj.cast::<PyArray>() {
        a.borrow_mut().inner = next_array(arrays)?;
    } else if let Ok(l) = obj.cast::<PyList>() {
        for i in 0..l.len() {
            let item = l.get_item(i)?;
            if item.cast::<PyArray>().is_ok() {
                l.set_item(i, Bound::new(py, PyArray::from(next_array(arrays)?))?)?;
            } else {
                fill(&item, arrays)?;
            }
        }
    } else if let Ok(d) = obj.cast::<PyDict>() {
        let items: Vec<_> = d.iter().collect();
        for (k, v) in items {
            if v.cast::<PyArray>().is_ok() {
                d.set_item(k, Bound::new(py, PyArray::from(next_array(arrays)?))?)?;
            } else {
                fill(&v, arrays)?;
            }
        }
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        for item in t.iter() {
            fill(&item, arrays)?;
        }
    }
    Ok(())
}

/// Puts back `to[i]` wherever a tree still holds `from[i]` (the trace's stand-ins).
fn restore(obj: &Bound<'_, PyAny>, from: &[Array], to: &[Array]) -> PyResult<()> {
    let py = obj.py();
    let swap = |a: &Array| from.iter().position(|f| f.same(a)).map(|i| to[i].clone());
    if let Ok(a) = obj.cast::<PyArray>() {
        let new = swap(&a.borrow().inner);
        if let Some(n) = new {
            a.borrow_mut().inner = n;
        }
    } else if let Ok(l) = obj.cast::<PyList>() {
        for i in 0..l.len() {
            let item = l.get_item(i)?;
            match item.cast::<PyArray>() {
                Ok(a) => {
                    let new = swap(&a.borrow().inner);
                    if let Some(n) = new {
                        l.set_item(i, Bound::new(py, PyArray::from(n))?)?;
                    }
                }
                Err(_) => restore(&item, from, to)?,
            }
        }
    } else if let Ok(d) = obj.cast::<PyDict>() {
        let items: Vec<_> = d.iter().collect();
        for (k, v) in items {
            match v.cast::<PyArray>() {
                Ok(a) => {
                    let new = swap(&a.borrow().inner);
                    if let Some(n) = new {
                        d.set_item(k, Bound::new(py, PyArray::from(n))?)?;
                    }
                }
                Err(_) => restore(&v, from, to)?,
            }
        }
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        for item in t.iter() {
            restore(&item, from, to)?;
        }
    }
    Ok(())
}

fn state_arrays(state: &Option<Arc<Py<PyAny>>>, py: Python<'_>) -> PyResult<(Vec<Array>, String)> {
    let mut leaves = Vec::new();
    let mut key = String::new();
    if let Some(s) = state {
        let def = flatten(s.bind(py), &mut leaves)?;
        describe(py, &def, &mut key)?;
    }
    Ok((leaves, key))
}

impl CompiledFunction {
    /// A core compiled function for one argument structure.
    fn variant(&self, call: CallDef, n_args: usize) -> Variant {
        let result: Arc<Mutex<Option<(TreeDef, usize)>>> = Arc::new(Mutex::new(None));
        let (fun, inputs, outputs, slot) = (
            self.fun.clone(),
            self.inputs.clone(),
            self.outputs.clone(),
            result.clone(),
        );
        let traced = move |xs: &[Array]| -> umx::Result<Vec<Array>> {
            Python::attach(|py| {
                let (args, stand_ins) = xs.split_at(n_args);
                // The state's own arrays, swapped for the trace's stand-ins while it runs.
                let originals = match &inputs {
                    Some(s) => {
                        let (orig, _) = state_arrays(&inputs, py).or_stash()?;
                        fill(s.bind(py), &mut stand_ins.iter().cloned()).or_stash()?;
                        orig
                    }
                    None => Vec::new(),
                };
                let run = || -> PyResult<Vec<Array>> {
                    let out = call.call(py, &fun, args)?;
                    let mut leaves = Vec::new();
                    let def = flatten(&out, &mut leaves)?;
                    let n = leaves.len();
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some((def, n));
                    if let Some(o) = &outputs {
                        flatten(o.bind(py), &mut leaves)?;
                    }
                    Ok(leaves)
                };
                let r = run();
                if let Some(s) = &inputs {
                    restore(s.bind(py), stand_ins, &originals).or_stash()?;
                }
                r.or_stash()
            })
        };
        Variant {
            compiled: Arc::new(umx::transforms::compile(traced, self.shapeless)),
            result,
        }
    }
}

#[pymethods]
impl CompiledFunction {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut leaves = Vec::new();
        let call = CallDef::flatten(args, kwargs, &mut leaves)?;
        let n_args = leaves.len();
        let mut key = String::new();
        describe(py, &call.args, &mut key)?;
        if let Some(k) = &call.kwargs {
            describe(py, k, &mut key)?;
        }
        let (state, state_key) = state_arrays(&self.inputs, py)?;
        key.push('|');
        key.push_str(&state_key);
        leaves.extend(state);
        let (compiled, result) = {
            let mut variants = self.variants.lock().unwrap_or_else(|e| e.into_inner());
            let v = variants
                .entry(key)
                .or_insert_with(|| self.variant(call, n_args));
            (v.compiled.clone(), v.result.clone())
        };
        let outs = compiled(&leaves).or_raise()?;
        let guard = result.lock().unwrap_or_else(|e| e.into_inner());
        let (def, n) = guard.as_ref().expect("traced before it returns");
        let mut it = outs.into_iter();
        let value = unflatten(py, def, &mut it.by_ref().take(*n))?;
        if let Some(o) = &self.outputs {
            fill(o.bind(py), &mut it)?;
        }
        Ok(value)
    }
}

/// `fun` compiled (MLX's `mx.compile`): traced once per argument structure and input
/// signature, simplified and fused. `inputs` and `outputs` are trees of arrays the function
/// reads and writes besides its arguments (such as `[model.state, optimizer.state]`);
/// `shapeless` retraces only when dtypes or ranks change.
#[pyfunction]
#[pyo3(signature = (fun, inputs=None, outputs=None, shapeless=false))]
pub fn compile(
    fun: Py<PyAny>,
    inputs: Option<Py<PyAny>>,
    outputs: Option<Py<PyAny>>,
    shapeless: bool,
) -> CompiledFunction {
    CompiledFunction {
        fun: Arc::new(fun),
        inputs: inputs.map(Arc::new),
        outputs: outputs.map(Arc::new),
        shapeless,
        variants: Mutex::new(HashMap::new()),
    }
}

#[pyfunction]
pub fn disable_compile() {
    umx::transforms::disable_compile()
}

#[pyfunction]
pub fn enable_compile() {
    umx::transforms::enable_compile()
}
