//! Sampling the next token ([`Sampler`]: greedy, temperature, top-p) and generating text
//! ([`generate`]: prefill of the prompt, then one token at a time through the KV cache, each
//! token handed to a callback as soon as it is known).

use crate::cache::FixedCache;
use crate::model::Llama;
use std::time::Instant;
use umx::bail;
use umx::prelude::*;

/// How the next token is chosen from the logits.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampler {
    /// 0 is greedy (the most likely token); otherwise logits are divided by it.
    pub temperature: f64,
    /// Nucleus sampling: only the most likely tokens whose probabilities add up to `top_p`
    /// are kept (1 keeps all).
    pub top_p: f64,
}

impl Sampler {
    /// Always the most likely token.
    pub fn greedy() -> Sampler {
        Sampler {
            temperature: 0.0,
            top_p: 1.0,
        }
    }

    /// Samples at `temperature`, from the nucleus of mass `top_p`.
    pub fn new(temperature: f64, top_p: f64) -> Result<Sampler> {
        if !(temperature >= 0.0 && temperature.is_finite()) {
            bail!("Sampler: temperature must be finite and >= 0, not {temperature}");
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            bail!("Sampler: top_p must be in (0, 1], not {top_p}");
        }
        Ok(Sampler { temperature, top_p })
    }

    /// The next token for each row of `logits (..., vocab)`: uint32 of shape `(...)`. Nothing
    /// is evaluated here.
    pub fn sample(&self, logits: &Array, key: Option<&Array>) -> Result<Array> {
        if self.temperature == 0.0 {
            return ops::argmax(logits, Some(-1), false);
        }
        let logits = ops::multiply(&logits.astype(Dtype::Float32)?, 1.0 / self.temperature)?;
        let logits = if self.top_p < 1.0 {
            top_p_filter(&logits, self.top_p)?
        } else {
            logits
        };
        random::categorical(&logits, -1, None, None, key)
    }
}

/// `logits (..., vocab)` with every token outside the nucleus set to minus infinity: the
/// nucleus is the smallest set of most likely tokens whose probabilities reach `top_p` (the
/// most likely token is always in it).
///
/// ```
/// use umx::prelude::*;
/// // probabilities 0.5, 0.3, 0.15, 0.05: the first two reach 0.7.
/// let p = Array::from_slice(&[0.15f32, 0.5, 0.05, 0.3], &[4])?;
/// let kept = umx_lm::top_p_filter(&ops::log(&p)?, 0.7)?;
/// let finite: Vec<bool> = ops::isfinite(&kept)?.to_vec()?;
/// assert_eq!(finite, [false, true, false, true]);
/// # Ok::<(), umx::Error>(())
/// ```
pub fn top_p_filter(logits: &Array, top_p: f64) -> Result<Array> {
    let logits = logits.astype(Dtype::Float32)?;
    let probs = ops::softmax(&logits, -1, true)?;
    let order = ops::argsort(&ops::negative(&probs)?, -1)?;
    let sorted = ops::take_along_axis(&probs, &order, -1)?;
    // The mass of the tokens before each one: a token is kept while that is below top_p.
    let before = ops::cumsum(&sorted, Some(-1), false, false)?;
    let keep_sorted = ops::less(&before, top_p)?;
    let unsort = ops::argsort(&order, -1)?;
    let keep = ops::take_along_axis(&keep_sorted, &unsort, -1)?;
    ops::where_(&keep, &logits, f32::NEG_INFINITY as f64)
}

/// What [`generate`] does.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// The most tokens to generate.
    pub max_tokens: usize,
    /// How each token is chosen.
    pub sampler: Sampler,
    /// Tokens that end generation (they are passed to the callback, and returned).
    pub stop_tokens: Vec<u32>,
    /// A rotating KV cache of this many positions instead of one that keeps all.
    pub max_kv_size: Option<usize>,
    /// The seed of the sampling key (the global random state when `None`).
    pub seed: Option<u64>,
    /// The prompt goes through the model in pieces of at most this many tokens (bounding the
    /// attention scores' memory on long prompts).
    pub prefill_step_size: usize,
    /// How each token after the first is computed.
    pub decoding: Decoding,
    /// Positions a fixed cache ([`Decoding::Fixed`], [`Decoding::Graph`]) makes room for at
    /// a time, as mlx-lm's cache step (256 by default). When it is full, it grows by this
    /// much and the graph is captured again.
    pub cache_step: usize,
}

