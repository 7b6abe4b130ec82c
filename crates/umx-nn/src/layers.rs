//! Layers: [`Linear`], [`Bilinear`], [`Identity`], [`Embedding`], [`Sequential`], the
//! normalisations ([`LayerNorm`], [`RMSNorm`], [`GroupNorm`], [`BatchNorm`],
//! [`InstanceNorm`]) and [`Dropout`], with mlx.nn's parameter names and initialisation.

use crate::module::{Module, Param, join};
use crate::quantized::{Quantizable, QuantizedEmbedding, QuantizedLinear};
use umx_core::{Array, Dtype, Result, bail, ops, random};

/// A layer with one input and one output.
pub trait Forward {
    /// Applies the layer.
    fn forward(&self, x: &Array) -> Result<Array>;
}

/// A layer in a [`Sequential`]: a module that maps one array to another and can be cloned
/// behind a `Box`.
pub trait Layer: Module + Forward + Send + Sync {
    /// A boxed copy (parameters are shared until updated).
    fn boxed(&self) -> Box<dyn Layer>;
}

impl<T: Module + Forward + Clone + Send + Sync + 'static> Layer for T {
    fn boxed(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}

impl Clone for Box<dyn Layer> {
    fn clone(&self) -> Self {
        self.as_ref().boxed()
    }
}

impl Forward for Box<dyn Layer> {
    fn forward(&self, x: &Array) -> Result<Array> {
        self.as_ref().forward(x)
    }
}

/// Uniform values in `[-scale, scale)` of float32.
fn uniform(shape: &[usize], scale: f64) -> Result<Array> {
    random::uniform(-scale, scale, shape, Dtype::Float32, None)
}

/// `y = x W^T + b`, with `W` of shape `(output_dims, input_dims)` (mlx.nn.Linear).
/// Parameters start uniform in `±1/sqrt(input_dims)`.
///
/// A linear layer can be quantized in place ([`Quantizable::quantize`], or
/// [`quantize`](crate::quantize) over a whole model): it then computes through the
/// [`QuantizedLinear`] it holds, whose parameters (`weight` codes, `scales`, `biases`, `bias`)
/// take the layer's names, so a quantized checkpoint saved by MLX loads into it.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Param,
    pub bias: Option<Param>,
    /// The quantized form, once quantized (`weight` and `bias` above are then unused and
    /// emptied).
    pub quantized: Option<QuantizedLinear>,
}

impl Module for Linear {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        match &self.quantized {
            Some(q) => q.visit_params(prefix, f),
            None => {
                self.weight.visit_params(&join(prefix, "weight"), f);
                self.bias.visit_params(&join(prefix, "bias"), f);
            }
        }
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        match &mut self.quantized {
            Some(q) => q.visit_params_mut(prefix, f),
            None => {
                self.weight.visit_params_mut(&join(prefix, "weight"), f);
                self.bias.visit_params_mut(&join(prefix, "bias"), f);
            }
        }
    }
    fn visit_quantizable_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn Quantizable),
    ) {
        f(prefix, self)
    }
}

impl Linear {
    /// A linear layer from `input_dims` to `output_dims` features.
    pub fn new(input_dims: usize, output_dims: usize, bias: bool) -> Result<Linear> {
        let scale = (1.0 / input_dims.max(1) as f64).sqrt();
        Ok(Linear {
            weight: Param::new(uniform(&[output_dims, input_dims], scale)?),
            bias: if bias {
                Some(Param::new(uniform(&[output_dims], scale)?))
            } else {
                None
            },
            quantized: None,
        })
    }

    /// Applies the layer to `x` of shape `(..., input_dims)`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        if let Some(q) = &self.quantized {
            return q.forward(x);
        }
        let wt = ops::transpose(&self.weight, [1i64, 0])?;
        match &self.bias {
            Some(b) => ops::addmm(b, x, &wt, 1.0, 1.0),
            None => ops::matmul(x, &wt),
        }
    }
}

