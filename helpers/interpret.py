"""Look inside a classifier and measure how sure it is (notebook 09).

- **Grad-CAM** (Selvaraju et al., 2017): where in the image the evidence for a class
  lies. The gradient of the class score with respect to the last spatial feature maps,
  averaged over the map, weighs each map; their weighted sum, rectified, is the heatmap.
  :func:`grad_cam` works on any Keras model (functional, Sequential, nested backbones as
  :mod:`helpers.models` builds them, residual graphs): it captures the feature layer's
  output and the softmax's input during one ordinary forward pass under a
  ``GradientTape``, so no model is rebuilt and no private Keras API is used.
- **The sanity check** (Adebayo et al., 2018, "Sanity checks for saliency maps"): a
  heatmap that stays the same when the weights are randomized explains the image, not
  the model. :func:`sanity_check` measures the Spearman rank correlation of the trained
  model's maps with a randomized copy's, against the trained model's maps of the same
  images under pixel noise too small to matter (the map's own stability). The method
  passes when the first is at most half the second.
- **Calibration**: the expected calibration error over equal-width confidence bins,
  the reliability diagram's numbers, and temperature scaling (Guo et al., 2017), one
  scalar fitted on the validation split by minimizing the negative log-likelihood.
- **Fusion**: an ensemble by averaging probabilities, against its best member.
- **Where labels help most**: uncertainty (margin, from
  :mod:`helpers.labeling.suggest`, or entropy) orders the class annotator's queue, and
  :func:`active_learning` measures what that saves against random order, the labels
  given by a simulated annotator through the real widget (:func:`widget_annotator`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from helpers.labeling.suggest import margin_uncertainty
from helpers.quiet import keras, tf

# --- Grad-CAM ---------------------------------------------------------------------------


class InterpretError(ValueError):
    """A model or input the method cannot explain as given; the message says what to do."""


def _leaf_layers(model) -> list:
    """Every layer that is not itself a model, depth first in the order they run."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += _leaf_layers(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            found.append(layer)
    return found


def _rank(layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):  # a layer called more than once, or never
        return None


def feature_layer(model, name: str | None = None):
    """The layer whose maps Grad-CAM weighs: ``name`` (searched in nested models too), or
    by default the last layer with a spatial (batch, height, width, channels) output,
    which in a CNN is the activation after its last convolution."""
    leaves = _leaf_layers(model)
    if name is not None:
        for layer in leaves:
            if layer.name == name:
                return layer
        raise InterpretError(
            f"{model.name} has no layer named {name!r}; spatial layers: "
            f"{[layer.name for layer in leaves if _rank(layer) == 4]}"
        )
    spatial = [layer for layer in leaves if _rank(layer) == 4]
    if not spatial:
        raise InterpretError(
            f"{model.name} has no layer with a (batch, height, width, channels) output; "
            "Grad-CAM needs a convolutional model"
        )
    return spatial[-1]


def _softmax_layer(model):
    """The model's final softmax, whose input (the logits) is Grad-CAM's class score, or
    None when the model outputs scores already."""
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return last
    if isinstance(last, keras.layers.Activation) and "softmax" in str(last.activation):
        return last
    return None


@contextmanager
def _capture(layer, store: dict, key: str, what: str):
    """Record ``layer``'s first input or its output in ``store[key]`` while it runs: an
    instance attribute shadows the class's ``call`` for the duration, then goes."""
    original = layer.call

    def call(*args, **kwargs):
        if what == "input":
            store[key] = args[0]
        out = original(*args, **kwargs)
        if what == "output":
            store[key] = out
        return out

    layer.call = call
    try:
        yield
    finally:
        del layer.call


def grad_cam(model, images, classes=None, *, layer: str | None = None, size=None):
    """Grad-CAM heatmaps, one per image, in [0, 1] (an all-zero map stays zero).

    ``images``: a batch the model takes (raw pixels for the course's models). ``classes``:
    the class to explain per image (default: the predicted one). ``layer``: the feature
    layer's name (default :func:`feature_layer`). ``size``: (height, width) to resize the
    maps to (bilinear); default the feature layer's own resolution.

    Returns ``(heatmaps, probabilities)``. The score is the logit (the softmax's input),
    as in the paper: the probability's gradient vanishes where the model is sure.
    """
    x = tf.convert_to_tensor(np.asarray(images, np.float32))
    if x.shape.rank != 4:
        raise InterpretError(f"images must be a batch (n, height, width, channels), not {x.shape}")
    target = feature_layer(model, layer)
    softmax = _softmax_layer(model)
    store: dict = {}
    with ExitStack() as stack, tf.GradientTape() as tape:
        stack.enter_context(_capture(target, store, "maps", "output"))
        if softmax is not None:
            stack.enter_context(_capture(softmax, store, "scores", "input"))
        probabilities = model(x, training=False)
        if "maps" not in store:
            raise InterpretError(f"layer {target.name} did not run in {model.name}'s forward pass")
        scores = store.get("scores", probabilities)
        chosen = (
            tf.argmax(probabilities, axis=1)
            if classes is None
            else tf.constant(np.broadcast_to(np.asarray(classes, np.int64), (x.shape[0],)))
        )
        picked = tf.gather(tf.cast(scores, tf.float32), chosen, axis=1, batch_dims=1)
        total = tf.reduce_sum(picked)
    maps = store["maps"]
    grads = tape.gradient(total, maps)
    if grads is None:
        raise InterpretError(
            f"the class score does not depend on layer {target.name}; pick a layer before the head"
        )
    weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * tf.cast(maps, tf.float32), axis=-1))
    if size is not None:
        cam = tf.image.resize(cam[..., None], tuple(size), method="bilinear")[..., 0]
    cam = cam.numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    cam = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
    return cam, np.asarray(probabilities, np.float64)


