//! User CUDA kernels (`fast::cuda_kernel`, MLX's `mx.fast.cuda_kernel`): the signature is
//! generated around the user's body, NVRTC compiles it with the CUDA headers (when the
//! toolkit is installed) and the module cache keeps it, and the launch counts `grid` in
//! threads, as MLX does.

use super::contiguous;
use crate::compile::function_with;
use crate::gpu::{driver_err, gpu};
use crate::storage::{fresh, input_ptr};
use cudarc::driver::result;
use std::ffi::c_void;
use std::fmt::Write;
use std::sync::OnceLock;
use umx_core::primitives::{TemplateArg, UserKernel};
use umx_core::{ArrayData, Dtype, Error, Result};

use super::source::Args;

/// Axes an input's shape and strides may have when the source asks for them.
const MAX_DIMS: usize = 10;

/// The CUDA include directories (the toolkit's, and CCCL's under it, which
/// `cooperative_groups.h` needs on CUDA 13), empty when the toolkit is not installed.
fn include_dirs() -> &'static [String] {
    static DIRS: OnceLock<Vec<String>> = OnceLock::new();
    DIRS.get_or_init(|| {
        let found = ["CUDA_HOME", "CUDA_PATH"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .map(|d| format!("{d}/include"))
            .chain(["/usr/local/cuda/include".to_string()])
            .find(|d| std::path::Path::new(d).join("cuda_fp16.h").exists());
        let Some(dir) = found else {
            return Vec::new();
        };
        let cccl = format!("{dir}/cccl");
        let mut dirs = vec![dir];
        if std::path::Path::new(&cccl).is_dir() {
            dirs.push(cccl);
        }
        dirs
    })
}

/// The C type of a dtype in a user kernel's signature.
fn c_type(d: Dtype) -> Result<&'static str> {
    Ok(match d {
        Dtype::Bool => "bool",
        Dtype::Uint8 => "unsigned char",
        Dtype::Uint16 => "unsigned short",
        Dtype::Uint32 => "unsigned int",
        Dtype::Uint64 => "unsigned long long",
        Dtype::Int8 => "signed char",
        Dtype::Int16 => "short",
        Dtype::Int32 => "int",
        Dtype::Int64 => "long long",
        Dtype::Float16 => "__half",
        Dtype::Bfloat16 => "__nv_bfloat16",
        Dtype::Float32 => "float",
        Dtype::Float64 => "double",
        other => {
            return Err(Error::Invalid(format!(
                "cuda_kernel: {other} has no C type in a kernel"
            )));
        }
    })
}

