"""The one planner: a number of steps, of epochs, or a time budget, turned into the steps a
run takes and the schedule spans (:func:`plan_steps`), and the speed it plans from,
measured on the real model (:func:`measure`).

A learner knows minutes, not epochs, and a learning-rate schedule must know its length
before it starts: planned too long, the run is cut before its decay (a few accuracy
points lost); too short, the budget is left unused. So a budget is planned from a
measured pace with a share held back, and :class:`~helpers.train.Deadline` guards the
rest: should the pace fall after the plan, it ends the run at the deadline, not after.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHARE = 0.95  # of a budget planned; the rest for checkpoints, logging and a slower pace


@dataclass(frozen=True)
class Plan:
    """How long to train: ``epochs`` of ``steps_per_epoch`` steps, ``total_steps`` in all
    (the schedule's length), the estimated ``epoch_seconds`` (budgeted plans) and why."""

    epochs: int
    steps_per_epoch: int
    total_steps: int
    epoch_seconds: float | None
    reason: str


def plan_steps(
    steps_per_epoch: int,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    budget_s: float | None = None,
    seconds_per_step: float | None = None,
    epoch_overhead_s: float = 0.0,
    share: float = SHARE,
    min_epochs: int = 1,
    whole_epochs: bool = True,
) -> Plan:
    """``steps`` as given (the last epoch partly run), else ``epochs`` as given, else as
    many epochs of ``steps_per_epoch`` steps at ``seconds_per_step`` (plus
    ``epoch_overhead_s`` each: validation, checkpoint) as fit in ``share`` of
    ``budget_s`` seconds, at least ``min_epochs``.

    ``whole_epochs=False`` plans steps, the last epoch partly run, for a loop that can
    stop mid-epoch (``helpers.distribute.Trainer``): whole epochs of a few hundred steps
    leave up to an epoch of the budget unused (notebook 07 in ``laptop`` planned 2
    epochs of 101 s into 5 minutes: 3.4 of them)."""
    steps_per_epoch = int(steps_per_epoch)
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, not {steps_per_epoch}")
    if steps:
        n = math.ceil(steps / steps_per_epoch)
        why = f"{steps} steps, as given ({n} epoch(s) of {steps_per_epoch} steps)"
        return Plan(n, steps_per_epoch, int(steps), None, why)
    if epochs:
        why = f"{epochs} epoch(s) of {steps_per_epoch} steps, as given"
        return Plan(int(epochs), steps_per_epoch, int(epochs) * steps_per_epoch, None, why)
    if budget_s is None or not seconds_per_step:
        raise ValueError("give steps, epochs, or budget_s with a measured seconds_per_step")
    per_epoch = seconds_per_step * steps_per_epoch + epoch_overhead_s
    if not whole_epochs:
        total = int(share * max(budget_s, 0.0) / (per_epoch / steps_per_epoch))
        total = max(min_epochs * steps_per_epoch, total)
        n = math.ceil(total / steps_per_epoch)
        why = (
            f"{seconds_per_step:.3g} s/step and {epoch_overhead_s:.1f} s besides per epoch of "
            f"{steps_per_epoch} steps: {total} steps ({total / steps_per_epoch:.1f} epochs), "
            f"{total * per_epoch / steps_per_epoch / 60:.1f} of {budget_s / 60:.1f} minutes"
        )
        return Plan(n, steps_per_epoch, total, per_epoch, why)
    n = max(min_epochs, int(share * max(budget_s, 0.0) / per_epoch))
    why = (
        f"{seconds_per_step:.3g} s/step and {epoch_overhead_s:.1f} s besides per epoch of "
        f"{steps_per_epoch} steps: {n} epochs, {n * per_epoch / 60:.1f} of "
        f"{budget_s / 60:.1f} minutes"
    )
    return Plan(n, steps_per_epoch, n * steps_per_epoch, per_epoch, why)


@dataclass(frozen=True)
class Speed:
    """What :func:`measure` found, in seconds: a training step, an epoch's end besides
    the steps (validation, checkpoint, Keras's bookkeeping), saving the model once, and
    tracing the step (paid again when the schedule's length changes)."""

    step: float
    epoch_end: float
    save: float
    trace: float


def measure(model, train, val, steps: int = 8, save: bool = False) -> Speed:
    """The :class:`Speed` of the compiled ``model`` on ``train`` (and ``val``), measured
    with ``train_on_batch``; the weights and optimizer state are put back afterwards."""
    weights = model.get_weights()
    model.optimizer.build(model.trainable_variables)
    slots = [v.numpy() for v in model.optimizer.variables]
    batches = iter(train.repeat())
    x, y = next(batches)
    t = time.perf_counter()
    model.train_on_batch(x, y)  # traces the step: counted once, not per step
    trace_seconds = time.perf_counter() - t
    times = []
    for _ in range(steps):
        x, y = next(batches)
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    eval_seconds = 0.0
    if val is not None:
        batch = next(iter(val))
        model.test_on_batch(*batch)  # traces
        t = time.perf_counter()
        model.test_on_batch(*batch)
        eval_seconds = (time.perf_counter() - t) * int(val.cardinality())
    save_seconds = 0.0
    if save:
        with tempfile.TemporaryDirectory() as folder:
            t = time.perf_counter()
            model.save(Path(folder) / "probe.keras")
            save_seconds = time.perf_counter() - t
    end = eval_seconds + save_seconds + 0.1  # callbacks and logging, measured on small runs
    model.set_weights(weights)
    for variable, value in zip(model.optimizer.variables, slots, strict=True):
        variable.assign(value)
    return Speed(float(np.median(times)), end, save_seconds, trace_seconds)
