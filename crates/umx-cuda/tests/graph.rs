//! CUDA graphs: a captured step replayed gives what the same step evaluated eagerly gives, a
//! step the GPU cannot hold fails to capture and leaves the program working, and a graph gives
//! its memory back. Without a GPU, capturing is an error (what CI checks).

use std::sync::Once;
use umx_core::{Array, Device, Dtype, ops, random, with_device};
use umx_cuda::CudaGraph;

fn setup() -> bool {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        umx_cpu::register();
        umx_cuda::register();
    });
    umx_cuda::device_count() > 0
}

type Step = Box<dyn Fn(&[Array]) -> umx_core::Result<Vec<Array>> + Send + Sync>;

/// A step of many kernel families: a counter, a running sum of sines, a matrix pushed through
/// a matmul and tanh, a row written at the counter (scatter, in place), a reduction and a
/// gather at a position held on the device.
fn mixed_step() -> (Vec<Array>, Step) {
    let w = ops::multiply(
        random::normal(
            &[16, 16],
            Dtype::Float32,
            0.0,
            1.0,
            Some(&random::key(1).unwrap()),
        )
        .unwrap(),
        0.3,
    )
    .unwrap();
    let x = random::uniform(
        0.0,
        1.0,
        &[64],
        Dtype::Float32,
        Some(&random::key(2).unwrap()),
    )
    .unwrap();
    let ramp = ops::arange(0, 4, 1, Dtype::Float32).unwrap();
    w.eval().unwrap();
    x.eval().unwrap();
    ramp.eval().unwrap();
    let state = vec![
        Array::scalar(0i32),
        ops::zeros(&[64], Dtype::Float32).unwrap(),
        ops::eye(16, None, 0, Dtype::Float32).unwrap(),
        ops::zeros(&[8, 4], Dtype::Float32).unwrap(),
        ops::zeros(&[4], Dtype::Float32).unwrap(),
    ];
    let step: Step = Box::new(move |s: &[Array]| {
        let n = &s[0];
        let nf = n.astype(Dtype::Float32)?;
        let sum = ops::add(&s[1], &ops::sin(&ops::multiply(&x, &nf)?)?)?;
        let m = ops::tanh(&ops::add(&ops::matmul(&s[2], &w)?, 0.1)?)?;
        let at = ops::reshape(&ops::remainder(n, 8)?, &[1])?;
        let row = ops::reshape(&ops::add(&ramp, &nf)?, &[1, 1, 4])?;
        let rows = ops::scatter(&s[3], std::slice::from_ref(&at), &row, &[0])?;
        let picked = ops::add(
            &ops::sum(&rows, &[0][..], false)?,
            &ops::squeeze(&ops::take(&rows, &at, Some(0))?, 0)?,
        )?;
        Ok(vec![ops::add(n, 1)?, sum, m, rows, picked])
    });
    (state, step)
}

fn values(a: &Array) -> Vec<f64> {
    a.to_vec::<f64>().unwrap()
}

#[test]
fn captured_steps_replay_like_eager_steps() {
    if !setup() {
        let err = CudaGraph::capture(|s| Ok(s.to_vec()), vec![Array::scalar(1i32)]).unwrap_err();
        assert!(err.to_string().contains("gpu"), "{err}");
        return;
    }
    with_device(Device::Gpu(0), || {
        let (state, step) = mixed_step();
        let steps = 11;
        let mut eager = state.clone();
        for _ in 0..steps {
            eager = step(&eager)?;
            umx_core::eval(&eager)?;
        }
        let mut g = CudaGraph::capture(&step, state)?;
        assert!(g.nodes() >= 8, "{} nodes", g.nodes());
        for _ in 1..steps {
            g.replay()?;
        }
        assert_eq!(g.state_len(), eager.len());
        for (i, e) in eager.iter().enumerate() {
            let got = g.read(i)?;
            assert_eq!(
                (got.shape(), got.dtype()),
                (e.shape(), e.dtype()),
                "state {i}"
            );
            // The same kernels in the same order: the same bits.
            assert_eq!(values(&got), values(e), "state {i}");
        }
        assert_eq!(g.read(0)?.item::<i32>()?, steps);
        assert!(g.read(5).is_err());
        Ok::<(), umx_core::Error>(())
    })
    .unwrap();
}

