"""Two runs side by side: ``python -m helpers compare runs/A runs/B``."""

from __future__ import annotations

from pathlib import Path

from helpers.runner.report import format_cell, load_report, markdown_table


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _change(a: object, b: object) -> tuple[object, str]:
    if a is None or b is None:
        return None, "only in " + ("B" if a is None else "A")
    if _is_number(a) and _is_number(b):
        delta = b - a
        relative = f"{delta / abs(a):+.1%}" if a else ("0%" if b == a else "—")
        return (f"{delta:+.4g}" if isinstance(delta, float) else f"{delta:+d}"), relative
    return None, "same" if a == b else "changed"


def compare_runs(run_a: str | Path, run_b: str | Path) -> str:
    """Markdown tables of what changed from run A to run B: statuses, times, metrics.

    Notebooks and metrics present in only one run are listed too, so a notebook that
    stopped recording a metric shows up instead of silently disappearing.
    """
    a, b = load_report(run_a), load_report(run_b)
    na, nb = a["notebooks"], b["notebooks"]
    names = list(na) + [n for n in nb if n not in na]
    lines = [f"# Run A: {run_a}", f"# Run B: {run_b}", ""]
    for key in ("profile", "seed", "git_commit", "tensorflow", "keras"):
        va, vb = a["environment"].get(key), b["environment"].get(key)
        if va != vb:
            lines.append(f"- {key} differs: A {format_cell(va)}, B {format_cell(vb)}")
    notebook_rows = []
    metric_rows = []
    for name in names:
        ra, rb = na.get(name, {}), nb.get(name, {})
        sa, sb = ra.get("status", "absent"), rb.get("status", "absent")
        notebook_rows.append(
            [
                name,
                sa,
                sb,
                "same" if sa == sb else f"{sa} -> {sb}",
                ra.get("seconds"),
                rb.get("seconds"),
                ra.get("peak_memory_mb"),
                rb.get("peak_memory_mb"),
            ]
        )
        ma, mb = ra.get("metrics", {}), rb.get("metrics", {})
        for metric in list(ma) + [m for m in mb if m not in ma]:
            va, vb = ma.get(metric), mb.get(metric)
            metric_rows.append([name, metric, va, vb, *_change(va, vb)])
    lines += ["", "## Notebooks", ""]
    lines += markdown_table(
        ["notebook", "A", "B", "status change", "A seconds", "B seconds", "A peak MB", "B peak MB"],
        notebook_rows,
    )
    lines += ["", "## Metrics", ""]
    if metric_rows:
        lines += markdown_table(["notebook", "metric", "A", "B", "change", "relative"], metric_rows)
    else:
        lines.append("Neither run recorded a metric.")
    return "\n".join(lines) + "\n"
