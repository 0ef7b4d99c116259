"""Every exercise solution in solutions/ runs against the helpers and its answer holds."""

import importlib
import json
import re
from pathlib import Path

import pytest

from solutions import (
    s00_setup,
    s01_acquire,
    s03_preprocess_augment,
    s04_softmax_regression,
    s05_convolution,
    s06_cnn,
)

pytestmark = pytest.mark.slow  # each solution trains or runs a server


def test_00_setup(tmp_path):
    assert s00_setup.exercise_1() == {"EPOCHS": (3, 10), "MIN_ACCURACY": (0.5, 0.9)}
    assert s00_setup.exercise_2() is False  # without re-seeding the draws differ
    assert s00_setup.exercise_3(tmp_path / "elsewhere") == tmp_path / "elsewhere"
    accuracy = s00_setup.exercise_4(epochs=30)
    assert accuracy["train_accuracy"] >= accuracy["test_accuracy"] - 0.01
    assert accuracy["train_accuracy"] > 0.97


def test_01_acquire(tmp_path):
    runs = s01_acquire.exercise_1(tmp_path, n=6)
    assert runs["first_stored"] == 6 and runs["first_requests"] >= 6
    assert runs["second_stored"] == 0 and runs["second_requests"] == 0
    assert runs["second_already"] == 6
    notes = s01_acquire.exercise_2(tmp_path)
    assert list(notes) == ["cross/phone.jpg"] and "orientation 6" in notes["cross/phone.jpg"]
    small = s01_acquire.exercise_3(tmp_path)
    assert small["stored"] >= 1 and "fault/huge" in small["failed"]
    assert all("too large" in reason for reason in small["failed"].values())
    assert len(s01_acquire.exercise_4(n=5)) == 5
    strict = s01_acquire.exercise_5(tmp_path)
    assert [url.rsplit("/", 2)[-2:] for url in strict["strict_rejects"]] == [
        ["fault", "wrong-type"]
    ]
    assert len(strict["kept"]) == 1


def test_03_preprocess_augment(tmp_path):
    modes = s03_preprocess_augment.exercise_1()
    assert modes["crop"]["rows_kept"] < 0.8 and modes["crop"]["padding"] == 0
    assert 0.2 < modes["pad"]["padding"] < 0.3 and modes["pad"]["rows_kept"] == 1
    assert s03_preprocess_augment.exercise_2(per_class=4) == (16, 32, 32, 3)
    stats = s03_preprocess_augment.exercise_3(per_class=40)
    assert all(0 < abs(gap) < 0.2 for gap in stats["gap_in_train_std"])
    epochs = s03_preprocess_augment.exercise_4(tmp_path, per_class=10)
    assert epochs["cache=True images"] == [50, 50, 50]  # the third epoch read no file
    assert epochs["cache=False images"] == [50, 50, 0]
    own = s03_preprocess_augment.exercise_5(tmp_path)
    assert own == {"class_names": ["animal", "object"], "batch_shape": (4, 96, 96, 3)}


def test_06_cnn(tmp_path):
    own = s06_cnn.exercise_1(tmp_path, per_class=12, epochs=1)
    assert own["native"] == (72, 96) and max(own["trained_at"]) <= 72
    assert "72x96" in own["reason"]
    assert own["top_losses"] == min(8, own["photo_size"]["test"])
    rates = s06_cnn.exercise_2(epochs=3, limit=800)
    best = rates["suggested"]["test_accuracy"]
    assert best > rates["a tenth"]["test_accuracy"] and best > rates["ten times"]["test_accuracy"]
    flips = s06_cnn.exercise_3(epochs=5, limit=800)
    plain = flips["no flips in training, TTA False"]
    assert plain > flips["flips in training, TTA False"] + 0.1  # flipping digits hurts
    assert flips["no flips in training, flipped test images"] < plain - 0.3
    assert flips["no flips in training, TTA True"] <= plain
    resumed = s06_cnn.exercise_4(tmp_path, epochs=3, stop_after=1, limit=300)
    assert resumed["epochs_in_second_run"] == 2 and resumed["total_epochs"] == 3
    assert resumed["second_plan"].endswith("(resumed)")
    precision = s06_cnn.exercise_5(steps=1, batch_size=16)
    assert set(precision["images_per_second"]) == {"float32", "mixed_bfloat16"}
    assert (precision["auto"] == "mixed_bfloat16") <= precision["avx512_bf16"]


def test_04_softmax_regression():
    errors = s04_softmax_regression.exercise_1()
    assert errors["with_1_over_n"] < 1e-6 and errors["without_1_over_n"] > 0.9
    l2 = s04_softmax_regression.exercise_2()
    assert l2["norm_l2"] < l2["norm_plain"]
    assert abs(l2["accuracy_l2"] - l2["accuracy_plain"]) < 0.02
    full = s04_softmax_regression.exercise_3(sgd_epochs=5)
    assert full["full_batch_epochs"] is not None and full["full_batch_epochs"] > 10 * 5
    rates = s04_softmax_regression.exercise_4()
    assert rates["raw"]["learning_rate"] < rates["scaled"]["learning_rate"]
    assert rates["raw"]["final_loss"] > 10 * rates["scaled"]["final_loss"]
    assert s04_softmax_regression.exercise_5() == (8, 8)


def test_05_convolution():
    shapes = s05_convolution.exercise_1()
    assert shapes["formula"] == shapes["keras"] == (16, 16, 16) and shapes["padding"] == (2, 2)
    assert s05_convolution.exercise_2() == {"five_3x3": 11, "with_pool": 18}
    errors = s05_convolution.exercise_3()
    assert errors["valid_stride3"] < 1e-6 and errors["same_stride2"] < 1e-6
    assert errors["same_crop_shifted"] > 0.1
    fits = s05_convolution.exercise_4()
    assert fits["adam"] < 0.05 < fits["gradient_descent"]
    assert s05_convolution.exercise_5() == (64, 64, 16)


SOLUTION_MODULES = sorted(
    p.stem for p in (Path(__file__).parent.parent / "solutions").glob("s[0-9][0-9]_*.py")
)


@pytest.mark.parametrize("name", SOLUTION_MODULES)
def test_every_exercise_of_the_notebook_has_a_solution(name):
    """A solution module answers each numbered exercise of its notebook, no more, no less."""
    module = importlib.import_module(f"solutions.{name}")
    number = module.__name__.rsplit(".", 1)[-1][1:3]
    (notebook,) = (Path(__file__).parent.parent / "notebooks").glob(f"{number}_*.ipynb")
    exercises = next(
        "".join(cell["source"])
        for cell in json.loads(notebook.read_text())["cells"]
        if "".join(cell["source"]).startswith("## Exercises")
    )
    asked = re.findall(r"^(\d+)\. ", exercises, flags=re.MULTILINE)
    answered = sorted(int(n.split("_")[1]) for n in dir(module) if n.startswith("exercise_"))
    assert answered == [int(n) for n in asked], notebook.name
