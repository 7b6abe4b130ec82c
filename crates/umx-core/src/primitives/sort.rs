//! Sorting, partitioning, their arg- forms, top-k and binary search: the primitives, their
//! output rules, and the one order every backend sorts by ([`SortKey`]).

mod transforms;

use crate::device::OutSpec;
use crate::{Complex32, Dtype};
use half::{bf16, f16};
use std::cmp::Ordering;

/// The sort primitives. Each works on "lanes": the 1-D slices of its input along `axis`.
#[derive(Clone, Debug, PartialEq)]
pub enum SortOp {
    /// Every lane sorted ascending (by [`SortKey`]).
    Sort { axis: usize },
    /// The uint32 indices that sort every lane; stable (equal elements keep their order).
    ArgSort { axis: usize },
    /// Every lane rearranged so that position `kth` holds the element a sort would put there,
    /// nothing after it is smaller and nothing before it is larger.
    Partition { axis: usize, kth: usize },
    /// The uint32 indices that partition every lane as [`SortOp::Partition`] does.
    ArgPartition { axis: usize, kth: usize },
    /// The `k` largest elements of every lane, in ascending order; the axis becomes `k` long.
    TopK { axis: usize, k: usize },
    /// Inputs `(a, v)`: for every element of `v`, the index (uint32) at which it would be
    /// inserted into the sorted 1-D `a` to keep it sorted: before equal elements (`right:
    /// false`, NumPy's `side="left"`) or after them (`right: true`). `a` and `v` share a dtype.
    SearchSorted { right: bool },
}

impl SortOp {
    /// The op's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            SortOp::Sort { .. } => "sort",
            SortOp::ArgSort { .. } => "argsort",
            SortOp::Partition { .. } => "partition",
            SortOp::ArgPartition { .. } => "argpartition",
            SortOp::TopK { .. } => "topk",
            SortOp::SearchSorted { .. } => "searchsorted",
        }
    }

    /// The output's shape and dtype for inputs of these shapes and this (first input's) dtype.
    /// The op functions have checked the arguments already.
    pub fn output(&self, shapes: &[&[usize]], dtype: Dtype) -> OutSpec {
        let shape = shapes.first().map(|s| s.to_vec()).unwrap_or_default();
        match *self {
            SortOp::Sort { .. } | SortOp::Partition { .. } => OutSpec { shape, dtype },
            SortOp::ArgSort { .. } | SortOp::ArgPartition { .. } => OutSpec {
                shape,
                dtype: Dtype::Uint32,
            },
            SortOp::TopK { axis, k } => {
                let mut shape = shape;
                if let Some(d) = shape.get_mut(axis) {
                    *d = k;
                }
                OutSpec { shape, dtype }
            }
            SortOp::SearchSorted { .. } => OutSpec {
                shape: shapes.get(1).map(|s| s.to_vec()).unwrap_or_default(),
                dtype: Dtype::Uint32,
            },
        }
    }
}

/// The total order of the sort family, NumPy's: numbers by value, NaNs after everything else
/// (`-0.0` and `0.0` are equal, so a stable sort keeps their order); float16 and bfloat16 by
/// their float values; false before true; complex numbers by real part, then imaginary part,
/// with those that hold a NaN last (NumPy's order: `R + Rj`, `R + nanj`, `nan + Rj`,
/// `nan + nanj`).
pub trait SortKey: Copy + Send + Sync {
    /// Compares two elements in the sort order.
    fn sort_cmp(&self, other: &Self) -> Ordering;
}

macro_rules! ord_key {
    ($($t:ty),*) => {$(
        impl SortKey for $t {
            #[inline(always)]
            fn sort_cmp(&self, other: &Self) -> Ordering {
                self.cmp(other)
            }
        }
    )*};
}
ord_key!(bool, u8, u16, u32, u64, i8, i16, i32, i64);

/// Orders floats by value with NaNs last (and all NaNs equal).
#[inline(always)]
fn float_cmp<T: PartialOrd>(a: &T, b: &T, a_nan: bool, b_nan: bool) -> Ordering {
    match a.partial_cmp(b) {
        Some(o) => o,
        None => a_nan.cmp(&b_nan),
    }
}

macro_rules! float_key {
    ($($t:ty),*) => {$(
        impl SortKey for $t {
            #[inline(always)]
            fn sort_cmp(&self, other: &Self) -> Ordering {
                float_cmp(self, other, self.is_nan(), other.is_nan())
            }
        }
    )*};
}
float_key!(f16, bf16, f32, f64);

impl SortKey for Complex32 {
    fn sort_cmp(&self, other: &Self) -> Ordering {
        let class = |z: &Complex32| 2 * z.re.is_nan() as u8 + z.im.is_nan() as u8;
        class(self)
            .cmp(&class(other))
            .then_with(|| self.re.sort_cmp(&other.re))
            .then_with(|| self.im.sort_cmp(&other.im))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nans_sort_last_and_signed_zeros_are_equal() {
        let mut v = [f32::NAN, 1.0, -f32::INFINITY, f32::NAN, -0.0, 0.0, -2.0];
        v.sort_by(SortKey::sort_cmp);
        assert_eq!(&v[..5], &[-f32::INFINITY, -2.0, -0.0, 0.0, 1.0]);
        assert!(v[4].is_sign_positive() && v[2].is_sign_negative());
        assert!(v[5].is_nan() && v[6].is_nan());
    }

    #[test]
    fn complex_sorts_as_numpy() {
        let c = |re, im| Complex32::new(re, im);
        let mut v = [
            c(f32::NAN, 0.0),
            c(1.0, f32::NAN),
            c(2.0, 1.0),
            c(1.0, 5.0),
            c(1.0, 2.0),
        ];
        v.sort_by(SortKey::sort_cmp);
        assert_eq!(&v[..3], &[c(1.0, 2.0), c(1.0, 5.0), c(2.0, 1.0)]);
        assert!(v[3].re == 1.0 && v[3].im.is_nan());
        assert!(v[4].re.is_nan());
    }
}
