"""Class-per-folder trees that cannot train a classifier are warned about, in both readers."""

import warnings

import numpy as np
import pytest
from PIL import Image

from helpers import pipeline as pl
from helpers.acquire import ingest_class_folders
from helpers.acquire.folders import ClassFolderWarning
from helpers.catalog import Catalog


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
