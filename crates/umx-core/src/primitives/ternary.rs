//! Element-wise three-input primitives.

mod transforms;

/// The ternary primitives.
///
/// Inputs need not have the output's shape: each broadcasts to it (NumPy's rule, checked by
/// the op), so no broadcast views are needed in the graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TernaryOp {
    /// `where(cond, x, y)`: `x` where `cond` is true, else `y`. Inputs: a bool condition and two
    /// arrays of the output dtype.
    Select,
}

impl TernaryOp {
    /// MLX's name of the op (also the kernel name a code generator uses).
    pub fn name(&self) -> &'static str {
        match self {
            TernaryOp::Select => "where",
        }
    }

    /// The op on one element of each input.
    #[inline(always)]
    pub fn select<T>(&self, cond: bool, x: T, y: T) -> T {
        match self {
            TernaryOp::Select => {
                if cond {
                    x
                } else {
                    y
                }
            }
        }
    }
}
