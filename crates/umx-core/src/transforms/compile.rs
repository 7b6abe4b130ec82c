//! [`compile`]: trace a function once per input signature, simplify its graph, fold additions
//! into the products before them (`addmm`) and RMS norms into the matrix-vector ops after them
//! (`FastOp::NormPrologue`), fuse chains of
//! element-wise ops into single [`FusedOp`] nodes (with the reduction they feed, if any),
//! group the fused chains whose values only leave the function (an optimizer's per-parameter
//! updates) into one [`FusedGroup`] node, and replay the result on each call.
//!
//! The traced program is a list of steps (primitives over the function's inputs, earlier
//! steps and captured constants). Replaying it builds the same lazy graph `f` would, minus
//! duplicates and no-ops, with fused regions in place of element-wise chains; every backend
//! evaluates a fused node in one pass. Because a fused node has transformation rules (it
//! expands back into its ops), compiled functions compose with `grad`, `vjp`, `jvp` and `vmap`
//! in any order.
//!
//! `UMX_COMPILE_DUMP=1` prints each traced program (a line per step: what it runs, its
//! operands and outputs) to standard error: what a compiled function launches.

use super::Tracing;
use super::graph::{key, tape};
use crate::device::OutSpec;
use crate::primitives::fused::{FusedArg, FusedInstr, FusedReduce, GroupMember};
use crate::primitives::reduce::ReduceOp;
use crate::primitives::{
    FastOp, FusedGroup, FusedOp, MatmulOp, Primitive, Projection, QuantOp, ShapeOp, TransformOp,
    UnaryOp,
};
use crate::shape::broadcast_shapes;
use crate::{Array, Dtype, Result, bail};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Where a step's operand comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Ref {
    Input(usize),
    Const(usize),
    Step(usize, usize),
}

#[derive(Clone, Debug)]
struct Step {
    prim: Primitive,
    args: Vec<Ref>,
    outputs: Vec<OutSpec>,
}

/// A traced, simplified and fused function.
struct Program {
    steps: Vec<Step>,
    consts: Vec<Array>,
    outputs: Vec<Ref>,
    /// The input shapes it was traced with.
    input_shapes: Vec<Vec<usize>>,
    /// The input dtypes it was traced with.
    input_dtypes: Vec<Dtype>,
}

/// The most programs a compiled function keeps; the least recently used is dropped beyond.
const CACHE_LIMIT: usize = 64;

static DISABLED: AtomicBool = AtomicBool::new(false);

/// Turns compilation off (compiled functions then call the plain function), as MLX's
/// `disable_compile`; the environment variable `UMX_DISABLE_COMPILE=1` does the same at start.
pub fn disable_compile() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// Turns compilation back on.
pub fn enable_compile() {
    DISABLED.store(false, Ordering::Relaxed);
}

fn disabled() -> bool {
    static ENV: OnceLock<bool> = OnceLock::new();
    let env = *ENV.get_or_init(|| {
        std::env::var("UMX_DISABLE_COMPILE").is_ok_and(|v| !v.is_empty() && v != "0")
    });
    env || DISABLED.load(Ordering::Relaxed)
}

type Signature = Vec<(Vec<usize>, Dtype)>;

struct Cache {
    programs: HashMap<Signature, Arc<Program>>,
    order: VecDeque<Signature>,
}

/// `f` compiled: the same results, computed from a traced and fused graph (MLX's
/// `mx.compile`). It retraces when the inputs' shapes or dtypes change; with `shapeless`, only
/// a change of dtype or rank (or of a shape a non-element-wise op depends on) retraces.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, ops, transforms::compile};
/// let f = compile(|x: &[Array]| Ok(vec![ops::divide(ops::add(ops::multiply(&x[0], 2.0)?, 5.0)?, 3.0)?]), false);
/// let x = Array::from_slice(&[1.0f32, 2.0], &[2])?;
/// assert_eq!(f(&[x])?[0].to_vec::<f32>()?, [7.0 / 3.0, 3.0]);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub fn compile(
    f: impl Fn(&[Array]) -> Result<Vec<Array>> + Send + Sync + 'static,
    shapeless: bool,
) -> impl Fn(&[Array]) -> Result<Vec<Array>> + Send + Sync + 'static {
    let cache = Mutex::new(Cache {
        programs: HashMap::new(),
        order: VecDeque::new(),
    });
    move |args: &[Array]| {
        if disabled() {
            return f(args);
        }
        for a in args {
            a.check()?;
        }
        let signature = |exact: bool| -> Signature {
            args.iter()
                .map(|a| {
                    let shape = if exact {
                        a.shape().to_vec()
                    } else {
                        vec![usize::MAX; a.ndim()]
                    };
                    (shape, a.dtype())
                })
                .collect()
        };
        let keys = if shapeless {
            vec![signature(false), signature(true)]
        } else {
            vec![signature(true)]
        };
        for k in &keys {
            let found = {
                let mut c = crate::array::lock(&cache);
                let p = c.programs.get(k).cloned();
                if p.is_some() {
                    c.order.retain(|o| o != k);
                    c.order.push_back(k.clone());
                }
                p
            };
            if let Some(p) = found
                && let Some(out) = replay(&p, args, shapeless)?
            {
                return Ok(out);
            }
        }
        let program = Arc::new(trace(&f, args)?);
        let out = replay(&program, args, shapeless)?.ok_or_else(|| {
            crate::Error::Invalid("compile: a fresh trace does not replay".into())
        })?;
        let k = keys[0].clone();
        let mut c = crate::array::lock(&cache);
        if c.programs.insert(k.clone(), program).is_none() {
            c.order.push_back(k);
        }
        while c.order.len() > CACHE_LIMIT {
            if let Some(old) = c.order.pop_front() {
                c.programs.remove(&old);
            }
        }
        Ok(out)
    }
}

/// `f(args)`, compiled once: traced, simplified and fused like [`compile`]'s first call, with
/// nothing cached. For a function that changes between calls (it captures this step's
/// numbers, say) and is cheap to trace, as an optimizer's per-parameter update: its
/// element-wise chain becomes a few fused kernels. `f` need not be `'static`. Honours
/// [`disable_compile`].
pub fn compile_once(
    f: &dyn Fn(&[Array]) -> Result<Vec<Array>>,
    args: &[Array],
) -> Result<Vec<Array>> {
    if disabled() {
        return f(args);
    }
    let program = trace(f, args)?;
    replay(&program, args, false)?
        .ok_or_else(|| crate::Error::Invalid("compile: a fresh trace does not replay".into()))
}

