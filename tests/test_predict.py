"""python -m helpers predict: the saved model predicts from raw files, in a fresh process
exactly as in this one; a corrupt file is refused by name and the rest go on."""

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from helpers import models as M
from helpers import predict as PR

ROOT = Path(__file__).resolve().parent.parent


def _saved(tmp_path):
    # Untrained: its near-uniform probabilities still differ from file to file.
    model = M.build_model("articles_cnn", input_shape=(16, 16, 3), num_classes=3)
    return model, PR.save_model(model, tmp_path / "m.keras", ["ant", "bee", "cow"])


def _images(folder, n=5):
    folder.mkdir()
    rng = np.random.default_rng(1)
    files = []
    for i in range(n):
        size = (16, 16) if i % 2 else (23, 31)  # the model resizes the odd ones itself
        mode = "RGB" if i != 3 else "L"
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        files.append(folder / f"{i}.png")
        Image.fromarray(pixels).convert(mode).save(files[-1])
    return files


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "helpers", "predict", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=240,
    )  # fmt: skip


def test_a_fresh_process_predicts_what_this_one_does_and_refuses_a_corrupt_file(tmp_path):
    model, path = _saved(tmp_path)
    files = _images(tmp_path / "images")
    (tmp_path / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    rows, refused = PR.predict_files(model, files, ["ant", "bee", "cow"])
    assert not refused and len(rows) == 5
    assert (
        len({r["class"] for r in rows}) > 1 or len({round(r["probability"], 6) for r in rows}) > 1
    )
    done = _run(path, tmp_path / "images", "--csv")
    assert done.returncode == 1, done.stderr  # one file refused
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [Path(r["file"]).name for r in table] == [f.name for f in files]
    for mine, theirs in zip(rows, table, strict=True):
        assert theirs["class"] == mine["class"]
        assert abs(float(theirs["probability"]) - mine["probability"]) < 1e-5
    assert "refused" in done.stderr and "broken.jpg" in done.stderr


def test_plain_output_a_single_file_and_bad_arguments(tmp_path):
    _, path = _saved(tmp_path)
    files = _images(tmp_path / "images", n=2)
    done = _run(path, files[0])
    assert done.returncode == 0 and done.stdout.count("\t") == 2
    assert done.stdout.split("\t")[1] in ("ant", "bee", "cow")
    missing = _run(tmp_path / "nope.keras", files[0])
    assert missing.returncode == 2 and "no model file" in missing.stderr
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    only_bad = _run(path, tmp_path / "bad.png")
    assert only_bad.returncode == 2 and "bad.png" in only_bad.stderr


def test_importing_the_command_line_loads_no_tensorflow():
    code = "import sys, helpers.__main__, helpers.predict; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
