//! [`Llama`]: token embedding, decoder layers (RMSNorm, rotary GQA attention, SwiGLU MLP, each
//! residual), a final RMSNorm and the output projection (its own, or the embedding table).
//!
//! Fields are named as Hugging Face names the weights, so a parameter's dotted name in umx
//! (`model.layers.0.self_attn.q_proj.weight`) is its name in the checkpoint.

use crate::cache::{FixedCache, KvCache};
use crate::config::{LlamaConfig, RopeScaling};
use crate::lora::LoRALinear;
use umx::bail;
use umx::fast::AttentionMask;
use umx::nn::{self, Forward, Module, Param};
use umx::prelude::*;

/// A projection of the attention or the MLP: a plain linear layer, or one with a LoRA adapter.
#[derive(Clone, Debug)]
pub enum Projection {
    /// `x W^T (+ b)`.
    Linear(nn::Linear),
    /// A frozen linear layer plus a trainable low-rank update.
    LoRA(LoRALinear),
}

impl Projection {
    /// Applies the projection to `x (..., input_dims)`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        match self {
            Projection::Linear(l) => l.forward(x),
            Projection::LoRA(l) => l.forward(x),
        }
    }

    /// The base linear layer (for a LoRA projection, the frozen one it adapts).
    pub fn base(&self) -> &nn::Linear {
        match self {
            Projection::Linear(l) => l,
            Projection::LoRA(l) => &l.linear,
        }
    }
}

/// Projections of one input computed as one product: their weights stacked into one matrix
/// (and their biases into one vector; quantized weights, scales and biases likewise), whose
/// row blocks the projections' own parameters are views of, so the stack costs no memory. A
/// slot holds it while those parameters are the views it made (replaced weights, a LoRA
/// adapter or quantization end it: the projections then run apart).
#[derive(Debug, Default)]
pub struct Stacked(std::sync::Mutex<Option<std::sync::Arc<Stack>>>);

/// The stacked parameters of [`Stacked`].
#[derive(Debug)]
struct Stack {
    /// The weight, or the quantized weight, scales and biases, each stacked by rows.
    parts: Vec<Array>,
    bias: Option<Array>,
    /// Group size and bits of quantized weights.
    quantized: Option<(usize, usize)>,
    /// Each projection's output width.
    widths: Vec<usize>,
    /// The ids of the projections' parameters when stacked.
    ids: Vec<usize>,
}

impl Clone for Stacked {
    fn clone(&self) -> Stacked {
        Stacked(std::sync::Mutex::new(self.get()))
    }
}

/// A linear layer's parameters as a stack takes them: the weight (or the quantized weight,
/// scales and biases), then the bias.
fn stack_parts(l: &nn::Linear) -> (Vec<&Array>, Option<&Array>) {
    match &l.quantized {
        None => (vec![&l.weight.value], l.bias.as_ref().map(|b| &b.value)),
        Some(q) => (
            vec![&q.weight.value, &q.scales.value, &q.biases.value],
            q.bias.as_ref().map(|b| &b.value),
        ),
    }
}

/// [`stack_parts`], to replace them.
fn stack_parts_mut(l: &mut nn::Linear) -> (Vec<&mut Array>, Option<&mut Array>) {
    match &mut l.quantized {
        None => (
            vec![&mut l.weight.value],
            l.bias.as_mut().map(|b| &mut b.value),
        ),
        Some(q) => (
            vec![
                &mut q.weight.value,
                &mut q.scales.value,
                &mut q.biases.value,
            ],
            q.bias.as_mut().map(|b| &mut b.value),
        ),
    }
}

/// A linear layer's group size and bits when quantized.
fn quantization(l: &nn::Linear) -> Option<(usize, usize)> {
    l.quantized.as_ref().map(|q| (q.group_size, q.bits))
}

