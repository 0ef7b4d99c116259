"""The exercise checks of notebooks 00, 01, 03 and 05 accept the worked solutions' answers.

Where a solution computes the value a learner would type, it goes to ``check`` as it is,
so the checks and the solutions cannot drift apart; where the answer is a choice, the
solution's figures are asserted to support it first.
"""

import pytest

from helpers.config import DATA_DIR_ENV
from helpers.exercises import check
from solutions import s00_setup, s01_acquire, s03_preprocess_augment, s05_convolution

pytestmark = pytest.mark.slow  # the solutions train, serve downloads and decode photos


def _right(notebook, number, answer):
    verdict = check(notebook, number, answer)
    assert verdict.right, verdict.message


def _hint(notebook, number, answer):
    verdict = check(notebook, number, answer)
    assert verdict.status == "wrong", verdict.message
    return verdict.message


def test_00_setup(tmp_path, monkeypatch):
    knobs = s00_setup.exercise_1()
    assert knobs == {"EPOCHS": (3, 10), "MIN_ACCURACY": (0.5, 0.9)}
    _right("00", 1, set(knobs))
    assert "SEED" in _hint("00", 1, {"EPOCHS", "MIN_ACCURACY", "SEED"})
    assert s00_setup.exercise_2() is False  # without re-seeding the draws differ: 'a'
    _right("00", 2, "a")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "elsewhere"))
    assert s00_setup.exercise_3(tmp_path / "elsewhere") == tmp_path / "elsewhere"
    _right("00", 3, str(tmp_path / "elsewhere"))
    assert "rerun the parameters cell" in _hint("00", 3, str(tmp_path))
    monkeypatch.delenv(DATA_DIR_ENV)
    assert "not set in this kernel" in _hint("00", 3, str(tmp_path / "elsewhere"))
    accuracy = s00_setup.exercise_4(epochs=30)
    assert accuracy["train_accuracy"] >= accuracy["test_accuracy"] - 0.01
    assert accuracy["train_accuracy"] > 0.97
    _right("00", 4, (accuracy["train_accuracy"], accuracy["test_accuracy"]))


def test_01_acquire(tmp_path):
    runs = s01_acquire.exercise_1(tmp_path, n=6)
    assert runs["first_stored"] == 6 and runs["first_requests"] >= 6
    assert runs["second_stored"] == 0 and runs["second_requests"] == 0
    assert runs["second_already"] == 6
    _right("01", 1, (runs["second_stored"], runs["second_requests"], "a"))
    notes = s01_acquire.exercise_2(tmp_path)
    assert list(notes) == ["cross/phone.jpg"] and "orientation 6" in notes["cross/phone.jpg"]
    assert all("applied EXIF orientation" in note for note in notes.values())  # 'b'
    _right("01", 2, "b")
    small = s01_acquire.exercise_3(tmp_path)
    assert small["stored"] >= 1 and "fault/huge" in small["failed"]
    assert all("too large" in reason for reason in small["failed"].values())
    _right("01", 3, len(small["failed"]))
    assert "only files over 10,000 bytes" in _hint("01", 3, len(small["failed"]) + 1)
    assert len(s01_acquire.exercise_4(n=5)) == 5
    _right("01", 4, "author")
    assert "credit line" in _hint("01", 4, "attribution")
    strict = s01_acquire.exercise_5(tmp_path)
    assert [url.rsplit("/", 2)[-2:] for url in strict["strict_rejects"]] == [
        ["fault", "wrong-type"]
    ]
    assert len(strict["kept"]) == 1
    _right("01", 5, (len(strict["strict_rejects"]), "b"))


def test_03_preprocess_augment(tmp_path):
    modes = s03_preprocess_augment.exercise_1()
    assert modes["pad"]["rows_kept"] == 1 and modes["crop"]["rows_kept"] < 1  # 'pad'
    assert modes["crop"]["rows_kept"] < 0.8 and modes["crop"]["padding"] == 0
    assert 0.2 < modes["pad"]["padding"] < 0.3
    _right("03", 1, "pad")
    assert "rows" in _hint("03", 1, "crop")
    assert s03_preprocess_augment.exercise_2(per_class=4) == (16, 32, 32, 3)
    _right("03", 2, (16, 32, 32, 3))
    assert "decoded size" in _hint("03", 2, (16, 36, 36, 3))
    stats = s03_preprocess_augment.exercise_3(per_class=40)
    assert all(0 < abs(gap) < 0.2 for gap in stats["gap_in_train_std"])
    _right("03", 3, (max(abs(gap) for gap in stats["gap_in_train_std"]), "a"))
    epochs = s03_preprocess_augment.exercise_4(tmp_path, per_class=10)
    assert epochs["cache=True images"] == [50, 50, 50]  # the third epoch read no file
    assert epochs["cache=False images"] == [50, 50, 0]
    # Exercise 4's answer is a ratio of seconds: the test feeds typed values, not timings.
    _right("03", 4, 10.0)
    assert "start-up" in _hint("03", 4, 1.1)
    own = s03_preprocess_augment.exercise_5(tmp_path)
    assert own == {"class_names": ["animal", "object"], "batch_shape": (4, 96, 96, 3)}
    _right("03", 5, own["batch_shape"])
    assert "image_size=(96, 96)" in _hint("03", 5, (4, 32, 32, 3))


def test_05_convolution():
    shapes = s05_convolution.exercise_1()
    assert shapes["formula"] == shapes["keras"] == (16, 16, 16) and shapes["padding"] == (2, 2)
    _right("05", 1, shapes["formula"])
    _right("05", 1, shapes["keras"])
    assert "'valid'" in _hint("05", 1, (14, 14, 16))
    fields = s05_convolution.exercise_2()
    assert fields == {"five_3x3": 11, "with_pool": 18}
    _right("05", 2, (fields["five_3x3"], fields["with_pool"]))
    errors = s05_convolution.exercise_3()
    assert errors["valid_stride3"] < 1e-6 and errors["same_stride2"] < 1e-6
    assert errors["same_crop_shifted"] > 0.1
    _right("05", 3, (errors["valid_stride3"] < 1e-6, "same"))
    fits = s05_convolution.exercise_4()
    assert fits["adam"] < 0.05 < fits["gradient_descent"]
    _right("05", 4, fits["gradient_descent_steps"])
    assert "Adam's pace" in _hint("05", 4, fits["adam_steps"])
    assert s05_convolution.exercise_5() == (64, 64, 16)
    _right("05", 5, "a")
