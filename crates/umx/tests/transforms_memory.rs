//! Checkpoint lowers the peak memory of a backward pass. Alone in its test binary: the memory
//! statistics are process-wide, and other tests running in parallel threads would disturb them.

use umx::prelude::*;

/// The memory statistics of the device the test runs on: the host's, or the GPU pool's when
/// the GPU is the default device (the GPU suite).
mod memory {
    use umx::Device;
    fn gpu() -> bool {
        matches!(umx::device::default_device(), Device::Gpu(_))
    }
    pub fn active_memory() -> usize {
        if gpu() {
            umx::cuda::memory::active_memory()
        } else {
            umx::memory::active_memory()
        }
    }
    pub fn peak_memory() -> usize {
        if gpu() {
            umx::cuda::memory::peak_memory()
        } else {
            umx::memory::peak_memory()
        }
    }
    pub fn reset_peak_memory() {
        if gpu() {
            umx::cuda::memory::reset_peak_memory()
        } else {
            umx::memory::reset_peak_memory()
        }
    }
}
use umx::transforms::{checkpoint, grad};

const BLOCKS: usize = 30;
const N: usize = 256; // rows of the activations
const D: usize = 128; // width of the residual stream
const H: usize = 1024; // hidden width of a block

/// One residual block: x + tanh(x @ w1) @ w2. Its hidden activations (N x H, 1 MiB each in
/// float32) are 8 times the size of its input, so they dominate the memory of a backward pass
/// that keeps them.
fn block(x: &Array, w1: &Array, w2: &Array) -> Result<Array> {
    let h = ops::tanh(&ops::matmul(x, w1)?)?;
    ops::add(x, &ops::matmul(&h, w2)?)
}

/// The gradient of sum(blocks(x)) with respect to x, and the peak memory its evaluation took
/// above what was live before.
fn gradient(x: &Array, weights: &[(Array, Array)], ckpt: bool) -> (Array, usize) {
    let weights = weights.to_vec();
    let loss = move |x: &Array| -> Result<Array> {
        let mut h = x.clone();
        for (w1, w2) in &weights {
            h = if ckpt {
                let (w1, w2) = (w1.clone(), w2.clone());
                let f = checkpoint(move |a: &[Array]| Ok(vec![block(&a[0], &w1, &w2)?]));
                f(&[h])?.remove(0)
            } else {
                block(&h, w1, w2)?
            };
        }
        ops::sum(&h, None, false)
    };
    let base = memory::active_memory();
    memory::reset_peak_memory();
    let g = grad(loss)(x).unwrap();
    g.eval().unwrap();
    let peak = memory::peak_memory() - base;
    (g, peak)
}

#[test]
fn checkpoint_lowers_the_peak_memory_of_the_backward_pass() {
    let key = random::key(0).unwrap();
    let keys = random::split(&key, 2 * BLOCKS + 1).unwrap();
    let k = |i: i64| keys.get(&[i]).unwrap();
    let x = random::normal(&[N, D], Dtype::Float32, 0.0, 1.0, Some(&k(0))).unwrap();
    let weights: Vec<(Array, Array)> = (0..BLOCKS as i64)
        .map(|i| {
            let s1 = 1.0 / (D as f64).sqrt();
            let s2 = 0.5 / (H as f64).sqrt();
            let w1 = random::normal(&[D, H], Dtype::Float32, 0.0, s1, Some(&k(1 + 2 * i))).unwrap();
            let w2 = random::normal(&[H, D], Dtype::Float32, 0.0, s2, Some(&k(2 + 2 * i))).unwrap();
            (w1, w2)
        })
        .collect();
    let mut all = weights
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect::<Vec<_>>();
    all.push(x.clone());
    eval(&all).unwrap();

    let (g_plain, peak_plain) = gradient(&x, &weights, false);
    let (g_ckpt, peak_ckpt) = gradient(&x, &weights, true);
    // Once more without checkpoint, in case the first run paid for something once.
    let (_, peak_plain2) = gradient(&x, &weights, false);
    let peak_plain = peak_plain.min(peak_plain2);
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    eprintln!(
        "peak memory of the gradient: {:.1} MiB without checkpoint, {:.1} MiB with ({:.0}%)",
        mib(peak_plain),
        mib(peak_ckpt),
        100.0 * peak_ckpt as f64 / peak_plain as f64
    );
    assert!(
        (peak_ckpt as f64) < 0.6 * peak_plain as f64,
        "checkpointed peak {:.1} MiB is not below 60% of {:.1} MiB",
        mib(peak_ckpt),
        mib(peak_plain)
    );
    let same = ops::allclose(&g_ckpt, &g_plain, 1e-5, 1e-6, false)
        .unwrap()
        .item::<bool>()
        .unwrap();
    assert!(same, "checkpoint changed the gradient");
}
