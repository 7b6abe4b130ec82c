//! Factorizations and solvers of `umx::linalg`: their parameters, the shapes and dtypes of
//! their outputs, and what each computes, for every backend to agree on.
//!
//! Every primitive works on the last two axes of its inputs and maps over the leading (batch)
//! axes, which its inputs share exactly (the ops broadcast them first). Inputs are float32 or
//! float64 (complex64 too for [`LinalgOp::Eig`]), any strides; outputs are contiguous, of the
//! input's dtype unless said otherwise. The rest of `umx::linalg` (inv, det, norm, pinv, lu,
//! cross, ...) is built from these and the ordinary ops.
//!
//! What NumPy does on singular input, so do these: a solve whose LU factorization meets an
//! exactly zero pivot fails with "Singular matrix", a Cholesky factorization of a matrix that
//! is not positive definite fails, an SVD or a general eigendecomposition of non-finite input
//! fails; factorizations of singular matrices (LU, QR) succeed.

mod transforms;

use crate::device::OutSpec;
use crate::primitives::Primitive;
use crate::shape::fmt_shape;
use crate::{Array, Dtype, Result, bail, ops};

/// The linear-algebra primitives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LinalgOp {
    /// `x = a⁻¹ b` by LU with partial pivoting; inputs `[a (…, n, n), b (…, n, k)]`, output
    /// `x (…, n, k)`. An exactly zero pivot is an error ("Singular matrix").
    Solve,
    /// `x = t⁻¹ b` where `t` is the lower (`upper`: upper) triangle of `a`, diagonal included;
    /// the other triangle is never read. Inputs and output as [`LinalgOp::Solve`]. A zero on the
    /// diagonal gives infinities and NaNs, as LAPACK's `trsm` does.
    SolveTriangular { upper: bool },
    /// The Cholesky factor of the symmetric matrix held in the lower (`upper`: upper) triangle
    /// of `a (…, n, n)`: `L` lower with `a = L Lᵀ` (`upper`: `U = Lᵀ`, `a = Uᵀ U`); the other
    /// triangle of the output is zero. A matrix that is not positive definite is an error.
    Cholesky { upper: bool },
    /// The reduced QR factorization of `a (…, m, n)`: `Q (…, m, k)` with orthonormal columns and
    /// upper-triangular `R (…, k, n)`, `k = min(m, n)`, `a = Q R`.
    Qr,
    /// The singular value decomposition of `a (…, m, n)`: `U (…, m, m)`, the singular values
    /// `S (…, k)` in non-increasing order and `Vt (…, n, n)` with `a = U[:, :k] diag(S) Vt[:k]`
    /// (`compute_uv: false`: `S` only). Non-finite input is an error ("SVD did not converge").
    Svd { compute_uv: bool },
    /// The eigenvalues `w (…, n)` and unit-norm right eigenvectors `V (…, n, n)` (columns) of a
    /// general square matrix, both complex64 (`vectors: false`: `w` only), in no particular
    /// order. Non-finite input is an error.
    Eig { vectors: bool },
    /// The eigenvalues `w (…, n)` in ascending order and orthonormal eigenvectors `V (…, n, n)`
    /// (columns; `vectors: false`: `w` only) of the symmetric matrix held in the lower
    /// (`upper`: upper) triangle of `a`. Non-finite input gives NaNs.
    Eigh { upper: bool, vectors: bool },
    /// LU with partial pivoting of `a (…, m, n)`, as LAPACK's `getrf`: outputs the packed
    /// factors `LU (…, m, n)` (strictly lower part: `L` without its unit diagonal; upper part:
    /// `U`), the uint32 pivots `(…, k)` (row `i` was swapped with row `pivots[i]`, in order) and
    /// the uint32 permutation `p (…, m)` of MLX's `lu` (row `i` of `a` is row `p[i]` of `L U`).
    /// An exactly zero pivot is kept (its column of `L` is zero), not an error.
    LuFactor,
}

