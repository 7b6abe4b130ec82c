//! Transformations: vjp, jvp, grad, vmap and their compositions, driven by one op table (in the
//! manner of PyTorch's OpInfo).
//!
//! Every entry of [`table`] names an op, a closure computing it from its inputs, sample input
//! shapes (broadcasting pairs, 0-d inputs, and non-contiguous layouts: `T` marks a transposed
//! view, `S` a strided one), the domain its inputs are drawn from (away from the kinks and
//! jumps of abs, floor, round...), its input dtypes, and whether it is differentiable and
//! batchable. Three checks run over the table, per family of primitives (so a family's tests
//! pass as soon as its rules land):
//!
//! * `vjp_<family>`: the vjp in float64 against central finite differences (`common/fd.rs`);
//! * `jvp_<family>`: the jvp against finite differences, element by element;
//! * `vmap_<family>`: vmap over a batch axis inserted first, second and last (in_axes and
//!   out_axes 0, 1 and -1), and with `in_axes` `None` for some inputs, against a loop that
//!   takes each example with `ops::take`, applies the op and stacks the results. This one
//!   covers every entry, differentiable or not (comparisons, argmax, integer and bool ops).
//!
//! The compositions (grad of grad, jvp of vjp, vmap of grad, ..., checkpoint) and training
//! tests are in `transforms_compose.rs`, the errors and edge cases in `transforms_errors.rs`.
//! Checkpoint's memory test lives alone in `transforms_memory.rs` (the memory statistics are
//! process-wide).

use crate::common;
use crate::fd;

use common::Layout;
use fd::{Dom, Pos, Rng, Tol, VmapInput, check_jvp, check_vjp, check_vmap, vals};
use umx::Axes;
use umx::ops::PadMode;
use umx::prelude::*;
use umx::transforms::{custom_function, stop_gradient};

// ---------------------------------------------------------------------------------------------
// The op table.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Unary,
    Binary,
    Ternary,
    Reduce,
    Scan,
    Shape,
    Matmul,
    Indexing,
    Sort,
    Creation,
    Random,
}

type Fx = Box<dyn Fn(&[Array]) -> Result<Vec<Array>>>;
type ArrFn = Box<dyn Fn(&Array) -> Result<Array>>;

/// The example inputs of one call: shape and layout of each input.
type Sample = Vec<(Vec<usize>, Layout)>;

struct OpInfo {
    name: String,
    family: Family,
    f: Fx,
    samples: Vec<Sample>,
    /// One per input; the last one repeats.
    doms: Vec<Dom>,
    /// One per input; the last one repeats.
    dtypes: Vec<Dtype>,
    grad: bool,
    vmap: bool,
    tol: Tol,
}

/// `"3x4T 4"`: two inputs, a transposed 3x4 view and a contiguous vector; `()` is 0-d, a
/// trailing `S` a strided view.
fn parse_sample(s: &str) -> Sample {
    s.split_whitespace()
        .map(|tok| {
            let (dims, layout) = if let Some(d) = tok.strip_suffix('T') {
                (d, Layout::Transposed)
            } else if let Some(d) = tok.strip_suffix('S') {
                (d, Layout::Strided)
            } else {
                (tok, Layout::Contiguous)
            };
            let shape = if dims == "()" {
                vec![]
            } else {
                dims.split('x').map(|d| d.parse().unwrap()).collect()
            };
            (shape, layout)
        })
        .collect()
}

impl OpInfo {
    fn new(family: Family, name: &str, f: impl Fn(&[Array]) -> Result<Array> + 'static) -> Self {
        Self::multi(family, name, move |x| Ok(vec![f(x)?]))
    }

    fn multi(
        family: Family,
        name: &str,
        f: impl Fn(&[Array]) -> Result<Vec<Array>> + 'static,
    ) -> Self {
        OpInfo {
            name: name.to_string(),
            family,
            f: Box::new(f),
            samples: vec![],
            doms: vec![Dom::Real(-2.0, 2.0)],
            dtypes: vec![Dtype::Float64],
            grad: true,
            vmap: true,
            tol: Tol::default(),
        }
    }

    fn samples(mut self, s: &[&str]) -> Self {
        self.samples = s.iter().map(|s| parse_sample(s)).collect();
        self
    }
    fn dom(mut self, d: Dom) -> Self {
        self.doms = vec![d];
        self
    }
    fn doms(mut self, d: &[Dom]) -> Self {
        self.doms = d.to_vec();
        self
    }
    /// Inputs of a non-float dtype: vmap only.
    fn dtypes(mut self, d: &[Dtype]) -> Self {
        self.dtypes = d.to_vec();
        if d.iter().any(|d| !d.is_inexact()) {
            self.grad = false;
        }
        self
    }
    fn no_grad(mut self) -> Self {
        self.grad = false;
        self
    }
    fn tol(mut self, eps: f64, rtol: f64, atol: f64) -> Self {
        self.tol = Tol { eps, rtol, atol };
        self
    }
    fn dom_of(&self, i: usize) -> Dom {
        self.doms[i.min(self.doms.len() - 1)]
    }
    fn dtype_of(&self, i: usize) -> Dtype {
        self.dtypes[i.min(self.dtypes.len() - 1)]
    }
}

use Family::*;

const UNARY_SAMPLES: &[&str] = &["()", "5", "3x4T", "2x3x4", "4x3S"];
const BINARY_SAMPLES: &[&str] = &[
    "3x4 3x4",
    "3x4T 4",
    "2x1x4 3x1",
    "() 3",
    "3x4 3x4T",
    "4 2x4S",
];

fn unary(name: &str, f: fn(&Array) -> Result<Array>, dom: Dom) -> OpInfo {
    OpInfo::new(Unary, name, move |x| f(&x[0]))
        .samples(UNARY_SAMPLES)
        .dom(dom)
}

fn binary(name: &str, f: fn(&Array, &Array) -> Result<Array>, doms: &[Dom]) -> OpInfo {
    OpInfo::new(Binary, name, move |x| f(&x[0], &x[1]))
        .samples(BINARY_SAMPLES)
        .doms(doms)
}

