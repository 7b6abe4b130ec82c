//! `CudaStorage`: a buffer's copy in device memory (core's `DeviceStorage`), and the moves
//! between host and device.

use crate::gpu::{MAX_STREAMS, current_stream, driver_err, gpu};
use crate::pool::POOL;
use cudarc::driver::{result, sys};
use std::any::Any;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use umx_core::buffer::DeviceStorage;
use umx_core::shape::{numel, row_major_strides};
use umx_core::{ArrayData, Buffer, Device, Dtype, Error, Result};

/// A block of device memory holding a buffer's bytes.
pub struct CudaStorage {
    ptr: sys::CUdeviceptr,
    size: usize,
    capacity: usize,
    /// The stream whose work wrote the bytes last.
    writer: AtomicUsize,
    /// Streams ordered after that write (the writer, and readers that waited for it).
    seen: AtomicU64,
    /// Streams that used the block (for the pool, and for host reads to wait on).
    used: AtomicU64,
    /// When its last write was queued, on the [`WRITES`] clock (`u64::MAX` until the
    /// kernel that makes a fresh block has been queued).
    stamp: AtomicU64,
}

/// The write clock: a block is stamped with its next tick once the work writing it has been
/// queued.
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Per stream, the clock read just before the stream's last synchronization: a block stamped
/// earlier was written by work that had finished by then (or, written on another stream, is
/// ordered before this stream's readers by an event).
static SETTLED: [AtomicU64; MAX_STREAMS] = [const { AtomicU64::new(0) }; MAX_STREAMS];

/// The write clock now; [`settle`] it once the stream has been synchronized.
pub(crate) fn write_clock() -> u64 {
    WRITES.load(Ordering::Acquire)
}

/// Records that stream `index` finished everything queued before `clock` was read.
pub(crate) fn settle(index: usize, clock: u64) {
    SETTLED[index].fetch_max(clock, Ordering::AcqRel);
}

/// Whether the bytes of `data` were written by work the current stream has synchronized
/// with (or an event orders before it): no kernel still running writes them, so a kernel
/// may read them before waiting for the kernel before it.
pub(crate) fn settled(data: &ArrayData) -> bool {
    data.buffer.device_storage().is_some_and(|d| {
        d.as_any().downcast_ref::<CudaStorage>().is_some_and(|s| {
            s.stamp.load(Ordering::Acquire) < SETTLED[current_stream()].load(Ordering::Acquire)
        })
    })
}

impl CudaStorage {
    /// Fresh device memory for `size` bytes (contents unspecified), written by the current
    /// stream.
    pub fn alloc(size: usize) -> Result<CudaStorage> {
        let (ptr, capacity) = POOL.alloc(size)?;
        let me = current_stream();
        Ok(CudaStorage {
            ptr,
            size,
            capacity,
            writer: AtomicUsize::new(me),
            seen: AtomicU64::new(1 << me),
            used: AtomicU64::new(1 << me),
            stamp: AtomicU64::new(u64::MAX),
        })
    }

    /// Stamps the block once the work writing it has been queued (see [`settled`]).
    pub(crate) fn mark_written(&self) {
        self.stamp
            .store(WRITES.fetch_add(1, Ordering::AcqRel), Ordering::Release);
    }

    /// Orders stream `me`, about to read this block, after the work that wrote it: the first
    /// read from another stream makes `me` wait for an event on the writer's stream.
    pub(crate) fn order_read(&self, me: usize) -> Result<()> {
        let bit = 1u64 << me;
        self.used.fetch_or(bit, Ordering::Relaxed);
        if self.seen.fetch_or(bit, Ordering::AcqRel) & bit == 0 {
            gpu()?.wait_for(self.writer.load(Ordering::Acquire))?;
        }
        Ok(())
    }

    /// Records that stream `me` wrote the block (an output that reused an input's buffer).
    pub(crate) fn note_write(&self, me: usize) {
        let bit = 1u64 << me;
        self.used.fetch_or(bit, Ordering::Relaxed);
        if self.writer.swap(me, Ordering::AcqRel) != me {
            self.seen.store(bit, Ordering::Release);
        }
    }

