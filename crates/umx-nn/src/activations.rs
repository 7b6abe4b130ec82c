//! Activation functions (mlx.nn's), as functions and as layers.

use crate::layers::Forward;
use crate::module::{Module, Param};
use std::sync::OnceLock;
use umx_core::transforms::compile;
use umx_core::{Array, Dtype, Error, Result, ops};

type Compiled = Box<dyn Fn(&[Array]) -> Result<Vec<Array>> + Send + Sync>;

/// `f(x)` through a shapeless compiled copy of `f` made once per process, as MLX compiles its
/// activations: one fused kernel forward, and one or two backward (a fused program's gradient
/// is fused too). With compilation disabled it is `f(x)`.
fn compiled(
    cell: &'static OnceLock<Compiled>,
    f: fn(&Array) -> Result<Array>,
    x: &Array,
) -> Result<Array> {
    let c = cell.get_or_init(|| Box::new(compile(move |a: &[Array]| Ok(vec![f(&a[0])?]), true)));
    c(std::slice::from_ref(x))?
        .pop()
        .ok_or_else(|| Error::Invalid("activation: the compiled function gave no output".into()))
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

/// `max(x, 0)`.
pub fn relu(x: &Array) -> Result<Array> {
    ops::maximum(x, 0.0)
}
/// `max(x, 0)^2`.
pub fn relu2(x: &Array) -> Result<Array> {
    static F: OnceLock<Compiled> = OnceLock::new();
    compiled(&F, relu2_graph, x)
}
fn relu2_graph(x: &Array) -> Result<Array> {
    ops::square(&relu(x)?)
}
/// `min(max(x, 0), 6)`.
pub fn relu6(x: &Array) -> Result<Array> {
    static F: OnceLock<Compiled> = OnceLock::new();
    compiled(&F, relu6_graph, x)
}
fn relu6_graph(x: &Array) -> Result<Array> {
    ops::minimum(ops::maximum(x, 0.0)?, 6.0)
}
/// `max(x, slope x)`.
pub fn leaky_relu(x: &Array, negative_slope: f64) -> Result<Array> {
    ops::maximum(x, ops::multiply(x, negative_slope)?)
}
/// `x` where positive, else `alpha (e^x - 1)`.
pub fn elu(x: &Array, alpha: f64) -> Result<Array> {
    ops::where_(
        ops::greater(x, 0.0)?,
        x,
        ops::multiply(ops::expm1(x)?, alpha)?,
    )
}
/// Scaled ELU with the self-normalising constants.
pub fn selu(x: &Array) -> Result<Array> {
    static F: OnceLock<Compiled> = OnceLock::new();
    compiled(&F, selu_graph, x)
}
fn selu_graph(x: &Array) -> Result<Array> {
    ops::multiply(elu(x, 1.673_263_242_354_377_3)?, 1.050_700_987_355_480_5)
}
/// `max(x, 0) + alpha (e^(min(x, 0) / alpha) - 1)`.
pub fn celu(x: &Array, alpha: f64) -> Result<Array> {
    let neg = ops::multiply(
        ops::expm1(&ops::divide(ops::minimum(x, 0.0)?, alpha)?)?,
        alpha,
    )?;
    ops::add(ops::maximum(x, 0.0)?, neg)
}
/// `x Φ(x)`: `x (1 + erf(x / sqrt 2)) / 2`.
pub fn gelu(x: &Array) -> Result<Array> {
    static F: OnceLock<Compiled> = OnceLock::new();
    compiled(&F, gelu_graph, x)
}
fn gelu_graph(x: &Array) -> Result<Array> {
    let cdf = ops::multiply(
        ops::add(
            ops::erf(&ops::multiply(x, std::f64::consts::FRAC_1_SQRT_2)?)?,
            1.0,
        )?,
        0.5,
    )?;
    ops::multiply(x, &cdf)
}
/// The tanh approximation of [`gelu`].
pub fn gelu_approx(x: &Array) -> Result<Array> {
    static F: OnceLock<Compiled> = OnceLock::new();
    compiled(&F, gelu_approx_graph, x)
}
fn gelu_approx_graph(x: &Array) -> Result<Array> {
    let inner = ops::multiply(
        ops::add(
            x,
            ops::multiply(ops::multiply(ops::square(x)?, x)?, 0.044715)?,
        )?,
        SQRT_2_OVER_PI,
    )?;
    ops::multiply(ops::multiply(x, 0.5)?, ops::add(ops::tanh(&inner)?, 1.0)?)
}
/// The sigmoid approximation of [`gelu`]: `x sigmoid(1.702 x)`.
pub fn gelu_fast_approx(x: &Array) -> Result<Array> {
    static F: OnceLock<Compiled> = OnceLock::new();
    compiled(&F, gelu_fast_approx_graph, x)
}
fn gelu_fast_approx_graph(x: &Array) -> Result<Array> {
    ops::multiply(x, ops::sigmoid(&ops::multiply(x, 1.702)?)?)
}
/// `x sigmoid(x)` (swish).
pub fn silu(x: &Array) -> Result<Array> {
    static F: OnceLock<Compiled> = OnceLock::new();
    compiled(&F, silu_graph, x)
}
fn silu_graph(x: &Array) -> Result<Array> {
    ops::multiply(x, ops::sigmoid(x)?)
}
/// `log(1 + e^x)`.
pub fn softplus(x: &Array) -> Result<Array> {
    static F: OnceLock<Compiled> = OnceLock::new();
    compiled(&F, softplus_graph, x)
}
fn softplus_graph(x: &Array) -> Result<Array> {
    ops::logaddexp(x, 0.0)
}
/// `x / (1 + |x|)`.
pub fn softsign(x: &Array) -> Result<Array> {
    static F: OnceLock<Compiled> = OnceLock::new();
    compiled(&F, softsign_graph, x)
}
fn softsign_graph(x: &Array) -> Result<Array> {
    ops::divide(x, ops::add(ops::abs(x)?, 1.0)?)
}
/// `x tanh(softplus(x))`.
pub fn mish(x: &Array) -> Result<Array> {
    static F: OnceLock<Compiled> = OnceLock::new();
    compiled(&F, mish_graph, x)
}
fn mish_graph(x: &Array) -> Result<Array> {
    ops::multiply(x, ops::tanh(&softplus_graph(x)?)?)
}
/// `x min(max(x + 3, 0), 6) / 6`.
pub fn hardswish(x: &Array) -> Result<Array> {
    static F: OnceLock<Compiled> = OnceLock::new();
    compiled(&F, hardswish_graph, x)
}
fn hardswish_graph(x: &Array) -> Result<Array> {
    let r = ops::minimum(ops::maximum(ops::add(x, 3.0)?, 0.0)?, 6.0)?;
    ops::divide(ops::multiply(x, &r)?, 6.0)
}
/// `x` clipped to `[min, max]`.
pub fn hard_tanh(x: &Array, min: f64, max: f64) -> Result<Array> {
    ops::clip(x, min, max)
}
/// `x` where `|x| > lambd`, else 0.
pub fn hard_shrink(x: &Array, lambd: f64) -> Result<Array> {
    ops::where_(ops::greater(ops::abs(x)?, lambd)?, x, 0.0)
}
/// `x - sign(x) lambd` where `|x| > lambd`, else 0.
pub fn softshrink(x: &Array, lambd: f64) -> Result<Array> {
    let shrunk = ops::subtract(x, ops::multiply(ops::sign(x)?, lambd)?)?;
    ops::where_(ops::greater(ops::abs(x)?, lambd)?, shrunk, 0.0)
}
/// `log(sigmoid(x)) = -softplus(-x)`.
pub fn log_sigmoid(x: &Array) -> Result<Array> {
    static F: OnceLock<Compiled> = OnceLock::new();
    compiled(&F, log_sigmoid_graph, x)
}
fn log_sigmoid_graph(x: &Array) -> Result<Array> {
    ops::negative(&softplus_graph(&ops::negative(x)?)?)
}
/// `x - logsumexp(x)` along `axis`.
pub fn log_softmax(x: &Array, axis: i64) -> Result<Array> {
    ops::subtract(x, ops::logsumexp(x, axis, true)?)
}
/// `softmax(x)` along `axis`.
pub fn softmax(x: &Array, axis: i64) -> Result<Array> {
    ops::softmax(x, axis, false)
}
/// `softmax(-x)` along `axis`.
pub fn softmin(x: &Array, axis: i64) -> Result<Array> {
    ops::softmax(&ops::negative(x)?, axis, false)
}
/// The gated linear unit: `a sigmoid(b)` for the halves `a, b` of `x` along `axis`.
pub fn glu(x: &Array, axis: i64) -> Result<Array> {
    let parts = ops::split(x, 2usize, axis)?;
    ops::multiply(&parts[0], ops::sigmoid(&parts[1])?)
}
/// `max(0, x) + alpha min(0, x)`, `alpha` learnable per channel in [`PReLU`].
pub fn prelu(x: &Array, alpha: &Array) -> Result<Array> {
    ops::add(
        ops::maximum(x, 0.0)?,
        ops::multiply(alpha, ops::minimum(x, 0.0)?)?,
    )
}
/// 1 where `x > threshold`, else 0 (in `x`'s dtype).
pub fn step(x: &Array, threshold: f64) -> Result<Array> {
    ops::astype(&ops::greater(x, threshold)?, x.dtype())
}

macro_rules! activation_layers {
    ($($(#[$doc:meta])* $name:ident => |$x:ident, $s:ident| $body:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Debug, Default)]
        pub struct $name;
        impl Forward for $name {
            fn forward(&self, $x: &Array) -> Result<Array> {
                let $s = self;
                let _ = $s;
                $body
            }
        }
        impl Module for $name {
            fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, &'a Param)) {}
            fn visit_params_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Param)) {}
        }
    )*};
}

