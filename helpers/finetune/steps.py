"""The fine-tuning steps and the methods they are compared with.

A new head on a frozen backbone, trained or started from the linear probe's solution
(LP-FT); the top blocks unfrozen at a lower learning rate with BatchNorm frozen, and the
result mixed with its start (WiSE-FT); training from scratch with the same architecture;
a linear probe on frozen features; and the learning curve that runs them all on the same
subsets.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass

import numpy as np

from helpers.cards import BackboneError
from helpers.evaluate import model_accuracy, predict_arrays
from helpers.finetune.backbone import Backbone
from helpers.finetune.data import LETTERS, glyph_images
from helpers.models import all_layers, augmentation, build_backbone, preprocessing, with_head
from helpers.pretrain import Source, make_card
from helpers.quiet import keras, tf
from helpers.train import compile_model, fit, make_optimizer, plan_steps


def backbone_blocks(base: keras.Model) -> list[str]:
    """The backbone's block prefixes in order: ``stage1_block1``, ``stage2_block1``... in
    every backbone ``helpers.models`` builds (``resnet_backbone``), ``block_16`` in
    ``keras.applications.MobileNetV2``, ``block1a`` in its EfficientNets."""
    seen: list[str] = []
    for layer in base.layers:
        match = re.match(r"(stage\d+_block\d+|block_?\d+[a-z]?)", layer.name)
        key = match.group(1) if match else None
        if key and key not in seen:
            seen.append(key)
    return seen


def set_backbone_trainable(base: keras.Model, top_blocks: int | None, *, freeze_bn: bool = True):
    """Freeze the whole base (``top_blocks=0``), or unfreeze its last ``top_blocks``
    blocks (None: all of it), with every BatchNormalization layer frozen when
    ``freeze_bn``. Returns the names of the layers left trainable.

    Recompile afterwards: ``compile`` fixes which weights the optimizer updates.
    """
    blocks = backbone_blocks(base)
    if top_blocks is not None and top_blocks > len(blocks):
        raise BackboneError(f"the backbone has {len(blocks)} blocks ({blocks}), not {top_blocks}")
    base.trainable = bool(top_blocks is None or top_blocks > 0)
    if not base.trainable:
        return []
    chosen = blocks if top_blocks is None else blocks[len(blocks) - top_blocks :]
    first = next(
        (i for i, layer in enumerate(base.layers) if layer.name.startswith(tuple(chosen))),
        len(base.layers),
    )
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= first or top_blocks is None
        if freeze_bn and isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return [layer.name for layer in base.layers if layer.trainable and layer.weights]


# Fine-tuning's optimizer: AdamW with a little weight decay, on logits (helpers.train).
OPTIMIZER, WEIGHT_DECAY = "adamw", 1e-4


def compile_classifier(model: keras.Model, learning_rate, *, jit_compile=False) -> keras.Model:
    """``helpers.train.compile_model`` with fine-tuning's optimizer (``make_optimizer``) on
    logits and integer labels; call again after every change of ``trainable``."""
    optimizer = make_optimizer(OPTIMIZER, learning_rate, weight_decay=WEIGHT_DECAY)
    return compile_model(
        model, optimizer, from_logits=True, sparse_labels=True, jit_compile=jit_compile
    )


def bn_moving_stats(model: keras.Model) -> list[np.ndarray]:
    """Every BatchNormalization layer's moving mean and variance (copies), in order."""
    out = []
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            out += [
                keras.ops.convert_to_numpy(v).copy()
                for v in (layer.moving_mean, layer.moving_variance)
            ]
    return out


# -- one run of each method ---------------------------------------------------------------


