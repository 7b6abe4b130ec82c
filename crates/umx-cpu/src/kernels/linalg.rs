//! CPU kernels of the linear-algebra primitives: faer's factorizations, one matrix of the batch
//! at a time.
//!
//! - Each matrix is read from the input's strides into a faer matrix, factored, and its
//!   results written row-major into the outputs. Small matrices run in parallel over the batch
//!   (each on one thread); big ones one after another, each parallelised inside faer.
//! - LU follows LAPACK's `getrf` exactly, zero pivots included: faer's partial-pivoting LU
//!   divides by an exactly zero pivot, so where one occurs the column of `L` is set to zero and
//!   the rest is factored afresh from the Schur complement, as `getrf` leaves it. Pivots are
//!   LAPACK's row swaps.
//! - NumPy's answers to bad input: a zero pivot in `solve` is "Singular matrix"; a Cholesky
//!   factorization of a matrix that is not positive definite (or not finite) fails; SVD and the
//!   general eigendecomposition of non-finite input fail; `eigh` of non-finite input gives
//!   NaNs. Nothing is left to an iteration that might not end.

use crate::strided::alloc;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::lu::partial_pivoting::factor::{lu_in_place, lu_in_place_scratch};
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_unit_lower_triangular_in_place,
    solve_upper_triangular_in_place,
};
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::traits::RealField;
use faer::{Accum, Mat, MatMut, Par, Side};
use rayon::prelude::*;
use umx_core::device::OutSpec;
use umx_core::primitives::LinalgOp;
use umx_core::shape::numel;
use umx_core::{ArrayData, Buffer, Complex32, Dtype, Element, Error, Result};

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

/// Element types faer factors and umx stores.
trait Real: RealField + Element + Copy {
    fn values(v: Vec<Self>) -> Values;
}
impl Real for f32 {
    fn values(v: Vec<f32>) -> Values {
        Values::Real32(v)
    }
}
impl Real for f64 {
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

    /// Matrix `b` as a faer matrix (column-major).
    fn matrix(&self, b: usize) -> Mat<T>
    where
        T: faer::traits::ComplexField,
    {
        Mat::from_fn(self.rows, self.cols, |i, j| self.get(b, i, j))
    }

