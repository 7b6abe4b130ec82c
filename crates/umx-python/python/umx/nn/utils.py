"""``value_and_grad`` for modules."""

from functools import wraps

import umx.core as mx

__all__ = ["value_and_grad"]


def value_and_grad(model, fn):
    """A function returning ``(fn(*args), gradients)``, the gradients taken with respect to
    ``model.trainable_parameters()`` (a nested dict, as ``optimizer.update`` takes it)."""

    def inner(params, *args, **kwargs):
        model.update(params)
        return fn(*args, **kwargs)

    value_grad = mx.value_and_grad(inner)

    @wraps(fn)
    def wrapped(*args, **kwargs):
        params = model.trainable_parameters()
        try:
            return value_grad(params, *args, **kwargs)
        finally:
            # The call traced the model with stand-ins for its parameters: put back the
            # arrays themselves.
            model.update(params)

    return wrapped
