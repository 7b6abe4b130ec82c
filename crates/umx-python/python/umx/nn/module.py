"""``Module``: the base of layers and models, as MLX's.

A module is a dict: its arrays (parameters), sub-modules, and lists and dicts of them are its
items, reachable as attributes. ``parameters()`` gives them as a nested dict, ``update``
puts new ones in place, and ``freeze`` marks some as not trainable.
"""

import os
import textwrap

import umx.core as mx
from umx.utils import tree_flatten, tree_unflatten

__all__ = ["Module"]


def _unwrap(model, key, value, filter_fn, map_fn, is_leaf_fn):
    if is_leaf_fn(model, key, value):
        return map_fn(value)
    if isinstance(value, Module):
        return {
            k: _unwrap(value, k, v, filter_fn, map_fn, is_leaf_fn)
            for k, v in value.items()
            if filter_fn(value, k, v)
        }
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            tk = f"{key}.{k}"
            out[k] = (
                _unwrap(model, tk, v, filter_fn, map_fn, is_leaf_fn)
                if filter_fn(model, tk, v)
                else {}
            )
        return out
    if isinstance(value, (list, tuple)):
        out = []
        for i, v in enumerate(value):
            tk = f"{key}.{i}"
            out.append(
                _unwrap(model, tk, v, filter_fn, map_fn, is_leaf_fn)
                if filter_fn(model, tk, v)
                else {}
            )
        return out
    raise RuntimeError(f"Module: unexpected leaf {key!r} while walking the module")


