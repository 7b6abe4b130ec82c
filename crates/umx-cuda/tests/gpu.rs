//! The CUDA backend against the CPU backend: every GPU kernel family on fresh random inputs,
//! memory statistics, transfer counters, the kernel cache, and the no-GPU behaviour. Tests
//! that need a GPU return early (and say so) on a machine without one, so CI runs them as
//! no-GPU checks.

use std::sync::Once;

type Case<'a> = (&'a str, Box<dyn Fn() -> umx_core::Result<Array> + 'a>);
type UnaryCase = (&'static str, fn(&Array) -> umx_core::Result<Array>);
use umx_core::ops;
use umx_core::{Array, Axes, Device, Dtype, Error, memory, random, with_device};

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
fn unary_ops_agree_with_the_cpu() {
    if !setup() {
        return;
    }
    let ops1: Vec<UnaryCase> = vec![
        ("exp", |x| ops::exp(x)),
        ("log1p", |x| ops::log1p(&ops::abs(x)?)),
        ("sqrt", |x| ops::sqrt(&ops::abs(x)?)),
        ("tanh", |x| ops::tanh(x)),
        ("sigmoid", |x| ops::sigmoid(x)),
        ("erf", |x| ops::erf(x)),
        ("negative", |x| ops::negative(x)),
        ("square", |x| ops::square(x)),
        ("floor", |x| ops::floor(x)),
        ("isnan", |x| ops::isnan(x)),
        ("astype_i32", |x| x.astype(Dtype::Int32)),
    ];
    for dtype in [Dtype::Float32, Dtype::Float16, Dtype::Bfloat16] {
        for (name, f) in &ops1 {
            let x = input(&[3, 1000], dtype, 1);
            let (c, g) = both(|| f(&x));
            let rtol = if dtype == Dtype::Float32 { 2e-6 } else { 1e-2 };
            assert_close(&format!("{name} {dtype}"), &c, &g, rtol);
        }
    }
    let xi = input(&[257], Dtype::Int32, 2);
    for (name, f) in &ops1[6..9] {
        let (c, g) = both(|| f(&xi));
        assert_close(&format!("{name} int32"), &c, &g, 0.0);
    }
}

#[test]
fn binary_and_ternary_ops_agree_with_the_cpu_on_every_layout() {
    if !setup() {
        return;
    }
    for dtype in [
        Dtype::Float32,
        Dtype::Float16,
        Dtype::Bfloat16,
        Dtype::Int32,
    ] {
        let a = input(&[64, 33], dtype, 3);
        let b = input(&[64, 33], dtype, 4);
        let row = input(&[33], dtype, 5);
        let exact = if dtype == Dtype::Float32 || dtype == Dtype::Int32 {
            1e-6
        } else {
            1e-2
        };
        let cases: Vec<Case> = vec![
            ("add", Box::new(|| ops::add(&a, &b))),
            ("multiply broadcast", Box::new(|| ops::multiply(&a, &row))),
            (
                "subtract transposed",
                Box::new(|| ops::subtract(&a.t()?, &b.t()?)),
            ),
            ("maximum", Box::new(|| ops::maximum(&a, &b))),
            ("divide", Box::new(|| ops::divide(&a, &b))),
            ("less", Box::new(|| ops::less(&a, &b))),
            ("scalar", Box::new(|| Ok((&a * 2.0 + 5.0) / 3.0))),
            (
                "where",
                Box::new(|| ops::where_(&ops::greater(&a, &b)?, &a, &b)),
            ),
        ];
        for (name, f) in &cases {
            let (c, g) = both(f);
            assert_close(&format!("{name} {dtype}"), &c, &g, exact);
        }
    }
    // Integer semantics: floor division and remainder by zero and negatives.
    let a = Array::from_slice(&[7i32, -7, 7, -7, 5, i32::MIN], &[6]).unwrap();
    let b = Array::from_slice(&[2i32, 2, -2, -2, 0, -1], &[6]).unwrap();
    let (c, g) = both(|| ops::floor_divide(&a, &b));
    assert_close("floor_divide", &c, &g, 0.0);
    let (c, g) = both(|| ops::remainder(&a, &b));
    assert_close("remainder", &c, &g, 0.0);
}

#[test]
fn reductions_agree_with_the_cpu_over_every_axis_set() {
    if !setup() {
        return;
    }
    for dtype in [
        Dtype::Float32,
        Dtype::Float16,
        Dtype::Bfloat16,
        Dtype::Int32,
    ] {
        let x = input(&[6, 70, 9], dtype, 6);
        let rtol = if dtype == Dtype::Float32 { 1e-5 } else { 2e-2 };
        for axes in [
            vec![],
            vec![2i64],
            vec![1],
            vec![0],
            vec![0, 2],
            vec![1, 2],
            vec![0, 1, 2],
        ] {
            let sel = || {
                if axes.is_empty() {
                    Axes::All
                } else {
                    Axes::List(axes.clone())
                }
            };
            let (c, g) = both(|| ops::sum(&x, sel(), false));
            assert_close(&format!("sum {dtype} {axes:?}"), &c, &g, rtol);
            let (c, g) = both(|| ops::max(&x, sel(), false));
            assert_close(&format!("max {dtype} {axes:?}"), &c, &g, 0.0);
            let (c, g) = both(|| ops::min(&x, sel(), true));
            assert_close(&format!("min {dtype} {axes:?}"), &c, &g, 0.0);
            if dtype != Dtype::Int32 {
                let (c, g) = both(|| ops::mean(&x, sel(), false));
                assert_close(&format!("mean {dtype} {axes:?}"), &c, &g, rtol);
            }
        }
    }
    // Few long columns: the reduced axis splits into parts, reduced again.
    let x = input(&[1000, 10], Dtype::Float32, 7);
    let (c, g) = both(|| ops::sum(&x, 0, false));
    assert_close("sum of long columns", &c, &g, 1e-4);
    let (c, g) = both(|| ops::mean(&x, 0, true));
    assert_close("mean of long columns", &c, &g, 1e-4);
    let (c, g) = both(|| ops::max(&x, 0, false));
    assert_close("max of long columns", &c, &g, 0.0);
    let (c, g) = both(|| ops::any(&ops::greater(&x, 3.5)?, 0, false));
    assert_close("any of long columns", &c, &g, 0.0);
    // all/any test truth: 0.5 is true.
    let h = Array::from_slice(&[0.5f32, 2.0, 0.0, -1.0, 0.5, 0.25], &[2, 3]).unwrap();
    for axes in [Axes::All, Axes::List(vec![0]), Axes::List(vec![1])] {
        let (c, g) = both(|| ops::all(&h, axes.clone(), false));
        assert_close("all", &c, &g, 0.0);
        let (c, g) = both(|| ops::any(&h, axes.clone(), false));
        assert_close("any", &c, &g, 0.0);
    }
    // A long reduction takes the split (two-pass) path.
    let big = input(&[1 << 20], Dtype::Float32, 7);
    let (c, g) = both(|| ops::sum(&big, None, false));
    assert_close("sum 2^20", &c, &g, 1e-4);
}

#[test]
fn matmul_agrees_with_the_cpu() {
    if !setup() {
        return;
    }
    umx_cuda::set_tf32(false);
    for dtype in [Dtype::Float32, Dtype::Float16, Dtype::Bfloat16] {
        let rtol = if dtype == Dtype::Float32 { 1e-4 } else { 2e-2 };
        let a = input(&[3, 37, 64], dtype, 8);
        let b = input(&[3, 64, 29], dtype, 9);
        let w = input(&[64, 29], dtype, 10);
        let v = input(&[64], dtype, 11);
        let bias = input(&[29], dtype, 12);
        let wide_bias = input(&[30], dtype, 13);
        let full = input(&[3, 37, 29], dtype, 14);
        let cases: Vec<Case> = vec![
            ("batched", Box::new(|| ops::matmul(&a, &b))),
            ("broadcast batch", Box::new(|| ops::matmul(&a, &w))),
            (
                "transposed",
                Box::new(|| ops::matmul(&w.t()?, &a.transpose([0, 2, 1])?)),
            ),
            ("vector", Box::new(|| ops::matmul(&a, &v))),
            // addmm with a bias vector: cuBLASLt's bias epilogue (batched and not), then the
            // C-operand path for a bias scaled by beta, a bias view at an odd offset (not
            // 16-byte aligned) and a full addend.
            (
                "bias",
                Box::new(|| ops::addmm(&bias, &a.reshape(&[111, 64])?, &w, 1.0, 1.0)),
            ),
            (
                "bias, batched, alpha",
                Box::new(|| ops::addmm(&bias, &a, &w, 0.5, 1.0)),
            ),
            (
                "bias, beta",
                Box::new(|| ops::addmm(&bias, &a, &w, 1.0, 2.0)),
            ),
            (
                "bias, unaligned view",
                Box::new(|| {
                    let odd = ops::slice(&wide_bias, &[1], &[30], &[1])?;
                    ops::addmm(&odd, &a, &w, 1.0, 1.0)
                }),
            ),
            (
                "full addend",
                Box::new(|| ops::addmm(&full, &a, &w, 1.0, 1.0)),
            ),
        ];
        for (name, f) in &cases {
            let (c, g) = both(f);
            // Relative to the size of the sums: compare against the largest magnitude.
            let scale = c.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            let cs: Vec<f64> = c.iter().map(|x| x / scale).collect();
            let gs: Vec<f64> = g.iter().map(|x| x / scale).collect();
            assert_close(&format!("{name} {dtype}"), &cs, &gs, rtol);
        }
    }
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
fn long_lanes_sort_on_the_gpu_as_on_the_cpu() {
    if !setup() {
        return;
    }
    // Lanes past shared memory (2048): the network in global memory. Ties, NaNs, several
    // lanes, the sorted axis first (strided lanes) and last.
    for dtype in [Dtype::Float32, Dtype::Int32, Dtype::Float16] {
        for shape in [vec![3, 3000], vec![5000, 2], vec![4097]] {
            let x = with_device(Device::Cpu, || {
                let r = ops::round(&input(&shape, Dtype::Float32, 41), 0)?;
                let nan = ops::equal(&r, 3.0)?;
                let r = ops::where_(&nan, f32::NAN, &r)?;
                r.astype(dtype)
            })
            .unwrap();
            let axis = if shape.len() == 2 && shape[0] > shape[1] {
                0
            } else {
                -1
            };
            let n = shape[if axis == 0 { 0 } else { shape.len() - 1 }];
            let cases: Vec<Case> = vec![
                ("sort", Box::new(|| ops::sort(&x, Some(axis)))),
                ("argsort", Box::new(|| ops::argsort(&x, Some(axis)))),
                ("topk", Box::new(|| ops::topk(&x, 17, Some(axis)))),
                (
                    "partition: a permutation",
                    Box::new(|| {
                        ops::sort(&ops::partition(&x, (n / 2) as i64, Some(axis))?, Some(axis))
                    }),
                ),
                (
                    "partition: the kth element",
                    Box::new(|| {
                        let kth = Array::from_slice(&[(n / 2) as i32], &[1])?;
                        ops::take(
                            &ops::partition(&x, (n / 2) as i64, Some(axis))?,
                            &kth,
                            Some(axis),
                        )
                    }),
                ),
            ];
            for (name, f) in &cases {
                let (c, g) = both(f);
                assert_close(&format!("{name} {dtype} {shape:?}"), &c, &g, 0.0);
            }
        }
    }
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
    let time = |name: &str, bytes: f64, flops: f64, f: &dyn Fn() -> Array| {
        let y = f();
        y.eval().unwrap();
        umx_core::device::backend(Device::Gpu(0))
            .unwrap()
            .synchronize(umx_core::Stream::default_of(Device::Gpu(0)))
            .unwrap();
        let reps = 10;
        let t = Instant::now();
        for _ in 0..reps {
            let y = f();
            y.eval().unwrap();
        }
        umx_core::device::backend(Device::Gpu(0))
            .unwrap()
            .synchronize(umx_core::Stream::default_of(Device::Gpu(0)))
            .unwrap();
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

#[test]
fn gathers_scatters_scans_and_arg_reductions_agree_with_the_cpu() {
    if !setup() {
        return;
    }
    use umx_core::primitives::shape::PadMode;
    let i32s = |v: &[i32], shape: &[usize]| {
        with_device(Device::Cpu, || Array::from_slice(v, shape)).unwrap()
    };
    for dtype in [Dtype::Float32, Dtype::Float16, Dtype::Int32, Dtype::Uint8] {
        let a = input(&[6, 5, 4], dtype, 11);
        let t = with_device(Device::Cpu, || ops::transpose(&a, [2, 0, 1])).unwrap();
        // Indices made on the host, and the same made on the GPU (checked by the kernel).
        let idx = i32s(&[3, -1, 0, 5, 2, 3, 3], &[7]);
        let rows = i32s(&[0, 4, -2, 1, 1, 0], &[6, 1, 1]);
        let dev = |x: &Array| with_device(Device::Gpu(0), || ops::add(x, 0i32)).unwrap();
        let (idx_d, rows_d) = (dev(&idx), dev(&rows));
        let upd = input(&[7, 5, 4], dtype, 12);
        let cases: Vec<Case> = vec![
            ("take axis 0", Box::new(|| ops::take(&a, &idx, Some(0)))),
            (
                "take axis 0 device idx",
                Box::new(|| ops::take(&a, &idx_d, Some(0))),
            ),
            (
                "take flat of a view",
                Box::new(|| ops::take(&t, &idx, None)),
            ),
            (
                "take axis -1 of a view",
                Box::new(|| ops::take(&t, &i32s(&[1, 0, 4, -5], &[2, 2]), Some(-1))),
            ),
            (
                "take_along_axis",
                Box::new(|| ops::take_along_axis(&a, &rows, 1)),
            ),
            (
                "take_along_axis device idx",
                Box::new(|| ops::take_along_axis(&a, &rows_d, 1)),
            ),
            (
                "gather",
                Box::new(|| ops::gather(&a, std::slice::from_ref(&idx), &[0], &[1, 5, 2])),
            ),
            (
                "scatter (unique)",
                Box::new(|| {
                    ops::scatter(
                        &a,
                        &[i32s(&[5, 0], &[2])],
                        &input(&[2, 1, 5, 4], dtype, 13),
                        &[0],
                    )
                }),
            ),
            (
                "scatter_add (repeats)",
                Box::new(|| {
                    ops::scatter_add(
                        &a,
                        std::slice::from_ref(&idx_d),
                        &ops::expand_dims(&upd, [1])?,
                        &[0],
                    )
                }),
            ),
            (
                "scatter_max (repeats)",
                Box::new(|| {
                    ops::scatter_max(
                        &a,
                        std::slice::from_ref(&idx),
                        &ops::expand_dims(&upd, [1])?,
                        &[0],
                    )
                }),
            ),
            (
                "scatter_prod",
                Box::new(|| {
                    ops::scatter_prod(
                        &a,
                        &[i32s(&[1, 4], &[2])],
                        &input(&[2, 1, 5, 4], dtype, 14),
                        &[0],
                    )
                }),
            ),
            (
                "put_along_axis",
                Box::new(|| ops::put_along_axis(&a, &rows, &input(&[6, 1, 4], dtype, 15), 1)),
            ),
            (
                "slice_update",
                Box::new(|| {
                    ops::slice_update(
                        &a,
                        &input(&[2, 5, 2], dtype, 16),
                        &[1, 0, 3],
                        &[5, 5, 0],
                        &[2, 1, -2],
                    )
                }),
            ),
            ("tril", Box::new(|| ops::tril(&a, -1))),
            ("triu of a view", Box::new(|| ops::triu(&t, 1))),
            (
                "diag matrix",
                Box::new(|| ops::diag(&ops::reshape(&a, &[-1])?, -3)),
            ),
            (
                "concatenate",
                Box::new(|| ops::concatenate(&[a.clone(), upd.clone()], 0)),
            ),
            (
                "concatenate views",
                Box::new(|| ops::concatenate(&[t.clone(), t.clone()], 2)),
            ),
            (
                "pad",
                Box::new(|| ops::pad(&a, &[(1, 0), (0, 2), (3, 1)], 7.0, PadMode::Constant)),
            ),
            ("argmax last", Box::new(|| ops::argmax(&a, Some(-1), false))),
            ("argmin middle", Box::new(|| ops::argmin(&a, Some(1), true))),
            (
                "argmax of a view",
                Box::new(|| ops::argmax(&t, Some(0), false)),
            ),
            ("cumsum", Box::new(|| ops::cumsum(&a, Some(1), false, true))),
            (
                "cumsum reverse exclusive",
                Box::new(|| ops::cumsum(&a, Some(2), true, false)),
            ),
            (
                "cumprod",
                Box::new(|| ops::cumprod(&a, Some(0), false, true)),
            ),
            (
                "cummax of a view",
                Box::new(|| ops::cummax(&t, Some(2), false, true)),
            ),
            (
                "cummin exclusive",
                Box::new(|| ops::cummin(&a, Some(2), false, false)),
            ),
            ("sort", Box::new(|| ops::sort(&a, Some(1)))),
            ("sort of a view", Box::new(|| ops::sort(&t, Some(0)))),
            ("argsort", Box::new(|| ops::argsort(&a, Some(-1)))),
            ("argsort of a view", Box::new(|| ops::argsort(&t, Some(2)))),
            ("topk", Box::new(|| ops::topk(&a, 3, Some(1)))),
            ("eye", Box::new(|| ops::eye(5, 7, 1, dtype))),
            ("tri", Box::new(|| ops::tri(6, 4, -1, dtype))),
        ];
        for (name, f) in &cases {
            let (c, g) = both(f);
            let float = dtype.is_float();
            let rtol = if dtype == Dtype::Float16 {
                2e-3
            } else if float {
                1e-5
            } else {
                0.0
            };
            assert_close(&format!("{name} {dtype}"), &c, &g, rtol);
        }
    }
    // Long rows: the tiled scan, and the arg-reduction over many lanes, NaN and ties included.
    let x = input(&[3, 5000], Dtype::Float32, 17);
    let (c, g) = both(|| ops::cumsum(&x, Some(1), false, true));
    // Float sums in another order: errors scale with the running sums, not the value.
    assert_close("cumsum long rows", &c, &g, 1e-3);
    let (c, g) = both(|| ops::logcumsumexp(&x, Some(1), true, true));
    assert_close("logcumsumexp long rows", &c, &g, 1e-5);
    let v = with_device(Device::Cpu, || {
        Array::from_slice(
            &[1.0f32, 3.0, f32::NAN, 3.0, f32::NAN, -1.0, 3.0, 0.0],
            &[2, 4],
        )
    })
    .unwrap();
    for axis in [0, 1] {
        let (c, g) = both(|| ops::argmax(&v, Some(axis), false));
        assert_eq!(c, g, "argmax with NaN along {axis}");
        let (c, g) = both(|| ops::argmin(&v, Some(axis), false));
        assert_eq!(c, g, "argmin with NaN along {axis}");
    }
    // Sorting: NaNs last, ties by position (a stable argsort), a long lane.
    let (c, g) = both(|| ops::argsort(&ops::concatenate(&[v.clone(), v.clone()], 1)?, Some(1)));
    assert_eq!(c, g, "argsort with NaN and ties");
    let long = input(&[2, 2000], Dtype::Bfloat16, 18);
    let (c, g) = both(|| ops::argsort(&long, Some(1)));
    assert_eq!(c, g, "argsort of 2000-element lanes");
    let fell_back = umx_cuda::fallback_ops();
    for op in [
        "take",
        "take_along_axis",
        "gather",
        "scatter",
        "argmax",
        "cumsum",
        "concatenate",
        // (not "sort": another test sorts a lane too long for the GPU on purpose)
        "argsort",
    ] {
        assert!(
            !fell_back.contains(&op),
            "{op} ran on the CPU fallback: {fell_back:?}"
        );
    }
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

#[test]
fn random_bits_and_samples_match_the_cpu() {
    if !setup() {
        return;
    }
    let key = random::key(7).unwrap();
    let exact = |what: &str, f: &dyn Fn() -> umx_core::Result<Array>| {
        let (c, g) = both(f);
        assert_eq!(c, g, "{what}");
    };
    // One key: odd and even word counts, and uint8/uint16 blocks whose last word is cut.
    for (shape, width) in [
        (&[7][..], 4),
        (&[3, 6][..], 4),
        (&[100_003][..], 4),
        (&[13][..], 1),
        (&[5, 3][..], 2),
        (&[4097][..], 1),
        (&[0][..], 4),
        (&[2, 0][..], 1),
    ] {
        exact(&format!("bits {shape:?} width {width}"), &|| {
            random::bits(shape, width, Some(&key))
        });
    }
    exact("split", &|| random::split(&key, 5));
    exact(
        "bits of a key that is a view of the device's split",
        &|| {
            let keys = random::split(&key, 2)?;
            let second = ops::reshape(&ops::slice(&keys, &[1, 0], &[2, 2], &[1, 1])?, &[2])?;
            random::bits(&[9], 4, Some(&second))
        },
    );
    // Several keys in one draw (vmap over keys): made on each device, as a transposed view or
    // every other row (copied to be contiguous first), and on the host; blocks of 5 bytes do
    // not start at whole words.
    let per_key = |keys: &Array, axis: i64, shape: &'static [usize], width: usize| {
        let (in_axes, out_axes) = ([Some(axis)], [Some(0)]);
        let f = umx_core::vmap(
            move |a: &[Array]| Ok(vec![random::bits(shape, width, Some(&a[0]))?]),
            &in_axes,
            &out_axes,
        );
        f(std::slice::from_ref(keys)).map(|mut v| v.remove(0))
    };
    let host_keys = with_device(Device::Cpu, || random::split(&key, 3)).unwrap();
    for (shape, width) in [(&[5][..], 1), (&[3][..], 4), (&[2, 3][..], 2)] {
        exact(&format!("bits of split keys {shape:?}"), &|| {
            per_key(&random::split(&key, 3)?, 0, shape, width)
        });
        exact(&format!("bits of transposed keys {shape:?}"), &|| {
            per_key(
                &ops::transpose(&random::split(&key, 3)?, [1, 0])?,
                1,
                shape,
                width,
            )
        });
        exact(&format!("bits of every other key {shape:?}"), &|| {
            let keys = ops::slice(&random::split(&key, 6)?, &[1, 0], &[6, 2], &[2, 1])?;
            per_key(&keys, 0, shape, width)
        });
        exact(&format!("bits of host keys {shape:?}"), &|| {
            per_key(&host_keys, 0, shape, width)
        });
    }

    // Samples: parameters that broadcast, an odd element count (the vector path's tail).
    let shape = [64, 129];
    let row = input(&[129], Dtype::Float32, 21);
    let p = with_device(Device::Cpu, || ops::sigmoid(&row)).unwrap();
    let lows = with_device(Device::Cpu, || {
        Array::from_slice(&[-5i32, 0, 3, 100], &[4, 1])
    })
    .unwrap();
    exact("bernoulli", &|| {
        random::bernoulli(&p, Some(&shape), Some(&key))
    });
    exact("bernoulli scalar", &|| {
        random::bernoulli(0.3f32, Some(&shape), Some(&key))
    });
    for dtype in [Dtype::Int32, Dtype::Int64, Dtype::Uint8] {
        exact(&format!("randint {dtype}"), &|| {
            random::randint(0i32, 200i32, &shape, dtype, Some(&key))
        });
    }
    exact("randint broadcast", &|| {
        random::randint(&lows, 1000i32, &[4, 129], Dtype::Int32, Some(&key))
    });
    for dtype in [
        Dtype::Float32,
        Dtype::Bfloat16,
        Dtype::Float16,
        Dtype::Float64,
    ] {
        // No logarithm: the same bits.
        exact(&format!("uniform {dtype}"), &|| {
            random::uniform(-2.0, 3.0, &shape, dtype, Some(&key))
        });
        exact(&format!("uniform broadcast {dtype}"), &|| {
            random::uniform(&row, 5.0, &shape, dtype, Some(&key))
        });
        exact(&format!("uniform empty {dtype}"), &|| {
            random::uniform(0.0, 1.0, &[0, 3], dtype, Some(&key))
        });
        // Logarithms differ from glibc's in the last bit at times: a few ulp of float32.
        let rtol = match dtype {
            Dtype::Bfloat16 => 1e-2,
            Dtype::Float16 => 2e-3,
            _ => 2e-6,
        };
        let cases: Vec<Case> = vec![
            (
                "normal",
                Box::new(|| random::normal(&shape, dtype, 0.0, 1.0, Some(&key))),
            ),
            (
                "normal loc scale",
                Box::new(|| random::normal(&shape, dtype, &row, 0.5, Some(&key))),
            ),
            (
                "gumbel",
                Box::new(|| random::gumbel(&shape, dtype, Some(&key))),
            ),
            (
                "laplace",
                Box::new(|| random::laplace(&shape, dtype, 0.0, 1.0, Some(&key))),
            ),
            (
                "laplace loc scale",
                Box::new(|| random::laplace(&shape, dtype, 0.5, 2.0, Some(&key))),
            ),
            (
                "truncated_normal",
                Box::new(|| random::truncated_normal(-1.5, 2.0, Some(&shape), dtype, Some(&key))),
            ),
            (
                "truncated_normal broadcast",
                Box::new(|| random::truncated_normal(&row, 3.0, Some(&shape), dtype, Some(&key))),
            ),
        ];
        for (name, f) in &cases {
            let (c, g) = both(f);
            assert_close(&format!("{name} {dtype}"), &c, &g, rtol);
            let differ = c.iter().zip(&g).filter(|(a, b)| a != b).count();
            eprintln!("{name} {dtype}: {differ} of {} differ", c.len());
        }
    }
    let fell_back = umx_cuda::fallback_ops();
    assert!(
        !fell_back.contains(&"random"),
        "random ran on the CPU fallback: {fell_back:?}"
    );
}

#[test]
fn fast_kernels_agree_with_the_cpu_on_long_rows_views_and_caches() {
    use umx_core::fast::{self, AttentionMask};
    if !setup() {
        return;
    }
    for (dt, tol) in [
        (Dtype::Float32, 2e-5),
        (Dtype::Bfloat16, 2e-2),
        (Dtype::Float16, 4e-3),
    ] {
        // Row lengths: one warp, a vector per thread, registers, and past registers (re-read).
        for d in [7, 96, 4096, 70000] {
            let x = input(&[3, d], dt, d as u64);
            let w = input(&[d], dt, 1);
            let b = input(&[d], Dtype::Float32, 2);
            let what = format!("{dt} d={d}");
            // The CPU sums a row one element after another: over 70000 float32 its rounding
            // error passes the tree sums' (the GPU's) by more than the usual tolerance.
            let tol: f64 = if d > 10000 { f64::max(tol, 1e-4) } else { tol };
            let (c, g) = both(|| fast::rms_norm(&x, Some(&w), 1e-5));
            assert_close(&format!("rms_norm {what}"), &c, &g, tol);
            let (c, g) = both(|| fast::layer_norm(&x, Some(&w), Some(&b), 1e-5));
            assert_close(&format!("layer_norm {what}"), &c, &g, tol);
            let (c, g) = both(|| ops::softmax(&x, -1, true));
            assert_close(&format!("softmax {what}"), &c, &g, tol);
        }
        // Rope on a transposed view (B, H, L, D) of (B, L, H, D), offsets per sequence.
        let x = input(&[2, 5, 3, 32], dt, 3);
        let offsets = Array::from_slice(&[4i32, 900], &[2]).unwrap();
        for traditional in [false, true] {
            let (c, g) = both(|| {
                let xt = ops::transpose(&x, [0, 2, 1, 3])?;
                fast::rope(&xt, 24, traditional, Some(1e4), 0.5, &offsets, None)
            });
            assert_close(&format!("rope {dt} {traditional}"), &c, &g, tol);
        }
        // Decoding attention against a slice of a preallocated cache, grouped heads.
        let q = input(&[2, 8, 1, 128], dt, 4);
        let cache = input(&[2, 2, 1000, 128], dt, 5);
        let sinks = input(&[8], Dtype::Float32, 6);
        let mask = with_device(Device::Cpu, || {
            ops::less(input(&[2, 1, 3, 700], Dtype::Float32, 7), 1.5)
        })
        .unwrap();
        for lq in [1usize, 3] {
            let q = with_device(Device::Cpu, || {
                ops::slice(
                    &ops::repeat(&q, lq, 2)?,
                    &[0, 0, 0, 0],
                    &[2, 8, lq as i64, 128],
                    &[],
                )
            })
            .unwrap();
            let cases: Vec<(AttentionMask, Option<&Array>)> = vec![
                (AttentionMask::None, None),
                (AttentionMask::Causal, Some(&sinks)),
            ];
            for (m, s) in cases {
                let (c, g) = both(|| {
                    let kv = ops::slice(&cache, &[0, 0, 0, 0], &[2, 2, 700, 128], &[])?;
                    fast::scaled_dot_product_attention(&q, &kv, &kv, 0.088, m, s)
                });
                assert_close(
                    &format!("attention {dt} lq={lq} {m:?}"),
                    &c,
                    &g,
                    tol.max(1e-3),
                );
            }
            if lq == 3 {
                let (c, g) = both(|| {
                    let kv = ops::slice(&cache, &[0, 0, 0, 0], &[2, 2, 700, 128], &[])?;
                    fast::scaled_dot_product_attention(
                        &q,
                        &kv,
                        &kv,
                        0.088,
                        AttentionMask::Array(&mask),
                        None,
                    )
                });
                assert_close(&format!("attention {dt} bool mask"), &c, &g, tol.max(1e-3));
            }
        }
    }
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
fn factorizations_run_on_the_gpu_and_agree_with_the_cpu() {
    if !setup() {
        return;
    }
    use umx_core::linalg;
    let cpu = |f: &dyn Fn() -> umx_core::Result<Array>| with_device(Device::Cpu, f).unwrap();
    for dtype in [Dtype::Float32, Dtype::Float64] {
        let tol: f64 = if dtype == Dtype::Float32 { 2e-3 } else { 1e-8 };
        // A batch of small matrices (the batched library calls), one big matrix, a batch of
        // big ones (one call each), a strided batch.
        for (shape, seed) in [
            (vec![6, 5, 5], 1u64),
            (vec![200, 200], 2),
            (vec![2, 150, 150], 3),
            (vec![3, 1, 4, 4], 4),
        ] {
            let nd = shape.len();
            let n = shape[nd - 1];
            let what = |op: &str| format!("{op} {dtype} {shape:?}");
            let eye = cpu(&|| ops::eye(n, None, 0, dtype));
            // Well conditioned: a random matrix plus n on the diagonal.
            let a = cpu(&|| ops::add(input(&shape, dtype, seed), &ops::multiply(&eye, n as f64)?));
            let spd = cpu(&|| ops::add(&ops::matmul(&a, &ops::swapaxes(&a, -1, -2)?)?, &eye));
            let mut bs = shape.clone();
            bs[nd - 1] = 3;
            let b = input(&bs, dtype, seed + 10);
            let at = cpu(&|| ops::swapaxes(&a, -1, -2)); // a transposed view
            let cases: Vec<Case> = vec![
                ("solve", Box::new(|| linalg::solve(&a, &b))),
                ("solve of a view", Box::new(|| linalg::solve(&at, &b))),
                ("inv", Box::new(|| linalg::inv(&a))),
                (
                    "solve_triangular lower",
                    Box::new(|| linalg::solve_triangular(&a, &b, false)),
                ),
                (
                    "solve_triangular upper",
                    Box::new(|| linalg::solve_triangular(&at, &b, true)),
                ),
                ("cholesky lower", Box::new(|| linalg::cholesky(&spd, false))),
                ("cholesky upper", Box::new(|| linalg::cholesky(&spd, true))),
                (
                    "qr: q r",
                    Box::new(|| {
                        let (q, r) = linalg::qr(&a)?;
                        ops::matmul(&q, &r)
                    }),
                ),
                ("qr: |r|", Box::new(|| ops::abs(&linalg::qr(&at)?.1))),
                (
                    "svd values",
                    Box::new(|| Ok(linalg::svd(&a, false)?.remove(0))),
                ),
                (
                    "svd: u s vt",
                    Box::new(|| {
                        let usv = linalg::svd(&a, true)?;
                        let us = ops::multiply(&usv[0], &ops::expand_dims(&usv[1], -2)?)?;
                        ops::matmul(&us, &usv[2])
                    }),
                ),
                ("eigvalsh", Box::new(|| linalg::eigvalsh(&spd, "L"))),
                (
                    "eigh: v w vt",
                    Box::new(|| {
                        let (w, v) = linalg::eigh(&spd, "U")?;
                        let vw = ops::multiply(&v, &ops::expand_dims(&w, -2)?)?;
                        ops::matmul(&vw, &ops::swapaxes(&v, -1, -2)?)
                    }),
                ),
                ("lu_factor: lu", Box::new(|| Ok(linalg::lu_factor(&a)?.0))),
                (
                    "lu_factor: pivots",
                    Box::new(|| Ok(linalg::lu_factor(&a)?.1)),
                ),
                ("lu: p", Box::new(|| Ok(linalg::lu(&at)?.0))),
                ("det", Box::new(|| linalg::det(&a))),
                ("eigvals", Box::new(|| ops::sort(&linalg::eigvals(&a)?, -1))),
                (
                    "eig residual",
                    Box::new(|| {
                        let (w, v) = linalg::eig(&a)?;
                        let ac = ops::astype(&a, Dtype::Complex64)?;
                        let av = ops::matmul(&ac, &v)?;
                        let r =
                            ops::subtract(&av, &ops::multiply(&v, &ops::expand_dims(&w, -2)?)?)?;
                        ops::divide(&ops::abs(&r)?, 2.0 * n as f64)
                    }),
                ),
            ];
            for (name, f) in &cases {
                let (c, g) = both_complex(f);
                let scale = c.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                let c: Vec<f64> = c.iter().map(|v| v / scale).collect();
                let g: Vec<f64> = g.iter().map(|v| v / scale).collect();
                // Eigenvectors are complex64 whatever the input's precision.
                let tol = if name.starts_with("eig") {
                    tol.max(2e-5)
                } else {
                    tol
                };
                assert_close(&what(name), &c, &g, tol);
            }
        }
        // Wide and tall matrices.
        for shape in [vec![4, 7, 3], vec![3, 9]] {
            let a = input(&shape, dtype, 7);
            let (c, g) = both(|| Ok(linalg::svd(&a, false)?.remove(0)));
            assert_close(&format!("svd values {shape:?}"), &c, &g, tol);
            let (c, g) = both(|| {
                let usv = linalg::svd(&a, true)?;
                let k = usv[1].shape()[usv[1].ndim() - 1];
                let nd = a.ndim();
                let mut stop: Vec<i64> = usv[0].shape().iter().map(|&d| d as i64).collect();
                stop[nd - 1] = k as i64;
                let uk = ops::slice(&usv[0], &vec![0; nd], &stop, &[])?;
                let mut stop: Vec<i64> = usv[2].shape().iter().map(|&d| d as i64).collect();
                stop[nd - 2] = k as i64;
                let vk = ops::slice(&usv[2], &vec![0; nd], &stop, &[])?;
                ops::matmul(&ops::multiply(&uk, &ops::expand_dims(&usv[1], -2)?)?, &vk)
            });
            assert_close(&format!("svd u s vt {shape:?}"), &c, &g, tol * 10.0);
            let (c, g) = both(|| {
                let (q, r) = linalg::qr(&a)?;
                ops::matmul(&q, &r)
            });
            assert_close(&format!("qr {shape:?}"), &c, &g, tol * 10.0);
            let (c, g) = both(|| Ok(linalg::lu(&a)?.2));
            assert_close(&format!("lu u {shape:?}"), &c, &g, tol * 10.0);
        }
        // NumPy's answers to bad input, from the GPU kernels.
        let z = cpu(&|| ops::zeros(&[2, 3, 3], dtype));
        let err = with_device(Device::Gpu(0), || linalg::solve(&z, &z))
            .and_then(|x| x.eval())
            .unwrap_err();
        assert!(err.to_string().contains("Singular matrix"), "{err}");
        let not_pd = cpu(&|| ops::multiply(&ops::eye(4, None, 0, dtype)?, -1.0));
        let err = with_device(Device::Gpu(0), || linalg::cholesky(&not_pd, false))
            .and_then(|x| x.eval())
            .unwrap_err();
        assert!(err.to_string().contains("not positive definite"), "{err}");
        let inf = cpu(&|| ops::multiply(&ops::ones(&[2, 2], dtype)?, f64::INFINITY));
        let err = with_device(Device::Gpu(0), || Ok(linalg::svd(&inf, true)?.remove(1)))
            .and_then(|x| x.eval())
            .unwrap_err();
        assert!(err.to_string().contains("did not converge"), "{err}");
        let w = with_device(Device::Gpu(0), || linalg::eigvalsh(&inf, "L")).unwrap();
        assert!(w.to_vec::<f64>().unwrap().iter().all(|v| v.is_nan()));
    }
    assert!(
        !umx_cuda::fallback_ops().contains(&"linalg"),
        "{:?}",
        umx_cuda::fallback_ops()
    );
}

#[test]
fn fourier_transforms_run_on_the_gpu_and_agree_with_the_cpu() {
    if !setup() {
        return;
    }
    use umx_core::fft;
    for dtype in [Dtype::Float32, Dtype::Float64] {
        let x = input(&[3, 16, 5], dtype, 11);
        let xt = with_device(Device::Cpu, || ops::swapaxes(&x, 0, 2)).unwrap();
        for axis in [0i64, 1, 2, -1] {
            for norm in ["backward", "ortho", "forward"] {
                let cases: Vec<Case> = vec![
                    ("fft", Box::new(|| fft::fft(&x, None, axis, norm))),
                    ("fft n=7", Box::new(|| fft::fft(&x, Some(7), axis, norm))),
                    (
                        "fft of a view",
                        Box::new(|| fft::fft(&xt, Some(13), axis, norm)),
                    ),
                    (
                        "ifft",
                        Box::new(|| {
                            fft::ifft(&fft::fft(&x, None, axis, "backward")?, None, axis, norm)
                        }),
                    ),
                    ("rfft", Box::new(|| fft::rfft(&x, None, axis, norm))),
                    ("rfft n=9", Box::new(|| fft::rfft(&xt, Some(9), axis, norm))),
                    (
                        "irfft",
                        Box::new(|| {
                            fft::irfft(&fft::rfft(&x, None, axis, "backward")?, None, axis, norm)
                        }),
                    ),
                    (
                        "irfft n=11",
                        Box::new(|| {
                            fft::irfft(&fft::fft(&x, None, axis, "backward")?, Some(11), axis, norm)
                        }),
                    ),
                ];
                for (name, f) in &cases {
                    let (c, g) = both_complex(f);
                    let scale = c.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                    let c: Vec<f64> = c.iter().map(|v| v / scale).collect();
                    let g: Vec<f64> = g.iter().map(|v| v / scale).collect();
                    assert_close(&format!("{name} {dtype} axis {axis} {norm}"), &c, &g, 1e-5);
                }
            }
        }
        let (c, g) = both_complex(|| fft::fftn(&x, None, None, "backward"));
        assert_close(&format!("fftn {dtype}"), &c, &g, 1e-4);
    }
    // A long signal.
    let long = input(&[1 << 20], Dtype::Float32, 12);
    let (c, g) = both_complex(|| fft::fft(&long, None, -1, "ortho"));
    assert_close("fft 2^20", &c, &g, 1e-3);
    assert!(
        !umx_cuda::fallback_ops().contains(&"fft"),
        "{:?}",
        umx_cuda::fallback_ops()
    );
}

#[test]
fn complex_element_wise_ops_run_on_the_gpu_and_agree_with_the_cpu() {
    if !setup() {
        return;
    }
    use umx_core::fft;
    let x = input(&[6, 10], Dtype::Float32, 21);
    let y = input(&[6, 10], Dtype::Float32, 22);
    // Spectra: complex64 values with real and imaginary parts of every sign, made on the CPU
    // so both devices see the same values (a zero imaginary part computed as +-1e-8 by one
    // FFT and not the other would put `sqrt` and `log` on either side of their branch cut).
    let zc = with_device(Device::Cpu, || fft::fft(&x, None, -1, "ortho")).unwrap();
    let wc = with_device(Device::Cpu, || fft::fft(&y, None, 0, "ortho")).unwrap();
    umx_core::eval(&[zc.clone(), wc.clone()]).unwrap();
    let z = || -> umx_core::Result<Array> { Ok(zc.clone()) };
    let w = || -> umx_core::Result<Array> { Ok(wc.clone()) };
    let cases: Vec<Case> = vec![
        ("add", Box::new(|| ops::add(&z()?, &w()?))),
        ("subtract", Box::new(|| ops::subtract(&z()?, &w()?))),
        ("multiply", Box::new(|| ops::multiply(&z()?, &w()?))),
        ("divide", Box::new(|| ops::divide(&z()?, &w()?))),
        ("with a real array", Box::new(|| ops::multiply(&z()?, &x))),
        ("with a scalar", Box::new(|| ops::add(&z()?, 2.5))),
        (
            "of a transposed view",
            Box::new(|| ops::add(&ops::transpose(&z()?, None)?, &ops::transpose(&w()?, None)?)),
        ),
        (
            "broadcast",
            Box::new(|| ops::multiply(&z()?, &ops::slice(&w()?, &[0, 0], &[1, 10], &[])?)),
        ),
        ("abs", Box::new(|| ops::abs(&z()?))),
        ("real", Box::new(|| ops::real(&z()?))),
        ("imag", Box::new(|| ops::imag(&z()?))),
        ("conj", Box::new(|| ops::conjugate(&z()?))),
        ("negative", Box::new(|| ops::negative(&z()?))),
        ("square", Box::new(|| ops::square(&z()?))),
        ("sqrt", Box::new(|| ops::sqrt(&z()?))),
        ("exp", Box::new(|| ops::exp(&z()?))),
        ("log", Box::new(|| ops::log(&z()?))),
        ("reciprocal", Box::new(|| ops::reciprocal(&z()?))),
        ("sign", Box::new(|| ops::sign(&z()?))),
        (
            "isfinite",
            Box::new(|| ops::isfinite(&ops::divide(&z()?, 0.0)?)),
        ),
        (
            "equal",
            Box::new(|| ops::equal(&z()?, &ops::conjugate(&z()?)?)),
        ),
        (
            "to float32",
            Box::new(|| ops::astype(&z()?, Dtype::Float32)),
        ),
        (
            "to int32",
            Box::new(|| ops::astype(&ops::multiply(&z()?, 10.0)?, Dtype::Int32)),
        ),
        (
            "to bool",
            Box::new(|| ops::astype(&ops::real(&z()?)?.astype(Dtype::Complex64)?, Dtype::Bool)),
        ),
        (
            "from float32",
            Box::new(|| ops::astype(&x, Dtype::Complex64)),
        ),
        (
            "from float16",
            Box::new(|| ops::astype(&x.astype(Dtype::Float16)?, Dtype::Complex64)),
        ),
        (
            "where",
            Box::new(|| ops::where_(&ops::greater(&x, 0.0)?, &z()?, &w()?)),
        ),
        ("sin", Box::new(|| ops::sin(&z()?))),
        ("cos", Box::new(|| ops::cos(&z()?))),
        ("tan", Box::new(|| ops::tan(&z()?))),
        ("sinh", Box::new(|| ops::sinh(&z()?))),
        ("cosh", Box::new(|| ops::cosh(&z()?))),
        ("tanh", Box::new(|| ops::tanh(&z()?))),
        ("expm1", Box::new(|| ops::expm1(&z()?))),
        ("log1p", Box::new(|| ops::log1p(&z()?))),
        ("log2", Box::new(|| ops::log2(&z()?))),
        ("log10", Box::new(|| ops::log10(&z()?))),
        ("degrees", Box::new(|| ops::degrees(&z()?))),
        (
            "matmul",
            Box::new(|| ops::matmul(&z()?, &ops::transpose(&w()?, None)?)),
        ),
        (
            "matmul with a real array",
            Box::new(|| ops::matmul(&ops::transpose(&x, None)?, &z()?)),
        ),
        (
            "take",
            Box::new(|| {
                let idx = Array::from_slice(&[3i32, 0, 9, 3], &[4])?;
                ops::take(&z()?, &idx, Some(1))
            }),
        ),
        (
            "concatenate",
            Box::new(|| ops::concatenate(&[z()?, w()?], 0)),
        ),
        (
            "pad",
            Box::new(|| ops::pad(&z()?, &[(1, 2)], 0, ops::PadMode::Constant)),
        ),
        (
            "sort",
            Box::new(|| ops::sort(&ops::round(&ops::multiply(&z()?, 2.0)?, 0)?, Some(1))),
        ),
        ("sum", Box::new(|| ops::sum(&z()?, 1, false))),
        ("sum of all", Box::new(|| ops::sum(&z()?, None, false))),
        ("mean over columns", Box::new(|| ops::mean(&z()?, 0, true))),
        (
            "prod",
            Box::new(|| ops::prod(&ops::divide(&z()?, 2.0)?, 1, false)),
        ),
        (
            "argsort",
            Box::new(|| {
                // NaN real parts in some places, NaN imaginary parts in others.
                let nan_re = ops::add(&z()?, f64::NAN)?;
                let nan_im = ops::add(&z()?, &ops::multiply(&w()?, f64::NAN)?)?;
                let zz = ops::where_(&ops::greater(&x, 1.0)?, &nan_re, &z()?)?;
                let zz = ops::where_(&ops::less(&x, -1.5)?, &nan_im, &zz)?;
                ops::argsort(&zz, Some(0))
            }),
        ),
    ];
    for (name, f) in &cases {
        let (c, g) = both_complex(f);
        assert_close(&format!("complex {name}"), &c, &g, 1e-5);
    }
    let fell_back = umx_cuda::fallback_ops();
    for op in [
        "multiply",
        "divide",
        "conj",
        "sqrt",
        "exp",
        "log",
        "reciprocal",
        "sin",
        "tanh",
        "log10",
        "matmul",
        "concatenate",
        "pad",
        "sort",
        "argsort",
        "sum",
        "prod",
    ] {
        assert!(!fell_back.contains(&op), "{op}: {fell_back:?}");
    }
}

#[test]
fn searchsorted_edge_padding_and_as_strided_run_on_the_gpu() {
    if !setup() {
        return;
    }
    use ops::PadMode;
    for dtype in [Dtype::Float32, Dtype::Float64, Dtype::Int32, Dtype::Float16] {
        let x = input(&[3, 4, 5], dtype, 31);
        let sorted = with_device(Device::Cpu, || {
            ops::sort(&ops::reshape(&input(&[40], dtype, 32), &[40])?, Some(0))
        })
        .unwrap();
        let cases: Vec<Case> = vec![
            (
                "searchsorted left",
                Box::new(|| ops::searchsorted(&sorted, &x, "left")),
            ),
            (
                "searchsorted right",
                Box::new(|| ops::searchsorted(&sorted, &x, "right")),
            ),
            (
                "searchsorted of a view",
                Box::new(|| ops::searchsorted(&sorted, &ops::transpose(&x, None)?, "right")),
            ),
            (
                "edge pad",
                Box::new(|| ops::pad(&x, &[(1, 2), (0, 3), (2, 0)], 0, PadMode::Edge)),
            ),
            (
                "edge pad of a view",
                Box::new(|| {
                    ops::pad(
                        &ops::transpose(&x, None)?,
                        &[(2, 2), (1, 1), (0, 1)],
                        0,
                        PadMode::Edge,
                    )
                }),
            ),
            (
                "as_strided",
                Box::new(|| ops::as_strided(&x, &[4, 3], &[5, 2], 7)),
            ),
            (
                "as_strided of a view",
                Box::new(|| ops::as_strided(&ops::transpose(&x, None)?, &[2, 2, 3], &[0, 1, 6], 3)),
            ),
        ];
        let cases2: Vec<Case> = vec![
            ("view as bytes", Box::new(|| ops::view(&x, Dtype::Uint8))),
            (
                "view of a view",
                Box::new(|| ops::view(&ops::transpose(&x, None)?, Dtype::Int8)),
            ),
            (
                "view at an odd offset",
                Box::new(|| {
                    let bytes = ops::reshape(&ops::view(&x, Dtype::Uint8)?, &[-1])?;
                    let odd = ops::slice(&bytes, &[1], &[9], &[])?;
                    ops::view(&odd, Dtype::Uint16)
                }),
            ),
            (
                "view as bool",
                Box::new(|| ops::view(&ops::view(&x, Dtype::Uint8)?, Dtype::Bool)),
            ),
        ];
        for (name, f) in cases.iter().chain(&cases2) {
            let (c, g) = both(f);
            assert_close(&format!("{name} {dtype}"), &c, &g, 0.0);
        }
    }
    let with_nan = Array::from_slice(&[1.0f32, 2.0, f32::NAN], &[3]).unwrap();
    let v = Array::from_slice(&[0.5f32, 2.0, f32::NAN, 9.0], &[4]).unwrap();
    for side in ["left", "right"] {
        let (c, g) = both(|| ops::searchsorted(&with_nan, &v, side));
        assert_eq!(c, g, "NaNs sort last ({side})");
    }
    let fell_back = umx_cuda::fallback_ops();
    for op in ["searchsorted", "pad", "as_strided", "view"] {
        assert!(!fell_back.contains(&op), "{op}: {fell_back:?}");
    }
}

/// Streams: a consumer on one stream reads what a long chain of kernels on another stream
/// makes, and gets the values the default stream computes (an event orders the two; nothing
/// waits on the host); blocks freed on one stream and reused on another keep their values
/// apart; a host read of an array made on another stream waits for it; a GPU has at most 64
/// streams, and asking for more is an error.
#[test]
fn work_crossing_streams_is_ordered_without_a_host_sync() {
    if !setup() {
        return;
    }
    use umx_core::{new_stream, with_stream};
    let gpu = Device::Gpu(0);
    let (s1, s2) = (new_stream(gpu).unwrap(), new_stream(gpu).unwrap());
    assert_ne!(s1.index, s2.index);
    assert_ne!(s1.index, 0);
    let x = input(&[1 << 22], Dtype::Float32, 60);
    let chain = |x: &Array| -> umx_core::Result<Array> {
        let mut y = x.clone();
        for i in 0..200 {
            y = ops::add(ops::multiply(&y, 0.999)?, (i % 7) as f64 * 0.01)?;
        }
        Ok(y)
    };
    let want: Vec<f32> = with_device(gpu, || chain(&x))
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v * 3.0)
        .collect();
    for round in 0..3 {
        // Queued on s1 (eval returns once the kernels are queued), consumed on s2.
        let y = with_stream(s1, || chain(&x)).unwrap();
        y.eval().unwrap();
        let total = with_stream(s2, || ops::multiply(&y, 3.0)).unwrap();
        assert!(total.to_vec::<f32>().unwrap() == want, "round {round}");
        // The other way round, and a host read of s1's array.
        let z = with_stream(s2, || chain(&x)).unwrap();
        let back = with_stream(s1, || ops::multiply(&z, 2.0)).unwrap();
        let host = z.to_vec::<f32>().unwrap();
        let twice = back.to_vec::<f32>().unwrap();
        assert!(host.iter().zip(&twice).all(|(a, b)| 2.0 * a == *b));
        drop((y, z, back, total));
    }
    umx_core::device::backend(gpu)
        .unwrap()
        .synchronize(s1)
        .unwrap();
    let mut made = 3;
    let err = loop {
        match new_stream(gpu) {
            Ok(_) => made += 1,
            Err(e) => break e,
        }
        assert!(made <= 64, "more than 64 streams");
    };
    assert!(err.to_string().contains("at most 64 streams"), "{err}");
}

/// User CUDA kernels (`fast::cuda_kernel`): MLX's element-wise example with a dtype template
/// argument in float32 and bfloat16; a strided input read through its shape and strides
/// (`elem_to_loc`) without the row-major copy; two outputs, one starting at `init_value`,
/// over a 2-D grid with an integer template argument; a compile error reported with NVRTC's
/// log.
#[test]
fn user_cuda_kernels_compile_run_and_report_errors() {
    if !setup() {
        return;
    }
    use umx_core::fast::{KernelCall, cuda_kernel};
    use umx_core::primitives::TemplateArg;
    let gpu = Device::Gpu(0);
    let exp = cuda_kernel(
        "myexp",
        &["inp"],
        &["out"],
        "auto elem = cooperative_groups::this_grid().thread_rank();
         if (elem < inp_size) { T tmp = inp[elem]; out[elem] = (T)expf((float)tmp); }",
        "",
        true,
        0,
    )
    .unwrap();
    for dtype in [Dtype::Float32, Dtype::Bfloat16] {
        let x = input(&[1000], dtype, 70);
        let call = KernelCall {
            grid: [1000, 1, 1],
            threadgroup: [256, 1, 1],
            output_shapes: vec![vec![1000]],
            output_dtypes: vec![dtype],
            template: vec![
                ("T".into(), TemplateArg::Dtype(dtype)),
                ("inp_size".into(), TemplateArg::Int(1000)),
            ],
            ..Default::default()
        };
        let got = with_device(gpu, || exp.call(std::slice::from_ref(&x), &call)).unwrap();
        let want = with_device(Device::Cpu, || ops::exp(&x)).unwrap();
        let rtol = if dtype == Dtype::Float32 { 1e-6 } else { 1e-2 };
        assert_close(
            &format!("myexp {dtype}"),
            &want.to_vec::<f64>().unwrap(),
            &got[0].to_vec::<f64>().unwrap(),
            rtol,
        );
    }
    // A transposed input, read in place through its strides.
    let a = input(&[6, 5], Dtype::Float32, 71);
    let at = a.t().unwrap();
    let copy = cuda_kernel(
        "strided_copy",
        &["a"],
        &["out"],
        "long long i = blockIdx.x * blockDim.x + threadIdx.x;
         if (i < 30) out[i] = a[elem_to_loc(i, a_shape, a_strides, a_ndim)];",
        "",
        false,
        0,
    )
    .unwrap();
    let call = KernelCall {
        grid: [30, 1, 1],
        threadgroup: [32, 1, 1],
        output_shapes: vec![vec![5, 6]],
        output_dtypes: vec![Dtype::Float32],
        ..Default::default()
    };
    let got = with_device(gpu, || copy.call(std::slice::from_ref(&at), &call)).unwrap();
    assert_eq!(got[0].to_vec::<f32>().unwrap(), at.to_vec::<f32>().unwrap());
    // Two outputs over a 2-D grid; the second starts at 7 and gets K added where i == j.
    let two = cuda_kernel(
        "two",
        &["m"],
        &["doubled", "diag"],
        "int i = blockIdx.y * blockDim.y + threadIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
         if (i < 6 && j < 5) { doubled[i * 5 + j] = 2 * m[i * 5 + j]; if (i == j) diag[i * 5 + j] += K; }",
        "",
        true,
        0,
    )
    .unwrap();
    let call = KernelCall {
        grid: [5, 6, 1],
        threadgroup: [4, 4, 1],
        output_shapes: vec![vec![6, 5], vec![6, 5]],
        output_dtypes: vec![Dtype::Float32, Dtype::Int32],
        template: vec![("K".into(), TemplateArg::Int(3))],
        init_value: Some(7.0),
        verbose: false,
    };
    let got = with_device(gpu, || two.call(std::slice::from_ref(&a), &call)).unwrap();
    let av = a.to_vec::<f32>().unwrap();
    assert_eq!(
        got[0].to_vec::<f32>().unwrap(),
        av.iter().map(|v| 2.0 * v).collect::<Vec<_>>()
    );
    let diag: Vec<i32> = (0..30)
        .map(|k| if k / 5 == k % 5 { 10 } else { 7 })
        .collect();
    assert_eq!(got[1].to_vec::<i32>().unwrap(), diag);
    // A compile error is an Err carrying NVRTC's log.
    let broken = cuda_kernel(
        "broken",
        &["a"],
        &["out"],
        "out[0] = undefined_thing;",
        "",
        true,
        0,
    )
    .unwrap();
    let call = KernelCall {
        grid: [1, 1, 1],
        threadgroup: [1, 1, 1],
        output_shapes: vec![vec![1]],
        output_dtypes: vec![Dtype::Float32],
        ..Default::default()
    };
    let e = with_device(gpu, || broken.call(std::slice::from_ref(&a), &call)).unwrap()[0]
        .eval()
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken") && e.contains("undefined_thing"), "{e}");
}

/// Ops that ran on the CPU fallback until now: complex64 max/min (real part, then imaginary
/// part) and all/any over every axis set, `addmm` with an empty inner dimension (`beta * c`),
/// and integer `round` to tens and hundreds. Each agrees with the CPU.
#[test]
fn complex_extremes_truth_tests_empty_products_and_integer_rounding_run_on_the_gpu() {
    if !setup() {
        return;
    }
    use umx_core::fft;
    let x = input(&[6, 10], Dtype::Float32, 80);
    let zc = with_device(Device::Cpu, || fft::fft(&x, None, -1, "ortho")).unwrap();
    // Ties on the real part (the imaginary part decides) and zeros (false for all/any).
    let tie = with_device(Device::Cpu, || {
        let re = Array::from_slice(&[1.0f32, 1.0, 0.0, 0.0, -2.0, 1.0], &[2, 3])?;
        let im = Array::from_slice(&[0.5f32, 2.0, 0.0, 1.0, 3.0, -1.0], &[2, 3])?;
        ops::add(
            &re.astype(Dtype::Complex64)?,
            ops::multiply(
                &im.astype(Dtype::Complex64)?,
                &Array::from_slice(&[umx_core::Complex32::new(0.0, 1.0)], &[])?,
            )?,
        )
    })
    .unwrap();
    umx_core::eval(&[zc.clone(), tie.clone()]).unwrap();
    for (name, z) in [("spectrum", &zc), ("ties", &tie)] {
        for axes in [None, Some(0i64), Some(1)] {
            type Red = fn(&Array, Axes, bool) -> umx_core::Result<Array>;
            let ops_: [(&str, Red); 4] = [
                ("max", |z, a, k| ops::max(z, a, k)),
                ("min", |z, a, k| ops::min(z, a, k)),
                ("all", |z, a, k| ops::all(z, a, k)),
                ("any", |z, a, k| ops::any(z, a, k)),
            ];
            for (op, f) in ops_ {
                let (c, g) = both_complex(|| f(z, Axes::from(axes), false));
                assert_eq!(c, g, "{op} of {name} over {axes:?}");
            }
        }
    }
    let c = input(&[4, 5], Dtype::Float32, 81);
    let b = input(&[5], Dtype::Float32, 82);
    let a0 = input(&[4, 0], Dtype::Float32, 83);
    let b0 = input(&[0, 5], Dtype::Float32, 84);
    for (what, beta) in [("beta 2", 2.0), ("beta 0", 0.0)] {
        let (cc, g) = both(|| ops::addmm(&c, &a0, &b0, 1.0, beta));
        assert_eq!(cc, g, "addmm k=0 {what}");
        let (cc, g) = both(|| ops::addmm(&b, &a0, &b0, 1.0, beta));
        assert_eq!(cc, g, "addmm k=0 broadcast {what}");
    }
    let i = with_device(Device::Cpu, || {
        Array::from_slice(
            &[
                -251i32, -250, -249, -15, 5, 15, 25, 149, 150, 151, 2147483647,
            ],
            &[11],
        )
    })
    .unwrap();
    for d in [-1, -2, -3] {
        let (cc, g) = both(|| ops::round(&i, d));
        assert_eq!(cc, g, "round int32 to {d} decimals");
    }
}
