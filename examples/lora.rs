//! LoRA fine-tuning of a Llama-architecture model on a small text (Shakespeare's sonnets I-LX,
//! `examples/data/sonnets.txt`), with byte-level token ids: the base model is frozen and only
//! low-rank adapters on its attention projections train (AdamW). Prints the training and
//! validation loss, then saves the adapters, loads them onto a fresh copy of the base model and
//! checks that it gives the same validation loss, and that fusing them into the weights does
//! too.
//!
//! ```sh
//! cargo run --release -p umx-lm --example lora
//! cargo run --release -p umx-lm --example lora -- --model path/to/hf-llama --steps 200
//! ```
//!
//! Without `--model` the base is a small random Llama (so this runs with no download); with it,
//! a Hugging Face checkpoint directory is loaded, and the text is tokenized by its
//! `tokenizer.json` when built with `--features tokenizer` (else byte ids are used, which a
//! real model's vocabulary does not mean).
//!
//! Options: `--model DIR`, `--data FILE`, `--steps N` (120), `--batch N` (8), `--context N`
//! (64), `--rank N` (16), `--alpha X` (32), `--lr X` (2e-3), `--layers N` (all),
//! `--targets qv|attention` (attention), `--dtype float32|bfloat16|float16`, `--seed N`.

use std::time::Instant;
use umx::bail;
use umx::nn::ModuleExt;
use umx::nn::losses::{self, Reduction};
use umx::optim::{self, Optimizer};
use umx::prelude::*;
use umx_lm::{Llama, LlamaConfig, LoraConfig, LoraTargets};

struct Args {
    model: Option<String>,
    data: String,
    steps: usize,
    batch: usize,
    context: usize,
    rank: usize,
    alpha: f64,
    lr: f64,
    layers: usize,
    targets: LoraTargets,
    dtype: Dtype,
    seed: u64,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        model: None,
        data: concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/data/sonnets.txt"
        )
        .into(),
        steps: 120,
        batch: 8,
        context: 64,
        rank: 16,
        alpha: 32.0,
        lr: 2e-3,
        layers: usize::MAX,
        targets: LoraTargets::Attention,
        dtype: Dtype::Float32,
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| Error::Invalid(format!("lora: {flag} needs a value")))
        };
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T> {
            v.parse()
                .map_err(|_| Error::Invalid(format!("lora: {flag} {v:?} is not a number")))
        }
        match flag.as_str() {
            "--model" => a.model = Some(value()?),
            "--data" => a.data = value()?,
            "--steps" => a.steps = num(&flag, value()?)?,
            "--batch" => a.batch = num(&flag, value()?)?,
            "--context" => a.context = num(&flag, value()?)?,
            "--rank" => a.rank = num(&flag, value()?)?,
            "--alpha" => a.alpha = num(&flag, value()?)?,
            "--lr" => a.lr = num(&flag, value()?)?,
            "--layers" => a.layers = num(&flag, value()?)?,
            "--seed" => a.seed = num(&flag, value()?)?,
            "--dtype" => a.dtype = umx_lm::parse_dtype(&value()?)?,
            "--targets" => {
                a.targets = match value()?.as_str() {
                    "qv" => LoraTargets::QueryValue,
                    "attention" => LoraTargets::Attention,
                    t => bail!("lora: --targets {t:?} is neither qv nor attention"),
                }
            }
            _ => bail!("lora: unknown option {flag:?} (see the top of examples/lora.rs)"),
        }
    }
    if a.batch == 0 || a.context == 0 || a.steps == 0 {
        bail!("lora: --batch, --context and --steps must be positive");
    }
    Ok(a)
}

/// The small random base model used without `--model`: byte-level, 4 layers.
fn random_base() -> Result<Llama> {
    let mut c = LlamaConfig::new(256, 128, 344, 4, 4, 2)?;
    c.rms_norm_eps = 1e-5;
    Llama::new(&c)
}

/// Token ids of `text` for `model`: its tokenizer where there is one, else bytes.
fn tokenize(text: &str, model_dir: Option<&str>, vocab: usize) -> Result<Vec<i32>> {
    #[cfg(feature = "tokenizer")]
    if let Some(dir) = model_dir {
        let path = std::path::Path::new(dir).join("tokenizer.json");
        if path.exists() {
            let tok = umx_lm::Tokenizer::from_file(&path)?;
            return Ok(tok
                .encode(text, false)?
                .into_iter()
                .map(|t| t as i32)
                .collect());
        }
    }
    if vocab < 256 {
        bail!("lora: byte-level ids need a vocabulary of 256 or more, the model has {vocab}");
    }
    if model_dir.is_some() {
        eprintln!("note: no tokenizer used; the text goes in as byte ids");
    }
    Ok(text.bytes().map(i32::from).collect())
}

/// `batch` windows of `context + 1` tokens starting at `starts`: inputs and next-token targets.
fn windows(data: &Array, starts: &Array, context: usize) -> Result<(Array, Array)> {
    let window = ops::arange(0, context as i64 + 1, 1, Dtype::Int32)?;
    let batch = ops::take(data, &ops::add(starts, &window)?, Some(0))?;
    let b = batch.dim(0)? as i64;
    let x = ops::slice(&batch, &[0, 0], &[b, context as i64], &[])?;
    let y = ops::slice(&batch, &[0, 1], &[b, context as i64 + 1], &[])?;
    Ok((x, y))
}

