//! The CUDA backend against the CPU backend: every GPU kernel family on fresh random inputs,
//! memory statistics, transfer counters, the kernel cache, and the no-GPU behaviour. Tests
//! that need a GPU return early (and say so) on a machine without one, so CI runs them as
//! no-GPU checks.

use std::sync::Once;

type Case<'a> = (&'a str, Box<dyn Fn() -> umx_core::Result<Array> + 'a>);
type UnaryCase = (&'static str, fn(&Array) -> umx_core::Result<Array>);
use umx_core::ops;
use umx_core::{Array, Axes, Device, Dtype, Error, memory, random, with_device};

mod batching;
mod elementwise;
mod indexing;
mod kernels;
mod products;
mod reductions;
mod streams;

/// Held by a test while it profiles: the profiler's switch and spans are process-wide, and
/// tests run in parallel.
fn profiling() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn setup() -> bool {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        umx_cpu::register();
        umx_cuda::register();
    });
    let present = umx_cuda::device_count() > 0;
    if !present {
        eprintln!("no CUDA device: GPU checks skipped");
    }
    present
}

/// The array computed by `f` on the CPU and on the GPU, as f64 values.
fn both(f: impl Fn() -> umx_core::Result<Array>) -> (Vec<f64>, Vec<f64>) {
    let cpu = with_device(Device::Cpu, &f).unwrap();
    let gpu = with_device(Device::Gpu(0), &f).unwrap();
    assert_eq!(cpu.shape(), gpu.shape());
    assert_eq!(cpu.dtype(), gpu.dtype());
    (cpu.to_vec::<f64>().unwrap(), gpu.to_vec::<f64>().unwrap())
}

fn assert_close(what: &str, cpu: &[f64], gpu: &[f64], rtol: f64) {
    assert_eq!(cpu.len(), gpu.len(), "{what}: lengths");
    for (i, (&c, &g)) in cpu.iter().zip(gpu).enumerate() {
        let ok = (c.is_nan() && g.is_nan()) || c == g || (c - g).abs() <= rtol * c.abs().max(1.0);
        assert!(ok, "{what}: element {i}: cpu {c} gpu {g}");
    }
}

/// Random inputs made on the CPU (so both devices see the same numbers).
fn input(shape: &[usize], dtype: Dtype, seed: u64) -> Array {
    let key = random::key(seed).unwrap();
    let x = with_device(Device::Cpu, || {
        random::normal(shape, Dtype::Float32, 0.0, 2.0, Some(&key))
    })
    .unwrap();
    with_device(Device::Cpu, || x.astype(dtype)).unwrap()
}

/// `f` on both devices, complex results as their real and imaginary parts.
fn both_complex(f: impl Fn() -> umx_core::Result<Array>) -> (Vec<f64>, Vec<f64>) {
    let parts = |x: Array| -> Vec<f64> {
        if x.dtype() == Dtype::Complex64 {
            let mut v = ops::real(&x).unwrap().to_vec::<f64>().unwrap();
            v.extend(ops::imag(&x).unwrap().to_vec::<f64>().unwrap());
            v
        } else {
            x.to_vec::<f64>().unwrap()
        }
    };
    let cpu = with_device(Device::Cpu, &f).unwrap();
    let gpu = with_device(Device::Gpu(0), &f).unwrap();
    assert_eq!((cpu.shape(), cpu.dtype()), (gpu.shape(), gpu.dtype()));
    (parts(cpu), parts(gpu))
}

#[test]
fn asking_for_the_gpu_without_one_is_an_error_naming_it() {
    if setup() {
        return;
    }
    let a = Array::from_slice(&[1.0f32, 2.0], &[2]).unwrap();
    let err = with_device(Device::Gpu(0), || ops::add(&a, &a)).and_then(|c| c.eval());
    let err = err.unwrap_err();
    assert!(matches!(err, Error::Device(_)), "{err}");
    assert!(err.to_string().contains("gpu(0)"), "{err}");
}

