"""Notebooks 06-09's data: ``DATASET``/``DATA_DIR`` to train, validation and test splits
(:func:`load_image_data`), with clear messages for data that cannot train, and batched
datasets of known length (:func:`make_datasets`, :func:`with_cardinality`).

Why a known length: the pipeline's datasets end when their data ends, so TensorFlow
cannot know their length (cardinality "unknown") and Keras warns "Your input ran out of
data" at every epoch's end. :func:`with_cardinality` counts the batches once and asserts
the count, which also gives Keras's progress bar its total.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers import pipeline as pl
from helpers.acquire.datasets import OFFLINE, ONLINE, load_arrays
from helpers.images import FolderError
from helpers.quiet import tf
from helpers.splitting import stratified_split


class DataError(ValueError):
    """Data that cannot train a classifier as given; the message says what to do."""


class DataWarning(UserWarning):
    """Data that trains, but not the way you may think (a class missing from a split)."""


@dataclass
class ImageData:
    """Train, validation and test splits, each ``(x uint8, y)`` arrays or an ImageList."""

    name: str
    train: object
    val: object
    test: object
    class_names: list[str]
    input_shape: tuple[int, int, int]
    notes: list[str] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {s: _count(getattr(self, s)) for s in ("train", "val", "test")}

    def __str__(self) -> str:
        sizes = ", ".join(f"{k} {v:,}" for k, v in self.sizes().items())
        h, w, c = self.input_shape
        lines = [f"{self.name}: {len(self.class_names)} classes, {sizes}; images {h}x{w}x{c}"]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def _count(split) -> int:
    return len(split) if isinstance(split, pl.ImageList) else len(split[1])


def _take(split, index):
    if isinstance(split, pl.ImageList):
        return split.take(index)
    x, y = split
    return x[index], y[index]


def _image_shape(paths: list[str], sample: int = 200) -> tuple[tuple[int, int, int], str | None]:
    """The most common (height, width) and the channels of a sample of the files, and a
    note when they vary (the pipeline resizes and converts them all)."""
    from PIL import Image

    sizes, modes = Counter(), Counter()
    rng = np.random.default_rng(0)
    for i in rng.permutation(len(paths))[:sample]:
        try:
            with Image.open(paths[i]) as image:
                sizes[(image.height, image.width)] += 1
                modes[image.mode] += 1
        except Exception:  # noqa: BLE001 - a corrupt file is the pipeline's to report
            continue
    if not sizes:
        raise DataError(f"none of {min(sample, len(paths))} sampled files opens as an image")
    (h, w), _ = sizes.most_common(1)[0]
    channels = 1 if set(modes) <= {"L", "1", "I", "I;16", "F", "LA"} else 3
    note = None
    if len(sizes) > 1 or len(modes) > 1:
        listed = ", ".join(f"{a}x{b}" for (a, b), _ in sizes.most_common(4))
        note = (
            f"image sizes ({listed}) or modes ({', '.join(sorted(modes))}) vary: every image is "
            f"resized to {h}x{w} and converted to {'grayscale' if channels == 1 else 'RGB'}"
        )
    return (h, w, channels), note


def _folder_data(root: Path, seed: int, val_fraction: float, test_fraction: float) -> ImageData:
    """A class-per-folder or split tree, read by :func:`helpers.pipeline.list_splits` (the
    one reader of such trees, with its rules); its errors and warnings in this module's
    types, so a notebook catches one kind."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            splits = pl.list_splits(
                root, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
            )
        except FolderError as exc:
            raise DataError(str(exc)) from exc
    for w in caught:
        warnings.warn(str(w.message), DataWarning, stacklevel=3)
    shape, note = _image_shape(splits.train.paths)
    notes = splits.notes + ([note] if note else [])
    return ImageData(
        f"folder {root} ({splits.layout})", splits.train, splits.val, splits.test,
        splits.class_names, shape, notes,
    )  # fmt: skip


