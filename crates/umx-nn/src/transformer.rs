//! Attention and transformers (mlx.nn's MultiHeadAttention, TransformerEncoder/Decoder and
//! Transformer), and `scaled_dot_product_attention`.

use crate::activations::relu;
use crate::layers::{Dropout, Forward, LayerNorm, Linear};
use umx_core::{Array, Dtype, Result, bail, fast, ops};

/// `softmax(q k^T * scale + mask) v` over `(B, heads, L, D)` inputs; `mask` is additive (or
/// boolean: false positions are excluded). Keys and values may have fewer heads than the
/// queries (grouped-query attention) when the counts divide. See
/// [`umx_core::fast::scaled_dot_product_attention`] for causal masks and attention sinks.
pub fn scaled_dot_product_attention(
    q: &Array,
    k: &Array,
    v: &Array,
    scale: f64,
    mask: Option<&Array>,
) -> Result<Array> {
    let mask = match mask {
        Some(m) => fast::AttentionMask::Array(m),
        None => fast::AttentionMask::None,
    };
    fast::scaled_dot_product_attention(q, k, v, scale as f32, mask, None)
}

/// Multi-head attention with query, key, value and output projections (no bias by default, as
/// mlx.nn).
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct MultiHeadAttention {
    pub query_proj: Linear,
    pub key_proj: Linear,
    pub value_proj: Linear,
    pub out_proj: Linear,
    pub num_heads: usize,
}

impl MultiHeadAttention {
    /// `dims` features in `num_heads` heads (queries, keys and values all of `dims`).
    pub fn new(dims: usize, num_heads: usize, bias: bool) -> Result<Self> {
        if num_heads == 0 || !dims.is_multiple_of(num_heads) {
            bail!("MultiHeadAttention: {dims} features cannot form {num_heads} heads");
        }
        Ok(MultiHeadAttention {
            query_proj: Linear::new(dims, dims, bias)?,
            key_proj: Linear::new(dims, dims, bias)?,
            value_proj: Linear::new(dims, dims, bias)?,
            out_proj: Linear::new(dims, dims, bias)?,
            num_heads,
        })
    }

    /// Attention of `queries (B, L, D)` over `keys`/`values (B, S, D)` with an additive mask.
    pub fn forward(
        &self,
        queries: &Array,
        keys: &Array,
        values: &Array,
        mask: Option<&Array>,
    ) -> Result<Array> {
        let heads = |x: &Array| -> Result<Array> {
            ops::transpose(
                &ops::unflatten(x, -1, &[self.num_heads as i64, -1])?,
                [0i64, 2, 1, 3],
            )
        };
        let q = heads(&self.query_proj.forward(queries)?)?;
        let k = heads(&self.key_proj.forward(keys)?)?;
        let v = heads(&self.value_proj.forward(values)?)?;
        let scale = (1.0 / q.shape()[3] as f64).sqrt();
        let o = scaled_dot_product_attention(&q, &k, &v, scale, mask)?;
        let o = ops::flatten(&ops::transpose(&o, [0i64, 2, 1, 3])?, -2, -1)?;
        self.out_proj.forward(&o)
    }

    /// The additive causal mask of `n` positions: 0 on and below the diagonal, the most
    /// negative float32 above.
    pub fn create_additive_causal_mask(n: usize, dtype: Dtype) -> Result<Array> {
        let i = ops::arange(0.0, n as f64, 1.0, Dtype::Int32)?;
        let m = ops::less(&ops::expand_dims(&i, 1)?, &ops::expand_dims(&i, 0)?)?;
        ops::multiply(&ops::astype(&m, dtype)?, f32::MIN as f64)
    }
}

/// The activation of a transformer's feed-forward block.
pub type Activation = fn(&Array) -> Result<Array>;

/// A transformer encoder layer: self-attention and a feed-forward block, each residual, with
/// layer norms before (`norm_first`, the default) or after.
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct TransformerEncoderLayer {
    pub attention: MultiHeadAttention,
    pub ln1: LayerNorm,
    pub ln2: LayerNorm,
    pub linear1: Linear,
    pub linear2: Linear,
    pub dropout1: Dropout,
    pub dropout2: Dropout,
    #[module(skip)]
    pub activation: Activation,
    pub norm_first: bool,
}

