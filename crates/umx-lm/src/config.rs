//! [`LlamaConfig`]: the Llama architecture's hyper-parameters, as a Hugging Face `config.json`
//! states them.
//!
//! Both spellings of the rotary settings are read: `rope_theta` and `rope_scaling` at the top
//! level (transformers 4.x), and `rope_parameters` (transformers 5.x).

use serde_json::{Map, Value};
use std::path::Path;
use umx::{Error, Result};

/// How rotary frequencies are scaled for contexts longer than the model was trained on.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Positions divided by `factor` (`"rope_type": "linear"`).
    Linear {
        /// The divisor of positions.
        factor: f64,
    },
    /// Llama 3.1's frequency-dependent scaling (`"rope_type": "llama3"`): high frequencies are
    /// kept, low ones divided by `factor`, and the band between smoothly interpolated.
    Llama3 {
        /// The divisor of low frequencies.
        factor: f64,
        /// Wavelengths above `original / low_freq_factor` are divided by `factor`.
        low_freq_factor: f64,
        /// Wavelengths below `original / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context length the model was first trained for.
        original_max_position_embeddings: usize,
    },
}

/// The hyper-parameters of a Llama-architecture model (`LlamaForCausalLM`).
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Features of the residual stream.
    pub hidden_size: usize,
    /// Features of the SwiGLU block's hidden layer.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key and value heads (fewer than the query heads: grouped-query attention).
    pub num_key_value_heads: usize,
    /// Features per head (`hidden_size / num_attention_heads` unless stated).
    pub head_dim: usize,
    /// The epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// The base of the rotary frequencies.
    pub rope_theta: f64,
    /// Rotary scaling, if any.
    pub rope_scaling: Option<RopeScaling>,
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Whether the output projection is the embedding table (no `lm_head.weight`).
    pub tie_word_embeddings: bool,
    /// The longest context the model was trained for.
    pub max_position_embeddings: usize,
    /// Biases on the attention projections.
    pub attention_bias: bool,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
    /// End-of-sequence token ids (from `eos_token_id`, a number or a list).
    pub eos_token_ids: Vec<u32>,
}

impl LlamaConfig {
    /// A config with the given sizes and Llama 2's defaults elsewhere (eps 1e-6, theta
    /// 10000, no scaling, untied, no biases); `head_dim` is `hidden_size / heads`.
    pub fn new(
        vocab_size: usize,
        hidden_size: usize,
        intermediate_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
        num_key_value_heads: usize,
    ) -> Result<LlamaConfig> {
        let c = LlamaConfig {
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim: hidden_size / num_attention_heads.max(1),
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            rope_scaling: None,
            vocab_size,
            tie_word_embeddings: false,
            max_position_embeddings: 4096,
            attention_bias: false,
            mlp_bias: false,
            eos_token_ids: Vec::new(),
        };
        c.validate()?;
        Ok(c)
    }

