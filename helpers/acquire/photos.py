"""Real photos that ship with the course: a fixed subset of CIFAR-10, split in two.

CIFAR-10 (Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009)
holds 32x32 colour photos of ten classes. The course splits the classes in two, here
and nowhere else:

- :data:`SOURCE_CLASSES` (airplane, automobile, bird, cat, deer): notebook 07
  pretrains a backbone on them with the data set's own labels;
- :data:`TARGET_CLASSES` (dog, frog, horse, ship, truck): the learner's project, which
  notebooks 01, 02 and 08 acquire, label and fine-tune on.

Both tuples are in sorted order, so label ``i`` means the same class whether it comes
from :func:`load_photos` or from a class-folder reader (which sorts folder names).

**What ships** (:data:`SHIPPED`): two gzipped tar archives in the project's ``data/``
folder, committed to git (no Git LFS), each checked by SHA-256 before it is unpacked:

- ``data/cifar10-source.tar.gz``: all 5,000 training images of each source class,
  split 4,000 train / 1,000 test per class (25,000 photos, 7.9 MB);
- ``data/cifar10-target.tar.gz``: 1,500 of the 5,000 training images of each target
  class, split 1,000 train (the pool the learner labels) / 500 test (7,500 photos,
  2.5 MB).

The sizes were chosen by measurement. The photos are CIFAR-10's JPEG files as they are
(about 940 bytes each, never re-encoded); gzip -9 brings a tar of them to 321 bytes a
photo, as they share their JPEG tables (xz -9e: 300, for 60 times the compression
time), so all 50,000 would take 16.5 MB and these 32,500 take 10.4 MB of the 20 MB the
project allows in git. The source set takes everything there is, since a backbone
pretrained on more photos transfers better (issue 27 measured notebook 07 at 0.746 test
accuracy on five classes of these photos). The target set needs far fewer: the learner labels tens
per class, 1,000 per class leave room for the simulated annotators and the
image-search server, and 500 test photos per class (2,500 in all) put a test accuracy
within 2 points (95%) of its true value, fine enough for the 15-point gap
notebook 08 shows. Leaving out the other 3,500 photos per target class keeps 9.6 MB of
headroom, and the two archives let the target's notebooks unpack 2.5 MB, not 10.4.

The split is stratified, deterministic and fixed in the archives: within each class the
development copy's file names (``NNNN.jpg``) are shuffled with a seeded generator
(:data:`SPLIT_SEED`), the first ones go to ``train``, the next ones to ``test``. Names
stay those of the development copy. Members are stored round-robin (one photo of each
split and class in turn), so the first ``k`` photos of every class sit at the start of
the stream and ``limit_per_class=k`` (the smoke profile: a few hundred photos in all)
decompresses only those.

**On first use** :func:`photo_tree` unpacks an archive into the course data directory
(``helpers.config.data_dir("photos")``) as a split tree, ``<root>/{train,test}/<class>/
<image>.jpg``, which every class-folder reader of the course takes as it is
(:func:`helpers.images.walk_class_tree`, ``helpers.pipeline.sources.list_folder``,
``helpers.acquire.folders.ingest_split_folders``). It unpacks into a hidden temporary
folder and renames it into place, so an interrupted unpack leaves no half tree; a
temporary folder left by a killed process is removed by the next unpack.
:func:`load_photos` gives the same photos as arrays.

**Online, the whole data set**: with ``full=True`` (the default in the ``full``
profile) the same functions take the part's classes from all of CIFAR-10 (5,000 train
and 1,000 test photos a class) through ``keras.datasets`` by way of
:func:`helpers.acquire.datasets.load_arrays`, cached in ``~/.keras/datasets``; offline
that fails within seconds naming the cache file to copy.

:func:`helpers.acquire.photo_archives.build_archives` made the archives from the
development copy of CIFAR-10's training images; a maintainer who changes the sizes runs
it again and updates :data:`SHIPPED` (it prints the new digests). Nothing else in the
course calls it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from helpers.acquire.arrays import ArrayDataset
from helpers.acquire.datasets import CIFAR10_CLASSES, DatasetUnavailable, load_arrays
from helpers.config import data_dir, get_profile, project_root
from helpers.files import TEMP_PREFIX
from helpers.images import encode_png, walk_class_tree

SOURCE_CLASSES = CIFAR10_CLASSES[:5]  # notebook 07 pretrains on these, with their labels
TARGET_CLASSES = CIFAR10_CLASSES[5:]  # the learner's project: notebooks 01, 02, 08
SPLIT_SEED = 27  # the issue that split the classes; changing it changes every archive

CREDIT = (
    "CIFAR-10: Alex Krizhevsky, 'Learning Multiple Layers of Features from Tiny Images', "
    "technical report, University of Toronto, 2009"
)
TERMS = (
    "distributed by its authors without an explicit license; widely used for research "
    "and teaching; cite the technical report"
)
MANIFEST = ".manifest.json"  # hidden, so class-folder readers pass over it


@dataclass(frozen=True)
class ShippedSet:
    """One archive in ``data/``: its classes, photos per class in each split, and the
    SHA-256 and size it must have (what ``photo_archives.build_archives`` printed)."""

    part: str
    file_name: str
    classes: tuple[str, ...]
    per_class: dict[str, int]  # split -> photos per class, in the archive's split order
    sha256: str
    size: int

    @property
    def path(self) -> Path:
        """The archive inside the project (never the data directory: it ships with git)."""
        return project_root() / "data" / self.file_name

    @property
    def stem(self) -> str:
        return self.file_name.removesuffix(".tar.gz")


SHIPPED: dict[str, ShippedSet] = {
    "source": ShippedSet(
        "source",
        "cifar10-source.tar.gz",
        SOURCE_CLASSES,
        {"train": 4000, "test": 1000},
        "69271524e2c37f3645bc0ea7192e912c79b9646d0132e5f9de6a04c1384bc05d",
        7_926_960,
    ),
    "target": ShippedSet(
        "target",
        "cifar10-target.tar.gz",
        TARGET_CLASSES,
        {"train": 1000, "test": 500},
        "33523fd1d7065080d2467cebc8e496555ddcc01dc9f5e3d5afaa9da14a9d2a80",
        2_519_021,
    ),
}
# keras.datasets.cifar10 comes with its own split: 5,000 train and 1,000 test a class.
FULL_PER_CLASS = {"train": 5000, "test": 1000}


class PhotoArchiveError(RuntimeError):
    """A shipped photo archive is missing, damaged or not what the code expects; the
    message names the file and says how to restore it."""


def _shipped(part: str) -> ShippedSet:
    if part not in SHIPPED:
        raise ValueError(
            f"Unknown part {part!r}. Choose 'source' ({', '.join(SOURCE_CLASSES)}: notebook "
            f"07 pretrains on them) or 'target' ({', '.join(TARGET_CLASSES)}: your project)."
        )
    return SHIPPED[part]


def _check_limit(limit_per_class: int | None) -> None:
    if limit_per_class is not None and limit_per_class < 1:
        raise ValueError(
            f"limit_per_class must be a positive number of photos, not {limit_per_class}; "
            "pass None for all of them"
        )


# -- the shipped archives ----------------------------------------------------------------


def _restore_hint(shipped: ShippedSet) -> str:
    relative = f"data/{shipped.file_name}"
    return (
        f"Restore it from git: run `git checkout -- {relative}` in {project_root()} (it is "
        "a plain file in git; Git LFS is not used), or clone or download the project again."
    )


def read_archive(part: str, archive: str | os.PathLike | None = None) -> bytes:
    """The bytes of the ``part`` archive (``"source"`` or ``"target"``), once their
    SHA-256 matches :data:`SHIPPED`; otherwise :class:`PhotoArchiveError`.

    ``archive`` reads a copy elsewhere (a teacher's mirror, a test) against the same
    digest. The bytes checked are the bytes unpacked, so no file can change in between.
    """
    shipped = _shipped(part)
    path = Path(archive) if archive is not None else shipped.path
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise PhotoArchiveError(
            f"The photo archive {path} is missing. {_restore_hint(shipped)}"
        ) from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != shipped.sha256:
        raise PhotoArchiveError(
            f"The photo archive {path} is damaged or was changed: its SHA-256 is {actual} "
            f"({len(data):,} bytes), the course expects {shipped.sha256} ({shipped.size:,} "
            f"bytes). Nothing was unpacked. {_restore_hint(shipped)}"
        )
    return data


_MEMBER = re.compile(r"(?P<split>[a-z]+)/(?P<cls>[a-z]+)/(?P<name>[0-9]{4,}\.jpg)")


def _write_file(path: Path, data: bytes) -> None:
    """Write one unpacked photo (inside the private temporary folder, so no rename each)."""
    with open(path, "wb") as fh:
        fh.write(data)


def _expected(per_class: dict[str, int], limit: int | None) -> dict[str, int]:
    return {split: min(n, limit) if limit else n for split, n in per_class.items()}


def _write_manifest(folder: Path, description: dict) -> None:
    (folder / MANIFEST).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")


def _unpack(data: bytes, shipped: ShippedSet, limit: int | None, folder: Path) -> None:
    """Write the archive's photos (the first ``limit`` of each split and class) into
    ``folder`` and stop reading as soon as they are all there."""
    expected = _expected(shipped.per_class, limit)
    counts = {(s, c): 0 for s in shipped.per_class for c in shipped.classes}
    for split in shipped.per_class:
        for cls in shipped.classes:
            (folder / split / cls).mkdir(parents=True)
    missing = sum(expected[s] for s, _ in counts)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            if member.name == MANIFEST:
                continue
            match = _MEMBER.fullmatch(member.name)
            key = (match["split"], match["cls"]) if match else None
            if not member.isfile() or key not in counts:
                raise PhotoArchiveError(
                    f"{shipped.path} holds {member.name!r}, which is not a photo of the "
                    f"splits {list(shipped.per_class)} and classes {list(shipped.classes)} the "
                    "code expects: the archive and helpers/acquire/photos.py disagree. Rebuild "
                    "the archive with build_archives, or restore both from git."
                )
            if counts[key] >= expected[key[0]]:
                continue
            _write_file(folder / member.name, tar.extractfile(member).read())
            counts[key] += 1
            missing -= 1
            if missing == 0:
                break
    short = {f"{s}/{c}": n for (s, c), n in counts.items() if n < expected[s]}
    if short:
        raise PhotoArchiveError(
            f"{shipped.path} holds fewer photos than helpers/acquire/photos.py expects "
            f"({short}, expected {expected} per class): rebuild the archive with "
            "build_archives, or restore both from git."
        )
    _write_manifest(
        folder,
        {
            "archive": shipped.file_name,
            "sha256": shipped.sha256,
            "classes": list(shipped.classes),
            "per_class": expected,
            "limit_per_class": limit,
            "credit": CREDIT,
            "terms": TERMS,
        },
    )


# -- the whole data set, online ----------------------------------------------------------


def _full_arrays(classes: tuple[str, ...], name: str, limit: int | None) -> ArrayDataset:
    """``classes`` from all of CIFAR-10 (keras.datasets, cached), labels in their order
    (:data:`SOURCE_CLASSES`, :data:`TARGET_CLASSES` or all ten), the first ``limit`` a
    class."""
    try:
        data = load_arrays("cifar10")
    except DatasetUnavailable as exc:
        raise DatasetUnavailable(
            f"{exc} Or use the CIFAR-10 photos that ship with the course: full=False (the "
            "default in the smoke and laptop profiles)."
        ) from exc
    parts = []
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        keep = []
        for label, cls in enumerate(classes):
            rows = np.flatnonzero(y == CIFAR10_CLASSES.index(cls))
            keep.append((rows[:limit] if limit else rows, label))
        order = np.concatenate([rows for rows, _ in keep])
        labels = np.concatenate([np.full(len(rows), label, np.int64) for rows, label in keep])
        parts.append((x[order], labels))
    (x_train, y_train), (x_test, y_test) = parts
    return ArrayDataset(
        f"cifar10-full-{name}",
        x_train,
        y_train,
        x_test,
        y_test,
        list(classes),
        f"{CREDIT}; all of it, through keras.datasets.cifar10",
        TERMS,
    )


def _write_full(shipped: ShippedSet, limit: int | None, folder: Path) -> None:
    data = _full_arrays(shipped.classes, shipped.part, limit)
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        for label, cls in enumerate(shipped.classes):
            (folder / split / cls).mkdir(parents=True)
            for i, image in enumerate(x[y == label]):
                _write_file(folder / split / cls / f"{i:04d}.png", encode_png(image))
    _write_manifest(
        folder,
        {
            "source": "keras.datasets.cifar10 (PNG: the pixels keras gives, losslessly)",
            "classes": list(shipped.classes),
            "per_class": _expected(FULL_PER_CLASS, limit),
            "limit_per_class": limit,
            "credit": CREDIT,
            "terms": TERMS,
        },
    )


# -- unpacking, atomically ---------------------------------------------------------------

_TEMP = re.compile(re.escape(TEMP_PREFIX) + r"(?P<pid>[0-9]+)-")


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, and belongs to someone else
    return False


def _sweep(folder: Path) -> None:
    """Remove the temporary folders that unpacks killed mid-way left in ``folder``
    (their process is gone; a live one's folder is left alone). POSIX only: on Windows
    ``os.kill(pid, 0)`` would end the process instead of asking about it."""
    if os.name != "posix":
        return
    for entry in folder.iterdir():
        match = _TEMP.match(entry.name)
        if match and entry.is_dir() and _process_gone(int(match["pid"])):
            shutil.rmtree(entry, ignore_errors=True)


def _publish(final: Path, fill: Callable[[Path], None]) -> Path:
    """``final``, made by ``fill`` in a hidden temporary folder beside it and renamed
    into place: a reader sees the whole tree or none, and an error or interrupt (even
    Ctrl-C) removes the temporary folder. Two processes that unpack at once each build
    their own; the second to finish drops its copy and uses the first."""
    if final.is_dir():
        return final
    _sweep(final.parent)
    prefix = f"{TEMP_PREFIX}{os.getpid()}-{final.name}-"
    temporary = Path(tempfile.mkdtemp(dir=final.parent, prefix=prefix))
    try:
        fill(temporary)
        try:
            os.rename(temporary, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(temporary)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final


def _use_full(full: bool | None) -> bool:
    return get_profile().online if full is None else full


def photo_tree(
    part: str = "target",
    *,
    limit_per_class: int | None = None,
    full: bool | None = None,
    archive: str | os.PathLike | None = None,
) -> Path:
    """The ``part`` photos (``"source"`` or ``"target"``) as a split tree, unpacked on
    first use: ``<root>/train/<class>/*.jpg`` and ``<root>/test/<class>/*.jpg``.

    The shipped archive is checked (:func:`read_archive`) before anything is written,
    then unpacked into ``data_dir("photos")/cifar10-<part>-<first 12 hex of its
    SHA-256>``, so a rebuilt archive unpacks anew beside the old tree. Later calls
    return the tree without reading the archive; delete the folder to unpack again.
    ``limit_per_class`` keeps the first that many photos of each class in each split
    (its own folder, ``...-first<N>``), decompressing no further than it needs.
    ``full=True`` (default: only in the ``full`` profile) writes the part's classes of
    all of CIFAR-10 from ``keras.datasets`` instead, as lossless PNG files, into
    ``cifar10-full-<part>``; offline it raises
    :class:`~helpers.acquire.datasets.DatasetUnavailable` naming the file to copy.
    ``archive`` unpacks a copy of the archive kept elsewhere.
    """
    shipped = _shipped(part)
    _check_limit(limit_per_class)
    suffix = f"-first{limit_per_class}" if limit_per_class else ""
    if _use_full(full):
        final = data_dir("photos") / f"cifar10-full-{part}{suffix}"
        return _publish(final, lambda folder: _write_full(shipped, limit_per_class, folder))
    final = data_dir("photos") / f"{shipped.stem}-{shipped.sha256[:12]}{suffix}"
    if final.is_dir():
        return final
    data = read_archive(part, archive)
    return _publish(final, lambda folder: _unpack(data, shipped, limit_per_class, folder))


def _read_split(folder: Path, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    tree = walk_class_tree(folder)
    if tuple(tree.class_names) != classes or tree.left_out:
        raise PhotoArchiveError(
            f"{folder} holds the classes {tree.class_names} (left out: {tree.left_out[:3]}), "
            f"not {list(classes)}: it was changed after it was unpacked. Delete "
            f"{folder.parent} and call photo_tree again to unpack it afresh."
        )
    images = []
    for path, _ in tree.files:
        with Image.open(path) as image:
            images.append(np.asarray(image.convert("RGB")))
    labels = np.array([classes.index(cls) for _, cls in tree.files], dtype=np.int64)
    return np.stack(images), labels


def load_photos(
    part: str = "target",
    *,
    limit_per_class: int | None = None,
    full: bool | None = None,
    archive: str | os.PathLike | None = None,
) -> ArrayDataset:
    """The ``part`` photos as uint8 arrays (N, 32, 32, 3), labels indexing the part's
    classes (:data:`SOURCE_CLASSES` or :data:`TARGET_CLASSES`), train and test as in
    :func:`photo_tree`, whose arguments these are.

    The shipped photos are read from the tree :func:`photo_tree` unpacks (so arrays and
    files are the same photos); ``full`` takes the arrays from ``keras.datasets``
    directly, without writing a tree.
    """
    shipped = _shipped(part)
    _check_limit(limit_per_class)
    if _use_full(full):
        return _full_arrays(shipped.classes, shipped.part, limit_per_class)
    root = photo_tree(part, limit_per_class=limit_per_class, full=False, archive=archive)
    x_train, y_train = _read_split(root / "train", shipped.classes)
    x_test, y_test = _read_split(root / "test", shipped.classes)
    return ArrayDataset(
        f"{shipped.stem}{f'-first{limit_per_class}' if limit_per_class else ''}",
        x_train,
        y_train,
        x_test,
        y_test,
        list(shipped.classes),
        f"{CREDIT}; the subset that ships with the course (data/{shipped.file_name})",
        TERMS,
    )


TEN_CLASSES_PER_CLASS = {"train": 1000, "test": 500}  # the target part's sizes, for all ten


def load_ten_classes(*, full: bool | None = None) -> ArrayDataset:
    """All ten CIFAR-10 classes with as many photos of each: the first 1,000 training
    and 500 test photos of every source class beside the whole target part (1,000 and
    500 a class), labels in :data:`CIFAR10_CLASSES` order: 10,000 training and 5,000
    test photos (notebook 06's real photos).

    Equal counts keep accuracy meaning the same for every class; the source part holds
    four times more, and a model trained on those would learn that a photo is most
    likely a source class. Both splits are shuffled with a fixed seed, so the first
    ``N`` photos (``load_arrays``' ``limit``) hold every class. ``full`` (default: the
    ``full`` profile) is all of CIFAR-10 through ``keras.datasets`` instead.
    """
    if _use_full(full):
        return _full_arrays(CIFAR10_CLASSES, "ten-classes", None)
    parts = [  # the whole target part: the same tree notebooks 02, 08 and 09 unpack
        load_photos("source", limit_per_class=TEN_CLASSES_PER_CLASS["train"], full=False),
        load_photos("target", full=False),
    ]
    rng = np.random.default_rng(SPLIT_SEED)
    splits = []
    for split in ("train", "test"):
        xs, ys = [], []
        for data in parts:
            x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
            offset = CIFAR10_CLASSES.index(data.class_names[0])
            for label in range(len(data.class_names)):
                rows = np.flatnonzero(y == label)[: TEN_CLASSES_PER_CLASS[split]]
                xs.append(x[rows])
                ys.append(np.full(len(rows), offset + label, np.int64))
        order = rng.permutation(sum(len(y) for y in ys))
        splits.append((np.concatenate(xs)[order], np.concatenate(ys)[order]))
    (x_train, y_train), (x_test, y_test) = splits
    return ArrayDataset(
        "cifar10-ten-classes",
        x_train,
        y_train,
        x_test,
        y_test,
        list(CIFAR10_CLASSES),
        f"{CREDIT}; the subset that ships with the course, 1,000 train and 500 test a class",
        TERMS,
    )