impl Quantizable for Linear {
    fn weight_shape(&self) -> Vec<usize> {
        match &self.quantized {
            Some(q) => q.weight.shape().to_vec(),
            None => self.weight.shape().to_vec(),
        }
    }
    fn is_quantized(&self) -> bool {
        self.quantized.is_some()
    }
    fn quantize(&mut self, group_size: usize, bits: usize) -> Result<()> {
        if self.quantized.is_some() {
            bail!("Linear: the layer is already quantized");
        }
        self.quantized = Some(QuantizedLinear::from_linear(self, group_size, bits)?);
        let empty = ops::zeros(&[0], Dtype::Float32)?;
        self.weight = Param::frozen(empty);
        self.bias = None;
        Ok(())
    }
}

impl Forward for Linear {
    fn forward(&self, x: &Array) -> Result<Array> {
        Linear::forward(self, x)
    }
}

/// `y_o = x2 W_o x1^T + b_o`, with `W` of shape `(output_dims, input2_dims, input1_dims)`
/// (mlx.nn.Bilinear).
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct Bilinear {
    pub weight: Param,
    pub bias: Option<Param>,
}

impl Bilinear {
    /// A bilinear layer; parameters start uniform in `±1/sqrt(input1_dims)`.
    pub fn new(
        input1_dims: usize,
        input2_dims: usize,
        output_dims: usize,
        bias: bool,
    ) -> Result<Bilinear> {
        let scale = (1.0 / input1_dims.max(1) as f64).sqrt();
        Ok(Bilinear {
            weight: Param::new(uniform(&[output_dims, input2_dims, input1_dims], scale)?),
            bias: if bias {
                Some(Param::new(uniform(&[output_dims], scale)?))
            } else {
                None
            },
        })
    }

    /// Applies the layer to `x1` of shape `(..., input1_dims)` and `x2` of `(..., input2_dims)`.
    pub fn forward(&self, x1: &Array, x2: &Array) -> Result<Array> {
        let y = ops::einsum("...j,oij,...i->...o", &[x1, &self.weight.value, x2])?;
        match &self.bias {
            Some(b) => ops::add(&y, &b.value),
            None => Ok(y),
        }
    }
}

/// The identity layer.
#[derive(Clone, Debug, Default, crate::Module)]
#[module(crate = "crate")]
pub struct Identity;

impl Forward for Identity {
    fn forward(&self, x: &Array) -> Result<Array> {
        Ok(x.clone())
    }
}

/// A lookup table of `num_embeddings` vectors of `dims` features (mlx.nn.Embedding), initialised
/// from a normal distribution of standard deviation `1/sqrt(dims)`. Quantizable in place, as
/// [`Linear`] is (through a [`QuantizedEmbedding`]).
#[derive(Clone, Debug)]
pub struct Embedding {
    pub weight: Param,
    /// The quantized form, once quantized (`weight` above is then unused and emptied).
    pub quantized: Option<QuantizedEmbedding>,
}

impl Module for Embedding {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        match &self.quantized {
            Some(q) => q.visit_params(prefix, f),
            None => self.weight.visit_params(&join(prefix, "weight"), f),
        }
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        match &mut self.quantized {
            Some(q) => q.visit_params_mut(prefix, f),
            None => self.weight.visit_params_mut(&join(prefix, "weight"), f),
        }
    }
    fn visit_quantizable_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn Quantizable),
    ) {
        f(prefix, self)
    }
}

impl Embedding {
    /// A table of `num_embeddings` rows of `dims` features.
    pub fn new(num_embeddings: usize, dims: usize) -> Result<Embedding> {
        let scale = (1.0 / dims.max(1) as f64).sqrt();
        Ok(Embedding {
            weight: Param::new(random::normal(
                &[num_embeddings, dims],
                Dtype::Float32,
                0.0,
                scale,
                None,
            )?),
            quantized: None,
        })
    }

    /// The rows of the table for integer indices `x` (shape `x.shape + (dims,)`).
    pub fn forward(&self, x: &Array) -> Result<Array> {
        if let Some(q) = &self.quantized {
            return q.forward(x);
        }
        if !x.dtype().is_integer() {
            bail!("Embedding: indices must be integers, not {}", x.dtype());
        }
        ops::take(&self.weight, x, Some(0))
    }

    /// The layer used as an output projection: `x W^T` (weight tying).
    pub fn as_linear(&self, x: &Array) -> Result<Array> {
        if let Some(q) = &self.quantized {
            return q.as_linear(x);
        }
        ops::matmul(x, &ops::transpose(&self.weight, [1i64, 0])?)
    }
}

