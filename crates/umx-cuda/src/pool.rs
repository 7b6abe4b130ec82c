//! Device memory: a size-bucketed cache of `cuMemAlloc` blocks, with a memory limit, a cache
//! limit, and active/peak/cache statistics (the device twin of umx-core's host allocator).
//!
//! Each cached block remembers the streams that used it (a bit per stream index). Handed out
//! again to one of those streams alone, it needs nothing: that stream runs the new work after
//! the old. Handed to another stream, that stream first waits for an event recorded on each
//! stream that used it (`Gpu::wait_for`), so no kernel can write a block another stream's
//! queued kernel still reads. Blocks really freed (`cuMemFree`) are freed after a sync.
//!
//! While a CUDA graph is captured (`graph.rs`) the pool keeps what the captured work frees
//! apart: those blocks are reused only by the same capture (its kernels run in one order on
//! every replay) and then belong to the graph, which returns them when it is dropped.

use crate::gpu::{driver_err, gpu};
use cudarc::driver::{result, sys};
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use umx_core::{Error, Result};

/// Rounds a request to its cache bucket: powers of two (at least 256 bytes, the driver's
/// alignment) up to 1 MiB, then whole 64 KiB blocks up to 64 MiB, then whole 2 MiB blocks.
fn bucket(size: usize) -> usize {
    if size == 0 {
        0
    } else if size <= 1 << 20 {
        size.next_power_of_two().max(256)
    } else if size <= 64 << 20 {
        size.div_ceil(1 << 16) << 16
    } else {
        size.div_ceil(2 << 20) << 21
    }
}

/// The blocks a graph capture freed: reusable within the capture, except `reserved` ones
/// (the graph's state, which its last nodes write), which are only kept.
#[derive(Default)]
struct Captured {
    free: BTreeMap<usize, Vec<sys::CUdeviceptr>>,
    reserved: HashSet<sys::CUdeviceptr>,
    kept: Vec<(sys::CUdeviceptr, usize)>,
}

pub(crate) struct Pool {
    /// Free blocks by capacity, each with the mask of the streams that used it.
    cache: Mutex<BTreeMap<usize, Vec<(sys::CUdeviceptr, u64)>>>,
    capturing: AtomicBool,
    captured: Mutex<Option<Captured>>,
    active: AtomicUsize,
    peak: AtomicUsize,
    cached: AtomicUsize,
    /// `usize::MAX` until set: the device's own capacity is the limit then.
    memory_limit: AtomicUsize,
    cache_limit: AtomicUsize,
}

