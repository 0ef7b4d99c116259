"""Pascal VOC XML: ``JPEGImages/`` and ``Annotations/<stem>.xml`` (1-based, inclusive
corners)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from helpers.catalog import Catalog, CatalogError
from helpers.formats.shared import (
    boxed_images,
    check_box,
    check_classes,
    clipped_box,
    copy_image,
    folder_inside,
    json_number,
    path_inside,
    read_checked_image,
    warn_left_out,
    write_import,
)


def export_voc(catalog: Catalog, root, annotator: str | None = None, image_ids=None) -> Path:
    """Write ``JPEGImages/`` and one ``Annotations/<stem>.xml`` per image (1-based corners)."""
    root = Path(root)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for image_id, boxes in boxed_images(catalog, annotator, image_ids).items():
        img = catalog.image(image_id)
        name = copy_image(catalog, image_id, root / "JPEGImages")
        ann = ET.Element("annotation")
        ET.SubElement(ann, "folder").text = "JPEGImages"
        ET.SubElement(ann, "filename").text = name
        size = ET.SubElement(ann, "size")
        depth = 1 if img["mode"] in ("L", "1", "I;16", "I", "F") else 3
        for tag, value in (("width", img["width"]), ("height", img["height"]), ("depth", depth)):
            ET.SubElement(size, tag).text = str(value)
        for b in boxes:
            x0, y0, x1, y1 = clipped_box(b, img["width"], img["height"])
            obj = ET.SubElement(ann, "object")
            ET.SubElement(obj, "name").text = b["class_name"]
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = "0"
            bnd = ET.SubElement(obj, "bndbox")
            for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
                ET.SubElement(bnd, tag).text = str(json_number(value))
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
    image_dir = folder_inside(root, "JPEGImages")
    plan, names, count, left_out = [], [], 0, []
    for xml_file in sorted(folder_inside(root, "Annotations").glob("*.xml")):
        where = str(xml_file)
        xml_real = path_inside(root, Path("Annotations", xml_file.name), where, left_out)
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
        image = path_inside(image_dir, filename, f"{where} <filename>", left_out)
        if image is None:
            continue
        data, info = read_checked_image(image)
        entry = {"data": data, "name": Path(filename).name, "boxes": []}
        for j, (name, xmin, ymin, xmax, ymax) in enumerate(objects, start=1):
            if not (name or "").strip():
                left_out.append((f"{where} object {j}", "empty class in <name>; fill it in"))
                continue
            box = (name, xmin - 1, ymin - 1, xmax, ymax)
            entry["boxes"].append(check_box(box, info, str(xml_file), clip))
            names.append(name)
            count += 1
        plan.append(entry)
    check_classes(names, classes, str(root))
    warn_left_out(left_out)
    write_import(catalog, plan, annotator, dataset, names)
    return count