/// How [`generate`] computes each token after the prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoding {
    /// [`Decoding::Graph`] when the default device is a GPU and the cache keeps every
    /// position, else [`Decoding::Eager`].
    Auto,
    /// Each step builds and evaluates its graph; the cache grows by concatenation (or
    /// rotates). Works everywhere.
    Eager,
    /// Each step runs against a [`FixedCache`] with room for the prompt and the next
    /// `cache_step` tokens: the same shapes at every position until it grows (what
    /// [`Decoding::Graph`] captures), evaluated step by step.
    Fixed,
    /// The [`Decoding::Fixed`] step, compiled (element-wise chains fused), captured once as a
    /// CUDA graph and replayed for each token: one launch per token instead of one per op.
    /// The next token's step is queued before this token is read, so the GPU does not wait
    /// for the host between tokens (a step queued past a stop token is wasted work).
    /// The capture happens before the first token is returned (its time counts as prompt
    /// time). Top-p sampling and other steps with ops the GPU cannot capture fall back to
    /// [`Decoding::Fixed`].
    Graph,
}

impl Default for GenerateOptions {
    /// 256 greedy tokens, no stop tokens, a concatenating cache, prefill in steps of 2048,
    /// decoding chosen by the device.
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            sampler: Sampler::greedy(),
            stop_tokens: Vec::new(),
            max_kv_size: None,
            seed: None,
            prefill_step_size: 2048,
            decoding: Decoding::Auto,
            cache_step: 256,
        }
    }
}

/// How a [`generate`] call went.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens over the time to the first generated token (prefill and one sample).
    pub prompt_tps: f64,
    /// Tokens generated.
    pub generation_tokens: usize,
    /// Tokens after the first over the time from the first to the last.
    pub generation_tps: f64,
    /// The highest host memory held by umx buffers during the call, in bytes.
    pub peak_host_memory: usize,
    /// The highest GPU memory held by umx buffers during the call, in bytes (0 without a GPU).
    pub peak_device_memory: usize,
    /// How the tokens after the first were computed.
    pub decoding: Decoding,
    /// Why the decoding asked for did not run (a capture that failed), if it did not.
    pub fallback: Option<String>,
}

impl std::fmt::Display for GenerationStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gb = |b: usize| b as f64 / 1e9;
        write!(
            f,
            "prompt: {} tokens, {:.1} tokens/s\ngeneration: {} tokens, {:.1} tokens/s ({:?} decoding)\npeak memory: {:.3} GB host, {:.3} GB device",
            self.prompt_tokens,
            self.prompt_tps,
            self.generation_tokens,
            self.generation_tps,
            self.decoding,
            gb(self.peak_host_memory),
            gb(self.peak_device_memory)
        )?;
        match &self.fallback {
            Some(why) => write!(f, "\nno graph: {why}"),
            None => Ok(()),
        }
    }
}

