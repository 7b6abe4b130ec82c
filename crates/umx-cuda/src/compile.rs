//! Kernels from CUDA C++ source: NVRTC compiles each source once for the card's architecture
//! to a cubin, which is kept on disk (keyed by a hash of source, architecture, options and
//! NVRTC version) so a warm start compiles nothing, and loaded once per process.
//!
//! The disk cache is `$UMX_KERNEL_CACHE`, else `$XDG_CACHE_HOME/umx/kernels`, else
//! `~/.cache/umx/kernels`; when none can be written the cubin just is not kept.

use crate::gpu::{driver_err, gpu};
use cudarc::driver::{result, sys};
use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys};
use std::collections::HashMap;
use std::ffi::{CString, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use umx_core::{Error, Result};

/// Options every kernel is compiled with. Full IEEE float semantics (no fast math), so the
/// GPU agrees with the CPU kernels to rounding; no multiply-add contraction (`--fmad=false`),
/// so a fused kernel rounds each product as the unfused kernels do and compiled functions
/// give bit-identical results.
const OPTIONS: &[&str] = &["-default-device", "--std=c++17", "--fmad=false"];

struct Module {
    module: sys::CUmodule,
    functions: HashMap<String, sys::CUfunction>,
}

// SAFETY: module and function handles are process-wide driver objects.
unsafe impl Send for Module {}

/// Each module by its key, behind a lock of its own: a thread compiling a module holds only
/// that module's lock, so threads compile different kernels at once (and wait for each other
/// only on the same one).
static MODULES: OnceLock<Mutex<HashMap<u128, ModuleSlot>>> = OnceLock::new();
/// A module's place in [`MODULES`]: empty until it is loaded.
type ModuleSlot = Arc<Mutex<Option<Module>>>;
static COMPILED: AtomicUsize = AtomicUsize::new(0);
static FROM_DISK: AtomicUsize = AtomicUsize::new(0);

/// Kernel-cache statistics of this process: (modules compiled by NVRTC, modules loaded from
/// the disk cache).
pub fn kernel_cache_stats() -> (usize, usize) {
    (
        COMPILED.load(Ordering::Relaxed),
        FROM_DISK.load(Ordering::Relaxed),
    )
}

/// 128-bit FNV-1a: stable across builds and Rust versions (the std hasher is not promised to
/// be), which a disk cache key needs.
fn fnv128(parts: &[&[u8]]) -> u128 {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for p in parts {
        for &b in p.iter().chain(&[0xffu8]) {
            h ^= b as u128;
            h = h.wrapping_mul(0x0000000001000000000000000000013B);
        }
    }
    h
}

fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("UMX_KERNEL_CACHE") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("umx/kernels"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/umx/kernels"))
}

fn nvrtc_version() -> (i32, i32) {
    static V: OnceLock<(i32, i32)> = OnceLock::new();
    *V.get_or_init(|| {
        let (mut a, mut b) = (0, 0);
        // SAFETY: two out-parameters.
        unsafe { nvrtc_sys::nvrtcVersion(&mut a, &mut b) };
        (a, b)
    })
}

/// The kernel `name` of the source `make_source` generates, looked up by a short `key` that
/// determines that source: generating and hashing a whole source costs tens of microseconds,
/// more than a small kernel runs, so a warm launch only formats and looks up the key.
pub(crate) fn function_for(
    key: &str,
    make_source: impl FnOnce() -> String,
    name: &str,
) -> Result<sys::CUfunction> {
    function_for_target(key, make_source, name, false)
}

/// [`function_for`] for a source that uses instructions of the card's architecture-specific
/// target (`sm_90a`: Hopper's `wgmma` and `setmaxnreg`), whose code runs on that chip only.
pub(crate) fn function_for_arch_specific(
    key: &str,
    make_source: impl FnOnce() -> String,
    name: &str,
) -> Result<sys::CUfunction> {
    function_for_target(key, make_source, name, true)
}

fn function_for_target(
    key: &str,
    make_source: impl FnOnce() -> String,
    name: &str,
    arch_specific: bool,
) -> Result<sys::CUfunction> {
    struct Fn(sys::CUfunction);
    // SAFETY: function handles are process-wide driver objects.
    unsafe impl Send for Fn {}
    type Map = HashMap<String, Fn, foldhash::fast::FixedState>;
    static BY_KEY: OnceLock<Mutex<Map>> = OnceLock::new();
    let map = BY_KEY.get_or_init(Default::default);
    if let Some(f) = map.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
        return Ok(f.0);
    }
    let f = function_with(&make_source(), name, &[], arch_specific)?;
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.to_string(), Fn(f));
    Ok(f)
}

