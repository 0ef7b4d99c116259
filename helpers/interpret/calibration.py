"""How sure a classifier is, and how right: the expected calibration error over
equal-width confidence bins, the reliability diagram's numbers, temperature scaling
(Guo et al., 2017: one scalar fitted on the validation split by minimizing the negative
log-likelihood), and an ensemble by averaging probabilities against its best member."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from helpers.evaluate import accuracy
from helpers.interpret.errors import InterpretError


@dataclass
class Reliability:
    """Per equal-width confidence bin: the count, the mean confidence and the accuracy."""

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self) -> float:
        n = self.counts.sum()
        gaps = np.abs(self.accuracy - self.confidence)
        return float(np.sum(np.where(self.counts > 0, gaps, 0.0) * self.counts) / max(n, 1))


def reliability(probabilities, labels, bins: int = 15) -> Reliability:
    """Bin the top probability into ``bins`` equal-width bins over (0, 1] (a confidence of
    exactly b/M falls in bin b, as in Guo et al.); empty bins have count 0 and NaN means."""
    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels).reshape(-1)
    if probabilities.ndim != 2 or len(probabilities) != len(labels) or not len(labels):
        raise InterpretError(
            f"need (n, classes) probabilities and n labels, not {probabilities.shape} and "
            f"{labels.shape}"
        )
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, bins) / counts
        mean_acc = np.bincount(which, correct, bins) / counts
    return Reliability(edges, counts, mean_conf, mean_acc)


def expected_calibration_error(probabilities, labels, bins: int = 15) -> float:
    """ECE: the bins' mean |accuracy - confidence|, weighted by how many predictions each
    holds (0 is perfectly calibrated)."""
    return reliability(probabilities, labels, bins).ece


def _log_probabilities(probabilities) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0))


def apply_temperature(probabilities, temperature: float) -> np.ndarray:
    """softmax(log p / T). From probabilities, not logits: log p is the logits minus a
    constant per row, and the softmax ignores that constant, so the result is the same."""
    z = _log_probabilities(probabilities) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities, labels) -> float:
    labels = np.asarray(labels).reshape(-1)
    return float(-_log_probabilities(probabilities)[np.arange(len(labels)), labels].mean())


TEMPERATURE_BOUNDS = (-4.0, 4.0)  # log T: T from 1/e^4 = 0.018 to e^4 = 54.6


def fit_temperature(probabilities, labels, *, bounds=TEMPERATURE_BOUNDS) -> float:
    """The temperature T that minimizes the validation NLL of softmax(log p / T).

    Searched over log T (``scipy.optimize.minimize_scalar``, bounded): T > 0 always, and
    the NLL is smooth in log T from 1/e^4 to e^4. T > 1 softens an overconfident model,
    T < 1 sharpens an underconfident one (label smoothing makes those). When the model
    gets (almost) every validation image right, the NLL keeps falling as T -> 0 and the
    fit stops at the bound, 1/e^4 = 0.018: measured so on notebook 06's CNN (99.8%).
    No wider bound helps then (the NLL falls all the way to 0), so
    :func:`temperature_at_bound` tells the caller, who must say so.
    """
    labels = np.asarray(labels).reshape(-1)
    result = optimize.minimize_scalar(
        lambda t: negative_log_likelihood(apply_temperature(probabilities, math.exp(t)), labels),
        bounds=bounds,
        method="bounded",
    )
    return float(math.exp(result.x))


def temperature_at_bound(
    probabilities, labels, temperature: float, bounds=TEMPERATURE_BOUNDS
) -> bool:
    """Whether the fit of :func:`fit_temperature` is a limit of its search, not a minimum
    of the NLL: one bound's NLL is no worse than the fitted T's. Closeness to the bound
    does not tell: where the model is right on every image the NLL flattens to 0 in
    float64 well before 1/e^4 (at T = 0.037 on a test case), and the search stops there.
    """

    def nll(t: float) -> float:
        return negative_log_likelihood(apply_temperature(probabilities, t), labels)

    fitted = nll(temperature)
    return any(nll(math.exp(b)) <= fitted + 1e-12 for b in bounds)


def ensemble_probabilities(members: Sequence) -> np.ndarray:
    """The mean of the members' probability arrays (same images, same class order)."""
    arrays = [np.asarray(p, np.float64) for p in members]
    if not arrays or any(a.shape != arrays[0].shape for a in arrays):
        raise InterpretError(
            f"give one or more probability arrays of one shape, not {[a.shape for a in arrays]}"
        )
    return np.mean(arrays, axis=0)


def compare_ensemble(members: Sequence, labels, *, names=None, bins: int = 15) -> dict:
    """Accuracy and ECE of each member, of the best member (by accuracy) and of the
    ensemble: ``{"members": [...], "best": {...}, "ensemble": {...}}``."""
    names = list(names or [f"model {k + 1}" for k in range(len(members))])
    rows = [
        {"name": n, "accuracy": accuracy(p, labels), "ece": expected_calibration_error(p, labels)}
        for n, p in zip(names, members, strict=True)
    ]
    mean = ensemble_probabilities(members)
    return {
        "members": rows,
        "best": max(rows, key=lambda r: r["accuracy"]),
        "ensemble": {
            "name": "ensemble",
            "accuracy": accuracy(mean, labels),
            "ece": expected_calibration_error(mean, labels, bins),
        },
    }