/// Continues `prompt` (token ids) with up to `options.max_tokens` tokens: the prompt is
/// processed in one pass (prefill), then each token is fed back through the KV cache. Each
/// new token goes to `on_token` as soon as it is known; returning `false` stops generation.
/// Returns the generated tokens and the [`GenerationStats`].
///
/// ```
/// use umx_lm::{GenerateOptions, Llama, LlamaConfig, generate};
/// umx::random::seed(0);
/// let model = Llama::new(&LlamaConfig::new(64, 32, 64, 2, 4, 2)?)?;
/// let options = GenerateOptions { max_tokens: 5, ..Default::default() };
/// let (tokens, stats) = generate(&model, &[1, 2, 3], &options, |_| Ok(true))?;
/// assert_eq!((tokens.len(), stats.prompt_tokens), (5, 3));
/// # Ok::<(), umx::Error>(())
/// ```
pub fn generate(
    model: &Llama,
    prompt: &[u32],
    options: &GenerateOptions,
    mut on_token: impl FnMut(u32) -> Result<bool>,
) -> Result<(Vec<u32>, GenerationStats)> {
    if prompt.is_empty() {
        bail!("generate: the prompt has no tokens");
    }
    let vocab = model.config.vocab_size;
    if let Some(&t) = prompt.iter().find(|&&t| t as usize >= vocab) {
        bail!("generate: prompt token {t} is outside the vocabulary of {vocab}");
    }
    let mut cache = match options.max_kv_size {
        Some(n) => model.new_rotating_cache(n)?,
        None => model.new_cache(),
    };
    let mut key = options.seed.map(random::key).transpose()?;
    let mut next_key = || -> Result<Option<Array>> {
        match &mut key {
            Some(k) => {
                let ks = random::split(k, 2)?;
                let parts = ops::split(&ks, 2usize, 0)?;
                *k = ops::squeeze(&parts[0], 0)?;
                Ok(Some(ops::squeeze(&parts[1], 0)?))
            }
            None => Ok(None),
        }
    };
    umx::memory::reset_peak_memory();
    umx::cuda::memory::reset_peak_memory();

    // One step: the last position's logits of `tokens (1, L)`, sampled.
    let mut step = |tokens: &Array, cache: &mut [crate::KvCache]| -> Result<Array> {
        let h = model.hidden_states(tokens, Some(cache))?;
        let l = h.dim(1)? as i64;
        let last = ops::slice(&h, &[0, l - 1, 0], &[1, l, h.dim(2)? as i64], &[])?;
        let logits = model.logits(&ops::squeeze(&last, 1)?)?;
        let k = next_key()?;
        options.sampler.sample(&logits, k.as_ref())
    };

    let start = Instant::now();
    let ids: Vec<i32> = prompt.iter().map(|&t| t as i32).collect();
    let pieces: Vec<&[i32]> = ids.chunks(options.prefill_step_size.max(1)).collect();
    let (last, before) = pieces
        .split_last()
        .ok_or_else(|| Error::Invalid("generate: the prompt has no tokens".into()))?;
    for piece in before {
        model.hidden_states(
            &Array::from_slice(piece, &[1, piece.len()])?,
            Some(&mut cache),
        )?;
        let state: Vec<Array> = cache
            .iter()
            .filter_map(|c| c.state())
            .flat_map(|(k, v)| [k.clone(), v.clone()])
            .collect();
        eval(&state)?;
    }
    let mut token = step(&Array::from_slice(last, &[1, last.len()])?, &mut cache)?;
    let mut out = Vec::new();
    let mut first_at = None;
    let mut decoding = match options.decoding {
        Decoding::Auto
            if options.max_kv_size.is_none()
                && matches!(umx::device::default_device(), Device::Gpu(_)) =>
        {
            Decoding::Graph
        }
        Decoding::Auto => Decoding::Eager,
        d => d,
    };
    let mut fallback = None;
    if decoding != Decoding::Eager && options.max_tokens > 1 {
        if options.max_kv_size.is_some() {
            bail!(
                "generate: {decoding:?} decoding keeps every position; it cannot rotate the cache"
            );
        }
        // The state of a step: the token, its position, the sampling key (when sampling)
        // and the fixed cache.
        // Room for `cache_step` more positions at a time (all of them when fewer are asked
        // for): the attention reads every position of the cache, so a cache much longer than
        // the text would slow each step down.
        let grow_by = options.cache_step.max(1);
        let mut fixed =
            FixedCache::from_caches(&cache, prompt.len() + options.max_tokens.min(grow_by))?;
        drop(cache);
        let sampling = options.sampler.temperature > 0.0;
        let mut state = vec![
            ops::reshape(&token.astype(Dtype::Uint32)?, &[1, 1])?,
            Array::scalar(prompt.len() as i32),
        ];
        if sampling {
            state.push(match &key {
                Some(k) => k.clone(),
                None => random::bits(&[2], 4, None)?,
            });
        }
        let kv_from = state.len();
        for (k, v) in fixed.keys.iter().zip(&fixed.values) {
            state.push(k.clone());
            state.push(v.clone());
        }
        let sampler = &options.sampler;
        let decode = |fixed: &FixedCache, s: &[Array]| -> Result<Vec<Array>> {
            let kv = &s[kv_from..];
            let cache = fixed.with(
                kv.iter().step_by(2).cloned().collect(),
                kv.iter().skip(1).step_by(2).cloned().collect(),
            );
            let (logits, cache) = model.decode_fixed(&s[0], &s[1], &cache)?;
            let mut next = Vec::with_capacity(s.len());
            let sample_key = if sampling {
                let ks = random::split(&s[2], 2)?;
                let parts = ops::split(&ks, 2usize, 0)?;
                next.push(ops::squeeze(&parts[0], 0)?);
                Some(ops::squeeze(&parts[1], 0)?)
            } else {
                None
            };
            let t = sampler.sample(&logits, sample_key.as_ref())?;
            let t = ops::reshape(&t.astype(Dtype::Uint32)?, &[1, 1])?;
            let mut head = vec![t, ops::add(&s[1], 1)?];
            head.append(&mut next);
            for (k, v) in cache.keys.into_iter().zip(cache.values) {
                head.push(k);
                head.push(v);
            }
            Ok(head)
        };
        // The step captured as a graph, which runs it once (None when it cannot be captured).
        let capture = |fixed: &FixedCache,
                       state: &[Array],
                       fallback: &mut Option<String>|
         -> Option<umx::cuda::CudaGraph> {
            // Traced and fused first (compile_once), so element-wise chains are one node.
            let step =
                |s: &[Array]| umx::transforms::compile_once(&|s: &[Array]| decode(fixed, s), s);
            match umx::cuda::CudaGraph::capture(step, state.to_vec()) {
                Ok(g) => Some(g),
                Err(e) => {
                    *fallback = Some(e.to_string());
                    None
                }
            }
        };
        let mut graph = None;
        // Whether the step that writes the next position has run already (a capture runs it).
        let mut ran = false;
        if decoding == Decoding::Graph {
            graph = capture(&fixed, &state, &mut fallback);
            ran = graph.is_some();
            if graph.is_none() {
                decoding = Decoding::Fixed;
            }
        }
        let t = token.item::<u32>()?;
        first_at = Some(Instant::now());
        out.push(t);
        let mut more = on_token(t)? && !options.stop_tokens.contains(&t);
        while more && out.len() < options.max_tokens {
            // This step writes the position of the last token.
            let at = prompt.len() + out.len() - 1;
            if !ran && at >= fixed.capacity() {
                // Full: the state (read out of the graph) moves into a longer cache.
                if let Some(g) = graph.take() {
                    state = (0..g.state_len())
                        .map(|i| g.read(i))
                        .collect::<Result<_>>()?;
                }
                let kv = &state[kv_from..];
                fixed = fixed.grown(
                    kv.iter().step_by(2).cloned().collect(),
                    kv.iter().skip(1).step_by(2).cloned().collect(),
                    fixed.capacity() + grow_by.min(options.max_tokens - out.len()),
                )?;
                state.truncate(kv_from);
                for (k, v) in fixed.keys.iter().zip(&fixed.values) {
                    state.push(k.clone());
                    state.push(v.clone());
                }
                if decoding == Decoding::Graph {
                    graph = capture(&fixed, &state, &mut fallback);
                    ran = graph.is_some();
                    if graph.is_none() {
                        decoding = Decoding::Fixed;
                    }
                }
            }
            let t = match &mut graph {
                Some(g) => {
                    if !ran {
                        g.replay()?;
                    }
                    // The token's copy to the host is queued, then the next step (when one
                    // will be asked for and the cache has room for its position), and only
                    // then does the host wait, for the copy: the GPU computes the next token
                    // while the host hands this one out. A step queued for a token nobody
                    // takes (a stop token, a callback that ends) is wasted work, as in the
                    // eager decoding below.
                    let read = g.read_later(0)?;
                    ran = out.len() + 1 < options.max_tokens && at + 1 < fixed.capacity();
                    if ran {
                        g.replay()?;
                    }
                    read.wait()?.item::<u32>()?
                }
                None => {
                    state = decode(&fixed, &state)?;
                    eval(&state)?;
                    ran = false;
                    state[0].item::<u32>()?
                }
            };
            out.push(t);
            more = on_token(t)? && !options.stop_tokens.contains(&t);
        }
    } else {
        decoding = Decoding::Eager;
        async_eval([&token])?;
        while out.len() < options.max_tokens {
            // The next step is queued before this token is read, from the token still being
            // computed, so building its graph overlaps the device's work (as mlx-lm does).
            // When a stop token or the callback ends generation, that queued step is wasted
            // work (and its position stays in the cache, which ends with this call).
            let next = if out.len() + 1 < options.max_tokens {
                let n = step(&ops::reshape(&token, &[1, 1])?, &mut cache)?;
                async_eval([&n])?;
                Some(n)
            } else {
                None
            };
            let t = token.item::<u32>()?;
            if first_at.is_none() {
                first_at = Some(Instant::now());
            }
            out.push(t);
            let more = on_token(t)?;
            match next {
                Some(n) if more && !options.stop_tokens.contains(&t) => token = n,
                _ => break,
            }
        }
    }
    let end = Instant::now();
    let first_at = first_at.unwrap_or(end);
    let prefill_s = (first_at - start).as_secs_f64();
    let gen_s = (end - first_at).as_secs_f64();
    let stats = GenerationStats {
        prompt_tokens: prompt.len(),
        prompt_tps: prompt.len() as f64 / prefill_s.max(1e-9),
        generation_tokens: out.len(),
        generation_tps: if out.len() > 1 {
            (out.len() - 1) as f64 / gen_s.max(1e-9)
        } else {
            0.0
        },
        peak_host_memory: umx::memory::peak_memory(),
        peak_device_memory: umx::cuda::memory::peak_memory(),
        decoding,
        fallback,
    };
    Ok((out, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(probs: &[f32], top_p: f64) -> Vec<bool> {
        let p = Array::from_slice(probs, &[probs.len()]).unwrap();
        let out = top_p_filter(&ops::log(&p).unwrap(), top_p).unwrap();
        ops::isfinite(&out).unwrap().to_vec::<bool>().unwrap()
    }

    #[test]
    fn top_p_keeps_the_smallest_set_that_reaches_the_mass() {
        let p = [0.1f32, 0.4, 0.2, 0.3];
        assert_eq!(kept(&p, 0.35), [false, true, false, false]);
        assert_eq!(kept(&p, 0.5), [false, true, false, true]);
        assert_eq!(kept(&p, 0.65), [false, true, false, true]);
        assert_eq!(kept(&p, 0.75), [false, true, true, true]);
        assert_eq!(kept(&p, 0.95), [true, true, true, true]);
        // The most likely token stays even when it alone is past the mass.
        assert_eq!(kept(&p, 0.01), [false, true, false, false]);
    }

    #[test]
    fn top_p_works_row_by_row() {
        let p = Array::from_slice(&[0.7f32, 0.2, 0.1, 0.1, 0.2, 0.7], &[2, 3]).unwrap();
        let out = top_p_filter(&ops::log(&p).unwrap(), 0.8).unwrap();
        let finite = ops::isfinite(&out).unwrap().to_vec::<bool>().unwrap();
        assert_eq!(finite, [true, true, false, false, true, true]);
    }

    #[test]
    fn sampling_stays_inside_the_nucleus() {
        let p = Array::from_slice(&[0.05f32, 0.5, 0.05, 0.4], &[1, 4]).unwrap();
        let logits = ops::log(&p).unwrap();
        let s = Sampler::new(1.0, 0.85).unwrap();
        let key = random::key(7).unwrap();
        let draws = s
            .sample(&ops::broadcast_to(&logits, &[200, 4]).unwrap(), Some(&key))
            .unwrap()
            .to_vec::<u32>()
            .unwrap();
        assert!(draws.iter().all(|&t| t == 1 || t == 3));
        assert!(draws.contains(&1) && draws.contains(&3));
    }

    #[test]
    fn greedy_takes_the_largest_logit() {
        let logits = Array::from_slice(&[0.1f32, 2.0, -1.0, 1.9], &[4]).unwrap();
        let t = Sampler::greedy().sample(&logits, None).unwrap();
        assert_eq!(t.item::<u32>().unwrap(), 1);
    }

    #[test]
    fn bad_sampler_settings_are_errors() {
        assert!(Sampler::new(-1.0, 1.0).is_err());
        assert!(Sampler::new(1.0, 0.0).is_err());
        assert!(Sampler::new(1.0, 1.5).is_err());
        assert!(Sampler::new(f64::NAN, 1.0).is_err());
    }
}
