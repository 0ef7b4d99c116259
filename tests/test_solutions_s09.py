"""The worked answers of notebook 09's exercises hold, and its checks accept them."""

import pytest

from helpers.exercises import check
from solutions import s09_understand_and_ship as s09

pytestmark = pytest.mark.slow  # each solution trains a CNN or converts it


def test_exercise_1_an_earlier_layer_still_passes_with_less_margin():
    checks = s09.exercise_1()
    assert checks["block3_act2"].passed and checks["block2_act2"].passed
    assert checks["block2_act2"].randomized > checks["block3_act2"].randomized
    assert check("09", 1, checks["block2_act2"].passed).right


def test_exercise_2_smoothing_makes_the_model_underconfident():
    smoothed = s09.exercise_2()
    assert smoothed["mean_confidence"] < smoothed["accuracy"]
    assert smoothed["temperature"] < 1 and not smoothed["at_bound"]
    assert check("09", 2, smoothed["temperature"]).right


def test_exercise_3_many_bins_hold_few_photos():
    by_bins = s09.exercise_3()
    assert by_bins[30]["per_bin"] < by_bins[5]["per_bin"] / 2
    assert by_bins[30]["filled_bins"] > by_bins[5]["filled_bins"]
    assert check("09", 3, "a").right and not check("09", 3, "b").right


def test_exercise_4_entropy_saves_fewer_labels_than_the_margin():
    saved = s09.exercise_4()
    assert saved["margin"] > saved["entropy"] + 0.1
    assert check("09", 4, "c").right and not check("09", 4, "a").right


def test_exercise_5_one_thread_latency_of_both_files():
    latency = s09.exercise_5(runs=20)
    assert set(latency) == {"float32", "int8"} and all(ms > 0 for ms in latency.values())
    assert check("09", 5, "a").right and not check("09", 5, "c").right
