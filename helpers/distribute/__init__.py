"""One training loop for one device, several GPUs and several machines, on ``tf.distribute``
(notebook 07 and ``python -m helpers pretrain-worker``).

- ``cluster``: what ``TF_CONFIG`` says (:class:`Cluster`, :func:`read_tf_config`), and
  the errors that say what to fix.
- ``strategy``: the strategy (:func:`make_strategy`) and the global batch.
- ``workers``: starting a worker so that it never waits for ever
  (:func:`start_worker`), and rehearsing a cluster on one machine
  (:func:`launch_local_workers`).
- ``data``: a run's input, the same batches for a resumed run (:func:`array_epochs`,
  :func:`tfrecord_epochs`).
- ``trainer``: the custom training loop (:class:`Trainer`; its docstring says why not
  ``model.fit``), which shares ``helpers.train``'s schedule, planner and callbacks.

Importing this package loads no TensorFlow: a worker checks its port and its peers
first (see ``workers``).
"""

from helpers.distribute.cluster import (
    TASK_TYPES,
    TF_CONFIG_ENV,
    Cluster,
    DistributeError,
    PeersMissing,
    PortInUse,
    WorkerStopped,
    free_ports,
    read_tf_config,
    tf_config,
)
from helpers.distribute.data import array_epochs, tfrecord_epochs
from helpers.distribute.strategy import global_batch_size, make_strategy, num_workers, worker_id
from helpers.distribute.trainer import Trainer, TrainLog, weights_digest, worker_backup_dir
from helpers.distribute.workers import launch_local_workers, start_worker

__all__ = [
    "TASK_TYPES",
    "TF_CONFIG_ENV",
    "Cluster",
    "DistributeError",
    "PeersMissing",
    "PortInUse",
    "TrainLog",
    "Trainer",
    "WorkerStopped",
    "array_epochs",
    "free_ports",
    "global_batch_size",
    "launch_local_workers",
    "make_strategy",
    "num_workers",
    "read_tf_config",
    "start_worker",
    "tf_config",
    "tfrecord_epochs",
    "weights_digest",
    "worker_backup_dir",
    "worker_id",
]