/// Traces `f` on placeholders shaped like `args`, then simplifies and fuses the graph.
fn trace(f: &dyn Fn(&[Array]) -> Result<Vec<Array>>, args: &[Array]) -> Result<Program> {
    let _tracing = Tracing::start();
    let mut sources = HashSet::new();
    let mut input_of: HashMap<usize, usize> = HashMap::new();
    let mut placeholders = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        let p = Array::from_primitive(
            Primitive::Transform(TransformOp::Placeholder),
            vec![],
            a.shape().to_vec(),
            a.dtype(),
        )?;
        let (node, _) = p.node().expect("a new node");
        sources.insert(key(&node));
        input_of.insert(key(&node), i);
        placeholders.push(p);
    }
    let outs = f(&placeholders)?;
    let (nodes, _) = tape(&outs, &sources, false)?;
    let mut step_of: HashMap<usize, usize> = HashMap::new();
    let mut consts: Vec<Array> = Vec::new();
    let mut const_of: HashMap<usize, usize> = HashMap::new();
    // The steps of the members of a group node (node, output) -> its member's step.
    let mut group_out: HashMap<(usize, usize), Ref> = HashMap::new();
    let mut refer = |a: &Array,
                     step_of: &HashMap<usize, usize>,
                     group_out: &HashMap<(usize, usize), Ref>|
     -> Ref {
        if let Some((n, k)) = a.node() {
            if let Some(&i) = input_of.get(&key(&n)) {
                return Ref::Input(i);
            }
            if let Some(&r) = group_out.get(&(key(&n), k)) {
                return r;
            }
            if let Some(&s) = step_of.get(&key(&n)) {
                return Ref::Step(s, k);
            }
        }
        // A captured array: the same handle is used on every call (evaluated once).
        let id = std::sync::Arc::as_ptr(&a.inner) as usize;
        let c = *const_of.entry(id).or_insert_with(|| {
            consts.push(a.clone());
            consts.len() - 1
        });
        Ref::Const(c)
    };
    let mut steps = Vec::with_capacity(nodes.len());
    for t in &nodes {
        if let Primitive::FusedGroup(g) = t.prim() {
            // A group an inner compiled function made (a gradient's chains, say): its members
            // become steps of their own, so that this trace fuses each with its neighbours
            // (and groups what is left at the end).
            let mut at = 0;
            for m in &g.members {
                let args = m
                    .inputs
                    .iter()
                    .map(|&i| refer(&t.inputs[i], &step_of, &group_out))
                    .collect();
                let count = m.output_count();
                for j in 0..count {
                    group_out.insert((key(&t.node), at + j), Ref::Step(steps.len(), j));
                }
                steps.push(Step {
                    prim: Primitive::Fused(m.op.clone()),
                    args,
                    outputs: t.node.outputs[at..at + count].to_vec(),
                });
                at += count;
            }
            continue;
        }
        let args = t
            .inputs
            .iter()
            .map(|a| refer(a, &step_of, &group_out))
            .collect();
        step_of.insert(key(&t.node), steps.len());
        steps.push(Step {
            prim: t.prim().clone(),
            args,
            outputs: t.node.outputs.clone(),
        });
    }
    let outputs = outs
        .iter()
        .map(|o| refer(o, &step_of, &group_out))
        .collect();
    let mut p = Program {
        steps,
        consts,
        outputs,
        input_shapes: args.iter().map(|a| a.shape().to_vec()).collect(),
        input_dtypes: args.iter().map(|a| a.dtype()).collect(),
    };
    simplify(&mut p);
    matmul_epilogues(&mut p);
    quantized_epilogues(&mut p);
    norm_prologues(&mut p);
    norm_linear_prologues(&mut p);
    fuse(&mut p);
    group(&mut p);
    if dump() {
        eprint!("{}", describe(&p));
    }
    Ok(p)
}

/// Whether traced programs are printed (`UMX_COMPILE_DUMP=1`): to see what a compiled
/// function runs, a line per step (each a kernel, or a view).
fn dump() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("UMX_COMPILE_DUMP").is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// The program's live steps, a line each: the primitive (a fused step's instructions and
/// reduction), its operands and its outputs' shapes and dtypes.
fn describe(p: &Program) -> String {
    use std::fmt::Write;
    let live = reachable(p);
    let name = |r: &Ref| match r {
        Ref::Input(i) => format!("in{i}"),
        Ref::Const(c) => format!("c{c}{:?}", p.consts[*c].shape()),
        Ref::Step(j, 0) => format!("#{j}"),
        Ref::Step(j, k) => format!("#{j}.{k}"),
    };
    let mut out = format!(
        "compile: {} steps over inputs {:?}\n",
        live.iter().filter(|&&l| l).count(),
        p.input_shapes
    );
    for (i, s) in p.steps.iter().enumerate().filter(|(i, _)| live[*i]) {
        let what = match &s.prim {
            Primitive::Fused(op) => {
                let ins: Vec<&str> = op.program.iter().map(|x| x.prim.name()).collect();
                let red = op.reduce.as_ref().map_or(String::new(), |r| {
                    format!(" then {:?} over {:?}", r.kind, r.axes)
                });
                format!("fused[{}]{red}", ins.join(" "))
            }
            Primitive::FusedGroup(g) => {
                let members: Vec<String> = g
                    .members
                    .iter()
                    .map(|m| {
                        let ins: Vec<&str> = m.op.program.iter().map(|x| x.prim.name()).collect();
                        format!("[{}]", ins.join(" "))
                    })
                    .collect();
                format!("fused_group[{}]", members.join(" "))
            }
            prim => prim.name().to_string(),
        };
        let args: Vec<String> = s.args.iter().map(name).collect();
        let outs: Vec<String> = s
            .outputs
            .iter()
            .map(|o| format!("{:?} {}", o.shape, o.dtype))
            .collect();
        let _ = writeln!(
            out,
            "  #{i} {what}({}) -> {}",
            args.join(", "),
            outs.join(", ")
        );
    }
    out
}

