"""TensorFlow Lite export (float32 and int8) and predicting from the exported file,
in this process, in a fresh one, and through ``python -m helpers predict``."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import export as ex
from helpers.cards import read_card
from helpers.models import build_model
from helpers.quiet import keras

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["dark", "light", "stripes"]


def _images(n: int, seed: int):
    """Three classes a small CNN learns in seconds: dark, light, vertical stripes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 40, (n, 16, 16, 3)).astype(np.float32)
    x[y == 1] += 180
    x[y == 2, :, ::4] += 200
    return np.clip(x, 0, 255).astype(np.uint8), y


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_model(
        "course_cnn", input_shape=(16, 16, 3), num_classes=3, widths=(8, 16, 16), stem=8,
        augment=False,
    )  # fmt: skip
    x, y = _images(400, 0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x.astype(np.float32), y, epochs=4, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("export")
    paths = {
        kind: ex.export_tflite(
            model,
            folder / f"model_{kind}.tflite",
            kind=kind,
            representative=x[:100],
            class_names=CLASSES,
        )  # fmt: skip
        for kind in ex.KINDS
    }
    return model, paths, folder


@pytest.mark.slow  # converts a model to TFLite three ways (the shared fixture)
def test_float32_matches_keras_and_int8_is_smaller_and_as_accurate(exported):
    model, paths, _ = exported
    x, y = _images(200, 1)
    keras_p = np.asarray(model.predict(x.astype(np.float32), verbose=0))
    f32 = ex.load_predictor(paths["float32"])(x)
    i8 = ex.load_predictor(paths["int8"])(x)
    assert np.abs(f32 - keras_p).max() < 1e-4
    assert np.allclose(i8.sum(axis=1), 1)
    keras_acc = np.mean(keras_p.argmax(1) == y)
    assert keras_acc > 0.95
    assert np.mean(i8.argmax(1) == y) >= keras_acc - 0.01
    # A model this small is mostly the file's fixed part; its weights shrink almost 4x.
    assert paths["float32"].stat().st_size > 1.8 * paths["int8"].stat().st_size
    f32_weights, i8_weights = (ex.weight_bytes(paths[k]) for k in ("float32", "int8"))
    assert 3 * i8_weights < f32_weights < paths["float32"].stat().st_size
    tensors = ex.load_predictor(paths["int8"]).interpreter.get_tensor_details()
    weights = [t for t in tensors if len(t["shape"]) == 4 and t["shape"][0] > 1]
    assert weights and all(t["dtype"] == np.int8 for t in weights)
    meta = read_card(ex.metadata_file(paths["int8"]), "tflite")  # the cards' one reader
    assert meta["class_names"] == CLASSES and meta["input_size"] == [16, 16, 3]
    assert meta["kind"] == "int8"


@pytest.mark.slow  # the shared TFLite fixture
def test_the_exported_file_takes_raw_images_of_any_size(exported):
    model, paths, _ = exported
    x, _ = _images(3, 2)
    big = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)  # 32x32: resized inside
    predictor = ex.load_predictor(paths["float32"])
    assert np.abs(predictor(big) - model.predict(big.astype(np.float32), verbose=0)).max() < 1e-4
    mixed = predictor([x[0], big[1]])  # a list of different sizes, one by one
    assert mixed.shape == (2, 3)
    assert predictor.input_shape == (None, None, None, 3) and predictor.class_names == CLASSES
    with pytest.raises(ex.ExportError, match=r"takes \(n, height, width, 3\)"):
        predictor(x[..., :1])


def test_bad_requests_say_what_to_do(exported, tmp_path):
    model, _, _ = exported
    with pytest.raises(ex.ExportError, match="representative images"):
        ex.export_tflite(model, tmp_path / "m.tflite", kind="int8")
    with pytest.raises(ex.ExportError, match="MODEL.tflite"):
        ex.export_tflite(model, tmp_path / "m.keras")
    with pytest.raises(ex.ExportError, match="kind"):
        ex.to_tflite(model, "float16")
    with pytest.raises(ex.ExportError, match="2 class names"):
        ex.export_tflite(model, tmp_path / "m.tflite", class_names=["a", "b"])
    with pytest.raises(ex.ExportError, match="no file"):
        ex.load_predictor(tmp_path / "missing.tflite")
    assert not (tmp_path / "m.tflite").exists()


def test_a_mixed_bfloat16_model_exports_as_float32():
    # TensorFlow Lite has no bfloat16 kernels: the converter refuses every bf16 op.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model("course_cnn", input_shape=(16, 16, 3), num_classes=3, widths=(8, 8, 8))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    copy = ex.float32_copy(model)
    assert copy is not model and ex.float32_copy(copy) is copy
    x, _ = _images(4, 6)
    blob = ex.to_tflite(model, "float32")
    assert len(blob) > 1000
    expected = np.asarray(copy.predict(x.astype(np.float32), verbose=0))
    assert (
        np.abs(expected - np.asarray(model.predict(x.astype(np.float32), verbose=0))).max() < 0.05
    )


def test_compare_gives_size_latency_and_accuracy_per_format(exported, tmp_path):
    model, paths, _ = exported
    x, y = _images(60, 3)
    rows = ex.compare(model, paths, x, y, runs=5)
    assert [r["format"] for r in rows] == ["keras", "float32", "int8"]
    assert all(r["latency_ms"] > 0 and 0.9 <= r["accuracy"] <= 1 for r in rows)
    assert (
        rows[1]["size_bytes"] == paths["float32"].stat().st_size and rows[0]["size_bytes"] is None
    )
    assert (
        rows[2]["weight_bytes"] == ex.weight_bytes(paths["int8"])
        and rows[0]["weight_bytes"] is None
    )


