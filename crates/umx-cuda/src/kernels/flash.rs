//! Flash attention on the tensor cores (`flash.cu`): attention over query blocks longer than
//! the decoding kernel's in bfloat16/float16 (head dims 64, 128, 256), forward (with each
//! row's log-sum-exp when a gradient is traced) and backward (`FastOp::AttentionVjp`: dQ by
//! query blocks, dK and dV by key blocks). On Hopper (sm_90) head dims 64 and 128 take
//! `flash_sm90.cu` instead, forward and backward: warpgroup products (`wgmma`) fed by a
//! producer warpgroup through the copy engine, FlashAttention-3's schedules (the forward pass
//! a block an SM taking query block after query block, the backward pass one kernel a block
//! of keys, dQ summed in float32 by the copy engine). The op's portable rule leaves these cases
//! to its matmul-and-softmax fallback; the GPU claims them through [`has_kernel`].

use super::set_shared;
use super::source::Args;
use crate::compile::{function_for, function_for_arch_specific, launch};
use crate::gpu::gpu;
use crate::storage::{fresh, input_ptr};
use cudarc::driver::sys;
use umx_core::device::OutSpec;
use umx_core::primitives::FastOp;
use umx_core::{Array, ArrayData, Dtype, Result};

/// `flash.cu` after the helpers it shares with `flash_sm90.cu` (a kernel's defines go before
/// both).
const FLASH_CU: &str = concat!(include_str!("flash_common.cuh"), include_str!("flash.cu"));
/// `flash_sm90.cu` after the helpers it shares with `flash.cu`.
const FLASH_SM90_CU: &str = concat!(
    include_str!("flash_common.cuh"),
    include_str!("flash_sm90.cu")
);

type Outs = Result<Option<Vec<ArrayData>>>;

/// Query rows from which attention takes the flash kernel (shorter query blocks, decoding,
/// take the split-key kernel in `fast.rs`, which spreads the keys over the card).
pub(crate) const FLASH_MIN_ROWS: usize = umx_core::fast::ATTENTION_QUERY_BLOCK + 1;

/// Whether the flash kernel takes attention of these dtypes and head dims on this card
/// (sm_80 or later; head dim 256 needs the 128 KB of shared memory a block may have on sm_80
/// and sm_90, not on sm_86/89).
fn flash_applies(dtypes: [Dtype; 4], d: usize, dv: usize) -> bool {
    let dt = dtypes[0];
    matches!(dt, Dtype::Bfloat16 | Dtype::Float16)
        && dtypes.iter().all(|&x| x == dt)
        && d == dv
        && gpu().is_ok_and(|g| match d {
            64 | 128 => g.arch.0 >= 8,
            256 => g.arch == (8, 0) || g.arch.0 >= 9,
            _ => false,
        })
}

/// Whether the GPU computes `op` on `inputs` where the op's own rule would build its
/// fallback (see `Backend::has_fast_kernel`): attention over long query blocks in 16-bit
/// floats, without a mask array or sinks, with or without the log-sum-exp its backward
/// pass takes; and that backward pass.
pub(crate) fn has_kernel(op: &FastOp, inputs: &[Array]) -> bool {
    let (FastOp::Attention {
        mask: false,
        sinks: false,
        ..
    }
    | FastOp::AttentionVjp { .. }) = *op
    else {
        return false;
    };
    let [q, k, v, ..] = inputs else { return false };
    let dt = q.dtype();
    // What `flash` and `flash_backward` take, so that a claimed node never reaches the CPU.
    q.shape()[2] >= FLASH_MIN_ROWS
        && fits_i32(q.shape()[2])
        && fits_i32(k.shape()[2])
        && k.shape()[2] > 0
        && flash_applies(
            [dt, k.dtype(), v.dtype(), op.output(inputs).dtype],
            q.shape()[3],
            v.shape()[3],
        )
}

/// The kernels count rows within a head in 32 bits.
fn fits_i32(n: usize) -> bool {
    n < (i32::MAX / 2) as usize
}

