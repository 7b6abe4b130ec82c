//! Matrix products, factorizations and Fourier transforms on the GPU against the CPU.

use crate::*;

/// [`assert_close`] relative to the largest finite magnitude of the CPU's values: a product's
/// rounding grows with the size of its sums, not of each output.
fn assert_close_to_largest(what: &str, cpu: &[f64], gpu: &[f64], rtol: f64) {
    let scale = cpu
        .iter()
        .filter(|x| x.is_finite())
        .fold(1.0f64, |m, x| m.max(x.abs()));
    let cs: Vec<f64> = cpu.iter().map(|x| x / scale).collect();
    let gs: Vec<f64> = gpu.iter().map(|x| x / scale).collect();
    assert_close(what, &cs, &gs, rtol);
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
            assert_close_to_largest(&format!("{name} {dtype}"), &c, &g, rtol);
        }
    }
}

/// Products of a few rows with a weight's transpose, `x @ w.T` (a decoding step's): umx's
/// matrix-vector kernel, alone and as `addmm` with a residual, a bias or a broadcast addend
/// added in its epilogue, over few columns (a block's warps share each) and many (a warp
/// each), 1 to 8 rows, every float dtype, and a row that starts inside its buffer; beta 0
/// ignores a NaN addend. An addend whose rows
/// no single stride reaches, and 9 rows, go to cuBLASLt: the same values.
#[test]
fn matrix_vector_products_and_their_addends_agree_with_the_cpu() {
    if !setup() {
        return;
    }
    umx_cuda::set_tf32(false);
    let _lock = profiling();
    let was = umx_cuda::set_profiling(true);
    let _ = umx_cuda::profile_report();
    // More columns than 16 per SM on any card up to 512 SMs: a warp per column.
    let many = 8200;
    for dtype in [Dtype::Float32, Dtype::Float16, Dtype::Bfloat16] {
        let rtol = if dtype == Dtype::Float32 { 1e-4 } else { 2e-2 };
        for (n, lead) in [
            (40, vec![1]),
            (40, vec![2, 3]),
            (many, vec![8]),
            (40, vec![9]),
        ] {
            let k = 96;
            let mut shape = lead.clone();
            shape.push(k);
            let x = input(&shape, dtype, 20);
            // (n, k) row-major, used transposed: what a Linear layer's weight is.
            let w = input(&[n, k], dtype, 21);
            let mut out = lead.clone();
            out.push(n);
            let residual = input(&out, dtype, 22);
            let bias = input(&[n], dtype, 23);
            let rows_of_one = input(&[lead[0], 1, n], dtype, 24);
            let nan = with_device(Device::Cpu, || ops::full(&[n], f64::NAN, dtype)).unwrap();
            let wide = input(&[1, 2 * k], dtype, 25);
            let mut cases: Vec<Case> = vec![
                ("product", Box::new(|| ops::matmul(&x, &w.t()?))),
                (
                    "residual",
                    Box::new(|| ops::addmm(&residual, &x, &w.t()?, 1.0, 1.0)),
                ),
                (
                    "bias, alpha, beta",
                    Box::new(|| ops::addmm(&bias, &x, &w.t()?, 0.5, 2.0)),
                ),
                (
                    "a residual's transposed view",
                    Box::new(|| {
                        let r = residual.reshape(&[-1, n as i64])?;
                        let r = ops::add(&r.t()?, 0.0)?.t()?;
                        ops::addmm(
                            &r.reshape(&out.iter().map(|&d| d as i64).collect::<Vec<_>>())?,
                            &x,
                            &w.t()?,
                            1.0,
                            1.0,
                        )
                    }),
                ),
                (
                    "beta 0 ignores c",
                    Box::new(|| ops::addmm(&nan, &x, &w.t()?, 1.0, 0.0)),
                ),
            ];
            if lead == [1] {
                // A row-major operand that does not start its buffer (a stacked product's
                // second half): the matrix-vector kernel reads it where it is.
                cases.push((
                    "the second half of a row",
                    Box::new(|| {
                        let half = ops::slice(&wide, &[0, k as i64], &[1, 2 * k as i64], &[])?;
                        ops::matmul(&half, &w.t()?)
                    }),
                ));
            }
            if lead.len() == 2 {
                // (2, 1, n) over (2, 3, n): rows 0-2 read one row, 3-5 the next: no one stride.
                cases.push((
                    "rows that no stride reaches",
                    Box::new(|| ops::addmm(&rows_of_one, &x, &w.t()?, 1.0, 1.0)),
                ));
            }
            for (name, f) in &cases {
                let (c, g) = both(f);
                let what = format!("{name}, {n} columns, rows {lead:?}, {dtype}");
                assert_close_to_largest(&what, &c, &g, rtol);
            }
        }
    }
    let report = umx_cuda::profile_report().unwrap();
    umx_cuda::set_profiling(was);
    let count = |what: &str| -> usize {
        report
            .iter()
            .filter(|l| l.label.starts_with(what))
            .map(|l| l.count)
            .sum()
    };
    // Per dtype: 3 shapes x (product, beta 0) plain and the half row; 3 x 3 with the addend.
    assert_eq!(count(" matrix-vector:"), 21, "{report:?}");
    assert_eq!(count(" matrix-vector + addend:"), 27, "{report:?}");
    // Rows of 2048 16-bit values and, on a card of 132 SMs (H100, H200), from 16 to 24
    // columns an SM (a block's four warps a column): a decoding step's q/k/v product (2560
    // columns), with and without a residual.
    for n in [2112, 2560, 3167] {
        let x = input(&[1, 2048], Dtype::Bfloat16, 26);
        let w = input(&[n, 2048], Dtype::Bfloat16, 27);
        let residual = input(&[1, n], Dtype::Bfloat16, 28);
        let (c, g) = both(|| ops::matmul(&x, &w.t()?));
        assert_close_to_largest(&format!("{n} columns of 2048"), &c, &g, 2e-2);
        let (c, g) = both(|| ops::addmm(&residual, &x, &w.t()?, 1.0, 1.0));
        assert_close_to_largest(&format!("{n} columns of 2048, residual"), &c, &g, 2e-2);
    }
}