/// Merges duplicate steps and equal scalar constants, and skips steps that change nothing.
fn simplify(p: &mut Program) {
    // Equal scalar constants become one.
    let mut canon_const: Vec<usize> = (0..p.consts.len()).collect();
    let mut seen: HashMap<(Dtype, u64), usize> = HashMap::new();
    for (i, c) in p.consts.iter().enumerate() {
        if c.size() == 1
            && c.ndim() == 0
            && c.is_evaluated()
            && let Ok(v) = c.item::<f64>()
        {
            let k = (c.dtype(), v.to_bits() ^ (c.is_weak() as u64));
            canon_const[i] = *seen.entry(k).or_insert(i);
        }
    }
    let mut rename: HashMap<Ref, Ref> = HashMap::new();
    let resolve = |r: Ref, rename: &HashMap<Ref, Ref>| -> Ref {
        let r = match r {
            Ref::Const(c) => Ref::Const(canon_const[c]),
            other => other,
        };
        *rename.get(&r).unwrap_or(&r)
    };
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for i in 0..p.steps.len() {
        let args: Vec<Ref> = p.steps[i]
            .args
            .iter()
            .map(|&r| resolve(r, &rename))
            .collect();
        p.steps[i].args = args.clone();
        let s = &p.steps[i];
        // A no-op: the output is the input, unchanged.
        let in_spec = |r: Ref| -> Option<(Vec<usize>, Dtype)> {
            match r {
                Ref::Step(j, k) => Some((
                    p.steps[j].outputs[k].shape.clone(),
                    p.steps[j].outputs[k].dtype,
                )),
                _ => None,
            }
        };
        let noop = s.outputs.len() == 1
            && matches!(
                s.prim,
                Primitive::Shape(ShapeOp::Reshape { .. } | ShapeOp::Broadcast { .. })
                    | Primitive::Unary(UnaryOp::AsType(_))
            )
            && in_spec(args[0]) == Some((s.outputs[0].shape.clone(), s.outputs[0].dtype));
        // The identity nodes a transformation traced inside `f` starts from (a vjp's
        // tracers): they would only cut element-wise chains in two.
        let tracer = matches!(s.prim, Primitive::Transform(TransformOp::Depends { n: 1 }))
            && args.len() == 1
            && s.outputs.len() == 1;
        if noop || tracer {
            rename.insert(Ref::Step(i, 0), args[0]);
            continue;
        }
        // Random draws are never merged (two draws are two samples), nor are transformation
        // nodes (custom functions compare by identity, not by name).
        if matches!(s.prim, Primitive::Random(_) | Primitive::Transform(_)) {
            continue;
        }
        let k = format!("{:?}|{:?}|{:?}", s.prim, args, s.outputs);
        match by_key.get(&k) {
            Some(&j) => {
                for o in 0..s.outputs.len() {
                    rename.insert(Ref::Step(i, o), Ref::Step(j, o));
                }
            }
            None => {
                by_key.insert(k, i);
            }
        }
    }
    // Steps nobody refers to any more are skipped at replay (see `reachable`).
    p.outputs = p.outputs.iter().map(|&r| resolve(r, &rename)).collect();
}

/// Folds an addition into the matrix product it follows: `a @ b + c`, where the product is
/// used only by the addition and `c` (a bias, a residual) broadcasts to the product's shape
/// in its dtype, becomes one `addmm` step: the backends add `c` in the product's epilogue
/// (cuBLASLt's bias epilogue for a bias vector, its C operand otherwise) instead of a pass
/// over the product. An activation after it still fuses with what follows (`fuse`).
fn matmul_epilogues(p: &mut Program) {
    let live = reachable(p);
    let uses = use_counts(p, &live);
    for (i, &alive) in live.iter().enumerate() {
        let is_product = |prim: &Primitive| matches!(prim, Primitive::Matmul(MatmulOp::Matmul));
        let Some((c, j)) = summed_product(p, &uses, i, alive, is_product) else {
            continue;
        };
        let out = &p.steps[i].outputs[0];
        let [a, b] = p.steps[j].args[..] else {
            continue;
        };
        let operands_2d = [a, b].iter().all(|&r| shape_of(p, r).len() >= 2);
        if !out.dtype.is_float() || dtype_of(p, c) != out.dtype || !operands_2d {
            continue;
        }
        p.steps[i] = Step {
            prim: Primitive::Matmul(MatmulOp::AddMm {
                alpha: 1.0,
                beta: 1.0,
            }),
            args: vec![c, a, b],
            outputs: vec![out.clone()],
        };
        // The product step is now unreferenced and skipped at replay.
    }
}

/// For step `i`, if it is a live sum of two arguments one of which is a step that
/// `is_product` takes, used there alone and of the sum's shape and dtype: the other
/// argument (the addend) and the product's step.
fn summed_product(
    p: &Program,
    uses: &[usize],
    i: usize,
    alive: bool,
    is_product: impl Fn(&Primitive) -> bool,
) -> Option<(Ref, usize)> {
    let s = &p.steps[i];
    if !alive
        || !matches!(s.prim, Primitive::Binary(crate::primitives::BinaryOp::Add))
        || s.args.len() != 2
        || s.outputs.len() != 1
    {
        return None;
    }
    s.args.iter().enumerate().find_map(|(side, r)| match *r {
        Ref::Step(j, 0)
            if uses[j] == 1
                && is_product(&p.steps[j].prim)
                && p.steps[j].outputs[0] == s.outputs[0] =>
        {
            Some((s.args[1 - side], j))
        }
        _ => None,
    })
}

/// Folds a residual sum into the quantized product it adds: `c + quantized_matmul(x, w, s, b)`
/// (transposed, a 2-D weight, the product's one use, `c` of the sum's shape and dtype) for a
/// few rows of `x` becomes [`FastOp::QuantizedLinearAdd`], so a device adds `c` in the
/// product's pass: a quantized decoding step's output projections, as [`matmul_epilogues`]
/// does for unquantized ones.
fn quantized_epilogues(p: &mut Program) {
    let live = reachable(p);
    let uses = use_counts(p, &live);
    for (i, &alive) in live.iter().enumerate() {
        let is_product = |prim: &Primitive| {
            matches!(
                prim,
                Primitive::Quantized(QuantOp::QuantizedMatmul {
                    transpose: true,
                    ..
                })
            )
        };
        let Some((c, j)) = summed_product(p, &uses, i, alive, is_product) else {
            continue;
        };
        let Primitive::Quantized(QuantOp::QuantizedMatmul {
            group_size, bits, ..
        }) = p.steps[j].prim
        else {
            continue;
        };
        let [x, w, scales, biases] = p.steps[j].args[..] else {
            continue;
        };
        let out = &p.steps[i].outputs[0];
        let n = out.shape.last().copied().unwrap_or(0);
        // Rows of the product (all leading axes): a few, a matrix-vector pass.
        let few = n > 0 && out.shape.iter().product::<usize>() / n <= crate::ops::fast::SWIGLU_ROWS;
        if !out.dtype.is_float()
            || dtype_of(p, c) != out.dtype
            || shape_of(p, c) != out.shape
            || shape_of(p, w).len() != 2
            || !few
        {
            continue;
        }
        p.steps[i] = Step {
            prim: Primitive::Fast(FastOp::QuantizedLinearAdd { group_size, bits }),
            args: vec![x, w, scales, biases, c],
            outputs: vec![out.clone()],
        };
        // The product step is now unreferenced and skipped at replay.
    }
}

