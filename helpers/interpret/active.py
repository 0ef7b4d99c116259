"""Where labels help most: uncertainty (margin, from :mod:`helpers.labeling.suggest`, or
entropy) orders the class annotator's queue, and :func:`active_learning` measures what
that saves against random order, the labels given by a simulated annotator through the
real widget (:func:`widget_annotator`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from helpers.evaluate import accuracy
from helpers.interpret.errors import InterpretError
from helpers.labeling.suggest import margin_uncertainty


def entropy_uncertainty(probabilities) -> np.ndarray:
    """Shannon entropy of each row, divided by log(classes): 1 is uniform, 0 is sure."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / math.log(p.shape[1])


UNCERTAINTY = {"margin": margin_uncertainty, "entropy": entropy_uncertainty}


def uncertainty_queue(probabilities, image_ids=None, *, method: str = "margin") -> list:
    """``image_ids`` (default 0..n-1) most uncertain first: the order to hand a
    :class:`~helpers.labeling.ClassAnnotator` as its ``image_ids``. Ties keep the given
    order (a stable sort), so the queue is the same on every run."""
    if method not in UNCERTAINTY:
        raise InterpretError(f"method must be one of {list(UNCERTAINTY)}, not {method!r}")
    scores = UNCERTAINTY[method](probabilities)
    ids = list(range(len(scores))) if image_ids is None else list(image_ids)
    if len(ids) != len(scores):
        raise InterpretError(f"{len(ids)} image ids for {len(scores)} rows of probabilities")
    return [ids[k] for k in np.argsort(-scores, kind="stable")]


def logistic_ensemble(members: int = 3, *, C: float = 1.0) -> Callable:
    """``fit(x, y, seed, num_classes) -> predict``: ``members`` logistic regressions on
    bootstrap resamples, their probabilities averaged (a committee whose disagreement is
    part of the uncertainty). Cheap on purpose: it retrains after every labeling round.

    The fits run with BLAS limited to one thread: on a busy 2-core machine a fit of 300
    digits took 370 ms with the default threads and 11 ms with one (measured here).
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    def fit(x, y, seed: int, num_classes: int):
        rng = np.random.default_rng(seed)
        models = []
        with threadpool_limits(1):
            for _ in range(members):
                pick = rng.integers(0, len(y), len(y)) if members > 1 else np.arange(len(y))
                if len(np.unique(y[pick])) < 2:
                    pick = np.arange(len(y))
                models.append(LogisticRegression(C=C, max_iter=500).fit(x[pick], y[pick]))

        def predict(x_new):
            out = np.zeros((len(x_new), num_classes))
            with threadpool_limits(1):
                for model in models:
                    out[:, model.classes_] += model.predict_proba(x_new)
            return out / len(models)

        return predict

    return fit


@dataclass
class ActiveLearning:
    """Test accuracy after each round, per strategy and seed, and what it adds up to."""

    labels: np.ndarray  # number of labels after each round
    accuracy: dict[str, np.ndarray]  # strategy -> (seeds, rounds)
    seeds: list[int] = field(default_factory=list)

    def mean(self, strategy: str) -> np.ndarray:
        return self.accuracy[strategy].mean(axis=0)

    def labels_to_reach(self, strategy: str, target: float) -> int | None:
        """The fewest labels at which ``strategy``'s mean accuracy reaches ``target``."""
        hit = np.flatnonzero(self.mean(strategy) >= target - 1e-12)
        return int(self.labels[hit[0]]) if len(hit) else None

    def saved(self, strategy: str = "uncertainty", baseline: str = "random") -> dict:
        """Labels ``strategy`` needs to reach ``baseline``'s final mean accuracy, and the
        fraction of the budget that saves (0 when it never gets there)."""
        target = float(self.mean(baseline)[-1])
        needed = self.labels_to_reach(strategy, target)
        budget = int(self.labels[-1])
        fraction = 0.0 if needed is None else (budget - needed) / budget
        return {"target": target, "labels": needed, "budget": budget, "fraction": fraction}