def load_image_data(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    *,
    seed: int = 42,
    limit: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> ImageData:
    """``DATASET`` (and ``DATA_DIR``) as train, validation and test splits.

    ``dataset`` is an offline set (``digits``, ``lfw_faces``, ``shapes``), a public one
    (``mnist``, ``fashion_mnist``, ``cifar10``, ...: the network or its cache), or
    ``"folder"`` with ``data_dir``: a class-per-folder tree (split here, stratified) or a
    split tree ``train/`` (``val/``) ``test/`` whose test split is the test set. The
    validation split comes out of the training images when the data has none. Image
    size and channels come from the data (the most common size of a sample of files).
    ``limit`` keeps at most that many training images, and a quarter as many validation
    and test images (smoke runs).
    """
    if dataset == "folder":
        if not data_dir:
            raise DataError('DATASET="folder" needs DATA_DIR, the folder that holds the images')
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"DATA_DIR {root.resolve()} is not a folder; check the path")
        data = _folder_data(root, seed, val_fraction, test_fraction)
    elif dataset in OFFLINE or dataset in ONLINE:
        arrays = load_arrays(dataset, seed=seed, test_size=test_fraction)
        x, y = arrays.x_train, arrays.y_train.astype(np.int32)
        if x.ndim == 3:
            x = x[..., None]
        keep, held = stratified_split(y, val_fraction / (1 - test_fraction), seed + 1)
        x_test = arrays.x_test if arrays.x_test.ndim == 4 else arrays.x_test[..., None]
        data = ImageData(
            f"{dataset} ({arrays.source})",
            (x[keep], y[keep]),
            (x[held], y[held]),
            (x_test, arrays.y_test.astype(np.int32)),
            list(arrays.class_names),
            tuple(int(s) for s in x.shape[1:]),
        )
    else:
        known = ", ".join([*OFFLINE, *ONLINE, "folder"])
        raise DataError(f"unknown DATASET {dataset!r}; choose one of {known}")
    if limit is not None:
        labels = data.train.labels if isinstance(data.train, pl.ImageList) else data.train[1]
        if limit < len(labels):
            _, index = stratified_split(labels, limit / len(labels), seed + 2)
            data.train = _take(data.train, index)
            data.notes.append(f"limited to {len(index)} training images")
        for split in ("val", "test"):  # and a quarter as many for validation and test
            part = getattr(data, split)
            labels = part.labels if isinstance(part, pl.ImageList) else part[1]
            cap = max(limit // 4, len(data.class_names))
            if cap < len(labels):
                _, index = stratified_split(labels, cap / len(labels), seed + 3)
                setattr(data, split, _take(part, index))
    return data


def make_datasets(data: ImageData, batch_size: int, *, seed: int = 42, eval_batch_size=None):
    """``(train, val, test)`` batched datasets of raw pixels (floats 0..255, int labels):
    the models scale their own inputs. Every dataset has a known cardinality."""
    h, w, c = data.input_shape
    options = pl.PipelineOptions(
        image_size=(h, w), channels=c, normalize="none", batch_size=batch_size, seed=seed
    )
    out = []
    for split in ("train", "val", "test"):
        part = getattr(data, split)
        shuffle = split == "train"
        size = batch_size if shuffle else (eval_batch_size or max(batch_size, 256))
        if isinstance(part, pl.ImageList):
            ds = pl.build_dataset(part, options, shuffle=shuffle, batch_size=size)
        else:
            ds = pl.from_arrays(
                part[0], part[1], options, class_names=data.class_names, shuffle=shuffle,
                batch_size=size,
            )  # fmt: skip
        out.append(with_cardinality(ds))
    return tuple(out)


def with_cardinality(ds):
    """``ds`` with its number of batches known to TensorFlow (see the module docstring).

    Counted, not computed: a corrupt file skipped by the pipeline changes it. The first
    pass over a pipeline dataset decodes (and fills its memory cache) and may cut its
    batches differently from later epochs, so the count of the second pass, the one
    every epoch of ``fit`` will see, is the one asserted.
    """
    if int(ds.cardinality()) >= 0:
        return ds
    counts = [int(ds.reduce(np.int64(0), lambda n, _: n + 1)) for _ in range(2)]
    if counts[-1] == 0:
        raise DataError("the dataset yields no batch: every image was skipped (see skip_report)")
    out = ds.apply(tf.data.experimental.assert_cardinality(counts[-1]))
    for attribute in ("class_names", "skip_report"):
        if hasattr(ds, attribute):
            setattr(out, attribute, getattr(ds, attribute))
    return out


def _one_hot(ds, num_classes: int):
    """Integer labels -> one-hot (label smoothing needs them); one-hot labels pass."""
    spec = ds.element_spec[1]
    if spec.dtype.is_integer and spec.shape.rank == 1:
        out = ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)))
        for attribute in ("class_names", "skip_report"):
            if hasattr(ds, attribute):
                setattr(out, attribute, getattr(ds, attribute))
        return out
    return ds
