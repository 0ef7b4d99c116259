"""``python -m helpers predict MODEL.keras IMAGE_OR_FOLDER... [--csv]``: classify files.

The saved models of the course carry their preprocessing (resize, scaling,
normalization; see :mod:`helpers.models`), so this command only decodes each file
through the course's one image gate (:mod:`helpers.images`: special files refused by
``stat`` before they are opened, format sniffed, size limits, EXIF orientation applied,
16-bit pixels scaled to 8 bits) and hands the raw pixels to the model. A file that is
not an image, or is corrupt, is refused by name with the reason, and the others go on.
Each file's line is printed, and flushed, as soon as it is known: what was computed is
not lost when a later file, the model or an interrupt stops the run.

The model and what travels with it come from anywhere, so each is checked before it
is used, and refused in one line naming the file and what is wrong (exit status 2):

- a ``.keras`` file must be a zip archive whose ``config.json`` and ``metadata.json``
  declare at most :data:`MAX_CONFIG_BYTES` (read from the zip's directory, before Keras
  reads a byte of them); Keras then loads it in safe mode (no code from the file runs).
  A ``.tflite`` file is checked by the loader the command line passes
  (:mod:`helpers.export`).
- the class names (``<model>.classes.json``, written by :func:`save_model`, else
  ``--classes``, else the ``.tflite`` file's ``MODEL.json``) must be distinct, non-empty
  strings, one per output of the model; without any, the class index is printed.
- the model must take one batch of 1- or 3-channel images and give one (batch,
  classes) output, and every row it gives must be probabilities (none negative, summing
  to 1 within :data:`PROBABILITY_TOLERANCE`): a backbone's features or a model without
  its softmax is refused, never printed as "probabilities".

Exit status: 0 when every file was classified, 1 when any file was refused, 2 when
nothing could be predicted or the model (or its class names) is unusable.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import stat
import sys
import zipfile
from pathlib import Path

import numpy as np

from helpers.cards import CardMismatch, check_fields, first_line, read_json
from helpers.files import write_atomic
from helpers.images import (
    IMAGE_EXTENSIONS,
    ImageRejected,
    check_image_bytes,
    decode_pixels,
    read_image_file,
)

# A model's description is small (measured: config.json 56 KB for the course's ResNet,
# 266 KB for EfficientNetV2B0); Keras reads it whole and parses it, so a bigger one is
# refused before Keras opens it.
MAX_CONFIG_BYTES = 16_000_000
# Everything in the archive, expanded (EfficientNetV2B0's .keras file: 30 MB).
MAX_ARCHIVE_BYTES = 4_000_000_000
KERAS_MEMBERS = ("config.json", "metadata.json")
# How far a row may be from a distribution: float32 softmax rows sum to 1 within 1e-6.
PROBABILITY_TOLERANCE = 1e-3


class ModelUnusable(ValueError):
    """A model file, its class names or its outputs that cannot classify images; the
    message names the file, says what is wrong and what to do (exit status 2)."""


def classes_file(model_path: str | Path) -> Path:
    """Where the class names of ``model_path`` are kept: ``<model>.classes.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".classes.json")


def check_class_names(names, what: str, remedy: str) -> list[str]:
    """``names`` when they are a list of distinct, non-empty strings (the cards' one
    validator decides), else :class:`~helpers.cards.CardMismatch` naming ``what``."""
    card = check_fields({"class_names": names}, what, required=("class_names",), remedy=remedy)
    return card["class_names"]


def save_model(model, path: str | Path, class_names) -> Path:
    """Save ``model`` as ``.keras`` for users, with its class names beside it, for
    ``predict``: a classifier that outputs logits gets its softmax here
    (``helpers.models.as_probabilities``). Names that ``predict`` would refuse (not
    distinct strings, not one per output) are refused before anything is written."""
    from helpers.models import as_probabilities

    model = as_probabilities(model)
    names = check_class_names(
        list(class_names), "the class names given", "give one distinct, non-empty name per class"
    )
    outputs = model.output_shape[-1]
    if len(names) != outputs:
        raise ValueError(f"{len(names)} class names for a model of {outputs} outputs")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    write_atomic(classes_file(path), json.dumps(names).encode("utf-8"))
    return path


def read_class_names(model_path: str | Path) -> list[str] | None:
    """The class names in ``<model>.classes.json``, None when there is no such file; a
    file there that is no JSON list of distinct, non-empty strings is refused."""
    path = classes_file(model_path)
    if not os.path.lexists(path):
        return None
    what = f"the classes file {path}"
    remedy = "write it again with helpers.predict.save_model, or give --classes"
    return check_class_names(read_json(path, what, remedy), what, remedy)


