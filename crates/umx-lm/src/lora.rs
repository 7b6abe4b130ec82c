//! LoRA (low-rank adaptation): fine-tuning a frozen model through small trainable matrices
//! beside some of its projections, `y = x W^T + scale * (x A) B`, as mlx-lm's `LoRALinear`.
//!
//! [`apply_lora`] freezes the model and wraps the attention projections of its last layers;
//! only the adapters train. [`save_adapters`] writes just the adapters (with their settings in
//! the file's metadata) and [`load_adapters`] puts them back on a freshly loaded base model;
//! [`fuse_lora`] folds them into the base weights for inference at full speed.

use crate::model::{Llama, Projection};
use std::collections::BTreeMap;
use std::path::Path;
use umx::bail;
use umx::nn::{self, Forward, Module, ModuleExt, Param, Params};
use umx::prelude::*;

/// A frozen linear layer plus a trainable low-rank update: `linear(x) + scale * (dropout(x) A) B`
/// with `A (input_dims, rank)` and `B (rank, output_dims)`. `B` starts at zero, so a new
/// adapter leaves the layer's output unchanged.
#[derive(Clone, Debug, Module)]
pub struct LoRALinear {
    /// The base layer (frozen).
    pub linear: nn::Linear,
    /// `A (input_dims, rank)`.
    pub lora_a: Param,
    /// `B (rank, output_dims)`.
    pub lora_b: Param,
    /// `alpha / rank`.
    pub scale: f64,
    /// Dropout on the adapter's input (active in training mode).
    pub dropout: nn::Dropout,
}

impl LoRALinear {
    /// Wraps `linear` with an adapter of `rank`, scaled by `alpha / rank`, with dropout `p` on
    /// the adapter's input. `A` starts uniform in `±1/sqrt(input_dims)`, `B` at zero, both of
    /// the base weight's dtype.
    pub fn new(linear: nn::Linear, rank: usize, alpha: f64, dropout: f64) -> Result<LoRALinear> {
        let w = &linear.weight.value;
        let (out_dims, in_dims) = (w.dim(0)?, w.dim(1)?);
        if rank == 0 || rank > in_dims.min(out_dims) {
            bail!(
                "LoRALinear: rank {rank} must be in 1..={} for a {in_dims} -> {out_dims} layer",
                in_dims.min(out_dims)
            );
        }
        let bound = 1.0 / (in_dims as f64).sqrt();
        let a = random::uniform(-bound, bound, &[in_dims, rank], w.dtype(), None)?;
        let b = ops::zeros(&[rank, out_dims], w.dtype())?;
        let mut linear = linear;
        linear.freeze(&[]);
        Ok(LoRALinear {
            linear,
            lora_a: Param::new(a),
            lora_b: Param::new(b),
            scale: alpha / rank as f64,
            dropout: nn::Dropout::new(dropout)?,
        })
    }

    /// The adapter's rank.
    pub fn rank(&self) -> usize {
        self.lora_a.shape()[1]
    }

    /// Applies the layer to `x (..., input_dims)`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let y = self.linear.forward(x)?;
        let z = ops::matmul(
            &ops::matmul(&self.dropout.forward(x)?, &self.lora_a)?,
            &self.lora_b,
        )?;
        ops::add(&y, ops::multiply(&z, self.scale)?)
    }

    /// The base layer with the update folded in: `W + scale * (A B)^T`, in `W`'s dtype.
    pub fn fuse(&self) -> Result<nn::Linear> {
        let w = &self.linear.weight.value;
        let delta = ops::transpose(&ops::matmul(&self.lora_a, &self.lora_b)?, [1i64, 0])?;
        let fused = ops::add(
            &w.astype(Dtype::Float32)?,
            ops::multiply(&delta.astype(Dtype::Float32)?, self.scale)?,
        )?
        .astype(w.dtype())?;
        let mut linear = self.linear.clone();
        linear.weight = Param::new(fused);
        linear.unfreeze(&[]);
        Ok(linear)
    }
}

/// Which projections of a layer get adapters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoraTargets {
    /// The query and value projections (the LoRA paper's choice).
    QueryValue,
    /// Query, key, value and output projections.
    Attention,
}

