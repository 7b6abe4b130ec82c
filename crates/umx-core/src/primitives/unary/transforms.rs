//! vjp, jvp and vmap rules of the unary primitives.
//!
//! For a real element-wise function the vjp and the jvp are the same product, `f'(x) * v`, so
//! both come from [`UnaryOp::derivative`]. As in MLX, complex inputs use the same formulas
//! without conjugation.

use super::UnaryOp;
use crate::primitives::Primitive;
use crate::transforms::rules::*;
use crate::{Array, Result, ops};
use std::f64::consts::{LN_2, LN_10, PI};

/// What multiplies the incoming derivative.
enum Derivative {
    /// A piecewise-constant or non-numeric function: zero.
    Zero,
    /// The derivative is 1 (the derivative passes unchanged).
    One,
    /// An element-wise factor.
    Factor(Array),
}

impl UnaryOp {
    /// `f'(x)`, from the input `x` and the output `y`.
    fn derivative(&self, x: &Array, y: &Array) -> Result<Derivative> {
        use Derivative::*;
        use UnaryOp::*;
        let one_minus_sq = |v: &Array| ops::subtract(1.0, &ops::square(v)?);
        Ok(match self {
            Sign
            | Floor
            | Ceil
            | Round { .. }
            | IsNan
            | IsInf
            | IsPosInf
            | IsNegInf
            | IsFinite
            | LogicalNot
            | BitwiseInvert => Zero,
            Abs => Factor(ops::sign(x)?),
            Negative => Factor(Array::weak_float(-1.0)),
            Sqrt => Factor(ops::divide(0.5, y)?),
            // d/dx x^(-1/2) = -x^(-3/2) / 2 = -y^3 / 2
            Rsqrt => Factor(ops::multiply(ops::multiply(ops::square(y)?, y)?, -0.5)?),
            Square => Factor(ops::multiply(x, 2.0)?),
            Reciprocal => Factor(ops::negative(&ops::square(y)?)?),
            Exp => Factor(y.clone()),
            Expm1 => Factor(ops::add(y, 1.0)?),
            Log => Factor(ops::reciprocal(x)?),
            Log1p => Factor(ops::reciprocal(&ops::add(x, 1.0)?)?),
            Log2 => Factor(ops::reciprocal(&ops::multiply(x, LN_2)?)?),
            Log10 => Factor(ops::reciprocal(&ops::multiply(x, LN_10)?)?),
            Sin => Factor(ops::cos(x)?),
            Cos => Factor(ops::negative(&ops::sin(x)?)?),
            Tan => Factor(ops::add(ops::square(y)?, 1.0)?),
            Arcsin => Factor(ops::rsqrt(&one_minus_sq(x)?)?),
            Arccos => Factor(ops::negative(&ops::rsqrt(&one_minus_sq(x)?)?)?),
            Arctan => Factor(ops::reciprocal(&ops::add(ops::square(x)?, 1.0)?)?),
            Sinh => Factor(ops::cosh(x)?),
            Cosh => Factor(ops::sinh(x)?),
            Tanh => Factor(one_minus_sq(y)?),
            Arcsinh => Factor(ops::rsqrt(&ops::add(ops::square(x)?, 1.0)?)?),
            Arccosh => Factor(ops::rsqrt(&ops::subtract(ops::square(x)?, 1.0)?)?),
            Arctanh => Factor(ops::reciprocal(&one_minus_sq(x)?)?),
            Erf => Factor(ops::multiply(
                ops::exp(&ops::negative(&ops::square(x)?)?)?,
                2.0 / PI.sqrt(),
            )?),
            ErfInv => Factor(ops::multiply(ops::exp(&ops::square(y)?)?, PI.sqrt() / 2.0)?),
            Sigmoid => Factor(ops::multiply(y, ops::subtract(1.0, y)?)?),
            Degrees => Factor(Array::weak_float(180.0 / PI)),
            Radians => Factor(Array::weak_float(PI / 180.0)),
            // 1 where x is finite; the replaced values are constants.
            NanToNum { .. } => Factor(ops::astype(&ops::isfinite(x)?, x.dtype())?),
            Real | Imag | Conj | AsType(_) => One,
        })
    }

    /// `v` (a derivative of the input, or of the output for [`UnaryOp::vjp`]) times `f'(x)`.
    fn chain(&self, x: &Array, y: &Array, v: &Array, like: &Array) -> Result<Array> {
        match self.derivative(x, y)? {
            Derivative::Zero => ops::zeros_like(like),
            Derivative::One => Ok(v.clone()),
            Derivative::Factor(f) => ops::multiply(v, &f),
        }
    }

    pub(crate) fn vjp(
        &self,
        inputs: &[Array],
        cotangents: &[Array],
        argnums: &[usize],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let (x, y, g) = (&inputs[0], &outputs[0], &cotangents[0]);
        let d = match self {
            UnaryOp::Real => ops::astype(g, x.dtype())?,
            // d imag(z) pairs with the imaginary unit, as MLX's rule has it.
            UnaryOp::Imag => ops::multiply(
                ops::astype(g, x.dtype())?,
                Array::scalar(crate::Complex32::new(0.0, 1.0)),
            )?,
            UnaryOp::Conj => ops::conj(g)?,
            UnaryOp::AsType(_) if !x.dtype().is_inexact() => ops::zeros_like(x)?,
            UnaryOp::AsType(_) => ops::astype(g, x.dtype())?,
            _ => self.chain(x, y, g, x)?,
        };
        Ok(argnums.iter().map(|_| d.clone()).collect())
    }

    pub(crate) fn jvp(
        &self,
        inputs: &[Array],
        tangents: &[Option<Array>],
        outputs: &[Array],
    ) -> Result<Vec<Array>> {
        let (x, y) = (&inputs[0], &outputs[0]);
        let t = tangent_or_zeros(inputs, tangents, 0)?;
        let d = match self {
            UnaryOp::Real => ops::real(&t)?,
            UnaryOp::Imag => ops::imag(&t)?,
            UnaryOp::Conj => ops::conj(&t)?,
            UnaryOp::AsType(to) if !to.is_inexact() => ops::zeros_like(y)?,
            UnaryOp::AsType(to) => ops::astype(&t, *to)?,
            _ => self.chain(x, y, &t, y)?,
        };
        Ok(vec![d])
    }

    pub(crate) fn vmap(
        &self,
        inputs: &[Array],
        axes: &[Option<usize>],
        outputs: &[Array],
    ) -> Result<(Vec<Array>, Vec<Option<usize>>)> {
        let x = &inputs[0];
        let y = Array::from_primitive(
            Primitive::Unary(*self),
            vec![x.clone()],
            x.shape().to_vec(),
            outputs[0].dtype(),
        )?;
        Ok((vec![y], axes.to_vec()))
    }
}
