//! Function transformations over pytrees: `grad`, `value_and_grad`, `vjp`, `jvp`, `vmap`,
//! `checkpoint` and `custom_function`, as MLX's.
//!
//! A pytree is a nest of lists, tuples and dicts whose leaves are arrays (other leaves are
//! carried along unchanged). Each transformation flattens its arguments to the list of array
//! leaves the core transforms, calls the Python function on the core's tracers rebuilt into
//! the same trees, and rebuilds its results into trees again. An exception the Python function
//! raises comes back out unchanged (see `error.rs`).

use crate::array::PyArray;
use crate::error::{OrRaise, OrStash};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use umx::{Array, Error, ops};

/// The structure of a pytree, with its array leaves taken out.
pub enum TreeDef {
    /// An array leaf.
    Array,
    /// Any other leaf, kept as it is.
    Other(Py<PyAny>),
    List(Vec<TreeDef>),
    Tuple(Vec<TreeDef>),
    Dict(Vec<(Py<PyAny>, TreeDef)>),
}

/// Flattens a pytree: its array leaves, in order (dicts in insertion order), into `leaves`.
pub fn flatten(obj: &Bound<'_, PyAny>, leaves: &mut Vec<Array>) -> PyResult<TreeDef> {
    if let Ok(a) = obj.cast::<PyArray>() {
        leaves.push(a.borrow().inner.clone());
        return Ok(TreeDef::Array);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return Ok(TreeDef::List(
            l.iter()
                .map(|x| flatten(&x, leaves))
                .collect::<PyResult<_>>()?,
        ));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return Ok(TreeDef::Tuple(
            t.iter()
                .map(|x| flatten(&x, leaves))
                .collect::<PyResult<_>>()?,
        ));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return Ok(TreeDef::Dict(
            d.iter()
                .map(|(k, v)| Ok((k.unbind(), flatten(&v, leaves)?)))
                .collect::<PyResult<_>>()?,
        ));
    }
    Ok(TreeDef::Other(obj.clone().unbind()))
}

/// Every array in a pytree, in order.
pub fn collect_arrays(obj: &Bound<'_, PyAny>, out: &mut Vec<Array>) -> PyResult<()> {
    flatten(obj, out).map(|_| ())
}

/// Rebuilds a pytree, taking each array leaf from `leaf`.
pub fn build<'py>(
    py: Python<'py>,
    def: &TreeDef,
    leaf: &mut dyn FnMut() -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match def {
        TreeDef::Array => leaf()?,
        TreeDef::Other(o) => o.bind(py).clone(),
        TreeDef::List(items) => PyList::new(
            py,
            items
                .iter()
                .map(|d| build(py, d, leaf))
                .collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any(),
        TreeDef::Tuple(items) => PyTuple::new(
            py,
            items
                .iter()
                .map(|d| build(py, d, leaf))
                .collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any(),
        TreeDef::Dict(items) => {
            let d = PyDict::new(py);
            for (k, v) in items {
                d.set_item(k.bind(py), build(py, v, leaf)?)?;
            }
            d.into_any()
        }
    })
}

/// Rebuilds a pytree with its array leaves taken, in order, from `arrays`.
pub fn unflatten<'py>(
    py: Python<'py>,
    def: &TreeDef,
    arrays: &mut impl Iterator<Item = Array>,
) -> PyResult<Bound<'py, PyAny>> {
    build(py, def, &mut || match arrays.next() {
        Some(a) => Ok(Bound::new(py, PyArray::from(a))?.into_any()),
        None => Err(PyValueError::new_err(
            "tree: too few arrays to rebuild the tree",
        )),
    })
}

/// How many array leaves a tree has.
fn count(def: &TreeDef) -> usize {
    match def {
        TreeDef::Array => 1,
        TreeDef::Other(_) => 0,
        TreeDef::List(v) | TreeDef::Tuple(v) => v.iter().map(count).sum(),
        TreeDef::Dict(v) => v.iter().map(|(_, d)| count(d)).sum(),
    }
}

