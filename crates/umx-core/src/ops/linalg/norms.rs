//! `norm` (vector and matrix norms, NumPy's `ord` and `axis`) and `cross`, built from the
//! element-wise ops, the reductions and (for the 2-norm and nuclear norm of matrices) `svd`.

use crate::primitives::LinalgOp;
use crate::primitives::linalg::apply;
use crate::shape::{fmt_shape, normalize_axis};
use crate::{Array, Axes, Dtype, Result, bail, ops};

/// The order of a norm: NumPy's `ord`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NormOrd {
    /// A number. Vectors: `max |x|` (∞), `min |x|` (−∞), the count of nonzeros (0), else
    /// `(Σ |x|^p)^(1/p)`. Matrices: the largest (1) or smallest (−1) absolute column sum, the
    /// largest (∞) or smallest (−∞) absolute row sum, the largest (2) or smallest (−2)
    /// singular value; other numbers are an error.
    P(f64),
    /// The Frobenius norm (matrices only).
    Fro,
    /// The nuclear norm, the sum of the singular values (matrices only).
    Nuc,
}

impl NormOrd {
    /// `ord = inf`.
    pub const INF: NormOrd = NormOrd::P(f64::INFINITY);
    /// `ord = -inf`.
    pub const NEG_INF: NormOrd = NormOrd::P(f64::NEG_INFINITY);

    fn describe(&self) -> String {
        match self {
            NormOrd::P(p) => format!("{p}"),
            NormOrd::Fro => "'fro'".into(),
            NormOrd::Nuc => "'nuc'".into(),
        }
    }
}

impl From<f64> for NormOrd {
    fn from(p: f64) -> Self {
        NormOrd::P(p)
    }
}
impl From<i32> for NormOrd {
    fn from(p: i32) -> Self {
        NormOrd::P(p as f64)
    }
}

/// Matrix or vector norms, as NumPy's `linalg.norm`. With `axis` [`Axes::All`] (`None`) and
/// no `ord`, the 2-norm of `a` flattened; with `ord` and no axis, `a` must be 1-D or 2-D.
/// One axis gives vector norms along it (`ord` defaults to 2), two axes matrix norms over
/// them (rows, then columns; `ord` defaults to [`NormOrd::Fro`]). `keepdims` keeps the
/// reduced axes as size 1. Integers and bool give float32, complex64 gives float32 (the norm
/// of the magnitudes).
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, Axes, linalg::{self, NormOrd}};
/// let a = Array::from_slice(&[3.0f32, -4.0, 0.0, 0.0], &[2, 2])?;
/// assert_eq!(linalg::norm(&a, None, Axes::All, false)?.item::<f32>()?, 5.0);
/// assert_eq!(linalg::norm(&a, NormOrd::INF, 1, false)?.to_vec::<f32>()?, vec![4.0, 0.0]);
/// assert_eq!(linalg::norm(&a, NormOrd::P(1.0), Axes::All, false)?.item::<f32>()?, 4.0);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn norm(
    a: &Array,
    ord: impl Into<Option<NormOrd>>,
    axis: impl Into<Axes>,
    keepdims: bool,
) -> Result<Array> {
    a.check()?;
    let ord = ord.into();
    let nd = a.ndim();
    let axes: Option<Vec<usize>> = match axis.into() {
        Axes::All => None,
        Axes::List(list) => {
            let mut v = Vec::with_capacity(list.len());
            for &ax in &list {
                let x = normalize_axis("norm", ax, nd)?;
                if v.contains(&x) {
                    bail!("norm: axis {ax} is repeated in {list:?}");
                }
                v.push(x);
            }
            Some(v)
        }
    };
    let x = if a.dtype().is_complex() {
        ops::abs(a)?
    } else if !a.dtype().is_inexact() {
        ops::astype(a, Dtype::Float32)?
    } else {
        a.clone()
    };
    match (axes, ord) {
        (None, None) => {
            let all: Vec<i64> = (0..nd as i64).collect();
            ops::sqrt(&ops::sum(&ops::square(&x)?, all, keepdims)?)
        }
        (None, Some(o)) => match nd {
            1 => vector_norm(&x, 0, o, keepdims),
            2 => matrix_norm(&x, 0, 1, o, keepdims),
            _ => bail!(
                "norm: an ord needs a 1-D or 2-D array, or an axis, got shape {}",
                fmt_shape(a.shape())
            ),
        },
        (Some(ax), o) => match ax.len() {
            1 => vector_norm(&x, ax[0], o.unwrap_or(NormOrd::P(2.0)), keepdims),
            2 => matrix_norm(&x, ax[0], ax[1], o.unwrap_or(NormOrd::Fro), keepdims),
            k => bail!(
                "norm: one axis (vectors) or two (matrices) are supported, got {k} axes for an \
                 array of shape {}",
                fmt_shape(a.shape())
            ),
        },
    }
}

/// The vector norm of (real) `x` along `axis`.
fn vector_norm(x: &Array, axis: usize, ord: NormOrd, keepdims: bool) -> Result<Array> {
    let ax = axis as i64;
    let p = match ord {
        NormOrd::P(p) => p,
        other => bail!(
            "norm: {} is a matrix norm, but one axis was given (array of shape {})",
            other.describe(),
            fmt_shape(x.shape())
        ),
    };
    if p == f64::INFINITY {
        ops::max(&ops::abs(x)?, ax, keepdims)
    } else if p == f64::NEG_INFINITY {
        ops::min(&ops::abs(x)?, ax, keepdims)
    } else if p == 0.0 {
        let nonzero = ops::astype(&ops::not_equal(x, 0.0)?, x.dtype())?;
        ops::sum(&nonzero, ax, keepdims)
    } else if p == 1.0 {
        ops::sum(&ops::abs(x)?, ax, keepdims)
    } else if p == 2.0 {
        ops::sqrt(&ops::sum(&ops::square(x)?, ax, keepdims)?)
    } else if p.is_nan() {
        bail!("norm: ord NaN is not a norm order")
    } else {
        // The exponents in x's dtype: a weak scalar would round them to float32.
        let exponent = |e: f64| Array::full_scalar(e, x.dtype());
        let s = ops::sum(&ops::power(&ops::abs(x)?, exponent(p))?, ax, keepdims)?;
        ops::power(&s, exponent(1.0 / p))
    }
}

