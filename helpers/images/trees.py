"""Class-per-folder trees (``root/<class>/<image>``) and split trees (``root/train/<class>/...``
beside ``val/`` and ``test/``): one reader of each, so the importer, the training pipeline
and every trainer see the same images and classes, by the same rules."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from helpers.images.files import IMAGE_EXTENSIONS


class FolderError(FileNotFoundError):
    """A folder that is not the layout asked for; the message says what to do."""


@dataclass
class ClassTree:
    """The image files of a ``root/<class>/...`` tree, and what was left out, with why.

    ``files`` holds ``(path, class name)`` in a stable order (classes sorted, then
    paths sorted); ``left_out`` holds ``(path relative to root, reason)``.
    """

    root: Path
    class_names: list[str]
    files: list[tuple[Path, str]] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.class_names, 0)
        for _, name in self.files:
            counts[name] += 1
        return counts


def _hidden(name: str) -> bool:
    return name.startswith(".")


def walk_class_tree(root: str | os.PathLike) -> ClassTree:
    """Read a ``root/<class>/<image>`` tree; images in sub-folders of a class belong to it.

    Classes are the non-hidden sub-folders of ``root`` in sorted order (as in
    ``flow_from_directory`` and ``image_dataset_from_directory``, so label 3 means the
    same class everywhere). Inside a class folder every file whose extension is one of
    :data:`IMAGE_EXTENSIONS` is taken, at any depth; symbolic links to folders are
    followed once. Everything else is in ``left_out`` with the reason: files directly
    in ``root``, other extensions, dangling links, link loops. Hidden files and folders
    (names starting with ".", such as ``.DS_Store`` or ``.ipynb_checkpoints``) are
    passed over without a word.
    """
    root = Path(root)
    if not root.is_dir():
        raise FolderError(
            f"{root.resolve()} is not a folder; give a class-per-folder tree such as root/cat/1.jpg"
        )
    tree = ClassTree(root, [])
    for entry in sorted(root.iterdir()):
        if _hidden(entry.name):
            continue
        if entry.is_dir():
            tree.class_names.append(entry.name)
        elif entry.is_symlink() and not entry.exists():
            tree.left_out.append((entry.name, "dangling symbolic link"))
        else:
            tree.left_out.append((entry.name, "not inside a class folder"))
    for name in tree.class_names:
        seen: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(root / name, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen:
                dirnames.clear()
                rel = Path(dirpath).relative_to(root).as_posix()
                tree.left_out.append((rel, "symbolic link loop: folder already read"))
                continue
            seen.add(real)
            dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
            for filename in sorted(filenames):
                if _hidden(filename):
                    continue
                path = Path(dirpath) / filename
                rel = path.relative_to(root).as_posix()
                if not path.exists():
                    tree.left_out.append((rel, "dangling symbolic link"))
                elif path.suffix.lower() not in IMAGE_EXTENSIONS:
                    tree.left_out.append((rel, "not an image file name (" + _EXTS + ")"))
                else:
                    tree.files.append((path, name))
    return tree


_EXTS = "extensions " + " ".join(IMAGE_EXTENSIONS)


class ClassFolderWarning(UserWarning):
    """A class-per-folder or split tree that cannot train a classifier as it stands, or
    trains, but not the way you may think (a class with no test images)."""


def class_tree_problems(tree: ClassTree) -> list[str]:
    """What keeps a class tree from training a classifier: empty class folders (the model
    would get an output for a class it never sees) and a single class with images (a
    classifier needs two). One sentence each, with the absolute path and what to do."""
    counts = tree.counts()
    root = tree.root.resolve()
    problems = []
    empty = [name for name in tree.class_names if not counts[name]]
    if empty:
        problems.append(
            f"class folder(s) {', '.join(empty)} in {root} hold no image files: a model "
            "trained on this tree gets an output for a class it never sees. Put images in "
            "them, or remove the empty folders."
        )
    filled = [name for name in tree.class_names if counts[name]]
    if len(filled) == 1:
        problems.append(
            f"only one class, {filled[0]!r}, has images in {root}: one class cannot train a "
            f"classifier. Add a folder for each other class ({root}/<class>/<image>)."
        )
    return problems


# -- split trees -------------------------------------------------------------------------

# The names data sets give their split folders; the first one present wins.
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def split_folders(root: str | os.PathLike) -> dict[str, Path]:
    """The split folders ``root`` holds, by split: ``train``, ``val`` (a folder named
    ``val``, ``valid`` or ``validation``, as published data sets name it) and ``test``."""
    found = {}
    for split, names in SPLIT_FOLDERS.items():
        for name in names:
            if (Path(root) / name).is_dir():
                found[split] = Path(root) / name
                break
    return found


@dataclass
class SplitTree:
    """A class-per-folder or split tree read by :func:`read_split_tree`.

    ``splits`` holds a :class:`ClassTree` for ``"train"`` and for each of ``"val"`` and
    ``"test"`` that the tree has its own folder for (a class-per-folder tree has
    ``"train"`` only); all of them share ``class_names``, the classes with training
    images. ``folders`` are the split folders (none in a class-per-folder tree),
    ``layout`` names what was read, ``notes`` what was left out.
    """

    root: Path
    layout: str
    class_names: list[str]
    splits: dict[str, ClassTree]
    folders: dict[str, Path]
    notes: list[str] = field(default_factory=list)


def read_split_tree(root: str | os.PathLike) -> SplitTree:
    """Read ``root/train/<class>/...`` (with ``val/`` and ``test/`` when present) or a plain
    ``root/<class>/...`` tree, with the rules every trainer in the course applies:

    - **A split tree is a folder with** ``train/``. Its ``val/`` (or ``valid/``,
      ``validation/``) and ``test/`` are used when present: whoever made them chose those
      images to validate and test on; validating on images taken from ``train/`` instead
      would leave that choice unused. Other folders beside them are left out, with a note.
    - **The classes are the class folders of** ``train/`` **that hold images**, sorted.
      An empty one is left out, with a :class:`ClassFolderWarning` and a note: a model
      would get an output for a class it never sees. Fewer than two classes with
      images is an error, since a classifier needs two.
    - **A class in** ``val/`` **or** ``test/`` **that** ``train/`` **lacks is an error**:
      no model trained here can predict it, so scoring its images would only lower the
      score, and leaving them out would score another task than the one laid out. The
      message names the classes and says what to do.
    - **A class with training images but none in** ``val/`` **or** ``test/`` trains, with
      a :class:`ClassFolderWarning`: its recall on that split cannot be measured.

    A split without a folder is the caller's to take from the training images
    (:func:`helpers.pipeline.list_splits`). Raises :class:`FolderError` with what to do.
    """
    root = Path(root)
    folders = split_folders(root)
    notes = []
    if "train" in folders:
        trees = {split: walk_class_tree(path) for split, path in folders.items()}
        layout = "split tree " + " ".join(f"{path.name}/" for path in folders.values())
        others = [
            p.name for p in sorted(root.iterdir())
            if not _hidden(p.name) and p not in folders.values()
        ]  # fmt: skip
        if others:
            notes.append(
                f"{', '.join(others)} in {root} left out: not a split folder "
                f"({', '.join(name for names in SPLIT_FOLDERS.values() for name in names)})"
            )
    else:
        folders, trees = {}, {"train": walk_class_tree(root)}
        layout = "class-per-folder tree"
    train = trees["train"]
    counts = train.counts()
    classes = [name for name in train.class_names if counts[name]]
    if len(classes) < 2:
        raise FolderError(
            f"{root}: only {len(classes)} class with training images "
            f"({', '.join(classes) or 'none'}); a classifier needs at least two. Add a folder "
            "per class (root/<class>/<image>, or root/train/<class>/<image> in a split tree)."
        )
    for problem in class_tree_problems(train):
        warnings.warn(problem, ClassFolderWarning, stacklevel=2)
    empty = [name for name in train.class_names if not counts[name]]
    if empty:
        notes.append(f"class folder(s) {', '.join(empty)} hold no training image: left out")
    train.class_names = classes
    for split, tree in trees.items():
        if split == "train":
            continue
        held = {n for _, n in tree.files}
        name = folders[split].name
        unknown = sorted(held - set(classes))
        if unknown:
            differ = sorted(set(unknown) | set(classes) - held)
            raise FolderError(
                f"train/ and {name}/ of {root} differ in classes {differ}: "
                f"class(es) {', '.join(unknown)} in {name}/ have no training images, so no "
                "model trained here can predict them. Add training images under "
                f"{', '.join(f'train/{c}' for c in unknown)}, or move "
                f"{', '.join(f'{name}/{c}' for c in unknown)} out of the tree."
            )
        missing = [c for c in classes if c not in held]
        if missing:
            warnings.warn(
                f"class(es) {', '.join(missing)} have training images but none in {name}/: "
                f"their recall on {name}/ cannot be measured. Add {name}/ images for them.",
                ClassFolderWarning,
                stacklevel=2,
            )
        tree.class_names = classes
    return SplitTree(root, layout, classes, trees, folders, notes)
