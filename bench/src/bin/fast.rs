//! Fast-op benchmark (issue 8) on the GPU: umx's fused kernels side by side with torch and
//! MLX (where its CUDA build imports), run in the same invocation on the same card
//! (bench/peers_fast.py).
//!
//! ```sh
//! cargo build --release -p umx-bench --bin fast    # here; then on the GPU machine:
//! target/release/fast                              # runs bench/peers_fast.py for the peers
//! target/release/fast --profile                    # and decoding attention's kernel times
//! ```
//!
//! Workloads, bfloat16: softmax, layer_norm and rms_norm over 8192 × 8192 (GB/s counts one
//! read and one write of the matrix); decoding attention (one query, 4096 keys, 32 query and
//! 8 key heads, head dim 128; also 20 dependent calls replayed as one CUDA graph, the card's
//! time alone); and attention B=4 H=16 L=2048 D=128: causal forward, full
//! (no mask) forward, and causal forward and backward (the three inputs' gradients). Each time
//! is the mean of back-to-back calls after a warm-up with one synchronisation at the end, for
//! umx and its peers alike; graph building and launches are inside the time.

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
    // The card's time alone: 20 dependent calls captured as one CUDA graph, replayed.
    let chain = |s: &[Array]| -> Result<Vec<Array>> {
        let mut x = s[0].clone();
        for _ in 0..20 {
            x = fast::scaled_dot_product_attention(&x, &k, &v, scale, AttentionMask::None, None)?;
        }
        Ok(vec![x])
    };
    let mut graph = umx::cuda::CudaGraph::capture(chain, vec![q.clone()])?;
    times.insert(
        "sdpa_decode_graph/umx".into(),
        timed(50, || {
            graph.replay()?;
            graph.read(0)
        })? / 20.0,
    );
    drop(graph);
    if std::env::args().any(|a| a == "--profile") {
        // The card's time per decoding call, by kernel (the timed figure adds the host's).
        umx::cuda::set_profiling(true);
        for _ in 0..100 {
            fast::scaled_dot_product_attention(&q, &k, &v, scale, AttentionMask::None, None)?
                .eval()?;
        }
        for l in umx::cuda::profile_report()? {
            println!(
                "decode profile: {:<60} {:>4} x {:>7.2} us",
                l.label,
                l.count,
                l.total_ms * 1e3 / l.count as f64
            );
        }
        umx::cuda::set_profiling(false);
    }
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
    times.insert(
        "sdpa_full/umx".into(),
        timed(10, || {
            fast::scaled_dot_product_attention(&q, &k, &v, scale, AttentionMask::None, None)
        })?,
    );
    // Forward and backward: the gradients of all three inputs for a random output gradient.
    let dout = random::normal(&[4, 16, 2048, 128], bf, 0.0, 1.0, None)?;
    dout.eval()?;
    let primals = [q.clone(), k.clone(), v.clone()];
    times.insert(
        "sdpa_causal_train/umx".into(),
        timed(3, || {
            let attention = |x: &[Array]| {
                let o = fast::scaled_dot_product_attention(
                    &x[0],
                    &x[1],
                    &x[2],
                    scale,
                    AttentionMask::Causal,
                    None,
                )?;
                Ok(vec![o])
            };
            let (_, grads) = vjp(attention, &primals, std::slice::from_ref(&dout))?;
            eval(&grads)?;
            Ok(grads[0].clone())
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
        "{:<17} {:>9} {:>9} {:>9} {:>12} {:>12} {:>12} {:>11} {:>9}",
        "bfloat16",
        "umx ms",
        "torch ms",
        "mlx ms",
        "umx",
        "torch",
        "mlx",
        "torch / umx",
        "mlx / umx"
    );
    let bytes = 2.0 * 2.0 * 8192.0 * 8192.0;
    // Attention FLOPs, as FlashAttention counts them: 4 B H L^2 D, half of it when causal,
    // and 2.5 times the forward's for the backward.
    let full_flops = 4.0 * 4.0 * 16.0 * 2048f64.powi(2) * 128.0;
    let flops = |w: &str| match w {
        "sdpa_full" => full_flops,
        "sdpa_causal" => full_flops / 2.0,
        _ => full_flops / 2.0 * 3.5,
    };
    for (w, unit) in [
        ("softmax", "GB/s"),
        ("layer_norm", "GB/s"),
        ("rms_norm", "GB/s"),
        ("sdpa_decode", "us"),
        ("sdpa_decode_graph", "us"),
        ("sdpa_causal", "TFLOP/s"),
        ("sdpa_full", "TFLOP/s"),
        ("sdpa_causal_train", "TFLOP/s"),
    ] {
        let u = times.get(&format!("{w}/umx")).copied().unwrap_or(f64::NAN);
        let peer = |p: &str| times.get(&format!("{w}/{p}")).copied().unwrap_or(f64::NAN);
        let (t, m) = (peer("torch"), peer("mlx"));
        let rate = |ms: f64| match unit {
            "GB/s" => bytes / ms / 1e6,
            "us" => ms * 1e3,
            _ => flops(w) / ms / 1e9,
        };
        println!(
            "{w:<17} {u:>9.4} {t:>9.4} {m:>9.4} {:>7.0} {unit:<4} {:>7.0} {unit:<4} {:>7.0} {unit:<4} {:>11.2} {:>9.2}",
            rate(u),
            rate(t),
            rate(m),
            t / u,
            m / u
        );
    }
    println!("ops on the CPU fallback: {fallbacks:?}");
    Ok(())
}
