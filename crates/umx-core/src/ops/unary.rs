//! unary ops.