/// `read_later` copies a state array out as of the replays queued before it, whatever is
/// queued after it (each read while the next steps run, as generation reads its tokens), and
/// reuses its page-locked memory once a read is done with; a read dropped unwaited and a read
/// outliving its graph are harmless.
#[test]
fn a_later_read_sees_the_steps_queued_before_it() {
    if !setup() {
        return;
    }
    with_device(Device::Gpu(0), || {
        let (state, step) = mixed_step();
        let mut eager = vec![state.clone()];
        for _ in 0..6 {
            let next = step(eager.last().unwrap())?;
            umx_core::eval(&next)?;
            eager.push(next);
        }
        let mut g = CudaGraph::capture(&step, state)?;
        // After a capture from step n the state is step n + 1's: each round reads it with two
        // more steps queued behind the reads.
        for (n, want) in eager.iter().enumerate().skip(1) {
            let counter = g.read_later(0)?;
            let sums = g.read_later(1)?;
            g.replay()?;
            g.replay()?;
            assert_eq!(counter.wait()?.item::<i32>()?, n as i32, "step {n}");
            assert_eq!(values(&sums.wait()?), values(&want[1]), "step {n}");
            let _unwaited = g.read_later(2)?;
            let now = g.read_later(0)?.wait()?.item::<i32>()?;
            assert_eq!(now, n as i32 + 2, "step {n}");
            // The next round starts from step n + 1: a graph captured from step n.
            g = CudaGraph::capture(&step, want.clone())?;
        }
        // Two reads of one slot at once get two buffers; a read outliving its graph still
        // gives its value.
        let a = g.read_later(3)?;
        let b = g.read_later(3)?;
        drop(g);
        assert_eq!(values(&a.wait()?), values(&b.wait()?));
        Ok::<(), umx_core::Error>(())
    })
    .unwrap();
}