/// A function's result as a list of arrays: one array, or a list or tuple of arrays.
fn output_arrays(out: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Array>> {
    if let Ok(a) = out.cast::<PyArray>() {
        return Ok(vec![a.borrow().inner.clone()]);
    }
    if out.is_instance_of::<PyList>() || out.is_instance_of::<PyTuple>() {
        return out
            .try_iter()?
            .map(|x| {
                let x = x?;
                x.cast::<PyArray>()
                    .map(|a| a.borrow().inner.clone())
                    .map_err(|_| {
                        PyValueError::new_err(format!(
                            "{what}: the function must return an array or a list or tuple of \
                             arrays"
                        ))
                    })
            })
            .collect();
    }
    Err(PyValueError::new_err(format!(
        "{what}: the function must return an array or a list or tuple of arrays, not {}",
        out.get_type().name()?
    )))
}

/// A list of arrays given as an argument (`primals`, `tangents`, ...).
fn array_list(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Array>> {
    if let Ok(a) = obj.cast::<PyArray>() {
        return Ok(vec![a.borrow().inner.clone()]);
    }
    obj.try_iter()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be a list of arrays")))?
        .map(|x| Ok(x?.extract::<crate::convert::Operand>()?.0))
        .collect()
}

fn list_of<'py>(py: Python<'py>, v: Vec<Array>) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, v.into_iter().map(PyArray::from))
}

// ---- grad and value_and_grad ------------------------------------------------------------------

/// Which arguments `grad` differentiates: `argnums` (an int or a sequence) and `argnames`.
struct ArgSpec {
    argnums: Vec<usize>,
    /// `argnums` was one int (or defaulted): the gradient is a tree, not a tuple of trees.
    single: bool,
    argnames: Vec<String>,
}

fn arg_spec(
    argnums: Option<&Bound<'_, PyAny>>,
    argnames: Option<&Bound<'_, PyAny>>,
) -> PyResult<ArgSpec> {
    let argnames: Vec<String> = match argnames {
        None => Vec::new(),
        Some(n) => match n.extract::<String>() {
            Ok(s) => vec![s],
            Err(_) => n.extract()?,
        },
    };
    let (argnums, single) = match argnums {
        None if argnames.is_empty() => (vec![0], true),
        None => (Vec::new(), false),
        Some(a) => match a.extract::<i64>() {
            Ok(i) => (vec![non_negative(i)?], true),
            Err(_) => (
                a.extract::<Vec<i64>>()?
                    .into_iter()
                    .map(non_negative)
                    .collect::<PyResult<_>>()?,
                false,
            ),
        },
    };
    Ok(ArgSpec {
        argnums,
        single,
        argnames,
    })
}

fn non_negative(i: i64) -> PyResult<usize> {
    usize::try_from(i).map_err(|_| PyValueError::new_err(format!("grad: argnums {i} is negative")))
}

/// The function `grad` and `value_and_grad` return.
#[pyclass(name = "_GradFunction", module = "umx.core")]
pub struct GradFunction {
    fun: Py<PyAny>,
    spec: ArgSpec,
    with_value: bool,
}

impl GradFunction {
    fn name(&self) -> &'static str {
        if self.with_value {
            "value_and_grad"
        } else {
            "grad"
        }
    }
}

/// The value to differentiate in a function's output: the output itself, or the first item
/// of a tuple or list; a scalar of an inexact dtype.
fn loss_of(out: &Bound<'_, PyAny>, name: &str) -> umx::Result<Array> {
    let first = if out.is_instance_of::<PyTuple>() || out.is_instance_of::<PyList>() {
        out.get_item(0).ok()
    } else {
        Some(out.clone())
    };
    let loss = first
        .as_ref()
        .and_then(|f| f.cast::<PyArray>().ok())
        .map(|a| a.borrow().inner.clone());
    match loss {
        Some(l) if l.ndim() == 0 => Ok(l),
        Some(l) => Err(Error::Invalid(format!(
            "{name}: the function must return a scalar (or a tuple whose first item is one), not \
             an array of shape {}",
            umx::shape::fmt_shape(l.shape())
        ))),
        None => Err(Error::Invalid(format!(
            "{name}: the function must return a scalar array (or a tuple whose first item is \
             one), not {}",
            out.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))),
    }
}