#[test]
fn results_stay_on_the_gpu_until_read_and_moves_are_counted() {
    if !setup() {
        return;
    }
    let x = Array::from_slice(&vec![1.5f32; 1 << 16], &[1 << 16]).unwrap();
    let up0 = memory::bytes_to_device();
    let down0 = memory::bytes_to_host();
    let y = with_device(Device::Gpu(0), || ops::exp(&(&x * 2.0))).unwrap();
    y.eval().unwrap();
    assert!(memory::bytes_to_device() - up0 >= 4 << 16, "x was uploaded");
    let resident = y.data().unwrap().buffer.residency();
    assert_eq!(resident.device, Some(Device::Gpu(0)));
    assert!(!resident.host, "nothing read it yet");
    assert!(umx_cuda::memory::active_memory() >= 4 << 16);
    let v = y.to_vec::<f32>().unwrap();
    assert_eq!(v[0], 3.0f32.exp());
    assert!(
        memory::bytes_to_host() - down0 >= 4 << 16,
        "the read copied it back"
    );
    // A second read uses the host mirror: nothing moves. (The global counters also count
    // other tests' moves, which run in parallel: count this buffer's own.)
    let moves = y.data().unwrap().buffer.moves();
    y.to_vec::<f32>().unwrap();
    assert_eq!(y.data().unwrap().buffer.moves(), moves);
    let (compiled, from_disk) = umx_cuda::kernel_cache_stats();
    eprintln!("kernels compiled {compiled}, loaded from disk {from_disk}");
}

#[test]
fn device_memory_limits_and_out_of_memory_are_recoverable() {
    if !setup() {
        return;
    }
    use umx_cuda::memory as dm;
    let x = Array::from_slice(&vec![1.0f32; 1 << 20], &[1 << 20]).unwrap();
    let old = dm::set_memory_limit(dm::active_memory() + (1 << 20));
    let r = with_device(Device::Gpu(0), || ops::exp(&x)).and_then(|y| y.eval());
    dm::set_memory_limit(old);
    let err = r.unwrap_err();
    assert!(matches!(err, Error::OutOfMemory(_)), "{err}");
    // After the limit is lifted the same op runs.
    let y = with_device(Device::Gpu(0), || ops::exp(&x)).unwrap();
    y.eval().unwrap();
    drop(y);
    assert!(dm::cache_memory() > 0, "freed blocks are cached");
    // Tests running beside this one free blocks into the cache too: clearing empties it, but
    // one of them may free a block before the cache is read back. A few tries.
    let emptied = (0..100).any(|_| {
        dm::clear_cache().unwrap();
        let empty = dm::cache_memory() == 0;
        if !empty {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        empty
    });
    assert!(emptied, "the cache holds {} bytes", dm::cache_memory());
    assert!(dm::peak_memory() >= 4 << 20);
}

#[test]
fn primitives_without_a_kernel_run_on_the_cpu_fallback() {
    if !setup() {
        return;
    }
    // Float ranges are a running sum on the CPU, rounded at each step, which no parallel
    // kernel reproduces bit for bit: the CPU makes them.
    let r = with_device(Device::Gpu(0), || {
        ops::arange(0.0, 3.0, 0.5, Dtype::Float32)
    })
    .unwrap();
    assert_eq!(r.to_vec::<f32>().unwrap(), [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
    assert!(
        umx_cuda::fallback_ops().contains(&"creation"),
        "{:?}",
        umx_cuda::fallback_ops()
    );
}

#[test]
fn out_of_range_device_indices_are_reported_at_the_next_read() {
    if !setup() {
        return;
    }
    with_device(Device::Gpu(0), || {
        let a = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3])?;
        let idx = ops::add(&Array::from_slice(&[0i32, 7], &[2])?, 0i32)?;
        let t = ops::take(&a, &idx, None)?;
        t.eval()?;
        let e = t.to_vec::<f32>().unwrap_err().to_string();
        assert!(
            e.starts_with("take: index 7 is out of range for axis 0 of size 3"),
            "{e}"
        );
        // Reported once; the next read works (the bad element reads 0).
        assert_eq!(t.to_vec::<f32>()?, vec![1.0, 0.0]);
        // Indices known when the op is made fail at once, before any launch.
        let host = Array::from_slice(&[-4i32], &[1])?;
        let e = ops::take(&a, &host, None)
            .and_then(|t| t.eval())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "take: index -4 is out of range for axis 0 of size 3");
        Ok::<(), Error>(())
    })
    .unwrap();
}

