//! `Array`: a cheap handle to a node of the lazy graph, or to evaluated data.

use crate::buffer::Buffer;
use crate::device::{OutSpec, Stream, default_stream};
use crate::primitives::Primitive;
use crate::shape::{fmt_shape, is_row_contiguous, numel, row_major_strides};
use crate::{Dtype, Element, Error, Result, Shape, Strides, bail, dispatch_dtype};
use std::sync::{Arc, Mutex, MutexGuard};

/// Evaluated storage of an array: a buffer and the view of it (strides and offset in elements).
#[derive(Clone)]
pub struct ArrayData {
    pub buffer: Arc<Buffer>,
    pub shape: Shape,
    pub dtype: Dtype,
    pub strides: Strides,
    pub offset: isize,
}

impl ArrayData {
    /// A row-major contiguous view of the whole buffer.
    pub fn contiguous(buffer: Buffer, shape: &[usize], dtype: Dtype) -> ArrayData {
        ArrayData {
            buffer: Arc::new(buffer),
            shape: shape.to_vec(),
            dtype,
            strides: row_major_strides(shape),
            offset: 0,
        }
    }

    /// Number of elements.
    pub fn size(&self) -> usize {
        numel(&self.shape)
    }

    /// Whether the view is row-major contiguous starting at the buffer's first element.
    pub fn is_row_contiguous(&self) -> bool {
        self.offset == 0 && is_row_contiguous(&self.shape, &self.strides)
    }

    /// The elements of the view as a slice, when it is row-major contiguous.
    pub fn contiguous_slice<T: Element>(&self) -> Option<&[T]> {
        debug_assert_eq!(T::DTYPE, self.dtype);
        if !is_row_contiguous(&self.shape, &self.strides) {
            return None;
        }
        let n = self.size();
        let all = self.buffer.as_slice::<T>();
        let start = self.offset as usize;
        all.get(start..start + n)
    }

    /// Visits the buffer index of every element in row-major logical order.
    pub fn for_each_index(&self, mut f: impl FnMut(usize)) {
        let shape = &self.shape[..];
        let n = numel(shape);
        if n == 0 {
            return;
        }
        if is_row_contiguous(shape, &self.strides) {
            for i in 0..n {
                f(self.offset as usize + i);
            }
            return;
        }
        let nd = shape.len();
        let mut idx = vec![0usize; nd];
        let mut pos = self.offset;
        for _ in 0..n {
            f(pos as usize);
            for d in (0..nd).rev() {
                idx[d] += 1;
                pos += self.strides[d];
                if idx[d] < shape[d] {
                    break;
                }
                pos -= self.strides[d] * shape[d] as isize;
                idx[d] = 0;
            }
        }
    }

    /// The elements in row-major logical order, as `T` (which must be the buffer's dtype).
    pub fn to_contiguous_vec<T: Element>(&self) -> Vec<T> {
        debug_assert_eq!(T::DTYPE, self.dtype);
        if let Some(s) = self.contiguous_slice::<T>() {
            return s.to_vec();
        }
        let src = self.buffer.as_slice::<T>();
        let mut out = Vec::with_capacity(self.size());
        self.for_each_index(|i| out.push(src[i]));
        out
    }
}

/// A multi-dimensional array: lazy until evaluated, immutable after.
///
/// Cloning is cheap (an `Arc`). Arrays are `Send + Sync`.
#[derive(Clone)]
pub struct Array {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    shape: Shape,
    dtype: Dtype,
    /// A Rust/Python scalar whose dtype yields to the other operand's (MLX's weak types).
    weak: bool,
    pub(crate) state: Mutex<State>,
}

pub(crate) enum State {
    Ready(ArrayData),
    Pending { node: Arc<Node>, index: usize },
    Failed(Error),
}

/// A primitive applied to inputs; its outputs are one or more sibling arrays.
pub struct Node {
    pub(crate) prim: Primitive,
    pub(crate) stream: Stream,
    pub(crate) outputs: Vec<OutSpec>,
    pub(crate) state: Mutex<NodeState>,
}

pub(crate) struct NodeState {
    pub(crate) inputs: Vec<Array>,
    /// Set once computed; inputs are dropped then (the graph is freed as it runs).
    pub(crate) result: Option<Result<Vec<ArrayData>>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its state consistent, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Array {
    fn with_state(shape: Shape, dtype: Dtype, weak: bool, state: State) -> Array {
        Array {
            inner: Arc::new(Inner {
                shape,
                dtype,
                weak,
                state: Mutex::new(state),
            }),
        }
    }

    /// An evaluated array over existing data.
    pub fn from_data(data: ArrayData) -> Array {
        Array::with_state(data.shape.clone(), data.dtype, false, State::Ready(data))
    }

    /// An array that carries an error: every op on it and every read of it returns the error.
    /// Operator overloads (`&a + &b`) return one when the op fails, so they never panic.
    pub fn from_error(e: Error) -> Array {
        Array::with_state(Vec::new(), Dtype::Float32, false, State::Failed(e))
    }

    /// A copy of `data` with the given shape.
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::Array;
    /// let a = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
    /// assert_eq!(a.shape(), &[2, 2]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Array> {
        if data.len() != numel(shape) {
            bail!(
                "array: {} values do not fill shape {}",
                data.len(),
                fmt_shape(shape)
            );
        }
        let buf = Buffer::from_slice(data)?;
        Ok(Array::from_data(ArrayData::contiguous(
            buf,
            shape,
            T::DTYPE,
        )))
    }