#[pymethods]
impl GradFunction {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let name = self.name();
        let n = args.len();
        let mut leaves = Vec::new();
        let mut defs = Vec::new();
        for &i in &self.spec.argnums {
            if i >= n {
                return Err(PyValueError::new_err(format!(
                    "{name}: cannot differentiate argument {i}: the function was called with {n} \
                     positional arguments"
                )));
            }
            defs.push(flatten(&args.get_item(i)?, &mut leaves)?);
        }
        let mut kw_defs = Vec::new();
        for k in &self.spec.argnames {
            let v = kwargs
                .and_then(|kw| kw.get_item(k).ok().flatten())
                .ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "{name}: cannot differentiate keyword argument {k:?}: it was not given"
                    ))
                })?;
            kw_defs.push(flatten(&v, &mut leaves)?);
        }
        let output: RefCell<Option<Bound<'py, PyAny>>> = RefCell::new(None);
        let f = |tracers: &[Array]| -> umx::Result<Vec<Array>> {
            let mut it = tracers.iter().cloned();
            let mut call_args: Vec<Bound<'py, PyAny>> = args.iter().collect();
            for (k, &i) in self.spec.argnums.iter().enumerate() {
                call_args[i] = unflatten(py, &defs[k], &mut it).or_stash()?;
            }
            let call_kwargs = match kwargs {
                Some(kw) => Some(kw.copy().or_stash()?),
                None => None,
            };
            for (k, key) in self.spec.argnames.iter().enumerate() {
                let v = unflatten(py, &kw_defs[k], &mut it).or_stash()?;
                if let Some(kw) = &call_kwargs {
                    kw.set_item(key, v).or_stash()?;
                }
            }
            let call_args = PyTuple::new(py, call_args).or_stash()?;
            let out = self
                .fun
                .bind(py)
                .call(call_args, call_kwargs.as_ref())
                .or_stash()?;
            let loss = loss_of(&out, name)?;
            *output.borrow_mut() = Some(out);
            Ok(vec![loss])
        };
        let (_, grads) = umx::transforms::vjp(f, &leaves, &[Array::scalar(1.0f32)]).or_raise()?;
        let mut it = grads.into_iter();
        let positional = defs
            .iter()
            .map(|d| unflatten(py, d, &mut it))
            .collect::<PyResult<Vec<_>>>()?;
        let positional = if self.spec.single {
            positional.into_iter().next().expect("one argnum")
        } else {
            PyTuple::new(py, positional)?.into_any()
        };
        let grads = if self.spec.argnames.is_empty() {
            positional
        } else {
            let kw = PyDict::new(py);
            for (k, d) in self.spec.argnames.iter().zip(&kw_defs) {
                kw.set_item(k, unflatten(py, d, &mut it)?)?;
            }
            PyTuple::new(py, [positional, kw.into_any()])?.into_any()
        };
        if self.with_value {
            let value = output.into_inner().expect("the function ran");
            Ok(PyTuple::new(py, [value, grads])?.into_any())
        } else {
            Ok(grads)
        }
    }
}

/// A function computing the gradient of `fun` (which returns a scalar, or a tuple whose first
/// item is one) with respect to the arguments `argnums` (default 0) and keyword arguments
/// `argnames`, each a pytree of arrays.
#[pyfunction]
#[pyo3(signature = (fun, argnums=None, argnames=None))]
pub fn grad(
    fun: Py<PyAny>,
    argnums: Option<&Bound<'_, PyAny>>,
    argnames: Option<&Bound<'_, PyAny>>,
) -> PyResult<GradFunction> {
    Ok(GradFunction {
        fun,
        spec: arg_spec(argnums, argnames)?,
        with_value: false,
    })
}

/// A function returning `(fun(*args), grad(fun)(*args))` (see `grad`).
#[pyfunction]
#[pyo3(signature = (fun, argnums=None, argnames=None))]
pub fn value_and_grad(
    fun: Py<PyAny>,
    argnums: Option<&Bound<'_, PyAny>>,
    argnames: Option<&Bound<'_, PyAny>>,
) -> PyResult<GradFunction> {
    Ok(GradFunction {
        fun,
        spec: arg_spec(argnums, argnames)?,
        with_value: true,
    })
}

