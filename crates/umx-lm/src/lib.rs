//! umx-lm: Llama-architecture language models on umx, after mlx-lm.
//!
//! - [`LlamaConfig`] (`config.rs`): a Hugging Face `config.json`, checked;
//! - [`Llama`] (`model.rs`): the model, with parameters named as Hugging Face names them;
//!   [`Llama::load`] (`load.rs`) reads a checkpoint directory (one safetensors file or shards)
//!   in float32, bfloat16 or float16;
//! - [`KvCache`] (`cache.rs`): concatenating and rotating (sliding-window) caches;
//! - [`generate`] and [`Sampler`] (`generate.rs`): prefill, token-by-token decoding, greedy,
//!   temperature and top-p sampling, a callback per token, throughput and peak memory;
//! - LoRA (`lora.rs`): [`apply_lora`], [`save_adapters`], [`load_adapters`], [`fuse_lora`];
//! - `Tokenizer` (`tokenizer.rs`, with the `tokenizer` feature): text to ids and back through
//!   Hugging Face's `tokenizers` crate. Without it, token ids go in and come out.
//!
//! Depends on the `umx` facade only (arrays, `nn` layers, `io`, `optim`; it registers the
//! backends), plus `serde_json` and, optionally, `tokenizers`. Start reading at `model.rs`;
//! the examples `llama_generate` and `lora` (in the repository's `examples/`) show the whole
//! flow, and `tests/hf_reference.rs` checks the model against Hugging Face transformers.

#![warn(missing_docs)]

mod cache;
mod config;
mod generate;
mod load;
mod lora;
mod model;
#[cfg(feature = "tokenizer")]
mod tokenizer;

pub use cache::{FixedCache, KvCache};
pub use config::{LlamaConfig, RopeScaling};
pub use generate::{Decoding, GenerateOptions, GenerationStats, Sampler, generate, top_p_filter};
pub use load::parse_dtype;
pub use lora::{
    LoRALinear, LoraConfig, LoraTargets, apply_lora, fuse_lora, load_adapters, lora_parameters,
    save_adapters,
};
pub use model::{Attention, DecoderLayer, Llama, LlamaModel, Mlp, Projection, Rope, Stacked};
#[cfg(feature = "tokenizer")]
pub use tokenizer::{StreamingDetokenizer, Tokenizer};

/// The largest absolute difference of two arrays (the crate's tests compare with it).
#[cfg(test)]
fn max_diff(a: &umx::Array, b: &umx::Array) -> f32 {
    use umx::ops;
    let d = ops::max(
        &ops::abs(&ops::subtract(a, b).unwrap()).unwrap(),
        None,
        false,
    );
    d.unwrap().item::<f32>().unwrap()
}
