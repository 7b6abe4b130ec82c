//! umx-lapack: the dense factorizations of `umx::linalg` on the CPU, over faer, one column-major
//! matrix at a time.
//!
//! Nothing here knows umx's arrays: the CPU backend (`umx-cpu`) reads each matrix of a batch
//! into a [`Matrix`], calls a [`Real`] method and writes the results back. Keeping faer's
//! generic code behind this concrete interface means it is compiled once, in this crate, and
//! not again whenever `umx-core` changes.
//!
//! - LU follows LAPACK's `getrf` exactly, zero pivots included: faer's partial-pivoting LU
//!   divides by an exactly zero pivot, so where one occurs the column of `L` is set to zero and
//!   the rest is factored afresh from the Schur complement, as `getrf` leaves it.
//! - Failures are NumPy's: a zero pivot in [`Real::solve`], a Cholesky factorization of a
//!   matrix that is not positive definite, an SVD or eigendecomposition that does not
//!   converge. Callers check finiteness first where NumPy does.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::lu::partial_pivoting::factor::{lu_in_place, lu_in_place_scratch};
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_unit_lower_triangular_in_place,
    solve_upper_triangular_in_place,
};
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::traits::{ComplexField, RealField};
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};

pub use num_complex::{Complex32, Complex64};

/// A dense matrix, column-major: element `(i, j)` is `data[i + j * rows]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix<T> {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<T>,
}

impl<T: Copy> Matrix<T> {
    /// The `rows × cols` matrix whose element `(i, j)` is `f(i, j)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> T) -> Matrix<T> {
        let mut data = Vec::with_capacity(rows * cols);
        for j in 0..cols {
            for i in 0..rows {
                data.push(f(i, j));
            }
        }
        Matrix { rows, cols, data }
    }

    /// Element `(i, j)`.
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> T {
        self.data[i + j * self.rows]
    }

    /// The elements row-major.
    pub fn to_row_major(&self) -> Vec<T> {
        let mut v = Vec::with_capacity(self.data.len());
        for i in 0..self.rows {
            for j in 0..self.cols {
                v.push(self.get(i, j));
            }
        }
        v
    }

    /// The transpose's elements row-major (the columns, one after another).
    pub fn to_col_major(&self) -> Vec<T> {
        self.data.clone()
    }

    fn faer(&self) -> MatRef<'_, T> {
        MatRef::from_column_major_slice(&self.data, self.rows, self.cols)
    }

    fn faer_mut(&mut self) -> MatMut<'_, T> {
        MatMut::from_column_major_slice_mut(&mut self.data, self.rows, self.cols)
    }
}

/// The parts of an SVD `A = U diag(S) Vᵀ`, thin in `S` and full in `U` and `V`.
#[derive(Clone, Debug)]
pub struct Svd<T> {
    pub u: Matrix<T>,
    pub s: Vec<T>,
    pub v: Matrix<T>,
}

/// Eigenvalues and (where asked for) eigenvectors, one per column.
#[derive(Clone, Debug)]
pub struct Eigen<W, V> {
    pub values: Vec<W>,
    pub vectors: Option<Matrix<V>>,
}

/// Why a factorization gave no result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// LU met an exactly zero pivot at this row.
    Singular { row: usize },
    /// Cholesky met a pivot that is not positive.
    NotPositiveDefinite,
    /// The iteration of an SVD or eigendecomposition did not converge.
    NoConvergence,
}

