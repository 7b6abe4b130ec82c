//! umx-python: the Python package `umx`, MLX's Python API on the umx core. The native module
//! `umx.core` lives here (PyO3, one abi3 wheel for CPython 3.9 and later); `umx.nn`,
//! `umx.optimizers` and `umx.utils` are plain Python over it, in `python/umx/`, as `mlx.nn`
//! and `mlx.optimizers` are Python over `mlx.core`.
//!
//! It depends on the `umx` facade only. Start reading at `array.rs` (the `array` class), then
//! `convert.rs` (Python values to arrays, MLX's dtype rules), `ops.rs` (the functions) and
//! `transforms.rs` (grad, vmap and friends over pytrees).

mod args;
mod array;
mod compile;
mod convert;
mod device;
mod dtype;
mod error;
mod fast;
mod indexing;
mod io;
mod ops;
mod random;
mod transforms;

use pyo3::prelude::*;
use umx::Dtype;

macro_rules! add_functions {
    ($m:expr, $module:ident: $($f:ident),* $(,)?) => {
        $( $m.add_function(wrap_pyfunction!($module::$f, $m)?)?; )*
    };
}

/// Registers `module` as `umx.core.<name>` so `import umx.core.<name>` finds it.
fn add_submodule(parent: &Bound<'_, PyModule>, module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = parent.py();
    let name = module.name()?;
    parent.add_submodule(module)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item(format!("umx.core.{name}"), module)?;
    Ok(())
}

#[pymodule]
#[pyo3(name = "core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    umx::init();
    let py = m.py();
    m.add_class::<array::PyArray>()?;
    m.add_class::<array::ArrayIterator>()?;
    m.add_class::<indexing::ArrayAt>()?;
    m.add_class::<dtype::PyDtype>()?;
    m.add_class::<dtype::Category>()?;
    m.add_class::<dtype::Finfo>()?;
    m.add_class::<dtype::Iinfo>()?;
    m.add_class::<device::PyDevice>()?;
    m.add_class::<device::PyDeviceType>()?;
    m.add_class::<device::PyStream>()?;
    m.add_class::<device::StreamContext>()?;
    m.add_class::<transforms::CustomFunction>()?;

    for d in Dtype::ALL {
        m.add(dtype::python_name(d), dtype::PyDtype(d))?;
    }
    for (c, name) in dtype::Category::ALL {
        m.add(name, c)?;
    }
    m.add("cpu", device::PyDeviceType::Cpu)?;
    m.add("gpu", device::PyDeviceType::Gpu)?;
    m.add("pi", std::f64::consts::PI)?;
    m.add("e", std::f64::consts::E)?;
    m.add("euler_gamma", 0.577_215_664_901_532_9_f64)?;
    m.add("inf", f64::INFINITY)?;
    m.add("nan", f64::NAN)?;
    m.add("newaxis", py.None())?;

    add_functions!(m, dtype: issubdtype);
    add_functions!(m, device: default_device, set_default_device, default_stream, new_stream, is_available,
        synchronize, stream);
    add_functions!(m, ops:
        abs, negative, sign, square, floor, ceil, bitwise_invert, sqrt, rsqrt, reciprocal, exp,
        expm1, log, log1p, log2, log10, sin, cos, tan, arcsin, arccos, arctan, sinh, cosh, tanh,
        arcsinh, arccosh, arctanh, erf, erfinv, sigmoid, degrees, radians, isnan, isinf,
        isposinf, isneginf, isfinite, logical_not, real, imag, conj, conjugate, stop_gradient,
        positive,
        add, subtract, multiply, divide, floor_divide, remainder, power, arctan2, logaddexp,
        maximum, minimum, equal, not_equal, less, less_equal, greater, greater_equal,
        logical_and, logical_or, logical_xor, bitwise_and, bitwise_or, bitwise_xor, left_shift,
        right_shift, matmul, inner, outer, divmod,
        sum, prod, max, min, mean, all, any, logsumexp, median, count_nonzero, var, std, argmax,
        argmin, softmax, cumsum, cumprod, cummax, cummin, logcumsumexp,
        reshape, flatten, unflatten, squeeze, expand_dims, transpose, swapaxes, moveaxis,
        broadcast_to, broadcast_arrays, broadcast_shapes, concatenate, stack, split, unstack,
        tile, repeat, pad, roll, flip, as_strided, view, astype, contiguous, atleast_1d,
        atleast_2d, atleast_3d,
        arange, linspace, full, zeros, ones, zeros_like, ones_like, full_like, eye, identity,
        tri, tril, triu, meshgrid,
        addmm, tensordot, einsum, einsum_path,
        take, take_along_axis, put_along_axis, diag, diagonal, trace,
        sort, argsort, partition, argpartition, topk, searchsorted,
        where_, clip, nan_to_num, round, isclose, allclose, array_equal, result_type,
        conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d,
        conv_general,
        quantize, dequantize, quantized_matmul, gather_qmm,
        eval, async_eval, get_active_memory, get_peak_memory, reset_peak_memory,
        get_cache_memory, clear_cache, set_memory_limit, set_cache_limit,
    );
    add_functions!(m, transforms: grad, value_and_grad, vjp, jvp, vmap, checkpoint);
    add_functions!(m, compile: compile, disable_compile, enable_compile);
    add_functions!(m, io: save, savez, savez_compressed, save_safetensors, load);

    // MLX's other names for the same functions.
    for (alias, name) in [
        ("acos", "arccos"),
        ("asin", "arcsin"),
        ("atan", "arctan"),
        ("acosh", "arccosh"),
        ("asinh", "arcsinh"),
        ("atanh", "arctanh"),
        ("atan2", "arctan2"),
        ("pow", "power"),
        ("bitwise_left_shift", "left_shift"),
        ("bitwise_right_shift", "right_shift"),
        ("concat", "concatenate"),
        ("permute_dims", "transpose"),
        ("cumulative_sum", "cumsum"),
        ("cumulative_prod", "cumprod"),
        ("asarray", "array"),
    ] {
        m.add(alias, m.getattr(name)?)?;
    }

    add_submodule(m, &random::module(py)?)?;
    add_submodule(m, &fast::module(py)?)?;
    Ok(())
}