/// What every kernel starts with on cards that have programmatic dependent launch (sm_90):
/// let the next kernel start, then wait for the kernels before it (the launch lets this one
/// start early, see [`launch`]). A kernel touches no memory before its wait, which returns
/// only once the kernel before it ended (and that one waited for the one before it), so an
/// early start only makes the next kernels resident while this one runs: a chain of short
/// kernels launches ahead, and a matrix-vector product loads its weights during the kernels
/// before it (a TinyLlama decoding step 1.267 -> 1.238 ms on the H100, bench/RESULTS.md).
/// `UMX_PDL_TRIGGER=after` lets the next kernel start only after the wait.
const PDL_PROLOGUE: &str = "\n#if __CUDA_ARCH__ >= 900\nasm volatile(\"griddepcontrol.launch_dependents;\");\nasm volatile(\"griddepcontrol.wait;\" ::: \"memory\");\n#endif\n";
/// [`PDL_PROLOGUE`] with the next kernel let start after the wait.
const PDL_PROLOGUE_AFTER: &str = "\n#if __CUDA_ARCH__ >= 900\nasm volatile(\"griddepcontrol.wait;\" ::: \"memory\");\nasm volatile(\"griddepcontrol.launch_dependents;\");\n#endif\n";

/// What a source that waits for the kernel before it at a place of its own gets instead of
/// [`PDL_PROLOGUE`] (one that names `umx_pdl_wait`): `umx_pdl_wait()` waits and
/// `umx_pdl_trigger()` lets the next kernel start, each where the kernel calls it.
const PDL_FNS: &str = "\n#if __CUDA_ARCH__ >= 900\n__device__ __forceinline__ void umx_pdl_wait() { asm volatile(\"griddepcontrol.wait;\" ::: \"memory\"); }\n__device__ __forceinline__ void umx_pdl_trigger() { asm volatile(\"griddepcontrol.launch_dependents;\"); }\n#else\n__device__ __forceinline__ void umx_pdl_wait() {}\n__device__ __forceinline__ void umx_pdl_trigger() {}\n#endif\n";

/// Whether kernels let the next one start only after their wait (`UMX_PDL_TRIGGER=after`).
pub(crate) fn pdl_trigger_after() -> bool {
    static AFTER: OnceLock<bool> = OnceLock::new();
    *AFTER.get_or_init(|| std::env::var("UMX_PDL_TRIGGER").is_ok_and(|v| v == "after"))
}

/// The trigger and the wait for a kernel that places them itself (one whose source names
/// `umx_pdl_wait`, after work that needs nothing from the kernel before), in the prologue's
/// order: the trigger first, or with `after` ([`pdl_trigger_after`]) the wait first.
pub(crate) fn pdl_wait_source(after: bool) -> &'static str {
    if after {
        "umx_pdl_wait(); umx_pdl_trigger();"
    } else {
        "umx_pdl_trigger(); umx_pdl_wait();"
    }
}

/// The prologue in use: [`PDL_PROLOGUE`], or [`PDL_PROLOGUE_AFTER`] with
/// `UMX_PDL_TRIGGER=after`.
fn pdl_prologue() -> &'static str {
    if pdl_trigger_after() {
        PDL_PROLOGUE_AFTER
    } else {
        PDL_PROLOGUE
    }
}

/// `source` with the prologue ([`pdl_prologue`]) at the top of every kernel's body, or, where
/// the source calls `umx_pdl_wait` itself, with [`PDL_FNS`] defined first.
fn with_prologue(source: &str) -> String {
    if source.contains("umx_pdl_wait") {
        return format!("{PDL_FNS}{source}");
    }
    let prologue = pdl_prologue();
    let mut out = String::with_capacity(source.len() + 256);
    let mut rest = source;
    while let Some(at) = rest.find("__global__") {
        // A kernel's parameter list has no braces: its body opens at the next one.
        let Some(open) = rest[at..].find('{') else {
            break;
        };
        let end = at + open + 1;
        out.push_str(&rest[..end]);
        out.push_str(prologue);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Whether launches let the next kernel start early (sm_90 and later, unless
/// `UMX_NO_PDL=1`).
fn pdl() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        let off = std::env::var("UMX_NO_PDL").is_ok_and(|v| !v.is_empty() && v != "0");
        !off && gpu().is_ok_and(|g| g.arch.0 >= 9)
    })
}