/// Whether `source` mentions the identifier `word` (not as part of a longer one).
fn mentions(source: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    source.match_indices(word).any(|(at, _)| {
        let before = source[..at].chars().next_back();
        let after = source[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

const PRELUDE: &str = r#"
template <class T> struct umx_dims { T v[10]; __device__ T operator[](int i) const { return v[i]; } };
/* The strided offset of the row-major index `elem` (MLX's elem_to_loc). */
template <class S, class T>
__device__ long long elem_to_loc(long long elem, const S& shape, const T& strides, int ndim) {
  long long loc = 0;
  for (int i = ndim - 1; i >= 0 && elem > 0; --i) {
    loc += (elem % shape[i]) * strides[i];
    elem /= shape[i];
  }
  return loc;
}
"#;

/// The generated source and whether each input gets its shape, strides and ndim.
fn source(k: &UserKernel, inputs: &[ArrayData]) -> Result<(String, Vec<[bool; 3]>)> {
    let mut s = String::new();
    if !include_dirs().is_empty() {
        s.push_str(
            "#include <cuda_fp16.h>\n#include <cuda_bf16.h>\n#include <cooperative_groups.h>\n",
        );
    }
    s.push_str(PRELUDE);
    for (name, arg) in &k.template {
        let _ = match arg {
            TemplateArg::Dtype(d) => writeln!(s, "typedef {} {name};", c_type(*d)?),
            TemplateArg::Int(v) => writeln!(s, "constexpr long long {name} = {v};"),
            TemplateArg::Bool(v) => writeln!(s, "constexpr bool {name} = {v};"),
        };
    }
    s.push_str(&k.header);
    let _ = write!(s, "\nextern \"C\" __global__ void umx_user_{}(", k.name);
    let mut params = Vec::new();
    let mut meta = Vec::new();
    for (x, name) in inputs.iter().zip(&k.input_names) {
        params.push(format!("const {}* __restrict__ {name}", c_type(x.dtype)?));
        let want = [
            mentions(&k.source, &format!("{name}_shape")),
            mentions(&k.source, &format!("{name}_strides")),
            mentions(&k.source, &format!("{name}_ndim")),
        ];
        if want[0] {
            params.push(format!("const umx_dims<int> {name}_shape"));
        }
        if want[1] {
            params.push(format!("const umx_dims<long long> {name}_strides"));
        }
        if want[2] {
            params.push(format!("const int {name}_ndim"));
        }
        meta.push(want);
    }
    for (o, name) in k.outputs.iter().zip(&k.output_names) {
        params.push(format!("{}* __restrict__ {name}", c_type(o.dtype)?));
    }
    s.push_str(&params.join(", "));
    s.push_str(") {\n");
    s.push_str(&k.source);
    s.push_str("\n}\n");
    Ok((s, meta))
}

pub(super) fn eval(k: &UserKernel, inputs: &[ArrayData]) -> Result<Option<Vec<ArrayData>>> {
    let inputs: Vec<ArrayData> = if k.ensure_row_contiguous {
        let mut v = Vec::with_capacity(inputs.len());
        for x in inputs {
            match contiguous(x, x.dtype)? {
                Some(c) => v.push(c),
                None => return Ok(None),
            }
        }
        v
    } else {
        inputs.to_vec()
    };
    let (src, meta) = source(k, &inputs)?;
    if k.verbose {
        eprintln!("cuda_kernel {}: generated source\n{src}", k.name);
    }
    let g = gpu()?;
    let mut options = vec!["--std=c++17".to_string()];
    options.extend(include_dirs().iter().map(|d| format!("-I{d}")));
    let f = function_with(&src, &format!("umx_user_{}", k.name), &options, false)
        .map_err(|e| Error::Invalid(format!("cuda_kernel {}: {e}", k.name)))?;

    let mut outs = Vec::with_capacity(k.outputs.len());
    let mut out_ptrs = Vec::with_capacity(k.outputs.len());
    for o in &k.outputs {
        let data = match k.init_value {
            Some(v) => {
                let Some(d) = super::elementwise::run(
                    &[],
                    &[],
                    &format!("({})", c_literal(v)),
                    &o.shape,
                    o.dtype,
                )?
                else {
                    return Ok(None);
                };
                d
            }
            None => fresh(&o.shape, o.dtype)?.0,
        };
        out_ptrs.push(input_ptr(&data)?);
        outs.push(data);
    }
    let mut args = Args::default();
    for (x, want) in inputs.iter().zip(&meta) {
        args.push(input_ptr(x)?);
        if x.shape.len() > MAX_DIMS && want.iter().take(2).any(|&w| w) {
            return Err(Error::Invalid(format!(
                "cuda_kernel {}: an input of {} axes; shapes and strides go up to {MAX_DIMS}",
                k.name,
                x.shape.len()
            )));
        }
        if want[0] {
            let mut v = [0i32; MAX_DIMS];
            for (d, &n) in v.iter_mut().zip(&x.shape) {
                *d = i32::try_from(n).map_err(|_| {
                    Error::Invalid(format!("cuda_kernel {}: a dimension over 2^31", k.name))
                })?;
            }
            args.push(v);
        }
        if want[1] {
            let mut v = [0i64; MAX_DIMS];
            for (d, &st) in v.iter_mut().zip(&x.strides) {
                *d = st as i64;
            }
            args.push(v);
        }
        if want[2] {
            args.push(x.shape.len() as i32);
        }
    }
    for &p in &out_ptrs {
        args.push(p);
    }
    let blocks = |i: usize| -> Result<u32> {
        u32::try_from(k.grid[i].div_ceil(k.threadgroup[i]))
            .map_err(|_| Error::Invalid(format!("cuda_kernel {}: grid too large", k.name)))
    };
    let grid = (blocks(0)?, blocks(1)?, blocks(2)?);
    let block = (
        k.threadgroup[0] as u32,
        k.threadgroup[1] as u32,
        k.threadgroup[2] as u32,
    );
    let shared = u32::try_from(k.shared_memory)
        .map_err(|_| Error::Invalid(format!("cuda_kernel {}: shared memory too large", k.name)))?;
    if shared > 48 * 1024 {
        super::set_shared(f, shared as usize, &format!("cuda_kernel {}", k.name))?;
    }
    let mut ptrs = args.pointers();
    // SAFETY: the arguments follow the generated signature; the buffers outlive the queued
    // launch (the pool reuses memory only in stream order).
    unsafe {
        result::launch_kernel(
            f,
            grid,
            block,
            shared,
            g.stream(),
            ptrs.as_mut_slice() as &mut [*mut c_void],
        )
    }
    .map_err(|e| driver_err(&format!("launching cuda_kernel {}", k.name), e))?;
    Ok(Some(outs))
}

/// A float literal C reads back as `v`.
fn c_literal(v: f64) -> String {
    if v.is_nan() {
        "__int_as_float(0x7fc00000)".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "__int_as_float(0x7f800000)".into()
        } else {
            "__int_as_float(0xff800000)".into()
        }
    } else {
        format!("{v:e}")
    }
}
