//! Quantized layers (mlx.nn's `QuantizedLinear`, `QuantizedEmbedding`) and [`quantize`],
//! which quantizes the linear and embedding layers of a model in place.
//!
//! Weights use MLX's affine scheme (`umx_core::ops::quantize`): `weight` holds the packed
//! uint32 codes, `scales` and `biases` one value per group, under those names, so a model
//! quantized by MLX and saved as safetensors loads through the ordinary weight loading once
//! the model is quantized with the same group size and bits. The quantized parameters are
//! frozen (not trained); a layer's `bias` stays trainable.
//!
//! Rust models are typed structs, so a layer cannot change its type: instead [`Linear`] and
//! [`Embedding`] each hold an optional quantized form and compute through it once quantized
//! (their parameters then are the quantized layer's). `QuantizedLinear` and
//! `QuantizedEmbedding` are also layers of their own, for models written quantized.

use crate::layers::{Embedding, Forward, Linear};
use crate::module::{Module, Param};
use umx_core::shape::fmt_shape;
use umx_core::{Array, Dtype, Result, bail, ops, random};

/// A layer [`quantize`] can quantize in place: [`Linear`] and [`Embedding`].
pub trait Quantizable {
    /// The shape of the layer's weight (the packed codes' shape once quantized).
    fn weight_shape(&self) -> Vec<usize>;
    /// Whether the layer is quantized already.
    fn is_quantized(&self) -> bool;
    /// Quantizes the layer's weight with `group_size` and `bits`; from then on it computes
    /// through the quantized weights.
    fn quantize(&mut self, group_size: usize, bits: usize) -> Result<()>;
}

/// `y = x W^T + b` with `W` quantized (mlx.nn.QuantizedLinear): parameters `weight` (uint32
/// codes, `(output_dims, input_dims * bits / 32)`), `scales` and `biases` (`(output_dims,
/// input_dims / group_size)`), frozen, and an optional trainable `bias`.
///
/// ```
/// # umx_cpu::register();
/// use umx_nn::{Linear, QuantizedLinear, ModuleExt};
/// let dense = Linear::new(64, 8, true)?;
/// let q = QuantizedLinear::from_linear(&dense, 32, 4)?;
/// let x = umx_core::ops::ones(&[2, 64], None)?;
/// assert_eq!(q.forward(&x)?.shape(), &[2, 8]);
/// let trainable: Vec<String> = q.trainable_parameters().into_keys().collect();
/// assert_eq!(trainable, ["bias"]);
/// # Ok::<(), umx_core::Error>(())
/// ```
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct QuantizedLinear {
    pub weight: Param,
    pub scales: Param,
    pub biases: Param,
    pub bias: Option<Param>,
    pub group_size: usize,
    pub bits: usize,
}

impl QuantizedLinear {
    /// A quantized layer from `input_dims` to `output_dims` features, its weights drawn as
    /// [`Linear::new`]'s and quantized; the bias (when asked for) starts at zero.
    pub fn new(
        input_dims: usize,
        output_dims: usize,
        bias: bool,
        group_size: usize,
        bits: usize,
    ) -> Result<QuantizedLinear> {
        let scale = (1.0 / input_dims.max(1) as f64).sqrt();
        let w = random::uniform(
            -scale,
            scale,
            &[output_dims, input_dims],
            Dtype::Float32,
            None,
        )?;
        let b = if bias {
            Some(ops::zeros(&[output_dims], Dtype::Float32)?)
        } else {
            None
        };
        Self::from_weight(&w, b, group_size, bits)
    }

    /// The quantized form of a dense linear layer (its bias kept as it is).
    pub fn from_linear(linear: &Linear, group_size: usize, bits: usize) -> Result<QuantizedLinear> {
        if let Some(q) = &linear.quantized {
            return Ok(q.clone());
        }
        let bias = linear.bias.as_ref().map(|b| b.value.clone());
        Self::from_weight(&linear.weight, bias, group_size, bits)
    }

    fn from_weight(
        w: &Array,
        bias: Option<Array>,
        group_size: usize,
        bits: usize,
    ) -> Result<QuantizedLinear> {
        if w.ndim() != 2 {
            bail!(
                "QuantizedLinear: the weight must be a matrix, not of shape {}",
                fmt_shape(w.shape())
            );
        }
        let (q, s, b) = ops::quantize(w, group_size, bits)?;
        Ok(QuantizedLinear {
            weight: Param::frozen(q),
            scales: Param::frozen(s),
            biases: Param::frozen(b),
            bias: bias.map(Param::new),
            group_size,
            bits,
        })
    }

    /// Applies the layer to `x` of shape `(..., input_dims)`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let y = ops::quantized_matmul(
            x,
            &self.weight,
            &self.scales,
            &self.biases,
            true,
            self.group_size,
            self.bits,
        )?;
        match &self.bias {
            Some(b) => ops::add(&y, &b.value),
            None => Ok(y),
        }
    }
}