/// The real element types the factorizations run in: `f32` and `f64`.
///
/// `parallel` lets faer use rayon's threads inside one factorization (for big matrices; small
/// ones are best run one per thread by the caller).
pub trait Real: Copy + Default + PartialEq + Send + Sync + 'static {
    /// LU with partial pivoting in place, with LAPACK's `getrf` results. Returns the row
    /// order: row `i` of `L U` is row `perm[i]` of the input.
    fn lu(a: &mut Matrix<Self>, parallel: bool) -> Vec<usize>;
    /// `X` with `A X = B`, for square `a`.
    fn solve(a: Matrix<Self>, b: Matrix<Self>, parallel: bool) -> Result<Matrix<Self>, Failure>;
    /// `X` with `T X = B`, `T` the upper (`upper`) or lower triangle of `t`.
    fn solve_triangular(
        t: Matrix<Self>,
        b: Matrix<Self>,
        upper: bool,
        parallel: bool,
    ) -> Matrix<Self>;
    /// The lower Cholesky factor of the symmetric matrix whose lower triangle `lower` holds.
    fn cholesky(lower: Matrix<Self>) -> Result<Matrix<Self>, Failure>;
    /// The thin QR factorization: `Q` is `m × k` and `R` is `k × n`, `k = min(m, n)`.
    fn qr(a: Matrix<Self>, parallel: bool) -> (Matrix<Self>, Matrix<Self>);
    /// The full SVD (`compute_uv`), or the singular values only (then `u` and `v` are empty).
    fn svd(a: Matrix<Self>, compute_uv: bool) -> Result<Svd<Self>, Failure>;
    /// Eigenvalues (ascending) and, with `vectors`, orthonormal eigenvectors of the symmetric
    /// matrix whose lower triangle `lower` holds.
    fn eigh(lower: Matrix<Self>, vectors: bool) -> Result<Eigen<Self, Self>, Failure>;
    /// Eigenvalues and, with `vectors`, eigenvectors of a general square matrix, complex.
    fn eig(a: Matrix<Self>, vectors: bool) -> Result<Eigen<Complex64, Complex64>, Failure>;
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            fn lu(a: &mut Matrix<$t>, parallel: bool) -> Vec<usize> {
                lu_lapack(a.faer_mut(), par(parallel), -1.0)
            }
            fn solve(a: Matrix<$t>, b: Matrix<$t>, parallel: bool) -> Result<Matrix<$t>, Failure> {
                solve(a, b, par(parallel), -1.0)
            }
            fn solve_triangular(
                t: Matrix<$t>,
                b: Matrix<$t>,
                upper: bool,
                parallel: bool,
            ) -> Matrix<$t> {
                solve_triangular(t, b, upper, par(parallel))
            }
            fn cholesky(lower: Matrix<$t>) -> Result<Matrix<$t>, Failure> {
                cholesky(lower)
            }
            fn qr(a: Matrix<$t>, parallel: bool) -> (Matrix<$t>, Matrix<$t>) {
                qr(a, par(parallel))
            }
            fn svd(a: Matrix<$t>, compute_uv: bool) -> Result<Svd<$t>, Failure> {
                svd(a, compute_uv)
            }
            fn eigh(lower: Matrix<$t>, vectors: bool) -> Result<Eigen<$t, $t>, Failure> {
                eigh(lower, vectors)
            }
            fn eig(a: Matrix<$t>, vectors: bool) -> Result<Eigen<Complex64, Complex64>, Failure> {
                let wide = |z: &num_complex::Complex<$t>| Complex64::new(z.re as f64, z.im as f64);
                if !vectors {
                    let w = a.faer().eigenvalues().map_err(|_| Failure::NoConvergence)?;
                    return Ok(Eigen {
                        values: w.iter().map(wide).collect(),
                        vectors: None,
                    });
                }
                let f = faer::linalg::solvers::Eigen::new_from_real(a.faer())
                    .map_err(|_| Failure::NoConvergence)?;
                Ok(eigen_complex(a.rows, f.S(), f.U(), wide))
            }
        }
    };
}
real!(f32);
real!(f64);

/// Eigenvalues and, with `vectors`, eigenvectors of a general complex64 matrix.
pub fn eig_complex32(
    a: Matrix<Complex32>,
    vectors: bool,
) -> Result<Eigen<Complex64, Complex64>, Failure> {
    let wide = |z: &Complex32| Complex64::new(z.re as f64, z.im as f64);
    if !vectors {
        let w = a.faer().eigenvalues().map_err(|_| Failure::NoConvergence)?;
        return Ok(Eigen {
            values: w.iter().map(wide).collect(),
            vectors: None,
        });
    }
    let f = faer::linalg::solvers::Eigen::new(a.faer()).map_err(|_| Failure::NoConvergence)?;
    Ok(eigen_complex(a.rows, f.S(), f.U(), wide))
}

fn par(parallel: bool) -> Par {
    if parallel { Par::rayon(0) } else { Par::Seq }
}

fn from_faer<T: Copy>(m: MatRef<'_, T>) -> Matrix<T> {
    Matrix::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)])
}

/// faer's complex eigendecomposition, widened to complex128.
fn eigen_complex<C: Copy>(
    n: usize,
    s: faer::diag::DiagRef<'_, C>,
    u: MatRef<'_, C>,
    wide: impl Fn(&C) -> Complex64,
) -> Eigen<Complex64, Complex64> {
    Eigen {
        values: (0..n).map(|i| wide(&s[i])).collect(),
        vectors: Some(Matrix::from_fn(n, n, |i, j| wide(&u[(i, j)]))),
    }
}

// ---------------------------------------------------------------------------------------------
// LU

