"""The lines a person sees on the terminal, or in a CI log, while the course runs."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from helpers.runner.report import NotebookResult, describe_error


class Progress:
    """What a person watching the terminal (or a CI log) sees while the course runs.

    A line when each notebook starts and finishes. Within a notebook, a tqdm bar over
    its code cells on a terminal; without one (CI, a pipe), a bar would print ``\\r``
    debris, so a plain line, at most every ``heartbeat`` seconds, says how far it got.
    """

    def __init__(self, stream: TextIO | None = None, heartbeat: float = 30.0):
        self.stream = stream or sys.stderr
        self.heartbeat = heartbeat
        self.interactive = self.stream.isatty() and not os.environ.get("CI")
        self._bar = None
        self._name = ""
        self._total = 0
        self._done = 0
        self._last_line = 0.0

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def notebook_started(self, position: int, count: int, name: str, code_cells: int) -> None:
        self._name, self._total, self._done = name, code_cells, 0
        self._last_line = time.monotonic()
        self.say(f"[{position}/{count}] {name}: running {code_cells} code cells")
        if self.interactive:
            from tqdm import tqdm

            self._bar = tqdm(
                total=code_cells, desc=name, unit="cell", file=self.stream, leave=False
            )

    def cell_finished(self, label: str) -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.update(1)
        elif time.monotonic() - self._last_line >= self.heartbeat:
            self._last_line = time.monotonic()
            self.say(f"    {self._name}: {self._done}/{self._total} cells done, at {label}")

    def notebook_finished(self, result: NotebookResult) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        memory = f", peak {result.peak_memory_mb:.0f} MB" if result.peak_memory_mb else ""
        self.say(f"    {self._name}: {result.status} in {result.seconds:.1f} s{memory}")
        if result.error:
            self.say(f"    {describe_error(self._name, result.error)}")