/// Folds an RMS norm into the matrix-vector op it feeds: `rms_norm(x, w, eps)` whose one use
/// is the first input of `swiglu_linear` or `linear_rope_cache_write` (a decoding step's
/// norms, each before its layer's first product) becomes a [`FastOp::NormPrologue`] of that
/// op, all of one dtype, so a device can normalise `x` in the product's own pass. Not their
/// quantized forms: every norm form of the 4-bit kernel measured lost to the norm's own
/// kernel, whose boundary programmatic launch overlaps while a norm in the product's pass
/// delays its main loop (a 4-bit TinyLlama decoding step: each lane weighting and squaring
/// the elements it takes, 0.930 -> 0.944 ms on the H100 and 0.855 -> 0.906 on the H200; the
/// block normalising the row once into shared memory first, 0.823 -> 0.842 on the H200).
fn norm_prologues(p: &mut Program) {
    let live = reachable(p);
    let uses = use_counts(p, &live);
    for (i, &alive) in live.iter().enumerate() {
        let s = &p.steps[i];
        let Primitive::Fast(op) = &s.prim else {
            continue;
        };
        if !alive
            || !matches!(
                op,
                FastOp::SwigluLinear
                    | FastOp::RopeCacheWrite {
                        project: Projection::Linear,
                        ..
                    }
            )
        {
            continue;
        }
        let Some(&Ref::Step(j, 0)) = s.args.first() else {
            continue;
        };
        let norm = &p.steps[j];
        let (Primitive::Fast(FastOp::RmsNorm { eps, weight: true }), [x, w], 1) =
            (&norm.prim, &norm.args[..], uses[j])
        else {
            continue;
        };
        let dtype = norm.outputs[0].dtype;
        if dtype_of(p, *x) != dtype || dtype_of(p, *w) != dtype {
            continue;
        }
        let (eps, x, w) = (*eps, *x, *w);
        let prim = Primitive::Fast(FastOp::NormPrologue {
            eps,
            op: Box::new(op.clone()),
        });
        let s = &mut p.steps[i];
        s.prim = prim;
        s.args[0] = x;
        s.args.push(w);
        // The norm step is now unreferenced and skipped at replay.
    }
}

/// Folds an RMS norm into a matrix product `rms_norm(x, w_n, eps) @ w.T` it is the left
/// operand of (through a reshape that keeps the last axis, its one use too): a language
/// model's final norm and head. The product becomes a [`FastOp::NormPrologue`] of
/// [`FastOp::Linear`] on `x` and `w` (the transpose's input, or, for a constant `w.T`, its
/// transpose, a view), all of one dtype, as [`norm_prologues`] makes for the products it
/// folds into.
fn norm_linear_prologues(p: &mut Program) {
    let live = reachable(p);
    let uses = use_counts(p, &live);
    for (i, &alive) in live.iter().enumerate() {
        if !alive || !matches!(p.steps[i].prim, Primitive::Matmul(MatmulOp::Matmul)) {
            continue;
        }
        let [Ref::Step(r, 0), b] = p.steps[i].args[..] else {
            continue;
        };
        // The norm, or a reshape of it.
        let (reshape, j) = match (&p.steps[r].prim, &p.steps[r].args[..]) {
            (Primitive::Shape(ShapeOp::Reshape { .. }), &[Ref::Step(j, 0)]) if uses[r] == 1 => {
                (Some(r), j)
            }
            _ => (None, r),
        };
        let norm = &p.steps[j];
        let (Primitive::Fast(FastOp::RmsNorm { eps, weight: true }), &[x, nw], 1) =
            (&norm.prim, &norm.args[..], uses[j])
        else {
            continue;
        };
        let eps = *eps;
        let (dtype, k) = (norm.outputs[0].dtype, norm.outputs[0].shape.last().copied());
        let keeps_k = reshape.is_none_or(|r| p.steps[r].outputs[0].shape.last().copied() == k);
        if !keeps_k || [x, nw, b].iter().any(|&a| dtype_of(p, a) != dtype) {
            continue;
        }
        // `w` of `w.T`: (N, K).
        let w = match b {
            Ref::Step(t, 0) => match (&p.steps[t].prim, &p.steps[t].args[..]) {
                (Primitive::Shape(ShapeOp::Transpose { perm }), &[w]) if perm[..] == [1, 0] => w,
                _ => continue,
            },
            Ref::Const(c) if p.consts[c].ndim() == 2 => {
                let Ok(w) = crate::ops::transpose(&p.consts[c], [1i64, 0]) else {
                    continue;
                };
                p.consts.push(w);
                Ref::Const(p.consts.len() - 1)
            }
            _ => continue,
        };
        let x = match reshape {
            Some(r) => {
                // The reshape now takes the norm's input (of the norm's shape and dtype).
                p.steps[r].args[0] = x;
                Ref::Step(r, 0)
            }
            None => x,
        };
        let s = &mut p.steps[i];
        s.prim = Primitive::Fast(FastOp::NormPrologue {
            eps,
            op: Box::new(FastOp::Linear),
        });
        s.args = vec![x, w, nw];
        // The norm step is now unreferenced and skipped at replay.
    }
}

/// How many live steps' arguments and function outputs refer to each step.
fn use_counts(p: &Program, live: &[bool]) -> Vec<usize> {
    let mut uses = vec![0usize; p.steps.len()];
    for (i, s) in p.steps.iter().enumerate() {
        if live[i] {
            for r in &s.args {
                if let Ref::Step(j, _) = r {
                    uses[*j] += 1;
                }
            }
        }
    }
    for r in &p.outputs {
        if let Ref::Step(j, _) = r {
            uses[*j] += 1;
        }
    }
    uses
}

