//! The op table's machinery for `conformance/transforms.rs`: input domains, deterministic random
//! inputs, and the three checks every table entry drives.
//!
//! * [`check_vjp`]: the vector-Jacobian product against central finite differences in
//!   float64. With random cotangents `c` the scalar `L(x) = sum_j <c_j, f_j(x)>` has gradient
//!   `vjp(c)`; for a few random directions `v` per input, `<vjp(c)_i, v>` must match
//!   `(L(x + eps v) - L(x - eps v)) / 2 eps`. On a mismatch the whole finite-difference gradient
//!   of that input is computed element by element, so the report names the elements that differ.
//! * [`check_jvp`]: the Jacobian-vector product, element by element, against the central
//!   difference of `f` along random tangents (one input at a time, then all at once).
//! * [`check_vmap`]: `vmap(f)` over a batch axis inserted first, second or last (with `in_axes` `None`
//!   for shared inputs) against a loop that takes each example out with `ops::take`, applies `f`
//!   and stacks the results with `ops::stack`.
#![allow(dead_code)]

use crate::common::{Input, Layout, make};
use umx::prelude::*;
use umx::transforms::{jvp, vjp, vmap};

/// Where an input's values are drawn from.
#[derive(Clone, Copy, Debug)]
pub enum Dom {
    /// Uniform in `[lo, hi]`.
    Real(f64, f64),
    /// `|x|` uniform in `[lo, hi]`, random sign: away from zero (abs, sign, reciprocal...).
    AwayZero(f64, f64),
    /// Uniform in `[lo, hi]` with the fractional part in `[0.1, 0.4] ∪ [0.6, 0.9]`: away from
    /// the integers and the halves where floor, ceil and round jump.
    Frac(f64, f64),
    /// Integers uniform in `[lo, hi]`.
    Int(i64, i64),
    /// Integers uniform in `[lo, hi]` but never 0 (divisors).
    IntNonZero(i64, i64),
    /// Booleans.
    Bool,
}

/// A small deterministic generator (splitmix64): the same inputs on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-300);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    pub fn normals(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.normal()).collect()
    }
    pub fn draw(&mut self, dom: Dom, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| match dom {
                Dom::Real(lo, hi) => self.uniform(lo, hi),
                Dom::AwayZero(lo, hi) => {
                    let m = self.uniform(lo, hi);
                    if self.unit() < 0.5 { -m } else { m }
                }
                Dom::Frac(lo, hi) => {
                    let base = self.uniform(lo, hi).floor();
                    let f = self.uniform(0.1, 0.4);
                    base + if self.unit() < 0.5 { f } else { f + 0.5 }
                }
                Dom::Int(lo, hi) => (lo + (self.next_u64() % (hi - lo + 1) as u64) as i64) as f64,
                Dom::IntNonZero(lo, hi) => loop {
                    let v = lo + (self.next_u64() % (hi - lo + 1) as u64) as i64;
                    if v != 0 {
                        break v as f64;
                    }
                },
                Dom::Bool => (self.unit() < 0.5) as u8 as f64,
            })
            .collect()
    }
}

/// An array of `dtype` with the given values, shape and memory layout.
pub fn build(values: &[f64], shape: &[usize], dtype: Dtype, layout: Layout) -> Array {
    let input = Input {
        dtype,
        shape: shape.to_vec(),
        values: values.iter().map(|&v| (v, 0.0)).collect(),
    };
    make(&input, layout)
}

/// A contiguous float64 array.
pub fn f64s(values: &[f64], shape: &[usize]) -> Array {
    Array::from_slice(values, shape).unwrap()
}

pub fn vals(a: &Array) -> Result<Vec<f64>> {
    a.to_vec::<f64>()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// A function of the table: arrays to arrays.
pub type Fun<'a> = &'a dyn Fn(&[Array]) -> Result<Vec<Array>>;

/// Tolerances of the derivative checks: `|analytic - fd| <= atol + rtol * (|analytic| + |fd|)`.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub eps: f64,
    pub rtol: f64,
    pub atol: f64,
}

impl Default for Tol {
    fn default() -> Tol {
        Tol {
            eps: 1e-6,
            rtol: 1e-5,
            atol: 1e-6,
        }
    }
}

fn close(a: f64, b: f64, tol: Tol) -> bool {
    (a - b).abs() <= tol.atol + tol.rtol * (a.abs() + b.abs())
}

