"""Every saved model's card: the schema, the one writer, the one reader and the one check.

A card says what a saved model expects and what it is: input size, channels, how raw
0..255 pixels are scaled (``preprocessing``), its classes, where it came from. Fed
anything else, a backbone's features are quietly wrong, so whoever feeds one checks its
card first. :data:`SCHEMA` names each kind of saved model and what its card must hold:

- ``"backbone"``: ``backbone.keras`` and ``card.json`` (+ ``card.md``), written by
  notebook 07 (``helpers.pretrain``) and by notebook 08's fallback; read by 08;
- ``"finetuned"``: notebook 08's ``model.keras`` and its card, read by notebook 09;
- ``"tflite"``: the ``MODEL.json`` beside each ``MODEL.tflite`` of notebook 09
  (``helpers.export``), read by ``python -m helpers predict``.

:func:`write_card` refuses a card its own :func:`read_card` would refuse, so every card
written reads back. Plain JSON and files here, no TensorFlow.

The same reader (:func:`read_json`) and type check (:func:`check_fields`) also serve
``python -m helpers predict``'s ``<model>.classes.json``. Such a file comes from
anywhere; a field of the wrong type does not fail where it is read but later and
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

# The card of a backbone: what it needs to be fed, what it is, and how it was made.
BACKBONE_FIELDS = (
    "name",
    "source_data",
    "license",
    "classes",
    "input_size",
    "channels",
    "preprocessing",
    "architecture",
    "parameters",
    "flops_per_image",
    "source_test_accuracy",
    "seed",
    "versions",
    "device",
    "precision",
    "minutes",
)
TFLITE_KINDS = ("float32", "int8")
# Each kind of saved model: (the fields its card must hold, the types of those it holds).
SCHEMA = {
    "backbone": (BACKBONE_FIELDS, FIELD_TYPES),
    "finetuned": (
        ("name", "classes", "input_size", "channels", "backbone", "fine_tuned_on", "versions"),
        FIELD_TYPES,
    ),
    # MODEL.json: every field's type; a field left out is read from the .tflite file.
    "tflite": (
        (),
        {
            **FIELD_TYPES,
            "input_size": positive_ints(3, "[height, width, channels]"),
            "kind": (
                lambda v: isinstance(v, str) and v in TFLITE_KINDS,
                f"one of {list(TFLITE_KINDS)}",
            ),
        },
    ),
}
# What to do about a card that is refused, by kind.
REMEDY = {
    "backbone": "rewrite it with notebook 07",
    "finetuned": "run notebook 08 again to rewrite it",
    "tflite": "export the model again with helpers.export.export_tflite, or remove it",
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
    missing = [k for k in required if k not in card]
    wrong = [
        f"{key} must be {meaning}, not {_shown(card[key])}"
        for key, (test, meaning) in (FIELD_TYPES if types is None else types).items()
        if key in card and (card[key] is not None or key in required) and not test(card[key])
    ]
    if missing or wrong:  # every problem in one message, the missing fields first
        head = f"{what} lacks {missing}" if missing else what
        problems = f": {'; '.join(wrong)}" if wrong else ""
        raise CardMismatch(f"{head}{problems}: {remedy}")
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


def _card_path(path: str | os.PathLike) -> Path:
    """A folder's ``card.json``, or the ``.json`` file named itself."""
    path = Path(path)
    return path if path.suffix == ".json" else path / CARD_JSON


def check_schema(card, schema: str, what: str) -> dict:
    """``card`` when it holds every field the kind of saved model ``schema`` requires
    (:data:`SCHEMA`), each of its type; else :class:`CardMismatch` naming them."""
    if schema not in SCHEMA:
        raise ValueError(f"schema must be one of {list(SCHEMA)}, not {schema!r}")
    required, types = SCHEMA[schema]
    return check_fields(card, what, required=required, types=types, remedy=REMEDY[schema])


def read_card(path: str | os.PathLike, schema: str = "backbone") -> dict:
    """The card in the folder ``path`` (its ``card.json``) or in the ``.json`` file
    ``path``, refused with :class:`CardMismatch` when it is no JSON object, lacks a field
    :data:`SCHEMA` requires of its kind or holds a field of the wrong type."""
    path = _card_path(path)
    if not path.is_file():
        raise CardMissing(
            f"no model card at {path}: a backbone folder holds {MODEL_FILE} and {CARD_JSON}, "
            "which notebook 07 writes (its BACKBONE_DIR)"
        )
    what = f"the model card {path}"
    return check_schema(read_json(path, what, REMEDY[schema]), schema, what)


def card_markdown(card: dict) -> str:
    """``card.md``: the name as a title, then one line per field (a long class list
    shortened to its first eight, a dict as JSON)."""
    lines = [f"# Model card: {card.get('name', 'model')}", ""]
    for key, value in card.items():
        if key == "name":
            continue
        if key == "classes" and isinstance(value, list) and len(value) > 8:
            value = ", ".join(map(str, value[:8])) + f", ... ({len(value)} in all)"
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        lines.append(f"- **{key.replace('_', ' ')}**: {value}")
    return "\n".join(lines) + "\n"


def write_card(path: str | os.PathLike, card: dict, schema: str = "backbone") -> Path:
    """Write ``card`` for a saved model of the kind ``schema``, each file atomically, and
    return the JSON's path: into a folder, ``card.md`` then ``card.json``; to a ``.json``
    path (a ``.tflite`` file's ``MODEL.json``), that file alone. A card :func:`read_card`
    would refuse is refused before anything is written."""
    check_schema(card, schema, "the card to write")
    target = _card_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.name == CARD_JSON:
        write_atomic(target.parent / CARD_MD, card_markdown(card).encode("utf-8"))
    write_atomic(target, (json.dumps(card, indent=2) + "\n").encode("utf-8"))
    return target


def save_with_card(model, folder: str | os.PathLike, card: dict, schema: str = "backbone"):
    """Save a Keras ``model`` as ``backbone.keras`` in ``folder``, then its card: the card
    is checked first, and the model goes in under a temporary name, so a folder with a
    card always has its whole model (an interrupted save leaves the old pair or no card)."""
    check_schema(card, schema, "the card to save")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{MODEL_FILE}"
    model.save(tmp)
    os.replace(tmp, folder / MODEL_FILE)
    write_card(folder, card, schema)
    return folder
