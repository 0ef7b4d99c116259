"""What every label format shares: category ids, the warning for rows left out, reading
and checking input before anything is written, and writing a checked import in one
catalog transaction."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from helpers.catalog import Catalog, CatalogError
from helpers.files import OutsideFolder, resolve_inside
from helpers.images import (
    CheckedImage,
    ImageRejected,
    check_image_bytes,
    read_image_file,
)


class ImportLeftOut(RuntimeWarning):
    """Rows or files an import refused and passed over while it imported the rest."""


def category_index(catalog: Catalog) -> dict[str, int]:
    """``{class name: id}`` from 0 in catalog order; the one source of category ids."""
    return {name: k for k, name in enumerate(catalog.classes())}


def json_number(v: float) -> float | int:
    v = round(float(v), 4)
    return int(v) if v.is_integer() else v


def safe_class_dir(name: str) -> str:
    if name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise CatalogError(
            f"class {name!r} cannot be a folder name; rename it (no slashes, no leading dot)"
        )
    return name


def copy_image(catalog: Catalog, image_id: int, folder: Path) -> str:
    src = catalog.image_path(image_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / src.name
    if not target.exists():
        shutil.copyfile(src, target)
    return src.name


def class_labels(catalog: Catalog, annotator: str) -> dict[int, dict]:
    return {
        r["image_id"]: r
        for r in catalog.labels(annotator)
        if r["class_name"] is not None and r["status"] in ("labeled", "unsure")
    }


def clipped_box(box: dict, width: int, height: int) -> tuple[float, float, float, float]:
    x0, x1 = (min(max(float(box[k]), 0.0), width) for k in ("x0", "x1"))
    y0, y1 = (min(max(float(box[k]), 0.0), height) for k in ("y0", "y1"))
    return x0, y0, x1, y1


def boxed_images(catalog: Catalog, annotator: str | None, image_ids) -> dict[int, list[dict]]:
    boxes: dict[int, list[dict]] = {}
    for b in catalog.boxes(annotator=annotator):
        boxes.setdefault(b["image_id"], []).append(b)
    if image_ids is not None:
        keep = [int(i) for i in image_ids]
        return {i: boxes.get(i, []) for i in keep}
    return boxes


# -- reading and checking input -------------------------------------------------------


def read_checked_image(path: Path) -> tuple[CheckedImage, dict]:
    """The image through the gate, and its upright size as ``{"width", "height"}``."""
    if not path.is_file():
        raise CatalogError(f"image file {path.resolve()} is missing; nothing was imported")
    try:
        checked = check_image_bytes(read_image_file(path))
    except ImageRejected as exc:
        raise CatalogError(f"{path.resolve()}: {exc}; nothing was imported") from exc
    return checked, {"width": checked.width, "height": checked.height}


def warn_left_out(left_out: list[tuple[str, str]]) -> None:
    """One warning naming every row or file left out and why (stacklevel: the caller of
    the importer, the line a learner wrote)."""
    if left_out:
        listed = "; ".join(f"{where} ({why})" for where, why in left_out)
        warnings.warn(f"left out of the import: {listed}", ImportLeftOut, stacklevel=3)


def path_inside(root: Path, name, where: str, left_out: list[tuple[str, str]]) -> Path | None:
    """``root / name`` resolved when it stays inside ``root``; else None, noted in ``left_out``."""
    try:
        return resolve_inside(root, name)
    except OutsideFolder as exc:
        left_out.append((where, str(exc)))
        return None


def folder_inside(root: Path, name: str) -> Path:
    """A format's fixed sub-folder (``images``, ``JPEGImages``...), refused as a whole
    when it is a link that leads out of ``root``: none of its files could be imported."""
    try:
        return resolve_inside(root, name)
    except OutsideFolder as exc:
        raise CatalogError(f"{root / name}: {exc}; nothing was imported") from exc


def read_label_text(path: Path) -> str:
    """A label file's text, or a :class:`CatalogError` naming it, never a bare decode error."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CatalogError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8; nothing was imported"
        ) from exc
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc.strerror or exc}") from exc


def check_classes(names, allowed: list[str] | None, where: str) -> None:
    if allowed is None:
        return
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise CatalogError(
            f"{where} uses classes {unknown} that are not in {allowed}; add them or fix the"
            " file; nothing was imported"
        )


def check_box(box, info: dict, where: str, clip: bool):
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


def write_import(
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
