//! operators ops.
