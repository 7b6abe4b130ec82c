//! umx-nn and umx-optim against mlx.nn / mlx.optimizers (tests/reference/nn.py records the
//! values): activations, losses, layers with given weights, optimizer steps; plus module
//! behaviour (parameter trees, freezing, update, the derive macro) and training.

use crate::common;

use common::{kw_f64, kw_str};
use serde_json::Value;
use umx::nn::losses::{self, Reduction};
use umx::nn::{self, Forward, Module, ModuleExt, Param, Params};
use umx::optim::{self, Optimizer, Rule};
use umx::prelude::*;

fn reduction(kw: &Value) -> Reduction {
    match kw_str(kw, "reduction") {
        Some("mean") => Reduction::Mean,
        Some("sum") => Reduction::Sum,
        _ => Reduction::None,
    }
}

fn param(a: &Array) -> Param {
    Param::new(a.clone())
}

fn steps(rule: impl Rule, lr: f64, args: &[Array]) -> Result<Array> {
    let mut opt = Optimizer::new(rule, lr);
    let mut p = Params::new();
    p.insert("w".into(), args[0].clone());
    for g in &args[1..] {
        let mut grads = Params::new();
        grads.insert("w".into(), g.clone());
        p = opt.apply_gradients(&grads, &p)?;
    }
    Ok(p["w"].clone())
}

