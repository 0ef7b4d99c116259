"""python -m helpers predict: the saved model predicts from raw files, in a fresh process
exactly as in this one; a corrupt file is refused by name and the rest go on. A model,
side-car or output that is not what it claims is refused in one line naming the file
(exit status 2); special files are refused before they are opened; results stream."""

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import models as M
from helpers import predict as PR
from helpers.export import PREDICT_LOADERS
from helpers.quiet import keras

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


@pytest.mark.slow  # a fresh Python process
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


@pytest.mark.slow
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


# -- models and side-cars that are not what they claim: one line naming the file, exit 2 --


def _tiny(tail: str = "softmax", channels: int = 3, outputs: int = 3):
    """A few layers, built in milliseconds; ``tail`` picks what the model gives."""
    inputs = keras.Input((None, None, channels))
    x = keras.layers.Resizing(8, 8)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    if tail == "feature map":
        return keras.Model(inputs, x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    tails = {
        "softmax": lambda: keras.layers.Dense(outputs, activation="softmax"),
        # A backbone's head: every feature at least 1, so they never sum to 1 by chance.
        "features": lambda: keras.layers.Dense(outputs, activation="relu", bias_initializer="ones"),
        "logits": lambda: keras.layers.Dense(outputs, bias_initializer="ones"),
        "sigmoid": lambda: keras.layers.Dense(1, activation="sigmoid"),
    }
    return keras.Model(inputs, tails[tail]()(x))


def _image(path, size=(12, 12), mode="RGB"):
    pixels = np.random.default_rng(3).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def _predict(capsys, *args):
    code = PR.main([str(a) for a in args], loaders=PREDICT_LOADERS)
    out, err = capsys.readouterr()
    return code, out, err


def _refused(capsys, model, *args, names=None):
    """The one error line of a run refused for its model (exit status 2), which names
    ``names`` (default: the model file)."""
    code, out, err = _predict(capsys, model, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert str(names or model) in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def image(tmp_path):
    return _image(tmp_path / "a.png")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"this is a text file, not a model\n", "not a Keras model"),
        (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not a Keras"),
        (b"", "not a Keras model"),
    ],
    ids=["text", "random bytes", "empty"],
)
def test_a_file_named_keras_that_is_no_archive_is_refused(tmp_path, capsys, image, content, reason):
    (tmp_path / "m.keras").write_bytes(content)
    assert reason in _refused(capsys, tmp_path / "m.keras", image)


def test_a_zip_without_a_model_inside_is_refused(tmp_path, capsys, image):
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert "without config.json" in _refused(capsys, tmp_path / "m.keras", image)
    with zipfile.ZipFile(tmp_path / "n.keras", "w") as archive:
        archive.writestr("config.json", "{not json")
    assert "Keras cannot load it" in _refused(capsys, tmp_path / "n.keras", image)


def test_a_config_that_expands_to_600_mb_is_refused_before_keras_reads_it(
    tmp_path, capsys, image, monkeypatch
):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("config.json", "w", force_zip64=True) as fh:
            fh.write(b'{"class_name": "')
            for _ in range(36):
                fh.write(b" " * 2**24)
            fh.write(b'"}')
    assert path.stat().st_size < 5_000_000  # small on disk, 600 MB expanded

    def never(*args, **kwargs):
        raise AssertionError("Keras was handed the archive")

    monkeypatch.setattr(keras.models, "load_model", never)
    line = _refused(capsys, path, image)
    assert "config.json expands to 603,979," in line and "not loaded" in line


def test_a_lambda_layer_is_refused_by_safe_mode_in_one_line(tmp_path, capsys, image):
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(keras.layers.Resizing(8, 8)(inputs))
    x = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(inputs, x).save(tmp_path / "lambda.keras")
    assert "Keras cannot load it" in _refused(capsys, tmp_path / "lambda.keras", image)


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        ("feature map", "gives outputs of shape (None, 6, 6, 4)"),
        ("sigmoid", "gives outputs of shape (None, 1)"),
        ("features", "not class probabilities"),
        ("logits", "not class probabilities"),
    ],
)
def test_a_model_that_gives_no_probabilities_is_refused(tmp_path, capsys, image, tail, reason):
    outputs = 204 if tail == "features" else 3  # a backbone's 204 features, as in the issue
    _tiny(tail, outputs=outputs).save(tmp_path / "m.keras")
    code, out, err = _predict(capsys, tmp_path / "m.keras", image, "--csv")
    assert code == 2 and reason in err and str(tmp_path / "m.keras") in err, err
    assert out.strip() in ("", "file,class,probability")  # no row of "probabilities"


