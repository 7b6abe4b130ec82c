//! Convolutions: [`conv_general`] and the 1-, 2- and 3-D convolutions and transposed
//! convolutions built on it, with MLX's layouts (channels last: input `(N, ..., C_in)`, weight
//! `(C_out, ..., C_in / groups)`).
//!
//! A convolution is composed of existing ops: zeros inserted for input dilation, a pad, a
//! strided view of every window (`as_strided`), and one (grouped, batched) matrix product. So
//! it runs on every backend, and its vjp, jvp and vmap come from those ops' rules.

use crate::shape::fmt_shape;
use crate::{Array, Result, bail, ops};

/// One number for every spatial axis, or one per axis.
#[derive(Clone, Debug)]
pub struct PerAxis(pub Vec<usize>);

impl From<usize> for PerAxis {
    fn from(v: usize) -> Self {
        PerAxis(vec![v])
    }
}
impl<const N: usize> From<[usize; N]> for PerAxis {
    fn from(v: [usize; N]) -> Self {
        PerAxis(v.to_vec())
    }
}
impl From<&[usize]> for PerAxis {
    fn from(v: &[usize]) -> Self {
        PerAxis(v.to_vec())
    }
}
impl From<Vec<usize>> for PerAxis {
    fn from(v: Vec<usize>) -> Self {
        PerAxis(v)
    }
}

impl PerAxis {
    fn expand(&self, op: &str, what: &str, d: usize) -> Result<Vec<usize>> {
        match self.0.len() {
            1 => Ok(vec![self.0[0]; d]),
            n if n == d => Ok(self.0.clone()),
            n => bail!("{op}: {n} values of {what} for {d} spatial dimensions"),
        }
    }
}

/// `x` with `factor - 1` zeros inserted between neighbours along each spatial axis.
fn dilate_input(x: &Array, factors: &[usize]) -> Result<Array> {
    let mut x = x.clone();
    for (i, &f) in factors.iter().enumerate() {
        let ax = i + 1;
        let n = x.shape()[ax];
        if f <= 1 || n <= 1 {
            continue;
        }
        // (.., n, ..) -> (.., n, 1, ..) -> padded to (.., n, f, ..) -> (.., n * f, ..), cropped.
        let e = ops::expand_dims(&x, (ax + 1) as i64)?;
        let mut widths = vec![(0i64, 0i64); e.ndim()];
        widths[ax + 1] = (0, f as i64 - 1);
        let p = ops::pad(
            &e,
            &widths,
            0.0,
            crate::primitives::shape::PadMode::Constant,
        )?;
        let mut shape: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
        shape[ax] = (n * f) as i64;
        let merged = ops::reshape(&p, &shape)?;
        let mut start = vec![0i64; x.ndim()];
        let mut stop: Vec<i64> = shape.clone();
        start[ax] = 0;
        stop[ax] = ((n - 1) * f + 1) as i64;
        x = ops::slice(&merged, &start, &stop, &[])?;
    }
    Ok(x)
}

