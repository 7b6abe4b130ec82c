//! [`CudaGraph`]: one step of a computation captured once as a CUDA graph and replayed, so a
//! step of hundreds of small kernels (a decoding step of a language model) costs one launch
//! of host time instead of hundreds.
//!
//! The step maps a *state* (a list of arrays) to its next value: the same number of arrays,
//! of the same shapes and dtypes. The graph owns the state's device buffers; each replay reads
//! them and writes the new state back into them, so nothing moves between host and device and
//! no buffer address changes. [`CudaGraph::read`] takes a copy of one state array out;
//! [`CudaGraph::read_later`] queues one for the host, to be waited for without waiting for the
//! steps queued after it.
//!
//! How a capture works: the state is copied into fresh device buffers and every evaluated
//! array the step reads (weights, constants) is put on the device and kept alive by the graph;
//! then the stream is captured while the step's graph is evaluated on this thread, followed by
//! a copy of each new state array into its state buffer (none where the step updated the state
//! buffer in place). While capturing, the memory pool keeps the blocks freed by the step for
//! the graph (see `pool.rs`), and other threads' GPU work waits, so nothing else lands in the
//! graph. Work a capture cannot hold (an op with no GPU kernel, a copy to or from the host)
//! makes [`CudaGraph::capture`] return an error, and the program goes on as before.

use crate::gpu::{driver_err, gpu};
use crate::pool::POOL;
use crate::storage::{fresh, input_ptr};
use cudarc::driver::{result, sys};
use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use umx_core::{Array, ArrayData, Buffer, Dtype, Error, Result};

/// Held for reading by every thread's GPU work, for writing by a capture.
static CAPTURE_LOCK: RwLock<()> = RwLock::new(());
/// The id of the thread capturing, 0 when none.
static CAPTURER: AtomicU64 = AtomicU64::new(0);
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THREAD: u64 = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
    /// How deep this thread is in [`stream_guard`]s: only the outermost takes the lock.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

fn this_thread() -> u64 {
    THREAD.with(|t| *t)
}

/// Whether this thread is capturing a graph now.
pub(crate) fn capturing() -> bool {
    let c = CAPTURER.load(Ordering::Acquire);
    c != 0 && c == this_thread()
}

/// Held while a thread queues work on the stream: a capture on another thread waits for it,
/// and it waits for a capture on another thread to end.
pub(crate) struct StreamGuard {
    _lock: Option<RwLockReadGuard<'static, ()>>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

pub(crate) fn stream_guard() -> StreamGuard {
    let outer = DEPTH.with(|d| {
        let v = d.get();
        d.set(v + 1);
        v == 0
    });
    let lock =
        (outer && !capturing()).then(|| CAPTURE_LOCK.read().unwrap_or_else(|e| e.into_inner()));
    StreamGuard { _lock: lock }
}

fn nbytes(d: &ArrayData) -> usize {
    d.size() * d.dtype.size()
}

fn nbytes_of(shape: &[usize], dtype: Dtype) -> usize {
    shape.iter().product::<usize>() * dtype.size()
}

/// The error for work a capture cannot hold.
pub(crate) fn not_capturable(what: &str) -> Error {
    Error::Device(format!(
        "CudaGraph::capture: {what} cannot be captured in a CUDA graph (only GPU kernels can); \
         evaluate it before capturing, or run this step without a graph"
    ))
}

/// One state array: its buffer (owned by the graph) and how to read it.
struct Slot {
    ptr: sys::CUdeviceptr,
    shape: Vec<usize>,
    dtype: Dtype,
}

/// A captured step, replayed on the GPU (see the module documentation).
///
/// ```no_run
/// use umx_core::{Array, ops};
/// use umx_cuda::CudaGraph;
/// // A counter and a running sum: (n, s) -> (n + 1, s + n).
/// let state = vec![Array::scalar(0i32), Array::scalar(0i32)];
/// let mut g = CudaGraph::capture(
///     |s| Ok(vec![ops::add(&s[0], 1)?, ops::add(&s[1], &s[0])?]),
///     state,
/// )?;
/// for _ in 0..9 {
///     g.replay()?;
/// }
/// assert_eq!(g.read(1)?.item::<i32>()?, 45);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub struct CudaGraph {
    graph: sys::CUgraph,
    exec: sys::CUgraphExec,
    slots: Vec<Slot>,
    /// The step's outputs (their buffers are written by every replay).
    _outputs: Vec<ArrayData>,
    /// The evaluated arrays the step reads.
    _leaves: Vec<Array>,
    /// Blocks the captured work freed, and the state buffers no array holds any more.
    blocks: Vec<(sys::CUdeviceptr, usize)>,
    nodes: usize,
    /// Each slot's page-locked memory for [`CudaGraph::read_later`] (made on first use).
    staging: Mutex<Vec<Vec<Arc<Staging>>>>,
}

