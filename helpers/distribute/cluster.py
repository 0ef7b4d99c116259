"""The cluster ``TF_CONFIG`` describes (:class:`Cluster`, :func:`read_tf_config`,
:func:`tf_config`), free ports to rehearse one on this machine, and the errors that say
what to fix when a cluster cannot work as configured."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass

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