class Module(dict):
    """The base class of layers and models. Subclass it, set arrays and sub-modules as
    attributes in ``__init__`` (after ``super().__init__()``), and define ``__call__``."""

    def __init__(self):
        self._no_grad = set()
        self._training = True

    @property
    def training(self):
        """Whether the module is in training mode (see ``train`` and ``eval``)."""
        return self._training

    @property
    def state(self):
        """The module's items (parameters, sub-modules, other arrays), as a dict."""
        return self

    def __repr__(self):
        children = tree_flatten(self.children(), is_leaf=lambda x: isinstance(x, Module))
        lines = [f"{type(self).__name__}({self._extra_repr()}"]
        for k, v in children:
            lines.append(textwrap.indent(f"({k}): {v!r}", "  "))
        return "\n".join(lines) + ("\n)" if children else ")")

    def _extra_repr(self):
        return ""

    def __getattr__(self, key):
        if key in self:
            return self[key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    def __setattr__(self, key, val):
        if isinstance(val, (mx.array, dict, list, tuple)):
            if key not in self and key in self.__dict__:
                del self.__dict__[key]
            self[key] = val
        else:
            super().__setattr__(key, val)

    def __delattr__(self, key):
        if key in self:
            del self[key]
        else:
            super().__delattr__(key)

    # The dict's hash and equality would make two empty modules equal: modules compare by
    # identity, as objects.
    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    # ---- filtering ------------------------------------------------------------------------

    @staticmethod
    def valid_child_filter(module, key, value):
        return isinstance(value, (dict, list))

    @staticmethod
    def valid_parameter_filter(module, key, value):
        return isinstance(value, (dict, list, mx.array)) and not key.startswith("_")

    @staticmethod
    def trainable_parameter_filter(module, key, value):
        return Module.valid_parameter_filter(module, key, value) and key not in module._no_grad

    def filter_and_map(self, filter_fn, map_fn=None, is_leaf_fn=None):
        """The items ``filter_fn(module, key, value)`` keeps, walked recursively, with
        ``map_fn`` applied to the leaves."""
        map_fn = map_fn or (lambda x: x)
        is_leaf_fn = is_leaf_fn or (
            lambda m, k, v: not isinstance(v, (Module, dict, list, tuple))
        )
        return {
            k: _unwrap(self, k, v, filter_fn, map_fn, is_leaf_fn)
            for k, v in self.items()
            if filter_fn(self, k, v)
        }

    def parameters(self):
        """Every parameter (array) of the module and its sub-modules, as a nested dict."""
        return self.filter_and_map(self.valid_parameter_filter)

    def trainable_parameters(self):
        """The parameters that are not frozen, as a nested dict."""
        return self.filter_and_map(self.trainable_parameter_filter)

    def children(self):
        """The direct sub-modules (and lists and dicts of them)."""
        return self.filter_and_map(
            self.valid_child_filter, is_leaf_fn=lambda m, k, v: isinstance(v, Module)
        )

    def leaf_modules(self):
        """The sub-modules that have no sub-modules."""

        def is_leaf(m, k, v):
            return isinstance(v, Module) and len(tree_flatten(v.children())) == 0

        return self.filter_and_map(self.valid_child_filter, is_leaf_fn=is_leaf)

    # ---- updating -------------------------------------------------------------------------

    def update(self, parameters, strict=True):
        """Puts the arrays of ``parameters`` (a nested dict as ``parameters()`` gives) in
        place; with ``strict``, every key must name an existing parameter."""

        def apply(dst, params):
            if isinstance(params, dict):
                for k, new in params.items():
                    if k in dst:
                        cur = dst[k]
                        if isinstance(cur, mx.array):
                            if strict and not isinstance(new, mx.array):
                                raise ValueError(
                                    f"Module.update: {k!r} must be an array, not "
                                    f"{type(new).__name__}"
                                )
                            dst[k] = new
                        else:
                            apply(cur, new)
                    elif strict:
                        raise ValueError(f"Module.update: the module has no parameter {k!r}")
            elif isinstance(params, (list, tuple)):
                for i, new in enumerate(params):
                    cur = dst[i]
                    if isinstance(cur, mx.array):
                        dst[i] = new
                    else:
                        apply(cur, new)
            elif strict:
                raise ValueError(
                    f"Module.update: expected a dict or list of parameters, not "
                    f"{type(params).__name__}"
                )

        apply(self, parameters)
        return self

    def apply(self, map_fn, filter_fn=None):
        """Replaces each parameter (kept by ``filter_fn``) by ``map_fn(parameter)``."""
        filter_fn = filter_fn or Module.valid_parameter_filter
        self.update(self.filter_and_map(filter_fn, map_fn))
        return self

    def update_modules(self, modules, strict=True):
        """Puts the sub-modules of ``modules`` (a nested dict) in place."""

        def apply(dst, mods):
            if isinstance(mods, dict):
                for k, new in mods.items():
                    if k in dst:
                        cur = dst[k]
                        if isinstance(cur, Module) and isinstance(new, Module):
                            dst[k] = new
                        elif isinstance(cur, (dict, list)):
                            apply(cur, new)
                    elif strict:
                        raise ValueError(f"Module.update_modules: no sub-module {k!r}")
            elif isinstance(mods, list):
                for i, new in enumerate(mods):
                    cur = dst[i]
                    if isinstance(cur, Module) and isinstance(new, Module):
                        dst[i] = new
                    else:
                        apply(cur, new)

        apply(self, modules)
        return self

    def named_modules(self):
        """``(dotted path, module)`` for this module (path ``""``) and every sub-module,
        deepest first."""
        stack = [("", self)]
        out = []
        while stack:
            prefix, m = stack.pop()
            out.append((prefix, m))
            for path, child in tree_flatten(
                m.children(), is_leaf=lambda x: isinstance(x, Module)
            ):
                if isinstance(child, Module):
                    stack.append((f"{prefix}.{path}" if prefix else path, child))
        return out[::-1]

    def modules(self):
        """This module and every sub-module."""
        return [m for _, m in self.named_modules()]

    def apply_to_modules(self, apply_fn):
        """Calls ``apply_fn(path, module)`` on this module and every sub-module."""
        for path, m in self.named_modules():
            apply_fn(path, m)
        return self

    # ---- freezing and modes ---------------------------------------------------------------

    def _local_keys(self, keys):
        if keys is not None:
            return [keys] if isinstance(keys, str) else list(keys)
        own = self.filter_and_map(
            lambda m, k, v: not isinstance(v, Module) and m.valid_parameter_filter(m, k, v)
        )
        return [k for k, _ in tree_flatten(own)]

    def freeze(self, *, recurse=True, keys=None, strict=False):
        """Marks parameters (all, or those named by ``keys``) as not trainable: they are
        left out of ``trainable_parameters()`` and so of ``nn.value_and_grad``."""

        def fn(_, m):
            local = m._local_keys(keys)
            if strict:
                m._check_keys(local)
            m._no_grad.update(local)

        if recurse:
            self.apply_to_modules(fn)
        else:
            fn("", self)
        return self

    def unfreeze(self, *, recurse=True, keys=None, strict=False):
        """Makes parameters (all, or those named by ``keys``) trainable again."""

        def fn(_, m):
            if keys is None:
                m._no_grad.clear()
            else:
                local = m._local_keys(keys)
                if strict:
                    m._check_keys(local)
                m._no_grad.difference_update(local)

        if recurse:
            self.apply_to_modules(fn)
        else:
            fn("", self)
        return self

    def _check_keys(self, keys):
        params = dict(tree_flatten(self.parameters()))
        for k in keys:
            if k not in params:
                raise KeyError(f"Module: no parameter {k!r}")

    def train(self, mode=True):
        """Sets training mode (``mode``) on the module and every sub-module."""

        def fn(_, m):
            m._training = mode

        self.apply_to_modules(fn)
        return self

    def eval(self):
        """Sets evaluation mode: ``train(False)``."""
        return self.train(False)

    # ---- weights ----------------------------------------------------------------------------

    def load_weights(self, file_or_weights, strict=True):
        """Loads weights into the parameters: a ``.safetensors`` or ``.npz`` file, or a list
        (or dict) of ``(dotted path, array)`` pairs. With ``strict``, the weights must be
        exactly the module's parameters, of their shapes."""
        weights = file_or_weights
        if isinstance(weights, (str, os.PathLike)):
            weights = mx.load(str(weights))
        weights = list(weights.items()) if isinstance(weights, dict) else list(weights)
        if strict:
            expected = dict(tree_flatten(self.parameters()))
            given = dict(weights)
            missing = sorted(set(expected) - set(given))
            extra = sorted(set(given) - set(expected))
            if missing or extra:
                raise ValueError(
                    f"Module.load_weights: missing {missing}, unexpected {extra}"
                )
            for k, v in given.items():
                if v.shape != expected[k].shape:
                    raise ValueError(
                        f"Module.load_weights: {k} has shape {v.shape}, the module's "
                        f"{expected[k].shape}"
                    )
        self.update(tree_unflatten(weights), strict=strict)
        return self

    def save_weights(self, file):
        """Saves the parameters to a ``.safetensors`` or ``.npz`` file, by dotted path."""
        file = str(file)
        params = dict(tree_flatten(self.parameters()))
        if file.endswith(".safetensors"):
            mx.save_safetensors(file, params)
        elif file.endswith(".npz"):
            mx.savez(file, **params)
        else:
            raise ValueError(
                f"Module.save_weights: {file!r} must end in .safetensors or .npz"
            )
