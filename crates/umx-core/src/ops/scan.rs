//! Cumulative scans: `cumsum`, `cumprod`, `cummax`, `cummin`, `logcumsumexp`.
//!
//! As in MLX each takes `axis` (`None`: over the flattened array), `reverse` (run from the end)
//! and `inclusive` (`false`: each output leaves its own element out and starts from the
//! identity).

use crate::primitives::Primitive;
use crate::primitives::scan::{ScanKind, ScanOp};
use crate::shape::{fmt_shape, normalize_axis};
use crate::{Array, Result, bail};

fn scan_op(
    kind: ScanKind,
    a: &Array,
    axis: Option<i64>,
    reverse: bool,
    inclusive: bool,
) -> Result<Array> {
    let name = kind.name();
    a.check()?;
    if a.dtype().is_complex() && !matches!(kind, ScanKind::Sum | ScanKind::Prod) {
        bail!(
            "{name}: complex64 is not supported (shape {})",
            fmt_shape(a.shape())
        );
    }
    let Some(axis) = axis else {
        let flat = crate::ops::shape::reshape(a, &[-1])?;
        return scan_op(kind, &flat, Some(0), reverse, inclusive);
    };
    let axis = normalize_axis(name, axis, a.ndim())?;
    Array::from_primitive(
        Primitive::Scan(ScanOp::Scan {
            kind,
            axis,
            reverse,
            inclusive,
        }),
        vec![a.clone()],
        a.shape().to_vec(),
        kind.output_dtype(a.dtype()),
    )
}

/// Running sum along `axis` (`None`: of the flattened array). Bool gives int32.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1i32, 2, 3, 4], &[4])?;
/// assert_eq!(ops::cumsum(&a, None, false, true)?.to_vec::<i32>()?, vec![1, 3, 6, 10]);
/// assert_eq!(ops::cumsum(&a, Some(0), true, false)?.to_vec::<i32>()?, vec![9, 7, 4, 0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn cumsum(a: &Array, axis: Option<i64>, reverse: bool, inclusive: bool) -> Result<Array> {
    scan_op(ScanKind::Sum, a, axis, reverse, inclusive)
}

/// Running product along `axis` (`None`: of the flattened array). Bool gives int32.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
/// assert_eq!(ops::cumprod(&a, Some(1), false, true)?.to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 12.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn cumprod(a: &Array, axis: Option<i64>, reverse: bool, inclusive: bool) -> Result<Array> {
    scan_op(ScanKind::Prod, a, axis, reverse, inclusive)
}

/// Running maximum along `axis` (`None`: of the flattened array); NaN, once seen, stays.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[1.0f32, 3.0, 2.0, 5.0], &[4])?;
/// assert_eq!(ops::cummax(&a, None, false, true)?.to_vec::<f32>()?, vec![1.0, 3.0, 3.0, 5.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn cummax(a: &Array, axis: Option<i64>, reverse: bool, inclusive: bool) -> Result<Array> {
    scan_op(ScanKind::Max, a, axis, reverse, inclusive)
}

/// Running minimum along `axis` (`None`: of the flattened array); NaN, once seen, stays.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[4i32, 3, 5, 1], &[4])?;
/// assert_eq!(ops::cummin(&a, None, false, true)?.to_vec::<i32>()?, vec![4, 3, 3, 1]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn cummin(a: &Array, axis: Option<i64>, reverse: bool, inclusive: bool) -> Result<Array> {
    scan_op(ScanKind::Min, a, axis, reverse, inclusive)
}

/// Running `log(sum(exp(x)))` along `axis` (`None`: of the flattened array), computed without
/// overflow. Integers give float32.
///
/// ```
/// # umx_cpu::register();
/// # use umx_core::{Array, ops};
/// let a = Array::from_slice(&[0.0f32, 0.0], &[2])?;
/// let y = ops::logcumsumexp(&a, None, false, true)?.to_vec::<f32>()?;
/// assert!((y[1] - 2f32.ln()).abs() < 1e-6);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn logcumsumexp(a: &Array, axis: Option<i64>, reverse: bool, inclusive: bool) -> Result<Array> {
    scan_op(ScanKind::LogAddExp, a, axis, reverse, inclusive)
}

impl Array {
    /// `cumsum(self, axis, false, true)`: see [`cumsum`].
    pub fn cumsum(&self, axis: Option<i64>) -> Result<Array> {
        cumsum(self, axis, false, true)
    }
    /// `cumprod(self, axis, false, true)`: see [`cumprod`].
    pub fn cumprod(&self, axis: Option<i64>) -> Result<Array> {
        cumprod(self, axis, false, true)
    }
    /// `cummax(self, axis, false, true)`: see [`cummax`].
    pub fn cummax(&self, axis: Option<i64>) -> Result<Array> {
        cummax(self, axis, false, true)
    }
    /// `cummin(self, axis, false, true)`: see [`cummin`].
    pub fn cummin(&self, axis: Option<i64>) -> Result<Array> {
        cummin(self, axis, false, true)
    }
    /// `logcumsumexp(self, axis, false, true)`: see [`logcumsumexp`].
    pub fn logcumsumexp(&self, axis: Option<i64>) -> Result<Array> {
        logcumsumexp(self, axis, false, true)
    }
}
