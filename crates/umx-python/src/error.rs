//! Core errors as Python exceptions, and Python exceptions carried through the core.
//!
//! A core [`Error::Invalid`] becomes `ValueError`, [`Error::Index`] `IndexError`,
//! [`Error::Device`] `RuntimeError` and [`Error::OutOfMemory`] `MemoryError`, each with the
//! core's message (`matmul: shapes (3, 4) and (5, 6) do not fit: 4 != 5`).
//!
//! A Python function that a transformation calls (the function of `grad`, a custom vjp, ...)
//! runs inside the core, which only knows its own error type. When such a function raises, the
//! exception is kept here ([`stash`]) and the core gets a stand-in error; when that error
//! comes back out to Python ([`raise`]), the original exception is raised instead, traceback
//! and all.

use pyo3::exceptions::{PyIndexError, PyMemoryError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::cell::RefCell;
use umx::Error;

thread_local! {
    static PENDING: RefCell<Option<(String, PyErr)>> = const { RefCell::new(None) };
}

/// Keeps a Python exception raised inside a core call; returns the core error that stands in
/// for it until it comes back out.
pub fn stash(e: PyErr) -> Error {
    let msg = format!("a Python function raised {e}");
    PENDING.with(|p| *p.borrow_mut() = Some((msg.clone(), e)));
    Error::Invalid(msg)
}

/// The Python exception for a core error (or the Python exception it stands in for).
pub fn raise(e: Error) -> PyErr {
    // The core may prefix the stand-in's message with the op that saw it; an error that does
    // not carry it at all is a new one, and the kept exception is stale.
    if let Some((msg, pending)) = PENDING.with(|p| p.borrow_mut().take())
        && e.to_string().contains(&msg)
    {
        return pending;
    }
    match e {
        Error::Invalid(m) => PyValueError::new_err(m),
        Error::Index(m) => PyIndexError::new_err(m),
        Error::Device(m) => PyRuntimeError::new_err(m),
        Error::OutOfMemory(m) => PyMemoryError::new_err(m),
    }
}

/// `.or_raise()`: a core `Result` as a `PyResult`.
pub trait OrRaise<T> {
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for umx::Result<T> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(raise)
    }
}

/// `.or_stash()`: a `PyResult` as a core `Result`, keeping the exception (see [`stash`]).
pub trait OrStash<T> {
    fn or_stash(self) -> umx::Result<T>;
}

impl<T> OrStash<T> for PyResult<T> {
    fn or_stash(self) -> umx::Result<T> {
        self.map_err(stash)
    }
}
