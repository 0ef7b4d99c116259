"""Running notebooks headless, each in a fresh kernel, as a learner's would run.

:func:`run_notebook` executes one and writes what it produced into the output folder;
:func:`run_course` runs several in order and keeps the report up to date after each.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from helpers.config import DEFAULT_SEED, PROFILE_ENV, get_profile, project_root
from helpers.notebooks import read
from helpers.results import RESULTS_FILE_ENV, read_recorded
from helpers.runner.kernel import PeakMemory, handling_sigint
from helpers.runner.parameters import inject_parameters, split_parameters
from helpers.runner.progress import Progress
from helpers.runner.report import NotebookResult, environment, first_line, write_report

# ipykernel's own default backend: set explicitly because a caller's MPLBACKEND=Agg
# (the tests set it) would otherwise reach the kernel and hide every figure.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


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
            handling_sigint() as interrupts,
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
                    progress.cell_finished(f"cell {index}: {first_line(cell.source)}")
            index = None
            client.set_widgets_metadata()
    except KeyboardInterrupt:
        status = "interrupted"
        error = {"name": "KeyboardInterrupt", "message": "stopped by SIGINT (Ctrl-C or kill -INT)"}
    except Exception as err:  # any failure is reported, whatever raised it
        status = "failed"
        error = {"name": type(err).__name__, "message": first_line(str(err))}
        if isinstance(err, CellExecutionError):
            error.update(name=err.ename, message=err.evalue)
    if error and index is not None:
        error["execution_count"] = nb.cells[index].get("execution_count")
        if index == injected:
            error["injected"] = True
        else:
            error["cell"] = index - 1 if injected is not None and index > injected else index
            error["first_line"] = first_line(nb.cells[index].source)
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
    with handling_sigint() as interrupts:
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
