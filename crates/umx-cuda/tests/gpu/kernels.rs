//! Random bits and samples, the fast kernels, and user CUDA kernels.

use crate::*;

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
        // More rows than the card holds blocks at once, and a layer norm with a bias only.
        let x = input(&[5000, 256], dt, 6);
        let w = input(&[256], dt, 7);
        let b = input(&[256], dt, 8);
        let (c, g) = both(|| fast::rms_norm(&x, Some(&w), 1e-5));
        assert_close(&format!("rms_norm {dt}, 5000 rows"), &c, &g, tol);
        let (c, g) = both(|| fast::layer_norm(&x, Some(&w), Some(&b), 1e-5));
        assert_close(&format!("layer_norm {dt}, 5000 rows"), &c, &g, tol);
        let (c, g) = both(|| fast::layer_norm(&x, None, Some(&b), 1e-5));
        assert_close(
            &format!("layer_norm {dt}, 5000 rows, bias only"),
            &c,
            &g,
            tol,
        );
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

/// Decoding attention over key splits (each launch's partial results in pool scratch, merged
/// by a second kernel): many launches queued back to back on two streams at once, without a
/// host read between them, each equal to the CPU's; with sinks, a general-kernel dtype mix
/// (float32 queries, bfloat16 keys), and a tiny key count (one split).
#[test]
fn decoding_attention_merges_its_splits_across_launches_and_streams() {
    use umx_core::fast::{self, AttentionMask};
    use umx_core::{new_stream, with_stream};
    if !setup() {
        return;
    }
    let gpu = Device::Gpu(0);
    let (s1, s2) = (new_stream(gpu).unwrap(), new_stream(gpu).unwrap());
    let sinks = input(&[32], Dtype::Float32, 30);
    for (dt, kdt, lk, with_sinks, tol) in [
        (Dtype::Bfloat16, Dtype::Bfloat16, 1100, false, 1e-2),
        (Dtype::Float32, Dtype::Float32, 777, true, 1e-5),
        (Dtype::Float32, Dtype::Bfloat16, 1500, false, 1e-4),
        (Dtype::Float16, Dtype::Float16, 20, true, 2e-3),
    ] {
        let rounds = 8;
        let qs: Vec<Array> = (0..2 * rounds)
            .map(|i| input(&[1, 32, 1, 64], dt, 40 + i as u64))
            .collect();
        let k = input(&[1, 4, lk, 64], kdt, 31);
        let v = input(&[1, 4, lk, 64], kdt, 32);
        let s = with_sinks.then_some(&sinks);
        let attend = |q: &Array| {
            fast::scaled_dot_product_attention(q, &k, &v, 0.125, AttentionMask::None, s)
        };
        let want: Vec<Vec<f64>> = qs
            .iter()
            .map(|q| {
                with_device(Device::Cpu, || attend(q))
                    .unwrap()
                    .to_vec::<f64>()
                    .unwrap()
            })
            .collect();
        // Queued: eval returns once the kernels are, so both streams' launches overlap.
        let got: Vec<Array> = qs
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let stream = if i % 2 == 0 { s1 } else { s2 };
                let y = with_stream(stream, || with_device(gpu, || attend(q))).unwrap();
                y.eval().unwrap();
                y
            })
            .collect();
        for (i, (y, w)) in got.iter().zip(&want).enumerate() {
            let what = format!("attention {dt}/{kdt} lk={lk} sinks={with_sinks} launch {i}");
            assert_close(&what, w, &y.to_vec::<f64>().unwrap(), tol);
        }
    }
}

