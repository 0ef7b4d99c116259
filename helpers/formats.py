"""Export the catalog's labels to the common formats, and import them back.

Formats and what each holds:

=================  ===============================================  ======================
format             layout                                           labels
=================  ===============================================  ======================
class folders      ``root/[split/]<class>/<file>``                  one class per image
CSV                ``labels.csv`` + ``images/``                     class labels or boxes
COCO JSON          ``annotations.json`` + ``images/``               boxes
YOLO txt           ``images/``, ``labels/<stem>.txt``, classes.txt  boxes
Pascal VOC XML     ``JPEGImages/``, ``Annotations/<stem>.xml``      boxes
=================  ===============================================  ======================

Coordinate conventions (the catalog stores pixel corners, ``x0 <= x < x1``):

- COCO ``bbox`` is ``[x, y, width, height]`` in pixels, ``x = x0``, ``width = x1 - x0``;
- YOLO is ``class cx cy w h``, centre and size divided by the image size, in [0, 1];
- VOC ``xmin ymin xmax ymax`` are 1-based pixel indices, inclusive: ``xmin = x0 + 1``,
  ``xmax = x1`` (a one-pixel box at column 0 is ``xmin = xmax = 1``).

Category ids come from one mapping, :func:`category_index` (catalog class order,
from 0): YOLO uses it as is, COCO adds 1 because COCO ids start at 1 (0 is
background to many detectors). Exported boxes are clipped to the image.

Files are named by content hash (``<sha256>.<ext>``), so an import finds the image an
export wrote and a round trip through any format keeps every label. Every import
parses and checks all of its input (images decode, classes known, boxes inside the
image with positive area) before it writes anything, then writes everything in one
catalog transaction: bad input raises :class:`CatalogError` and leaves the catalog
unchanged, and so does a crash half-way.

Importers stay inside the folder they are given: a file name in a label file (a CSV
``file``, a COCO ``file_name``, a VOC ``<filename>``) and every file found in the
folder is resolved, links included, and checked by :func:`helpers.files.resolve_inside`.
A row or file that leads outside, and a CSV row without a class, is left out while the
rest is imported; an :class:`ImportLeftOut` warning names each one and why. Error
messages name the file and the line or entry, and never quote an image file's bytes.

Every imported image passes the gate in :mod:`helpers.images` like any other: it is
stored upright (EXIF orientation applied) and without its metadata (GPS included).
Imported boxes are taken in that upright frame, the one browsers and annotation tools
show; their sizes are checked against it.
"""

from __future__ import annotations

import csv
import json
import shutil
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

from helpers.catalog import SPLITS, Catalog, CatalogError
from helpers.files import OutsideFolder, resolve_inside
from helpers.images import (
    IMAGE_EXTENSIONS,
    CheckedImage,
    FolderError,
    ImageRejected,
    check_image_bytes,
    read_image_file,
    walk_class_tree,
)


class ImportLeftOut(RuntimeWarning):
    """Rows or files an import refused and passed over while it imported the rest."""


def category_index(catalog: Catalog) -> dict[str, int]:
    """``{class name: id}`` from 0 in catalog order; the one source of category ids."""
    return {name: k for k, name in enumerate(catalog.classes())}


def _num(v: float) -> float | int:
    v = round(float(v), 4)
    return int(v) if v.is_integer() else v


def _safe_class_dir(name: str) -> str:
    if name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise CatalogError(
            f"class {name!r} cannot be a folder name; rename it (no slashes, no leading dot)"
        )
    return name


