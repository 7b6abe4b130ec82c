//! Devices and streams: `mx.cpu`, `mx.gpu`, `Device`, `Stream`, `default_device`,
//! `set_default_device`, `default_stream`, `new_stream`, the `stream=` argument of every op and the
//! `with mx.stream(s):` context.
//!
//! `stream=` is honoured: the op is built on that stream (a device stands for its default
//! stream), as `umx::with_stream` does in Rust. Outside any `stream=` or `with mx.stream(...)`
//! ops go to the default device's default stream.

use crate::error::OrRaise;
use pyo3::prelude::*;
use std::cell::Cell;
use umx::{Device, Stream};

/// The kind of a device: `umx.core.cpu` or `umx.core.gpu` (MLX's `DeviceType`).
#[pyclass(
    name = "DeviceType",
    module = "umx.core",
    frozen,
    eq,
    hash,
    from_py_object
)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum PyDeviceType {
    #[pyo3(name = "cpu")]
    Cpu,
    #[pyo3(name = "gpu")]
    Gpu,
}

/// A device: a type and an index (MLX's `Device`).
#[pyclass(name = "Device", module = "umx.core", frozen, eq, hash, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyDevice(pub Device);

#[pymethods]
impl PyDevice {
    #[new]
    #[pyo3(signature = (r#type, index=0))]
    fn new(r#type: PyDeviceType, index: usize) -> Self {
        PyDevice(match r#type {
            PyDeviceType::Cpu => Device::Cpu,
            PyDeviceType::Gpu => Device::Gpu(index),
        })
    }

    #[getter]
    fn r#type(&self) -> PyDeviceType {
        match self.0 {
            Device::Cpu => PyDeviceType::Cpu,
            Device::Gpu(_) => PyDeviceType::Gpu,
        }
    }

    fn __repr__(&self) -> String {
        match self.0 {
            Device::Cpu => "Device(cpu, 0)".into(),
            Device::Gpu(i) => format!("Device(gpu, {i})"),
        }
    }
}

/// A queue of work on a device (MLX's `Stream`).
#[pyclass(name = "Stream", module = "umx.core", frozen, eq, hash, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyStream(pub Stream);

#[pymethods]
impl PyStream {
    #[getter]
    fn device(&self) -> PyDevice {
        PyDevice(self.0.device)
    }

    #[getter]
    fn index(&self) -> usize {
        self.0.index
    }

    fn __repr__(&self) -> String {
        format!(
            "Stream({}, {})",
            PyDevice(self.0.device).__repr__(),
            self.0.index
        )
    }
}

/// What `stream=` takes: a stream, a device, or a device type.
#[derive(FromPyObject)]
pub enum StreamArg {
    Stream(PyStream),
    Device(PyDevice),
    Type(PyDeviceType),
}

impl StreamArg {
    pub fn stream(&self) -> Stream {
        match self {
            StreamArg::Stream(s) => s.0,
            StreamArg::Device(d) => Stream::default_of(d.0),
            StreamArg::Type(t) => Stream::default_of(device_of_type(*t)),
        }
    }
}

fn device_of_type(t: PyDeviceType) -> Device {
    match t {
        PyDeviceType::Cpu => Device::Cpu,
        PyDeviceType::Gpu => Device::Gpu(0),
    }
}

/// A device argument: a device or a device type.
#[derive(FromPyObject)]
pub enum DeviceArg {
    Device(PyDevice),
    Type(PyDeviceType),
}

impl DeviceArg {
    fn device(&self) -> Device {
        match self {
            DeviceArg::Device(d) => d.0,
            DeviceArg::Type(t) => device_of_type(*t),
        }
    }
}

thread_local! {
    /// The stream of the innermost `with mx.stream(...)` on this thread.
    static CONTEXT: Cell<Option<Stream>> = const { Cell::new(None) };
}

/// Runs `f` (which builds ops) on the stream `stream=` names, else on the one of the innermost
/// `with mx.stream(...)`, else on the default stream.
pub fn on<T>(stream: Option<StreamArg>, f: impl FnOnce() -> umx::Result<T>) -> PyResult<T> {
    match stream
        .map(|s| s.stream())
        .or_else(|| CONTEXT.with(|c| c.get()))
    {
        Some(s) => umx::with_stream(s, f).or_raise(),
        None => f().or_raise(),
    }
}

/// The context manager `mx.stream(s)` returns.
#[pyclass(name = "StreamContext", module = "umx.core")]
pub struct StreamContext {
    stream: Stream,
    saved: Vec<Option<Stream>>,
}

#[pymethods]
impl StreamContext {
    fn __enter__(&mut self) {
        self.saved
            .push(CONTEXT.with(|c| c.replace(Some(self.stream))));
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        let prev = self.saved.pop().flatten();
        CONTEXT.with(|c| c.set(prev));
    }
}

/// `with mx.stream(s):` puts the ops built inside on `s` (a stream, device or device type).
#[pyfunction]
pub fn stream(s: StreamArg) -> StreamContext {
    StreamContext {
        stream: s.stream(),
        saved: Vec::new(),
    }
}

#[pyfunction]
pub fn default_device() -> PyDevice {
    PyDevice(umx::default_device())
}

#[pyfunction]
pub fn set_default_device(device: DeviceArg) -> PyResult<()> {
    umx::device::set_default_device(device.device()).or_raise()
}

#[pyfunction]
#[pyo3(signature = (device=None))]
pub fn default_stream(device: Option<DeviceArg>) -> PyStream {
    PyStream(match device {
        Some(d) => Stream::default_of(d.device()),
        None => umx::default_stream(),
    })
}

/// A new stream on `device` (`mx.new_stream`): ops given it (`stream=s`, `with
/// mx.stream(s)`) run in order on it, alongside other streams' work on a GPU.
#[pyfunction]
pub fn new_stream(device: DeviceArg) -> PyResult<PyStream> {
    umx::new_stream(device.device()).map(PyStream).or_raise()
}

#[pyfunction]
pub fn is_available(device: DeviceArg) -> bool {
    umx::device::is_available(device.device())
}

/// Waits for the work queued on a stream (the default one when none is given).
#[pyfunction]
#[pyo3(signature = (stream=None))]
pub fn synchronize(py: Python<'_>, stream: Option<StreamArg>) -> PyResult<()> {
    let s = stream.map_or_else(umx::default_stream, |s| s.stream());
    py.detach(|| umx::device::backend(s.device)?.synchronize(s))
        .or_raise()
}
