"""The custom training loop (:class:`Trainer`), the same on one device as on many.

Why a custom training step (:class:`Trainer`) and not ``model.fit``. Measured on this
stack (tensorflow-cpu 2.21, Keras 3.15.1, two local CPU workers), ``model.fit`` under
``MultiWorkerMirroredStrategy`` fails as shipped: ``_maybe_symbolic_build`` calls
``strategy.reduce`` on the input batch ("Attempt to convert ... PerReplica"), and once
past that the scalar logs are reduced with ``axis=0`` ("Invalid reduction dimension
0"); upstream these are keras-team/keras#20585 and tensorflow/tensorflow#72388. Two
ways through: patch Keras's trainer (a shim that breaks whenever Keras's private
trainer changes) or write the step TensorFlow documents for custom loops under a
strategy ("Custom training loop with MultiWorkerMirroredStrategy"): forward and
backward under ``strategy.run``, the loss averaged over the *global* batch
(``tf.nn.compute_average_loss``), metrics reduced with ``strategy.reduce(SUM, ...,
axis=None)``. We take the documented path: it has no private API in it, it is the
same code on one device as on many, and the step is short enough to read. The
optimizer is Keras's, which all-reduces the gradients itself.

Also on purpose:

- ``jit_compile=True`` is passed explicitly: Keras's ``"auto"`` turns XLA off under any
  distribution strategy (and on CPUs). The forward and backward pass is the compiled
  function; the update stays outside it, where the gradient all-reduce lives.
- Mixed precision: the model follows the global dtype policy (``helpers.devices``
  chooses it); under ``mixed_float16`` the optimizer is wrapped in Keras's
  ``LossScaleOptimizer`` and the step calls ``optimizer.scale_loss``, as ``compile``
  would; ``mixed_bfloat16`` needs no scaling.
- Preemption: a ``tf.train.CheckpointManager`` per worker, in its own folder
  (``backup_dir/worker-<i>``): measured, ``BackupAndRestore`` with one folder shared by
  two workers crashes on an HDF5 file lock, while one folder per worker works, and
  needs no shared file system. A restarted job restores the newest step *every*
  worker holds (the workers agree through an all-gather), skips the batches that
  step had already seen, and so ends with the weights an uninterrupted run ends with.

It shares notebook 06's training path where it can: the optimizer from
``helpers.train.make_optimizer`` (the one schedule), the number of steps from
``helpers.train.plan_steps`` (the one planner), Keras callbacks called as ``model.fit``
calls them (``helpers.train.Deadline`` is its budget guard), and :class:`TrainLog`'s
``history``, the per-epoch dict ``model.fit`` returns.
TensorFlow (and ``helpers.train``, which loads it) is imported inside the functions
that use it, so that importing ``helpers.distribute`` to start a worker costs none.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.distribute.strategy import num_workers, worker_id

# Of the time left when the run plans again from its own pace: the rest absorbs the pace's
# jitter and the run's end (the BatchNorm average, the last backup), as helpers.train.fit's
# 0.98 does for a run whose epochs end in validation.
REPLAN_SHARE = 0.97


@dataclass
class TrainLog:
    """What :meth:`Trainer.fit` did: per-step global loss and accuracy, time, resume point,
    and ``history``, the per-epoch means in ``model.fit``'s format (``loss``,
    ``accuracy``), which ``helpers.plots.learning_curves`` reads."""

    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    save_seconds: list[float] = field(default_factory=list)  # each backup's writing
    resumed_from: int = 0
    steps: int = 0
    stopped_early: bool = False
    out_of_time: bool = False  # stopped early by ``time_budget_s``, not by ``stop_after``
    history: dict = field(default_factory=dict)
    plan: str | None = None  # the plan made in the run (``replan_after``), and why

    def images_per_second(self, global_batch: int) -> float | None:
        """Median over the steps after the first two (which trace and compile)."""
        steady = self.step_seconds[2:] or self.step_seconds
        return global_batch / float(np.median(steady)) if steady else None

    def step_time(self) -> float | None:
        steady = self.step_seconds[2:] or self.step_seconds
        return float(np.median(steady)) if steady else None


def worker_backup_dir(backup_dir: str | os.PathLike, strategy) -> Path:
    """This worker's own checkpoint folder under ``backup_dir`` (see the module docstring)."""
    return Path(backup_dir) / f"worker-{worker_id(strategy)}"