def test_outputs_must_be_probabilities_row_by_row():
    assert PR.probability_problem([0.2, 0.3, 0.5]) is None
    assert "summing to 204" in PR.probability_problem(np.ones(204))
    assert "negative" in PR.probability_problem([1.5, -0.5])
    assert "not finite" in PR.probability_problem([np.nan, 1.0])
    assert "shape" in PR.probability_problem(np.full((2, 2), 0.25))


def test_a_model_that_takes_no_images_is_refused_before_any_file_is_read(tmp_path, capsys, image):
    flat = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    flat.save(tmp_path / "flat.keras")
    assert "takes inputs of shape (None, 8)" in _refused(capsys, tmp_path / "flat.keras", image)
    _tiny(channels=4).save(tmp_path / "rgba.keras")
    assert "(None, None, None, 4)" in _refused(capsys, tmp_path / "rgba.keras", image)


@pytest.mark.parametrize(
    ("side_car", "reason"),
    [
        ('"abc"', 'class_names must be a list of distinct, non-empty strings, not a string "abc"'),
        ("[1, 2, 3]", "not a list [1, 2, 3]"),
        ('["ant", "ant", "cow"]', "distinct"),
        ('["ant", "", "cow"]', "non-empty"),
        ('{"class_names": ["ant", "bee", "cow"]}', "not an object"),
        ("null", "not null"),
        ("[\"ant\", \"bee\"", "not valid JSON"),
        ('["ant", "bee"]', "2 class names"),
        ('["a", "b", "c", "d"]', "4 class names"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=[
        "a string", "numbers", "twice a name", "an empty name", "an object", "null",
        "malformed", "too few", "too many", "nested",
    ],
)  # fmt: skip
def test_a_classes_file_that_is_not_one_name_per_output_is_refused(
    tmp_path, capsys, image, side_car, reason
):
    _tiny().save(tmp_path / "m.keras")
    side_car_path = PR.classes_file(tmp_path / "m.keras")
    side_car_path.write_text(side_car)
    count = "class names" in reason  # one name per output: the model's count is named
    line = _refused(capsys, tmp_path / "m.keras", image, names=None if count else side_car_path)
    assert reason in line and ("gives 3 outputs" in line or not count), line


def test_a_classes_file_that_is_no_regular_file_or_too_big_is_refused(tmp_path, capsys, image):
    _tiny().save(tmp_path / "m.keras")
    PR.classes_file(tmp_path / "m.keras").mkdir()
    line = _refused(
        capsys, tmp_path / "m.keras", image, names=PR.classes_file(tmp_path / "m.keras")
    )
    assert "not a regular file" in line
    _tiny().save(tmp_path / "n.keras")
    big = PR.classes_file(tmp_path / "n.keras")
    big.write_text('["a"' + ', "b"' * 1_500_000 + "]")
    assert "more than a card's limit" in _refused(capsys, tmp_path / "n.keras", image, names=big)


@pytest.mark.parametrize("given", ["ant,ant,cow", "ant,,cow", "", "ant,bee"])
def test_classes_given_on_the_command_line_are_checked_the_same_way(tmp_path, capsys, image, given):
    _tiny().save(tmp_path / "m.keras")
    code, _, err = _predict(capsys, tmp_path / "m.keras", image, "--classes", given)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--classes: class_names must be" in err or "2 class names" in err, err


def test_a_model_path_that_is_no_regular_file_or_no_model_kind_is_refused(tmp_path, capsys, image):
    (tmp_path / "folder.keras").mkdir()
    assert "not a regular file" in _refused(capsys, tmp_path / "folder.keras", image)
    _tiny().save(tmp_path / "m.keras")
    (tmp_path / "m.h5").write_bytes((tmp_path / "m.keras").read_bytes())
    assert "predict reads .keras or .tflite files" in _refused(capsys, tmp_path / "m.h5", image)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (bytes(np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8)), "TFL3"),
        (b"\x00\x00\x00\x00TFL3" + bytes(range(256)) * 8, "TensorFlow Lite cannot load it"),
        (b"hello", "TFL3"),
    ],
    ids=["random bytes", "identifier, then garbage", "text"],
)
def test_a_file_named_tflite_that_is_no_model_is_refused(tmp_path, capsys, image, content, reason):
    (tmp_path / "m.tflite").write_bytes(content)
    assert reason in _refused(capsys, tmp_path / "m.tflite", image)