    /// The symmetric matrix held in the lower (`upper`: upper) triangle of matrix `b`, as its
    /// lower triangle (the rest zero).
    fn lower_from(&self, b: usize, upper: bool) -> Mat<T>
    where
        T: faer::traits::ComplexField,
    {
        let n = self.rows;
        Mat::from_fn(n, n, |i, j| match (i >= j, upper) {
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

/// The parallelism inside one factorization of an `rows × cols` matrix.
fn inner_par(rows: usize, cols: usize) -> Par {
    if rows * cols <= BATCH_PARALLEL_SIZE {
        Par::Seq
    } else {
        Par::rayon(0)
    }
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

/// A faer matrix's elements row-major.
fn row_major<T: Copy>(m: faer::MatRef<'_, T>) -> Vec<T> {
    let mut v = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            v.push(m[(i, j)]);
        }
    }
    v
}

/// The transpose of a faer matrix's elements, row-major (its columns, one after another).
fn col_major<T: Copy>(m: faer::MatRef<'_, T>) -> Vec<T> {
    row_major(m.transpose())
}

fn run<T: Real>(op: &LinalgOp, inputs: &[ArrayData]) -> Result<Vec<Vec<Values>>> {
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
// LU

/// LU with partial pivoting of `a` in place, with LAPACK's `getrf` results (see the module's
/// docs). Returns the row order: row `i` of `L U` is row `perm[i]` of the input.
fn lu_lapack<T: Real>(mut a: MatMut<'_, T>, par: Par) -> Vec<usize> {
    let (m, n) = a.shape();
    let k = m.min(n);
    let input = a.to_owned();
    let mut perm: Vec<usize> = (0..m).collect();
    let mut start = 0;
    while start < k {
        let (ms, ns) = (m - start, n - start);
        let mut fwd = vec![0usize; ms];
        let mut bwd = vec![0usize; ms];
        let mut mem = MemBuffer::new(lu_in_place_scratch::<usize, T>(
            ms,
            ns,
            par,
            Default::default(),
        ));
        lu_in_place(
            a.rb_mut().submatrix_mut(start, start, ms, ns),
            &mut fwd,
            &mut bwd,
            par,
            MemStack::new(&mut mem),
            Default::default(),
        );
        // The rows of the earlier rounds' columns of L move with the new row order.
        let old = perm[start..].to_vec();
        for i in 0..ms {
            perm[start + i] = old[fwd[i]];
        }
        if start > 0 {
            let left = a.rb().submatrix(start, 0, ms, start).to_owned();
            for i in 0..ms {
                for j in 0..start {
                    a[(start + i, j)] = left[(fwd[i], j)];
                }
            }
        }
        let zero = T::default();
        let Some(j) = (0..ms.min(ns)).find(|&j| a[(start + j, start + j)] == zero) else {
            break;
        };
        let p = start + j;
        if p + 1 >= m {
            break;
        }
        // getrf does not scale a zero column: L's column p is zero, and the block below and
        // right of the pivot is the Schur complement of the first p columns.
        for i in p + 1..m {
            a[(i, p)] = zero;
        }
        if p + 1 < n {
            let mut schur = Mat::from_fn(m - p - 1, n - p - 1, |i, c| {
                input[(perm[p + 1 + i], p + 1 + c)]
            });
            if p > 0 {
                let l = a.rb().submatrix(p + 1, 0, m - p - 1, p);
                let u = a.rb().submatrix(0, p + 1, p, n - p - 1);
                matmul(
                    schur.as_mut(),
                    Accum::Add,
                    l,
                    u,
                    <T as Element>::from_f64(-1.0),
                    par,
                );
            }
            a.rb_mut()
                .submatrix_mut(p + 1, p + 1, m - p - 1, n - p - 1)
                .copy_from(&schur);
        }
        start = p + 1;
    }
    perm
}

/// LAPACK's row swaps (`ipiv`, 0-based) that produce the row order `perm`.
fn swaps_of(perm: &[usize], k: usize) -> Vec<u32> {
    let m = perm.len();
    let mut at: Vec<usize> = (0..m).collect(); // at[r]: where original row r is now
    let mut row: Vec<usize> = (0..m).collect(); // row[i]: the original row now at i
    (0..k)
        .map(|i| {
            let j = at[perm[i]];
            let (ri, rj) = (row[i], row[j]);
            row.swap(i, j);
            at[ri] = j;
            at[rj] = i;
            j as u32
        })
        .collect()
}

fn lu_factor<T: Real>(a: &Matrices<T>, b: usize) -> Result<Vec<Values>> {
    let (m, n) = (a.rows, a.cols);
    let mut lu = a.matrix(b);
    let perm = lu_lapack(lu.as_mut(), inner_par(m, n));
    let mut p = vec![0u32; m];
    for (i, &r) in perm.iter().enumerate() {
        p[r] = i as u32;
    }
    Ok(vec![
        T::values(row_major(lu.as_ref())),
        Values::Index(swaps_of(&perm, m.min(n))),
        Values::Index(p),
    ])
}

fn solve<T: Real>(a: &Matrices<T>, rhs: &Matrices<T>, b: usize) -> Result<Vec<Values>> {
    let n = a.rows;
    let par = inner_par(n, n);
    let mut lu = a.matrix(b);
    let perm = lu_lapack(lu.as_mut(), par);
    let zero = T::default();
    if let Some(i) = (0..n).find(|&i| lu[(i, i)] == zero) {
        return Err(Error::Invalid(format!(
            "solve: Singular matrix (the LU factorization of matrix {b} of the batch has a zero \
             pivot at row {i})"
        )));
    }
    let mut x = Mat::from_fn(n, rhs.cols, |i, j| rhs.get(b, perm[i], j));
    solve_unit_lower_triangular_in_place(lu.as_ref(), x.as_mut(), par);
    solve_upper_triangular_in_place(lu.as_ref(), x.as_mut(), par);
    Ok(vec![T::values(row_major(x.as_ref()))])
}

fn solve_triangular<T: Real>(
    a: &Matrices<T>,
    rhs: &Matrices<T>,
    b: usize,
    upper: bool,
) -> Result<Vec<Values>> {
    let n = a.rows;
    let par = inner_par(n, n);
    let zero = T::default();
    let t = Mat::from_fn(n, n, |i, j| {
        if (upper && i <= j) || (!upper && i >= j) {
            a.get(b, i, j)
        } else {
            zero
        }
    });
    let mut x = rhs.matrix(b);
    if upper {
        solve_upper_triangular_in_place(t.as_ref(), x.as_mut(), par);
    } else {
        solve_lower_triangular_in_place(t.as_ref(), x.as_mut(), par);
    }
    Ok(vec![T::values(row_major(x.as_ref()))])
}

// ---------------------------------------------------------------------------------------------
// Cholesky, QR, SVD, eigendecompositions

fn cholesky<T: Real>(a: &Matrices<T>, b: usize, upper: bool) -> Result<Vec<Values>> {
    let n = a.rows;
    let not_pd = || {
        Error::Invalid(format!(
            "cholesky: Matrix is not positive definite (matrix {b} of the batch)"
        ))
    };
    if !a.is_finite(b) {
        return Err(not_pd());
    }
    let s = a.lower_from(b, upper);
    let llt = s.llt(Side::Lower).map_err(|_| not_pd())?;
    let l = llt.L();
    let zero = T::default();
    let lower = Mat::from_fn(n, n, |i, j| if i >= j { l[(i, j)] } else { zero });
    // The upper factor is the transpose of the lower one.
    let v = if upper {
        col_major(lower.as_ref())
    } else {
        row_major(lower.as_ref())
    };
    Ok(vec![T::values(v)])
}

fn qr<T: Real>(a: &Matrices<T>, b: usize) -> Result<Vec<Values>> {
    let (m, n) = (a.rows, a.cols);
    let k = m.min(n);
    if k == 0 {
        return Ok(vec![T::values(Vec::new()), T::values(Vec::new())]);
    }
    let f = a.matrix(b).qr();
    let q = f.compute_thin_Q();
    let r = f.thin_R();
    let zero = T::default();
    let r = Mat::from_fn(k, n, |i, j| if i <= j { r[(i, j)] } else { zero });
    Ok(vec![
        T::values(row_major(q.as_ref())),
        T::values(row_major(r.as_ref())),
    ])
}

fn svd<T: Real>(a: &Matrices<T>, b: usize, compute_uv: bool) -> Result<Vec<Values>> {
    let (m, n) = (a.rows, a.cols);
    let failed = || {
        Error::Invalid(format!(
            "svd: SVD did not converge (matrix {b} of the batch)"
        ))
    };
    if !a.is_finite(b) {
        return Err(failed());
    }
    if m.min(n) == 0 {
        let eye = |d: usize| row_major(Mat::<T>::identity(d, d).as_ref());
        return Ok(if compute_uv {
            vec![T::values(eye(m)), T::values(Vec::new()), T::values(eye(n))]
        } else {
            vec![T::values(Vec::new())]
        });
    }
    let mat = a.matrix(b);
    if !compute_uv {
        let s = mat.singular_values().map_err(|_| failed())?;
        return Ok(vec![T::values(s)]);
    }
    let f = mat.svd().map_err(|_| failed())?;
    let s: Vec<T> = (0..m.min(n)).map(|i| f.S()[i]).collect();
    Ok(vec![
        T::values(row_major(f.U())),
        T::values(s),
        // Vt's rows are V's columns.
        T::values(col_major(f.V())),
    ])
}

fn eigh<T: Real>(a: &Matrices<T>, b: usize, upper: bool, vectors: bool) -> Result<Vec<Values>> {
    let n = a.rows;
    let failed = || Error::Invalid(format!("eigh: no convergence (matrix {b} of the batch)"));
    if !a.is_finite(b) {
        let nan = <T as Element>::from_f64(f64::NAN);
        let mut out = vec![T::values(vec![nan; n])];
        if vectors {
            out.push(T::values(vec![nan; n * n]));
        }
        return Ok(out);
    }
    let s = a.lower_from(b, upper);
    if !vectors {
        let w = s
            .self_adjoint_eigenvalues(Side::Lower)
            .map_err(|_| failed())?;
        return Ok(vec![T::values(w)]);
    }
    let f = s.self_adjoint_eigen(Side::Lower).map_err(|_| failed())?;
    let w: Vec<T> = (0..n).map(|i| f.S()[i]).collect();
    Ok(vec![T::values(w), T::values(row_major(f.U()))])
}

/// Element `(i, j)` of an `n × n` complex matrix, as (real, imaginary).
type ComplexEntries<'a> = (usize, &'a dyn Fn(usize, usize) -> (f64, f64));

/// Eigenvalues and (`vectors`) unit-norm eigenvectors as complex64, from faer's complex
/// results.
fn eig_values(w: impl Iterator<Item = (f64, f64)>, v: Option<ComplexEntries>) -> Vec<Values> {
    let c = |(re, im): (f64, f64)| Complex32::new(re as f32, im as f32);
    let mut out = vec![Values::Complex(w.map(c).collect())];
    if let Some((n, get)) = v {
        let mut m = vec![Complex32::new(0.0, 0.0); n * n];
        for j in 0..n {
            let norm = (0..n)
                .map(|i| {
                    let (re, im) = get(i, j);
                    re * re + im * im
                })
                .sum::<f64>()
                .sqrt();
            let scale = if norm > 0.0 { 1.0 / norm } else { 1.0 };
            for i in 0..n {
                let (re, im) = get(i, j);
                m[i * n + j] = c((re * scale, im * scale));
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

fn eig_real<T: Real>(a: &Matrices<T>, b: usize, vectors: bool) -> Result<Vec<Values>> {
    let n = a.rows;
    if !a.is_finite(b) {
        return Err(eig_failed(b, false));
    }
    let mat = a.matrix(b);
    let pair = |z: &faer::complex::Complex<T>| (Element::to_f64(z.re), Element::to_f64(z.im));
    if !vectors {
        let w = mat.eigenvalues().map_err(|_| eig_failed(b, true))?;
        return Ok(eig_values(w.iter().map(pair), None));
    }
    let f = faer::linalg::solvers::Eigen::new_from_real(mat.as_ref())
        .map_err(|_| eig_failed(b, true))?;
    let (s, u) = (f.S(), f.U());
    let get = |i: usize, j: usize| pair(&u[(i, j)]);
    Ok(eig_values((0..n).map(|i| pair(&s[i])), Some((n, &get))))
}

fn eig_complex(a: &Matrices<Complex32>, b: usize, vectors: bool) -> Result<Vec<Values>> {
    let n = a.rows;
    if !a.is_finite(b) {
        return Err(eig_failed(b, false));
    }
    let mat = a.matrix(b);
    let pair = |z: &Complex32| (z.re as f64, z.im as f64);
    if !vectors {
        let w = mat.eigenvalues().map_err(|_| eig_failed(b, true))?;
        return Ok(eig_values(w.iter().map(pair), None));
    }
    let f = faer::linalg::solvers::Eigen::new(mat.as_ref()).map_err(|_| eig_failed(b, true))?;
    let (s, u) = (f.S(), f.U());
    let get = |i: usize, j: usize| pair(&u[(i, j)]);
    Ok(eig_values((0..n).map(|i| pair(&s[i])), Some((n, &get))))
}