impl Stacked {
    fn get(&self) -> Option<std::sync::Arc<Stack>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, stack: Option<Stack>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = stack.map(std::sync::Arc::new);
    }

    /// The linear layers of `projs`, when each is a plain one (no adapter).
    fn linears<'a>(projs: &[&'a Projection]) -> Option<Vec<&'a nn::Linear>> {
        projs
            .iter()
            .map(|p| match p {
                Projection::Linear(l) => Some(l),
                Projection::LoRA(_) => None,
            })
            .collect()
    }

    /// The linear layers' parameters, in stacking order.
    fn arrays(linears: &[&nn::Linear]) -> Vec<Array> {
        linears
            .iter()
            .flat_map(|l| {
                let (parts, bias) = stack_parts(l);
                parts.into_iter().chain(bias).cloned().collect::<Vec<_>>()
            })
            .collect()
    }

    fn ids(linears: &[&nn::Linear]) -> Vec<usize> {
        Stacked::arrays(linears).iter().map(Array::id).collect()
    }

    /// Stacks `projs` (linear layers of one input width, dtype and quantization, all with a
    /// bias or none); their parameters become views of the stack. Leaves them as they are
    /// otherwise.
    fn stack(&self, projs: &mut [&mut Projection]) -> Result<()> {
        let mut linears = Vec::new();
        for p in projs.iter_mut() {
            match &mut **p {
                Projection::Linear(l) => linears.push(l),
                Projection::LoRA(_) => return Ok(()),
            }
        }
        // Each part's column count and dtype, and the bias's presence, must agree.
        let shape = |l: &nn::Linear| {
            let (parts, bias) = stack_parts(l);
            let cols: Vec<_> = parts
                .iter()
                .map(|a| (a.ndim(), a.shape().get(1).copied(), a.dtype()))
                .collect();
            (cols, bias.map(Array::dtype), quantization(l))
        };
        let Some(first) = linears.first().map(|l| shape(l)) else {
            return Ok(());
        };
        if first.0.iter().any(|&(nd, _, _)| nd != 2) || linears.iter().any(|l| shape(l) != first) {
            return Ok(());
        }
        let widths: Vec<usize> = linears
            .iter()
            .map(|l| stack_parts(l).0[0].shape()[0])
            .collect();
        let stacked = |pick: &dyn Fn(&nn::Linear) -> Option<Array>| -> Result<Option<Array>> {
            let xs: Option<Vec<Array>> = linears.iter().map(|l| pick(l)).collect();
            xs.map(|xs| ops::concatenate(&xs, 0)).transpose()
        };
        let mut parts = Vec::new();
        for i in 0..first.0.len() {
            let part = stacked(&|l| Some(stack_parts(l).0[i].clone()))?;
            parts.push(part.ok_or_else(|| Error::Invalid("stack: a layer lacks a part".into()))?);
        }
        let bias = stacked(&|l| stack_parts(l).1.cloned())?;
        eval(parts.iter().chain(&bias))?;
        let mut start = 0;
        for (l, &n) in linears.iter_mut().zip(&widths) {
            let (a, b) = (start as i64, (start + n) as i64);
            let (mine, my_bias) = stack_parts_mut(l);
            for (m, whole) in mine.into_iter().zip(&parts) {
                let cols = whole.shape()[1] as i64;
                *m = ops::slice(whole, &[a, 0], &[b, cols], &[])?;
            }
            if let (Some(m), Some(whole)) = (my_bias, &bias) {
                *m = ops::slice(whole, &[a], &[b], &[])?;
            }
            start += n;
        }
        let views: Vec<&nn::Linear> = linears.iter().map(|l| &**l).collect();
        let arrays = Stacked::arrays(&views);
        eval(&arrays)?;
        self.set(Some(Stack {
            parts,
            bias,
            quantized: first.2,
            widths,
            ids: arrays.iter().map(Array::id).collect(),
        }));
        Ok(())
    }

    /// The stack, when `projs` are still its views. A stack whose projections got an adapter,
    /// or other evaluated parameters, is let go; one whose parameters are being traced (a
    /// gradient taken through them) or are not evaluated yet is kept until they are.
    fn current(&self, projs: &[&Projection]) -> Option<std::sync::Arc<Stack>> {
        let stack = self.get()?;
        let linears = Stacked::linears(projs);
        let current = linears.as_ref().map(|l| Stacked::ids(l));
        if current.as_ref() != Some(&stack.ids) {
            let pending =
                linears.is_some_and(|l| Stacked::arrays(&l).iter().any(|a| !a.is_evaluated()));
            if !pending {
                self.set(None);
            }
            return None;
        }
        Some(stack)
    }

    /// `silu(gate(x)) * up(x)` for `projs = [gate, up]` as one op (`fast::swiglu_linear`, or
    /// its quantized form), when they are still the stack's views, of one width, without
    /// biases.
    fn swiglu(&self, projs: &[&Projection], x: &Array) -> Result<Option<Array>> {
        let Some(stack) = self.current(projs) else {
            return Ok(None);
        };
        if stack.bias.is_some() || stack.widths.len() != 2 || stack.widths[0] != stack.widths[1] {
            return Ok(None);
        }
        match (stack.quantized, &stack.parts[..]) {
            (None, [w]) => umx::fast::swiglu_linear(x, w).map(Some),
            (Some((group, bits)), [w, s, b]) => {
                umx::fast::swiglu_quantized_linear(x, w, s, b, group, bits).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The stacked weight of `projs` `(sum of widths, K)` when they are still the stack's
    /// views, unquantized and without biases (what `x @ weight.T` computes all of at once).
    fn weight(&self, projs: &[&Projection]) -> Option<Array> {
        let stack = self.current(projs)?;
        match (&stack.quantized, &stack.parts[..], &stack.bias) {
            (None, [w], None) => Some(w.clone()),
            _ => None,
        }
    }

    /// The stacked quantized weight of `projs` (the packed weight, scales and biases, group
    /// size and bits) when they are still the stack's views, without biases.
    fn quantized_weight(&self, projs: &[&Projection]) -> Option<([Array; 3], usize, usize)> {
        let stack = self.current(projs)?;
        match (&stack.quantized, &stack.parts[..], &stack.bias) {
            (Some((group, bits)), [w, s, b], None) => {
                Some(([w.clone(), s.clone(), b.clone()], *group, *bits))
            }
            _ => None,
        }
    }

    /// The stacked product of `projs` on `x` (their outputs side by side on the last axis)
    /// and each one's width, when they are still the stack's views (see [`Stacked::current`]).
    fn product(&self, projs: &[&Projection], x: &Array) -> Result<Option<(Array, Vec<usize>)>> {
        let Some(stack) = self.current(projs) else {
            return Ok(None);
        };
        let y = match stack.quantized {
            None => {
                let wt = ops::transpose(&stack.parts[0], [1i64, 0])?;
                match &stack.bias {
                    Some(b) => ops::addmm(b, x, &wt, 1.0, 1.0)?,
                    None => ops::matmul(x, &wt)?,
                }
            }
            Some((group, bits)) => {
                let [w, s, b] = &stack.parts[..] else {
                    bail!("a quantized stack has a weight, scales and biases");
                };
                let y = ops::quantized_matmul(x, w, s, b, true, group, bits)?;
                match &stack.bias {
                    Some(b) => ops::add(&y, b)?,
                    None => y,
                }
            }
        };
        Ok(Some((y, stack.widths.clone())))
    }

    /// `projs` applied to `x`: one product when they are still the stack's views (see
    /// [`Stacked::product`]), else one each.
    fn forward(&self, projs: &[&Projection], x: &Array) -> Result<Vec<Array>> {
        match self.product(projs, x)? {
            Some((y, widths)) => {
                let cuts: Vec<usize> = widths
                    .iter()
                    .scan(0, |at, &n| {
                        *at += n;
                        Some(*at)
                    })
                    .collect();
                ops::split(&y, &cuts[..cuts.len() - 1], -1)
            }
            None => projs.iter().map(|p| p.forward(x)).collect(),
        }
    }
}

impl Module for Projection {
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(&str, &'a Param)) {
        match self {
            Projection::Linear(l) => l.visit_params(prefix, f),
            Projection::LoRA(l) => l.visit_params(prefix, f),
        }
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        match self {
            Projection::Linear(l) => l.visit_params_mut(prefix, f),
            Projection::LoRA(l) => l.visit_params_mut(prefix, f),
        }
    }
    fn set_training(&mut self, training: bool) {
        if let Projection::LoRA(l) = self {
            l.set_training(training)
        }
    }
    fn visit_quantizable_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn nn::Quantizable),
    ) {
        match self {
            Projection::Linear(l) => l.visit_quantizable_mut(prefix, f),
            Projection::LoRA(l) => l.visit_quantizable_mut(prefix, f),
        }
    }
}

