"""Record the metrics a notebook wants reported: ``record("test_accuracy", 0.91)``.

Interactively a recording is a dict update and nothing else. When ``helpers run``
executes a notebook it sets ``COURSE_RESULTS_FILE``; every recording is then appended
to that file as one JSON line, which survives a cell that fails later on, and the
runner collects the lines into ``results.json``.
"""

from __future__ import annotations

import json
import math
import os
from numbers import Number

RESULTS_FILE_ENV = "COURSE_RESULTS_FILE"

recorded: dict[str, float | int | str | bool] = {}


def _plain(value):
    """Turn NumPy/TensorFlow scalars into plain JSON values; refuse anything else."""
    if isinstance(value, (bool, str)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", getattr(value, "shape", ())) in (0, ()):
        value = value.item()
    elif hasattr(value, "numpy"):
        value = value.numpy().item()
    if isinstance(value, Number):
        value = float(value) if not isinstance(value, int) else value
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"metric value {value!r} is not finite; record a number")
        return value
    raise TypeError(f"record() takes a number, bool or string, not {type(value).__name__}")


def record(name: str, value) -> None:
    """Remember ``value`` under ``name``; the headless runner puts it in its results table."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("record() needs a non-empty metric name")
    value = _plain(value)
    recorded[name] = value
    path = os.environ.get(RESULTS_FILE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"name": name, "value": value}) + "\n")


def read_recorded(path: str | os.PathLike) -> dict:
    """The metrics a run wrote to ``path`` (last value wins), or {} if it wrote none."""
    metrics: dict = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    metrics[row["name"]] = row["value"]
    except FileNotFoundError:
        pass
    return metrics
