//! LLM benchmark (issue 8) on the GPU: a Llama of TinyLlama's shape (1.1B parameters: 22
//! layers, hidden 2048, 32 query and 4 key/value heads, vocabulary 32000) with random
//! bfloat16 weights, in umx-lm beside Hugging Face transformers and MLX (where its CUDA build
//! imports; bench/peers_llm.py) in the same invocation on the same card.
//!
//! ```sh
//! cargo build --release -p umx-bench --bin llm     # here; then on the GPU machine:
//! target/release/llm                               # runs bench/peers_llm.py for the peers
//! target/release/llm --step [--profile] [--q4]     # a decoding step's time (and where it goes)
//! target/release/llm --step --pattern              # ... with its position advancing, as
//!                                                  # generate runs it, and generate's
//! ```
//!
//! Prompt processing of 1024 tokens (tokens/s over the time to the first generated token)
//! and greedy generation of 128 tokens at batch 1 (tokens/s after the first), decoding
//! through a CUDA graph (generate's default on a GPU), then eagerly, then with 4-bit weights. The bound on
//! generation is the bytes each token must read (weights and KV cache) over the card's copy
//! bandwidth, measured here in the same run (a 2 GiB element-wise pass, bytes read and
//! written; the issue's 2995 GB/s was the H100's).

use std::collections::BTreeMap;
use umx::nn::ModuleExt;
use umx::prelude::*;
use umx_lm::{Decoding, FixedCache, GenerateOptions, Llama, LlamaConfig, generate};

const PROMPT: usize = 1024;
const GENERATE: usize = 128;

/// The card's copy bandwidth in GB/s, bytes read and written: the best of 10 passes of a
/// negation over 2^29 float32 (2 GiB; what `../shared/GPU.md` measured as 2995 GB/s on the
/// H100), each waited for by reading one element of it back.
fn copy_gbs() -> Result<f64> {
    let x = random::normal(&[1 << 29], Dtype::Float32, 0.0, 1.0, None)?;
    eval([&x])?;
    let mut best = f64::INFINITY;
    for _ in 0..10 {
        let t = std::time::Instant::now();
        let y = x.negative()?;
        // One element computed on the card and read (a view of `y` would bring all of it).
        ops::add(ops::slice(&y, &[0], &[1], &[])?, 0.0)?.item::<f32>()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * x.nbytes() as f64 / best / 1e9)
}