/// `f` at `xs` (float64 arrays given as values and shapes), every output read as f64.
fn eval_at(f: Fun, xs: &[(Vec<f64>, Vec<usize>)]) -> Result<Vec<Vec<f64>>> {
    let arrays: Vec<Array> = xs.iter().map(|(v, s)| f64s(v, s)).collect();
    f(&arrays)?.iter().map(vals).collect()
}

/// The inputs moved by `eps * dirs` (one direction per input; `None` leaves it in place).
fn moved(
    base: &[(Vec<f64>, Vec<usize>)],
    dirs: &[Option<Vec<f64>>],
    eps: f64,
) -> Vec<(Vec<f64>, Vec<usize>)> {
    base.iter()
        .zip(dirs)
        .map(|((v, s), d)| match d {
            Some(d) => (
                v.iter().zip(d).map(|(x, dx)| x + eps * dx).collect(),
                s.clone(),
            ),
            None => (v.clone(), s.clone()),
        })
        .collect()
}

/// Central difference of every output of `f` along `dirs`.
fn fd_outputs(
    f: Fun,
    base: &[(Vec<f64>, Vec<usize>)],
    dirs: &[Option<Vec<f64>>],
    eps: f64,
) -> Result<Vec<Vec<f64>>> {
    let plus = eval_at(f, &moved(base, dirs, eps))?;
    let minus = eval_at(f, &moved(base, dirs, -eps))?;
    Ok(plus
        .iter()
        .zip(&minus)
        .map(|(p, m)| {
            p.iter()
                .zip(m)
                .map(|(a, b)| (a - b) / (2.0 * eps))
                .collect()
        })
        .collect())
}

fn fmt_vals(v: &[f64]) -> String {
    let shown: Vec<String> = v.iter().take(6).map(|x| format!("{x:.6}")).collect();
    if v.len() > 6 {
        format!("[{}, ...]", shown.join(", "))
    } else {
        format!("[{}]", shown.join(", "))
    }
}

/// Checks that the arrays `got` hold the values of `want` (computed by `f` directly).
fn check_primal(what: &str, got: &[Array], want: &[Vec<f64>]) -> std::result::Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: {} outputs, the function gives {}",
            got.len(),
            want.len()
        ));
    }
    for (j, (g, w)) in got.iter().zip(want).enumerate() {
        let g = vals(g).map_err(|e| format!("{what}: output {j}: {e}"))?;
        if g.iter().zip(w).any(|(a, b)| {
            !(a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-12 * (1.0 + b.abs()))
        }) {
            return Err(format!(
                "{what}: output {j} is {} but the function gives {}",
                fmt_vals(&g),
                fmt_vals(w)
            ));
        }
    }
    Ok(())
}

/// The vjp of `f` at `xs` (float64 arrays, any layout) against central differences.
pub fn check_vjp(f: Fun, xs: &[Array], seed: u64, tol: Tol) -> std::result::Result<(), String> {
    let mut rng = Rng::new(seed);
    let e = |e: Error| e.to_string();
    let base: Vec<(Vec<f64>, Vec<usize>)> = xs
        .iter()
        .map(|x| Ok((vals(x)?, x.shape().to_vec())))
        .collect::<Result<_>>()
        .map_err(e)?;
    let outs = f(xs).map_err(e)?;
    let want: Vec<Vec<f64>> = outs.iter().map(vals).collect::<Result<_>>().map_err(e)?;
    // Outputs that are not finite (the -inf that starts an exclusive logcumsumexp, ...) get
    // a zero cotangent and are left out of the finite differences.
    let cots_v: Vec<Vec<f64>> = outs
        .iter()
        .zip(&want)
        .map(|(o, w)| {
            let c = rng.normals(o.size());
            c.iter()
                .zip(w)
                .map(|(c, w)| if w.is_finite() { *c } else { 0.0 })
                .collect()
        })
        .collect();
    let cots: Vec<Array> = cots_v
        .iter()
        .zip(&outs)
        .map(|(c, o)| f64s(c, o.shape()))
        .collect();
    let (vjp_outs, grads) = vjp(f, xs, &cots).map_err(e)?;
    check_primal("vjp", &vjp_outs, &want)?;
    if grads.len() != xs.len() {
        return Err(format!(
            "vjp gave {} cotangents for {} inputs",
            grads.len(),
            xs.len()
        ));
    }
    let loss = |outs: &[Vec<f64>]| -> f64 {
        let mut total = 0.0;
        for ((o, c), w) in outs.iter().zip(&cots_v).zip(&want) {
            for ((o, c), w) in o.iter().zip(c).zip(w) {
                if w.is_finite() {
                    total += o * c;
                }
            }
        }
        total
    };
    for (i, (g, x)) in grads.iter().zip(xs).enumerate() {
        if g.shape() != x.shape() || g.dtype() != x.dtype() {
            return Err(format!(
                "vjp: cotangent {i} is {}{:?}, the input is {}{:?}",
                g.dtype(),
                g.shape(),
                x.dtype(),
                x.shape()
            ));
        }
        let g = vals(g).map_err(|e| format!("vjp: cotangent {i}: {e}"))?;
        for k in 0..3 {
            let v = rng.normals(x.size());
            let mut dirs: Vec<Option<Vec<f64>>> = vec![None; xs.len()];
            dirs[i] = Some(v.clone());
            let fd = fd_outputs(f, &base, &dirs, tol.eps).map_err(e)?;
            let want = loss(&fd);
            let got = dot(&g, &v);
            if !close(got, want, tol) {
                // Locate the wrong elements: the whole finite-difference gradient of input i.
                let n = x.size();
                let mut fd_grad = Vec::with_capacity(n);
                for el in 0..n {
                    let mut d = vec![0.0; n];
                    d[el] = 1.0;
                    let mut dirs: Vec<Option<Vec<f64>>> = vec![None; xs.len()];
                    dirs[i] = Some(d);
                    fd_grad.push(loss(&fd_outputs(f, &base, &dirs, tol.eps).map_err(e)?));
                }
                let bad: Vec<usize> = (0..n)
                    .filter(|&el| !close(g[el], fd_grad[el], tol))
                    .collect();
                return Err(format!(
                    "vjp of input {i}, direction {k}: <vjp, v> = {got:.8} but finite differences \
                     give {want:.8}; {} of {n} elements differ, first at {:?}: vjp {} vs fd {}",
                    bad.len(),
                    bad.first(),
                    fmt_vals(&g),
                    fmt_vals(&fd_grad)
                ));
            }
        }
    }
    Ok(())
}

