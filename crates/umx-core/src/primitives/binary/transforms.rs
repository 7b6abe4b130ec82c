//! vjp, jvp and vmap rules of the binary primitives.
//!
//! Each differentiable op gives its partial derivatives with respect to `a` and `b`
//! ([`BinaryOp::partial`]); the vjp multiplies the cotangent by them and sums away the
//! broadcast, the jvp sums the tangents times them. Comparisons, logical and bitwise ops, and
//! floor division have zero derivatives. Ties of `maximum` go to `b`, of `minimum` to `b`, as in
//! MLX.

use super::BinaryOp;
use crate::primitives::Primitive;
use crate::transforms::rules::*;
use crate::{Array, Result, ops};

/// A partial derivative.
enum Partial {
    Zero,
    One,
    Factor(Array),
}

impl BinaryOp {
    /// The partial derivative of the (differentiable) output with respect to input `i`.
    fn partial(&self, i: usize, a: &Array, b: &Array, y: &Array) -> Result<Partial> {
        use BinaryOp::*;
        use Partial::*;
        let mask = |m: Array| -> Result<Partial> { Ok(Factor(ops::astype(&m, y.dtype())?)) };
        Ok(match (self, i) {
            (Add, _) | (Subtract, 0) | (Remainder | DivMod, 0) => One,
            (Subtract, _) => Factor(Array::weak_float(-1.0)),
            (Multiply, 0) => Factor(b.clone()),
            (Multiply, _) => Factor(a.clone()),
            (Divide, 0) => Factor(ops::reciprocal(b)?),
            (Divide, _) => Factor(ops::negative(&ops::divide(y, b)?)?),
            (Remainder | DivMod, _) => Factor(ops::negative(&ops::floor_divide(a, b)?)?),
            (Power, 0) => Factor(ops::multiply(b, ops::power(a, ops::subtract(b, 1.0)?)?)?),
            (Power, _) => {
                // a^b log(a); where a == 0 the product is 0 (MLX's convention).
                let safe = ops::where_(ops::equal(a, 0.0)?, 1.0, a)?;
                Factor(ops::multiply(y, ops::log(&safe)?)?)
            }
            (ArcTan2, _) => {
                let den = ops::add(ops::square(a)?, ops::square(b)?)?;
                if i == 0 {
                    Factor(ops::divide(b, &den)?)
                } else {
                    Factor(ops::negative(&ops::divide(a, &den)?)?)
                }
            }
            (LogAddExp, 0) => Factor(ops::exp(&ops::subtract(a, y)?)?),
            (LogAddExp, _) => Factor(ops::exp(&ops::subtract(b, y)?)?),
            (Maximum, 0) => mask(ops::greater(a, b)?)?,
            (Maximum, _) => mask(ops::less_equal(a, b)?)?,
            (Minimum, 0) => mask(ops::less(a, b)?)?,
            (Minimum, _) => mask(ops::greater_equal(a, b)?)?,
            _ => Zero,
        })
    }

    /// The output whose derivative is taken (DivMod's remainder; the quotient is flat).
    fn differentiable_output(&self) -> usize {
        match self {
            BinaryOp::DivMod => 1,
            _ => 0,
        }
    }

    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let k = self.differentiable_output();
        let (a, b, y, g) = (&inputs[0], &inputs[1], &outputs[k], &cotangents[k]);
        argnums
            .iter()
            .map(|&i| {
                let x = &inputs[i];
                match self.partial(i, a, b, y)? {
                    Partial::Zero => ops::zeros_like(x),
                    Partial::One => unbroadcast(g, x.shape()),
                    Partial::Factor(f) => unbroadcast(&ops::multiply(g, &f)?, x.shape()),
                }
            })
            .collect()
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let k = self.differentiable_output();
        let (a, b, y) = (&inputs[0], &inputs[1], &outputs[k]);
        let mut total: Option<Array> = None;
        for (i, t) in tangents.iter().enumerate() {
            let Some(t) = t else { continue };
            let term = match self.partial(i, a, b, y)? {
                Partial::Zero => continue,
                Partial::One => t.clone(),
                Partial::Factor(f) => ops::multiply(t, &f)?,
            };
            total = Some(match total {
                Some(s) => ops::add(&s, &term)?,
                None => term,
            });
        }
        outputs
            .iter()
            .enumerate()
            .map(|(j, o)| match (&total, j == k) {
                (Some(t), true) => ops::broadcast_to(&ops::astype(t, o.dtype())?, o.shape()),
                _ => ops::zeros_like(o),
            })
            .collect()
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        elementwise_vmap(Primitive::Binary(self.clone()), inputs, axes, outputs)
    }
}
