"""``python -m helpers predict MODEL.keras IMAGE_OR_FOLDER... [--csv]``: classify files.

The saved models of the course carry their preprocessing (resize, scaling,
normalization; see :mod:`helpers.models`), so this command only decodes each file
through the course's one image gate (:mod:`helpers.images`: format sniffed, size limits,
EXIF orientation applied) and hands the raw pixels to the model. A file that is not an
image, or is corrupt, is refused by name with the reason, and the others go on; the
exit status is 1 when any file was refused, 2 when nothing could be predicted.

The class names come from the model file's side car ``<model>.classes.json`` (written
by :func:`save_model`), else ``--classes``, else the class index is printed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from helpers.images import IMAGE_EXTENSIONS, ImageRejected, check_image_bytes, read_image_file


def classes_file(model_path: str | Path) -> Path:
    """Where the class names of ``model_path`` are kept: ``<model>.classes.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".classes.json")


def save_model(model, path: str | Path, class_names) -> Path:
    """Save ``model`` as ``.keras`` with its class names beside it, for ``predict``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    classes_file(path).write_text(json.dumps(list(class_names)), encoding="utf-8")
    return path


def image_files(targets) -> list[Path]:
    """Files named, plus the image files under folders named (sorted), in order."""
    files: list[Path] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
        else:
            files.append(path)
    return files


def load_pixels(path: Path, channels: int) -> np.ndarray:
    """One file as a (H, W, channels) uint8 array through the image gate; raises
    :class:`ImageRejected` (or OSError) with the reason."""
    from PIL import Image

    data = read_image_file(path)
    checked = check_image_bytes(data)
    with Image.open(io.BytesIO(checked.data)) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., None] if channels == 1 else pixels


def predict_files(model, files, class_names=None):
    """``(rows, refused)``: one row per file that decoded (file, class, probability,
    index), and ``(file, reason)`` for each refused one."""
    channels = int(model.input_shape[-1])
    if getattr(model, "takes_numpy", False):  # a .tflite predictor (helpers.export): no graph
        forward = model
    else:
        from helpers.quiet import tf

        # One trace for every image size (files differ in size; the model resizes itself).
        forward = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)],
        )
    rows, refused = [], []
    for path in files:
        try:
            pixels = load_pixels(Path(path), channels)
        except (ImageRejected, OSError, ValueError) as exc:
            refused.append((str(path), str(exc) or type(exc).__name__))
            continue
        p = np.asarray(forward(pixels[None].astype(np.float32)))[0]
        k = int(p.argmax())
        name = class_names[k] if class_names and k < len(class_names) else str(k)
        rows.append({"file": str(path), "class": name, "probability": float(p[k]), "index": k})
    return rows, refused


def main(argv: list[str] | None = None, loaders: dict | None = None) -> int:
    """``loaders``: ``{suffix: load(path)}`` for model files that are not ``.keras`` (the
    command line passes ``helpers.export``'s for ``.tflite``); a loaded model answers
    ``input_shape`` and ``predict_on_batch``, and its ``class_names``, when it has them,
    stand in for a missing side car."""
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
    if not model_path.is_file():
        print(f"error: no model file {model_path}; give a .keras file fit saved", file=sys.stderr)
        return 2
    if args.classes:
        class_names = [c.strip() for c in args.classes.split(",")]
    elif classes_file(model_path).is_file():
        class_names = json.loads(classes_file(model_path).read_text(encoding="utf-8"))
    else:
        class_names = None
    files = image_files(args.targets)
    if not files:
        print("error: no image files in the paths given", file=sys.stderr)
        return 2

    loader = (loaders or {}).get(model_path.suffix.lower())
    if loader is not None:
        model = loader(model_path)
        class_names = class_names or getattr(model, "class_names", None)
    else:
        import helpers.models  # noqa: F401 - registers the course's layers for loading
        from helpers.quiet import keras

        model = keras.models.load_model(model_path, compile=False)
    rows, refused = predict_files(model, files, class_names)
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["file", "class", "probability"])
        for row in rows:
            writer.writerow([row["file"], row["class"], f"{row['probability']:.6f}"])
    else:
        for row in rows:
            print(f"{row['file']}\t{row['class']}\t{row['probability']:.4f}")
    for path, reason in refused:
        print(f"refused {path}: {reason}", file=sys.stderr)
    if not rows:
        return 2
    return 1 if refused else 0