def image_files(targets) -> list[Path]:
    """Files named, plus the files with image extensions under folders named (sorted), in
    order. Under a folder, whatever is not a folder is taken (a FIFO or a broken link
    too), so the gate refuses it by name rather than it vanishing from the results."""
    files: list[Path] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            files += sorted(
                p
                for p in path.rglob("*")
                if not p.is_dir() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
        else:
            files.append(path)
    return files


def load_pixels(path: Path, channels: int) -> np.ndarray:
    """One file as a (H, W, channels) uint8 array through the image gate; raises
    :class:`ImageRejected` (or OSError) with the reason."""
    return decode_pixels(check_image_bytes(read_image_file(path)).data, channels)


def _regular_file(path: Path) -> None:
    """Refuse a model path that is missing or no regular file, before anything opens it
    (a FIFO named ``m.keras`` would block the read forever)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ModelUnusable(
            f"no model file {path} ({exc.strerror or exc}); give a .keras file fit saved"
        ) from exc
    if not stat.S_ISREG(mode):
        raise ModelUnusable(f"{path} is not a regular file; give a .keras file fit saved")


def check_keras_archive(path: str | Path) -> None:
    """Refuse a ``.keras`` file that is no Keras archive, or whose description is too big
    to read, from the zip's directory alone, before Keras reads it.

    Keras reads ``config.json`` (and ``metadata.json``) whole into memory and parses it,
    so an archive whose config expands to 600 MB costs that much and more before any
    check of Keras's own. ``zipfile`` never reads past the size a member declares (and
    checks its CRC), so the declared sizes bound what Keras can read.
    """
    path = Path(path)
    remedy = "give a .keras file model.save wrote"
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise ModelUnusable(
            f"{path} is not a Keras model: a .keras file is a zip archive (config.json, "
            f"model.weights.h5) and this is not one ({first_line(exc)}); {remedy}"
        ) from exc
    if "config.json" not in members:
        raise ModelUnusable(
            f"{path} is a zip archive without config.json, no Keras model; {remedy}"
        )
    for name in KERAS_MEMBERS:
        if name in members and members[name].file_size > MAX_CONFIG_BYTES:
            raise ModelUnusable(
                f"{path}: its {name} expands to {members[name].file_size:,} bytes, more than "
                f"the {MAX_CONFIG_BYTES:,} a model's description may take; not loaded. {remedy}"
            )
    total = sum(info.file_size for info in members.values())
    if total > MAX_ARCHIVE_BYTES:
        raise ModelUnusable(
            f"{path} expands to {total:,} bytes, more than the {MAX_ARCHIVE_BYTES:,} any model "
            f"of the course takes; not loaded. {remedy}"
        )


def load_model(path: str | Path, loaders: dict | None = None):
    """The model in ``path``: a ``.keras`` archive (checked, then loaded by Keras in safe
    mode) or a file one of ``loaders`` (``{suffix: load(path)}``) reads; any failure is a
    :class:`ModelUnusable` naming the file."""
    path = Path(path)
    _regular_file(path)
    loaders = loaders or {}
    loader = loaders.get(path.suffix.lower())
    if loader is not None:
        try:
            return loader(path)
        except (ValueError, OSError) as exc:
            reason = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            raise ModelUnusable(reason) from exc
    if path.suffix.lower() != ".keras":
        kinds = " or ".join([".keras", *sorted(loaders)])
        raise ModelUnusable(
            f"{path}: predict reads {kinds} files; save the model with model.save('NAME.keras')"
        )
    check_keras_archive(path)
    import helpers.models  # noqa: F401 - registers the course's layers for loading
    from helpers.quiet import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises a dozen types for a bad file
        raise ModelUnusable(
            f"{path}: Keras cannot load it ({first_line(exc)}); give a .keras file model.save "
            "wrote with this course's helpers"
        ) from exc


def check_model(model, class_names=None, source: str = "the model") -> int:
    """The number of classes ``model`` gives, once it takes one batch of 1- or 3-channel
    images and gives one (batch, classes) output, as many as ``class_names`` (when given);
    else :class:`ModelUnusable`. Checked from the shapes, before any image is read."""
    shape_in, shape_out = model.input_shape, model.output_shape
    if not (isinstance(shape_in, tuple) and len(shape_in) == 4 and shape_in[-1] in (1, 3)):
        raise ModelUnusable(
            f"{source} takes inputs of shape {shape_in}, not one batch of (height, width, 1 or "
            "3) images; give an image classifier"
        )
    if not (isinstance(shape_out, tuple) and len(shape_out) == 2 and (shape_out[1] or 0) >= 2):
        raise ModelUnusable(
            f"{source} gives outputs of shape {shape_out}, not one probability per class: it is "
            "no classifier (a backbone, a feature extractor?); fine-tune one with notebook 08"
        )
    if class_names is not None and len(class_names) != shape_out[1]:
        raise ModelUnusable(
            f"{len(class_names)} class names for {source}, which gives {shape_out[1]} outputs; "
            "give one name per output (--classes, or the model's classes file)"
        )
    return int(shape_out[1])


def probability_problem(row, tolerance: float = PROBABILITY_TOLERANCE) -> str | None:
    """Why one output row is not class probabilities (None when it is): a value not
    finite or below ``-tolerance``, or a sum more than ``tolerance`` away from 1."""
    row = np.asarray(row, np.float64)
    if row.ndim != 1:
        return f"an output of shape {row.shape}, not one value per class"
    if not np.all(np.isfinite(row)):
        return "values that are not finite (NaN or infinity)"
    if row.min() < -tolerance:
        return f"a negative value ({row.min():.4g})"
    if abs(row.sum() - 1) > tolerance:
        return f"values summing to {row.sum():.4g}, not 1"
    return None


def _forward(model, channels: int):
    if getattr(model, "takes_numpy", False):  # a .tflite predictor (helpers.export): no graph
        return model
    from helpers.quiet import tf

    # One trace for every image size (files differ in size; the model resizes itself).
    return tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)],
    )


def iter_predictions(model, files, class_names=None, source: str = "the model"):
    """``(file, row, None)`` for each file classified, ``(file, None, reason)`` for each
    refused, one at a time as each is known.

    Raises :class:`ModelUnusable` before the first file when the model's shapes or the
    class names are wrong (:func:`check_model`), and at the first output that is not
    probabilities: that is the model's fault, not the file's.
    """
    check_model(model, class_names, source)
    channels = int(model.input_shape[-1])
    forward = _forward(model, channels)
    for path in files:
        try:
            pixels = load_pixels(Path(path), channels)
        except (ImageRejected, OSError, ValueError) as exc:
            yield str(path), None, str(exc) or type(exc).__name__
            continue
        p = np.asarray(forward(pixels[None].astype(np.float32)))[0]
        problem = probability_problem(p)
        if problem:
            raise ModelUnusable(
                f"{source} gives {problem} for {path}: not class probabilities (a backbone, or "
                "a model without its softmax?); give a classifier whose last layer is a softmax"
            )
        k = int(p.argmax())
        name = class_names[k] if class_names else str(k)
        yield (
            str(path),
            {"file": str(path), "class": name, "probability": float(p[k]), "index": k},
            None,
        )


def predict_files(model, files, class_names=None, source: str = "the model"):
    """``(rows, refused)``: one row per file that decoded (file, class, probability,
    index), and ``(file, reason)`` for each refused one (see :func:`iter_predictions`)."""
    rows, refused = [], []
    for path, row, reason in iter_predictions(model, files, class_names, source):
        if row is None:
            refused.append((path, reason))
        else:
            rows.append(row)
    return rows, refused


def _class_names(args, model_path: Path) -> list[str] | None:
    if args.classes is not None:
        return check_class_names(
            [c.strip() for c in args.classes.split(",")],
            "--classes",
            "give distinct, non-empty names separated by commas",
        )
    return read_class_names(model_path)


def main(argv: list[str] | None = None, loaders: dict | None = None) -> int:
    """``loaders``: ``{suffix: load(path)}`` for model files that are not ``.keras`` (the
    command line passes ``helpers.export``'s for ``.tflite``); a loaded model answers
    ``input_shape``, ``output_shape`` and ``predict_on_batch``, and its ``class_names``,
    when it has them, stand in for a missing side car."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers predict",
        description="Classify image files with a saved .keras model of the course.",
    )
    parser.add_argument("model", metavar="MODEL.keras")
    parser.add_argument("targets", nargs="+", metavar="IMAGE_OR_FOLDER")
    parser.add_argument("--csv", action="store_true", help="print CSV: file,class,probability")
    parser.add_argument(
        "--classes", help="comma-separated class names (default: MODEL.classes.json)"
    )
    args = parser.parse_args(argv)
    model_path = Path(args.model)
    predicted = refused = 0
    try:
        _regular_file(model_path)
        class_names = _class_names(args, model_path)
        files = image_files(args.targets)
        if not files:
            print("error: no image files in the paths given", file=sys.stderr)
            return 2
        model = load_model(model_path, loaders)
        if class_names is None:
            class_names = getattr(model, "class_names", None)
        writer = csv.writer(sys.stdout) if args.csv else None
        if writer:
            writer.writerow(["file", "class", "probability"])
        for path, row, reason in iter_predictions(model, files, class_names, str(model_path)):
            if row is None:
                refused += 1
                print(f"refused {path}: {reason}", file=sys.stderr, flush=True)
                continue
            predicted += 1
            if writer:
                writer.writerow([row["file"], row["class"], f"{row['probability']:.6f}"])
            else:
                print(f"{row['file']}\t{row['class']}\t{row['probability']:.4f}")
            sys.stdout.flush()
    except (ModelUnusable, CardMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"interrupted: {predicted} file(s) classified and {refused} refused above",
            file=sys.stderr,
        )
        return 130
    if not predicted:
        return 2
    return 1 if refused else 0
