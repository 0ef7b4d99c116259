"""Notebook 06's worked answers (solutions/s06_cnn.py) pass its exercise checks
(helpers/exercises/nb06.py): what a solution measures is what a learner types."""

import json

import pytest

from helpers.exercises import check
from solutions import s06_cnn

pytestmark = pytest.mark.slow  # each solution trains a CNN


def test_a_doubled_budget_grows_the_training_size_or_leaves_it(tmp_path):
    own = s06_cnn.exercise_1(tmp_path, per_class=12, epochs=1)
    assert own["native"] == (72, 96) and max(own["trained_at"]) <= 72
    assert "72x96" in own["reason"]
    assert own["top_losses"] == min(8, own["photo_size"]["test"])
    doubled, now = max(own["trained_at_doubled_budget"]), max(own["trained_at"])
    answer = "a" if doubled >= now else "b"
    assert check("06", 1, answer).right
    assert not check("06", 1, "c").right


def test_the_finders_suggestion_beats_a_tenth_and_ten_times_it():
    rates = s06_cnn.exercise_2(epochs=3, limit=800)
    answer = tuple(rates[k]["test_accuracy"] for k in ("a tenth", "suggested", "ten times"))
    assert answer[1] > answer[0] and answer[1] > answer[2]
    assert check("06", 2, answer).right, answer
    assert "same seed" in check("06", 2, (answer[1], answer[0], answer[2])).message


def test_training_flips_cost_points_on_digits():
    flips = s06_cnn.exercise_3(epochs=5, limit=800)
    plain = flips["no flips in training, TTA False"]
    assert plain > flips["flips in training, TTA False"] + 0.1  # flipping digits hurts
    assert flips["no flips in training, flipped test images"] < plain - 0.3
    assert flips["no flips in training, TTA True"] <= plain
    points = 100 * (plain - flips["flips in training, TTA False"])
    assert check("06", 3, points).right, flips
    assert "100 times" in check("06", 3, -points).message


def test_a_resumed_run_keeps_the_plan_it_saved(tmp_path):
    resumed = s06_cnn.exercise_4(tmp_path, epochs=3, stop_after=1, limit=300)
    assert resumed["epochs_in_second_run"] == 2 and resumed["total_epochs"] == 3
    assert resumed["second_plan"].endswith("(resumed)")
    saved = json.loads(resumed["first_plan"])
    kept = saved["epochs"] == resumed["total_epochs"] and resumed["second_plan"].endswith(
        "(resumed)"
    )
    assert check("06", 4, "a" if kept else "b").right


def test_the_bfloat16_speed_ratio_measured_here_passes_the_check_for_this_cpu():
    precision = s06_cnn.exercise_5(steps=2, batch_size=16)
    speeds = precision["images_per_second"]
    assert set(speeds) == {"float32", "mixed_bfloat16"}
    assert (precision["auto"] == "mixed_bfloat16") <= precision["avx512_bf16"]
    ratio = speeds["mixed_bfloat16"] / speeds["float32"]
    native = precision["avx512_bf16"]
    assert check("06", 5, (ratio, native)).right, (ratio, precision["reason"])
    assert "divide" in check("06", 5, (0, native)).message
