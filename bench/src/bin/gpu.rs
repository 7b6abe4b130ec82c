//! GPU benchmark: umx (eager and compiled) side by side with torch eager, torch.compile and
//! jax.jit, run in the same invocation on the same card.
//!
//! ```sh
//! cargo build --release -p umx-bench --bin gpu     # here; then on the GPU machine:
//! target/release/gpu                               # runs bench/peers_gpu.py for the peers
//! target/release/gpu --profile                     # and the MLP step's kernel time by op
//! UMX_BENCH_NO_PEERS=1 target/release/gpu --mlp-only  # umx's MLP step alone (for ncu)
//! ```
//!
//! Workloads (float32): the element-wise chain `(x*2+5)/3` over 2^12 elements (the cost of a
//! call) and over 2^28, `sum(x*y)` over 2^28 elements,
//! a `GELU(x @ W + b)` layer (1024 × 4096 by 4096 × 4096), and one training step of
//! 4 × Linear(4096) + GELU with a 10-way head, batch 1024, cross-entropy and AdamW (eager, and
//! compiled whole with `optim::TrainStep`; torch eager, torch.compile, jax.jit); then eager
//! single ops beside torch: a sum over 2^28, 8192^3 matmuls in float32, TF32 and bfloat16, and
//! the per-op cost of 1000 dependent adds on 16 elements (graph building included). Each time is
//! the mean of back-to-back calls after a warm-up, with one synchronisation at the end, for umx
//! and the peers alike. The table gives milliseconds and the ratio of the best peer to umx's
//! best (above 1: umx is faster).

use std::collections::BTreeMap;
use std::time::Instant;
use umx::nn::losses::{self, Reduction};
use umx::nn::{self, ModuleExt};
use umx::optim::{self, Optimizer};
use umx::prelude::*;
use umx::transforms::compile;

const N: usize = 1 << 28;

fn sync() -> Result<()> {
    umx::device::backend(Device::Gpu(0))?.synchronize(umx::Stream::default_of(Device::Gpu(0)))
}

/// Mean milliseconds of `reps` back-to-back calls after three warm-up calls.
fn timed(reps: usize, mut f: impl FnMut() -> Result<Vec<Array>>) -> Result<f64> {
    for _ in 0..3 {
        eval(&f()?)?;
    }
    sync()?;
    let t = Instant::now();
    for _ in 0..reps {
        eval(&f()?)?;
    }
    sync()?;
    Ok(t.elapsed().as_secs_f64() / reps as f64 * 1e3)
}

/// The MLP of the training step: 4 x Linear(4096) + GELU and a 10-way head, seeded.
fn mlp() -> Result<nn::Sequential> {
    random::seed(0);
    let mut model = nn::Sequential::new();
    for _ in 0..4 {
        model = model
            .push(nn::Linear::new(4096, 4096, true)?)
            .push(nn::GELU);
    }
    Ok(model.push(nn::Linear::new(4096, 10, true)?))
}

type Fun = std::sync::Arc<dyn Fn(&[Array]) -> Result<Vec<Array>> + Send + Sync>;

