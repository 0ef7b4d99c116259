"""Acquire images into the catalog: array data sets, folders on disk, and checked bytes.

Every image that enters the catalog passes :func:`check_image_bytes` first: it must be
one of the accepted formats by its magic bytes, small enough, not a decompression
bomb, fully decodable and in a usable mode. Its EXIF orientation is applied, and EXIF
metadata (GPS above all) is stripped; the file is re-encoded only when it carries
EXIF, so every other file is stored byte for byte as it arrived. The stored bytes are
what gets hashed, so the same picture from two places is stored once.

Folder layouts (:func:`ingest_class_folders`, :func:`ingest_split_folders`,
:func:`ingest_csv`) check every file and report the bad ones with a reason instead of
stopping: one corrupt JPEG in ten thousand should cost one line in a report, not the
whole import. Labels that come with the data are stored with annotator and source
``"import"``, so the labeling notebook can tell them from human ones.
"""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from helpers.catalog import SPLITS, Catalog, CatalogError, encode_png

IMPORT = "import"  # annotator and source of labels that came with the data
MAX_BYTES = 50_000_000  # a 50 MB file is not a training image; a bigger one is refused
MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (about 89 megapixels)
MIN_SIDE = 8
# Pillow modes the pipeline can convert to L or RGB without guessing.
MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I;16", "I"}
_MAGIC = [
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
]
_EXIF_ORIENTATION = 0x0112


class ImageRejected(ValueError):
    """These bytes are not an image the course accepts; the message says why."""


