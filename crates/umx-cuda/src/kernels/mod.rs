//! The GPU kernels, one file per family. Each `eval` returns `Ok(None)` for the cases it does
//! not handle yet (a dtype, a layout, an op), which the backend then runs on the CPU.

pub mod elementwise;
pub mod matmul;
pub mod reduce;
pub mod source;

use umx_core::device::OutSpec;
use umx_core::primitives::unary::UnaryClass;
use umx_core::primitives::{BinaryOp, ShapeOp, TernaryOp, UnaryOp};
use umx_core::{ArrayData, Dtype, Error, Result, promote_types};

type Outs = Result<Option<Vec<ArrayData>>>;

fn first_out<'a>(name: &str, outputs: &'a [OutSpec]) -> Result<&'a OutSpec> {
    outputs
        .first()
        .ok_or_else(|| Error::Device(format!("{name}: no output asked for")))
}

pub fn unary(op: &UnaryOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    let [x] = inputs else {
        return Err(Error::Device(format!(
            "{}: {} inputs, not 1",
            op.name(),
            inputs.len()
        )));
    };
    let out = first_out(op.name(), outputs)?;
    if out.dtype == Dtype::Complex64 || x.dtype == Dtype::Complex64 {
        return Ok(None);
    }
    let expr = match (op.class(), op) {
        (UnaryClass::Cast, _) => Some("x0".to_string()),
        _ => op.c_expr(x.dtype, "x0"),
    };
    let Some(expr) = expr else { return Ok(None) };
    Ok(elementwise::run(inputs, &[x.dtype], &expr, &out.shape, out.dtype)?.map(|o| vec![o]))
}

pub fn binary(op: &BinaryOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    let [a, b] = inputs else {
        return Err(Error::Device(format!(
            "{}: {} inputs, not 2",
            op.name(),
            inputs.len()
        )));
    };
    let Some(compute) = op.compute_dtype(promote_types(a.dtype, b.dtype)) else {
        return Err(Error::Invalid(format!(
            "{}: not supported for {} and {}",
            op.name(),
            a.dtype,
            b.dtype
        )));
    };
    let parts: Vec<BinaryOp> = if *op == BinaryOp::DivMod {
        vec![BinaryOp::FloorDivide, BinaryOp::Remainder]
    } else {
        vec![op.clone()]
    };
    if parts.len() != outputs.len() {
        return Err(Error::Device(format!(
            "{}: wrong number of outputs",
            op.name()
        )));
    }
    let mut outs = Vec::new();
    for (part, spec) in parts.iter().zip(outputs) {
        let Some(expr) = part.c_expr(compute, "x0", "x1") else {
            return Ok(None);
        };
        match elementwise::run(inputs, &[compute, compute], &expr, &spec.shape, spec.dtype)? {
            Some(o) => outs.push(o),
            None => return Ok(None),
        }
    }
    Ok(Some(outs))
}

pub fn ternary(op: &TernaryOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    let TernaryOp::Select = op;
    let out = first_out(op.name(), outputs)?;
    if inputs.len() != 3 {
        return Err(Error::Device(format!(
            "where: {} inputs, not 3",
            inputs.len()
        )));
    }
    Ok(elementwise::run(
        inputs,
        &[Dtype::Bool, out.dtype, out.dtype],
        "(x0 ? x1 : x2)",
        &out.shape,
        out.dtype,
    )?
    .map(|o| vec![o]))
}

/// A row-major contiguous copy of `x` on the device (with a cast when `dtype` differs).
pub fn contiguous(x: &ArrayData, dtype: Dtype) -> Result<Option<ArrayData>> {
    elementwise::run(std::slice::from_ref(x), &[x.dtype], "x0", &x.shape, dtype)
}

/// The shape primitives that move data: copies (and casts), and reshapes of views that cannot
/// be restrided. The views themselves need no kernel (the CPU backend's view code only
/// computes strides); the rest is still on the fallback.
pub fn shape(op: &ShapeOp, inputs: &[ArrayData], outputs: &[OutSpec]) -> Outs {
    let out = first_out(op.name(), outputs)?;
    match (op, inputs) {
        (ShapeOp::Copy, [x]) => Ok(contiguous(x, out.dtype)?.map(|o| vec![o])),
        _ => Ok(None),
    }
}
