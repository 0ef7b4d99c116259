"""Notebook 02 with DATASET = "folder": your own photos, of any size and format, in a
catalog whose folder names are the hidden truth (helpers.acquire.project.folder_catalog),
and the checks, split and export downstream of it; bad trees refused before anything is
written."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.acquire import project
from helpers.catalog import Catalog
from helpers.images import FolderError

ROOT = Path(__file__).resolve().parents[1]
TRUTH = "truth"
COLOURS = {"apple": (200, 30, 30), "leaf": (30, 170, 40), "sky": (40, 60, 210)}
SIZES = [(50, 37), (64, 48)]  # width, height: odd, not square, not 32x32


def photo(rng, colour, size) -> np.ndarray:
    """A noisy photo of one colour: each class looks alike, every photo differs."""
    w, h = size
    base = np.array(colour, dtype=float) + rng.normal(0, 25, 3)
    pixels = base + rng.normal(0, 30, (h, w, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_tree(root: Path, per_class: int = 12, seed: int = 0, classes=COLOURS) -> Path:
    """``root/<class>/<n>.jpg`` of odd sizes, the first photo of the first class a PNG."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            image = Image.fromarray(photo(rng, COLOURS[name], SIZES[k % 2]))
            suffix = "png" if c == k == 0 else "jpg"
            image.save(root / name / f"{k:02d}.{suffix}")
    return root


def test_folder_catalog_keeps_classes_sizes_and_holds_out_a_test_split(tmp_path):
    tree = make_tree(tmp_path / "photos")
    built = project.folder_catalog(tmp_path / "cat", tree, truth_annotator=TRUTH, seed=3)
    catalog = built.catalog
    assert catalog.classes() == sorted(COLOURS)
    assert len(built.pool) + len(built.test) == 36
    assert set(built.pool).isdisjoint(built.test)
    assert set(catalog.splits().values()) == {"test"}
    assert set(catalog.splits()) == set(built.test)
    for name in COLOURS:  # 20 % of 12 held out per class, the rest to label
        assert sum(built.truth[i] == name for i in built.test) == 2
        assert sum(built.truth[i] == name for i in built.pool) == 10
    stored = {r["image_id"]: r["class_name"] for r in catalog.labels(TRUTH)}
    assert stored == built.truth
    sizes = {(catalog.image(i)["width"], catalog.image(i)["height"]) for i in built.truth}
    assert sizes == set(SIZES)
    assert {catalog.image(i)["format"] for i in built.truth} == {"JPEG", "PNG"}
    assert {catalog.image(i)["dataset"] for i in built.truth} == {project.FOLDER}
    assert "20% of each class" in built.how
    again = project.folder_catalog(tmp_path / "again", tree, truth_annotator=TRUTH, seed=3)
    held = {catalog.image(i)["sha256"] for i in built.test}
    assert {again.catalog.image(i)["sha256"] for i in again.test} == held  # seeded


def test_a_split_tree_gives_its_test_folder_and_labels_train_and_val(tmp_path):
    tree = tmp_path / "split"
    make_tree(tree / "train", per_class=10, seed=1)
    make_tree(tree / "val", per_class=2, seed=2)
    make_tree(tree / "test", per_class=3, seed=4)
    built = project.folder_catalog(tmp_path / "cat", tree, truth_annotator=TRUTH)
    assert (len(built.pool), len(built.test)) == (36, 9)
    tested = {built.catalog.image(i)["original_name"] for i in built.test}
    assert tested == {"00.png", "00.jpg", "01.jpg", "02.jpg"}
    assert "test/ folder" in built.how


@pytest.mark.parametrize(
    ("arrange", "says"),
    [
        (lambda root: root / "nowhere", "set DATA_DIR to your tree"),
        (lambda root: make_tree(root / "one", classes=["apple"]), "Add a folder per class"),
        (lambda root: make_tree(root / "few", per_class=5), "add photos to its folder"),
    ],
    ids=["missing", "one class", "too few"],
)
def test_bad_trees_are_refused_with_the_fix_before_anything_is_written(tmp_path, arrange, says):
    with pytest.raises(FolderError, match=says):
        project.folder_catalog(tmp_path / "cat", arrange(tmp_path), truth_annotator=TRUTH)
    assert not (tmp_path / "cat").exists()


