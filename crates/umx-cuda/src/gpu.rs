//! The GPU itself: finding it without panicking, its context and streams, made once on first
//! use and bound to each thread that calls the driver.
//!
//! Each `umx::Stream` of the GPU is a CUDA stream: index 0 (the default stream) is made with
//! the context, the others (from `umx::new_stream`) on first use, up to [`MAX_STREAMS`].
//! Launches are asynchronous. The backend evaluates each node with its stream made *current*
//! on this thread ([`on_stream`]): every kernel, copy and library call queues on
//! [`Gpu::stream`]. Work within a stream is ordered by the stream; a node reading a buffer
//! another stream used first makes its stream wait for an event recorded on that one
//! ([`Gpu::wait_for`]), and the pool does the same before handing a block to another stream
//! (`pool.rs`). Nothing waits on the host but a host read (`storage.rs`) and `synchronize`.

use cudarc::driver::{result, sys};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock};
use umx_core::{Error, Result};

/// Streams a GPU may have (a bit each in a buffer's mask of the streams that used it).
pub const MAX_STREAMS: usize = 64;

/// Set once a stream other than the default one exists: until then nothing crosses streams
/// and the backend skips the bookkeeping.
static MULTI: AtomicBool = AtomicBool::new(false);

/// Whether work may cross streams (a stream besides the default one has been used).
pub(crate) fn multi_stream() -> bool {
    MULTI.load(Ordering::Acquire)
}

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

/// One device's context, streams and properties.
pub(crate) struct Gpu {
    pub ordinal: usize,
    pub ctx: sys::CUcontext,
    /// The CUDA stream of each umx stream index (null until first used; 0 is made at once).
    streams: [AtomicPtr<sys::CUstream_st>; MAX_STREAMS],
    /// Held while a stream is created.
    creating: Mutex<()>,
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
    /// The stream index this thread's GPU work queues on now.
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// The stream index this thread queues on (0 outside a node's evaluation).
pub(crate) fn current_stream() -> usize {
    CURRENT.with(|c| c.get())
}

/// Restores the previous current stream when dropped.
pub(crate) struct OnStream(usize);

impl Drop for OnStream {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Makes stream `index` current on this thread (creating its CUDA stream on first use) until
/// the guard drops.
pub(crate) fn on_stream(index: usize) -> Result<OnStream> {
    gpu()?.ensure_stream(index)?;
    Ok(OnStream(CURRENT.with(|c| c.replace(index))))
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
    let streams: [AtomicPtr<sys::CUstream_st>; MAX_STREAMS] =
        std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut()));
    streams[0].store(stream, Ordering::Release);
    Ok(Gpu {
        ordinal,
        ctx,
        streams,
        creating: Mutex::new(()),
        arch,
        sm_count,
        total_memory,
        name,
    })
}

impl Gpu {
    /// The CUDA stream this thread's work queues on now (see [`on_stream`]), for work about
    /// to be queued on it: kernels held back for batching are submitted first.
    pub fn stream(&self) -> sys::CUstream {
        self.stream_of(current_stream())
    }

    /// The CUDA stream of umx stream `index` (null if never used), for work about to be
    /// queued on it or a wait for it: kernels held back for batching (`batch.rs`) are
    /// submitted first, so the stream keeps the program's order.
    pub fn stream_of(&self, index: usize) -> sys::CUstream {
        crate::batch::flush_quiet(self, index);
        self.raw_stream_of(index)
    }

    /// The CUDA stream of umx stream `index`, with nothing submitted: for the launches of
    /// `batch.rs` itself.
    pub(crate) fn raw_stream_of(&self, index: usize) -> sys::CUstream {
        self.streams
            .get(index)
            .map_or(std::ptr::null_mut(), |s| s.load(Ordering::Acquire))
    }

    /// Creates the CUDA stream of `index` if it has none yet.
    fn ensure_stream(&self, index: usize) -> Result<()> {
        let Some(slot) = self.streams.get(index) else {
            return Err(Error::Device(format!(
                "gpu({}): stream {index}: a GPU has at most {MAX_STREAMS} streams",
                self.ordinal
            )));
        };
        if !slot.load(Ordering::Acquire).is_null() {
            return Ok(());
        }
        let _lock = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        if slot.load(Ordering::Acquire).is_null() {
            let s = result::stream::create(result::stream::StreamKind::NonBlocking)
                .map_err(|e| driver_err("creating a stream", e))?;
            slot.store(s, Ordering::Release);
            MULTI.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// The indices of the streams made so far.
    pub fn live_streams(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_STREAMS).filter(|&i| !self.raw_stream_of(i).is_null())
    }

    /// Makes the current stream wait (on the device, not the host) for everything queued so
    /// far on stream `from`.
    pub fn wait_for(&self, from: usize) -> Result<()> {
        let (src, dst) = (self.stream_of(from), self.stream());
        // A capture runs on the default stream after every stream was synchronized.
        if from == current_stream() || src.is_null() || crate::graph::capturing() {
            return Ok(());
        }
        let e = result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)
            .map_err(|e| driver_err("creating an event", e))?;
        // SAFETY: live streams and event; destroying a recorded event that a stream still
        // waits on is allowed (the driver releases it once the wait completes).
        let r = unsafe {
            result::event::record(e, src).and_then(|_| {
                result::stream::wait_event(dst, e, sys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT)
            })
        };
        unsafe {
            let _ = result::event::destroy(e);
        }
        r.map_err(|e| driver_err("ordering work across streams", e))
    }

    /// Waits on the host for everything queued on stream `index`.
    pub fn synchronize_stream(&self, index: usize) -> Result<()> {
        // Read before the held-back work is submitted and waited for.
        let clock = crate::storage::write_clock();
        let s = self.stream_of(index);
        if s.is_null() {
            return Ok(());
        }
        // SAFETY: the stream is live.
        unsafe { result::stream::synchronize(s) }
            .map_err(|e| driver_err("synchronizing a stream", e))?;
        crate::storage::settle(index, clock);
        Ok(())
    }

    /// Waits on the host for everything queued on every stream.
    pub fn synchronize(&self) -> Result<()> {
        for i in self.live_streams() {
            self.synchronize_stream(i)?;
        }
        Ok(())
    }
}

/// The name and compute capability of device 0, creating its context if needed.
pub fn device_info() -> Result<(String, (i32, i32), usize)> {
    let g = gpu()?;
    Ok((g.name.clone(), g.arch, g.total_memory))
}