activation_layers! {
    /// [`relu`] as a layer.
    ReLU => |x, s| relu(x);
    /// [`relu2`] as a layer.
    ReLU2 => |x, s| relu2(x);
    /// [`relu6`] as a layer.
    ReLU6 => |x, s| relu6(x);
    /// [`selu`] as a layer.
    SELU => |x, s| selu(x);
    /// [`gelu`] as a layer.
    GELU => |x, s| gelu(x);
    /// [`gelu_approx`] as a layer (mlx.nn.GELU(approx="precise"/"tanh")).
    GELUApprox => |x, s| gelu_approx(x);
    /// [`gelu_fast_approx`] as a layer (mlx.nn.GELU(approx="fast")).
    GELUFast => |x, s| gelu_fast_approx(x);
    /// [`silu`] as a layer.
    SiLU => |x, s| silu(x);
    /// The logistic sigmoid as a layer.
    Sigmoid => |x, s| ops::sigmoid(x);
    /// tanh as a layer.
    Tanh => |x, s| ops::tanh(x);
    /// [`softplus`] as a layer.
    Softplus => |x, s| softplus(x);
    /// [`softsign`] as a layer.
    Softsign => |x, s| softsign(x);
    /// [`mish`] as a layer.
    Mish => |x, s| mish(x);
    /// [`hardswish`] as a layer.
    Hardswish => |x, s| hardswish(x);
    /// [`log_sigmoid`] as a layer.
    LogSigmoid => |x, s| log_sigmoid(x);
    /// [`log_softmax`] over the last axis as a layer.
    LogSoftmax => |x, s| log_softmax(x, -1);
    /// [`softmax`] over the last axis as a layer.
    Softmax => |x, s| softmax(x, -1);
    /// [`softmin`] over the last axis as a layer.
    Softmin => |x, s| softmin(x, -1);
}

