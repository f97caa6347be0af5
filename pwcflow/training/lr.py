"""Learning-rate schedules (``lr_schedule`` config group): tfoptflow's multisteps and cyclic."""

from typing import Sequence

from pwcflow.errors import UserError
from pwcflow.tf1 import tf


def multisteps(step: tf.Tensor, boundaries: Sequence[int], rates: Sequence[float]) -> tf.Tensor:
    """Piecewise-constant: ``rates[i]`` until ``boundaries[i]``; needs one more rate than boundaries."""
    if len(rates) != len(boundaries) + 1:
        raise UserError("bad setting lr_schedule.rates: needs %d entries (one more than boundaries), got %d"
                        % (len(boundaries) + 1, len(rates)))
    if list(boundaries) != sorted(set(boundaries)):
        raise UserError("bad setting lr_schedule.boundaries: must be strictly increasing, got %s" % list(boundaries))
    return tf.train.piecewise_constant(tf.cast(step, tf.int64), [int(b) for b in boundaries],
                                       [float(r) for r in rates], name="lr_multisteps")


def cyclic(step: tf.Tensor, base_lr: float, max_lr: float, step_size: int) -> tf.Tensor:
    """Smith's triangular2 cyclic rate (tfoptflow): the amplitude halves after every cycle."""
    s = tf.cast(step, tf.float32)
    cycle = tf.floor(1.0 + s / (2.0 * step_size))
    x = tf.abs(s / float(step_size) - 2.0 * cycle + 1.0)
    amp = tf.maximum(0.0, 1.0 - x) * (max_lr - base_lr) / tf.pow(2.0, cycle - 1.0)
    return tf.add(amp, base_lr, name="lr_cyclic")


def build(sched, step: tf.Tensor) -> tf.Tensor:
    """The schedule ``cfg.lr_schedule`` as a tensor of ``step``."""
    if sched.name == "multisteps":
        return multisteps(step, list(sched.boundaries), list(sched.rates))
    if sched.name == "cyclic":
        return cyclic(step, float(sched.base_lr), float(sched.max_lr), int(sched.step_size))
    raise UserError("bad setting lr_schedule.name: %r is not multisteps or cyclic" % sched.name)
