"""The learning-rate schedule: a warm-up, then a decay to (near) zero over the planned steps.

Why warm up: at the first steps the weights are random and the BatchNorm statistics
wrong, so a full learning rate throws the net about; a few hundred gentle steps let it
settle before the big steps that make progress. Why decay to (near) zero: the last
epochs at a small rate average out the noise of the batches, which is worth a few
accuracy points at the end.

:func:`make_schedule` is the one way the course builds one. A cosine decay is Keras's
``CosineDecay`` with its ``warmup_*`` arguments (the same rate at every step as the
course's own cosine had: ``tests/test_train.py`` checks it); a linear decay, the fast
CIFAR-10 trainers' and the course's default, is :class:`WarmupDecay`, because Keras has
none after a warm-up.
"""

from __future__ import annotations

from helpers.quiet import keras, tf

KINDS = ("linear", "cosine")


@keras.saving.register_keras_serializable(package="course")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """A linear warm-up from ``peak * start`` to ``peak`` over ``warmup`` of the steps,
    then a linear decay to ``peak * end`` at ``total_steps``.

    Kept beside Keras's schedules because none of them is this one: ``CosineDecay``
    warms up linearly but decays along a cosine, and ``PolynomialDecay(power=1)`` decays
    linearly but has no warm-up. The linear decay spends more steps at a high rate than
    the cosine; it is what the fast CIFAR-10 trainers use and what notebook 06's step
    table measured. ``kind`` stays for the saved optimizers and the callers that name
    it; only ``"linear"`` is built here (a cosine is :func:`make_schedule`'s, Keras's).
    """

    def __init__(
        self,
        peak: float,
        total_steps: int,
        warmup: float = 0.2,
        kind: str = "linear",
        start: float = 0.1,
        end: float = 0.0,
    ):
        if kind != "linear":
            raise ValueError(
                f"kind must be 'linear', not {kind!r}: a cosine decay is Keras's CosineDecay, "
                "built by helpers.train.make_schedule(..., kind='cosine')"
            )
        _check(total_steps, warmup)
        self.peak, self.total_steps, self.warmup = float(peak), int(total_steps), float(warmup)
        self.kind, self.start, self.end = kind, float(start), float(end)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        total = float(self.total_steps)
        ramp = self.warmup * total
        warm = self.peak * (self.start + (1.0 - self.start) * step / max(ramp, 1.0))
        t = tf.clip_by_value((step - ramp) / max(total - ramp, 1.0), 0.0, 1.0)
        decay = self.peak * (self.end + (1.0 - self.end) * (1.0 - t))
        return tf.where(step < ramp, warm, decay)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup": self.warmup,
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
        }


def _check(total_steps: int, warmup: float) -> None:
    if total_steps < 1 or not 0 <= warmup < 1:
        raise ValueError(f"need total_steps >= 1 and 0 <= warmup < 1: {total_steps}, {warmup}")


def make_schedule(
    peak: float,
    total_steps: int,
    *,
    warmup: float = 0.2,
    kind: str = "linear",
    start: float = 0.1,
    end: float = 0.0,
) -> keras.optimizers.schedules.LearningRateSchedule:
    """A linear warm-up from ``peak * start`` to ``peak`` over ``warmup`` (a fraction) of
    ``total_steps``, then a ``"linear"`` (:class:`WarmupDecay`) or ``"cosine"`` (Keras's
    ``CosineDecay``) decay to ``peak * end`` at ``total_steps``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be 'linear' or 'cosine', not {kind!r}")
    if kind == "linear":
        return WarmupDecay(peak, total_steps, warmup, start=start, end=end)
    _check(total_steps, warmup)
    ramp = warmup * total_steps
    return keras.optimizers.schedules.CosineDecay(
        peak * start, total_steps - ramp, alpha=end, warmup_target=peak, warmup_steps=ramp
    )
