"""Run course notebooks headless and report what they measured: ``python -m helpers run``.

A teacher reruns the whole course before a class, a researcher reruns one notebook with
other knobs; both want a table they can compare with the last run, not a pile of logs.
So each notebook runs in its own fresh kernel (as a learner's would), with the
``-p NAME=VALUE`` values injected right after its ``parameters`` cell (papermill's
convention, without papermill), and the runner collects what it needs into one folder:

    <out>/results.json           status, seconds, peak memory, metrics per notebook; environment
    <out>/results.md             the same as tables, for a person or a pull request
    <out>/<notebook>.ipynb       the executed notebook, outputs included (a failing one too)
    <out>/figures/<notebook>/    every figure the notebook showed, as PNG
    <out>/<notebook>.metrics.jsonl  what ``helpers.results.record`` appended, line by line
    <out>/<notebook>.kernel.log  what the kernel process itself printed, if anything

Both reports are rewritten atomically after every notebook, so an interrupted run still
leaves a valid partial report. :func:`compare_runs` puts two such folders side by side.
"""

from __future__ import annotations

import ast
import base64
import cmath
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import nbformat

from helpers import devices
from helpers.config import DEFAULT_SEED, PROFILE_ENV, PROFILES, get_profile, project_root
from helpers.files import write_atomic
from helpers.notebooks import course_notebooks, parameters_cell_index, read
from helpers.results import RESULTS_FILE_ENV, read_recorded

INJECTED_TAG = "injected-parameters"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
# ipykernel's own default backend: set explicitly because a caller's MPLBACKEND=Agg
# (the tests set it) would otherwise reach the kernel and hide every figure.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


class RunnerError(Exception):
    """A request the runner refuses before running anything (unknown notebook or knob)."""


# --- choosing notebooks and parameters --------------------------------------------------


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


# --- running one notebook -------------------------------------------------------------------


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
def _handling_sigint() -> Iterator[_Interrupts]:
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
    first = _first_line(error.get("message") or "")
    message = f"{error['name']}: {first}" if first else error["name"]
    verb = "was stopped" if error["name"] == "KeyboardInterrupt" else "failed"
    return f"{name} {verb}{where}: {message}"