@dataclass
class Recipe:
    """The budgets of one learning-curve run (steps, not epochs: the training sets differ
    in size by 10x along the curve, and a fixed number of updates keeps it fair)."""

    head_steps: int = 150
    # From the probe's head, 300 steps at 3e-4 (10x below the head's rate: move the
    # pretrained weights gently) were the best measured on the dev set; 150 at 1e-4 and
    # 300 at 1e-3 fell 1-2 points short (see the README's fine-tuning section).
    finetune_steps: int = 300
    scratch_steps: int = 600  # 200 at 3e-3 left scratch near chance on the glyph digits
    head_lr: float = 3e-3
    finetune_lr: float = 3e-4
    scratch_lr: float = 1e-3
    top_blocks: int | None = 2
    batch_size: int = 32
    translate: float = 0.1  # the augmentation's shift: up to this share of the image side
    # Mirror images: in the augmentation, in the probe's training views (probe_views), and
    # at test time in learning_curve (the mean of both views' probabilities, every method).
    flip: bool = False
    dropout: float = 0.2
    head_init: str = "probe"  # full fine-tuning's head: "probe" (LP-FT) or "random" (trained)
    # WiSE-FT's mix of the weights before and after step 2: (1 - a) * start + a * end.
    # 0.5 is Wortsman et al.'s default and the best of a 0..1 grid (step 0.25) on the dev
    # set, where it beat both ends in every run (10 labels per class: start 0.617, end
    # 0.616, mix 0.641). 1.0: no mixing.
    wise_alpha: float = 0.5


def new_head(base, backbone: Backbone, num_classes: int, recipe: Recipe, seed: int):
    """``base`` (a copy of ``backbone.model``) with a new head (``helpers.models.with_head``,
    logits out): the recipe's augmentation, the scaling ``backbone``'s card names, dropout,
    and ``base`` called with ``training=False``.

    The base is called so as Keras's transfer-learning guide does; in Keras 3.15 that
    alone does not keep BatchNormalization frozen during ``fit`` (see the package
    docstring), which is why :func:`set_backbone_trainable` also sets
    ``trainable=False`` on every BN layer.
    """
    pixels = shift_pixels(backbone, recipe)
    augment = augmentation(flip=recipe.flip, translate=pixels, seed=seed)
    return with_head(
        base, num_classes, augment=augment if recipe.flip or pixels else None,
        scale=backbone.card["preprocessing"], dropout=recipe.dropout, frozen=True,
    )  # fmt: skip


def shift_pixels(backbone: Backbone, recipe: Recipe) -> int:
    """The augmentation's largest shift in pixels at the backbone's input size."""
    h, w, _ = backbone.input_shape
    return round(recipe.translate * min(h, w))


def train_steps(
    model, x, y, *, steps: int, learning_rate, batch_size: int, seed: int, schedule=None
) -> int:
    """Train ``model`` (logits out) for ``steps`` updates on the arrays ``x``, ``y``, shuffled
    with ``seed``, through the course's one training path (``helpers.train.fit``: it
    compiles with fine-tuning's optimizer, so call it after every change of
    ``trainable``); whole epochs, the last one run through (``plan_steps``). Returns the
    epochs run. ``schedule`` is ``fit``'s (None: a constant rate)."""
    if steps <= 0:
        return 0
    batch = min(batch_size, len(x))
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(batch)
    plan = plan_steps(math.ceil(len(x) / batch), steps=steps)
    fit(
        model, data, epochs=plan.epochs, optimizer=OPTIMIZER, learning_rate=learning_rate,
        schedule=schedule, warmup=0.1, weight_decay=WEIGHT_DECAY, from_logits=True,
        restore_best=False, jit_compile=False, verbose=0,
    )  # fmt: skip
    return plan.epochs


def clone_backbone(backbone: Backbone, *, weights: bool = True) -> keras.Model:
    """A fresh copy of the backbone (pretrained weights, or ``weights=False``: the same
    architecture newly initialized, for training from scratch)."""
    copy = keras.models.clone_model(backbone.model)
    if weights:
        copy.set_weights(backbone.model.get_weights())
    return copy


