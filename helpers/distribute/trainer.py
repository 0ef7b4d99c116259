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


@dataclass
class TrainLog:
    """What :meth:`Trainer.fit` did: per-step global loss and accuracy, time, resume point,
    and ``history``, the per-epoch means in ``model.fit``'s format (``loss``,
    ``accuracy``), which ``helpers.plots.learning_curves`` reads."""

    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    resumed_from: int = 0
    steps: int = 0
    stopped_early: bool = False
    out_of_time: bool = False  # stopped early by ``time_budget_s``, not by ``stop_after``
    history: dict = field(default_factory=dict)

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

    def _agreed_step(self) -> int:
        """The newest checkpointed step every worker holds (0 when any has none)."""
        from helpers.quiet import tf

        mine = 0
        if self.manager is not None:
            mine = max((int(p.rsplit("-", 1)[-1]) for p in self.manager.checkpoints), default=0)
        if num_workers(self.strategy) == 1:
            return mine

        @tf.function
        def gather():
            def replica():
                ctx = tf.distribute.get_replica_context()
                return ctx.all_gather(tf.constant([mine], tf.int64), axis=0)

            return self.strategy.experimental_local_results(self.strategy.run(replica))[0]

        return int(tf.reduce_min(gather()))

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

    # The loop ------------------------------------------------------------------------------

    def fit(
        self,
        epoch_data: Callable,
        steps_per_epoch: int,
        *,
        stop_after: int | None = None,
        time_budget_s: float | None = None,
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
        """
        from helpers.quiet import keras
        from helpers.train.callbacks import Deadline

        log = TrainLog()
        log.resumed_from = self.restore()
        if self._compiled is None:
            self._compiled = self._build_step()
        step_fn = self._compiled
        chain = list(callbacks or [])
        guard = None
        if time_budget_s is not None:  # last: the epoch's end it times includes the others'
            guard = Deadline(
                time.perf_counter() + time_budget_s, total_steps=self.total_steps,
                steps_done=log.resumed_from,
            )  # fmt: skip
            chain.append(guard)
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
            done = int(self.step.numpy())
            epoch, skip = divmod(done, steps_per_epoch)
            listed.on_epoch_begin(epoch)
            iterator = iter(self.strategy.experimental_distribute_dataset(epoch_data(epoch)))
            for _ in range(skip):  # the batches this epoch had seen before the backup
                next(iterator)
            losses, accuracies = [], []
            for batch in range(skip, steps_per_epoch):
                t = time.perf_counter()
                loss, acc = step_fn(iterator)
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
                    self.save()
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
