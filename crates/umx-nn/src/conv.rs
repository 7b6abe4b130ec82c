//! Convolution and pooling layers (mlx.nn's Conv1d/2d/3d, ConvTranspose1d/2d/3d,
//! MaxPool1d/2d/3d, AvgPool1d/2d/3d), channels last.

use crate::layers::Forward;
use crate::module::{Module, Param};
use umx_core::{Array, Dtype, Result, bail, ops, random};

/// A convolution over `D` spatial axes: weight `(out, kernel..., in / groups)`, optional bias
/// (zeros at first); the weight starts uniform in `±sqrt(1 / (in * prod(kernel)))` as in mlx.nn.
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct Conv<const D: usize> {
    pub weight: Param,
    pub bias: Option<Param>,
    #[module(skip)]
    pub stride: [usize; D],
    #[module(skip)]
    pub padding: [usize; D],
    #[module(skip)]
    pub dilation: [usize; D],
    pub groups: usize,
}

/// 1-D convolution: input `(N, L, C_in)`.
pub type Conv1d = Conv<1>;
/// 2-D convolution: input `(N, H, W, C_in)`.
pub type Conv2d = Conv<2>;
/// 3-D convolution: input `(N, D, H, W, C_in)`.
pub type Conv3d = Conv<3>;

impl<const D: usize> Conv<D> {
    /// `in_channels -> out_channels` with a kernel of `kernel_size` (stride 1, no padding,
    /// no dilation, one group; set the fields to change them).
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; D],
        bias: bool,
    ) -> Result<Self> {
        let fan: usize = in_channels * kernel_size.iter().product::<usize>();
        let scale = (1.0 / fan.max(1) as f64).sqrt();
        let mut shape = vec![out_channels];
        shape.extend_from_slice(&kernel_size);
        shape.push(in_channels);
        Ok(Conv {
            weight: Param::new(random::uniform(
                -scale,
                scale,
                &shape,
                Dtype::Float32,
                None,
            )?),
            bias: bias
                .then(|| ops::zeros(&[out_channels], Dtype::Float32).map(Param::new))
                .transpose()?,
            stride: [1; D],
            padding: [0; D],
            dilation: [1; D],
            groups: 1,
        })
    }

    /// With channel groups (the weight's last axis becomes `in_channels / groups`).
    pub fn grouped(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; D],
        groups: usize,
        bias: bool,
    ) -> Result<Self> {
        if groups == 0
            || !in_channels.is_multiple_of(groups)
            || !out_channels.is_multiple_of(groups)
        {
            bail!("Conv: {in_channels} -> {out_channels} channels cannot form {groups} groups");
        }
        let mut c = Conv::new(in_channels / groups, out_channels, kernel_size, bias)?;
        c.groups = groups;
        Ok(c)
    }
}

impl<const D: usize> Forward for Conv<D> {
    fn forward(&self, x: &Array) -> Result<Array> {
        if x.ndim() != D + 2 {
            bail!(
                "Conv{D}d: input must be (N, {}C), not shape {:?}",
                "spatial, ".repeat(D),
                x.shape()
            );
        }
        let y = ops::conv_general(
            x,
            &self.weight,
            self.stride.to_vec(),
            (self.padding.to_vec(), self.padding.to_vec()),
            self.dilation.to_vec(),
            1,
            self.groups,
            false,
        )?;
        match &self.bias {
            Some(b) => ops::add(&y, &b.value),
            None => Ok(y),
        }
    }
}

/// A transposed convolution over `D` spatial axes: weight `(out, kernel..., in)`.
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
pub struct ConvTranspose<const D: usize> {
    pub weight: Param,
    pub bias: Option<Param>,
    #[module(skip)]
    pub stride: [usize; D],
    #[module(skip)]
    pub padding: [usize; D],
    #[module(skip)]
    pub dilation: [usize; D],
    #[module(skip)]
    pub output_padding: [usize; D],
}

/// 1-D transposed convolution.
pub type ConvTranspose1d = ConvTranspose<1>;
/// 2-D transposed convolution.
pub type ConvTranspose2d = ConvTranspose<2>;
/// 3-D transposed convolution.
pub type ConvTranspose3d = ConvTranspose<3>;

