//! The vjp, jvp and vmap rules of the indexing and sort primitives: derivatives against
//! central finite differences (float64), batching against a loop over the examples.

// The case tables are tuples of shapes and parameters.
#![allow(clippy::type_complexity)]

use umx::prelude::*;
use umx::s;
use umx::transforms::{jvp, vjp, vmap};

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-6;
/// The batch size of the vmap checks.
const N: usize = 3;

type Fun = Box<dyn Fn(&[Array]) -> Result<Vec<Array>>>;

/// A function of one output.
fn one(f: impl Fn(&[Array]) -> Result<Array> + 'static) -> Fun {
    Box::new(move |x| Ok(vec![f(x)?]))
}

/// A small deterministic generator (xorshift), so the tests need no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [-1, 1).
    fn unif(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Float64 values in [-1, 1) (distinct with overwhelming probability).
    fn normal(&mut self, shape: &[usize]) -> Array {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| self.unif()).collect();
        Array::from_slice(&v, shape).unwrap()
    }

    /// int32 indices into an axis of `dim`, repeats allowed, about half of them negative.
    fn ints(&mut self, shape: &[usize], dim: usize) -> Array {
        let n: usize = shape.iter().product();
        let v: Vec<i32> = (0..n)
            .map(|_| {
                let i = self.below(dim) as i32;
                if self.below(2) == 0 {
                    i - dim as i32
                } else {
                    i
                }
            })
            .collect();
        Array::from_slice(&v, shape).unwrap()
    }

    /// int32 indices in `[0, hi)` (no negatives), repeats allowed.
    fn nonneg(&mut self, shape: &[usize], hi: usize) -> Array {
        let n: usize = shape.iter().product();
        let v: Vec<i32> = (0..n).map(|_| self.below(hi) as i32).collect();
        Array::from_slice(&v, shape).unwrap()
    }

    /// int32 indices into an axis of `dim`, distinct along `axis` of `shape` (some negative).
    fn distinct(&mut self, shape: &[usize], axis: usize, dim: usize) -> Array {
        let n: usize = shape.iter().product();
        let len = shape[axis];
        assert!(len <= dim);
        let inner: usize = shape[axis + 1..].iter().product();
        let outer: usize = shape[..axis].iter().product();
        let mut out = vec![0i32; n];
        for o in 0..outer {
            for i in 0..inner {
                let mut p: Vec<i32> = (0..dim as i32).collect();
                for k in 0..len {
                    let j = k + self.below(dim - k);
                    p.swap(k, j);
                    let v = if self.below(2) == 0 {
                        p[k] - dim as i32
                    } else {
                        p[k]
                    };
                    out[(o * len + k) * inner + i] = v;
                }
            }
        }
        Array::from_slice(&out, shape).unwrap()
    }
}

fn vals(a: &Array) -> Vec<f64> {
    a.to_vec::<f64>().unwrap()
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= TOL * want.abs().max(1.0)
}

fn with_batch(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![N];
    s.extend_from_slice(shape);
    s
}

/// `primals` with element `k` of primal `i` moved by `d`.
fn nudged(primals: &[Array], i: usize, k: usize, d: f64) -> Vec<Array> {
    let mut xs = primals.to_vec();
    let mut v = vals(&primals[i]);
    v[k] += d;
    xs[i] = Array::from_slice(&v, primals[i].shape()).unwrap();
    xs
}

/// Checks `vjp` element by element against central differences of `<cotangents, f(x)>`, and
/// `jvp` along a random direction against central differences of `f`.
fn check_grads(name: &str, f: &Fun, primals: &[Array], rng: &mut Rng) {
    let outs = f(primals).unwrap_or_else(|e| panic!("{name}: {e}"));
    let cots: Vec<Array> = outs
        .iter()
        .map(|o| {
            if o.dtype().is_inexact() {
                rng.normal(o.shape()).astype(o.dtype()).unwrap()
            } else {
                ops::zeros(o.shape(), o.dtype()).unwrap()
            }
        })
        .collect();
    let cot_vals: Vec<Vec<f64>> = cots.iter().map(vals).collect();
    let (v_outs, grads) =
        vjp(|x| f(x), primals, &cots).unwrap_or_else(|e| panic!("{name}: vjp: {e}"));
    for (o, v) in outs.iter().zip(&v_outs) {
        assert_eq!(vals(o), vals(v), "{name}: vjp's outputs");
    }
    let scalar = |xs: &[Array]| -> f64 {
        f(xs)
            .unwrap()
            .iter()
            .zip(&cot_vals)
            .filter(|(o, _)| o.dtype().is_inexact())
            .map(|(o, c)| vals(o).iter().zip(c).map(|(a, b)| a * b).sum::<f64>())
            .sum()
    };
    for (i, p) in primals.iter().enumerate() {
        assert_eq!(grads[i].shape(), p.shape(), "{name}: shape of gradient {i}");
        assert_eq!(grads[i].dtype(), p.dtype(), "{name}: dtype of gradient {i}");
        let g = vals(&grads[i]);
        for (k, &gk) in g.iter().enumerate() {
            let fd = (scalar(&nudged(primals, i, k, EPS)) - scalar(&nudged(primals, i, k, -EPS)))
                / (2.0 * EPS);
            assert!(
                close(gk, fd),
                "{name}: vjp of input {i} (shape {:?}) at element {k}: {gk} but finite \
                 differences give {fd}\n  all: {g:?}",
                p.shape()
            );
        }
    }
    let dirs: Vec<Array> = primals.iter().map(|p| rng.normal(p.shape())).collect();
    let (_, tans) = jvp(|x| f(x), primals, &dirs).unwrap_or_else(|e| panic!("{name}: jvp: {e}"));
    let moved = |s: f64| -> Vec<Array> {
        primals
            .iter()
            .zip(&dirs)
            .map(|(p, d)| ops::add(p, ops::multiply(d, s).unwrap()).unwrap())
            .collect()
    };
    let (plus, minus) = (f(&moved(EPS)).unwrap(), f(&moved(-EPS)).unwrap());
    for (j, t) in tans.iter().enumerate() {
        assert_eq!(t.shape(), outs[j].shape(), "{name}: shape of tangent {j}");
        let fd: Vec<f64> = vals(&plus[j])
            .iter()
            .zip(vals(&minus[j]))
            .map(|(a, b)| (a - b) / (2.0 * EPS))
            .collect();
        let t = vals(t);
        for (k, (a, b)) in t.iter().zip(&fd).enumerate() {
            assert!(
                close(*a, *b),
                "{name}: jvp of output {j} at element {k}: {a} but finite differences give \
                 {b}\n  jvp: {t:?}\n  fd:  {fd:?}"
            );
        }
    }
}