/// `a` itself where every row starts 16-byte aligned with unit element strides (the flash
/// kernels copy rows in 16-byte pieces), else a row-major copy.
fn rows_aligned(a: &ArrayData) -> Result<Option<ArrayData>> {
    let p = input_ptr(a)?;
    let n = a.strides.len();
    let size = a.dtype.size() as isize;
    if p % 16 == 0
        && a.strides[..n - 1].iter().all(|&s| (s * size) % 16 == 0)
        && a.strides[n - 1] == 1
    {
        Ok(Some(a.clone()))
    } else {
        super::contiguous(a, a.dtype)
    }
}

/// `a` row-major, copied if it is not.
fn packed(a: &ArrayData) -> Result<Option<ArrayData>> {
    if a.is_row_contiguous() && input_ptr(a)? % 16 == 0 {
        Ok(Some(a.clone()))
    } else {
        super::contiguous(a, a.dtype)
    }
}

/// Attention without a mask array or sinks through the tensor-core flash kernel
/// (`flash.cu`): 16-bit floats, head dims 64, 128 or 256 (see [`flash_applies`]); with
/// `lse`, each row's log-sum-exp as a second output. `None` where it does not apply.
pub(crate) fn flash(
    q: &ArrayData,
    k: &ArrayData,
    v: &ArrayData,
    out: &OutSpec,
    scale: f32,
    causal: bool,
    lse: bool,
) -> Outs {
    let [b, hq, lq, d] = q.shape[..] else {
        return Ok(None);
    };
    let (hk, lk, dv) = (k.shape[1], k.shape[2], v.shape[3]);
    let dt = q.dtype;
    if !flash_applies([dt, k.dtype, v.dtype, out.dtype], d, dv) {
        return Ok(None);
    }
    if lq < FLASH_MIN_ROWS || lk == 0 || hk == 0 || !fits_i32(lq) || !fits_i32(lk) {
        return Ok(None);
    }
    let (Some(q), Some(k), Some(v)) = (rows_aligned(q)?, rows_aligned(k)?, rows_aligned(v)?) else {
        return Ok(None);
    };
    let (q, k, v) = (&q, &k, &v);
    let (result, out_ptr) = fresh(&out.shape, dt)?;
    let (lse, lse_ptr) = if lse {
        let (l, p) = fresh(&[b, hq, lq], Dtype::Float32)?;
        (Some(l), p)
    } else {
        (None, 0)
    };
    if gpu()?.arch == (9, 0)
        && d <= 128
        && hopper_forward([q, k, v], [out_ptr, lse_ptr], scale, causal)?
    {
        return Ok(Some([result].into_iter().chain(lse).collect()));
    }
    let (f, br, threads, shared) = mma_kernel(dt, d, causal)?;
    set_shared(f, shared, "attention")?;
    let nqb = lq.div_ceil(br);
    let mut args = Args::default();
    push_forward_args(&mut args, [out_ptr, lse_ptr], [q, k, v], hk, nqb, scale)?;
    let start = crate::profile::mark()?;
    launch(
        f,
        (nqb * b * hq) as u32,
        threads as u32,
        shared as u32,
        &mut args.pointers(),
    )?;
    if start.is_some() {
        crate::profile::span(format!(" flash attention: {} blocks", nqb * b * hq), start)?;
    }
    Ok(Some([result].into_iter().chain(lse).collect()))
}

