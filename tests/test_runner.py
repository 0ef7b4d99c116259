"""The headless runner (``python -m helpers run``) and its reports.

One real run of the command line, shared by several tests, executes a deliberately
failing fixture first, then the fastest real course notebooks, then a fixture that
records metrics and draws a figure: so it shows that a failure is reported by notebook
and cell, that the run goes on after it, and that results.json carries what each
notebook recorded. nbval already executes every course notebook, so only the fastest
ones run here, to keep CI time down. The rest are unit tests that start no kernel.
"""

import ast
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
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
    check_parameter_types,
    compare_runs,
    inject_parameters,
    parameter_defaults,
    parameter_names,
    parse_parameters,
    resolve_notebooks,
    results_markdown,
    run_course,
    run_notebook,
    split_parameters,
    write_report,
)
from helpers.runner.kernel import handling_sigint

FIXTURES = Path(__file__).parent / "fixtures"
FAILING = FIXTURES / "fails_on_purpose.ipynb"
RECORDING = FIXTURES / "records_metrics.ipynb"
SLEEPING = FIXTURES / "sleeps.ipynb"
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_the_failing_notebook_keeps_what_it_recorded_and_its_outputs(cli_run):
    _, out, report = cli_run
    assert report["notebooks"]["fails_on_purpose"]["metrics"] == {"before_failure": 1}
    executed = nbformat.read(str(out / "fails_on_purpose.ipynb"), as_version=4)
    assert executed.cells[3].outputs[0]["ename"] == "AssertionError"
    assert executed.cells[4].execution_count is None


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_figures_are_saved_as_png(cli_run):
    _, out, report = cli_run
    assert report["notebooks"]["records_metrics"]["figures"] == [
        "figures/records_metrics/cell03_1.png"
    ]
    assert (out / "figures/records_metrics/cell03_1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
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


# -- SIGINT to the runner alone ---------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_sigint_to_the_runner_alone_interrupts_the_kernel_and_stops_the_run(tmp_path, inherited):
    """``kill -INT <runner>``, as a scheduler sends it: the kernel runs in a session of its
    own, so only the runner hears it. A wrapper script that started the runner with ``&``
    hands it SIGINT ignored (``trap '' INT`` does the same here)."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "helpers", "run", str(SLEEPING), str(RECORDING)]
    command += ["--profile", "smoke", "--out", str(out)]
    if inherited == "ignored":
        command = ["bash", "-c", "trap '' INT; exec \"$@\"", "runner", *command]
    runner = subprocess.Popen(
        command,
        cwd=project_root(),
        env=dict(os.environ, CI="true"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        metrics = out / "sleeps.metrics.jsonl"
        deadline = time.monotonic() + 300
        while not metrics.exists() or not metrics.read_text().strip():
            assert runner.poll() is None, runner.communicate()[0]
            assert time.monotonic() < deadline, "the fixture's kernel never started"
            time.sleep(0.2)
        kernel_pid = json.loads(metrics.read_text().splitlines()[0])["value"]
        runner.send_signal(signal.SIGINT)
        output, _ = runner.communicate(timeout=60)  # a generous bound for a loaded machine
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 130, output
    report = json.loads((out / "results.json").read_text())
    assert list(report["notebooks"]) == ["sleeps"]  # the next notebook never started
    result = report["notebooks"]["sleeps"]
    assert result["status"] == "interrupted" and result["error"]["name"] == "KeyboardInterrupt"
    assert result["metrics"] == {"kernel_pid": kernel_pid}  # kept; the last cell never ran
    assert (out / "sleeps.ipynb").exists()
    deadline = time.monotonic() + 30
    while _alive(kernel_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(kernel_pid), "the kernel outlived the runner"


def test_the_sigint_handler_raises_only_while_cells_run_and_is_put_back():
    before = signal.getsignal(signal.SIGINT)
    with handling_sigint() as interrupts:
        assert signal.getsignal(signal.SIGINT) is interrupts
        with handling_sigint() as inner:  # run_notebook inside run_course: the same one
            assert inner is interrupts
        with pytest.raises(KeyboardInterrupt), interrupts.armed(None):
            signal.raise_signal(signal.SIGINT)
            time.sleep(5)  # never reached: the handler raises
        signal.raise_signal(signal.SIGINT)  # between cells: remembered, not raised
        assert interrupts.requested
        with pytest.raises(KeyboardInterrupt), interrupts.armed(None):
            pass  # a request made before the cells start stops them before the first
    assert signal.getsignal(signal.SIGINT) is before


def test_an_inherited_ignored_sigint_is_handled_during_a_run_and_restored_after():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with handling_sigint() as interrupts:
            assert signal.getsignal(signal.SIGINT) is interrupts
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


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


def test_a_value_of_the_wrong_type_is_refused_with_the_knob_and_its_type(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["run", str(RECORDING), "-p", "SCALE=oops", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "-p SCALE='oops' is a str, but records_metrics expects int for SCALE" in err
    assert not out.exists()


CELL = """\
SEED = 42
EPOCHS = P.choose(smoke=1, laptop=10, full=40)
LR = 1e-3
LIMIT = None
SIZE = P.choose(smoke=None, laptop=64, full=128)
DATA_DIR = str(data_dir("x"))
SHAPE = (32, 32)
NAME = "camera"
FLAG = P.choose(smoke=False, laptop=True, full=True)
COMPUTED = 2 ** SEED
"""


@pytest.mark.parametrize(
    "name, value",
    [
        ("EPOCHS", 5),
        ("LR", 1),  # an int where a float is expected is fine
        ("LIMIT", 100),  # a default of None takes anything
        ("SIZE", None),
        ("SIZE", 96),
        ("DATA_DIR", "/data/x"),
        ("SHAPE", [64, 64]),  # a list for a tuple
        ("NAME", "astronaut"),
        ("FLAG", False),
        ("COMPUTED", "anything"),  # computed: nothing to check against
    ],
)
def test_values_that_fit_the_default_pass(name, value):
    assert check_parameter_types(Path("09_x.ipynb"), CELL, {name: value}) == []


@pytest.mark.parametrize(
    "name, value, wanted",
    [
        ("EPOCHS", "oops", "expects int for EPOCHS"),
        ("EPOCHS", 2.5, "expects int"),
        ("EPOCHS", True, "expects int"),  # a bool is not a count
        ("LR", "fast", "expects float"),
        ("SIZE", "big", "expects None or int"),
        ("NAME", 3, "expects str"),
        ("FLAG", 1, "expects bool"),
        ("SHAPE", 32, "expects tuple"),
    ],
)
def test_values_that_do_not_fit_are_named_with_the_expected_type(name, value, wanted):
    [problem] = check_parameter_types(Path("09_x.ipynb"), CELL, {name: value})
    assert problem.startswith(f"-p {name}={value!r} is ") and wanted in problem
    assert f"(its parameters cell: {name} = " in problem


def test_every_course_knob_accepts_its_own_defaults():
    for path in course_notebooks():
        nb = nbformat.read(str(path), as_version=4)
        source = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        for name, (types, text) in parameter_defaults(source).items():
            assert types is None or types, (path.name, name)
            try:
                value = ast.literal_eval(text)
            except ValueError:
                continue
            assert check_parameter_types(path, source, {name: value}) == [], (path.name, name)


# -- infinite and NaN numbers ---------------------------------------------------------


@pytest.mark.parametrize(
    "typed", ["1e999", "-1e999", "[0.1, 1e999]", "(1, (2, -1e999))", "{'lr': 1e999}", "1e999j"]
)
def test_infinite_numbers_are_refused_when_read(typed):
    with pytest.raises(RunnerError) as err:
        parse_parameters([f"LR={typed}"])
    message = str(err.value)
    assert f"-p LR={typed} reads as " in message and "finite" in message


def test_an_infinite_value_is_refused_before_a_kernel_starts(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["run", str(RECORDING), "-p", "SCALE=1e999", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "-p SCALE=1e999 reads as inf" in err and "finite" in err
    assert not out.exists()  # refused up front: no kernel, no report


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), [1.0, float("nan")]])
def test_non_finite_values_given_through_the_api_are_refused(value):
    [problem] = check_parameter_types(Path("09_x.ipynb"), CELL, {"LIMIT": value})
    assert problem.startswith("-p LIMIT=") and "finite" in problem and "09_x" in problem


@pytest.mark.parametrize("text", ["nan", "inf", "-Infinity", "1e999"])
def test_text_that_spells_a_non_finite_number_is_refused_for_a_number_knob(text):
    [problem] = check_parameter_types(Path("09_x.ipynb"), CELL, {"LR": text})
    assert "finite" in problem and "LR = 1e-3" in problem
    assert check_parameter_types(Path("09_x.ipynb"), CELL, {"NAME": text}) == []  # a str knob


def test_text_shaped_like_a_literal_but_not_one_stays_text():
    # ast.literal_eval raises TypeError for these, which used to escape as a traceback.
    assert parse_parameters(["X={[1]: 2}", "Y={{1}}"]) == {"X": "{[1]: 2}", "Y": "{{1}}"}
    assert parse_parameters(["X=nan"]) == {"X": "nan"}  # text, checked against the knob


ALLOCATE = """\
import sys, time
block = bytearray(int(sys.argv[1]) * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1  # touch every page, so it is resident
print("ready", flush=True)
time.sleep(30)
"""


def peak_of_child(megabytes):
    child = subprocess.Popen(
        [sys.executable, "-c", ALLOCATE, str(megabytes)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        memory = PeakMemory(interval=0.05)
        memory.watch(child.pid)
        memory.sample()
        return memory.stop()
    finally:
        child.kill()
        child.wait()


def test_peak_memory_sees_what_the_kernel_process_allocated():
    small, large = peak_of_child(0), peak_of_child(300)
    assert large >= 300 > small
    assert large - small == pytest.approx(300, abs=30)


def test_peak_memory_without_vmhwm_samples_with_psutil(monkeypatch):
    from helpers.runner import kernel

    monkeypatch.setattr(kernel, "_vm_hwm_bytes", lambda pid: None)  # as on macOS
    assert peak_of_child(200) >= 200


# -- the README's notebook map is generated from measured runs ---------------------------

MAP = """\
# Course

| notebook | what you learn | smoke | laptop | laptop peak MB |
|---|---|---|---|---|
| `00_setup` | check the install | 0.1 min | 0.1 min | 1 |
| `01_acquire` | get images | 3 s | typed by hand | 2 |

Minutes are wall times.
"""


def timing_report(profile, rows):
    notebooks = {
        name: {"status": status, "seconds": seconds, "peak_memory_mb": peak}
        for name, (status, seconds, peak) in rows.items()
    }
    env = {"profile": profile, "git_commit": "abc", "started": "today"}
    env["device"] = {"cpu": "AMD EPYC", "cpu_cores": 2}
    return {"notebooks": notebooks, "environment": env}


def course_like(tmp_path, names):
    paths = []
    for name in names:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {name[:2]} · Title of {name}\n\nText.")]
        nbformat.write(nb, str(tmp_path / f"{name}.ipynb"))
        paths.append(tmp_path / f"{name}.ipynb")
    return paths


def test_timings_fill_the_map_and_add_a_row_for_a_new_notebook(tmp_path):
    from helpers.runner import readme_timing_problems, readme_with_timings, record_timings

    smoke = timing_report("smoke", {"00_setup": ("passed", 4.2, 700.0)})
    laptop = timing_report(
        "laptop",
        {
            "00_setup": ("passed", 12.4, 810.4),
            "01_acquire": ("failed", 3.0, 500.0),  # a failure's time is not the lesson's
            "06_cnn": ("passed", 130.0, 1290.0),
        },
    )
    record = record_timings([smoke, laptop], tmp_path / "minutes.json")
    assert record["laptop"]["00_setup"]["peak_memory_mb"] == 810.4
    assert "01_acquire" not in record["laptop"]
    assert json.loads((tmp_path / "minutes.json").read_text()) == record

    notebooks = course_like(tmp_path, ["00_setup", "01_acquire", "06_cnn"])
    text = readme_with_timings(MAP, record, notebooks)
    assert "| `00_setup` | check the install | 4 s | 12 s | 810 |" in text
    assert "| `01_acquire` | get images | — | — | — |" in text  # nothing measured: no figure
    assert text.splitlines()[-3] == "| `06_cnn` | Title of 06_cnn | — | 2.2 min | 1290 |"
    assert text.endswith("Minutes are wall times.\n")
    assert readme_timing_problems(MAP, record, notebooks) == [
        "the notebook map has no row for `06_cnn`"
    ]
    assert readme_timing_problems(text, record, notebooks) == []


def test_a_hand_edited_time_in_the_map_is_caught(tmp_path):
    from helpers.runner import readme_timing_problems, readme_with_timings

    record = {"laptop": {"00_setup": {"seconds": 90.0, "peak_memory_mb": 1000.0}}}
    notebooks = course_like(tmp_path, ["00_setup"])
    text = readme_with_timings(
        MAP.replace("| `01_acquire` | get images | 3 s | typed by hand | 2 |\n", ""),
        record,
        notebooks,
    )
    assert "| 1.5 min | 1000 |" in text
    [problem] = readme_timing_problems(text.replace("1.5 min", "0.4 min"), record, notebooks)
    assert "0.4 min" in problem and "should be" in problem and "1.5 min" in problem


def test_the_readme_map_agrees_with_the_last_measured_runs():
    """README.md's notebook map is generated: rerun `python -m helpers timings RUN...` after
    a smoke and a laptop run to refresh it, never edit its times by hand."""
    from helpers.runner import MINUTES_FILE, readme_timing_problems

    record = json.loads((project_root() / MINUTES_FILE).read_text(encoding="utf-8"))
    readme = (project_root() / "README.md").read_text(encoding="utf-8")
    assert readme_timing_problems(readme, record) == []