macro_rules! parametrised_layers {
    ($($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty = $default:expr),* } => |$x:ident, $s:ident| $body:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name { $(pub $field: $ty),* }
        impl Default for $name {
            fn default() -> Self { $name { $($field: $default),* } }
        }
        impl Forward for $name {
            fn forward(&self, $x: &Array) -> Result<Array> {
                let $s = self;
                $body
            }
        }
        impl Module for $name {
            fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, &'a Param)) {}
            fn visit_params_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Param)) {}
        }
    )*};
}

parametrised_layers! {
    /// [`leaky_relu`] as a layer (slope 0.01 by default).
    LeakyReLU { negative_slope: f64 = 0.01 } => |x, s| leaky_relu(x, s.negative_slope);
    /// [`elu`] as a layer (alpha 1 by default).
    ELU { alpha: f64 = 1.0 } => |x, s| elu(x, s.alpha);
    /// [`celu`] as a layer (alpha 1 by default).
    CELU { alpha: f64 = 1.0 } => |x, s| celu(x, s.alpha);
    /// [`glu`] as a layer (the last axis by default).
    GLU { axis: i64 = -1 } => |x, s| glu(x, s.axis);
    /// [`hard_tanh`] as a layer (`[-1, 1]` by default).
    HardTanh { min: f64 = -1.0, max: f64 = 1.0 } => |x, s| hard_tanh(x, s.min, s.max);
    /// [`hard_shrink`] as a layer (0.5 by default).
    HardShrink { lambd: f64 = 0.5 } => |x, s| hard_shrink(x, s.lambd);
    /// [`softshrink`] as a layer (0.5 by default).
    Softshrink { lambd: f64 = 0.5 } => |x, s| softshrink(x, s.lambd);
    /// [`step`] as a layer (threshold 0 by default).
    Step { threshold: f64 = 0.0 } => |x, s| step(x, s.threshold);
}

/// [`prelu`] with a learnable slope per channel (`num_parameters` of them, initialised to
/// `init`), as mlx.nn.PReLU.
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct PReLU {
    pub weight: Param,
}

impl PReLU {
    /// `num_parameters` slopes starting at `init` (mlx.nn: 1 and 0.25).
    pub fn new(num_parameters: usize, init: f64) -> Result<PReLU> {
        Ok(PReLU {
            weight: Param::new(ops::full(&[num_parameters], init, Dtype::Float32)?),
        })
    }
}

impl Forward for PReLU {
    fn forward(&self, x: &Array) -> Result<Array> {
        prelu(x, &self.weight)
    }
}