/// The shape of what `r` refers to.
fn shape_of(p: &Program, r: Ref) -> &[usize] {
    match r {
        Ref::Input(i) => &p.input_shapes[i],
        Ref::Const(c) => p.consts[c].shape(),
        Ref::Step(j, k) => &p.steps[j].outputs[k].shape,
    }
}

/// The dtype of what `r` refers to.
fn dtype_of(p: &Program, r: Ref) -> Dtype {
    match r {
        Ref::Input(i) => p.input_dtypes[i],
        Ref::Const(c) => p.consts[c].dtype(),
        Ref::Step(j, k) => p.steps[j].outputs[k].dtype,
    }
}

/// Merges chains of element-wise steps into fused steps: a chain's intermediate values are
/// used only inside the chain, or (for a chain without a reduction) are outputs of the
/// function of the chain's shape, which the fused step then also outputs.
fn fuse(p: &mut Program) {
    let n = p.steps.len();
    // The steps that use each step's value, and its uses by the function's outputs.
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut out_uses = vec![0usize; n];
    let live = reachable(p);
    for (i, s) in p.steps.iter().enumerate() {
        if !live[i] {
            continue;
        }
        for r in &s.args {
            if let Ref::Step(j, _) = r {
                users[*j].push(i);
            }
        }
    }
    for r in &p.outputs {
        if let Ref::Step(j, _) = r {
            out_uses[*j] += 1;
        }
    }
    // Element-wise steps, and fused element-wise steps already made (a compiled activation
    // inside the function), whose programs are spliced into the region's.
    let fusable = |s: &Step| {
        s.outputs.len() == 1
            && (FusedOp::fusable(&s.prim)
                || matches!(&s.prim, Primitive::Fused(op) if op.reduce.is_none() && op.extra.is_empty()))
    };
    // A step that may join a region: element-wise, used only by steps of the region, and
    // not an output.
    let joins = |j: usize, region: &[usize], absorbed: &[bool]| {
        fusable(&p.steps[j])
            && out_uses[j] == 0
            && !absorbed[j]
            && users[j].iter().all(|u| region.contains(u))
    };
    // A step that may join a region as an extra output: as above, but also an output of the
    // function, with the root's output shape.
    let joins_as_output = |j: usize, root: usize, region: &[usize], absorbed: &[bool]| {
        fusable(&p.steps[j])
            && out_uses[j] > 0
            && !absorbed[j]
            && users[j].iter().all(|u| region.contains(u))
            && p.steps[j].outputs[0].shape == p.steps[root].outputs[0].shape
    };
    let mut moved: HashMap<Ref, Ref> = HashMap::new();
    let mut absorbed = vec![false; n];
    let mut new_steps: Vec<Option<Step>> = p.steps.iter().cloned().map(Some).collect();
    for root in (0..n).rev() {
        if !live[root] || absorbed[root] {
            continue;
        }
        // A reduction of an element-wise result takes that result's region as its prologue.
        // Where the result is used elsewhere too (or is an output), the fused step also
        // outputs it (`keeps`): one pass writes the values and reduces them, in the place of
        // the result's step, so that its other users still come after it.
        let (top, reduce, keeps) = match (&p.steps[root].prim, p.steps[root].args.as_slice()) {
            (Primitive::Reduce(ReduceOp::Reduce { kind, axes }), [Ref::Step(j, 0)])
                if !axes.is_empty() && fusable(&p.steps[*j]) && !absorbed[*j] =>
            {
                let ndim = p.steps[*j].outputs[0].shape.len();
                let keepdims = p.steps[root].outputs[0].shape.len() == ndim;
                let r = FusedReduce {
                    kind: *kind,
                    axes: axes.clone(),
                    keepdims,
                };
                (*j, Some(r), !joins(*j, &[root], &absorbed))
            }
            _ if fusable(&p.steps[root]) => (root, None, false),
            _ => continue,
        };
        // Grow the region from its top through element-wise producers whose users are all in
        // the region (and, for a region without a reduction, producers that are also
        // outputs), until nothing more joins: a value used twice joins once both users have.
        let mut region: Vec<usize> = vec![top];
        if reduce.is_some() {
            region.push(root);
        }
        let mut extra_steps: Vec<usize> = Vec::new();
        loop {
            let mut grew = false;
            for k in 0..region.len() {
                for r in &p.steps[region[k]].args {
                    let Ref::Step(j, 0) = *r else { continue };
                    if region.contains(&j) {
                        continue;
                    }
                    if joins(j, &region, &absorbed) {
                        region.push(j);
                        grew = true;
                    } else if reduce.is_none() && joins_as_output(j, root, &region, &absorbed) {
                        region.push(j);
                        extra_steps.push(j);
                        grew = true;
                    }
                }
            }
            if !grew {
                break;
            }
        }
        if reduce.is_some() {
            // The reduction is not an instruction of the program.
            region.retain(|&s| s != root);
        }
        if region.len() < 2 && reduce.is_none() {
            continue;
        }
        region.sort_unstable();
        let mut inputs: Vec<Ref> = Vec::new();
        let mut instr_of: HashMap<usize, usize> = HashMap::new();
        let mut program = Vec::with_capacity(region.len());
        for &s in &region {
            let step = &p.steps[s];
            let args: Vec<FusedArg> = step
                .args
                .iter()
                .map(|r| match r {
                    Ref::Step(j, 0) if instr_of.contains_key(j) => FusedArg::Instr(instr_of[j]),
                    other => {
                        let i = inputs.iter().position(|x| x == other).unwrap_or_else(|| {
                            inputs.push(*other);
                            inputs.len() - 1
                        });
                        FusedArg::Input(i)
                    }
                })
                .collect();
            if let Primitive::Fused(inner) = &step.prim {
                // Its instructions, reading the region's values for its inputs; its value is
                // its last instruction's.
                let base = program.len();
                for ins in inner.program.iter() {
                    let ins_args = ins
                        .args
                        .iter()
                        .map(|a| match *a {
                            FusedArg::Input(i) => args[i],
                            FusedArg::Instr(k) => FusedArg::Instr(base + k),
                        })
                        .collect();
                    program.push(FusedInstr {
                        prim: ins.prim.clone(),
                        args: ins_args,
                        dtype: ins.dtype,
                    });
                }
                instr_of.insert(s, program.len() - 1);
                continue;
            }
            instr_of.insert(s, program.len());
            program.push(FusedInstr {
                prim: step.prim.clone(),
                args,
                dtype: step.outputs[0].dtype,
            });
        }
        for &s in &region {
            if s != root {
                absorbed[s] = true;
                new_steps[s] = None;
            }
        }
        extra_steps.sort_unstable();
        let mut outputs = p.steps[root].outputs.clone();
        for (k, &s) in extra_steps.iter().enumerate() {
            moved.insert(Ref::Step(s, 0), Ref::Step(root, k + 1));
            outputs.push(p.steps[s].outputs[0].clone());
        }
        let mut extra: Vec<usize> = extra_steps.iter().map(|s| instr_of[s]).collect();
        let at = if keeps {
            // The reduction moves up to the result's step, which outputs both.
            moved.insert(Ref::Step(top, 0), Ref::Step(top, 1));
            moved.insert(Ref::Step(root, 0), Ref::Step(top, 0));
            outputs.push(p.steps[top].outputs[0].clone());
            extra.push(instr_of[&top]);
            new_steps[root] = None;
            top
        } else {
            root
        };
        new_steps[at] = Some(Step {
            prim: Primitive::Fused(FusedOp {
                program: Arc::new(program),
                reduce,
                extra,
            }),
            args: inputs,
            outputs,
        });
    }
    // The values a fused step now makes: for the function's outputs, and for the steps
    // using a reduction's kept result.
    for r in p.outputs.iter_mut() {
        if let Some(&to) = moved.get(r) {
            *r = to;
        }
    }
    for s in new_steps.iter_mut().flatten() {
        for r in s.args.iter_mut() {
            if let Some(&to) = moved.get(r) {
                *r = to;
            }
        }
    }
    // Absorbed steps stay as `None` placeholders so step indices keep their meaning.
    p.steps = new_steps
        .into_iter()
        .map(|s| s.unwrap_or_else(placeholder_step))
        .collect();
}

