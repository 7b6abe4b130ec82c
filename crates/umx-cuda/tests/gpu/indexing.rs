//! Gathers, scatters, scans, arg-reductions, sorts of long lanes, searchsorted, padding and
//! `as_strided` on the GPU against the CPU.

use crate::*;

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
                "concatenate along the middle axis",
                Box::new(|| ops::concatenate(&[a.clone(), input(&[6, 2, 4], dtype, 13)], 1)),
            ),
            (
                "concatenate along the last axis, a view among them",
                Box::new(|| {
                    let b = input(&[6, 5, 3], dtype, 14);
                    ops::concatenate(
                        &[
                            b.clone(),
                            a.clone(),
                            ops::slice(&a, &[0, 0, 1], &[6, 5, 3], &[1, 1, 1])?,
                        ],
                        2,
                    )
                }),
            ),
            (
                "concatenate of two dtypes",
                Box::new(|| ops::concatenate(&[a.clone(), upd.astype(Dtype::Float32)?], 0)),
            ),
            (
                "pad one axis",
                Box::new(|| ops::pad(&a, &[(0, 0), (2, 1), (0, 0)], 3.0, PadMode::Constant)),
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
    // Long rows (a vocabulary's logits take the block kernel; contiguous aligned rows its
    // vector loads): coarse values, so the extreme ties within a row and the first must win,
    // a NaN in one row, a row offset by one element (unaligned), a strided row, a length that
    // is not a whole number of vectors.
    for dtype in [
        Dtype::Bfloat16,
        Dtype::Float16,
        Dtype::Float32,
        Dtype::Int32,
        Dtype::Uint8,
    ] {
        let cpu = |f: &dyn Fn() -> umx_core::Result<Array>| with_device(Device::Cpu, f).unwrap();
        let coarse = cpu(&|| ops::floor(&ops::abs(&input(&[3, 32016], Dtype::Float32, 19))?));
        let mut values: Vec<f32> = coarse.to_vec().unwrap();
        if dtype.is_float() {
            values[20011] = f32::NAN;
            values[31999] = f32::NAN;
        }
        let x = cpu(&|| Array::from_slice(&values, &[3, 32016])?.astype(dtype));
        let unaligned = cpu(&|| ops::slice(&x, &[0, 1], &[3, 32016], &[1, 1]));
        let tail = cpu(&|| ops::slice(&x, &[0, 0], &[3, 32005], &[1, 1]));
        let strided = cpu(&|| ops::transpose(&x, [1, 0]));
        for (what, a, axis) in [
            ("rows", &x, 1),
            ("rows from their second element", &unaligned, 1),
            ("rows with a tail", &tail, 1),
            ("columns of a transpose", &strided, 0),
        ] {
            let (c, g) = both(|| ops::argmax(a, Some(axis), false));
            assert_eq!(c, g, "argmax of long {what} {dtype}");
            let (c, g) = both(|| ops::argmin(a, Some(axis), false));
            assert_eq!(c, g, "argmin of long {what} {dtype}");
        }
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
