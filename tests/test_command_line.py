"""Refused requests of ``python -m helpers``: one line, exit status 2, nothing created,
and for ``pretrain-worker`` no TensorFlow loaded before the refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.__main__ import main
from helpers.distribute import free_ports, tf_config

ROOT = Path(__file__).resolve().parent.parent
RECORDING = ROOT / "tests" / "fixtures" / "records_metrics.ipynb"

# Each case runs main() in one child process; TF_CONFIG is set per case (None: unset).
PROBE = """
import contextlib, io, json, os, sys
from helpers.__main__ import main
from helpers.distribute import free_ports, tf_config
results = []
for argv, tf_config in json.loads(sys.argv[1]):
    os.environ.pop("TF_CONFIG", None)
    if tf_config is not None:
        os.environ["TF_CONFIG"] = tf_config
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
    results.append([code, err.getvalue()])
print(json.dumps({"results": results, "tensorflow": "tensorflow" in sys.modules}))
"""


def test_worker_refusals_and_help_come_before_tensorflow(tmp_path):
    backup = str(tmp_path / "backup")
    a_file = str(tmp_path / "a-file")
    Path(a_file).write_text("not a folder")
    lonely = tf_config([f"127.0.0.1:{free_ports(1)[0]}", "127.0.0.1:1"], 0)
    worker = ["pretrain-worker", "--backup-dir", backup]
    cases = {
        "help": (["pretrain-worker", "--help"], None, 0, ""),
        "no backup dir": (["pretrain-worker"], None, 2, "--backup-dir"),
        "bad number": ([*worker, "--steps", "many"], None, 2, "--steps"),
        "bad deadline": ([*worker, "--startup-timeout", "-1"], None, 2, "positive"),
        "backup is a file": (["pretrain-worker", "--backup-dir", a_file], None, 2, "is a file"),
        "no shards": ([*worker, "--tfrecords", str(tmp_path / "x")], None, 2, "not a folder"),
        "bad TF_CONFIG": (worker, "{worker", 2, "not JSON"),
        "bad port": (worker, tf_config(["a:x"], 0), 2, "the port a number"),
        "peer never comes": ([*worker, "--startup-timeout", "0.5"], lonely, 1, "127.0.0.1:1"),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([(c[0], c[1]) for c in cases.values()])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard: the cases take a few seconds
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for (name, (_, _, code, words)), (got, err) in zip(cases.items(), out["results"], strict=True):
        assert got == code, (name, err)
        assert words in err, (name, err)
        assert "Traceback" not in err, (name, err)
    assert not out["tensorflow"]
    assert not os.path.exists(backup)


@pytest.mark.parametrize(
    "argv",
    [
        ["run", str(RECORDING), "--out", "{file}"],
        ["run", str(RECORDING), "--out", "{file}/inside"],
        ["pretrain-worker", "--backup-dir", "{tmp}/b", "--out", "{file}"],
        ["pretrain-worker", "--backup-dir", "{tmp}/b", "--report-dir", "{file}/r"],
    ],
)
def test_an_output_path_that_is_a_file_is_refused_in_one_line(tmp_path, capsys, argv):
    (tmp_path / "taken").write_text("a file, not a folder")
    names = {"file": str(tmp_path / "taken"), "tmp": str(tmp_path)}
    assert main([a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: --") and str(tmp_path / "taken") in line
    assert "is a file" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # nothing created


def test_a_read_only_output_folder_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    # root ignores the mode bits, so the check is asked as an ordinary user would find it
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != locked)
    assert main(["run", str(RECORDING), "--out", str(locked / "run")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{locked} is read-only" in line and "give a folder you can write" in line
    assert not (locked / "run").exists()