impl LoraTargets {
    fn names(self) -> &'static [&'static str] {
        match self {
            LoraTargets::QueryValue => &["q_proj", "v_proj"],
            LoraTargets::Attention => &["q_proj", "k_proj", "v_proj", "o_proj"],
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            LoraTargets::QueryValue => "qv",
            LoraTargets::Attention => "attention",
        }
    }

    fn parse(s: &str) -> Result<LoraTargets> {
        match s {
            "qv" => Ok(LoraTargets::QueryValue),
            "attention" => Ok(LoraTargets::Attention),
            _ => bail!("lora: targets {s:?} is neither \"qv\" nor \"attention\""),
        }
    }
}

/// The settings of the adapters [`apply_lora`] adds.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    /// The rank of each adapter.
    pub rank: usize,
    /// The update is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Dropout on the adapters' input while training.
    pub dropout: f64,
    /// Adapters go on the last `num_layers` decoder layers.
    pub num_layers: usize,
    /// Which projections of those layers.
    pub targets: LoraTargets,
}

impl Default for LoraConfig {
    /// Rank 8, alpha 16, no dropout, query and value projections of every layer.
    fn default() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            num_layers: usize::MAX,
            targets: LoraTargets::QueryValue,
        }
    }
}

/// Freezes every parameter of `model` and wraps the projections `config` names, in its last
/// `config.num_layers` layers, with trainable adapters. A projection that already has one is
/// an error.
pub fn apply_lora(model: &mut Llama, config: &LoraConfig) -> Result<()> {
    model.freeze(&[]);
    let n = model.model.layers.len();
    let first = n.saturating_sub(config.num_layers);
    for (i, layer) in model.model.layers.iter_mut().enumerate().skip(first) {
        let attn = &mut layer.self_attn;
        for name in config.targets.names() {
            let proj = match *name {
                "q_proj" => &mut attn.q_proj,
                "k_proj" => &mut attn.k_proj,
                "v_proj" => &mut attn.v_proj,
                _ => &mut attn.o_proj,
            };
            let Projection::Linear(base) = proj else {
                bail!("apply_lora: layer {i}'s {name} already has an adapter");
            };
            *proj = Projection::LoRA(LoRALinear::new(
                base.clone(),
                config.rank,
                config.alpha,
                config.dropout,
            )?);
        }
    }
    Ok(())
}

/// The adapters' parameters by dotted name (`model.layers.1.self_attn.q_proj.lora_a`, ...).
pub fn lora_parameters(model: &Llama) -> Params {
    model
        .parameters()
        .into_iter()
        .filter(|(k, _)| k.ends_with(".lora_a") || k.ends_with(".lora_b"))
        .collect()
}

/// Writes the adapters of `model` (only them) to `path` as safetensors, with `config` in the
/// file's metadata so [`load_adapters`] can rebuild them.
pub fn save_adapters(model: &Llama, config: &LoraConfig, path: impl AsRef<Path>) -> Result<()> {
    let params = lora_parameters(model);
    if params.is_empty() {
        bail!("save_adapters: the model has no LoRA adapters");
    }
    let n = model.model.layers.len();
    let meta = BTreeMap::from([
        ("format".to_string(), "umx-lm-lora".to_string()),
        ("lora_rank".to_string(), config.rank.to_string()),
        ("lora_alpha".to_string(), config.alpha.to_string()),
        ("lora_dropout".to_string(), config.dropout.to_string()),
        (
            "lora_layers".to_string(),
            config.num_layers.min(n).to_string(),
        ),
        (
            "lora_targets".to_string(),
            config.targets.as_str().to_string(),
        ),
    ]);
    umx::io::save_safetensors(path, &params, Some(&meta))
}

