//! `umx::linalg`: MLX's linear algebra with NumPy's semantics, and the matrix products.
//!
//! - Products (`matmul`, `addmm`, `inner`, `outer`, `tensordot`, `einsum`; also in `ops`):
//!   `matmul` and `addmm` are primitives (`primitives/matmul.rs`), the others are built from
//!   them and the shape ops.
//! - Factorizations (`decompositions.rs`: `cholesky`, `qr`, `svd`, `eig`, `eigvals`, `eigh`,
//!   `eigvalsh`, `lu`, `lu_factor`) and solvers (`solvers.rs`: `solve`, `solve_triangular`,
//!   `inv`, `tri_inv`, `cholesky_inv`, `pinv`, `det`, `slogdet`), on the primitives of
//!   `primitives/linalg.rs`.
//! - `norm` and `cross` (`norms.rs`), built from other ops.
//!
//! Everything maps over leading (batch) axes. Factorizations take float32 and float64 (and
//! `eig`/`eigvals` complex64) and reject other dtypes as MLX does; `det`, `slogdet`, `norm` and
//! `cross` take any.

mod decompositions;
mod einsum;
mod norms;
mod solvers;

pub use decompositions::{cholesky, eig, eigh, eigvals, eigvalsh, lu, lu_factor, qr, svd};
pub use einsum::{einsum, einsum_path};
pub use norms::{NormOrd, cross, norm};
pub use solvers::{cholesky_inv, det, inv, pinv, slogdet, solve, solve_triangular, tri_inv};

use crate::primitives::matmul::{matmul_dtype, matmul_shape};
use crate::primitives::{MatmulOp, Primitive};
use crate::shape::{broadcast_shapes, fmt_shape, normalize_axis};
use crate::{Array, Result, bail};
use einsum::{Label, Term, contract};

/// The matrix product of `a` and `b`, with NumPy's rules: batch dims (all but the last two)
/// broadcast, a 1-D `a` is a row vector and a 1-D `b` a column vector whose added dim is dropped
/// from the result (so vector @ vector is 0-d). The result dtype is the promotion of the inputs',
/// which must be a floating point or complex type (MLX's rule: integer matmul is an error).
///
/// ```
/// # umx_cpu::register();
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
/// # umx_cpu::register();
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

/// The inner product over the last axes of `a` and `b` (for a 0-d operand, the plain product),
/// as NumPy's and MLX's `inner`: the result has shape `a.shape[:-1] + b.shape[:-1]`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3])?;
/// assert_eq!(ops::inner(&a, &a)?.item::<f32>()?, 14.0);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn inner(a: &Array, b: &Array) -> Result<Array> {
    if a.ndim() == 0 || b.ndim() == 0 {
        return multiply_of(a, b);
    }
    let (ka, kb) = (a.shape()[a.ndim() - 1], b.shape()[b.ndim() - 1]);
    if ka != kb {
        bail!(
            "inner: the last dimensions of shapes {} and {} differ: {ka} != {kb}",
            fmt_shape(a.shape()),
            fmt_shape(b.shape())
        );
    }
    tensordot_impl("inner", a, b, &[a.ndim() - 1], &[b.ndim() - 1])
}

/// The outer product of `a` and `b`, both flattened: shape `(a.size, b.size)`, as MLX's `outer`.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 2.0], &[2])?;
/// let b = Array::from_slice(&[1.0f32, 10.0, 100.0], &[3])?;
/// assert_eq!(ops::outer(&a, &b)?.shape(), &[2, 3]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn outer(a: &Array, b: &Array) -> Result<Array> {
    let x = reshape_to(a, &[a.size(), 1])?;
    let y = reshape_to(b, &[b.size()])?;
    multiply_of(&x, &y)
}

/// Which axes [`tensordot`] sums over: the last `n` of `a` with the first `n` of `b`, or two
/// lists of axes paired in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TensordotAxes {
    /// The last `n` axes of `a` with the first `n` of `b`.
    Count(usize),
    /// Axes of `a` and axes of `b`, paired in order (negative counts from the end).
    Lists(Vec<i64>, Vec<i64>),
}

impl From<usize> for TensordotAxes {
    fn from(n: usize) -> Self {
        TensordotAxes::Count(n)
    }
}
impl From<i32> for TensordotAxes {
    fn from(n: i32) -> Self {
        TensordotAxes::Count(n.max(0) as usize)
    }
}
impl From<(Vec<i64>, Vec<i64>)> for TensordotAxes {
    fn from((a, b): (Vec<i64>, Vec<i64>)) -> Self {
        TensordotAxes::Lists(a, b)
    }
}
impl From<(&[i64], &[i64])> for TensordotAxes {
    fn from((a, b): (&[i64], &[i64])) -> Self {
        TensordotAxes::Lists(a.to_vec(), b.to_vec())
    }
}
impl<const N: usize> From<([i64; N], [i64; N])> for TensordotAxes {
    fn from((a, b): ([i64; N], [i64; N])) -> Self {
        TensordotAxes::Lists(a.to_vec(), b.to_vec())
    }
}

