//! creation ops.