def active_learning(
    x_pool,
    y_pool,
    x_test,
    y_test,
    *,
    annotate: Callable[[np.ndarray, str, int], np.ndarray] | None = None,
    budget: int = 300,
    start: int = 20,
    step: int = 20,
    seeds: Sequence[int] = (0, 1, 2),
    strategies: Sequence[str] = ("uncertainty", "random"),
    method: str = "margin",
    fit: Callable | None = None,
) -> ActiveLearning:
    """Simulate labeling rounds and measure test accuracy against labels given.

    Each seed starts both strategies from the same ``start`` random labels. Each round
    the model (``fit``, default :func:`logistic_ensemble`) is trained on the labels so
    far and its test accuracy noted; ``"uncertainty"`` then asks for the ``step`` pool
    images it is least sure of (:func:`uncertainty_queue`), ``"random"`` for ``step``
    random ones, until
    ``budget`` labels. ``annotate(indices, strategy, seed)`` returns the labels a person
    gives (default: the truth in ``y_pool``; :func:`widget_annotator` clicks them into
    the real class annotator). The model is trained on what ``annotate`` returned.
    """
    x_pool, x_test = np.asarray(x_pool, np.float64), np.asarray(x_test, np.float64)
    y_pool, y_test = np.asarray(y_pool), np.asarray(y_test)
    if not 0 < start <= budget <= len(y_pool) or step < 1:
        raise InterpretError(
            f"need 0 < start ({start}) <= budget ({budget}) <= pool size ({len(y_pool)}) "
            f"and step >= 1 ({step})"
        )
    unknown = set(strategies) - {"uncertainty", "random"}
    if unknown:
        raise InterpretError(f"strategies are 'uncertainty' and 'random', not {sorted(unknown)}")
    fit = fit or logistic_ensemble()
    annotate = annotate or (lambda index, strategy, seed: y_pool[index])
    num_classes = int(max(y_pool.max(), y_test.max()) + 1)
    counts = [start]
    while counts[-1] < budget:
        counts.append(min(budget, counts[-1] + step))
    curves = {s: np.zeros((len(seeds), len(counts))) for s in strategies}
    for row, seed in enumerate(seeds):
        first = np.random.default_rng(seed).choice(len(y_pool), start, replace=False)
        for strategy in strategies:
            rng = np.random.default_rng(seed + 1000)
            chosen = list(first)
            given = list(annotate(np.asarray(first), strategy, seed))
            predict = fit(x_pool[chosen], np.asarray(given), seed, num_classes)
            curves[strategy][row, 0] = accuracy(predict(x_test), y_test)
            for col, n in enumerate(counts[1:], start=1):
                rest = np.setdiff1d(np.arange(len(y_pool)), chosen)
                k = n - len(chosen)
                if strategy == "random":
                    new = rng.choice(rest, k, replace=False)
                else:
                    queue = uncertainty_queue(predict(x_pool[rest]), rest, method=method)
                    new = np.asarray(queue[:k])
                chosen += list(new)
                given += list(annotate(new, strategy, seed))
                predict = fit(x_pool[chosen], np.asarray(given), seed, num_classes)
                curves[strategy][row, col] = accuracy(predict(x_test), y_test)
    return ActiveLearning(np.asarray(counts), curves, list(seeds))


def widget_annotator(catalog, image_ids, truth: dict[int, str], class_names, *, prefix="al"):
    """An ``annotate`` for :func:`active_learning` that labels through the real
    :class:`~helpers.labeling.ClassAnnotator`: each round's images become its queue, in
    the order asked (most uncertain first), and a
    :class:`~helpers.labeling.simulate.SimulatedAnnotator` clicks them. The labels are
    read back from the catalog, under one annotator name per strategy and seed
    (``<prefix>-<strategy>-<seed>``), so the runs never mix."""
    from helpers.labeling import ClassAnnotator
    from helpers.labeling.simulate import SimulatedAnnotator

    image_ids = list(image_ids)
    index_of = {name: k for k, name in enumerate(class_names)}

    def annotate(indices, strategy: str, seed: int) -> np.ndarray:
        ids = [int(image_ids[i]) for i in indices]
        widget = ClassAnnotator(
            catalog, list(class_names), ids, annotator=f"{prefix}-{strategy}-{seed}"
        )
        SimulatedAnnotator(truth, seed=seed).label(widget)
        stored = widget.labels()
        return np.asarray([index_of[stored[i]["class_name"]] for i in ids])

    return annotate