/// Rotary position embedding in Hugging Face's layout (the two halves of each head rotated
/// together, "rotate half"). Without scaling (or with linear scaling) it is `nn::RoPE`; Llama
/// 3's scaling changes each frequency, so it goes to `umx::fast::rope` with the frequencies
/// computed here.
#[derive(Clone, Debug)]
pub enum Rope {
    /// `nn::RoPE`, not traditional.
    Standard(nn::RoPE),
    /// Each feature pair `i` turns by `position / periods[i]` (float32, `head_dim / 2` of
    /// them; `fast::rope`'s `freqs`).
    Periods(Array),
}

impl Rope {
    /// The rotary embedding `config` asks for.
    pub fn new(config: &LlamaConfig) -> Result<Rope> {
        let dims = config.head_dim;
        match &config.rope_scaling {
            None => Ok(Rope::Standard(nn::RoPE::new(
                dims,
                false,
                config.rope_theta,
                1.0,
            )?)),
            Some(RopeScaling::Linear { factor }) => Ok(Rope::Standard(nn::RoPE::new(
                dims,
                false,
                config.rope_theta,
                1.0 / factor,
            )?)),
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => {
                // transformers' `_compute_llama3_parameters`: long wavelengths are stretched by
                // `factor`, short ones kept, the band between interpolated.
                let old = *original_max_position_embeddings as f64;
                let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
                let periods: Vec<f32> = (0..dims / 2)
                    .map(|i| {
                        let f = 1.0 / config.rope_theta.powf((2 * i) as f64 / dims as f64);
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        let f = if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        };
                        (1.0 / f) as f32
                    })
                    .collect();
                Ok(Rope::Periods(Array::from_slice(&periods, &[dims / 2])?))
            }
        }
    }

    /// Rotates `x (B, heads, L, D)` for positions `offset, offset + 1, ...`.
    pub fn forward_at(&self, x: &Array, offset: usize) -> Result<Array> {
        let offset = i32::try_from(offset)
            .map_err(|_| Error::Invalid(format!("Rope: offset {offset} is too large")))?;
        self.forward_offset(x, &Array::scalar(offset))
    }

    /// [`Rope::forward_at`] with the offset as an integer array (a decoding step whose
    /// position is data, not part of its graph).
    pub fn forward_offset(&self, x: &Array, offset: &Array) -> Result<Array> {
        match self {
            Rope::Standard(r) => r.forward_offset(x, offset),
            Rope::Periods(periods) => umx::fast::rope(
                x,
                2 * periods.size(),
                false,
                None,
                1.0,
                offset,
                Some(periods),
            ),
        }
    }
}