def sniff_format(data: bytes) -> str | None:
    """The image format the first bytes announce (JPEG, PNG, GIF, BMP, TIFF, WEBP), or None.

    Magic bytes, not a file name or a ``Content-Type`` header, say what a file is: a web
    server may call a JPEG ``text/plain``, or send an HTML error page as ``image/png``.
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    return None


def _describe(data: bytes) -> str:
    head = data[:16].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return "an HTML/XML page"
    if head.startswith((b"{", b"[")):
        return "JSON"
    return f"bytes starting {data[:8]!r}"


@dataclass
class CheckedImage:
    """Bytes ready to store, with what the check found and what it changed."""

    data: bytes
    width: int
    height: int
    mode: str
    format: str
    notes: list[str] = field(default_factory=list)


def check_image_bytes(
    data: bytes,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
    strip_exif: bool = True,
) -> CheckedImage:
    """Check ``data`` is a usable image; apply EXIF orientation and strip EXIF.

    Raises :class:`ImageRejected` with the reason. The pixel count is checked from the
    header before any decoding, so a small file that would decode to gigabytes (a
    decompression bomb) is refused without allocating them.
    """
    if not data:
        raise ImageRejected("empty file")
    if len(data) > max_bytes:
        raise ImageRejected(f"file too large: {len(data):,} bytes > limit {max_bytes:,}")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected(f"not an image: {_describe(data)}")
    try:
        with warnings.catch_warnings():
            # Pillow warns about big images at open; the explicit pixel check below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[fmt])
        with im:
            width, height = im.size
            if width * height > max_pixels:
                raise ImageRejected(
                    f"decompression bomb guard: {width}x{height} = {width * height:,} pixels"
                    f" > limit {max_pixels:,}"
                )
            if min(width, height) < min_side:
                raise ImageRejected(f"too small: {width}x{height} (need {min_side} px a side)")
            if im.mode not in MODES:
                raise ImageRejected(f"unsupported mode {im.mode!r}; convert it to RGB or L first")
            im.load()  # a truncated or corrupt file fails here, not at training time
            exif = im.getexif()
            # JPEG, PNG and WebP keep EXIF in a block of their own; a TIFF's tags are its
            # structure, so only its orientation, EXIF and GPS pointers count as metadata.
            has_exif = "exif" in im.info or (
                fmt == "TIFF" and any(tag in exif for tag in (0x0112, 0x8769, 0x8825))
            )
            notes: list[str] = []
            if strip_exif and has_exif:
                data, notes = _strip_exif(data, im, fmt, exif)
            mode = im.mode
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"decompression bomb guard: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"corrupt or truncated {fmt}: {exc}") from exc
    if notes:  # re-encoded: a rotation may have swapped width and height
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    return CheckedImage(data, width, height, mode, fmt, notes)


def _strip_exif(
    data: bytes, im: Image.Image, fmt: str, exif: Image.Exif
) -> tuple[bytes, list[str]]:
    """The image without EXIF, upright; pixels untouched unless a rotation was needed.

    An upright JPEG loses its metadata segments byte-wise (no re-encoding, no quality
    loss). A rotated JPEG must be re-encoded (quality 95); PNG re-encodes losslessly.
    """
    orientation = exif.get(_EXIF_ORIENTATION, 1)
    had_gps = bool(exif.get_ifd(0x8825)) or 0x8825 in exif
    notes = []
    upright = im
    if orientation not in (None, 1):
        upright = ImageOps.exif_transpose(im)
        notes.append(f"applied EXIF orientation {orientation}")
    notes.append("stripped EXIF" + (" (including GPS position)" if had_gps else ""))
    if fmt == "JPEG" and upright is im:
        return _drop_jpeg_metadata(data), notes
    if fmt == "WEBP" and upright is im:
        return _drop_webp_metadata(data), notes
    options: dict = {}
    if fmt == "JPEG":
        options = {"quality": 95}
    elif fmt == "WEBP":
        options = {"lossless": True} if _webp_chunks(data).get(b"VP8L") else {"quality": 95}
    save_format = fmt if fmt in ("JPEG", "PNG", "WEBP", "TIFF") else "PNG"
    buf = io.BytesIO()
    upright.save(buf, format=save_format, **options)
    return buf.getvalue(), notes


def _drop_jpeg_metadata(data: bytes) -> bytes:
    """Copy a JPEG without its APP1 (EXIF, XMP) and APP13 (IPTC) segments.

    The colour-relevant segments (APP0 JFIF, APP2 ICC profile, APP14 Adobe) and the
    compressed image data are copied unchanged, so the decoded pixels are identical.
    """
    out = bytearray(data[:2])
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ImageRejected("corrupt JPEG: bad segment marker")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is image data
            break
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker not in (0xE1, 0xED):
            out += data[i : i + 2 + length]
        i += 2 + length
    return bytes(out + data[i:])


def _webp_chunks(data: bytes) -> dict[bytes, bytes]:
    """The RIFF chunks of a WebP file, ``{fourcc: whole chunk}`` (last one wins)."""
    chunks, i = {}, 12
    while i + 8 <= len(data):
        size = int.from_bytes(data[i + 4 : i + 8], "little")
        end = i + 8 + size + (size & 1)  # chunks are padded to an even length
        chunks[data[i : i + 4]] = data[i:end]
        i = end
    return chunks


def _drop_webp_metadata(data: bytes) -> bytes:
    """Copy a WebP without its EXIF and XMP chunks; the image chunks stay byte for byte."""
    kept = bytearray()
    i = 12
    while i + 8 <= len(data):
        fourcc = data[i : i + 4]
        size = int.from_bytes(data[i + 4 : i + 8], "little")
        end = i + 8 + size + (size & 1)
        chunk = bytearray(data[i:end])
        if fourcc == b"VP8X":
            chunk[8] &= ~0x0C & 0xFF  # clear the "has EXIF" and "has XMP" flags
        if fourcc not in (b"EXIF", b"XMP "):
            kept += chunk
        i = end
    return b"RIFF" + (len(kept) + 4).to_bytes(4, "little") + b"WEBP" + bytes(kept)


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
    data: bytes,
    provenance: dict,
    strip_exif: bool = True,
) -> int | None:
    """Check and store one image; record the outcome in ``report``; return its id."""
    try:
        checked = check_image_bytes(data, strip_exif=strip_exif)
        image_id, added = catalog.add_image_bytes(checked.data, **provenance)
    except (ImageRejected, CatalogError) as exc:
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
    rows = catalog.query(
        "SELECT classes.name FROM labels JOIN classes ON classes.id = labels.class_id"
        " WHERE labels.image_id = ? AND labels.annotator = ?",
        (image_id, IMPORT),
    )
    if rows and rows[0]["name"] != class_name:
        report.notes.append(
            (where, f"label conflict: same image imported as {rows[0]['name']!r}; kept that")
        )
        return
    catalog.set_label(image_id, class_name, annotator=IMPORT, source=IMPORT)


# -- array data sets -----------------------------------------------------------------


def ingest_arrays(catalog: Catalog, data, *, limit: int | None = None) -> IngestReport:
    """Store an :class:`~helpers.datasets.ArrayDataset` with labels, splits and provenance.

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
    source: str = "generated by helpers.synthetic",
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


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} {path} is not a folder; check the path")


