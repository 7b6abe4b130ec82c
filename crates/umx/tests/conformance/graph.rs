//! Graph mechanics: evaluation, detach, deep chains, threads.

use umx::prelude::*;

#[test]
fn backends_register_without_init() {
    let a = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
    let b = ops::contiguous(&a).unwrap();
    assert!(!b.is_evaluated());
    assert_eq!(b.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    assert!(b.is_evaluated());
}

#[test]
fn a_million_node_chain_evaluates_and_drops() {
    let mut x = Array::from_slice(&[1.0f32; 16], &[16]).unwrap();
    for _ in 0..1_000_000 {
        x = ops::contiguous(&x).unwrap();
    }
    assert_eq!(x.to_vec::<f32>().unwrap(), vec![1.0; 16]);
    let mut y = Array::from_slice(&[1.0f32; 4], &[4]).unwrap();
    for _ in 0..1_000_000 {
        y = ops::contiguous(&y).unwrap();
    }
    drop(y); // never evaluated: dropping must not recurse
}

use crate::common;

#[test]
fn contiguous_copies_every_dtype_and_layout() {
    let n = common::run_reference("harness", &|name, args, _kw| match name {
        "contiguous" => Ok(vec![ops::contiguous(&args[0])?]),
        other => panic!("unknown op {other}"),
    });
    assert_eq!(n, 70);
}

#[test]
fn async_eval_returns_and_the_value_arrives() {
    let mut x = Array::from_slice(&[3i32; 8], &[8]).unwrap();
    for _ in 0..10_000 {
        x = ops::contiguous(&x).unwrap();
    }
    async_eval([&x]).unwrap();
    assert_eq!(x.to_vec::<i32>().unwrap(), vec![3; 8]);
}

#[test]
fn threads_share_a_subgraph() {
    let mut base = Array::from_slice(&[2.0f32; 64], &[64]).unwrap();
    for _ in 0..20_000 {
        base = ops::contiguous(&base).unwrap();
    }
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let b = base.clone();
            std::thread::spawn(move || {
                let c = ops::contiguous(&b).unwrap();
                c.to_vec::<f32>().unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), vec![2.0; 64]);
    }
    assert!(base.is_evaluated() || base.to_vec::<f32>().is_ok());
}

#[test]
fn operations_on_a_device_without_backend_fail_cleanly() {
    let a = Array::from_slice(&[1.0f32], &[1]).unwrap();
    // A GPU index no machine of ours has: no backend, with or without CUDA.
    let b = umx::with_device(Device::Gpu(99), || ops::contiguous(&a)).unwrap();
    let err = b.eval().unwrap_err().to_string();
    assert!(err.contains("no backend"), "{err}");
}