// ---- vjp and jvp -----------------------------------------------------------------------------

/// Calls `fun(*xs)` for a core transformation: the outputs as arrays.
fn call_flat(py: Python<'_>, fun: &Py<PyAny>, xs: &[Array], what: &str) -> umx::Result<Vec<Array>> {
    let args = PyTuple::new(py, xs.iter().cloned().map(PyArray::from)).or_stash()?;
    let out = fun.bind(py).call1(args).or_stash()?;
    output_arrays(&out, what).or_stash()
}

/// `(outputs, vjps)`: `fun(*primals)` and the cotangents carried back to each primal.
#[pyfunction]
pub fn vjp<'py>(
    py: Python<'py>,
    fun: Py<PyAny>,
    primals: &Bound<'py, PyAny>,
    cotangents: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
    let ps = array_list(primals, "vjp: primals")?;
    let cs = array_list(cotangents, "vjp: cotangents")?;
    let (outs, vjps) =
        umx::transforms::vjp(|xs| call_flat(py, &fun, xs, "vjp"), &ps, &cs).or_raise()?;
    Ok((list_of(py, outs)?, list_of(py, vjps)?))
}

/// `(outputs, jvps)`: `fun(*primals)` and the change of each output along `tangents`.
#[pyfunction]
pub fn jvp<'py>(
    py: Python<'py>,
    fun: Py<PyAny>,
    primals: &Bound<'py, PyAny>,
    tangents: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
    let ps = array_list(primals, "jvp: primals")?;
    let ts = array_list(tangents, "jvp: tangents")?;
    let (outs, jvps) =
        umx::transforms::jvp(|xs| call_flat(py, &fun, xs, "jvp"), &ps, &ts).or_raise()?;
    Ok((list_of(py, outs)?, list_of(py, jvps)?))
}

// ---- vmap ------------------------------------------------------------------------------------

/// An axis spec: None or an int.
fn axis_of(spec: &Bound<'_, PyAny>) -> PyResult<Option<Option<i64>>> {
    if spec.is_none() {
        return Ok(Some(None));
    }
    Ok(spec.extract::<i64>().ok().map(Some))
}

/// The axis of each array leaf of `def` from `spec`, a prefix of its tree (an int or None
/// applies to everything below it).
fn leaf_axes(def: &TreeDef, spec: &Bound<'_, PyAny>, out: &mut Vec<Option<i64>>) -> PyResult<()> {
    if let Some(ax) = axis_of(spec)? {
        out.extend(std::iter::repeat_n(ax, count(def)));
        return Ok(());
    }
    let mismatch = || {
        PyValueError::new_err(
            "vmap: in_axes / out_axes must be an int, None, or a tree matching the arguments",
        )
    };
    match def {
        TreeDef::List(items) | TreeDef::Tuple(items) => {
            let specs: Vec<Bound<'_, PyAny>> = spec
                .try_iter()
                .map_err(|_| mismatch())?
                .collect::<PyResult<_>>()?;
            if specs.len() != items.len() {
                return Err(mismatch());
            }
            for (d, s) in items.iter().zip(&specs) {
                leaf_axes(d, s, out)?;
            }
            Ok(())
        }
        TreeDef::Dict(items) => {
            let specs = spec.cast::<PyDict>().map_err(|_| mismatch())?;
            for (k, d) in items {
                let s = specs.get_item(k.bind(spec.py()))?.ok_or_else(mismatch)?;
                leaf_axes(d, &s, out)?;
            }
            Ok(())
        }
        TreeDef::Array | TreeDef::Other(_) => Err(mismatch()),
    }
}

/// The function `vmap` returns.
#[pyclass(name = "_VmapFunction", module = "umx.core")]
pub struct VmapFunction {
    fun: Py<PyAny>,
    in_axes: Py<PyAny>,
    out_axes: Py<PyAny>,
}