// SAFETY: the graph handles are process-wide driver objects; all use goes through the stream,
// ordered by `stream_guard`.
unsafe impl Send for CudaGraph {}
unsafe impl Sync for CudaGraph {}

impl CudaGraph {
    /// Captures `step` applied to `state`, then runs it once: on return the state holds
    /// `step(state)`. `step` must return as many arrays as `state` has, each with the shape
    /// and dtype of its state array, and must run entirely on the GPU.
    pub fn capture(
        step: impl FnOnce(&[Array]) -> Result<Vec<Array>>,
        state: Vec<Array>,
    ) -> Result<CudaGraph> {
        let g = gpu()?;
        // A graph lives on the default stream.
        let _on = crate::gpu::on_stream(0)?;
        if DEPTH.with(|d| d.get()) > 0 {
            return Err(Error::Device(
                "CudaGraph::capture: called from inside GPU work (a capture waits for it)".into(),
            ));
        }
        // Private, contiguous device copies of the state: the graph owns these buffers.
        umx_core::eval(&state)?;
        let mut copies = Vec::with_capacity(state.len());
        let mut slots = Vec::with_capacity(state.len());
        {
            let _guard = stream_guard();
            for a in &state {
                let data = a.data()?;
                let (c, ptr) = fresh(&data.shape, data.dtype)?;
                if data.size() > 0 {
                    let src = match crate::kernels::contiguous(&data, data.dtype)? {
                        Some(c) => c,
                        None => {
                            return Err(Error::Device(format!(
                                "CudaGraph::capture: a state array of {} cannot live on the GPU",
                                data.dtype
                            )));
                        }
                    };
                    // SAFETY: both blocks hold `nbytes`; ordered on the stream.
                    unsafe {
                        result::memcpy_dtod_async(ptr, input_ptr(&src)?, nbytes(&c), g.stream())
                    }
                    .map_err(|e| driver_err("copying the graph's state", e))?;
                }
                slots.push(Slot {
                    ptr,
                    shape: data.shape.clone(),
                    dtype: data.dtype,
                });
                copies.push(Array::from_data(c));
            }
        }
        drop(state);
        let outs = step(&copies)?;
        if outs.len() != slots.len() {
            return Err(Error::Invalid(format!(
                "CudaGraph::capture: the step returned {} arrays for a state of {}",
                outs.len(),
                slots.len()
            )));
        }
        for (i, (o, s)) in outs.iter().zip(&slots).enumerate() {
            o.check()?;
            if o.shape() != &s.shape[..] || o.dtype() != s.dtype {
                return Err(Error::Invalid(format!(
                    "CudaGraph::capture: the step turned state {i} of {} {:?} into {} {:?}",
                    s.dtype,
                    s.shape,
                    o.dtype(),
                    o.shape()
                )));
            }
        }
        let leaves = device_leaves(&outs, &copies)?;
        crate::kernels::indexing::ensure_error_record()?;

        // Nothing else queues work from here until the capture ends.
        let _write = CAPTURE_LOCK.write().unwrap_or_else(|e| e.into_inner());
        // This thread counts as capturing from here, so the synchronization's submission of
        // held-back kernels (`batch.rs`) does not ask for the lock this thread holds.
        CAPTURER.store(this_thread(), Ordering::Release);
        if let Err(e) = g.synchronize() {
            CAPTURER.store(0, Ordering::Release);
            return Err(e);
        }
        POOL.begin_capture(slots.iter().map(|s| s.ptr));
        // The state arrays live on in the step's graph only, so a step may update them in
        // place.
        drop(copies);
        // SAFETY: the live stream; relaxed mode lets this thread allocate while capturing.
        let begun = unsafe {
            result::stream::begin_capture(
                g.stream(),
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED,
            )
        };
        let captured = match begun {
            Ok(()) => {
                let work = capture_body(&outs, &slots);
                // SAFETY: ends the capture begun above (also after an error in between).
                let ended = unsafe { result::stream::end_capture(g.stream()) };
                match (work, ended) {
                    (Ok(outputs), Ok(graph)) => Ok((outputs, graph)),
                    (Err(e), ended) => {
                        if let Ok(graph) = ended {
                            // SAFETY: a graph nobody else has.
                            let _ = unsafe { result::graph::destroy(graph) };
                        }
                        Err(e)
                    }
                    (Ok(_), Err(e)) => Err(driver_err("ending a graph capture", e)),
                }
            }
            Err(e) => Err(driver_err("beginning a graph capture", e)),
        };
        CAPTURER.store(0, Ordering::Release);
        let blocks = POOL.end_capture();
        let (outputs, graph) = match captured {
            Ok(c) => c,
            Err(e) => {
                // Nothing captured ran: the blocks go back as they are.
                for (p, c) in blocks {
                    POOL.give_back(p, c, 1);
                }
                return Err(e);
            }
        };
        drop(outs);
        let nodes = {
            let mut n = 0usize;
            // SAFETY: a live graph; a null node array asks for the count only.
            unsafe { sys::cuGraphGetNodes(graph, std::ptr::null_mut(), &mut n) };
            n
        };
        // SAFETY: a complete graph from the capture above.
        let exec =
            match unsafe { result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0)) } {
                Ok(e) => e,
                Err(e) => {
                    unsafe {
                        let _ = result::graph::destroy(graph);
                    }
                    for (p, c) in blocks {
                        POOL.give_back(p, c, 1);
                    }
                    return Err(driver_err("instantiating a captured graph", e));
                }
            };
        drop(_write);
        let n_slots = slots.len();
        let mut cg = CudaGraph {
            graph,
            exec,
            slots,
            _outputs: outputs,
            _leaves: leaves,
            blocks,
            nodes,
            staging: Mutex::new(vec![Vec::new(); n_slots]),
        };
        cg.replay()?;
        Ok(cg)
    }

    /// Runs the captured step once more (queued: nothing waits for the GPU).
    pub fn replay(&mut self) -> Result<()> {
        let g = gpu()?;
        let _on = crate::gpu::on_stream(0)?;
        let _guard = stream_guard();
        // SAFETY: a live executable graph and stream; every buffer it uses is owned by self
        // or by arrays self keeps.
        unsafe { result::graph::launch(self.exec, g.stream()) }
            .map_err(|e| driver_err("launching a captured graph", e))
    }

    /// A copy of state array `i` after the steps run so far (queued after them).
    pub fn read(&self, i: usize) -> Result<Array> {
        let s = self.slot(i, "read")?;
        let g = gpu()?;
        let _on = crate::gpu::on_stream(0)?;
        let _guard = stream_guard();
        let (data, ptr) = fresh(&s.shape, s.dtype)?;
        let n = nbytes(&data);
        if n > 0 {
            // SAFETY: both hold n bytes; ordered after the replays on the stream.
            unsafe { result::memcpy_dtod_async(ptr, s.ptr, n, g.stream()) }
                .map_err(|e| driver_err("reading a graph's state", e))?;
        }
        Ok(Array::from_data(data))
    }

    /// Queues a copy of state array `i` to the host after the steps queued so far, and
    /// returns at once: [`HostRead::wait`] waits for that copy only, so steps queued after
    /// this call keep the GPU busy while the host reads (a language model's generation queues
    /// the next token's step before it reads this token). The copy lands in page-locked host
    /// memory the graph keeps for the slot and reuses once the read is done with (freeing
    /// such memory waits for the whole device).
    pub fn read_later(&self, i: usize) -> Result<HostRead> {
        let s = self.slot(i, "read_later")?;
        let g = gpu()?;
        let _on = crate::gpu::on_stream(0)?;
        let _guard = stream_guard();
        if capturing() {
            return Err(not_capturable("a copy to the host"));
        }
        let bytes = nbytes_of(&s.shape, s.dtype);
        let staging = {
            let mut kept = self.staging.lock().unwrap_or_else(|e| e.into_inner());
            // One no read holds any more (only the graph does), else a new one.
            match kept[i].iter().find(|st| Arc::strong_count(st) == 1) {
                Some(st) => st.clone(),
                None => {
                    let st = Arc::new(Staging::new(bytes)?);
                    kept[i].push(st.clone());
                    st
                }
            }
        };
        // SAFETY: `pinned` holds `bytes`; the copy is ordered after the replays queued so
        // far, and the staging (freed only after its event) outlives it.
        unsafe {
            if bytes > 0 {
                let dst = std::slice::from_raw_parts_mut(staging.pinned, bytes);
                result::memcpy_dtoh_async(dst, s.ptr, g.stream())
                    .map_err(|e| driver_err("reading a graph's state", e))?;
            }
            result::event::record(staging.event, g.stream())
                .map_err(|e| driver_err("recording an event", e))?;
        }
        Ok(HostRead {
            staging,
            shape: s.shape.clone(),
            dtype: s.dtype,
        })
    }

    /// State array `i`'s slot, or an error naming `what` asked for it.
    fn slot(&self, i: usize, what: &str) -> Result<&Slot> {
        self.slots.get(i).ok_or_else(|| {
            Error::Invalid(format!(
                "CudaGraph::{what}: state {i} of a state of {}",
                self.slots.len()
            ))
        })
    }

    /// How many arrays the state has.
    pub fn state_len(&self) -> usize {
        self.slots.len()
    }

    /// How many nodes (kernels and copies) the captured graph has.
    pub fn nodes(&self) -> usize {
        self.nodes
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: handles made by capture; queued replays keep running (the driver defers
        // the release), and the blocks go back to the pool, which hands them out only to work
        // queued after those replays.
        unsafe {
            let _ = result::graph::exec_destroy(self.exec);
            let _ = result::graph::destroy(self.graph);
        }
        for (p, c) in std::mem::take(&mut self.blocks) {
            POOL.give_back(p, c, 1);
        }
    }
}