impl LinalgOp {
    /// MLX's name of the op the primitive serves, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            LinalgOp::Solve => "solve",
            LinalgOp::SolveTriangular { .. } => "solve_triangular",
            LinalgOp::Cholesky { .. } => "cholesky",
            LinalgOp::Qr => "qr",
            LinalgOp::Svd { .. } => "svd",
            LinalgOp::Eig { .. } => "eig",
            LinalgOp::Eigh { .. } => "eigh",
            LinalgOp::LuFactor => "lu_factor",
        }
    }

    /// The shapes and dtypes of the outputs for inputs of these shapes and this (first
    /// input's) dtype. The ops have checked the inputs already.
    pub fn outputs(&self, shapes: &[&[usize]], dtype: Dtype) -> Vec<OutSpec> {
        let a = shapes[0];
        let nd = a.len();
        let batch = &a[..nd - 2];
        let (m, n) = (a[nd - 2], a[nd - 1]);
        let k = m.min(n);
        let spec = |dims: &[usize], dtype: Dtype| {
            let mut shape = batch.to_vec();
            shape.extend_from_slice(dims);
            OutSpec { shape, dtype }
        };
        let complex = Dtype::Complex64;
        match *self {
            LinalgOp::Solve | LinalgOp::SolveTriangular { .. } => {
                let b = shapes[1];
                vec![spec(&[n, b[b.len() - 1]], dtype)]
            }
            LinalgOp::Cholesky { .. } => vec![spec(&[n, n], dtype)],
            LinalgOp::Qr => vec![spec(&[m, k], dtype), spec(&[k, n], dtype)],
            LinalgOp::Svd { compute_uv: true } => vec![
                spec(&[m, m], dtype),
                spec(&[k], dtype),
                spec(&[n, n], dtype),
            ],
            LinalgOp::Svd { compute_uv: false } => vec![spec(&[k], dtype)],
            LinalgOp::Eig { vectors: true } => vec![spec(&[n], complex), spec(&[n, n], complex)],
            LinalgOp::Eig { vectors: false } => vec![spec(&[n], complex)],
            LinalgOp::Eigh { vectors: true, .. } => vec![spec(&[n], dtype), spec(&[n, n], dtype)],
            LinalgOp::Eigh { vectors: false, .. } => vec![spec(&[n], dtype)],
            LinalgOp::LuFactor => vec![
                spec(&[m, n], dtype),
                spec(&[k], Dtype::Uint32),
                spec(&[m], Dtype::Uint32),
            ],
        }
    }
}

/// The outputs of `op` on `inputs` (checked already), as lazy arrays. Inputs after the first
/// are cast to its dtype.
pub(crate) fn apply(op: LinalgOp, inputs: Vec<Array>) -> Result<Vec<Array>> {
    let dtype = inputs[0].dtype();
    let inputs: Vec<Array> = inputs
        .iter()
        .map(|x| ops::astype(x, dtype))
        .collect::<Result<_>>()?;
    let shapes: Vec<&[usize]> = inputs.iter().map(|x| x.shape()).collect();
    let specs = op.outputs(&shapes, dtype);
    Array::from_primitive_multi(Primitive::Linalg(op), inputs, specs)
}

/// Checks that `dtype` is one of `allowed`, naming the op and the input's shape otherwise.
pub fn check_dtype(op: &str, shape: &[usize], dtype: Dtype, allowed: &[Dtype]) -> Result<()> {
    if allowed.contains(&dtype) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|d| d.name()).collect();
    let list = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    };
    bail!(
        "{op}: arrays must have type {list}, got {dtype} of shape {}",
        fmt_shape(shape)
    )
}

/// Checks that `shape` is a (batch of) matrices: at least two dimensions.
pub fn check_matrix(op: &str, shape: &[usize]) -> Result<()> {
    if shape.len() < 2 {
        bail!(
            "{op}: expected an array of at least 2 dimensions (a matrix or a batch of them), got \
             shape {}",
            fmt_shape(shape)
        );
    }
    Ok(())
}

/// Checks that `shape` is a (batch of) square matrices.
pub fn check_square(op: &str, shape: &[usize]) -> Result<()> {
    check_matrix(op, shape)?;
    let nd = shape.len();
    if shape[nd - 1] != shape[nd - 2] {
        bail!(
            "{op}: expected square matrices in the last two dimensions, got shape {}",
            fmt_shape(shape)
        );
    }
    Ok(())
}
