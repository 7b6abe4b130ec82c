//! Memory: buffers with residency, the size-bucketed host cache they come from, and memory
//! statistics.
//!
//! A [`Buffer`] is one logical allocation that may have a host copy, a device copy, or both.
//! Arrays are immutable once evaluated, so any copy that exists is current: a device result
//! read on the host is copied once into a host mirror that never goes stale, and a host array
//! fed to a GPU op is uploaded once. Only an in-place write (donation, which needs `&mut
//! Buffer`, so nobody else can see it) drops the other copy. Core never names a backend: the
//! device copy is a [`DeviceStorage`] trait object the backend provides, and core counts every
//! move (see [`memory::bytes_to_device`]) and warns once when one buffer ping-pongs.
//!
//! Freed host memory goes back to a cache keyed by its rounded size, so the small arrays of a
//! training loop are recycled instead of hitting `malloc` each step. Statistics (active, peak,
//! cache) and limits (memory, cache) follow MLX's `mx.metal`/`mx.cuda` memory functions.

use crate::{Device, Dtype, Element, Error, Result};
use std::alloc::{Layout, alloc, dealloc};
use std::any::Any;
use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Alignment of every host allocation: a cache line, enough for any SIMD load.
pub const ALIGN: usize = 64;

/// A buffer's copy in a device's memory, provided by that device's backend.
///
/// Core only asks it to copy itself back to the host; the backend reaches its own type (and the
/// device pointer inside) through [`DeviceStorage::as_any`].
pub trait DeviceStorage: Send + Sync + 'static {
    /// The device the memory is on.
    fn device(&self) -> Device;
    /// Size in bytes.
    fn size(&self) -> usize;
    /// Copies the whole contents into `dst` (of `size()` bytes), after all work queued on the
    /// memory has finished.
    fn copy_to_host(&self, dst: &mut [u8]) -> Result<()>;
    /// The backend's own type, for downcasting.
    fn as_any(&self) -> &dyn Any;
    /// The backend's own type, mutably (for in-place kernels).
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// One logical allocation of `size` bytes with a host copy, a device copy, or both.
pub struct Buffer {
    size: usize,
    host: OnceLock<HostMem>,
    device: OnceLock<Box<dyn DeviceStorage>>,
    /// Serialises the filling of a missing copy, so two readers move the bytes once.
    fill: Mutex<()>,
    /// Moves of this buffer's bytes between host and device so far.
    moves: AtomicU32,
    warned: AtomicBool,
    /// The primitive that made the buffer (the first backend to name one wins: views share
    /// their source's buffer and keep its maker).
    origin: OnceLock<&'static str>,
}

/// Where a buffer's bytes currently are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Residency {
    /// A host copy exists.
    pub host: bool,
    /// The device holding a device copy, if any.
    pub device: Option<Device>,
}

/// Host memory from the cache: `capacity` bytes (the rounded size) at `ptr`.
struct HostMem {
    ptr: NonNull<u8>,
    capacity: usize,
}

// SAFETY: a HostMem owns its allocation; shared access only reads it, and writes go through
// `&mut Buffer` (kernels get that only for buffers nobody else holds).
unsafe impl Send for HostMem {}
unsafe impl Sync for HostMem {}

impl HostMem {
    fn new(size: usize) -> Result<HostMem> {
        let capacity = bucket(size);
        Ok(HostMem {
            ptr: ALLOCATOR.take(capacity)?,
            capacity,
        })
    }
}

impl Drop for HostMem {
    fn drop(&mut self) {
        ALLOCATOR.give_back(self.ptr, self.capacity);
    }
}

impl Buffer {
    fn with(size: usize, host: Option<HostMem>, device: Option<Box<dyn DeviceStorage>>) -> Buffer {
        let b = Buffer {
            size,
            host: OnceLock::new(),
            device: OnceLock::new(),
            fill: Mutex::new(()),
            moves: AtomicU32::new(0),
            warned: AtomicBool::new(false),
            origin: OnceLock::new(),
        };
        if let Some(h) = host {
            let _ = b.host.set(h);
        }
        if let Some(d) = device {
            let _ = b.device.set(d);
        }
        b
    }

