"""Class folders: ``root/[split/]<class>/<file>``, one class per image."""

from __future__ import annotations

from pathlib import Path

from helpers.catalog import SPLITS, Catalog, CatalogError
from helpers.formats.shared import (
    check_classes,
    class_labels,
    copy_image,
    path_inside,
    read_checked_image,
    safe_class_dir,
    warn_left_out,
    write_import,
)
from helpers.images import (
    FolderError,
    walk_class_tree,
)


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
    labels = class_labels(catalog, annotator)
    classes = catalog.classes() if classes is None else list(classes)
    unknown = sorted({r["class_name"] for r in labels.values()} - set(classes))
    if unknown:
        raise CatalogError(f"{annotator!r} has labels of classes {unknown} outside {classes}")
    splits = catalog.splits()
    if by_split and any(i not in splits for i in labels):
        raise CatalogError("some labeled images have no split; run split_catalog first")
    for name in classes:
        for part in SPLITS if by_split else [""]:
            (root / part / safe_class_dir(name)).mkdir(parents=True, exist_ok=True)
    for image_id, row in labels.items():
        folder = root / (splits[image_id] if by_split else "") / row["class_name"]
        copy_image(catalog, image_id, folder)
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
            real = path_inside(root, rel, rel.as_posix(), left_out)
            if real is None:
                continue
            checked, _ = read_checked_image(real)
            plan.append(
                {"data": checked, "name": path.name, "class_name": class_name, "split": split}
            )
    warn_left_out(left_out)
    if not class_names:
        raise CatalogError(f"{root} holds no class folders; expected root/<class>/<image>")
    check_classes(class_names, classes, str(root))
    written = write_import(catalog, plan, annotator, dataset, sorted(set(class_names)))
    return {i: e["class_name"] for i, e in written.items()}
