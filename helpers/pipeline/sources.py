"""What to read: image files with labels, from a class-per-folder tree, a split tree or a
catalog split."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from helpers.images import (
    ClassFolderWarning,
    ClassTree,
    FolderError,
    class_tree_problems,
    read_split_tree,
    screen_image_file,
    walk_class_tree,
)
from helpers.pipeline.options import PipelineError
from helpers.splitting import stratified_split


@dataclass
class ImageList:
    """Image files with integer labels and the class names the labels index."""

    paths: list[str]
    labels: np.ndarray
    class_names: list[str]
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    screened: bool = False  # size and pixel limits already checked (see screen())

    def __post_init__(self):
        self.paths = [str(p) for p in self.paths]
        self.labels = np.asarray(self.labels, dtype=np.int32).reshape(-1)
        if len(self.paths) != len(self.labels):
            raise PipelineError(
                f"{len(self.paths)} paths but {len(self.labels)} labels; give one label per path"
            )
        if len(self.labels) and (
            self.labels.min() < 0 or self.labels.max() >= len(self.class_names)
        ):
            raise PipelineError(
                f"labels must lie in 0..{len(self.class_names) - 1} (one per class name)"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"ImageList({len(self)} images, classes {self.class_names})"

    def take(self, index) -> ImageList:
        """The images at positions ``index``, in that order, with the same classes (and
        none of ``left_out``: they are no part of the subset)."""
        return ImageList(
            [self.paths[i] for i in index], self.labels[index], self.class_names,
            screened=self.screened,
        )  # fmt: skip


def screen(images: ImageList) -> ImageList:
    """``images`` without the files no decoder may open: too large on disk, or a
    decompression bomb by their header; those move to ``left_out`` with the reason.

    Checked here, in Python, once, before the ``tf.data`` graph exists: a check inside
    the graph would need ``tf.numpy_function`` (holding the GIL) on every decode
    (``benchmarks/reliability.py`` on 2000 32x32 PNG/JPEG files, 2 cores: 35 us a file
    once at listing time, against +75 us a file on a 56 us decode for every pass that
    decodes). TensorFlow's decoders have no pixel limit of their own: a 389 KB PNG of
    20,000 x 20,000 pixels was decoded (about 13 GB at peak) before this check. The
    same limits and reasons as the importer's (:func:`helpers.images.screen_image_file`).
    """
    if images.screened:
        return images
    keep, left_out = [], list(images.left_out)
    for i, path in enumerate(images.paths):
        reason = screen_image_file(path)
        if reason is None:
            keep.append(i)
        else:
            left_out.append((path, reason))
    return ImageList(
        [images.paths[i] for i in keep],
        images.labels[keep],
        images.class_names,
        left_out,
        screened=True,
    )


def list_folder(root: str | os.PathLike) -> ImageList:
    """The images of a class-per-folder tree (``root/<class>/<image>``, any depth).

    Read by :func:`helpers.images.walk_class_tree`, the same reader the importer uses,
    so training sees exactly the images an import would store; what it leaves out
    (stray files, other extensions, broken links, and through :func:`screen` files
    over the size or pixel limit) is in ``left_out`` with the reason.
    Classes are the sub-folder names in sorted order, as in ``flow_from_directory``.
    """
    try:
        tree = walk_class_tree(root)
    except FolderError as exc:
        raise PipelineError(str(exc)) from exc
    if not tree.files:
        raise PipelineError(
            f"no image files in class sub-folders of {tree.root.resolve()}; lay the images "
            "out as root/<class>/<image>"
        )
    for problem in class_tree_problems(tree):  # the importer warns the same way
        warnings.warn(problem, ClassFolderWarning, stacklevel=3)
    return _listed(tree)


def _listed(tree: ClassTree) -> ImageList:
    """A class tree's files as a screened :class:`ImageList`, labels indexing its classes."""
    index = {name: i for i, name in enumerate(tree.class_names)}
    return screen(
        ImageList(
            [str(p) for p, _ in tree.files],
            [index[name] for _, name in tree.files],
            tree.class_names,
            [(str(tree.root / where), reason) for where, reason in tree.left_out],
        )
    )