    /// A 0-d array holding `v`, of `T`'s dtype.
    pub fn scalar<T: Element>(v: T) -> Array {
        Array::scalar_with(v, false)
    }

    fn scalar_with<T: Element>(v: T, weak: bool) -> Array {
        match Buffer::from_slice(&[v]) {
            Ok(buf) => Array::with_state(
                Vec::new(),
                T::DTYPE,
                weak,
                State::Ready(ArrayData::contiguous(buf, &[], T::DTYPE)),
            ),
            Err(e) => Array::from_error(e),
        }
    }

    /// A 0-d array of `dtype` holding `v` (converted with `static_cast` semantics).
    pub fn full_scalar(v: f64, dtype: Dtype) -> Array {
        dispatch_dtype!(dtype, T => Array::scalar(T::from_f64(v)))
    }

    /// Values given as f64, converted to `dtype` (complex: real parts), with the given shape.
    pub fn from_f64s(data: &[f64], shape: &[usize], dtype: Dtype) -> Result<Array> {
        dispatch_dtype!(dtype, T => {
            let v: Vec<T> = data.iter().map(|&x| T::from_f64(x)).collect();
            Array::from_slice(&v, shape)
        })
    }

    /// A weak float scalar (a Rust `f64` in an op): float32 that yields to the other operand's
    /// float dtype, so `&a_f16 * 2.0` stays float16.
    pub fn weak_float(v: f64) -> Array {
        Array::scalar_with(v as f32, true)
    }

    /// A weak integer scalar: int32 that yields to the other operand's dtype.
    pub fn weak_int(v: i64) -> Array {
        Array::scalar_with(v as i32, true)
    }

    /// A weak bool scalar.
    pub fn weak_bool(v: bool) -> Array {
        Array::scalar_with(v, true)
    }

    /// A new lazy node with one output.
    pub fn from_primitive(
        prim: Primitive,
        inputs: Vec<Array>,
        shape: Shape,
        dtype: Dtype,
    ) -> Result<Array> {
        let mut outs = Array::from_primitive_multi(prim, inputs, vec![OutSpec { shape, dtype }])?;
        Ok(outs.pop().expect("one output was asked for"))
    }

    /// A new lazy node with several sibling outputs.
    pub fn from_primitive_multi(
        prim: Primitive,
        inputs: Vec<Array>,
        outputs: Vec<OutSpec>,
    ) -> Result<Vec<Array>> {
        for a in &inputs {
            a.check()?;
        }
        let node = Arc::new(Node {
            prim,
            stream: default_stream(),
            outputs: outputs.clone(),
            state: Mutex::new(NodeState {
                inputs,
                result: None,
            }),
        });
        Ok(outputs
            .into_iter()
            .enumerate()
            .map(|(index, o)| {
                Array::with_state(
                    o.shape,
                    o.dtype,
                    false,
                    State::Pending {
                        node: node.clone(),
                        index,
                    },
                )
            })
            .collect())
    }

