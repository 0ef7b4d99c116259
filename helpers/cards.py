"""A backbone's model card: the file names, the reader, the writer and the one check.

The card (``card.json`` next to ``backbone.keras``) says what a backbone expects: input
size, channels, and how raw 0..255 pixels are scaled (``preprocessing``). Fed anything
else, a backbone's features are quietly wrong, so whoever feeds one checks its card
first. Notebook 07 (``helpers.pretrain``) writes cards and checks its own; notebook 08
(``helpers.finetune``) reads them, checks them against the data and against the model
they sit next to, and writes one for the model it exports. One set of names, one
reader and one check serve all three, here below both packages: plain JSON and files,
no TensorFlow.

The same reader (:func:`read_json`) and type check (:func:`check_fields`) serve every
JSON file that travels beside a model: a card, ``python -m helpers predict``'s
``<model>.classes.json`` and a ``.tflite`` file's ``MODEL.json``. Such a file comes
from anywhere; a field of the wrong type does not fail where it is read but later and
quietly (a string ``"abc"`` of class names prints the letter ``b`` as a class), so
every field is checked for its type where the file is read.
"""

from __future__ import annotations

import json
import os
import stat
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
# A card or side-car holds a few kilobytes; a file past this is not one, and is refused
# before it is read (parsing holds the whole text, and several times it, in memory).
MAX_CARD_BYTES = 4_000_000


class BackboneError(ValueError):
    """A backbone that cannot be used as asked; the message says what to do."""


class CardMismatch(BackboneError):
    """The model card (or a side-car) disagrees with the data, with the model it sits next
    to, lacks a field, holds a field of the wrong type or is no JSON object; the message
    names the file and each field."""


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
    :class:`CardMismatch` when it is no JSON object, lacks any field ``required`` names
    or holds a field of the wrong type (:func:`check_fields`)."""
    path = Path(folder)
    path = path if path.suffix == ".json" else path / CARD_JSON
    if not path.is_file():
        raise CardMissing(
            f"no model card at {path}: a backbone folder holds {MODEL_FILE} and {CARD_JSON}, "
            "which notebook 07 writes (its BACKBONE_DIR)"
        )
    what, remedy = f"the model card {path}", "rewrite it with notebook 07"
    return check_fields(read_json(path, what, remedy), what, required=required, remedy=remedy)


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def positive_ints(n: int, meaning: str) -> tuple:
    """The rule for a list of ``n`` positive integers (``meaning`` names them)."""
    return (
        lambda v: isinstance(v, list) and len(v) == n and all(_positive_int(x) for x in v),
        f"a list of {n} positive integers {meaning}",
    )


def _names(value) -> bool:
    return (
        isinstance(value, list)
        and all(isinstance(n, str) and n.strip() for n in value)
        and len(set(value)) == len(value)
    )


# Each field a card or side-car may hold that someone reads: (test, what it must be).
FIELD_TYPES = {
    "input_size": positive_ints(2, "[height, width]"),
    "channels": (lambda v: _positive_int(v) and v in (1, 3), "1 (grayscale) or 3 (RGB)"),
    "preprocessing": (
        lambda v: isinstance(v, str) and v in PREPROCESSING,
        f"one of {list(PREPROCESSING)}",
    ),
    "classes": (_names, "a list of distinct, non-empty strings"),
    "class_names": (_names, "a list of distinct, non-empty strings"),
    "num_classes": (_positive_int, "a positive integer"),
}


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's first line, cut at ``limit`` characters, for quoting a library's
    reason in a message of ours: Keras's and TensorFlow Lite's can run to pages (a
    whole model config)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(value) -> str:
    """A value as an error shows it: its JSON type and the start of its text."""
    if value is None:
        return "null"
    kind = {bool: "true/false", str: "a string", list: "a list", dict: "an object"}
    text = json.dumps(value)
    return f"{kind.get(type(value), 'a number')} {text if len(text) <= 40 else text[:37] + '...'}"


def check_fields(
    card,
    what: str,
    *,
    required=(),
    types: dict | None = None,
    remedy: str = "rewrite it with the notebook or helper that wrote it",
) -> dict:
    """``card`` itself once it is a JSON object holding every field ``required`` names,
    each field of ``types`` (default :data:`FIELD_TYPES`) it holds of its type; else
    :class:`CardMismatch` naming every wrong field, what it must be and what it is.

    A field that is absent, or null without being required, is not checked: the reader
    decides what its absence means.
    """
    if not isinstance(card, dict):
        raise CardMismatch(f"{what} must be a JSON object, not {_shown(card)}: {remedy}")
    require_fields(card, required, what, remedy)
    wrong = [
        f"{key} must be {meaning}, not {_shown(card[key])}"
        for key, (test, meaning) in (FIELD_TYPES if types is None else types).items()
        if key in card and (card[key] is not None or key in required) and not test(card[key])
    ]
    if wrong:
        raise CardMismatch(f"{what}: " + "; ".join(wrong) + f": {remedy}")
    return card


def read_json(path: str | os.PathLike, what: str, remedy: str = "write it again") -> object:
    """The JSON value in the file at ``path``, or :class:`CardMismatch` saying why not.

    ``stat`` first: a FIFO or a device would block or never end, and a file past
    :data:`MAX_CARD_BYTES` is no card; then the text must be UTF-8 JSON. ``what``
    names the file in the message, ``remedy`` ends it.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise CardMismatch(f"{what}: cannot read it ({exc.strerror or exc}): {remedy}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise CardMismatch(f"{what} is not a regular file: {remedy}")
    if info.st_size > MAX_CARD_BYTES:
        raise CardMismatch(
            f"{what} holds {info.st_size:,} bytes, more than a card's limit of "
            f"{MAX_CARD_BYTES:,}: {remedy}"
        )
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CardMismatch(f"{what} is not UTF-8 text: {remedy}") from exc
    except json.JSONDecodeError as exc:
        raise CardMismatch(
            f"{what} is not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno}): {remedy}"
        ) from exc
    except RecursionError as exc:
        raise CardMismatch(f"{what} is JSON nested too deeply to be a card: {remedy}") from exc


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
