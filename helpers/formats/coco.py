"""COCO detection JSON: ``annotations.json`` + ``images/``; ``bbox = [x, y, width, height]``
in pixels, category ids from 1."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.catalog import Catalog, CatalogError
from helpers.formats.shared import (
    boxed_images,
    category_index,
    check_box,
    check_classes,
    clipped_box,
    copy_image,
    json_number,
    path_inside,
    read_checked_image,
    read_label_text,
    warn_left_out,
    write_import,
)


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
    for image_id, boxes in boxed_images(catalog, annotator, image_ids).items():
        img = catalog.image(image_id)
        name = copy_image(catalog, image_id, folder)
        out["images"].append(
            {
                "id": image_id,
                "file_name": f"images/{name}",
                "width": img["width"],
                "height": img["height"],
            }
        )
        for b in boxes:
            x0, y0, x1, y1 = clipped_box(b, img["width"], img["height"])
            out["annotations"].append(
                {
                    "id": len(out["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": index[b["class_name"]] + 1,
                    "bbox": [
                        json_number(x0),
                        json_number(y0),
                        json_number(x1 - x0),
                        json_number(y1 - y0),
                    ],
                    "area": json_number((x1 - x0) * (y1 - y0)),
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
        doc = json.loads(read_label_text(path))
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
    check_classes(categories.values(), classes, str(path))
    plan, refused = {}, set()
    for k, meta in enumerate(lists["images"]):
        where = f"{path} images[{k}]"
        image_id, file_name = _coco_int(meta, "id", where), _coco_value(meta, "file_name", where)
        if not isinstance(file_name, str):
            raise CatalogError(f"{where}: file_name must be a string; nothing was imported")
        image = path_inside(path.parent, file_name, f"{where} (id {image_id})", left_out)
        if image is None:
            refused.add(image_id)
            left_out[-1] = (left_out[-1][0], f"{left_out[-1][1]}; its boxes are left out too")
            continue
        data, info = read_checked_image(image)
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
        entry["boxes"].append(check_box(box, entry["info"], where, clip))
        count += 1
    warn_left_out(left_out)
    ordered = [categories[k] for k in sorted(categories)]
    write_import(catalog, list(plan.values()), annotator, dataset, ordered)
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