def randomized_copy(model, seed: int = 0):
    """A copy of ``model`` with the same architecture and freshly initialized weights
    (every layer, nested ones too), for the sanity check."""
    keras.utils.set_random_seed(seed)
    copy = keras.models.clone_model(model)
    copy.build(model.input_shape)
    return copy


def rank_correlation(a, b) -> np.ndarray:
    """Spearman's rank correlation of each pair of maps (flattened); a constant map
    correlates 0 with anything (it ranks nothing)."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    out = np.zeros(len(a))
    for i in range(len(a)):
        if np.ptp(a[i]) > 0 and np.ptp(b[i]) > 0:
            out[i] = stats.spearmanr(a[i], b[i]).statistic
    return out


@dataclass
class SanityCheck:
    """Mean rank correlations of the trained model's maps with a randomized model's and
    with its own under tiny noise; ``passed`` when the first is at most half the second."""

    randomized: float
    perturbed: float
    per_image_randomized: np.ndarray
    per_image_perturbed: np.ndarray
    ratio_limit: float = 0.5

    @property
    def passed(self) -> bool:
        return self.randomized <= self.ratio_limit * self.perturbed

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"Grad-CAM sanity check {verdict}: rank correlation with a randomized model "
            f"{self.randomized:.3f}, with itself under noise {self.perturbed:.3f} "
            f"(limit {self.ratio_limit:g}x)"
        )


def sanity_check(
    model,
    images,
    *,
    layer: str | None = None,
    noise: float = 2.0,
    seed: int = 0,
    random_model=None,
) -> SanityCheck:
    """Adebayo et al.'s model-randomization test for Grad-CAM, with a yardstick.

    Both comparisons explain the class the trained model predicts. ``noise`` is the
    standard deviation of the Gaussian pixel noise (in 0..255 units) of the stability
    reference; ``random_model`` defaults to :func:`randomized_copy`.
    """
    images = np.asarray(images, np.float32)
    trained, probabilities = grad_cam(model, images, layer=layer)
    classes = probabilities.argmax(axis=1)
    rng = np.random.default_rng(seed)
    noisy = np.clip(images + rng.normal(0.0, noise, images.shape), 0, 255).astype(np.float32)
    again, _ = grad_cam(model, noisy, classes, layer=layer)
    random_model = random_model if random_model is not None else randomized_copy(model, seed)
    target = feature_layer(model, layer).name
    randomized, _ = grad_cam(random_model, images, classes, layer=target)
    r_random, r_noise = rank_correlation(trained, randomized), rank_correlation(trained, again)
    return SanityCheck(float(r_random.mean()), float(r_noise.mean()), r_random, r_noise)


def gallery_indices(y_true, probabilities, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """``(correct, wrong)``: the ``n`` most confident right and wrong predictions, the
    pairs a learner compares (what the model looks at when right, and when sure and wrong)."""
    y_true = np.asarray(y_true)
    probabilities = np.asarray(probabilities)
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == y_true
    order = np.argsort(-confidence)
    return order[right[order]][:n], order[~right[order]][:n]


# --- calibration ------------------------------------------------------------------------


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


# --- ensembles --------------------------------------------------------------------------


def ensemble_probabilities(members: Sequence) -> np.ndarray:
    """The mean of the members' probability arrays (same images, same class order)."""
    arrays = [np.asarray(p, np.float64) for p in members]
    if not arrays or any(a.shape != arrays[0].shape for a in arrays):
        raise InterpretError(
            f"give one or more probability arrays of one shape, not {[a.shape for a in arrays]}"
        )
    return np.mean(arrays, axis=0)


def accuracy(probabilities, labels) -> float:
    return float(np.mean(np.asarray(probabilities).argmax(axis=1) == np.asarray(labels)))


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


# --- uncertainty and the labeling queue -------------------------------------------------


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


# --- active learning --------------------------------------------------------------------


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
