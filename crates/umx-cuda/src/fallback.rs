//! The correctness-first path: a primitive with no GPU kernel yet runs on the CPU backend.
//!
//! Its inputs are copied to the host (once per buffer: the host mirror stays), the CPU kernel
//! runs, and the outputs stay on the host until a GPU op reads them (then they are uploaded
//! once). Every move is counted in `umx::memory::bytes_to_host`/`bytes_to_device`. Which
//! primitives took this path is recorded, so tests and notes can list them; with
//! `UMX_LOG_FALLBACK=1` each primitive and input dtypes that takes it is also printed to
//! stderr, once (`UMX_LOG_FALLBACK=PATH`: appended to that file instead).

use std::collections::BTreeSet;
use std::sync::Mutex;
use umx_core::device::{Backend, OutSpec};
use umx_core::primitives::Primitive;
use umx_core::{ArrayData, Device, Result, Stream};

static USED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
static LOGGED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Where fallbacks are logged: `None` (not at all), `Some(None)` (stderr) or a file.
fn log_target() -> &'static Option<Option<String>> {
    static TARGET: std::sync::OnceLock<Option<Option<String>>> = std::sync::OnceLock::new();
    TARGET.get_or_init(|| match std::env::var("UMX_LOG_FALLBACK") {
        Ok(v) if v.is_empty() || v == "0" => None,
        Ok(v) if v == "1" => Some(None),
        Ok(path) => Some(Some(path)),
        Err(_) => None,
    })
}

fn log(line: &str) {
    match log_target() {
        None => {}
        Some(None) => eprintln!("{line}"),
        Some(Some(path)) => {
            use std::io::Write;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path);
            // One write per line, so lines from several threads do not interleave.
            if let Ok(mut f) = file {
                let _ = f.write_all(format!("{line}\n").as_bytes());
            }
        }
    }
}

/// Runs `prim` with the CPU backend's kernels.
pub(crate) fn eval(
    prim: &Primitive,
    inputs: Vec<ArrayData>,
    outputs: &[OutSpec],
) -> Result<Vec<ArrayData>> {
    USED.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(prim.name());
    if log_target().is_some() {
        let dtypes: Vec<String> = inputs.iter().map(|x| x.dtype.to_string()).collect();
        let what = format!("{} ({})", prim.name(), dtypes.join(", "));
        if LOGGED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(what.clone())
        {
            log(&format!("umx: {what} ran on the CPU fallback"));
        }
    }
    umx_cpu::CpuBackend.eval(prim, inputs, outputs, Stream::default_of(Device::Cpu))
}

/// The primitives (by name) that ran on the CPU fallback in this process so far.
pub fn fallback_ops() -> Vec<&'static str> {
    USED.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect()
}
