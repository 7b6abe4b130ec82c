//! Saving and loading the parameters of a umx-nn [`Module`], by dotted name (`layers.0.weight`),
//! as MLX's `Module.save_weights` / `load_weights`. The format follows the file's extension:
//! `.safetensors` or `.npz`.

use crate::{format_error, load_npz, load_safetensors, save_npz, save_safetensors};
use std::path::Path;
use umx_core::{Error, Result};
use umx_nn::{Module, ModuleExt, Params};

/// What [`load_weights`] did: the names it loaded, and those it left alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadedWeights {
    /// Parameters replaced by the file's values.
    pub loaded: Vec<String>,
    /// Parameters of the module the file has no value for.
    pub missing: Vec<String>,
    /// Names in the file the module has no parameter for.
    pub unexpected: Vec<String>,
    /// Names whose shape in the file differs from the module's: `(name, file shape, module shape)`.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

enum Format {
    SafeTensors,
    Npz,
}

fn format_of(path: &Path) -> Result<Format> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => Ok(Format::SafeTensors),
        Some("npz") => Ok(Format::Npz),
        _ => Err(Error::Invalid(format!(
            "weights: {}: the extension must be .safetensors or .npz",
            path.display()
        ))),
    }
}

/// Saves every parameter of `module` (frozen ones too) to `path`, as safetensors or npz by the
/// path's extension.
///
/// ```
/// # umx_cpu::register();
/// use umx_nn::{Linear, ModuleExt};
/// let path = std::env::temp_dir().join(format!("umx-io-doc-weights-{}.safetensors", std::process::id()));
/// let a = Linear::new(3, 2, true)?;
/// umx_io::save_weights(&a, &path)?;
///
/// let mut b = Linear::new(3, 2, true)?; // other random values
/// let report = umx_io::load_weights(&mut b, &path, true)?;
/// assert_eq!(report.loaded, ["bias", "weight"]);
/// assert_eq!(b.parameters()["weight"].to_vec::<f32>()?, a.parameters()["weight"].to_vec::<f32>()?);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn save_weights<M: Module + ?Sized>(module: &M, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let params = module.parameters();
    match format_of(path)? {
        Format::SafeTensors => save_safetensors(path, &params, None),
        Format::Npz => save_npz(path, &params),
    }
}

/// Loads parameter values from `path` (safetensors or npz, by extension) into `module`.
///
/// With `strict`, the file must have exactly the module's parameters, each of its shape;
/// otherwise nothing is changed and the error lists every missing, unexpected and mismatched
/// name. Without it, the values whose names and shapes match are loaded and the rest is left
/// alone; the returned [`LoadedWeights`] tells which was which.
///
/// Values keep the file's dtype (as in MLX); use `ModuleExt::set_dtype` to convert after.
pub fn load_weights<M: Module + ?Sized>(
    module: &mut M,
    path: impl AsRef<Path>,
    strict: bool,
) -> Result<LoadedWeights> {
    let path = path.as_ref();
    let file = match format_of(path)? {
        Format::SafeTensors => load_safetensors(path)?,
        Format::Npz => load_npz(path)?,
    };
    let own = module.parameters();
    let mut report = LoadedWeights::default();
    let mut update = Params::new();
    for (name, value) in &file {
        match own.get(name) {
            None => report.unexpected.push(name.clone()),
            Some(p) if p.shape() != value.shape() => {
                report
                    .mismatched
                    .push((name.clone(), value.shape().to_vec(), p.shape().to_vec()))
            }
            Some(_) => {
                report.loaded.push(name.clone());
                update.insert(name.clone(), value.clone());
            }
        }
    }
    report.missing = own
        .keys()
        .filter(|k| !file.contains_key(*k))
        .cloned()
        .collect();
    if strict
        && !(report.missing.is_empty()
            && report.unexpected.is_empty()
            && report.mismatched.is_empty())
    {
        let mut problems = Vec::new();
        if !report.missing.is_empty() {
            problems.push(format!("missing {:?}", report.missing));
        }
        if !report.unexpected.is_empty() {
            problems.push(format!("unexpected {:?}", report.unexpected));
        }
        for (name, file_shape, own_shape) in &report.mismatched {
            problems.push(format!(
                "{name} has shape {file_shape:?} in the file but {own_shape:?} in the module"
            ));
        }
        return Err(format_error(
            "weights",
            path,
            format!("the file does not fit the module: {}", problems.join("; ")),
        ));
    }
    module.update(&update)?;
    Ok(report)
}
