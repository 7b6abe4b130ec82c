//! Matrix products: `matmul`, `addmm`, `inner`, `outer`, `tensordot`, `einsum`.
//!
//! `matmul` and `addmm` are primitives (see `primitives/matmul.rs`); the others are built from
//! them and the shape ops.

use crate::primitives::matmul::{matmul_dtype, matmul_shape};
use crate::primitives::{MatmulOp, Primitive};
use crate::shape::{broadcast_shapes, fmt_shape};
use crate::{Array, Result, bail};

/// The matrix product of `a` and `b`, with NumPy's rules: batch dims (all but the last two)
/// broadcast, a 1-D `a` is a row vector and a 1-D `b` a column vector whose added dim is dropped
/// from the result (so vector @ vector is 0-d). The result dtype is the promotion of the inputs',
/// which must be a floating point or complex type (MLX's rule: integer matmul is an error).
///
/// ```
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
/// let b = Array::from_slice(&[1.0f32, 1.0], &[2])?;
/// assert_eq!(ops::matmul(&a, &b)?.to_vec::<f32>()?, vec![3.0, 7.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn matmul(a: &Array, b: &Array) -> Result<Array> {
    let shape = matmul_shape("matmul", a.shape(), b.shape())?;
    let dtype = matmul_dtype("matmul", &[a.dtype(), b.dtype()])?;
    Array::from_primitive(
        Primitive::Matmul(MatmulOp::Matmul),
        vec![a.clone(), b.clone()],
        shape,
        dtype,
    )
}

/// `alpha * (a @ b) + beta * c` in one pass, as MLX's `addmm`. `a` and `b` follow
/// [`matmul`]'s rules; `c` must broadcast to the product's shape (it cannot enlarge it).
///
/// ```
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 2.0], &[1, 2])?;
/// let b = Array::from_slice(&[3.0f32, 4.0], &[2, 1])?;
/// let c = Array::from_slice(&[1.0f32], &[1])?;
/// assert_eq!(ops::addmm(&c, &a, &b, 2.0, 3.0)?.to_vec::<f32>()?, vec![25.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn addmm(c: &Array, a: &Array, b: &Array, alpha: f64, beta: f64) -> Result<Array> {
    let shape = matmul_shape("addmm", a.shape(), b.shape())?;
    let dtype = if c.is_weak() {
        let ab = matmul_dtype("addmm", &[a.dtype(), b.dtype()])?;
        crate::dtype::promote_with_weak(ab, c.dtype())
    } else {
        matmul_dtype("addmm", &[c.dtype(), a.dtype(), b.dtype()])?
    };
    let fits = broadcast_shapes("addmm", c.shape(), &shape).map(|s| s == shape);
    if fits != Ok(true) {
        bail!(
            "addmm: c of shape {} does not broadcast to the shape {} of a {} @ b {}",
            fmt_shape(c.shape()),
            fmt_shape(&shape),
            fmt_shape(a.shape()),
            fmt_shape(b.shape())
        );
    }
    Array::from_primitive(
        Primitive::Matmul(MatmulOp::AddMm { alpha, beta }),
        vec![c.clone(), a.clone(), b.clone()],
        shape,
        dtype,
    )
}

impl Array {
    /// The matrix product `self @ other` (see [`matmul`]).
    ///
    /// ```
    /// # use umx_core::Array;
    /// let a = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3])?;
    /// assert_eq!(a.matmul(&a)?.item::<f32>()?, 14.0);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    pub fn matmul(&self, other: &Array) -> Result<Array> {
        matmul(self, other)
    }
}