fn same_values(name: &str, got: &Array, want: &Array) {
    assert_eq!(got.shape(), want.shape(), "{name}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{name}: dtype");
    let (g, w) = (vals(got), vals(want));
    for (k, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-12 * b.abs().max(1.0),
            "{name}: element {k}: {a} but the loop gives {b}\n  got:  {g:?}\n  want: {w:?}"
        );
    }
}

/// Checks `vmap(f)` against stacking `f` of each example. `args` that are `batched` carry the
/// batch on axis 0; they are mapped over axis 0 and, moved there, over their last axis.
fn check_vmap(name: &str, f: &Fun, args: &[Array], batched: &[bool]) {
    let example = |b: usize| -> Vec<Array> {
        args.iter()
            .zip(batched)
            .map(|(a, &bt)| {
                if bt {
                    ops::take(a, &Array::scalar(b as i32), Some(0)).unwrap()
                } else {
                    a.clone()
                }
            })
            .collect()
    };
    let per: Vec<Vec<Array>> = (0..N)
        .map(|b| f(&example(b)).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect();
    let want: Vec<Array> = (0..per[0].len())
        .map(|j| {
            let outs: Vec<Array> = per.iter().map(|o| o[j].clone()).collect();
            ops::stack(&outs, 0).unwrap()
        })
        .collect();
    for last in [false, true] {
        let mut in_axes = Vec::new();
        let mut moved = Vec::new();
        for (a, &bt) in args.iter().zip(batched) {
            if !bt {
                in_axes.push(None);
                moved.push(a.clone());
                continue;
            }
            let ax = if last { a.ndim() as i64 - 1 } else { 0 };
            in_axes.push(Some(ax));
            moved.push(ops::moveaxis(a, 0, ax).unwrap());
        }
        let g = vmap(|x: &[Array]| f(x), &in_axes, &[Some(0)]);
        let got = g(&moved).unwrap_or_else(|e| panic!("{name}: vmap over {in_axes:?}: {e}"));
        assert_eq!(got.len(), want.len(), "{name}: number of outputs");
        for (j, (o, w)) in got.iter().zip(&want).enumerate() {
            same_values(&format!("{name}: vmap over {in_axes:?}, output {j}"), o, w);
        }
    }
}

/// Every non-empty combination of batched arguments.
fn masks(n: usize) -> Vec<Vec<bool>> {
    (1..1usize << n)
        .map(|m| (0..n).map(|i| m >> i & 1 == 1).collect())
        .collect()
}

/// Arguments for a vmap check: batched ones from `make(batched_shape)`, others as they are.
fn batch_args(
    examples: &[Array],
    mask: &[bool],
    mut make: impl FnMut(usize, &[usize]) -> Array,
) -> Vec<Array> {
    examples
        .iter()
        .zip(mask)
        .enumerate()
        .map(|(i, (e, &b))| {
            if b {
                make(i, &with_batch(e.shape()))
            } else {
                e.clone()
            }
        })
        .collect()
}

fn expect_err(name: &str, r: Result<(Vec<Array>, Vec<Array>)>, needle: &str) {
    match r {
        Ok(_) => panic!("{name}: expected an error containing {needle:?}"),
        Err(e) => assert!(
            e.to_string().contains(needle),
            "{name}: error {e} does not contain {needle:?}"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Slices

#[test]
fn slice() {
    let mut rng = Rng::new(1);
    let cases: Vec<(Vec<usize>, Vec<i64>, Vec<i64>, Vec<i64>)> = vec![
        (vec![6], vec![1], vec![5], vec![2]),
        (vec![6], vec![-1], vec![-7], vec![-2]),
        (vec![4, 6], vec![-1, 1], vec![-5, 6], vec![-1, 2]),
        (vec![3, 4, 5], vec![0, 1, 4], vec![3, 3, -6], vec![2, 1, -2]),
        (vec![3, 4], vec![1, 0], vec![3, 4], vec![]),
        (vec![3, 4], vec![2, 0], vec![2, 4], vec![]),
    ];
    for (shape, start, stop, steps) in cases {
        let name = format!("slice {shape:?} {start:?}:{stop:?}:{steps:?}");
        let f = one(move |x| ops::slice(&x[0], &start, &stop, &steps));
        check_grads(&name, &f, &[rng.normal(&shape)], &mut rng);
        check_vmap(&name, &f, &[rng.normal(&with_batch(&shape))], &[true]);
    }
}

#[test]
fn slice_update() {
    let mut rng = Rng::new(2);
    // (array, update, start, stop, steps)
    let cases: Vec<(Vec<usize>, Vec<usize>, Vec<i64>, Vec<i64>, Vec<i64>)> = vec![
        (vec![5], vec![2], vec![1], vec![5], vec![2]),
        (vec![4, 6], vec![2, 3], vec![0, 0], vec![4, 6], vec![2, 2]),
        (vec![4, 6], vec![1, 3], vec![0, 0], vec![4, 6], vec![2, 2]),
        (vec![4, 6], vec![3], vec![0, 0], vec![4, 6], vec![2, 2]),
        (vec![4, 6], vec![], vec![1, 1], vec![3, 5], vec![]),
        (vec![3, 4], vec![2, 2], vec![2, 3], vec![0, 0], vec![-1, -2]),
    ];
    for (a_shape, u_shape, start, stop, steps) in cases {
        let name = format!("slice_update {a_shape:?} <- {u_shape:?}");
        let f = one(move |x| ops::slice_update(&x[0], &x[1], &start, &stop, &steps));
        let ex = [rng.normal(&a_shape), rng.normal(&u_shape)];
        check_grads(&name, &f, &ex, &mut rng);
        for m in masks(2) {
            let args = batch_args(&ex, &m, |_, s| rng.normal(s));
            check_vmap(&format!("{name} batched {m:?}"), &f, &args, &m);
        }
    }
    // at[..].add: a slice update that adds.
    let f = one(|x| x[0].at(s![1..3]).add(&x[1]));
    let ex = [rng.normal(&[4, 3]), rng.normal(&[2, 3])];
    check_grads("at.add", &f, &ex, &mut rng);
    for m in masks(2) {
        let args = batch_args(&ex, &m, |_, s| rng.normal(s));
        check_vmap("at.add", &f, &args, &m);
    }
    // Modes without a derivative rule: an error naming them; batching still works.
    let f = one(|x| x[0].at(s![..2]).multiply(&x[1]));
    let ex = [rng.normal(&[4, 3]), rng.normal(&[2, 3])];
    let cots = [rng.normal(&[4, 3])];
    expect_err(
        "at.multiply vjp",
        vjp(|x| f(x), &ex, &cots),
        "vjp: slice_update with mode Prod is not supported",
    );
    expect_err(
        "at.multiply jvp",
        jvp(|x| f(x), &ex, &ex),
        "jvp: slice_update with mode Prod is not supported",
    );
    check_vmap(
        "at.multiply",
        &f,
        &[rng.normal(&[N, 4, 3]), ex[1].clone()],
        &[true, false],
    );
    let f = one(|x| x[0].at(s![1..]).maximum(&x[1]));
    check_vmap(
        "at.maximum",
        &f,
        &[ex[0].clone(), rng.normal(&[N, 3, 3])],
        &[false, true],
    );
}

// ---------------------------------------------------------------------------------------------
// Gathers

#[test]
fn take() {
    let mut rng = Rng::new(3);
    // (array, indices, axis)
    let cases: Vec<(Vec<usize>, Vec<usize>, Option<i64>)> = vec![
        (vec![5], vec![7], Some(0)),
        (vec![3, 4], vec![2, 2], Some(1)),
        (vec![3, 4], vec![5], Some(0)),
        (vec![3, 4], vec![], Some(1)),
        (vec![2, 3, 4], vec![2, 3], Some(1)),
        (vec![3, 4], vec![2, 3], None),
        (vec![3, 4], vec![], None),
    ];
    for (a_shape, i_shape, axis) in cases {
        let name = format!("take {a_shape:?}[{i_shape:?}] axis {axis:?}");
        let dim = match axis {
            None => a_shape.iter().product(),
            Some(ax) => a_shape[ax as usize],
        };
        let idx = rng.ints(&i_shape, dim);
        let i2 = idx.clone();
        let f = one(move |x| ops::take(&x[0], &i2, axis));
        check_grads(&name, &f, &[rng.normal(&a_shape)], &mut rng);
        let f = one(move |x| ops::take(&x[0], &x[1], axis));
        let ex = [rng.normal(&a_shape), idx];
        for m in masks(2) {
            let args = batch_args(&ex, &m, |i, s| {
                if i == 0 {
                    rng.normal(s)
                } else {
                    rng.ints(s, dim)
                }
            });
            check_vmap(&format!("{name} batched {m:?}"), &f, &args, &m);
        }
    }
}

#[test]
fn take_along_axis() {
    let mut rng = Rng::new(4);
    let cases: Vec<(Vec<usize>, Vec<usize>, i64)> = vec![
        (vec![3, 4], vec![3, 2], 1),
        (vec![1, 4], vec![3, 2], 1),
        (vec![3, 4], vec![1, 5], 1),
        (vec![4, 3], vec![2, 3], 0),
        (vec![2, 3, 4], vec![2, 1, 6], -1),
        (vec![5], vec![8], 0),
        // One element along the axis (a cross-entropy's targets): its gradient is a
        // comparison with the positions, not a scatter.
        (vec![5, 7], vec![5, 1], 1),
        (vec![1, 4], vec![3, 1], 1),
        (vec![4, 3], vec![1, 3], 0),
        (vec![2, 3, 4], vec![2, 3, 1], -1),
    ];
    for (a_shape, i_shape, axis) in cases {
        let name = format!("take_along_axis {a_shape:?} {i_shape:?} axis {axis}");
        let dim = a_shape[(axis + a_shape.len() as i64) as usize % a_shape.len()];
        let idx = rng.ints(&i_shape, dim);
        let i2 = idx.clone();
        let f = one(move |x| ops::take_along_axis(&x[0], &i2, axis));
        check_grads(&name, &f, &[rng.normal(&a_shape)], &mut rng);
        let f = one(move |x| ops::take_along_axis(&x[0], &x[1], axis));
        let ex = [rng.normal(&a_shape), idx];
        for m in masks(2) {
            let args = batch_args(&ex, &m, |i, s| {
                if i == 0 {
                    rng.normal(s)
                } else {
                    rng.ints(s, dim)
                }
            });
            check_vmap(&format!("{name} batched {m:?}"), &f, &args, &m);
        }
    }
}

#[test]
fn gather() {
    let mut rng = Rng::new(5);
    // (array, index shapes, axes, slice sizes)
    let cases: Vec<(Vec<usize>, Vec<Vec<usize>>, Vec<i64>, Vec<usize>)> = vec![
        (vec![5, 4], vec![vec![3]], vec![0], vec![1, 4]),
        (
            vec![5, 4],
            vec![vec![3, 1], vec![1, 2]],
            vec![0, 1],
            vec![2, 2],
        ),
        (vec![4, 3, 5], vec![vec![2]], vec![2], vec![4, 1, 2]),
        (
            vec![4, 3, 5],
            vec![vec![], vec![2, 2]],
            vec![1, 0],
            vec![1, 2, 5],
        ),
        (vec![6], vec![vec![4]], vec![0], vec![3]),
    ];
    for (a_shape, i_shapes, axes, sizes) in cases {
        let name = format!("gather {a_shape:?} {i_shapes:?} axes {axes:?} sizes {sizes:?}");
        let make_idx = |rng: &mut Rng, k: usize, shape: &[usize]| {
            let ax = axes[k] as usize;
            rng.nonneg(shape, a_shape[ax] - sizes[ax] + 1)
        };
        let idx: Vec<Array> = i_shapes
            .iter()
            .enumerate()
            .map(|(k, s)| make_idx(&mut rng, k, s))
            .collect();
        let (i2, ax2, s2) = (idx.clone(), axes.clone(), sizes.clone());
        let f = one(move |x| ops::gather(&x[0], &i2, &ax2, &s2));
        check_grads(&name, &f, &[rng.normal(&a_shape)], &mut rng);
        let (ax2, s2) = (axes.clone(), sizes.clone());
        let f = one(move |x| ops::gather(&x[0], &x[1..], &ax2, &s2));
        let mut ex = vec![rng.normal(&a_shape)];
        ex.extend(idx);
        for m in masks(ex.len()) {
            let args = batch_args(&ex, &m, |i, s| {
                if i == 0 {
                    rng.normal(s)
                } else {
                    make_idx(&mut rng, i - 1, s)
                }
            });
            check_vmap(&format!("{name} batched {m:?}"), &f, &args, &m);
        }
    }
}

#[test]
fn diagonal() {
    let mut rng = Rng::new(6);
    let cases: Vec<(Vec<usize>, i64, i64, i64)> = vec![
        (vec![3, 4], 0, 0, 1),
        (vec![3, 4], 1, 0, 1),
        (vec![3, 4], -1, 0, 1),
        (vec![4, 3], 2, 1, 0),
        (vec![3, 4], 5, 0, 1),
        (vec![2, 3, 4], 1, 0, 2),
        (vec![2, 3, 4], -1, 2, 0),
        (vec![4, 2, 3], 0, 1, 2),
    ];
    for (shape, offset, a1, a2) in cases {
        let name = format!("diagonal {shape:?} offset {offset} axes ({a1}, {a2})");
        let f = one(move |x| ops::diagonal(&x[0], offset, a1, a2));
        check_grads(&name, &f, &[rng.normal(&shape)], &mut rng);
        check_vmap(&name, &f, &[rng.normal(&with_batch(&shape))], &[true]);
    }
}

#[test]
fn diag() {
    let mut rng = Rng::new(7);
    for (shape, k) in [
        (vec![3], 0),
        (vec![3], 2),
        (vec![2], -1),
        (vec![3, 4], 1),
        (vec![4, 3], -2),
    ] {
        let name = format!("diag {shape:?} k {k}");
        let f = one(move |x| ops::diag(&x[0], k));
        check_grads(&name, &f, &[rng.normal(&shape)], &mut rng);
        check_vmap(&name, &f, &[rng.normal(&with_batch(&shape))], &[true]);
    }
}

#[test]
fn triangle() {
    let mut rng = Rng::new(8);
    for (shape, k, upper) in [
        (vec![3, 4], 0, false),
        (vec![3, 4], 1, true),
        (vec![3, 4], -2, false),
        (vec![4, 3], -1, true),
        (vec![2, 3, 3], 0, true),
        (vec![2, 3, 3], 1, false),
    ] {
        let name = format!("{} {shape:?} k {k}", if upper { "triu" } else { "tril" });
        let f = one(move |x| {
            if upper {
                ops::triu(&x[0], k)
            } else {
                ops::tril(&x[0], k)
            }
        });
        check_grads(&name, &f, &[rng.normal(&shape)], &mut rng);
        check_vmap(&name, &f, &[rng.normal(&with_batch(&shape))], &[true]);
    }
}

// ---------------------------------------------------------------------------------------------
// Scatters

#[test]
fn put_along_axis() {
    let mut rng = Rng::new(9);
    // (array, indices, values, axis); indices distinct along the axis (a write wins only once).
    let cases: Vec<(Vec<usize>, Vec<usize>, Vec<usize>, i64)> = vec![
        (vec![3, 4], vec![3, 1], vec![3, 1], 1),
        (vec![3, 4], vec![3, 2], vec![1, 2], 1),
        (vec![3, 4], vec![1, 2], vec![3, 2], 1),
        (vec![3, 4], vec![3, 2], vec![], 1),
        (vec![3, 4], vec![3, 1], vec![1, 3, 1], 1),
        (vec![4, 3], vec![2, 3], vec![2, 1], 0),
        (vec![2, 3, 4], vec![2, 2, 4], vec![2, 2, 4], 1),
    ];
    for (a_shape, i_shape, v_shape, axis) in cases {
        let name = format!("put_along_axis {a_shape:?} {i_shape:?} {v_shape:?} axis {axis}");
        let ax = axis as usize;
        let dim = a_shape[ax];
        let idx = rng.distinct(&i_shape, ax, dim);
        let i2 = idx.clone();
        let f = one(move |x| ops::put_along_axis(&x[0], &i2, &x[1], axis));
        let ex = [rng.normal(&a_shape), rng.normal(&v_shape)];
        check_grads(&name, &f, &ex, &mut rng);
        let f = one(move |x| ops::put_along_axis(&x[0], &x[1], &x[2], axis));
        let ex = [ex[0].clone(), idx, ex[1].clone()];
        for m in masks(3) {
            let args = batch_args(&ex, &m, |i, s| match i {
                1 => rng.distinct(s, ax + 1, dim),
                _ => rng.normal(s),
            });
            check_vmap(&format!("{name} batched {m:?}"), &f, &args, &m);
        }
    }
    // Adding: repeated indices accumulate, and a single index may take several values.
    let cases: Vec<(Vec<usize>, Vec<usize>, Vec<usize>, i64)> = vec![
        (vec![3, 4], vec![3, 6], vec![3, 6], 1),
        (vec![3, 4], vec![3, 1], vec![3, 3], 1),
        (vec![4, 3], vec![5, 1], vec![1, 3], 0),
    ];
    for (a_shape, i_shape, v_shape, axis) in cases {
        let name = format!("scatter_add_axis {a_shape:?} {i_shape:?} {v_shape:?} axis {axis}");
        let dim = a_shape[axis as usize];
        let idx = rng.ints(&i_shape, dim);
        let i2 = idx.clone();
        let f = one(move |x| ops::scatter_add_axis(&x[0], &i2, &x[1], axis));
        let ex = [rng.normal(&a_shape), rng.normal(&v_shape)];
        check_grads(&name, &f, &ex, &mut rng);
        let f = one(move |x| ops::scatter_add_axis(&x[0], &x[1], &x[2], axis));
        let ex = [ex[0].clone(), idx, ex[1].clone()];
        for m in masks(3) {
            let args = batch_args(&ex, &m, |i, s| match i {
                1 => rng.ints(s, dim),
                _ => rng.normal(s),
            });
            check_vmap(&format!("{name} batched {m:?}"), &f, &args, &m);
        }
    }
}

/// Distinct positions for a scatter of windows of 1: index arrays of `shapes` (broadcasting to
/// `b`) into the axes of `dims`, with every broadcast position distinct.
fn distinct_positions(rng: &mut Rng, shapes: &[Vec<usize>], dims: &[usize]) -> Vec<Array> {
    // Retry until the broadcast positions are distinct (the cases are small).
    loop {
        let idx: Vec<Array> = shapes
            .iter()
            .zip(dims)
            .map(|(s, &d)| rng.ints(s, d))
            .collect();
        let b = ops::broadcast_arrays(&idx).unwrap();
        let cols: Vec<Vec<i64>> = b
            .iter()
            .zip(dims)
            .map(|(a, &d)| {
                a.to_vec::<i64>()
                    .unwrap()
                    .into_iter()
                    .map(|v| v.rem_euclid(d as i64))
                    .collect()
            })
            .collect();
        let n = cols.first().map_or(0, Vec::len);
        let mut seen = std::collections::HashSet::new();
        if (0..n).all(|k| seen.insert(cols.iter().map(|c| c[k]).collect::<Vec<_>>())) {
            return idx;
        }
    }
}

#[test]
fn scatter() {
    let mut rng = Rng::new(10);
    // (array, index shapes, axes, updates); Assign cases write each place once.
    let cases: Vec<(Vec<usize>, Vec<Vec<usize>>, Vec<i64>, Vec<usize>)> = vec![
        (vec![5, 3], vec![vec![2]], vec![0], vec![2, 1, 3]),
        (vec![5, 3], vec![vec![2]], vec![0], vec![2, 1, 2]),
        (
            vec![4, 5],
            vec![vec![2, 1], vec![1, 3]],
            vec![0, 1],
            vec![2, 3, 1, 1],
        ),
        (
            vec![3, 4, 2],
            vec![vec![3], vec![3]],
            vec![2, 1],
            vec![3, 2, 1, 1],
        ),
        (vec![5], vec![vec![]], vec![0], vec![1]),
    ];
    for (a_shape, i_shapes, axes, u_shape) in cases {
        let name = format!("scatter {a_shape:?} {i_shapes:?} axes {axes:?} updates {u_shape:?}");
        let dims: Vec<usize> = axes.iter().map(|&a| a_shape[a as usize]).collect();
        let idx = distinct_positions(&mut rng, &i_shapes, &dims);
        let (i2, ax2) = (idx.clone(), axes.clone());
        let f = one(move |x| ops::scatter(&x[0], &i2, &x[1], &ax2));
        let ex = [rng.normal(&a_shape), rng.normal(&u_shape)];
        check_grads(&name, &f, &ex, &mut rng);
        // Batched: the array, each index array and the updates.
        let k = idx.len();
        let ax2 = axes.clone();
        let f = one(move |x| ops::scatter(&x[0], &x[1..=k], &x[k + 1], &ax2));
        let mut all = vec![ex[0].clone()];
        all.extend(idx);
        all.push(ex[1].clone());
        for m in masks(all.len()) {
            // Batched indices: distinct positions within each example (with the shared ones).
            let args = loop {
                let mut args = batch_args(&all, &m, |_, s| rng.normal(s));
                if !m[1..=k].iter().any(|&b| b) {
                    break args;
                }
                let per: Vec<Vec<Array>> = (0..N)
                    .map(|_| distinct_positions(&mut rng, &i_shapes, &dims))
                    .collect();
                let pick = |b: usize, i: usize| per[if m[i + 1] { b } else { 0 }][i].clone();
                for i in 0..k {
                    args[i + 1] = if m[i + 1] {
                        let ex: Vec<Array> = (0..N).map(|b| pick(b, i)).collect();
                        ops::stack(&ex, 0).unwrap()
                    } else {
                        pick(0, i)
                    };
                }
                let ok = (0..N).all(|b| {
                    let p: Vec<Array> = (0..k).map(|i| pick(b, i)).collect();
                    distinct(&p, &dims)
                });
                if ok {
                    break args;
                }
            };
            check_vmap(&format!("{name} batched {m:?}"), &f, &args, &m);
        }
    }
    // scatter_add: repeated positions accumulate.
    let cases: Vec<(Vec<usize>, Vec<Vec<usize>>, Vec<i64>, Vec<usize>)> = vec![
        (vec![5, 3], vec![vec![4]], vec![0], vec![4, 1, 3]),
        (
            vec![4, 5],
            vec![vec![3, 1], vec![1, 2]],
            vec![0, 1],
            vec![3, 2, 2, 2],
        ),
    ];
    for (a_shape, i_shapes, axes, u_shape) in cases {
        let name =
            format!("scatter_add {a_shape:?} {i_shapes:?} axes {axes:?} updates {u_shape:?}");
        // Windows must fit: positions in [0, dim - window].
        let nb = u_shape.len() - a_shape.len();
        let hi: Vec<usize> = axes
            .iter()
            .map(|&a| a_shape[a as usize] - u_shape[nb + a as usize] + 1)
            .collect();
        let idx: Vec<Array> = i_shapes
            .iter()
            .zip(&hi)
            .map(|(s, &h)| rng.nonneg(s, h))
            .collect();
        let (i2, ax2) = (idx.clone(), axes.clone());
        let f = one(move |x| ops::scatter_add(&x[0], &i2, &x[1], &ax2));
        let ex = [rng.normal(&a_shape), rng.normal(&u_shape)];
        check_grads(&name, &f, &ex, &mut rng);
        let k = idx.len();
        let ax2 = axes.clone();
        let f = one(move |x| ops::scatter_add(&x[0], &x[1..=k], &x[k + 1], &ax2));
        let mut all = vec![ex[0].clone()];
        all.extend(idx);
        all.push(ex[1].clone());
        for m in masks(all.len()) {
            let args = batch_args(&all, &m, |i, s| {
                if i == 0 || i == k + 1 {
                    rng.normal(s)
                } else {
                    rng.nonneg(s, hi[i - 1])
                }
            });
            check_vmap(&format!("{name} batched {m:?}"), &f, &args, &m);
        }
    }
    // Modes without a derivative rule.
    let idx = Array::from_slice(&[1i32], &[1]).unwrap();
    let ex = [rng.normal(&[3]), rng.normal(&[1, 1])];
    for (mode, op) in [
        (
            "Prod",
            ops::scatter_prod as fn(&Array, &[Array], &Array, &[i64]) -> Result<Array>,
        ),
        ("Max", ops::scatter_max),
        ("Min", ops::scatter_min),
    ] {
        let i2 = idx.clone();
        let f = one(move |x| op(&x[0], std::slice::from_ref(&i2), &x[1], &[0]));
        let needle = format!("vjp: scatter with mode {mode} is not supported");
        expect_err(mode, vjp(|x| f(x), &ex, &[ex[0].clone()]), &needle);
        let i2 = idx.clone();
        let g = one(move |x| op(&x[0], std::slice::from_ref(&i2), &x[1], &[0]));
        check_vmap(
            mode,
            &g,
            &[rng.normal(&[N, 3]), rng.normal(&[N, 1, 1])],
            &[true, true],
        );
    }
}

/// Whether the broadcast positions of index arrays `p` (into axes of `dims`) are distinct.
fn distinct(p: &[Array], dims: &[usize]) -> bool {
    let b = ops::broadcast_arrays(p).unwrap();
    let cols: Vec<Vec<i64>> = b
        .iter()
        .zip(dims)
        .map(|(a, &d)| {
            a.to_vec::<i64>()
                .unwrap()
                .into_iter()
                .map(|v| v.rem_euclid(d as i64))
                .collect()
        })
        .collect();
    let n = cols.first().map_or(0, Vec::len);
    let mut seen = std::collections::HashSet::new();
    (0..n).all(|k| seen.insert(cols.iter().map(|c| c[k]).collect::<Vec<_>>()))
}

// ---------------------------------------------------------------------------------------------
// Sorting

#[test]
fn sort_family() {
    let mut rng = Rng::new(11);
    let cases: Vec<(Vec<usize>, i64)> = vec![
        (vec![6], 0),
        (vec![3, 5], 1),
        (vec![3, 5], 0),
        (vec![2, 3, 4], 1),
        (vec![2, 3, 4], -1),
    ];
    for (shape, axis) in cases {
        let n = shape[(axis + shape.len() as i64) as usize % shape.len()];
        let fs: Vec<(String, Fun)> = vec![
            ("sort".into(), one(move |x| ops::sort(&x[0], axis))),
            ("argsort".into(), one(move |x| ops::argsort(&x[0], axis))),
            (
                "partition 1".into(),
                one(move |x| ops::partition(&x[0], 1, axis)),
            ),
            (
                "partition -1".into(),
                one(move |x| ops::partition(&x[0], -1, axis)),
            ),
            (
                "argpartition".into(),
                one(move |x| ops::argpartition(&x[0], 1, axis)),
            ),
            ("topk 1".into(), one(move |x| ops::topk(&x[0], 1, axis))),
            (
                "topk 2".into(),
                one(move |x| ops::topk(&x[0], 2.min(n), axis)),
            ),
            ("topk n".into(), one(move |x| ops::topk(&x[0], n, axis))),
            (
                "sort and argsort".into(),
                Box::new(move |x: &[Array]| {
                    Ok(vec![ops::sort(&x[0], axis)?, ops::argsort(&x[0], axis)?])
                }),
            ),
        ];
        for (op, f) in &fs {
            let name = format!("{op} {shape:?} axis {axis}");
            check_grads(&name, f, &[rng.normal(&shape)], &mut rng);
            check_vmap(&name, f, &[rng.normal(&with_batch(&shape))], &[true]);
        }
    }
    // Larger lanes (partition's selection runs past its small-input path).
    let f = one(|x| ops::partition(&x[0], 17, -1));
    check_grads("partition 40", &f, &[rng.normal(&[2, 40])], &mut rng);
    check_vmap("partition 40", &f, &[rng.normal(&[N, 2, 40])], &[true]);
}

#[test]
fn searchsorted() {
    let mut rng = Rng::new(12);
    let sorted = |rng: &mut Rng, shape: &[usize]| ops::sort(&rng.normal(shape), -1).unwrap();
    for side in ["left", "right"] {
        let name = format!("searchsorted {side}");
        let f = one(move |x| ops::searchsorted(&x[0], &x[1], side));
        let ex = [sorted(&mut rng, &[6]), rng.normal(&[2, 3])];
        check_grads(&name, &f, &ex, &mut rng);
        for m in masks(2) {
            let args = batch_args(&ex, &m, |i, s| {
                if i == 0 {
                    sorted(&mut rng, s)
                } else {
                    rng.normal(s)
                }
            });
            check_vmap(&format!("{name} batched {m:?}"), &f, &args, &m);
        }
        // Ties and NaNs (sorted last), batched sorted arrays.
        let nan = f64::NAN;
        let a = Array::from_slice(
            &[
                1.0, 2.0, 2.0, 3.0, nan, 0.0, 0.0, 2.0, nan, nan, -1.0, 2.0, 3.0, 3.0, 4.0,
            ],
            &[3, 5],
        )
        .unwrap();
        let v = Array::from_slice(&[2.0, nan, 0.0, 3.0, -0.0, 5.0], &[6]).unwrap();
        check_vmap(
            &format!("{name} ties"),
            &f,
            &[a.clone(), v.clone()],
            &[true, false],
        );
        let vb = ops::stack(
            &[
                v.clone(),
                ops::negative(&v).unwrap(),
                ops::add(&v, 1.0).unwrap(),
            ],
            0,
        )
        .unwrap();
        check_vmap(
            &format!("{name} ties, both"),
            &f,
            &[a.clone(), vb],
            &[true, true],
        );
        // Integers.
        let ai = a.astype(Dtype::Int32).unwrap();
        let ai = ops::sort(&ops::where_(a.isnan().unwrap(), 9, &ai).unwrap(), -1).unwrap();
        let vi = Array::from_slice(&[2i32, 0, 3, 9, -5], &[5]).unwrap();
        check_vmap(&format!("{name} int"), &f, &[ai, vi], &[true, false]);
    }
}

// ---------------------------------------------------------------------------------------------
// Second order

/// The vjp of `f` at `x` as a function of the cotangents: checking it checks the rules of the
/// ops the first-order rules build (vjp and jvp of a vjp, vmap of a vjp).
fn vjp_fun(f: Fun, x: Vec<Array>) -> Fun {
    Box::new(move |cts| Ok(vjp(|p| f(p), &x, cts)?.1))
}

#[test]
fn second_order() {
    let mut rng = Rng::new(20);
    let (i35, d32, i4, d2) = (
        rng.ints(&[3, 5], 4),
        rng.distinct(&[3, 2], 1, 4),
        rng.ints(&[4], 5),
        rng.distinct(&[2], 0, 5),
    );
    let g3 = rng.nonneg(&[3], 4);
    let cases: Vec<(&str, Fun, Vec<Vec<usize>>)> = vec![
        (
            "slice",
            one(|x| ops::slice(&x[0], &[1, 3], &[4, 0], &[2, -1])),
            vec![vec![4, 5]],
        ),
        (
            "slice_update",
            one(|x| ops::slice_update(&x[0], &x[1], &[0, 1], &[4, 5], &[2, 1])),
            vec![vec![4, 5], vec![2, 4]],
        ),
        (
            "at.add",
            one(|x| x[0].at(s![1..3]).add(&x[1])),
            vec![vec![4, 3], vec![2, 3]],
        ),
        (
            "take_along_axis",
            {
                let i = i35.clone();
                one(move |x| ops::take_along_axis(&x[0], &i, 1))
            },
            vec![vec![3, 4]],
        ),
        (
            "put_along_axis",
            {
                let i = d32.clone();
                one(move |x| ops::put_along_axis(&x[0], &i, &x[1], 1))
            },
            vec![vec![3, 4], vec![3, 2]],
        ),
        (
            "scatter_add_axis",
            {
                let i = i35.clone();
                one(move |x| ops::scatter_add_axis(&x[0], &i, &x[1], 1))
            },
            vec![vec![3, 4], vec![3, 5]],
        ),
        (
            "gather",
            {
                let i = g3.clone();
                one(move |x| ops::gather(&x[0], std::slice::from_ref(&i), &[0], &[2, 4]))
            },
            vec![vec![5, 4]],
        ),
        (
            "scatter",
            {
                let i = d2.clone();
                one(move |x| ops::scatter(&x[0], std::slice::from_ref(&i), &x[1], &[0]))
            },
            vec![vec![5, 3], vec![2, 1, 3]],
        ),
        (
            "scatter_add",
            {
                let i = i4.clone();
                one(move |x| ops::scatter_add(&x[0], std::slice::from_ref(&i), &x[1], &[0]))
            },
            vec![vec![5, 3], vec![4, 1, 3]],
        ),
        ("diag", one(|x| ops::diag(&x[0], 1)), vec![vec![3]]),
        ("triu", one(|x| ops::triu(&x[0], 0)), vec![vec![3, 4]]),
        ("sort", one(|x| ops::sort(&x[0], 1)), vec![vec![3, 5]]),
        (
            "partition",
            one(|x| ops::partition(&x[0], 2, 1)),
            vec![vec![3, 5]],
        ),
        ("topk", one(|x| ops::topk(&x[0], 2, 1)), vec![vec![3, 5]]),
    ];
    for (name, f, shapes) in cases {
        let x: Vec<Array> = shapes.iter().map(|s| rng.normal(s)).collect();
        let out_shapes: Vec<Vec<usize>> =
            f(&x).unwrap().iter().map(|o| o.shape().to_vec()).collect();
        let g = vjp_fun(f, x);
        let cts: Vec<Array> = out_shapes.iter().map(|s| rng.normal(s)).collect();
        check_grads(&format!("vjp of {name}"), &g, &cts, &mut rng);
        let cts: Vec<Array> = out_shapes
            .iter()
            .map(|s| rng.normal(&with_batch(s)))
            .collect();
        check_vmap(&format!("vjp of {name}"), &g, &cts, &vec![true; cts.len()]);
    }
}

// ---------------------------------------------------------------------------------------------
// The checkers themselves catch wrong rules.

/// A permutation of a vector of 3, with the given rules (wrong ones below); the function's own
/// derivation goes through indexing rules only.
fn permuted() -> umx::transforms::CustomFunction {
    umx::transforms::custom_function("permuted", |x| {
        let idx = Array::from_slice(&[2i32, 0, 1], &[3])?;
        Ok(vec![ops::take(&x[0], &idx, Some(-1))?])
    })
}

#[test]
#[should_panic(expected = "finite differences")]
fn checker_catches_a_wrong_vjp() {
    let f = permuted().with_vjp(|_, cots, _| Ok(vec![ops::multiply(&cots[0], 3.0)?]));
    let fun = one(move |x| Ok(f.call(x)?.remove(0)));
    check_grads(
        "wrong vjp",
        &fun,
        &[Rng::new(13).normal(&[3])],
        &mut Rng::new(14),
    );
}

#[test]
#[should_panic(expected = "finite differences")]
fn checker_catches_a_wrong_jvp() {
    let f = permuted().with_jvp(|_, tans| Ok(vec![ops::multiply(&tans[0], 3.0)?]));
    let fun = one(move |x| Ok(f.call(x)?.remove(0)));
    check_grads(
        "wrong jvp",
        &fun,
        &[Rng::new(15).normal(&[3])],
        &mut Rng::new(16),
    );
}

#[test]
#[should_panic(expected = "the loop gives")]
fn checker_catches_a_wrong_vmap() {
    let f = permuted().with_vmap(|x, axes| Ok((vec![ops::multiply(&x[0], 3.0)?], axes.to_vec())));
    let fun = one(move |x| Ok(f.call(x)?.remove(0)));
    check_vmap("wrong vmap", &fun, &[Rng::new(17).normal(&[N, 3])], &[true]);
}
