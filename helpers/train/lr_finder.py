"""The learning-rate finder (:func:`lr_find`): fastai's, which Keras lacks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from helpers.quiet import keras
from helpers.train.data import _one_hot, with_cardinality
from helpers.train.fitting import num_classes_of
from helpers.train.optimizers import compile_model, make_optimizer


@dataclass
class LRFinderResult:
    """The sweep: learning rates, smoothed losses, and the suggested rate with why."""

    learning_rates: np.ndarray
    losses: np.ndarray
    suggestion: float
    steepest: float
    minimum: float

    def __str__(self) -> str:
        return (
            f"loss lowest at lr {self.minimum:.2g}, falling fastest at {self.steepest:.2g}: "
            f"suggested learning rate {self.suggestion:.2g}"
        )


class _Sweep(keras.callbacks.Callback):
    def __init__(self, rates: np.ndarray, beta: float, stop_factor: float):
        super().__init__()
        self.rates, self.beta, self.stop_factor = rates, beta, stop_factor
        self.losses: list[float] = []
        self.step = 0
        self.average = 0.0
        self.best = math.inf

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_sum = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = float(self.rates[self.step])

    def on_train_batch_end(self, batch, logs=None):
        # Keras reports the running mean of the epoch; the batch's own loss is its change.
        total = float(logs["loss"]) * (batch + 1)
        loss, self.epoch_sum = total - self.epoch_sum, total
        self.step += 1
        self.average = self.beta * self.average + (1 - self.beta) * loss
        smoothed = self.average / (1 - self.beta**self.step)
        self.losses.append(smoothed)
        self.best = min(self.best, smoothed)
        if (
            self.step >= len(self.rates)
            or not math.isfinite(loss)
            or (smoothed > self.stop_factor * self.best)
        ):
            self.model.stop_training = True


def lr_find(
    model,
    train,
    *,
    optimizer: str = "sgd",
    start: float = 1e-5,
    end: float = 10.0,
    steps: int = 100,
    label_smoothing: float = 0.0,
    beta: float = 0.9,
    stop_factor: float = 4.0,
    from_logits: bool = False,
) -> LRFinderResult:
    """fastai's ``lr_find``: train for up to ``steps`` batches while the learning rate grows
    exponentially from ``start`` to ``end``, and watch the (smoothed) loss.

    Read the plot from the left: flat (too small to learn), then falling (learning), then
    a minimum and an explosion (too large). Suggested: a tenth of the rate at the
    minimum (fastai's classic rule), which sits on the falling part where training is
    fast and stable; the steepest point is given too. The model's weights are put back
    afterwards, so it trains from its initial weights.
    """
    weights = model.get_weights()
    train = _one_hot(with_cardinality(train), num_classes_of(model))
    rates = start * (end / start) ** (np.arange(steps) / max(steps - 1, 1))
    compile_model(
        model, make_optimizer(optimizer, float(start)), label_smoothing=label_smoothing,
        from_logits=from_logits,
    )  # fmt: skip
    sweep = _Sweep(rates, beta, stop_factor)
    per_epoch = int(train.cardinality())
    model.fit(
        train, epochs=math.ceil(steps / per_epoch), callbacks=[sweep], verbose=0, shuffle=False
    )
    model.set_weights(weights)
    losses = np.asarray(sweep.losses)
    lrs = rates[: len(losses)]
    if len(losses) < 5:
        raise ValueError(f"the sweep stopped after {len(losses)} steps; lower start or end")
    lowest = int(np.argmin(losses))
    gradient = np.gradient(losses[: lowest + 1], np.log(lrs[: lowest + 1])) if lowest > 1 else [0]
    steepest = float(lrs[int(np.argmin(gradient))])
    minimum = float(lrs[lowest])
    return LRFinderResult(lrs, losses, minimum / 10.0, steepest, minimum)
