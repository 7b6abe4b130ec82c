//! Element-wise ops on the GPU against the CPU: unary, binary and ternary ops on every layout, and complex64.

use crate::*;

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
            // One-element arrays computed on the device (a bias correction, a learning rate):
            // read once per thread by the contiguous kernel, with an odd count's tail too.
            (
                "device scalar",
                Box::new(|| ops::multiply(&a, &ops::max(&row, None, false)?)),
            ),
            (
                "device scalars, odd count",
                Box::new(|| {
                    let s = ops::min(&row, None, true)?;
                    let t = ops::slice(&a, &[0, 0], &[5, 13], &[])?;
                    let t = ops::add(&t, 0.0)?;
                    ops::where_(&ops::greater(&t, &s)?, &ops::subtract(&t, &s)?, &s)
                }),
            ),
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

/// A compiled function's independent updates (an optimizer's, one per parameter) run as one
/// kernel when their operands are contiguous: parameters of several shapes and dtypes (one
/// empty, which the kernel skips), a learning rate passed by value and a scale on the device,
/// all against the CPU. A transposed operand sends each program to its own kernel instead,
/// with the same values.
#[test]
fn compiled_updates_run_as_one_group_kernel() {
    if !setup() {
        return;
    }
    let f = |a: &[Array]| -> umx_core::Result<Vec<Array>> {
        let (lr, scale) = (&a[0], &a[1]);
        let mut outs = Vec::new();
        for k in 0..4 {
            let (p, g, m) = (&a[2 + 3 * k], &a[3 + 3 * k], &a[4 + 3 * k]);
            let m2 = ops::add(ops::multiply(m, 0.9)?, ops::multiply(g, scale)?)?;
            let step = ops::divide(&m2, ops::add(ops::sqrt(&ops::abs(g)?)?, 1e-3)?)?;
            let p2 = ops::subtract(p, ops::multiply(step, lr)?.astype(p.dtype())?)?;
            outs.push(p2);
            outs.push(m2);
        }
        Ok(outs)
    };
    let shapes: [&[usize]; 4] = [&[1000, 37], &[4097], &[3, 5], &[0, 4]];
    let dtypes = [
        Dtype::Float32,
        Dtype::Bfloat16,
        Dtype::Float16,
        Dtype::Float32,
    ];
    let _lock = profiling();
    let was = umx_cuda::set_profiling(true);
    for transposed in [false, true] {
        let lr = Array::scalar(0.01f32);
        let scale =
            with_device(Device::Gpu(0), || ops::multiply(Array::scalar(0.1f32), 1.0)).unwrap();
        scale.eval().unwrap();
        let mut args = vec![lr, scale];
        for (k, (shape, dtype)) in shapes.iter().zip(dtypes).enumerate() {
            for j in 0..3 {
                let x = input(
                    shape,
                    if j == 0 { dtype } else { Dtype::Float32 },
                    50 + 3 * k as u64 + j,
                );
                // The first parameter's gradient as the transpose of a stored array.
                let x = if transposed && k == 0 && j == 1 {
                    let t = input(&[shape[1], shape[0]], Dtype::Float32, 70);
                    with_device(Device::Cpu, || ops::transpose(&t, None)).unwrap()
                } else {
                    x
                };
                args.push(x);
            }
        }
        let cf = umx_core::transforms::compile(f, false);
        let _ = umx_cuda::profile_report();
        let cpu = with_device(Device::Cpu, || cf(&args)).unwrap();
        let gpu = with_device(Device::Gpu(0), || cf(&args)).unwrap();
        assert!(matches!(
            gpu[0].primitive(),
            Some(umx_core::primitives::Primitive::FusedGroup(_))
        ));
        for (k, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
            let rtol = if c.dtype() == Dtype::Float32 {
                1e-6
            } else {
                1e-2
            };
            let what = format!(
                "output {k} ({:?} {}), transposed {transposed}",
                c.shape(),
                c.dtype()
            );
            assert_eq!((c.shape(), c.dtype()), (g.shape(), g.dtype()), "{what}");
            assert_close(
                &what,
                &c.to_vec::<f64>().unwrap(),
                &g.to_vec::<f64>().unwrap(),
                rtol,
            );
        }
        let report = umx_cuda::profile_report().unwrap();
        let groups: Vec<&str> = report
            .iter()
            .filter(|l| l.label.starts_with(" fused group:"))
            .map(|l| l.label.as_str())
            .collect();
        if transposed {
            assert!(groups.is_empty(), "{report:?}");
        } else {
            assert_eq!(groups.len(), 1, "{report:?}");
            assert!(groups[0].contains(" 3 programs"), "{report:?}");
        }
    }
    umx_cuda::set_profiling(was);
}
