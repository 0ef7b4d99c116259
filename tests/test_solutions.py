"""Every notebook's exercises have a solution in solutions/; notebook 04's answers hold and
pass its checks (the other notebooks' are in tests/test_solutions_*.py)."""

import importlib
import json
import re
from pathlib import Path

import pytest

from helpers.exercises import check
from solutions import s04_softmax_regression

pytestmark = pytest.mark.slow  # each solution trains or runs a server


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
    answers = {
        1: errors["without_1_over_n"],
        2: (True, 100 * (l2["accuracy_l2"] - l2["accuracy_plain"])),
        3: full["full_batch_epochs"] / 5,
        4: (rates["scaled"]["learning_rate"], rates["raw"]["learning_rate"]),
        5: "a",
    }
    for number, answer in answers.items():
        assert check("04", number, answer).right, (number, answer)


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
