//! Host memory: buffers, the size-bucketed cache they come from, and memory statistics.
//!
//! A [`Buffer`] is one allocation. Freed buffers go back to a cache keyed by their rounded size,
//! so the small arrays of a training loop are recycled instead of hitting `malloc` each step.
//! Statistics (active, peak, cache) and limits (memory, cache) follow MLX's `mx.metal`/`mx.cuda`
//! memory functions.

use crate::{Dtype, Element, Error, Result};
use std::alloc::{Layout, alloc, dealloc};
use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Alignment of every buffer: a cache line, enough for any SIMD load.
pub const ALIGN: usize = 64;

/// One host allocation of `size` bytes (capacity rounded up to its cache bucket).
pub struct Buffer {
    ptr: NonNull<u8>,
    size: usize,
    capacity: usize,
}

// SAFETY: a Buffer owns its allocation; shared access only reads it, and mutable access needs
// `&mut Buffer` (kernels get that only for buffers nobody else holds).
unsafe impl Send for Buffer {}
unsafe impl Sync for Buffer {}

impl Buffer {
    /// A zero-initialised buffer of `size` bytes.
    pub fn zeroed(size: usize) -> Result<Buffer> {
        let mut b = Buffer::uninit(size)?;
        b.bytes_mut().fill(0);
        Ok(b)
    }

    /// A buffer of `size` bytes whose contents are unspecified (but initialised memory: a
    /// recycled buffer or fresh zeroed pages), for kernels that write every element.
    pub fn uninit(size: usize) -> Result<Buffer> {
        let capacity = bucket(size);
        let ptr = ALLOCATOR.take(capacity)?;
        Ok(Buffer {
            ptr,
            size,
            capacity,
        })
    }

    /// A buffer holding a copy of `data`.
    pub fn from_slice<T: Element>(data: &[T]) -> Result<Buffer> {
        let size = std::mem::size_of_val(data);
        let b = Buffer::uninit(size)?;
        // SAFETY: b has room for `size` bytes, and T is plain data.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr() as *const u8, b.ptr.as_ptr(), size) };
        Ok(b)
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr is valid for `capacity >= size` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.size) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.size) }
    }

    /// The buffer as elements of `T`. The caller names the dtype the buffer was written with;
    /// a mismatch is caught here.
    pub fn as_slice<T: Element>(&self) -> &[T] {
        let n = self.size / std::mem::size_of::<T>();
        // SAFETY: ALIGN suits every element type, the bytes are initialised, and buffers of a
        // dtype are only ever written with values of it (bool stays 0 or 1).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr() as *const T, n) }
    }

    pub fn as_mut_slice<T: Element>(&mut self) -> &mut [T] {
        let n = self.size / std::mem::size_of::<T>();
        // SAFETY: as above, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr() as *mut T, n) }
    }

    /// Raw pointer to the first byte (for backends that hand it to other libraries).
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Number of elements of `dtype` it holds.
    pub fn len_of(&self, dtype: Dtype) -> usize {
        self.size / dtype.size()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        ALLOCATOR.give_back(self.ptr, self.capacity);
    }
}

/// Rounds a request to its cache bucket: powers of two up to 1 MiB, then whole 64 KiB blocks,
/// so reuse is likely and waste stays under 2x (small) or 6% (large).
fn bucket(size: usize) -> usize {
    if size == 0 {
        0
    } else if size <= 1 << 20 {
        size.next_power_of_two().max(ALIGN)
    } else {
        size.div_ceil(1 << 16) << 16
    }
}

struct Allocator {
    cache: Mutex<BTreeMap<usize, Vec<SendPtr>>>,
    active: AtomicUsize,
    peak: AtomicUsize,
    cached: AtomicUsize,
    memory_limit: AtomicUsize,
    cache_limit: AtomicUsize,
}

struct SendPtr(NonNull<u8>);
// SAFETY: the pointers in the cache are owned, unused allocations.
unsafe impl Send for SendPtr {}

static ALLOCATOR: Allocator = Allocator {
    cache: Mutex::new(BTreeMap::new()),
    active: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
    cached: AtomicUsize::new(0),
    memory_limit: AtomicUsize::new(usize::MAX),
    cache_limit: AtomicUsize::new(usize::MAX),
};

