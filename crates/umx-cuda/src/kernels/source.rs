//! Pieces of generated CUDA source shared by the kernel families: storage types, loads and
//! stores with umx's conversions, and kernel arguments.

use std::ffi::c_void;
use umx_core::Dtype;
use umx_core::primitives::codegen::c_compute_type;

/// Conversions between float and the 16-bit float formats, written out so no CUDA header is
/// needed (headers make each NVRTC compile several times slower). Rounding is to nearest even,
/// as the `half` crate the CPU kernels use; bfloat16 NaNs stay quiet NaNs as there.
pub const HEADER: &str = r#"
#define UMX_FN __device__ __forceinline__
UMX_FN float umx_h2f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
UMX_FN unsigned short umx_f2h(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
UMX_FN float umx_bf2f(unsigned short h) { return __uint_as_float(((unsigned int)h) << 16); }
UMX_FN unsigned short umx_f2bf(float f) {
  unsigned int u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}
template<class T, int E> struct alignas(sizeof(T) * E) umx_pack { T v[E]; };
"#;

/// The C type a dtype is stored as in device memory.
pub fn storage_type(d: Dtype) -> Option<&'static str> {
    Some(match d {
        Dtype::Bool => "unsigned char",
        Dtype::Float16 | Dtype::Bfloat16 => "unsigned short",
        other => c_compute_type(other)?,
    })
}

/// A C expression converting the stored value `v` of `from` to the compute type `to_c` (with
/// `static_cast` semantics, as umx's `Element::cast`).
pub fn load(from: Dtype, v: &str, to_c: &str) -> String {
    let native = match from {
        Dtype::Float16 => format!("umx_h2f({v})"),
        Dtype::Bfloat16 => format!("umx_bf2f({v})"),
        Dtype::Bool => format!("({v} != 0)"),
        _ => v.to_string(),
    };
    format!("(({to_c})({native}))")
}

/// A C expression converting a compute value `x` to the stored form of `to`.
pub fn store(to: Dtype, x: &str) -> String {
    match to {
        Dtype::Float16 => format!("umx_f2h((float)({x}))"),
        Dtype::Bfloat16 => format!("umx_f2bf((float)({x}))"),
        Dtype::Bool => format!("((unsigned char)(({x}) != 0))"),
        other => format!("(({})({x}))", storage_type(other).unwrap_or("void")),
    }
}

/// Kernel arguments: each value in its own 8-byte-aligned run of one buffer, and the pointers
/// to them that `cuLaunchKernel` wants (one allocation for all of a launch's arguments).
#[derive(Clone, Default)]
pub struct Args {
    words: Vec<u64>,
    starts: Vec<usize>,
}

impl Args {
    /// Adds a plain-data argument.
    pub fn push<T: Copy>(&mut self, v: T) -> &mut Self {
        let at = self.slot(std::mem::size_of::<T>());
        // SAFETY: the slot has room for T and is 8-byte aligned; T is plain data.
        unsafe { std::ptr::write(self.words[at..].as_mut_ptr() as *mut T, v) };
        self
    }

    /// Adds raw bytes as one argument (a value of a C type the caller laid out).
    pub fn push_bytes(&mut self, bytes: &[u8]) -> &mut Self {
        let at = self.slot(bytes.len());
        // SAFETY: the slot has room for the bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.words[at..].as_mut_ptr() as *mut u8,
                bytes.len(),
            )
        };
        self
    }

    /// A zeroed run of words for `bytes` bytes; returns its first word.
    fn slot(&mut self, bytes: usize) -> usize {
        let at = self.words.len();
        self.words.resize(at + bytes.div_ceil(8).max(1), 0);
        self.starts.push(at);
        at
    }

    /// The pointers to each argument (valid until the arguments change).
    pub fn pointers(&mut self) -> Vec<*mut c_void> {
        let base = self.words.as_mut_ptr();
        self.starts
            .iter()
            // SAFETY: every start lies inside `words`.
            .map(|&at| unsafe { base.add(at) } as *mut c_void)
            .collect()
    }
}

/// Blocks for a grid-stride loop over `work` items with `threads` per block: enough to fill
/// the card several times over, no more.
pub fn grid_for(work: usize, threads: u32, sm_count: u32) -> u32 {
    let want = work.div_ceil(threads as usize);
    want.min(sm_count as usize * 16).max(1) as u32
}
