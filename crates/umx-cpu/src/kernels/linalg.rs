//! CPU kernels of the linear-algebra primitives: the factorizations of `umx-lapack` (faer), one
//! matrix of the batch at a time.
//!
//! - Each matrix is read from the input's strides into a column-major [`Matrix`], factored,
//!   and its results written row-major into the outputs. Small matrices run in parallel over
//!   the batch (each on one thread); big ones one after another, each parallelised inside faer.
//! - LU is LAPACK's `getrf`, zero pivots included; pivots are LAPACK's row swaps.
//! - NumPy's answers to bad input: a zero pivot in `solve` is "Singular matrix"; a Cholesky
//!   factorization of a matrix that is not positive definite (or not finite) fails; SVD and the
//!   general eigendecomposition of non-finite input fail; `eigh` of non-finite input gives
//!   NaNs. Nothing is left to an iteration that might not end.

use crate::strided::alloc;
use rayon::prelude::*;
use umx_core::device::OutSpec;
use umx_core::primitives::LinalgOp;
use umx_core::shape::numel;
use umx_core::{ArrayData, Buffer, Complex32, Dtype, Element, Error, Result};
use umx_lapack::{Complex64, Failure, Matrix, Real};

/// Matrices at most this big (rows × columns) run in parallel over the batch, one per
/// thread; bigger ones one at a time, with faer's own threads.
const BATCH_PARALLEL_SIZE: usize = 128 * 128;

pub fn eval(op: &LinalgOp, inputs: Vec<ArrayData>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    let dtype = inputs[0].dtype;
    // Square matrices of size 0 have empty results: nothing to hand to faer.
    let shape = &inputs[0].shape;
    let empty = shape[shape.len() - 1] == 0 || shape[shape.len() - 2] == 0;
    let square_op = matches!(
        op,
        LinalgOp::Solve
            | LinalgOp::SolveTriangular { .. }
            | LinalgOp::Cholesky { .. }
            | LinalgOp::Eig { .. }
            | LinalgOp::Eigh { .. }
    );
    if empty && square_op {
        return outputs
            .iter()
            .map(|o| {
                let buf = Buffer::zeroed(numel(&o.shape) * o.dtype.size())?;
                Ok(ArrayData::contiguous(buf, &o.shape, o.dtype))
            })
            .collect();
    }
    let results = match (dtype, op) {
        (Dtype::Float32, _) => run::<f32>(op, &inputs)?,
        (Dtype::Float64, _) => run::<f64>(op, &inputs)?,
        (Dtype::Complex64, LinalgOp::Eig { vectors }) => {
            let a = Matrices::<Complex32>::new(&inputs[0]);
            map_batch(&a, |b| eig_complex(&a, b, *vectors))?
        }
        (other, _) => {
            return Err(Error::Device(format!(
                "{}: the cpu has no kernel for {other} inputs",
                op.name()
            )));
        }
    };
    write_outputs(results, outputs)
}

/// One output of one matrix: its elements row-major, in the output's dtype.
enum Values {
    Real32(Vec<f32>),
    Real64(Vec<f64>),
    Complex(Vec<Complex32>),
    Index(Vec<u32>),
}

/// Element types `umx-lapack` factors and umx stores.
trait Float: Real + Element {
    fn values(v: Vec<Self>) -> Values;
}
impl Float for f32 {
    fn values(v: Vec<f32>) -> Values {
        Values::Real32(v)
    }
}
impl Float for f64 {
    fn values(v: Vec<f64>) -> Values {
        Values::Real64(v)
    }
}

/// The matrices of one input: where each starts in the buffer, and their strides.
struct Matrices<'a, T> {
    data: &'a [T],
    starts: Vec<isize>,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
}