/// Grouped-query self-attention with rotary positions.
#[derive(Clone, Debug, Module)]
pub struct Attention {
    /// Queries: hidden -> heads * head_dim.
    pub q_proj: Projection,
    /// Keys: hidden -> kv_heads * head_dim.
    pub k_proj: Projection,
    /// Values: hidden -> kv_heads * head_dim.
    pub v_proj: Projection,
    /// Output: heads * head_dim -> hidden.
    pub o_proj: Projection,
    /// Query heads.
    pub num_heads: usize,
    /// Key and value heads (each shared by `num_heads / num_kv_heads` query heads).
    pub num_kv_heads: usize,
    /// Features per head.
    pub head_dim: usize,
    /// The rotary embedding of queries and keys.
    #[module(skip)]
    pub rope: Rope,
    /// q, k and v as one product, once [`Attention::stack_projections`] made it.
    #[module(skip)]
    pub stacked: Stacked,
}

impl Attention {
    /// Random weights (nn::Linear's initialisation) of `config`'s shapes.
    pub fn new(config: &LlamaConfig) -> Result<Attention> {
        let (h, d, bias) = (config.hidden_size, config.head_dim, config.attention_bias);
        let (nq, nkv) = (config.num_attention_heads, config.num_key_value_heads);
        let linear = |i, o| Ok::<_, Error>(Projection::Linear(nn::Linear::new(i, o, bias)?));
        Ok(Attention {
            q_proj: linear(h, nq * d)?,
            k_proj: linear(h, nkv * d)?,
            v_proj: linear(h, nkv * d)?,
            o_proj: linear(nq * d, h)?,
            num_heads: nq,
            num_kv_heads: nkv,
            head_dim: d,
            rope: Rope::new(config)?,
            stacked: Stacked::default(),
        })
    }

    /// Computes queries, keys and values as one product from now on (one matrix-vector
    /// kernel a decoding step instead of three): their weights are stacked into one matrix and
    /// become views of it (no memory is added). It ends by itself when the weights are
    /// replaced, adapted (LoRA) or quantized (stack again after quantizing: quantized
    /// projections stack too); a no-op unless all three are linear layers alike.
    pub fn stack_projections(&mut self) -> Result<()> {
        let Attention {
            q_proj,
            k_proj,
            v_proj,
            stacked,
            ..
        } = self;
        stacked.stack(&mut [q_proj, k_proj, v_proj])
    }

    /// Attends `x (B, L, hidden)` over itself and, with a cache, over the cached positions
    /// (the cache is updated). `mask` is causal, none, or a boolean array, true where a query
    /// may see a key.
    pub fn forward(
        &self,
        x: &Array,
        mask: AttentionMask,
        cache: Option<&mut KvCache>,
    ) -> Result<Array> {
        let offset = cache.as_ref().map_or(0, |c| c.offset());
        let offset = Array::scalar(
            i32::try_from(offset)
                .map_err(|_| Error::Invalid(format!("Attention: offset {offset} is too large")))?,
        );
        let (q, k, v) = self.queries_keys_values(x, &offset)?;
        let (k, v) = match cache {
            Some(c) => c.update(&k, &v)?,
            None => (k, v),
        };
        self.attend(&q, &k, &v, mask)
    }

    /// One decoding position against a [`FixedCache`](crate::FixedCache) layer: `x (B, 1,
    /// hidden)` at `position` (an int32 scalar); its keys and values are written into `keys`
    /// and `values` `(B, kv heads, capacity, D)` at `position`, and `mask (1, 1, 1,
    /// capacity)` hides the positions after it. Returns the output and the updated keys and
    /// values.
    pub fn forward_fixed(
        &self,
        x: &Array,
        position: &Array,
        mask: &Array,
        keys: &Array,
        values: &Array,
    ) -> Result<(Array, Array, Array)> {
        // Stacked: one op rotates the queries and keys and writes the keys and values into
        // the caches (one kernel on the GPU instead of a rope and two scatters).
        let projs = [&self.q_proj, &self.k_proj, &self.v_proj];
        let (nq, nkv) = (self.num_heads, self.num_kv_heads);
        let (dims, traditional, base, scale, freqs) = match &self.rope {
            Rope::Standard(r) => (
                r.dims,
                r.traditional,
                Some(r.base as f32),
                r.scale as f32,
                None,
            ),
            Rope::Periods(periods) => (2 * periods.size(), false, None, 1.0, Some(periods)),
        };
        // Unquantized and without biases, the product too (`fast::linear_rope_cache_write`:
        // on the GPU the matrix-vector kernel rotates and writes each pair of its outputs).
        let rotated = if let Some(w) = self.stacked.weight(&projs) {
            Some(umx::fast::linear_rope_cache_write(
                x,
                &w,
                nq,
                nkv,
                keys,
                values,
                position,
                dims,
                traditional,
                base,
                scale,
                freqs,
            )?)
        } else if let Some(([w, s, b], group, bits)) = self.stacked.quantized_weight(&projs) {
            // Quantized: on the GPU the 4-bit kernel rotates and writes each pair as well.
            Some(umx::fast::quantized_linear_rope_cache_write(
                x,
                &w,
                &s,
                &b,
                group,
                bits,
                nq,
                nkv,
                keys,
                values,
                position,
                dims,
                traditional,
                base,
                scale,
                freqs,
            )?)
        } else if let Some((qkv, _)) = self.stacked.product(&projs, x)? {
            Some(umx::fast::rope_cache_write(
                &qkv,
                nq,
                nkv,
                keys,
                values,
                position,
                dims,
                traditional,
                base,
                scale,
                freqs,
            )?)
        } else {
            None
        };
        if let Some((q, keys, values)) = rotated {
            let o = self.attend(&q, &keys, &values, AttentionMask::Array(mask))?;
            return Ok((o, keys, values));
        }
        let (q, k, v) = self.queries_keys_values(x, position)?;
        let at = [ops::reshape(position, &[1])?];
        let window = |a: &Array| {
            let s = a.shape();
            ops::reshape(a, &[1, s[0] as i64, s[1] as i64, s[2] as i64, s[3] as i64])
        };
        let keys = ops::scatter(keys, &at, &window(&k)?, &[2])?;
        let values = ops::scatter(values, &at, &window(&v)?, &[2])?;
        let o = self.attend(&q, &keys, &values, AttentionMask::Array(mask))?;
        Ok((o, keys, values))
    }

