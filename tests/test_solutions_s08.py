"""The worked answers of notebook 08's exercises hold, and its checks accept them."""

import pytest

from helpers.exercises import check
from solutions import s08_finetune

pytestmark = pytest.mark.slow  # each solution pretrains a backbone and fine-tunes on photos


def test_alpha_chosen_on_test_is_never_below_the_validation_choice_on_test(tmp_path):
    got = s08_finetune.exercise_1(tmp_path)
    assert got["test_at_test_choice"] >= got["test_at_validation_choice"]
    assert check("08", 1, got["test_accuracy_can_be_lower"]).right
    assert not check("08", 1, True).right


def test_top_losses_in_sample_and_out_of_fold_count_real_errors(tmp_path):
    got = s08_finetune.exercise_2(tmp_path, k=8)
    assert 0 <= got["in_sample_errors"] <= 8 and 0 <= got["out_of_fold_errors"] <= 8
    assert got["out_of_fold_quality"] < got["in_sample_quality"]  # trained on: more credit
    assert check("08", 2, got["answer"]).right


def test_the_card_refusal_names_the_input_size():
    got = s08_finetune.exercise_3()
    assert got["fields"] == ["input_size"] and "[64, 64]" in got["message"]
    assert check("08", 3, got["answer"]).right and not check("08", 3, "channels").right


def test_imagenet_offline_stops_within_seconds_naming_the_file():
    got = s08_finetune.exercise_4()
    if not got["raised"]:
        pytest.skip("the ImageNet weights are cached on this machine")
    assert "Copy the file" in got["message"] and got["message"].count(".h5") >= 2
    assert check("08", 4, got["answer"]).right and not check("08", 4, "c").right


def test_your_labels_count_where_they_landed_in_the_train_split(tmp_path):
    got = s08_finetune.exercise_5(tmp_path)
    assert 30 <= got["answer"] < got["labeled"]
    assert check("08", 5, got["answer"]).right
