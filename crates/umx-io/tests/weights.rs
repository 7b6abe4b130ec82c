//! Module weights: a model saved and loaded into a fresh one computes the same thing; strict
//! loading refuses files that do not fit, non-strict loading takes what fits.
#![cfg(feature = "nn")]

mod common;

use common::{TempDir, assert_err_mentions, assert_same};
use umx_core::{Array, Dtype, Result, ops};
use umx_io::{LoadedWeights, load_safetensors, load_weights, save_safetensors, save_weights};
use umx_nn::{Linear, Module, ModuleExt, Params};

#[derive(Module, Clone)]
#[module(crate = "umx_nn")]
struct Mlp {
    input: Linear,
    hidden: Vec<Linear>,
    scale: f32,
}

impl Mlp {
    fn new(widths: &[usize]) -> Result<Mlp> {
        Ok(Mlp {
            input: Linear::new(3, widths[0], true)?,
            hidden: widths
                .windows(2)
                .map(|w| Linear::new(w[0], w[1], true))
                .collect::<Result<_>>()?,
            scale: 1.0,
        })
    }

    fn forward(&self, x: &Array) -> Result<Array> {
        let mut h = self.input.forward(x)?;
        for l in &self.hidden {
            h = l.forward(&ops::maximum(&h, 0.0f32)?)?;
        }
        Ok(h)
    }
}

fn input() -> Array {
    Array::from_slice(&[0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75], &[2, 3]).unwrap()
}

#[test]
fn a_saved_model_loads_into_a_fresh_one_and_computes_the_same() {
    umx_cpu::register();
    let dir = TempDir::new("weights");
    let model = Mlp::new(&[8, 8, 2]).unwrap();
    for file in ["mlp.safetensors", "mlp.npz"] {
        let path = dir.path(file);
        save_weights(&model, &path).unwrap();
        let mut fresh = Mlp::new(&[8, 8, 2]).unwrap();
        assert_ne!(
            fresh.forward(&input()).unwrap().to_vec::<f32>().unwrap(),
            model.forward(&input()).unwrap().to_vec::<f32>().unwrap()
        );
        let report = load_weights(&mut fresh, &path, true).unwrap();
        assert_eq!(
            report.loaded,
            [
                "hidden.0.bias",
                "hidden.0.weight",
                "hidden.1.bias",
                "hidden.1.weight",
                "input.bias",
                "input.weight"
            ]
        );
        assert!(report.missing.is_empty() && report.unexpected.is_empty());
        for (name, p) in model.parameters() {
            assert_same(&p, &fresh.parameters()[&name], &name);
        }
        assert_same(
            &model.forward(&input()).unwrap(),
            &fresh.forward(&input()).unwrap(),
            file,
        );
    }
}

#[test]
fn frozen_parameters_are_saved_too() {
    umx_cpu::register();
    let dir = TempDir::new("frozen");
    let mut model = Mlp::new(&[4, 2]).unwrap();
    model.freeze(&["input"]);
    let path = dir.path("m.safetensors");
    save_weights(&model, &path).unwrap();
    let saved = load_safetensors(&path).unwrap();
    assert!(saved.contains_key("input.weight") && saved.contains_key("hidden.0.weight"));
}

#[test]
fn strict_loading_refuses_missing_unexpected_and_misshapen_weights_and_changes_nothing() {
    umx_cpu::register();
    let dir = TempDir::new("strict");
    let path = dir.path("m.safetensors");
    let model = Mlp::new(&[8, 8, 2]).unwrap();
    let mut params: Params = model.parameters();
    params.remove("input.bias");
    params.insert("extra.weight".into(), Array::scalar(1.0f32));
    params.insert("hidden.1.weight".into(), ops::zeros(&[3, 8], None).unwrap());
    save_safetensors(&path, &params, None).unwrap();

    let mut target = Mlp::new(&[8, 8, 2]).unwrap();
    let before = target.parameters();
    assert_err_mentions(
        load_weights(&mut target, &path, true),
        &[
            "weights: ",
            "missing [\"input.bias\"]",
            "unexpected [\"extra.weight\"]",
            "hidden.1.weight has shape [3, 8] in the file but [2, 8] in the module",
        ],
    );
    for (name, p) in &before {
        assert!(p.same(&target.parameters()[name]), "{name} changed");
    }

    // Not strict: what fits is loaded, and the report says what was left.
    let report = load_weights(&mut target, &path, false).unwrap();
    assert_eq!(
        report,
        LoadedWeights {
            loaded: vec![
                "hidden.0.bias".into(),
                "hidden.0.weight".into(),
                "hidden.1.bias".into(),
                "input.weight".into()
            ],
            missing: vec!["input.bias".into()],
            unexpected: vec!["extra.weight".into()],
            mismatched: vec![("hidden.1.weight".into(), vec![3, 8], vec![2, 8])],
        }
    );
    assert_same(
        &params["input.weight"],
        &target.parameters()["input.weight"],
        "loaded",
    );
    assert!(before["input.bias"].same(&target.parameters()["input.bias"]));
    assert!(before["hidden.1.weight"].same(&target.parameters()["hidden.1.weight"]));
}

#[test]
fn loaded_weights_keep_the_files_dtype() {
    umx_cpu::register();
    let dir = TempDir::new("dtype");
    let path = dir.path("m.safetensors");
    let mut model = Mlp::new(&[4, 2]).unwrap();
    model.set_dtype(Dtype::Float16).unwrap();
    save_weights(&model, &path).unwrap();
    let mut fresh = Mlp::new(&[4, 2]).unwrap();
    load_weights(&mut fresh, &path, true).unwrap();
    assert_eq!(fresh.parameters()["input.weight"].dtype(), Dtype::Float16);
}

#[test]
fn weights_files_need_a_known_extension() {
    umx_cpu::register();
    let dir = TempDir::new("ext");
    let mut model = Mlp::new(&[4, 2]).unwrap();
    assert_err_mentions(
        save_weights(&model, dir.path("m.bin")),
        &["weights", "m.bin", ".safetensors or .npz"],
    );
    assert_err_mentions(
        load_weights(&mut model, dir.path("m"), true),
        &[".safetensors or .npz"],
    );
}