/// The Hopper forward kernel (`flash_sm90.cu`) into `out_ptr` (and each row's log-sum-exp
/// into `lse_ptr` where not 0); whether it ran: not where the architecture-specific target
/// does not build, nor where the copy engine takes no map of the inputs, packed or not.
fn hopper_forward(
    [q, k, v]: [&ArrayData; 3],
    [out_ptr, lse_ptr]: [u64; 2],
    scale: f32,
    causal: bool,
) -> Result<bool> {
    // Two consumer warpgroups of 64 query rows and a producer warpgroup, key tiles of 128 in
    // three stages, every tile through the copy engine (TMA); the warpgroups take turns
    // issuing their products only for causal head dim 64 (B=4 H=16 L=2048 D=128 on an H200,
    // TFLOP/s causal / full: 511 / 607 without turns, 480 / 575 with; H=32 D=64: 337 / 444
    // and 352 / 418). The fastest of the versions and shapes tried
    // (`bench/flash_sm90_harness.py`; bench/RESULTS.md has them).
    let (bn, wg, ns) = (128usize, 2usize, 3usize);
    let br = 64 * wg;
    let [b, hq, lq, d] = q.shape[..] else {
        return Ok(false);
    };
    let (hk, dt) = (k.shape[1], q.dtype);
    let pingpong = d == 64 && causal;
    let maps = |[q, k, v]: [&ArrayData; 3]| -> Result<Option<[sys::CUtensorMap; 3]>> {
        Ok(
            match (tensor_map(q, br)?, tensor_map(k, bn)?, tensor_map(v, bn)?) {
                (Some(a), Some(b), Some(c)) => Some([a, b, c]),
                _ => None,
            },
        )
    };
    // Where the driver takes no map of an input's layout (a stride of 0 along heads, say),
    // packed copies of the three.
    let copies;
    let (inputs, maps) = match maps([q, k, v])? {
        Some(m) => ([q, k, v], m),
        None => {
            let (Some(pq), Some(pk), Some(pv)) = (packed(q)?, packed(k)?, packed(v)?) else {
                return Ok(false);
            };
            copies = [pq, pk, pv];
            let inputs = [&copies[0], &copies[1], &copies[2]];
            match maps(inputs)? {
                Some(m) => (inputs, m),
                None => return Ok(false),
            }
        }
    };
    let key = format!("flash90|{dt:?}|{d}|{causal}|{bn}|{wg}|{ns}|{pingpong}");
    let make = || {
        format!(
            "#define D {d}\n#define BN {bn}\n#define WG {wg}\n#define NS {ns}\n\
             #define PINGPONG {}\n#define IS_F16 {}\n#define CAUSAL {}\n{}",
            pingpong as u8,
            (dt == Dtype::Float16) as u8,
            causal as u8,
            FLASH_SM90_CU
        )
    };
    let Ok(f) = function_for_arch_specific(&key, make, "umx_flash") else {
        return Ok(false);
    };
    let shared = 2 * (br * d + 2 * ns * bn * d) + 1024;
    set_shared(f, shared, "attention")?;
    let g = gpu()?;
    let nqb = lq.div_ceil(br);
    let items = nqb * b * hq;
    // A block an SM, each taking query block after query block: the blocks past the first
    // wave take theirs from a zeroed counter (queued straight to the stream, after what
    // launch batching holds back).
    let grid = items.min(g.sm_count as usize);
    let mut _direct = None;
    let mut _counter = None;
    let mut next_item = 0u64;
    if items > grid {
        _direct = Some(crate::batch::direct()?);
        let c = crate::storage::CudaStorage::alloc(4)?;
        // SAFETY: the counter holds 4 bytes; zeroed in stream order before the kernel.
        unsafe { cudarc::driver::result::memset_d8_async(c.ptr(), 0, 4, g.stream()) }
            .map_err(|e| crate::gpu::driver_err("flash attention: zeroing its counter", e))?;
        next_item = c.ptr();
        _counter = Some(c);
    }
    let mut args = Args::default();
    push_forward_args(&mut args, [out_ptr, lse_ptr], inputs, hk, nqb, scale)?;
    args.push(next_item);
    for m in maps {
        args.push(m);
    }
    let start = crate::profile::mark()?;
    launch(
        f,
        grid as u32,
        (128 * (wg + 1)) as u32,
        shared as u32,
        &mut args.pointers(),
    )?;
    if start.is_some() {
        crate::profile::span(
            format!(" flash attention (wgmma): {items} query blocks on {grid} blocks"),
            start,
        )?;
    }
    Ok(true)
}

/// The arguments the forward kernels of `flash.cu` and `flash_sm90.cu` share: outputs and
/// inputs, their shape, the scale, and the three leading strides of each input.
fn push_forward_args(
    args: &mut Args,
    [out_ptr, lse_ptr]: [u64; 2],
    [q, k, v]: [&ArrayData; 3],
    hk: usize,
    nqb: usize,
    scale: f32,
) -> Result<()> {
    let (b, hq, lq) = (q.shape[0], q.shape[1], q.shape[2]);
    args.push(out_ptr)
        .push(lse_ptr)
        .push(input_ptr(q)?)
        .push(input_ptr(k)?)
        .push(input_ptr(v)?)
        .push((b * hq) as i64)
        .push(hq as i64)
        .push(lq as i64)
        .push(k.shape[2] as i64)
        .push((hq / hk) as i64)
        .push(nqb as i64)
        .push(scale * std::f32::consts::LOG2_E);
    push_strides(args, [q, k, v]);
    Ok(())
}