def train_scratch(backbone, x, y, num_classes, recipe: Recipe, seed: int) -> keras.Model:
    """The same architecture, newly initialized, trained on ``x, y`` alone.

    Its BatchNorm momentum is capped at 0.9: a run of a few hundred steps is too short
    for Keras's default 0.99 (the moving statistics would still be near their initial
    values, and evaluation near chance), and the baseline must be a fair one.
    """
    keras.utils.set_random_seed(seed)
    base = clone_backbone(backbone, weights=False)
    for layer in all_layers(base):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = min(layer.momentum, 0.9)
    model = new_head(base, backbone, num_classes, recipe, seed)
    train_steps(
        model, x, y, steps=recipe.scratch_steps, learning_rate=recipe.scratch_lr,
        batch_size=recipe.batch_size, seed=seed,
    )  # fmt: skip
    return model


def train_finetune(
    backbone, x, y, num_classes, recipe: Recipe, seed: int, *, full: bool = True
) -> tuple[keras.Model, keras.Model]:
    """Fine-tune a new classifier on ``backbone``; returns (classifier, base).

    Step 1, the head on the frozen backbone: with ``recipe.head_init == "probe"`` and
    ``full``, the head starts as the linear probe's solution (:func:`probe_head_weights`,
    LP-FT) and step 1 is that solve; otherwise a random head is trained for
    ``recipe.head_steps`` (keras-io's recipe, and the "head" method with ``full=False``).
    Step 2 (``full``): unfreeze the top blocks, BN frozen, recompile with the lower rate,
    train on. Training a probe-started head further on its own was measured to lose
    accuracy (dev set, 10 labels per class: 0.617 -> 0.591), so it goes straight to step 2.
    Last (``full``), the weights step 2 trained are mixed with where they started
    (:func:`mix_weights`, ``recipe.wise_alpha``).
    """
    if recipe.head_init not in ("probe", "random"):
        raise ValueError(f'head_init must be "probe" or "random", not {recipe.head_init!r}')
    if not 0.0 <= recipe.wise_alpha <= 1.0:
        raise ValueError(f"wise_alpha must lie in [0, 1], not {recipe.wise_alpha!r}")
    keras.utils.set_random_seed(seed)
    base = clone_backbone(backbone)
    model = new_head(base, backbone, num_classes, recipe, seed)
    set_backbone_trainable(base, 0)
    if full and recipe.head_init == "probe":
        probe = fit_probe(*probe_training_set(backbone, x, y, recipe), seed=seed)
        model.get_layer("logits").set_weights(probe_head_weights(probe, num_classes))
    else:
        train_steps(
            model, x, y, steps=recipe.head_steps, learning_rate=recipe.head_lr,
            batch_size=recipe.batch_size, seed=seed,
        )  # fmt: skip
    if full:
        set_backbone_trainable(base, recipe.top_blocks)
        start = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
        train_steps(
            model, x, y, steps=recipe.finetune_steps, learning_rate=recipe.finetune_lr,
            batch_size=recipe.batch_size, seed=seed,
        )  # fmt: skip
        end = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
        mix_weights(model.trainable_variables, start, end, recipe.wise_alpha)
    return model, base


def mix_weights(variables, start, end, alpha: float) -> None:
    """Set each of ``variables`` to ``(1 - alpha) * start + alpha * end`` (WiSE-FT).

    Wortsman et al., "Robust fine-tuning of zero-shot models" (CVPR 2022): a model
    fine-tuned gently from pretrained weights stays in the same basin of the loss, so
    the straight line between the two ends meets no barrier. Where the loss is convex
    along that line, the mix's loss is at most the average of the ends' (no worse than
    their mean); that the middle often beats *both* ends is the paper's empirical
    finding, not a consequence, so :func:`choose_alpha` picks ``alpha`` on validation
    labels. Only the weights fine-tuning trained change; frozen BatchNorm statistics
    are the same at both ends.
    """
    for variable, a, b in zip(variables, start, end, strict=True):
        variable.assign((1.0 - alpha) * a + alpha * b)


def wise_line(model, start, end, alphas, x, y) -> list[float]:
    """The accuracy of ``model`` on ``x, y`` at each of ``alphas`` along the line from
    ``start`` to ``end`` (its trainable weights, :func:`mix_weights`); the model is left
    at the last alpha."""
    accuracies = []
    for alpha in alphas:
        mix_weights(model.trainable_variables, start, end, float(alpha))
        accuracies.append(model_accuracy(model, x, y))
    return accuracies


