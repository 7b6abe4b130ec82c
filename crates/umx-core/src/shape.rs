//! Shapes, strides, broadcasting and axis normalisation: the one place these rules live.

use crate::{Result, bail};

/// Shapes are lists of dimension sizes.
pub type Shape = Vec<usize>;
/// Strides are in elements, and may be negative (flipped views) or zero (broadcasts).
pub type Strides = Vec<isize>;

/// Formats a shape as MLX prints it: `(3, 4)`.
pub fn fmt_shape(shape: &[usize]) -> String {
    match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Number of elements of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of a contiguous array of this shape.
pub fn row_major_strides(shape: &[usize]) -> Strides {
    let mut strides = vec![0isize; shape.len()];
    let mut acc = 1isize;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i].max(1) as isize;
    }
    strides
}

/// Whether `strides` describe a row-major contiguous layout of `shape` (size-1 dims ignored).
pub fn is_row_contiguous(shape: &[usize], strides: &[isize]) -> bool {
    let mut expected = 1isize;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d == 1 {
            continue;
        }
        if s != expected {
            return false;
        }
        expected *= d as isize;
    }
    true
}

/// The broadcast of two shapes, NumPy's rule, or an error naming `op`.
pub fn broadcast_shapes(op: &str, a: &[usize], b: &[usize]) -> Result<Shape> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            bail!(
                "{op}: shapes {} and {} cannot be broadcast together",
                fmt_shape(a),
                fmt_shape(b)
            );
        };
    }
    Ok(out)
}

/// The broadcast of many shapes.
pub fn broadcast_many(op: &str, shapes: &[&[usize]]) -> Result<Shape> {
    let mut out: Shape = Vec::new();
    for s in shapes {
        out = broadcast_shapes(op, &out, s)?;
    }
    Ok(out)
}

/// Strides that view an array of `shape`/`strides` as `target` (a broadcast of it).
pub fn broadcast_strides(shape: &[usize], strides: &[isize], target: &[usize]) -> Strides {
    let off = target.len() - shape.len();
    (0..target.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 && target[i] != 1 {
                0
            } else {
                strides[i - off]
            }
        })
        .collect()
}

/// Normalises a possibly negative axis against `ndim`, or errors naming `op`.
pub fn normalize_axis(op: &str, axis: i64, ndim: usize) -> Result<usize> {
    let n = ndim as i64;
    if axis < -n || axis >= n {
        bail!("{op}: axis {axis} is out of range for an array of {ndim} dimensions");
    }
    Ok(if axis < 0 { axis + n } else { axis } as usize)
}

/// Normalises a list of axes: each in range, none repeated; sorted ascending.
pub fn normalize_axes(op: &str, axes: &[i64], ndim: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let ax = normalize_axis(op, a, ndim)?;
        if out.contains(&ax) {
            bail!("{op}: axis {a} is repeated in {axes:?}");
        }
        out.push(ax);
    }
    out.sort_unstable();
    Ok(out)
}

/// Which axes an op works over: all of them, or a list (negative counts from the end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Axes {
    All,
    List(Vec<i64>),
}

impl Axes {
    /// The normalised, sorted axes for an array of `ndim` dimensions.
    pub fn resolve(&self, op: &str, ndim: usize) -> Result<Vec<usize>> {
        match self {
            Axes::All => Ok((0..ndim).collect()),
            Axes::List(l) => normalize_axes(op, l, ndim),
        }
    }
}

impl From<Option<i64>> for Axes {
    fn from(a: Option<i64>) -> Self {
        match a {
            None => Axes::All,
            Some(a) => Axes::List(vec![a]),
        }
    }
}
macro_rules! axes_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Axes {
            fn from(a: $t) -> Self { Axes::List(vec![a as i64]) }
        }
        impl From<&[$t]> for Axes {
            fn from(a: &[$t]) -> Self { Axes::List(a.iter().map(|&x| x as i64).collect()) }
        }
        impl<const N: usize> From<[$t; N]> for Axes {
            fn from(a: [$t; N]) -> Self { Axes::List(a.iter().map(|&x| x as i64).collect()) }
        }
        impl<const N: usize> From<&[$t; N]> for Axes {
            fn from(a: &[$t; N]) -> Self { Axes::List(a.iter().map(|&x| x as i64).collect()) }
        }
        impl From<Vec<$t>> for Axes {
            fn from(a: Vec<$t>) -> Self { Axes::List(a.into_iter().map(|x| x as i64).collect()) }
        }
    )*};
}
axes_from_int!(i32, i64, usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes("add", &[3, 1], &[4]).unwrap(), vec![3, 4]);
        assert_eq!(broadcast_shapes("add", &[], &[2, 2]).unwrap(), vec![2, 2]);
        assert_eq!(
            broadcast_shapes("add", &[0, 1], &[1, 5]).unwrap(),
            vec![0, 5]
        );
        let e = broadcast_shapes("add", &[3], &[4]).unwrap_err().to_string();
        assert_eq!(e, "add: shapes (3,) and (4,) cannot be broadcast together");
    }

    #[test]
    fn axes_are_checked() {
        assert_eq!(normalize_axes("sum", &[-1, 0], 3).unwrap(), vec![0, 2]);
        assert!(normalize_axis("sum", 3, 3).is_err());
        assert!(normalize_axes("sum", &[1, -2], 3).is_err());
    }
}