impl Forward for QuantizedLinear {
    fn forward(&self, x: &Array) -> Result<Array> {
        QuantizedLinear::forward(self, x)
    }
}

/// A lookup table stored quantized (mlx.nn.QuantizedEmbedding): parameters `weight`, `scales`
/// and `biases` as [`QuantizedLinear`]'s, frozen. Rows are dequantized as they are looked up.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops};
/// use umx_nn::{Embedding, QuantizedEmbedding};
/// let e = QuantizedEmbedding::from_embedding(&Embedding::new(10, 64)?, 64, 8)?;
/// let ids = Array::from_slice(&[3i32, 1], &[2])?;
/// assert_eq!(e.forward(&ids)?.shape(), &[2, 64]);
/// assert_eq!(e.as_linear(&ops::ones(&[1, 64], None)?)?.shape(), &[1, 10]);
/// # Ok::<(), umx_core::Error>(())
/// ```
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct QuantizedEmbedding {
    pub weight: Param,
    pub scales: Param,
    pub biases: Param,
    pub group_size: usize,
    pub bits: usize,
}

impl QuantizedEmbedding {
    /// A quantized table of `num_embeddings` rows of `dims` features, drawn as
    /// [`Embedding::new`]'s and quantized.
    pub fn new(
        num_embeddings: usize,
        dims: usize,
        group_size: usize,
        bits: usize,
    ) -> Result<QuantizedEmbedding> {
        Self::from_embedding(&Embedding::new(num_embeddings, dims)?, group_size, bits)
    }

    /// The quantized form of an embedding table.
    pub fn from_embedding(
        e: &Embedding,
        group_size: usize,
        bits: usize,
    ) -> Result<QuantizedEmbedding> {
        if let Some(q) = &e.quantized {
            return Ok(q.clone());
        }
        let (q, s, b) = ops::quantize(&e.weight, group_size, bits)?;
        Ok(QuantizedEmbedding {
            weight: Param::frozen(q),
            scales: Param::frozen(s),
            biases: Param::frozen(b),
            group_size,
            bits,
        })
    }

    /// The rows for integer indices `x` (shape `x.shape + (dims,)`), dequantized.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        if !x.dtype().is_integer() {
            bail!(
                "QuantizedEmbedding: indices must be integers, not {}",
                x.dtype()
            );
        }
        let rows = |a: &Array| ops::take(a, x, Some(0));
        ops::dequantize(
            &rows(&self.weight)?,
            &rows(&self.scales)?,
            &rows(&self.biases)?,
            self.group_size,
            self.bits,
        )
    }

    /// The table used as an output projection: `x W^T` (weight tying), without dequantizing
    /// the table.
    pub fn as_linear(&self, x: &Array) -> Result<Array> {
        ops::quantized_matmul(
            x,
            &self.weight,
            &self.scales,
            &self.biases,
            true,
            self.group_size,
            self.bits,
        )
    }
}

/// Which layers [`quantize`] quantizes: called with each layer's dotted path and the layer.
pub type QuantizePredicate = dyn Fn(&str, &dyn Quantizable) -> bool;

/// Quantizes, in place, every [`Linear`] and [`Embedding`] of `model` (mlx.nn.quantize) for
/// which `predicate(path, layer)` holds (`None`: every layer not quantized yet). A layer whose
/// weight does not fit the group size is an error naming the layer; nothing after it is
/// quantized then.
///
/// ```
/// # umx_cpu::register();
/// use umx_nn::{Linear, Module, ModuleExt, quantize};
/// #[derive(Module, Clone)]
/// #[module(crate = "umx_nn")]
/// struct Mlp {
///     up: Linear,
///     down: Linear,
/// }
/// let mut m = Mlp { up: Linear::new(64, 128, true)?, down: Linear::new(128, 64, false)? };
/// quantize(&mut m, 64, 4, Some(&|path: &str, _: &dyn umx_nn::Quantizable| path != "down"))?;
/// let names: Vec<String> = m.parameters().into_keys().collect();
/// assert_eq!(names, ["down.weight", "up.bias", "up.biases", "up.scales", "up.weight"]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn quantize<M: Module + ?Sized>(
    model: &mut M,
    group_size: usize,
    bits: usize,
    predicate: Option<&QuantizePredicate>,
) -> Result<()> {
    let mut err = None;
    model.visit_quantizable_mut("", &mut |path, layer| {
        if err.is_some() || layer.is_quantized() {
            return;
        }
        if predicate.is_some_and(|p| !p(path, layer)) {
            return;
        }
        let shape = layer.weight_shape();
        if let Err(e) = layer.quantize(group_size, bits) {
            let name = if path.is_empty() { "(root)" } else { path };
            err = Some(umx_core::Error::Invalid(format!(
                "quantize: layer {name} with weight of shape {} cannot be quantized: {e}",
                fmt_shape(&shape)
            )));
        }
    });
    err.map_or(Ok(()), Err)
}
