"""Grad-CAM (Selvaraju et al., 2017) and its sanity check (Adebayo et al., 2018).

The gradient of the class score with respect to the last spatial feature maps, averaged
over the map, weighs each map; their weighted sum, rectified, is the heatmap.
:func:`grad_cam` works on any Keras model (functional, Sequential, nested backbones as
:mod:`helpers.models` builds them, residual graphs): it captures the feature layer's
output and the softmax's input during one ordinary forward pass under a
``GradientTape``, so no model is rebuilt and no private Keras API is used. A heatmap
that stays the same when the weights are randomized explains the image, not the model:
:func:`sanity_check` measures the Spearman rank correlation of the trained model's maps
with a randomized copy's, against the trained model's maps of the same images under
pixel noise too small to matter (the map's own stability). The method passes when the
first is at most half the second.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import numpy as np
from scipy import stats

from helpers.interpret.errors import InterpretError
from helpers.models import softmax_layer
from helpers.quiet import keras, tf


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
    softmax = softmax_layer(model)
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