/// Groups the fused element-wise steps whose values only leave the function (no step reads
/// them: an optimizer's update of each parameter) into one [`FusedGroup`] step where the last
/// of them was, so a backend runs them in one pass (one kernel on the GPU, as a multi-tensor
/// optimizer does) instead of one per parameter. Their inputs are all computed by then.
fn group(p: &mut Program) {
    let live = reachable(p);
    let mut read = vec![false; p.steps.len()];
    for (i, s) in p.steps.iter().enumerate() {
        if live[i] {
            for r in &s.args {
                if let Ref::Step(j, _) = r {
                    read[*j] = true;
                }
            }
        }
    }
    let picked: Vec<usize> = (0..p.steps.len())
        .filter(|&i| {
            live[i]
                && !read[i]
                && matches!(&p.steps[i].prim, Primitive::Fused(op) if op.reduce.is_none())
        })
        .collect();
    let Some(&at) = picked.last() else { return };
    if picked.len() < 2 {
        return;
    }
    let mut args: Vec<Ref> = Vec::new();
    let mut members = Vec::with_capacity(picked.len());
    let mut outputs = Vec::new();
    let mut moved: HashMap<Ref, Ref> = HashMap::new();
    for &s in &picked {
        let step = std::mem::replace(&mut p.steps[s], placeholder_step());
        let Primitive::Fused(op) = step.prim else {
            unreachable!("picked only fused steps")
        };
        let inputs = step
            .args
            .iter()
            .map(|r| {
                args.iter().position(|a| a == r).unwrap_or_else(|| {
                    args.push(*r);
                    args.len() - 1
                })
            })
            .collect();
        for k in 0..step.outputs.len() {
            moved.insert(Ref::Step(s, k), Ref::Step(at, outputs.len() + k));
        }
        outputs.extend(step.outputs);
        members.push(GroupMember { op, inputs });
    }
    p.steps[at] = Step {
        prim: Primitive::FusedGroup(FusedGroup { members }),
        args,
        outputs,
    };
    for r in p.outputs.iter_mut() {
        if let Some(&to) = moved.get(r) {
            *r = to;
        }
    }
}

/// A step that stands for one removed (step indices keep their meaning).
fn placeholder_step() -> Step {
    Step {
        prim: Primitive::Transform(TransformOp::Placeholder),
        args: vec![],
        outputs: vec![],
    }
}

/// Which steps the outputs depend on.
fn reachable(p: &Program) -> Vec<bool> {
    let mut live = vec![false; p.steps.len()];
    let mut stack: Vec<usize> = p
        .outputs
        .iter()
        .filter_map(|r| {
            if let Ref::Step(j, _) = r {
                Some(*j)
            } else {
                None
            }
        })
        .collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut live[i], true) {
            continue;
        }
        for r in &p.steps[i].args {
            if let Ref::Step(j, _) = r {
                stack.push(*j);
            }
        }
    }
    live
}