/// `fast::swiglu_linear` on a few rows is one matrix-vector kernel computing each output's
/// gate and up dot products together: over few columns (a block's warps share each, or two
/// warps each) and many (a warp each), 1 to 8 rows, every float dtype, a weight that is a
/// view at an offset: the CPU's values. Its quantized form likewise.
#[test]
fn swiglu_products_run_as_one_matrix_vector_kernel() {
    if !setup() {
        return;
    }
    let _lock = profiling();
    let was = umx_cuda::set_profiling(true);
    let _ = umx_cuda::profile_report();
    let mut launched = 0;
    for dtype in [Dtype::Float32, Dtype::Float16, Dtype::Bfloat16] {
        let rtol = if dtype == Dtype::Float32 { 1e-4 } else { 2e-2 };
        // Many columns (a warp each), few with a short row (the block shares each), few with
        // a row of 2048 bfloat16s (two warps each).
        for (rows, i, k) in [(1, 8200, 64), (3, 40, 96), (8, 24, 2048), (1, 24, 2048)] {
            let x = input(&[rows, k], dtype, 30);
            let w = input(&[2 * i + 2, k], dtype, 31);
            let f = || {
                // Rows 2.. of a wider weight: a view at an offset.
                let w = ops::slice(&w, &[2, 0], &[2 * i as i64 + 2, k as i64], &[])?;
                umx_core::fast::swiglu_linear(&x, &w)
            };
            let (c, g) = both(f);
            let what = format!("swiglu {rows}x{k}, {i} columns, {dtype}");
            assert_close_to_largest(&what, &c, &g, rtol);
            launched += 1;
        }
        // The quantized form: umx's quantized matrix-vector kernel reading each column's
        // gate and up rows (4 and 3 bits, a row of 2048 and one of 192).
        for (rows, i, k, gs, bits) in [(1, 2200, 2048, 64, 4), (3, 40, 192, 32, 3)] {
            let x = input(&[rows, k], dtype, 32);
            let w = input(&[2 * i, k], dtype, 33);
            let (q, s, b) = with_device(Device::Cpu, || ops::quantize(&w, gs, bits)).unwrap();
            let f = || umx_core::fast::swiglu_quantized_linear(&x, &q, &s, &b, gs, bits);
            let (c, g) = both(f);
            let what = format!("quantized swiglu {rows}x{k}, {i} columns, {bits} bits, {dtype}");
            assert_close_to_largest(&what, &c, &g, rtol);
        }
    }
    let report = umx_cuda::profile_report().unwrap();
    umx_cuda::set_profiling(was);
    let count: usize = report
        .iter()
        .filter(|l| l.label.starts_with(" matrix-vector, SwiGLU:"))
        .map(|l| l.count)
        .sum();
    assert_eq!(count, launched, "{report:?}");
}