#[pymethods]
impl VmapFunction {
    #[pyo3(signature = (*args))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut leaves = Vec::new();
        let def = flatten(args.as_any(), &mut leaves)?;
        let in_axes = self.in_axes.bind(py);
        let mut axes = Vec::new();
        // A single int or None applies to every argument; a list, one entry per argument.
        if in_axes.is_instance_of::<PyList>() && !in_axes.is_instance_of::<PyTuple>() {
            let t = PyTuple::new(py, in_axes.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
            leaf_axes(&def, t.as_any(), &mut axes)?;
        } else {
            leaf_axes(&def, in_axes, &mut axes)?;
        }
        let out_axes = self.out_axes.bind(py);
        let flat_out = axis_of(out_axes)?;
        let out_def: RefCell<Option<TreeDef>> = RefCell::new(None);
        let f = |xs: &[Array]| -> umx::Result<Vec<Array>> {
            let call_args = unflatten(py, &def, &mut xs.iter().cloned()).or_stash()?;
            let call_args = call_args
                .cast_into::<PyTuple>()
                .map_err(PyErr::from)
                .or_stash()?;
            let out = self.fun.bind(py).call1(call_args).or_stash()?;
            let mut outs = Vec::new();
            *out_def.borrow_mut() = Some(flatten(&out, &mut outs).or_stash()?);
            Ok(outs)
        };
        let core_out = [flat_out.unwrap_or(Some(0))];
        let outs = umx::vmap(f, &axes, &core_out)(&leaves).or_raise()?;
        let out_def = out_def.into_inner().expect("the function ran");
        let outs = if flat_out.is_some() {
            outs
        } else {
            // A tree of out_axes: the batch came out first; move it where each leaf wants it.
            let mut want = Vec::new();
            leaf_axes(&out_def, out_axes, &mut want)?;
            outs.into_iter()
                .zip(want)
                .map(|(o, w)| match w {
                    Some(ax) => ops::moveaxis(&o, 0, ax),
                    None => o.get(&[0]),
                })
                .collect::<umx::Result<Vec<_>>>()
                .or_raise()?
        };
        unflatten(py, &out_def, &mut outs.into_iter())
    }
}

/// `fun` mapped over axis `in_axes` of its arguments (an int, None, or a tree per argument),
/// with the batch axis of its outputs at `out_axes`.
#[pyfunction]
#[pyo3(signature = (fun, in_axes=None, out_axes=None))]
pub fn vmap(
    py: Python<'_>,
    fun: Py<PyAny>,
    in_axes: Option<Py<PyAny>>,
    out_axes: Option<Py<PyAny>>,
) -> PyResult<VmapFunction> {
    let zero = || -> PyResult<Py<PyAny>> { Ok(0i64.into_pyobject(py)?.into_any().unbind()) };
    Ok(VmapFunction {
        fun,
        in_axes: match in_axes {
            Some(a) => a,
            None => zero()?,
        },
        out_axes: match out_axes {
            Some(a) => a,
            None => zero()?,
        },
    })
}

// ---- checkpoint and custom_function ------------------------------------------------------------

/// Arguments flattened for a core function of arrays: the structure of `(args, kwargs)`.
pub struct CallDef {
    pub args: TreeDef,
    pub kwargs: Option<TreeDef>,
}

impl CallDef {
    pub fn flatten(
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        leaves: &mut Vec<Array>,
    ) -> PyResult<CallDef> {
        Ok(CallDef {
            args: flatten(args.as_any(), leaves)?,
            kwargs: kwargs.map(|k| flatten(k.as_any(), leaves)).transpose()?,
        })
    }

    /// Calls `fun` with the arguments rebuilt from `xs`.
    pub fn call<'py>(
        &self,
        py: Python<'py>,
        fun: &Py<PyAny>,
        xs: &[Array],
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut it = xs.iter().cloned();
        let args = unflatten(py, &self.args, &mut it)?.cast_into::<PyTuple>()?;
        let kwargs = match &self.kwargs {
            Some(d) => Some(unflatten(py, d, &mut it)?.cast_into::<PyDict>()?),
            None => None,
        };
        fun.bind(py).call(args, kwargs.as_ref())
    }
}

/// The function `checkpoint` returns.
#[pyclass(name = "_CheckpointFunction", module = "umx.core")]
pub struct CheckpointFunction {
    fun: Arc<Py<PyAny>>,
}

