"""CSV: ``labels.csv`` (or boxes) next to ``images/``; class labels or boxes."""

from __future__ import annotations

import csv
from pathlib import Path

from helpers.catalog import SPLITS, Catalog, CatalogError
from helpers.formats.shared import (
    boxed_images,
    check_box,
    check_classes,
    class_labels,
    clipped_box,
    copy_image,
    json_number,
    path_inside,
    read_checked_image,
    warn_left_out,
    write_import,
)

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
            for image_id, row in class_labels(catalog, annotator).items():
                img = catalog.image(image_id)
                name = copy_image(catalog, image_id, folder)
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
            for image_id, boxes in boxed_images(catalog, annotator, None).items():
                img = catalog.image(image_id)
                name = copy_image(catalog, image_id, folder)
                for b in boxes:
                    x0, y0, x1, y1 = clipped_box(b, img["width"], img["height"])
                    writer.writerow(
                        [
                            f"images/{name}",
                            img["sha256"],
                            img["width"],
                            img["height"],
                            b["class_name"],
                            json_number(x0),
                            json_number(y0),
                            json_number(x1),
                            json_number(y1),
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
    check_classes([r["class"] for r in rows if (r["class"] or "").strip()], classes, str(path))
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
            f = path_inside(folder, name, where, left_out)
            if f is None:
                refused[name] = left_out[-1][1]
                continue
            data, info = read_checked_image(f)
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
            entry["boxes"].append(check_box(box, entry["info"], where, clip))
        else:
            status = r.get("status") or "labeled"
            if status not in ("labeled", "unsure"):
                raise CatalogError(f"{where}: status must be labeled or unsure")
            entry["class_name"], entry["status"] = r["class"], status
        imported.append(r["class"])
    warn_left_out(left_out)
    write_import(catalog, list(plan.values()), annotator, dataset, imported)
    return len(imported)
