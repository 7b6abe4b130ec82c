//! What the benchmark programs share: timing and deterministic inputs.

use std::time::Instant;
use umx::Result;

/// Median wall time of `reps` runs of `f` after one warm-up run, in seconds.
pub fn median(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        ts.push(t.elapsed().as_secs_f64());
    }
    ts.sort_by(|a, b| a.total_cmp(b));
    Ok(ts[reps / 2])
}

/// Deterministic pseudo-random float32 values in [-1, 1) (no dependence on the random module).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Runs a peer script of `bench/` (`peers_gpu.py`, ...) with python3 and adds the timings it
/// prints as JSON (`{"workload/peer": number}`) to `times`. Entries that are not numbers (a
/// peer's error) and a script that fails are reported on stderr, not fatal. With
/// `UMX_BENCH_NO_PEERS` set nothing runs (A/B runs of umx alone).
pub fn run_peers(script: &str, times: &mut std::collections::BTreeMap<String, f64>) {
    use std::collections::BTreeMap;
    if std::env::var_os("UMX_BENCH_NO_PEERS").is_some() {
        // A/B runs of umx alone (the peers' columns print as missing).
        return;
    }
    let built = format!("{}/{script}", env!("CARGO_MANIFEST_DIR"));
    // On the GPU machine the binary runs from the repository root of a copied tree.
    let path = if std::path::Path::new(&built).exists() {
        built
    } else {
        format!("bench/{script}")
    };
    match std::process::Command::new("python3").arg(&path).output() {
        Ok(out) => match serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(&out.stdout)
        {
            Ok(peers) => {
                for (k, v) in peers {
                    match v.as_f64() {
                        Some(x) => {
                            times.insert(k, x);
                        }
                        None => eprintln!("peer {k}: {v}"),
                    }
                }
            }
            Err(e) => eprintln!(
                "peers: no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        },
        Err(e) => eprintln!("peers: python3 did not run: {e}"),
    }
}

/// The GPU's name, architecture and memory, for the tables' heading.
pub fn card() -> String {
    umx::cuda::device_info()
        .map(|(name, arch, mem)| format!("{name}, sm_{}{}, {} GiB", arch.0, arch.1, mem >> 30))
        .unwrap_or_default()
}
