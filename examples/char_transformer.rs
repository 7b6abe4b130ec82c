//! Trains a small character-level transformer on Shakespeare's works and prints samples.
//!
//! ```sh
//! python3 examples/data/shakespeare.py && cargo run --release --example char_transformer
//! ```
//!
//! Optional arguments: the number of training steps (default 1000).

use std::io::Write;
use std::time::Instant;
use umx::nn::losses::{self, Reduction};
use umx::nn::{self, Forward, Module, ModuleExt};
use umx::optim::{self, Optimizer};
use umx::prelude::*;

const CONTEXT: usize = 64;
const BATCH: usize = 32;
const DIMS: usize = 128;
const HEADS: usize = 4;
const LAYERS: usize = 4;

/// Token and position embeddings, pre-norm transformer blocks with a causal mask, and a
/// linear head over the characters.
#[derive(Module, Clone)]
struct CharModel {
    tokens: nn::Embedding,
    positions: nn::Embedding,
    blocks: Vec<nn::TransformerEncoderLayer>,
    norm: nn::LayerNorm,
    head: nn::Linear,
}

impl CharModel {
    fn new(vocab: usize) -> Result<CharModel> {
        Ok(CharModel {
            tokens: nn::Embedding::new(vocab, DIMS)?,
            positions: nn::Embedding::new(CONTEXT, DIMS)?,
            blocks: (0..LAYERS)
                .map(|_| nn::TransformerEncoderLayer::new(DIMS, HEADS, None, 0.0, true))
                .collect::<Result<_>>()?,
            norm: nn::LayerNorm::new(DIMS, 1e-5, true, true)?,
            head: nn::Linear::new(DIMS, vocab, true)?,
        })
    }

    /// Logits `(B, T, vocab)` for tokens `(B, T)`.
    fn forward(&self, tokens: &Array) -> Result<Array> {
        let t = tokens.dim(-1)?;
        let pos = ops::arange(0, t as i64, 1, Dtype::Int32)?;
        let mut x = ops::add(self.tokens.forward(tokens)?, self.positions.forward(&pos)?)?;
        let mask = nn::MultiHeadAttention::create_additive_causal_mask(t, Dtype::Float32)?;
        for b in &self.blocks {
            x = b.forward(&x, Some(&mask))?;
        }
        self.head.forward(&self.norm.forward(&x)?)
    }
}

fn main() -> Result<()> {
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/data/shakespeare.txt"
    );
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Invalid(format!(
            "{path}: {e} (run `python3 examples/data/shakespeare.py` first)"
        ))
    })?;
    let mut vocab: Vec<char> = text
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    vocab.sort();
    let index = |c: char| vocab.binary_search(&c).unwrap_or(0) as i32;
    let ids: Vec<i32> = text.chars().map(index).collect();
    let data = Array::from_slice(&ids, &[ids.len()])?;
    println!("{} characters, {} distinct", ids.len(), vocab.len());

    random::seed(0);
    let mut model = CharModel::new(vocab.len())?;
    println!("{} parameters", model.num_parameters());
    let loss_fn = |m: &CharModel, (x, y): (Array, Array)| {
        losses::cross_entropy(&m.forward(&x)?, &y, None, -1, 0.0, Reduction::Mean)
    };
    let step = nn::value_and_grad(loss_fn);
    let warmup = optim::schedules::linear_schedule(0.0, 1e-3, 50);
    let decay = optim::schedules::cosine_decay(1e-3, steps, 1e-4);
    let mut opt = Optimizer::new(
        optim::AdamW::default(),
        optim::schedules::join_schedules(vec![warmup, decay], vec![50]),
    );
    let window = ops::arange(0, CONTEXT as i64 + 1, 1, Dtype::Int32)?;

    let start = Instant::now();
    let mut smoothed = None;
    for i in 1..=steps {
        let offsets = random::randint(
            0,
            (ids.len() - CONTEXT - 1) as i64,
            &[BATCH, 1],
            Dtype::Int32,
            None,
        )?;
        let batch = ops::take(&data, &ops::add(&offsets, &window)?, Some(0))?;
        let parts = ops::split(&batch, [CONTEXT], 1)?;
        let x = parts[0].clone();
        let y = ops::slice(&batch, &[0, 1], &[BATCH as i64, CONTEXT as i64 + 1], &[])?;
        let (loss, grads) = step(&model, (x, y))?;
        opt.update(&mut model, &grads)?;
        let mut live: Vec<Array> = model.parameters().into_values().collect();
        live.push(loss.clone());
        eval(&live)?;
        let l = loss.item::<f32>()?;
        let s = smoothed.map_or(l, |s: f32| 0.95 * s + 0.05 * l);
        smoothed = Some(s);
        if i % 10 == 0 || i == steps {
            eprint!(
                "\rstep {i:>5}/{steps} loss {s:.3} ({:.2} s/step)",
                start.elapsed().as_secs_f32() / i as f32
            );
            let _ = std::io::stderr().flush();
        }
    }
    eprintln!();

    for prompt in ["ROMEO.\n", "KING HENRY.\n"] {
        println!("---- {prompt}{}", sample(&model, &vocab, prompt, 400, 0.8)?);
    }
    Ok(())
}

/// Continues `prompt` by `n` sampled characters at `temperature`.
fn sample(
    model: &CharModel,
    vocab: &[char],
    prompt: &str,
    n: usize,
    temperature: f64,
) -> Result<String> {
    let mut ids: Vec<i32> = prompt
        .chars()
        .map(|c| vocab.binary_search(&c).unwrap_or(0) as i32)
        .collect();
    let mut out = String::new();
    for _ in 0..n {
        let ctx = &ids[ids.len().saturating_sub(CONTEXT)..];
        let x = Array::from_slice(ctx, &[1, ctx.len()])?;
        let logits = model.forward(&x)?;
        let last = ops::take(&logits, &Array::scalar(ctx.len() as i32 - 1), Some(1))?;
        let next = random::categorical(&ops::divide(&last, temperature)?, -1, None, None, None)?;
        let id = next.item::<u32>()? as i32;
        ids.push(id);
        out.push(vocab[id as usize]);
    }
    Ok(out)
}