/// Adds the adapters saved in `path` by [`save_adapters`] to `model` (a base model without
/// adapters, as [`apply_lora`] needs) and returns their settings. Every adapter of those
/// settings must be in the file, with its shape.
pub fn load_adapters(model: &mut Llama, path: impl AsRef<Path>) -> Result<LoraConfig> {
    let path = path.as_ref();
    let file = umx::io::SafeTensors::open(path)?;
    let meta = file.metadata();
    let get = |key: &str| {
        meta.get(key).ok_or_else(|| {
            Error::Invalid(format!(
                "load_adapters: {}: no {key} in the file's metadata (not written by save_adapters?)",
                path.display()
            ))
        })
    };
    let num = |key: &str| -> Result<f64> {
        let v = get(key)?;
        v.parse::<f64>().map_err(|_| {
            Error::Invalid(format!(
                "load_adapters: {}: {key} is {v:?}, not a number",
                path.display()
            ))
        })
    };
    let config = LoraConfig {
        rank: num("lora_rank")? as usize,
        alpha: num("lora_alpha")?,
        dropout: num("lora_dropout")?,
        num_layers: num("lora_layers")? as usize,
        targets: LoraTargets::parse(get("lora_targets")?)?,
    };
    let mut trial = model.clone();
    apply_lora(&mut trial, &config)?;
    let want = lora_parameters(&trial);
    let mut values = Params::new();
    let mut problems = Vec::new();
    for (name, p) in &want {
        match file.info(name) {
            None => problems.push(format!("{name} is missing")),
            Some(info) if info.shape != p.shape() => problems.push(format!(
                "{name} has shape {:?} in the file, the model needs {:?}",
                info.shape,
                p.shape()
            )),
            Some(_) => {
                values.insert(name.clone(), file.get(name)?.astype(p.dtype())?);
            }
        }
    }
    if let Some(extra) = file.names().into_iter().find(|n| !want.contains_key(*n)) {
        problems.push(format!("{extra} is not an adapter of this model"));
    }
    if !problems.is_empty() {
        bail!("load_adapters: {}: {}", path.display(), problems.join("; "));
    }
    trial.update(&values)?;
    eval(&values.values().cloned().collect::<Vec<_>>())?;
    *model = trial;
    Ok(config)
}

/// Folds every adapter of `model` into its base weights (see [`LoRALinear::fuse`]), leaving
/// plain linear projections.
pub fn fuse_lora(model: &mut Llama) -> Result<()> {
    for layer in &mut model.model.layers {
        let a = &mut layer.self_attn;
        for proj in [&mut a.q_proj, &mut a.k_proj, &mut a.v_proj, &mut a.o_proj] {
            if let Projection::LoRA(l) = proj {
                *proj = Projection::Linear(l.fuse()?);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LlamaConfig;
    use crate::max_diff;

    fn tiny() -> Llama {
        random::seed(3);
        Llama::new(&LlamaConfig::new(32, 16, 24, 3, 4, 2).unwrap()).unwrap()
    }

    #[test]
    fn lora_wraps_the_last_layers_and_only_adapters_train() {
        let mut m = tiny();
        let cfg = LoraConfig {
            rank: 2,
            num_layers: 2,
            ..LoraConfig::default()
        };
        apply_lora(&mut m, &cfg).unwrap();
        let names: Vec<String> = m.trainable_parameters().into_keys().collect();
        assert_eq!(names.len(), 2 * 2 * 2);
        assert!(names.iter().all(|n| n.contains(".lora_")));
        assert!(!names.iter().any(|n| n.starts_with("model.layers.0.")));
        assert!(names.contains(&"model.layers.2.self_attn.v_proj.lora_b".to_string()));
        let again = apply_lora(&mut m, &cfg).unwrap_err().to_string();
        assert!(again.contains("already has an adapter"), "{again}");
    }

    #[test]
    fn fusing_an_adapter_keeps_the_output() {
        random::seed(4);
        let mut l = LoRALinear::new(nn::Linear::new(6, 5, true).unwrap(), 2, 4.0, 0.0).unwrap();
        l.lora_b = Param::new(random::normal(&[2, 5], Dtype::Float32, 0.0, 1.0, None).unwrap());
        let x = random::normal(&[3, 6], Dtype::Float32, 0.0, 1.0, None).unwrap();
        let fused = l.fuse().unwrap();
        assert!(max_diff(&l.forward(&x).unwrap(), &fused.forward(&x).unwrap()) < 1e-5);
        assert!(LoRALinear::new(nn::Linear::new(6, 5, true).unwrap(), 6, 1.0, 0.0).is_err());
    }
}
