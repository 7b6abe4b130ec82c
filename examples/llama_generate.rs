//! Generates text with a Llama-architecture model, printing each token as it comes and then
//! the prompt and generation throughput and the peak memory.
//!
//! ```sh
//! # a Hugging Face checkpoint directory (config.json, safetensors, tokenizer.json):
//! cargo run --release -p umx-lm --features tokenizer --example llama_generate -- \
//!     path/to/Llama-3.2-1B --prompt "The capital of France is" --max-tokens 64
//! # no path: a small random model from a built-in config, token ids in and out
//! cargo run --release -p umx-lm --example llama_generate
//! ```
//!
//! Options: `--prompt TEXT` (without a tokenizer: token ids separated by spaces or commas, or
//! text taken as byte ids), `--max-tokens N` (100), `--temp X` (0: greedy), `--top-p X` (1),
//! `--dtype float32|bfloat16|float16` (a checkpoint: bfloat16 on a GPU, float32 on the CPU,
//! where bfloat16 matmuls are several times slower), `--max-kv-size N` (a
//! rotating cache), `--seed N`, `--prompt-tokens N` (random model: a prompt of N random ids).

use std::io::Write;
use umx::bail;
use umx::nn::ModuleExt;
use umx::prelude::*;
use umx_lm::{GenerateOptions, Llama, LlamaConfig, Sampler};

struct Args {
    model: Option<String>,
    prompt: Option<String>,
    prompt_tokens: Option<usize>,
    max_tokens: usize,
    temp: f64,
    top_p: f64,
    dtype: Option<Dtype>,
    max_kv_size: Option<usize>,
    seed: u64,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        model: None,
        prompt: None,
        prompt_tokens: None,
        max_tokens: 100,
        temp: 0.0,
        top_p: 1.0,
        dtype: None,
        max_kv_size: None,
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| Error::Invalid(format!("llama_generate: {arg} needs a value")))
        };
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T> {
            v.parse().map_err(|_| {
                Error::Invalid(format!("llama_generate: {flag} {v:?} is not a number"))
            })
        }
        match arg.as_str() {
            "--prompt" => a.prompt = Some(value()?),
            "--prompt-tokens" => a.prompt_tokens = Some(num(&arg, value()?)?),
            "--max-tokens" => a.max_tokens = num(&arg, value()?)?,
            "--temp" => a.temp = num(&arg, value()?)?,
            "--top-p" => a.top_p = num(&arg, value()?)?,
            "--dtype" => a.dtype = Some(umx_lm::parse_dtype(&value()?)?),
            "--max-kv-size" => a.max_kv_size = Some(num(&arg, value()?)?),
            "--seed" => a.seed = num(&arg, value()?)?,
            "--model" => a.model = Some(value()?),
            s if !s.starts_with("--") && a.model.is_none() => a.model = Some(s.to_string()),
            _ => bail!("llama_generate: unknown argument {arg:?} (see the top of the example)"),
        }
    }
    Ok(a)
}

/// The model used without a checkpoint: about 3M parameters, a byte-sized vocabulary.
fn builtin_config() -> Result<LlamaConfig> {
    let mut c = LlamaConfig::new(256, 256, 704, 4, 8, 2)?;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    Ok(c)
}

/// Token ids written as numbers (`1, 2, 3` or `1 2 3`), or else the text's bytes.
fn ids_from_text(prompt: &str, vocab: usize) -> Result<Vec<u32>> {
    let parts: Vec<&str> = prompt
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect();
    let numbers: Option<Vec<u32>> = parts.iter().map(|s| s.parse().ok()).collect();
    match numbers {
        Some(ids) if !ids.is_empty() => Ok(ids),
        _ if vocab >= 256 => Ok(prompt.bytes().map(u32::from).collect()),
        _ => bail!(
            "llama_generate: the prompt is not token ids, and the vocabulary is too small for bytes"
        ),
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    random::seed(args.seed);
    println!("device: {:?}", umx::default_device());
    let model = match &args.model {
        Some(dir) => {
            let t = std::time::Instant::now();
            let dtype = args.dtype.unwrap_or(match umx::default_device() {
                Device::Cpu => Dtype::Float32,
                _ => Dtype::Bfloat16,
            });
            let m = Llama::load(dir, dtype)?;
            println!(
                "loaded {dir}: {} parameters in {:.1} s",
                m.num_parameters(),
                t.elapsed().as_secs_f64()
            );
            m
        }
        None => {
            let mut m = Llama::new(&builtin_config()?)?;
            if let Some(d) = args.dtype {
                m.set_dtype(d)?;
            }
            eval(&m.parameters().into_values().collect::<Vec<_>>())?;
            println!(
                "no checkpoint given: a random model of {} parameters (token ids in and out)",
                m.num_parameters()
            );
            m
        }
    };

    #[cfg(feature = "tokenizer")]
    let tokenizer = match &args.model {
        Some(dir) => {
            let path = std::path::Path::new(dir).join("tokenizer.json");
            if path.exists() {
                Some(umx_lm::Tokenizer::from_file(&path)?)
            } else {
                None
            }
        }
        None => None,
    };
    #[cfg(not(feature = "tokenizer"))]
    let tokenizer: Option<()> = None;
    if args.model.is_some() && tokenizer.is_none() {
        println!(
            "no tokenizer (build with --features tokenizer and keep tokenizer.json beside the weights): token ids in and out"
        );
    }

    let vocab = model.config.vocab_size;
    let prompt: Vec<u32> = match (&args.prompt, args.prompt_tokens) {
        (_, Some(n)) => random::randint(0, vocab as i64, &[n], Dtype::Uint32, None)?.to_vec()?,
        (Some(text), None) => {
            #[cfg(feature = "tokenizer")]
            if let Some(tok) = &tokenizer {
                tok.encode(text, true)?
            } else {
                ids_from_text(text, vocab)?
            }
            #[cfg(not(feature = "tokenizer"))]
            ids_from_text(text, vocab)?
        }
        (None, None) => ids_from_text("1 2 3 4 5 6 7 8", vocab)?,
    };
    let options = GenerateOptions {
        max_tokens: args.max_tokens,
        sampler: Sampler::new(args.temp, args.top_p)?,
        stop_tokens: model.config.eos_token_ids.clone(),
        max_kv_size: args.max_kv_size,
        seed: Some(args.seed),
        ..Default::default()
    };

    println!("prompt: {} tokens", prompt.len());
    println!("==========");
    #[cfg(feature = "tokenizer")]
    let mut detok = tokenizer.as_ref().map(umx_lm::StreamingDetokenizer::new);
    let mut out = std::io::stdout();
    let (_, stats) = umx_lm::generate(&model, &prompt, &options, |t| {
        #[cfg(feature = "tokenizer")]
        if let Some(d) = &mut detok {
            let _ = write!(out, "{}", d.push(t)?);
            let _ = out.flush();
            return Ok(true);
        }
        let _ = write!(out, "{t} ");
        let _ = out.flush();
        Ok(true)
    })?;
    println!("\n==========");
    println!("{stats}");
    Ok(())
}
