""":func:`fit`: compile and train a classifier the way notebook 06 teaches, in one call.

What it adds around ``model.fit``, each for a reason a learner meets:

- **a time budget**: a learner knows minutes, not epochs. Give ``time_budget_min``: a
  few steps are measured for a first plan, the first epoch runs under it, and then the
  number of steps is fixed from the pace ``fit`` itself kept in that epoch (stepping
  one batch at a time with ``train_on_batch`` was measured 1.4x slower than inside
  ``fit``, which left a third of the budget unused), and looked at once more halfway
  from the pace of the epochs since (later epochs can run slower than the first), so
  that training, with its whole learning-rate schedule, ends inside the budget;
  :class:`~helpers.train.Deadline` ends it at the deadline should the pace fall after
  the plan. ``epochs`` wins when given. The planning is
  :func:`~helpers.train.plan_steps`'s, the one planner; it plans steps, not whole
  epochs, so the last epoch may stop partway (whole epochs of 43 s left 12% of a
  5-minute budget unused on 2 cores).
- **a schedule**: :func:`~helpers.train.make_schedule`, a linear warm-up then a linear
  (or cosine) decay to zero over the planned steps, as the fast CIFAR-10 trainers use.
- **label smoothing**: one-hot labels and ``CategoricalCrossentropy(label_smoothing=)``
  (``SparseCategoricalCrossentropy`` has no such argument).
- **checkpoints**: the best model so far (``best.keras``, restored at the end),
  ``BackupAndRestore`` (an interrupted run, called again with the same ``out_dir``,
  resumes at the epoch it reached, with the same plan), a CSV log of every epoch, and
  the headline metrics recorded for the headless runner.
- **no "Your input ran out of data" warning**: see :mod:`helpers.train.data`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from helpers.quiet import keras
from helpers.train.callbacks import Deadline, Pace, RecordMetrics, StopAt
from helpers.train.data import _one_hot, with_cardinality
from helpers.train.optimizers import compile_model, make_optimizer
from helpers.train.planner import measure, plan_steps
from helpers.train.schedules import make_schedule


@dataclass
class FitResult:
    """What :func:`fit` did: the history, the plan, the time, where the files are."""

    history: dict
    epochs: int
    steps_per_epoch: int
    seconds: float
    images_per_second: float | None
    plan: str
    out_dir: Path | None
    best_path: Path | None
    log_path: Path | None
    resumed_from: int = 0


def _batch_size(ds) -> int:
    return int(next(iter(ds))[0].shape[0])


def num_classes_of(model) -> int:
    """The number of classes a classifier's last layer scores."""
    return int(model.output_shape[-1])


