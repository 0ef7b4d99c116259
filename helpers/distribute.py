"""One training loop for one device, several GPUs and several machines, on ``tf.distribute``.

The strategy (:func:`make_strategy`): ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG``
names more than one task (several machines, or several processes on one), else
``MirroredStrategy`` over every local GPU when there are two or more, else TensorFlow's
default strategy (one device). Every replica holds the same weights; each step, each
replica takes its share of the **global batch** (per-worker batch x workers) and the
gradients are summed across replicas before every update, so all replicas stay
identical. No home-made distribution: TensorFlow's collectives do the work.

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
- Data order is a function of the epoch (shuffled with ``seed + epoch``), so a resumed
  run sees the batches the uninterrupted run saw.
- Sharded input: TFRecord shards (``helpers.pipeline.export_tfrecords``) read with
  ``AutoShardPolicy.FILE``: each worker reads only its own shard files. Give at least
  as many shards as workers (better, a multiple).
- Starting a worker (:func:`start_worker`, behind ``python -m helpers pretrain-worker``).
  ``MultiWorkerMirroredStrategy`` blocks in C++ until every task in ``TF_CONFIG`` has
  joined, holding the GIL (no Python thread or signal handler runs), and from then on
  TensorFlow's preemption notifier catches SIGTERM: measured, a worker whose peer never
  started printed nothing, waited past 700 s and only SIGKILL ended it, and a taken port
  surfaced as "Could not start gRPC server", with no port. So a worker first binds its
  own port and keeps it listening (the bind is the check that it is free; the listening
  socket tells its peers it is up), then waits in Python until every peer accepts a TCP
  connection, at most ``startup_timeout`` seconds, SIGTERM and SIGINT ending the wait
  with one line that says what it waited for; only then does it load TensorFlow and
  join, which takes a moment once the peers are up. Should a peer vanish during the
  join, an alarm (SIGALRM) of the same length ends the process; afterwards SIGTERM
  works again. That is why this module imports TensorFlow inside the functions that
  use it: the start costs no TensorFlow import (7-8 s) before the checks.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TF_CONFIG_ENV = "TF_CONFIG"
TASK_TYPES = ("chief", "worker")


class DistributeError(ValueError):
    """A cluster or run that cannot work as configured; the message says what to fix."""


class PortInUse(DistributeError):
    """This task cannot listen on its own port from ``TF_CONFIG``."""


class PeersMissing(DistributeError):
    """A peer in ``TF_CONFIG`` did not answer within the startup deadline."""


class WorkerStopped(Exception):
    """SIGTERM or SIGINT ended a worker while it started; the message says what it was
    doing, ``signum`` which signal came."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


