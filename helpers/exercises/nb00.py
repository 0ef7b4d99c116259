"""Checks for the exercises of notebook 00 (set up and check your environment)."""

import os
from pathlib import Path

from helpers.config import DATA_DIR_ENV, data_dir
from helpers.exercises import Exercise, all_of, between, field, one_of

# The knobs of notebook 00's parameters cell, as the learner may spell them.
_KNOBS = {"SEED", "DATA_DIR", "EPOCHS", "MIN_ACCURACY"}
_CHANGED = {"EPOCHS", "MIN_ACCURACY"}


def _changed_knobs(answer):
    names = {answer} if isinstance(answer, str) else set(answer)
    names = {str(name).strip().upper() for name in names}
    unknown = names - _KNOBS
    if unknown:
        return f"the parameters cell has no knob {sorted(unknown)[0]}: name its variables."
    steady = sorted(names - _CHANGED)
    if steady:
        return f"{steady[0]} is the same in both profiles: compare the two runs' values again."
    if names != _CHANGED:
        return "one more knob changes: look for every P.choose(...) in the parameters cell."
    return None


def _in_the_course_data_dir(answer):
    if not os.environ.get(DATA_DIR_ENV, "").strip():
        return (
            f"{DATA_DIR_ENV} is not set in this kernel: set it in the shell before you start "
            f"Jupyter (or run %env {DATA_DIR_ENV}=/some/folder first), restart the kernel and "
            "run the notebook from the top."
        )
    if Path(str(answer).strip()).expanduser().resolve() == data_dir(create=False).resolve():
        return None
    return (
        "that is not where the course writes now: rerun the parameters cell (DATA_DIR is read "
        "when it runs) and the data directory check, and copy the folder it prints."
    )


def _train_not_below_test(answer):
    if float(answer[0]) >= float(answer[1]) - 0.01:
        return None
    return "a training accuracy below the test accuracy after 30 epochs: did you swap the two?"


EXERCISES = {
    1: Exercise(
        form="a set of knob names (strings): the knobs whose values differ",
        expect="EPOCHS (3 in smoke, 10 in laptop) and MIN_ACCURACY (0.5, 0.9): smoke trains "
        "briefly and only checks that the model learns something; SEED and DATA_DIR do not "
        "depend on the profile.",
        judge=_changed_knobs,
    ),
    2: Exercise(
        form="'a' (the draws differ: each generator goes on from where the first draw left "
        "it), 'b' (nothing fails: one seed fixes every later draw) or 'c' (only the Keras "
        "draw differs)",
        expect="the first assert fails: Python's, NumPy's and Keras's second draws all go on "
        "along their streams, so they differ from the first. Seeding resets a stream to its "
        "start; that is all it does, so repeat it wherever a run must start afresh.",
        judge=one_of(
            ["a"],
            hint="run the cell with the second seed_everything commented out and read which "
            "assert fails first, then print first[1] and second[1].",
        ),
    ),
    3: Exercise(
        form="a string: the folder the data directory check prints",
        expect=f"the folder named by {DATA_DIR_ENV} (or a folder with your user name inside "
        "it, when other users can write there); data/ in the project is not touched, and the "
        "probe file is deleted once it has been read back.",
        judge=_in_the_course_data_dir,
    ),
    4: Exercise(
        form="a tuple (training accuracy of the last epoch, test accuracy), after 30 epochs",
        expect="on all the digits (the laptop data), 0.992 on the training images against "
        "0.975 on the test ones (after 10 epochs: 0.954 and 0.950): the training accuracy "
        "goes on towards 1 while the test accuracy levels off, and the gap between them opens.",
        judge=all_of(
            field(
                0,
                between(
                    0.97,
                    1.0,
                    too_low="that is short of 30 epochs: set EPOCHS = 30, keep history = "
                    "model.fit(...) and read history.history['accuracy'][-1].",
                    too_high="an accuracy is a fraction: 1.0 means every image is right.",
                ),
            ),
            field(
                1,
                between(
                    0.9,
                    1.0,
                    too_low="evaluate the model trained for 30 epochs on x_test, as the "
                    "notebook does after fit.",
                    too_high="an accuracy is a fraction: 1.0 means every image is right.",
                ),
            ),
            _train_not_below_test,
        ),
    ),
}