def fit(
    model,
    train,
    val=None,
    *,
    epochs: int | None = None,
    time_budget_min: float | None = None,
    optimizer: str = "sgd",
    learning_rate: float = 0.2,
    schedule: str | None = "linear",
    warmup: float = 0.2,
    label_smoothing: float = 0.0,
    weight_decay: float | None = 5e-4,
    out_dir: str | os.PathLike | None = None,
    restore_best: bool = True,
    record_as: str | None = None,
    jit_compile: bool | str = "auto",
    callbacks: list | None = None,
    verbose: int | str = "auto",
    from_logits: bool = False,
) -> FitResult:
    """Compile and train ``model`` on ``train`` (and ``val``); see the module docstring.

    ``train``/``val`` are batched datasets of ``(images, labels)``, labels integer or
    one-hot. ``schedule`` ``"linear"``/``"cosine"`` is :func:`make_schedule` over the
    whole run, None a constant rate. ``out_dir`` holds ``best.keras``, ``log.csv``,
    ``plan.json`` and the ``backup/`` of ``BackupAndRestore``: call again with the same
    folder after an interruption and training resumes where it stopped. ``record_as``
    (a prefix, "" for none) records the run for the headless runner. ``jit_compile``
    goes to ``compile`` as given (``"auto"`` is off on CPUs and under every distribution
    strategy). ``from_logits`` for a model without a softmax at its end.
    """
    if epochs is None and time_budget_min is None:
        raise ValueError("give epochs, or time_budget_min to choose them from a measurement")
    num_classes = num_classes_of(model)
    train = _one_hot(with_cardinality(train), num_classes)
    val = None if val is None else _one_hot(with_cardinality(val), num_classes)
    steps = int(train.cardinality())
    batch_size = _batch_size(train)
    out = Path(out_dir) if out_dir is not None else None
    plan_file = out / "plan.json" if out else None
    backup = out / "backup" if out else None
    resuming = bool(backup and backup.is_dir() and any(backup.iterdir()))
    saved_plan = json.loads(plan_file.read_text()) if resuming and plan_file.is_file() else None

    def rate(total_steps: int):
        if not schedule:
            return learning_rate
        return make_schedule(learning_rate, total_steps, warmup=warmup, kind=schedule)

    length = (epochs or 1) * steps
    compile_model(
        model, make_optimizer(optimizer, rate(length), weight_decay=weight_decay),
        label_smoothing=label_smoothing, from_logits=from_logits, jit_compile=jit_compile,
    )  # fmt: skip
    started = time.perf_counter()
    budgeted = not saved_plan and epochs is None
    if saved_plan:
        epochs, plan = saved_plan["epochs"], saved_plan["plan"] + " (resumed)"
        total = saved_plan.get("steps", epochs * steps)
    elif epochs is not None:
        plan = plan_steps(steps, epochs=epochs).reason
        total = epochs * steps
    else:
        speed = measure(model, train, val, save=out is not None)
        first = plan_steps(
            steps, budget_s=max(time_budget_min * 60 - speed.trace, 0.0),
            seconds_per_step=speed.step, epoch_overhead_s=speed.epoch_end,
        )  # fmt: skip
        epochs, total = first.epochs, first.total_steps
        plan = f"first plan from {speed.step:.3g} s/step (train_on_batch): {epochs} epochs"

    def set_schedule_length(total_steps: int) -> None:
        nonlocal length
        if schedule and length != total_steps:
            length = total_steps
            model.optimizer.learning_rate = rate(length)
            model.train_function = None  # the schedule's length is traced into the step

    def write_plan() -> None:
        if out:
            out.mkdir(parents=True, exist_ok=True)
            plan_file.write_text(json.dumps({"epochs": epochs, "steps": total, "plan": plan}))

    set_schedule_length(total)
    write_plan()
    if verbose and not budgeted:
        print(plan)

    monitor = "val_accuracy" if val is not None else "accuracy"
    recorder = RecordMetrics(record_as, batch_size, steps)
    extra = list(callbacks or [])
    chain = []
    if out:
        chain += [
            keras.callbacks.BackupAndRestore(str(backup)),
            keras.callbacks.ModelCheckpoint(
                str(out / "best.keras"), monitor=monitor, mode="max", save_best_only=True
            ),
            keras.callbacks.CSVLogger(str(out / "log.csv"), append=resuming),
        ]
    chain.append(recorder)

    def run(first: int, last: int, more: list, guard: list) -> dict:
        if first:
            for callback in chain:
                if isinstance(callback, keras.callbacks.CSVLogger):
                    callback.append = True  # the epochs before are in the log already
        done = model.fit(
            train,
            validation_data=val,
            initial_epoch=first,
            epochs=last,
            # the guard last: it times their ends
            callbacks=chain + more + [StopAt(steps, step=total)] + extra + guard,
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles; Keras would only warn that it cannot
        )
        return dict(done.history)

    def join(history: dict, more: dict) -> dict:
        return {k: history.get(k, []) + more.get(k, []) for k in dict.fromkeys([*history, *more])}

    if not budgeted:
        history = run(0, epochs, [], [])
    else:
        # Epoch 1 under the first plan, then the plan fixed from fit's own pace, and
        # looked at once more halfway: the schedule's length changes at most twice (a
        # retrace each) and keeps its whole shape, warm-up and decay, to the end of the
        # budget. The guard watches all of it; the restore of the best model at the end
        # is kept out of its time, and so is a margin for what follows the guard's last
        # look (the end of fit, a late batch: 1% of the budget, at least a second).
        budget_s = 60 * time_budget_min
        reserve = (speed.save if restore_best and out else 0.0) + max(1.0, 0.01 * budget_s)
        deadline = started + budget_s - reserve
        guard = Deadline(
            deadline, epoch_end_s=speed.epoch_end, total_steps=total, step_s=speed.step
        )

        def plan_total(new_total: int) -> None:
            """Plan ``new_total`` steps: the epochs (the last may stop partway), the
            schedule's length and the guard's count follow from it."""
            nonlocal total, epochs
            total, epochs = new_total, -(-new_total // steps)
            set_schedule_length(total)
            guard.total_steps = total

        pace = Pace()
        history = run(0, 1, [pace], [guard])
        if not guard.fired:
            fit_step = pace.seconds_per_step or speed.step
            # The schedule's new length retraces fit's step once: what that cost in epoch
            # 1, not train_on_batch's first trace, which also built the model and optimizer.
            retrace = 0.0
            if schedule:
                retrace = pace.trace_seconds if pace.trace_seconds is not None else speed.trace
            rest = plan_steps(
                steps, budget_s=deadline - time.perf_counter() - retrace,
                seconds_per_step=fit_step, epoch_overhead_s=speed.epoch_end, share=0.98,
                min_epochs=0, whole_epochs=False,
            )  # fmt: skip
            plan_total(steps + rest.total_steps)
            spent = rest.total_steps * rest.epoch_seconds / steps
            used = (time.perf_counter() - started + retrace + spent) / 60
            plan = (
                f"measured {speed.step:.3g} s/step before training (train_on_batch) and "
                f"{fit_step:.3g} s/step in epoch 1 of fit; with {speed.epoch_end:.1f} s of "
                f"validation and checkpoint, {rest.epoch_seconds:.1f} s per epoch of {steps} "
                f"steps and {retrace:.1f} s to retrace: {epochs} epochs ({total} steps), "
                f"{used:.1f} of {time_budget_min:g} minutes; a guard ends training at the "
                "deadline should the pace fall"
            )
            write_plan()
            if verbose:
                print(plan)
            # A second look halfway: epoch 1 can run faster than the epochs after it (on
            # 2 cores it was the fastest of 21, 38 s against 40-48 s), and a plan from it
            # alone left the guard to cut the decay short. The pace of the epochs since
            # then fixes the rest of the plan; the decay ends at zero at the new end.
            half = 1 + (epochs - 1) // 2
            if 1 < half < epochs:
                began = time.perf_counter()
                history = join(history, run(1, epochs, [StopAt(steps, epoch=half)], [guard]))
                if not guard.fired and len(history.get("loss", [])) == half:
                    pace_s = (time.perf_counter() - began - retrace) / (half - 1)
                    rest = plan_steps(
                        steps, budget_s=deadline - time.perf_counter() - retrace,
                        seconds_per_step=pace_s / steps, share=0.98, min_epochs=0,
                        whole_epochs=False,
                    )  # fmt: skip
                    plan_total(half * steps + rest.total_steps)
                    plan += (
                        f"; after epoch {half}, at {pace_s:.1f} s per epoch: {epochs} epochs "
                        f"({total} steps)"
                    )
                    write_plan()
                    if verbose:
                        print(plan)
            done = len(history.get("loss", []))
            if done < epochs and not guard.fired:
                history = join(history, run(done, epochs, [], [guard]))
        if guard.fired:
            planned, epochs = total, len(history.get("loss", []))
            cut = ", the last cut short" if guard.stopped_at % steps else ""
            plan += (
                f"; the guard stopped it after step {guard.stopped_at} of {planned} "
                f"({epochs} epochs{cut}) to end inside the budget (the pace fell)"
            )
            write_plan()
            if verbose:
                print(plan)
    seconds = time.perf_counter() - started
    best = out / "best.keras" if out else None
    if restore_best and best and best.is_file():
        model.set_weights(keras.models.load_model(best, compile=False).get_weights())
    return FitResult(
        history=history,
        epochs=epochs,
        steps_per_epoch=steps,
        seconds=seconds,
        images_per_second=recorder.images_per_second,
        plan=plan,
        out_dir=out,
        best_path=best if best and best.is_file() else None,
        log_path=out / "log.csv" if out else None,
        resumed_from=epochs - len(history.get("loss", [])) if resuming else 0,
    )