impl Quantizable for Embedding {
    fn weight_shape(&self) -> Vec<usize> {
        match &self.quantized {
            Some(q) => q.weight.shape().to_vec(),
            None => self.weight.shape().to_vec(),
        }
    }
    fn is_quantized(&self) -> bool {
        self.quantized.is_some()
    }
    fn quantize(&mut self, group_size: usize, bits: usize) -> Result<()> {
        if self.quantized.is_some() {
            bail!("Embedding: the layer is already quantized");
        }
        self.quantized = Some(QuantizedEmbedding::from_embedding(self, group_size, bits)?);
        self.weight = Param::frozen(ops::zeros(&[0], Dtype::Float32)?);
        Ok(())
    }
}

/// Layers applied one after another (mlx.nn.Sequential); its parameters are named
/// `layers.0.weight`, ...
#[derive(Clone, crate::Module)]
#[module(crate = "crate")]
pub struct Sequential {
    pub layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    /// An empty sequence; add layers with [`Sequential::push`].
    pub fn new() -> Sequential {
        Sequential { layers: Vec::new() }
    }

    /// Appends a layer.
    pub fn push(mut self, layer: impl Layer + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }

    /// Applies every layer in order.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let mut y = x.clone();
        for l in &self.layers {
            y = l.forward(&y)?;
        }
        Ok(y)
    }
}

impl Default for Sequential {
    fn default() -> Self {
        Sequential::new()
    }
}

impl Forward for Sequential {
    fn forward(&self, x: &Array) -> Result<Array> {
        Sequential::forward(self, x)
    }
}

/// Normalises over the last axis: `(x - mean) / sqrt(var + eps) * weight + bias`
/// (mlx.nn.LayerNorm).
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct LayerNorm {
    pub weight: Option<Param>,
    pub bias: Option<Param>,
    pub eps: f64,
}

impl LayerNorm {
    /// Over `dims` features, with an affine weight and bias when `affine`.
    pub fn new(dims: usize, eps: f64, affine: bool, bias: bool) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: affine
                .then(|| ops::ones(&[dims], Dtype::Float32).map(Param::new))
                .transpose()?,
            bias: (affine && bias)
                .then(|| ops::zeros(&[dims], Dtype::Float32).map(Param::new))
                .transpose()?,
            eps,
        })
    }
}

/// `x` normalised over `axes` to zero mean and unit variance.
fn standardize(x: &Array, axes: &[i64], eps: f64) -> Result<Array> {
    let mean = ops::mean(x, axes, true)?;
    let var = ops::var(x, axes, true, 0)?;
    ops::multiply(ops::subtract(x, &mean)?, ops::rsqrt(&ops::add(&var, eps)?)?)
}

/// `x * w + b` for the parameters present.
fn affine(x: Array, w: &Option<Param>, b: &Option<Param>) -> Result<Array> {
    let x = match w {
        Some(w) => ops::multiply(&x, &w.value)?,
        None => x,
    };
    match b {
        Some(b) => ops::add(&x, &b.value),
        None => Ok(x),
    }
}

impl Forward for LayerNorm {
    fn forward(&self, x: &Array) -> Result<Array> {
        umx_core::fast::layer_norm(
            x,
            self.weight.as_ref().map(|w| &w.value),
            self.bias.as_ref().map(|b| &b.value),
            self.eps as f32,
        )
    }
}

/// Root-mean-square normalisation over the last axis: `x / sqrt(mean(x^2) + eps) * weight`
/// (mlx.nn.RMSNorm).
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct RMSNorm {
    pub weight: Param,
    pub eps: f64,
}

impl RMSNorm {
    /// Over `dims` features.
    pub fn new(dims: usize, eps: f64) -> Result<RMSNorm> {
        Ok(RMSNorm {
            weight: Param::new(ops::ones(&[dims], Dtype::Float32)?),
            eps,
        })
    }
}

impl Forward for RMSNorm {
    fn forward(&self, x: &Array) -> Result<Array> {
        umx_core::fast::rms_norm(x, Some(&self.weight.value), self.eps as f32)
    }
}

/// Normalises groups of channels (the last axis) over the spatial axes and the group
/// (mlx.nn.GroupNorm; channels last).
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct GroupNorm {
    pub weight: Option<Param>,
    pub bias: Option<Param>,
    pub num_groups: usize,
    pub eps: f64,
}