def choose_alpha(alphas, accuracies) -> float:
    """The alpha with the highest validation accuracy; among ties, the one nearest 0.5
    (Wortsman et al.'s default): a few dozen validation images tie often, and a tie
    says the data cannot tell those points apart."""
    alphas, accuracies = np.asarray(alphas, float), np.asarray(accuracies, float)
    best = np.flatnonzero(accuracies >= accuracies.max() - 1e-9)
    return float(alphas[best[np.argmin(np.abs(alphas[best] - 0.5))]])


def pooled_features(backbone: Backbone, x: np.ndarray) -> np.ndarray:
    """The frozen backbone's pooled features of raw images, scaled as its card says."""
    return features_of_each(backbone, [x])[0]


def features_of_each(backbone: Backbone, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """:func:`pooled_features` of each array of images (eagerly: nothing to trace),
    computed only for images whose features ``backbone.features`` does not hold yet
    (keyed by the image's shape, type and a digest of its pixels)."""
    scale = keras.Sequential([preprocessing(scale=backbone.card["preprocessing"]), backbone.model])
    found = []
    for x in arrays:
        keys = [(img.shape, img.dtype.str, hashlib.blake2b(img.tobytes()).digest()) for img in x]
        todo = [i for i, key in enumerate(keys) if key not in backbone.features]
        for start in range(0, len(todo), 4096):  # bounded copies, whatever the images' size
            part = todo[start : start + 4096]
            rows = predict_arrays(scale, x[part])
            backbone.features.update(zip([keys[i] for i in part], rows, strict=True))
        found.append(np.array([backbone.features[key] for key in keys]))
    return found


def probe_views(x: np.ndarray, *, flip: bool, shift: int) -> list[np.ndarray]:
    """The training augmentation as fixed views for the linear probe: the images, the
    images shifted ``shift`` pixels up, down, left and right (reflect padding, as the
    augmentation pads), and with ``flip`` each of these mirrored left-right.

    Scratch and fine-tuning see a random draw of the augmentation at every step; the
    probe is solved once on fixed features, so it gets the augmentation as views, and a
    fair comparison gives every method the same one. Measured in notebook 08's laptop
    run (five classes of photos, 3 seeds): at 10 and 20 labels per class the probe rose
    from 0.612 and 0.652 (the images alone, ``C=0.1``) to 0.635 and 0.678 (these 10
    views, ``PROBE_C``), and to 0.638 and 0.689 with flip TTA, while scratch's flip TTA
    moved it by +0.4 and -0.2 points.
    """
    shifted = [x]
    if shift:
        h, w = x.shape[1:3]
        padded = np.pad(x, ((0, 0), (shift, shift), (shift, shift), (0, 0)), mode="reflect")
        for dy, dx in ((-shift, 0), (shift, 0), (0, -shift), (0, shift)):
            top, left = shift + dy, shift + dx
            shifted.append(padded[:, top : top + h, left : left + w])
    return shifted + [v[:, :, ::-1] for v in shifted] if flip else shifted


def probe_training_set(backbone: Backbone, x, y, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """The probe's training set: the pooled features of every view of ``x`` that
    ``recipe``'s augmentation makes (:func:`probe_views`), stacked, and ``y`` repeated
    to match."""
    views = probe_views(x, flip=recipe.flip, shift=shift_pixels(backbone, recipe))
    return np.concatenate(features_of_each(backbone, views)), np.tile(np.asarray(y), len(views))


# A feature is standardized by its own spread, but never by less than this fraction of the
# features' mean spread: see fit_probe.
PROBE_SCALE_FLOOR = 0.1
# The probe's inverse L2 strength: of 0.01, 0.03 and 0.1 on notebook 08's laptop data
# (10 views, 10 and 20 labels per class, 3 seeds), 0.01 scored highest (0.635 / 0.678,
# against 0.626 / 0.663 at 0.1); with ten views per label, a stronger penalty pays.
PROBE_C = 0.01


def fit_probe(train_features, y_train, *, seed: int = 0):
    """The linear probe: logistic regression on standardized frozen features (a
    scikit-learn pipeline, fitted).

    Each feature's scale is floored at ``PROBE_SCALE_FLOOR`` times the mean spread. A
    nearly dead ReLU channel (its pooled value almost always 0, a spread of 1e-4 where
    the others have 1e-2) would otherwise be blown up to unit variance: the probe then
    leans on its noise, and the folded head (:func:`probe_head_weights`) gets weights
    in the hundreds on it. Those weights set each output's int8 range in notebook 09, so
    every other weight of that output rounds to 0 (measured: int8 lost 14.7 points of
    the float model's 44.7% before the floor).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_features)
    # The mean of the features' own spreads (scale_ says 1 for a constant feature).
    floor = PROBE_SCALE_FLOOR * float(np.mean(np.sqrt(scaler.var_)))
    scaler.scale_ = np.maximum(scaler.scale_, floor)
    logreg = LogisticRegression(C=PROBE_C, max_iter=3000, random_state=seed)
    logreg.fit(scaler.transform(train_features), y_train)
    return make_pipeline(scaler, logreg)


def linear_probe(
    train_features, y_train, test_features, y_test, *, seed: int = 0, mirrored_test=None
) -> float:
    """How linearly separable the new classes already are in the pretrained feature
    space, with no network training: the probe's test accuracy. ``mirrored_test``: the
    features of the test images mirrored, for flip TTA (the two views' probabilities
    averaged)."""
    probe = fit_probe(train_features, y_train, seed=seed)
    if mirrored_test is None:
        return float(probe.score(test_features, y_test))
    p = probe.predict_proba(test_features) + probe.predict_proba(mirrored_test)
    return float(np.mean(probe.classes_[p.argmax(axis=1)] == np.asarray(y_test)))


def probe_head_weights(probe, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A fitted probe as the head's Dense kernel and bias, the standardization folded in:
    ``((f - mean) / scale) @ coef.T + intercept == f @ kernel + bias``. A class the probe
    never saw gets a zero kernel column and a bias far below the others.

    Starting the head here instead of at random is LP-FT (Kumar et al., "Fine-Tuning can
    Distort Pretrained Features", ICLR 2022): the first fine-tuning gradients then come
    from a head that already fits, not from random weights that pull the features apart.
    """
    scaler, logreg = probe[0], probe[-1]
    coef, intercept = logreg.coef_, logreg.intercept_
    if coef.shape[0] == 1:  # two classes: scikit-learn keeps one logit, for classes_[1]
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, intercept[0]])
    weights = coef / scaler.scale_
    biases = intercept - weights @ scaler.mean_
    kernel = np.zeros((coef.shape[1], num_classes), np.float32)
    bias = np.full(num_classes, biases.min() - 20.0, np.float32)
    kernel[:, logreg.classes_] = weights.T
    bias[logreg.classes_] = biases
    return kernel, bias