/// Builds the program's graph over `args`; `None` when a shapeless replay meets a step whose
/// output shape depends on input shapes it was not traced with (the caller retraces).
fn replay(p: &Program, args: &[Array], shapeless: bool) -> Result<Option<Vec<Array>>> {
    if args.len() != p.input_shapes.len() {
        bail!(
            "compile: the function was traced with {} inputs, called with {}",
            p.input_shapes.len(),
            args.len()
        );
    }
    let same_shapes = args
        .iter()
        .zip(&p.input_shapes)
        .all(|(a, s)| a.shape() == &s[..]);
    if !same_shapes && !shapeless {
        return Ok(None);
    }
    let live = reachable(p);
    let mut values: Vec<Vec<Array>> = vec![Vec::new(); p.steps.len()];
    let get = |r: Ref, values: &Vec<Vec<Array>>| -> Array {
        match r {
            Ref::Input(i) => args[i].clone(),
            Ref::Const(c) => p.consts[c].clone(),
            Ref::Step(j, k) => values[j][k].clone(),
        }
    };
    for (i, s) in p.steps.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let inputs: Vec<Array> = s.args.iter().map(|&r| get(r, &values)).collect();
        let specs = if same_shapes {
            s.outputs.clone()
        } else if let Primitive::Fast(op) = &s.prim {
            // Fast ops keep the shape rule of their rows.
            op.outputs(&inputs)
        } else {
            // A reducing fused step's axes hold only for the shapes it was traced with.
            let elementwise = match &s.prim {
                // Extra outputs have the root's shape only for the traced shapes.
                Primitive::Fused(op) => op.reduce.is_none() && op.extra.is_empty(),
                Primitive::FusedGroup(g) => g.members.iter().all(|m| m.op.extra.is_empty()),
                prim => FusedOp::fusable(prim),
            };
            if let (true, Primitive::FusedGroup(g)) = (elementwise, &s.prim) {
                // Each member's output has its own inputs' broadcast shape.
                let mut specs = Vec::with_capacity(s.outputs.len());
                for (_, picked, outs) in g.split(&inputs) {
                    let mut shape: Vec<usize> = Vec::new();
                    for x in &picked {
                        shape = broadcast_shapes("compile", &shape, x.shape())?;
                    }
                    specs.extend(s.outputs[outs].iter().map(|o| OutSpec {
                        shape: shape.clone(),
                        dtype: o.dtype,
                    }));
                }
                specs
            } else if !elementwise {
                // Shapes the step was traced with must hold for its inputs.
                let traced_inputs_same = s.args.iter().zip(&inputs).all(|(r, x)| match r {
                    Ref::Step(j, k) => p.steps[*j]
                        .outputs
                        .get(*k)
                        .is_some_and(|o| o.shape == x.shape()),
                    Ref::Input(a) => p.input_shapes[*a] == x.shape(),
                    Ref::Const(_) => true,
                });
                if !traced_inputs_same {
                    return Ok(None);
                }
                s.outputs.clone()
            } else {
                let mut shape: Vec<usize> = Vec::new();
                for x in &inputs {
                    shape = broadcast_shapes("compile", &shape, x.shape())?;
                }
                s.outputs
                    .iter()
                    .map(|o| OutSpec {
                        shape: shape.clone(),
                        dtype: o.dtype,
                    })
                    .collect()
            }
        };
        values[i] = Array::from_primitive_multi(s.prim.clone(), inputs, specs)?;
    }
    Ok(Some(p.outputs.iter().map(|&r| get(r, &values)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops;

    /// A float32 array of `shape` whose elements step through -0.5, -0.25, ..., 1.0 from
    /// `seed` on.
    fn ramp(shape: &[usize], seed: usize) -> Array {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i + seed) % 7) as f32 * 0.25 - 0.5)
            .collect();
        Array::from_slice(&v, shape).unwrap()
    }

    /// The program `f` traces on `args`, described a step a line.
    fn describe_of(f: &dyn Fn(&[Array]) -> Result<Vec<Array>>, args: &[Array]) -> String {
        describe(&trace(f, args).unwrap())
    }

    /// An RMS norm whose one use is `swiglu_linear`'s or `linear_rope_cache_write`'s input
    /// folds into that op (`rms_norm_...`, the norm's step gone); a norm used twice, or one
    /// whose weight promotes the dtype, stays a step of its own.
    #[test]
    fn an_rms_norm_folds_into_the_product_it_feeds() {
        let arr = |shape: &[usize], dt: Dtype| ramp(shape, 0).astype(dt).unwrap();
        let swiglu = |a: &[Array]| -> Result<Vec<Array>> {
            let n = crate::fast::rms_norm(&a[0], Some(&a[1]), 1e-5)?;
            Ok(vec![crate::fast::swiglu_linear(&n, &a[2])?])
        };
        let args = [
            arr(&[1, 16], Dtype::Float32),
            arr(&[16], Dtype::Float32),
            arr(&[8, 16], Dtype::Float32),
        ];
        let text = describe_of(&swiglu, &args);
        assert!(
            text.contains("rms_norm_swiglu_linear(in0, in2, in1)"),
            "{text}"
        );
        assert!(!text.contains(" rms_norm("), "{text}");
        // The norm's output is also returned: no fold.
        let both = |a: &[Array]| -> Result<Vec<Array>> {
            let n = crate::fast::rms_norm(&a[0], Some(&a[1]), 1e-5)?;
            Ok(vec![crate::fast::swiglu_linear(&n, &a[2])?, n])
        };
        let text = describe_of(&both, &args);
        assert!(
            text.contains(" rms_norm(") && text.contains(" swiglu_linear("),
            "{text}"
        );
        // A bfloat16 weight on float32 rows: the norm's output is float32 either way, but
        // the weight is not of its dtype, so it stays.
        let mut mixed = args.clone();
        mixed[1] = arr(&[16], Dtype::Bfloat16);
        let text = describe_of(&swiglu, &mixed);
        assert!(!text.contains("rms_norm_swiglu_linear"), "{text}");
        // The q/k/v product with its rope and cache writes.
        let rope = |a: &[Array]| -> Result<Vec<Array>> {
            let n = crate::fast::rms_norm(&a[0], Some(&a[1]), 1e-5)?;
            let (q, k, v) = crate::fast::linear_rope_cache_write(
                &n,
                &a[2],
                2,
                1,
                &a[3],
                &a[4],
                3,
                8,
                false,
                Some(1e4),
                1.0,
                None,
            )?;
            Ok(vec![q, k, v])
        };
        let cache = arr(&[1, 1, 6, 8], Dtype::Float32);
        let args = [
            arr(&[1, 1, 16], Dtype::Float32),
            arr(&[16], Dtype::Float32),
            arr(&[32, 16], Dtype::Float32),
            cache.clone(),
            cache,
        ];
        let text = describe_of(&rope, &args);
        assert!(text.contains("rms_norm_linear_rope_cache_write("), "{text}");
        assert!(!text.contains(" rms_norm("), "{text}");
        // A final norm and a head: a product with the normalised rows on the left, through a
        // reshape that keeps the last axis, the weight transposed in the function or a
        // constant (values: the conformance suite's fast tests).
        let head = |a: &[Array]| -> Result<Vec<Array>> {
            let n = crate::fast::rms_norm(&a[0], Some(&a[1]), 1e-5)?;
            let n = ops::reshape(&n, &[-1, 16])?;
            Ok(vec![ops::matmul(&n, &ops::transpose(&a[2], [1i64, 0])?)?])
        };
        let args = [
            arr(&[2, 1, 16], Dtype::Float32),
            arr(&[16], Dtype::Float32),
            arr(&[24, 16], Dtype::Float32),
        ];
        let text = describe_of(&head, &args);
        assert!(text.contains("rms_norm_linear("), "{text}");
        assert!(!text.contains(" rms_norm("), "{text}");
        let wt = ops::transpose(&args[2], [1i64, 0]).unwrap();
        let constant = move |a: &[Array]| -> Result<Vec<Array>> {
            let n = crate::fast::rms_norm(&a[0], Some(&a[1]), 1e-5)?;
            Ok(vec![ops::matmul(&ops::reshape(&n, &[-1, 16])?, &wt)?])
        };
        let text = describe_of(&constant, &args[..2]);
        assert!(text.contains("rms_norm_linear("), "{text}");
        // A reshape that moves the last axis's elements: no fold.
        let mixed = |a: &[Array]| -> Result<Vec<Array>> {
            let n = crate::fast::rms_norm(&a[0], Some(&a[1]), 1e-5)?;
            let n = ops::reshape(&n, &[-1, 8])?;
            Ok(vec![ops::matmul(&n, &ops::transpose(&a[2], [1i64, 0])?)?])
        };
        let args = [
            arr(&[2, 16], Dtype::Float32),
            arr(&[16], Dtype::Float32),
            arr(&[24, 8], Dtype::Float32),
        ];
        let text = describe_of(&mixed, &args);
        assert!(!text.contains("rms_norm_linear("), "{text}");
    }

    /// An RMS norm feeding the quantized SwiGLU or the quantized q/k/v product with its rope
    /// and cache writes stays a step of its own (see [`norm_prologues`]).
    #[test]
    fn an_rms_norm_stays_apart_from_the_quantized_products_it_feeds() {
        let arr = |shape: &[usize]| ramp(shape, 0);
        let (wq, s, b) = ops::quantize(&arr(&[32, 64]), 32, 4).unwrap();
        let swiglu = |a: &[Array]| -> Result<Vec<Array>> {
            let n = crate::fast::rms_norm(&a[0], Some(&a[1]), 1e-5)?;
            Ok(vec![crate::fast::swiglu_quantized_linear(
                &n, &a[2], &a[3], &a[4], 32, 4,
            )?])
        };
        let args = [arr(&[1, 64]), arr(&[64]), wq.clone(), s.clone(), b.clone()];
        let text = describe_of(&swiglu, &args);
        assert!(text.contains(" swiglu_quantized_linear("), "{text}");
        assert!(text.contains(" rms_norm("), "{text}");
        let rope = |a: &[Array]| -> Result<Vec<Array>> {
            let n = crate::fast::rms_norm(&a[0], Some(&a[1]), 1e-5)?;
            let (q, k, v) = crate::fast::quantized_linear_rope_cache_write(
                &n,
                &a[2],
                &a[3],
                &a[4],
                32,
                4,
                2,
                1,
                &a[5],
                &a[6],
                3,
                8,
                false,
                Some(1e4),
                1.0,
                None,
            )?;
            Ok(vec![q, k, v])
        };
        let cache = arr(&[1, 1, 6, 8]);
        let args = [arr(&[1, 1, 64]), arr(&[64]), wq, s, b, cache.clone(), cache];
        let text = describe_of(&rope, &args);
        assert!(
            text.contains(" quantized_linear_rope_cache_write("),
            "{text}"
        );
        assert!(text.contains(" rms_norm("), "{text}");
    }

    /// A residual sum of a transposed quantized product of a few rows folds into
    /// `quantized_linear_add` (either operand order); a product used twice, a residual that
    /// broadcasts, or many rows stay as they were.
    #[test]
    fn a_residual_sum_folds_into_its_quantized_product() {
        let arr = ramp;
        let (wq, s, b) = ops::quantize(&arr(&[8, 64], 1), 32, 4).unwrap();
        let (w1, s1, b1) = (wq.clone(), s.clone(), b.clone());
        let residual = move |a: &[Array]| -> Result<Vec<Array>> {
            let y = ops::quantized_matmul(&a[0], &w1, &s1, &b1, true, 32, 4)?;
            Ok(vec![ops::add(&a[1], &y)?, ops::add(&y, &a[1])?])
        };
        // Used twice: no fold.
        let text = describe_of(&residual, &[arr(&[1, 64], 0), arr(&[1, 8], 2)]);
        assert!(!text.contains("quantized_linear_add("), "{text}");
        let (w1, s1, b1) = (wq.clone(), s.clone(), b.clone());
        let once = move |a: &[Array]| -> Result<Vec<Array>> {
            let y = ops::quantized_matmul(&a[0], &w1, &s1, &b1, true, 32, 4)?;
            Ok(vec![ops::add(&y, &a[1])?])
        };
        let text = describe_of(&once, &[arr(&[2, 1, 64], 0), arr(&[2, 1, 8], 2)]);
        assert!(text.contains("quantized_linear_add("), "{text}");
        assert!(!text.contains(" quantized_matmul("), "{text}");
        // A residual that broadcasts, and more rows than a matrix-vector pass takes.
        let text = describe_of(&once, &[arr(&[2, 1, 64], 0), arr(&[8], 2)]);
        assert!(!text.contains("quantized_linear_add("), "{text}");
        let text = describe_of(&once, &[arr(&[9, 64], 0), arr(&[9, 8], 2)]);
        assert!(!text.contains("quantized_linear_add("), "{text}");
    }

    /// What `UMX_COMPILE_DUMP` prints: a line per live step, a fused step with its
    /// instructions and reduction, operands by input, constant and step.
    #[test]
    fn a_traced_program_is_described_a_step_a_line() {
        let x = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        let f = |a: &[Array]| -> Result<Vec<Array>> {
            let y = ops::add(ops::multiply(&a[0], 2.0)?, 1.0)?;
            Ok(vec![ops::sum(&y, 1, false)?, ops::matmul(&a[0], &a[0])?])
        };
        let p = trace(&f, &[x]).unwrap();
        let text = describe(&p);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "compile: 2 steps over inputs [[2, 2]]", "{text}");
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[1..].iter().any(
                |l| l.contains("fused[multiply add] then Sum over [1](in0, c")
                    && l.ends_with("-> [2] float32")
            ),
            "{text}"
        );
        assert!(
            lines[1..]
                .iter()
                .any(|l| l.contains("matmul(in0, in0) -> [2, 2] float32")),
            "{text}"
        );
    }
}
