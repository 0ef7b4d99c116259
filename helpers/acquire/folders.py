"""Acquire images into the catalog: array data sets, generated scenes, folders and CSV.

Every image passes the gate in :mod:`helpers.images` (format, limits, one full decode,
EXIF orientation applied, metadata stripped) before the catalog stores it; the stored
bytes are what gets hashed, so the same picture from two places is stored once.

Folder layouts (:func:`ingest_class_folders`, :func:`ingest_split_folders`,
:func:`ingest_csv`) check every file and report the bad ones with a reason instead of
stopping: one corrupt JPEG in ten thousand should cost one line in a report, not the
whole import. They stay inside the folder they are given: a CSV row naming
``../elsewhere.png`` or an absolute path, and a symbolic link that leads out of the
folder, are skipped with the reason from :func:`helpers.files.resolve_inside`. Labels
that come with the data are stored with annotator and source ``"import"``, so the
labeling notebook can tell them from human ones.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from helpers.catalog import Catalog, CatalogError
from helpers.files import OutsideFolder, resolve_inside
from helpers.images import (
    SPLIT_FOLDERS,
    ClassFolderWarning,
    FolderError,
    ImageRejected,
    check_image_bytes,
    class_tree_problems,
    encode_png,
    read_image_file,
    split_folders,
    walk_class_tree,
)

IMPORT = "import"  # annotator and source of labels that came with the data


# -- reports -------------------------------------------------------------------------


@dataclass
class IngestReport:
    """What an import did: ids added, duplicates found, files skipped and why."""

    added: list[int] = field(default_factory=list)
    duplicates: list[tuple[str, int]] = field(default_factory=list)  # (where, existing id)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (where, what changed)

    def __str__(self) -> str:
        lines = [
            f"added {len(self.added)}, duplicates {len(self.duplicates)}, "
            f"skipped {len(self.skipped)}, changed {len(self.notes)}"
        ]
        lines += [f"  skipped {where}: {reason}" for where, reason in self.skipped]
        lines += [f"  changed {where}: {note}" for where, note in self.notes]
        return "\n".join(lines)


def _store(
    catalog: Catalog,
    report: IngestReport,
    where: str,
    data: bytes | Path,
    provenance: dict,
    strip_exif: bool = True,
) -> int | None:
    """Check and store one image (bytes, or a file read only once its size is known to
    be within the limit); record the outcome in ``report``; return its id."""
    try:
        if isinstance(data, Path):
            data = read_image_file(data)
        checked = check_image_bytes(data, strip_exif=strip_exif)
        image_id, added = catalog.add_checked_image(checked, **provenance)
    except (ImageRejected, CatalogError, OSError) as exc:
        report.skipped.append((where, str(exc)))
        return None
    if checked.notes:
        report.notes.append((where, "; ".join(checked.notes)))
    (report.added.append(image_id) if added else report.duplicates.append((where, image_id)))
    return image_id


def _label(
    catalog: Catalog, report: IngestReport, where: str, image_id: int, class_name: str
) -> None:
    """Store the imported label, unless the same image already came with another one.

    The same picture in two class folders is a labeling conflict: the first label is
    kept and the conflict reported, so the labeling notebook can resolve it.
    """
    earlier = catalog.label_of(image_id, IMPORT)
    if earlier is not None and earlier["class_name"] != class_name:
        report.notes.append(
            (where, f"label conflict: same image imported as {earlier['class_name']!r}; kept that")
        )
        return
    catalog.set_label(image_id, class_name, annotator=IMPORT, source=IMPORT)


def _ingest_one(catalog, report, base, where: str, label: str, dataset, source: str):
    """Store the file ``where`` (relative to ``base``, refused when it leads outside) with
    its provenance and label it ``label``; its image id, or None when it was refused."""
    try:
        real = resolve_inside(base, where)
    except OutsideFolder as exc:
        report.skipped.append((where, str(exc)))
        return None
    provenance = {"dataset": dataset, "source": source, "original_name": where}
    image_id = _store(catalog, report, where, real, provenance)
    if image_id is not None:
        _label(catalog, report, where, image_id, label)
    return image_id


# -- array data sets -----------------------------------------------------------------


def ingest_arrays(catalog: Catalog, data, *, limit: int | None = None) -> IngestReport:
    """Store an :class:`~helpers.acquire.datasets.ArrayDataset` with labels, splits and provenance.

    ``limit`` keeps the first N train and N//4 test images (at least one), so a notebook
    can show a data set's shape without storing all of it. Train images get the split
    "train", test images "test".
    """
    catalog.set_classes(data.class_names)
    report = IngestReport()
    splits: dict[int, str] = {}
    parts = (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test))
    for split, x, y in parts:
        n = (
            len(x)
            if limit is None
            else min(len(x), limit if split == "train" else max(1, limit // 4))
        )
        for i in range(n):
            provenance = {
                "dataset": data.name,
                "source": data.source,
                "license": data.license,
                "original_name": f"{data.name}/{split}/{i}",
                "attribution": f"{data.name}: {data.source} ({data.license})",
            }
            image_id = _store(
                catalog, report, f"{split}[{i}]", encode_png(np.asarray(x[i])), provenance
            )
            if image_id is not None:
                _label(catalog, report, f"{split}[{i}]", image_id, data.class_names[int(y[i])])
                splits[image_id] = split
    if splits:
        catalog.set_splits(splits)
    return report


def ingest_scenes(
    catalog: Catalog,
    images: np.ndarray,
    boxes: list[list[dict]],
    *,
    dataset: str = "shapes_scenes",
    source: str = "generated by helpers.acquire.synthetic",
    license: str = "CC0 (generated)",
) -> IngestReport:
    """Store scenes with their boxes (annotator and source "import")."""
    if len(images) != len(boxes):
        raise ValueError(f"{len(images)} images but {len(boxes)} box lists; give one per image")
    names = sorted({b["class_name"] for scene in boxes for b in scene})
    if names:
        catalog.set_classes(names)
    report = IngestReport()
    for i, (image, scene) in enumerate(zip(images, boxes, strict=True)):
        provenance = {
            "dataset": dataset,
            "source": source,
            "license": license,
            "attribution": f"{dataset}: {source} ({license})",
        }
        image_id = _store(catalog, report, f"scene[{i}]", encode_png(image), provenance)
        if image_id is None or (catalog.boxes(image_id, annotator=IMPORT)):
            continue  # a duplicate scene keeps the boxes it already has
        for b in scene:
            catalog.add_box(
                image_id,
                b["class_name"],
                b["x0"],
                b["y0"],
                b["x1"],
                b["y1"],
                annotator=IMPORT,
                source=IMPORT,
            )
    return report


# -- folders -------------------------------------------------------------------------


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise FolderError(f"{what} {path.resolve()} is not a folder; check the path")


def _ingest_class_tree(
    catalog: Catalog, root: Path, dataset: str, report: IngestReport, base: Path
) -> list[int]:
    tree = walk_class_tree(root)
    if not tree.class_names:
        raise FolderError(
            f"{root.resolve()} holds no class folders; expected {root}/<class>/<image files>"
        )
    prefix = root.relative_to(base)
    for where, reason in tree.left_out:
        report.skipped.append(((prefix / where).as_posix(), reason))
    for problem in class_tree_problems(tree):
        report.notes.append((prefix.as_posix(), problem))
        warnings.warn(problem, ClassFolderWarning, stacklevel=3)
    catalog.set_classes(tree.class_names)
    ids = []
    for path, name in tree.files:
        where = path.relative_to(base).as_posix()
        image_id = _ingest_one(catalog, report, base, where, name, dataset, "folder")
        if image_id is not None:
            ids.append(image_id)
    return ids


def ingest_class_folders(catalog: Catalog, root: str | Path, *, dataset: str) -> IngestReport:
    """Import ``root/<class>/<image>`` (the ``flow_from_directory`` layout) with labels.

    Empty class folders and a tree with a single class are imported, but warned about
    (:class:`ClassFolderWarning`) and noted in the report: labels may still come later,
    but as it stands such a tree cannot train a classifier.
    """
    root = Path(root)
    _require_dir(root, "class folder root")
    report = IngestReport()
    _ingest_class_tree(catalog, root, dataset, report, root)
    return report


def ingest_split_folders(catalog: Catalog, root: str | Path, *, dataset: str) -> IngestReport:
    """Import ``root/{train,val,test}/<class>/<image>`` with labels and splits.

    The split folders are those the trainers read (:func:`helpers.images.split_folders`:
    the validation folder may be named ``val``, ``valid`` or ``validation``). Missing split
    folders are fine (many data sets ship train and test only); any other
    top-level folder is reported, since it probably holds images meant for a split.
    """
    root = Path(root)
    _require_dir(root, "split folder root")
    report = IngestReport()
    present = split_folders(root)
    names = [name for names in SPLIT_FOLDERS.values() for name in names]
    if not present:
        raise FolderError(f"{root.resolve()} has none of the split folders {names}")
    for other in sorted(p for p in root.iterdir() if p not in present.values()):
        if not other.name.startswith("."):
            report.skipped.append((other.name, f"not a split folder; use one of {names}"))
    for split, folder in present.items():
        ids = _ingest_class_tree(catalog, folder, dataset, report, root)
        earlier = catalog.splits()
        leaks = {i for i in ids if earlier.get(i, split) != split}
        for image_id in sorted(leaks):
            report.notes.append(
                (f"{split}/#{image_id}", f"leak: same image already in {earlier[image_id]!r}")
            )
        catalog.set_splits({i: split for i in ids if i not in leaks})
    return report


def ingest_csv(
    catalog: Catalog,
    folder: str | Path,
    csv_path: str | Path,
    *,
    dataset: str,
    filename_column: str = "filename",
    label_column: str = "label",
) -> IngestReport:
    """Import a flat folder whose labels sit in a CSV (columns ``filename``, ``label``).

    Rows naming a missing file, rows without a label, rows whose file lies outside
    ``folder`` (through ``..``, an absolute path or a symbolic link) and files without a
    row are all reported; a file listed twice with two different labels is skipped as
    ambiguous.
    """
    folder, csv_path = Path(folder), Path(csv_path)
    _require_dir(folder, "image folder")
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {filename_column, label_column} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(
                f"{csv_path} lacks the column(s) {sorted(missing)}; its header is "
                f"{reader.fieldnames}. Pass filename_column= and label_column= to match it."
            )
        rows = [(r[filename_column].strip(), (r[label_column] or "").strip()) for r in reader]
    report = IngestReport()
    wanted: dict[str, set[str]] = {}
    for name, label in rows:
        if not label:
            report.skipped.append((name, "no label in the CSV"))
            continue
        wanted.setdefault(name, set()).add(label)
    catalog.set_classes(sorted({lab for labs in wanted.values() for lab in labs}))
    on_disk = {p.name for p in folder.iterdir() if p.is_file()}
    for name in sorted(on_disk - set(wanted) - {csv_path.name}):
        if not any(name == n for n, _ in rows):
            report.skipped.append((name, "no row in the CSV"))
    for name, labels in wanted.items():
        if len(labels) > 1:
            report.skipped.append((name, f"listed with different labels {sorted(labels)}"))
            continue
        if not (folder / name).is_file():
            report.skipped.append((name, "listed in the CSV but no such file in the folder"))
            continue
        _ingest_one(catalog, report, folder, name, labels.pop(), dataset, "folder+csv")
    return report


# -- reading back --------------------------------------------------------------------


def load_labeled(
    catalog: Catalog, dataset: str, size: int | None = None, mode: str = "RGB"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images of ``dataset`` with an "import" label as arrays ``(x, y, class_names)``.

    ``size`` resizes every image to size x size so they stack; without it they must
    already share a shape.
    """
    classes = catalog.classes()
    rows = catalog.labeled_images(IMPORT, dataset=dataset)
    arrays = []
    for row in rows:
        image = Image.fromarray(catalog.load_image(row["image_id"], mode=mode))
        if size is not None:
            image = image.resize((size, size), Image.BILINEAR)
        arrays.append(np.asarray(image))
    x = np.stack(arrays) if arrays else np.empty((0, size or 0, size or 0, 3), np.uint8)
    y = np.array([classes.index(r["class_name"]) for r in rows], dtype=np.int64)
    return x, y, classes
