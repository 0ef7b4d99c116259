"""Which notebooks to run, and with which knobs: ``python -m helpers run 03 -p EPOCHS=5``.

A knob is a name that a notebook's ``parameters`` cell assigns (papermill's convention,
without papermill). Everything here is checked before any kernel starts, so a typo in a
name or a value of the wrong type is refused in a second, not found minutes into a run;
the values that pass are injected as a cell right after the ``parameters`` cell.
"""

from __future__ import annotations

import ast
import cmath
from pathlib import Path

import nbformat

from helpers.notebooks import course_notebooks, parameters_cell_index, read

INJECTED_TAG = "injected-parameters"


class RunnerError(Exception):
    """A request the runner refuses before running anything (unknown notebook or knob)."""


def resolve_notebooks(names: list[str] | None = None, folder: Path | None = None) -> list[Path]:
    """The notebooks that ``names`` point at, in the order given; all of them when empty.

    A name may be a path, a file name, the number (``03``) or a prefix of the stem
    (``03_preprocessing``), so nobody has to type a full file name on a terminal; an
    exact name wins over a longer one that it is a prefix of.
    """
    available = course_notebooks(folder)
    if not names:
        if not available:
            raise RunnerError(f"no NN_topic.ipynb notebooks in {folder or 'notebooks/'}")
        return available
    chosen: list[Path] = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            matches = [path.resolve()]
        else:
            exact = [p for p in available if name in (p.name, p.stem)]
            matches = exact or [p for p in available if p.stem.startswith(name + "_")]
        if not matches:
            listing = ", ".join(p.stem for p in available) or "none"
            raise RunnerError(f"no notebook matches {name!r}; the course has: {listing}")
        if len(matches) > 1:
            listing = ", ".join(p.stem for p in matches)
            raise RunnerError(f"{name!r} is ambiguous: it matches {listing}")
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def _non_finite(value: object) -> bool:
    """Whether ``value`` is, or holds, an infinite or NaN number.

    ``1e999`` reads as ``inf``, which passes a float knob's type check; but it is
    injected as its repr, ``inf``, a name the kernel does not know, and a knob that
    took it (a learning rate, a threshold) would give no meaningful result anyway.
    """
    if isinstance(value, (float, complex)):
        return not cmath.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(k) or _non_finite(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_non_finite(v) for v in value)
    return False


def _non_finite_problem(name: str, typed: str, value: object) -> str:
    return (
        f"-p {name}={typed} reads as {value!r}: infinite and NaN numbers are refused (no knob "
        f"can use them, and the kernel could not even read them back); give {name} finite "
        "values, such as 1e300 or 0.001"
    )


def parse_parameters(pairs: list[str] | None) -> dict[str, object]:
    """``["EPOCHS=3", "DATA_DIR=/x"]`` -> ``{"EPOCHS": 3, "DATA_DIR": "/x"}``.

    A value is read as a Python literal (numbers, strings in quotes, lists, True/None)
    and otherwise kept as the string typed, as papermill does, so paths need no quotes.
    A number that is infinite or NaN (``1e999``, ``[1, -1e999]``) is refused here,
    before any kernel starts.
    """
    parameters: dict[str, object] = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise RunnerError(f"-p wants NAME=VALUE with a Python name, not {pair!r}")
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            value = raw  # not a literal ({[1]: 2} is one only in shape): the text typed
        if _non_finite(value):
            raise RunnerError(_non_finite_problem(name, raw.strip(), value))
        parameters[name] = value
    return parameters