impl<const D: usize> ConvTranspose<D> {
    /// `in_channels -> out_channels` with a kernel of `kernel_size` (stride 1, no padding).
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; D],
        bias: bool,
    ) -> Result<Self> {
        let c = Conv::<D>::new(in_channels, out_channels, kernel_size, bias)?;
        Ok(ConvTranspose {
            weight: c.weight,
            bias: c.bias,
            stride: [1; D],
            padding: [0; D],
            dilation: [1; D],
            output_padding: [0; D],
        })
    }
}

impl<const D: usize> Forward for ConvTranspose<D> {
    fn forward(&self, x: &Array) -> Result<Array> {
        let (w, s, p, d, o) = (
            &self.weight.value,
            self.stride,
            self.padding,
            self.dilation,
            self.output_padding,
        );
        let y = match D {
            1 => ops::conv_transpose1d(x, w, s[0], p[0], d[0], o[0], 1)?,
            2 => ops::conv_transpose2d(x, w, s.to_vec(), p.to_vec(), d.to_vec(), o.to_vec(), 1)?,
            3 => ops::conv_transpose3d(x, w, s.to_vec(), p.to_vec(), d.to_vec(), o.to_vec(), 1)?,
            _ => bail!("ConvTranspose: {D} spatial dimensions are not supported"),
        };
        match &self.bias {
            Some(b) => ops::add(&y, &b.value),
            None => Ok(y),
        }
    }
}

/// What a pooling layer computes over each window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

/// Max or average pooling over `D` spatial axes of channels-last input (mlx.nn's MaxPool*d /
/// AvgPool*d): windows of `kernel_size` every `stride`, after padding with `-inf` (max) or 0
/// (average, which counts the padding).
#[derive(Clone, Debug)]
pub struct Pool<const D: usize> {
    pub kind: PoolKind,
    pub kernel_size: [usize; D],
    pub stride: [usize; D],
    pub padding: [usize; D],
}

impl<const D: usize> Pool<D> {
    /// Max pooling; `stride` defaults to the kernel size.
    pub fn max(kernel_size: [usize; D], stride: Option<[usize; D]>, padding: [usize; D]) -> Self {
        Pool {
            kind: PoolKind::Max,
            kernel_size,
            stride: stride.unwrap_or(kernel_size),
            padding,
        }
    }

    /// Average pooling; `stride` defaults to the kernel size.
    pub fn avg(kernel_size: [usize; D], stride: Option<[usize; D]>, padding: [usize; D]) -> Self {
        Pool {
            kind: PoolKind::Avg,
            ..Pool::max(kernel_size, stride, padding)
        }
    }
}

/// Pooling over 1 spatial axis.
pub type Pool1d = Pool<1>;
/// Pooling over 2 spatial axes.
pub type Pool2d = Pool<2>;
/// Pooling over 3 spatial axes.
pub type Pool3d = Pool<3>;

impl<const D: usize> Forward for Pool<D> {
    fn forward(&self, x: &Array) -> Result<Array> {
        if x.ndim() != D + 2 {
            bail!(
                "Pool{D}d: input must be (N, {}C), not shape {:?}",
                "spatial, ".repeat(D),
                x.shape()
            );
        }
        let mut x = x.clone();
        if self.padding.iter().any(|&p| p > 0) {
            let mut widths = vec![(0i64, 0i64); D + 2];
            for i in 0..D {
                widths[i + 1] = (self.padding[i] as i64, self.padding[i] as i64);
            }
            let fill = if self.kind == PoolKind::Max {
                f64::NEG_INFINITY
            } else {
                0.0
            };
            x = ops::pad(
                &x,
                &widths,
                fill,
                umx_core::primitives::shape::PadMode::Constant,
            )?;
        }
        let w = ops::sliding_windows(&x, &self.kernel_size, &self.stride)?;
        let axes: Vec<i64> = (D as i64 + 1..=2 * D as i64).collect();
        match self.kind {
            PoolKind::Max => ops::max(&w, axes, false),
            PoolKind::Avg => ops::mean(&w, axes, false),
        }
    }
}

impl<const D: usize> Module for Pool<D> {
    fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(&str, &'a Param)) {}
    fn visit_params_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Param)) {}
}
