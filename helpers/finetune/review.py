"""The label review: the fine-tuned model's top losses on its training labels go to the
review gallery, and the reviewed labels are read back."""

from __future__ import annotations

import numpy as np

from helpers.evaluate import cross_entropy, highest_first
from helpers.quiet import tf


def top_losses(model, x, y, image_ids, class_names, k: int = 16) -> list[dict]:
    """The ``k`` training images whose given label the model finds least plausible,
    worst first, as :class:`helpers.labeling.ReviewGallery` takes them: ``{"image_id",
    "given", "suggested", "quality", "loss"}`` (quality = the given label's probability).

    ``model`` outputs logits (``helpers.models.with_head``); their softmax is ranked as
    ``helpers.evaluate.Evaluation.top_losses`` ranks a test split's probabilities."""
    probs = tf.nn.softmax(model.predict(x, batch_size=512, verbose=0)).numpy()
    given = probs[np.arange(len(y)), y]
    loss = cross_entropy(probs, y)
    order = highest_first(loss, k)
    return [
        {
            "image_id": int(image_ids[i]),
            "given": class_names[int(y[i])],
            "suggested": class_names[int(np.argmax(probs[i]))],
            "quality": float(given[i]),
            "loss": float(loss[i]),
        }
        for i in order
    ]


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