/// The copy engine's description of `x` (B, H, L, D) in 16-bit floats for the Hopper kernel:
/// boxes of 64 columns (128 bytes) by `rows` rows, 128-byte swizzled as its `wgmma` reads
/// them, rows past the end read as zeros. `None` where the driver takes no map of this layout
/// (the kernel then copies with cp.async).
fn tensor_map(x: &ArrayData, rows: usize) -> Result<Option<sys::CUtensorMap>> {
    let [b, h, l, d] = x.shape[..] else {
        return Ok(None);
    };
    let size = x.dtype.size() as u64;
    let dt = match x.dtype {
        Dtype::Bfloat16 => sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
        _ => sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
    };
    // A dimension of one element may have any stride (a view's 0, say): the copy engine
    // takes the packed one there.
    let mut strides = [0u64; 3];
    let mut packed = d as u64 * size;
    for (i, a) in [2, 1, 0].into_iter().enumerate() {
        let s = x.strides[a];
        strides[i] = match (x.shape[a], s) {
            (1, _) => packed,
            (_, s) if s > 0 => s as u64 * size,
            _ => return Ok(None),
        };
        packed = strides[i] * x.shape[a] as u64;
    }
    let dims = [d as u64, l as u64, h as u64, b as u64];
    encode_tiled(input_ptr(x)?, dt, &dims, &strides, &[64, rows as u32, 1, 1])
}