    /// Queries, keys and values `(B, heads, L, D)` of `x (B, L, hidden)`, rotated for
    /// positions from `offset` on.
    fn queries_keys_values(&self, x: &Array, offset: &Array) -> Result<(Array, Array, Array)> {
        let (b, l) = (x.dim(0)?, x.dim(1)?);
        // (B, L, heads * D) -> (B, heads, L, D)
        let heads = |y: Array, n: usize| {
            ops::transpose(
                &ops::reshape(&y, &[b as i64, l as i64, n as i64, self.head_dim as i64])?,
                [0i64, 2, 1, 3],
            )
        };
        let projs = [&self.q_proj, &self.k_proj, &self.v_proj];
        let (nq, nkv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        if let Some((y, _)) = self.stacked.product(&projs, x)? {
            // Stacked: the query and key heads rotate together, as one array of nq + nkv
            // heads (one rope kernel, not two).
            let (b, l) = (b as i64, l as i64);
            let cut = ((nq + nkv) * d) as i64;
            let end = cut + (nkv * d) as i64;
            let qk = heads(ops::slice(&y, &[0, 0, 0], &[b, l, cut], &[])?, nq + nkv)?;
            let qk = self.rope.forward_offset(&qk, offset)?;
            let (nq, d) = (nq as i64, d as i64);
            let q = ops::slice(&qk, &[0, 0, 0, 0], &[b, nq, l, d], &[])?;
            let k = ops::slice(&qk, &[0, nq, 0, 0], &[b, nq + nkv as i64, l, d], &[])?;
            let v = heads(ops::slice(&y, &[0, 0, cut], &[b, l, end], &[])?, nkv)?;
            return Ok((q, k, v));
        }
        let q = heads(self.q_proj.forward(x)?, nq)?;
        let k = heads(self.k_proj.forward(x)?, nkv)?;
        let v = heads(self.v_proj.forward(x)?, nkv)?;
        let q = self.rope.forward_offset(&q, offset)?;
        let k = self.rope.forward_offset(&k, offset)?;
        Ok((q, k, v))
    }

    /// Attention of `q` over `k` and `v`, through the output projection: `(B, L, hidden)`.
    fn attend(&self, q: &Array, k: &Array, v: &Array, mask: AttentionMask) -> Result<Array> {
        let (b, l) = (q.dim(0)?, q.dim(2)?);
        let scale = (1.0 / (self.head_dim as f64).sqrt()) as f32;
        let o = umx::fast::scaled_dot_product_attention(q, k, v, scale, mask, None)?;
        let o = ops::reshape(
            &ops::transpose(&o, [0i64, 2, 1, 3])?,
            &[b as i64, l as i64, (self.num_heads * self.head_dim) as i64],
        )?;
        self.o_proj.forward(&o)
    }
}

/// The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.
#[derive(Clone, Debug, Module)]
pub struct Mlp {
    /// hidden -> intermediate, through SiLU.
    pub gate_proj: Projection,
    /// hidden -> intermediate, multiplying the gate.
    pub up_proj: Projection,
    /// intermediate -> hidden.
    pub down_proj: Projection,
    /// gate and up as one product, once [`Mlp::stack_projections`] made it.
    #[module(skip)]
    pub stacked: Stacked,
}

impl Mlp {
    /// Random weights of `config`'s shapes.
    pub fn new(config: &LlamaConfig) -> Result<Mlp> {
        let (h, i, bias) = (
            config.hidden_size,
            config.intermediate_size,
            config.mlp_bias,
        );
        let linear = |a, b| Ok::<_, Error>(Projection::Linear(nn::Linear::new(a, b, bias)?));
        Ok(Mlp {
            gate_proj: linear(h, i)?,
            up_proj: linear(h, i)?,
            down_proj: linear(i, h)?,
            stacked: Stacked::default(),
        })
    }