impl GroupNorm {
    /// `dims` channels in `num_groups` groups.
    pub fn new(num_groups: usize, dims: usize, eps: f64, affine: bool) -> Result<GroupNorm> {
        if num_groups == 0 || !dims.is_multiple_of(num_groups) {
            bail!("GroupNorm: {dims} channels cannot form {num_groups} groups");
        }
        Ok(GroupNorm {
            weight: affine
                .then(|| ops::ones(&[dims], Dtype::Float32).map(Param::new))
                .transpose()?,
            bias: affine
                .then(|| ops::zeros(&[dims], Dtype::Float32).map(Param::new))
                .transpose()?,
            num_groups,
            eps,
        })
    }
}

impl Forward for GroupNorm {
    fn forward(&self, x: &Array) -> Result<Array> {
        // (B, ..., C) -> (B, S, G, C/G): statistics over S and C/G.
        let shape = x.shape().to_vec();
        if shape.len() < 2 {
            bail!("GroupNorm: input must be (batch, ..., channels), not shape {shape:?}");
        }
        let (b, c) = (shape[0] as i64, shape[shape.len() - 1] as i64);
        let g = self.num_groups as i64;
        let y = ops::reshape(x, &[b, -1, g, c / g])?;
        let y = standardize(&y, &[1, 3], self.eps)?;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        affine(ops::reshape(&y, &dims)?, &self.weight, &self.bias)
    }
}

/// Normalises each channel (last axis) of each example over its spatial axes
/// (mlx.nn.InstanceNorm).
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct InstanceNorm {
    pub weight: Option<Param>,
    pub bias: Option<Param>,
    pub eps: f64,
}

impl InstanceNorm {
    /// Over `dims` channels.
    pub fn new(dims: usize, eps: f64, affine: bool) -> Result<InstanceNorm> {
        Ok(InstanceNorm {
            weight: affine
                .then(|| ops::ones(&[dims], Dtype::Float32).map(Param::new))
                .transpose()?,
            bias: affine
                .then(|| ops::zeros(&[dims], Dtype::Float32).map(Param::new))
                .transpose()?,
            eps,
        })
    }
}

impl Forward for InstanceNorm {
    fn forward(&self, x: &Array) -> Result<Array> {
        if x.ndim() < 3 {
            bail!(
                "InstanceNorm: input must be (batch, ..., channels) with spatial axes, not shape {:?}",
                x.shape()
            );
        }
        let axes: Vec<i64> = (1..x.ndim() as i64 - 1).collect();
        affine(standardize(x, &axes, self.eps)?, &self.weight, &self.bias)
    }
}

/// Batch normalisation over every axis but the last (channels), with running statistics for
/// evaluation (mlx.nn.BatchNorm).
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub weight: Option<Param>,
    pub bias: Option<Param>,
    pub running_mean: Option<Param>,
    pub running_var: Option<Param>,
    pub eps: f64,
    pub momentum: f64,
    pub training: bool,
}

impl BatchNorm {
    /// Over `dims` channels; `track_running_stats` keeps frozen running mean and variance.
    pub fn new(
        dims: usize,
        eps: f64,
        momentum: f64,
        affine: bool,
        track_running_stats: bool,
    ) -> Result<BatchNorm> {
        Ok(BatchNorm {
            weight: affine
                .then(|| ops::ones(&[dims], Dtype::Float32).map(Param::new))
                .transpose()?,
            bias: affine
                .then(|| ops::zeros(&[dims], Dtype::Float32).map(Param::new))
                .transpose()?,
            running_mean: track_running_stats
                .then(|| ops::zeros(&[dims], Dtype::Float32).map(Param::frozen))
                .transpose()?,
            running_var: track_running_stats
                .then(|| ops::ones(&[dims], Dtype::Float32).map(Param::frozen))
                .transpose()?,
            eps,
            momentum,
            training: true,
        })
    }

