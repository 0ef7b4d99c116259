"""The ``tf.distribute`` strategy (:func:`make_strategy`) and what a run needs from it.

``"auto"`` picks ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names more than one
task (several machines, or several processes on one), else ``MirroredStrategy`` over
every local GPU when there are two or more, else TensorFlow's default strategy (one
device). Every replica holds the same weights; each step, each replica takes its share
of the **global batch** (per-worker batch x workers) and the gradients are summed across
replicas before every update, so all replicas stay identical. No home-made
distribution: TensorFlow's collectives do the work.
"""

from __future__ import annotations

from helpers.distribute.cluster import (
    TASK_TYPES,
    TF_CONFIG_ENV,
    DistributeError,
    PortInUse,
    _port_message,
    read_tf_config,
)


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