    /// Computes gate and up as one product from now on (see
    /// [`Attention::stack_projections`]).
    pub fn stack_projections(&mut self) -> Result<()> {
        let Mlp {
            gate_proj,
            up_proj,
            stacked,
            ..
        } = self;
        stacked.stack(&mut [gate_proj, up_proj])
    }

    /// Applies the block to `x (..., hidden)`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let projs = [&self.gate_proj, &self.up_proj];
        // Gate and up stacked: both products and the SwiGLU in one op (for a decoding step's
        // few rows, one matrix-vector kernel on the GPU).
        if let Some(h) = self.stacked.swiglu(&projs, x)? {
            return self.down_proj.forward(&h);
        }
        let Ok::<[Array; 2], _>([g, u]) = self.stacked.forward(&projs, x)?.try_into() else {
            bail!("Mlp: expected two projections");
        };
        self.down_proj.forward(&ops::multiply(&nn::silu(&g)?, &u)?)
    }
}

/// One decoder layer: `x + attn(norm(x))`, then `x + mlp(norm(x))`.
#[derive(Clone, Debug, Module)]
pub struct DecoderLayer {
    /// The attention block.
    pub self_attn: Attention,
    /// The feed-forward block.
    pub mlp: Mlp,
    /// The norm before the attention.
    pub input_layernorm: nn::RMSNorm,
    /// The norm before the MLP.
    pub post_attention_layernorm: nn::RMSNorm,
}

impl DecoderLayer {
    /// Random weights of `config`'s shapes.
    pub fn new(config: &LlamaConfig) -> Result<DecoderLayer> {
        Ok(DecoderLayer {
            self_attn: Attention::new(config)?,
            mlp: Mlp::new(config)?,
            input_layernorm: nn::RMSNorm::new(config.hidden_size, config.rms_norm_eps)?,
            post_attention_layernorm: nn::RMSNorm::new(config.hidden_size, config.rms_norm_eps)?,
        })
    }

    /// Applies the layer (see [`Attention::forward`] for `mask` and `cache`).
    pub fn forward(
        &self,
        x: &Array,
        mask: AttentionMask,
        cache: Option<&mut KvCache>,
    ) -> Result<Array> {
        let h = ops::add(
            x,
            self.self_attn
                .forward(&self.input_layernorm.forward(x)?, mask, cache)?,
        )?;
        ops::add(
            &h,
            self.mlp
                .forward(&self.post_attention_layernorm.forward(&h)?)?,
        )
    }

    /// [`DecoderLayer::forward`] for one position against a fixed cache (see
    /// [`Attention::forward_fixed`]): the output and the updated keys and values.
    pub fn forward_fixed(
        &self,
        x: &Array,
        position: &Array,
        mask: &Array,
        keys: &Array,
        values: &Array,
    ) -> Result<(Array, Array, Array)> {
        let (a, keys, values) = self.self_attn.forward_fixed(
            &self.input_layernorm.forward(x)?,
            position,
            mask,
            keys,
            values,
        )?;
        let h = ops::add(x, &a)?;
        let out = ops::add(
            &h,
            &self
                .mlp
                .forward(&self.post_attention_layernorm.forward(&h)?)?,
        )?;
        Ok((out, keys, values))
    }
}

/// The attention mask of `l` new positions after a cache's: causal where that is all it is
/// (no array is made, and the GPU takes its flash kernel), else the cache's boolean array.
enum Mask {
    None,
    Causal,
    Array(Array),
}

impl Mask {
    /// The mask after `cache`'s positions (none: a fresh sequence).
    fn of(cache: Option<&KvCache>, l: usize) -> Result<Mask> {
        let fresh = KvCache::concatenating();
        let cache = cache.unwrap_or(&fresh);
        Ok(match (cache.is_causal(l), l) {
            // One query sees every key.
            (true, 0 | 1) => Mask::None,
            (true, _) => Mask::Causal,
            (false, _) => cache.mask(l)?.map_or(Mask::None, Mask::Array),
        })
    }

    fn get(&self) -> AttentionMask<'_> {
        match self {
            Mask::None => AttentionMask::None,
            Mask::Causal => AttentionMask::Causal,
            Mask::Array(m) => AttentionMask::Array(m),
        }
    }
}

/// The decoder stack: embedding, layers, final norm (Hugging Face's `LlamaModel`).
#[derive(Clone, Debug, Module)]
pub struct LlamaModel {
    /// The token embedding table `(vocab, hidden)`.
    pub embed_tokens: nn::Embedding,
    /// The decoder layers.
    pub layers: Vec<DecoderLayer>,
    /// The final norm.
    pub norm: nn::RMSNorm,
}

/// A Llama-architecture causal language model (Hugging Face's `LlamaForCausalLM`).
///
/// ```
/// use umx::prelude::*;
/// use umx_lm::{Llama, LlamaConfig};
/// let config = LlamaConfig::new(256, 32, 64, 2, 4, 2)?;
/// let model = Llama::new(&config)?; // random weights
/// let tokens = Array::from_slice(&[1u32, 2, 3], &[1, 3])?;
/// assert_eq!(model.forward(&tokens, None)?.shape(), &[1, 3, 256]);
/// # Ok::<(), umx::Error>(())
/// ```
#[derive(Clone, Debug, Module)]
pub struct Llama {
    /// The decoder stack.
    pub model: LlamaModel,
    /// The output projection; `None` when tied to the embedding table.
    pub lm_head: Option<nn::Linear>,
    /// The hyper-parameters it was built from.
    #[module(skip)]
    pub config: LlamaConfig,
}

