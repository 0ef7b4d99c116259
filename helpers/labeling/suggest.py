"""Model suggestions for labeling: a cheap pixel classifier, stored as annotator "model"."""

from __future__ import annotations

import numpy as np

from helpers.catalog import Catalog, CatalogError

MODEL_ANNOTATOR = "model"


def pixel_features(catalog: Catalog, image_ids, size: int = 16) -> np.ndarray:
    """Grayscale pixels resized to ``size`` x ``size``, scaled to [0, 1], one row per image.

    Cheap on purpose: a suggestion model must retrain in a second between labeling
    rounds; a linear model on pixels is enough to order a queue by uncertainty.
    """
    from PIL import Image

    rows = []
    for image_id in image_ids:
        with Image.open(catalog.image_path(int(image_id))) as im:
            im = im.convert("L").resize((size, size), Image.BILINEAR)
            rows.append(np.asarray(im, dtype=np.float32).reshape(-1) / 255.0)
    return np.stack(rows) if rows else np.zeros((0, size * size), dtype=np.float32)


def margin_uncertainty(probs: np.ndarray) -> np.ndarray:
    """1 - (top probability - second probability): 1 means a coin toss, 0 means sure."""
    probs = np.asarray(probs, dtype=float)
    if probs.shape[1] == 1:
        return np.zeros(len(probs))
    top2 = np.sort(probs, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def fit_suggestions(
    catalog: Catalog,
    annotator: str,
    image_ids,
    *,
    model_annotator: str = MODEL_ANNOTATOR,
    seed: int = 0,
) -> dict[int, tuple[str, float]]:
    """Train on ``annotator``'s labels, suggest a class for every other image in ``image_ids``.

    Predictions are stored as labels of ``model_annotator`` with source ``model`` and
    the top probability as confidence, so they survive a restart and a
    :class:`ClassAnnotator` with ``suggest_from=model_annotator`` shows them. Returns
    ``{image_id: (class, confidence)}`` for the images that got a suggestion.
    """
    from sklearn.linear_model import LogisticRegression

    image_ids = [int(i) for i in image_ids]
    labeled = {
        r["image_id"]: r["class_name"]
        for r in catalog.labels(annotator)
        if r["status"] == "labeled" and r["class_name"] is not None
    }
    train = [i for i in image_ids if i in labeled]
    if len({labeled[i] for i in train}) < 2:
        raise CatalogError(
            f"{annotator!r} has labeled fewer than 2 classes among these images; label a few"
            " images of each class by hand first"
        )
    have = {r["image_id"] for r in catalog.labels(annotator)}  # unsure and skipped too
    rest = [i for i in image_ids if i not in have]
    model = LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
    model.fit(pixel_features(catalog, train), [labeled[i] for i in train])
    if not rest:
        return {}
    probs = model.predict_proba(pixel_features(catalog, rest))
    suggestions = {}
    for image_id, p in zip(rest, probs, strict=True):
        k = int(np.argmax(p))
        name, conf = str(model.classes_[k]), float(p[k])
        catalog.set_label(
            image_id, name, annotator=model_annotator, source="model", confidence=conf
        )
        suggestions[image_id] = (name, conf)
    return suggestions