fn table() -> Vec<OpInfo> {
    let real = Dom::Real(-2.0, 2.0);
    let pos = Dom::Real(0.2, 3.0);
    let unit = Dom::Real(-0.9, 0.9);
    let away = Dom::AwayZero(0.3, 2.0);
    let mut t = vec![
        // ---- unary ----
        unary("abs", ops::abs, Dom::AwayZero(0.1, 2.0)),
        unary("negative", ops::negative, real),
        unary("sign", ops::sign, Dom::AwayZero(0.1, 2.0)),
        unary("sqrt", ops::sqrt, pos),
        unary("rsqrt", ops::rsqrt, pos),
        unary("square", ops::square, real),
        unary("reciprocal", ops::reciprocal, away),
        unary("exp", ops::exp, real),
        unary("expm1", ops::expm1, real),
        unary("log", ops::log, pos),
        unary("log1p", ops::log1p, Dom::Real(-0.5, 3.0)),
        unary("log2", ops::log2, pos),
        unary("log10", ops::log10, pos),
        unary("sin", ops::sin, Dom::Real(-3.0, 3.0)),
        unary("cos", ops::cos, Dom::Real(-3.0, 3.0)),
        unary("tan", ops::tan, Dom::Real(-1.2, 1.2)),
        unary("arcsin", ops::arcsin, unit),
        unary("arccos", ops::arccos, unit),
        unary("arctan", ops::arctan, Dom::Real(-3.0, 3.0)),
        unary("sinh", ops::sinh, real),
        unary("cosh", ops::cosh, real),
        unary("tanh", ops::tanh, real),
        unary("arcsinh", ops::arcsinh, Dom::Real(-3.0, 3.0)),
        unary("arccosh", ops::arccosh, Dom::Real(1.2, 3.0)),
        unary("arctanh", ops::arctanh, unit),
        unary("floor", ops::floor, Dom::Frac(-3.0, 3.0)),
        unary("ceil", ops::ceil, Dom::Frac(-3.0, 3.0)),
        unary("round", |x| ops::round(x, 0), Dom::Frac(-3.0, 3.0)),
        unary("erf", ops::erf, real),
        unary("erfinv", ops::erfinv, unit),
        unary("sigmoid", ops::sigmoid, Dom::Real(-3.0, 3.0)),
        unary("degrees", ops::degrees, real),
        unary("radians", ops::radians, real),
        unary("nan_to_num", |x| ops::nan_to_num(x, 0.0, None, None), real),
        // float64 -> float32 -> float64: steps of 1e-2 dwarf float32's rounding.
        unary(
            "astype_f32_and_back",
            |x| ops::astype(&ops::astype(x, Dtype::Float32)?, Dtype::Float64),
            real,
        )
        .tol(1e-2, 1e-3, 1e-3),
        unary("astype_f32", |x| ops::astype(x, Dtype::Float32), real).no_grad(),
        unary("abs_int", ops::abs, Dom::Int(-5, 5)).dtypes(&[Dtype::Int32]),
        unary("negative_int", ops::negative, Dom::Int(-5, 5)).dtypes(&[Dtype::Int32]),
        unary("square_int", ops::square, Dom::Int(-5, 5)).dtypes(&[Dtype::Int32]),
        unary("sqrt_of_int", ops::sqrt, Dom::Int(0, 9)).dtypes(&[Dtype::Int32]),
        unary("logical_not", ops::logical_not, Dom::Bool).dtypes(&[Dtype::Bool]),
        unary("isnan", ops::isnan, real).no_grad(),
        // ---- binary ----
        binary("add", |a, b| ops::add(a, b), &[real]),
        binary("subtract", |a, b| ops::subtract(a, b), &[real]),
        binary("multiply", |a, b| ops::multiply(a, b), &[real]),
        binary(
            "divide",
            |a, b| ops::divide(a, b),
            &[real, Dom::AwayZero(0.5, 2.0)],
        ),
        binary(
            "power",
            |a, b| ops::power(a, b),
            &[Dom::Real(0.5, 2.0), real],
        ),
        binary("arctan2", |a, b| ops::arctan2(a, b), &[away]),
        binary(
            "logaddexp",
            |a, b| ops::logaddexp(a, b),
            &[Dom::Real(-3.0, 3.0)],
        ),
        binary("maximum", |a, b| ops::maximum(a, b), &[real]),
        binary("minimum", |a, b| ops::minimum(a, b), &[real]),
        binary(
            "remainder",
            |a, b| ops::remainder(a, b),
            &[Dom::Real(-3.0, 3.0), Dom::AwayZero(0.5, 2.0)],
        ),
        binary(
            "floor_divide",
            |a, b| ops::floor_divide(a, b),
            &[Dom::Real(-3.0, 3.0), Dom::AwayZero(0.5, 2.0)],
        ),
        OpInfo::new(Binary, "add_scalar", |x| ops::add(&x[0], 2.5)).samples(UNARY_SAMPLES),
        OpInfo::new(Binary, "rsub_scalar", |x| ops::subtract(1.5, &x[0])).samples(UNARY_SAMPLES),
        OpInfo::new(Binary, "rdivide_scalar", |x| ops::divide(1.0, &x[0]))
            .samples(UNARY_SAMPLES)
            .dom(away),
        OpInfo::new(Binary, "power_cube", |x| ops::power(&x[0], 3.0)).samples(UNARY_SAMPLES),
        OpInfo::new(Binary, "power_base_2", |x| ops::power(2.0, &x[0])).samples(UNARY_SAMPLES),
        OpInfo::new(Binary, "maximum_0", |x| ops::maximum(&x[0], 0.0))
            .samples(UNARY_SAMPLES)
            .dom(Dom::AwayZero(0.1, 2.0)),
        OpInfo::new(Binary, "clip_scalars", |x| ops::clip(&x[0], -0.5, 0.5))
            .samples(UNARY_SAMPLES)
            .dom(Dom::Real(-1.0, 1.0)),
        OpInfo::new(Binary, "clip_arrays", |x| ops::clip(&x[0], &x[1], &x[2]))
            .samples(&["3x4 3x4 3x4", "3x4T 4 3x1", "2x3 () 3"])
            .doms(&[real, Dom::Real(-1.0, -0.2), Dom::Real(0.2, 1.0)]),
        binary("equal", |a, b| ops::equal(a, b), &[Dom::Int(0, 2)]).no_grad(),
        binary("not_equal", |a, b| ops::not_equal(a, b), &[Dom::Int(0, 2)]).no_grad(),
        binary("less", |a, b| ops::less(a, b), &[real]).no_grad(),
        binary(
            "less_equal",
            |a, b| ops::less_equal(a, b),
            &[Dom::Int(0, 2)],
        )
        .no_grad(),
        binary("greater", |a, b| ops::greater(a, b), &[real]).no_grad(),
        binary(
            "greater_equal",
            |a, b| ops::greater_equal(a, b),
            &[Dom::Int(0, 2)],
        )
        .no_grad(),
        binary("add_int", |a, b| ops::add(a, b), &[Dom::Int(-9, 9)]).dtypes(&[Dtype::Int32]),
        binary(
            "multiply_int",
            |a, b| ops::multiply(a, b),
            &[Dom::Int(-9, 9)],
        )
        .dtypes(&[Dtype::Int32]),
        binary(
            "floor_divide_int",
            |a, b| ops::floor_divide(a, b),
            &[Dom::Int(-9, 9), Dom::IntNonZero(-4, 4)],
        )
        .dtypes(&[Dtype::Int32]),
        binary(
            "remainder_int",
            |a, b| ops::remainder(a, b),
            &[Dom::Int(-9, 9), Dom::IntNonZero(-4, 4)],
        )
        .dtypes(&[Dtype::Int32]),
        binary("maximum_int", |a, b| ops::maximum(a, b), &[Dom::Int(-9, 9)])
            .dtypes(&[Dtype::Int32]),
        binary("less_int", |a, b| ops::less(a, b), &[Dom::Int(-2, 2)]).dtypes(&[Dtype::Int32]),
        binary(
            "divide_int",
            |a, b| ops::divide(a, b),
            &[Dom::Int(-9, 9), Dom::IntNonZero(-4, 4)],
        )
        .dtypes(&[Dtype::Int32]),
        binary(
            "add_int_float",
            |a, b| ops::add(a, b),
            &[Dom::Int(-9, 9), real],
        )
        .dtypes(&[Dtype::Int32, Dtype::Float32]),
        binary("logical_and", |a, b| ops::logical_and(a, b), &[Dom::Bool]).dtypes(&[Dtype::Bool]),
        binary("logical_or", |a, b| ops::logical_or(a, b), &[Dom::Bool]).dtypes(&[Dtype::Bool]),
        // ---- ternary ----
        OpInfo::new(Ternary, "where", |x| {
            ops::where_(ops::greater(&x[0], 0.0)?, &x[1], &x[2])
        })
        .samples(&[
            "3x4 3x4 3x4",
            "3x1 1x4 3x4T",
            "() 3 3",
            "2x3x4 3x4 4",
            "4 2x4S ()",
        ])
        .doms(&[Dom::AwayZero(0.1, 1.0), real]),
        OpInfo::new(Ternary, "where_bool", |x| ops::where_(&x[0], &x[1], &x[2]))
            .samples(&["3x4 3x4 3x4", "3x1 1x4 3x4T", "4 2x4S ()"])
            .doms(&[Dom::Bool, real])
            .dtypes(&[Dtype::Bool, Dtype::Float64]),
        OpInfo::new(Ternary, "where_scalar", |x| {
            ops::where_(ops::less(&x[0], 0.5)?, &x[0], 0.0)
        })
        .samples(UNARY_SAMPLES)
        .dom(Dom::AwayZero(0.1, 1.0)),
    ];

    // ---- reductions ----
    let r2 = &["3x4", "3x4T", "2x3x4", "4x3S"];
    let r3 = &["2x3x4", "2x3x4T", "3x2x2S"];
    let red =
        |name: &str, f: ArrFn, s: &[&str]| OpInfo::new(Reduce, name, move |x| f(&x[0])).samples(s);
    t.extend([
        red(
            "sum",
            Box::new(|x| ops::sum(x, Axes::All, false)),
            &["()", "5", "3x4T"],
        ),
        red("sum_axis0", Box::new(|x| ops::sum(x, 0, false)), r2),
        red(
            "sum_axis-1_keepdims",
            Box::new(|x| ops::sum(x, -1, true)),
            r2,
        ),
        red("sum_axes02", Box::new(|x| ops::sum(x, [0, 2], false)), r3),
        red(
            "prod",
            Box::new(|x| ops::prod(x, Axes::All, false)),
            &["5", "3x4T"],
        )
        .dom(Dom::AwayZero(0.5, 1.5)),
        red("prod_axis1", Box::new(|x| ops::prod(x, 1, false)), r2).dom(Dom::AwayZero(0.5, 1.5)),
        red(
            "prod_axes12_keepdims",
            Box::new(|x| ops::prod(x, [1, 2], true)),
            r3,
        )
        .dom(Dom::AwayZero(0.5, 1.5)),
        red(
            "mean",
            Box::new(|x| ops::mean(x, Axes::All, false)),
            &["5", "3x4T", "2x3x4"],
        ),
        red(
            "mean_axis1_keepdims",
            Box::new(|x| ops::mean(x, 1, true)),
            r2,
        ),
        red(
            "max",
            Box::new(|x| ops::max(x, Axes::All, false)),
            &["5", "3x4T", "2x3x4"],
        ),
        red("max_axis0", Box::new(|x| ops::max(x, 0, false)), r2),
        red(
            "min_axis-1_keepdims",
            Box::new(|x| ops::min(x, -1, true)),
            r2,
        ),
        red("min_axes01", Box::new(|x| ops::min(x, [0, 1], false)), r3),
        red("var_axis1", Box::new(|x| ops::var(x, 1, false, 0)), r2),
        red(
            "var_ddof1",
            Box::new(|x| ops::var(x, Axes::All, false, 1)),
            &["5", "3x4T"],
        ),
        red(
            "std_axis0_keepdims",
            Box::new(|x| ops::std(x, 0, true, 0)),
            r2,
        ),
        red(
            "logsumexp",
            Box::new(|x| ops::logsumexp(x, Axes::All, false)),
            &["5", "3x4T"],
        ),
        red(
            "logsumexp_axis1",
            Box::new(|x| ops::logsumexp(x, 1, false)),
            r2,
        ),
        red(
            "softmax_axis-1",
            Box::new(|x| ops::softmax(x, -1, false)),
            r2,
        ),
        red(
            "softmax_axis0_precise",
            Box::new(|x| ops::softmax(x, 0, true)),
            r2,
        ),
        red(
            "softmax_all",
            Box::new(|x| ops::softmax(x, Axes::All, false)),
            &["3x4T"],
        ),
        red(
            "argmax_axis1",
            Box::new(|x| ops::argmax(x, Some(1), false)),
            r2,
        )
        .no_grad(),
        red(
            "argmax_all",
            Box::new(|x| ops::argmax(x, None, false)),
            &["5", "3x4T"],
        )
        .no_grad(),
        red(
            "argmin_axis0_keepdims",
            Box::new(|x| ops::argmin(x, Some(0), true)),
            r2,
        )
        .no_grad(),
        red("sum_int", Box::new(|x| ops::sum(x, 1, false)), r2)
            .dom(Dom::Int(-9, 9))
            .dtypes(&[Dtype::Int32]),
        red("max_int", Box::new(|x| ops::max(x, 0, false)), r2)
            .dom(Dom::Int(-9, 9))
            .dtypes(&[Dtype::Int32]),
        red("all", Box::new(|x| ops::all(x, 1, false)), r2)
            .dom(Dom::Bool)
            .dtypes(&[Dtype::Bool]),
        red("any", Box::new(|x| ops::any(x, Axes::All, false)), r2)
            .dom(Dom::Bool)
            .dtypes(&[Dtype::Bool]),
    ]);

    // ---- scans ----
    type ScanFn = fn(&Array, Option<i64>, bool, bool) -> Result<Array>;
    let scans: [(&str, ScanFn, Dom); 5] = [
        ("cumsum", ops::cumsum, real),
        ("cumprod", ops::cumprod, Dom::AwayZero(0.5, 1.5)),
        ("cummax", ops::cummax, real),
        ("cummin", ops::cummin, real),
        ("logcumsumexp", ops::logcumsumexp, real),
    ];
    for (name, f, dom) in scans {
        for (reverse, inclusive) in [(false, true), (true, true), (false, false), (true, false)] {
            let label = format!(
                "{name}_axis1{}{}",
                if reverse { "_reverse" } else { "" },
                if inclusive { "" } else { "_exclusive" }
            );
            let op = OpInfo::new(Scan, &label, move |x| f(&x[0], Some(1), reverse, inclusive))
                .samples(&["3x5", "3x5T", "2x3x4", "4x3S"])
                .dom(dom);
            // An exclusive scan starts from the identity (-inf for logcumsumexp and cummax):
            // the checks leave out outputs that are not finite.
            t.push(op);
        }
        t.push(
            OpInfo::new(Scan, &format!("{name}_axis0"), move |x| {
                f(&x[0], Some(0), false, true)
            })
            .samples(&["3x5", "3x5T"])
            .dom(dom),
        );
        t.push(
            OpInfo::new(Scan, &format!("{name}_flat_reverse"), move |x| {
                f(&x[0], None, true, true)
            })
            .samples(&["6", "3x4T"])
            .dom(dom),
        );
    }
    t.push(
        OpInfo::new(Scan, "cumsum_int", |x| {
            ops::cumsum(&x[0], Some(1), false, true)
        })
        .samples(&["3x5", "3x5T"])
        .dom(Dom::Int(-9, 9))
        .dtypes(&[Dtype::Int32]),
    );

    // ---- shape ops ----
    let sh =
        |name: &str, f: ArrFn, s: &[&str]| OpInfo::new(Shape, name, move |x| f(&x[0])).samples(s);
    t.extend([
        sh(
            "reshape_2x6",
            Box::new(|x| ops::reshape(x, &[2, 6])),
            &["3x4", "3x4T", "12", "4x3S"],
        ),
        sh(
            "reshape_flat",
            Box::new(|x| ops::reshape(x, &[-1])),
            &["3x4T", "2x3x4", "()"],
        ),
        sh(
            "flatten",
            Box::new(|x| ops::flatten(x, 0, -1)),
            &["2x3x4T", "3x4"],
        ),
        sh(
            "flatten_12",
            Box::new(|x| ops::flatten(x, 1, 2)),
            &["2x3x4", "2x3x4T"],
        ),
        sh(
            "unflatten",
            Box::new(|x| ops::unflatten(x, 1, &[2, 2])),
            &["3x4", "3x4T"],
        ),
        sh(
            "squeeze_axis1",
            Box::new(|x| ops::squeeze(x, 1)),
            &["3x1x4", "3x1x4T"],
        ),
        sh(
            "squeeze_all",
            Box::new(|x| ops::squeeze(x, Axes::All)),
            &["1x3x1", "1x1"],
        ),
        sh(
            "expand_dims_0",
            Box::new(|x| ops::expand_dims(x, 0)),
            &["3x4T", "()"],
        ),
        sh(
            "expand_dims_02",
            Box::new(|x| ops::expand_dims(x, [0, 2])),
            &["3x4", "3x4T"],
        ),
        sh(
            "expand_dims_-1",
            Box::new(|x| ops::expand_dims(x, -1)),
            &["3x4", "5"],
        ),
        sh(
            "transpose",
            Box::new(|x| ops::transpose(x, Axes::All)),
            &["2x3x4", "3x4T"],
        ),
        sh(
            "transpose_120",
            Box::new(|x| ops::transpose(x, [1, 2, 0])),
            &["2x3x4", "2x3x4T"],
        ),
        sh(
            "swapaxes",
            Box::new(|x| ops::swapaxes(x, 0, 2)),
            &["2x3x4", "2x3x4T"],
        ),
        sh(
            "moveaxis",
            Box::new(|x| ops::moveaxis(x, 0, -1)),
            &["2x3x4", "2x3x4T"],
        ),
        sh(
            "broadcast_to",
            Box::new(|x| ops::broadcast_to(x, &[2, 3, 4])),
            &["3x1", "4", "()", "1x4", "3x4T"],
        ),
        sh(
            "tile",
            Box::new(|x| ops::tile(x, &[2, 3])),
            &["3x4", "3x4T", "4"],
        ),
        sh(
            "repeat_axis1",
            Box::new(|x| ops::repeat(x, 2, 1)),
            &["3x4", "3x4T"],
        ),
        sh(
            "repeat_flat",
            Box::new(|x| ops::repeat(x, 3, None)),
            &["3x4T", "5"],
        ),
        sh(
            "pad_constant",
            Box::new(|x| ops::pad(x, &[(1, 2), (0, 1)], 1.5, PadMode::Constant)),
            &["3x4", "3x4T"],
        ),
        sh(
            "pad_edge",
            Box::new(|x| ops::pad(x, &[(2, 1)], 0.0, PadMode::Edge)),
            &["3x4", "4", "2x3x2T"],
        ),
        sh(
            "roll_axis1",
            Box::new(|x| ops::roll(x, &[2], 1)),
            &["3x5", "3x5T"],
        ),
        sh(
            "roll_axes01",
            Box::new(|x| ops::roll(x, &[1, -2], [0, 1])),
            &["3x5", "3x5T"],
        ),
        sh(
            "roll_flat",
            Box::new(|x| ops::roll(x, &[3], Axes::All)),
            &["3x5T", "7"],
        ),
        sh(
            "flip_axis0",
            Box::new(|x| ops::flip(x, 0)),
            &["3x4", "3x4T"],
        ),
        sh(
            "flip_all",
            Box::new(|x| ops::flip(x, Axes::All)),
            &["2x3x4", "5"],
        ),
        sh(
            "as_strided_windows",
            Box::new(|x| ops::as_strided(x, &[4, 3], &[1, 1], 0)),
            &["6", "2x3T"],
        ),
        sh(
            "as_strided_offset",
            Box::new(|x| ops::as_strided(x, &[2, 2], &[3, 1], 1)),
            &["2x3", "3x2T"],
        ),
        sh("contiguous", Box::new(ops::contiguous), &["3x4T", "2x3x4"]),
        sh(
            "reshape_int",
            Box::new(|x| ops::reshape(x, &[2, 6])),
            &["3x4", "3x4T"],
        )
        .dom(Dom::Int(-9, 9))
        .dtypes(&[Dtype::Int32]),
        OpInfo::new(Shape, "concatenate_axis0", |x| ops::concatenate(x, 0))
            .samples(&["2x3 4x3", "2x3T 1x3", "3 2"]),
        OpInfo::new(Shape, "concatenate_axis1", |x| ops::concatenate(x, 1))
            .samples(&["3x2 3x4T", "2x1x2 2x3x2"]),
        OpInfo::new(Shape, "concatenate_3_axis-1", |x| ops::concatenate(x, -1))
            .samples(&["2x1 2x3 2x2T", "1 3 2"]),
        OpInfo::new(Shape, "stack_axis0", |x| ops::stack(x, 0)).samples(&["3x4 3x4", "3x4T 3x4"]),
        OpInfo::new(Shape, "stack_axis1", |x| ops::stack(x, 1)).samples(&["2x3 2x3T", "3 3"]),
        OpInfo::new(Shape, "stack_3_axis-1", |x| ops::stack(x, -1)).samples(&["3 3 3"]),
        OpInfo::multi(Shape, "split_sections", |x| ops::split(&x[0], 3, 1))
            .samples(&["2x6", "2x6T"]),
        OpInfo::multi(Shape, "split_indices", |x| ops::split(&x[0], [1, 3], 0))
            .samples(&["5x2", "5x2T", "5"]),
    ]);

    // ---- matmul and friends ----
    t.extend([
        OpInfo::new(Matmul, "matmul", |x| ops::matmul(&x[0], &x[1])).samples(&[
            "3x4 4x5",
            "3x4T 4x5T",
            "2x3x4 4x5",
            "2x1x3x4 3x4x5",
            "4 4x5",
            "3x4 4",
            "4 4",
            "2x3x4 4",
            "4 2x4x3",
        ]),
        OpInfo::new(Matmul, "addmm", |x| {
            ops::addmm(&x[0], &x[1], &x[2], 0.5, 2.0)
        })
        .samples(&["3x5 3x4 4x5", "5 3x4 4x5", "() 3x4T 4x5", "2x3x5 2x3x4 4x5"]),
        OpInfo::new(Matmul, "inner", |x| ops::inner(&x[0], &x[1]))
            .samples(&["3x4 2x4", "4 4", "2x3x4 4", "3x4T 4"]),
        OpInfo::new(Matmul, "outer", |x| ops::outer(&x[0], &x[1])).samples(&["3 4", "2x2T 3"]),
        OpInfo::new(Matmul, "tensordot_1", |x| {
            ops::tensordot(&x[0], &x[1], 1usize)
        })
        .samples(&["3x4 4x5", "2x3x4 4x2", "3x4T 4x2"]),
        OpInfo::new(Matmul, "tensordot_lists", |x| {
            ops::tensordot(&x[0], &x[1], ([1i64, 0], [0i64, 1]))
        })
        .samples(&["3x4x2 4x3x5", "3x4x2T 4x3x2"]),
        OpInfo::new(Matmul, "einsum_ij_jk", |x| {
            ops::einsum("ij,jk->ik", &[&x[0], &x[1]])
        })
        .samples(&["3x4 4x5", "3x4T 4x2"]),
        OpInfo::new(Matmul, "einsum_batched", |x| {
            ops::einsum("bij,bjk->bik", &[&x[0], &x[1]])
        })
        .samples(&["2x3x4 2x4x5"]),
        OpInfo::new(Matmul, "einsum_diag", |x| ops::einsum("ii->i", &[&x[0]]))
            .samples(&["4x4", "3x3T"]),
        OpInfo::new(Matmul, "einsum_trace", |x| ops::einsum("ii", &[&x[0]])).samples(&["4x4"]),
        OpInfo::new(Matmul, "einsum_sum", |x| ops::einsum("ij->", &[&x[0]])).samples(&["3x4T"]),
        OpInfo::new(Matmul, "einsum_dot", |x| {
            ops::einsum("i,i", &[&x[0], &x[1]])
        })
        .samples(&["5 5"]),
        OpInfo::new(Matmul, "einsum_rowdot", |x| {
            ops::einsum("ij,ij->i", &[&x[0], &x[1]])
        })
        .samples(&["3x4 3x4T"]),
        OpInfo::new(Matmul, "einsum_3", |x| {
            ops::einsum("ijk,jl,l->ik", &[&x[0], &x[1], &x[2]])
        })
        .samples(&["2x3x4 3x5 5"]),
        // Convolutions are composites (pad, as_strided, matmul): their rules come from those.
        OpInfo::new(Matmul, "conv1d", |x| ops::conv1d(&x[0], &x[1], 1, 1, 1, 1))
            .samples(&["2x5x3 4x3x3"]),
        OpInfo::new(Matmul, "conv1d_strided_dilated_groups", |x| {
            ops::conv1d(&x[0], &x[1], 2, 2, 2, 2)
        })
        .samples(&["1x7x4 4x2x2"]),
        OpInfo::new(Matmul, "conv2d", |x| {
            ops::conv2d(&x[0], &x[1], [2, 1], 1, 1, 1)
        })
        .samples(&["1x5x4x2 3x3x2x2"]),
        OpInfo::new(Matmul, "conv_transpose1d", |x| {
            ops::conv_transpose1d(&x[0], &x[1], 2, 1, 1, 1, 1)
        })
        .samples(&["2x4x3 2x3x3"]),
        OpInfo::new(Matmul, "conv_transpose2d", |x| {
            ops::conv_transpose2d(&x[0], &x[1], 2, 0, 1, 0, 1)
        })
        .samples(&["1x3x2x2 2x2x3x2"]),
    ]);

    // ---- a few indexing and sort entries (the indexing helper's file covers the rest) ----
    t.extend([
        OpInfo::new(Indexing, "take_axis1", |x| {
            ops::take(&x[0], &Array::from_slice(&[2i32, 0, 2, -1], &[4])?, Some(1))
        })
        .samples(&["3x4", "3x4T"]),
        OpInfo::new(Indexing, "take_flat", |x| {
            ops::take(&x[0], &Array::from_slice(&[5i32, 1, 1], &[3])?, None)
        })
        .samples(&["3x4T", "6"]),
        OpInfo::new(Indexing, "take_along_axis", |x| {
            let idx = Array::from_slice(&[1i32, 0, 3, 3, 2, 0], &[3, 2])?;
            ops::take_along_axis(&x[0], &idx, 1)
        })
        .samples(&["3x4", "3x4T"]),
        OpInfo::new(Indexing, "take_along_axis_one", |x| {
            // One element a row, negative indices from the end, in int64 and uint8.
            let idx = Array::from_slice(&[-1i64, 0, 2], &[3, 1])?;
            let small = Array::from_slice(&[3u8, 1, 1], &[3, 1])?;
            ops::add(
                ops::take_along_axis(&x[0], &idx, 1)?,
                ops::take_along_axis(&x[0], &small, 1)?,
            )
        })
        .samples(&["3x4", "3x4T"]),
        OpInfo::new(Indexing, "slice_step", |x| {
            ops::slice(&x[0], &[0, 1], &[3, 4], &[2, 2])
        })
        .samples(&["3x4", "3x4T"]),
        OpInfo::new(Indexing, "index_row", |x| {
            x[0].index([ops::Index::Int(1), ops::Index::slice(None, None, Some(-1))])
        })
        .samples(&["3x4", "3x4T"]),
        OpInfo::new(Indexing, "diagonal", |x| ops::diagonal(&x[0], 1, 0, 1))
            .samples(&["3x4", "4x4T"]),
        OpInfo::new(Sort, "sort_axis-1", |x| ops::sort(&x[0], -1i64))
            .samples(&["3x5", "3x5T", "6"]),
        OpInfo::new(Sort, "sort_flat", |x| ops::sort(&x[0], None)).samples(&["3x4T"]),
        OpInfo::new(Sort, "argsort_axis0", |x| ops::argsort(&x[0], 0i64))
            .samples(&["3x5", "3x5T"])
            .no_grad(),
    ]);

    // ---- creation and random (sampling is differentiable in its parameters) ----
    t.extend([
        OpInfo::new(Creation, "full", |x| ops::full(&[2, 3, 4], &x[0], None))
            .samples(&["4", "3x1", "()", "3x4T"]),
        OpInfo::new(Creation, "times_arange", |x| {
            ops::multiply(&x[0], &ops::arange(0.0, 4.0, 1.0, Dtype::Float64)?)
        })
        .samples(&["4", "3x4T"]),
        OpInfo::new(Creation, "zeros_like_plus_ones_like", |x| {
            ops::add(
                &ops::zeros_like(&x[0])?,
                &ops::multiply(&x[0], &ops::ones_like(&x[0])?)?,
            )
        })
        .samples(&["3x4T", "()"]),
        // A fixed key: the same draw every call, so y = loc + scale * z is a smooth function
        // of loc and scale. (Affine: steps of 1e-2 are exact; but float64 samples are
        // computed at float32 precision, whose rounding steps of 1e-6 would magnify.)
        OpInfo::new(Random, "normal_loc_scale", |x| {
            let key = random::key(7)?;
            random::normal(x[0].shape(), Dtype::Float64, &x[0], &x[1], Some(&key))
        })
        .samples(&["3x4 3x4", "3x4T 4", "5 ()"])
        .doms(&[Dom::Real(-2.0, 2.0), Dom::Real(0.5, 2.0)])
        .tol(1e-2, 1e-3, 1e-3),
        OpInfo::new(Random, "uniform_low_high", |x| {
            let key = random::key(8)?;
            random::uniform(&x[0], &x[1], x[0].shape(), Dtype::Float64, Some(&key))
        })
        .samples(&["3x4 3x4", "3x4T 4", "5 ()"])
        .doms(&[Dom::Real(-2.0, -0.5), Dom::Real(0.5, 2.0)])
        .tol(1e-2, 1e-3, 1e-3),
        // Batched keys: each example draws from its own key.
        OpInfo::new(Random, "uniform_of_key", |x| {
            random::uniform(0.0, 1.0, &[3], Dtype::Float32, Some(&x[0]))
        })
        .samples(&["2"])
        .dom(Dom::Int(0, 1 << 30))
        .dtypes(&[Dtype::Uint32]),
        OpInfo::new(Random, "normal_of_key_and_loc", |x| {
            random::normal(&[4], Dtype::Float32, &x[1], 1.0, Some(&x[0]))
        })
        .samples(&["2 4", "2 ()"])
        .doms(&[Dom::Int(0, 1 << 30), real])
        .dtypes(&[Dtype::Uint32, Dtype::Float32]),
    ]);
    t
}