    /// Reads and parses `path` (a `config.json`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<LlamaConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("config: {}: cannot read: {e}", path.display())))?;
        LlamaConfig::from_json(&text).map_err(|e| {
            let m = e.to_string();
            let m = m.strip_prefix("config: ").unwrap_or(&m);
            Error::Invalid(format!("config: {}: {m}", path.display()))
        })
    }

    /// Parses the text of a Hugging Face `config.json`. Architectures other than Llama, an
    /// activation other than SiLU, and rotary scalings other than none, `linear` and `llama3`
    /// are errors that name the value.
    ///
    /// ```
    /// let c = umx_lm::LlamaConfig::from_json(r#"{
    ///     "model_type": "llama", "hidden_size": 64, "intermediate_size": 172,
    ///     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    ///     "vocab_size": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0
    /// }"#)?;
    /// assert_eq!((c.head_dim, c.num_key_value_heads), (16, 2));
    /// assert!(umx_lm::LlamaConfig::from_json(r#"{"model_type": "gpt2"}"#).is_err());
    /// # Ok::<(), umx::Error>(())
    /// ```
    pub fn from_json(text: &str) -> Result<LlamaConfig> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::Invalid(format!("config: not valid JSON: {e}")))?;
        let Value::Object(o) = v else {
            return Err(Error::Invalid("config: the JSON is not an object".into()));
        };
        if let Some(t) = o.get("model_type") {
            let t = t.as_str().unwrap_or("");
            if !matches!(t, "llama" | "mistral") {
                return Err(Error::Invalid(format!(
                    "config: model_type {t:?} is not supported (only \"llama\")"
                )));
            }
        }
        if let Some(act) = o.get("hidden_act").or_else(|| o.get("hidden_activation"))
            && act.as_str() != Some("silu")
        {
            return Err(Error::Invalid(format!(
                "config: hidden_act {act} is not supported (only \"silu\")"
            )));
        }
        if let Some(w) = o.get("sliding_window").filter(|w| !w.is_null()) {
            return Err(Error::Invalid(format!(
                "config: sliding_window {w} is not supported"
            )));
        }
        let hidden_size = req_usize(&o, "hidden_size")?;
        let num_attention_heads = req_usize(&o, "num_attention_heads")?;
        let rope = o.get("rope_parameters").and_then(Value::as_object);
        let rope_theta = match rope.and_then(|r| r.get("rope_theta")) {
            Some(_) => opt_f64(rope.unwrap_or(&o), "rope_theta")?,
            None => opt_f64(&o, "rope_theta")?,
        }
        .unwrap_or(10000.0);
        let scaling = match rope {
            Some(r) => Some(r),
            None => match o.get("rope_scaling") {
                None | Some(Value::Null) => None,
                Some(Value::Object(r)) => Some(r),
                Some(other) => {
                    return Err(Error::Invalid(format!(
                        "config: rope_scaling must be null or an object, not {other}"
                    )));
                }
            },
        };
        let c = LlamaConfig {
            hidden_size,
            intermediate_size: req_usize(&o, "intermediate_size")?,
            num_hidden_layers: req_usize(&o, "num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads: opt_usize(&o, "num_key_value_heads")?
                .unwrap_or(num_attention_heads),
            head_dim: opt_usize(&o, "head_dim")?
                .unwrap_or(hidden_size / num_attention_heads.max(1)),
            rms_norm_eps: opt_f64(&o, "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling: scaling.map(parse_scaling).transpose()?.flatten(),
            vocab_size: req_usize(&o, "vocab_size")?,
            tie_word_embeddings: opt_bool(&o, "tie_word_embeddings")?.unwrap_or(false),
            max_position_embeddings: opt_usize(&o, "max_position_embeddings")?.unwrap_or(4096),
            attention_bias: opt_bool(&o, "attention_bias")?.unwrap_or(false),
            mlp_bias: opt_bool(&o, "mlp_bias")?.unwrap_or(false),
            eos_token_ids: match o.get("eos_token_id") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(ids)) => ids
                    .iter()
                    .map(|i| token_id(i, "eos_token_id"))
                    .collect::<Result<_>>()?,
                Some(i) => vec![token_id(i, "eos_token_id")?],
            },
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks that the sizes fit together: heads divide, head_dim even, nothing zero.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(format!("config: {m}")));
        for (name, v) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("vocab_size", self.vocab_size),
        ] {
            if v == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!(
                "head_dim {} must be even for rotary embeddings",
                self.head_dim
            ));
        }
        if !(self.rms_norm_eps > 0.0 && self.rope_theta > 0.0) {
            return bad(format!(
                "rms_norm_eps {} and rope_theta {} must be positive",
                self.rms_norm_eps, self.rope_theta
            ));
        }
        Ok(())
    }

    /// The number of parameters a model of this config has.
    pub fn num_parameters(&self) -> usize {
        let (h, d) = (self.hidden_size, self.head_dim);
        let q = self.num_attention_heads * d;
        let kv = self.num_key_value_heads * d;
        let attn = h * q * 2 + h * kv * 2;
        let mlp = 3 * h * self.intermediate_size;
        let layer = attn + mlp + 2 * h;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * h
        };
        self.vocab_size * h + self.num_hidden_layers * layer + h + head
    }
}

