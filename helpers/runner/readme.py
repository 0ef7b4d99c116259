"""The README's notebook map, its time and memory columns from measured runs:
``python -m helpers timings RUN...``, and the check that it was not edited by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers.config import PROFILES, project_root
from helpers.files import write_atomic
from helpers.notebooks import course_notebooks, read
from helpers.runner.parameters import RunnerError
from helpers.runner.report import load_report

MINUTES_FILE = Path("benchmarks") / "results" / "notebook_minutes.json"
MAP_HEADER = "| notebook | what you learn |"
PEAK_SUFFIX = " peak MB"


def format_duration(seconds: float) -> str:
    """``"12 s"`` under a minute, ``"1.4 min"`` above: what a reader plans a lesson with."""
    return f"{seconds:.0f} s" if seconds < 59.5 else f"{seconds / 60:.1f} min"


def record_timings(reports: list[dict], path: Path | None = None) -> dict:
    """Merge the passed notebooks of ``reports`` into ``benchmarks/results/notebook_minutes.json``.

    The file keeps, per profile, each notebook's wall time and peak memory with the run
    it came from (commit, date, CPU), so the README can be checked against it and a new
    notebook's run adds its row without rerunning the others. Failed notebooks are left
    out: a failure's time says nothing about the lesson.
    """
    path = project_root() / MINUTES_FILE if path is None else Path(path)
    record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for report in reports:
        env = report["environment"]
        profile = record.setdefault(env["profile"], {})
        device = env.get("device") or {}
        for name, result in report["notebooks"].items():
            if result["status"] != "passed":
                continue
            profile[name] = {
                "seconds": result["seconds"],
                "peak_memory_mb": result["peak_memory_mb"],
                "git_commit": env.get("git_commit"),
                "started": env.get("started"),
                "cpu": f"{device.get('cpu')} ({device.get('cpu_cores')} cores)",
            }
        record[env["profile"]] = dict(sorted(profile.items()))
    write_atomic(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return record


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _map_bounds(lines: list[str]) -> tuple[int, int]:
    """The header line's index and the index past the table's last row."""
    start = next((i for i, line in enumerate(lines) if line.startswith(MAP_HEADER)), None)
    if start is None:
        raise RunnerError(f"no notebook map in the README: no line starts with {MAP_HEADER!r}")
    end = start + 2
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return start, end


def _measured_cell(column: str, name: str, record: dict) -> str | None:
    """What the map's ``column`` says for notebook ``name``; None for a column not measured."""
    profile, peak = column, False
    if column.endswith(PEAK_SUFFIX):
        profile, peak = column[: -len(PEAK_SUFFIX)], True
    if profile not in PROFILES:
        return None
    entry = record.get(profile, {}).get(name)
    if entry is None:
        return "—"
    if peak:
        return "—" if entry["peak_memory_mb"] is None else f"{entry['peak_memory_mb']:.0f}"
    return format_duration(entry["seconds"])


def _title(path: Path) -> str:
    """A notebook's title without its number: what a new row of the map starts with."""
    nb = read(path)
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    line = first.strip().splitlines()[0] if first.strip() else path.stem
    return line.lstrip("# ").split("·", 1)[-1].strip()


def readme_with_timings(text: str, record: dict, notebooks: list[Path] | None = None) -> str:
    """The README with its notebook map's time and memory columns set from ``record``.

    Every course notebook gets a row (a new one is added with its title as the "what you
    learn" text, to be edited by hand); cells of columns named after a profile get the
    measured time, ``"<profile> peak MB"`` columns the peak memory, and "—" where that
    profile has no measurement for the notebook. Other columns are left as written.
    """
    lines = text.split("\n")
    start, end = _map_bounds(lines)
    header = _cells(lines[start])
    rows = {_cells(line)[0].strip("`"): _cells(line) for line in lines[start + 2 : end]}
    names = [p.stem for p in (course_notebooks() if notebooks is None else notebooks)]
    for name in names:
        if name not in rows:
            path = next(p for p in (notebooks or course_notebooks()) if p.stem == name)
            rows[name] = [f"`{name}`", _title(path)] + ["—"] * (len(header) - 2)
    ordered = sorted(rows, key=lambda n: (n not in names, names.index(n) if n in names else 0))
    body = []
    for name in ordered:
        cells = rows[name] + [""] * (len(header) - len(rows[name]))
        for k, column in enumerate(header):
            value = _measured_cell(column, name, record)
            if value is not None:
                cells[k] = value
        body.append(_row(cells))
    return "\n".join(lines[: start + 2] + body + lines[end:])


def readme_timing_problems(
    text: str, record: dict, notebooks: list[Path] | None = None
) -> list[str]:
    """Where the README's notebook map disagrees with ``record``: one line per row."""
    expected = readme_with_timings(text, record, notebooks).split("\n")
    actual = text.split("\n")
    start, end = _map_bounds(actual)
    new_start, new_end = _map_bounds(expected)
    if new_end - new_start != end - start:
        have = {_cells(line)[0] for line in actual[start + 2 : end]}
        missing = [_cells(line)[0] for line in expected[new_start + 2 : new_end]]
        missing = [m for m in missing if m not in have]
        return [f"the notebook map has no row for {', '.join(missing)}"]
    return [
        f"README line {start + k + 1}: {a!r} should be {b!r}"
        for k, (a, b) in enumerate(zip(actual[start:end], expected[new_start:new_end], strict=True))
        if a != b
    ]


def update_readme_timings(runs: list[str | Path], readme: Path | None = None) -> list[str]:
    """``python -m helpers timings RUN...``: record the runs' times, rewrite the README map.

    Returns the README's map lines that changed, so the command can say what it did.
    """
    reports = [load_report(run) for run in runs]
    record = record_timings(reports)
    readme = project_root() / "README.md" if readme is None else Path(readme)
    before = readme.read_text(encoding="utf-8")
    after = readme_with_timings(before, record)
    if after != before:
        write_atomic(readme, after.encode())
    return [line for line in after.split("\n") if line not in before.split("\n")]
