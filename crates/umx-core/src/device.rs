//! Devices, streams, and the `Backend` trait through which core reaches kernels.
//!
//! Core never names a backend: `umx-cpu` (and later `umx-cuda`) register themselves here, and
//! `eval` hands each node to the backend of its stream's device.

use crate::primitives::{FastOp, Primitive};
use crate::{Array, ArrayData, Dtype, Error, Result, Shape};
use std::cell::Cell;
use std::fmt;
use std::sync::{Arc, RwLock};

/// A processor arrays can be computed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Gpu(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Gpu(i) => write!(f, "gpu({i})"),
        }
    }
}

/// An ordered queue of work on one device. Work on one stream runs in submission order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stream {
    pub device: Device,
    pub index: usize,
}

impl Stream {
    /// The default stream of a device.
    pub fn default_of(device: Device) -> Stream {
        Stream { device, index: 0 }
    }
}

/// The shape and dtype of one output a backend must produce.
#[derive(Clone, Debug, PartialEq)]
pub struct OutSpec {
    pub shape: Shape,
    pub dtype: Dtype,
}

/// A device's kernels: one exhaustive `match` over the primitive families.
pub trait Backend: Send + Sync {
    /// The device it computes on.
    fn device(&self) -> Device;
    /// Computes `prim` on `inputs`, returning one `ArrayData` per `outputs` entry.
    ///
    /// Inputs are owned: a backend may reuse (donate) an input's buffer for an output when
    /// `Arc::get_mut` on it succeeds, since then nothing else can see it.
    fn eval(
        &self,
        prim: &Primitive,
        inputs: Vec<ArrayData>,
        outputs: &[OutSpec],
        stream: Stream,
    ) -> Result<Vec<ArrayData>>;
    /// Submits work the backend held back (to batch small kernels): called when an `eval`
    /// has run its nodes, so the device never waits for a later call.
    fn flush(&self) -> Result<()> {
        Ok(())
    }
    /// Waits until everything submitted to `stream` has finished.
    fn synchronize(&self, _stream: Stream) -> Result<()> {
        Ok(())
    }
    /// Prepares stream `index` for [`new_stream`]; an error when the device can have no more.
    fn open_stream(&self, _index: usize) -> Result<()> {
        Ok(())
    }
    /// Whether the device has a kernel of its own for the fast op `op` on `inputs` where the
    /// op's portable rule would build its fallback of ordinary ops (MLX's per-backend
    /// `use_fallback`): the CUDA backend's flash attention over long query blocks. Asked
    /// when the op is built, for the device its stream is on.
    fn has_fast_kernel(&self, _op: &FastOp, _inputs: &[Array]) -> bool {
        false
    }
}

static BACKENDS: RwLock<Vec<Arc<dyn Backend>>> = RwLock::new(Vec::new());
static DEFAULT_DEVICE: RwLock<Option<Device>> = RwLock::new(None);

thread_local! {
    static SCOPED_STREAM: Cell<Option<Stream>> = const { Cell::new(None) };
}

/// Registers a backend; a later one for the same device replaces it.
pub fn register_backend(backend: Arc<dyn Backend>) {
    let mut all = BACKENDS.write().unwrap_or_else(|e| e.into_inner());
    all.retain(|b| b.device() != backend.device());
    all.push(backend);
}

/// The backend of a device, or an error saying none is registered.
pub fn backend(device: Device) -> Result<Arc<dyn Backend>> {
    let all = BACKENDS.read().unwrap_or_else(|e| e.into_inner());
    all.iter()
        .find(|b| b.device() == device)
        .cloned()
        .ok_or_else(|| {
            Error::Device(format!(
                "no backend is registered for the {device} device ({})",
                match device {
                    Device::Gpu(_) =>
                        "no CUDA device was found, or the program does not link the \
                                   `umx` crate, which registers the backends",
                    Device::Cpu => "depend on the `umx` crate, which registers the backends",
                }
            ))
        })
}

/// Whether a backend for the device is registered.
pub fn is_available(device: Device) -> bool {
    backend(device).is_ok()
}

/// The device ops run on when they name none: the one set by `set_default_device`, else the
/// first GPU when a GPU backend is registered, else the CPU.
pub fn default_device() -> Device {
    if let Some(d) = *DEFAULT_DEVICE.read().unwrap_or_else(|e| e.into_inner()) {
        return d;
    }
    if is_available(Device::Gpu(0)) {
        Device::Gpu(0)
    } else {
        Device::Cpu
    }
}

/// Sets the default device for every thread.
pub fn set_default_device(device: Device) -> Result<()> {
    backend(device)?;
    *DEFAULT_DEVICE.write().unwrap_or_else(|e| e.into_inner()) = Some(device);
    Ok(())
}

/// A new stream on `device` (MLX's `mx.new_stream`). Work on one stream runs in order; work
/// on different streams of a GPU may run at the same time. An op reading an array another
/// stream computes waits for it on the device (an event, not a host sync), so arrays move
/// freely between streams.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Device, new_stream, ops, with_stream};
/// let s = new_stream(Device::Cpu)?;
/// let x = with_stream(s, || ops::add(&ops::ones(&[2], None)?, 1.0))?;
/// assert_eq!(x.to_vec::<f32>()?, [2.0, 2.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn new_stream(device: Device) -> Result<Stream> {
    static NEXT: std::sync::Mutex<Vec<(Device, usize)>> = std::sync::Mutex::new(Vec::new());
    let b = backend(device)?;
    let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    let at = match next.iter().position(|(d, _)| *d == device) {
        Some(i) => i,
        None => {
            next.push((device, 1));
            next.len() - 1
        }
    };
    let index = next[at].1;
    b.open_stream(index)?;
    next[at].1 += 1;
    Ok(Stream { device, index })
}

/// The stream new nodes go to on this thread: the scoped one (see [`with_stream`]) or the
/// default device's default stream.
pub fn default_stream() -> Stream {
    SCOPED_STREAM
        .with(|s| s.get())
        .unwrap_or_else(|| Stream::default_of(default_device()))
}

/// Runs `f` with every op it builds on this thread placed on `device`'s default stream
/// (the Rust form of MLX's `stream=` argument and `with mx.stream(...)`).
///
/// ```ignore
/// let c = umx::with_device(Device::Cpu, || ops::add(&a, &b))?;
/// ```
pub fn with_device<R>(device: Device, f: impl FnOnce() -> R) -> R {
    with_stream(Stream::default_of(device), f)
}

/// Runs `f` with every op it builds on this thread placed on `stream`.
pub fn with_stream<R>(stream: Stream, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Stream>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPED_STREAM.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SCOPED_STREAM.with(|s| s.replace(Some(stream))));
    f()
}
