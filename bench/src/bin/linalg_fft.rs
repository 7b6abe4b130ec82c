//! Benchmark of `umx::linalg` and `umx::fft` (issue 9): batched 64×64 and single 4096×4096
//! solve, QR, SVD and eigh (float32), and a 2^24-point complex FFT. On the CPU beside NumPy and
//! MLX's CPU build (`bench/peers_linalg_fft.py`); with `--gpu`, on GPU 0 (cuSOLVER, cuFFT)
//! beside PyTorch on the same card (`bench/peers_linalg_fft_gpu.py`). Peers run in the same
//! invocation, on the same workloads.
//!
//! `cargo run --release -p umx-bench --bin linalg_fft [-- --gpu]`; `UMX_BENCH_N` and
//! `UMX_BENCH_BATCH` shrink the single and batched sizes (the peers get the same),
//! `UMX_BENCH_FFT_LOG2` the FFT.

use serde_json::Value;
use std::process::Command;
use umx::linalg;
use umx::prelude::*;
use umx_bench::{median, values};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Well-conditioned matrices `(batch…, n, n)`: random plus `n` on the diagonal; and the
/// symmetric `a + aᵀ`.
fn matrices(shape: &[usize], seed: u64) -> Result<(Array, Array)> {
    let n = shape[shape.len() - 1];
    let a = Array::from_slice(&values(shape.iter().product(), seed), shape)?;
    let a = ops::add(&a, ops::multiply(ops::eye(n, None, 0, None)?, n as f64)?)?;
    let s = ops::add(&a, &ops::swapaxes(&a, -1, -2)?)?;
    eval(&[a.clone(), s.clone()])?;
    Ok((a, s))
}

/// Evaluates `arrays` and, on the GPU, waits for the work to finish.
fn run(arrays: &[Array]) -> Result<()> {
    eval(arrays)?;
    let device = umx::device::default_device();
    if device != Device::Cpu {
        umx::device::backend(device)?.synchronize(umx::Stream::default_of(device))?;
    }
    Ok(())
}

/// `(workload, umx seconds)` for the four factorizations of `shape`.
fn factorizations(label: &str, shape: &[usize], reps: usize) -> Result<Vec<(String, f64)>> {
    let (a, s) = matrices(shape, 7)?;
    let mut bshape = shape.to_vec();
    bshape[shape.len() - 1] = 1;
    let b = Array::from_slice(&values(bshape.iter().product(), 8), &bshape)?;
    b.eval()?;
    Ok(vec![
        (
            format!("solve {label}"),
            median(reps, || run(&[linalg::solve(&a, &b)?]))?,
        ),
        (
            format!("qr {label}"),
            median(reps, || {
                let (q, r) = linalg::qr(&a)?;
                run(&[q, r])
            })?,
        ),
        (
            format!("svd {label}"),
            median(reps, || run(&linalg::svd(&a, true)?))?,
        ),
        (
            format!("eigh {label}"),
            median(reps, || {
                let (w, v) = linalg::eigh(&s, "L")?;
                run(&[w, v])
            })?,
        ),
    ])
}

fn run_peers(gpu: bool, n: usize, batch: usize, fft_log2: usize) -> Option<Value> {
    let name = if gpu {
        "peers_linalg_fft_gpu.py"
    } else {
        "peers_linalg_fft.py"
    };
    // On the GPU machine the binary runs from the repository root of a copied tree.
    let built = format!("{}/{name}", env!("CARGO_MANIFEST_DIR"));
    let script = if std::path::Path::new(&built).exists() {
        built
    } else {
        format!("bench/{name}")
    };
    let out = Command::new("python3")
        .arg(&script)
        .args([n.to_string(), batch.to_string(), fft_log2.to_string()])
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE")
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("peers: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last()?).ok()
}

fn main() -> Result<()> {
    let gpu = std::env::args().any(|a| a == "--gpu");
    umx::init();
    if gpu {
        if umx::cuda::device_count() == 0 {
            eprintln!("linalg_fft: no CUDA device found");
            std::process::exit(1);
        }
        umx::device::set_default_device(Device::Gpu(0))?;
    }
    let n = env("UMX_BENCH_N", 4096);
    let batch = env("UMX_BENCH_BATCH", 128);
    let fft_log2 = env("UMX_BENCH_FFT_LOG2", 24);
    let mut rows = factorizations(&format!("{batch}x64x64"), &[batch, 64, 64], 5)?;
    rows.extend(factorizations(&format!("{n}x{n}"), &[n, n], 3)?);
    let len = 1usize << fft_log2;
    let re = values(len, 9);
    let x = ops::astype(&Array::from_slice(&re, &[len])?, Dtype::Complex64)?;
    x.eval()?;
    rows.push((
        format!("fft 2^{fft_log2} complex64"),
        median(5, || run(&[fft::fft(&x, None, -1, "backward")?]))?,
    ));
    if gpu {
        let fell_back = umx::cuda::fallback_ops();
        if !fell_back.is_empty() {
            println!("CPU fallback: {fell_back:?}");
        }
        umx::cuda::memory::clear_cache()?;
    }
    let peers = run_peers(gpu, n, batch, fft_log2);
    let (where_, names) = if gpu {
        let (name, ..) = umx::cuda::device_info()?;
        (name, ["torch", "torch (cuda)", "jax", "JAX"])
    } else {
        let cores = std::thread::available_parallelism()
            .map(|c| c.get())
            .unwrap_or(1);
        (
            format!("CPU, {cores} cores"),
            ["numpy", "NumPy", "mlx", "MLX (cpu)"],
        )
    };
    println!(
        "umx linalg/fft benchmark ({where_}), float32, median times in ms; ratio = peer / umx (> 1: umx faster)"
    );
    println!();
    println!(
        "| workload | umx | {} | ratio | {} | ratio |",
        names[1], names[3]
    );
    println!("|---|---|---|---|---|---|");
    for (i, (name, t)) in rows.iter().enumerate() {
        let peer = |k: &str| {
            peers
                .as_ref()
                .and_then(|p| p.get(k))
                .and_then(Value::as_array)
                .and_then(|v| v.get(i))
                .and_then(Value::as_f64)
        };
        let cell = |p: Option<f64>| match p {
            Some(p) => (format!("{:.2}", p * 1e3), format!("{:.2}", p / t)),
            None => ("-".into(), "-".into()),
        };
        let (np, np_r) = cell(peer(names[0]));
        let (mx, mx_r) = cell(peer(names[2]));
        println!(
            "| {name} | {:.2} | {np} | {np_r} | {mx} | {mx_r} |",
            t * 1e3
        );
    }
    if peers.is_none() {
        println!();
        println!("(peers did not run: python3 with numpy, or torch for --gpu, is needed)");
    }
    Ok(())
}