#[pymethods]
impl CheckpointFunction {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut leaves = Vec::new();
        let call = Arc::new(CallDef::flatten(args, kwargs, &mut leaves)?);
        let out_def: Arc<Mutex<Option<TreeDef>>> = Arc::new(Mutex::new(None));
        let (fun, od) = (self.fun.clone(), out_def.clone());
        let block = umx::checkpoint(move |xs: &[Array]| {
            Python::attach(|py| {
                let out = call.call(py, &fun, xs).or_stash()?;
                let mut outs = Vec::new();
                let def = flatten(&out, &mut outs).or_stash()?;
                *od.lock().unwrap_or_else(|e| e.into_inner()) = Some(def);
                Ok(outs)
            })
        });
        let outs = block(&leaves).or_raise()?;
        let def = out_def
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("the function ran");
        unflatten(py, &def, &mut outs.into_iter())
    }
}

/// `fun` with its intermediate values recomputed in the backward pass instead of kept.
#[pyfunction]
pub fn checkpoint(fun: Py<PyAny>) -> CheckpointFunction {
    CheckpointFunction { fun: Arc::new(fun) }
}

/// A function with its own `vjp`, `jvp` or `vmap` rules, set with the decorators of the same
/// names (MLX's `custom_function`).
#[pyclass(name = "custom_function", module = "umx.core")]
pub struct CustomFunction {
    fun: Arc<Py<PyAny>>,
    vjp: Option<Arc<Py<PyAny>>>,
    jvp: Option<Arc<Py<PyAny>>>,
    vmap: Option<Arc<Py<PyAny>>>,
}

/// Builds a Python tree of `def`'s structure with leaves made by `leaf` from each position.
fn build_with<'py>(
    py: Python<'py>,
    def: &TreeDef,
    mut leaf: impl FnMut(usize) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut k = 0;
    build(py, def, &mut || {
        let v = leaf(k);
        k += 1;
        v
    })
}

/// The arrays of a result that must have `def`'s structure (a single array when `def` has
/// one leaf).
fn flatten_as(out: &Bound<'_, PyAny>, n: usize, what: &str) -> PyResult<Vec<Array>> {
    let mut leaves = Vec::new();
    flatten(out, &mut leaves)?;
    if leaves.len() != n {
        return Err(PyValueError::new_err(format!(
            "custom_function: the {what} rule returned {} arrays where {n} were expected",
            leaves.len()
        )));
    }
    Ok(leaves)
}

#[pymethods]
impl CustomFunction {
    #[new]
    fn new(fun: Py<PyAny>) -> Self {
        CustomFunction {
            fun: Arc::new(fun),
            vjp: None,
            jvp: None,
            vmap: None,
        }
    }

