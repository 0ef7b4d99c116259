"""A notebook whose kernel dies fails at once, and the run goes on (issue 25).

A TensorFlow segfault in notebook 08 once left nbval waiting on a zombie kernel for its
whole cell timeout, which under CI is a run that never lands. The fixture notebook
kills its own kernel mid-cell with the signal named in ``KILL_SIGNAL``; these tests run
it next to a notebook that passes, under the README's test command (nbval, two xdist
workers) and under ``python -m helpers run``.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from helpers.runner import Progress, run_course

FIXTURES = Path(__file__).parent / "fixtures"
KILLS = FIXTURES / "kills_its_kernel.ipynb"
PASSES = FIXTURES / "records_metrics.ipynb"
ROOT = Path(__file__).resolve().parent.parent
# Not a speed bound: far above the seconds this takes, it only turns a hang into a failure.
HANG = 600

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("signal_name", ["SIGSEGV", "SIGKILL"])
def test_nbval_fails_the_notebook_whose_kernel_died_and_runs_the_rest(signal_name):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(KILLS), str(PASSES)],
        cwd=ROOT,
        env=dict(os.environ, KILL_SIGNAL=signal_name),
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    out = done.stdout
    assert done.returncode == 1, out
    assert f"kernel died while running this cell (killed by {signal_name})" in out
    assert "Kernel dead on test start" in out  # the cell after it fails too, at once
    assert "2 failed, 4 passed" in out  # the cell before it, and the other notebook


def test_the_runner_reports_a_dead_kernel_and_leaves_no_process_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("KILL_SIGNAL", "SIGKILL")
    _, report = run_course(
        [KILLS, PASSES], tmp_path, profile="smoke", progress=Progress(io.StringIO())
    )
    died, passed = report["notebooks"]["kills_its_kernel"], report["notebooks"]["records_metrics"]
    assert died["status"] == "failed"
    assert died["error"]["name"] == "DeadKernelError"
    assert died["error"]["cell"] == 2
    assert passed["status"] == "passed", passed["error"]
    left = [
        p for p in psutil.Process().children(recursive=True) if "kernel" in " ".join(p.cmdline())
    ]
    assert not left, f"kernel processes left behind: {left}"


def test_notebook_cells_wait_longer_for_output_than_nbvals_five_seconds():
    """nbval fails a cell whose output lags 5 s behind its reply, which a kernel on a
    busy 2-core machine can do; conftest.py raises that wait for every cell."""

    class Collected:
        def pytest_collection_finish(self, session):
            self.items = list(session.items)

    collected = Collected()
    code = pytest.main(
        ["--collect-only", "-q", "-o", "addopts=", "--nbval-lax", str(PASSES)],
        plugins=[collected],
    )
    assert code == 0 and collected.items
    assert all(item.output_timeout >= 60 for item in collected.items)