impl Llama {
    /// A model of `config`'s shapes with random weights (umx-nn's initialisations; float32).
    pub fn new(config: &LlamaConfig) -> Result<Llama> {
        config.validate()?;
        Ok(Llama {
            model: LlamaModel {
                embed_tokens: nn::Embedding::new(config.vocab_size, config.hidden_size)?,
                layers: (0..config.num_hidden_layers)
                    .map(|_| DecoderLayer::new(config))
                    .collect::<Result<_>>()?,
                norm: nn::RMSNorm::new(config.hidden_size, config.rms_norm_eps)?,
            },
            lm_head: if config.tie_word_embeddings {
                None
            } else {
                Some(nn::Linear::new(
                    config.hidden_size,
                    config.vocab_size,
                    false,
                )?)
            },
            config: config.clone(),
        })
    }

    /// Stacks each layer's q/k/v and gate/up projections into one product each
    /// ([`Attention::stack_projections`]): three kernels a layer fewer when decoding, no
    /// memory added. [`Llama::load`] does it; after `nn::quantize` do it again.
    pub fn stack_projections(&mut self) -> Result<()> {
        for layer in &mut self.model.layers {
            layer.self_attn.stack_projections()?;
            layer.mlp.stack_projections()?;
        }
        Ok(())
    }

    /// One empty concatenating cache per layer.
    pub fn new_cache(&self) -> Vec<KvCache> {
        (0..self.model.layers.len())
            .map(|_| KvCache::concatenating())
            .collect()
    }

    /// One empty rotating cache of at most `max_size` positions per layer.
    pub fn new_rotating_cache(&self, max_size: usize) -> Result<Vec<KvCache>> {
        (0..self.model.layers.len())
            .map(|_| KvCache::rotating(max_size))
            .collect()
    }

    /// The final hidden states `(B, L, hidden)` of integer `tokens (B, L)`, after the
    /// positions held in `cache` (which is updated), if given.
    pub fn hidden_states(&self, tokens: &Array, cache: Option<&mut [KvCache]>) -> Result<Array> {
        if tokens.ndim() != 2 || !tokens.dtype().is_integer() {
            bail!(
                "Llama: tokens must be integers of shape (batch, length), not {} of shape {:?}",
                tokens.dtype(),
                tokens.shape()
            );
        }
        let l = tokens.dim(1)?;
        let n = self.model.layers.len();
        let mut x = self.model.embed_tokens.forward(tokens)?;
        match cache {
            Some(cache) => {
                if cache.len() != n {
                    bail!("Llama: the cache has {} layers, the model {n}", cache.len());
                }
                let mask = Mask::of(cache.first(), l)?;
                for (layer, c) in self.model.layers.iter().zip(cache.iter_mut()) {
                    x = layer.forward(&x, mask.get(), Some(c))?;
                }
            }
            None => {
                let mask = Mask::of(None, l)?;
                for layer in &self.model.layers {
                    x = layer.forward(&x, mask.get(), None)?;
                }
            }
        }
        self.model.norm.forward(&x)
    }

