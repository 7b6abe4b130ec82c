//! The one error type of umx. Every message names the op and the inputs' shapes or dtypes.

/// An error from building or evaluating an array.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// Inputs that do not fit the op: shapes, axes, dtypes, arguments.
    #[error("{0}")]
    Invalid(String),
    /// An index out of range.
    #[error("{0}")]
    Index(String),
    /// A device or backend problem: no backend, out of memory, a kernel failure.
    #[error("{0}")]
    Device(String),
    /// Memory could not be allocated, even after freeing caches.
    #[error("{0}")]
    OutOfMemory(String),
}

/// `Result<T, umx::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Returns early with `Error::Invalid(format!(...))`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::Error::Invalid(format!($($arg)*)))
    };
}

/// Returns early with `Error::Invalid` when the condition does not hold.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::bail!($($arg)*);
        }
    };
}