impl TransformerEncoderLayer {
    /// `dims` features, `num_heads` heads, a hidden MLP of `mlp_dims` (default `4 * dims`).
    pub fn new(
        dims: usize,
        num_heads: usize,
        mlp_dims: Option<usize>,
        dropout: f64,
        norm_first: bool,
    ) -> Result<Self> {
        let mlp = mlp_dims.unwrap_or(4 * dims);
        Ok(TransformerEncoderLayer {
            attention: MultiHeadAttention::new(dims, num_heads, false)?,
            ln1: LayerNorm::new(dims, 1e-5, true, true)?,
            ln2: LayerNorm::new(dims, 1e-5, true, true)?,
            linear1: Linear::new(dims, mlp, true)?,
            linear2: Linear::new(mlp, dims, true)?,
            dropout1: Dropout::new(dropout)?,
            dropout2: Dropout::new(dropout)?,
            activation: relu,
            norm_first,
        })
    }

    fn mlp(&self, x: &Array) -> Result<Array> {
        let y = (self.activation)(&self.linear1.forward(x)?)?;
        self.linear2.forward(&self.dropout2.forward(&y)?)
    }

    /// Applies the layer with an additive attention mask.
    pub fn forward(&self, x: &Array, mask: Option<&Array>) -> Result<Array> {
        if self.norm_first {
            let y = self.ln1.forward(x)?;
            let x = ops::add(
                x,
                self.dropout1
                    .forward(&self.attention.forward(&y, &y, &y, mask)?)?,
            )?;
            ops::add(&x, self.mlp(&self.ln2.forward(&x)?)?)
        } else {
            let y = self
                .dropout1
                .forward(&self.attention.forward(x, x, x, mask)?)?;
            let x = self.ln1.forward(&ops::add(x, &y)?)?;
            self.ln2.forward(&ops::add(&x, self.mlp(&x)?)?)
        }
    }
}

/// A stack of encoder layers and a final layer norm.
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct TransformerEncoder {
    pub layers: Vec<TransformerEncoderLayer>,
    pub ln: LayerNorm,
}

impl TransformerEncoder {
    /// `num_layers` layers as [`TransformerEncoderLayer::new`].
    pub fn new(
        num_layers: usize,
        dims: usize,
        num_heads: usize,
        mlp_dims: Option<usize>,
        dropout: f64,
        norm_first: bool,
    ) -> Result<Self> {
        Ok(TransformerEncoder {
            layers: (0..num_layers)
                .map(|_| {
                    TransformerEncoderLayer::new(dims, num_heads, mlp_dims, dropout, norm_first)
                })
                .collect::<Result<_>>()?,
            ln: LayerNorm::new(dims, 1e-5, true, true)?,
        })
    }

    /// Applies every layer, then the final norm.
    pub fn forward(&self, x: &Array, mask: Option<&Array>) -> Result<Array> {
        let mut x = x.clone();
        for l in &self.layers {
            x = l.forward(&x, mask)?;
        }
        self.ln.forward(&x)
    }
}

/// A transformer decoder layer: masked self-attention, cross-attention over the encoder's
/// output (`memory`), and a feed-forward block.
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct TransformerDecoderLayer {
    pub self_attention: MultiHeadAttention,
    pub cross_attention: MultiHeadAttention,
    pub ln1: LayerNorm,
    pub ln2: LayerNorm,
    pub ln3: LayerNorm,
    pub linear1: Linear,
    pub linear2: Linear,
    pub dropout1: Dropout,
    pub dropout2: Dropout,
    pub dropout3: Dropout,
    #[module(skip)]
    pub activation: Activation,
    pub norm_first: bool,
}

impl TransformerDecoderLayer {
    /// As [`TransformerEncoderLayer::new`].
    pub fn new(
        dims: usize,
        num_heads: usize,
        mlp_dims: Option<usize>,
        dropout: f64,
        norm_first: bool,
    ) -> Result<Self> {
        let mlp = mlp_dims.unwrap_or(4 * dims);
        Ok(TransformerDecoderLayer {
            self_attention: MultiHeadAttention::new(dims, num_heads, false)?,
            cross_attention: MultiHeadAttention::new(dims, num_heads, false)?,
            ln1: LayerNorm::new(dims, 1e-5, true, true)?,
            ln2: LayerNorm::new(dims, 1e-5, true, true)?,
            ln3: LayerNorm::new(dims, 1e-5, true, true)?,
            linear1: Linear::new(dims, mlp, true)?,
            linear2: Linear::new(mlp, dims, true)?,
            dropout1: Dropout::new(dropout)?,
            dropout2: Dropout::new(dropout)?,
            dropout3: Dropout::new(dropout)?,
            activation: relu,
            norm_first,
        })
    }