impl std::fmt::Debug for CudaGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaGraph")
            .field("state", &self.slots.len())
            .field("nodes", &self.nodes)
            .finish()
    }
}

/// Page-locked host memory a state array is copied into, and the event recorded after the
/// copy ([`CudaGraph::read_later`]).
struct Staging {
    pinned: *mut u8,
    bytes: usize,
    event: sys::CUevent,
}

// SAFETY: the page-locked block and the event are process-wide driver objects; a staging is
// written by one queued copy at a time (`read_later` hands out only those no read holds).
unsafe impl Send for Staging {}
unsafe impl Sync for Staging {}

impl Staging {
    fn new(bytes: usize) -> Result<Staging> {
        let event = result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)
            .map_err(|e| driver_err("creating an event", e))?;
        // SAFETY: page-locked host memory of at least one byte, freed by Drop.
        let pinned = match unsafe { result::malloc_host(bytes.max(1), 0) } {
            Ok(p) => p.cast(),
            Err(e) => {
                // SAFETY: the event made above, never recorded.
                let _ = unsafe { result::event::destroy(event) };
                return Err(driver_err("allocating page-locked host memory", e));
            }
        };
        Ok(Staging {
            pinned,
            bytes,
            event,
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // The context, bound on this thread (a graph may be dropped on another than its own).
        let _ = gpu();
        // SAFETY: once the last copy's event has completed nothing writes the block.
        unsafe {
            let _ = result::event::synchronize(self.event);
            let _ = result::event::destroy(self.event);
            let _ = result::free_host(self.pinned.cast());
        }
    }
}

/// A state array on its way to the host ([`CudaGraph::read_later`]).
pub struct HostRead {
    staging: Arc<Staging>,
    shape: Vec<usize>,
    dtype: Dtype,
}

impl HostRead {
    /// Waits for the copy (not for work queued after it) and returns the array, on the host.
    pub fn wait(self) -> Result<Array> {
        // The context, bound on this thread (a read may be waited for on another).
        gpu()?;
        let st = &self.staging;
        // SAFETY: a live event recorded after the copy.
        unsafe { result::event::synchronize(st.event) }
            .map_err(|e| driver_err("waiting for a graph's state", e))?;
        let mut buffer = Buffer::uninit(st.bytes)?;
        // SAFETY: the copy into `pinned` has finished; it holds `bytes` bytes.
        buffer
            .bytes_mut()
            .copy_from_slice(unsafe { std::slice::from_raw_parts(st.pinned, st.bytes) });
        Ok(Array::from_data(ArrayData::contiguous(
            buffer,
            &self.shape,
            self.dtype,
        )))
    }
}

impl std::fmt::Debug for HostRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostRead")
            .field("shape", &self.shape)
            .field("dtype", &self.dtype)
            .finish()
    }
}

