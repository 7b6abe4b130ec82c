//! Fast-op benchmark (issue 8) on the GPU: umx's fused kernels side by side with torch, run
//! in the same invocation on the same card (bench/peers_fast.py).
//!
//! ```sh
//! cargo build --release -p umx-bench --bin fast    # here; then on the GPU machine:
//! target/release/fast                              # runs bench/peers_fast.py for torch
//! ```
//!
//! Workloads, bfloat16: softmax, layer_norm and rms_norm over 8192 × 8192 (GB/s counts one
//! read and one write of the matrix); decoding attention (one query, 4096 keys, 32 query and
//! 8 key heads, head dim 128); and causal attention B=4 H=16 L=2048 D=128 forward. Each time
//! is the mean of back-to-back calls after a warm-up with one synchronisation at the end, for
//! umx and torch alike; graph building and launches are inside the time.

use std::collections::BTreeMap;
use std::time::Instant;
use umx::fast::{self, AttentionMask};
use umx::prelude::*;

fn sync() -> Result<()> {
    umx::device::backend(Device::Gpu(0))?.synchronize(umx::Stream::default_of(Device::Gpu(0)))
}

/// Mean milliseconds of `reps` back-to-back calls after three warm-up calls.
fn timed(reps: usize, mut f: impl FnMut() -> Result<Array>) -> Result<f64> {
    for _ in 0..3 {
        f()?.eval()?;
    }
    sync()?;
    let t = Instant::now();
    for _ in 0..reps {
        f()?.eval()?;
    }
    sync()?;
    Ok(t.elapsed().as_secs_f64() / reps as f64 * 1e3)
}

fn run_umx(times: &mut BTreeMap<String, f64>) -> Result<()> {
    let bf = Some(Dtype::Bfloat16);
    let n = 8192;
    let x = random::normal(&[n, n], bf, 0.0, 1.0, None)?;
    let w = random::normal(&[n], bf, 0.0, 1.0, None)?;
    let b = random::normal(&[n], bf, 0.0, 1.0, None)?;
    eval([&x, &w, &b])?;
    times.insert(
        "softmax/umx".into(),
        timed(20, || ops::softmax(&x, -1, true))?,
    );
    times.insert(
        "layer_norm/umx".into(),
        timed(20, || fast::layer_norm(&x, Some(&w), Some(&b), 1e-5))?,
    );
    times.insert(
        "rms_norm/umx".into(),
        timed(20, || fast::rms_norm(&x, Some(&w), 1e-5))?,
    );
    drop((x, w, b));
    let q = random::normal(&[1, 32, 1, 128], bf, 0.0, 1.0, None)?;
    let k = random::normal(&[1, 8, 4096, 128], bf, 0.0, 1.0, None)?;
    let v = random::normal(&[1, 8, 4096, 128], bf, 0.0, 1.0, None)?;
    eval([&q, &k, &v])?;
    let scale = 1.0 / (128f32).sqrt();
    times.insert(
        "sdpa_decode/umx".into(),
        timed(500, || {
            fast::scaled_dot_product_attention(&q, &k, &v, scale, AttentionMask::None, None)
        })?,
    );
    drop((q, k, v));
    let q = random::normal(&[4, 16, 2048, 128], bf, 0.0, 1.0, None)?;
    let k = random::normal(&[4, 16, 2048, 128], bf, 0.0, 1.0, None)?;
    let v = random::normal(&[4, 16, 2048, 128], bf, 0.0, 1.0, None)?;
    eval([&q, &k, &v])?;
    times.insert(
        "sdpa_causal/umx".into(),
        timed(10, || {
            fast::scaled_dot_product_attention(&q, &k, &v, scale, AttentionMask::Causal, None)
        })?,
    );
    Ok(())
}

fn main() -> Result<()> {
    umx::init();
    if umx::cuda::device_count() == 0 {
        eprintln!("fast: no CUDA device found");
        std::process::exit(1);
    }
    let mut times = BTreeMap::new();
    run_umx(&mut times)?;
    let fallbacks = umx::cuda::fallback_ops();
    umx::cuda::memory::clear_cache()?;
    umx_bench::run_peers("peers_fast.py", &mut times);
    let card = umx_bench::card();
    println!("card: {card}");
    println!(
        "{:<12} {:>10} {:>10} {:>12} {:>12} {:>13}",
        "bfloat16", "umx ms", "torch ms", "umx", "torch", "torch / umx"
    );
    let bytes = 2.0 * 2.0 * 8192.0 * 8192.0;
    // Causal attention FLOPs, as FlashAttention counts them: half of 4 B H L^2 D.
    let causal_flops = 4.0 * 4.0 * 16.0 * 2048f64.powi(2) * 128.0 / 2.0;
    for (w, unit) in [
        ("softmax", "GB/s"),
        ("layer_norm", "GB/s"),
        ("rms_norm", "GB/s"),
        ("sdpa_decode", "us"),
        ("sdpa_causal", "TFLOP/s"),
    ] {
        let u = times.get(&format!("{w}/umx")).copied().unwrap_or(f64::NAN);
        let t = times
            .get(&format!("{w}/torch"))
            .copied()
            .unwrap_or(f64::NAN);
        let rate = |ms: f64| match unit {
            "GB/s" => bytes / ms / 1e6,
            "us" => ms * 1e3,
            _ => causal_flops / ms / 1e9,
        };
        println!(
            "{w:<12} {u:>10.4} {t:>10.4} {:>7.0} {unit:<4} {:>7.0} {unit:<4} {:>9.2}",
            rate(u),
            rate(t),
            t / u
        );
    }
    println!("ops on the CPU fallback: {fallbacks:?}");
    Ok(())
}
