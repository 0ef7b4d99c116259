"""Closing the loop: the fine-tuned model's top losses go to the review gallery, the
reviewed labels are read back; and the export with its preprocessing and card."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.cards import CARD_FIELDS, write_card
from helpers.finetune.backbone import Backbone
from helpers.predict import save_model
from helpers.quiet import keras, tf


def top_losses(model, x, y, image_ids, class_names, k: int = 16) -> list[dict]:
    """The ``k`` training images whose given label the model finds least plausible,
    worst first, as :class:`helpers.quality.ReviewGallery` takes them: ``{"image_id",
    "given", "suggested", "quality", "loss"}`` (quality = the given label's probability)."""
    probs = tf.nn.softmax(model.predict(x, batch_size=512, verbose=0)).numpy()
    given = probs[np.arange(len(y)), y]
    loss = -np.log(np.clip(given, 1e-12, 1.0))
    order = np.argsort(-loss)[:k]
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


# -- export -------------------------------------------------------------------------------


def save_finetuned(
    model: keras.Model, backbone: Backbone, folder, *, class_names, fine_tuned_on: dict
) -> Path:
    """Save ``model`` as ``model.keras`` (with its resize and scaling inside, so it takes
    raw images of any size) and a card saying what it was fine-tuned from and on."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    h, w, c = backbone.input_shape
    inputs = keras.Input((None, None, c), name="image")
    x = keras.layers.Resizing(h, w, name="resize")(inputs)
    outputs = keras.layers.Softmax(name="probabilities", dtype="float32")(model(x, training=False))
    export = keras.Model(inputs, outputs, name="finetuned")
    path = save_model(export, folder / "model.keras", class_names)  # + the classes side car
    card = {
        "name": "fine-tuned classifier",
        "backbone": backbone.card.get("name"),
        "backbone_source": backbone.source,
        "backbone_card": {
            k: backbone.card.get(k) for k in ("source_data", "architecture", *CARD_FIELDS)
        },
        "classes": list(class_names),
        "fine_tuned_on": fine_tuned_on,
        "input": f"raw images of any size with {c} channel(s), 0..255; resized to {h}x{w} inside",
        "output": "class probabilities (softmax), in the order of classes",
        "keras": keras.__version__,
    }
    write_card(folder, card)
    return path