impl<'a, T: Element> Matrices<'a, T> {
    fn new(d: &'a ArrayData) -> Matrices<'a, T> {
        let nd = d.shape.len();
        let nb = nd - 2;
        let count = numel(&d.shape[..nb]);
        let mut starts = Vec::with_capacity(count);
        let mut idx = vec![0usize; nb];
        for _ in 0..count {
            let off: isize = idx
                .iter()
                .zip(&d.strides[..nb])
                .map(|(&i, &s)| i as isize * s)
                .sum();
            starts.push(d.offset + off);
            for k in (0..nb).rev() {
                idx[k] += 1;
                if idx[k] < d.shape[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
        Matrices {
            data: d.buffer.as_slice::<T>(),
            starts,
            rows: d.shape[nd - 2],
            cols: d.shape[nd - 1],
            rs: d.strides[nd - 2],
            cs: d.strides[nd - 1],
        }
    }

    fn count(&self) -> usize {
        self.starts.len()
    }

    #[inline]
    fn get(&self, b: usize, i: usize, j: usize) -> T {
        self.data[(self.starts[b] + i as isize * self.rs + j as isize * self.cs) as usize]
    }

    /// Matrix `b`.
    fn matrix(&self, b: usize) -> Matrix<T> {
        Matrix::from_fn(self.rows, self.cols, |i, j| self.get(b, i, j))
    }

    /// The symmetric matrix held in the lower (`upper`: upper) triangle of matrix `b`, as its
    /// lower triangle (the rest zero).
    fn lower_from(&self, b: usize, upper: bool) -> Matrix<T> {
        let n = self.rows;
        Matrix::from_fn(n, n, |i, j| match (i >= j, upper) {
            (false, _) => T::default(),
            (true, false) => self.get(b, i, j),
            (true, true) => self.get(b, j, i),
        })
    }

    fn is_finite(&self, b: usize) -> bool {
        (0..self.rows).all(|i| (0..self.cols).all(|j| self.get(b, i, j).to_c64().is_finite()))
    }
}

/// `f` over every matrix of `a`'s batch: in parallel when the matrices are small.
fn map_batch<T: Element>(
    a: &Matrices<T>,
    f: impl Fn(usize) -> Result<Vec<Values>> + Sync + Send,
) -> Result<Vec<Vec<Values>>> {
    if a.count() > 1 && a.rows * a.cols <= BATCH_PARALLEL_SIZE {
        (0..a.count()).into_par_iter().map(f).collect()
    } else {
        (0..a.count()).map(f).collect()
    }
}

/// Whether one factorization of an `rows × cols` matrix uses faer's threads.
fn inner_par(rows: usize, cols: usize) -> bool {
    rows * cols > BATCH_PARALLEL_SIZE
}

/// Concatenates the per-matrix results into one contiguous buffer per output.
fn write_outputs(results: Vec<Vec<Values>>, outputs: &[OutSpec]) -> Result<Vec<ArrayData>> {
    outputs
        .iter()
        .enumerate()
        .map(|(k, spec)| {
            let n = numel(&spec.shape);
            let buffer = match spec.dtype {
                Dtype::Float32 => gather::<f32>(&results, k, n, |v| match v {
                    Values::Real32(v) => Some(v),
                    _ => None,
                })?,
                Dtype::Float64 => gather::<f64>(&results, k, n, |v| match v {
                    Values::Real64(v) => Some(v),
                    _ => None,
                })?,
                Dtype::Complex64 => gather::<Complex32>(&results, k, n, |v| match v {
                    Values::Complex(v) => Some(v),
                    _ => None,
                })?,
                Dtype::Uint32 => gather::<u32>(&results, k, n, |v| match v {
                    Values::Index(v) => Some(v),
                    _ => None,
                })?,
                other => {
                    return Err(Error::Device(format!(
                        "linalg: no cpu output of dtype {other}"
                    )));
                }
            };
            Ok(ArrayData::contiguous(buffer, &spec.shape, spec.dtype))
        })
        .collect()
}

fn gather<T: Element>(
    results: &[Vec<Values>],
    k: usize,
    n: usize,
    pick: impl Fn(&Values) -> Option<&Vec<T>>,
) -> Result<Buffer> {
    let mut buf = alloc::<T>(n)?;
    let out = buf.as_mut_slice::<T>();
    let mut at = 0;
    for r in results {
        let v = pick(&r[k]).ok_or_else(|| {
            Error::Device(format!("linalg: output {k} has the wrong element type"))
        })?;
        if at + v.len() > n {
            return Err(Error::Device(format!("linalg: output {k} overflows")));
        }
        out[at..at + v.len()].copy_from_slice(v);
        at += v.len();
    }
    if at != n {
        return Err(Error::Device(format!(
            "linalg: output {k} got {at} of {n} values"
        )));
    }
    Ok(buf)
}

fn run<T: Float>(op: &LinalgOp, inputs: &[ArrayData]) -> Result<Vec<Vec<Values>>> {
    let a = Matrices::<T>::new(&inputs[0]);
    match *op {
        LinalgOp::Solve => {
            let b = Matrices::<T>::new(&inputs[1]);
            map_batch(&a, |i| solve(&a, &b, i))
        }
        LinalgOp::SolveTriangular { upper } => {
            let b = Matrices::<T>::new(&inputs[1]);
            map_batch(&a, |i| solve_triangular(&a, &b, i, upper))
        }
        LinalgOp::Cholesky { upper } => map_batch(&a, |i| cholesky(&a, i, upper)),
        LinalgOp::Qr => map_batch(&a, |i| qr(&a, i)),
        LinalgOp::Svd { compute_uv } => map_batch(&a, |i| svd(&a, i, compute_uv)),
        LinalgOp::Eig { vectors } => map_batch(&a, |i| eig_real(&a, i, vectors)),
        LinalgOp::Eigh { upper, vectors } => map_batch(&a, |i| eigh(&a, i, upper, vectors)),
        LinalgOp::LuFactor => map_batch(&a, |i| lu_factor(&a, i)),
    }
}

// ---------------------------------------------------------------------------------------------
// The factorizations, one matrix of the batch each

fn lu_factor<T: Float>(a: &Matrices<T>, b: usize) -> Result<Vec<Values>> {
    let (m, n) = (a.rows, a.cols);
    let mut lu = a.matrix(b);
    let perm = T::lu(&mut lu, inner_par(m, n));
    let mut p = vec![0u32; m];
    for (i, &r) in perm.iter().enumerate() {
        p[r] = i as u32;
    }
    Ok(vec![
        T::values(lu.to_row_major()),
        Values::Index(umx_lapack::swaps_of(&perm, m.min(n))),
        Values::Index(p),
    ])
}

fn solve<T: Float>(a: &Matrices<T>, rhs: &Matrices<T>, b: usize) -> Result<Vec<Values>> {
    let n = a.rows;
    match T::solve(a.matrix(b), rhs.matrix(b), inner_par(n, n)) {
        Ok(x) => Ok(vec![T::values(x.to_row_major())]),
        Err(Failure::Singular { row }) => Err(Error::Invalid(format!(
            "solve: Singular matrix (the LU factorization of matrix {b} of the batch has a zero \
             pivot at row {row})"
        ))),
        Err(other) => Err(Error::Invalid(format!(
            "solve: {other:?} (matrix {b} of the batch)"
        ))),
    }
}

fn solve_triangular<T: Float>(
    a: &Matrices<T>,
    rhs: &Matrices<T>,
    b: usize,
    upper: bool,
) -> Result<Vec<Values>> {
    let n = a.rows;
    let x = T::solve_triangular(a.matrix(b), rhs.matrix(b), upper, inner_par(n, n));
    Ok(vec![T::values(x.to_row_major())])
}

fn cholesky<T: Float>(a: &Matrices<T>, b: usize, upper: bool) -> Result<Vec<Values>> {
    let not_pd = || {
        Error::Invalid(format!(
            "cholesky: Matrix is not positive definite (matrix {b} of the batch)"
        ))
    };
    if !a.is_finite(b) {
        return Err(not_pd());
    }
    let l = T::cholesky(a.lower_from(b, upper)).map_err(|_| not_pd())?;
    // The upper factor is the transpose of the lower one.
    let v = if upper {
        l.to_col_major()
    } else {
        l.to_row_major()
    };
    Ok(vec![T::values(v)])
}

fn qr<T: Float>(a: &Matrices<T>, b: usize) -> Result<Vec<Values>> {
    let (q, r) = T::qr(a.matrix(b), inner_par(a.rows, a.cols));
    Ok(vec![
        T::values(q.to_row_major()),
        T::values(r.to_row_major()),
    ])
}

fn svd<T: Float>(a: &Matrices<T>, b: usize, compute_uv: bool) -> Result<Vec<Values>> {
    let failed = || {
        Error::Invalid(format!(
            "svd: SVD did not converge (matrix {b} of the batch)"
        ))
    };
    if !a.is_finite(b) {
        return Err(failed());
    }
    let f = T::svd(a.matrix(b), compute_uv).map_err(|_| failed())?;
    Ok(if compute_uv {
        // Vt's rows are V's columns.
        vec![
            T::values(f.u.to_row_major()),
            T::values(f.s),
            T::values(f.v.to_col_major()),
        ]
    } else {
        vec![T::values(f.s)]
    })
}

fn eigh<T: Float>(a: &Matrices<T>, b: usize, upper: bool, vectors: bool) -> Result<Vec<Values>> {
    let n = a.rows;
    if !a.is_finite(b) {
        let nan = <T as Element>::from_f64(f64::NAN);
        let mut out = vec![T::values(vec![nan; n])];
        if vectors {
            out.push(T::values(vec![nan; n * n]));
        }
        return Ok(out);
    }
    let f = T::eigh(a.lower_from(b, upper), vectors)
        .map_err(|_| Error::Invalid(format!("eigh: no convergence (matrix {b} of the batch)")))?;
    let mut out = vec![T::values(f.values)];
    if let Some(v) = f.vectors {
        out.push(T::values(v.to_row_major()));
    }
    Ok(out)
}

/// Eigenvalues and unit-norm eigenvectors as complex64.
fn eig_values(e: umx_lapack::Eigen<Complex64, Complex64>) -> Vec<Values> {
    let narrow = |z: Complex64| Complex32::new(z.re as f32, z.im as f32);
    let mut out = vec![Values::Complex(e.values.into_iter().map(narrow).collect())];
    if let Some(v) = e.vectors {
        let n = v.rows;
        let mut m = vec![Complex32::new(0.0, 0.0); n * n];
        for j in 0..n {
            let norm = (0..n).map(|i| v.get(i, j).norm_sqr()).sum::<f64>().sqrt();
            let scale = if norm > 0.0 { 1.0 / norm } else { 1.0 };
            for i in 0..n {
                m[i * n + j] = narrow(v.get(i, j) * scale);
            }
        }
        out.push(Values::Complex(m));
    }
    out
}

fn eig_failed(b: usize, finite: bool) -> Error {
    Error::Invalid(if finite {
        format!("eig: Eigenvalues did not converge (matrix {b} of the batch)")
    } else {
        format!("eig: Array must not contain infs or NaNs (matrix {b} of the batch)")
    })
}

fn eig_real<T: Float>(a: &Matrices<T>, b: usize, vectors: bool) -> Result<Vec<Values>> {
    if !a.is_finite(b) {
        return Err(eig_failed(b, false));
    }
    let e = T::eig(a.matrix(b), vectors).map_err(|_| eig_failed(b, true))?;
    Ok(eig_values(e))
}

fn eig_complex(a: &Matrices<Complex32>, b: usize, vectors: bool) -> Result<Vec<Values>> {
    if !a.is_finite(b) {
        return Err(eig_failed(b, false));
    }
    let e = umx_lapack::eig_complex32(a.matrix(b), vectors).map_err(|_| eig_failed(b, true))?;
    Ok(eig_values(e))
}