    /// Sets the vjp rule `f(primals, cotangents, outputs)`, returning one cotangent per primal.
    fn vjp(mut slf: PyRefMut<'_, Self>, f: Py<PyAny>) -> PyRefMut<'_, Self> {
        slf.vjp = Some(Arc::new(f));
        slf
    }

    /// Sets the jvp rule `f(primals, tangents)`, returning the outputs' tangents.
    fn jvp(mut slf: PyRefMut<'_, Self>, f: Py<PyAny>) -> PyRefMut<'_, Self> {
        slf.jvp = Some(Arc::new(f));
        slf
    }

    /// Sets the batching rule `f(inputs, axes)`, returning `(outputs, out_axes)`.
    fn vmap(mut slf: PyRefMut<'_, Self>, f: Py<PyAny>) -> PyRefMut<'_, Self> {
        slf.vmap = Some(Arc::new(f));
        slf
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut leaves = Vec::new();
        let call = Arc::new(CallDef::flatten(args, kwargs, &mut leaves)?);
        let n_args = leaves.len();
        let out_def: Arc<Mutex<Option<TreeDef>>> = Arc::new(Mutex::new(None));
        let lock = |m: &Mutex<Option<TreeDef>>| -> umx::Result<Arc<TreeDef>> {
            // Each rule rebuilds the outputs' tree; flatten it again from a fresh copy.
            Python::attach(|py| {
                let g = m.lock().unwrap_or_else(|e| e.into_inner());
                let def = g.as_ref().ok_or_else(|| {
                    Error::Invalid("custom_function: a rule ran before the function".into())
                })?;
                Ok(Arc::new(clone_def(py, def)))
            })
        };

        let (fun, c, od) = (self.fun.clone(), call.clone(), out_def.clone());
        let mut cf = umx::custom_function("custom_function", move |xs: &[Array]| {
            Python::attach(|py| {
                let out = c.call(py, &fun, xs).or_stash()?;
                let mut outs = Vec::new();
                let def = flatten(&out, &mut outs).or_stash()?;
                *od.lock().unwrap_or_else(|e| e.into_inner()) = Some(def);
                Ok(outs)
            })
        });
        if let Some(rule) = &self.vjp {
            let (rule, c, od) = (rule.clone(), call.clone(), out_def.clone());
            cf = cf.with_vjp(move |primals, cots, outs| {
                let def = lock(&od)?;
                Python::attach(|py| {
                    let p = unflatten(py, &c.args, &mut primals.iter().cloned()).or_stash()?;
                    let ct = unflatten(py, &def, &mut cots.iter().cloned()).or_stash()?;
                    let o = unflatten(py, &def, &mut outs.iter().cloned()).or_stash()?;
                    let r = rule.bind(py).call1((p, ct, o)).or_stash()?;
                    flatten_as(&r, primals.len(), "vjp").or_stash()
                })
            });
        }
        if let Some(rule) = &self.jvp {
            let (rule, c, od) = (rule.clone(), call.clone(), out_def.clone());
            cf = cf.with_jvp(move |primals, tangents| {
                let def = lock(&od)?;
                Python::attach(|py| {
                    let p = unflatten(py, &c.args, &mut primals.iter().cloned()).or_stash()?;
                    let t = unflatten(py, &c.args, &mut tangents.iter().cloned()).or_stash()?;
                    let r = rule.bind(py).call1((p, t)).or_stash()?;
                    flatten_as(&r, count(&def), "jvp").or_stash()
                })
            });
        }
        if let Some(rule) = &self.vmap {
            let (rule, c) = (rule.clone(), call.clone());
            cf = cf.with_vmap(move |inputs, axes| {
                Python::attach(|py| {
                    let x = unflatten(py, &c.args, &mut inputs.iter().cloned()).or_stash()?;
                    let ax = build_with(py, &c.args, |k| Ok(axes[k].into_pyobject(py)?.into_any()))
                        .or_stash()?;
                    let r = rule.bind(py).call1((x, ax)).or_stash()?;
                    let (outs, out_axes): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                        r.extract().or_stash()?;
                    let mut arrays = Vec::new();
                    let def = flatten(&outs, &mut arrays).or_stash()?;
                    let mut want = Vec::new();
                    leaf_axes(&def, &out_axes, &mut want).or_stash()?;
                    let want = want.into_iter().map(|a| a.map(|a| a as usize)).collect();
                    Ok((arrays, want))
                })
            });
        }
        if n_args == 0 {
            return Err(PyValueError::new_err(
                "custom_function: the function takes no array arguments",
            ));
        }
        let outs = cf.call(&leaves).or_raise()?;
        let def = lock(&out_def).or_raise()?;
        unflatten(py, &def, &mut outs.into_iter())
    }
}

/// A copy of a tree structure.
fn clone_def(py: Python<'_>, def: &TreeDef) -> TreeDef {
    match def {
        TreeDef::Array => TreeDef::Array,
        TreeDef::Other(o) => TreeDef::Other(o.clone_ref(py)),
        TreeDef::List(v) => TreeDef::List(v.iter().map(|d| clone_def(py, d)).collect()),
        TreeDef::Tuple(v) => TreeDef::Tuple(v.iter().map(|d| clone_def(py, d)).collect()),
        TreeDef::Dict(v) => TreeDef::Dict(
            v.iter()
                .map(|(k, d)| (k.clone_ref(py), clone_def(py, d)))
                .collect(),
        ),
    }
}
