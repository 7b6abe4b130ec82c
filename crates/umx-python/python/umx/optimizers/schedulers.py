"""Learning-rate schedules: functions of the step (an array) giving the rate."""

import math

import umx.core as mx

__all__ = [
    "exponential_decay", "step_decay", "cosine_decay", "linear_schedule", "join_schedules",
]


def exponential_decay(init, decay_rate):
    """``init * decay_rate ** step``."""
    return lambda step: init * decay_rate**step


def step_decay(init, decay_rate, step_size):
    """``init * decay_rate ** (step // step_size)``."""
    return lambda step: init * decay_rate ** (step // step_size)


def cosine_decay(init, decay_steps, end=0.0):
    """From ``init`` to ``end`` along half a cosine over ``decay_steps``, then ``end``."""

    def schedule(step):
        s = mx.minimum(step, decay_steps)
        decay = 0.5 * (1.0 + mx.cos((math.pi / decay_steps) * s))
        return end + decay * (init - end)

    return schedule


def linear_schedule(init, end, steps):
    """From ``init`` to ``end`` linearly over ``steps``, then ``end``."""
    if steps < 1:
        raise ValueError(f"linear_schedule: steps must be at least 1, not {steps}")

    def schedule(step):
        s = mx.minimum(step, steps)
        return s * ((end - init) / steps) + init

    return schedule


def join_schedules(schedules, boundaries):
    """``schedules[i]`` from step ``boundaries[i - 1]`` on (each counting from its start)."""
    if len(schedules) == 0 or len(boundaries) != len(schedules) - 1:
        raise ValueError("join_schedules: needs one boundary fewer than schedules")

    def schedule(step):
        out = schedules[0](step)
        for boundary, s in zip(boundaries, schedules[1:]):
            out = mx.where(step < boundary, out, s(step - boundary))
        return out

    return schedule
