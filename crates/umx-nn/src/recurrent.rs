//! Recurrent layers (mlx.nn's RNN, GRU, LSTM): inputs `(N, L, D)` or `(L, D)`, outputs the
//! hidden state at every step.

use crate::module::Param;
use umx_core::{Array, Dtype, Result, bail, ops, random};

fn uniform(shape: &[usize], hidden: usize) -> Result<Param> {
    let s = (1.0 / hidden.max(1) as f64).sqrt();
    Ok(Param::new(random::uniform(
        -s,
        s,
        shape,
        Dtype::Float32,
        None,
    )?))
}

/// `x W^T (+ b)` for every step at once.
fn project(x: &Array, w: &Param, b: Option<&Param>) -> Result<Array> {
    let wt = ops::transpose(w, [1i64, 0])?;
    match b {
        Some(b) => ops::addmm(b, x, &wt, 1.0, 1.0),
        None => ops::matmul(x, &wt),
    }
}

/// Step `t` of `(..., L, F)`: `(..., F)`.
fn step(x: &Array, t: usize) -> Result<Array> {
    let ax = x.ndim() as i64 - 2;
    ops::take(x, &Array::scalar(t as i32), Some(ax))
}

fn check(op: &str, x: &Array, input: usize) -> Result<()> {
    if !(2..=3).contains(&x.ndim()) || x.shape()[x.ndim() - 1] != input {
        bail!(
            "{op}: input must be (N, L, {input}) or (L, {input}), not shape {:?}",
            x.shape()
        );
    }
    Ok(())
}

/// An Elman RNN: `h_t = tanh(x_t W_xh^T + b + h_{t-1} W_hh^T)`.
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
#[allow(non_snake_case)]
pub struct RNN {
    pub Wxh: Param,
    pub Whh: Param,
    pub bias: Option<Param>,
}

impl RNN {
    /// `input_size -> hidden_size`, weights uniform in `±1/sqrt(hidden_size)`.
    pub fn new(input_size: usize, hidden_size: usize, bias: bool) -> Result<RNN> {
        Ok(RNN {
            Wxh: uniform(&[hidden_size, input_size], hidden_size)?,
            Whh: uniform(&[hidden_size, hidden_size], hidden_size)?,
            bias: bias
                .then(|| uniform(&[hidden_size], hidden_size))
                .transpose()?,
        })
    }

    /// Every step's hidden state, `(N, L, hidden)`, from `hidden` (zeros if `None`).
    pub fn forward(&self, x: &Array, hidden: Option<&Array>) -> Result<Array> {
        check("RNN", x, self.Wxh.shape()[1])?;
        let xp = project(x, &self.Wxh, self.bias.as_ref())?;
        let mut h = hidden.cloned();
        let mut all = Vec::new();
        for t in 0..x.shape()[x.ndim() - 2] {
            let mut z = step(&xp, t)?;
            if let Some(h) = &h {
                z = ops::add(&z, ops::matmul(h, &ops::transpose(&self.Whh, [1i64, 0])?)?)?;
            }
            let next = ops::tanh(&z)?;
            all.push(next.clone());
            h = Some(next);
        }
        ops::stack(&all, -2)
    }
}

/// A gated recurrent unit (mlx.nn.GRU's gate order r, z, n).
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
#[allow(non_snake_case)]
pub struct GRU {
    pub Wx: Param,
    pub Wh: Param,
    pub b: Option<Param>,
    pub bhn: Option<Param>,
}

impl GRU {
    /// `input_size -> hidden_size`.
    pub fn new(input_size: usize, hidden_size: usize, bias: bool) -> Result<GRU> {
        Ok(GRU {
            Wx: uniform(&[3 * hidden_size, input_size], hidden_size)?,
            Wh: uniform(&[3 * hidden_size, hidden_size], hidden_size)?,
            b: bias
                .then(|| uniform(&[3 * hidden_size], hidden_size))
                .transpose()?,
            bhn: bias
                .then(|| uniform(&[hidden_size], hidden_size))
                .transpose()?,
        })
    }

