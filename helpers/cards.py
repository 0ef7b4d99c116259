"""A backbone's model card: the file names, the reader, the writer and the one check.

The card (``card.json`` next to ``backbone.keras``) says what a backbone expects: input
size, channels, and how raw 0..255 pixels are scaled (``preprocessing``). Fed anything
else, a backbone's features are quietly wrong, so whoever feeds one checks its card
first. Notebook 07 (``helpers.pretrain``) writes cards and checks its own; notebook 08
(``helpers.finetune``) reads them, checks them against the data and against the model
they sit next to, and writes one for the model it exports. One set of names, one
reader and one check serve all three, here below both packages: plain JSON and files,
no TensorFlow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers.files import write_atomic

CARD_JSON = "card.json"
CARD_MD = "card.md"
MODEL_FILE = "backbone.keras"
# How raw 0..255 pixels are scaled before the backbone's first layer (the card's "preprocessing").
PREPROCESSING = {
    "unit": "x / 255, to [0, 1]",
    "symmetric": "x / 127.5 - 1, to [-1, 1] (keras.applications MobileNet, EfficientNetV2)",
    "raw": "0..255 as they are (the backbone scales its input itself)",
}
# What every card must say for its backbone to be fed correctly.
CARD_FIELDS = ("input_size", "channels", "preprocessing")


class BackboneError(ValueError):
    """A backbone that cannot be used as asked; the message says what to do."""


class CardMismatch(BackboneError):
    """The model card disagrees with the data, with the model it sits next to, or lacks a
    field; the message names each field."""


class CardMissing(BackboneError, FileNotFoundError):
    """No ``card.json`` where a backbone should be."""


def check_card(card: dict, expected: dict, *, what: str = "the data") -> None:
    """Refuse a card that disagrees with ``expected`` on input size, channels or
    preprocessing, naming every field that differs with both values.

    ``expected`` holds any of :data:`CARD_FIELDS`; a field that is absent or None is not
    checked. A field the card lacks counts as a difference: a backbone whose
    preprocessing nobody wrote down cannot be fed correctly.
    """
    differ = []
    for key in CARD_FIELDS:
        want = expected.get(key)
        if want is None:
            continue
        have = card.get(key)
        if key == "input_size":
            want = [int(v) for v in want]
            have = None if have is None else [int(v) for v in have]
        elif key == "channels":
            want, have = int(want), None if have is None else int(have)
        if have != want:
            differ.append(f"{key.replace('_', ' ')}: card {have!r}, {what} {want!r}")
    if differ:
        raise CardMismatch(
            f"the backbone's model card does not match {what}: " + "; ".join(differ) + ". "
            "Feed the backbone what its card says (resize and scale your images so, or in "
            "notebook 08 set IMAGE_SIZE, CHANNELS and PREPROCESSING to None to take them "
            "from the card), or pretrain one for this data with notebook 07."
        )


def read_card(folder: str | os.PathLike, required=CARD_FIELDS) -> dict:
    """The card in ``folder`` (or the ``card.json`` path given), refused with
    :class:`CardMismatch` when it lacks any field ``required`` names."""
    path = Path(folder)
    path = path if path.suffix == ".json" else path / CARD_JSON
    if not path.is_file():
        raise CardMissing(
            f"no model card at {path}: a backbone folder holds {MODEL_FILE} and {CARD_JSON}, "
            "which notebook 07 writes (its BACKBONE_DIR)"
        )
    card = json.loads(path.read_text(encoding="utf-8"))
    require_fields(card, required, f"the model card {path}")
    return card


def require_fields(
    card: dict,
    required=CARD_FIELDS,
    what: str = "the model card",
    remedy: str = "rewrite it with notebook 07",
) -> None:
    """Refuse ``card`` with :class:`CardMismatch` when it lacks a field ``required`` names;
    the message ends with ``remedy``, what to do about it."""
    missing = [k for k in required if k not in card]
    if missing:
        raise CardMismatch(f"{what} lacks {missing}: {remedy}")


def card_markdown(card: dict) -> str:
    """A plain ``card.md``: the name as a title, then one line per field."""
    lines = [f"# Model card: {card.get('name', 'model')}", ""]
    lines += [f"- **{k.replace('_', ' ')}**: {v}" for k, v in card.items() if k != "name"]
    return "\n".join(lines) + "\n"


def write_card(folder: str | os.PathLike, card: dict, markdown: str | None = None) -> Path:
    """Write ``card.md`` (``markdown``, or :func:`card_markdown`'s) and then ``card.json``
    into ``folder``, each atomically; returns the JSON's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = markdown if markdown is not None else card_markdown(card)
    write_atomic(folder / CARD_MD, text.encode("utf-8"))
    write_atomic(folder / CARD_JSON, (json.dumps(card, indent=2) + "\n").encode("utf-8"))
    return folder / CARD_JSON


def save_with_card(model, folder: str | os.PathLike, card: dict, markdown: str | None = None):
    """Save a Keras ``model`` as ``backbone.keras`` in ``folder``, then its card: the model
    goes in under a temporary name first, so a folder with a card always has its whole
    model (an interrupted save leaves the old pair or no card)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{MODEL_FILE}"
    model.save(tmp)
    os.replace(tmp, folder / MODEL_FILE)
    write_card(folder, card, markdown)
    return folder