#[test]
fn a_step_the_gpu_cannot_run_fails_to_capture_and_the_program_goes_on() {
    if !setup() {
        return;
    }
    with_device(Device::Gpu(0), || {
        let a = ops::add(&ops::eye(4, None, 0, Dtype::Float32)?, 1.0)?;
        // Factorizations run on the CPU fallback, and so does arange: nothing a graph can
        // hold.
        let err = CudaGraph::capture(
            |s| {
                Ok(vec![ops::add(
                    &s[0],
                    &ops::arange(0, 4, 1, Dtype::Float32)?,
                )?])
            },
            vec![a.clone()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("Arange"), "{err}");
        // An integer range has a kernel: it is captured (and recomputed by every replay).
        let ints = Array::from_slice(&[10i32, 20, 30, 40], &[4])?;
        let g = CudaGraph::capture(
            |s| Ok(vec![ops::add(&s[0], &ops::arange(0, 4, 1, Dtype::Int32)?)?]),
            vec![ints],
        )?;
        assert_eq!(g.read(0)?.to_vec::<i32>()?, [10, 21, 32, 43]);
        let err = CudaGraph::capture(|s| Ok(vec![umx_core::linalg::inv(&s[0])?]), vec![a.clone()])
            .unwrap_err();
        assert!(err.to_string().contains("cannot be captured"), "{err}");
        // A host array made inside the step is uploaded before the capture begins.
        let g = CudaGraph::capture(
            |s| {
                Ok(vec![ops::add(
                    &s[0],
                    &Array::from_slice(&[1.0f32; 16], &[4, 4])?,
                )?])
            },
            vec![a.clone()],
        )?;
        assert_eq!(values(&g.read(0)?), values(&ops::add(&a, 1.0)?));
        // Wrong shapes and counts are named.
        let err = CudaGraph::capture(|s| Ok(vec![ops::sum(&s[0], None, false)?]), vec![a.clone()])
            .unwrap_err();
        assert!(err.to_string().contains("state 0"), "{err}");
        let err = CudaGraph::capture(|_| Ok(vec![]), vec![a.clone()]).unwrap_err();
        assert!(err.to_string().contains("returned 0 arrays"), "{err}");
        // The GPU still works.
        let b = ops::matmul(&a, &a)?;
        assert_eq!(values(&b)[0], 2.0 * 2.0 + 3.0);
        Ok::<(), umx_core::Error>(())
    })
    .unwrap();
}

#[test]
fn a_dropped_graph_gives_its_memory_back() {
    if !setup() {
        return;
    }
    with_device(Device::Gpu(0), || {
        // A state of 4 MiB, so the graph's memory stands out from what the other tests of
        // this process allocate meanwhile (a few KB at a time).
        let state = vec![ops::full(&[1 << 20], 1.0f64, Dtype::Float32)?];
        let step = |s: &[Array]| Ok(vec![ops::add(ops::multiply(&s[0], 0.5)?, 1.0)?]);
        umx_core::eval(&state)?;
        let before = umx_cuda::memory::active_memory();
        let g = CudaGraph::capture(step, state.clone())?;
        let held = umx_cuda::memory::active_memory();
        assert!(held > before, "{held} vs {before}");
        drop(g);
        umx_core::eval(&state)?;
        // Other tests allocate beside this one (a few KB at a time), so only a bound: most of
        // what the graph held is back.
        let after = umx_cuda::memory::active_memory();
        let graph = held - before;
        assert!(
            after + graph / 2 <= held,
            "{after} vs {held} ({graph} held by the graph)"
        );
        Ok::<(), umx_core::Error>(())
    })
    .unwrap();
}

#[test]
fn other_threads_keep_working_while_graphs_are_captured() {
    if !setup() {
        return;
    }
    let workers: Vec<_> = (0..3)
        .map(|t| {
            std::thread::spawn(move || {
                with_device(Device::Gpu(0), || {
                    for i in 0..40 {
                        let x = ops::full(&[1000], (t * 100 + i) as f64, Dtype::Float32)?;
                        let s = ops::sum(&ops::multiply(&x, 2.0)?, None, false)?;
                        assert_eq!(s.item::<f32>()?, 2000.0 * (t * 100 + i) as f32);
                    }
                    Ok::<(), umx_core::Error>(())
                })
                .unwrap()
            })
        })
        .collect();
    with_device(Device::Gpu(0), || {
        for k in 0..5 {
            let (state, step) = mixed_step();
            let mut g = CudaGraph::capture(&step, state.clone())?;
            g.replay()?;
            let eager = step(&step(&state)?)?;
            assert_eq!(values(&g.read(1)?), values(&eager[1]), "capture {k}");
        }
        Ok::<(), umx_core::Error>(())
    })
    .unwrap();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn scatter_into_an_array_nothing_else_holds_updates_it_in_place() {
    if !setup() {
        return;
    }
    with_device(Device::Gpu(0), || {
        let a = ops::add(&ops::zeros(&[6, 3], Dtype::Float32)?, 1.0)?;
        a.eval()?;
        let kept = a.clone();
        let u = Array::from_slice(&[7.0f32, 8.0, 9.0], &[1, 1, 3])?;
        let i = Array::from_slice(&[4i32], &[1])?;
        // `a` is still held: a copy.
        let b = ops::scatter(&a, std::slice::from_ref(&i), &u, &[0])?;
        drop(a);
        let expect: Vec<f64> = (0..18)
            .map(|k| if k / 3 == 4 { (7 + k % 3) as f64 } else { 1.0 })
            .collect();
        assert_eq!(values(&b), expect);
        assert_eq!(values(&kept), vec![1.0; 18]);
        // Only the scatter holds `kept` now: in place, same values.
        let c = ops::scatter(&kept, &[ops::full(&[1], 0.0, Dtype::Int32)?], &u, &[0])?;
        drop(kept);
        let mut expect0 = vec![1.0; 18];
        expect0[..3].copy_from_slice(&[7.0, 8.0, 9.0]);
        assert_eq!(values(&c), expect0);
        Ok::<(), umx_core::Error>(())
    })
    .unwrap();
}
