"""Watching a notebook's kernel process: SIGINT passed on to it, its peak memory.

The kernel is a process of its own in a session of its own, so neither a terminal's
Ctrl-C nor the runner's memory figures reach it by themselves; :func:`run_notebook`
(in :mod:`helpers.runner.execute`) wraps each kernel in both.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Interrupts:
    """The runner's SIGINT handler: whoever sends it, stop the kernel's cell and the run.

    Ctrl-C in a terminal signals the runner's process group, never the kernel:
    jupyter_client starts each kernel in a session of its own. A scheduler or a wrapper
    script signals the runner's process alone (``kill -INT <pid>``), and a script that
    started the runner in the background (``&``) hands it SIGINT ignored, so Python never
    installs its own handler: such a run went on for minutes while its kernel trained.
    This handler, installed whatever the inherited setting, passes the signal on to the
    kernel's process group (what Jupyter's interrupt button does), so the cell stops and
    the kernel can shut down at once, and raises :class:`KeyboardInterrupt` in the
    runner, but only while cells run (:meth:`armed`): raised while a kernel starts or
    shuts down, it could leave that kernel running with no one to stop it. A SIGINT at
    any other moment is remembered in ``requested``: a kernel that has just started runs
    no cell, and :func:`run_course` starts no further notebook.
    """

    def __init__(self) -> None:
        self.requested = False
        self._raising = False
        self._kernel: tuple[int, bool] | None = None  # (pid or process group, is a group)

    def __call__(self, signum: int, frame: object) -> None:
        self.requested = True
        self._pass_on()
        if self._raising:
            self._raising = False  # once: a second signal must not break the unwinding
            raise KeyboardInterrupt

    def _pass_on(self) -> None:
        if self._kernel is None:
            return
        target, group = self._kernel
        try:
            if group:
                os.killpg(target, signal.SIGINT)
            else:
                os.kill(target, signal.SIGINT)
        except ProcessLookupError:
            pass  # the kernel has ended already

    @contextmanager
    def armed(self, kernel_manager: object) -> Iterator[None]:
        """Raise :class:`KeyboardInterrupt` on SIGINT in this block, and pass the signal on
        to the kernel of ``kernel_manager`` when it takes interrupts as signals."""
        spec = getattr(kernel_manager, "kernel_spec", None)
        provisioner = getattr(kernel_manager, "provisioner", None)
        pgid = getattr(provisioner, "pgid", None)
        pid = getattr(provisioner, "pid", None)
        if getattr(spec, "interrupt_mode", "signal") == "signal":
            if pgid and hasattr(os, "killpg"):
                self._kernel = (pgid, True)
            elif pid:
                self._kernel = (pid, False)
        if self.requested:
            self._kernel = None
            raise KeyboardInterrupt
        self._raising = True
        try:
            yield
        finally:
            self._raising = False
            self._kernel = None


@contextmanager
def handling_sigint() -> Iterator[_Interrupts]:
    """Install an :class:`_Interrupts` handler for the block (or join the one installed
    by an enclosing call) and put the previous handler back afterwards.

    Only the main thread may handle signals; elsewhere the handler stays unused and
    SIGINT does what it did before.
    """
    current = signal.getsignal(signal.SIGINT)
    if isinstance(current, _Interrupts):
        yield current
        return
    interrupts = _Interrupts()
    try:
        signal.signal(signal.SIGINT, interrupts)
    except ValueError:  # not the main thread
        yield interrupts
        return
    try:
        yield interrupts
    finally:
        signal.signal(signal.SIGINT, current if current is not None else signal.SIG_DFL)


def _vm_hwm_bytes(pid: int) -> int | None:
    """Linux's record of the process's peak resident memory (VmHWM), or None elsewhere."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


class PeakMemory:
    """Peak resident memory of the kernel process, for the report's ``peak_memory_mb``.

    Linux keeps the true peak (VmHWM), so reading it after each cell is exact. Elsewhere
    a background thread samples the resident size with psutil, which can miss short
    spikes between samples.
    """

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.pid: int | None = None
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, pid: int | None) -> None:
        self.pid = pid
        if pid is not None and _vm_hwm_bytes(pid) is None:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        self.sample()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        if self.pid is None:
            return
        value = _vm_hwm_bytes(self.pid)
        if value is None:
            import psutil

            try:
                value = psutil.Process(self.pid).memory_info().rss
            except psutil.Error:
                return
        self.peak_bytes = max(self.peak_bytes, value)

    def stop(self) -> float | None:
        """Stop sampling; return the peak in MB (None if the kernel never started)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return round(self.peak_bytes / 2**20, 1) if self.peak_bytes else None
