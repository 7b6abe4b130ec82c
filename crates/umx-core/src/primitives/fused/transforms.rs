//! vjp, jvp and vmap rules of the fused primitive: the program is expanded back into its
//! ordinary element-wise primitives (and reduction), whose rules apply; batching keeps an
//! element-wise program fused and batches a reducing one through its expansion. A group of
//! fused programs takes each member's rule on the member's inputs and outputs.

use super::{FusedArg, FusedGroup, FusedOp};
use crate::primitives::Primitive;
use crate::primitives::reduce::ReduceOp;
use crate::transforms::rules::*;
use crate::{Array, Result};

impl FusedOp {
    /// The program as ordinary (unfused) nodes over `inputs`: the node's outputs.
    pub(crate) fn expand(&self, inputs: &[Array]) -> Result<Vec<Array>> {
        let mut values: Vec<Array> = Vec::with_capacity(self.program.len());
        for ins in self.program.iter() {
            let args: Vec<Array> = ins
                .args
                .iter()
                .map(|a| match a {
                    FusedArg::Input(i) => inputs[*i].clone(),
                    FusedArg::Instr(i) => values[*i].clone(),
                })
                .collect();
            let mut shape: Vec<usize> = Vec::new();
            for x in &args {
                shape = crate::shape::broadcast_shapes("compile", &shape, x.shape())?;
            }
            values.push(Array::from_primitive(
                ins.prim.clone(),
                args,
                shape,
                ins.dtype,
            )?);
        }
        let Some(v) = values.last().cloned() else {
            return Err(crate::Error::Invalid(
                "compile: an empty fused program".into(),
            ));
        };
        match &self.reduce {
            None => Ok(std::iter::once(v)
                .chain(self.extra.iter().map(|&i| values[i].clone()))
                .collect()),
            Some(r) => {
                let shape = r.shape(v.shape());
                let dtype = r.kind.output_dtype(v.dtype());
                let prim = Primitive::Reduce(ReduceOp::Reduce {
                    kind: r.kind,
                    axes: r.axes.clone(),
                });
                Ok(
                    std::iter::once(Array::from_primitive(prim, vec![v], shape, dtype)?)
                        .chain(self.extra.iter().map(|&i| values[i].clone()))
                        .collect(),
                )
            }
        }
    }

    /// `f(float inputs)` = the expanded program with the other inputs held fixed: what
    /// the vjp and jvp differentiate (integer inputs cannot be traced).
    fn float_inputs(&self, inputs: &[Array]) -> (Vec<usize>, Vec<Array>) {
        let idx: Vec<usize> = (0..inputs.len())
            .filter(|&i| inputs[i].dtype().is_inexact())
            .collect();
        let picked = idx.iter().map(|&i| inputs[i].clone()).collect();
        (idx, picked)
    }

    fn expand_with(&self, inputs: &[Array], idx: &[usize], xs: &[Array]) -> Result<Vec<Array>> {
        let mut full = inputs.to_vec();
        for (&i, x) in idx.iter().zip(xs) {
            full[i] = x.clone();
        }
        self.expand(&full)
    }

    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        _outputs: &[Array],
    ) -> Result<Vec<Array>> {
        // Only the inputs asked for are differentiated; the others (the program's constants,
        // say) are held fixed, so no gradient is traced for them.
        let (all, _) = self.float_inputs(inputs);
        let idx: Vec<usize> = all.into_iter().filter(|i| argnums.contains(i)).collect();
        let picked: Vec<Array> = idx.iter().map(|&i| inputs[i].clone()).collect();
        // The gradient of a fused program is itself an element-wise chain (with a broadcast
        // of the cotangent for a reduction): traced and fused too, so a compiled activation's
        // backward pass is one kernel, not a dozen.
        let k = picked.len();
        let mut args = picked;
        args.extend(cotangents.iter().cloned());
        let grads = crate::transforms::compile_once(
            &|a: &[Array]| {
                let (_, g) = crate::transforms::vjp(
                    |xs| self.expand_with(inputs, &idx, xs),
                    &a[..k],
                    &a[k..],
                )?;
                Ok(g)
            },
            &args,
        )?;
        argnums
            .iter()
            .map(|&i| match idx.iter().position(|&k| k == i) {
                Some(k) => Ok(grads[k].clone()),
                None => crate::ops::zeros_like(&inputs[i]),
            })
            .collect()
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        _outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let (idx, picked) = self.float_inputs(inputs);
        let tans = idx
            .iter()
            .map(|&i| tangent_or_zeros(inputs, tangents, i))
            .collect::<Result<Vec<_>>>()?;
        let (_, t) =
            crate::transforms::jvp(|xs| self.expand_with(inputs, &idx, xs), &picked, &tans)?;
        Ok(t)
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        if self.reduce.is_none() {
            return elementwise_vmap(Primitive::Fused(self.clone()), inputs, axes, outputs);
        }
        let in_axes: Vec<Option<i64>> = axes.iter().map(|a| a.map(|a| a as i64)).collect();
        let outs = vec![Some(0); 1 + self.extra.len()];
        let f = crate::transforms::vmap(|xs: &[Array]| self.expand(xs), &in_axes, &outs);
        Ok((f(inputs)?, vec![Some(0); outs.len()]))
    }
}

impl FusedGroup {
    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        // An input several members read gets the sum of their cotangents.
        let mut grads: Vec<Option<Array>> = vec![None; argnums.len()];
        for (m, picked, outs) in self.split(inputs) {
            let local: Vec<usize> = (0..m.inputs.len())
                .filter(|&j| argnums.contains(&m.inputs[j]))
                .collect();
            if local.is_empty() {
                continue;
            }
            let g =
                m.op.vjp(&picked, &cotangents[outs.clone()], &local, &outputs[outs])?;
            for (&j, gj) in local.iter().zip(g) {
                if let Some(k) = argnums.iter().position(|&a| a == m.inputs[j]) {
                    grads[k] = Some(match grads[k].take() {
                        Some(prev) => crate::ops::add(&prev, &gj)?,
                        None => gj,
                    });
                }
            }
        }
        argnums
            .iter()
            .zip(grads)
            .map(|(&i, g)| g.map_or_else(|| crate::ops::zeros_like(&inputs[i]), Ok))
            .collect()
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let mut out = Vec::with_capacity(outputs.len());
        for (m, picked, outs) in self.split(inputs) {
            let tans: Vec<Option<Array>> = m.inputs.iter().map(|&i| tangents[i].clone()).collect();
            out.extend(m.op.jvp(&picked, &tans, &outputs[outs])?);
        }
        Ok(out)
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        let (mut values, mut out_axes) = (Vec::new(), Vec::new());
        for (m, picked, outs) in self.split(inputs) {
            let ax: Vec<Option<usize>> = m.inputs.iter().map(|&i| axes[i]).collect();
            let (v, a) = m.op.vmap(&picked, &ax, &outputs[outs])?;
            values.extend(v);
            out_axes.extend(a);
        }
        Ok((values, out_axes))
    }
}