/// Evaluates the step's graph while the stream is captured, then copies each new state array
/// into its state buffer (unless the step wrote it in place). Returns the outputs' data,
/// which the graph keeps.
fn capture_body(outs: &[Array], slots: &[Slot]) -> Result<Vec<ArrayData>> {
    let g = gpu()?;
    umx_core::eval(outs)?;
    let mut kept = Vec::with_capacity(outs.len());
    for (o, s) in outs.iter().zip(slots) {
        let mut data = o.data()?;
        if data.size() > 0 {
            if !(data.is_row_contiguous() && data.offset == 0) {
                data = crate::kernels::contiguous(&data, data.dtype)?
                    .ok_or_else(|| not_capturable("a copy of this dtype"))?;
            }
            let src = input_ptr(&data)?;
            if src != s.ptr {
                // SAFETY: both hold nbytes; captured into the graph after the step's kernels.
                unsafe { result::memcpy_dtod_async(s.ptr, src, nbytes(&data), g.stream()) }
                    .map_err(|e| driver_err("capturing a state copy", e))?;
            }
        }
        kept.push(data);
    }
    Ok(kept)
}

/// The evaluated arrays the pending graph of `outs` reads (besides the state), each put on
/// the device now (a capture cannot copy from the host).
fn device_leaves(outs: &[Array], state: &[Array]) -> Result<Vec<Array>> {
    let mut leaves = Vec::new();
    let mut seen: HashSet<usize> = HashSet::new();
    let mut stack: Vec<Array> = outs.to_vec();
    let _guard = stream_guard();
    while let Some(a) = stack.pop() {
        if !seen.insert(a.id()) {
            continue;
        }
        if a.is_evaluated() {
            if state.iter().any(|s| s.same(&a)) {
                continue;
            }
            let data = a.data()?;
            if data.size() > 0 {
                crate::storage::device_ptr(&data.buffer)?;
            }
            leaves.push(a);
        } else {
            stack.extend(a.inputs());
        }
    }
    Ok(leaves)
}
