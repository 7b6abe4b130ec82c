"""Pytree helpers (MLX's ``mlx.utils``): trees are nests of lists, tuples and dicts."""

from collections import defaultdict

__all__ = [
    "tree_map",
    "tree_map_with_path",
    "tree_flatten",
    "tree_unflatten",
    "tree_reduce",
    "tree_merge",
]


def tree_map(fn, tree, *rest, is_leaf=None):
    """``fn`` applied to every leaf of ``tree`` (and the matching leaves of ``rest``), in a
    tree of the same structure."""
    if is_leaf is not None and is_leaf(tree):
        return fn(tree, *rest)
    if isinstance(tree, (list, tuple)):
        kind = type(tree)
        return kind(
            tree_map(fn, child, *(r[i] for r in rest), is_leaf=is_leaf)
            for i, child in enumerate(tree)
        )
    if isinstance(tree, dict):
        return {
            k: tree_map(fn, child, *(r[k] for r in rest), is_leaf=is_leaf)
            for k, child in tree.items()
        }
    return fn(tree, *rest)


def tree_map_with_path(fn, tree, *rest, is_leaf=None, path=None):
    """Like ``tree_map``, with ``fn(path, leaf, *rest)`` given each leaf's dotted path."""
    if is_leaf is not None and is_leaf(tree):
        return fn(path, tree, *rest)
    if isinstance(tree, (list, tuple)):
        prefix = f"{path}." if path else ""
        kind = type(tree)
        return kind(
            tree_map_with_path(
                fn, child, *(r[i] for r in rest), is_leaf=is_leaf, path=f"{prefix}{i}"
            )
            for i, child in enumerate(tree)
        )
    if isinstance(tree, dict):
        prefix = f"{path}." if path else ""
        return {
            k: tree_map_with_path(
                fn, child, *(r[k] for r in rest), is_leaf=is_leaf, path=f"{prefix}{k}"
            )
            for k, child in tree.items()
        }
    return fn(path, tree, *rest)


def tree_flatten(tree, prefix="", is_leaf=None, destination=None):
    """The leaves of ``tree`` as ``(dotted path, leaf)`` pairs, in order (a list, or added to
    ``destination``, a list or dict)."""
    flat = []

    def walk(t, p):
        if is_leaf is None or not is_leaf(t):
            if isinstance(t, (list, tuple)):
                for i, c in enumerate(t):
                    walk(c, f"{p}.{i}")
                return
            if isinstance(t, dict):
                for k, c in t.items():
                    walk(c, f"{p}.{k}")
                return
        flat.append((p[1:], t))

    walk(tree, prefix)
    if destination is None:
        return flat
    if isinstance(destination, dict):
        destination.update(flat)
    else:
        destination.extend(flat)
    return destination


def tree_unflatten(tree):
    """The nested tree of ``(dotted path, leaf)`` pairs (or a dict of them): integer path
    parts make lists, others dicts."""
    items = list(tree.items()) if isinstance(tree, dict) else list(tree)
    if len(items) == 1 and items[0][0] == "":
        return items[0][1]
    try:
        int(items[0][0].split(".", maxsplit=1)[0])
        is_list = True
    except ValueError:
        is_list = False
    children = defaultdict(list)
    for key, value in items:
        head, *tail = key.split(".", maxsplit=1)
        children[head].append((tail[0] if tail else "", value))
    if is_list:
        out = []
        for i, k in sorted((int(k), k) for k in children):
            out.extend({} for _ in range(i - len(out)))
            out.append(tree_unflatten(children[k]))
        return out
    return {k: tree_unflatten(v) for k, v in children.items()}


def tree_reduce(fn, tree, initializer=None, is_leaf=None):
    """The leaves folded with ``fn(accumulator, leaf)``, starting from ``initializer`` (or
    the first leaf)."""
    if is_leaf is not None and is_leaf(tree):
        return tree if initializer is None else fn(initializer, tree)
    acc = initializer
    if isinstance(tree, (list, tuple)):
        for item in tree:
            acc = tree_reduce(fn, item, acc, is_leaf)
    elif isinstance(tree, dict):
        for item in tree.values():
            acc = tree_reduce(fn, item, acc, is_leaf)
    else:
        return tree if acc is None else fn(acc, tree)
    return acc


def tree_merge(tree_a, tree_b, merge_fn=None):
    """Two trees with disjoint leaves merged into one (``merge_fn(a, b)`` decides leaves
    both have)."""
    if isinstance(tree_a, (dict, list, tuple)) and len(tree_a) == 0:
        tree_a = None
    if isinstance(tree_b, (dict, list, tuple)) and len(tree_b) == 0:
        tree_b = None
    if tree_a is None and tree_b is not None:
        return tree_b
    if tree_a is not None and tree_b is None:
        return tree_a
    if isinstance(tree_a, (list, tuple)) and isinstance(tree_b, (list, tuple)):
        kind = type(tree_a)
        n = max(len(tree_a), len(tree_b))
        pad_a = list(tree_a) + [None] * (n - len(tree_a))
        pad_b = list(tree_b) + [None] * (n - len(tree_b))
        return kind(tree_merge(a, b, merge_fn) for a, b in zip(pad_a, pad_b))
    if isinstance(tree_a, dict) and isinstance(tree_b, dict):
        keys = list(tree_a) + [k for k in tree_b if k not in tree_a]
        return {k: tree_merge(tree_a.get(k), tree_b.get(k), merge_fn) for k in keys}
    if merge_fn is None:
        raise ValueError(
            "tree_merge: the trees both have a leaf here; pass merge_fn to merge them"
        )
    return merge_fn(tree_a, tree_b)