@dataclass
class ImageSplits:
    """Train, validation and test images of one tree, sharing ``class_names``."""

    train: ImageList
    val: ImageList
    test: ImageList
    class_names: list[str]
    layout: str
    notes: list[str] = field(default_factory=list)


def list_splits(
    root: str | os.PathLike, *, val_fraction: float, test_fraction: float, seed: int
) -> ImageSplits:
    """Train, validation and test images of a split tree or a class-per-folder tree.

    Read by :func:`helpers.images.read_split_tree`, whose rules say which folders are
    splits and which classes count (a class in ``val/`` or ``test/`` that ``train/``
    lacks is an error, :class:`~helpers.images.FolderError`, saying what to do). A split
    without its own folder comes out of the training images, stratified by class
    (:func:`helpers.splitting.stratified_split`): the test set first (``test_fraction``,
    ``seed``), then the validation set (``seed + 1``), ``val_fraction`` of all the
    images when the test set came out of the same ones, of ``train/``'s otherwise;
    ``val_fraction=0`` gives no validation images. Too few images for a split that
    should have some is a :class:`~helpers.images.FolderError` too.
    """
    tree = read_split_tree(root)
    lists = {split: _listed(part) for split, part in tree.splits.items()}
    train, notes = lists["train"], list(tree.notes)
    test = lists.get("test")
    if test is None:
        keep, held = stratified_split(train.labels, test_fraction, seed)
        train, test = train.take(keep), train.take(held)
        if tree.folders:
            notes.append(f"no test/ folder: {len(test)} training images held out as the test set")
        val_fraction = val_fraction / (1 - test_fraction)
    val = lists.get("val")
    if val is None:
        keep, held = stratified_split(train.labels, val_fraction, seed + 1)
        train, val = train.take(keep), train.take(held)
    if not len(train) or not len(test) or (not len(val) and val_fraction > 0):
        raise FolderError(
            f"{tree.root}: too few images to split into train, validation and test "
            f"({len(train)}, {len(val)}, {len(test)}); add images or give a split tree"
        )
    return ImageSplits(train, val, test, tree.class_names, tree.layout, notes)


def list_catalog(
    catalog,
    split: str | None = "train",
    *,
    annotator: str | None = None,
    statuses: Sequence[str] = ("labeled",),
    dataset: str | None = None,
) -> ImageList:
    """The labeled images of one catalog split, with one annotator's labels.

    ``annotator`` defaults to the catalog's only annotator, or to ``"import"`` (labels
    that came with a public data set) when there are several. Images without a label
    from that annotator, or whose label status is not in ``statuses`` (by default
    "unsure" and "skipped" are left out), are not listed: a model should not learn
    from a label its annotator doubted.
    """
    annotators = catalog.annotators()
    if annotator is None:
        if len(annotators) == 1:
            annotator = annotators[0]
        elif "import" in annotators:
            annotator = "import"
        else:
            raise PipelineError(
                f"the catalog has labels from {annotators or 'no annotator'}; "
                "pass annotator= to choose whose labels to train on"
            )
    elif annotator not in annotators:
        raise PipelineError(f"no labels from annotator {annotator!r}; known: {annotators}")
    class_names = catalog.classes()
    index = {name: i for i, name in enumerate(class_names)}
    rows = catalog.labeled_images(annotator, dataset=dataset, split=split, statuses=statuses)
    if not rows:
        raise PipelineError(
            f"no images labeled by {annotator!r} with status in {tuple(statuses)} in split "
            f"{split!r}; label some images or assign splits (Catalog.set_splits) first"
        )
    # Every catalog image passed the image gate's size and pixel limits on its way in
    # (helpers.images.check_image_bytes): screening them again would only cost time.
    return ImageList(
        [row["path"] for row in rows],
        [index[row["class_name"]] for row in rows],
        class_names,
        screened=True,
    )
