"""The callbacks :func:`~helpers.train.fit` and ``distribute.Trainer`` share: the runner's
record of a run (:class:`RecordMetrics`), the pace of ``fit`` (:class:`Pace`) and the
budget guard (:class:`Deadline`). ``Trainer`` drives them through Keras's
``CallbackList``, so both paths return the same per-epoch history dict
(``loss``, ``accuracy``, ...) that ``helpers.plots.learning_curves`` reads."""

from __future__ import annotations

import time

import numpy as np

from helpers.quiet import keras
from helpers.results import record


class RecordMetrics(keras.callbacks.Callback):
    """Records the run for the headless runner (``helpers.results.record``): after every
    epoch the latest metrics (``<prefix>val_accuracy``, ...), at the end ``epochs``,
    ``train_seconds`` and ``images_per_second`` (epochs after the first, which traces)."""

    def __init__(
        self,
        prefix: str | None = "",
        batch_size: int | None = None,
        steps: int | None = None,
    ):
        super().__init__()
        self.prefix, self.batch_size, self.steps = prefix, batch_size, steps
        self.recording = prefix is not None  # None: only time the run
        self.epoch_seconds: list[float] = []
        self.epochs_done = 0

    def on_train_begin(self, logs=None):
        if not hasattr(self, "started"):  # a budgeted fit calls model.fit twice
            self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._epoch_started)
        self.epochs_done = epoch + 1
        if not self.recording:
            return
        for name, value in (logs or {}).items():
            if name != "learning_rate" and np.isfinite(value):
                record(f"{self.prefix}{name}", float(value))

    def on_train_end(self, logs=None):
        self.seconds = time.perf_counter() - self.started
        if not self.recording:
            return
        record(f"{self.prefix}epochs", self.epochs_done)
        record(f"{self.prefix}train_seconds", round(self.seconds, 2))
        if self.images_per_second:
            record(f"{self.prefix}images_per_second", round(self.images_per_second, 1))

    @property
    def images_per_second(self) -> float | None:
        if not self.batch_size or not self.steps or not self.epoch_seconds:
            return None
        steady = self.epoch_seconds[1:] or self.epoch_seconds
        return self.batch_size * self.steps / float(np.median(steady))


class Pace(keras.callbacks.Callback):
    """The seconds per step ``model.fit`` keeps, from the ends of an epoch's batches after
    the first, and what the first batch cost beyond a step: tracing ``fit``'s step and
    starting its input, which a retrace pays again."""

    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())

    @property
    def seconds_per_step(self) -> float | None:
        if len(self.ends) < 2:
            return None
        return (self.ends[-1] - self.ends[0]) / (len(self.ends) - 1)

    @property
    def trace_seconds(self) -> float | None:
        if self.seconds_per_step is None:
            return None
        return max(0.0, self.ends[0] - self.began - self.seconds_per_step)


class StopAt(keras.callbacks.Callback):
    """Ends ``fit`` after step ``step`` of the whole run or after epoch ``epoch`` (both
    counted from the run's start, epochs of ``steps_per_epoch``, so a continued or resumed
    ``fit`` counts right), whichever comes first. A plan in steps ends partway through its
    last epoch (whose validation still runs); a caller that stops after an epoch can look
    at the pace so far and go on under a new plan."""

    def __init__(self, steps_per_epoch: int, *, step: int | None = None, epoch: int | None = None):
        super().__init__()
        self.steps_per_epoch, self.step, self.epoch = int(steps_per_epoch), step, epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._before = epoch * self.steps_per_epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.step is not None and self._before + batch + 1 >= self.step:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.epoch is not None and epoch + 1 >= self.epoch:
            self.model.stop_training = True


class Deadline(keras.callbacks.Callback):
    """Ends training before ``deadline`` (a ``clock()`` value) rather than after it.

    After every batch it asks whether one more batch and the end of the epoch
    (validation and checkpoint: ``epoch_end_s``, raised to the longest end it has seen)
    would still end in time, and stops the run when not; at an epoch's end, whether one
    more batch and another end would. A plan made from a measured pace fits the budget
    while the pace holds; on a machine that slows down (other work starts, the CPU
    throttles) this guard stops the run, its decay cut short, instead of letting it end
    late: with a check per epoch, a 5-minute budget once took 304 s.
    A step's time is the last batch's, ``step_s`` until one is seen; an epoch's first
    batch, which also starts the input and may trace the step, sets it only when there
    is none. ``clock`` is ``time.perf_counter`` unless given (a test's fake clock).
    Put it last among the callbacks, so the epoch's end it measures includes theirs.
    With ``total_steps`` (the plan's, counted from ``steps_done``) it stays quiet once
    they are done. ``fired`` says whether it stopped the run, ``stopped_at`` after which
    step.
    """

    def __init__(
        self,
        deadline: float,
        *,
        epoch_end_s: float = 0.0,
        total_steps: int | None = None,
        steps_done: int = 0,
        step_s: float = 0.0,
        clock=None,
    ):
        super().__init__()
        self.deadline, self.epoch_end_s = float(deadline), float(epoch_end_s)
        self.clock = clock if clock is not None else time.perf_counter
        self.total_steps, self.steps_done = total_steps, int(steps_done)
        self.fired = False
        self.stopped_at: int | None = None
        self.step_s = float(step_s)

    def on_epoch_begin(self, epoch, logs=None):
        self._last = self.clock()
        self._first = True

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        if not self._first or not self.step_s:  # an epoch's first batch also starts its input
            self.step_s = max(now - self._last, 0.0)  # and may trace: not a step's pace
        self._last, self._first = now, False
        self.steps_done += 1
        self._check(now + self.step_s + self.epoch_end_s)

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        self.epoch_end_s = max(self.epoch_end_s, now - self._last)
        self._check(now + self.step_s + self.epoch_end_s)

    def _check(self, would_end: float) -> None:
        finished = self.total_steps is not None and self.steps_done >= self.total_steps
        if would_end > self.deadline and not self.fired and not finished:
            self.fired, self.stopped_at = True, self.steps_done
            self.model.stop_training = True
