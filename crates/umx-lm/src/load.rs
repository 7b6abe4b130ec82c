//! Loading a Hugging Face checkpoint directory: `config.json`, and the weights in
//! `model.safetensors` or in shards listed by `model.safetensors.index.json`.

use crate::config::LlamaConfig;
use crate::model::Llama;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use umx::bail;
use umx::io::SafeTensors;
use umx::nn::{ModuleExt, Params};
use umx::prelude::*;

/// A float dtype by the names checkpoints and command lines use: `float32`/`f32`,
/// `bfloat16`/`bf16`, `float16`/`f16`/`half`.
pub fn parse_dtype(name: &str) -> Result<Dtype> {
    match name.to_ascii_lowercase().as_str() {
        "float32" | "f32" | "fp32" => Ok(Dtype::Float32),
        "bfloat16" | "bf16" => Ok(Dtype::Bfloat16),
        "float16" | "f16" | "fp16" | "half" => Ok(Dtype::Float16),
        _ => bail!("dtype {name:?} is not float32, bfloat16 or float16"),
    }
}

/// The safetensors files of a checkpoint directory and which file holds each tensor.
struct Shards {
    files: Vec<SafeTensors>,
    /// Tensor name -> index into `files`.
    index: BTreeMap<String, usize>,
}

impl Shards {
    fn open(dir: &Path) -> Result<Shards> {
        let index_path = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let paths: Vec<PathBuf> = if index_path.exists() {
            shard_names(&index_path)?
                .into_iter()
                .map(|f| dir.join(f))
                .collect()
        } else if single.exists() {
            vec![single]
        } else {
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| Error::Invalid(format!("load: {}: {e}", dir.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect();
            found.sort();
            if found.is_empty() {
                bail!(
                    "load: {}: no model.safetensors, model.safetensors.index.json or other .safetensors file",
                    dir.display()
                );
            }
            found
        };
        let files = paths
            .iter()
            .map(SafeTensors::open)
            .collect::<Result<Vec<_>>>()?;
        let mut index = BTreeMap::new();
        for (i, f) in files.iter().enumerate() {
            for name in f.names() {
                index.insert(name.to_string(), i);
            }
        }
        Ok(Shards { files, index })
    }
}

/// The distinct shard file names of an index's `weight_map`, in order.
fn shard_names(index_path: &Path) -> Result<Vec<String>> {
    let err = |m: String| Error::Invalid(format!("load: {}: {m}", index_path.display()));
    let text = std::fs::read_to_string(index_path).map_err(|e| err(format!("cannot read: {e}")))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    let Some(map) = v.get("weight_map").and_then(|m| m.as_object()) else {
        return Err(err("no weight_map object".into()));
    };
    let mut names: Vec<String> = Vec::new();
    for (tensor, file) in map {
        let Some(f) = file.as_str() else {
            return Err(err(format!("weight_map[{tensor:?}] is not a file name")));
        };
        if f.contains('/') || f.contains('\\') || f.starts_with('.') {
            return Err(err(format!("shard name {f:?} is not a plain file name")));
        }
        if !names.iter().any(|n| n == f) {
            names.push(f.to_string());
        }
    }
    Ok(names)
}

/// Names in a checkpoint that hold no parameter and are skipped.
fn ignorable(name: &str, config: &LlamaConfig) -> bool {
    name.ends_with(".rotary_emb.inv_freq")
        || (config.tie_word_embeddings && name == "lm_head.weight")
}

impl Llama {
    /// Loads a Hugging Face checkpoint directory (`config.json` and safetensors weights, one
    /// file or shards) with every weight converted to `dtype` (float32, bfloat16 or float16).
    ///
    /// The checkpoint must hold every parameter of the model, each of its shape, and nothing
    /// else (rotary tables and a tied `lm_head.weight` aside): otherwise the error lists every
    /// missing, mis-shaped and unknown tensor by name. The weights are evaluated (copied out of
    /// the files and converted) before this returns, and each layer's projections of one input
    /// stacked ([`Llama::stack_projections`]).
    pub fn load(dir: impl AsRef<Path>, dtype: Dtype) -> Result<Llama> {
        let dir = dir.as_ref();
        if !dtype.is_float() {
            bail!("load: dtype must be a float type, not {dtype}");
        }
        let config = LlamaConfig::from_file(dir.join("config.json"))?;
        let mut model = Llama::new(&config)?;
        let shards = Shards::open(dir)?;
        let own = model.parameters();
        let mut problems = Vec::new();
        for (name, p) in &own {
            match shards.index.get(name) {
                None => problems.push(format!("{name} is missing")),
                Some(&i) => {
                    let info = shards.files[i].info(name).map(|t| t.shape.clone());
                    if info.as_deref() != Some(p.shape()) {
                        problems.push(format!(
                            "{name} has shape {:?} in {}, the config needs {:?}",
                            info.unwrap_or_default(),
                            shards.files[i].path().display(),
                            p.shape()
                        ));
                    }
                }
            }
        }
        for name in shards.index.keys() {
            if !own.contains_key(name) && !ignorable(name, &config) {
                problems.push(format!("{name} is not a parameter of a Llama model"));
            }
        }
        if !problems.is_empty() {
            let n = problems.len();
            problems.truncate(20);
            bail!(
                "load: {}: the weights do not fit the config ({n} problems): {}{}",
                dir.display(),
                problems.join("; "),
                if n > 20 { "; ..." } else { "" }
            );
        }
        let mut values = Params::new();
        for name in own.keys() {
            let i = shards.index[name];
            let v = shards.files[i].get(name)?;
            let v = if v.dtype() == dtype {
                v
            } else {
                v.astype(dtype)?
            };
            values.insert(name.clone(), v);
        }
        eval(&values.values().cloned().collect::<Vec<_>>())?;
        model.update(&values)?;
        drop(values);
        model.stack_projections()?;
        Ok(model)
    }
}
