//! Initializers (mlx.nn.init): each makes a new float32 array of the given shape (use
//! `astype` for other dtypes). Randomness comes from umx's global key (`random::seed`).

use umx_core::{Array, Dtype, Result, bail, linalg, ops, random};

/// Every element `value`.
pub fn constant(shape: &[usize], value: f64) -> Result<Array> {
    ops::full(shape, value, Dtype::Float32)
}

/// Normal samples with `mean` and `std`.
pub fn normal(shape: &[usize], mean: f64, std: f64) -> Result<Array> {
    random::normal(shape, Dtype::Float32, mean, std, None)
}

/// Uniform samples in `[low, high)`.
pub fn uniform(shape: &[usize], low: f64, high: f64) -> Result<Array> {
    random::uniform(low, high, shape, Dtype::Float32, None)
}

/// The identity matrix (a square 2-D shape).
pub fn identity(shape: &[usize]) -> Result<Array> {
    if shape.len() != 2 || shape[0] != shape[1] {
        bail!("identity: the shape must be square and 2-D, not {shape:?}");
    }
    ops::eye(shape[0], None, 0, Dtype::Float32)
}

/// `(fan_in, fan_out)` as MLX computes them: the last and first dimensions, each times the
/// receptive field (the dimensions between).
fn fans(op: &str, shape: &[usize]) -> Result<(f64, f64)> {
    if shape.len() < 2 {
        bail!("{op}: fan in and fan out need at least 2 dimensions, not shape {shape:?}");
    }
    let receptive: usize = shape[1..shape.len() - 1].iter().product();
    Ok((
        (shape[shape.len() - 1] * receptive) as f64,
        (shape[0] * receptive) as f64,
    ))
}

/// Glorot (Xavier) normal: std `gain * sqrt(2 / (fan_in + fan_out))`.
pub fn glorot_normal(shape: &[usize], gain: f64) -> Result<Array> {
    let (i, o) = fans("glorot_normal", shape)?;
    normal(shape, 0.0, gain * (2.0 / (i + o)).sqrt())
}

/// Glorot (Xavier) uniform: limit `gain * sqrt(6 / (fan_in + fan_out))`.
pub fn glorot_uniform(shape: &[usize], gain: f64) -> Result<Array> {
    let (i, o) = fans("glorot_uniform", shape)?;
    let limit = gain * (6.0 / (i + o)).sqrt();
    uniform(shape, -limit, limit)
}

/// Which fan the He initializers scale by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    FanIn,
    FanOut,
}

fn fan(op: &str, shape: &[usize], mode: FanMode) -> Result<f64> {
    let (i, o) = fans(op, shape)?;
    Ok(if mode == FanMode::FanIn { i } else { o })
}

/// He (Kaiming) normal: std `gain / sqrt(fan)`.
pub fn he_normal(shape: &[usize], mode: FanMode, gain: f64) -> Result<Array> {
    let f = fan("he_normal", shape, mode)?;
    normal(shape, 0.0, gain / f.sqrt())
}

/// He (Kaiming) uniform: limit `gain * sqrt(3 / fan)`.
pub fn he_uniform(shape: &[usize], mode: FanMode, gain: f64) -> Result<Array> {
    let f = fan("he_uniform", shape, mode)?;
    let limit = gain * (3.0 / f).sqrt();
    uniform(shape, -limit, limit)
}

/// A 2-D matrix of normal samples (`mean`, `std`) with a fraction `sparsity` of each column's
/// rows set to zero.
pub fn sparse(shape: &[usize], sparsity: f64, mean: f64, std: f64) -> Result<Array> {
    if shape.len() != 2 {
        bail!("sparse: only 2-D shapes are supported, not {shape:?}");
    }
    if !(0.0..=1.0).contains(&sparsity) {
        bail!("sparse: sparsity must be in [0, 1], not {sparsity}");
    }
    let (rows, cols) = (shape[0], shape[1]);
    let zeros = (sparsity * rows as f64).ceil() as usize;
    let order = ops::argsort(&uniform(shape, 0.0, 1.0)?, 0)?;
    // The first `zeros` rows of a random order, per column.
    let rank = ops::argsort(&order, 0)?;
    let keep = ops::greater_equal(&rank, zeros as u32)?;
    let _ = cols;
    ops::where_(&keep, normal(shape, mean, std)?, 0.0)
}

/// A (semi-)orthogonal 2-D matrix times `gain`, as MLX makes it: the Q factor of the QR
/// factorization of a square `max(rows, cols)` matrix of normal samples, its columns' signs
/// set by R's diagonal (so the distribution is uniform over orthogonal matrices), cut to
/// `rows × cols`. Rows are orthonormal when `rows <= cols`, columns otherwise.
pub fn orthogonal(shape: &[usize], gain: f64) -> Result<Array> {
    let &[rows, cols] = shape else {
        bail!(
            "orthogonal: only 2-D shapes are supported, not {shape:?} ({} axes)",
            shape.len()
        );
    };
    let n = rows.max(cols);
    let (q, r) = linalg::qr(&normal(&[n, n], 0.0, 1.0)?)?;
    let q = ops::multiply(&q, ops::sign(&ops::diagonal(&r, 0, 0, 1)?)?)?;
    let q = ops::slice(&q, &[0, 0], &[rows as i64, cols as i64], &[])?;
    ops::multiply(&q, gain)
}