/// Timings on the card (run with `--ignored --nocapture`): not a test of correctness.
#[test]
#[ignore]
fn timings() {
    if !setup() {
        return;
    }
    use std::time::Instant;
    let n = 1usize << 28;
    let x = with_device(Device::Gpu(0), || ops::full(&[n], 1.0f64, Dtype::Float32)).unwrap();
    let x = with_device(Device::Gpu(0), || ops::add(&x, 0.5)).unwrap();
    x.eval().unwrap();
    let sync = || {
        umx_core::device::backend(Device::Gpu(0))
            .unwrap()
            .synchronize(umx_core::Stream::default_of(Device::Gpu(0)))
            .unwrap()
    };
    let time = |name: &str, bytes: f64, flops: f64, f: &dyn Fn() -> Array| {
        f().eval().unwrap();
        sync();
        let reps = 10;
        let t = Instant::now();
        for _ in 0..reps {
            f().eval().unwrap();
        }
        sync();
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "TIMING {name:<34} {:>9.3} ms  {:>8.0} GB/s  {:>7.1} TFLOP/s",
            s * 1e3,
            bytes / s / 1e9,
            flops / s / 1e12
        );
    };
    let g = |f: &dyn Fn() -> umx_core::Result<Array>| with_device(Device::Gpu(0), f).unwrap();
    time(
        "(x*2+5)/3, 2^28 f32, 3 kernels",
        6.0 * 4.0 * n as f64,
        0.0,
        &|| g(&|| Ok((&x * 2.0 + 5.0) / 3.0)),
    );
    time("sum, 2^28 f32", 4.0 * n as f64, 0.0, &|| {
        g(&|| ops::sum(&x, None, false))
    });
    let m = 8192usize;
    for (name, dt, tf32) in [
        ("matmul 8192^3 f32", Dtype::Float32, false),
        ("matmul 8192^3 tf32", Dtype::Float32, true),
        ("matmul 8192^3 bf16", Dtype::Bfloat16, false),
    ] {
        umx_cuda::set_tf32(tf32);
        let a = g(&|| random::normal(&[m, m], dt, 0.0, 1.0, None));
        let b = g(&|| random::normal(&[m, m], dt, 0.0, 1.0, None));
        umx_core::eval([&a, &b]).unwrap();
        time(name, 0.0, 2.0 * (m * m * m) as f64, &|| {
            g(&|| ops::matmul(&a, &b))
        });
    }
    umx_cuda::set_tf32(false);
    // Per-op cost of 1000 dependent adds on 16 elements.
    let s = g(&|| ops::full(&[16], 1.0f64, Dtype::Float32));
    s.eval().unwrap();
    let t = Instant::now();
    let mut y = s.clone();
    for _ in 0..1000 {
        y = g(&|| ops::add(&y, &s));
    }
    y.eval().unwrap();
    let per = t.elapsed().as_secs_f64() / 1000.0;
    println!(
        "TIMING 1000 dependent adds on 16 f32: {:.2} us per op",
        per * 1e6
    );
    println!("TIMING value check: {}", y.to_vec::<f32>().unwrap()[0]);
    println!("TIMING fallback ops: {:?}", umx_cuda::fallback_ops());
    println!(
        "TIMING kernel cache (compiled, from disk): {:?}",
        umx_cuda::kernel_cache_stats()
    );
}