def per_class_subset(y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Indices of ``n`` examples per class (all of a class that has fewer; None: all)."""
    y = np.asarray(y)
    if n is None:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    picks = [
        rng.choice(np.flatnonzero(y == c), min(n, int(np.sum(y == c))), replace=False)
        for c in np.unique(y)
    ]
    return np.sort(np.concatenate(picks))


METHODS = ("scratch", "probe", "head", "finetune")


def learning_curve(
    backbone: Backbone,
    x_train, y_train, x_test, y_test,
    labels_per_class, seeds, *,
    recipe: Recipe | None = None,
    num_classes: int | None = None,
    methods=METHODS,
    progress=print,
) -> list[dict]:  # fmt: skip
    """One row per (labels per class, seed, method): ``{"n", "seed", "method",
    "accuracy", "train_size"}``, every method trained on the same subset and scored on
    the same test split, with flip TTA where ``recipe.flip`` (the probe trains on the
    augmentation's views, :func:`probe_views`). ``labels_per_class`` holds ints and
    ``"all"``."""
    recipe = recipe or Recipe()
    num_classes = num_classes or int(max(y_train.max(), y_test.max()) + 1)
    rows = []
    tta = recipe.flip
    if "probe" in methods:
        feats_test, mirrored = features_of_each(backbone, [x_test, x_test[:, :, ::-1]])
    for n in labels_per_class:
        for seed in seeds:
            idx = per_class_subset(y_train, None if n == "all" else int(n), seed)
            xs, ys = x_train[idx], y_train[idx]
            got = {}
            if "scratch" in methods:
                scratch = train_scratch(backbone, xs, ys, num_classes, recipe, seed)
                got["scratch"] = model_accuracy(scratch, x_test, y_test, tta=tta)
            if "probe" in methods:
                got["probe"] = linear_probe(
                    *probe_training_set(backbone, xs, ys, recipe), feats_test, y_test,
                    seed=seed, mirrored_test=mirrored if tta else None,
                )  # fmt: skip
            if "head" in methods:
                head, _ = train_finetune(backbone, xs, ys, num_classes, recipe, seed, full=False)
                got["head"] = model_accuracy(head, x_test, y_test, tta=tta)
            if "finetune" in methods:
                model, _ = train_finetune(backbone, xs, ys, num_classes, recipe, seed)
                got["finetune"] = model_accuracy(model, x_test, y_test, tta=tta)
            for method, acc in got.items():
                row = {"n": n, "seed": seed, "method": method, "accuracy": acc}
                rows.append({**row, "train_size": len(idx)})
            if progress:
                progress(f"n={n} seed={seed} " + " ".join(f"{m} {a:.3f}" for m, a in got.items()))
    return rows


def summarize(rows: list[dict]) -> dict[tuple, tuple[float, float, int]]:
    """``{(n, method): (mean, std, runs)}`` over seeds."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["n"], r["method"]), []).append(r["accuracy"])
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in groups.items()}


def metric_names(summary) -> dict[str, float]:
    """The runner's stable names: ``scratch_acc_10``, ``probe_acc_all``, ... (means)."""
    return {f"{method}_acc_{n}": mean for (n, method), (mean, _, _) in summary.items()}


def pretrain_fallback(
    chars: str = LETTERS,
    n: int = 20000,
    *,
    size: int = 32,
    channels: int = 3,
    width: int = 32,
    depth=(1, 1, 1),
    epochs: int = 3,
    seed: int = 0,
    batch_size: int = 128,
) -> tuple[Backbone, float]:
    """Pretrain notebook 07's ResNet backbone at a small size (``width``, ``depth``; BN
    momentum 0.9, for a run of a few hundred steps) on :func:`glyph_images` of
    ``chars``; return the backbone with its card (the "backbone" schema, as 07 writes
    it) and the accuracy on a held-out fifth.

    For when notebook 07 has not written a backbone: notebook 08 then still runs alone.
    """
    start = time.time()
    x, y = glyph_images(chars, n, size=size, channels=channels, seed=seed)
    cut = n * 4 // 5
    keras.utils.set_random_seed(seed)
    architecture = {
        "family": "resnet", "width": width, "depth": list(depth), "bn_momentum": 0.9,
        "zero_init": False,
    }  # fmt: skip
    base = build_backbone(architecture, (size, size, channels))
    model = with_head(base, len(chars))
    train_steps(
        model, x[:cut], y[:cut], steps=epochs * math.ceil(cut / batch_size),
        learning_rate=3e-3, batch_size=batch_size, seed=seed, schedule="cosine",
    )  # fmt: skip
    accuracy = model_accuracy(model, x[cut:], y[cut:])
    source = Source(
        "glyph letters (notebook 08 fallback)", x[:cut], y[:cut], x[cut:], y[cut:],
        list(chars), f"helpers.finetune.glyph_images: {n} images of {len(chars)} letters",
        "generated (CC0)",
    )  # fmt: skip
    card = make_card(
        base, source, architecture=architecture, test_accuracy=accuracy, seed=seed,
        precision=keras.mixed_precision.global_policy().name,
        minutes=(time.time() - start) / 60, epochs=epochs,
    )  # fmt: skip
    return Backbone(base, card, "pretrain_fallback"), accuracy