    /// Applies the layer; in training mode it also returns the layer with updated running
    /// statistics (arrays are values: the caller keeps the new layer).
    pub fn forward_train(&self, x: &Array) -> Result<(Array, BatchNorm)> {
        let axes: Vec<i64> = (0..x.ndim() as i64 - 1).collect();
        let mean = ops::mean(x, &axes[..], false)?;
        let var = ops::var(x, &axes[..], false, 0)?;
        let mut next = self.clone();
        if let (Some(rm), Some(rv)) = (&self.running_mean, &self.running_var) {
            let m = self.momentum;
            next.running_mean = Some(Param::frozen(ops::add(
                ops::multiply(&rm.value, 1.0 - m)?,
                ops::multiply(&mean, m)?,
            )?));
            next.running_var = Some(Param::frozen(ops::add(
                ops::multiply(&rv.value, 1.0 - m)?,
                ops::multiply(&var, m)?,
            )?));
        }
        let y = ops::multiply(
            ops::subtract(x, &mean)?,
            ops::rsqrt(&ops::add(&var, self.eps)?)?,
        )?;
        Ok((affine(y, &self.weight, &self.bias)?, next))
    }
}

impl Forward for BatchNorm {
    fn forward(&self, x: &Array) -> Result<Array> {
        if x.ndim() < 2 {
            bail!(
                "BatchNorm: input must be (batch, ..., channels), not shape {:?}",
                x.shape()
            );
        }
        match (&self.running_mean, &self.running_var, self.training) {
            (Some(rm), Some(rv), false) => {
                let y = ops::multiply(
                    ops::subtract(x, &rm.value)?,
                    ops::rsqrt(&ops::add(&rv.value, self.eps)?)?,
                )?;
                affine(y, &self.weight, &self.bias)
            }
            _ => Ok(self.forward_train(x)?.0),
        }
    }
}

impl Module for BatchNorm {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        use crate::module::join;
        self.weight.visit_params(&join(prefix, "weight"), f);
        self.bias.visit_params(&join(prefix, "bias"), f);
        self.running_mean
            .visit_params(&join(prefix, "running_mean"), f);
        self.running_var
            .visit_params(&join(prefix, "running_var"), f);
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        use crate::module::join;
        self.weight.visit_params_mut(&join(prefix, "weight"), f);
        self.bias.visit_params_mut(&join(prefix, "bias"), f);
        self.running_mean
            .visit_params_mut(&join(prefix, "running_mean"), f);
        self.running_var
            .visit_params_mut(&join(prefix, "running_var"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

/// Zeroes each element with probability `p` in training mode and scales the rest by
/// `1/(1-p)` (mlx.nn.Dropout). `Dropout2d`/`Dropout3d` drop whole channels: use
/// [`Dropout::channels`].
#[derive(Clone, Debug)]
pub struct Dropout {
    pub p: f64,
    /// How many trailing axes share one draw (0: elements; 2 or 3: whole channels of
    /// `(..., H, W, C)` inputs, so the mask is drawn over batch and channels).
    pub spatial_axes: usize,
    pub training: bool,
}

impl Dropout {
    /// Element dropout with probability `p` in `[0, 1)`.
    pub fn new(p: f64) -> Result<Dropout> {
        Dropout::channels(p, 0)
    }

    /// Channel dropout (Dropout2d: `spatial_axes = 2`, Dropout3d: 3) for channels-last input.
    pub fn channels(p: f64, spatial_axes: usize) -> Result<Dropout> {
        if !(0.0..1.0).contains(&p) {
            bail!("Dropout: the probability must be in [0, 1), not {p}");
        }
        Ok(Dropout {
            p,
            spatial_axes,
            training: true,
        })
    }
}

impl Forward for Dropout {
    fn forward(&self, x: &Array) -> Result<Array> {
        if !self.training || self.p == 0.0 {
            return Ok(x.clone());
        }
        let mut mask_shape = x.shape().to_vec();
        if self.spatial_axes > 0 {
            let nd = mask_shape.len();
            if nd < self.spatial_axes + 1 {
                bail!(
                    "Dropout: a {}-D input has no {} spatial axes and channels",
                    nd,
                    self.spatial_axes
                );
            }
            for d in &mut mask_shape[nd - 1 - self.spatial_axes..nd - 1] {
                *d = 1;
            }
        }
        let keep = random::bernoulli(
            Array::full_scalar(1.0 - self.p, Dtype::Float32),
            Some(&mask_shape),
            None,
        )?;
        ops::multiply(ops::where_(&keep, x, 0.0)?, 1.0 / (1.0 - self.p))
    }
}

impl Module for Dropout {
    fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, &'a Param)) {}
    fn visit_params_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Param)) {}
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