    /// A zero-initialised host buffer of `size` bytes.
    pub fn zeroed(size: usize) -> Result<Buffer> {
        let mut b = Buffer::uninit(size)?;
        b.bytes_mut().fill(0);
        Ok(b)
    }

    /// A host buffer of `size` bytes whose contents are unspecified (but initialised memory: a
    /// recycled buffer or fresh zeroed pages), for kernels that write every element.
    pub fn uninit(size: usize) -> Result<Buffer> {
        Ok(Buffer::with(size, Some(HostMem::new(size)?), None))
    }

    /// A host buffer holding a copy of `data`.
    pub fn from_slice<T: Element>(data: &[T]) -> Result<Buffer> {
        let size = std::mem::size_of_val(data);
        let h = HostMem::new(size)?;
        // SAFETY: h has room for `size` bytes, and T is plain data.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr() as *const u8, h.ptr.as_ptr(), size) };
        Ok(Buffer::with(size, Some(h), None))
    }

    /// A buffer whose only copy is on a device (a GPU kernel's output).
    pub fn from_device(storage: Box<dyn DeviceStorage>) -> Buffer {
        Buffer::with(storage.size(), None, Some(storage))
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Number of elements of `dtype` it holds.
    pub fn len_of(&self, dtype: Dtype) -> usize {
        self.size / dtype.size()
    }

    /// Where the bytes currently are.
    pub fn residency(&self) -> Residency {
        Residency {
            host: self.host.get().is_some(),
            device: self.device.get().map(|d| d.device()),
        }
    }

    /// The device copy, if there is one.
    pub fn device_storage(&self) -> Option<&dyn DeviceStorage> {
        self.device.get().map(|d| &**d)
    }

    /// The device copy for an in-place write: the host copy is dropped, since it would go
    /// stale. `None` when there is no device copy (upload first with [`Buffer::ensure_device`]).
    pub fn device_storage_mut(&mut self) -> Option<&mut dyn DeviceStorage> {
        self.device.get()?;
        self.host.take();
        self.device.get_mut().map(|d| &mut **d)
    }

    /// The device copy on `device`, uploading the host copy with `upload` when there is none.
    /// The upload is counted in [`memory::bytes_to_device`].
    pub fn ensure_device(
        &self,
        device: Device,
        upload: impl FnOnce(&[u8]) -> Result<Box<dyn DeviceStorage>>,
    ) -> Result<&dyn DeviceStorage> {
        if let Some(d) = self.device.get() {
            return self.check_device(&**d, device);
        }
        let _guard = lock(&self.fill);
        if let Some(d) = self.device.get() {
            return self.check_device(&**d, device);
        }
        let host = self.host_mem()?;
        // SAFETY: the host copy holds `size` initialised bytes.
        let bytes = unsafe { std::slice::from_raw_parts(host.ptr.as_ptr(), self.size) };
        let storage = upload(bytes)?;
        if storage.size() != self.size || storage.device() != device {
            return Err(Error::Device(format!(
                "upload to {device}: the backend returned {} bytes on {}, not {} bytes",
                storage.size(),
                storage.device(),
                self.size
            )));
        }
        let _ = self.device.set(storage);
        TO_DEVICE.fetch_add(self.size as u64, Ordering::Relaxed);
        self.note_move();
        Ok(&**self
            .device
            .get()
            .expect("set just above, under the fill lock"))
    }

    fn check_device<'a>(
        &self,
        d: &'a dyn DeviceStorage,
        device: Device,
    ) -> Result<&'a dyn DeviceStorage> {
        if d.device() == device {
            Ok(d)
        } else {
            Err(Error::Device(format!(
                "a buffer of {} bytes made by {} lives on {}, needed on {device}: moves between \
                 two devices are not supported yet",
                self.size,
                self.origin().unwrap_or("an unknown op"),
                d.device()
            )))
        }
    }

    /// Makes sure a host copy exists, copying the device copy back (once) when there is none.
    /// The copy is counted in [`memory::bytes_to_host`]. Reads of a device-resident buffer
    /// call this first so a device failure is an `Err`, not a panic in [`Buffer::as_slice`].
    pub fn ensure_host(&self) -> Result<()> {
        self.host_mem().map(|_| ())
    }

    /// The host bytes, copied from the device first if needed.
    pub fn host_bytes(&self) -> Result<&[u8]> {
        let h = self.host_mem()?;
        // SAFETY: the host copy holds `size` initialised bytes.
        Ok(unsafe { std::slice::from_raw_parts(h.ptr.as_ptr(), self.size) })
    }

    fn host_mem(&self) -> Result<&HostMem> {
        if let Some(h) = self.host.get() {
            return Ok(h);
        }
        let _guard = lock(&self.fill);
        if let Some(h) = self.host.get() {
            return Ok(h);
        }
        let Some(d) = self.device.get() else {
            return Err(Error::Device(
                "buffer: neither a host nor a device copy exists".into(),
            ));
        };
        let h = HostMem::new(self.size)?;
        // SAFETY: h has room for `size` bytes, and nobody else sees it yet.
        let dst = unsafe { std::slice::from_raw_parts_mut(h.ptr.as_ptr(), self.size) };
        d.copy_to_host(dst)?;
        let _ = self.host.set(h);
        TO_HOST.fetch_add(self.size as u64, Ordering::Relaxed);
        self.note_move();
        Ok(self
            .host
            .get()
            .expect("set just above, under the fill lock"))
    }

    /// Counts a move and warns (once per buffer) when the bytes have gone back and forth more
    /// than twice: the sync stall a program hits when it alternates devices on one value.
    fn note_move(&self) {
        let n = self.moves.fetch_add(1, Ordering::Relaxed) + 1;
        if n > 2 && !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!(
                "umx: warning: a buffer of {} bytes made by `{}` has moved between host and \
                 device {n} times; keep the ops that use it on one device to avoid the copies",
                self.size,
                self.origin().unwrap_or("an unknown op"),
            );
        }
    }

    /// Records the primitive that made the buffer (the first call wins), for warnings.
    pub fn set_origin(&self, name: &'static str) {
        let _ = self.origin.set(name);
    }

    /// The primitive that made the buffer, when a backend recorded it.
    pub fn origin(&self) -> Option<&'static str> {
        self.origin.get().copied()
    }

    /// How many times the bytes have moved between host and device.
    pub fn moves(&self) -> u32 {
        self.moves.load(Ordering::Relaxed)
    }

    fn host_or_panic(&self) -> &HostMem {
        self.host_mem().unwrap_or_else(|e| {
            panic!("umx: copying a device buffer to the host failed: {e} (call ensure_host first to get this as an Err)")
        })
    }

    /// The host bytes (copied from the device once if needed).
    ///
    /// # Panics
    /// When the copy from the device fails; backends call [`Buffer::ensure_host`] on their
    /// inputs first, so that surfaces as an `Err` instead.
    pub fn bytes(&self) -> &[u8] {
        let h = self.host_or_panic();
        // SAFETY: the host copy holds `size` initialised bytes.
        unsafe { std::slice::from_raw_parts(h.ptr.as_ptr(), self.size) }
    }

    /// The host bytes for an in-place write; the device copy is dropped (it would go stale).
    ///
    /// # Panics
    /// As [`Buffer::bytes`].
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let ptr = self.host_or_panic().ptr;
        self.device.take();
        // SAFETY: as above, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), self.size) }
    }

    /// The buffer as elements of `T` on the host (copied from the device once if needed). The
    /// caller names the dtype the buffer was written with.
    ///
    /// # Panics
    /// As [`Buffer::bytes`].
    pub fn as_slice<T: Element>(&self) -> &[T] {
        let n = self.size / std::mem::size_of::<T>();
        let h = self.host_or_panic();
        // SAFETY: ALIGN suits every element type, the bytes are initialised, and buffers of a
        // dtype are only ever written with values of it (bool stays 0 or 1).
        unsafe { std::slice::from_raw_parts(h.ptr.as_ptr() as *const T, n) }
    }

    /// The buffer as elements of `T` for an in-place write; the device copy is dropped.
    ///
    /// # Panics
    /// As [`Buffer::bytes`].
    pub fn as_mut_slice<T: Element>(&mut self) -> &mut [T] {
        let n = self.size / std::mem::size_of::<T>();
        let ptr = self.host_or_panic().ptr;
        self.device.take();
        // SAFETY: as above, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr() as *mut T, n) }
    }

    /// Raw pointer to the first host byte (for backends that hand it to other libraries).
    ///
    /// # Panics
    /// As [`Buffer::bytes`].
    pub fn as_ptr(&self) -> *const u8 {
        self.host_or_panic().ptr.as_ptr()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded sections leave no state half-made: a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

static TO_DEVICE: AtomicU64 = AtomicU64::new(0);
static TO_HOST: AtomicU64 = AtomicU64::new(0);

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

/// Memory statistics and limits of the host allocator (MLX's `get_active_memory` & co), and
/// the bytes moved between host and devices. A GPU backend keeps its own device-memory
/// statistics (`umx::cuda::memory`).
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

    /// Bytes copied from host to device memory so far (uploads of host arrays that a GPU op
    /// reads).
    pub fn bytes_to_device() -> u64 {
        TO_DEVICE.load(Ordering::Relaxed)
    }
    /// Bytes copied from device to host memory so far (host reads of GPU results, and inputs of
    /// ops that run on the CPU).
    pub fn bytes_to_host() -> u64 {
        TO_HOST.load(Ordering::Relaxed)
    }
    /// Sets both transfer counters back to zero.
    pub fn reset_transfer_counters() {
        TO_DEVICE.store(0, Ordering::Relaxed);
        TO_HOST.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pretend device: bytes in a Vec.
    struct FakeDevice(Vec<u8>);

    impl DeviceStorage for FakeDevice {
        fn device(&self) -> Device {
            Device::Gpu(0)
        }
        fn size(&self) -> usize {
            self.0.len()
        }
        fn copy_to_host(&self, dst: &mut [u8]) -> Result<()> {
            dst.copy_from_slice(&self.0);
            Ok(())
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
    }

    fn upload(bytes: &[u8]) -> Result<Box<dyn DeviceStorage>> {
        Ok(Box::new(FakeDevice(bytes.to_vec())))
    }

    #[test]
    fn a_device_buffer_is_mirrored_on_the_host_once() {
        let b = Buffer::from_device(Box::new(FakeDevice(vec![1, 2, 3, 4])));
        assert_eq!(
            b.residency(),
            Residency {
                host: false,
                device: Some(Device::Gpu(0))
            }
        );
        assert_eq!(b.bytes(), &[1, 2, 3, 4]);
        assert_eq!(b.bytes(), &[1, 2, 3, 4]);
        assert_eq!(b.moves(), 1);
        assert!(b.residency().host);
    }

    #[test]
    fn a_host_buffer_is_uploaded_once_and_donation_drops_the_other_copy() {
        let mut b = Buffer::from_slice(&[5u8, 6, 7]).unwrap();
        let d = b.ensure_device(Device::Gpu(0), upload).unwrap();
        assert_eq!(d.size(), 3);
        b.ensure_device(Device::Gpu(0), |_| panic!("uploaded twice"))
            .unwrap();
        assert_eq!(b.moves(), 1);
        // An in-place host write makes the device copy stale: it goes.
        b.as_mut_slice::<u8>()[0] = 9;
        assert_eq!(b.residency().device, None);
        // An in-place device write drops the host copy.
        b.ensure_device(Device::Gpu(0), upload).unwrap();
        let dev = b.device_storage_mut().unwrap();
        dev.as_any_mut().downcast_mut::<FakeDevice>().unwrap().0[1] = 8;
        assert!(!b.residency().host);
        assert_eq!(b.bytes(), &[9, 8, 7]);
        assert_eq!(b.moves(), 3, "up, up again after the host write, down");
    }

    #[test]
    fn a_buffer_on_another_device_is_an_error_naming_its_maker() {
        let b = Buffer::from_device(Box::new(FakeDevice(vec![0; 8])));
        b.set_origin("matmul");
        let err = b.ensure_device(Device::Gpu(1), upload).err().unwrap();
        assert!(err.to_string().contains("matmul"), "{err}");
    }
}
