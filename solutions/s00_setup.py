"""Solutions to the exercises of notebooks/00_setup.ipynb."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

from helpers import config
from helpers.acquire.datasets import load_arrays


def exercise_1() -> dict[str, tuple]:
    """Which knobs change between ``smoke`` and ``laptop``?

    ``EPOCHS`` (3 -> 10) and ``MIN_ACCURACY`` (0.5 -> 0.9): the smoke profile trains
    briefly and only checks that the model learns something; ``SEED`` and ``DATA_DIR``
    stay the same. Returns ``{knob: (smoke, laptop)}`` for the knobs that differ.
    """
    knobs = {
        "EPOCHS": dict(smoke=3, laptop=10, full=10),
        "MIN_ACCURACY": dict(smoke=0.5, laptop=0.9, full=0.9),
    }
    smoke, laptop = config.get_profile("smoke"), config.get_profile("laptop")
    return {name: (smoke.choose(**v), laptop.choose(**v)) for name, v in knobs.items()}


def exercise_2(seed: int = 42) -> bool:
    """Without the second ``seed_everything``, what fails, and why?

    The first assert: the second draw continues each generator's stream from where the
    first draw left it, so the numbers differ. Seeding resets the stream; that is all
    it does. Returns whether the two draws were equal (False).
    """
    config.seed_everything(seed)
    first = (random.random(), np.random.rand(3))
    second = (random.random(), np.random.rand(3))  # no re-seeding in between
    return first[0] == second[0] and np.array_equal(first[1], second[1])


def exercise_3(folder: str | os.PathLike) -> Path:
    """Where does the probe file go with ``COURSE_DATA_DIR`` set?

    Into that folder (into ``<folder>/<your user name>/`` when other users can write
    there, so a class sharing one disk never mixes catalogs). Returns the data directory
    ``data_dir()`` gives with the variable set.
    """
    before = os.environ.get(config.DATA_DIR_ENV)
    os.environ[config.DATA_DIR_ENV] = str(folder)
    try:
        return config.data_dir()
    finally:
        if before is None:
            del os.environ[config.DATA_DIR_ENV]
        else:
            os.environ[config.DATA_DIR_ENV] = before


def exercise_4(epochs: int = 30, seed: int = 42) -> dict[str, float]:
    """At 30 epochs, does the test accuracy keep rising?

    Barely: the training accuracy goes on rising towards 1.0 while the test accuracy
    levels off a few points below it. The gap is what the model learned about its
    training images only (the start of overfitting). Returns both accuracies.
    """
    from helpers.quiet import keras

    config.seed_everything(seed)
    digits = load_arrays("digits", seed=seed)
    x_train = digits.x_train.reshape(len(digits.x_train), -1).astype("float32") / 255.0
    x_test = digits.x_test.reshape(len(digits.x_test), -1).astype("float32") / 255.0
    model = keras.Sequential(
        [
            keras.Input(shape=(64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, digits.y_train, epochs=epochs, batch_size=32, verbose=0)
    _, test_accuracy = model.evaluate(x_test, digits.y_test, verbose=0)
    return {"train_accuracy": history.history["accuracy"][-1], "test_accuracy": test_accuracy}