def _ingest_class_tree(
    catalog: Catalog, root: Path, dataset: str, report: IngestReport, base: Path
) -> list[int]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise FileNotFoundError(
            f"{root} holds no class folders; expected {root}/<class>/<image files>"
        )
    catalog.set_classes(classes)
    for stray in _files(root):
        report.skipped.append((stray.relative_to(base).as_posix(), "not inside a class folder"))
    ids = []
    for name in classes:
        for path in _files(root / name):
            where = path.relative_to(base).as_posix()
            provenance = {"dataset": dataset, "source": "folder", "original_name": where}
            image_id = _store(catalog, report, where, path.read_bytes(), provenance)
            if image_id is not None:
                _label(catalog, report, where, image_id, name)
                ids.append(image_id)
    return ids


def ingest_class_folders(catalog: Catalog, root: str | Path, *, dataset: str) -> IngestReport:
    """Import ``root/<class>/<image>`` (the ``flow_from_directory`` layout) with labels."""
    root = Path(root)
    _require_dir(root, "class folder root")
    report = IngestReport()
    _ingest_class_tree(catalog, root, dataset, report, root)
    return report


def ingest_split_folders(catalog: Catalog, root: str | Path, *, dataset: str) -> IngestReport:
    """Import ``root/{train,val,test}/<class>/<image>`` with labels and splits.

    Missing split folders are fine (many data sets ship train and test only); any other
    top-level folder is reported, since it probably holds images meant for a split.
    """
    root = Path(root)
    _require_dir(root, "split folder root")
    report = IngestReport()
    present = [s for s in SPLITS if (root / s).is_dir()]
    if not present:
        raise FileNotFoundError(f"{root} has none of the split folders {SPLITS}")
    for other in sorted(p for p in root.iterdir() if p.name not in present):
        if not other.name.startswith("."):
            report.skipped.append((other.name, f"not a split folder; use one of {SPLITS}"))
    for split in present:
        ids = _ingest_class_tree(catalog, root / split, dataset, report, root)
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

    Rows naming a missing file, rows without a label and files without a row are all
    reported; a file listed twice with two different labels is skipped as ambiguous.
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
    on_disk = {p.name for p in _files(folder)}
    for name in sorted(on_disk - set(wanted) - {csv_path.name}):
        if not any(name == n for n, _ in rows):
            report.skipped.append((name, "no row in the CSV"))
    for name, labels in wanted.items():
        if len(labels) > 1:
            report.skipped.append((name, f"listed with different labels {sorted(labels)}"))
            continue
        path = folder / name
        if Path(name).name != name or not path.is_file():
            report.skipped.append((name, "listed in the CSV but no such file in the folder"))
            continue
        provenance = {"dataset": dataset, "source": "folder+csv", "original_name": name}
        image_id = _store(catalog, report, name, path.read_bytes(), provenance)
        if image_id is not None:
            _label(catalog, report, name, image_id, labels.pop())
    return report


# -- reading back --------------------------------------------------------------------


def provenance_table(catalog: Catalog, dataset: str | None = None) -> list[dict]:
    """One plain dict per image: where it came from, under which license, credited how."""
    cols = (
        "id, dataset, source, source_url, author, license, attribution, retrieved_at,"
        " width, height, mode, format"
    )
    sql = f"SELECT {cols} FROM images"
    params: tuple = ()
    if dataset is not None:
        sql, params = sql + " WHERE dataset = ?", (dataset,)
    return catalog.query(sql + " ORDER BY id", params)


def load_labeled(
    catalog: Catalog, dataset: str, size: int | None = None, mode: str = "RGB"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images of ``dataset`` with an "import" label as arrays ``(x, y, class_names)``.

    ``size`` resizes every image to size x size so they stack; without it they must
    already share a shape.
    """
    classes = catalog.classes()
    rows = catalog.query(
        "SELECT images.id, classes.name AS class_name FROM images"
        " JOIN labels ON labels.image_id = images.id AND labels.annotator = ?"
        " JOIN classes ON classes.id = labels.class_id WHERE images.dataset = ? ORDER BY images.id",
        (IMPORT, dataset),
    )
    arrays = []
    for row in rows:
        image = Image.fromarray(catalog.load_image(row["id"], mode=mode))
        if size is not None:
            image = image.resize((size, size), Image.BILINEAR)
        arrays.append(np.asarray(image))
    x = np.stack(arrays) if arrays else np.empty((0, size or 0, size or 0, 3), np.uint8)
    y = np.array([classes.index(r["class_name"]) for r in rows], dtype=np.int64)
    return x, y, classes
