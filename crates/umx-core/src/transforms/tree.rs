//! [`Tree`]: nested containers of arrays (parameters, gradients, optimizer state) that
//! transformations take and return, as MLX's pytrees.

use crate::{Array, Result, bail};
use std::collections::{BTreeMap, HashMap};

/// A structure holding arrays at its leaves: an array, a `Vec`, an array of them, a tuple, a
/// map with string keys, an `Option`, nested in any way. `grad` returns gradients in the same
/// structure as the parameters; `umx-nn` modules are trees of their parameters.
///
/// ```
/// # umx_cpu::register();
/// use umx_core::{Array, transforms::Tree};
/// let params = (Array::scalar(1.0f32), vec![Array::scalar(2.0f32), Array::scalar(3.0f32)]);
/// assert_eq!(params.leaves().len(), 3);
/// let doubled = params.map_leaves(&mut |a| Ok(a * 2.0))?;
/// assert_eq!(doubled.1[1].item::<f32>()?, 6.0);
/// # Ok::<(), umx_core::Error>(())
/// ```
pub trait Tree: Sized {
    /// Calls `f` on every leaf, in a fixed order.
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Array));

    /// The same structure with every leaf replaced by `f(leaf)`, in [`Tree::visit`]'s order.
    fn map_leaves(&self, f: &mut dyn FnMut(&Array) -> Result<Array>) -> Result<Self>;

    /// The leaves, in [`Tree::visit`]'s order.
    fn leaves(&self) -> Vec<Array> {
        let mut out = Vec::new();
        self.visit(&mut |a| out.push(a.clone()));
        out
    }

    /// The same structure with its leaves taken, in order, from `leaves` (which must hold
    /// exactly as many arrays as the tree has leaves).
    fn with_leaves(&self, leaves: Vec<Array>) -> Result<Self> {
        let n = leaves.len();
        let mut it = leaves.into_iter();
        let mut used = 0;
        let out = self.map_leaves(&mut |_| {
            used += 1;
            match it.next() {
                Some(a) => Ok(a),
                None => bail!("tree: {n} arrays cannot fill a tree of more leaves"),
            }
        })?;
        if used != n {
            bail!("tree: {n} arrays given for a tree of {used} leaves");
        }
        Ok(out)
    }
}

impl Tree for Array {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Array)) {
        f(self)
    }
    fn map_leaves(&self, f: &mut dyn FnMut(&Array) -> Result<Array>) -> Result<Self> {
        f(self)
    }
}

impl Tree for () {
    fn visit<'a>(&'a self, _: &mut dyn FnMut(&'a Array)) {}
    fn map_leaves(&self, _: &mut dyn FnMut(&Array) -> Result<Array>) -> Result<Self> {
        Ok(())
    }
}

impl<T: Tree> Tree for Vec<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Array)) {
        self.iter().for_each(|t| t.visit(f))
    }
    fn map_leaves(&self, f: &mut dyn FnMut(&Array) -> Result<Array>) -> Result<Self> {
        self.iter().map(|t| t.map_leaves(f)).collect()
    }
}

impl<T: Tree, const N: usize> Tree for [T; N] {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Array)) {
        self.iter().for_each(|t| t.visit(f))
    }
    fn map_leaves(&self, f: &mut dyn FnMut(&Array) -> Result<Array>) -> Result<Self> {
        let v: Vec<T> = self
            .iter()
            .map(|t| t.map_leaves(f))
            .collect::<Result<_>>()?;
        Ok(v.try_into()
            .unwrap_or_else(|_| unreachable!("the same length")))
    }
}

impl<T: Tree> Tree for Option<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Array)) {
        if let Some(t) = self {
            t.visit(f)
        }
    }
    fn map_leaves(&self, f: &mut dyn FnMut(&Array) -> Result<Array>) -> Result<Self> {
        self.as_ref().map(|t| t.map_leaves(f)).transpose()
    }
}

impl<T: Tree> Tree for BTreeMap<String, T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Array)) {
        self.values().for_each(|t| t.visit(f))
    }
    fn map_leaves(&self, f: &mut dyn FnMut(&Array) -> Result<Array>) -> Result<Self> {
        self.iter()
            .map(|(k, t)| Ok((k.clone(), t.map_leaves(f)?)))
            .collect()
    }
}

/// Leaves in the order of sorted keys, so the order is the same every time.
impl<T: Tree> Tree for HashMap<String, T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Array)) {
        let mut keys: Vec<&String> = self.keys().collect();
        keys.sort();
        keys.into_iter().for_each(|k| self[k].visit(f))
    }
    fn map_leaves(&self, f: &mut dyn FnMut(&Array) -> Result<Array>) -> Result<Self> {
        let mut keys: Vec<&String> = self.keys().collect();
        keys.sort();
        keys.into_iter()
            .map(|k| Ok((k.clone(), self[k].map_leaves(f)?)))
            .collect()
    }
}

macro_rules! tuple_tree {
    ($($t:ident $i:tt),*) => {
        impl<$($t: Tree),*> Tree for ($($t,)*) {
            fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Array)) {
                $(self.$i.visit(f);)*
            }
            fn map_leaves(&self, f: &mut dyn FnMut(&Array) -> Result<Array>) -> Result<Self> {
                Ok(($(self.$i.map_leaves(f)?,)*))
            }
        }
    };
}
tuple_tree!(A 0);
tuple_tree!(A 0, B 1);
tuple_tree!(A 0, B 1, C 2);
tuple_tree!(A 0, B 1, C 2, D 3);
tuple_tree!(A 0, B 1, C 2, D 3, E 4);
tuple_tree!(A 0, B 1, C 2, D 3, E 4, F 5);
