"""nbval reads every output message of a cell, however many it sends.

nbval reads a cell's IOPub messages only after the cell's reply. ZeroMQ drops what
queues past its high-water marks, so a cell that sent more than about 2,000 messages
could lose its final ``idle`` status and fail with "Timeout ... waiting for output"
(notebook 02's review gallery, about 5,000 widget messages, did so now and then).
``conftest.py`` lifts the client's receive limit; the fixture notebook prints 20,000
lines, which lost its ``idle`` status every time without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOODS = Path(__file__).parent / "fixtures" / "floods_its_output.ipynb"
# Not a speed bound: far above the seconds this takes, it only turns a hang into a failure.
HANG = 600

pytestmark = pytest.mark.slow


def test_a_cell_that_sends_twenty_thousand_messages_passes_under_nbval():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "0", str(FLOODS)],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 passed" in done.stdout
