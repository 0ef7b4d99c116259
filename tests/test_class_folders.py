"""Class-per-folder trees that cannot train a classifier are warned about, in both readers;
split trees are read by one set of rules (helpers.images.read_split_tree)."""

import warnings

import numpy as np
import pytest
from PIL import Image

from helpers import pipeline as pl
from helpers.acquire import ingest_class_folders
from helpers.catalog import Catalog
from helpers.images import ClassFolderWarning, FolderError, read_split_tree


def make_tree(root, counts):
    """``root/<class>/<k>.png`` with ``counts[class]`` small distinct images each."""
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for k in range(n):
            pixels = rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{k}.png")
    return root


def test_a_one_class_tree_is_imported_with_a_warning_and_a_note(tmp_path):
    tree = make_tree(tmp_path / "photos", {"cat": 3})
    with pytest.warns(ClassFolderWarning, match="one class cannot train a classifier") as caught:
        report = ingest_class_folders(Catalog(tmp_path / "catalog"), tree, dataset="mine")
    assert len(report.added) == 3
    message = str(caught[0].message)
    assert str(tree.resolve()) in message and "'cat'" in message
    assert any("one class" in note for _, note in report.notes)


def test_an_empty_class_folder_is_named_with_what_to_do(tmp_path):
    tree = make_tree(tmp_path / "photos", {"cat": 2, "dog": 2, "fox": 0})
    with pytest.warns(ClassFolderWarning, match="fox in .* hold no image files") as caught:
        ingest_class_folders(Catalog(tmp_path / "catalog"), tree, dataset="mine")
    assert len(caught) == 1  # two classes have images: no one-class warning
    assert "remove the empty folders" in str(caught[0].message)


def test_the_pipeline_reader_warns_the_same_way(tmp_path):
    tree = make_tree(tmp_path / "photos", {"cat": 2, "dog": 0})
    with pytest.warns(ClassFolderWarning) as caught:
        images = pl.list_folder(tree)
    messages = " | ".join(str(w.message) for w in caught)
    assert "dog in" in messages and "only one class, 'cat'" in messages
    assert images.class_names == ["cat", "dog"] and len(images) == 2  # indices kept


def test_a_tree_fit_for_training_gives_no_warning(tmp_path):
    tree = make_tree(tmp_path / "photos", {"cat": 2, "dog": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClassFolderWarning)
        report = ingest_class_folders(Catalog(tmp_path / "catalog"), tree, dataset="mine")
        images = pl.list_folder(tree)
    assert len(report.added) == 3 and len(images) == 3 and not report.notes


def make_split_tree(root, splits):
    """``root/<split>/<class>/<k>.png`` from ``{split: {class: count}}``."""
    for split, counts in splits.items():
        make_tree(root / split, counts)
    return root


def test_a_split_tree_keeps_its_val_and_test_folders(tmp_path):
    root = make_split_tree(
        tmp_path,
        {"train": {"a": 6, "b": 6}, "valid": {"a": 2, "b": 2}, "test": {"a": 1, "b": 3}},
    )
    (tmp_path / "extra").mkdir()
    splits = pl.list_splits(root, val_fraction=0.1, test_fraction=0.2, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 4, 4)
    assert all("/valid/" in p for p in splits.val.paths)
    assert splits.layout == "split tree train/ valid/ test/"
    assert any("extra" in note and "not a split folder" in note for note in splits.notes)


def test_missing_splits_come_out_of_the_training_images_stratified(tmp_path):
    root = make_split_tree(tmp_path, {"train": {"a": 10, "b": 10}})
    splits = pl.list_splits(root, val_fraction=0.1, test_fraction=0.2, seed=0)
    assert [np.bincount(s.labels).tolist() for s in (splits.train, splits.val, splits.test)] == [
        [7, 7],
        [1, 1],
        [2, 2],
    ]
    every = splits.train.paths + splits.val.paths + splits.test.paths
    assert len(set(every)) == 20 and any("held out as the test set" in n for n in splits.notes)
    plain = pl.list_splits(root / "train", val_fraction=0.0, test_fraction=0.2, seed=0)
    assert plain.layout == "class-per-folder tree" and len(plain.val) == 0 and not plain.notes


def test_a_class_only_in_test_is_refused_with_what_to_do(tmp_path):
    root = make_split_tree(tmp_path, {"train": {"a": 3, "b": 3}, "test": {"a": 1, "zebra": 1}})
    with pytest.raises(FolderError, match=r"differ in classes \['b', 'zebra'\]") as raised:
        read_split_tree(root)
    assert "Add training images under train/zebra, or move test/zebra out" in str(raised.value)


def test_a_class_missing_from_test_trains_with_a_warning(tmp_path):
    root = make_split_tree(tmp_path, {"train": {"a": 3, "b": 3, "c": 3}, "test": {"a": 1, "b": 1}})
    with pytest.warns(ClassFolderWarning, match="c have training images but none in test/"):
        tree = read_split_tree(root)
    assert tree.class_names == ["a", "b", "c"] == tree.splits["test"].class_names


def test_empty_class_folders_are_left_out_and_one_class_is_refused(tmp_path):
    root = make_split_tree(
        tmp_path, {"train": {"a": 3, "b": 3, "empty": 0}, "test": {"a": 1, "b": 1}}
    )
    with pytest.warns(ClassFolderWarning, match="empty in .* hold no image files"):
        tree = read_split_tree(root)
    assert tree.class_names == ["a", "b"] and any("empty" in n for n in tree.notes)
    with pytest.raises(FolderError, match="only 1 class.*at least two.*Add a folder per class"):
        read_split_tree(make_tree(tmp_path / "one", {"a": 3, "b": 0}))
