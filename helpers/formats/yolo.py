"""YOLO txt: ``images/``, ``labels/<stem>.txt`` (``class cx cy w h``, normalised) and
``classes.txt``."""

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
    folder_inside,
    path_inside,
    read_checked_image,
    read_label_text,
    warn_left_out,
    write_import,
)
from helpers.images import (
    IMAGE_EXTENSIONS,
)


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
    for image_id, boxes in boxed_images(catalog, annotator, image_ids).items():
        img = catalog.image(image_id)
        name = copy_image(catalog, image_id, root / "images")
        w, h = img["width"], img["height"]
        lines = []
        for b in boxes:
            x0, y0, x1, y1 = clipped_box(b, w, h)
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
    class_text = read_label_text(folder_inside(root, "classes.txt"))
    names = [line.strip() for line in class_text.splitlines() if line.strip()]
    check_classes(names, classes, str(class_file))
    image_dir = folder_inside(root, "images")
    if not image_dir.is_dir():
        raise CatalogError(f"{root / 'images'} is missing: a YOLO folder keeps its images there")
    images = {
        p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS
    }
    plan, count, left_out = [], 0, []
    for label_file in sorted(folder_inside(root, "labels").glob("*.txt")):
        where = str(label_file)
        label_real = path_inside(root, Path("labels", label_file.name), where, left_out)
        if label_real is None:
            continue
        if label_file.stem not in images:
            raise CatalogError(f"{label_file} has no image {label_file.stem}.* in {root}/images")
        image_name = images[label_file.stem].name
        image = path_inside(
            root, Path("images", image_name), str(root / "images" / image_name), left_out
        )
        if image is None:
            left_out[-1] = (
                left_out[-1][0],
                f"{left_out[-1][1]}; {label_file.name} is left out too",
            )
            continue
        data, info = read_checked_image(image)
        entry = {"data": data, "name": image_name, "boxes": []}
        for n, line in enumerate(read_label_text(label_real).splitlines(), start=1):
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
            entry["boxes"].append(check_box(box, info, where_line, clip=True))
            count += 1
        plan.append(entry)
    warn_left_out(left_out)
    write_import(catalog, plan, annotator, dataset, names)
    return count
