"""Optimizers (MLX's ``mlx.optimizers``): SGD, Adam, AdamW and friends, learning-rate
schedules and ``clip_grad_norm``, in plain Python over ``umx.core``.

``optimizer.update(model, grads)`` applies one step to a module's parameters; an optimizer's
state (``optimizer.state``) is a tree of arrays, so ``mx.eval(model.parameters(),
optimizer.state)`` evaluates a step.
"""

from umx.optimizers.optimizers import *  # noqa: F401,F403
from umx.optimizers.optimizers import __all__ as _optimizers
from umx.optimizers.schedulers import *  # noqa: F401,F403
from umx.optimizers.schedulers import __all__ as _schedulers

__all__ = [*_optimizers, *_schedulers]