// ---------------------------------------------------------------------------------------------
// The checks over the table.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Check {
    Vjp,
    Jvp,
    Vmap,
}

fn seed_of(name: &str, sample: usize) -> u64 {
    // FNV-1a: a fixed seed per entry and sample.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h ^ (sample as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn fmt_sample(s: &Sample) -> String {
    let parts: Vec<String> = s
        .iter()
        .map(|(shape, layout)| {
            let l = match layout {
                Layout::Contiguous => "",
                Layout::Transposed => "T",
                Layout::Strided => "S",
            };
            format!("{shape:?}{l}")
        })
        .collect();
    format!("({})", parts.join(", "))
}

/// The inputs of a derivative check: float64, drawn from the entry's domains, in the
/// sample's layouts.
fn grad_inputs(op: &OpInfo, sample: &Sample, rng: &mut Rng) -> Vec<Array> {
    sample
        .iter()
        .enumerate()
        .map(|(i, (shape, layout))| {
            let v = rng.draw(op.dom_of(i), shape.iter().product());
            fd::build(&v, shape, Dtype::Float64, *layout)
        })
        .collect()
}

/// Runs one check over one entry; returns the failures, one line each.
fn run_entry(op: &OpInfo, check: Check) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut runs = 0;
    for (si, sample) in op.samples.iter().enumerate() {
        let seed = seed_of(&op.name, si);
        let label = format!("{} {}", op.name, fmt_sample(sample));
        let f: fd::Fun = &op.f;
        match check {
            Check::Vjp | Check::Jvp if op.grad => {
                let mut rng = Rng::new(seed);
                let xs = grad_inputs(op, sample, &mut rng);
                runs += 1;
                let r = if check == Check::Vjp {
                    check_vjp(f, &xs, seed, op.tol)
                } else {
                    check_jvp(f, &xs, seed, op.tol)
                };
                if let Err(e) = r {
                    failures.push(format!("{label}: {e}"));
                }
            }
            Check::Vmap if op.vmap => {
                let n_in = sample.len();
                // (which inputs are mapped, where the batch axis goes)
                let mut patterns: Vec<(Vec<bool>, Pos)> = vec![
                    (vec![true; n_in], Pos::First),
                    (vec![true; n_in], Pos::Middle),
                    (vec![true; n_in], Pos::Last),
                ];
                if n_in > 1 {
                    let mut first = vec![false; n_in];
                    first[0] = true;
                    patterns.push((first, Pos::First));
                    let mut last = vec![false; n_in];
                    last[n_in - 1] = true;
                    patterns.push((last, Pos::Last));
                }
                for (pi, (mapped, pos)) in patterns.into_iter().enumerate() {
                    let inputs: Vec<VmapInput> = sample
                        .iter()
                        .enumerate()
                        .map(|(i, (shape, layout))| VmapInput {
                            shape: shape.clone(),
                            dtype: op.dtype_of(i),
                            layout: *layout,
                            dom: op.dom_of(i),
                            mapped: mapped[i],
                        })
                        .collect();
                    runs += 1;
                    if let Err(e) = check_vmap(f, &inputs, pos, 3, seed ^ pi as u64) {
                        let axes: Vec<String> = mapped
                            .iter()
                            .zip(sample)
                            .map(|(&m, (shape, _))| match (m, pos) {
                                (false, _) => "None".to_string(),
                                (true, Pos::First) => "0".to_string(),
                                (true, Pos::Middle) if !shape.is_empty() => "1".to_string(),
                                (true, Pos::Middle) => "0".to_string(),
                                (true, Pos::Last) => "-1".to_string(),
                            })
                            .collect();
                        failures.push(format!("{label} in_axes [{}]: {e}", axes.join(", ")));
                    }
                }
            }
            _ => {}
        }
    }
    (runs, failures)
}