/// Whether a kernel may read `inputs` before its wait for the kernel before it (which a
/// programmatic launch lets it start beside): only when the work that wrote them ended at a
/// synchronization of this stream (see [`settled`](crate::storage::settled)), so no kernel
/// still running writes them, and not with `UMX_EARLY_LOADS=0`. The matrix-vector kernels
/// load their first weights so, overlapping that memory latency with the kernel before.
pub(crate) fn may_read_early(inputs: &[&umx_core::ArrayData]) -> bool {
    static OFF: OnceLock<bool> = OnceLock::new();
    let off = *OFF.get_or_init(|| std::env::var("UMX_EARLY_LOADS").is_ok_and(|v| v == "0"));
    !off && inputs.iter().all(|d| crate::storage::settled(d))
}

/// The kernel `name` of `source`, compiling (or loading from disk) the module on first use.
pub(crate) fn function(source: &str, name: &str) -> Result<sys::CUfunction> {
    function_with(source, name, &[], false)
}

/// [`function`] with NVRTC options of the caller's instead of umx's own (a user kernel's:
/// C++17, the CUDA include directory, default float contraction), built for the card's
/// architecture-specific target (`sm_90a`) when `arch_specific`.
pub(crate) fn function_with(
    source: &str,
    name: &str,
    options: &[String],
    arch_specific: bool,
) -> Result<sys::CUfunction> {
    let g = gpu()?;
    let suffix = if arch_specific { "a" } else { "" };
    let arch = format!("sm_{}{}{suffix}", g.arch.0, g.arch.1);
    let own = OPTIONS.join(" ");
    let opts = if options.is_empty() {
        own
    } else {
        options.join(" ")
    };
    // The prologue goes in only when a module is compiled (some kernels look their module up
    // by source at every launch); it is part of the key, so a changed prologue recompiles.
    let key = fnv128(&[
        source.as_bytes(),
        arch.as_bytes(),
        opts.as_bytes(),
        pdl_prologue().as_bytes(),
        PDL_FNS.as_bytes(),
    ]);
    let slot = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default()
        .clone();
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    let m = match &mut *slot {
        Some(m) => m,
        none => {
            let cubin = cubin(source, &arch, key, options)?;
            // SAFETY: a complete cubin image for this device's architecture.
            let module = unsafe { result::module::load_data(cubin.as_ptr() as *const c_void) }
                .map_err(|e| driver_err("loading a compiled kernel module", e))?;
            none.insert(Module {
                module,
                functions: HashMap::new(),
            })
        }
    };
    if let Some(&f) = m.functions.get(name) {
        return Ok(f);
    }
    let cname = CString::new(name).map_err(|_| Error::Device(format!("bad kernel name {name}")))?;
    // SAFETY: the module is loaded and never unloaded.
    let f = unsafe { result::module::get_function(m.module, cname) }
        .map_err(|e| driver_err(&format!("finding kernel {name}"), e))?;
    m.functions.insert(name.to_string(), f);
    Ok(f)
}

/// The cubin of `source`: from the disk cache, or compiled now (and stored there).
fn cubin(source: &str, arch: &str, key: u128, options: &[String]) -> Result<Vec<u8>> {
    let (vmaj, vmin) = nvrtc_version();
    let file = cache_dir().map(|d| d.join(format!("{key:032x}-nvrtc{vmaj}.{vmin}.cubin")));
    if let Some(f) = &file
        && let Ok(bytes) = std::fs::read(f)
        && !bytes.is_empty()
    {
        FROM_DISK.fetch_add(1, Ordering::Relaxed);
        return Ok(bytes);
    }
    let bytes = compile(&with_prologue(source), arch, options)?;
    COMPILED.fetch_add(1, Ordering::Relaxed);
    if let Some(f) = file
        && let Some(dir) = f.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        // Write then rename, so a reader in another process never sees half a file.
        let tmp = f.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &f);
        }
    }
    Ok(bytes)
}