/// LU with partial pivoting of `a` in place, with LAPACK's `getrf` results (see the crate's
/// docs). Returns the row order: row `i` of `L U` is row `perm[i]` of the input.
fn lu_lapack<T: RealField + Copy + Default>(
    mut a: MatMut<'_, T>,
    par: Par,
    neg_one: T,
) -> Vec<usize> {
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
                matmul(schur.as_mut(), Accum::Add, l, u, neg_one, par);
            }
            a.rb_mut()
                .submatrix_mut(p + 1, p + 1, m - p - 1, n - p - 1)
                .copy_from(&schur);
        }
        start = p + 1;
    }
    perm
}

/// LAPACK's row swaps (`ipiv`, 0-based) that produce the row order `perm` in its first `k`
/// rows.
pub fn swaps_of(perm: &[usize], k: usize) -> Vec<u32> {
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

fn solve<T: RealField + Copy + Default>(
    mut a: Matrix<T>,
    b: Matrix<T>,
    par: Par,
    neg_one: T,
) -> Result<Matrix<T>, Failure> {
    let n = a.rows;
    let perm = lu_lapack(a.faer_mut(), par, neg_one);
    let zero = T::default();
    if let Some(row) = (0..n).find(|&i| a.get(i, i) == zero) {
        return Err(Failure::Singular { row });
    }
    let mut x = Matrix::from_fn(n, b.cols, |i, j| b.get(perm[i], j));
    let lu = a.faer();
    solve_unit_lower_triangular_in_place(lu, x.faer_mut(), par);
    solve_upper_triangular_in_place(lu, x.faer_mut(), par);
    Ok(x)
}

fn solve_triangular<T: RealField + Copy + Default>(
    t: Matrix<T>,
    mut b: Matrix<T>,
    upper: bool,
    par: Par,
) -> Matrix<T> {
    let n = t.rows;
    let zero = T::default();
    let t = Matrix::from_fn(n, n, |i, j| {
        if (upper && i <= j) || (!upper && i >= j) {
            t.get(i, j)
        } else {
            zero
        }
    });
    if upper {
        solve_upper_triangular_in_place(t.faer(), b.faer_mut(), par);
    } else {
        solve_lower_triangular_in_place(t.faer(), b.faer_mut(), par);
    }
    b
}

// ---------------------------------------------------------------------------------------------
// Cholesky, QR, SVD, eigendecompositions

fn cholesky<T: RealField + Copy + Default>(lower: Matrix<T>) -> Result<Matrix<T>, Failure> {
    let n = lower.rows;
    let llt = lower
        .faer()
        .llt(Side::Lower)
        .map_err(|_| Failure::NotPositiveDefinite)?;
    let l = llt.L();
    let zero = T::default();
    Ok(Matrix::from_fn(
        n,
        n,
        |i, j| if i >= j { l[(i, j)] } else { zero },
    ))
}

/// Householder QR as faer's `Qr` computes it, with the parallelism chosen here (faer's solver
/// types use the global setting, which would spread each small matrix of a batch that already
/// runs in parallel over every thread again).
fn qr<T: RealField + Copy + Default>(a: Matrix<T>, par: Par) -> (Matrix<T>, Matrix<T>) {
    use faer::linalg::householder::{
        apply_block_householder_sequence_on_the_left_in_place_scratch as apply_scratch,
        apply_block_householder_sequence_on_the_left_in_place_with_conj as apply,
    };
    use faer::linalg::qr::no_pivoting::factor::{
        qr_in_place, qr_in_place_scratch, recommended_block_size,
    };
    let (m, n) = (a.rows, a.cols);
    let k = m.min(n);
    if k == 0 {
        return (
            Matrix::from_fn(m, 0, |_, _| T::default()),
            Matrix::from_fn(0, n, |_, _| T::default()),
        );
    }
    let mut qr = a.faer().to_owned();
    let block = recommended_block_size::<T>(m, n);
    let mut coeff = Mat::<T>::zeros(block, k);
    let scratch = qr_in_place_scratch::<T>(m, n, block, par, Default::default())
        .or(apply_scratch::<T>(m, block, k));
    let mut mem = MemBuffer::new(scratch);
    qr_in_place(
        qr.as_mut(),
        coeff.as_mut(),
        par,
        MemStack::new(&mut mem),
        Default::default(),
    );
    let zero = T::default();
    let r = Matrix::from_fn(k, n, |i, j| if i <= j { qr[(i, j)] } else { zero });
    // The reflectors: the strictly lower part of the first k columns, a unit diagonal.
    let one = T::one_impl();
    let basis = Mat::<T>::from_fn(m, k, |i, j| match i.cmp(&j) {
        std::cmp::Ordering::Greater => qr[(i, j)],
        std::cmp::Ordering::Equal => one,
        std::cmp::Ordering::Less => zero,
    });
    let mut q = Mat::<T>::identity(m, k);
    apply(
        basis.as_ref(),
        coeff.as_ref(),
        faer::Conj::No,
        q.as_mut(),
        par,
        MemStack::new(&mut mem),
    );
    (from_faer(q.as_ref()), r)
}

fn identity<T: ComplexField + Copy>(d: usize) -> Matrix<T> {
    from_faer(Mat::<T>::identity(d, d).as_ref())
}

fn svd<T: RealField + Copy + Default>(a: Matrix<T>, compute_uv: bool) -> Result<Svd<T>, Failure> {
    let (m, n) = (a.rows, a.cols);
    let empty = || Matrix {
        rows: 0,
        cols: 0,
        data: Vec::new(),
    };
    if m.min(n) == 0 {
        let (u, v) = if compute_uv {
            (identity(m), identity(n))
        } else {
            (empty(), empty())
        };
        return Ok(Svd {
            u,
            s: Vec::new(),
            v,
        });
    }
    if !compute_uv {
        let s = a
            .faer()
            .singular_values()
            .map_err(|_| Failure::NoConvergence)?;
        return Ok(Svd {
            u: empty(),
            s,
            v: empty(),
        });
    }
    let f = a.faer().svd().map_err(|_| Failure::NoConvergence)?;
    Ok(Svd {
        u: from_faer(f.U()),
        s: (0..m.min(n)).map(|i| f.S()[i]).collect(),
        v: from_faer(f.V()),
    })
}

fn eigh<T: RealField + Copy + Default>(
    lower: Matrix<T>,
    vectors: bool,
) -> Result<Eigen<T, T>, Failure> {
    let n = lower.rows;
    if !vectors {
        let values = lower
            .faer()
            .self_adjoint_eigenvalues(Side::Lower)
            .map_err(|_| Failure::NoConvergence)?;
        return Ok(Eigen {
            values,
            vectors: None,
        });
    }
    let f = lower
        .faer()
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| Failure::NoConvergence)?;
    Ok(Eigen {
        values: (0..n).map(|i| f.S()[i]).collect(),
        vectors: Some(from_faer(f.U())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_and_lu_match_lapack() {
        // [[0, 1], [2, 3]]: getrf swaps the rows.
        let a = Matrix::from_fn(2, 2, |i, j| [[0.0, 1.0], [2.0, 3.0]][i][j]);
        let mut lu = a.clone();
        let perm = f64::lu(&mut lu, false);
        assert_eq!(perm, vec![1, 0]);
        assert_eq!(swaps_of(&perm, 2), vec![1, 1]);
        assert_eq!(lu.to_row_major(), vec![2.0, 3.0, 0.0, 1.0]);
        let b = Matrix::from_fn(2, 1, |i, _| [1.0, 5.0][i]);
        let x = f64::solve(a, b, false).unwrap();
        assert_eq!(x.data, vec![1.0, 1.0]);
        let singular = Matrix::from_fn(2, 2, |_, _| 1.0f32);
        let rhs = Matrix::from_fn(2, 1, |_, _| 1.0f32);
        assert_eq!(
            f32::solve(singular, rhs, false),
            Err(Failure::Singular { row: 1 })
        );
    }

    #[test]
    fn factorizations_reconstruct() {
        let a = Matrix::from_fn(3, 3, |i, j| {
            if i == j {
                4.0
            } else {
                1.0 / (1 + i + j) as f64
            }
        });
        let l = f64::cholesky(a.clone()).unwrap();
        let llt = |i: usize, j: usize| (0..3).map(|k| l.get(i, k) * l.get(j, k)).sum::<f64>();
        let (q, r) = f64::qr(a.clone(), false);
        let qr = |i: usize, j: usize| (0..3).map(|k| q.get(i, k) * r.get(k, j)).sum::<f64>();
        // The same factors with faer's threads.
        assert_eq!(f64::qr(a.clone(), true), (q.clone(), r.clone()));
        let e = f64::eigh(a.clone(), true).unwrap();
        let v = e.vectors.unwrap();
        let vwv = |i: usize, j: usize| {
            (0..3)
                .map(|k| v.get(i, k) * e.values[k] * v.get(j, k))
                .sum::<f64>()
        };
        for i in 0..3 {
            for j in 0..3 {
                assert!((llt(i, j) - a.get(i, j)).abs() < 1e-12);
                assert!((qr(i, j) - a.get(i, j)).abs() < 1e-12);
                assert!((vwv(i, j) - a.get(i, j)).abs() < 1e-12);
            }
        }
        let s = f64::svd(a, false).unwrap().s;
        assert!((s[0] - e.values[2]).abs() < 1e-12);
    }
}