/// The jvp of `f` at `xs` against central differences of every output element, for random
/// tangents of one input at a time and then of all inputs at once.
pub fn check_jvp(f: Fun, xs: &[Array], seed: u64, tol: Tol) -> std::result::Result<(), String> {
    let mut rng = Rng::new(seed ^ 0x5151);
    let e = |e: Error| e.to_string();
    let base: Vec<(Vec<f64>, Vec<usize>)> = xs
        .iter()
        .map(|x| Ok((vals(x)?, x.shape().to_vec())))
        .collect::<Result<_>>()
        .map_err(e)?;
    let want_primal: Vec<Vec<f64>> = f(xs)
        .map_err(e)?
        .iter()
        .map(vals)
        .collect::<Result<_>>()
        .map_err(e)?;
    let mut cases: Vec<(String, Vec<Option<Vec<f64>>>)> = Vec::new();
    for i in 0..xs.len() {
        for k in 0..2 {
            let mut dirs: Vec<Option<Vec<f64>>> = vec![None; xs.len()];
            dirs[i] = Some(rng.normals(xs[i].size()));
            cases.push((format!("tangent of input {i} ({k})"), dirs));
        }
    }
    if xs.len() > 1 {
        let dirs = xs.iter().map(|x| Some(rng.normals(x.size()))).collect();
        cases.push(("tangents of all inputs".into(), dirs));
    }
    for (label, dirs) in cases {
        let tangents: Vec<Array> = dirs
            .iter()
            .zip(xs)
            .map(|(d, x)| match d {
                Some(d) => f64s(d, x.shape()),
                None => ops::zeros(x.shape(), Dtype::Float64).unwrap(),
            })
            .collect();
        let (outs, tans) = jvp(f, xs, &tangents).map_err(e)?;
        check_primal("jvp", &outs, &want_primal)?;
        let fd = fd_outputs(f, &base, &dirs, tol.eps).map_err(e)?;
        for (j, (t, want)) in tans.iter().zip(&fd).enumerate() {
            if t.shape() != outs[j].shape() {
                return Err(format!(
                    "jvp, {label}: tangent of output {j} has shape {:?}, the output {:?}",
                    t.shape(),
                    outs[j].shape()
                ));
            }
            let got = vals(t).map_err(e)?;
            let bad: Vec<usize> = (0..got.len())
                .filter(|&el| want_primal[j][el].is_finite() && !close(got[el], want[el], tol))
                .collect();
            if let Some(&first) = bad.first() {
                return Err(format!(
                    "jvp, {label}: output {j} element {first}: jvp {:.8} vs fd {:.8} ({} of {} \
                     differ); jvp {} vs fd {}",
                    got[first],
                    want[first],
                    bad.len(),
                    got.len(),
                    fmt_vals(&got),
                    fmt_vals(want)
                ));
            }
        }
    }
    Ok(())
}

