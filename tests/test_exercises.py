"""The exercise checks: verdicts, hints, and one check cell per exercise in every notebook."""

import json
import re
from pathlib import Path

import pytest

from helpers.exercises import Exercise, between, check, exercises_of, is_false, one_of

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_an_unanswered_check_says_what_to_set_and_does_not_give_the_answer():
    verdict = check("04", 1, None)
    assert verdict.status == "unanswered" and not verdict.right
    assert "answer_1" in verdict.message
    assert exercises_of("04")[1].expect not in verdict.message


def test_a_right_answer_is_confirmed_with_what_you_should_see():
    verdict = check("04", 1, 0.98)
    assert verdict.right and exercises_of("04")[1].expect in repr(verdict)


def test_a_wrong_answer_gets_the_hint_for_its_direction():
    assert "remove the `/ n`" in check("04", 1, 1e-8).message
    assert "never above 1" in check("04", 1, 3).message


def test_an_answer_of_the_wrong_shape_says_which_shape_is_wanted():
    for answer in ("0.98x", float("nan"), [1, 2]):
        verdict = check("04", 1, answer)
        assert verdict.status == "wrong" and "answer with a number" in verdict.message


def test_judges_for_choices_and_yes_or_no():
    assert one_of(["Pad"], hint="h")(" pad ") is None and one_of(["pad"], hint="h")("crop") == "h"
    assert is_false(hint="h")("no") is None and is_false(hint="h")(True) == "h"
    assert between(0, 1, too_low="low", too_high="high")(-1) == "low"


def test_an_unknown_notebook_or_exercise_is_an_error_that_names_what_exists():
    with pytest.raises(KeyError, match="no exercise checks"):
        exercises_of("99")
    with pytest.raises(KeyError, match=r"exercises \[1, 2, 3, 4, 5\], not 9"):
        check("04", 9, 1)


def _numbered_exercises(cells):
    text = next(c for c in cells if "".join(c["source"]).startswith("## Exercises"))
    return [int(n) for n in re.findall(r"^(\d+)\. ", "".join(text["source"]), flags=re.M)]


def _checked_in_cells(cells, number):
    pattern = re.compile(rf'check\("{number}", (\d+), answer_\1\)')
    return sorted(
        int(n)
        for c in cells
        if c["cell_type"] == "code"
        for n in pattern.findall("".join(c["source"]))
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_numbered_exercise_has_a_check_and_a_check_cell(notebook):
    number = notebook.name[:2]
    try:
        checks = exercises_of(number)
    except KeyError:
        pytest.skip(f"notebook {number} has no checks yet")
    cells = json.loads(notebook.read_text())["cells"]
    asked = _numbered_exercises(cells)
    assert sorted(checks) == asked, notebook.name
    assert _checked_in_cells(cells, number) == asked, notebook.name
    assert all(isinstance(e, Exercise) and e.form and e.expect for e in checks.values())