    /// The device address of the first byte.
    pub fn ptr(&self) -> sys::CUdeviceptr {
        self.ptr
    }

    /// A copy of `bytes` in device memory.
    pub fn upload(bytes: &[u8]) -> Result<CudaStorage> {
        let _guard = crate::graph::stream_guard();
        if crate::graph::capturing() {
            return Err(crate::graph::not_capturable("a copy from the host"));
        }
        let s = CudaStorage::alloc(bytes.len())?;
        if !bytes.is_empty() {
            let g = gpu()?;
            // SAFETY: s holds bytes.len() bytes; for pageable host memory the call returns
            // once the source has been staged, so `bytes` may go away after it.
            unsafe { result::memcpy_htod_async(s.ptr, bytes, g.stream()) }
                .map_err(|e| driver_err("copying to the device", e))?;
        }
        s.mark_written();
        Ok(s)
    }
}

impl Drop for CudaStorage {
    fn drop(&mut self) {
        POOL.give_back(self.ptr, self.capacity, *self.used.get_mut());
    }
}

impl DeviceStorage for CudaStorage {
    fn device(&self) -> Device {
        Device::Gpu(0)
    }
    fn size(&self) -> usize {
        self.size
    }
    fn copy_to_host(&self, dst: &mut [u8]) -> Result<()> {
        if dst.len() != self.size {
            return Err(Error::Device(format!(
                "gpu: copying {} bytes to a host buffer of {}",
                self.size,
                dst.len()
            )));
        }
        if self.size == 0 {
            return Ok(());
        }
        let _guard = crate::graph::stream_guard();
        if crate::graph::capturing() {
            return Err(crate::graph::not_capturable("a copy to the host"));
        }
        let g = gpu()?;
        // Every stream that used the block finishes first (its writer among them).
        let used = self.used.load(Ordering::Acquire);
        for s in (0..MAX_STREAMS).filter(|s| used & (1u64 << s) != 0) {
            g.synchronize_stream(s)?;
        }
        // SAFETY: both sides hold `size` bytes; the copy is ordered after every kernel queued
        // on the stream, and the sync makes the bytes visible before we return.
        unsafe { result::memcpy_dtoh_async(dst, self.ptr, g.stream()) }
            .map_err(|e| driver_err("copying to the host", e))?;
        g.synchronize_stream(crate::gpu::current_stream())?;
        // An out-of-range index a kernel found surfaces at this read.
        crate::kernels::indexing::take_index_error()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The device address of a buffer's first byte, uploading its host copy first when it has no
/// device copy yet (counted by core).
pub(crate) fn device_ptr(buffer: &Buffer) -> Result<sys::CUdeviceptr> {
    let d = buffer.ensure_device(Device::Gpu(0), |bytes| {
        Ok(Box::new(CudaStorage::upload(bytes)?))
    })?;
    d.as_any()
        .downcast_ref::<CudaStorage>()
        .map(|s| s.ptr)
        .ok_or_else(|| Error::Device("gpu: a device buffer of another backend".into()))
}

/// The device address of element `data.offset` of an input.
pub(crate) fn input_ptr(data: &ArrayData) -> Result<sys::CUdeviceptr> {
    let base = device_ptr(&data.buffer)?;
    Ok(base.wrapping_add((data.offset * data.dtype.size() as isize) as u64))
}

/// A fresh device buffer of `size` bytes (written by a kernel next).
pub(crate) fn output(size: usize) -> Result<(Buffer, sys::CUdeviceptr)> {
    let s = CudaStorage::alloc(size)?;
    let ptr = s.ptr;
    Ok((Buffer::from_device(Box::new(s)), ptr))
}

/// A fresh row-major device output of `shape`: (data, pointer).
pub(crate) fn fresh(shape: &[usize], dtype: Dtype) -> Result<(ArrayData, sys::CUdeviceptr)> {
    let (buffer, ptr) = output(numel(shape) * dtype.size())?;
    Ok((
        ArrayData {
            buffer: std::sync::Arc::new(buffer),
            shape: shape.to_vec(),
            dtype,
            strides: row_major_strides(shape),
            offset: 0,
        },
        ptr,
    ))
}
