//! scan ops.