def parameter_names(source: str) -> list[str]:
    """The names a parameters cell assigns at top level, in order."""
    names: list[str] = []

    def add(target: ast.expr) -> None:
        if isinstance(target, ast.Name) and target.id not in names:
            names.append(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                add(element)

    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                add(target)
        elif isinstance(node, ast.AnnAssign):
            add(node.target)
    return names


def notebook_parameters(nb: nbformat.NotebookNode) -> list[str]:
    """The knobs of ``nb``: the names its ``parameters`` cell assigns ([] without one)."""
    index = parameters_cell_index(nb)
    return [] if index is None else parameter_names(nb.cells[index].source)


_CASTS = {"str": str, "int": int, "float": float, "bool": bool}


def _value_types(node: ast.expr) -> tuple[type, ...] | None:
    """The types a default can take: a literal's type, those of every ``P.choose(...)``
    branch, or the cast's in ``str(...)``; None when the cell computes it otherwise."""
    try:
        return (type(ast.literal_eval(node)),)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "choose" and node.keywords:
            branches = [_value_types(k.value) for k in node.keywords]
            if None in branches:
                return None
            return tuple(dict.fromkeys(t for types in branches for t in types))
        if isinstance(func, ast.Name) and func.id in _CASTS:
            return (_CASTS[func.id],)
    return None


def parameter_defaults(source: str) -> dict[str, tuple[tuple[type, ...] | None, str]]:
    """``{name: (types its default can take, the default as written)}`` for a parameters
    cell's single-name assignments; the last assignment of a name counts."""
    defaults: dict[str, tuple[tuple[type, ...] | None, str]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target = node.target
        else:
            continue
        if isinstance(target, ast.Name):
            text = ast.get_source_segment(source, node.value) or ""
            defaults[target.id] = (_value_types(node.value), text)
    return defaults


def _accepts(types: tuple[type, ...] | None, value: object) -> bool:
    """Whether ``value`` fits a default of ``types``: the same type, an int for a float,
    a list for a tuple (and back); anything for a default of None or one computed."""
    if types is None or types == (type(None),):
        return True
    kind = type(value)
    if kind in types or (kind is int and float in types):
        return True
    return kind in (list, tuple) and bool({list, tuple} & set(types))


def _reads_as_non_finite(text: str) -> bool:
    try:
        return not cmath.isfinite(float(text))
    except ValueError:
        return False


def check_parameter_types(path: Path, source: str, given: dict[str, object]) -> list[str]:
    """One line per ``-p`` value whose type does not fit its default in ``path``'s cell.

    Infinite and NaN numbers are refused whatever the knob (see :func:`_non_finite`):
    values given through :func:`run_course` do not pass :func:`parse_parameters`. So is
    text that spells one (``-p LR=nan``) for a knob that takes a number.
    """
    problems = []
    defaults = parameter_defaults(source)
    for name, value in given.items():
        types, text = defaults.get(name, (None, ""))
        number = types is not None and bool({int, float} & set(types)) and str not in types
        if _non_finite(value) or (
            number and isinstance(value, str) and _reads_as_non_finite(value)
        ):
            problems.append(
                f"{_non_finite_problem(name, repr(value), value)} ({path.stem}: {name} = {text})"
            )
            continue
        if _accepts(types, value):
            continue
        wanted = " or ".join("None" if t is type(None) else t.__name__ for t in types)
        hint = "; put quotes around a string (-p NAME=\"'text'\")" if str in types else ""
        kind = type(value).__name__
        problems.append(
            f"-p {name}={value!r} is {'an' if kind[0] in 'aeiou' else 'a'} {kind}, but "
            f"{path.stem} expects "
            f"{wanted} for {name} (its parameters cell: {name} = {text}){hint}"
        )
    return problems


def split_parameters(
    notebooks: list[Path], parameters: dict[str, object]
) -> dict[Path, dict[str, object]]:
    """Which of ``parameters`` each notebook gets: those its parameters cell assigns.

    ``-p SEED=1`` over the whole course reaches every notebook with a ``SEED`` knob;
    a name that no chosen notebook assigns is a typo and is refused before anything
    runs, with the names that do exist. So is a value whose type does not fit the
    knob's default (``-p BATCH_SIZE=oops`` where the cell says ``BATCH_SIZE = 32``):
    it would otherwise fail minutes later in some other cell, without the knob's name.
    """
    cells = {}
    for path in notebooks:
        nb = read(path)
        index = parameters_cell_index(nb)
        cells[path] = "" if index is None else nb.cells[index].source
    knobs = {path: parameter_names(source) for path, source in cells.items()}
    unknown = [name for name in parameters if not any(name in k for k in knobs.values())]
    if unknown:
        listing = "; ".join(f"{p.stem}: {', '.join(k) or 'none'}" for p, k in knobs.items())
        raise RunnerError(
            f"no chosen notebook's parameters cell assigns {', '.join(unknown)}. "
            f"The parameters cells assign: {listing}"
        )
    split = {path: {n: v for n, v in parameters.items() if n in k} for path, k in knobs.items()}
    problems = [
        line
        for path, given in split.items()
        for line in check_parameter_types(path, cells[path], given)
    ]
    if problems:
        raise RunnerError("refused before running anything:\n  " + "\n  ".join(problems))
    return split


def inject_parameters(nb: nbformat.NotebookNode, parameters: dict[str, object]) -> int | None:
    """Insert a cell tagged ``injected-parameters`` after the ``parameters`` cell.

    The original cell stays as it is, so the executed notebook shows both the defaults
    and what overrode them. Returns the new cell's index, or None when nothing was given.
    """
    if not parameters:
        return None
    index = parameters_cell_index(nb)
    if index is None:
        raise RunnerError("the notebook has no cell tagged 'parameters' to inject values after")
    lines = ["# Injected by python -m helpers run"]
    lines += [f"{name} = {value!r}" for name, value in parameters.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = [INJECTED_TAG]
    nb.cells.insert(index + 1, cell)
    return index + 1
