//! Launch batching: small kernels are held back and submitted together, as one CUDA graph
//! once the same batch has run before.
//!
//! A kernel launch costs the host 2.5-4 us in the driver ([`launch_cost`](crate::launch_cost)),
//! more than a small kernel runs on the card, so a program of many small ops is bound by its
//! launches. [`launch`](crate::compile::launch) therefore queues a kernel whose grid is
//! smaller than the card (fewer blocks than SMs) on its stream's queue instead of launching
//! it. A queue is submitted, in order, when
//! - it holds [`MAX_BATCH`] kernels, or a large kernel is launched on its stream;
//! - anything else is about to use the stream: every copy, library call, event, wait and
//!   synchronization reaches the stream through [`Gpu::stream`](crate::gpu::Gpu::stream) or
//!   [`Gpu::stream_of`](crate::gpu::Gpu::stream_of), which submit the queue first, so the
//!   stream runs everything in the program's order;
//! - an `eval` ends ([`flush_all`], the backend's `flush`), so the card never waits for a
//!   later call.
//!
//! A batch is known by its kernels, launch shapes and argument bytes (device addresses
//! included): what it computes, exactly. The first time a batch is seen its kernels are
//! launched one by one; the second time it is built into a CUDA graph (one kernel node after
//! another) and from then on that graph is launched: one driver call, and on the card about
//! a microsecond a kernel. Programs that repeat (a training loop, the same eager computation
//! on the same buffers, which the pool hands out again in the same order) replay their
//! graphs; batches that never repeat cost what they cost before, plus a hash.
//!
//! Library calls through handles bound to the stream once (cuSOLVER and cuBLAS in
//! `linalg.rs`) queue without asking for the stream: such code holds a [`direct`] section,
//! in which its own launches go straight to the stream and other threads' launches wait, so
//! no kernel held back can land after a library call on memory the pool handed on.
//!
//! The ordering rule everything rests on: a stream's pending bit is cleared only once its
//! kernels have reached the stream, so a thread that finds it clear may queue work behind
//! them (an earlier version cleared it first, and a thread reading back its result while
//! another thread was still submitting the batch that computed it read stale memory). A
//! capture ([`CudaGraph`](crate::CudaGraph)) counts as capturing before it synchronizes, so
//! the submission of what was held back does not wait for the capture lock it holds.
//!
//! The kernel launched right after a batch's graph goes without programmatic dependent
//! launch ([`after_graph`]): whether a kernel may overlap a graph before it that way is not
//! something this code relies on (the suite's failures that first suggested it came from the
//! pending-bit race above; the rule costs one launch attribute a batch and stays).
//! Keying batches by their kernels alone and updating the nodes whose arguments differ
//! (`cuGraphExecKernelNodeSetParams`) was tried before that race was found and failed the
//! GPU suite; it has not been retried.
//!
//! Nothing is held back while a [`CudaGraph`](crate::CudaGraph) is being captured, with
//! profiling on, or with `UMX_LAUNCH_BATCH=0` (or [`set_launch_batching`]`(false)`).

use crate::gpu::{Gpu, MAX_STREAMS, driver_err, gpu};
use cudarc::driver::sys;
use foldhash::fast::FixedState;
use std::collections::HashMap;
use std::ffi::c_void;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, OnceLock, RwLock, RwLockWriteGuard};
use umx_core::{Error, Result};

/// Kernels one batch holds at most: a batch is submitted when it has this many.
pub const MAX_BATCH: usize = 256;
/// Batches of fewer kernels are launched one by one (a graph launch costs about as much as
/// a few kernel launches).
const MIN_GRAPH: usize = 4;
/// Graphs kept at most; past this the cache starts over.
const MAX_GRAPHS: usize = 512;
/// Batch identities remembered as seen once; past this the memory starts over.
const MAX_SEEN: usize = 8192;