class Trainer:
    """The custom training loop (see the module docstring); build it inside nothing, it
    opens ``strategy.scope()`` itself.

    ``build_model()`` returns a classifier ending in a softmax (``helpers.models``), or in
    logits with ``from_logits=True``; ``make_optimizer(total_steps)`` an optimizer whose
    schedule spans the run (``helpers.train.make_optimizer(..., total_steps=)``), and
    ``total_steps`` is best a ``helpers.train.plan_steps(...).total_steps``. Both are
    called inside the strategy's scope, so the variables are mirrored.
    """

    def __init__(
        self,
        build_model: Callable,
        make_optimizer: Callable,
        *,
        strategy=None,
        global_batch: int,
        num_classes: int,
        total_steps: int,
        label_smoothing: float = 0.0,
        from_logits: bool = False,
        jit_compile: bool = True,
        backup_dir: str | os.PathLike | None = None,
        save_every: int | None = None,
        keep: int = 3,
    ):
        from helpers.quiet import keras, tf

        self.strategy = strategy or tf.distribute.get_strategy()
        self.global_batch, self.num_classes = int(global_batch), int(num_classes)
        self.total_steps, self.label_smoothing = int(total_steps), float(label_smoothing)
        self.jit_compile, self.from_logits = bool(jit_compile), bool(from_logits)
        self._make_optimizer = make_optimizer
        with self.strategy.scope():
            self.model = build_model()
            optimizer = make_optimizer(self.total_steps)
            if keras.mixed_precision.global_policy().name == "mixed_float16" and not isinstance(
                optimizer, keras.optimizers.LossScaleOptimizer
            ):
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.save_every = save_every
        self.manager = None
        if backup_dir is not None:
            # Keras saves the weights with the model, but not the random layers' seed
            # states (model.variables, not model.weights): without them a resumed run
            # would augment its remaining steps as the run's first steps were augmented.
            weights = {id(w) for w in self.model.weights}
            seeds = [v for v in self.model.variables if id(v) not in weights]
            self.checkpoint = tf.train.Checkpoint(
                model=self.model, optimizer=self.optimizer, step=self.step, seeds=seeds
            )
            self.manager = tf.train.CheckpointManager(
                self.checkpoint, str(worker_backup_dir(backup_dir, self.strategy)), keep
            )
        self._compiled = None

    # The step -----------------------------------------------------------------------------

    def _grads(self, x, y):
        from helpers.quiet import keras, tf

        with tf.GradientTape() as tape:
            probs = self.model(x, training=True)
            target = tf.one_hot(y, self.num_classes)
            per_example = keras.losses.categorical_crossentropy(
                target, tf.cast(probs, tf.float32), from_logits=self.from_logits,
                label_smoothing=self.label_smoothing,
            )  # fmt: skip
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.model.trainable_variables)
        correct = tf.reduce_sum(
            tf.cast(tf.equal(tf.argmax(probs, -1, output_type=tf.int32), y), tf.float32)
        )
        return loss, correct, grads

    def _build_step(self):
        from helpers.quiet import tf

        grads = tf.function(self._grads, jit_compile=self.jit_compile)

        def replica(x, y):
            loss, correct, g = grads(x, y)
            self.optimizer.apply_gradients(zip(g, self.model.trainable_variables, strict=True))
            return loss, correct

        @tf.function
        def step(iterator):
            x, y = next(iterator)
            loss, correct = self.strategy.run(replica, args=(x, y))
            total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
            right = self.strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None)
            self.step.assign_add(1)
            return total, right / self.global_batch

        return step

    def sync_statistics(self) -> None:
        """Average the non-trainable weights (BatchNorm's moving statistics) over replicas.

        Measured with Keras 3.15.1 under MultiWorkerMirroredStrategy: the trainable weights
        stay identical, but each replica updates its own BatchNorm moving mean and
        variance from its own share of the batch (Keras 3 creates them with aggregation
        ``"none"``), so two workers end with different statistics. The mean over replicas
        is the statistic of the global batch stream, and makes every worker save the same
        model. Called once, at the end, so a resumed run matches an uninterrupted one.
        """
        if self.strategy.num_replicas_in_sync == 1:
            return
        from helpers.quiet import tf

        variables = [v for v in self.model.non_trainable_weights if "float" in str(v.dtype)]

        @tf.function
        def average():
            def replica():
                ctx = tf.distribute.get_replica_context()
                means = ctx.all_reduce(
                    tf.distribute.ReduceOp.MEAN, [tf.identity(v.value) for v in variables]
                )
                for v, m in zip(variables, means, strict=True):
                    v.assign(m)

            self.strategy.run(replica)

        average()

    # Checkpoints ---------------------------------------------------------------------------

    def _least_over_workers(self, mine: int) -> int:
        """The smallest of every worker's ``mine`` (an all-gather): a number all of them
        must agree on, such as the step to resume from or the steps to plan."""
        if num_workers(self.strategy) == 1:
            return int(mine)
        from helpers.quiet import tf

        @tf.function
        def gather():
            def replica():
                ctx = tf.distribute.get_replica_context()
                return ctx.all_gather(tf.constant([int(mine)], tf.int64), axis=0)

            return self.strategy.experimental_local_results(self.strategy.run(replica))[0]

        return int(tf.reduce_min(gather()))

    def _agreed_step(self) -> int:
        """The newest checkpointed step every worker holds (0 when any has none)."""
        mine = 0
        if self.manager is not None:
            mine = max((int(p.rsplit("-", 1)[-1]) for p in self.manager.checkpoints), default=0)
        return self._least_over_workers(mine)

    def restore(self) -> int:
        """Restore the agreed step (see :meth:`_agreed_step`); return it."""
        step = self._agreed_step()
        if step and self.manager is not None:
            path = next(p for p in self.manager.checkpoints if p.endswith(f"-{step}"))
            self.checkpoint.restore(path).assert_existing_objects_matched()
        return int(self.step.numpy())

    def save(self) -> None:
        if self.manager is not None:
            self.manager.save(checkpoint_number=int(self.step.numpy()))

    # The plan ------------------------------------------------------------------------------

    def set_total_steps(self, total_steps: int) -> None:
        """Give the run, and its learning-rate schedule, a new length: the schedule of a
        fresh ``make_optimizer(total_steps)`` replaces the optimizer's (its weights, slots
        and step count stay), and the step is traced again, since the schedule's length
        is a constant in it."""
        fresh = self._make_optimizer(int(total_steps))  # not built: it creates no slots
        schedule = getattr(fresh, "inner_optimizer", fresh)._learning_rate
        getattr(self.optimizer, "inner_optimizer", self.optimizer).learning_rate = schedule
        self.total_steps = int(total_steps)
        self._compiled = None

    def _replan(self, log: TrainLog, deadline: float, steps_per_epoch: int) -> str:
        """The steps that fit before ``deadline`` at the pace this run has kept so far
        (:func:`helpers.train.plan_steps`, the one planner), the same on every worker."""
        from helpers.train import plan_steps

        pace = float(np.median(log.step_seconds[2:]))  # the first two trace and compile
        retrace = max(log.step_seconds[0] - pace, 0.0)  # paid again for the new schedule
        done = int(self.step.numpy())
        left = deadline - time.perf_counter() - retrace
        rest = plan_steps(
            steps_per_epoch, budget_s=left, seconds_per_step=pace,
            epoch_overhead_s=max(log.save_seconds, default=0.0), share=REPLAN_SHARE,
            min_epochs=0, whole_epochs=False,
        )  # fmt: skip
        total = self._least_over_workers(done + max(rest.total_steps, 1))
        planned = self.total_steps
        self.set_total_steps(total)
        return (
            f"{pace:.3g} s/step measured over this run's first {len(log.step_seconds)} steps, "
            f"{retrace:.1f} s to trace the step again: {total - done} more steps fit the "
            f"{left / 60:.1f} minutes left, {total} in all, where {planned} were planned; the "
            "schedule keeps its warm-up and decays to zero at the new end"
        )

    # The loop ------------------------------------------------------------------------------

    def fit(
        self,
        epoch_data: Callable,
        steps_per_epoch: int,
        *,
        stop_after: int | None = None,
        time_budget_s: float | None = None,
        replan_after: int | None = None,
        on_step: Callable | None = None,
        callbacks: list | None = None,
        verbose: bool = True,
    ) -> TrainLog:
        """Train to ``total_steps`` from wherever the backup says, one epoch at a time.

        ``epoch_data(epoch)`` gives that epoch's dataset of global batches (the same batches
        whatever happened before: see the module docstring). ``stop_after`` stops at that
        global step, as a preemption would (the backup is written first). A
        ``time_budget_s`` is guarded by ``helpers.train.Deadline``: the run stops after the
        step after which one more would end past it (the schedule is not shortened: plan
        the steps with ``helpers.train.plan_steps``, this is the guard; ``log.out_of_time``
        says it fired). ``callbacks`` are Keras callbacks, called as ``model.fit`` calls
        them, with the epoch's mean ``loss`` and ``accuracy`` so far as logs.
        ``on_step(step, loss)`` is called after each step.

        ``replan_after`` (with ``time_budget_s``): after that many steps of this call,
        plan the run's length again from the pace those steps kept (see :meth:`_replan`;
        ``log.plan`` says how), as ``helpers.train.fit`` does after its first epoch. A
        pace measured before training, in a few steps outside the loop, was off by up
        to a quarter (notebook 07 on a 2-core CPU: 0.24 s/step planned, 0.31 kept), and
        the guard then cut the schedule before its decay. A resumed run plans the
        budget it is given again.
        """
        from helpers.quiet import keras
        from helpers.train.callbacks import Deadline

        log = TrainLog()
        log.resumed_from = self.restore()
        chain = list(callbacks or [])
        guard = None
        if time_budget_s is not None:  # last: the epoch's end it times includes the others'
            deadline = time.perf_counter() + time_budget_s
            guard = Deadline(deadline, total_steps=self.total_steps, steps_done=log.resumed_from)
            chain.append(guard)
        replan_at = None
        if replan_after and time_budget_s is not None:
            replan_at = log.resumed_from + max(int(replan_after), 3)
        # Without callbacks, none is called: a CallbackList would start a thread pool to
        # dispatch every step's end to nobody, in every worker of a multi-worker run.
        listed = (
            keras.callbacks.CallbackList(chain, model=self.model)
            if chain
            else keras.callbacks.Callback()
        )
        self.model.stop_training = False
        if verbose and log.resumed_from:
            print(f"resumed from the backup at step {log.resumed_from} of {self.total_steps}")
        listed.on_train_begin()
        logs = {}
        while int(self.step.numpy()) < self.total_steps:
            if self._compiled is None:  # first, or the schedule's length changed
                self._compiled = self._build_step()
            done = int(self.step.numpy())
            epoch, skip = divmod(done, steps_per_epoch)
            listed.on_epoch_begin(epoch)
            iterator = iter(self.strategy.experimental_distribute_dataset(epoch_data(epoch)))
            for _ in range(skip):  # the batches this epoch had seen before the backup
                next(iterator)
            losses, accuracies = [], []
            for batch in range(skip, steps_per_epoch):
                t = time.perf_counter()
                loss, acc = self._compiled(iterator)
                loss, acc = float(loss), float(acc)
                log.step_seconds.append(time.perf_counter() - t)
                log.losses.append(loss)
                log.accuracies.append(acc)
                losses.append(loss)
                accuracies.append(acc)
                now = int(self.step.numpy())
                if on_step is not None:
                    on_step(now, loss)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"the loss is {loss} at step {now}: lower the learning rate"
                    )
                logs = {"loss": float(np.mean(losses)), "accuracy": float(np.mean(accuracies))}
                listed.on_train_batch_end(batch, logs)
                end = now >= self.total_steps
                stop = stop_after is not None and now >= stop_after
                late = guard is not None and guard.fired
                if self.save_every and (now % self.save_every == 0 or end or stop or late):
                    t = time.perf_counter()
                    self.save()
                    log.save_seconds.append(time.perf_counter() - t)
                if now == replan_at and not (end or stop or late):
                    log.plan = self._replan(log, deadline, steps_per_epoch)
                    guard.total_steps = self.total_steps
                    if verbose:
                        print(f"plan, made again: {log.plan}")
                    if self._compiled is None:
                        self._compiled = self._build_step()
                    end = now >= self.total_steps
                if end or stop or late:
                    log.stopped_early = not end
                    log.out_of_time = late and not end and not stop
                    break
            for key, value in logs.items():
                log.history.setdefault(key, []).append(value)
            listed.on_epoch_end(epoch, logs)
            if log.stopped_early:
                break
        if not log.stopped_early or log.out_of_time:  # a preempted process gets no last word
            self.sync_statistics()
        if self.manager is not None and not log.stopped_early and not self.save_every:
            self.save()
        listed.on_train_end(logs)
        log.steps = int(self.step.numpy())
        return log


def weights_digest(model) -> str:
    """A short hash of every weight, to compare replicas or runs at a glance."""
    import hashlib

    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:16]