fn run(name: &str, a: &[Array], kw: &Value) -> Result<Vec<Array>> {
    let x = &a[0];
    let f = |k: &str| kw_f64(kw, k).unwrap();
    let red = reduction(kw);
    let out = match name {
        "relu" => nn::relu(x)?,
        "relu2" => nn::relu2(x)?,
        "relu6" => nn::relu6(x)?,
        "selu" => nn::selu(x)?,
        "gelu" => nn::gelu(x)?,
        "gelu_approx" => nn::gelu_approx(x)?,
        "gelu_fast_approx" => nn::gelu_fast_approx(x)?,
        "silu" => nn::silu(x)?,
        "softplus" => nn::softplus(x)?,
        "softsign" => nn::softsign(x)?,
        "mish" => nn::mish(x)?,
        "hardswish" => nn::hardswish(x)?,
        "log_sigmoid" => nn::log_sigmoid(x)?,
        "log_softmax" => nn::log_softmax(x, -1)?,
        "softmax" => nn::softmax(x, -1)?,
        "softmin" => nn::softmin(x, -1)?,
        "sigmoid" => ops::sigmoid(x)?,
        "tanh" => ops::tanh(x)?,
        "leaky_relu" => nn::leaky_relu(x, f("slope"))?,
        "elu" => nn::elu(x, f("alpha"))?,
        "celu" => nn::celu(x, f("alpha"))?,
        "hard_tanh" => nn::hard_tanh(x, f("min"), f("max"))?,
        "hard_shrink" => nn::hard_shrink(x, f("lambd"))?,
        "softshrink" => nn::softshrink(x, f("lambd"))?,
        "glu" => nn::glu(x, -1)?,
        "step" => nn::step(x, f("threshold"))?,
        "prelu" => nn::prelu(x, &a[1])?,
        "cross_entropy" => losses::cross_entropy(
            x,
            &a[1],
            a.get(2),
            -1,
            kw_f64(kw, "label_smoothing").unwrap_or(0.0),
            red,
        )?,
        "binary_cross_entropy" => {
            losses::binary_cross_entropy(x, &a[1], None, kw["with_logits"].as_bool().unwrap(), red)?
        }
        "l1_loss" => losses::l1_loss(x, &a[1], red)?,
        "mse_loss" => losses::mse_loss(x, &a[1], red)?,
        "nll_loss" => losses::nll_loss(x, &a[1], -1, red)?,
        "gaussian_nll_loss" => losses::gaussian_nll_loss(x, &a[1], &a[2], true, 1e-6, red)?,
        "kl_div_loss" => losses::kl_div_loss(x, &a[1], -1, red)?,
        "smooth_l1_loss" => losses::smooth_l1_loss(x, &a[1], f("beta"), red)?,
        "triplet_loss" => losses::triplet_loss(x, &a[1], &a[2], -1, 2.0, f("margin"), 1e-6, red)?,
        "hinge_loss" => losses::hinge_loss(x, &a[1], red)?,
        "huber_loss" => losses::huber_loss(x, &a[1], f("delta"), red)?,
        "log_cosh_loss" => losses::log_cosh_loss(x, &a[1], red)?,
        "cosine_similarity_loss" => losses::cosine_similarity_loss(x, &a[1], 1, 1e-8, red)?,
        "margin_ranking_loss" => losses::margin_ranking_loss(x, &a[1], &a[2], f("margin"), red)?,
        "linear" => nn::Linear {
            weight: param(&a[1]),
            bias: Some(param(&a[2])),
            quantized: None,
        }
        .forward(x)?,
        "linear_nobias" => nn::Linear {
            weight: param(&a[1]),
            bias: None,
            quantized: None,
        }
        .forward(x)?,
        "bilinear" => nn::Bilinear {
            weight: param(&a[2]),
            bias: Some(param(&a[3])),
        }
        .forward(x, &a[1])?,
        "layer_norm" => nn::LayerNorm {
            weight: Some(param(&a[1])),
            bias: Some(param(&a[2])),
            eps: f("eps"),
        }
        .forward(x)?,
        "rms_norm" => nn::RMSNorm {
            weight: param(&a[1]),
            eps: f("eps"),
        }
        .forward(x)?,
        "group_norm" => nn::GroupNorm {
            weight: Some(param(&a[1])),
            bias: Some(param(&a[2])),
            num_groups: kw["groups"].as_u64().unwrap() as usize,
            eps: f("eps"),
        }
        .forward(x)?,
        "instance_norm" => nn::InstanceNorm {
            weight: Some(param(&a[1])),
            bias: Some(param(&a[2])),
            eps: f("eps"),
        }
        .forward(x)?,
        "batch_norm_train" | "batch_norm_eval" => {
            let mut bn = nn::BatchNorm::new(x.dim(-1)?, f("eps"), 0.1, true, true)?;
            bn.weight = Some(param(&a[1]));
            bn.bias = Some(param(&a[2]));
            if name == "batch_norm_eval" {
                bn.running_mean = Some(Param::frozen(a[3].clone()));
                bn.running_var = Some(Param::frozen(a[4].clone()));
                bn.eval();
            }
            bn.forward(x)?
        }
        "embedding" => nn::Embedding {
            weight: param(&a[1]),
            quantized: None,
        }
        .forward(x)?,
        "conv1d_layer" => nn::Conv1d {
            weight: param(&a[1]),
            bias: Some(param(&a[2])),
            stride: [2],
            padding: [1],
            dilation: [1],
            groups: 1,
        }
        .forward(x)?,
        "conv2d_layer" => nn::Conv2d {
            weight: param(&a[1]),
            bias: Some(param(&a[2])),
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
            groups: 2,
        }
        .forward(x)?,
        "conv_transpose2d_layer" => nn::ConvTranspose2d {
            weight: param(&a[1]),
            bias: Some(param(&a[2])),
            stride: [2, 2],
            padding: [1, 1],
            dilation: [1, 1],
            output_padding: [0, 0],
        }
        .forward(x)?,
        "max_pool2d" => nn::Pool2d::max([2, 2], Some([1, 1]), [1, 1]).forward(x)?,
        "avg_pool1d" => nn::Pool1d::avg([3], Some([2]), [0]).forward(x)?,
        "rope" => nn::RoPE::new(
            kw["dims"].as_u64().unwrap() as usize,
            kw["traditional"].as_bool().unwrap(),
            f("base"),
            1.0,
        )?
        .forward_at(x, kw["offset"].as_u64().unwrap() as usize)?,
        "sinusoidal" => {
            nn::SinusoidalPositionalEncoding::new(8, 0.0001, 1.0, None, false, false)?.forward(x)?
        }
        "alibi" => nn::ALiBi.forward_scores(x, kw["offset"].as_u64().unwrap() as usize, None)?,
        "rnn" => nn::RNN {
            Wxh: param(&a[1]),
            Whh: param(&a[2]),
            bias: Some(param(&a[3])),
        }
        .forward(x, None)?,
        "gru" => nn::GRU {
            Wx: param(&a[1]),
            Wh: param(&a[2]),
            b: Some(param(&a[3])),
            bhn: Some(param(&a[4])),
        }
        .forward(x, None)?,
        "lstm" => {
            let (h, c) = nn::LSTM {
                Wx: param(&a[1]),
                Wh: param(&a[2]),
                bias: Some(param(&a[3])),
            }
            .forward(x, None, None)?;
            return Ok(vec![h, c]);
        }
        "mha" | "mha_masked" => {
            let lin = |w: &Array| nn::Linear {
                weight: param(w),
                bias: None,
                quantized: None,
            };
            let m = nn::MultiHeadAttention {
                query_proj: lin(&a[2]),
                key_proj: lin(&a[3]),
                value_proj: lin(&a[4]),
                out_proj: lin(&a[5]),
                num_heads: 2,
            };
            if name == "mha" {
                m.forward(x, &a[1], &a[1], None)?
            } else {
                m.forward(x, x, x, Some(&a[1]))?
            }
        }
        "encoder_layer" => {
            let lin = |w: &Array, b: Option<&Array>| nn::Linear {
                weight: param(w),
                bias: b.map(param),
                quantized: None,
            };
            let ln = |w: &Array, b: &Array| nn::LayerNorm {
                weight: Some(param(w)),
                bias: Some(param(b)),
                eps: 1e-5,
            };
            let mut layer = nn::TransformerEncoderLayer::new(
                8,
                2,
                Some(16),
                0.0,
                kw["norm_first"].as_bool().unwrap(),
            )?;
            layer.attention = nn::MultiHeadAttention {
                query_proj: lin(&a[2], None),
                key_proj: lin(&a[3], None),
                value_proj: lin(&a[4], None),
                out_proj: lin(&a[5], None),
                num_heads: 2,
            };
            layer.ln1 = ln(&a[6], &a[7]);
            layer.ln2 = ln(&a[8], &a[9]);
            layer.linear1 = lin(&a[10], Some(&a[11]));
            layer.linear2 = lin(&a[12], Some(&a[13]));
            layer.forward(x, Some(&a[1]))?
        }
        "upsample" => {
            let mode = match kw_str(kw, "mode").unwrap() {
                "nearest" => nn::UpsampleMode::Nearest,
                "linear" => nn::UpsampleMode::Linear,
                _ => nn::UpsampleMode::Cubic,
            };
            let scale: Vec<f64> = kw["scale"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            nn::Upsample::new(scale, mode, kw["align_corners"].as_bool().unwrap())?.forward(x)?
        }
        "optimizer" => {
            let lr_of = |n: &str| match n {
                "sgd" | "sgd_momentum" | "sgd_nesterov" | "adagrad" => 0.1,
                "adadelta" => 1.0,
                _ => 0.01,
            };
            let n = kw_str(kw, "name").unwrap();
            let lr = lr_of(n);
            match n {
                "sgd" => steps(optim::Sgd::default(), lr, a)?,
                "sgd_momentum" => steps(
                    optim::Sgd {
                        momentum: 0.9,
                        weight_decay: 0.01,
                        dampening: 0.1,
                        nesterov: false,
                    },
                    lr,
                    a,
                )?,
                "sgd_nesterov" => steps(
                    optim::Sgd {
                        momentum: 0.9,
                        nesterov: true,
                        ..Default::default()
                    },
                    lr,
                    a,
                )?,
                "rmsprop" => steps(optim::RmsProp::default(), lr, a)?,
                "adagrad" => steps(optim::Adagrad::default(), lr, a)?,
                "adadelta" => steps(optim::AdaDelta::default(), lr, a)?,
                "adam" => steps(optim::Adam::default(), lr, a)?,
                "adam_bias_correction" => steps(
                    optim::Adam {
                        bias_correction: true,
                        ..Default::default()
                    },
                    lr,
                    a,
                )?,
                "adamw" => steps(
                    optim::AdamW {
                        weight_decay: 0.1,
                        ..Default::default()
                    },
                    lr,
                    a,
                )?,
                "adamax" => steps(optim::Adamax::default(), lr, a)?,
                "lion" => steps(
                    optim::Lion {
                        weight_decay: 0.1,
                        ..Default::default()
                    },
                    lr,
                    a,
                )?,
                "adafactor" => steps(optim::Adafactor::default(), 0.0, a)?,
                "adafactor_lr_beta1" => steps(
                    optim::Adafactor {
                        relative_step: false,
                        beta_1: Some(0.9),
                        weight_decay: 0.1,
                        ..Default::default()
                    },
                    0.01,
                    a,
                )?,
                "muon" => steps(optim::Muon::default(), lr, a)?,
                other => panic!("unknown optimizer {other}"),
            }
        }
        other => panic!("unknown op {other}"),
    };
    Ok(vec![out])
}

#[test]
fn nn_and_optimizers_match_mlx() {
    let n = common::run_reference("nn", &run);
    assert!(n >= 60);
}

#[derive(Module, Clone)]
struct Block {
    norm: nn::LayerNorm,
    proj: nn::Linear,
    #[module(skip)]
    label: &'static str,
}

#[derive(Module, Clone)]
struct Net {
    blocks: Vec<Block>,
    head: nn::Linear,
    scale: f32,
}

fn net() -> Net {
    let block = || Block {
        norm: nn::LayerNorm::new(4, 1e-5, true, true).unwrap(),
        proj: nn::Linear::new(4, 4, true).unwrap(),
        label: "block",
    };
    Net {
        blocks: vec![block(), block()],
        head: nn::Linear::new(4, 2, false).unwrap(),
        scale: 1.0,
    }
}

#[test]
fn derived_modules_name_their_parameters_by_path() {
    let m = net();
    let names: Vec<String> = m.parameters().into_keys().collect();
    assert_eq!(
        names,
        [
            "blocks.0.norm.bias",
            "blocks.0.norm.weight",
            "blocks.0.proj.bias",
            "blocks.0.proj.weight",
            "blocks.1.norm.bias",
            "blocks.1.norm.weight",
            "blocks.1.proj.bias",
            "blocks.1.proj.weight",
            "head.weight",
        ]
    );
    assert_eq!(m.num_parameters(), 2 * (4 + 4 + 4 + 16) + 8);
    assert_eq!(m.blocks[1].label, "block");
}

#[test]
fn freezing_leaves_parameters_out_of_training() {
    let mut m = net();
    m.freeze(&["blocks.0", "head"]);
    let t: Vec<String> = m.trainable_parameters().into_keys().collect();
    assert_eq!(
        t,
        [
            "blocks.1.norm.bias",
            "blocks.1.norm.weight",
            "blocks.1.proj.bias",
            "blocks.1.proj.weight"
        ]
    );
    m.unfreeze(&[]);
    assert_eq!(m.trainable_parameters().len(), 9);
}

#[test]
fn update_replaces_by_name_and_rejects_unknown_names_and_shapes() {
    let mut m = net();
    let mut p = Params::new();
    p.insert("head.weight".into(), ops::zeros(&[2, 4], None).unwrap());
    m.update(&p).unwrap();
    assert_eq!(m.head.weight.to_vec::<f32>().unwrap(), vec![0.0; 8]);
    p.insert("head.bias".into(), ops::zeros(&[2], None).unwrap());
    let e = m.update(&p).unwrap_err().to_string();
    assert!(e.contains("head.bias"), "{e}");
    let mut bad = Params::new();
    bad.insert("head.weight".into(), ops::zeros(&[3, 4], None).unwrap());
    assert!(
        m.update(&bad)
            .unwrap_err()
            .to_string()
            .starts_with("update:")
    );
}

#[test]
fn set_dtype_converts_float_parameters() {
    let mut m = net();
    m.set_dtype(Dtype::Float16).unwrap();
    assert!(m.parameters().values().all(|p| p.dtype() == Dtype::Float16));
}

#[test]
fn dropout_is_active_only_in_training() {
    let mut d = nn::Dropout::new(0.5).unwrap();
    let x = ops::ones(&[10_000], None).unwrap();
    let y = d.forward(&x).unwrap().to_vec::<f32>().unwrap();
    let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / 10_000.0;
    assert!((kept - 0.5).abs() < 0.03, "{kept}");
    assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
    d.eval();
    assert_eq!(
        d.forward(&x).unwrap().to_vec::<f32>().unwrap(),
        vec![1.0; 10_000]
    );
}

#[test]
fn optimizer_state_round_trips() {
    let mut opt = Optimizer::new(optim::Adam::default(), 0.01);
    let mut p = Params::new();
    p.insert("w".into(), ops::ones(&[3], None).unwrap());
    let mut g = Params::new();
    g.insert("w".into(), ops::full(&[3], 0.5, Dtype::Float32).unwrap());
    let p1 = opt.apply_gradients(&g, &p).unwrap();
    let state = opt.state().unwrap();
    assert_eq!(state.keys().collect::<Vec<_>>(), ["step", "w.m", "w.v"]);
    let mut other = Optimizer::new(optim::Adam::default(), 0.01);
    other.set_state(&state).unwrap();
    let a = opt.apply_gradients(&g, &p1).unwrap();
    let b = other.apply_gradients(&g, &p1).unwrap();
    assert_eq!(
        a["w"].to_vec::<f32>().unwrap(),
        b["w"].to_vec::<f32>().unwrap()
    );
}

#[test]
fn schedules_follow_mlx() {
    let c = optim::schedules::cosine_decay(1.0, 10, 0.1);
    assert!((c.at(0) - 1.0).abs() < 1e-12 && (c.at(10) - 0.1).abs() < 1e-12);
    assert!((c.at(5) - 0.55).abs() < 1e-12);
    let warm = optim::schedules::linear_schedule(0.0, 1.0, 4);
    let j = optim::schedules::join_schedules(vec![warm, c], vec![4]);
    assert_eq!((j.at(2), j.at(4)), (0.5, 1.0));
    assert_eq!(optim::schedules::step_decay(1.0, 0.5, 3).at(7), 0.25);
    assert!((optim::schedules::exponential_decay(1.0, 0.9).at(2) - 0.81).abs() < 1e-12);
}

#[test]
fn clip_grad_norm_scales_to_the_max_norm() {
    let mut g = Params::new();
    g.insert("a".into(), Array::from_slice(&[3.0f32], &[1]).unwrap());
    g.insert("b".into(), Array::from_slice(&[4.0f32], &[1]).unwrap());
    let (c, n) = optim::clip_grad_norm(&g, 1.0).unwrap();
    assert!((n.item::<f32>().unwrap() - 5.0).abs() < 1e-6);
    assert!((c["a"].item::<f32>().unwrap() - 0.6).abs() < 1e-5);
}

#[test]
fn an_mlp_trains_with_adamw_through_value_and_grad() {
    // XOR-like data: the label is whether x0 and x1 have the same sign.
    random::seed(3);
    let x = random::uniform(-1.0, 1.0, &[256, 2], None, None).unwrap();
    let cols = ops::split(&x, 2usize, 1).unwrap();
    let y = ops::astype(
        &ops::reshape(
            &ops::greater(ops::multiply(&cols[0], &cols[1]).unwrap(), 0.0).unwrap(),
            &[-1],
        )
        .unwrap(),
        Dtype::Int32,
    )
    .unwrap();
    let mut model = nn::Sequential::new()
        .push(nn::Linear::new(2, 32, true).unwrap())
        .push(nn::ReLU)
        .push(nn::Linear::new(32, 2, true).unwrap());
    let loss = |m: &nn::Sequential, (x, y): (&Array, &Array)| {
        losses::cross_entropy(&m.forward(x)?, y, None, -1, 0.0, Reduction::Mean)
    };
    let vg = nn::value_and_grad(loss);
    let mut opt = Optimizer::new(optim::AdamW::default(), 0.02);
    let first = vg(&model, (&x, &y)).unwrap().0.item::<f32>().unwrap();
    let mut last = first;
    for _ in 0..300 {
        let (l, grads) = vg(&model, (&x, &y)).unwrap();
        opt.update(&mut model, &grads).unwrap();
        let mut all: Vec<Array> = model.parameters().into_values().collect();
        all.push(l.clone());
        eval(&all).unwrap();
        last = l.item::<f32>().unwrap();
    }
    let pred = ops::argmax(&model.forward(&x).unwrap(), Some(-1), false).unwrap();
    let acc = ops::mean(
        &ops::equal(pred.astype(Dtype::Int32).unwrap(), &y).unwrap(),
        None,
        false,
    )
    .unwrap()
    .item::<f32>()
    .unwrap();
    eprintln!("XOR MLP: loss {first} -> {last}, accuracy {acc}");
    assert!(last < 0.15, "{first} -> {last}");
    assert!(acc > 0.95, "{acc}");
}

/// (mean, std) of an array's elements.
fn moments(a: &Array) -> (f64, f64) {
    let v = a.to_vec::<f64>().unwrap();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn initializers_have_mlx_statistics() {
    use umx::nn::init::{self, FanMode};
    random::seed(5);
    // (fan_out, receptive..., fan_in) as MLX computes fans: shape[0] and shape[-1].
    let shape = [256, 3, 512];
    let (fan_in, fan_out): (f64, f64) = (512.0 * 3.0, 256.0 * 3.0);
    let check = |a: Array, mean: f64, std: f64| {
        let (m, s) = moments(&a);
        assert!((m - mean).abs() < 0.01 * std.max(1.0), "mean {m} vs {mean}");
        assert!((s / std - 1.0).abs() < 0.02, "std {s} vs {std}");
    };
    check(
        init::glorot_normal(&shape, 1.5).unwrap(),
        0.0,
        1.5 * (2.0 / (fan_in + fan_out)).sqrt(),
    );
    let lim = (6.0 / (fan_in + fan_out)).sqrt();
    check(
        init::glorot_uniform(&shape, 1.0).unwrap(),
        0.0,
        lim / 3f64.sqrt(),
    );
    check(
        init::he_normal(&shape, FanMode::FanIn, 1.0).unwrap(),
        0.0,
        1.0 / fan_in.sqrt(),
    );
    check(
        init::he_normal(&shape, FanMode::FanOut, 2.0).unwrap(),
        0.0,
        2.0 / fan_out.sqrt(),
    );
    let lim = (3.0 / fan_in).sqrt();
    check(
        init::he_uniform(&shape, FanMode::FanIn, 1.0).unwrap(),
        0.0,
        lim / 3f64.sqrt(),
    );
    check(init::normal(&[100_000], 2.0, 0.5).unwrap(), 2.0, 0.5);
    check(
        init::uniform(&[100_000], -1.0, 3.0).unwrap(),
        1.0,
        4.0 / 12f64.sqrt(),
    );
    assert_eq!(
        moments(&init::constant(&[4, 4], 0.25).unwrap()),
        (0.25, 0.0)
    );
    assert_eq!(
        init::identity(&[3, 3]).unwrap().to_vec::<f32>().unwrap(),
        ops::eye(3, None, 0, None).unwrap().to_vec::<f32>().unwrap()
    );
    let sp = init::sparse(&[10, 400], 0.3, 0.0, 1.0)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    // ceil(0.3 * 10) = 3 zeros in each column.
    for c in 0..400 {
        assert_eq!((0..10).filter(|r| sp[r * 400 + c] == 0.0).count(), 3);
    }
    assert!(
        init::glorot_normal(&[5], 1.0)
            .unwrap_err()
            .to_string()
            .contains("glorot_normal")
    );
}

#[test]
fn orthogonal_initializer_is_orthogonal_and_uniform_in_sign() {
    use umx::nn::init;
    random::seed(11);
    for (rows, cols) in [(4, 4), (3, 7), (7, 3), (1, 5)] {
        let gain = 1.5;
        let q = init::orthogonal(&[rows, cols], gain).unwrap();
        assert_eq!(q.shape(), &[rows, cols]);
        assert_eq!(q.dtype(), Dtype::Float32);
        // The short side's vectors are orthonormal, times the gain.
        let g = if rows <= cols {
            ops::matmul(&q, &q.t().unwrap()).unwrap()
        } else {
            ops::matmul(&q.t().unwrap(), &q).unwrap()
        };
        let k = rows.min(cols);
        let g = g.to_vec::<f64>().unwrap();
        for i in 0..k {
            for j in 0..k {
                let want = if i == j { gain * gain } else { 0.0 };
                assert!(
                    (g[i * k + j] - want).abs() < 1e-5,
                    "{rows}x{cols} ({i}, {j}): {}",
                    g[i * k + j]
                );
            }
        }
    }
    // The sign correction makes Q Haar-distributed: its diagonal is not biased to one sign
    // (an unadjusted Householder QR gives a diagonal mostly of one sign).
    let mut positive = 0;
    for _ in 0..200 {
        let q = init::orthogonal(&[2, 2], 1.0)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        positive += (q[0] > 0.0) as usize;
    }
    assert!((60..140).contains(&positive), "{positive} of 200 positive");
    for bad in [&[5][..], &[2, 3, 4][..]] {
        let e = init::orthogonal(bad, 1.0).unwrap_err().to_string();
        assert!(e.contains("orthogonal") && e.contains("2-D"), "{e}");
    }
}