def _first_line(text: str, width: int = 100) -> str:
    """The first non-blank line, cut to ``width``: enough to recognise a cell or an error."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def save_figures(nb: nbformat.NotebookNode, folder: Path, offset: int | None = None) -> list[Path]:
    """Write every PNG the notebook displayed (matplotlib figures, shown images) to ``folder``.

    Files are named by the cell's index in the notebook as committed (``offset`` is
    the injected cell's index, which shifts the cells after it), so a figure leads back
    to the cell that drew it.
    """
    saved: list[Path] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        original = index - 1 if offset is not None and index > offset else index
        pngs = [
            o.data["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})
        ]
        for k, png in enumerate(pngs):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"cell{original:02d}_{k + 1}.png"
            path.write_bytes(base64.b64decode(png))
            saved.append(path)
    return saved


def kernel_environment(profile: str, metrics_file: Path) -> dict[str, str]:
    """The kernel's environment: the caller's, plus the profile and where to record."""
    env = dict(os.environ)
    env[PROFILE_ENV] = profile
    env[RESULTS_FILE_ENV] = str(metrics_file)
    env["MPLBACKEND"] = INLINE_BACKEND
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def run_notebook(
    path: Path,
    out_dir: Path,
    *,
    profile: str,
    parameters: dict[str, object] | None = None,
    timeout: float | None = None,
    progress: Progress | None = None,
    position: tuple[int, int] = (1, 1),
) -> NotebookResult:
    """Execute one notebook in a fresh kernel; write its outputs to ``out_dir``.

    Never raises for a failure inside the notebook (a failing cell, a dead kernel, a
    timeout) or for SIGINT: the result says what failed where (status ``interrupted``
    for Ctrl-C or ``kill -INT``), and the executed notebook with the outputs up to the
    failure is written, which is what one needs to debug it.

    The cells run one by one under nbclient's synchronous ``setup_kernel`` rather than
    ``NotebookClient.execute``: the latter installs its own SIGINT handler, which would
    turn Ctrl-C into a dead kernel and let the run go on to the next notebook. SIGINT is
    handled by :class:`_Interrupts` instead, which also interrupts the kernel: the kernel
    runs in a session of its own, so no terminal's Ctrl-C reaches it directly.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    progress = progress or Progress()
    parameters = dict(parameters or {})
    name = path.stem
    nb = read(path)
    injected = inject_parameters(nb, parameters)
    metrics_file = out_dir / f"{name}.metrics.jsonl"
    metrics_file.unlink(missing_ok=True)
    kernel_log = out_dir / f"{name}.kernel.log"
    memory = PeakMemory()
    client = NotebookClient(nb, timeout=timeout, resources={"metadata": {"path": str(path.parent)}})
    client.on_notebook_start = lambda notebook: memory.watch(
        getattr(client.km.provisioner, "pid", None)
    )

    code_cells = sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())
    progress.notebook_started(*position, name, code_cells)
    error = None
    status = "passed"
    index = None
    started = time.perf_counter()
    try:
        client.reset_execution_trackers()
        with (
            _handling_sigint() as interrupts,
            open(kernel_log, "wb") as log,
            client.setup_kernel(
                env=kernel_environment(profile, metrics_file), stdout=log, stderr=log
            ),
            interrupts.armed(client.km),
        ):
            reply = client.wait_for_reply(client.kc.kernel_info())
            nb.metadata["language_info"] = reply["content"]["language_info"]
            for index, cell in enumerate(nb.cells):
                try:
                    client.execute_cell(cell, index, client.code_cells_executed + 1)
                finally:
                    memory.sample()  # the kernel is still alive, even after a failing cell
                if cell.cell_type == "code" and cell.source.strip():
                    progress.cell_finished(f"cell {index}: {_first_line(cell.source)}")
            index = None
            client.set_widgets_metadata()
    except KeyboardInterrupt:
        status = "interrupted"
        error = {"name": "KeyboardInterrupt", "message": "stopped by SIGINT (Ctrl-C or kill -INT)"}
    except Exception as err:  # any failure is reported, whatever raised it
        status = "failed"
        error = {"name": type(err).__name__, "message": _first_line(str(err))}
        if isinstance(err, CellExecutionError):
            error.update(name=err.ename, message=err.evalue)
    if error and index is not None:
        error["execution_count"] = nb.cells[index].get("execution_count")
        if index == injected:
            error["injected"] = True
        else:
            error["cell"] = index - 1 if injected is not None and index > injected else index
            error["first_line"] = _first_line(nb.cells[index].source)
    seconds = round(time.perf_counter() - started, 2)
    if kernel_log.exists() and kernel_log.stat().st_size == 0:
        kernel_log.unlink()
    elif error:
        error["kernel_log"] = kernel_log.name
    executed = out_dir / f"{name}.ipynb"
    nbformat.write(nb, str(executed))
    figures = save_figures(nb, out_dir / "figures" / name, injected)
    result = NotebookResult(
        status=status,
        seconds=seconds,
        peak_memory_mb=memory.stop(),
        metrics=read_recorded(metrics_file),
        parameters=parameters,
        error=error,
        executed=executed.name,
        figures=[str(f.relative_to(out_dir)) for f in figures],
    )
    progress.notebook_finished(result)
    return result


# --- the whole run and its report -------------------------------------------------------------


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


