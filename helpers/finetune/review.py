"""The label review: the training images whose given label a fine-tuned model finds least
plausible go to the review gallery, and the reviewed labels are read back.

The ranking is out of fold (:func:`out_of_fold_losses`), as notebook 02 ranks its
suspects: a model scoring the labels it was trained on has learned them, wrong ones
included, so its own training labels look plausible to it whether they are right or not.
"""

from __future__ import annotations

import numpy as np

from helpers.evaluate import cross_entropy, highest_first, predict_arrays
from helpers.finetune.steps import Recipe, train_finetune
from helpers.quiet import tf


def ranked_losses(probs, y, image_ids, class_names, k: int = 16) -> list[dict]:
    """The ``k`` images whose given label ``y`` has the lowest probability in ``probs``
    (highest cross-entropy), worst first, as :class:`helpers.labeling.ReviewGallery`
    takes them: ``{"image_id", "given", "suggested", "quality", "loss"}`` (quality = the
    given label's probability)."""
    probs, y = np.asarray(probs), np.asarray(y)
    given = probs[np.arange(len(y)), y]
    loss = cross_entropy(probs, y)
    return [
        {
            "image_id": int(image_ids[i]),
            "given": class_names[int(y[i])],
            "suggested": class_names[int(np.argmax(probs[i]))],
            "quality": float(given[i]),
            "loss": float(loss[i]),
        }
        for i in highest_first(loss, k)
    ]


def top_losses(model, x, y, image_ids, class_names, k: int = 16) -> list[dict]:
    """:func:`ranked_losses` of ``model``'s (logits out) predictions on ``x``.

    In sample when ``model`` was trained on ``x, y``; :func:`out_of_fold_losses` is the
    ranking to review labels with."""
    probs = tf.nn.softmax(predict_arrays(model, x)).numpy()
    return ranked_losses(probs, y, image_ids, class_names, k)


def out_of_fold_probs(backbone, x, y, num_classes, recipe: Recipe, folds: int = 3, seed=0):
    """Each image's class probabilities from a model fine-tuned without it.

    The labels are cut into ``folds`` stratified folds (fewer when a class has fewer
    images); for each, ``train_finetune`` runs on the others and predicts it: ``folds``
    fine-tuning runs in all, each on ``(folds - 1) / folds`` of the labels.
    """
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y)
    folds = max(2, min(folds, int(np.bincount(y).min())))
    probs = np.zeros((len(y), num_classes), np.float32)
    cut = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (fit, held) in enumerate(cut.split(np.zeros(len(y)), y)):
        model, _ = train_finetune(backbone, x[fit], y[fit], num_classes, recipe, seed + k)
        probs[held] = tf.nn.softmax(predict_arrays(model, x[held])).numpy()
    return probs


def out_of_fold_losses(
    backbone, x, y, image_ids, class_names, recipe: Recipe, k: int = 16, *, folds=3, seed=0
) -> list[dict]:
    """The ``k`` top losses ranked on :func:`out_of_fold_probs`: every label judged by a
    model that never trained on it, as notebook 02's confident learning judges them."""
    probs = out_of_fold_probs(backbone, x, y, len(class_names), recipe, folds, seed)
    return ranked_losses(probs, y, image_ids, class_names, k)


def reviewed_labels(catalog, annotator: str, reviewer: str, image_ids) -> dict[int, str]:
    """Each image's class: the reviewer's label where there is one, else the annotator's.

    The review never overwrites: both labels stay in the catalog under their names, and
    this view is what training on the cleaned labels reads.
    """
    base = {r["image_id"]: r["class_name"] for r in catalog.labels(annotator)}
    fixes = {}
    if reviewer in catalog.annotators():
        fixes = {r["image_id"]: r["class_name"] for r in catalog.labels(reviewer)}
    return {int(i): fixes.get(int(i), base.get(int(i))) for i in image_ids}
