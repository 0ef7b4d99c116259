"""The headless runner (``python -m helpers run``) and its reports.

One real run of the command line, shared by several tests, executes a deliberately
failing fixture first, then the fastest real course notebooks, then a fixture that
records metrics and draws a figure: so it shows that a failure is reported by notebook
and cell, that the run goes on after it, and that results.json carries what each
notebook recorded. nbval already executes every course notebook, so only the fastest
ones run here, to keep CI time down. The rest are unit tests that start no kernel.
"""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers.__main__ import main
from helpers.config import project_root
from helpers.notebooks import course_notebooks
from helpers.runner import (
    INJECTED_TAG,
    PeakMemory,
    Progress,
    RunnerError,
    compare_runs,
    inject_parameters,
    parameter_names,
    parse_parameters,
    resolve_notebooks,
    results_markdown,
    run_course,
    run_notebook,
    split_parameters,
    write_report,
)

FIXTURES = Path(__file__).parent / "fixtures"
FAILING = FIXTURES / "fails_on_purpose.ipynb"
RECORDING = FIXTURES / "records_metrics.ipynb"
# The two fastest course notebooks under the smoke profile; should they be renamed, the
# first two notebooks of the course stand in for them.
FAST_NOTEBOOKS = ("00_setup", "04_softmax_regression")
REAL = [p for p in course_notebooks() if p.stem in FAST_NOTEBOOKS] or course_notebooks()[:2]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """Run the command line once, the way a teacher would, with no terminal and CI=true."""
    assert REAL, f"none of {FAST_NOTEBOOKS} is in notebooks/"
    out = tmp_path_factory.mktemp("run")
    env = dict(os.environ, CI="true")
    args = [str(FAILING), *(p.stem[:2] for p in REAL), str(RECORDING)]
    done = subprocess.run(
        [sys.executable, "-m", "helpers", "run", *args, "--profile", "smoke"]
        + ["-p", "SCALE=3", "--out", str(out)],
        cwd=project_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads((out / "results.json").read_text())
    return done, out, report


def test_a_failure_gives_a_non_zero_exit_and_names_notebook_and_cell(cli_run):
    done, out, report = cli_run
    assert done.returncode == 1
    error = report["notebooks"]["fails_on_purpose"]["error"]
    assert report["notebooks"]["fails_on_purpose"]["status"] == "failed"
    assert error["cell"] == 3
    assert error["name"] == "AssertionError"
    assert error["message"] == "THRESHOLD must be negative"
    line = "fails_on_purpose failed in cell 3 (`assert THRESHOLD < 0"
    assert line in done.stderr
    assert line in (out / "results.md").read_text()
    assert "1 notebook(s) failed: fails_on_purpose" in done.stderr


def test_the_failing_notebook_keeps_what_it_recorded_and_its_outputs(cli_run):
    _, out, report = cli_run
    assert report["notebooks"]["fails_on_purpose"]["metrics"] == {"before_failure": 1}
    executed = nbformat.read(str(out / "fails_on_purpose.ipynb"), as_version=4)
    assert executed.cells[3].outputs[0]["ename"] == "AssertionError"
    assert executed.cells[4].execution_count is None


def test_the_run_goes_on_and_real_notebooks_report_their_metrics(cli_run):
    _, _, report = cli_run
    names = ["fails_on_purpose", *(p.stem for p in REAL), "records_metrics"]
    assert list(report["notebooks"]) == names
    for path in REAL:
        result = report["notebooks"][path.stem]
        assert result["status"] == "passed", result["error"]
        assert result["peak_memory_mb"] > 0
        source = "\n".join(c.source for c in nbformat.read(str(path), as_version=4).cells)
        recorded = set(re.findall(r"\brecord\(\s*[\"'](\w+)[\"']", source))
        assert recorded, f"{path.name} records no metric"
        assert recorded <= set(result["metrics"])


def test_parameters_are_injected_after_the_parameters_cell(cli_run):
    _, out, report = cli_run
    result = report["notebooks"]["records_metrics"]
    assert result["parameters"] == {"SCALE": 3}
    assert result["metrics"] == {"scale_squared": 9, "label": "default", "profile": "smoke"}
    executed = nbformat.read(str(out / "records_metrics.ipynb"), as_version=4)
    assert "parameters" in executed.cells[1].metadata.tags
    assert executed.cells[2].metadata.tags == [INJECTED_TAG]
    assert executed.cells[2].source.endswith("SCALE = 3")
    assert all(report["notebooks"][p.stem]["parameters"] == {} for p in REAL)


def test_figures_are_saved_as_png(cli_run):
    _, out, report = cli_run
    assert report["notebooks"]["records_metrics"]["figures"] == [
        "figures/records_metrics/cell03_1.png"
    ]
    assert (out / "figures/records_metrics/cell03_1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_environment_block_and_plain_progress_lines(cli_run):
    done, _, report = cli_run
    env = report["environment"]
    assert env["profile"] == "smoke"
    assert env["seed"] == 42
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["tensorflow"] and env["keras"] and env["numpy"]
    assert env["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", env["git_commit"])
    assert env["device"]["cpu_cores"] >= 1
    assert f"[1/{len(REAL) + 2}] fails_on_purpose: running 4 code cells" in done.stderr
    assert "\r" not in done.stderr


def test_compare_two_runs_on_disk(cli_run, tmp_path):
    _, out, report = cli_run
    report["notebooks"]["records_metrics"]["metrics"]["scale_squared"] = 12
    report["notebooks"]["fails_on_purpose"]["status"] = "passed"
    write_report(tmp_path, report)
    table = compare_runs(out, tmp_path)
    assert "| records_metrics | scale_squared | 9 | 12 | +3 | +33.3% |" in table
    assert "| fails_on_purpose | failed | passed | failed -> passed |" in table


def test_stop_on_error_stops_after_the_first_failure(tmp_path):
    log = io.StringIO()
    _, report = run_course(
        [FAILING, RECORDING], tmp_path, profile="smoke", stop_on_error=True, progress=Progress(log)
    )
    assert list(report["notebooks"]) == ["fails_on_purpose"]
    assert json.loads((tmp_path / "results.json").read_text()) == report
    assert "Stopping at the first failure" in log.getvalue()


def test_a_cell_past_the_timeout_fails_with_its_cell_named(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("while True: pass")]
    path = tmp_path / "spins.ipynb"
    nbformat.write(nb, str(path))
    result = run_notebook(
        path, tmp_path, profile="smoke", timeout=2, progress=Progress(io.StringIO())
    )
    assert result.status == "failed"
    assert result.error["name"] == "CellTimeoutError"
    assert result.error["cell"] == 1
    assert result.error["first_line"] == "while True: pass"


def test_an_unknown_parameter_is_refused_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["run", str(RECORDING), "-p", "SCALLE=2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "SCALLE" in err and "records_metrics: SCALE, LABEL" in err
    assert not out.exists()


def test_parse_parameters_reads_literals_and_falls_back_to_strings():
    assert parse_parameters(["EPOCHS=3", "LR=1e-3", "DATA_DIR=/data/x", "NAME='a b'"]) == {
        "EPOCHS": 3,
        "LR": 0.001,
        "DATA_DIR": "/data/x",
        "NAME": "a b",
    }
    assert parse_parameters(["SIZES=[1, 2]", "FLAG=True"]) == {"SIZES": [1, 2], "FLAG": True}
    for bad in ("EPOCHS", "1X=2", "=3"):
        with pytest.raises(RunnerError, match="NAME=VALUE"):
            parse_parameters([bad])


def test_parameter_names_are_the_top_level_assignments():
    source = "A = 1\nB, C = 2, 3\nD: int = 4\nif A:\n    E = 5\nprint(A)\nA = 6"
    assert parameter_names(source) == ["A", "B", "C", "D"]


def test_split_parameters_gives_each_notebook_its_own_knobs():
    split = split_parameters([FAILING, RECORDING], {"SCALE": 5, "THRESHOLD": -1})
    assert split == {FAILING: {"THRESHOLD": -1}, RECORDING: {"SCALE": 5}}


def test_inject_parameters_adds_a_tagged_cell_after_the_parameters_cell():
    nb = nbformat.read(str(RECORDING), as_version=4)
    count = len(nb.cells)
    assert inject_parameters(nb, {}) is None and len(nb.cells) == count
    assert inject_parameters(nb, {"SCALE": 4, "LABEL": "x"}) == 2
    assert nb.cells[2].source.splitlines()[1:] == ["SCALE = 4", "LABEL = 'x'"]
    nb.cells[1].metadata.tags = []
    with pytest.raises(RunnerError, match="no cell tagged 'parameters'"):
        inject_parameters(nb, {"SCALE": 4})


def test_resolve_notebooks_by_number_prefix_or_path(tmp_path):
    for name in ("00_setup", "03_preprocess", "03_preprocess_more", "04_models"):
        nbformat.write(nbformat.v4.new_notebook(), str(tmp_path / f"{name}.ipynb"))
    folder = tmp_path
    assert [p.stem for p in resolve_notebooks(None, folder)][0] == "00_setup"
    assert [p.stem for p in resolve_notebooks(["04", "00"], folder)] == ["04_models", "00_setup"]
    assert resolve_notebooks(["03_preprocess"], folder)[0].stem == "03_preprocess"
    assert resolve_notebooks([str(RECORDING)], folder) == [RECORDING.resolve()]
    with pytest.raises(RunnerError, match="ambiguous"):
        resolve_notebooks(["03"], folder)
    with pytest.raises(RunnerError, match="the course has: 00_setup"):
        resolve_notebooks(["09"], folder)


def fake_report(metrics, status="passed"):
    return {
        "notebooks": {
            "00_setup": {
                "status": status,
                "seconds": 1.0,
                "peak_memory_mb": 10.0,
                "metrics": metrics,
                "parameters": {},
                "error": None,
            }
        },
        "environment": {"profile": "smoke", "started": "now", "seed": 42},
    }


def test_compare_shows_changes_and_what_only_one_run_has(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_report(a, fake_report({"acc": 0.5, "loss": 2.0, "kind": "x"}))
    report_b = fake_report({"acc": 0.75, "kind": "y", "new": 1})
    report_b["notebooks"]["01_more"] = report_b["notebooks"]["00_setup"] | {"metrics": {}}
    report_b["environment"]["seed"] = 7
    write_report(b, report_b)
    table = compare_runs(a, b)
    assert "| 00_setup | acc | 0.5 | 0.75 | +0.25 | +50.0% |" in table
    assert "| 00_setup | loss | 2 | — | — | only in A |" in table
    assert "| 00_setup | kind | x | y | — | changed |" in table
    assert "| 00_setup | new | — | 1 | — | only in B |" in table
    assert "| 01_more | absent | passed | absent -> passed |" in table
    assert "- seed differs: A 42, B 7" in table
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2


def test_results_markdown_tables():
    report = fake_report({"acc": 0.91234}, status="failed")
    report["notebooks"]["00_setup"]["error"] = {
        "name": "ValueError",
        "message": "bad",
        "cell": 5,
        "first_line": "fit()",
    }
    text = results_markdown(report)
    assert "| 00_setup | failed | 1 | 10 | 1 |" in text
    assert "| 00_setup | acc | 0.9123 |" in text
    assert "- 00_setup failed in cell 5 (`fit()`): ValueError: bad" in text


def test_check_and_strip_commands(tmp_path, capsys):
    nb = nbformat.read(str(RECORDING), as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    path = tmp_path / "07_example.ipynb"
    nbformat.write(nb, str(path))
    assert main(["check", str(path)]) == 1
    assert "07_example.ipynb: cell 2 holds outputs" in capsys.readouterr().out
    assert main(["strip", str(path)]) == 0
    assert "07_example.ipynb: stripped" in capsys.readouterr().out
    main(["check", str(path)])
    assert "holds outputs" not in capsys.readouterr().out


def test_peak_memory_of_a_running_process():
    memory = PeakMemory()
    memory.watch(os.getpid())
    assert memory.stop() > 1