fn main() -> Result<()> {
    umx::init();
    if umx::cuda::device_count() == 0 {
        eprintln!("llm: no CUDA device found");
        std::process::exit(1);
    }
    let config = LlamaConfig::new(32000, 2048, 5632, 22, 32, 4)?;
    random::seed(0);
    let mut model = Llama::new(&config)?;
    model.set_dtype(Dtype::Bfloat16)?;
    let params: Vec<Array> = model.parameters().into_values().collect();
    eval(&params)?;
    let weight_bytes: usize = params.iter().map(Array::nbytes).sum();
    drop(params);
    // As `Llama::load` leaves a model: q/k/v and gate/up stacked into one product each. The
    // unstacked copy is timed too.
    let separate = model.clone();
    model.stack_projections()?;
    let prompt: Vec<u32> = (0..PROMPT as u32).map(|i| (i * 7919) % 32000).collect();
    if std::env::args().any(|a| a == "--step") {
        // Only the card's time for one decoding step (and its profile with --profile), with
        // --q4 also with 4-bit weights.
        let profile = std::env::args().any(|a| a == "--profile");
        let ms = graph_step(&model, &prompt, profile)?;
        let separate_ms = graph_step(&separate, &prompt, false)?;
        println!("decoding step: {ms:.3} ms (projections apart: {separate_ms:.3} ms)");
        if std::env::args().any(|a| a == "--pattern") {
            let (b2b, pipelined, two) = generation_pattern(&model, &prompt)?;
            println!(
                "advancing step: {b2b:.3} ms back to back, {pipelined:.3} ms with each token \
                 read, {two:.3} ms two steps a graph"
            );
            let options = GenerateOptions {
                max_tokens: GENERATE,
                ..Default::default()
            };
            warm_up(&model, &prompt)?;
            let (_, stats) = generate(&model, &prompt, &options, |_| Ok(true))?;
            println!(
                "generate: {:.3} ms a token ({:.1} tokens/s)",
                1e3 / stats.generation_tps,
                stats.generation_tps
            );
        }
        if std::env::args().any(|a| a == "--q4") {
            // And with 4-bit weights, as the full run makes them.
            let mut q4 = model.clone();
            umx::nn::quantize(&mut q4, 64, 4, None)?;
            eval(q4.parameters().values())?;
            q4.stack_projections()?;
            println!(
                "4-bit decoding step: {:.3} ms",
                graph_step(&q4, &prompt, profile)?
            );
        }
        return Ok(());
    }
    let options = GenerateOptions {
        max_tokens: GENERATE,
        ..Default::default()
    };
    // A warm-up call compiles the kernels; the second is timed.
    warm_up(&model, &prompt)?;
    let (tokens, stats) = generate(&model, &prompt, &options, |_| Ok(true))?;
    // The same without the CUDA graph: every op of every step dispatched from the host.
    let eager_options = GenerateOptions {
        decoding: Decoding::Eager,
        ..options.clone()
    };
    // Untimed first: eager steps see every cache length, and the decoding attention's kernel
    // has a form for each range of lengths (its rows a block, its merge), compiled on first
    // use.
    generate(&model, &prompt, &eager_options, |_| Ok(true))?;
    let (eager_tokens, eager) = generate(&model, &prompt, &eager_options, |_| Ok(true))?;
    let divergence = first_difference(&model, &prompt, &tokens, &eager_tokens)?;
    // Each projection its own product.
    warm_up(&separate, &prompt)?;
    let (_, apart) = generate(&separate, &prompt, &options, |_| Ok(true))?;
    let apart_step_ms = graph_step(&separate, &prompt, false)?;
    drop(separate);
    // And with cuBLASLt for the matrix-vector products instead of umx's kernel.
    umx::cuda::set_gemv(false);
    warm_up(&model, &prompt)?;
    let (_, lt) = generate(&model, &prompt, &options, |_| Ok(true))?;
    umx::cuda::set_gemv(true);
    // 4-bit weights (group size 64, MLX's default), embedding and head included.
    let mut q4 = model.clone();
    umx::nn::quantize(&mut q4, 64, 4, None)?;
    eval(q4.parameters().values())?;
    q4.stack_projections()?;
    let q4_bytes: usize = q4.parameters().values().map(Array::nbytes).sum();
    warm_up(&q4, &prompt)?;
    let (_, q4_stats) = generate(&q4, &prompt, &options, |_| Ok(true))?;
    drop(q4);
    let step_ms = graph_step(&model, &prompt, std::env::args().any(|a| a == "--profile"))?;
    let mut times: BTreeMap<String, f64> = BTreeMap::new();
    times.insert("prefill/umx".into(), stats.prompt_tps);
    times.insert("generate/umx".into(), stats.generation_tps);
    drop(model);
    umx::cuda::memory::clear_cache()?;

    umx_bench::run_peers("peers_llm.py", &mut times);
    let card = umx_bench::card();
    println!("card: {card}");
    println!(
        "model: {:.2}B parameters, {:.2} GB of bfloat16 weights; {} tokens generated",
        config.num_parameters() as f64 / 1e9,
        weight_bytes as f64 / 1e9,
        tokens.len()
    );
    // KV bytes read by a token in the middle of generation: 2 (K, V) * layers * kv heads *
    // head dim * positions * 2 bytes.
    let kv = 2.0 * 22.0 * 4.0 * 64.0 * (PROMPT + GENERATE / 2) as f64 * 2.0;
    let copy = copy_gbs()?;
    let bound = copy * 1e9 / (weight_bytes as f64 + kv);
    println!(
        "generation bound: {bound:.0} tokens/s (weights + KV over this card's copy rate, \
         {copy:.0} GB/s)"
    );
    println!(
        "{:<10} {:>12} {:>14} {:>12} {:>19} {:>10}",
        "tokens/s", "umx", "transformers", "mlx", "umx / transformers", "umx / mlx"
    );
    for w in ["prefill", "generate"] {
        let get = |p: &str| times.get(&format!("{w}/{p}")).copied().unwrap_or(f64::NAN);
        let (u, t, m) = (get("umx"), get("transformers"), get("mlx"));
        println!(
            "{w:<10} {u:>12.1} {t:>14.1} {m:>12.1} {:>19.2} {:>10.2}",
            u / t,
            u / m
        );
    }
    if let Some(g) = times.get("generate/umx") {
        println!(
            "umx generation ({:?}): {:.0}% of the bound",
            stats.decoding,
            g / bound * 100.0
        );
    }
    println!(
        "one decoding step replayed back to back: {step_ms:.3} ms on the card ({:.0}% of the bound)",
        1e3 / step_ms / bound * 100.0
    );
    if let Some(why) = &stats.fallback {
        println!("the graph was not used: {why}");
    }
    let same = if eager_tokens == tokens {
        "the same"
    } else {
        "DIFFERENT"
    };
    println!(
        "umx eager decoding: {:.1} tokens/s ({same} tokens)",
        eager.generation_tps
    );
    if let Some(d) = divergence {
        println!("  {d}");
    }
    println!(
        "umx with each projection its own product: {:.1} tokens/s, a step {apart_step_ms:.3} ms",
        apart.generation_tps
    );
    println!(
        "umx with cuBLASLt's matrix-vector products: {:.1} tokens/s ({:?})",
        lt.generation_tps, lt.decoding
    );
    let q4_bound = copy * 1e9 / (q4_bytes as f64 + kv);
    println!(
        "umx 4-bit ({:.2} GB of weights, {:?}): prompt {:.1} tokens/s, generation {:.1} tokens/s \
         ({:.2}x bfloat16; {:.0}% of its bound {q4_bound:.0})",
        q4_bytes as f64 / 1e9,
        q4_stats.decoding,
        q4_stats.prompt_tps,
        q4_stats.generation_tps,
        q4_stats.generation_tps / stats.generation_tps,
        q4_stats.generation_tps / q4_bound * 100.0
    );
    println!("{stats}");
    println!("ops on the CPU fallback: {:?}", umx::cuda::fallback_ops());
    Ok(())
}