def _fmt(value: object) -> str:
    """A table cell: four significant digits, but whole seconds or MB past a thousand."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return lines


def results_markdown(report: dict) -> str:
    """``results.md``: the notebooks, their metrics, failures and environment as tables."""
    env = report["environment"]
    notebooks = report["notebooks"]
    lines = [f"# Course run: profile {env['profile']}, started {env['started']}", ""]
    lines += _table(
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
        lines += ["", "## Metrics", ""] + _table(["notebook", "metric", "value"], metric_rows)
    failures = [describe_error(n, r["error"]) for n, r in notebooks.items() if r.get("error")]
    if failures:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in failures]
    given = [
        [n, ", ".join(f"{k}={v!r}" for k, v in r["parameters"].items())]
        for n, r in notebooks.items()
        if r.get("parameters")
    ]
    if given:
        lines += ["", "## Parameters given", ""] + _table(["notebook", "parameters"], given)
    env_rows = [[k, json.dumps(v) if isinstance(v, (dict, list)) else v] for k, v in env.items()]
    lines += ["", "## Environment", ""] + _table(["key", "value"], env_rows)
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, report: dict) -> None:
    """Write ``results.json`` and ``results.md`` atomically: never half a report."""
    write_atomic(out_dir / RESULTS_JSON, (json.dumps(report, indent=2) + "\n").encode())
    write_atomic(out_dir / RESULTS_MD, results_markdown(report).encode())


def default_out_dir(profile: str) -> Path:
    """A new folder ``runs/<UTC time>-<profile>`` in the project (git ignores runs/)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = project_root() / "runs" / f"{stamp}-{profile}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def run_course(
    notebooks: list[Path],
    out_dir: Path | None = None,
    *,
    profile: str | None = None,
    parameters: dict[str, object] | None = None,
    stop_on_error: bool = False,
    timeout: float | None = None,
    progress: Progress | None = None,
    command: list[str] | None = None,
) -> tuple[Path, dict]:
    """Run ``notebooks`` in order; return the output folder and the report.

    Refuses unknown knobs before starting any kernel. A failing notebook is reported
    and the run goes on with the next one unless ``stop_on_error``. The report on disk
    is brought up to date after every notebook. SIGINT (Ctrl-C, or ``kill -INT`` from a
    scheduler) interrupts the running notebook's kernel, records it as ``interrupted``
    and raises :class:`KeyboardInterrupt` with the report written; one that arrives
    between notebooks stops the run before the next (see :class:`_Interrupts`).
    """
    profile = get_profile(profile).name
    parameters = dict(parameters or {})
    per_notebook = split_parameters(notebooks, parameters)
    out_dir = Path(out_dir) if out_dir else default_out_dir(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = progress or Progress()
    seed = parameters.get("SEED", DEFAULT_SEED)
    with _handling_sigint() as interrupts:
        report = {"notebooks": {}, "environment": environment(profile, seed, command)}
        write_report(out_dir, report)
        progress.say(f"Running {len(notebooks)} notebook(s), profile {profile}, into {out_dir}")
        for position, path in enumerate(notebooks, start=1):
            if interrupts.requested:
                raise KeyboardInterrupt
            result = run_notebook(
                path,
                out_dir,
                profile=profile,
                parameters=per_notebook[path],
                timeout=timeout,
                progress=progress,
                position=(position, len(notebooks)),
            )
            report["notebooks"][path.stem] = asdict(result)
            write_report(out_dir, report)
            if result.status == "interrupted":
                raise KeyboardInterrupt
            if result.status != "passed" and stop_on_error:
                progress.say("Stopping at the first failure (--stop-on-error).")
                break
    return out_dir, report


def failed(report: dict) -> list[str]:
    """The notebooks that did not pass."""
    return [name for name, r in report["notebooks"].items() if r["status"] != "passed"]


# --- the README's notebook map, from measured runs -----------------------------------------------

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


# --- comparing two runs -----------------------------------------------------------------------


def load_report(run: str | Path) -> dict:
    """The report of a run, given its folder or its ``results.json``."""
    path = Path(run)
    if path.is_dir():
        path = path / RESULTS_JSON
    if not path.is_file():
        raise RunnerError(f"no {RESULTS_JSON} at {path}: is it a folder written by helpers run?")
    return json.loads(path.read_text(encoding="utf-8"))


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
            lines.append(f"- {key} differs: A {_fmt(va)}, B {_fmt(vb)}")
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
    lines += _table(
        ["notebook", "A", "B", "status change", "A seconds", "B seconds", "A peak MB", "B peak MB"],
        notebook_rows,
    )
    lines += ["", "## Metrics", ""]
    if metric_rows:
        lines += _table(["notebook", "metric", "A", "B", "change", "relative"], metric_rows)
    else:
        lines.append("Neither run recorded a metric.")
    return "\n".join(lines) + "\n"