/// A general convolution (MLX's `conv_general`): `input (N, ..., C_in)` with `weight (C_out,
/// ..., C_in / groups)`, `stride`, `padding` (low, high) per spatial axis, kernel and input
/// dilation, channel `groups`, and `flip` (a true convolution rather than a correlation).
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops};
/// let x = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[1, 4, 1])?;
/// let w = Array::from_slice(&[1.0f32, -1.0], &[1, 2, 1])?;
/// let y = ops::conv_general(&x, &w, 1, (vec![0], vec![0]), 1, 1, 1, false)?;
/// assert_eq!(y.to_vec::<f32>()?, [-1.0, -1.0, -1.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
#[allow(clippy::too_many_arguments)] // MLX's arguments, in MLX's order
pub fn conv_general(
    input: &Array,
    weight: &Array,
    stride: impl Into<PerAxis>,
    padding: (Vec<usize>, Vec<usize>),
    kernel_dilation: impl Into<PerAxis>,
    input_dilation: impl Into<PerAxis>,
    groups: usize,
    flip: bool,
) -> Result<Array> {
    let op = "conv_general";
    input.check()?;
    weight.check()?;
    if input.ndim() < 3 || weight.ndim() != input.ndim() {
        bail!(
            "{op}: input {} and weight {} must both be (N or C_out, spatial..., C) with at least \
             one spatial axis",
            fmt_shape(input.shape()),
            fmt_shape(weight.shape())
        );
    }
    let d = input.ndim() - 2;
    let stride = stride.into().expand(op, "stride", d)?;
    let kdil = kernel_dilation.into().expand(op, "kernel_dilation", d)?;
    let idil = input_dilation.into().expand(op, "input_dilation", d)?;
    let lo = PerAxis(padding.0).expand(op, "padding", d)?;
    let hi = PerAxis(padding.1).expand(op, "padding", d)?;
    if stride.iter().chain(&kdil).chain(&idil).any(|&v| v == 0) {
        bail!("{op}: strides and dilations must be positive");
    }
    let c_in = input.shape()[d + 1];
    let c_out = weight.shape()[0];
    if groups == 0
        || !c_in.is_multiple_of(groups)
        || !c_out.is_multiple_of(groups)
        || weight.shape()[d + 1] * groups != c_in
    {
        bail!(
            "{op}: input {} and weight {} do not fit {groups} groups: the weight's last axis times \
             the groups must equal the input channels, and both channel counts must divide by \
             the groups",
            fmt_shape(input.shape()),
            fmt_shape(weight.shape())
        );
    }
    let dtype = crate::promote_types(input.dtype(), weight.dtype());
    if !dtype.is_float() {
        bail!(
            "{op}: inputs must be floating point, not {} and {}",
            input.dtype(),
            weight.dtype()
        );
    }
    let x = dilate_input(input, &idil)?;
    let mut widths = vec![(0i64, 0i64); x.ndim()];
    for i in 0..d {
        widths[i + 1] = (lo[i] as i64, hi[i] as i64);
    }
    let x = ops::pad(
        &x,
        &widths,
        0.0,
        crate::primitives::shape::PadMode::Constant,
    )?;
    let x = ops::contiguous(&x)?;
    let kernel: Vec<usize> = (0..d).map(|i| weight.shape()[i + 1]).collect();
    let n = x.shape()[0];
    let mut out_sp = Vec::with_capacity(d);
    for i in 0..d {
        let span = kdil[i] * (kernel[i] - 1) + 1;
        let size = x.shape()[i + 1];
        if size < span {
            bail!(
                "{op}: the (padded, dilated) input {} is smaller than the (dilated) kernel {} on \
                 spatial axis {i}",
                fmt_shape(x.shape()),
                fmt_shape(weight.shape())
            );
        }
        out_sp.push((size - span) / stride[i] + 1);
    }
    // Every window as a view: (N, out..., k..., C_in).
    let rm = crate::shape::row_major_strides(x.shape());
    let mut shape = vec![n];
    let mut strides = vec![rm[0] as i64];
    for i in 0..d {
        shape.push(out_sp[i]);
        strides.push(rm[i + 1] as i64 * stride[i] as i64);
    }
    for i in 0..d {
        shape.push(kernel[i]);
        strides.push(rm[i + 1] as i64 * kdil[i] as i64);
    }
    shape.push(c_in);
    strides.push(1);
    let windows = ops::as_strided(&x, &shape, &strides, 0)?;
    let w = if flip {
        ops::flip(weight, (1..=d as i64).collect::<Vec<_>>())?
    } else {
        weight.clone()
    };
    let rows: usize = n * out_sp.iter().product::<usize>();
    let k: usize = kernel.iter().product();
    let g = groups;
    let (cg, og) = (c_in / g, c_out / g);
    // (rows, k, g, cg) -> (g, rows, k * cg) @ (g, k * cg, og) -> (rows, g * og)
    let patches = ops::reshape(&windows, &[rows as i64, k as i64, g as i64, cg as i64])?;
    let patches = ops::reshape(
        &ops::transpose(&patches, [2i64, 0, 1, 3])?,
        &[g as i64, rows as i64, (k * cg) as i64],
    )?;
    let wg = ops::reshape(&w, &[g as i64, og as i64, (k * cg) as i64])?;
    let y = ops::matmul(&patches, &ops::swapaxes(&wg, -1, -2)?)?;
    let y = ops::reshape(
        &ops::transpose(&y, [1i64, 0, 2])?,
        &[rows as i64, c_out as i64],
    )?;
    let mut out_shape: Vec<i64> = vec![n as i64];
    out_shape.extend(out_sp.iter().map(|&s| s as i64));
    out_shape.push(c_out as i64);
    ops::reshape(&y, &out_shape)
}

