//! The GPU itself: finding it without panicking, its context and stream, made once on first
//! use and bound to each thread that calls the driver.
//!
//! All work of a device goes to one CUDA stream. Launches are asynchronous; since every
//! kernel, copy and allocation reuse is ordered on that one stream, no event is needed yet.
//! A host read waits for the stream (see `storage.rs`).

use cudarc::driver::{result, sys};
use std::cell::Cell;
use std::sync::OnceLock;
use umx_core::{Error, Result};

/// The driver error as a umx error naming what was being done.
pub(crate) fn driver_err(what: &str, e: result::DriverError) -> Error {
    if e.0 == sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY {
        return Error::OutOfMemory(format!("gpu: {what}: out of device memory"));
    }
    let name = e
        .error_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", e.0));
    Error::Device(format!("gpu: {what}: {name}"))
}

/// The number of CUDA devices, or 0 when there is no driver or no device. Never panics:
/// cudarc panics when a library is missing, so its absence is checked first and the rest runs
/// under `catch_unwind`.
pub fn device_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        // SAFETY: only tries to open the library.
        if !unsafe { sys::is_culib_present() } {
            return 0;
        }
        std::panic::catch_unwind(|| {
            result::init().ok()?;
            result::device::get_count().ok()
        })
        .ok()
        .flatten()
        .map_or(0, |n| n.max(0) as usize)
    })
}

/// One device's context, stream and properties.
pub(crate) struct Gpu {
    pub ordinal: usize,
    pub ctx: sys::CUcontext,
    pub stream: sys::CUstream,
    /// Compute capability, e.g. (9, 0).
    pub arch: (i32, i32),
    pub sm_count: u32,
    pub total_memory: usize,
    pub name: String,
}

// SAFETY: the context and stream handles are process-wide driver objects, usable from any
// thread once the context is made current there (`gpu()` does that).
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

static GPU0: OnceLock<Result<Gpu>> = OnceLock::new();

thread_local! {
    static BOUND: Cell<bool> = const { Cell::new(false) };
}

/// Device 0, its context made current on this thread. The first call creates the context and
/// stream (about 0.3 s on an H100).
pub(crate) fn gpu() -> Result<&'static Gpu> {
    let g = GPU0
        .get_or_init(|| open(0))
        .as_ref()
        .map_err(Clone::clone)?;
    if !BOUND.with(|b| b.get()) {
        // SAFETY: ctx is a live primary context.
        unsafe { result::ctx::set_current(g.ctx) }
            .map_err(|e| driver_err("binding the context to a thread", e))?;
        BOUND.with(|b| b.set(true));
    }
    Ok(g)
}

fn open(ordinal: usize) -> Result<Gpu> {
    if device_count() <= ordinal {
        return Err(Error::Device(format!(
            "gpu({ordinal}): no such CUDA device ({} found)",
            device_count()
        )));
    }
    let dev = result::device::get(ordinal as i32).map_err(|e| driver_err("cuDeviceGet", e))?;
    // SAFETY: dev is a valid device; the primary context lives as long as the process.
    let ctx = unsafe { result::primary_ctx::retain(dev) }
        .map_err(|e| driver_err("creating the context", e))?;
    unsafe { result::ctx::set_current(ctx) }.map_err(|e| driver_err("cuCtxSetCurrent", e))?;
    let stream = result::stream::create(result::stream::StreamKind::NonBlocking)
        .map_err(|e| driver_err("creating a stream", e))?;
    let attr = |a| unsafe { result::device::get_attribute(dev, a) }.unwrap_or(0);
    use sys::CUdevice_attribute::*;
    let arch = (
        attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
        attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
    );
    let sm_count = attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).max(1) as u32;
    // SAFETY: dev is valid.
    let total_memory = unsafe { result::device::total_mem(dev) }.unwrap_or(0);
    let name = result::device::get_name(dev).unwrap_or_else(|_| "unknown".into());
    BOUND.with(|b| b.set(true));
    Ok(Gpu {
        ordinal,
        ctx,
        stream,
        arch,
        sm_count,
        total_memory,
        name,
    })
}

impl Gpu {
    /// Waits for everything queued on the stream.
    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: the stream is live.
        unsafe { result::stream::synchronize(self.stream) }
            .map_err(|e| driver_err("synchronizing the stream", e))
    }
}

/// The name and compute capability of device 0, creating its context if needed.
pub fn device_info() -> Result<(String, (i32, i32), usize)> {
    let g = gpu()?;
    Ok((g.name.clone(), g.arch, g.total_memory))
}
