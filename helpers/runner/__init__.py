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

Its rooms, in the order a run uses them:

- ``parameters``: which notebooks, which knobs; refused before any kernel starts.
- ``execute``: :func:`run_notebook` and :func:`run_course`, each notebook in a fresh kernel.
- ``kernel``: SIGINT passed on to the kernel, and the kernel's peak memory.
- ``progress``: the lines a person sees while it runs.
- ``report``: ``results.json`` and ``results.md``, and the environment record they keep.
- ``compare``: two runs side by side (``python -m helpers compare``).
- ``readme``: the README's notebook map from measured runs (``python -m helpers timings``).

The names below are the runner's public face, for the command line, tests and benchmarks.
"""

from helpers.runner.compare import compare_runs
from helpers.runner.execute import run_course, run_notebook
from helpers.runner.kernel import PeakMemory
from helpers.runner.parameters import (
    INJECTED_TAG,
    RunnerError,
    check_parameter_types,
    inject_parameters,
    notebook_parameters,
    parameter_defaults,
    parameter_names,
    parse_parameters,
    resolve_notebooks,
    split_parameters,
)
from helpers.runner.progress import Progress
from helpers.runner.readme import (
    MINUTES_FILE,
    readme_timing_problems,
    readme_with_timings,
    record_timings,
    update_readme_timings,
)
from helpers.runner.report import failed, load_report, results_markdown, write_report

__all__ = [
    "INJECTED_TAG",
    "MINUTES_FILE",
    "PeakMemory",
    "Progress",
    "RunnerError",
    "check_parameter_types",
    "compare_runs",
    "failed",
    "inject_parameters",
    "load_report",
    "notebook_parameters",
    "parameter_defaults",
    "parameter_names",
    "parse_parameters",
    "readme_timing_problems",
    "readme_with_timings",
    "record_timings",
    "resolve_notebooks",
    "results_markdown",
    "run_course",
    "run_notebook",
    "split_parameters",
    "update_readme_timings",
    "write_report",
]
