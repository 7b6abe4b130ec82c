//! CPU benchmark: umx side by side with NumPy and MLX's CPU build, run in the same invocation.
//!
//! `cargo run --release -p umx-bench` prints a table of times (lower is better) or rates, and
//! the ratio of each peer to umx. The peers run through `bench/peers_cpu.py` (needs python3 with
//! numpy, and `mlx[cpu]` for the MLX column).

use serde_json::Value;
use std::process::Command;
use umx::prelude::*;
use umx_bench::{median, values};

struct Row {
    name: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    umx: f64,
    numpy: Option<f64>,
    mlx: Option<f64>,
}

fn run_umx() -> Result<Vec<Row>> {
    let n = 1usize << 26;
    let x = Array::from_slice(&values(n, 1), &[n])?;
    x.eval()?;
    let chain = median(7, || {
        let y = ops::divide(&ops::add(&ops::multiply(&x, 2.0)?, 5.0)?, 3.0)?;
        y.eval()
    })?;
    let compiled = umx::transforms::compile(
        |v: &[Array]| {
            Ok(vec![ops::divide(
                &ops::add(&ops::multiply(&v[0], 2.0)?, 5.0)?,
                3.0,
            )?])
        },
        false,
    );
    let args = [x.clone()];
    let fused = median(7, || eval(&compiled(&args)?))?;
    let sum = median(7, || ops::sum(&x, Axes::All, false)?.eval())?;
    let m = 2048;
    let a = Array::from_slice(&values(m * m, 2), &[m, m])?;
    a.eval()?;
    let mm = median(5, || ops::matmul(&a, &a)?.eval())?;
    let y = Array::from_slice(&[1.0f32; 16], &[16])?;
    y.eval()?;
    let tiny = median(7, || {
        let mut z = y.clone();
        for _ in 0..1000 {
            z = ops::add(&z, 1.0)?;
        }
        z.eval()
    })?;
    Ok(vec![
        row("(x*2+5)/3, 2^26 f32", "ms", false, chain * 1e3),
        row("(x*2+5)/3 compiled, 2^26 f32", "ms", false, fused * 1e3),
        row("sum, 2^26 f32", "ms", false, sum * 1e3),
        row(
            "matmul 2048 f32",
            "GFLOP/s",
            true,
            2.0 * (m as f64).powi(3) / mm / 1e9,
        ),
        row(
            "tiny op (1000 dependent adds, 16 el.)",
            "us/op",
            false,
            tiny / 1000.0 * 1e6,
        ),
    ])
}

fn row(name: &'static str, unit: &'static str, higher_is_better: bool, umx: f64) -> Row {
    Row {
        name,
        unit,
        higher_is_better,
        umx,
        numpy: None,
        mlx: None,
    }
}

fn run_peers() -> Option<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers_cpu.py");
    let out = Command::new("python3")
        .arg(script)
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
    let mut rows = run_umx()?;
    let peers = run_peers();
    if let Some(p) = &peers {
        let get = |k: &str| p.get(k).and_then(Value::as_f64);
        let keys = [
            ("numpy_elementwise_ms", "mlx_cpu_elementwise_ms"),
            // NumPy has no fusion: its un-fused chain is the peer of the compiled one.
            ("numpy_elementwise_ms", "mlx_cpu_compile_elementwise_ms"),
            ("numpy_sum_ms", "mlx_cpu_sum_ms"),
            ("numpy_matmul2048_gflops", "mlx_cpu_matmul2048_gflops"),
            ("numpy_tiny_op_us", "mlx_cpu_tiny_op_us"),
        ];
        for (r, (np, mlx)) in rows.iter_mut().zip(keys) {
            r.numpy = get(np);
            r.mlx = get(mlx);
        }
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "umx CPU benchmark ({cores} cores); ratio = peer / umx for times, umx / peer for rates (> 1: umx faster)"
    );
    println!();
    println!("| workload | unit | umx | NumPy | ratio | MLX (cpu) | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        let ratio = |p: Option<f64>| match p {
            Some(p) if r.higher_is_better => format!("{:.2}", r.umx / p),
            Some(p) => format!("{:.2}", p / r.umx),
            None => "-".into(),
        };
        let v = |p: Option<f64>| p.map(|p| format!("{p:.3}")).unwrap_or("-".into());
        println!(
            "| {} | {} | {:.3} | {} | {} | {} | {} |",
            r.name,
            r.unit,
            r.umx,
            v(r.numpy),
            ratio(r.numpy),
            v(r.mlx),
            ratio(r.mlx)
        );
    }
    if let Some(blas) = peers
        .as_ref()
        .and_then(|p| p.get("numpy_blas"))
        .and_then(Value::as_str)
    {
        println!();
        println!("NumPy BLAS: {blas}");
    }
    if peers.is_none() {
        println!();
        println!("(peers did not run: python3 with numpy is needed)");
    }
    Ok(())
}
