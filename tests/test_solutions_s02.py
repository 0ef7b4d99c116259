"""Notebook 02's worked answers (solutions/s02_label.py) pass its exercise checks
(helpers/exercises/nb02.py): what a solution measures is what a learner types."""

import pytest

from helpers.exercises import check
from helpers.exercises.nb02 import FIRST_SCENE_BOX
from solutions import s02_label

pytestmark = pytest.mark.slow  # each solution builds a catalog of photos and fits models


def test_a_reopened_widget_resumes_and_z_takes_back_the_last_label(tmp_path):
    got = s02_label.exercise_1(tmp_path, n_yours=12, labeled=5)
    assert got["resumed_at"] == 5 and got["labels_after_z"] == 4
    assert got["z_took_back_the_last"] and got["shown_after_z"] == 4
    answer = "a" if got["resumed_at"] == 5 and got["z_took_back_the_last"] else "c"
    assert check("02", 1, answer).right
    assert not check("02", 1, "c").right


def test_more_label_errors_raise_the_checks_precision(tmp_path):
    got = s02_label.exercise_2(tmp_path)
    low, high = got[0.08], got[0.2]
    assert high["errors"] > 2 * low["errors"]
    answer = (low["precision"], high["precision"])
    assert check("02", 2, answer).right, got
    assert "more or less likely" in check("02", 2, answer[::-1]).message


def test_a_lower_threshold_accepts_more_and_is_often_wrong(tmp_path):
    got = s02_label.exercise_3(tmp_path)
    assert got[0.99]["accepted"] <= got[0.9]["accepted"] <= got[0.7]["accepted"]
    assert got[0.7]["actions_saved"] == got[0.7]["accepted"] - 1
    answer = (got[0.7]["accepted"], got[0.7]["accuracy"])
    assert check("02", 3, answer).right, got
    assert not check("02", 3, (0, None)).right


def test_the_first_groups_past_the_copies_are_look_alikes(tmp_path):
    got = s02_label.exercise_4(tmp_path)
    assert got[4]["planted_found"] == 6 and got[4]["new_pairs"] == 0
    first = next(d for d in (8, 12, 16) if got[d]["new_pairs"])
    copies = any(got[d]["new_pairs_that_are_copies"] for d in (8, 12, 16))
    answer = (first, "a" if copies else "b")
    assert check("02", 4, answer).right, got
    assert not check("02", 4, (8, "b")).right


def test_a_yolo_line_converts_back_to_the_catalogs_box(tmp_path):
    got = s02_label.first_scene_box_from_yolo(tmp_path / "box")
    assert [box for _, box in got["in_catalog"]] == [FIRST_SCENE_BOX]
    answer = s02_label.exercise_5(tmp_path / "answer")
    assert check("02", 5, answer).right
    assert "multiply by its width" in check("02", 5, tuple(v / 64 for v in answer)).message