/// A tiled tensor map (128-byte swizzle) of the tensor at device address `ptr`: `dims`
/// innermost first, the byte `strides` of every dimension but the innermost, `boxes` the
/// elements a copy takes along each. `None` where the driver refuses it.
fn encode_tiled(
    ptr: u64,
    dt: sys::CUtensorMapDataType,
    dims: &[u64],
    strides: &[u64],
    boxes: &[u32],
) -> Result<Option<sys::CUtensorMap>> {
    use sys::*;
    let ones = [1u32; 5];
    let mut map = std::mem::MaybeUninit::<CUtensorMap>::zeroed();
    // SAFETY: the map is written by the driver; `dims`, `boxes` and `ones` hold at least the
    // rank's entries and `strides` one fewer; the address is device memory (16-byte aligned,
    // checked by the callers).
    let r = unsafe {
        cuTensorMapEncodeTiled(
            map.as_mut_ptr(),
            dt,
            dims.len() as u32,
            ptr as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            ones.as_ptr(),
            CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    // SAFETY: written on success.
    Ok((r == CUresult::CUDA_SUCCESS).then(|| unsafe { map.assume_init() }))
}

/// The forward kernel of `flash.cu` (`mma.sync`, sm_80 and later) for these dtypes and head
/// dim: the function, its query rows a block, threads a block and shared memory.
fn mma_kernel(dt: Dtype, d: usize, causal: bool) -> Result<(sys::CUfunction, usize, usize, usize)> {
    // Head dims 64 and 128: 4 warps of 2 row tiles each, key tiles of 64, the fastest of the
    // shapes tried on an H200 (230 TFLOP/s causal, B=4 H=16 L=2048 D=128; 8 warps of one
    // tile: 207). 256: 8 warps of one tile, key tiles of 32 (181 TFLOP/s causal B=4 H=8 on an
    // H100; tiles of 64 with 4 warps: 124).
    let (bc, warps, mt) = if d == 256 {
        (32usize, 8usize, 1usize)
    } else {
        (64, 4, 2)
    };
    let br = warps * 16 * mt;
    let shared = (br * d + 4 * bc * d) * 2;
    let key = format!("flash|{dt:?}|{d}|{causal}|{bc}|{warps}|{mt}");
    let make = || {
        format!(
            "#define D {d}\n#define BC {bc}\n#define WARPS {warps}\n#define MT {mt}\n\
             #define IS_F16 {}\n#define CAUSAL {}\n#define BACKWARD 0\n{}",
            (dt == Dtype::Float16) as u8,
            causal as u8,
            FLASH_CU
        )
    };
    let f = function_for(&key, make, "umx_flash")?;
    Ok((f, br, warps * 32, shared))
}

/// The block shapes of the backward kernels: (dQ kernel warps, its key tile, dK/dV kernel
/// warps, its query tile). Head dims 64 and 128 took 194 TFLOP/s forward and backward (causal,
/// B=4 H=16 L=2048 D=128 on an H100, `bench/flash_bwd_harness.py`; 8 warps or tiles of 32
/// were slower); 256 halves the tiles to fit shared memory (122 TFLOP/s, B=4 H=8).
fn backward_blocks(d: usize) -> (usize, usize, usize, usize) {
    if d == 256 {
        (4, 32, 4, 32)
    } else {
        (4, 64, 4, 64)
    }
}

/// The gradients of attention (`FastOp::AttentionVjp`) through the flash backward kernels:
/// each row's dot(dO, O), then dQ a block of query rows at a time and dK, dV a block of keys
/// at a time, each recomputing the probabilities from the saved log-sum-exp.
pub(crate) fn flash_backward(inputs: &[ArrayData], scale: f32, causal: bool) -> Outs {
    let [q, k, v, o, lse, dout] = inputs else {
        return Ok(None);
    };
    let [b, hq, lq, d] = q.shape[..] else {
        return Ok(None);
    };
    let (hk, lk) = (k.shape[1], k.shape[2]);
    let dt = q.dtype;
    if !flash_applies([dt, k.dtype, v.dtype, dout.dtype], d, v.shape[3])
        || o.dtype != dt
        || lse.dtype != Dtype::Float32
        || lk == 0
        || hk == 0
        || hq % hk != 0
        || !fits_i32(lq)
        || !fits_i32(lk)
    {
        return Ok(None);
    }
    let (Some(q), Some(k), Some(v)) = (rows_aligned(q)?, rows_aligned(k)?, rows_aligned(v)?) else {
        return Ok(None);
    };
    let (Some(o), Some(lse), Some(dout)) = (packed(o)?, packed(lse)?, packed(dout)?) else {
        return Ok(None);
    };
    let (dq, dq_ptr) = fresh(&q.shape, dt)?;
    let (dk, dk_ptr) = fresh(&[b, hk, lk, d], dt)?;
    let (dv, dv_ptr) = fresh(&[b, hk, lk, d], dt)?;
    let rows = b * hq * lq;
    if rows == 0 {
        // No query rows: dq is empty and the keys and values have no gradient.
        let g = gpu()?;
        for ptr in [dk_ptr, dv_ptr] {
            // SAFETY: each holds b * hk * lk * d elements of dt; the fills are queued before
            // any reader.
            unsafe {
                cudarc::driver::result::memset_d8_async(ptr, 0, b * hk * lk * d * 2, g.stream())
            }
            .map_err(|e| crate::gpu::driver_err("attention gradients: zeroing", e))?;
        }
        return Ok(Some(vec![dq, dk, dv]));
    }
    if gpu()?.arch == (9, 0)
        && d <= 128
        && hopper_backward(
            [&q, &k, &v, &o, &lse, &dout],
            [dq_ptr, dk_ptr, dv_ptr],
            hq / hk,
            scale,
            causal,
        )?
    {
        return Ok(Some(vec![dq, dk, dv]));
    }
    let (qw, qbc, kw, kbr) = backward_blocks(d);
    let key = format!("flash_bwd|{dt:?}|{d}|{causal}|{qw}|{qbc}|{kw}|{kbr}");
    let make = || {
        format!(
            "#define BACKWARD 1\n#define D {d}\n#define QW {qw}\n#define QBC {qbc}\n\
             #define KW {kw}\n#define KBR {kbr}\n#define IS_F16 {}\n#define CAUSAL {}\n{}",
            (dt == Dtype::Float16) as u8,
            causal as u8,
            FLASH_CU
        )
    };
    let func = |name: &str| function_for(&format!("{key}|{name}"), make, name);
    let (delta, delta_ptr) = fresh(&[rows], Dtype::Float32)?;
    let (o_ptr, lse_ptr, dout_ptr) = (input_ptr(&o)?, input_ptr(&lse)?, input_ptr(&dout)?);
    let (qp, kp, vp) = (input_ptr(&q)?, input_ptr(&k)?, input_ptr(&v)?);
    let start = crate::profile::mark()?;
    let mut args = Args::default();
    args.push(delta_ptr)
        .push(dout_ptr)
        .push(o_ptr)
        .push(lse_ptr)
        .push(rows as i64);
    launch(
        func("umx_flash_delta")?,
        rows.div_ceil(8) as u32,
        256,
        0,
        &mut args.pointers(),
    )?;
    // dQ: blocks of qw * 16 query rows, the longest causal rows first.
    let qbr = qw * 16;
    let nqb = lq.div_ceil(qbr);
    let shared = (2 * qbr * d + 4 * qbc * d) * 2;
    let f = func("umx_flash_dq")?;
    set_shared(f, shared, "attention")?;
    let mut args = Args::default();
    args.push(dq_ptr)
        .push(qp)
        .push(kp)
        .push(vp)
        .push(dout_ptr)
        .push(lse_ptr)
        .push(delta_ptr)
        .push((b * hq) as i64)
        .push(hq as i64)
        .push(lq as i64)
        .push(lk as i64)
        .push((hq / hk) as i64)
        .push(nqb as i64)
        .push(scale);
    push_strides(&mut args, [&q, &k, &v]);
    launch(
        f,
        (nqb * b * hq) as u32,
        (qw * 32) as u32,
        shared as u32,
        &mut args.pointers(),
    )?;
    // dK, dV: blocks of kw * 16 keys, each over its group's query heads; head dim 256 takes
    // them in two kernels (one accumulator each: both spilled, 106 against 122 TFLOP/s).
    let kbc = kw * 16;
    let nkb = lk.div_ceil(kbc);
    let shared = (2 * kbc * d + 4 * kbr * d) * 2 + 4 * kbr * 4;
    let names: &[&str] = if d == 256 {
        &["umx_flash_dk", "umx_flash_dv"]
    } else {
        &["umx_flash_dkv"]
    };
    let mut args = Args::default();
    args.push(dk_ptr)
        .push(dv_ptr)
        .push(qp)
        .push(kp)
        .push(vp)
        .push(dout_ptr)
        .push(lse_ptr)
        .push(delta_ptr)
        .push((b * hk) as i64)
        .push(hk as i64)
        .push(lq as i64)
        .push(lk as i64)
        .push((hq / hk) as i64)
        .push(scale);
    push_strides(&mut args, [&q, &k, &v]);
    for name in names {
        let f = func(name)?;
        set_shared(f, shared, "attention")?;
        launch(
            f,
            (nkb * b * hk) as u32,
            (kw * 32) as u32,
            shared as u32,
            &mut args.pointers(),
        )?;
    }
    if start.is_some() {
        crate::profile::span(
            format!(
                " flash attention backward: {} + {} blocks",
                nqb * b * hq,
                nkb * b * hk
            ),
            start,
        )?;
    }
    // The scratch goes back to the pool; the stream orders its reuse after these launches.
    drop(delta);
    Ok(Some(vec![dq, dk, dv]))
}

/// The gradients of attention on Hopper (`flash_sm90.cu`, BACKWARD 1), head dims 64 and 128,
/// into `outs` (dQ, dK, dV, row-major): each row's dot(dO, O) and a zeroed float32 dQ, then
/// one kernel a block of 128 keys (two consumer warpgroups of 64 and a producer warpgroup
/// loading query tiles of 64 rows; dK and dV in registers, each tile's share of dQ added to
/// the float32 dQ by the copy engine), then dQ scaled and rounded. `false` (nothing queued)
/// where the architecture-specific target does not build or the driver takes no map of the
/// float32 dQ: the `mma.sync` kernels then run.
fn hopper_backward(
    inputs: [&ArrayData; 6],
    outs: [u64; 3],
    group: usize,
    scale: f32,
    causal: bool,
) -> Result<bool> {
    let [q, k, v, o, lse, dout] = inputs;
    let [dq_ptr, dk_ptr, dv_ptr] = outs;
    let [b, hq, lq, d] = q.shape[..] else {
        return Ok(false);
    };
    let (hk, lk, dt) = (k.shape[1], k.shape[2], q.dtype);
    let key = format!("flash90_bwd|{dt:?}|{d}|{causal}");
    let make = || {
        format!(
            "#define D {d}\n#define WG 2\n#define NS 2\n#define BACKWARD 1\n\
             #define IS_F16 {}\n#define CAUSAL {}\n{}",
            (dt == Dtype::Float16) as u8,
            causal as u8,
            FLASH_SM90_CU
        )
    };
    let func = |name: &str| function_for_arch_specific(&format!("{key}|{name}"), make, name);
    let Ok(main) = func("umx_flash_bwd") else {
        return Ok(false);
    };
    let rows = b * hq * lq;
    let (dq_sum, dq_sum_ptr) = fresh(&[b * hq, lq, d], Dtype::Float32)?;
    // Boxes of 32 float32 columns by 64 rows of one head (rows past the head's end clipped).
    let Some(map) = encode_tiled(
        dq_sum_ptr,
        sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
        &[d as u64, lq as u64, (b * hq) as u64],
        &[d as u64 * 4, (lq * d) as u64 * 4],
        &[32, 64, 1],
    )?
    else {
        return Ok(false);
    };
    let (delta, delta_ptr) = fresh(&[rows], Dtype::Float32)?;
    let (o_ptr, lse_ptr, dout_ptr) = (input_ptr(o)?, input_ptr(lse)?, input_ptr(dout)?);
    let start = crate::profile::mark()?;
    let mut args = Args::default();
    args.push(delta_ptr)
        .push(dq_sum_ptr)
        .push(dout_ptr)
        .push(o_ptr)
        .push(lse_ptr)
        .push(rows as i64);
    launch(
        func("umx_flash_bwd_pre")?,
        (rows * d / 8).div_ceil(256) as u32,
        256,
        0,
        &mut args.pointers(),
    )?;
    // Shared memory: K and V of the block, NS stages of Q and dO, two dS^T buffers, each
    // warpgroup's dQ staging tile (BM x 64 float32), NS stages of the log-sum-exp and delta,
    // and 1024 bytes to align the swizzled tiles.
    let (bnk, bm, ns) = (128, 64, 2);
    let shared = 1024
        + 2 * bnk * d * 2
        + 2 * ns * bm * d * 2
        + 2 * bnk * bm * 2
        + 2 * bm * 64 * 4
        + 2 * ns * bm * 4;
    set_shared(main, shared, "attention")?;
    let nkb = lk.div_ceil(bnk);
    let mut args = Args::default();
    args.push(dq_sum_ptr)
        .push(dk_ptr)
        .push(dv_ptr)
        .push(input_ptr(q)?)
        .push(input_ptr(k)?)
        .push(input_ptr(v)?)
        .push(dout_ptr)
        .push(lse_ptr)
        .push(delta_ptr)
        .push((b * hk) as i64)
        .push(hk as i64)
        .push(lq as i64)
        .push(lk as i64)
        .push(group as i64)
        .push(nkb as i64)
        .push(scale * std::f32::consts::LOG2_E)
        .push(scale);
    push_strides(&mut args, [q, k, v]);
    args.push(map);
    launch(
        main,
        (nkb * b * hk) as u32,
        384,
        shared as u32,
        &mut args.pointers(),
    )?;
    let groups = rows * d / 8;
    let mut args = Args::default();
    args.push(dq_ptr)
        .push(dq_sum_ptr)
        .push(scale)
        .push(groups as i64);
    launch(
        func("umx_flash_dq_convert")?,
        groups.div_ceil(256) as u32,
        256,
        0,
        &mut args.pointers(),
    )?;
    if start.is_some() {
        crate::profile::span(
            format!(" flash attention backward (wgmma): {} blocks", nkb * b * hk),
            start,
        )?;
    }
    // The scratch goes back to the pool; the stream orders its reuse after these launches.
    drop((delta, dq_sum));
    Ok(true)
}

/// The element strides of the batch, head and row axes of `q`, `k` and `v`, which every
/// flash kernel takes after its other arguments.
fn push_strides(args: &mut Args, qkv: [&ArrayData; 3]) {
    for a in qkv {
        for &s in &a.strides[..3] {
            args.push(s as i64);
        }
    }
}