/// The element-wise, reduction and product workloads and the tiny op (all but the MLP step).
fn single_ops(times: &mut BTreeMap<String, f64>) -> Result<()> {
    let key = random::key(0)?;
    let ks = random::split(&key, 5)?;
    let k = |i: usize| ops::take(&ks, &Array::from_slice(&[i as u32], &[])?, Some(0));
    let x = random::normal(&[N], None, 0.0, 1.0, Some(&k(0)?))?;
    let y = random::normal(&[N], None, 0.0, 1.0, Some(&k(1)?))?;
    let a = random::normal(&[1024, 4096], None, 0.0, 1.0, Some(&k(2)?))?;
    let w = ops::divide(
        random::normal(&[4096, 4096], None, 0.0, 1.0, Some(&k(3)?))?,
        64.0,
    )?;
    let b = random::normal(&[4096], None, 0.0, 1.0, Some(&k(4)?))?;
    eval([&x, &y, &a, &w, &b])?;

    let chain: Fun = std::sync::Arc::new(|v: &[Array]| {
        Ok(vec![ops::divide(
            ops::add(ops::multiply(&v[0], 2.0)?, 5.0)?,
            3.0,
        )?])
    });
    let dot: Fun = std::sync::Arc::new(|v: &[Array]| {
        Ok(vec![ops::sum(&ops::multiply(&v[0], &v[1])?, None, false)?])
    });
    let layer: Fun = std::sync::Arc::new(|v: &[Array]| {
        Ok(vec![nn::gelu(&ops::add(
            ops::matmul(&v[0], &v[1])?,
            &v[2],
        )?)?])
    });
    let small = ops::slice(&x, &[0], &[1 << 12], &[])?;
    let small = ops::add(&small, 0.0)?;
    eval([&small])?;
    for (name, f, args) in [
        ("chain_4k", chain.clone(), vec![small]),
        ("chain", chain, vec![x.clone()]),
        ("sum_xy", dot, vec![x.clone(), y.clone()]),
        ("gelu_linear", layer, vec![a.clone(), w.clone(), b.clone()]),
    ] {
        let eager = f.clone();
        let reps = if name == "chain_4k" { 500 } else { 20 };
        times.insert(format!("{name}/umx"), timed(reps, || eager(&args))?);
        let compiled = compile(move |v: &[Array]| f(v), false);
        times.insert(
            format!("{name}/umx compiled"),
            timed(reps, || compiled(&args))?,
        );
    }
    // Eager single ops (issue 4): a sum over 2^28, the 8192^3 products, the cost of a tiny op.
    times.insert(
        "sum/umx".into(),
        timed(20, || Ok(vec![ops::sum(&x, None, false)?]))?,
    );
    drop((x, y));
    umx::cuda::memory::clear_cache()?;
    for (name, dtype, tf32) in [
        ("matmul_f32", Dtype::Float32, false),
        ("matmul_tf32", Dtype::Float32, true),
        ("matmul_bf16", Dtype::Bfloat16, false),
    ] {
        umx::cuda::set_tf32(tf32);
        let m = 8192;
        let p = random::normal(&[m, m], Some(dtype), 0.0, 1.0, Some(&k(0)?))?;
        let q = random::normal(&[m, m], Some(dtype), 0.0, 1.0, Some(&k(1)?))?;
        eval([&p, &q])?;
        times.insert(
            format!("{name}/umx"),
            timed(5, || Ok(vec![ops::matmul(&p, &q)?]))?,
        );
    }
    umx::cuda::set_tf32(false);
    umx::cuda::memory::clear_cache()?;
    let s = ops::full(&[16], 1.0f64, Dtype::Float32)?;
    // 1000 dependent adds, graph building included; milliseconds per add.
    let per_add = timed(5, || {
        let mut t = s.clone();
        for _ in 0..1000 {
            t = ops::add(&t, &s)?;
        }
        Ok(vec![t])
    })? / 1000.0;
    times.insert("tiny_add/umx".into(), per_add);
    eprintln!("launch batching: {:?}", umx::cuda::batch_stats());
    // Where that time goes (launch, dispatch, graph, eval): the `dispatch` bench.

    Ok(())
}

fn run_umx(times: &mut BTreeMap<String, f64>, profile: bool) -> Result<()> {
    if !std::env::args().any(|a| a == "--mlp-only") {
        single_ops(times)?;
    }
    // One training step of the MLP.
    let mut model = mlp()?;
    let xb = random::normal(&[1024, 4096], None, 0.0, 1.0, None)?;
    let yb = random::randint(0, 10, &[1024], Dtype::Int32, None)?;
    let loss_fn = |m: &nn::Sequential, (x, y): (Array, Array)| {
        losses::cross_entropy(&m.forward(&x)?, &y, None, -1, 0.0, Reduction::Mean)
    };
    let step = nn::value_and_grad(loss_fn);
    let mut opt = Optimizer::new(optim::AdamW::default(), 1e-4);
    let mut train = || {
        let (loss, grads) = step(&model, (xb.clone(), yb.clone()))?;
        opt.update(&mut model, &grads)?;
        let mut live: Vec<Array> = model.parameters().into_values().collect();
        live.extend(opt.state()?.into_values());
        live.push(loss);
        Ok(live)
    };
    let ms = timed(20, &mut train)?;
    times.insert("mlp_step/umx".into(), ms);

    // The same step compiled whole (forward, backward and AdamW in one trace, parameters and
    // optimizer state as its inputs and outputs), on a fresh model.
    let mut cmodel = mlp()?;
    let mut copt = Optimizer::new(optim::AdamW::default(), 1e-4);
    let cstep = optim::TrainStep::new(|m: &nn::Sequential, b: &[Array]| {
        losses::cross_entropy(&m.forward(&b[0])?, &b[1], None, -1, 0.0, Reduction::Mean)
    });
    let batch = [xb.clone(), yb.clone()];
    let mut ctrain = || {
        let loss = cstep.step(&mut cmodel, &mut copt, &batch)?;
        let mut live: Vec<Array> = cmodel.parameters().into_values().collect();
        live.extend(copt.state()?.into_values());
        live.push(loss);
        Ok(live)
    };
    let ms = timed(20, &mut ctrain)?;
    times.insert("mlp_step/umx compiled".into(), ms);
    if profile {
        for (what, step) in [
            (
                "eager",
                &mut train as &mut dyn FnMut() -> Result<Vec<Array>>,
            ),
            ("compiled", &mut ctrain),
        ] {
            umx::cuda::set_profiling(true);
            for _ in 0..5 {
                eval(&step()?)?;
            }
            umx::cuda::set_profiling(false);
            println!("MLP step ({what}), kernel time by primitive over 5 steps (ms):");
            for l in umx::cuda::profile_report()?.iter().take(40) {
                println!("{:>9.3} {:>5}  {}", l.total_ms, l.count, l.label);
            }
        }
    }
    Ok(())
}