/// Attention over query blocks in 16-bit floats takes the tensor-core flash kernel: causal
/// and not, grouped heads, more keys than queries and fewer, partial tiles, head dims 64, 128
/// and 256, keys every other row of a longer array or broadcast from one head, queries as a
/// (B, L, H, D) layout's view, and more query blocks than the card has SMs (on Hopper a block then takes several, rows
/// without keys among them).
#[test]
fn flash_attention_agrees_with_the_cpu() {
    use umx_core::fast::{self, AttentionMask};
    if !setup() {
        return;
    }
    let _profiling = profiling();
    let was = umx_cuda::set_profiling(true);
    for (dt, tol) in [(Dtype::Bfloat16, 2e-2), (Dtype::Float16, 5e-3)] {
        for (b, hq, hk, lq, lk, d, causal) in [
            (1, 2, 2, 128, 128, 128, false),
            (2, 4, 2, 200, 333, 128, true),
            (2, 4, 1, 333, 200, 64, true),
            (1, 3, 3, 1000, 1000, 128, true),
            (1, 2, 2, 77, 513, 64, false),
            (1, 4, 2, 300, 300, 256, true),
            (1, 2, 2, 77, 200, 256, false),
            (2, 16, 4, 1000, 1000, 128, true),
            (2, 16, 16, 700, 600, 64, false),
            (2, 32, 8, 900, 300, 64, true),
        ] {
            let q = input(&[b, hq, lq, d], dt, 11);
            let k = input(&[b, hk, 2 * lk, d], dt, 12);
            let v = input(&[b, hk, lk, d], dt, 13);
            let mask = if causal {
                AttentionMask::Causal
            } else {
                AttentionMask::None
            };
            let what = format!("flash {dt} {b}x{hq}/{hk} {lq}x{lk} d={d} {mask:?}");
            // The CPU's attention over long query blocks is the fallback, whose scores are
            // rounded to the inputs' dtype: the reference takes float32 inputs instead, and
            // rounds once at the end.
            let attend = |k_view: &dyn Fn(&Array) -> umx_core::Result<Array>, q_layout: bool| {
                let run = |x: &dyn Fn(&Array) -> umx_core::Result<Array>| {
                    let q = if q_layout {
                        let qt = ops::transpose(&x(&q)?, [0, 2, 1, 3])?.contiguous()?;
                        ops::transpose(&qt, [0, 2, 1, 3])?
                    } else {
                        x(&q)?
                    };
                    let k = k_view(&x(&k)?)?;
                    fast::scaled_dot_product_attention(&q, &k, &x(&v)?, 0.088, mask, None)
                };
                let cpu = with_device(Device::Cpu, || {
                    run(&|a: &Array| a.astype(Dtype::Float32))?.astype(dt)
                })
                .unwrap();
                let gpu = with_device(Device::Gpu(0), || run(&|a: &Array| Ok(a.clone()))).unwrap();
                assert_eq!((cpu.shape(), gpu.dtype()), (gpu.shape(), dt));
                (cpu.to_vec::<f64>().unwrap(), gpu.to_vec::<f64>().unwrap())
            };
            let every_other = |k: &Array| {
                let stop = [b as i64, hk as i64, 2 * lk as i64, d as i64];
                ops::slice(k, &[0, 0, 0, 0], &stop, &[1, 1, 2, 1])
            };
            let first = |k: &Array| {
                let stop = [b as i64, hk as i64, lk as i64, d as i64];
                ops::slice(k, &[0, 0, 0, 0], &stop, &[])
            };
            let (c, g) = attend(&every_other, false);
            assert_close(&what, &c, &g, tol);
            let (c, g) = attend(&first, true);
            assert_close(&format!("{what}, queries a view"), &c, &g, tol);
            if lq * lk <= 200 * 333 {
                // Keys of one head broadcast to all (a stride of 0, which the copy engine
                // takes only along a dimension of one).
                let broadcast = |k: &Array| {
                    let one =
                        ops::slice(k, &[0, 0, 0, 0], &[b as i64, 1, lk as i64, d as i64], &[])?;
                    ops::broadcast_to(&one, &[b, hk, lk, d])
                };
                let (c, g) = attend(&broadcast, false);
                assert_close(&format!("{what}, keys broadcast"), &c, &g, tol);
            }
        }
    }
    let report = umx_cuda::profile_report().unwrap();
    umx_cuda::set_profiling(was);
    // One line per grid size.
    let flash: usize = report
        .iter()
        .filter(|l| l.label.contains("flash attention"))
        .map(|l| l.count)
        .sum();
    assert!(
        flash >= 50,
        "the flash kernel ran {flash} times: {report:?}"
    );
    // On Hopper, head dims 64 and 128 take the wgmma kernel (40 of the 50 calls), some with
    // more query blocks than blocks.
    let wgmma: usize = report
        .iter()
        .filter(|l| l.label.contains("flash attention (wgmma)"))
        .map(|l| l.count)
        .sum();
    let hopper = umx_cuda::device_info().unwrap().1 == (9, 0);
    assert_eq!(
        wgmma >= 40,
        hopper,
        "the wgmma kernel ran {wgmma} times: {report:?}"
    );
    // " flash attention (wgmma): N query blocks on M blocks"
    let several = report.iter().any(|l| {
        let n: Vec<usize> = l.label.split(' ').filter_map(|w| w.parse().ok()).collect();
        l.label.contains("(wgmma)") && matches!(n[..], [a, b] if a > b)
    });
    assert_eq!(
        several, hopper,
        "no launch took several query blocks a block: {report:?}"
    );
}