fn loss(model: &Llama, x: &Array, y: &Array) -> Result<Array> {
    let logits = model.forward(x, None)?.astype(Dtype::Float32)?;
    losses::cross_entropy(&logits, y, None, -1, 0.0, Reduction::Mean)
}

/// The mean loss over fixed, evenly spaced windows of `data` (the same every call).
fn validation_loss(model: &Llama, data: &Array, context: usize) -> Result<f32> {
    let n = data.size() - context - 1;
    let count = 32.min(n.max(1));
    let starts: Vec<i32> = (0..count).map(|i| (i * n / count) as i32).collect();
    let starts = Array::from_slice(&starts, &[count, 1])?;
    let (x, y) = windows(data, &starts, context)?;
    loss(model, &x, &y)?.item::<f32>()
}

fn main() -> Result<()> {
    let args = parse_args()?;
    random::seed(args.seed);
    let text = std::fs::read_to_string(&args.data)
        .map_err(|e| Error::Invalid(format!("lora: {}: {e}", args.data)))?;
    let mut base = match &args.model {
        Some(dir) => Llama::load(dir, args.dtype)?,
        None => {
            let mut m = random_base()?;
            m.set_dtype(args.dtype)?;
            m
        }
    };
    base.eval();
    let ids = tokenize(&text, args.model.as_deref(), base.config.vocab_size)?;
    let split = ids.len() * 9 / 10;
    if split < args.context + 2 || ids.len() - split < args.context + 2 {
        bail!(
            "lora: {} has {} tokens, too few for windows of {}",
            args.data,
            ids.len(),
            args.context
        );
    }
    let train = Array::from_slice(&ids[..split], &[split])?;
    let valid = Array::from_slice(&ids[split..], &[ids.len() - split])?;
    println!(
        "{}: {} training and {} validation tokens",
        args.data,
        split,
        ids.len() - split
    );

    let lora = LoraConfig {
        rank: args.rank,
        alpha: args.alpha,
        dropout: 0.0,
        num_layers: args.layers,
        targets: args.targets,
    };
    let mut model = base.clone();
    umx_lm::apply_lora(&mut model, &lora)?;
    model.train();
    println!(
        "model: {} parameters, {} of them trainable (LoRA rank {} on {:?} of {} layers)",
        model.num_parameters(),
        model
            .trainable_parameters()
            .values()
            .map(|p| p.size())
            .sum::<usize>(),
        lora.rank,
        lora.targets,
        lora.num_layers.min(model.model.layers.len()),
    );

    let start_val = validation_loss(&model, &valid, args.context)?;
    println!("step     0: validation loss {start_val:.3}");
    let step = umx::nn::value_and_grad(|m: &Llama, (x, y): (Array, Array)| loss(m, &x, &y));
    let mut opt = Optimizer::new(
        optim::AdamW {
            weight_decay: 0.0,
            ..Default::default()
        },
        optim::schedules::cosine_decay(args.lr, args.steps, args.lr / 10.0),
    );
    let start = Instant::now();
    let mut smoothed: Option<f32> = None;
    let mut val = start_val;
    for i in 1..=args.steps {
        let starts = random::randint(
            0,
            (split - args.context - 1) as i64,
            &[args.batch, 1],
            Dtype::Int32,
            None,
        )?;
        let (x, y) = windows(&train, &starts, args.context)?;
        let (l, grads) = step(&model, (x, y))?;
        opt.update(&mut model, &grads)?;
        let mut live: Vec<Array> = model.trainable_parameters().into_values().collect();
        live.push(l.clone());
        eval(&live)?;
        let l = l.item::<f32>()?;
        let s = smoothed.map_or(l, |s| 0.9 * s + 0.1 * l);
        smoothed = Some(s);
        if i % 20 == 0 || i == args.steps {
            model.eval();
            val = validation_loss(&model, &valid, args.context)?;
            model.train();
            println!(
                "step {i:>5}: training loss {s:.3}, validation loss {val:.3} ({:.0} ms/step)",
                start.elapsed().as_secs_f64() * 1e3 / i as f64
            );
        }
    }
    model.eval();
    println!(
        "validation loss {start_val:.3} -> {val:.3} in {} steps, {:.1} s",
        args.steps,
        start.elapsed().as_secs_f64()
    );
    if val >= start_val {
        bail!("lora: the validation loss did not go down ({start_val:.3} -> {val:.3})");
    }

    let dir = std::env::temp_dir().join(format!("umx-lm-lora-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Invalid(format!("lora: {e}")))?;
    let path = dir.join("adapters.safetensors");
    umx_lm::save_adapters(&model, &lora, &path)?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut reloaded = base.clone();
    umx_lm::load_adapters(&mut reloaded, &path)?;
    reloaded.eval();
    let again = validation_loss(&reloaded, &valid, args.context)?;
    let mut fused = reloaded.clone();
    umx_lm::fuse_lora(&mut fused)?;
    let fused_loss = validation_loss(&fused, &valid, args.context)?;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "adapters saved ({bytes} bytes) and reloaded: validation loss {again:.5} (trained {val:.5}); fused into the weights: {fused_loss:.5}"
    );
    let tolerance = if args.dtype == Dtype::Float32 {
        1e-4
    } else {
        2e-2
    };
    if (again - val).abs() > 1e-5 || (fused_loss - val).abs() > tolerance {
        bail!("lora: the reloaded or fused adapters give another loss");
    }
    Ok(())
}
