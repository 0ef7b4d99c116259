"""Starting a worker (:func:`start_worker`, behind ``python -m helpers pretrain-worker``).
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

:func:`launch_local_workers` starts several on this machine, to rehearse a cluster.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
import time
from pathlib import Path

from helpers.distribute.cluster import (
    TF_CONFIG_ENV,
    Cluster,
    PeersMissing,
    PortInUse,
    WorkerStopped,
    _host_port,
    _port_message,
    free_ports,
    read_tf_config,
    tf_config,
)
from helpers.distribute.strategy import make_strategy


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