def _copy_image(catalog: Catalog, image_id: int, folder: Path) -> str:
    src = catalog.image_path(image_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / src.name
    if not target.exists():
        shutil.copyfile(src, target)
    return src.name


def _class_labels(catalog: Catalog, annotator: str) -> dict[int, dict]:
    return {
        r["image_id"]: r
        for r in catalog.labels(annotator)
        if r["class_name"] is not None and r["status"] in ("labeled", "unsure")
    }


def _clipped(box: dict, width: int, height: int) -> tuple[float, float, float, float]:
    x0, x1 = (min(max(float(box[k]), 0.0), width) for k in ("x0", "x1"))
    y0, y1 = (min(max(float(box[k]), 0.0), height) for k in ("y0", "y1"))
    return x0, y0, x1, y1


def _boxed_images(catalog: Catalog, annotator: str | None, image_ids) -> dict[int, list[dict]]:
    boxes: dict[int, list[dict]] = {}
    for b in catalog.boxes(annotator=annotator):
        boxes.setdefault(b["image_id"], []).append(b)
    if image_ids is not None:
        keep = [int(i) for i in image_ids]
        return {i: boxes.get(i, []) for i in keep}
    return boxes


# -- reading and checking input -------------------------------------------------------


def _read_image(path: Path) -> tuple[CheckedImage, dict]:
    """The image through the gate, and its upright size as ``{"width", "height"}``."""
    if not path.is_file():
        raise CatalogError(f"image file {path.resolve()} is missing; nothing was imported")
    try:
        checked = check_image_bytes(read_image_file(path))
    except ImageRejected as exc:
        raise CatalogError(f"{path.resolve()}: {exc}; nothing was imported") from exc
    return checked, {"width": checked.width, "height": checked.height}


def _warn_left_out(left_out: list[tuple[str, str]]) -> None:
    """One warning naming every row or file left out and why (stacklevel: the caller of
    the importer, the line a learner wrote)."""
    if left_out:
        listed = "; ".join(f"{where} ({why})" for where, why in left_out)
        warnings.warn(f"left out of the import: {listed}", ImportLeftOut, stacklevel=3)


def _inside(root: Path, name, where: str, left_out: list[tuple[str, str]]) -> Path | None:
    """``root / name`` resolved when it stays inside ``root``; else None, noted in ``left_out``."""
    try:
        return resolve_inside(root, name)
    except OutsideFolder as exc:
        left_out.append((where, str(exc)))
        return None


def _folder_inside(root: Path, name: str) -> Path:
    """A format's fixed sub-folder (``images``, ``JPEGImages``...), refused as a whole
    when it is a link that leads out of ``root``: none of its files could be imported."""
    try:
        return resolve_inside(root, name)
    except OutsideFolder as exc:
        raise CatalogError(f"{root / name}: {exc}; nothing was imported") from exc


def _read_text(path: Path) -> str:
    """A label file's text, or a :class:`CatalogError` naming it, never a bare decode error."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CatalogError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8; nothing was imported"
        ) from exc
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _check_classes(names, allowed: list[str] | None, where: str) -> None:
    if allowed is None:
        return
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise CatalogError(
            f"{where} uses classes {unknown} that are not in {allowed}; add them or fix the"
            " file; nothing was imported"
        )


def _check_box(box, info: dict, where: str, clip: bool):
    name, x0, y0, x1, y1 = box
    w, h = info["width"], info["height"]
    if clip:
        x0, x1 = min(max(x0, 0.0), w), min(max(x1, 0.0), w)
        y0, y1 = min(max(y0, 0.0), h), min(max(y1, 0.0), h)
    if not (x1 > x0 and y1 > y0):
        raise CatalogError(f"{where}: box {box[1:]} has zero area; nothing was imported")
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        raise CatalogError(
            f"{where}: box {box[1:]} lies outside the {w}x{h} image; fix it or pass"
            " clip=True; nothing was imported"
        )
    return (name, x0, y0, x1, y1)


def _write(
    catalog: Catalog,
    plan: list[dict],
    annotator: str,
    dataset: str | None,
    new_classes: list[str],
    source: str = "import",
) -> dict[int, dict]:
    """Apply a checked import plan in one transaction; return {image_id: entry} written."""
    with catalog.transaction():
        return _write_plan(catalog, plan, annotator, dataset, new_classes, source)


def _write_plan(catalog, plan, annotator, dataset, new_classes, source) -> dict[int, dict]:
    if new_classes:
        missing = [c for c in dict.fromkeys(new_classes) if c not in catalog.classes()]
        if missing:
            catalog.set_classes(missing)
    written = {}
    for entry in plan:
        image_id, _ = catalog.add_checked_image(
            entry["data"], dataset=dataset, source=source, original_name=entry["name"]
        )
        if entry.get("class_name") is not None:
            catalog.set_label(
                image_id,
                entry["class_name"],
                annotator=annotator,
                status=entry.get("status") or "labeled",
                source="import",
            )
        existing = {
            (b["class_name"], b["x0"], b["y0"], b["x1"], b["y1"])
            for b in catalog.boxes(image_id, annotator=annotator)
        }
        for name, x0, y0, x1, y1 in entry.get("boxes", []):
            if (name, x0, y0, x1, y1) not in existing:  # importing twice adds nothing
                catalog.add_box(
                    image_id, name, x0, y0, x1, y1, annotator=annotator, source="import"
                )
        written[image_id] = entry
    splits = {i: e["split"] for i, e in written.items() if e.get("split")}
    if splits:
        catalog.set_splits(splits)
    return written


# -- class folders --------------------------------------------------------------------


def export_class_folders(
    catalog: Catalog,
    root,
    annotator: str,
    *,
    by_split: bool = False,
    classes: list[str] | None = None,
) -> Path:
    """Copy each labeled image to ``root/<class>/`` (or ``root/<split>/<class>/``).

    The layout ``keras.utils.image_dataset_from_directory`` and ``flow_from_directory``
    read. Every class gets a folder, even an empty one, so class indices stay the same.
    ``classes`` (default: all catalog classes) limits the export to one task's classes
    when a catalog holds several; a label of another class is then an error.
    """
    root = Path(root)
    labels = _class_labels(catalog, annotator)
    classes = catalog.classes() if classes is None else list(classes)
    unknown = sorted({r["class_name"] for r in labels.values()} - set(classes))
    if unknown:
        raise CatalogError(f"{annotator!r} has labels of classes {unknown} outside {classes}")
    splits = catalog.splits()
    if by_split and any(i not in splits for i in labels):
        raise CatalogError("some labeled images have no split; run split_catalog first")
    for name in classes:
        for part in SPLITS if by_split else [""]:
            (root / part / _safe_class_dir(name)).mkdir(parents=True, exist_ok=True)
    for image_id, row in labels.items():
        folder = root / (splits[image_id] if by_split else "") / row["class_name"]
        _copy_image(catalog, image_id, folder)
    return root


def import_class_folders(
    catalog: Catalog,
    root,
    *,
    annotator: str = "import",
    dataset: str | None = None,
    classes: list[str] | None = None,
) -> dict[int, str]:
    """Import ``root/<class>/<image>`` (or ``root/<split>/<class>/<image>``); return labels.

    Folders are read by :func:`helpers.images.walk_class_tree`, like every other class
    tree in the course; files it leaves out, and files whose links lead out of ``root``,
    are named in an :class:`ImportLeftOut` warning.
    """
    root = Path(root)
    try:
        top = walk_class_tree(root)
    except FolderError as exc:
        raise CatalogError(str(exc)) from exc
    by_split = bool(top.class_names) and set(top.class_names) <= set(SPLITS)
    trees = [(s, walk_class_tree(root / s)) for s in top.class_names] if by_split else [(None, top)]
    plan = []
    class_names: list[str] = []
    left_out = [] if by_split else top.left_out
    for split, tree in trees:
        class_names += tree.class_names
        left_out += [(f"{split}/{where}", why) for where, why in tree.left_out] if split else []
        for path, class_name in tree.files:
            rel = path.relative_to(root)
            real = _inside(root, rel, rel.as_posix(), left_out)
            if real is None:
                continue
            checked, _ = _read_image(real)
            plan.append(
                {"data": checked, "name": path.name, "class_name": class_name, "split": split}
            )
    _warn_left_out(left_out)
    if not class_names:
        raise CatalogError(f"{root} holds no class folders; expected root/<class>/<image>")
    _check_classes(class_names, classes, str(root))
    written = _write(catalog, plan, annotator, dataset, sorted(set(class_names)))
    return {i: e["class_name"] for i, e in written.items()}


# -- CSV ------------------------------------------------------------------------------

LABEL_COLUMNS = ["file", "sha256", "width", "height", "class", "status", "split"]
BOX_COLUMNS = ["file", "sha256", "width", "height", "class", "x0", "y0", "x1", "y1", "split"]


def export_csv(catalog: Catalog, path, annotator: str, *, kind: str = "labels") -> Path:
    """Write class labels (``kind="labels"``) or boxes (``"boxes"``, pixel corners) as CSV.

    Images are copied to ``images/`` next to the file; ``file`` is relative to it.
    """
    path = Path(path)
    if kind not in ("labels", "boxes"):
        raise ValueError(f"kind must be 'labels' or 'boxes', not {kind!r}")
    folder = path.parent / "images"
    splits = catalog.splits()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if kind == "labels":
            writer.writerow(LABEL_COLUMNS)
            for image_id, row in _class_labels(catalog, annotator).items():
                img = catalog.image(image_id)
                name = _copy_image(catalog, image_id, folder)
                writer.writerow(
                    [
                        f"images/{name}",
                        img["sha256"],
                        img["width"],
                        img["height"],
                        row["class_name"],
                        row["status"],
                        splits.get(image_id, ""),
                    ]
                )
        else:
            writer.writerow(BOX_COLUMNS)
            for image_id, boxes in _boxed_images(catalog, annotator, None).items():
                img = catalog.image(image_id)
                name = _copy_image(catalog, image_id, folder)
                for b in boxes:
                    x0, y0, x1, y1 = _clipped(b, img["width"], img["height"])
                    writer.writerow(
                        [
                            f"images/{name}",
                            img["sha256"],
                            img["width"],
                            img["height"],
                            b["class_name"],
                            _num(x0),
                            _num(y0),
                            _num(x1),
                            _num(y1),
                            splits.get(image_id, ""),
                        ]
                    )
    return path


def import_csv(
    catalog: Catalog,
    path,
    *,
    annotator: str = "import",
    dataset: str | None = None,
    classes: list[str] | None = None,
    clip: bool = False,
) -> int:
    """Import a CSV written by :func:`export_csv` (labels or boxes); return rows imported.

    ``file`` is relative to the CSV's folder and must stay inside it; such rows, and rows
    with an empty class, are left out (an :class:`ImportLeftOut` warning names them)
    rather than imported under a class named "" or "None".
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path} is not UTF-8 text; save it as UTF-8 CSV") from exc
    except csv.Error as exc:
        raise CatalogError(f"{path} is not a CSV file ({exc}); nothing was imported") from exc
    if not rows:
        raise CatalogError(f"{path} has no rows; nothing was imported")
    header = set(rows[0])
    is_boxes = {"x0", "y0", "x1", "y1"} <= header
    need = set(BOX_COLUMNS if is_boxes else LABEL_COLUMNS) - {"sha256", "split", "status"}
    if not need <= header:
        raise CatalogError(f"{path} lacks columns {sorted(need - header)}")
    _check_classes([r["class"] for r in rows if (r["class"] or "").strip()], classes, str(path))
    folder = path.parent
    plan: dict[str, dict] = {}
    refused: dict[str, str] = {}
    left_out: list[tuple[str, str]] = []
    imported: list[str] = []
    for n, r in enumerate(rows, start=2):
        where = f"{path} line {n}"
        name = r["file"] or ""
        if not (r["class"] or "").strip():
            left_out.append((where, "empty class; fill in the class column"))
            continue
        if name in refused:
            left_out.append((where, refused[name]))
            continue
        if name not in plan:
            f = _inside(folder, name, where, left_out)
            if f is None:
                refused[name] = left_out[-1][1]
                continue
            data, info = _read_image(f)
            plan[name] = {
                "data": data,
                "info": info,
                "name": Path(name).name,
                "boxes": [],
                "split": r.get("split") or None,
            }
        entry = plan[name]
        if entry["split"] and entry["split"] not in SPLITS:
            raise CatalogError(f"{where}: unknown split {entry['split']!r}")
        if is_boxes:
            try:
                corners = [float(r[k]) for k in ("x0", "y0", "x1", "y1")]
            except (TypeError, ValueError) as exc:
                raise CatalogError(
                    f"{where}: x0, y0, x1, y1 must be numbers; fix the row; nothing was imported"
                ) from exc
            box = (r["class"], *corners)
            entry["boxes"].append(_check_box(box, entry["info"], where, clip))
        else:
            status = r.get("status") or "labeled"
            if status not in ("labeled", "unsure"):
                raise CatalogError(f"{where}: status must be labeled or unsure")
            entry["class_name"], entry["status"] = r["class"], status
        imported.append(r["class"])
    _warn_left_out(left_out)
    _write(catalog, list(plan.values()), annotator, dataset, imported)
    return len(imported)