def test_save_model_refuses_names_predict_would_refuse(tmp_path):
    model = _tiny()
    with pytest.raises(ValueError, match="2 class names for a model of 3 outputs"):
        PR.save_model(model, tmp_path / "m.keras", ["a", "b"])
    with pytest.raises(ValueError, match="distinct"):
        PR.save_model(model, tmp_path / "m.keras", ["a", "a", "b"])
    assert not (tmp_path / "m.keras").exists()
    PR.save_model(model, tmp_path / "m.keras", ("a", "b", "c"))
    assert PR.read_class_names(tmp_path / "m.keras") == ["a", "b", "c"]


# -- inputs the gate lets through wrongly; results stream ---------------------------------


def test_a_16_bit_png_is_predicted_on_scaled_pixels(tmp_path):
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    gray = PR.load_pixels(tmp_path / "deep.png", 1)[..., 0]
    assert (gray == 255).mean() < 0.01 and abs(int(gray.mean()) - 127) <= 1


def test_results_come_one_by_one_as_each_file_is_done(tmp_path):
    files = [_image(tmp_path / "a.png"), _image(tmp_path / "b.png")]
    handed = []

    def one_by_one():
        for path in files:
            handed.append(path)
            yield path

    results = PR.iter_predictions(_tiny(), one_by_one())
    first = next(results)
    assert first[0] == str(files[0]) and first[1] is not None and handed == files[:1]


@pytest.mark.slow  # a fresh Python process
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_named_png_is_refused_and_the_rest_are_printed_in_order(tmp_path):
    _tiny().save(tmp_path / "m.keras")
    folder = tmp_path / "images"
    folder.mkdir()
    good = [_image(folder / "a.png"), _image(folder / "c.png", mode="L")]
    os.mkfifo(folder / "b.png")  # inside a folder: named, not passed over
    os.mkfifo(tmp_path / "x.png")  # named on the command line
    done = subprocess.run(
        [sys.executable, "-m", "helpers", "predict", str(tmp_path / "m.keras"), str(folder),
         str(tmp_path / "x.png")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout
    lines = [x for x in done.stdout.splitlines() if x.startswith(("refused ", str(tmp_path)))]
    named = [
        Path(x[len("refused ") :].split(": ")[0] if x.startswith("refused ") else x.split("\t")[0])
        for x in lines
    ]
    # One stream, in file order: each line was printed (and flushed) as it was known.
    assert [path.name for path in named] == ["a.png", "b.png", "c.png", "x.png"], lines
    assert lines[1].startswith("refused") and "FIFO" in lines[1]
    assert lines[3].startswith("refused") and "FIFO" in lines[3]
    assert all(str(path) in done.stdout for path in good)


def test_the_same_validator_reads_a_backbone_card(tmp_path):
    from helpers import cards

    card = {"input_size": 32, "channels": "3", "preprocessing": "unit"}
    (tmp_path / cards.CARD_JSON).write_text(json.dumps(card))
    with pytest.raises(cards.CardMismatch) as err:
        cards.read_card(tmp_path)
    message = str(err.value)
    assert "input_size must be a list of 2 positive integers [height, width], not a number 32" in (
        message
    )
    assert 'channels must be 1 (grayscale) or 3 (RGB), not a string "3"' in message
    (tmp_path / cards.CARD_JSON).write_text("{")
    with pytest.raises(cards.CardMismatch, match="card.json is not valid JSON"):
        cards.read_card(tmp_path)