def test_a_file_that_is_no_image_and_a_pool_too_small_are_refused(tmp_path):
    tree = make_tree(tmp_path / "photos")
    with pytest.raises(FolderError, match="lower N_BY_HAND"):
        project.folder_catalog(tmp_path / "cat", tree, truth_annotator=TRUTH, min_pool=100)
    (tree / "leaf" / "notes.jpg").write_text("not a photo")
    with pytest.raises(FolderError, match=r"notes\.jpg.*Fix or remove them"):
        project.folder_catalog(tmp_path / "cat", tree, truth_annotator=TRUTH)
    assert not (tmp_path / "cat").exists()


def test_notebook_02_documents_both_datasets_and_reads_data_dir_as_input():
    nb = json.loads((ROOT / "notebooks" / "02_label.ipynb").read_text(encoding="utf-8"))
    (params,) = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    lines = "".join(params["source"]).splitlines()
    (dataset,) = [line for line in lines if line.startswith("DATASET = ")]
    assert dataset.startswith('DATASET = "photos"')
    assert '"photos":' in dataset and '"folder":' in dataset
    (data_dir,) = [line for line in lines if line.startswith("DATA_DIR = ")]
    assert data_dir.startswith("DATA_DIR = None") and "tree" in data_dir
    assert any(line.startswith("WORK_DIR = ") for line in lines)


@pytest.mark.slow
def test_downstream_checks_split_and_export_work_on_a_folder_catalog(tmp_path):
    """What notebook 02 runs after the catalog, on odd-sized photos: near-duplicates (a
    pool copy of a test photo joins it in test), confident learning, the leak-free split,
    the class-folder export, and notebook 08's reading of the catalog."""
    import helpers.finetune as ft
    from helpers import formats
    from helpers.labeling import simulate_labels
    from helpers.quality import duplicate_groups, find_label_issues
    from helpers.splitting import leaks

    tree = make_tree(tmp_path / "photos", per_class=16)
    built = project.folder_catalog(tmp_path / "cat", tree, truth_annotator=ft.TRUTH, seed=0)
    catalog = built.catalog
    test_photo = catalog.load_image(built.test[0])
    buf = io.BytesIO()
    Image.fromarray(test_photo).save(buf, format="BMP")  # a re-upload: same pixels, other bytes
    copy_id, added = catalog.add_image_bytes(buf.getvalue(), dataset=project.FOLDER)
    assert added
    truth = {**built.truth, copy_id: built.truth[built.test[0]]}
    pool = [*built.pool, copy_id]
    simulate_labels(catalog, {i: truth[i] for i in pool}, "ana", 0.1, seed=0)
    groups = duplicate_groups(catalog, pool + built.test)
    assert any({copy_id, built.test[0]} <= set(g) for g in groups)
    issues = find_label_issues(catalog, "ana", pool, seed=0)
    assert all(i["image_id"] in pool for i in issues)
    assignment = ft.split_pool(catalog, "ana", pool, built.test, groups=groups, seed=0)
    assert leaks(assignment, groups) == [] and assignment[copy_id] == "test"
    assert {assignment[i] for i in built.test} == {"test"}
    assert {"train", "val"} <= set(assignment.values())
    folders = formats.export_class_folders(
        catalog, tmp_path / "export", "ana", by_split=True, classes=catalog.classes()
    )
    assert sorted(p.name for p in (folders / "train").iterdir()) == sorted(COLOURS)
    target = ft.catalog_target(Catalog(catalog.root), "ana", test_annotator=ft.TRUTH)
    assert target.train.class_names == sorted(COLOURS)
    assert len(target.test) == len(built.test)  # the copy moved to test has no truth label