/// The gradients of flash attention (the backward kernels, from the log-sum-exp the forward
/// kept while the gradient was traced) against the CPU's, which differentiates the fallback
/// in float32: causal and full, grouped-query heads, more keys than queries and fewer (the
/// first causal rows then see no key and get no gradient), three keys, head dims 64, 128 and
/// 256, a strided key input and a strided cotangent; both 16-bit dtypes.
#[test]
fn flash_attention_gradients_agree_with_the_cpu() {
    use umx_core::fast::{self, AttentionMask};
    if !setup() {
        return;
    }
    let _profiling = profiling();
    let was = umx_cuda::set_profiling(true);
    let mut cases = 0;
    for (dt, tol) in [(Dtype::Bfloat16, 2e-2), (Dtype::Float16, 5e-3)] {
        for (b, hq, hk, lq, lk, d, causal) in [
            (1, 2, 2, 128, 128, 128, false),
            (2, 4, 2, 200, 333, 128, true),
            (2, 4, 1, 333, 200, 64, true),
            (1, 2, 2, 77, 513, 64, false),
            (2, 8, 2, 256, 256, 128, true),
            (1, 4, 4, 80, 3, 64, false),
            (1, 4, 2, 300, 300, 256, true),
        ] {
            let q = input(&[b, hq, lq, d], dt, 21);
            let k = input(&[b, hk, 2 * lk, d], dt, 22);
            let v = input(&[b, hk, lk, d], dt, 23);
            // The cotangent is made transposed and viewed back: strided rows.
            let g = input(&[b, lq, hq, d], dt, 24);
            let mask = if causal {
                AttentionMask::Causal
            } else {
                AttentionMask::None
            };
            let what = format!("flash grads {dt} {b}x{hq}/{hk} {lq}x{lk} d={d} {mask:?}");
            // Rows that see no key (causal, lq > lk) take no part: the reference leaves them
            // out, and their dq is zero.
            let skip = if causal { lq.saturating_sub(lk) } else { 0 };
            let grads = |x: &dyn Fn(&Array) -> umx_core::Result<Array>, skip: usize| {
                let rows = |a: &Array| {
                    let s = a.shape().iter().map(|&n| n as i64).collect::<Vec<_>>();
                    ops::slice(a, &[0, 0, skip as i64, 0], &s, &[])
                };
                let k = ops::slice(
                    &x(&k)?,
                    &[0, 0, 0, 0],
                    &[b as i64, hk as i64, 2 * lk as i64, d as i64],
                    &[1, 1, 2, 1],
                )?;
                let g = rows(&ops::transpose(&x(&g)?, [0, 2, 1, 3])?)?;
                let (_, gr) = umx_core::vjp(
                    |p| {
                        Ok(vec![fast::scaled_dot_product_attention(
                            &p[0], &p[1], &p[2], 0.088, mask, None,
                        )?])
                    },
                    &[rows(&x(&q)?)?, k, x(&v)?],
                    &[g],
                )?;
                let mut gr = gr;
                if skip > 0 {
                    let zeros = ops::zeros(&[b, hq, skip, d], gr[0].dtype())?;
                    gr[0] = ops::concatenate(&[zeros, gr[0].clone()], 2)?;
                }
                Ok::<_, umx_core::Error>(gr)
            };
            let cpu = with_device(Device::Cpu, || {
                grads(&|a: &Array| a.astype(Dtype::Float32), skip)?
                    .iter()
                    .map(|g| g.astype(dt))
                    .collect::<umx_core::Result<Vec<_>>>()
            })
            .unwrap();
            let gpu = with_device(Device::Gpu(0), || grads(&|a: &Array| Ok(a.clone()), 0)).unwrap();
            for (name, (c, g)) in ["dq", "dk", "dv"].into_iter().zip(cpu.iter().zip(&gpu)) {
                assert_eq!((c.shape(), g.dtype()), (g.shape(), dt), "{what}: {name}");
                let (c, g) = (c.to_vec::<f64>().unwrap(), g.to_vec::<f64>().unwrap());
                let scale = c.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-6);
                let err = c
                    .iter()
                    .zip(&g)
                    .fold(0f64, |m, (c, g)| m.max((c - g).abs()));
                assert!(
                    err <= tol * scale,
                    "{what}: {name}: max difference {err} against a largest value {scale}"
                );
            }
            cases += 1;
        }
    }
    // A float32 cotangent of bfloat16 attention: the gradients of its bfloat16 rounding.
    let (q, k) = (
        input(&[1, 2, 64, 64], Dtype::Bfloat16, 31),
        input(&[1, 2, 64, 64], Dtype::Bfloat16, 32),
    );
    let g = input(&[1, 2, 64, 64], Dtype::Float32, 33);
    let grads = |g: &Array| {
        with_device(Device::Gpu(0), || {
            let f = |p: &[Array]| {
                let o = fast::scaled_dot_product_attention(
                    &p[0],
                    &p[1],
                    &p[1],
                    0.1,
                    AttentionMask::Causal,
                    None,
                )?;
                Ok(vec![o])
            };
            let (_, gr) = umx_core::vjp(f, &[q.clone(), k.clone()], std::slice::from_ref(g))?;
            gr.iter()
                .map(|x| x.to_vec::<f32>())
                .collect::<umx_core::Result<Vec<_>>>()
        })
        .unwrap()
    };
    assert_eq!(
        grads(&g),
        grads(&g.astype(Dtype::Bfloat16).unwrap()),
        "a float32 cotangent"
    );
    cases += 2;
    let report = umx_cuda::profile_report().unwrap();
    umx_cuda::set_profiling(was);
    let backward: usize = report
        .iter()
        .filter(|l| l.label.contains("flash attention backward"))
        .map(|l| l.count)
        .sum();
    assert!(
        backward >= cases,
        "the backward kernels ran {backward} times: {report:?}"
    );
    // On Hopper, head dims 64 and 128 take the wgmma kernel (14 of the 16 calls).
    let wgmma: usize = report
        .iter()
        .filter(|l| l.label.contains("flash attention backward (wgmma)"))
        .map(|l| l.count)
        .sum();
    let hopper = umx_cuda::device_info().unwrap().1 == (9, 0);
    assert_eq!(
        wgmma >= 14,
        hopper,
        "the wgmma backward kernel ran {wgmma} times: {report:?}"
    );
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