fn check_dims(op: &str, input: &Array, d: usize) -> Result<()> {
    if input.ndim() != d + 2 {
        bail!(
            "{op}: input must be {}-D (N, {}C_in), not shape {}",
            d + 2,
            "spatial, ".repeat(d),
            fmt_shape(input.shape())
        );
    }
    Ok(())
}

/// 1-D convolution (correlation) of `(N, L, C_in)` with `(C_out, K, C_in / groups)`.
pub fn conv1d(
    input: &Array,
    weight: &Array,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
) -> Result<Array> {
    check_dims("conv1d", input, 1)?;
    conv_general(
        input,
        weight,
        stride,
        (vec![padding], vec![padding]),
        dilation,
        1,
        groups,
        false,
    )
}

/// 2-D convolution of `(N, H, W, C_in)` with `(C_out, KH, KW, C_in / groups)`.
pub fn conv2d(
    input: &Array,
    weight: &Array,
    stride: impl Into<PerAxis>,
    padding: impl Into<PerAxis>,
    dilation: impl Into<PerAxis>,
    groups: usize,
) -> Result<Array> {
    check_dims("conv2d", input, 2)?;
    let p = padding.into().expand("conv2d", "padding", 2)?;
    conv_general(
        input,
        weight,
        stride,
        (p.clone(), p),
        dilation,
        1,
        groups,
        false,
    )
}

/// 3-D convolution of `(N, D, H, W, C_in)` with `(C_out, KD, KH, KW, C_in / groups)`.
pub fn conv3d(
    input: &Array,
    weight: &Array,
    stride: impl Into<PerAxis>,
    padding: impl Into<PerAxis>,
    dilation: impl Into<PerAxis>,
    groups: usize,
) -> Result<Array> {
    check_dims("conv3d", input, 3)?;
    let p = padding.into().expand("conv3d", "padding", 3)?;
    conv_general(
        input,
        weight,
        stride,
        (p.clone(), p),
        dilation,
        1,
        groups,
        false,
    )
}

/// A transposed convolution over `d` spatial axes (MLX's `conv_transpose_general`): the
/// gradient of a convolution with respect to its input, as a convolution of the
/// stride-dilated input with the flipped kernel.
#[allow(clippy::too_many_arguments)]
fn conv_transpose_general(
    op: &str,
    d: usize,
    input: &Array,
    weight: &Array,
    stride: PerAxis,
    padding: PerAxis,
    dilation: PerAxis,
    output_padding: PerAxis,
    groups: usize,
) -> Result<Array> {
    check_dims(op, input, d)?;
    if weight.ndim() != d + 2 {
        bail!(
            "{op}: weight must be (C_out, kernel..., C_in), not shape {}",
            fmt_shape(weight.shape())
        );
    }
    let stride = stride.expand(op, "stride", d)?;
    let padding = padding.expand(op, "padding", d)?;
    let dilation = dilation.expand(op, "dilation", d)?;
    let out_pad = output_padding.expand(op, "output_padding", d)?;
    let (mut lo, mut hi) = (Vec::new(), Vec::new());
    for i in 0..d {
        let span = 1 + dilation[i] * (weight.shape()[i + 1].max(1) - 1);
        if padding[i] + 1 > span {
            bail!(
                "{op}: padding {} is larger than the (dilated) kernel allows on axis {i}",
                padding[i]
            );
        }
        lo.push(span - padding[i] - 1);
        hi.push(span - padding[i] - 1 + out_pad[i]);
    }
    conv_general(input, weight, 1, (lo, hi), dilation, stride, groups, true)
}

