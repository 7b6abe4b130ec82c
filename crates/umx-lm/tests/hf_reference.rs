//! umx-lm against Hugging Face transformers: tiny random Llama models saved by
//! `tests/reference/make_tiny_llama.py` (in `tests/data/`), with the logits transformers gave
//! for a fixed prompt and its greedy continuation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use umx::nn::ModuleExt;
use umx::prelude::*;
use umx_lm::{Decoding, GenerateOptions, KvCache, Llama};

const VARIANTS: [&str; 2] = ["tiny_llama", "tiny_llama3_tied"];

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

struct Reference {
    prompt: Vec<u32>,
    /// (prompt length, vocab), row-major.
    logits: Vec<f32>,
    greedy: Vec<u32>,
}

fn reference(name: &str) -> Reference {
    let text = std::fs::read_to_string(data(name).join("reference.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids = |key: &str| -> Vec<u32> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let logits = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    Reference {
        prompt: ids("prompt"),
        logits,
        greedy: ids("greedy"),
    }
}

fn tokens(ids: &[u32]) -> Array {
    Array::from_slice(ids, &[1, ids.len()]).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn logits_of(model: &Llama, ids: &[u32]) -> Vec<f32> {
    model
        .forward(&tokens(ids), None)
        .unwrap()
        .astype(Dtype::Float32)
        .unwrap()
        .to_vec()
        .unwrap()
}

#[test]
fn logits_match_transformers_in_float32() {
    for name in VARIANTS {
        let r = reference(name);
        let model = Llama::load(data(name), Dtype::Float32).unwrap();
        let got = logits_of(&model, &r.prompt);
        let d = max_abs_diff(&got, &r.logits);
        let range = r.logits.iter().fold(0f32, |m, x| m.max(x.abs()));
        println!("{name}: max |logits - transformers| = {d:.2e} (logits up to {range:.1})");
        assert!(d <= 1e-3, "{name}: max abs difference {d}");
    }
}

#[test]
fn greedy_tokens_match_transformers() {
    for name in VARIANTS {
        let r = reference(name);
        let model = Llama::load(data(name), Dtype::Float32).unwrap();
        let options = GenerateOptions {
            max_tokens: r.greedy.len(),
            ..Default::default()
        };
        // Auto is a CUDA graph on a GPU, eager decoding on the CPU. A fixed cache that
        // makes room for 3 positions at a time grows (and the graph is captured again) 4 times.
        let grows = |decoding| GenerateOptions {
            decoding,
            cache_step: 3,
            ..options.clone()
        };
        let runs = [
            (Decoding::Auto, options.clone()),
            (Decoding::Eager, options.clone()),
            (Decoding::Fixed, options.clone()),
            (Decoding::Fixed, grows(Decoding::Fixed)),
            (Decoding::Auto, grows(Decoding::Auto)),
        ];
        for (decoding, options) in runs {
            let options = GenerateOptions {
                decoding,
                ..options
            };
            let mut streamed = Vec::new();
            let (got, stats) = umx_lm::generate(&model, &r.prompt, &options, |t| {
                streamed.push(t);
                Ok(true)
            })
            .unwrap();
            assert_eq!(got, r.greedy, "{name}, {decoding:?}");
            assert_eq!(streamed, r.greedy, "{name}: the callback saw every token");
            assert_eq!(stats.prompt_tokens, r.prompt.len());
            assert_eq!(stats.generation_tokens, r.greedy.len());
            assert_eq!(stats.fallback, None, "{name}, {decoding:?}");
            if decoding != Decoding::Auto {
                assert_eq!(stats.decoding, decoding);
            }
        }
        // The prompt in pieces of 5 tokens, and a rotating cache that holds everything.
        let pieces = GenerateOptions {
            prefill_step_size: 5,
            max_kv_size: Some(r.prompt.len() + r.greedy.len()),
            ..options
        };
        let (got, _) = umx_lm::generate(&model, &r.prompt, &pieces, |_| Ok(true)).unwrap();
        assert_eq!(got, r.greedy, "{name}: prefill in pieces");
    }
}

#[test]
fn generation_stops_at_a_stop_token_or_when_the_callback_says() {
    let r = reference(VARIANTS[0]);
    let model = Llama::load(data(VARIANTS[0]), Dtype::Float32).unwrap();
    for decoding in [Decoding::Auto, Decoding::Eager, Decoding::Fixed] {
        let options = GenerateOptions {
            max_tokens: r.greedy.len(),
            stop_tokens: vec![r.greedy[3]],
            decoding,
            ..Default::default()
        };
        let (got, _) = umx_lm::generate(&model, &r.prompt, &options, |_| Ok(true)).unwrap();
        assert_eq!(got, r.greedy[..4], "{decoding:?}");
        let options = GenerateOptions {
            max_tokens: r.greedy.len(),
            decoding,
            ..Default::default()
        };
        let mut seen = 0;
        let (got, _) = umx_lm::generate(&model, &r.prompt, &options, |_| {
            seen += 1;
            Ok(seen < 2)
        })
        .unwrap();
        assert_eq!(got, r.greedy[..2], "{decoding:?}");
    }
    let options = GenerateOptions {
        max_tokens: r.greedy.len(),
        ..Default::default()
    };
    let rotating = GenerateOptions {
        max_kv_size: Some(8),
        decoding: Decoding::Fixed,
        ..options.clone()
    };
    let err = umx_lm::generate(&model, &r.prompt, &rotating, |_| Ok(true)).unwrap_err();
    assert!(err.to_string().contains("rotate"), "{err}");
    let err = umx_lm::generate(&model, &[1, 999], &options, |_| Ok(true)).unwrap_err();
    assert!(err.to_string().contains("token 999"), "{err}");
}

#[test]
fn sampling_with_a_seed_is_reproducible() {
    let r = reference(VARIANTS[1]);
    let model = Llama::load(data(VARIANTS[1]), Dtype::Float32).unwrap();
    let options = GenerateOptions {
        max_tokens: 12,
        sampler: umx_lm::Sampler::new(1.0, 0.9).unwrap(),
        seed: Some(42),
        ..Default::default()
    };
    let (a, _) = umx_lm::generate(&model, &r.prompt, &options, |_| Ok(true)).unwrap();
    let (b, _) = umx_lm::generate(&model, &r.prompt, &options, |_| Ok(true)).unwrap();
    assert_eq!(a, b);
    assert_ne!(
        a,
        r.greedy[..12],
        "temperature 1 should leave the greedy path"
    );
    // Without top-p, every decoding draws the same tokens from the same key sequence (on a
    // GPU, Auto captures the sampling in the graph too).
    let plain = GenerateOptions {
        sampler: umx_lm::Sampler::new(0.8, 1.0).unwrap(),
        ..options
    };
    let runs: Vec<Vec<u32>> = [Decoding::Eager, Decoding::Fixed, Decoding::Auto]
        .into_iter()
        .map(|decoding| {
            let o = GenerateOptions {
                decoding,
                ..plain.clone()
            };
            umx_lm::generate(&model, &r.prompt, &o, |_| Ok(true))
                .unwrap()
                .0
        })
        .collect();
    assert_eq!(runs[0], runs[1], "fixed against eager");
    assert_eq!(runs[0], runs[2], "auto against eager");
}

#[test]
fn decoding_through_the_cache_gives_the_full_pass_logits() {
    for name in VARIANTS {
        let r = reference(name);
        let model = Llama::load(data(name), Dtype::Float32).unwrap();
        let vocab = model.config.vocab_size;
        let seq: Vec<u32> = r.prompt.iter().chain(&r.greedy).copied().collect();
        let full = logits_of(&model, &seq);

        // A prefill of 5 tokens, then one token at a time.
        for mut cache in [
            model.new_cache(),
            model.new_rotating_cache(seq.len()).unwrap(),
        ] {
            let mut got = logits_of_cached(&model, &seq[..5], &mut cache);
            for t in &seq[5..] {
                got.extend(logits_of_cached(&model, &[*t], &mut cache));
            }
            assert_eq!(cache[0].offset(), seq.len());
            let d = max_abs_diff(&got, &full);
            assert!(d <= 1e-4, "{name}: cached decoding differs by {d}");
        }
        assert_eq!(full.len(), seq.len() * vocab);
    }
}

fn logits_of_cached(model: &Llama, ids: &[u32], cache: &mut [KvCache]) -> Vec<f32> {
    model
        .forward(&tokens(ids), Some(cache))
        .unwrap()
        .to_vec()
        .unwrap()
}

#[test]
fn a_rotating_cache_is_a_sliding_window() {
    // A window of 4 positions, filled by one prefill or token by token, gives one answer.
    let name = VARIANTS[0];
    let r = reference(name);
    let model = Llama::load(data(name), Dtype::Float32).unwrap();
    let mut at_once = model.new_rotating_cache(4).unwrap();
    let all = logits_of_cached(&model, &r.prompt, &mut at_once);
    let mut stepwise = model.new_rotating_cache(4).unwrap();
    let mut steps = Vec::new();
    for t in &r.prompt {
        steps.extend(logits_of_cached(&model, &[*t], &mut stepwise));
    }
    assert!(max_abs_diff(&all, &steps) <= 1e-4);
    assert_eq!(stepwise[0].len(), 4);
    // The first 4 positions see no rotation: they match the plain causal pass.
    let full = logits_of(&model, &r.prompt);
    let n = 4 * model.config.vocab_size;
    assert!(max_abs_diff(&all[..n], &full[..n]) <= 1e-4);
    assert!(max_abs_diff(&all[n..], &full[n..]) > 1e-3);
}

#[test]
fn bfloat16_and_float16_stay_close_to_float32() {
    let name = VARIANTS[0];
    let r = reference(name);
    for dtype in [Dtype::Bfloat16, Dtype::Float16] {
        let model = Llama::load(data(name), dtype).unwrap();
        assert!(model.parameters().values().all(|p| p.dtype() == dtype));
        let got = logits_of(&model, &r.prompt);
        let d = max_abs_diff(&got, &r.logits);
        let range = r.logits.iter().fold(0f32, |m, x| m.max(x.abs()));
        println!("{dtype}: max |logits - transformers fp32| = {d:.3} (logits up to {range:.1})");
        assert!(d < 0.05 * range, "{dtype}: {d}");
    }
    // A checkpoint stored in bfloat16 (as most are) loads as bfloat16 and as float32.
    let bf16 = Llama::load(data(name), Dtype::Bfloat16).unwrap();
    let dir = scratch_copy(name, "bf16");
    umx::io::save_weights(&bf16, dir.join("model.safetensors")).unwrap();
    let file = umx::io::SafeTensors::open(dir.join("model.safetensors")).unwrap();
    assert_eq!(file.info("model.norm.weight").unwrap().file_dtype, "BF16");
    drop(file);
    let want = logits_of(&bf16, &r.prompt);
    let again = Llama::load(&dir, Dtype::Bfloat16).unwrap();
    assert_eq!(logits_of(&again, &r.prompt), want);
    let wide = Llama::load(&dir, Dtype::Float32).unwrap();
    assert!(
        wide.parameters()
            .values()
            .all(|p| p.dtype() == Dtype::Float32)
    );
    assert!(max_abs_diff(&logits_of(&wide, &r.prompt), &want) < 0.1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A copy of a test model's directory in a fresh temporary folder.
fn scratch_copy(name: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("umx-lm-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(data(name).join("config.json"), dir.join("config.json")).unwrap();
    dir
}

#[test]
fn sharded_checkpoints_load_through_the_index() {
    let name = VARIANTS[0];
    let all = umx::io::load_safetensors(data(name).join("model.safetensors")).unwrap();
    let dir = scratch_copy(name, "shards");
    let mut shards: [BTreeMap<String, Array>; 2] = Default::default();
    let mut weight_map = serde_json::Map::new();
    for (i, (k, v)) in all.iter().enumerate() {
        shards[i % 2].insert(k.clone(), v.clone());
        let file = format!("model-0000{}-of-00002.safetensors", i % 2 + 1);
        weight_map.insert(k.clone(), serde_json::Value::String(file));
    }
    for (i, s) in shards.iter().enumerate() {
        let path = dir.join(format!("model-0000{}-of-00002.safetensors", i + 1));
        umx::io::save_safetensors(path, s, None).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let r = reference(name);
    let model = Llama::load(&dir, Dtype::Float32).unwrap();
    assert!(max_abs_diff(&logits_of(&model, &r.prompt), &r.logits) <= 1e-3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_and_misshaped_tensors_are_named() {
    let name = VARIANTS[0];
    let mut all = umx::io::load_safetensors(data(name).join("model.safetensors")).unwrap();
    all.remove("model.layers.1.mlp.up_proj.weight");
    all.insert(
        "model.norm.weight".into(),
        ops::ones(&[3], Dtype::Float32).unwrap(),
    );
    all.insert(
        "model.layers.0.self_attn.q_proj.lora_a".into(),
        ops::ones(&[3], Dtype::Float32).unwrap(),
    );
    let dir = scratch_copy(name, "broken");
    umx::io::save_safetensors(dir.join("model.safetensors"), &all, None).unwrap();
    let err = Llama::load(&dir, Dtype::Float32).unwrap_err().to_string();
    assert!(
        err.contains("model.layers.1.mlp.up_proj.weight is missing"),
        "{err}"
    );
    assert!(
        err.contains("model.norm.weight has shape [3]") && err.contains("needs [64]"),
        "{err}"
    );
    assert!(err.contains("q_proj.lora_a is not a parameter"), "{err}");
    let err = Llama::load(&dir, Dtype::Int32).unwrap_err().to_string();
    assert!(err.contains("float"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    let err = Llama::load(data("no_such_model"), Dtype::Float32)
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn lora_adapters_save_load_and_fuse_on_a_real_checkpoint() {
    let name = VARIANTS[1];
    let r = reference(name);
    let base = Llama::load(data(name), Dtype::Float32).unwrap();
    let cfg = umx_lm::LoraConfig {
        rank: 4,
        num_layers: 1,
        ..Default::default()
    };
    let mut model = base.clone();
    umx_lm::apply_lora(&mut model, &cfg).unwrap();
    // A fresh adapter (B = 0) changes nothing.
    assert!(max_abs_diff(&logits_of(&model, &r.prompt), &r.logits) <= 1e-3);
    // Give the adapters values, as training would.
    let mut trained = umx_lm::lora_parameters(&model);
    for v in trained.values_mut() {
        *v = random::normal(v.shape(), Dtype::Float32, 0.0, 0.1, None).unwrap();
    }
    model.update(&trained).unwrap();
    let want = logits_of(&model, &r.prompt);
    assert!(max_abs_diff(&want, &r.logits) > 1e-2);

    let path = std::env::temp_dir().join(format!(
        "umx-lm-adapters-{}.safetensors",
        std::process::id()
    ));
    umx_lm::save_adapters(&model, &cfg, &path).unwrap();
    let saved = umx::io::load_safetensors(&path).unwrap();
    assert_eq!(saved.len(), 4, "only q and v adapters of one layer");
    let mut reloaded = base.clone();
    let got_cfg = umx_lm::load_adapters(&mut reloaded, &path).unwrap();
    assert_eq!(got_cfg.rank, 4);
    assert_eq!(logits_of(&reloaded, &r.prompt), want);
    umx_lm::fuse_lora(&mut reloaded).unwrap();
    assert!(umx_lm::lora_parameters(&reloaded).is_empty());
    assert!(max_abs_diff(&logits_of(&reloaded, &r.prompt), &want) <= 1e-4);
    // Adapters for a model of other shapes are refused with the names.
    let mut other = Llama::load(data(VARIANTS[0]), Dtype::Float32).unwrap();
    let err = umx_lm::load_adapters(&mut other, &path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("q_proj.lora_b has shape [4, 128] in the file"),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn quantizing_reaches_every_projection_and_every_decoding_agrees() {
    let r = reference(VARIANTS[0]);
    let mut model = Llama::load(data(VARIANTS[0]), Dtype::Float32).unwrap();
    // The MLP's down projection has 172 inputs, which no group size divides: it stays.
    let fits = |_: &str, l: &dyn umx::nn::Quantizable| l.weight_shape()[1].is_multiple_of(32);
    umx::nn::quantize(&mut model, 32, 4, Some(&fits)).unwrap();
    // q/k/v and gate/up stack again, as quantized weights.
    model.stack_projections().unwrap();
    let names: Vec<String> = model.parameters().into_keys().collect();
    for p in [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
    ] {
        let n = format!("model.layers.1.self_attn.{p}.scales");
        let m = format!("model.layers.1.mlp.{p}.scales");
        assert!(
            names.contains(&n) || names.contains(&m),
            "{p} was not quantized"
        );
    }
    assert!(!names.iter().any(|n| n.contains("down_proj.scales")));
    // 4-bit weights stay near the float32 logits.
    let got = logits_of(&model, &r.prompt);
    let range = r.logits.iter().fold(0f32, |m, x| m.max(x.abs()));
    let d = max_abs_diff(&got, &r.logits);
    assert!(d < 0.2 * range, "4-bit logits off by {d} (range {range})");
    let runs: Vec<Vec<u32>> = [Decoding::Eager, Decoding::Fixed, Decoding::Auto]
        .into_iter()
        .map(|decoding| {
            let o = GenerateOptions {
                max_tokens: 10,
                decoding,
                ..Default::default()
            };
            umx_lm::generate(&model, &r.prompt, &o, |_| Ok(true))
                .unwrap()
                .0
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0], runs[2]);
}
