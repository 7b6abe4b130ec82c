//! Random ops: MLX's exact numbers for the same key (tests/reference/random.py records them),
//! statistics of large samples, determinism, and bad input.

mod common;

use common::{kw_f64, kw_i64, kw_i64s, kw_str};
use serde_json::Value;
use umx::prelude::*;

fn kw_dtype(kw: &Value) -> Option<Dtype> {
    kw_str(kw, "dtype").map(|d| Dtype::from_name(d).expect("known dtype"))
}

fn kw_shape(kw: &Value) -> Option<Vec<usize>> {
    kw_i64s(kw, "shape").map(|s| s.into_iter().map(|d| d as usize).collect())
}

fn run(name: &str, args: &[Array], kw: &Value) -> Result<Vec<Array>> {
    let key = args.first();
    let shape = kw_shape(kw).unwrap_or_default();
    let dtype = kw_dtype(kw);
    let param = |i: usize, k: &str, default: f64| -> Array {
        match args.get(i) {
            Some(a) => a.clone(),
            None => Array::weak_float(kw_f64(kw, k).unwrap_or(default)),
        }
    };
    let out = match name {
        "key" => random::key(kw.get("seed").and_then(Value::as_u64).unwrap())?,
        "split" => random::split(&args[0], kw_i64(kw, "num").unwrap() as usize)?,
        "uniform" => random::uniform(
            param(1, "low", 0.0),
            param(2, "high", 1.0),
            &shape,
            dtype,
            key,
        )?,
        "normal" => random::normal(
            &shape,
            dtype,
            param(1, "loc", 0.0),
            param(2, "scale", 1.0),
            key,
        )?,
        "randint" => {
            let int_param = |i: usize, k: &str| match args.get(i) {
                Some(a) => a.clone(),
                None => Array::weak_int(kw_i64(kw, k).unwrap()),
            };
            random::randint(
                int_param(1, "low"),
                int_param(2, "high"),
                &shape,
                dtype,
                key,
            )?
        }
        "bernoulli" => {
            let s = kw_shape(kw);
            random::bernoulli(param(1, "p", 0.5), s.as_deref(), key)?
        }
        "gumbel" => random::gumbel(&shape, dtype, key)?,
        "laplace" => random::laplace(
            &shape,
            dtype,
            kw_f64(kw, "loc").unwrap_or(0.0),
            kw_f64(kw, "scale").unwrap_or(1.0),
            key,
        )?,
        "truncated_normal" => {
            let s = kw_shape(kw);
            random::truncated_normal(
                param(1, "lower", -2.0),
                param(2, "upper", 2.0),
                s.as_deref(),
                dtype,
                key,
            )?
        }
        other => panic!("unknown op {other}"),
    };
    Ok(vec![out])
}

#[test]
fn random_matches_mlx_for_the_same_key() {
    let n = common::run_reference("random", &run);
    assert!(n > 200);
}