impl Allocator {
    fn take(&self, capacity: usize) -> Result<NonNull<u8>> {
        if capacity == 0 {
            // A dangling, aligned pointer: never read or freed.
            return Ok(NonNull::new(ALIGN as *mut u8).expect("ALIGN is not zero"));
        }
        if let Some(p) = self.lock().get_mut(&capacity).and_then(|v| v.pop()) {
            self.cached.fetch_sub(capacity, Ordering::Relaxed);
            self.note_active(capacity);
            return Ok(p.0);
        }
        let limit = self.memory_limit.load(Ordering::Relaxed);
        if self.active.load(Ordering::Relaxed).saturating_add(capacity) > limit {
            self.clear_cache();
            return Err(Error::OutOfMemory(format!(
                "allocation of {capacity} bytes would pass the memory limit of {limit} bytes \
                 ({} bytes active)",
                self.active.load(Ordering::Relaxed)
            )));
        }
        let layout = Layout::from_size_align(capacity, ALIGN)
            .map_err(|_| Error::OutOfMemory(format!("cannot allocate {capacity} bytes")))?;
        // SAFETY: layout has non-zero size.
        let mut p = unsafe { alloc(layout) };
        if p.is_null() {
            self.clear_cache();
            // SAFETY: as above.
            p = unsafe { alloc(layout) };
        }
        let p = NonNull::new(p).ok_or_else(|| {
            Error::OutOfMemory(format!("out of host memory allocating {capacity} bytes"))
        })?;
        self.note_active(capacity);
        Ok(p)
    }

    fn note_active(&self, capacity: usize) {
        let now = self.active.fetch_add(capacity, Ordering::Relaxed) + capacity;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn give_back(&self, ptr: NonNull<u8>, capacity: usize) {
        if capacity == 0 {
            return;
        }
        self.active.fetch_sub(capacity, Ordering::Relaxed);
        let limit = self.cache_limit.load(Ordering::Relaxed);
        if self.cached.load(Ordering::Relaxed) + capacity <= limit {
            self.cached.fetch_add(capacity, Ordering::Relaxed);
            self.lock().entry(capacity).or_default().push(SendPtr(ptr));
        } else {
            free(ptr, capacity);
        }
    }

    fn clear_cache(&self) {
        let drained = std::mem::take(&mut *self.lock());
        for (capacity, ptrs) in drained {
            for p in ptrs {
                self.cached.fetch_sub(capacity, Ordering::Relaxed);
                free(p.0, capacity);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Vec<SendPtr>>> {
        // A panic while holding this lock cannot leave the map inconsistent: recover it.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn free(ptr: NonNull<u8>, capacity: usize) {
    // SAFETY: ptr came from `alloc` with this exact layout.
    unsafe {
        dealloc(
            ptr.as_ptr(),
            Layout::from_size_align_unchecked(capacity, ALIGN),
        )
    }
}

/// Memory statistics and limits of the host allocator (MLX's `get_active_memory` & co).
pub mod memory {
    use super::*;

    /// Bytes held by live buffers.
    pub fn active_memory() -> usize {
        ALLOCATOR.active.load(Ordering::Relaxed)
    }
    /// The highest `active_memory` since start or the last `reset_peak_memory`.
    pub fn peak_memory() -> usize {
        ALLOCATOR.peak.load(Ordering::Relaxed)
    }
    pub fn reset_peak_memory() {
        ALLOCATOR
            .peak
            .store(ALLOCATOR.active.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    /// Bytes held in the cache of freed buffers.
    pub fn cache_memory() -> usize {
        ALLOCATOR.cached.load(Ordering::Relaxed)
    }
    /// Frees every cached buffer.
    pub fn clear_cache() {
        ALLOCATOR.clear_cache()
    }
    /// Sets the most bytes live buffers may hold; an allocation past it frees the cache and
    /// fails with `Error::OutOfMemory`. Returns the previous limit.
    pub fn set_memory_limit(bytes: usize) -> usize {
        ALLOCATOR.memory_limit.swap(bytes, Ordering::Relaxed)
    }
    /// Sets the most bytes the cache may keep (0 disables caching). Returns the previous limit.
    pub fn set_cache_limit(bytes: usize) -> usize {
        let old = ALLOCATOR.cache_limit.swap(bytes, Ordering::Relaxed);
        if cache_memory() > bytes {
            ALLOCATOR.clear_cache();
        }
        old
    }
}