#[test]
fn quantize_linspace_complex_normals_and_complex_scatters_run_on_the_gpu() {
    if !setup() {
        return;
    }
    // quantize: the CPU's codes, scales and biases bit for bit.
    let w = input(&[6, 256], Dtype::Float32, 90);
    for dtype in [Dtype::Float32, Dtype::Float16, Dtype::Bfloat16] {
        for (group, bits) in [
            (32, 2),
            (64, 3),
            (64, 4),
            (128, 5),
            (32, 6),
            (64, 8),
            (32, 1),
        ] {
            let wd = with_device(Device::Cpu, || w.astype(dtype)).unwrap();
            let parts = |d: Device| {
                with_device(d, || ops::quantize(&wd, group, bits))
                    .map(|(q, s, b)| {
                        (
                            q.to_vec::<u32>().unwrap(),
                            s.to_vec::<f64>().unwrap(),
                            b.to_vec::<f64>().unwrap(),
                        )
                    })
                    .unwrap()
            };
            assert_eq!(
                parts(Device::Cpu),
                parts(Device::Gpu(0)),
                "quantize {dtype} group {group} bits {bits}"
            );
        }
    }
    assert!(!umx_cuda::fallback_ops().contains(&"quantize"));
    // quantized_matmul with no rows: an empty product, no round trip.
    let (q, s, b) = with_device(Device::Cpu, || ops::quantize(&w, 64, 4)).unwrap();
    let x0 = input(&[0, 256], Dtype::Float32, 91);
    let (c, g) = both(|| ops::quantized_matmul(&x0, &q, &s, &b, true, 64, 4));
    assert_eq!((c.len(), g.len()), (0, 0));
    // linspace in float and integer dtypes, with the edge counts.
    for dtype in [
        Dtype::Float32,
        Dtype::Float16,
        Dtype::Bfloat16,
        Dtype::Int32,
    ] {
        for num in [0, 1, 2, 7, 1000] {
            let (c, g) = both(|| ops::linspace(-3.0, 7.5, num, dtype));
            assert_eq!(c, g, "linspace {dtype} {num}");
        }
    }
    // Complex normal samples, with real and complex parameters: the CPU's numbers.
    let key = random::key(7).unwrap();
    let loc = input(&[3, 1], Dtype::Float32, 92);
    let scale = with_device(Device::Cpu, || {
        ops::add(
            &input(&[4], Dtype::Float32, 93).astype(Dtype::Complex64)?,
            Array::from_slice(&[umx_core::Complex32::new(0.5, -1.5)], &[])?,
        )
    })
    .unwrap();
    let cases: Vec<Case> = vec![
        (
            "plain",
            Box::new(|| random::normal(&[5, 7], Dtype::Complex64, 0.0, 1.0, Some(&key))),
        ),
        (
            "real loc",
            Box::new(|| random::normal(&[3, 4], Dtype::Complex64, &loc, 1.0, Some(&key))),
        ),
        (
            "complex scale",
            Box::new(|| random::normal(&[3, 4], Dtype::Complex64, 0.0, &scale, Some(&key))),
        ),
        (
            "both",
            Box::new(|| random::normal(&[3, 4], Dtype::Complex64, &loc, &scale, Some(&key))),
        ),
    ];
    for (what, f) in &cases {
        let (c, g) = both_complex(f);
        assert_eq!(c, g, "complex normal, {what}");
    }
    // Scatters that combine complex64 values, with repeated destinations; triangles and
    // diagonals of complex64.
    let z = with_device(Device::Cpu, || {
        umx_core::fft::fft(&input(&[5, 6], Dtype::Float32, 94), None, -1, "ortho")
    })
    .unwrap();
    let u = with_device(Device::Cpu, || {
        umx_core::fft::fft(&input(&[8, 1, 6], Dtype::Float32, 95), None, -1, "ortho")
    })
    .unwrap();
    let idx = with_device(Device::Cpu, || {
        Array::from_slice(&[0i32, 3, 3, 1, 4, 0, 3, -1], &[8])
    })
    .unwrap();
    type Scatter = fn(&Array, &[Array], &Array, &[i64]) -> umx_core::Result<Array>;
    let scatters: [(&str, Scatter, f64); 4] = [
        ("add", ops::scatter_add, 1e-6),
        ("prod", ops::scatter_prod, 1e-5),
        ("max", ops::scatter_max, 0.0),
        ("min", ops::scatter_min, 0.0),
    ];
    for (what, f, tol) in scatters {
        let (c, g) = both_complex(|| f(&z, std::slice::from_ref(&idx), &u, &[0]));
        // Repeated destinations add (and multiply) in another order on the GPU.
        assert_close(&format!("complex scatter_{what}"), &c, &g, tol);
    }
    for k in [-1, 0, 2] {
        let (c, g) = both_complex(|| ops::tril(&z, k));
        assert_eq!(c, g, "complex tril {k}");
        let v = with_device(Device::Cpu, || ops::diag(&z, 0)).unwrap();
        let (c, g) = both_complex(|| ops::diag(&v, k));
        assert_eq!(c, g, "complex diagonal matrix {k}");
    }
}
