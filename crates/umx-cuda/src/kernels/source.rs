//! Pieces of generated CUDA source shared by the kernel families: storage types, loads and
//! stores with umx's conversions, and kernel arguments.

use std::ffi::c_void;
use umx_core::Dtype;
use umx_core::primitives::codegen::c_compute_type;

/// Conversions between float and the 16-bit float formats, written out so no CUDA header is
/// needed (headers make each NVRTC compile several times slower). Rounding is to nearest even,
/// as the `half` crate the CPU kernels use (on sm_80 and later by the conversion instruction
/// instead of integer steps); bfloat16 NaNs stay quiet NaNs with their sign and payload, as
/// there.
pub const HEADER: &str = r#"
#define UMX_FN __device__ __forceinline__
UMX_FN float umx_h2f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
UMX_FN unsigned short umx_f2h(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
UMX_FN float umx_bf2f(unsigned short h) { return __uint_as_float(((unsigned int)h) << 16); }
UMX_FN unsigned short umx_f2bf(float f) {
  unsigned int u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
#if __CUDA_ARCH__ >= 800
  unsigned short h; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
#else
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
#endif
}
template<class T, int E> struct alignas(sizeof(T) * E) umx_pack { T v[E]; };
"#;

/// The rotation of a rotary embedding's feature pair, for the kernels that apply one (the
/// rope op's, `rope_cache_write`'s and the matrix-vector kernel's rope form): `(xa, xb)`
/// turned by `angle` radians.
pub const ROTATE: &str = r#"
UMX_FN void umx_rotate(float xa, float xb, float angle, float* ya, float* yb) {
  float s, c;
  sincosf(angle, &s, &c);
  *ya = xa * c - xb * s;
  *yb = xa * s + xb * c;
}
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
#[derive(Clone)]
pub struct Args {
    words: Vec<u64>,
    starts: Vec<usize>,
}

impl Default for Args {
    /// Room for a typical launch's arguments, so that pushing them does not reallocate (a
    /// small op's dispatch is a few microseconds, and each allocation counts).
    fn default() -> Args {
        Args {
            words: Vec::with_capacity(32),
            starts: Vec::with_capacity(16),
        }
    }
}

impl Args {
    /// Adds a plain-data argument.
    pub fn push<T: Copy>(&mut self, v: T) -> &mut Self {
        let at = self.slot(std::mem::size_of::<T>());
        // SAFETY: the slot has room for T; T is plain data. The slot is 8-byte aligned, which
        // a type may exceed (a tensor map asks for 64): written unaligned.
        unsafe { std::ptr::write_unaligned(self.words[at..].as_mut_ptr() as *mut T, v) };
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

/// complex64 in generated code: a pair of floats with the arithmetic of `num_complex` (which
/// the CPU kernels use: the same textbook formulas, division included), conversions with C++
/// `static_cast` semantics as umx's casts (a real value has a zero imaginary part; a complex
/// value cast to a real type keeps its real part; to bool, whether either part is nonzero).
pub const COMPLEX_PRELUDE: &str = r#"
struct __align__(8) umx_c64 {
  float re, im;
  umx_c64() = default;
  UMX_FN umx_c64(float r, float i) : re(r), im(i) {}
  template<class T> UMX_FN umx_c64(T r) : re((float)r), im(0.0f) {}
  UMX_FN explicit operator bool() const { return re != 0.0f || im != 0.0f; }
  template<class T> UMX_FN explicit operator T() const { return (T)re; }
};
/* Warp shuffles of a pair: each part on its own. The parameters are the built-in ones'
   (`unsigned` delta), so for a value of another type the built-in overload matches better
   (an `int` delta made the two ambiguous in a kernel whose input only is complex). */
UMX_FN umx_c64 __shfl_down_sync(unsigned mask, umx_c64 v, unsigned delta) {
  return umx_c64(__shfl_down_sync(mask, v.re, delta), __shfl_down_sync(mask, v.im, delta));
}
UMX_FN umx_c64 operator+(umx_c64 a, umx_c64 b) { return umx_c64(a.re + b.re, a.im + b.im); }
UMX_FN umx_c64 operator-(umx_c64 a, umx_c64 b) { return umx_c64(a.re - b.re, a.im - b.im); }
UMX_FN umx_c64 operator-(umx_c64 a) { return umx_c64(-a.re, -a.im); }
UMX_FN umx_c64 operator*(umx_c64 a, umx_c64 b) {
  return umx_c64(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re);
}
UMX_FN umx_c64 operator/(umx_c64 a, umx_c64 b) {
  float d = b.re * b.re + b.im * b.im;
  return umx_c64((a.re * b.re + a.im * b.im) / d, (a.im * b.re - a.re * b.im) / d);
}
UMX_FN float umx_finf() { return __int_as_float(0x7f800000); }
UMX_FN bool operator==(umx_c64 a, umx_c64 b) { return a.re == b.re && a.im == b.im; }
/* `a` when `first`, else `b` (max/min of pairs: `a` and `b` are evaluated once). */
UMX_FN umx_c64 umx_cpick(umx_c64 a, umx_c64 b, bool first) { return first ? a : b; }
UMX_FN bool operator!=(umx_c64 a, umx_c64 b) { return !(a == b); }
UMX_FN float umx_cabs(umx_c64 z) { return hypotf(z.re, z.im); }
UMX_FN umx_c64 umx_cexp(umx_c64 z) { float e = expf(z.re); return umx_c64(e * cosf(z.im), e * sinf(z.im)); }
UMX_FN umx_c64 umx_clog(umx_c64 z) { return umx_c64(logf(umx_cabs(z)), atan2f(z.im, z.re)); }
UMX_FN umx_c64 umx_csqrt(umx_c64 z) {
  if (z.im == 0.0f) {
    if (z.re >= 0.0f) return umx_c64(sqrtf(z.re), z.im);
    return umx_c64(0.0f, copysignf(sqrtf(-z.re), z.im));
  }
  float r = sqrtf(umx_cabs(z)), t = atan2f(z.im, z.re) * 0.5f;
  return umx_c64(r * cosf(t), r * sinf(t));
}
UMX_FN umx_c64 umx_cscale(float re, float im, float d) { return umx_c64(re / d, im / d); }
UMX_FN umx_c64 umx_clogb(umx_c64 z, float ln_base) { umx_c64 l = umx_clog(z); return umx_cscale(l.re, l.im, ln_base); }
UMX_FN umx_c64 umx_ctan(umx_c64 z) {
  float a = z.re + z.re, b = z.im + z.im;
  return umx_cscale(sinf(a), sinhf(b), cosf(a) + coshf(b));
}
UMX_FN umx_c64 umx_ctanh(umx_c64 z) {
  float a = z.re + z.re, b = z.im + z.im;
  return umx_cscale(sinhf(a), sinf(b), coshf(a) + cosf(b));
}
UMX_FN umx_c64 umx_csign(umx_c64 z) {
  float r = umx_cabs(z);
  return r == 0.0f ? umx_c64(0.0f, 0.0f) : umx_c64(z.re / r, z.im / r);
}
"#;

/// [`COMPLEX_PRELUDE`] where a kernel touches complex64, else nothing.
pub fn complex_prelude(complex: bool) -> &'static str {
    if complex { COMPLEX_PRELUDE } else { "" }
}

/// [`storage_type`] for generators that handle complex64 (as `umx_c64`); the others keep
/// `None` for it and leave complex64 to the CPU.
pub fn complex_storage_type(d: Dtype) -> Option<&'static str> {
    match d {
        Dtype::Complex64 => Some("umx_c64"),
        _ => storage_type(d),
    }
}

/// The compute type of `d`, complex64 included (as `umx_c64`).
pub fn complex_compute_type(d: Dtype) -> Option<&'static str> {
    match d {
        Dtype::Complex64 => Some("umx_c64"),
        _ => c_compute_type(d),
    }
}

/// [`store`], complex64 included.
pub fn complex_store(to: Dtype, x: &str) -> String {
    match to {
        Dtype::Complex64 => format!("((umx_c64)({x}))"),
        _ => store(to, x),
    }
}