/// Where the graph's and eager decoding's greedy tokens first differ, with the two tokens'
/// logits there from one forward pass over the prompt and the tokens both chose before: a
/// near tie (a gap of a bfloat16 rounding or two) says the two paths only round differently.
fn first_difference(
    model: &Llama,
    prompt: &[u32],
    graph: &[u32],
    eager: &[u32],
) -> Result<Option<String>> {
    let Some(i) = graph.iter().zip(eager).position(|(a, b)| a != b) else {
        return Ok(None);
    };
    let mut seen: Vec<i32> = prompt.iter().map(|&t| t as i32).collect();
    seen.extend(graph[..i].iter().map(|&t| t as i32));
    let n = seen.len();
    let logits = model.forward(&Array::from_slice(&seen, &[1, n])?, None)?;
    let vocab = logits.dim(2)? as i64;
    let last = ops::slice(&logits, &[0, n as i64 - 1, 0], &[1, n as i64, vocab], &[])?;
    let v = last.astype(Dtype::Float32)?.to_vec::<f32>()?;
    let mut top = v.clone();
    top.sort_by(|a, b| b.total_cmp(a));
    Ok(Some(format!(
        "first difference at token {i}: graph {} (logit {:.4}), eager {} (logit {:.4}); the top \
         logits there {:?}",
        graph[i],
        v[graph[i] as usize],
        eager[i],
        v[eager[i] as usize],
        &top[..3]
    )))
}

/// A generation from the whole prompt, so the timed call after it finds its kernels
/// (the prompt's among them) compiled and its cuBLASLt plans made.
fn warm_up(model: &Llama, prompt: &[u32]) -> Result<()> {
    // As many tokens as the timed runs: the cache's capacity, and so the decoding kernels'
    // forms, follow from it.
    let options = GenerateOptions {
        max_tokens: GENERATE,
        ..Default::default()
    };
    generate(model, prompt, &options, |_| Ok(true)).map(|_| ())
}

