"""The run's report: ``results.json`` and ``results.md`` in the output folder.

One :class:`NotebookResult` per notebook, and the :func:`environment` the run had, so
that two runs can be compared (:mod:`helpers.runner.compare`) and their times put in the
README (:mod:`helpers.runner.readme`). Both files are rewritten atomically, so a run
stopped halfway still leaves a valid partial report.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from helpers import devices
from helpers.config import project_root
from helpers.files import write_atomic
from helpers.runner.parameters import RunnerError

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


@dataclass
class NotebookResult:
    """One row of the report; ``error`` names the cell and the exception when it failed."""

    status: str
    seconds: float
    peak_memory_mb: float | None
    metrics: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    error: dict | None = None
    executed: str | None = None
    figures: list[str] = field(default_factory=list)


def describe_error(name: str, error: dict) -> str:
    """``03_x failed in cell 7 (`assert acc > 0.9`): AssertionError: ...`` for logs and reports."""
    if error.get("cell") is not None:
        where = f" in cell {error['cell']} (`{error.get('first_line', '')}`)"
    elif error.get("injected"):
        where = " in the injected parameters cell"
    else:
        where = ""
    first = first_line(error.get("message") or "")
    message = f"{error['name']}: {first}" if first else error["name"]
    verb = "was stopped" if error["name"] == "KeyboardInterrupt" else "failed"
    return f"{name} {verb}{where}: {message}"


def first_line(text: str, width: int = 100) -> str:
    """The first non-blank line, cut to ``width``: enough to recognise a cell or an error."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_root(),
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def environment(profile: str, seed: object, command: list[str] | None = None) -> dict:
    """What a reader needs to reproduce the run or explain a difference between two runs:
    :func:`helpers.devices.environment` and what this run chose."""
    return {
        **devices.environment(),
        "profile": profile,
        "seed": seed,
        "git_commit": _git_commit(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(command) if command is not None else None,
    }


def format_cell(value: object) -> str:
    """A table cell: four significant digits, but whole seconds or MB past a thousand."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def markdown_table(header: list[str], rows: list[list[object]]) -> list[str]:
    """A Markdown table's lines; a ``|`` inside a cell is escaped so it cannot split the row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(format_cell(v).replace("|", "\\|") for v in row) + " |" for row in rows
    ]
    return lines


def results_markdown(report: dict) -> str:
    """``results.md``: the notebooks, their metrics, failures and environment as tables."""
    env = report["environment"]
    notebooks = report["notebooks"]
    lines = [f"# Course run: profile {env['profile']}, started {env['started']}", ""]
    lines += markdown_table(
        ["notebook", "status", "seconds", "peak memory (MB)", "metrics recorded"],
        [
            [name, r["status"], r["seconds"], r["peak_memory_mb"], len(r["metrics"])]
            for name, r in notebooks.items()
        ],
    )
    metric_rows = [
        [name, metric, value]
        for name, r in notebooks.items()
        for metric, value in r["metrics"].items()
    ]
    if metric_rows:
        lines += ["", "## Metrics", ""] + markdown_table(
            ["notebook", "metric", "value"], metric_rows
        )
    failures = [describe_error(n, r["error"]) for n, r in notebooks.items() if r.get("error")]
    if failures:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in failures]
    given = [
        [n, ", ".join(f"{k}={v!r}" for k, v in r["parameters"].items())]
        for n, r in notebooks.items()
        if r.get("parameters")
    ]
    if given:
        lines += ["", "## Parameters given", ""] + markdown_table(["notebook", "parameters"], given)
    env_rows = [[k, json.dumps(v) if isinstance(v, (dict, list)) else v] for k, v in env.items()]
    lines += ["", "## Environment", ""] + markdown_table(["key", "value"], env_rows)
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, report: dict) -> None:
    """Write ``results.json`` and ``results.md`` atomically: never half a report."""
    write_atomic(out_dir / RESULTS_JSON, (json.dumps(report, indent=2) + "\n").encode())
    write_atomic(out_dir / RESULTS_MD, results_markdown(report).encode())


def failed(report: dict) -> list[str]:
    """The notebooks that did not pass."""
    return [name for name, r in report["notebooks"].items() if r["status"] != "passed"]


def load_report(run: str | Path) -> dict:
    """The report of a run, given its folder or its ``results.json``."""
    path = Path(run)
    if path.is_dir():
        path = path / RESULTS_JSON
    if not path.is_file():
        raise RunnerError(f"no {RESULTS_JSON} at {path}: is it a folder written by helpers run?")
    return json.loads(path.read_text(encoding="utf-8"))
