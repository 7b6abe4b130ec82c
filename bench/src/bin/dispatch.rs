//! Where the host time of one small GPU op goes (issue 4's tiny-op cost), layer by layer:
//!
//! - `launch`: `cuLaunchKernel(Ex)` of an empty kernel (the driver's floor);
//! - `backend, independent`: the CUDA backend's `eval` of an `add` of two ready 16-element
//!   arrays, called directly (no graph), the output dropped at once;
//! - `backend, chained`: the same with each output feeding the next call;
//! - `graph`: building 1000 dependent lazy adds (no GPU work);
//! - `eval`: evaluating that graph (the queuing; the card keeps up);
//! - `total`: build, eval and the card finishing, per add (what `gpu`'s tiny-op row reports).
//!
//! `cargo build --release -p umx-bench --bin dispatch`, run on the GPU machine. Prints
//! microseconds per op, each the best of 5 rounds of 1000.

use std::time::Instant;
use umx::device::{OutSpec, backend};
use umx::primitives::{BinaryOp, Primitive};
use umx::{Array, Device, Dtype, Result, Stream, eval, ops};

const N: usize = 1000;
const ROUNDS: usize = 5;

fn main() {
    if let Err(e) = run() {
        eprintln!("dispatch: {e}");
        std::process::exit(1);
    }
}

/// N dependent lazy adds of `s` (nothing runs until they are evaluated).
fn adds(s: &Array) -> Result<Array> {
    let mut t = s.clone();
    for _ in 0..N {
        t = ops::add(&t, s)?;
    }
    Ok(t)
}

/// The best of ROUNDS of `f`, in microseconds per op (f does N ops).
fn best(mut f: impl FnMut() -> Result<f64>) -> Result<f64> {
    f()?;
    let mut b = f64::INFINITY;
    for _ in 0..ROUNDS {
        b = b.min(f()?);
    }
    Ok(b / N as f64 * 1e6)
}

/// `--cpu`: the graph and eval rows on the CPU backend, many rounds (for a profiler: the
/// layers above the backend are the same for both devices).
fn cpu_rounds() -> Result<()> {
    umx::set_default_device(Device::Cpu)?;
    let s = ops::full(&[16], 1.0f64, Dtype::Float32)?;
    s.eval()?;
    let t0 = Instant::now();
    let rounds = 2000;
    let (mut graph, mut queue) = (0.0, 0.0);
    for _ in 0..rounds {
        let t1 = Instant::now();
        let t = adds(&s)?;
        let t2 = Instant::now();
        eval([&t])?;
        graph += (t2 - t1).as_secs_f64();
        queue += t2.elapsed().as_secs_f64();
    }
    let per = |t: f64| t / (rounds * N) as f64 * 1e6;
    println!(
        "cpu, us per add: graph {:.3}, eval {:.3}, total {:.3}",
        per(graph),
        per(queue),
        per(t0.elapsed().as_secs_f64())
    );
    Ok(())
}

fn run() -> Result<()> {
    if std::env::args().any(|a| a == "--cpu") {
        return cpu_rounds();
    }
    let gpu = Device::Gpu(0);
    let be = backend(gpu)?;
    let stream = Stream::default_of(gpu);
    let sync = || be.synchronize(stream);
    let s = ops::full(&[16], 1.0f64, Dtype::Float32)?;
    s.eval()?;
    let d = s.data()?;
    let add = Primitive::Binary(BinaryOp::Add);
    let spec = [OutSpec {
        shape: vec![16],
        dtype: Dtype::Float32,
    }];

    let mut rows: Vec<(&str, f64)> = Vec::new();
    let launch = best(|| Ok(umx::cuda::launch_cost(N)?.0 * N as f64 * 1e-6))?;
    rows.push(("launch (empty kernel, host)", launch));
    let independent = best(|| {
        sync()?;
        let t = Instant::now();
        for _ in 0..N {
            drop(be.eval(&add, vec![d.clone(), d.clone()], &spec, stream)?);
        }
        Ok(t.elapsed().as_secs_f64())
    })?;
    rows.push(("backend eval, independent", independent));
    let chained = best(|| {
        sync()?;
        let t = Instant::now();
        let mut x = d.clone();
        for _ in 0..N {
            x = be.eval(&add, vec![x, d.clone()], &spec, stream)?.remove(0);
        }
        Ok(t.elapsed().as_secs_f64())
    })?;
    rows.push(("backend eval, chained", chained));
    let mut graph = 0.0;
    let mut queue = 0.0;
    let mut total = f64::INFINITY;
    for round in 0..=ROUNDS {
        sync()?;
        let t0 = Instant::now();
        let t = adds(&s)?;
        let t1 = Instant::now();
        eval([&t])?;
        let t2 = Instant::now();
        sync()?;
        let t3 = Instant::now();
        if round > 0 {
            graph += (t1 - t0).as_secs_f64() / ROUNDS as f64;
            queue += (t2 - t1).as_secs_f64() / ROUNDS as f64;
            total = total.min((t3 - t0).as_secs_f64());
        }
    }
    rows.push(("graph building (mean)", graph / N as f64 * 1e6));
    rows.push(("eval, queuing (mean)", queue / N as f64 * 1e6));
    rows.push(("total with the card (best)", total / N as f64 * 1e6));
    for (name, us) in umx::cuda::dispatch_cost(N)? {
        rows.push((name, us));
    }
    println!("| per op, 16 float32 | us |\n|---|---|");
    for (name, us) in rows {
        println!("| {name} | {us:.2} |");
    }
    Ok(())
}
