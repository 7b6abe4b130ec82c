//! Convolutions against MLX's values (tests/reference/conv.py records them).

use crate::common;

use common::{kw_bool, kw_i64, kw_i64s};
use serde_json::Value;
use umx::prelude::*;

fn per_axis(kw: &Value, key: &str) -> Vec<usize> {
    match kw_i64s(kw, key) {
        Some(v) => v.into_iter().map(|d| d as usize).collect(),
        None => vec![kw_i64(kw, key).unwrap() as usize],
    }
}

fn run(name: &str, a: &[Array], kw: &Value) -> Result<Vec<Array>> {
    let (x, w) = (&a[0], &a[1]);
    let one = |k: &str| kw_i64(kw, k).unwrap() as usize;
    let groups = kw_i64(kw, "groups").unwrap_or(1) as usize;
    let out = match name {
        "conv1d" => ops::conv1d(x, w, one("stride"), one("padding"), one("dilation"), groups)?,
        "conv2d" => ops::conv2d(
            x,
            w,
            per_axis(kw, "stride"),
            per_axis(kw, "padding"),
            per_axis(kw, "dilation"),
            groups,
        )?,
        "conv3d" => ops::conv3d(
            x,
            w,
            per_axis(kw, "stride"),
            per_axis(kw, "padding"),
            per_axis(kw, "dilation"),
            groups,
        )?,
        "conv_general" => ops::conv_general(
            x,
            w,
            one("stride"),
            (vec![one("lo")], vec![one("hi")]),
            one("kernel_dilation"),
            one("input_dilation"),
            1,
            kw_bool(kw, "flip").unwrap(),
        )?,
        "conv_transpose1d" => ops::conv_transpose1d(
            x,
            w,
            one("stride"),
            one("padding"),
            one("dilation"),
            one("output_padding"),
            1,
        )?,
        "conv_transpose2d" => ops::conv_transpose2d(
            x,
            w,
            per_axis(kw, "stride"),
            per_axis(kw, "padding"),
            per_axis(kw, "dilation"),
            per_axis(kw, "output_padding"),
            1,
        )?,
        "conv_transpose3d" => ops::conv_transpose3d(
            x,
            w,
            per_axis(kw, "stride"),
            per_axis(kw, "padding"),
            per_axis(kw, "dilation"),
            per_axis(kw, "output_padding"),
            1,
        )?,
        other => panic!("unknown op {other}"),
    };
    Ok(vec![out])
}

#[test]
fn convolutions_match_mlx() {
    assert!(common::run_reference("conv", &run) >= 14);
}