fn parse_scaling(r: &Map<String, Value>) -> Result<Option<RopeScaling>> {
    let kind = r
        .get("rope_type")
        .or_else(|| r.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let factor = || {
        opt_f64(r, "factor")?
            .ok_or_else(|| Error::Invalid(format!("config: rope scaling {kind:?} has no factor")))
    };
    match kind {
        "default" => Ok(None),
        "linear" => Ok(Some(RopeScaling::Linear { factor: factor()? })),
        "llama3" => Ok(Some(RopeScaling::Llama3 {
            factor: factor()?,
            low_freq_factor: opt_f64(r, "low_freq_factor")?.unwrap_or(1.0),
            high_freq_factor: opt_f64(r, "high_freq_factor")?.unwrap_or(4.0),
            original_max_position_embeddings: opt_usize(r, "original_max_position_embeddings")?
                .unwrap_or(8192),
        })),
        other => Err(Error::Invalid(format!(
            "config: rope scaling type {other:?} is not supported (null, \"linear\" and \"llama3\" are)"
        ))),
    }
}

fn req_usize(o: &Map<String, Value>, key: &str) -> Result<usize> {
    opt_usize(o, key)?.ok_or_else(|| Error::Invalid(format!("config: {key} is missing")))
}

fn opt_usize(o: &Map<String, Value>, key: &str) -> Result<Option<usize>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
            Error::Invalid(format!(
                "config: {key} must be a non-negative integer, not {v}"
            ))
        }),
    }
}

fn opt_f64(o: &Map<String, Value>, key: &str) -> Result<Option<f64>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| Error::Invalid(format!("config: {key} must be a number, not {v}"))),
    }
}

fn opt_bool(o: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| Error::Invalid(format!("config: {key} must be true or false, not {v}"))),
    }
}

fn token_id(v: &Value, key: &str) -> Result<u32> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| Error::Invalid(format!("config: {key} must hold token ids, not {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = r#"{"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256"#;

    fn with(extra: &str) -> Result<LlamaConfig> {
        LlamaConfig::from_json(&format!("{TINY}{extra}}}"))
    }

    fn err(extra: &str) -> String {
        with(extra).unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let c = with("").unwrap();
        assert_eq!(c.head_dim, 16);
        assert_eq!(c.rope_theta, 10000.0);
        assert_eq!(c.rope_scaling, None);
        assert!(!c.tie_word_embeddings);
        assert!(c.eos_token_ids.is_empty());
    }

    #[test]
    fn llama3_scaling_is_read_from_either_spelling() {
        let old = with(
            r#", "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}"#,
        )
        .unwrap();
        let new = with(
            r#", "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}"#,
        )
        .unwrap();
        assert_eq!(old, new);
        assert_eq!(old.rope_theta, 500000.0);
        assert!(matches!(
            old.rope_scaling,
            Some(RopeScaling::Llama3 { factor: 8.0, .. })
        ));
    }

    #[test]
    fn eos_token_id_may_be_a_number_or_a_list() {
        assert_eq!(with(r#", "eos_token_id": 2"#).unwrap().eos_token_ids, [2]);
        assert_eq!(
            with(r#", "eos_token_id": [1, 7]"#).unwrap().eos_token_ids,
            [1, 7]
        );
    }

    #[test]
    fn unsupported_values_are_errors_that_name_them() {
        assert!(err(r#", "model_type": "gpt2""#).contains("\"gpt2\""));
        assert!(err(r#", "hidden_act": "gelu""#).contains("gelu"));
        assert!(err(r#", "rope_scaling": {"type": "yarn", "factor": 4.0}"#).contains("yarn"));
        assert!(err(r#", "rope_scaling": {"type": "linear"}"#).contains("no factor"));
        assert!(err(r#", "num_key_value_heads": 3"#).contains("multiple"));
        assert!(err(r#", "head_dim": 15"#).contains("even"));
        assert!(err(r#", "rms_norm_eps": "small""#).contains("rms_norm_eps"));
        assert!(LlamaConfig::from_json("[1]").is_err());
        let missing = LlamaConfig::from_json(r#"{"hidden_size": 8}"#)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("num_attention_heads is missing"),
            "{missing}"
        );
    }

    #[test]
    fn parameter_count_matches_the_layers() {
        let c = with(r#", "tie_word_embeddings": true"#).unwrap();
        let attn = 64 * 64 * 2 + 64 * 32 * 2;
        let layer = attn + 3 * 64 * 172 + 2 * 64;
        assert_eq!(c.num_parameters(), 256 * 64 + 2 * layer + 64);
    }
}
