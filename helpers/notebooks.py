"""The notebook contract, as code: what every course notebook must look like in git.

Written down for people in CONTRIBUTING.md; enforced here so that tests (and
``python -m helpers check``) catch a notebook committed with outputs, without a
``parameters`` cell, without the sections a learner relies on (in their order), or
with more code than a lesson should hold. ``strip_outputs`` is the fix for the commonest
failure.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

NAME_PATTERN = re.compile(r"^\d{2}_[a-z0-9_]+\.ipynb$")
PARAMETERS_TAG = "parameters"
# Headings a learner can count on, in this order (the title is the first cell's "# ").
REQUIRED_SECTIONS = ("What you will learn", "Setup", "Summary", "Exercises")
# A notebook is a lesson: past this many lines of code, move the rest into helpers/.
MAX_CODE_LINES = 300


def code_lines(nb: nbformat.NotebookNode) -> int:
    """Lines of code in the notebook's code cells: blank lines and comments not counted."""
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if line.strip() and not line.strip().startswith("#")
    )


def read(path: str | Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def parameters_cell_index(nb: nbformat.NotebookNode) -> int | None:
    """Index of the cell tagged ``parameters`` (papermill's convention), or None."""
    for i, cell in enumerate(nb.cells):
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return i
    return None


def _headings(nb: nbformat.NotebookNode) -> list[str]:
    found = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                m = re.match(r"^(#{1,6})\s+(.*?)\s*$", line)
                if m:
                    found.append((len(m.group(1)), m.group(2)))
    return found


def check_notebook(path: str | Path) -> list[str]:
    """Every way the notebook at ``path`` breaks the contract; [] when it keeps it."""
    path = Path(path)
    problems: list[str] = []
    if not NAME_PATTERN.match(path.name):
        problems.append(f"name {path.name!r} is not NN_topic.ipynb (two digits, lowercase topic)")
    nb = read(path)
    if "kernelspec" not in nb.metadata:
        problems.append("metadata has no kernelspec (JupyterLab would ask which kernel to use)")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i} holds outputs: strip them (python -m helpers strip)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} holds an execution count: strip it")
    tagged = [
        i for i, c in enumerate(nb.cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])
    ]
    if not tagged:
        problems.append("no cell is tagged 'parameters' (every knob belongs in one such cell)")
    elif len(tagged) > 1:
        problems.append(f"cells {tagged} are all tagged 'parameters'; keep exactly one")
    elif nb.cells[tagged[0]].cell_type != "code":
        problems.append("the 'parameters' cell is not a code cell")
    headings = _headings(nb)
    if not headings or headings[0][0] != 1:
        problems.append("the first heading is not a '# Title'")
    names = [text.lower() for _, text in headings]
    found = []
    for section in REQUIRED_SECTIONS:
        where = [k for k, name in enumerate(names) if name.startswith(section.lower())]
        if not where:
            problems.append(f"no '{section}' section")
        else:
            found.append((where[0], section))
    if [section for _, section in sorted(found)] != [section for _, section in found]:
        order = " -> ".join(section for _, section in sorted(found))
        problems.append(f"sections out of order ({order}); keep {' -> '.join(REQUIRED_SECTIONS)}")
    lines = code_lines(nb)
    if lines > MAX_CODE_LINES:
        problems.append(
            f"{lines} lines of code (limit {MAX_CODE_LINES}): move shared logic into helpers/"
        )
    if not any(
        c.cell_type == "code" and re.search(r"^\s*assert\b", c.source, re.M) for c in nb.cells
    ):
        problems.append("no cell asserts anything: check what the notebook teaches")
    return problems


def strip_outputs(path: str | Path) -> bool:
    """Remove outputs and execution counts in place; return whether anything changed."""
    nb = read(path)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code":
            if cell.get("outputs") or cell.get("execution_count") is not None:
                changed = True
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled"):
            if key in cell.get("metadata", {}):
                del cell.metadata[key]
                changed = True
    if "widgets" in nb.metadata:
        del nb.metadata["widgets"]
        changed = True
    if changed:
        nbformat.write(nb, str(path))
    return changed


def course_notebooks(folder: str | Path | None = None) -> list[Path]:
    """The course's notebooks in the order a learner takes them."""
    from helpers.config import project_root

    folder = Path(folder) if folder else project_root() / "notebooks"
    return sorted(p for p in folder.glob("*.ipynb") if NAME_PATTERN.match(p.name))
