"""Notebook 07's source data: a many-class set to pretrain on (see :func:`load_source`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from helpers.acquire.arrays import ArrayDataset
from helpers.quiet import keras


@dataclass
class Source(ArrayDataset):
    """A source data set: the arrays every loader returns, plus notes on how it was made."""

    notes: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.x_train.shape[1:])

    def __str__(self) -> str:
        h, w, c = self.input_shape
        return (
            f"{self.name}: {len(self.class_names)} classes, {len(self.y_train):,} train and "
            f"{len(self.y_test):,} test images of {h}x{w}x{c} ({self.source}; {self.license})"
        )


def generated_source(n: int, *, classes: int = 128, size: int = 32, seed: int = 0) -> Source:
    """``n`` generated images of ``classes`` shape x colour x texture classes (4 shapes;
    colours and textures are added until the count is reached), 80/20 train/test."""
    from helpers.acquire import synthetic as syn

    colours, textures = list(syn.COLOURS), list(syn.TEXTURES)
    combos = [
        (c, t)
        for c in range(1, len(colours) + 1)
        for t in range(1, len(textures) + 1)
        if 4 * c * t >= min(classes, 128)
    ]
    if classes < 4 or not combos:
        raise ValueError(f"classes must be between 4 and 128, not {classes}")
    c, t = min(combos, key=lambda ct: (4 * ct[0] * ct[1], abs(ct[0] - 2 * ct[1])))
    x, y, names = syn.many_class_images(
        n, size, seed, colours=tuple(colours[:c]), textures=tuple(textures[:t])
    )
    cut = int(round(n * 0.8))
    return Source(
        f"generated ({len(names)} classes)",
        x[:cut],
        y[:cut].astype(np.int32),
        x[cut:],
        y[cut:].astype(np.int32),
        names,
        f"{syn.SOURCE}.many_class_images (seed={seed})",
        syn.LICENSE,
    )


def _cifar100() -> Source:
    from helpers.acquire.datasets import DatasetUnavailable, keras_cache_dir

    try:
        (x, y), (xt, yt) = keras.datasets.cifar100.load_data(label_mode="fine")
    except Exception as exc:  # keras raises a plain Exception on a failed download
        cache = keras_cache_dir() / "cifar-100-python-target_archive"
        raise DatasetUnavailable(
            f"could not load cifar100 through keras.datasets ({type(exc).__name__}). With no "
            f"internet, copy cifar-100-python.tar.gz from the CIFAR page to {cache} (the name "
            'Keras gives it), or use DATASET="generated" (offline).'
        ) from exc
    names = [str(i) for i in range(100)]
    return Source(
        "cifar100", x, y.reshape(-1).astype(np.int32), xt, yt.reshape(-1).astype(np.int32),
        names, "CIFAR-100 (Alex Krizhevsky) via keras.datasets", "MIT-like, see the CIFAR page",
    )  # fmt: skip


def _images_of(split, input_shape) -> tuple[np.ndarray, np.ndarray]:
    """A split of ``helpers.train.load_image_data`` as uint8 arrays (files are decoded,
    resized and converted by the pipeline)."""
    from helpers import pipeline as pl

    if not isinstance(split, pl.ImageList):
        x, y = split
        return np.asarray(x, np.uint8), np.asarray(y, np.int32)
    h, w, c = input_shape
    options = pl.PipelineOptions(image_size=(h, w), channels=c, normalize="none", batch_size=256)
    xs, ys = [], []
    for x, y in pl.build_dataset(split, options, shuffle=False):
        xs.append(np.clip(np.round(x.numpy()), 0, 255).astype(np.uint8))
        ys.append(y.numpy().astype(np.int32))
    return np.concatenate(xs), np.concatenate(ys)


def _photos(limit_per_class: int | None, full: bool | None) -> Source:
    """The source classes of the photos that ship with the course, as a :class:`Source`."""
    from helpers.acquire import photos

    data = photos.load_photos("source", limit_per_class=limit_per_class, full=full)
    return Source(
        f"{data.name} ({', '.join(data.class_names)})",
        data.x_train,
        data.y_train.astype(np.int32),
        data.x_test,
        data.y_test.astype(np.int32),
        list(data.class_names),
        data.source,
        data.license,
    )


def _keep_per_class(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` images of each class, in their order."""
    keep = np.zeros(len(y), bool)
    for label in np.unique(y):
        keep[np.flatnonzero(y == label)[:k]] = True
    return x[keep], y[keep]


def load_source(
    dataset: str = "photos",
    data_dir: str | os.PathLike | None = None,
    *,
    images: int = 20_000,
    classes: int = 128,
    size: int | None = None,
    limit_per_class: int | None = None,
    full: bool | None = None,
    seed: int = 0,
) -> Source:
    """``DATASET`` (and ``DATA_DIR``) as a :class:`Source`; see the module docstring.

    ``images``, ``classes`` and ``size`` shape the generated set (``size`` also resizes a
    folder's images; None keeps their most common size). ``limit_per_class`` keeps the
    first that many training and test images of each class, of any source (the smoke
    profile's few hundred photos; the shipped archive then decompresses no further).
    ``full`` is ``helpers.acquire.photos``'s: all of CIFAR-10's source photos through
    ``keras.datasets`` (default: in the ``full`` profile only).
    """
    if limit_per_class is not None and limit_per_class < 1:
        raise ValueError(f"limit_per_class must be a positive count or None, not {limit_per_class}")
    if dataset == "photos":
        src = _photos(limit_per_class, full)
    elif dataset == "generated":
        src = generated_source(images, classes=classes, size=size or 32, seed=seed)
    elif dataset == "cifar100":
        src = _cifar100()
    elif dataset in ("cifar10", "folder"):
        from helpers.train import load_image_data

        data = load_image_data(dataset, data_dir, seed=seed, val_fraction=0.05)
        shape = data.input_shape if size is None else (size, size, data.input_shape[2])
        x, y = _images_of(data.train, shape)
        xv, yv = _images_of(data.val, shape)
        xt, yt = _images_of(data.test, shape)
        src = Source(
            data.name, np.concatenate([x, xv]), np.concatenate([y, yv]), xt, yt,
            list(data.class_names),
            f"{data_dir}" if dataset == "folder" else "CIFAR-10 via keras.datasets",
            "as its owner licenses it" if dataset == "folder" else "MIT-like, see the CIFAR page",
            list(data.notes),
        )  # fmt: skip
    else:
        raise ValueError(
            f'unknown DATASET {dataset!r}; choose "photos" (the shipped source photos), '
            '"generated", "cifar100", "cifar10" or "folder" (with DATA_DIR)'
        )
    if limit_per_class is not None and dataset != "photos":
        src.x_train, src.y_train = _keep_per_class(src.x_train, src.y_train, limit_per_class)
        src.x_test, src.y_test = _keep_per_class(src.x_test, src.y_test, limit_per_class)
        src.notes.append(f"limited to the first {limit_per_class} images of each class")
    return src
