//! vjp, jvp and vmap rules of the fast primitives. Softmax and log-sum-exp have their own
//! closed-form vjps; the others differentiate their fallback (traced and fused, so a
//! normalisation's backward pass is a few fused kernels). Batching keeps the fast kernel when only the rows' input is
//! batched (the kernels take any leading dimensions), and batches the fallback otherwise.

use super::FastOp;
use crate::primitives::Primitive;
use crate::transforms::rules::*;
use crate::{Array, Result, ops};

impl FastOp {
    /// The fallback with the inputs numbered `idx` replaced by `xs`.
    fn fallback_with(&self, inputs: &[Array], idx: &[usize], xs: &[Array]) -> Result<Vec<Array>> {
        let mut full = inputs.to_vec();
        for (&i, x) in idx.iter().zip(xs) {
            full[i] = x.clone();
        }
        self.fallback(&full)
    }

    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let f32 = |a: &Array| a.astype(crate::Dtype::Float32);
        let closed_form = match self {
            FastOp::Softmax => {
                // d softmax: s * (g - sum(g * s)), in float32.
                let (s, g) = (f32(&outputs[0])?, f32(&cotangents[0])?);
                let gs = ops::multiply(&g, &s)?;
                Some(ops::subtract(
                    &gs,
                    ops::multiply(&s, ops::sum(&gs, -1, true)?)?,
                )?)
            }
            FastOp::LogSumExp => {
                // d logsumexp: g * softmax(x) = g * exp(x - logsumexp(x)), in float32: one
                // element-wise pass over the output (no second max or sum).
                let l = ops::expand_dims(&f32(&outputs[0])?, -1)?;
                let g = ops::expand_dims(&f32(&cotangents[0])?, -1)?;
                Some(ops::multiply(
                    &g,
                    ops::exp(&ops::subtract(&f32(&inputs[0])?, &l)?)?,
                )?)
            }
            _ => None,
        };
        if let Some(dx) = closed_form {
            let dx = dx.astype(inputs[0].dtype())?;
            return argnums
                .iter()
                .map(|&i| match i {
                    0 => Ok(dx.clone()),
                    _ => ops::zeros_like(&inputs[i]),
                })
                .collect();
        }
        if let FastOp::Attention {
            scale,
            causal,
            lse: true,
            ..
        } = *self
        {
            // The device kept the log-sum-exp: its backward kernels take it from there (the
            // log-sum-exp output itself is internal and gets no cotangent). The cotangent
            // takes the output's dtype, as the fallback's last rounding would give it.
            let mut args = inputs[..3].to_vec();
            args.extend([
                outputs[0].clone(),
                outputs[1].clone(),
                cotangents[0].astype(outputs[0].dtype())?,
            ]);
            let op = FastOp::AttentionVjp { scale, causal };
            let device = crate::device::default_stream().device;
            let grads =
                if crate::device::backend(device).is_ok_and(|b| b.has_fast_kernel(&op, &args)) {
                    let specs = op.outputs(&args);
                    Array::from_primitive_multi(Primitive::Fast(op), args, specs)?
                } else {
                    op.fallback(&args)?
                };
            return argnums
                .iter()
                .map(|&i| match grads.get(i) {
                    Some(g) => Ok(g.clone()),
                    None => ops::zeros_like(&inputs[i]),
                })
                .collect();
        }
        let idx: Vec<usize> = argnums
            .iter()
            .copied()
            .filter(|&i| inputs[i].dtype().is_inexact())
            .collect();
        let k = idx.len();
        let mut args: Vec<Array> = idx.iter().map(|&i| inputs[i].clone()).collect();
        args.extend(cotangents.iter().cloned());
        let grads = crate::transforms::compile_once(
            &|a: &[Array]| {
                let (_, g) = crate::transforms::vjp(
                    |xs| self.fallback_with(inputs, &idx, xs),
                    &a[..k],
                    &a[k..],
                )?;
                Ok(g)
            },
            &args,
        )?;
        argnums
            .iter()
            .map(|&i| match idx.iter().position(|&j| j == i) {
                Some(j) => Ok(grads[j].clone()),
                None => ops::zeros_like(&inputs[i]),
            })
            .collect()
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        _outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let idx: Vec<usize> = (0..inputs.len())
            .filter(|&i| inputs[i].dtype().is_inexact() && tangents[i].is_some())
            .collect();
        let picked: Vec<Array> = idx.iter().map(|&i| inputs[i].clone()).collect();
        let tans = idx
            .iter()
            .map(|&i| tangent_or_zeros(inputs, tangents, i))
            .collect::<Result<Vec<_>>>()?;
        let (_, t) =
            crate::transforms::jvp(|xs| self.fallback_with(inputs, &idx, xs), &picked, &tans)?;
        Ok(t)
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        if let FastOp::CudaKernel(_) = self {
            return Err(self
                .fallback(inputs)
                .err()
                .unwrap_or_else(|| crate::Error::Invalid("cuda_kernel: no batching rule".into())));
        }
        let only_rows = axes[1..].iter().all(Option::is_none);
        let per_row_offset = matches!(self, FastOp::Rope { .. }) && inputs[1].ndim() == 1;
        // Inputs of a fixed rank, and a norm before a product: batched through the fallback.
        let four_d = matches!(
            self,
            FastOp::Attention { .. }
                | FastOp::RopeCacheWrite { .. }
                | FastOp::NormPrologue { .. }
                | FastOp::Linear
                | FastOp::QuantizedLinearAdd { .. }
        );
        let few_rows = matches!(
            self,
            FastOp::SwigluLinear | FastOp::SwigluQuantizedLinear { .. }
        );
        if let (true, Some(ax), true) = (few_rows, axes[0], axes[1..].iter().all(Option::is_none)) {
            // More rows: the op makes its node again where they are still few enough.
            let x = to_front(&inputs[0], Some(ax))?;
            let y = match *self {
                FastOp::SwigluQuantizedLinear { group_size, bits } => {
                    ops::fast::swiglu_quantized_linear(
                        &x, &inputs[1], &inputs[2], &inputs[3], group_size, bits,
                    )?
                }
                _ => ops::fast::swiglu_linear(&x, &inputs[1])?,
            };
            return Ok((vec![y], vec![Some(0)]));
        }
        if only_rows && !per_row_offset && !four_d && !few_rows {
            let mut args = inputs.to_vec();
            args[0] = to_front(&inputs[0], axes[0])?;
            let spec = self.output(&args);
            let y = Array::from_primitive(
                Primitive::Fast(self.clone()),
                args,
                spec.shape,
                outputs[0].dtype(),
            )?;
            return Ok((vec![y], vec![Some(0)]));
        }
        let in_axes: Vec<Option<i64>> = axes.iter().map(|a| a.map(|a| a as i64)).collect();
        let out_axes = vec![Some(0); outputs.len()];
        let f = crate::transforms::vmap(|xs: &[Array]| self.fallback(xs), &in_axes, &out_axes);
        Ok((f(inputs)?, vec![Some(0); outputs.len()]))
    }
}
