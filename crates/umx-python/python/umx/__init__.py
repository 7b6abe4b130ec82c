"""umx: MLX's Python API on umx, an array framework written in Rust.

An MLX program ports by changing its imports::

    import umx.core as mx
    import umx.nn as nn
    import umx.optimizers as optim
    from umx.utils import tree_map

``umx.core`` is the native module (arrays, ops, transforms, ``umx.core.random``);
``umx.nn``, ``umx.optimizers`` and ``umx.utils`` are plain Python over it, as their MLX
counterparts are Python over ``mlx.core``.
"""

from umx import core

__all__ = ["core"]
