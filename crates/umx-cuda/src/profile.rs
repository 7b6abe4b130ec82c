//! A kernel-time profile by primitive, for finding where a GPU program spends its time.
//!
//! With profiling on ([`set_profiling`]), the backend records a CUDA event on the stream
//! before and after each primitive it runs; [`profile_report`] waits for the stream and sums
//! the time between each pair by label (the primitive's name, `+cpu` when it ran on the CPU
//! fallback). Events cost about a microsecond of host time each, so profile on purpose only.
//! A [`CudaGraph`](crate::CudaGraph) captured with profiling on holds its events as nodes:
//! the report then gives the GPU time of each primitive in the graph's last replay, with no
//! host time between kernels.

use crate::gpu::{driver_err, gpu};
use cudarc::driver::{result, sys};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use umx_core::Result;

static ON: AtomicBool = AtomicBool::new(false);

struct Span {
    label: String,
    start: sys::CUevent,
    end: sys::CUevent,
}

// SAFETY: event handles are process-wide driver objects.
unsafe impl Send for Span {}

static SPANS: Mutex<Vec<Span>> = Mutex::new(Vec::new());

/// Turns the profile on or off; returns whether it was on.
pub fn set_profiling(on: bool) -> bool {
    ON.swap(on, Ordering::Relaxed)
}

pub(crate) fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Records an event on the stream now; `None` when profiling is off.
pub(crate) fn mark() -> Result<Option<sys::CUevent>> {
    if !enabled() {
        return Ok(None);
    }
    let g = gpu()?;
    let e = result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT)
        .map_err(|e| driver_err("creating an event", e))?;
    // SAFETY: a fresh event and the live stream. While a graph is captured the event
    // becomes a node of the graph (recorded by every replay; the report reads the last).
    if crate::graph::capturing() {
        unsafe {
            sys::cuEventRecordWithFlags(
                e,
                g.stream(),
                sys::CUevent_record_flags::CU_EVENT_RECORD_EXTERNAL as u32,
            )
        }
        .result()
        .map_err(|e| driver_err("recording an event in a graph", e))?;
    } else {
        unsafe { result::event::record(e, g.stream()) }
            .map_err(|e| driver_err("recording an event", e))?;
    }
    Ok(Some(e))
}

/// Keeps the span between two marks under `label`.
pub(crate) fn span(label: String, start: Option<sys::CUevent>) -> Result<()> {
    let Some(start) = start else { return Ok(()) };
    let end = mark()?.unwrap_or(start);
    SPANS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Span { label, start, end });
    Ok(())
}

/// One label's line of the profile.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileLine {
    /// The primitive's name, with `+cpu` when it ran on the CPU fallback.
    pub label: String,
    /// How many times it ran.
    pub count: usize,
    /// Milliseconds of stream time between its start and end events, summed.
    pub total_ms: f64,
}

/// Waits for the stream, then returns the time each label took since the last report
/// (longest first) and forgets the recorded spans.
pub fn profile_report() -> Result<Vec<ProfileLine>> {
    let g = gpu()?;
    g.synchronize()?;
    let spans = std::mem::take(&mut *SPANS.lock().unwrap_or_else(|e| e.into_inner()));
    let mut by: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for s in spans {
        // SAFETY: both events were recorded on the stream, which is idle now.
        let ms = unsafe { result::event::elapsed(s.start, s.end) }.unwrap_or(0.0) as f64;
        let e = by.entry(s.label).or_default();
        e.0 += 1;
        e.1 += ms;
        unsafe {
            let _ = result::event::destroy(s.start);
            if s.end != s.start {
                let _ = result::event::destroy(s.end);
            }
        }
    }
    let mut lines: Vec<ProfileLine> = by
        .into_iter()
        .map(|(label, (count, total_ms))| ProfileLine {
            label,
            count,
            total_ms,
        })
        .collect();
    lines.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    Ok(lines)
}