/// The sum of products over the given axes of `a` and `b` (NumPy's and MLX's `tensordot`):
/// the result has `a`'s other axes, then `b`'s other axes.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32; 24], &[2, 3, 4])?;
/// let b = Array::from_slice(&[1.0f32; 60], &[3, 4, 5])?;
/// assert_eq!(ops::tensordot(&a, &b, 2)?.shape(), &[2, 5]);
/// assert_eq!(ops::tensordot(&a, &b, ([1, 2], [0, 1]))?.shape(), &[2, 5]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn tensordot(a: &Array, b: &Array, axes: impl Into<TensordotAxes>) -> Result<Array> {
    let (na, nb) = (a.ndim(), b.ndim());
    let (xa, xb): (Vec<usize>, Vec<usize>) = match axes.into() {
        TensordotAxes::Count(n) => {
            if n > na || n > nb {
                bail!(
                    "tensordot: cannot sum over {n} axes of shapes {} and {}",
                    fmt_shape(a.shape()),
                    fmt_shape(b.shape())
                );
            }
            ((na - n..na).collect(), (0..n).collect())
        }
        TensordotAxes::Lists(la, lb) => {
            if la.len() != lb.len() {
                bail!(
                    "tensordot: {} axes of a {:?} but {} axes of b {:?}",
                    la.len(),
                    la,
                    lb.len(),
                    lb
                );
            }
            let norm = |l: &[i64], n| -> Result<Vec<usize>> {
                let v = l
                    .iter()
                    .map(|&x| normalize_axis("tensordot", x, n))
                    .collect::<Result<Vec<usize>>>()?;
                for (k, x) in v.iter().enumerate() {
                    if v[..k].contains(x) {
                        bail!("tensordot: axis {x} is repeated in {l:?}");
                    }
                }
                Ok(v)
            };
            (norm(&la, na)?, norm(&lb, nb)?)
        }
    };
    tensordot_impl("tensordot", a, b, &xa, &xb)
}

/// `tensordot` over normalised, distinct axes `xa` of `a` paired with `xb` of `b`.
fn tensordot_impl(op: &str, a: &Array, b: &Array, xa: &[usize], xb: &[usize]) -> Result<Array> {
    for (&i, &j) in xa.iter().zip(xb) {
        if a.shape()[i] != b.shape()[j] {
            bail!(
                "{op}: axis {i} of shape {} and axis {j} of shape {} differ: {} != {}",
                fmt_shape(a.shape()),
                fmt_shape(b.shape()),
                a.shape()[i],
                b.shape()[j]
            );
        }
    }
    matmul_dtype(op, &[a.dtype(), b.dtype()])?;
    // Label a's axes 0..na; b's summed axes take their partner's label, its others fresh ones.
    let na = a.ndim() as Label;
    let la: Vec<Label> = (0..na).collect();
    let lb: Vec<Label> = (0..b.ndim())
        .map(|j| match xb.iter().position(|&x| x == j) {
            Some(k) => xa[k] as Label,
            None => na + j as Label,
        })
        .collect();
    let keep: Vec<Label> = la
        .iter()
        .chain(&lb)
        .copied()
        .filter(|l| !xa.contains(&(*l as usize)) || *l >= na)
        .collect();
    let t = contract(
        Term {
            array: a.clone(),
            labels: la,
        },
        Term {
            array: b.clone(),
            labels: lb,
        },
        &keep,
    )?;
    Ok(t.array)
}

// The shape, reduce and element-wise ops that the contractions are built from, in one place.

fn reshape_to(x: &Array, shape: &[usize]) -> Result<Array> {
    if x.shape() == shape {
        return Ok(x.clone());
    }
    let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    crate::ops::reshape(x, &shape)
}

fn permute(x: &Array, order: &[usize]) -> Result<Array> {
    if order.iter().enumerate().all(|(i, &o)| i == o) {
        return Ok(x.clone());
    }
    crate::ops::transpose(x, order.iter().map(|&o| o as i64).collect::<Vec<i64>>())
}

/// The sum over `axes` (none: `x` itself).
fn sum_over(x: &Array, axes: &[usize]) -> Result<Array> {
    if axes.is_empty() {
        return Ok(x.clone());
    }
    let axes: Vec<i64> = axes.iter().map(|&k| k as i64).collect();
    crate::ops::sum(x, axes, false)
}

/// The diagonal over axes `i < j` (of equal size) as a new last axis: a strided view of the
/// row-major elements, whose step along the diagonal is the sum of the two axes' strides.
fn diagonal_of(x: &Array, i: usize, j: usize) -> Result<Array> {
    let rm = crate::shape::row_major_strides(x.shape());
    let (mut shape, mut strides) = (Vec::new(), Vec::new());
    for (k, (&d, &s)) in x.shape().iter().zip(&rm).enumerate() {
        if k != i && k != j {
            shape.push(d);
            strides.push(s as i64);
        }
    }
    shape.push(x.shape()[i]);
    strides.push((rm[i] + rm[j]) as i64);
    crate::ops::as_strided(x, &shape, &strides, 0)
}

fn multiply_of(x: &Array, y: &Array) -> Result<Array> {
    crate::ops::multiply(x, y)
}

impl Array {
    /// The matrix product `self @ other` (see [`matmul`]).
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::Array;
    /// let a = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3])?;
    /// assert_eq!(a.matmul(&a)?.item::<f32>()?, 14.0);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    pub fn matmul(&self, other: &Array) -> Result<Array> {
        matmul(self, other)
    }
}