/// 1-D transposed convolution of `(N, L, C_in)` with `(C_out, K, C_in)`.
pub fn conv_transpose1d(
    input: &Array,
    weight: &Array,
    stride: usize,
    padding: usize,
    dilation: usize,
    output_padding: usize,
    groups: usize,
) -> Result<Array> {
    conv_transpose_general(
        "conv_transpose1d",
        1,
        input,
        weight,
        stride.into(),
        padding.into(),
        dilation.into(),
        output_padding.into(),
        groups,
    )
}

/// 2-D transposed convolution of `(N, H, W, C_in)` with `(C_out, KH, KW, C_in)`.
pub fn conv_transpose2d(
    input: &Array,
    weight: &Array,
    stride: impl Into<PerAxis>,
    padding: impl Into<PerAxis>,
    dilation: impl Into<PerAxis>,
    output_padding: impl Into<PerAxis>,
    groups: usize,
) -> Result<Array> {
    conv_transpose_general(
        "conv_transpose2d",
        2,
        input,
        weight,
        stride.into(),
        padding.into(),
        dilation.into(),
        output_padding.into(),
        groups,
    )
}

/// 3-D transposed convolution of `(N, D, H, W, C_in)` with `(C_out, KD, KH, KW, C_in)`.
pub fn conv_transpose3d(
    input: &Array,
    weight: &Array,
    stride: impl Into<PerAxis>,
    padding: impl Into<PerAxis>,
    dilation: impl Into<PerAxis>,
    output_padding: impl Into<PerAxis>,
    groups: usize,
) -> Result<Array> {
    conv_transpose_general(
        "conv_transpose3d",
        3,
        input,
        weight,
        stride.into(),
        padding.into(),
        dilation.into(),
        output_padding.into(),
        groups,
    )
}

/// Sliding windows over the spatial axes of `x (N, spatial..., C)`: a view of shape
/// `(N, out..., window..., C)` with the given window sizes and strides (pooling's input).
pub fn sliding_windows(x: &Array, window: &[usize], stride: &[usize]) -> Result<Array> {
    let d = window.len();
    if x.ndim() != d + 2 || stride.len() != d {
        bail!(
            "sliding_windows: input {} needs {} spatial axes for windows {window:?} and strides {stride:?}",
            fmt_shape(x.shape()),
            d
        );
    }
    let x = ops::contiguous(x)?;
    let rm = crate::shape::row_major_strides(x.shape());
    let mut shape = vec![x.shape()[0]];
    let mut strides = vec![rm[0] as i64];
    for i in 0..d {
        let size = x.shape()[i + 1];
        if window[i] == 0 || stride[i] == 0 || size < window[i] {
            bail!(
                "sliding_windows: window {} with stride {} does not fit axis {} of {}",
                window[i],
                stride[i],
                i + 1,
                fmt_shape(x.shape())
            );
        }
        shape.push((size - window[i]) / stride[i] + 1);
        strides.push(rm[i + 1] as i64 * stride[i] as i64);
    }
    for i in 0..d {
        shape.push(window[i]);
        strides.push(rm[i + 1] as i64);
    }
    shape.push(x.shape()[d + 1]);
    strides.push(1);
    ops::as_strided(&x, &shape, &strides, 0)
}
