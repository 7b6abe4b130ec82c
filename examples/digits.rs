//! Trains an MLP classifier on scikit-learn's handwritten digits (8x8 images, 10 classes)
//! and reports test accuracy; writes the loss curve to `digits_loss.png`.
//!
//! ```sh
//! cargo run --release --example digits
//! ```
//!
//! The data (`examples/data/digits.npz`) is exported from scikit-learn by
//! `examples/data/export_digits.py` and committed.

use std::io::Write;
use umx::nn::losses::{self, Reduction};
use umx::nn::{self, ModuleExt};
use umx::optim::{self, Optimizer};
use umx::prelude::*;

const EPOCHS: usize = 60;
const BATCH: usize = 64;

fn main() -> Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/data/digits.npz"
    );
    let data = umx::io::load_npz(path)?;
    let images = ops::divide(&data["images"].astype(Dtype::Float32)?, 16.0)?;
    let labels = data["labels"].astype(Dtype::Int32)?;
    let n = images.dim(0)?;

    // A fixed shuffle, then 80% to train and 20% to test.
    random::seed(0);
    let order = random::permutation(n, 0, None)?;
    let (images, labels) = (
        ops::take(&images, &order, Some(0))?,
        ops::take(&labels, &order, Some(0))?,
    );
    let n_train = n * 4 / 5;
    let split = |a: &Array| ops::split(a, [n_train], 0);
    let (xs, ys) = (split(&images)?, split(&labels)?);
    let (x_train, x_test, y_train, y_test) = (&xs[0], &xs[1], &ys[0], &ys[1]);

    let mut model = nn::Sequential::new()
        .push(nn::Linear::new(64, 128, true)?)
        .push(nn::ReLU)
        .push(nn::Linear::new(128, 128, true)?)
        .push(nn::ReLU)
        .push(nn::Linear::new(128, 10, true)?);
    let loss_fn = |m: &nn::Sequential, (x, y): (Array, Array)| {
        losses::cross_entropy(&m.forward(&x)?, &y, None, -1, 0.0, Reduction::Mean)
    };
    let step = nn::value_and_grad(loss_fn);
    let mut opt = Optimizer::new(
        optim::AdamW::default(),
        optim::schedules::cosine_decay(2e-3, EPOCHS * n_train / BATCH, 1e-4),
    );

    let accuracy = |m: &nn::Sequential, x: &Array, y: &Array| -> Result<f32> {
        let pred = ops::argmax(&m.forward(x)?, Some(-1), false)?.astype(Dtype::Int32)?;
        ops::mean(&ops::equal(&pred, y)?, None, false)?.item::<f32>()
    };

    let mut curve = Vec::new();
    for epoch in 1..=EPOCHS {
        let perm = random::permutation(n_train, 0, None)?;
        let (mut total, mut batches) = (0.0f32, 0);
        for start in (0..n_train).step_by(BATCH) {
            let idx = ops::slice(
                &perm,
                &[start as i64],
                &[(start + BATCH).min(n_train) as i64],
                &[],
            )?;
            let (x, y) = (
                ops::take(x_train, &idx, Some(0))?,
                ops::take(y_train, &idx, Some(0))?,
            );
            let (loss, grads) = step(&model, (x, y))?;
            opt.update(&mut model, &grads)?;
            let mut live: Vec<Array> = model.parameters().into_values().collect();
            live.push(loss.clone());
            eval(&live)?;
            total += loss.item::<f32>()?;
            batches += 1;
        }
        let loss = total / batches as f32;
        curve.push(loss);
        progress(epoch, EPOCHS, loss, accuracy(&model, x_test, y_test)?);
    }
    eprintln!();
    let test_acc = accuracy(&model, x_test, y_test)?;
    println!(
        "test accuracy {:.2}% on {} held-out digits (train {:.2}%)",
        100.0 * test_acc,
        n - n_train,
        100.0 * accuracy(&model, x_train, y_train)?
    );
    write_curve("digits_loss.png", &curve)?;
    println!("loss curve written to digits_loss.png");
    if test_acc < 0.97 {
        eprintln!("warning: below the 97% target");
        std::process::exit(1);
    }
    Ok(())
}

/// One line of progress, redrawn in place.
fn progress(epoch: usize, epochs: usize, loss: f32, acc: f32) {
    let width = 30;
    let done = width * epoch / epochs;
    eprint!(
        "\r[{}{}] epoch {epoch:>3}/{epochs} loss {loss:.4} test acc {:.2}%",
        "#".repeat(done),
        ".".repeat(width - done),
        100.0 * acc
    );
    let _ = std::io::stderr().flush();
}

/// The loss per epoch as a line plot (log scale), white background, written as PNG.
fn write_curve(path: &str, losses: &[f32]) -> Result<()> {
    let (w, h, pad) = (640usize, 400usize, 40usize);
    let mut px = vec![255u8; w * h * 3];
    let mut put = |x: usize, y: usize, rgb: [u8; 3]| {
        if x < w && y < h {
            px[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&rgb);
        }
    };
    for x in pad..w - pad {
        put(x, h - pad, [0, 0, 0]);
    }
    for y in pad..h - pad {
        put(pad, y, [0, 0, 0]);
    }
    let logs: Vec<f32> = losses.iter().map(|l| l.max(1e-6).ln()).collect();
    let (lo, hi) = logs
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let span = (hi - lo).max(1e-6);
    let to_px = |i: usize, v: f32| {
        let x = pad + (w - 2 * pad) * i / (logs.len().max(2) - 1);
        let y = h - pad - (((v - lo) / span) * (h - 2 * pad) as f32) as usize;
        (x as f32, y as f32)
    };
    for i in 1..logs.len() {
        let (x0, y0) = to_px(i - 1, logs[i - 1]);
        let (x1, y1) = to_px(i, logs[i]);
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()) as usize).max(1);
        for s in 0..=steps {
            let t = s as f32 / steps as f32;
            let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
            for d in 0..2 {
                put(x as usize, y as usize + d, [200, 30, 30]);
            }
        }
    }
    let file = std::fs::File::create(path).map_err(|e| Error::Invalid(format!("{path}: {e}")))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .map_err(|e| Error::Invalid(format!("{path}: {e}")))?;
    writer
        .write_image_data(&px)
        .map_err(|e| Error::Invalid(format!("{path}: {e}")))
}