/// The matrix-vector kernels load a lane's first weights before waiting for the kernel
/// before them only when the weights' writes ended at a synchronization of the stream: a
/// weight the kernel just before the product wrote is read after the wait. Both give the
/// CPU's values, for umx's kernel over few columns (a block's warps share each) and many,
/// every float dtype, and for the quantized kernel. The products run in a CUDA graph capture
/// (which synchronizes first and keeps other threads' work, and their synchronizations, out
/// until it ends), so which weights are settled is the same on every run.
#[test]
fn matrix_vector_products_read_only_settled_weights_early() {
    if !setup() {
        return;
    }
    type Product = Box<dyn Fn() -> umx_core::Result<Array> + Send + Sync>;
    let _lock = profiling();
    let was = umx_cuda::set_profiling(true);
    let _ = umx_cuda::profile_report();
    let gpu = |f: &dyn Fn() -> umx_core::Result<Array>| with_device(Device::Gpu(0), f).unwrap();
    let cpu = |f: &dyn Fn() -> umx_core::Result<Array>| with_device(Device::Cpu, f).unwrap();
    // (what, the CPU's values, relative tolerance, the product on the GPU)
    let mut cases: Vec<(String, Array, f64, Product)> = Vec::new();
    for dtype in [Dtype::Float32, Dtype::Float16, Dtype::Bfloat16] {
        let rtol = if dtype == Dtype::Float32 { 1e-4 } else { 2e-2 };
        // Long enough rows that every lane has four vectors to load first; few columns (a
        // block's warps share each: four, or two for the 16-bit rows of 2048) and many.
        for (n, k) in [(300, 2048), (300, 4096), (8200, 4096)] {
            let x = input(&[2, k], dtype, 30);
            let w = input(&[n, k], dtype, 31);
            let want = cpu(&|| ops::matmul(&x, &w.t()?));
            let (xg, wg) = (
                gpu(&|| ops::multiply(&x, 1.0)),
                gpu(&|| ops::multiply(&w, 1.0)),
            );
            umx_core::eval(&[xg.clone(), wg.clone()]).unwrap();
            let (x2, w2) = (xg.clone(), wg.clone());
            // A kernel right before the product (x's), as in a decoding step.
            let settled: Product =
                Box::new(move || ops::matmul(&ops::multiply(&x2, 1.0)?, &w2.t()?));
            // The weight written by the kernel just before the product.
            let fresh: Product = Box::new(move || ops::matmul(&xg, &ops::multiply(&wg, 1.0)?.t()?));
            let what = format!("{n} columns of {k}, {dtype}");
            cases.push((
                format!("settled weight, {what}"),
                want.clone(),
                rtol,
                settled,
            ));
            cases.push((format!("fresh weight, {what}"), want, rtol, fresh));
        }
    }
    for (dtype, bits) in [(Dtype::Bfloat16, 4), (Dtype::Float32, 8)] {
        let (n, k, gs) = (300, 4096, 64);
        let x = input(&[1, k], dtype, 32);
        let w = input(&[n, k], dtype, 33);
        let (q, sc, bi) = with_device(Device::Cpu, || ops::quantize(&w, gs, bits)).unwrap();
        let want = cpu(&|| ops::quantized_matmul(&x, &q, &sc, &bi, true, gs, bits));
        let on_gpu: Vec<Array> = [&x, &q, &sc, &bi]
            .iter()
            .map(|a| gpu(&|| ops::add(*a, &ops::zeros_like(a)?)))
            .collect();
        umx_core::eval(&on_gpu).unwrap();
        let g2 = on_gpu.clone();
        let settled: Product = Box::new(move || {
            let x = ops::multiply(&g2[0], 1.0)?;
            ops::quantized_matmul(&x, &g2[1], &g2[2], &g2[3], true, gs, bits)
        });
        let g = on_gpu;
        let fresh: Product = Box::new(move || {
            let q = ops::add(&g[1], &ops::zeros_like(&g[1])?)?;
            ops::quantized_matmul(&g[0], &q, &g[2], &g[3], true, gs, bits)
        });
        let rtol = if dtype == Dtype::Float32 { 1e-4 } else { 2e-2 };
        let what = format!("{bits}-bit codes, {dtype}");
        cases.push((format!("settled {what}"), want.clone(), rtol, settled));
        cases.push((format!("fresh {what}"), want, rtol, fresh));
    }
    let state: Vec<Array> = cases
        .iter()
        .map(|(_, want, _, _)| gpu(&|| ops::zeros(want.shape(), want.dtype())))
        .collect();
    let graph = umx_cuda::CudaGraph::capture(
        |_| {
            cases
                .iter()
                .map(|(_, _, _, f)| with_device(Device::Gpu(0), f))
                .collect()
        },
        state,
    )
    .unwrap();
    for (i, (what, want, rtol, _)) in cases.iter().enumerate() {
        let want = want.to_vec::<f64>().unwrap();
        let got = graph.read(i).unwrap().to_vec::<f64>().unwrap();
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let c: Vec<f64> = want.iter().map(|v| v / scale).collect();
        let g: Vec<f64> = got.iter().map(|v| v / scale).collect();
        assert_close(what, &c, &g, *rtol);
    }
    let report = umx_cuda::profile_report().unwrap();
    umx_cuda::set_profiling(was);
    let count = |early: bool| -> usize {
        report
            .iter()
            .filter(|l| l.label.starts_with(" matrix-vector:"))
            .filter(|l| l.label.ends_with("weights read early") == early)
            .map(|l| l.count)
            .sum()
    };
    // Per dtype and shape: the settled weight's product early, the fresh one's not.
    assert_eq!((count(true), count(false)), (9, 9), "{report:?}");
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