/// `gpu --kernel-load`: the time one new fused kernel takes to become ready: compiled by
/// NVRTC when the disk cache (`UMX_KERNEL_CACHE`) lacks it, loaded from disk when an earlier
/// run left it there. Run it twice with one cache directory for the cold and the warm time.
fn kernel_load() -> Result<()> {
    let x = ops::full(&[1 << 10], 1.5f64, Dtype::Float32)?;
    // Context, pool and the plain kernels first, so the timing is the fused kernel's alone.
    eval([&ops::add(&x, 1.0)?])?;
    sync()?;
    let before = umx::cuda::kernel_cache_stats();
    let f = compile(
        |v: &[Array]| {
            let y = ops::multiply(
                &ops::sigmoid(&ops::add(ops::multiply(&v[0], 3.25)?, 1.0)?)?,
                &v[0],
            )?;
            Ok(vec![ops::divide(ops::tanh(&y)?, 7.0)?])
        },
        false,
    );
    let t = Instant::now();
    eval(&f(std::slice::from_ref(&x))?)?;
    sync()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let after = umx::cuda::kernel_cache_stats();
    println!(
        "kernel load: {ms:.1} ms (NVRTC compiles {}, disk loads {})",
        after.0 - before.0,
        after.1 - before.1
    );
    Ok(())
}

fn main() -> Result<()> {
    umx::init();
    if umx::cuda::device_count() == 0 {
        eprintln!("gpu: no CUDA device found");
        std::process::exit(1);
    }
    if std::env::args().any(|a| a == "--kernel-load") {
        return kernel_load();
    }
    let mut times = BTreeMap::new();
    run_umx(&mut times, std::env::args().any(|a| a == "--profile"))?;
    let fallbacks = umx::cuda::fallback_ops();
    umx::cuda::memory::clear_cache()?;

    umx_bench::run_peers("peers_gpu.py", &mut times);

    let card = umx_bench::card();
    println!("card: {card}");
    let cols = ["umx", "umx compiled", "torch", "torch.compile", "jax.jit"];
    print!("{:<12}", "ms");
    for c in cols {
        print!(" {c:>13}");
    }
    println!(" {:>16}", "best peer / umx");
    for w in ["chain_4k", "chain", "sum_xy", "gelu_linear", "mlp_step"] {
        print!("{w:<12}");
        for c in cols {
            match times.get(&format!("{w}/{c}")) {
                Some(ms) => print!(" {ms:>13.3}"),
                None => print!(" {:>13}", "-"),
            }
        }
        let best = |cs: &[&str]| {
            cs.iter()
                .filter_map(|c| times.get(&format!("{w}/{c}")).copied())
                .fold(f64::INFINITY, f64::min)
        };
        let ratio = best(&cols[2..]) / best(&cols[..2]);
        println!(" {ratio:>16.2}");
    }
    println!("eager ops (issue 4)     umx        torch   torch / umx");
    for (w, unit, scale) in [
        ("sum", "ms", 1.0),
        ("matmul_f32", "ms", 1.0),
        ("matmul_tf32", "ms", 1.0),
        ("matmul_bf16", "ms", 1.0),
        ("tiny_add", "us/op", 1e3),
    ] {
        let u = times.get(&format!("{w}/umx")).copied().unwrap_or(f64::NAN);
        let t = times
            .get(&format!("{w}/torch"))
            .copied()
            .unwrap_or(f64::NAN);
        println!(
            "{w:<12} {unit:>6} {:>9.3} {:>12.3} {:>13.2}",
            u * scale,
            t * scale,
            t / u
        );
        if w.starts_with("matmul") {
            let tflops = |ms: f64| 2.0 * 8192f64.powi(3) / ms / 1e9;
            println!(
                "{:<19} TFLOP/s: umx {:.1}, torch {:.1}",
                "",
                tflops(u),
                tflops(t)
            );
        }
    }
    if let Some(ms) = times.get("sum/umx") {
        println!("sum: {:.0} GB/s", 4.0 * N as f64 / ms / 1e6);
    }
    if let Some(ms) = times.get("chain/umx compiled") {
        println!(
            "compiled chain: {:.0} GB/s (8 bytes an element)",
            8.0 * N as f64 / ms / 1e6
        );
    }
    println!("ops on the CPU fallback: {fallbacks:?}");
    Ok(())
}