fn compile(source: &str, arch: &str, options: &[String]) -> Result<Vec<u8>> {
    // SAFETY: checks for the library without loading any symbol (cudarc panics otherwise).
    if !unsafe { nvrtc_sys::is_culib_present() } {
        return Err(Error::Device(
            "gpu: NVRTC (libnvrtc) was not found, so kernels cannot be compiled".into(),
        ));
    }
    let src = CString::new(source).map_err(|_| Error::Device("kernel source has a NUL".into()))?;
    let prog = nvrtc::create_program(&src, None)
        .map_err(|e| Error::Device(format!("nvrtc: creating a program: {e:?}")))?;
    let mut opts: Vec<String> = if options.is_empty() {
        OPTIONS.iter().map(|s| s.to_string()).collect()
    } else {
        options.to_vec()
    };
    opts.push(format!("--gpu-architecture={arch}"));
    // SAFETY: prog is live until destroyed at the end.
    unsafe {
        let r = nvrtc::compile_program(prog, &opts);
        let res = match r {
            Ok(()) => {
                let mut size = 0usize;
                nvrtc_sys::nvrtcGetCUBINSize(prog, &mut size)
                    .result()
                    .and_then(|_| {
                        let mut buf = vec![0u8; size];
                        nvrtc_sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut _)
                            .result()
                            .map(|_| buf)
                    })
            }
            Err(e) => Err(e),
        };
        let res = res.map_err(|e| {
            let log = nvrtc::get_program_log(prog)
                .map(|l| {
                    let b: Vec<u8> = l.iter().map(|&c| c as u8).take_while(|&c| c != 0).collect();
                    String::from_utf8_lossy(&b).into_owned()
                })
                .unwrap_or_default();
            Error::Device(format!("nvrtc: compiling a kernel failed ({e:?}):\n{log}"))
        });
        let _ = nvrtc::destroy_program(prog);
        res
    }
}

/// Launches `f` on the current stream with the given kernel arguments (pointers to each
/// argument's value, as `cuLaunchKernel` wants), or holds it back for a batch (`batch.rs`).
pub(crate) fn launch(
    f: sys::CUfunction,
    grid: u32,
    block: u32,
    shared: u32,
    args: &mut [*mut c_void],
) -> Result<()> {
    if grid == 0 {
        return Ok(());
    }
    let g = gpu()?;
    if crate::batch::defer(g, f, grid, block, shared, args)? {
        return Ok(());
    }
    launch_now(g.stream(), f, grid, block, shared, args)
}

/// Launches `f` on `stream` now.
pub(crate) fn launch_now(
    stream: sys::CUstream,
    f: sys::CUfunction,
    grid: u32,
    block: u32,
    shared: u32,
    args: &mut [*mut c_void],
) -> Result<()> {
    // The first kernel after a batch's graph on this stream waits for it the ordinary way.
    if pdl() && !crate::batch::after_graph(stream) {
        // Programmatic stream serialization: the kernel may be scheduled before the previous
        // one ends; its prologue waits for it (every umx kernel has one).
        // SAFETY: a zeroed attribute is a valid value of the union; the id picks the field.
        let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
        attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attr.value.programmaticStreamSerializationAllowed = 1;
        let config = sys::CUlaunchConfig {
            gridDimX: grid,
            gridDimY: 1,
            gridDimZ: 1,
            blockDimX: block,
            blockDimY: 1,
            blockDimZ: 1,
            sharedMemBytes: shared,
            hStream: stream,
            attrs: &mut attr,
            numAttrs: 1,
        };
        // SAFETY: as below; the config and attribute live across the call.
        return unsafe {
            sys::cuLaunchKernelEx(&config, f, args.as_mut_ptr(), std::ptr::null_mut())
        }
        .result()
        .map_err(|e| driver_err("launching a kernel", e));
    }
    // SAFETY: the caller passes arguments matching the kernel's signature, pointing at device
    // memory that outlives the queued work (the pool reuses memory only in stream order).
    unsafe { result::launch_kernel(f, (grid, 1, 1), (block, 1, 1), shared, stream, args) }
        .map_err(|e| driver_err("launching a kernel", e))
}

/// A kernel that does nothing (of one `int` argument): what launch costs are measured with.
pub(crate) fn empty_kernel() -> Result<sys::CUfunction> {
    function(
        r#"extern "C" __global__ void umx_empty(int x) {}"#,
        "umx_empty",
    )
}

/// Diagnostics: the host time of one launch of an empty kernel, in microseconds, over `n`
/// back-to-back launches straight to the driver (the floor under an unbatched op's cost),
/// and the time per launch once the card has run them all.
pub fn launch_cost(n: usize) -> Result<(f64, f64)> {
    let f = empty_kernel()?;
    let g = gpu()?;
    g.synchronize()?;
    let stream = g.stream();
    let t0 = std::time::Instant::now();
    for i in 0..n {
        let mut v = i as i32;
        launch_now(
            stream,
            f,
            1,
            32,
            0,
            &mut [&mut v as *mut i32 as *mut c_void],
        )?;
    }
    let queued = t0.elapsed().as_secs_f64();
    g.synchronize()?;
    let done = t0.elapsed().as_secs_f64();
    let per = |t: f64| t / n.max(1) as f64 * 1e6;
    Ok((per(queued), per(done)))
}