/// One input of a vmap check: its example shape, dtype, layout and domain, and whether it is
/// mapped.
pub struct VmapInput {
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    pub layout: Layout,
    pub dom: Dom,
    pub mapped: bool,
}

/// Compares two arrays: same dtype and shape; floats within 1e-10 relative, others exactly.
pub fn same(what: &str, got: &Array, want: &Array) -> std::result::Result<(), String> {
    if got.dtype() != want.dtype() || got.shape() != want.shape() {
        return Err(format!(
            "{what}: got {}{:?}, expected {}{:?}",
            got.dtype(),
            got.shape(),
            want.dtype(),
            want.shape()
        ));
    }
    let g = vals(got).map_err(|e| format!("{what}: {e}"))?;
    let w = vals(want).map_err(|e| format!("{what}: {e}"))?;
    let float = want.dtype().is_inexact();
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = if float {
            (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-10 * (1.0 + b.abs())
        } else {
            a == b
        };
        if !ok {
            return Err(format!(
                "{what}: element {i} is {a} but the loop gives {b}; got {} expected {}",
                fmt_vals(&g),
                fmt_vals(&w)
            ));
        }
    }
    Ok(())
}

/// Where a vmap check puts the batch axis of each mapped input and of the outputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pos {
    /// Axis 0.
    First,
    /// Axis 1 (axis 0 of a 0-d example); in_axes and out_axes 1.
    Middle,
    /// The last axis; in_axes and out_axes -1.
    Last,
}

impl Pos {
    /// (where the axis goes in an example of `ndim` dimensions, the in_axes/out_axes value)
    fn place(self, ndim: usize) -> (usize, i64) {
        match self {
            Pos::First => (0, 0),
            Pos::Middle if ndim >= 1 => (1, 1),
            Pos::Middle => (0, 0),
            Pos::Last => (ndim, -1),
        }
    }
}

/// `vmap(f)` with a batch of `n` examples at `pos` of every mapped input (and of every output)
/// against a loop over the examples.
pub fn check_vmap(
    f: Fun,
    inputs: &[VmapInput],
    pos: Pos,
    n: usize,
    seed: u64,
) -> std::result::Result<(), String> {
    let mut rng = Rng::new(seed ^ 0xabcd);
    let e = |e: Error| e.to_string();
    let mut args = Vec::new();
    let mut in_axes = Vec::new();
    for inp in inputs {
        if inp.mapped {
            let mut shape = inp.shape.clone();
            let (ax, spec) = pos.place(shape.len());
            shape.insert(ax, n);
            let v = rng.draw(inp.dom, shape.iter().product());
            args.push(build(&v, &shape, inp.dtype, inp.layout));
            in_axes.push(Some(spec));
        } else {
            let v = rng.draw(inp.dom, inp.shape.iter().product());
            args.push(build(&v, &inp.shape, inp.dtype, inp.layout));
            in_axes.push(None);
        }
    }
    // The loop.
    let mut per_example: Vec<Vec<Array>> = Vec::new();
    for b in 0..n {
        let idx = Array::scalar(b as i32);
        let ex: Vec<Array> = args
            .iter()
            .zip(&in_axes)
            .map(|(a, ax)| match ax {
                Some(ax) => ops::take(a, &idx, Some(*ax)),
                None => Ok(a.clone()),
            })
            .collect::<Result<_>>()
            .map_err(e)?;
        per_example.push(f(&ex).map_err(|err| format!("the function on example {b}: {err}"))?);
    }
    let n_outs = per_example[0].len();
    // Out axis 1 only where every output has one to spare.
    let min_ndim = per_example[0].iter().map(Array::ndim).min().unwrap_or(0);
    let out_ax = pos.place(min_ndim).1;
    let want: Vec<Array> = (0..n_outs)
        .map(|j| {
            let col: Vec<Array> = per_example.iter().map(|o| o[j].clone()).collect();
            ops::stack(&col, out_ax)
        })
        .collect::<Result<_>>()
        .map_err(e)?;
    let out_axes = [Some(out_ax)];
    let g = vmap(f, &in_axes, &out_axes);
    let got = g(&args).map_err(e)?;
    if got.len() != want.len() {
        return Err(format!(
            "vmap gave {} outputs, the loop {}",
            got.len(),
            want.len()
        ));
    }
    for (j, (g, w)) in got.iter().zip(&want).enumerate() {
        same(&format!("output {j}"), g, w)?;
    }
    Ok(())
}
