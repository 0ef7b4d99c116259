"""A pretrained backbone's model card (``helpers.cards``'s "backbone" schema): made here
from the run, saved with the backbone by the course's one writer."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import devices, models
from helpers.cards import save_with_card
from helpers.pretrain.sources import Source

BACKBONE_PREPROCESSING = "raw"  # 0..255 in; the backbone resizes and scales inside


def make_card(
    backbone,
    source: Source,
    *,
    architecture: dict,
    test_accuracy: float,
    seed: int,
    precision: str,
    minutes: float,
    **extra,
) -> dict:
    """The model card of a pretrained ``backbone`` (``helpers.cards.SCHEMA['backbone']``)."""
    h, w, c = source.input_shape
    card = {
        "name": f"{architecture.get('family', 'resnet')} backbone pretrained on {source.name}",
        "source_data": source.source,
        "license": source.license,
        "classes": list(source.class_names),
        "num_classes": len(source.class_names),
        "train_images": int(len(source.y_train)),
        "input_size": [int(h), int(w)],
        "channels": int(c),
        "preprocessing": BACKBONE_PREPROCESSING,
        "preprocessing_inside": (
            f"raw 0..255 pixels in; the backbone resizes to {h}x{w} and scales by 1/255"
        ),
        "architecture": architecture,
        "parameters": int(backbone.count_params()),
        "flops_per_image": int(models.count_flops(backbone, (h, w, c))),
        "feature_size": int(backbone.output_shape[-1]),
        "source_test_accuracy": round(float(test_accuracy), 4),
        "seed": int(seed),
        "versions": devices.versions(),
        "device": devices.device_name(),
        "precision": precision,
        "minutes": round(float(minutes), 2),
    }
    card.update(extra)
    return card


def save_backbone(backbone, folder: str | os.PathLike, card: dict) -> Path:
    """Write ``backbone.keras``, ``card.md`` and ``card.json`` into ``folder`` (the card
    last, so a folder with a card always has its model); the card must hold every field
    of ``helpers.cards.SCHEMA['backbone']`` (build it with :func:`make_card`)."""
    # In float32 whatever it trained in (the card's "precision" says that): whoever loads
    # it computes in the precision of their own machine (models.with_dtype_policy).
    saved = models.with_dtype_policy(backbone, "float32")
    return save_with_card(saved, folder, card)