/// The matrix norm of (real) `x` over the axes `row` and `col`.
fn matrix_norm(x: &Array, row: usize, col: usize, ord: NormOrd, keepdims: bool) -> Result<Array> {
    let both = [row as i64, col as i64];
    let out = match ord {
        NormOrd::Fro => ops::sqrt(&ops::sum(&ops::square(x)?, both, true)?)?,
        NormOrd::Nuc => singular_values(x, row, col, |s| ops::sum(s, -1, true))?,
        NormOrd::P(2.0) => singular_values(x, row, col, |s| ops::max(s, -1, true))?,
        NormOrd::P(-2.0) => singular_values(x, row, col, |s| ops::min(s, -1, true))?,
        NormOrd::P(p) if p.abs() == 1.0 || p.is_infinite() => {
            // 1: the columns' sums (over rows); inf: the rows' sums (over columns).
            let (sum_over, pick_over) = if p.abs() == 1.0 {
                (row, col)
            } else {
                (col, row)
            };
            let sums = ops::sum(&ops::abs(x)?, sum_over as i64, true)?;
            if p > 0.0 {
                ops::max(&sums, pick_over as i64, true)?
            } else {
                ops::min(&sums, pick_over as i64, true)?
            }
        }
        NormOrd::P(p) => bail!(
            "norm: invalid norm order {p} for matrices (array of shape {})",
            fmt_shape(x.shape())
        ),
    };
    if keepdims {
        Ok(out)
    } else {
        ops::squeeze(&out, both)
    }
}

/// `reduce` of the singular values of the matrices over axes `row`, `col` of `x`, shaped as a
/// reduction over those axes with kept dims.
fn singular_values(
    x: &Array,
    row: usize,
    col: usize,
    reduce: impl Fn(&Array) -> Result<Array>,
) -> Result<Array> {
    let nd = x.ndim();
    let mut perm: Vec<i64> = (0..nd)
        .filter(|&d| d != row && d != col)
        .map(|d| d as i64)
        .collect();
    perm.extend([row as i64, col as i64]);
    let moved = ops::transpose(x, perm)?;
    super::decompositions::check_float_matrix("norm", &moved, false)?;
    let s = super::decompositions::one(apply(LinalgOp::Svd { compute_uv: false }, vec![moved])?);
    let r = reduce(&s)?; // (..., 1)
    let mut shape: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
    shape[row] = 1;
    shape[col] = 1;
    ops::reshape(&r, &shape)
}

/// The cross product of 3-element vectors along `axis` of `a` and `b`; the other axes
/// broadcast. A 2-element vector is taken as having a zero third component, as MLX does (the
/// result has 3). The dtype is the promotion of the inputs'.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, linalg};
/// let x = Array::from_slice(&[1.0f32, 0.0, 0.0], &[3])?;
/// let y = Array::from_slice(&[0.0f32, 1.0, 0.0], &[3])?;
/// assert_eq!(linalg::cross(&x, &y, -1)?.to_vec::<f32>()?, vec![0.0, 0.0, 1.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn cross(a: &Array, b: &Array, axis: i64) -> Result<Array> {
    a.check()?;
    b.check()?;
    let components = |x: &Array| -> Result<Vec<Array>> {
        if x.ndim() == 0 {
            bail!(
                "cross: inputs must have at least one dimension, got shapes {} and {}",
                fmt_shape(a.shape()),
                fmt_shape(b.shape())
            );
        }
        let ax = normalize_axis("cross", axis, x.ndim())?;
        let d = x.shape()[ax];
        if d != 2 && d != 3 {
            bail!(
                "cross: the vectors along axis {axis} must have 2 or 3 elements, got shapes {} \
                 and {}",
                fmt_shape(a.shape()),
                fmt_shape(b.shape())
            );
        }
        let moved = ops::moveaxis(x, ax as i64, -1)?;
        let nd = moved.ndim();
        let mut parts = Vec::with_capacity(3);
        for i in 0..d {
            let mut start = vec![0i64; nd];
            let mut stop: Vec<i64> = moved.shape().iter().map(|&s| s as i64).collect();
            start[nd - 1] = i as i64;
            stop[nd - 1] = i as i64 + 1;
            parts.push(ops::slice(&moved, &start, &stop, &[])?);
        }
        if d == 2 {
            parts.push(ops::zeros_like(&parts[0])?);
        }
        Ok(parts)
    };
    let (u, v) = (components(a)?, components(b)?);
    let term = |i: usize, j: usize| -> Result<Array> {
        ops::subtract(ops::multiply(&u[i], &v[j])?, ops::multiply(&u[j], &v[i])?)
    };
    let c = ops::concatenate(&[term(1, 2)?, term(2, 0)?, term(0, 1)?], -1)?;
    let out_axis = normalize_axis("cross", axis, c.ndim())?;
    ops::moveaxis(&c, -1, out_axis as i64)
}