fn run_family(family: Family, check: Check) {
    let table = table();
    let mut runs = 0;
    let mut failures = Vec::new();
    let mut failing_ops = Vec::new();
    for op in table.iter().filter(|o| o.family == family) {
        let (n, f) = run_entry(op, check);
        runs += n;
        if !f.is_empty() {
            failing_ops.push(format!("{} ({} of its checks)", op.name, f.len()));
            // The first failure of each entry says enough; the rest are usually the same.
            failures.push(f[0].clone());
        }
    }
    assert!(runs > 0, "no checks ran for {family:?}");
    if !failures.is_empty() {
        panic!(
            "{} {family:?} entries failed: {}\n\n{}",
            failing_ops.len(),
            failing_ops.join(", "),
            failures.join("\n")
        );
    }
}

macro_rules! family_tests {
    ($($family:ident: $vjp:ident, $jvp:ident, $vmap:ident;)*) => {$(
        #[test]
        fn $vjp() {
            run_family(Family::$family, Check::Vjp);
        }
        #[test]
        fn $jvp() {
            run_family(Family::$family, Check::Jvp);
        }
        #[test]
        fn $vmap() {
            run_family(Family::$family, Check::Vmap);
        }
    )*};
}

family_tests! {
    Unary: vjp_unary, jvp_unary, vmap_unary;
    Binary: vjp_binary, jvp_binary, vmap_binary;
    Ternary: vjp_ternary, jvp_ternary, vmap_ternary;
    Reduce: vjp_reduce, jvp_reduce, vmap_reduce;
    Scan: vjp_scan, jvp_scan, vmap_scan;
    Shape: vjp_shape, jvp_shape, vmap_shape;
    Matmul: vjp_matmul, jvp_matmul, vmap_matmul;
    Indexing: vjp_indexing, jvp_indexing, vmap_indexing;
    Sort: vjp_sort, jvp_sort, vmap_sort;
    Creation: vjp_creation, jvp_creation, vmap_creation;
    Random: vjp_random, jvp_random, vmap_random;
}