pub(crate) static POOL: Pool = Pool {
    cache: Mutex::new(BTreeMap::new()),
    capturing: AtomicBool::new(false),
    captured: Mutex::new(None),
    active: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
    cached: AtomicUsize::new(0),
    memory_limit: AtomicUsize::new(usize::MAX),
    cache_limit: AtomicUsize::new(usize::MAX),
};

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Vec<(sys::CUdeviceptr, u64)>>> {
        // No critical section leaves the map half-updated: a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A block of at least `size` bytes for work on the current stream; returns (pointer,
    /// capacity).
    pub fn alloc(&self, size: usize) -> Result<(sys::CUdeviceptr, usize)> {
        let capacity = bucket(size);
        if capacity == 0 {
            return Ok((0, 0));
        }
        if self.capturing.load(Ordering::Acquire)
            && let Some(c) = self.captured().as_mut()
            && let Some(p) = c.free.get_mut(&capacity).and_then(|v| v.pop())
        {
            return Ok((p, capacity));
        }
        let reused = self.lock().get_mut(&capacity).and_then(|v| v.pop());
        if let Some((p, used)) = reused {
            self.cached.fetch_sub(capacity, Ordering::Relaxed);
            self.note_active(capacity);
            let me = crate::gpu::current_stream();
            let others = used & !(1u64 << me);
            if others != 0 {
                let g = gpu()?;
                for s in (0..64).filter(|s| others & (1u64 << s) != 0) {
                    g.wait_for(s)?;
                }
            }
            return Ok((p, capacity));
        }
        let limit = self.memory_limit.load(Ordering::Relaxed);
        if self.active.load(Ordering::Relaxed).saturating_add(capacity) > limit {
            self.clear_cache()?;
            return Err(Error::OutOfMemory(format!(
                "gpu: allocating {capacity} bytes would pass the memory limit of {limit} bytes \
                 ({} bytes active)",
                self.active.load(Ordering::Relaxed)
            )));
        }
        let g = gpu()?;
        // SAFETY: a plain device allocation in the current context.
        let p = match unsafe { result::malloc_sync(capacity) } {
            Ok(p) => p,
            Err(e) if e.0 == sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY => {
                // Give the cached blocks back to the driver and try once more.
                self.clear_cache()?;
                unsafe { result::malloc_sync(capacity) }.map_err(|_| {
                    Error::OutOfMemory(format!(
                        "gpu({}): out of device memory allocating {capacity} bytes ({} bytes \
                         active, {} total)",
                        g.ordinal,
                        self.active.load(Ordering::Relaxed),
                        g.total_memory
                    ))
                })?
            }
            Err(e) => return Err(driver_err("cuMemAlloc", e)),
        };
        self.note_active(capacity);
        Ok((p, capacity))
    }

    fn note_active(&self, capacity: usize) {
        let now = self.active.fetch_add(capacity, Ordering::Relaxed) + capacity;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn captured(&self) -> std::sync::MutexGuard<'_, Option<Captured>> {
        self.captured.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts keeping freed blocks for a graph capture; blocks in `reserved` are only kept.
    pub fn begin_capture(&self, reserved: impl IntoIterator<Item = sys::CUdeviceptr>) {
        *self.captured() = Some(Captured {
            reserved: reserved.into_iter().collect(),
            ..Captured::default()
        });
        self.capturing.store(true, Ordering::Release);
    }

    /// Ends a capture: the blocks it freed, which now belong to the graph (still counted as
    /// active until the graph gives them back).
    pub fn end_capture(&self) -> Vec<(sys::CUdeviceptr, usize)> {
        self.capturing.store(false, Ordering::Release);
        let Some(c) = self.captured().take() else {
            return Vec::new();
        };
        let mut blocks = c.kept;
        for (capacity, ptrs) in c.free {
            blocks.extend(ptrs.into_iter().map(|p| (p, capacity)));
        }
        blocks
    }

    /// Returns a block, used by the streams in the mask `used`, to the cache, or to the driver
    /// when the cache is full.
    pub fn give_back(&self, ptr: sys::CUdeviceptr, capacity: usize, used: u64) {
        if capacity == 0 {
            return;
        }
        if self.capturing.load(Ordering::Acquire)
            && let Some(c) = self.captured().as_mut()
        {
            if c.reserved.contains(&ptr) {
                c.kept.push((ptr, capacity));
            } else {
                c.free.entry(capacity).or_default().push(ptr);
            }
            return;
        }
        self.active.fetch_sub(capacity, Ordering::Relaxed);
        let limit = self.cache_limit.load(Ordering::Relaxed);
        if self.cached.load(Ordering::Relaxed) + capacity <= limit {
            self.cached.fetch_add(capacity, Ordering::Relaxed);
            self.lock().entry(capacity).or_default().push((ptr, used));
        } else if let Ok(g) = gpu() {
            // A queued kernel may still use the block: wait for the streams first. Errors here
            // have nowhere to go (this runs in a drop); the block then leaks.
            let _ = g.synchronize();
            let _ = unsafe { result::free_sync(ptr) };
        }
    }

    /// Frees every cached block.
    pub fn clear_cache(&self) -> Result<()> {
        let drained = std::mem::take(&mut *self.lock());
        if drained.is_empty() {
            return Ok(());
        }
        gpu()?.synchronize()?;
        for (capacity, ptrs) in drained {
            for (p, _) in ptrs {
                self.cached.fetch_sub(capacity, Ordering::Relaxed);
                // SAFETY: p came from cuMemAlloc and nothing uses it any more.
                unsafe { result::free_sync(p) }.map_err(|e| driver_err("cuMemFree", e))?;
            }
        }
        Ok(())
    }
}

/// Device-memory statistics and limits of GPU 0 (MLX's `mx.cuda` memory functions). Host
/// memory and the bytes moved between host and device are in `umx::memory`.
pub mod memory {
    use super::*;

    /// Bytes held by live device buffers.
    pub fn active_memory() -> usize {
        POOL.active.load(Ordering::Relaxed)
    }
    /// The highest `active_memory` since start or the last `reset_peak_memory`.
    pub fn peak_memory() -> usize {
        POOL.peak.load(Ordering::Relaxed)
    }
    /// Sets the peak to the current active memory.
    pub fn reset_peak_memory() {
        POOL.peak.store(active_memory(), Ordering::Relaxed);
    }
    /// Bytes held in the cache of freed device blocks.
    pub fn cache_memory() -> usize {
        POOL.cached.load(Ordering::Relaxed)
    }
    /// Frees every cached device block.
    pub fn clear_cache() -> Result<()> {
        POOL.clear_cache()
    }
    /// Sets the most bytes live device buffers may hold; an allocation past it frees the cache
    /// and fails with `Error::OutOfMemory`. Returns the previous limit.
    pub fn set_memory_limit(bytes: usize) -> usize {
        POOL.memory_limit.swap(bytes, Ordering::Relaxed)
    }
    /// Sets the most bytes the cache may keep (0 disables caching). Returns the previous
    /// limit.
    pub fn set_cache_limit(bytes: usize) -> Result<usize> {
        let old = POOL.cache_limit.swap(bytes, Ordering::Relaxed);
        if cache_memory() > bytes {
            POOL.clear_cache()?;
        }
        Ok(old)
    }
}
