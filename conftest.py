"""Test configuration shared by the unit tests and the notebooks that nbval runs.

The profile is set here, not by hand: every test process, and every kernel nbval
starts (kernels inherit this environment), runs the ``smoke`` profile.

A notebook whose kernel dies fails at once. nbval waits for a cell's reply for
``--nbval-cell-timeout`` seconds without asking whether the kernel is still there, so a
kernel killed by a segfault left pytest waiting on a zombie for that long (2,000 s by
default; issue 25 saw a hang of 19 minutes). :func:`_watch_kernel_while_waiting` makes
nbval wait in one-second slices and check the kernel between them: a dead kernel fails
its cell within about a second, the notebook's later cells fail with nbval's own "Kernel
dead on test start", and the rest of the suite goes on. ``--nbval-cell-timeout`` in
``pyproject.toml`` bounds a kernel that lives but never answers, and ``pytest-timeout``
bounds any single test as the last backstop.
"""

import os
import signal
import time
from queue import Empty

import pytest
import zmq

os.environ["COURSE_PROFILE"] = "smoke"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")


class KernelDied(RuntimeError):
    """The notebook's kernel process ended while nbval waited for it."""


def _exit_description(kernel) -> str:
    process = getattr(getattr(kernel.km, "provisioner", None), "process", None)
    code = getattr(process, "returncode", None)  # set by the is_alive() that saw it gone
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}" if code is not None else "exit status unknown"


def _watch_kernel_while_waiting() -> None:
    try:
        from nbval.kernel import RunningKernel
    except ImportError:  # nbval is not installed: no notebooks are collected either
        return
    if getattr(RunningKernel.get_message, "watches_kernel", False):
        return
    wait_for_message = RunningKernel.get_message

    def get_message(self, stream, timeout=None):
        """nbval's wait for a message, in slices of at most one second, raising
        :class:`KernelDied` as soon as the kernel process is gone."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            try:
                return wait_for_message(
                    self, stream, timeout=1.0 if left is None else min(1.0, max(left, 0))
                )
            except Empty:
                if not self.is_alive():
                    raise KernelDied(
                        f"the notebook's kernel died while running this cell "
                        f"({_exit_description(self)}); its later cells fail with it"
                    ) from None
                if left is not None and left <= 1.0:
                    raise

    get_message.watches_kernel = True
    RunningKernel.get_message = get_message


_watch_kernel_while_waiting()


def _keep_every_output_message() -> None:
    """Give the test kernels' client sockets an unbounded receive queue.

    nbval reads a cell's output (the kernel's IOPub stream) only after the cell's reply,
    so a cell's messages queue up while it runs. ZeroMQ's publisher drops messages for a
    subscriber once 1,000 wait at each end (the default high-water marks), and the drop
    is silent: the cell's final ``idle`` status can be lost, and nbval then fails the
    cell with "Timeout ... waiting for output". Notebook 02's review gallery sends about
    5,000 widget messages in one cell, close enough to the limit that the loss came and
    went with the machine's load; a cell that prints 20,000 lines loses it every time
    (tests/test_nbval_harness.py keeps that case). With no receive limit the client's
    ZeroMQ thread takes every message off the wire as it comes, whenever nbval reads.
    """
    from jupyter_client.connect import ConnectionFileMixin

    connect = ConnectionFileMixin._create_connected_socket
    if getattr(connect, "keeps_every_message", False):
        return

    def create_connected_socket(self, channel, identity=None):
        self.context.setsockopt(zmq.RCVHWM, 0)  # the default for sockets made from now on
        return connect(self, channel, identity)

    create_connected_socket.keeps_every_message = True
    ConnectionFileMixin._create_connected_socket = create_connected_socket


_keep_every_output_message()


OUTPUT_TIMEOUT_S = 120


def pytest_collection_modifyitems(items):
    """Every notebook cell is a ``slow`` test: ``pytest -m "not slow"`` runs the unit
    tests alone, the fast loop for a contributor (CI runs everything).

    nbval also gives up on a cell when no output message comes within 5 seconds of the
    cell's reply (``output_timeout``, fixed in nbval 0.11): with two notebooks training
    on two cores, the kernel's output thread can lag longer than that. The wait here is
    :data:`OUTPUT_TIMEOUT_S`; a dead kernel still fails within a second (see above), and
    output lost to ZeroMQ's limits no longer happens (:func:`_keep_every_output_message`).
    """
    for item in items:
        if item.nodeid.endswith(".ipynb") or ".ipynb::" in item.nodeid:
            item.add_marker(pytest.mark.slow)
            if hasattr(item, "output_timeout"):
                item.output_timeout = OUTPUT_TIMEOUT_S
