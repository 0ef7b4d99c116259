"""Building the photo archives that ship in ``data/`` (maintainers only; nothing in the
course calls it): :func:`build_archives` makes them from the development copy of
CIFAR-10's training images and prints the digests to put in
:data:`helpers.acquire.photos.SHIPPED`. Split from :mod:`helpers.acquire.photos`, which
only reads them."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np

from helpers.acquire.photos import (
    CIFAR10_CLASSES,
    CREDIT,
    MANIFEST,
    SHIPPED,
    SPLIT_SEED,
    TERMS,
)
from helpers.config import project_root
from helpers.files import write_atomic
from helpers.images import sniff_format


def _tar_entry(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add ``data`` as ``name`` with no date, owner or mode of the build machine in it,
    so the same photos always give the same bytes and the same SHA-256."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _choose(files: list[Path], cls: str, per_class: dict[str, int]) -> dict[str, list[Path]]:
    """Split one class's files: a permutation seeded by :data:`SPLIT_SEED` and the class's
    CIFAR-10 label, cut in the order of ``per_class``."""
    rng = np.random.default_rng([SPLIT_SEED, CIFAR10_CLASSES.index(cls)])
    order = [files[i] for i in rng.permutation(len(files))]
    chosen, start = {}, 0
    for split, n in per_class.items():
        chosen[split] = order[start : start + n]
        start += n
    return chosen


def build_archive(
    source_root: str | os.PathLike,
    classes: tuple[str, ...],
    per_class: dict[str, int],
    destination: str | os.PathLike,
) -> tuple[str, int]:
    """Write one archive of the photos in ``source_root/<class>/NNNN.jpg`` to
    ``destination``; return its SHA-256 and size in bytes.

    Each class's photos are split by :func:`_choose` (``per_class``: split -> photos a
    class), stored as they are (JPEG bytes, never re-encoded), round-robin over splits
    and classes (see the module docstring), after a :data:`MANIFEST` that credits the
    data set and records the split. The output is byte-for-byte reproducible.
    """
    source_root = Path(source_root)
    need = sum(per_class.values())
    chosen = {}
    for cls in classes:
        files = sorted((source_root / cls).glob("*.jpg"))
        if len(files) < need:
            raise ValueError(
                f"{source_root / cls} holds {len(files)} .jpg files, fewer than the {need} "
                f"the split {per_class} takes; give the folder that holds CIFAR-10's class "
                "folders (the development copy's train/)"
            )
        chosen[cls] = _choose(files, cls, per_class)
    manifest = {
        "data_set": "CIFAR-10 training images (32x32 colour photos), JPEG files as in the "
        "course's development copy, not re-encoded",
        "credit": CREDIT,
        "terms": TERMS,
        "classes": list(classes),
        "per_class": per_class,
        "selection": f"per class, the files in name order shuffled by "
        f"numpy.random.default_rng([{SPLIT_SEED}, CIFAR-10 label]); the first go to the "
        "first split, the next ones to the next; file names are those of the copy",
        "order": "round-robin: one photo of each split and class in turn",
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        _tar_entry(tar, MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
        for i in range(max(per_class.values())):
            for split, n in per_class.items():
                for cls in classes if i < n else ():
                    path = chosen[cls][split][i]
                    data = path.read_bytes()
                    if sniff_format(data) != "JPEG":
                        raise ValueError(f"{path} is not a JPEG file; give CIFAR-10's JPEGs")
                    _tar_entry(tar, f"{split}/{cls}/{path.name}", data)
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=packed, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
    write_atomic(Path(destination), packed.getvalue())
    return hashlib.sha256(packed.getvalue()).hexdigest(), len(packed.getvalue())


def build_archives(
    source_root: str | os.PathLike, out_dir: str | os.PathLike | None = None
) -> dict[str, tuple[Path, str, int]]:
    """Rebuild both shipped archives from a folder of CIFAR-10's training images as
    ``<class>/NNNN.jpg`` (the development copy, unpacked: its ``train/`` folder), into
    ``out_dir`` (default: the project's ``data/``), with the classes and split sizes of
    :data:`SHIPPED`. Prints and returns each archive's path, SHA-256 and size: copy
    them into :data:`SHIPPED` and the README. For maintainers; never called at run time.
    """
    out = Path(out_dir) if out_dir is not None else project_root() / "data"
    built = {}
    for part, shipped in SHIPPED.items():
        path = out / shipped.file_name
        digest, size = build_archive(source_root, shipped.classes, shipped.per_class, path)
        built[part] = (path, digest, size)
        print(f"{part}: {path} sha256 {digest} ({size:,} bytes)")
    return built