    fn mlp(&self, x: &Array) -> Result<Array> {
        let y = (self.activation)(&self.linear1.forward(x)?)?;
        self.linear2.forward(&self.dropout3.forward(&y)?)
    }

    /// Applies the layer.
    pub fn forward(
        &self,
        x: &Array,
        memory: &Array,
        x_mask: Option<&Array>,
        memory_mask: Option<&Array>,
    ) -> Result<Array> {
        if self.norm_first {
            let y = self.ln1.forward(x)?;
            let x = ops::add(
                x,
                self.dropout1
                    .forward(&self.self_attention.forward(&y, &y, &y, x_mask)?)?,
            )?;
            let y = self.ln2.forward(&x)?;
            let x = ops::add(
                &x,
                self.dropout2.forward(&self.cross_attention.forward(
                    &y,
                    memory,
                    memory,
                    memory_mask,
                )?)?,
            )?;
            ops::add(&x, self.mlp(&self.ln3.forward(&x)?)?)
        } else {
            let y = self
                .dropout1
                .forward(&self.self_attention.forward(x, x, x, x_mask)?)?;
            let x = self.ln1.forward(&ops::add(x, &y)?)?;
            let y = self.dropout2.forward(&self.cross_attention.forward(
                &x,
                memory,
                memory,
                memory_mask,
            )?)?;
            let x = self.ln2.forward(&ops::add(&x, &y)?)?;
            self.ln3.forward(&ops::add(&x, self.mlp(&x)?)?)
        }
    }
}

/// A stack of decoder layers and a final layer norm.
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct TransformerDecoder {
    pub layers: Vec<TransformerDecoderLayer>,
    pub ln: LayerNorm,
}

impl TransformerDecoder {
    /// `num_layers` layers as [`TransformerDecoderLayer::new`].
    pub fn new(
        num_layers: usize,
        dims: usize,
        num_heads: usize,
        mlp_dims: Option<usize>,
        dropout: f64,
        norm_first: bool,
    ) -> Result<Self> {
        Ok(TransformerDecoder {
            layers: (0..num_layers)
                .map(|_| {
                    TransformerDecoderLayer::new(dims, num_heads, mlp_dims, dropout, norm_first)
                })
                .collect::<Result<_>>()?,
            ln: LayerNorm::new(dims, 1e-5, true, true)?,
        })
    }

    /// Applies every layer, then the final norm.
    pub fn forward(
        &self,
        x: &Array,
        memory: &Array,
        x_mask: Option<&Array>,
        memory_mask: Option<&Array>,
    ) -> Result<Array> {
        let mut x = x.clone();
        for l in &self.layers {
            x = l.forward(&x, memory, x_mask, memory_mask)?;
        }
        self.ln.forward(&x)
    }
}

/// An encoder-decoder transformer (mlx.nn.Transformer).
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct Transformer {
    pub encoder: TransformerEncoder,
    pub decoder: TransformerDecoder,
}

impl Transformer {
    /// `dims` features, `num_heads` heads, the given layer counts.
    pub fn new(
        dims: usize,
        num_heads: usize,
        num_encoder_layers: usize,
        num_decoder_layers: usize,
        mlp_dims: Option<usize>,
        dropout: f64,
        norm_first: bool,
    ) -> Result<Self> {
        Ok(Transformer {
            encoder: TransformerEncoder::new(
                num_encoder_layers,
                dims,
                num_heads,
                mlp_dims,
                dropout,
                norm_first,
            )?,
            decoder: TransformerDecoder::new(
                num_decoder_layers,
                dims,
                num_heads,
                mlp_dims,
                dropout,
                norm_first,
            )?,
        })
    }

    /// Encodes `src`, then decodes `tgt` attending to it.
    pub fn forward(
        &self,
        src: &Array,
        tgt: &Array,
        src_mask: Option<&Array>,
        tgt_mask: Option<&Array>,
        memory_mask: Option<&Array>,
    ) -> Result<Array> {
        let memory = self.encoder.forward(src, src_mask)?;
        self.decoder.forward(tgt, &memory, tgt_mask, memory_mask)
    }
}