# -- COCO -----------------------------------------------------------------------------


def export_coco(catalog: Catalog, path, annotator: str | None = None, image_ids=None) -> Path:
    """Write boxes as COCO detection JSON (``bbox = [x, y, w, h]`` pixels, ids from 1)."""
    path = Path(path)
    index = category_index(catalog)
    folder = path.parent / "images"
    out = {
        "info": {"description": f"exported from {catalog.db_path.name}"},
        "images": [],
        "annotations": [],
        "categories": [{"id": k + 1, "name": n, "supercategory": ""} for n, k in index.items()],
    }
    for image_id, boxes in _boxed_images(catalog, annotator, image_ids).items():
        img = catalog.image(image_id)
        name = _copy_image(catalog, image_id, folder)
        out["images"].append(
            {
                "id": image_id,
                "file_name": f"images/{name}",
                "width": img["width"],
                "height": img["height"],
            }
        )
        for b in boxes:
            x0, y0, x1, y1 = _clipped(b, img["width"], img["height"])
            out["annotations"].append(
                {
                    "id": len(out["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": index[b["class_name"]] + 1,
                    "bbox": [_num(x0), _num(y0), _num(x1 - x0), _num(y1 - y0)],
                    "area": _num((x1 - x0) * (y1 - y0)),
                    "iscrowd": 0,
                }
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return path


def import_coco(
    catalog: Catalog,
    path,
    *,
    annotator: str = "import",
    dataset: str | None = None,
    classes: list[str] | None = None,
    clip: bool = False,
) -> int:
    """Import COCO detection JSON (images next to it by ``file_name``); return boxes imported.

    An image whose ``file_name`` leads outside the JSON file's folder is left out with
    its boxes (an :class:`ImportLeftOut` warning names it); a malformed entry raises a
    :class:`CatalogError` naming the file and the entry, such as ``annotations[3]``.
    """
    path = Path(path)
    try:
        doc = json.loads(_read_text(path))
    except ValueError as exc:
        raise CatalogError(f"{path} is not COCO JSON ({exc}); nothing was imported") from exc
    lists = {}
    if isinstance(doc, dict):
        lists = {"images": doc.get("images"), "categories": doc.get("categories")}
        lists["annotations"] = doc.get("annotations", [])
    if not lists or not all(isinstance(v, list) for v in lists.values()):
        raise CatalogError(
            f"{path} is not COCO JSON: it needs an object with the lists images, categories"
            " and annotations; nothing was imported"
        )
    categories, nameless, left_out = {}, set(), []
    for k, c in enumerate(lists["categories"]):
        where = f"{path} categories[{k}]"
        category_id, name = _coco_int(c, "id", where), _coco_value(c, "name", where)
        if name is None or not str(name).strip():
            nameless.add(category_id)
            left_out.append((where, "empty class name; its boxes are left out; name it"))
        else:
            categories[category_id] = str(name)
    _check_classes(categories.values(), classes, str(path))
    plan, refused = {}, set()
    for k, meta in enumerate(lists["images"]):
        where = f"{path} images[{k}]"
        image_id, file_name = _coco_int(meta, "id", where), _coco_value(meta, "file_name", where)
        if not isinstance(file_name, str):
            raise CatalogError(f"{where}: file_name must be a string; nothing was imported")
        image = _inside(path.parent, file_name, f"{where} (id {image_id})", left_out)
        if image is None:
            refused.add(image_id)
            left_out[-1] = (left_out[-1][0], f"{left_out[-1][1]}; its boxes are left out too")
            continue
        data, info = _read_image(image)
        plan[image_id] = {"data": data, "info": info, "name": Path(file_name).name, "boxes": []}
    count = 0
    for k, a in enumerate(lists["annotations"]):
        where = f"{path} annotations[{k}]"
        category_id, image_id = _coco_int(a, "category_id", where), _coco_int(a, "image_id", where)
        if image_id in refused or category_id in nameless:
            continue  # left out with its image or category, which the warning names
        if category_id not in categories:
            raise CatalogError(f"{where}: unknown category id {category_id}")
        if image_id not in plan:
            raise CatalogError(f"{where}: unknown image id {image_id}")
        bbox = _coco_value(a, "bbox", where)
        try:
            if isinstance(bbox, (str, bytes)) or len(bbox) != 4:
                raise ValueError
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError) as exc:
            raise CatalogError(
                f"{where}: bbox must be four numbers [x, y, width, height]; nothing was imported"
            ) from exc
        box = (categories[category_id], x, y, x + w, y + h)
        entry = plan[image_id]
        entry["boxes"].append(_check_box(box, entry["info"], where, clip))
        count += 1
    _warn_left_out(left_out)
    ordered = [categories[k] for k in sorted(categories)]
    _write(catalog, list(plan.values()), annotator, dataset, ordered)
    return count


def _coco_value(entry, key: str, where: str):
    """``entry[key]``, or a :class:`CatalogError` naming the file and the entry."""
    if not isinstance(entry, dict):
        raise CatalogError(f"{where} is not a JSON object; nothing was imported")
    if key not in entry:
        raise CatalogError(f"{where} has no {key!r}; nothing was imported")
    return entry[key]


def _coco_int(entry, key: str, where: str) -> int:
    value = _coco_value(entry, key, where)
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        number = None
    if isinstance(value, bool) or number is None or (number != value and str(number) != value):
        raise CatalogError(f"{where}: {key} must be a whole number; nothing was imported")
    return number


# -- YOLO -----------------------------------------------------------------------------


def export_yolo(catalog: Catalog, root, annotator: str | None = None, image_ids=None) -> Path:
    """Write ``images/``, ``labels/<stem>.txt`` (``k cx cy w h``, normalised) and classes.txt.

    An image with no boxes gets an empty label file: YOLO's way of saying "no objects".
    """
    root = Path(root)
    index = category_index(catalog)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(index) + "\n", encoding="utf-8")
    names = "".join(f"  {k}: {json.dumps(n)}\n" for n, k in index.items())
    (root / "data.yaml").write_text(f"path: .\ntrain: images\nval: images\nnames:\n{names}")
    for image_id, boxes in _boxed_images(catalog, annotator, image_ids).items():
        img = catalog.image(image_id)
        name = _copy_image(catalog, image_id, root / "images")
        w, h = img["width"], img["height"]
        lines = []
        for b in boxes:
            x0, y0, x1, y1 = _clipped(b, w, h)
            cx, cy, bw, bh = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h
            lines.append(f"{index[b['class_name']]} {cx:.8f} {cy:.8f} {bw:.8f} {bh:.8f}")
        (root / "labels" / f"{Path(name).stem}.txt").write_text(
            "".join(line + "\n" for line in lines)
        )
    return root


def import_yolo(
    catalog: Catalog,
    root,
    *,
    annotator: str = "import",
    dataset: str | None = None,
    classes: list[str] | None = None,
) -> int:
    """Import a YOLO folder (``classes.txt``, ``images/``, ``labels/``); return boxes imported.

    A label file or image whose link leads out of ``root`` is left out (an
    :class:`ImportLeftOut` warning names it); a malformed line raises a
    :class:`CatalogError` naming the file and the line.
    """
    root = Path(root)
    class_file = root / "classes.txt"
    if not class_file.is_file():
        raise CatalogError(f"{class_file} is missing: YOLO ids mean nothing without class names")
    class_text = _read_text(_folder_inside(root, "classes.txt"))
    names = [line.strip() for line in class_text.splitlines() if line.strip()]
    _check_classes(names, classes, str(class_file))
    image_dir = _folder_inside(root, "images")
    if not image_dir.is_dir():
        raise CatalogError(f"{root / 'images'} is missing: a YOLO folder keeps its images there")
    images = {
        p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS
    }
    plan, count, left_out = [], 0, []
    for label_file in sorted(_folder_inside(root, "labels").glob("*.txt")):
        where = str(label_file)
        label_real = _inside(root, Path("labels", label_file.name), where, left_out)
        if label_real is None:
            continue
        if label_file.stem not in images:
            raise CatalogError(f"{label_file} has no image {label_file.stem}.* in {root}/images")
        image_name = images[label_file.stem].name
        image = _inside(
            root, Path("images", image_name), str(root / "images" / image_name), left_out
        )
        if image is None:
            left_out[-1] = (
                left_out[-1][0],
                f"{left_out[-1][1]}; {label_file.name} is left out too",
            )
            continue
        data, info = _read_image(image)
        entry = {"data": data, "name": image_name, "boxes": []}
        for n, line in enumerate(_read_text(label_real).splitlines(), start=1):
            if not line.strip():
                continue
            where_line = f"{label_file} line {n}"
            parts = line.split()
            if len(parts) != 5:
                raise CatalogError(
                    f"{where_line}: expected 5 values 'class cx cy w h', found {len(parts)};"
                    " nothing was imported"
                )
            try:
                k, (cx, cy, bw, bh) = int(parts[0]), (float(v) for v in parts[1:])
            except ValueError as exc:
                raise CatalogError(
                    f"{where_line}: expected a whole class id and four numbers"
                    " 'class cx cy w h'; nothing was imported"
                ) from exc
            if not 0 <= k < len(names):
                raise CatalogError(f"{where_line}: class id {k} is not in classes.txt")
            if not all(0.0 <= v <= 1.0 for v in (cx, cy, bw, bh)):
                raise CatalogError(f"{where_line}: YOLO values must be normalised to [0, 1]")
            w, h = info["width"], info["height"]
            box = (
                names[k],
                (cx - bw / 2) * w,
                (cy - bh / 2) * h,
                (cx + bw / 2) * w,
                (cy + bh / 2) * h,
            )
            entry["boxes"].append(_check_box(box, info, where_line, clip=True))
            count += 1
        plan.append(entry)
    _warn_left_out(left_out)
    _write(catalog, plan, annotator, dataset, names)
    return count


# -- Pascal VOC -----------------------------------------------------------------------


def export_voc(catalog: Catalog, root, annotator: str | None = None, image_ids=None) -> Path:
    """Write ``JPEGImages/`` and one ``Annotations/<stem>.xml`` per image (1-based corners)."""
    root = Path(root)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for image_id, boxes in _boxed_images(catalog, annotator, image_ids).items():
        img = catalog.image(image_id)
        name = _copy_image(catalog, image_id, root / "JPEGImages")
        ann = ET.Element("annotation")
        ET.SubElement(ann, "folder").text = "JPEGImages"
        ET.SubElement(ann, "filename").text = name
        size = ET.SubElement(ann, "size")
        depth = 1 if img["mode"] in ("L", "1", "I;16", "I", "F") else 3
        for tag, value in (("width", img["width"]), ("height", img["height"]), ("depth", depth)):
            ET.SubElement(size, tag).text = str(value)
        for b in boxes:
            x0, y0, x1, y1 = _clipped(b, img["width"], img["height"])
            obj = ET.SubElement(ann, "object")
            ET.SubElement(obj, "name").text = b["class_name"]
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = "0"
            bnd = ET.SubElement(obj, "bndbox")
            for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
                ET.SubElement(bnd, tag).text = str(_num(value))
        ET.ElementTree(ann).write(root / "Annotations" / f"{Path(name).stem}.xml", encoding="utf-8")
    return root


def import_voc(
    catalog: Catalog,
    root,
    *,
    annotator: str = "import",
    dataset: str | None = None,
    classes: list[str] | None = None,
    clip: bool = False,
) -> int:
    """Import a Pascal VOC folder (``Annotations/*.xml`` + ``JPEGImages/``); return boxes.

    An annotation file whose link, or whose ``<filename>``, leads out of its folder is left
    out (an :class:`ImportLeftOut` warning names it); a ``<filename>`` names a file in
    ``JPEGImages/``, the VOC layout.
    """
    root = Path(root)
    image_dir = _folder_inside(root, "JPEGImages")
    plan, names, count, left_out = [], [], 0, []
    for xml_file in sorted(_folder_inside(root, "Annotations").glob("*.xml")):
        where = str(xml_file)
        xml_real = _inside(root, Path("Annotations", xml_file.name), where, left_out)
        if xml_real is None:
            continue
        try:
            ann = ET.parse(xml_real).getroot()
            filename = ann.findtext("filename")
            objects = [
                (
                    o.findtext("name"),
                    *(
                        float(o.find("bndbox").findtext(t))
                        for t in ("xmin", "ymin", "xmax", "ymax")
                    ),
                )
                for o in ann.findall("object")
            ]
        except ET.ParseError as exc:
            raise CatalogError(f"{xml_file} is not Pascal VOC XML ({exc})") from exc
        except (AttributeError, TypeError, ValueError) as exc:
            raise CatalogError(
                f"{xml_file} is not Pascal VOC XML: every <object> needs a <bndbox> with"
                " numbers xmin, ymin, xmax, ymax; nothing was imported"
            ) from exc
        if filename is None:
            raise CatalogError(f"{xml_file} has no <filename>; nothing was imported")
        image = _inside(image_dir, filename, f"{where} <filename>", left_out)
        if image is None:
            continue
        data, info = _read_image(image)
        entry = {"data": data, "name": Path(filename).name, "boxes": []}
        for j, (name, xmin, ymin, xmax, ymax) in enumerate(objects, start=1):
            if not (name or "").strip():
                left_out.append((f"{where} object {j}", "empty class in <name>; fill it in"))
                continue
            box = (name, xmin - 1, ymin - 1, xmax, ymax)
            entry["boxes"].append(_check_box(box, info, str(xml_file), clip))
            names.append(name)
            count += 1
        plan.append(entry)
    _check_classes(names, classes, str(root))
    _warn_left_out(left_out)
    _write(catalog, plan, annotator, dataset, names)
    return count