@pytest.mark.slow  # a fresh Python process
def test_a_fresh_process_predicts_the_same_without_tensorflow(exported):
    _, paths, folder = exported
    x, _ = _images(4, 4)
    np.save(folder / "x.npy", x)
    code = (
        "import sys, numpy as np; from helpers.export import load_predictor; "
        f"p = load_predictor({str(paths['int8'])!r})(np.load({str(folder / 'x.npy')!r})); "
        f"np.save({str(folder / 'p.npy')!r}, p); print('tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"  # LiteRT alone ran it
    assert np.allclose(np.load(folder / "p.npy"), ex.load_predictor(paths["int8"])(x), atol=1e-6)


def test_helpers_predict_accepts_the_tflite_file(exported, tmp_path):
    _, paths, _ = exported
    x, y = _images(3, 5)
    files = []
    for k, image in enumerate(x):
        files.append(tmp_path / f"{k}.png")
        Image.fromarray(image).save(files[-1])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    out = subprocess.run(
        [sys.executable, "-m", "helpers", "predict", str(paths["int8"]), str(tmp_path), "--csv"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr  # one file refused, the rest predicted
    rows = [line.split(",") for line in out.stdout.strip().splitlines()[1:]]
    assert [Path(r[0]).name for r in rows] == ["0.png", "1.png", "2.png"]
    assert [r[1] for r in rows] == [CLASSES[k] for k in y]
    assert "refused" in out.stderr and "broken.png" in out.stderr


# -- a .tflite file or MODEL.json that is not what it claims: refused naming the file ------


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        ("{not json", "is not valid JSON"),
        ("[]", "must be a JSON object, not a list []"),
        ('{"class_names": "abc"}', 'class_names must be a list of distinct, non-empty strings'),
        ('{"class_names": ["a", "b"]}', "says 2 class names, but m.tflite gives 3 outputs"),
        ('{"input_size": 16}', "input_size must be a list of 3 positive integers"),
        ('{"input_size": [16, 16, 1]}', "says 1 channel(s), but m.tflite takes 3"),
        ('{"num_classes": "3"}', 'num_classes must be a positive integer, not a string "3"'),
        ('{"kind": "float16"}', "kind must be one of ['float32', 'int8']"),
    ],
    ids=[
        "malformed", "a list", "names a string", "too few names", "size a number",
        "other channels", "count a string", "unknown kind",
    ],
)  # fmt: skip
def test_a_model_json_that_is_not_what_it_claims_is_refused(exported, tmp_path, meta, reason):
    _, paths, _ = exported
    (tmp_path / "m.tflite").write_bytes(paths["float32"].read_bytes())
    (tmp_path / "m.json").write_text(meta)
    with pytest.raises(ex.ExportError) as err:
        ex.load_predictor(tmp_path / "m.tflite")
    assert reason in str(err.value) and "m.json" in str(err.value), str(err.value)


def test_helpers_predict_refuses_a_bad_model_json_in_one_line(exported, tmp_path):
    _, paths, _ = exported
    (tmp_path / "m.tflite").write_bytes(paths["float32"].read_bytes())
    (tmp_path / "m.json").write_text('{"class_names": "abc", "input_size": 16}')
    Image.fromarray(_images(1, 7)[0][0]).save(tmp_path / "a.png")
    out = subprocess.run(
        [sys.executable, "-m", "helpers", "predict", str(tmp_path / "m.tflite"),
         str(tmp_path / "a.png")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and out.stdout == "" and len(lines) == 1, out.stderr
    assert str(tmp_path / "m.json") in lines[0] and "class_names" in lines[0]
    assert "input_size" in lines[0]  # every wrong field, in the one line


def test_a_tflite_feature_extractor_is_not_made_to_look_like_probabilities(tmp_path):
    from helpers.predict import ModelUnusable, predict_files

    inputs = keras.Input((None, None, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Resizing(8, 8)(inputs))
    features = keras.layers.Dense(5, activation="relu", bias_initializer="ones")(x)
    path = ex.export_tflite(keras.Model(inputs, features), tmp_path / "features.tflite")
    predictor = ex.load_predictor(path)
    x, _ = _images(2, 8)
    assert (predictor(x).sum(axis=1) >= 5).all()  # returned as computed, not divided by its sum
    Image.fromarray(x[0]).save(tmp_path / "a.png")
    with pytest.raises(ModelUnusable, match="not class probabilities"):
        predict_files(predictor, [tmp_path / "a.png"], source=str(path))


def test_a_file_that_is_no_tflite_model_is_refused_naming_it(tmp_path):
    (tmp_path / "text.tflite").write_text("just some text\n")
    with pytest.raises(ex.ExportError, match="text.tflite is not a TensorFlow Lite model"):
        ex.load_predictor(tmp_path / "text.tflite")
    (tmp_path / "garbage.tflite").write_bytes(b"\x00" * 4 + b"TFL3" + b"\xff" * 512)
    with pytest.raises(ex.ExportError, match="garbage.tflite: TensorFlow Lite cannot load it"):
        ex.load_predictor(tmp_path / "garbage.tflite")
    (tmp_path / "folder.tflite").mkdir()
    with pytest.raises(ex.ExportError, match="not a regular file"):
        ex.load_predictor(tmp_path / "folder.tflite")
