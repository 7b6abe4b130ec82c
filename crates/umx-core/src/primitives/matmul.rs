//! Matrix products: the shape and dtype rules of `matmul` and `addmm`, shared by the ops and
//! every backend's kernels.
//!
//! Both primitives take their operands as they are (any dtype, any strides, vectors included):
//! a 1-D left operand is a row `(1, K)` and a 1-D right operand a column `(K, 1)`, and the dims
//! they add are dropped from the result, as in NumPy. Batch dims (all but the last two)
//! broadcast. Inputs are converted to the output dtype by the kernel; float16 and bfloat16
//! accumulate in float32.

mod transforms;

use crate::shape::{broadcast_shapes, fmt_shape};
use crate::{Dtype, Result, Shape, bail, promote_types};

/// The matmul primitives.
#[derive(Clone, Debug, PartialEq)]
pub enum MatmulOp {
    /// `out = a @ b`; inputs `[a, b]`.
    Matmul,
    /// `out = alpha * (a @ b) + beta * c`; inputs `[c, a, b]`, `c` broadcasts to the output.
    AddMm { alpha: f64, beta: f64 },
}

/// The matrix view of one operand: batch dims, rows, columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixDims {
    pub batch: Shape,
    pub rows: usize,
    pub cols: usize,
}

/// Splits an operand of `matmul` into batch dims and matrix dims; `left` says which side it is
/// on (a 1-D left operand is a row, a 1-D right operand a column).
pub fn matrix_dims(shape: &[usize], left: bool) -> MatrixDims {
    match shape.len() {
        0 => MatrixDims {
            batch: Vec::new(),
            rows: 1,
            cols: 1,
        },
        1 if left => MatrixDims {
            batch: Vec::new(),
            rows: 1,
            cols: shape[0],
        },
        1 => MatrixDims {
            batch: Vec::new(),
            rows: shape[0],
            cols: 1,
        },
        n => MatrixDims {
            batch: shape[..n - 2].to_vec(),
            rows: shape[n - 2],
            cols: shape[n - 1],
        },
    }
}

/// The output shape of `a @ b`, or an error naming `op` and both shapes.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::primitives::matmul::matmul_shape;
/// assert_eq!(matmul_shape("matmul", &[2, 1, 3, 4], &[5, 4, 2])?, vec![2, 5, 3, 2]);
/// assert_eq!(matmul_shape("matmul", &[4], &[4])?, Vec::<usize>::new());
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn matmul_shape(op: &str, a: &[usize], b: &[usize]) -> Result<Shape> {
    if a.is_empty() || b.is_empty() {
        bail!(
            "{op}: inputs must have at least one dimension, got shapes {} and {}",
            fmt_shape(a),
            fmt_shape(b)
        );
    }
    let (ma, mb) = (matrix_dims(a, true), matrix_dims(b, false));
    if ma.cols != mb.rows {
        bail!(
            "{op}: shapes {} and {} do not fit: the last dimension of the first ({}) must equal \
             the {} dimension of the second ({})",
            fmt_shape(a),
            fmt_shape(b),
            ma.cols,
            if b.len() == 1 {
                "only"
            } else {
                "second to last"
            },
            mb.rows
        );
    }
    let batch = match broadcast_shapes(op, &ma.batch, &mb.batch) {
        Ok(s) => s,
        Err(_) => bail!(
            "{op}: the batch dimensions of shapes {} and {} cannot be broadcast together",
            fmt_shape(a),
            fmt_shape(b)
        ),
    };
    let mut out = batch;
    if a.len() > 1 {
        out.push(ma.rows);
    }
    if b.len() > 1 {
        out.push(mb.cols);
    }
    Ok(out)
}

/// The result dtype of a matrix product of `dtypes` (MLX's rule: the promoted type, which must
/// be a floating point or complex type; integer and bool products are an error).
pub fn matmul_dtype(op: &str, dtypes: &[Dtype]) -> Result<Dtype> {
    let Some(&first) = dtypes.first() else {
        bail!("{op}: no inputs");
    };
    let out = dtypes.iter().fold(first, |acc, &d| promote_types(acc, d));
    if !out.is_inexact() {
        let names: Vec<&str> = dtypes.iter().map(|d| d.name()).collect();
        bail!(
            "{op}: only floating point and complex types are supported, but {} give {out}",
            names.join(" and ")
        );
    }
    Ok(out)
}
