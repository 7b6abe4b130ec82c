//! Launch batching (`batch.rs`): small kernels held back, submitted in order, replayed as a
//! CUDA graph when a batch repeats. Each result is checked against the CPU or exact values.

use crate::*;

/// `n` dependent adds of `s` to `x` (lazy).
fn adds(x: &Array, s: &Array, n: usize) -> Array {
    let mut t = x.clone();
    for _ in 0..n {
        t = ops::add(&t, s).unwrap();
    }
    t
}

#[test]
fn repeated_batches_replay_as_graphs_and_keep_their_values() {
    if !setup() {
        return;
    }
    // No test profiles (which turns batching off) or switches batching meanwhile.
    let _p = profiling();
    let gpu = Device::Gpu(0);
    let (s, x) = with_device(gpu, || {
        (
            ops::full(&[16], 1.0f64, Dtype::Float32).unwrap(),
            ops::full(&[16], 0.5f64, Dtype::Float32).unwrap(),
        )
    });
    umx_core::eval([&s, &x]).unwrap();
    let before = umx_cuda::batch_stats();
    // A batch repeats when the pool hands its adds the same buffers again, which other tests
    // allocating at the same time can prevent for a while (it failed once so, 8 tests at
    // once): up to 20 rounds until four replays and a thousand replayed kernels are seen
    // (other tests' replays count too, so the replays alone can come first: it failed so, 12
    // tests at once), every round's values checked.
    let mut after = before;
    for rep in 0..20 {
        // 1000 adds: three full batches and a partial one, the same every time.
        let t = with_device(gpu, || adds(&x, &s, 1000));
        umx_core::eval([&t]).unwrap();
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![1000.5f32; 16], "rep {rep}");
        after = umx_cuda::batch_stats();
        if rep >= 4
            && after.replays >= before.replays + 4
            && after.replayed_kernels >= before.replayed_kernels + 1000
        {
            break;
        }
    }
    assert!(after.built > before.built, "{before:?} -> {after:?}");
    assert!(
        after.replays >= before.replays + 4,
        "{before:?} -> {after:?}"
    );
    assert!(after.replayed_kernels >= before.replayed_kernels + 1000);

    // The same ops on another input: other argument bytes, so no replay of the old graphs
    // can give the old values.
    let y = with_device(gpu, || ops::full(&[16], -3.0f64, Dtype::Float32).unwrap());
    for _ in 0..3 {
        let t = with_device(gpu, || adds(&y, &s, 1000));
        assert_eq!(t.to_vec::<f32>().unwrap(), vec![997.0f32; 16]);
    }

    // A host read in the middle of held-back work sees all of it; a large kernel after small
    // ones reads their results; an op on another stream waits for them.
    let u = with_device(gpu, || adds(&x, &s, 37));
    assert_eq!(u.to_vec::<f32>().unwrap()[3], 37.5);
    let big = with_device(gpu, || {
        let small = adds(&x, &s, 20);
        let b = ops::full(&[1 << 20], 2.0f64, Dtype::Float32).unwrap();
        ops::multiply(&b, small.reshape(&[16, 1]).unwrap()).unwrap()
    });
    let big = with_device(gpu, || ops::sum(&big, None, false).unwrap());
    let want = 2.0 * 20.5 * 16.0 * (1 << 20) as f64;
    let got = big.item::<f32>().unwrap() as f64;
    assert!((got - want).abs() <= 1e-5 * want, "{got} vs {want}");
    let stream = umx_core::new_stream(gpu).unwrap();
    let v = with_device(gpu, || adds(&x, &s, 10));
    umx_core::eval([&v]).unwrap();
    let w = umx_core::with_stream(stream, || adds(&v, &s, 10));
    assert_eq!(w.to_vec::<f32>().unwrap(), vec![20.5f32; 16]);

    // Off, the same values.
    assert!(umx_cuda::set_launch_batching(false).unwrap());
    let t = with_device(gpu, || adds(&x, &s, 300));
    assert_eq!(t.to_vec::<f32>().unwrap(), vec![300.5f32; 16]);
    let off = umx_cuda::batch_stats();
    let t = with_device(gpu, || adds(&x, &s, 300));
    umx_core::eval([&t]).unwrap();
    assert_eq!(
        umx_cuda::batch_stats().kernels,
        off.kernels,
        "nothing held back when off"
    );
    assert!(!umx_cuda::set_launch_batching(true).unwrap());
}

#[test]
fn batched_element_wise_work_agrees_with_the_cpu() {
    if !setup() {
        return;
    }
    // Small kernels of several families (element-wise, reductions, gathers, scans) in one
    // eval, twice (the second time as a graph where the buffers repeat).
    let x = input(&[7, 9], Dtype::Float32, 31);
    let f = || {
        let a = ops::exp(&ops::multiply(&x, 0.1)?)?;
        let b = ops::sum(&a, 1, true)?;
        let c = ops::divide(&a, &b)?;
        let d = ops::cumsum(&c, Some(0), false, true)?;
        let e = ops::take(&d, &Array::from_slice(&[2i32, 0, 5], &[3])?, Some(1))?;
        ops::add(&ops::max(&e, 0, false)?, &ops::mean(&c, None, false)?)
    };
    for _ in 0..3 {
        let (c, g) = both(f);
        assert_close("batched chain", &c, &g, 1e-5);
    }
}