    /// The output projection of hidden states `(..., hidden)`: logits `(..., vocab)`.
    pub fn logits(&self, hidden: &Array) -> Result<Array> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => self.model.embed_tokens.as_linear(hidden),
        }
    }

    /// Logits `(B, L, vocab)` of integer `tokens (B, L)`; with a cache, the tokens follow the
    /// positions it holds, and it is updated.
    pub fn forward(&self, tokens: &Array, cache: Option<&mut [KvCache]>) -> Result<Array> {
        self.logits(&self.hidden_states(tokens, cache)?)
    }

    /// One decoding step against a [`FixedCache`]: the logits `(B, vocab)` of `tokens (B, 1)`
    /// at `position` (an int32 scalar array), and the cache with their keys and values
    /// written there. Every shape is the same at every position, so the step can be captured
    /// once and replayed (see [`generate`](crate::generate)).
    pub fn decode_fixed(
        &self,
        tokens: &Array,
        position: &Array,
        cache: &FixedCache,
    ) -> Result<(Array, FixedCache)> {
        if tokens.ndim() != 2 || tokens.dim(1)? != 1 || !tokens.dtype().is_integer() {
            bail!(
                "Llama::decode_fixed: tokens must be integers of shape (batch, 1), not {} of shape {:?}",
                tokens.dtype(),
                tokens.shape()
            );
        }
        if cache.keys.len() != self.model.layers.len() {
            bail!(
                "Llama::decode_fixed: the cache has {} layers, the model {}",
                cache.keys.len(),
                self.model.layers.len()
            );
        }
        let mask = cache.mask(position)?;
        let mut x = self.model.embed_tokens.forward(tokens)?;
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        for ((layer, k), v) in self.model.layers.iter().zip(&cache.keys).zip(&cache.values) {
            let (y, k, v) = layer.forward_fixed(&x, position, &mask, k, v)?;
            x = y;
            keys.push(k);
            values.push(v);
        }
        let h = self.model.norm.forward(&x)?;
        let logits = self.logits(&ops::squeeze(&h, 1)?)?;
        Ok((logits, cache.with(keys, values)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lora::{LoraConfig, apply_lora};
    use crate::max_diff;
    use umx::nn::ModuleExt;

    fn tiny(bias: bool) -> Llama {
        random::seed(5);
        let mut c = LlamaConfig::new(32, 32, 64, 2, 4, 2).unwrap();
        c.attention_bias = bias;
        c.mlp_bias = bias;
        Llama::new(&c).unwrap()
    }

    fn stacked(m: &Llama) -> Vec<bool> {
        m.model
            .layers
            .iter()
            .flat_map(|l| {
                [
                    l.self_attn.stacked.get().is_some(),
                    l.mlp.stacked.get().is_some(),
                ]
            })
            .collect()
    }

    /// Stacked projections give the logits of separate ones (a prompt, then a decoding step
    /// through the cache), with and without biases; the projections' weights become views of
    /// the stack (same values, no new memory); gradients through a stacked model equal the
    /// unstacked model's; LoRA and quantization end the stack, and the model still runs.
    #[test]
    fn stacked_projections_compute_what_separate_ones_do() {
        for bias in [false, true] {
            let plain = tiny(bias);
            let mut m = plain.clone();
            m.stack_projections().unwrap();
            assert_eq!(stacked(&m), [true; 4]);
            for (name, p) in plain.parameters() {
                assert_eq!(max_diff(&p, &m.parameters()[&name]), 0.0, "{name}");
            }
            let tokens = Array::from_slice(&[1i32, 5, 7, 2, 9], &[1, 5]).unwrap();
            let step = Array::from_slice(&[3i32], &[1, 1]).unwrap();
            let (mut c1, mut c2) = (plain.new_cache(), m.new_cache());
            let a = plain.forward(&tokens, Some(&mut c1)).unwrap();
            let b = m.forward(&tokens, Some(&mut c2)).unwrap();
            assert!(max_diff(&a, &b) < 1e-5, "bias {bias}: prompt");
            let a = plain.forward(&step, Some(&mut c1)).unwrap();
            let b = m.forward(&step, Some(&mut c2)).unwrap();
            assert!(max_diff(&a, &b) < 1e-5, "bias {bias}: decoding step");
            assert_eq!(stacked(&m), [true; 4], "still stacked after use");

            let loss = |m: &Llama, t: Array| ops::mean(&m.forward(&t, None)?, None, false);
            let vg = nn::value_and_grad(loss);
            let (la, ga) = vg(&plain, tokens.clone()).unwrap();
            let (lb, gb) = vg(&m, tokens.clone()).unwrap();
            assert!(max_diff(&la, &lb) < 1e-6);
            for (name, g) in &ga {
                assert!(max_diff(g, &gb[name]) < 1e-5, "bias {bias}: grad {name}");
            }
            assert_eq!(stacked(&m), [true; 4], "a traced gradient keeps the stack");
        }
        // Another kind of projection ends the stack.
        let mut m = tiny(false);
        m.stack_projections().unwrap();
        let tokens = Array::from_slice(&[1i32, 5, 7], &[1, 3]).unwrap();
        let cfg = LoraConfig {
            rank: 2,
            num_layers: 1,
            ..LoraConfig::default()
        };
        let before = m.forward(&tokens, None).unwrap();
        apply_lora(&mut m, &cfg).unwrap();
        let after = m.forward(&tokens, None).unwrap();
        // LoRA starts at zero: the same logits, the adapted layer's attention unstacked.
        assert!(max_diff(&before, &after) < 1e-5);
        assert_eq!(stacked(&m), [true, true, false, true]);
        nn::quantize(&mut m, 32, 8, None).unwrap();
        eval(m.parameters().values()).unwrap();
        m.forward(&tokens, None).unwrap().eval().unwrap();
        assert_eq!(stacked(&m), [false, false, false, false]);
        // Quantized projections stack again.
        let mut q = tiny(true);
        nn::quantize(&mut q, 32, 4, None).unwrap();
        let apart = q.clone();
        q.stack_projections().unwrap();
        assert_eq!(stacked(&q), [true; 4]);
        let (a, b) = (
            apart.forward(&tokens, None).unwrap(),
            q.forward(&tokens, None).unwrap(),
        );
        assert!(max_diff(&a, &b) < 1e-5, "quantized");
        assert_eq!(stacked(&q), [true; 4], "the quantized stack is used");
        // Replaced weights too.
        let mut m = tiny(false);
        m.stack_projections().unwrap();
        let fresh = tiny(false).parameters();
        eval(fresh.values()).unwrap();
        m.update(&fresh).unwrap();
        m.forward(&tokens, None).unwrap().eval().unwrap();
        assert_eq!(stacked(&m), [false; 4]);
    }
}
