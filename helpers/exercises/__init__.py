"""Exercise checks: a learner types an answer into the notebook and learns at once
whether it is right, and if not, gets a hint instead of the solution.

Why: d2l and fastbook leave their questions unanswered; otter-grader's ``grader.check``
shows that a check beside each question teaches more than a solution read afterwards.
Each notebook's checks live in ``helpers/exercises/nbNN.py`` as ``EXERCISES``, a dict
from the exercise's number (as the notebook's ``## Exercises`` list numbers it) to an
:class:`Exercise`. A notebook's check cell reads::

    answer_2 = None  # a number: the test accuracy at a tenth of the rate
    check("06", 2, answer_2)

An unanswered check (``None``) says what to set; it never raises, so the notebook still
runs top to bottom under nbval and the runner. A right answer is confirmed with what a
``laptop`` run shows ("what you should see"); it is not shown before, where it would give
the answer away. The worked
answers are in ``solutions/``; ``tests/test_solutions.py`` feeds them to these checks.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# A judge returns None for a right answer, else a hint that points the way without
# giving the answer. It may raise TypeError, ValueError, KeyError or IndexError for an
# answer of the wrong shape; check() turns that into "answer with <form>".
Judge = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Exercise:
    """One exercise's check.

    ``form`` says what to assign (``"a number: the relative error"``); ``expect`` is the
    "what you should see" line, with the figures of a ``laptop`` run; ``judge`` decides.
    """

    form: str
    expect: str
    judge: Judge


@dataclass(frozen=True)
class Verdict:
    """What :func:`check` found; it shows as its message in a notebook."""

    notebook: str
    number: int
    status: str  # "unanswered", "right" or "wrong"
    message: str

    @property
    def right(self) -> bool:
        return self.status == "right"

    def __repr__(self) -> str:
        return self.message


def exercises_of(notebook: str) -> dict[int, Exercise]:
    """The checks of notebook ``"06"`` (or ``"06_cnn"``, or ``6``), by exercise number."""
    number = f"{int(str(notebook)[:2]):02d}"
    try:
        module = importlib.import_module(f"{__name__}.nb{number}")
    except ModuleNotFoundError as err:
        raise KeyError(
            f"notebook {number} has no exercise checks (helpers/exercises/nb{number}.py)"
        ) from err
    return module.EXERCISES


def check(notebook: str, number: int, answer: Any) -> Verdict:
    """Judge ``answer`` to exercise ``number`` of ``notebook``; never raises for an answer."""
    exercises = exercises_of(notebook)
    if number not in exercises:
        raise KeyError(f"notebook {notebook} has exercises {sorted(exercises)}, not {number}")
    exercise = exercises[number]
    label = f"Exercise {number}"
    if answer is None or answer is Ellipsis:
        return Verdict(
            notebook,
            number,
            "unanswered",
            f"{label}: not answered yet. Set answer_{number} to {exercise.form}, then run "
            "this cell again.",
        )
    try:
        hint = exercise.judge(answer)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        hint = f"answer with {exercise.form} (got {answer!r})."
    if hint is None:
        message = f"{label}: right. What you should see: {exercise.expect}"
        return Verdict(notebook, number, "right", message)
    return Verdict(notebook, number, "wrong", f"{label}: not yet. Hint: {hint}")


# Judges for the common shapes of answer. Each takes the hint to give when wrong.


def between(low: float, high: float, *, too_low: str, too_high: str) -> Judge:
    """A number in ``[low, high]``; ``too_low`` / ``too_high`` say which way to look."""

    def judge(answer: Any) -> str | None:
        value = float(answer)
        if math.isnan(value):
            raise ValueError("nan")
        if value < low:
            return too_low
        if value > high:
            return too_high
        return None

    return judge


def one_of(accepted: Iterable[Any], *, hint: str) -> Judge:
    """An answer equal to one of ``accepted``; strings compare without case or spaces."""
    keys = {_normal(a) for a in accepted}

    def judge(answer: Any) -> str | None:
        return None if _normal(answer) in keys else hint

    return judge


def is_true(*, hint: str) -> Judge:
    """A yes/no answer that must be yes (``True``, ``"yes"``)."""
    return _boolean(True, hint)


def is_false(*, hint: str) -> Judge:
    """A yes/no answer that must be no (``False``, ``"no"``)."""
    return _boolean(False, hint)


def all_of(*judges: Judge) -> Judge:
    """Every judge agrees; the first one that does not gives its hint."""

    def judge(answer: Any) -> str | None:
        for each in judges:
            hint = each(answer)
            if hint is not None:
                return hint
        return None

    return judge


def field(key: Any, inner: Judge) -> Judge:
    """Apply ``inner`` to ``answer[key]`` (for answers that are dicts or tuples)."""

    def judge(answer: Any) -> str | None:
        return inner(answer[key])

    return judge


def _boolean(expected: bool, hint: str) -> Judge:
    words = {"yes": True, "true": True, "y": True, "no": False, "false": False, "n": False}

    def judge(answer: Any) -> str | None:
        if isinstance(answer, str):
            value = words[answer.strip().lower()]
        elif isinstance(answer, bool):
            value = answer
        else:
            raise TypeError(answer)
        return None if value == expected else hint

    return judge


def _normal(value: Any) -> Any:
    return "".join(value.lower().split()) if isinstance(value, str) else value