# --- the cluster -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    """What ``TF_CONFIG`` says: every task's address, and which task this process is."""

    tasks: dict[str, list[str]]
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        return sum(len(self.tasks.get(t, [])) for t in TASK_TYPES)

    @property
    def worker_id(self) -> int:
        """0 for the chief, then one number per worker (the chief, if named, comes first)."""
        offset = len(self.tasks.get("chief", [])) if self.task_type == "worker" else 0
        return offset + self.task_index

    @property
    def is_chief(self) -> bool:
        """The chief writes the saved model and its card: task ``chief``, or worker 0 when
        the cluster names no chief (TensorFlow's convention)."""
        if "chief" in self.tasks:
            return self.task_type == "chief"
        return self.task_index == 0

    @property
    def name(self) -> str:
        """This task as the messages name it: ``worker 1``, ``chief 0``."""
        return f"{self.task_type} {self.task_index}"

    @property
    def address(self) -> str:
        return self.tasks[self.task_type][self.task_index]

    def peers(self) -> dict[str, str]:
        """Every other task, by name: ``{"worker 1": "host:port", ...}``."""
        return {
            f"{kind} {i}": address
            for kind in TASK_TYPES
            for i, address in enumerate(self.tasks.get(kind, []))
            if (kind, i) != (self.task_type, self.task_index)
        }


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def read_tf_config(raw: str | None = None) -> Cluster | None:
    """The cluster in ``TF_CONFIG`` (or ``raw``), checked; None when it is unset or empty.

    ``{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker",
    "index": 0}}``: the same cluster on every machine, its own task on each.
    """
    raw = os.environ.get(TF_CONFIG_ENV, "") if raw is None else raw
    if not raw.strip():
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DistributeError(f"{TF_CONFIG_ENV} is not JSON ({exc}): {raw[:200]!r}") from exc
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise DistributeError(
            f'{TF_CONFIG_ENV} needs "cluster" and "task": {{"cluster": {{"worker": '
            '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    unknown = sorted(set(cluster) - set(TASK_TYPES))
    if unknown:
        raise DistributeError(
            f"{TF_CONFIG_ENV} names task types {unknown}; MultiWorkerMirroredStrategy uses "
            "only 'chief' and 'worker' (no parameter servers)"
        )
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(
            isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses
        ):
            raise DistributeError(
                f"cluster[{kind!r}] must be a list of 'host:port' (the port a number), "
                f"not {addresses!r}"
            )
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise DistributeError(
            f"task {task!r} is not in the cluster {cluster!r}: give this machine's own type "
            "and index (0-based) in the list"
        )
    return Cluster({k: list(v) for k, v in cluster.items()}, kind, index)


def tf_config(workers: list[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of ``workers`` (worker 0 is the
    chief)."""
    return json.dumps(
        {"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}}
    )


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` TCP ports free right now on ``host`` (held open together, so all differ)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _port_message(cluster: Cluster, reason: str) -> str:
    port = _host_port(cluster.address)[1]
    return (
        f"{cluster.name} cannot listen on port {port}, its address {cluster.address} in "
        f"{TF_CONFIG_ENV} ({reason}): stop the process that holds it "
        f"(`ss -ltnp 'sport = :{port}'` names it; a worker of an earlier run?) or give this "
        f"task a free port in {TF_CONFIG_ENV}, the same on every machine"
    )


class _HeldPort:
    """This task's port, bound and listening until TensorFlow's server takes it over.

    Binding is the check that the port is free, before TensorFlow starts; listening is
    how the peers see that this worker is up. A thread accepts and drops their probes,
    so the queue of connections never fills however long they wait.
    """

    def __init__(self, cluster: Cluster):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:  # every interface, as TensorFlow's server binds
            self.socket.bind(("", _host_port(cluster.address)[1]))
            self.socket.listen(socket.SOMAXCONN)
        except OSError as exc:
            self.socket.close()
            raise PortInUse(_port_message(cluster, exc.strerror or str(exc))) from exc
        self.socket.settimeout(0.2)
        self.open = True
        self.thread = threading.Thread(target=self._drop_probes, daemon=True)
        self.thread.start()

    def _drop_probes(self) -> None:
        while self.open:
            try:
                self.socket.accept()[0].close()
            except OSError:  # the 0.2 s timeout: look at self.open again
                continue

    def close(self) -> None:
        self.open = False
        self.thread.join()
        self.socket.close()


def _unanswered(peers: dict[str, str]) -> dict[str, str]:
    """The peers that refuse a TCP connection now, each with the reason."""
    reasons = {}
    for name, address in peers.items():
        try:
            socket.create_connection(_host_port(address), timeout=1.0).close()
        except OSError as exc:
            reasons[name] = (exc.strerror or str(exc) or type(exc).__name__).lower()
    return reasons


def start_worker(
    startup_timeout: float = 300.0, *, collective_timeout: float | None = None, say=print
):
    """``(strategy, cluster)`` for one process of a multi-worker run, started so that it
    never waits for ever (see the module docstring); call it from the main thread.

    Raises :class:`PortInUse` when this task's port is taken, :class:`PeersMissing`
    naming the peers that did not answer within ``startup_timeout`` seconds, and
    :class:`WorkerStopped` on SIGTERM or SIGINT while it waits. ``say`` prints what it
    waits for. Without a ``TF_CONFIG`` of several tasks it is :func:`make_strategy`.
    """
    cluster = read_tf_config()
    if cluster is None or cluster.num_workers < 2:
        return make_strategy("auto", timeout_seconds=collective_timeout)
    me = f"{cluster.name} of {cluster.num_workers}"
    peers = cluster.peers()
    doing = f"taking its port {cluster.address}"

    def stop(signum, frame):
        name = signal.Signals(signum).name
        raise WorkerStopped(signum, f"{me}: stopped by {name} while {doing}")

    handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        held = _HeldPort(cluster)
        try:
            listed = ", ".join(f"{name} at {address}" for name, address in peers.items())
            doing = f"waiting for {listed}"  # before it says so: a signal may follow at once
            say(f"{me}: waiting up to {startup_timeout:g} s for {listed} ({TF_CONFIG_ENV})")
            end = time.monotonic() + startup_timeout
            missing = _unanswered(peers)
            while missing:
                doing = "waiting for " + ", ".join(
                    f"{name} at {peers[name]} ({why})" for name, why in missing.items()
                )
                if time.monotonic() >= end:
                    raise PeersMissing(
                        f"{me}: no answer within {startup_timeout:g} s from "
                        f"{doing.removeprefix('waiting for ')}: start it with the same "
                        f"command and its own {TF_CONFIG_ENV}, check the address is right "
                        "and reachable from here, or wait longer (--startup-timeout)"
                    )
                time.sleep(0.5)
                missing = _unanswered({name: peers[name] for name in missing})
            doing = "loading TensorFlow (every peer had answered)"
            say(f"{me}: every peer answered; loading TensorFlow and joining the cluster")
            from helpers.quiet import tf  # noqa: F401 - loaded here, where a signal is answered
        finally:
            held.close()
        doing = "joining the cluster"
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # the join holds the GIL: no handler runs
        alarm = signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(max(1, math.ceil(startup_timeout)))
        try:
            return make_strategy("multiworker", timeout_seconds=collective_timeout)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, alarm)
    finally:  # SIGTERM too: TensorFlow's preemption notifier would swallow it
        for number, handler in handlers.items():
            signal.signal(number, handler)


def make_strategy(kind: str = "auto", *, timeout_seconds: float | None = None):
    """``(strategy, cluster)``; see the module docstring for what ``"auto"`` picks.

    ``kind`` forces ``"multiworker"``, ``"mirrored"`` or ``"default"``. Create the strategy
    first in the process, before any other TensorFlow work: MultiWorkerMirroredStrategy
    configures the runtime's collectives and fails once tensors exist.
    ``timeout_seconds`` bounds each collective, so a worker whose peer died raises
    instead of waiting for ever. It does not bound the start, where the strategy waits
    for every peer: :func:`start_worker` does.
    """
    from helpers.quiet import tf

    cluster = read_tf_config()
    if kind == "auto":
        gpus = tf.config.list_physical_devices("GPU")
        if cluster is not None and cluster.num_workers > 1:
            kind = "multiworker"
        elif len(gpus) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "multiworker":
        if cluster is None:
            raise DistributeError(
                f"MultiWorkerMirroredStrategy needs {TF_CONFIG_ENV}; see the README's section "
                "on several machines"
            )
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except tf.errors.UnknownError as exc:  # names no port: "Could not start gRPC server"
            if "gRPC server" not in str(exc):
                raise
            raise PortInUse(_port_message(cluster, str(exc))) from exc
    elif kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif kind == "default":
        strategy = tf.distribute.get_strategy()
    else:
        raise DistributeError(f"kind must be auto, multiworker, mirrored or default, not {kind!r}")
    return strategy, cluster


def num_workers(strategy) -> int:
    """How many processes take part (1 unless MultiWorkerMirroredStrategy)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(spec.get(t, [])) for t in TASK_TYPES)


def worker_id(strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 0
    chiefs = len(resolver.cluster_spec().as_dict().get("chief", []))
    return resolver.task_id + (chiefs if resolver.task_type == "worker" else 0)


def global_batch_size(per_worker: int, strategy) -> int:
    """per-worker batch x workers; each worker's share splits evenly over its devices."""
    workers = num_workers(strategy)
    local = max(strategy.num_replicas_in_sync // workers, 1)
    if per_worker % local:
        raise DistributeError(
            f"the per-worker batch {per_worker} does not split over {local} local devices; "
            f"use a multiple of {local}"
        )
    return per_worker * workers


# --- input -----------------------------------------------------------------------------------


def _options(policy):
    from helpers.quiet import tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    options.deterministic = True
    return options


def array_epochs(x: np.ndarray, y: np.ndarray, global_batch: int, *, seed: int = 0):
    """``epoch -> dataset`` of global batches of ``(uint8 images, int labels)``, shuffled
    with ``seed + epoch``; every worker holds the arrays and keeps its share of each batch
    (``AutoShardPolicy.DATA``). Returns ``(function, steps per epoch)``."""
    from helpers.quiet import tf

    steps = len(y) // global_batch
    if steps < 1:
        raise DistributeError(f"{len(y)} images do not fill one global batch of {global_batch}")
    base = tf.data.Dataset.from_tensor_slices((x, np.asarray(y, np.int32)))

    def epoch(e: int):
        ds = base.shuffle(len(y), seed=seed + e, reshuffle_each_iteration=False)
        ds = ds.batch(global_batch, drop_remainder=True).repeat().prefetch(2)
        return ds.with_options(_options(tf.data.experimental.AutoShardPolicy.DATA))

    return epoch, steps


def tfrecord_epochs(
    folder: str | os.PathLike,
    global_batch: int,
    *,
    image_size: tuple[int, int],
    channels: int = 3,
    seed: int = 0,
    workers: int = 1,
    shuffle_buffer: int = 10_000,
):
    """``epoch -> dataset`` over the shards of a ``helpers.pipeline.export_tfrecords`` folder,
    read with ``AutoShardPolicy.FILE`` (each worker its own files); returns
    ``(function, steps per epoch, class names)``.

    Steps per epoch are counted on the smallest share a worker can get, so no worker runs
    out before the others (a worker that stops early leaves the rest waiting in a
    collective); the dataset repeats, and the loop takes exactly that many steps.
    """
    from helpers import pipeline as pl
    from helpers.quiet import tf

    manifest = pl.read_manifest(folder)
    shards = manifest["shards"]
    if len(shards) < workers:
        raise DistributeError(
            f"{folder} holds {len(shards)} shard(s) for {workers} workers: with "
            "AutoShardPolicy.FILE each worker needs a file of its own; export with "
            f"shards={workers} or a multiple"
        )
    files = [str(Path(folder) / s["file"]) for s in shards]
    counts = sorted(int(s["count"]) for s in shards)
    smallest_share = sum(counts[: len(counts) // workers])
    steps = smallest_share // max(global_batch // workers, 1)
    if steps < 1:
        raise DistributeError(
            f"each worker's share of {folder} ({smallest_share} images) does not fill one "
            f"per-worker batch of {global_batch // workers}"
        )
    features = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }
    size = tuple(int(s) for s in image_size)

    def parse(record):
        parsed = tf.io.parse_single_example(record, features)
        image = pl.resize(pl.decode(parsed["image"], channels), size)
        return tf.ensure_shape(image, (*size, channels)), tf.cast(parsed["label"], tf.int32)

    def epoch(e: int):
        ds = tf.data.Dataset.from_tensor_slices(files)
        ds = ds.shuffle(len(files), seed=seed + e, reshuffle_each_iteration=False)
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=2, deterministic=True)
        ds = ds.map(parse, num_parallel_calls=pl.AUTOTUNE, deterministic=True)
        ds = ds.shuffle(shuffle_buffer, seed=seed + e, reshuffle_each_iteration=False)
        ds = ds.batch(global_batch, drop_remainder=True).repeat().prefetch(2)
        return ds.with_options(_options(tf.data.experimental.AutoShardPolicy.FILE))

    return epoch, steps, list(manifest["class_names"])


# --- the training loop -----------------------------------------------------------------------


@dataclass
class TrainLog:
    """What :meth:`Trainer.fit` did: per-step global loss and accuracy, time, resume point."""

    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    resumed_from: int = 0
    steps: int = 0
    stopped_early: bool = False
    out_of_time: bool = False  # stopped early by ``time_budget_s``, not by ``stop_after``

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

    ``build_model()`` returns a classifier ending in a softmax (``helpers.models``);
    ``make_optimizer(total_steps)`` an optimizer whose schedule spans the run. Both are
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
        jit_compile: bool = True,
        backup_dir: str | os.PathLike | None = None,
        save_every: int | None = None,
        keep: int = 3,
    ):
        from helpers.quiet import keras, tf

        self.strategy = strategy or tf.distribute.get_strategy()
        self.global_batch, self.num_classes = int(global_batch), int(num_classes)
        self.total_steps, self.label_smoothing = int(total_steps), float(label_smoothing)
        self.jit_compile = bool(jit_compile)
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
                target, tf.cast(probs, tf.float32), label_smoothing=self.label_smoothing
            )
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
        verbose: bool = True,
    ) -> TrainLog:
        """Train to ``total_steps`` from wherever the backup says, one epoch at a time.

        ``epoch_data(epoch)`` gives that epoch's dataset of global batches (the same batches
        whatever happened before: see the module docstring). ``stop_after`` stops at that
        global step, as a preemption would (the backup is written first); a
        ``time_budget_s`` stops when it is spent (the schedule is not shortened: use it as a
        guard, the plan comes from measuring; ``log.out_of_time`` says it fired).
        ``on_step(step, loss)`` is called after each.
        """
        log = TrainLog()
        log.resumed_from = self.restore()
        if self._compiled is None:
            self._compiled = self._build_step()
        step_fn = self._compiled
        started = time.perf_counter()
        if verbose and log.resumed_from:
            print(f"resumed from the backup at step {log.resumed_from} of {self.total_steps}")
        while int(self.step.numpy()) < self.total_steps:
            done = int(self.step.numpy())
            epoch, skip = divmod(done, steps_per_epoch)
            iterator = iter(self.strategy.experimental_distribute_dataset(epoch_data(epoch)))
            for _ in range(skip):  # the batches this epoch had seen before the backup
                next(iterator)
            for _ in range(skip, steps_per_epoch):
                t = time.perf_counter()
                loss, acc = step_fn(iterator)
                loss, acc = float(loss), float(acc)
                log.step_seconds.append(time.perf_counter() - t)
                log.losses.append(loss)
                log.accuracies.append(acc)
                now = int(self.step.numpy())
                if on_step is not None:
                    on_step(now, loss)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"the loss is {loss} at step {now}: lower the learning rate"
                    )
                end = now >= self.total_steps
                stop = stop_after is not None and now >= stop_after
                late = time_budget_s is not None and time.perf_counter() - started > time_budget_s
                if self.save_every and (now % self.save_every == 0 or end or stop or late):
                    self.save()
                if end or stop or late:
                    log.stopped_early = not end
                    log.out_of_time = late and not end and not stop
                    break
            if log.stopped_early:
                break
        if not log.stopped_early or log.out_of_time:  # a preempted process gets no last word
            self.sync_statistics()
        if self.manager is not None and not log.stopped_early and not self.save_every:
            self.save()
        log.steps = int(self.step.numpy())
        return log


def weights_digest(model) -> str:
    """A short hash of every weight, to compare replicas or runs at a glance."""
    import hashlib

    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:16]


def launch_local_workers(
    arguments: list[str],
    n: int = 2,
    *,
    log_dir: str | os.PathLike,
    host: str = "127.0.0.1",
    env: dict | None = None,
):
    """Start ``n`` ``python -m helpers pretrain-worker ARGUMENTS`` processes on this machine,
    each with its own ``TF_CONFIG`` (free ports on ``host``), output in
    ``log_dir/worker-<i>.log``. Returns the ``subprocess.Popen`` objects; wait for them (or
    kill them) yourself. This is how the tests and notebook 07 rehearse a cluster; on real
    machines, run the same command on each with that machine's ``TF_CONFIG``.
    """
    import subprocess
    import sys

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    workers = [f"{host}:{p}" for p in free_ports(n, host)]
    processes = []
    for i in range(n):
        worker_env = dict(os.environ if env is None else env, TF_CONFIG=tf_config(workers, i))
        with open(log_dir / f"worker-{i}.log", "w", encoding="utf-8") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "helpers", "pretrain-worker", *arguments],
                    env=worker_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    return processes