/// The card's time for one decoding step (a graph replay, back to back, at position 1024);
/// with `profile`, also the time of each primitive in one replay (events captured as graph
/// nodes, so no host time is counted).
fn graph_step(model: &Llama, prompt: &[u32], profile: bool) -> Result<f64> {
    let mut g = step_graph(model, prompt, false, 1, profile)?;
    if profile {
        let report = umx::cuda::profile_report()?;
        umx::cuda::set_profiling(false);
        let total: f64 = report.iter().map(|l| l.total_ms).sum();
        println!(
            "one decoding step ({} graph nodes): {:.3} ms of primitives; by primitive:",
            g.nodes(),
            total
        );
        for l in report.iter().take(40) {
            println!("{:>9.4} {:>6}  {}", l.total_ms, l.count, l.label);
        }
        // A graph without the event nodes for the timing below.
        drop(g);
        return graph_step(model, prompt, false);
    }
    g.replay()?;
    g.read(0)?.item::<u32>()?;
    let n = 50;
    let t = std::time::Instant::now();
    for _ in 0..n {
        g.replay()?;
    }
    g.read(0)?.item::<u32>()?;
    Ok(t.elapsed().as_secs_f64() * 1e3 / n as f64)
}

/// A decoding step as `generate` replays it: the position advancing each step (from 1024),
/// timed back to back and in generation's pattern (the token read to the host while the next
/// step runs), and two steps a graph. Each in ms a step.
fn generation_pattern(model: &Llama, prompt: &[u32]) -> Result<(f64, f64, f64)> {
    let n = 100;
    let mut g = step_graph(model, prompt, true, 1, false)?;
    let t = std::time::Instant::now();
    for _ in 0..n {
        g.replay()?;
    }
    g.read(0)?.item::<u32>()?;
    let back_to_back = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    let mut g = step_graph(model, prompt, true, 1, false)?;
    let t = std::time::Instant::now();
    for i in 0..n {
        let read = g.read_later(0)?;
        if i + 1 < n {
            g.replay()?;
        }
        read.wait()?.item::<u32>()?;
    }
    let pipelined = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    // Two steps a graph: what the boundary between two replays costs a step.
    let mut g = step_graph(model, prompt, true, 2, false)?;
    let t = std::time::Instant::now();
    for _ in 0..n / 2 {
        g.replay()?;
    }
    g.read(0)?.item::<u32>()?;
    let two = t.elapsed().as_secs_f64() * 1e3 / (n / 2 * 2) as f64;
    Ok((back_to_back, pipelined, two))
}

/// A decoding step after the prompt, captured as a CUDA graph (the capture runs it once); its
/// state is the token, the position (kept or, with `advance`, one further each step) and the
/// fixed cache of `prompt.len() + GENERATE` positions; `steps` steps a replay. With
/// `profile`, the capture places events around each primitive (see [`graph_step`]).
fn step_graph(
    model: &Llama,
    prompt: &[u32],
    advance: bool,
    steps: usize,
    profile: bool,
) -> Result<umx::cuda::CudaGraph> {
    let mut cache = model.new_cache();
    model.hidden_states(
        &Array::from_slice(prompt, &[1, prompt.len()])?,
        Some(&mut cache),
    )?;
    let fixed = FixedCache::from_caches(&cache, prompt.len() + GENERATE)?;
    drop(cache);
    let mut state = vec![
        Array::from_slice(&[7u32], &[1, 1])?,
        Array::scalar(prompt.len() as i32),
    ];
    for (k, v) in fixed.keys.iter().zip(&fixed.values) {
        state.push(k.clone());
        state.push(v.clone());
    }
    let one = |s: &[Array]| -> Result<Vec<Array>> {
        let kv = &s[2..];
        let cache = fixed.with(
            kv.iter().step_by(2).cloned().collect(),
            kv.iter().skip(1).step_by(2).cloned().collect(),
        );
        let (logits, cache) = model.decode_fixed(&s[0], &s[1], &cache)?;
        let t = ops::reshape(&ops::argmax(&logits, Some(-1), false)?, &[1, 1])?;
        let position = if advance {
            ops::add(&s[1], 1)?
        } else {
            s[1].clone()
        };
        let mut out = vec![t, position];
        for (k, v) in cache.keys.into_iter().zip(cache.values) {
            out.push(k);
            out.push(v);
        }
        Ok(out)
    };
    // `steps` decoding steps one after another in the one graph.
    let step = |s: &[Array]| -> Result<Vec<Array>> {
        let mut s = s.to_vec();
        for _ in 0..steps {
            s = one(&s)?;
        }
        Ok(s)
    };
    let fused = |s: &[Array]| umx::transforms::compile_once(&step, s);
    umx::cuda::set_profiling(profile);
    umx::cuda::CudaGraph::capture(fused, state)
}