    /// Returns the carried error of an array made by a failed operator, else `Ok`.
    pub fn check(&self) -> Result<()> {
        match &*lock(&self.inner.state) {
            State::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.inner.shape
    }
    pub fn dtype(&self) -> Dtype {
        self.inner.dtype
    }
    pub fn ndim(&self) -> usize {
        self.inner.shape.len()
    }
    /// Number of elements.
    pub fn size(&self) -> usize {
        numel(&self.inner.shape)
    }
    pub fn nbytes(&self) -> usize {
        self.size() * self.dtype().size()
    }
    /// Size of one axis (negative counts from the end).
    pub fn dim(&self, axis: i64) -> Result<usize> {
        let ax = crate::shape::normalize_axis("dim", axis, self.ndim())?;
        Ok(self.inner.shape[ax])
    }
    /// Whether this is a weak scalar (see [`Array::weak_float`]).
    pub fn is_weak(&self) -> bool {
        self.inner.weak
    }
    /// Whether the array holds data (has been evaluated).
    pub fn is_evaluated(&self) -> bool {
        match &*lock(&self.inner.state) {
            State::Ready(_) => true,
            State::Pending { node, .. } => matches!(lock(&node.state).result, Some(Ok(_))),
            State::Failed(_) => false,
        }
    }
    /// The primitive that makes this array, while it is unevaluated.
    pub fn primitive(&self) -> Option<Primitive> {
        match &*lock(&self.inner.state) {
            State::Pending { node, .. } => Some(node.prim.clone()),
            _ => None,
        }
    }
    /// The stream this array is (or was to be) computed on; `None` once evaluated.
    pub fn stream(&self) -> Option<Stream> {
        match &*lock(&self.inner.state) {
            State::Pending { node, .. } => Some(node.stream),
            _ => None,
        }
    }
    /// The inputs of the node that makes this array (empty once evaluated).
    pub fn inputs(&self) -> Vec<Array> {
        match &*lock(&self.inner.state) {
            State::Pending { node, .. } => lock(&node.state).inputs.clone(),
            _ => Vec::new(),
        }
    }
    /// A number that identifies the array: equal for handles of the same array (clones),
    /// different for arrays alive at the same time.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Whether two handles are the same array.
    pub fn same(&self, other: &Array) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Evaluates the array (see [`crate::eval()`]).
    pub fn eval(&self) -> Result<()> {
        crate::eval::eval([self])
    }

    /// The evaluated storage, evaluating first if needed.
    pub fn data(&self) -> Result<ArrayData> {
        self.eval()?;
        match &*lock(&self.inner.state) {
            State::Ready(d) => Ok(d.clone()),
            State::Failed(e) => Err(e.clone()),
            // Evaluated while a transformation keeps the graph: the node holds the data.
            State::Pending { node, index } => crate::eval::output_of(node, *index),
        }
    }

    /// The node that makes this array and the output it is, while the array is attached to
    /// the graph (unevaluated, or evaluated while a transformation keeps the graph).
    pub(crate) fn node(&self) -> Option<(Arc<Node>, usize)> {
        match &*lock(&self.inner.state) {
            State::Pending { node, index } => Some((node.clone(), *index)),
            _ => None,
        }
    }

    /// A handle to output `index` of `node`: the same value as every other handle to it.
    pub(crate) fn from_node(node: &Arc<Node>, index: usize) -> Array {
        let o = &node.outputs[index];
        Array::with_state(
            o.shape.clone(),
            o.dtype,
            false,
            State::Pending {
                node: node.clone(),
                index,
            },
        )
    }

    /// The elements in row-major order, converted to `T` (`static_cast` semantics).
    ///
    /// ```
    /// # umx_cpu::register();
    /// # use umx_core::Array;
    /// let a = Array::from_slice(&[1i32, 2, 3], &[3])?;
    /// assert_eq!(a.to_vec::<f32>()?, vec![1.0, 2.0, 3.0]);
    /// # Ok::<(), umx_core::Error>(())
    /// ```
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        let data = self.data()?;
        // A GPU result is copied to the host here, so a device failure is an Err.
        data.buffer.ensure_host()?;
        Ok(dispatch_dtype!(self.dtype(), S => {
            let src = data.buffer.as_slice::<S>();
            let mut out = Vec::with_capacity(self.size());
            data.for_each_index(|i| out.push(src[i].cast::<T>()));
            out
        }))
    }

    /// The single element of a one-element array.
    pub fn item<T: Element>(&self) -> Result<T> {
        if self.size() != 1 {
            bail!(
                "item: only an array of one element has an item, not shape {}",
                fmt_shape(self.shape())
            );
        }
        Ok(self.to_vec::<T>()?[0])
    }
}

impl std::fmt::Debug for Array {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Array(shape={}, dtype={})",
            fmt_shape(self.shape()),
            self.dtype()
        )
    }
}

impl Drop for Node {
    /// Frees a long chain of nodes without recursion: inputs this node solely owns are taken
    /// apart on an explicit stack, so dropping a million-node graph cannot overflow the stack.
    fn drop(&mut self) {
        let mut stack = std::mem::take(
            &mut self
                .state
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .inputs,
        );
        while let Some(a) = stack.pop() {
            let Some(inner) = Arc::into_inner(a.inner) else {
                continue;
            };
            if let State::Pending { node, .. } =
                inner.state.into_inner().unwrap_or_else(|e| e.into_inner())
                && let Some(node) = Arc::into_inner(node)
            {
                let mut node = node;
                let st = node.state.get_mut().unwrap_or_else(|e| e.into_inner());
                stack.append(&mut st.inputs);
            }
        }
    }
}

/// Anything an op accepts as an array operand: arrays, and Rust scalars (which become weak
/// scalars, so they do not change the other operand's dtype).
pub trait IntoArray {
    fn into_array(self) -> Array;
}

impl IntoArray for Array {
    fn into_array(self) -> Array {
        self
    }
}
impl IntoArray for &Array {
    fn into_array(self) -> Array {
        self.clone()
    }
}
impl IntoArray for f64 {
    fn into_array(self) -> Array {
        Array::weak_float(self)
    }
}
impl IntoArray for f32 {
    fn into_array(self) -> Array {
        Array::weak_float(self as f64)
    }
}
impl IntoArray for bool {
    fn into_array(self) -> Array {
        Array::weak_bool(self)
    }
}
macro_rules! into_array_int {
    ($($t:ty),*) => {$(
        impl IntoArray for $t {
            fn into_array(self) -> Array { Array::weak_int(self as i64) }
        }
    )*};
}
into_array_int!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Array>();
    }
}