/// One held-back launch: its arguments are `bytes[at..at + len]` of its queue, each argument
/// at its offset.
struct Item {
    f: sys::CUfunction,
    grid: u32,
    block: u32,
    shared: u32,
    at: usize,
    layout: &'static [(usize, usize)],
}

#[derive(Default)]
struct Queue {
    items: Vec<Item>,
    bytes: Vec<u8>,
}

// SAFETY: function handles are process-wide driver objects.
unsafe impl Send for Queue {}

/// One queue per stream index. A bit of `PENDING` per non-empty queue lets the stream
/// accessors skip the lock when there is nothing to submit.
static QUEUES: LazyLock<Vec<Mutex<Queue>>> =
    LazyLock::new(|| (0..MAX_STREAMS).map(|_| Mutex::default()).collect());
static PENDING: AtomicU64 = AtomicU64::new(0);

/// A batch built into an executable graph.
struct Built {
    /// What the batch is: each kernel's (function, grid, block, shared bytes) and the
    /// argument bytes, all compared before a replay.
    kernels: Vec<(usize, u32, u32, u32)>,
    bytes: Vec<u8>,
    graph: sys::CUgraph,
    exec: sys::CUgraphExec,
}

#[derive(Default)]
struct Cache {
    built: HashMap<u64, Built>,
    seen: HashMap<u64, u32>,
    stats: BatchStats,
}

// SAFETY: graph handles are process-wide driver objects, used under the cache's mutex.
unsafe impl Send for Cache {}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Mutex::default);

/// What launch batching has done since the program started (diagnostics, tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Kernels held back and submitted in batches.
    pub kernels: u64,
    /// Batches launched as a graph built before (replays), and the kernels in them.
    pub replays: u64,
    pub replayed_kernels: u64,
    /// Batches built into a graph (their second sighting), and the host time that took.
    pub built: u64,
    pub build_us: u64,
    /// Batches whose kernels were launched one by one (first sightings, small batches).
    pub direct: u64,
}

/// Launch batching's counters so far.
pub fn batch_stats() -> BatchStats {
    lock(&CACHE).stats
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

static ENABLED: OnceLock<AtomicBool> = OnceLock::new();

fn enabled_flag() -> &'static AtomicBool {
    ENABLED.get_or_init(|| {
        let off = std::env::var("UMX_LAUNCH_BATCH").is_ok_and(|v| v == "0");
        AtomicBool::new(!off)
    })
}

/// Turns launch batching on or off (see the module documentation; on unless the environment
/// sets `UMX_LAUNCH_BATCH=0`). Work already held back is submitted first. Returns the
/// previous setting.
pub fn set_launch_batching(on: bool) -> Result<bool> {
    flush_all()?;
    Ok(enabled_flag().swap(on, Ordering::Relaxed))
}