    /// Every step's hidden state.
    pub fn forward(&self, x: &Array, hidden: Option<&Array>) -> Result<Array> {
        check("GRU", x, self.Wx.shape()[1])?;
        let h_dim = self.Wh.shape()[1];
        let xp = project(x, &self.Wx, self.b.as_ref())?;
        let parts = ops::split(&xp, [2 * h_dim], -1)?;
        let (x_rz, x_n) = (&parts[0], &parts[1]);
        let mut h = hidden.cloned();
        let mut all = Vec::new();
        for t in 0..x.shape()[x.ndim() - 2] {
            let mut rz = step(x_rz, t)?;
            let mut n = step(x_n, t)?;
            let mut h_n = None;
            if let Some(h) = &h {
                let hp = ops::matmul(h, &ops::transpose(&self.Wh, [1i64, 0])?)?;
                let hs = ops::split(&hp, [2 * h_dim], -1)?;
                let mut hn = hs[1].clone();
                if let Some(bhn) = &self.bhn {
                    hn = ops::add(&hn, &bhn.value)?;
                }
                rz = ops::add(&rz, &hs[0])?;
                h_n = Some(hn);
            }
            let rz = ops::sigmoid(&rz)?;
            let rzs = ops::split(&rz, 2usize, -1)?;
            let (r, z) = (&rzs[0], &rzs[1]);
            match (&h_n, &self.bhn) {
                (Some(hn), _) => n = ops::add(&n, ops::multiply(r, hn)?)?,
                // Without a previous state the recurrent term is only its bias (as mlx.nn).
                (None, Some(bhn)) => n = ops::add(&n, ops::multiply(r, &bhn.value)?)?,
                (None, None) => {}
            }
            let n = ops::tanh(&n)?;
            let one_minus_z = ops::subtract(1.0, z)?;
            let next = match &h {
                Some(h) => ops::add(ops::multiply(&one_minus_z, &n)?, ops::multiply(z, h)?)?,
                None => ops::multiply(&one_minus_z, &n)?,
            };
            all.push(next.clone());
            h = Some(next);
        }
        ops::stack(&all, -2)
    }
}

/// A long short-term memory layer (mlx.nn.LSTM's gate order i, f, g, o).
#[derive(Clone, Debug, crate::Module)]
#[module(crate = "crate")]
#[allow(non_snake_case)]
pub struct LSTM {
    pub Wx: Param,
    pub Wh: Param,
    pub bias: Option<Param>,
}

impl LSTM {
    /// `input_size -> hidden_size`.
    pub fn new(input_size: usize, hidden_size: usize, bias: bool) -> Result<LSTM> {
        Ok(LSTM {
            Wx: uniform(&[4 * hidden_size, input_size], hidden_size)?,
            Wh: uniform(&[4 * hidden_size, hidden_size], hidden_size)?,
            bias: bias
                .then(|| uniform(&[4 * hidden_size], hidden_size))
                .transpose()?,
        })
    }

    /// Every step's hidden and cell states, from `hidden` and `cell` (zeros if `None`).
    pub fn forward(
        &self,
        x: &Array,
        hidden: Option<&Array>,
        cell: Option<&Array>,
    ) -> Result<(Array, Array)> {
        check("LSTM", x, self.Wx.shape()[1])?;
        let xp = project(x, &self.Wx, self.bias.as_ref())?;
        let (mut h, mut c) = (hidden.cloned(), cell.cloned());
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for t in 0..x.shape()[x.ndim() - 2] {
            let mut ifgo = step(&xp, t)?;
            if let Some(h) = &h {
                ifgo = ops::add(
                    &ifgo,
                    ops::matmul(h, &ops::transpose(&self.Wh, [1i64, 0])?)?,
                )?;
            }
            let g4 = ops::split(&ifgo, 4usize, -1)?;
            let i = ops::sigmoid(&g4[0])?;
            let f = ops::sigmoid(&g4[1])?;
            let g = ops::tanh(&g4[2])?;
            let o = ops::sigmoid(&g4[3])?;
            let next_c = match &c {
                Some(c) => ops::add(ops::multiply(&f, c)?, ops::multiply(&i, &g)?)?,
                None => ops::multiply(&i, &g)?,
            };
            let next_h = ops::multiply(&o, ops::tanh(&next_c)?)?;
            hs.push(next_h.clone());
            cs.push(next_c.clone());
            h = Some(next_h);
            c = Some(next_c);
        }
        Ok((ops::stack(&hs, -2)?, ops::stack(&cs, -2)?))
    }
}