#[test]
fn the_table_covers_the_ops_of_the_issue() {
    let table = table();
    let names: Vec<&str> = table.iter().map(|o| o.name.as_str()).collect();
    let mut seen = std::collections::HashSet::new();
    for n in &names {
        assert!(seen.insert(*n), "{n} appears twice in the table");
    }
    for want in [
        "abs",
        "negative",
        "sign",
        "sqrt",
        "rsqrt",
        "square",
        "reciprocal",
        "exp",
        "expm1",
        "log",
        "log1p",
        "log2",
        "log10",
        "sin",
        "cos",
        "tan",
        "arcsin",
        "arccos",
        "arctan",
        "sinh",
        "cosh",
        "tanh",
        "arcsinh",
        "arccosh",
        "arctanh",
        "floor",
        "ceil",
        "round",
        "erf",
        "erfinv",
        "sigmoid",
        "degrees",
        "radians",
        "nan_to_num",
        "astype_f32_and_back",
        "add",
        "subtract",
        "multiply",
        "divide",
        "power",
        "arctan2",
        "logaddexp",
        "maximum",
        "minimum",
        "remainder",
        "floor_divide",
        "equal",
        "less",
        "where",
        "clip_arrays",
        "sum",
        "prod",
        "mean",
        "max",
        "min_axes01",
        "var_axis1",
        "std_axis0_keepdims",
        "logsumexp",
        "softmax_axis-1",
        "argmax_axis1",
        "argmin_axis0_keepdims",
        "cumsum_axis1",
        "cumprod_axis1_reverse",
        "cummax_axis1",
        "cummin_axis1_exclusive",
        "logcumsumexp_axis1_reverse_exclusive",
        "reshape_2x6",
        "flatten",
        "squeeze_axis1",
        "expand_dims_0",
        "transpose",
        "swapaxes",
        "moveaxis",
        "broadcast_to",
        "concatenate_axis0",
        "stack_axis0",
        "split_sections",
        "tile",
        "repeat_axis1",
        "pad_constant",
        "pad_edge",
        "roll_axis1",
        "flip_axis0",
        "as_strided_windows",
        "matmul",
        "addmm",
        "inner",
        "outer",
        "tensordot_1",
        "einsum_ij_jk",
    ] {
        assert!(names.contains(&want), "the table has no entry {want}");
    }
    // Every entry has samples, at least one non-contiguous sample per family, and every
    // differentiable entry takes float inputs.
    for op in &table {
        assert!(!op.samples.is_empty(), "{} has no samples", op.name);
        for s in &op.samples {
            assert!(!s.is_empty(), "{}: a sample without inputs", op.name);
        }
        if op.grad {
            assert!(
                op.dtypes.iter().all(|d| *d == Dtype::Float64),
                "{}",
                op.name
            );
        }
    }
    for fam in [
        Unary, Binary, Ternary, Reduce, Scan, Shape, Matmul, Indexing, Sort, Creation, Random,
    ] {
        assert!(
            table.iter().filter(|o| o.family == fam).any(|o| o
                .samples
                .iter()
                .any(|s| s.iter().any(|(_, l)| *l != Layout::Contiguous))),
            "{fam:?} has no non-contiguous sample"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The harness checks itself, on custom functions (no primitive rules needed): right rules
// pass, wrong ones are caught.
// ---------------------------------------------------------------------------------------------

/// sin computed on the host (so its value needs no rule), with the given derivative factor in
/// its vjp and jvp (1.0: right).
fn host_sin(vjp_factor: f64, jvp_factor: f64) -> umx::transforms::CustomFunction {
    custom_function("host_sin", |x| {
        let v: Vec<f64> = vals(&x[0])?.iter().map(|v| v.sin()).collect();
        Ok(vec![Array::from_slice(&v, x[0].shape())?])
    })
    .with_vjp(move |p, c, _| {
        let d: Vec<f64> = vals(&p[0])?.iter().map(|v| vjp_factor * v.cos()).collect();
        Ok(vec![ops::multiply(
            &c[0],
            &Array::from_slice(&d, p[0].shape())?,
        )?])
    })
    .with_jvp(move |p, t| {
        let d: Vec<f64> = vals(&p[0])?.iter().map(|v| jvp_factor * v.cos()).collect();
        Ok(vec![ops::multiply(
            &t[0],
            &Array::from_slice(&d, p[0].shape())?,
        )?])
    })
}

#[test]
fn the_harness_passes_right_rules_and_catches_wrong_ones() {
    let x = fd::build(
        &Rng::new(1).draw(Dom::Real(-2.0, 2.0), 12),
        &[3, 4],
        Dtype::Float64,
        Layout::Transposed,
    );
    let good = host_sin(1.0, 1.0);
    let f = move |xs: &[Array]| good.call(xs);
    check_vjp(&f, std::slice::from_ref(&x), 7, Tol::default()).unwrap();
    check_jvp(&f, std::slice::from_ref(&x), 7, Tol::default()).unwrap();

    let bad_vjp = host_sin(1.0001, 1.0);
    let f = move |xs: &[Array]| bad_vjp.call(xs);
    let e = check_vjp(&f, std::slice::from_ref(&x), 7, Tol::default()).unwrap_err();
    assert!(e.contains("vjp of input 0"), "{e}");
    check_jvp(&f, std::slice::from_ref(&x), 7, Tol::default()).unwrap();

    let bad_jvp = host_sin(1.0, -1.0);
    let f = move |xs: &[Array]| bad_jvp.call(xs);
    let e = check_jvp(&f, std::slice::from_ref(&x), 7, Tol::default()).unwrap_err();
    assert!(e.contains("jvp, tangent of input 0"), "{e}");

    // vmap: an identity (stop_gradient has its own batching rule) with a right and a wrong
    // custom batching rule.
    let inputs = |mapped| {
        vec![VmapInput {
            shape: vec![2, 3],
            dtype: Dtype::Float32,
            layout: Layout::Transposed,
            dom: Dom::Real(-1.0, 1.0),
            mapped,
        }]
    };
    let right = custom_function("id", |x| Ok(vec![stop_gradient(&x[0])?]))
        .with_vmap(|x, axes| Ok((vec![x[0].clone()], axes.to_vec())));
    let f = move |xs: &[Array]| right.call(xs);
    for pos in [Pos::First, Pos::Middle, Pos::Last] {
        fd::check_vmap(&f, &inputs(true), pos, 3, 1).unwrap();
    }
    let wrong = custom_function("id", |x| Ok(vec![stop_gradient(&x[0])?]))
        .with_vmap(|x, axes| Ok((vec![ops::negative(&x[0])?], axes.to_vec())));
    let f = move |xs: &[Array]| wrong.call(xs);
    let e = fd::check_vmap(&f, &inputs(true), Pos::First, 3, 1).unwrap_err();
    assert!(e.contains("but the loop gives"), "{e}");
}