thread_local! {
    /// How many [`direct`] guards this thread holds.
    static DIRECT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Held for writing by a [`direct`] section, for reading while a launch is held back.
static SECTION: RwLock<()> = RwLock::new(());

/// A [`direct`] section; the outermost holds [`SECTION`] for writing.
pub(crate) struct Direct(#[allow(dead_code)] Option<RwLockWriteGuard<'static, ()>>);

impl Drop for Direct {
    fn drop(&mut self) {
        DIRECT.with(|d| d.set(d.get() - 1));
    }
}

/// Until the guard drops, this thread's launches go straight to the stream and other
/// threads' launches wait: for code that binds a library handle to the stream once
/// (cuSOLVER, cuBLAS) and then mixes its own kernels and allocations with the library's
/// calls, which queue on the stream without asking for it. Everything held back so far is
/// submitted first.
pub(crate) fn direct() -> Result<Direct> {
    let outer = DIRECT.with(|d| {
        let v = d.get();
        d.set(v + 1);
        v == 0
    });
    let guard = Direct(outer.then(|| SECTION.write().unwrap_or_else(|e| e.into_inner())));
    flush_all()?;
    Ok(guard)
}

/// The first error a submission met where no caller could take it (a stream accessor),
/// reported by the next [`flush_all`].
static DEFERRED_ERROR: Mutex<Option<Error>> = Mutex::new(None);

/// Each parameter's (offset, size) in `f`'s argument block, asked of the driver once per
/// function. `None` when the driver cannot say (then `f` is never held back).
fn layout(f: sys::CUfunction, count: usize) -> Option<&'static [(usize, usize)]> {
    type Layouts = HashMap<usize, Option<&'static [(usize, usize)]>, FixedState>;
    static LAYOUTS: LazyLock<Mutex<Layouts>> = LazyLock::new(Mutex::default);
    let mut map = lock(&LAYOUTS);
    let l = *map.entry(f as usize).or_insert_with(|| {
        let mut v = Vec::with_capacity(count);
        for i in 0..count {
            let (mut off, mut size) = (0usize, 0usize);
            // SAFETY: a live function; out-pointers to locals.
            let r = unsafe { sys::cuFuncGetParamInfo(f, i, &mut off, &mut size) };
            if r != sys::CUresult::CUDA_SUCCESS {
                return None;
            }
            v.push((off, size));
        }
        // Leaked once per kernel: kernels live as long as the process (the kernel cache).
        Some(&*Box::leak(v.into_boxed_slice()))
    });
    if l.is_some_and(|l| l.len() != count) {
        return None;
    }
    l
}

/// Holds the launch back when it is small and batching is on; returns whether it did. A
/// large launch first submits what its stream holds (the caller then launches it).
pub(crate) fn defer(
    g: &Gpu,
    f: sys::CUfunction,
    grid: u32,
    block: u32,
    shared: u32,
    args: &mut [*mut c_void],
) -> Result<bool> {
    let index = crate::gpu::current_stream();
    if !enabled_flag().load(Ordering::Relaxed)
        || crate::graph::capturing()
        || crate::profile::enabled()
    {
        return Ok(false);
    }
    if grid >= g.sm_count || DIRECT.with(|d| d.get()) > 0 {
        flush_stream(g, index)?;
        return Ok(false);
    }
    let Some(layout) = layout(f, args.len()) else {
        flush_stream(g, index)?;
        return Ok(false);
    };
    let full = {
        let _section = SECTION.read().unwrap_or_else(|e| e.into_inner());
        let mut q = lock(&QUEUES[index]);
        let at = q.bytes.len().next_multiple_of(16);
        let end = layout.iter().map(|&(o, s)| o + s).max().unwrap_or(0);
        q.bytes.resize(at + end, 0);
        for (&(off, size), &p) in layout.iter().zip(args.iter()) {
            // SAFETY: the caller's argument `i` points at a value of the kernel's parameter
            // `i`, `size` bytes.
            let src = unsafe { std::slice::from_raw_parts(p as *const u8, size) };
            q.bytes[at + off..at + off + size].copy_from_slice(src);
        }
        q.items.push(Item {
            f,
            grid,
            block,
            shared,
            at,
            layout,
        });
        PENDING.fetch_or(1 << index, Ordering::AcqRel);
        q.items.len() >= MAX_BATCH
    };
    if full {
        flush_stream(g, index)?;
    }
    Ok(true)
}

/// Submits what stream `index` holds, if anything, keeping an error for [`flush_all`]. For
/// the stream accessors, which cannot return one.
pub(crate) fn flush_quiet(g: &Gpu, index: usize) {
    if PENDING.load(Ordering::Acquire) & (1 << index) == 0 {
        return;
    }
    if let Err(e) = flush_stream(g, index) {
        lock(&DEFERRED_ERROR).get_or_insert(e);
    }
}

/// Submits what every stream holds, and reports an error an earlier submission met.
pub fn flush_all() -> Result<()> {
    let pending = PENDING.load(Ordering::Acquire);
    if pending != 0 {
        let g = gpu()?;
        for index in 0..MAX_STREAMS {
            if pending & (1 << index) != 0 {
                flush_stream(g, index)?;
            }
        }
    }
    match lock(&DEFERRED_ERROR).take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Submits stream `index`'s queue: as a graph built before, as a graph built now (a batch
/// seen once before), or kernel by kernel. The queue stays locked meanwhile, so batches of
/// one stream reach it in order.
fn flush_stream(g: &Gpu, index: usize) -> Result<()> {
    // A capture on another thread must not take these kernels into its graph.
    let _guard = crate::graph::stream_guard();
    let mut q = lock(&QUEUES[index]);
    if q.items.is_empty() {
        return Ok(());
    }
    let stream = g.raw_stream_of(index);
    let r = submit(&q, stream);
    q.items.clear();
    q.bytes.clear();
    // Cleared only now: a thread that finds the bit clear (`flush_quiet`) goes on to queue
    // work behind these kernels, so they must have reached the stream by then.
    PENDING.fetch_and(!(1 << index), Ordering::AcqRel);
    r
}

fn submit(q: &Queue, stream: sys::CUstream) -> Result<()> {
    let n = q.items.len() as u64;
    if q.items.len() < MIN_GRAPH {
        let mut cache = lock(&CACHE);
        cache.stats.kernels += n;
        cache.stats.direct += 1;
        drop(cache);
        return launch_each(q, stream);
    }
    let mut h = FixedState::with_seed(0x756d78).build_hasher();
    for it in &q.items {
        h.write_usize(it.f as usize);
        h.write_u32(it.grid);
        h.write_u32(it.block);
        h.write_u32(it.shared);
    }
    h.write(&q.bytes);
    let key = h.finish();
    let mut cache = lock(&CACHE);
    cache.stats.kernels += n;
    if let Some(b) = cache.built.get(&key)
        && same(b, q)
    {
        let exec = b.exec;
        cache.stats.replays += 1;
        cache.stats.replayed_kernels += n;
        // SAFETY: a live executable graph of exactly this batch's kernels and arguments.
        unsafe { sys::cuGraphLaunch(exec, stream) }
            .result()
            .map_err(|e| driver_err("launching a batch of kernels", e))?;
        graph_launched(stream);
        return Ok(());
    }
    let seen = {
        let s = cache.seen.entry(key).or_insert(0);
        *s += 1;
        *s
    };
    if seen < 2 || cache.built.contains_key(&key) {
        cache.stats.direct += 1;
        if cache.seen.len() > MAX_SEEN {
            cache.seen.clear();
        }
        drop(cache);
        return launch_each(q, stream);
    }
    cache.seen.remove(&key);
    let t = std::time::Instant::now();
    let built = build(q);
    cache.stats.build_us += t.elapsed().as_micros() as u64;
    let built = match built {
        Ok(b) => b,
        Err(_) => {
            // A batch a graph cannot hold is still run.
            cache.stats.direct += 1;
            drop(cache);
            return launch_each(q, stream);
        }
    };
    if cache.built.len() >= MAX_GRAPHS {
        for (_, old) in cache.built.drain() {
            // SAFETY: an executable graph still running is freed when it completes.
            unsafe {
                let _ = sys::cuGraphExecDestroy(old.exec);
                let _ = sys::cuGraphDestroy(old.graph);
            }
        }
    }
    let exec = built.exec;
    cache.built.insert(key, built);
    cache.stats.built += 1;
    // SAFETY: as above.
    unsafe { sys::cuGraphLaunch(exec, stream) }
        .result()
        .map_err(|e| driver_err("launching a batch of kernels", e))?;
    graph_launched(stream);
    Ok(())
}

/// Streams whose last submission was a batch's graph (their handles).
static AFTER_GRAPH: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Notes that `stream` last ran a graph.
fn graph_launched(stream: sys::CUstream) {
    let mut v = lock(&AFTER_GRAPH);
    if !v.contains(&(stream as usize)) {
        v.push(stream as usize);
    }
}

/// Whether `stream`'s last submission was a batch's graph, forgetting it: the next kernel
/// is then launched without programmatic dependent launch (whether a kernel may overlap a
/// graph before it that way is not something this code relies on).
pub(crate) fn after_graph(stream: sys::CUstream) -> bool {
    let mut v = lock(&AFTER_GRAPH);
    match v.iter().position(|&s| s == stream as usize) {
        Some(i) => {
            v.swap_remove(i);
            true
        }
        None => false,
    }
}

/// Whether `b` is the batch `q` (not only one with the same hash).
fn same(b: &Built, q: &Queue) -> bool {
    b.bytes == q.bytes
        && b.kernels.len() == q.items.len()
        && b.kernels
            .iter()
            .zip(&q.items)
            .all(|(k, it)| *k == (it.f as usize, it.grid, it.block, it.shared))
}

fn node_params(it: &Item, ptrs: &mut [*mut c_void]) -> sys::CUDA_KERNEL_NODE_PARAMS {
    sys::CUDA_KERNEL_NODE_PARAMS {
        func: it.f,
        gridDimX: it.grid,
        gridDimY: 1,
        gridDimZ: 1,
        blockDimX: it.block,
        blockDimY: 1,
        blockDimZ: 1,
        sharedMemBytes: it.shared,
        kernelParams: ptrs.as_mut_ptr(),
        extra: std::ptr::null_mut(),
        kern: std::ptr::null_mut(),
        ctx: std::ptr::null_mut(),
    }
}

/// The argument pointers of `it`, into its queue's bytes.
fn pointers(q: &Queue, it: &Item) -> Vec<*mut c_void> {
    it.layout
        .iter()
        .map(|&(off, _)| q.bytes[it.at + off..].as_ptr() as *mut c_void)
        .collect()
}

fn launch_each(q: &Queue, stream: sys::CUstream) -> Result<()> {
    for it in &q.items {
        let mut ptrs = pointers(q, it);
        crate::compile::launch_now(stream, it.f, it.grid, it.block, it.shared, &mut ptrs)?;
    }
    Ok(())
}

/// The batch as a graph: a chain of kernel nodes, instantiated.
fn build(q: &Queue) -> Result<Built> {
    let mut graph: sys::CUgraph = std::ptr::null_mut();
    // SAFETY: an out-pointer to a local.
    unsafe { sys::cuGraphCreate(&mut graph, 0) }
        .result()
        .map_err(|e| driver_err("creating a graph", e))?;
    let made = (|| {
        let mut prev: Option<sys::CUgraphNode> = None;
        for it in &q.items {
            let mut ptrs = pointers(q, it);
            let params = node_params(it, &mut ptrs);
            let mut node: sys::CUgraphNode = std::ptr::null_mut();
            let (deps, ndeps) = match &prev {
                Some(p) => (p as *const sys::CUgraphNode, 1),
                None => (std::ptr::null(), 0),
            };
            // SAFETY: a live graph; the parameters (copied by the driver) point at this
            // batch's argument values.
            unsafe { sys::cuGraphAddKernelNode_v2(&mut node, graph, deps, ndeps, &params) }
                .result()
                .map_err(|e| driver_err("adding a kernel to a graph", e))?;
            prev = Some(node);
        }
        let mut exec: sys::CUgraphExec = std::ptr::null_mut();
        // SAFETY: a complete graph; an out-pointer to a local.
        unsafe { sys::cuGraphInstantiateWithFlags(&mut exec, graph, 0) }
            .result()
            .map_err(|e| driver_err("instantiating a graph", e))?;
        Ok(exec)
    })();
    match made {
        Ok(exec) => Ok(Built {
            kernels: q
                .items
                .iter()
                .map(|it| (it.f as usize, it.grid, it.block, it.shared))
                .collect(),
            bytes: q.bytes.clone(),
            graph,
            exec,
        }),
        Err(e) => {
            // SAFETY: a graph nobody else has.
            unsafe {
                let _ = sys::cuGraphDestroy(graph);
            }
            Err(e)
        }
    }
}
