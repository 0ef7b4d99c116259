"""The searched photos notebook 02 labels (helpers.acquire.project), and the simulated
collection's helpers it uses (helpers.labeling.plant_copies, draw_boxes)."""

import numpy as np
import pytest
from PIL import Image

from helpers.acquire import project
from helpers.acquire.photos import TARGET_CLASSES
from helpers.acquire.synthetic import SHAPE_CLASSES, shapes_scenes
from helpers.catalog import Catalog
from helpers.labeling import BoxAnnotator, draw_boxes, plant_copies

CLASSES = ("dog", "frog", "ship")


def split_tree(root, classes=CLASSES, per_class=30):
    """A train/test tree of small JPEGs whose red channel says the class, as shipped."""
    for split, offset in (("train", 0), ("test", 100)):
        for ci, cls in enumerate(classes):
            (root / split / cls).mkdir(parents=True)
            for j in range(per_class):
                pixels = np.full((8, 8, 3), (40 * ci, 2 * j + offset, 0), np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{j:04d}.jpg", quality=95)
    return root


@pytest.fixture()
def tree(tmp_path):
    return split_tree(tmp_path / "photos")


def target(folder):
    catalog = Catalog(folder)
    catalog.set_classes(CLASSES)
    return catalog


def test_a_search_stores_each_querys_answers_unlabeled_and_counts_the_wrong_ones(tmp_path, tree):
    catalog = Catalog(tmp_path / "cat")
    wrong = project.search_project(
        catalog, 10, wrong_share=0.2, classes=CLASSES, photos=tree / "train", workers=2
    )
    assert wrong == {"dog": 2, "frog": 2, "ship": 2}  # every 5th answer shows the next class
    assert {c: catalog.count_images(project.search_dataset(c)) for c in CLASSES} == dict.fromkeys(
        CLASSES, 10
    )
    assert catalog.labels() == []  # a query is a clue, not a label
    assert project.searched_images(catalog, CLASSES) == {
        r["id"]: c for c in CLASSES for r in catalog.images(f"search_{c}")
    }


def test_the_searched_photos_come_in_with_provenance_truth_and_the_wrong_answers(tmp_path, tree):
    source = Catalog(tmp_path / "acquired")
    project.search_project(source, 10, wrong_share=0.2, classes=CLASSES, photos=tree / "train")
    source.add_image_array(np.zeros((8, 8, 3), np.uint8), dataset="digits")  # not searched
    known = project.shipped_truth(tree)
    assert len(known) == 2 * 3 * 30 and set(known.values()) == set(CLASSES)
    labeling = target(tmp_path / "labeling")
    pool_photo = sorted((tree / "train" / "frog").glob("*.jpg"))[0]  # frog's first answer
    pool_id, _ = labeling.add_image_file(pool_photo, dataset="pool")
    got = project.import_searched(source, labeling, known, truth_annotator="truth")
    assert got.already == [pool_id] and got.unknown == []
    assert len(got.query) == 29 and labeling.count_images() == 30
    # a wrong answer is a photo of another class than its query: two per query, less the
    # frog answer that was in the pool already (a right one)
    assert len(got.wrong) == 6 and all(got.truth[i] != got.query[i] for i in got.wrong)
    assert {got.truth[i] for i in got.wrong if got.query[i] == "dog"} == {"frog"}
    labels = {r["image_id"]: r["class_name"] for r in labeling.labels("truth")}
    assert labels == got.truth
    for image_id, query in got.query.items():
        row = labeling.image(image_id)
        assert row["dataset"] == f"search_{query}" and row["source_url"].startswith("http")
        assert row["author"] and row["license"] and row["retrieved_at"]
    assert "29 searched photos added, 6 of them show another class" in str(got)


def test_photos_the_archive_does_not_know_are_left_out(tmp_path, tree):
    source = Catalog(tmp_path / "acquired")
    project.search_project(source, 4, wrong_share=0.0, classes=CLASSES, photos=tree / "train")
    known = project.shipped_truth(tree)
    dog_ids = [r["id"] for r in source.images("search_dog")]
    unknown = {source.image(i)["sha256"] for i in dog_ids}
    got = project.import_searched(
        source,
        target(tmp_path / "labeling"),
        {h: c for h, c in known.items() if h not in unknown},
        truth_annotator="truth",
    )
    assert sorted(got.unknown) == sorted(dog_ids) and set(got.query.values()) == {"frog", "ship"}
    assert got.wrong == set()


def test_notebook_01s_catalog_is_read_when_it_holds_searched_photos(tmp_path, tree, monkeypatch):
    acquired = Catalog(tmp_path / "acquired")
    acquired.add_image_array(np.zeros((8, 8, 3), np.uint8), dataset="search_dog")
    fallback = tmp_path / "fallback"
    monkeypatch.setattr(project, "search_project", pytest.fail)  # no search when 01 ran
    found = project.find_searched(tmp_path / "acquired", fallback, per_class=3)
    assert found.catalog.root == tmp_path / "acquired" and "notebook 01 stored 1" in found.reason
    assert not fallback.exists()


@pytest.mark.parametrize("has_catalog", [False, True])
def test_without_notebook_01s_search_the_same_search_is_made(tmp_path, has_catalog):
    tree = split_tree(tmp_path / "photos", TARGET_CLASSES, per_class=12)
    acquired = tmp_path / "acquired"
    if has_catalog:  # 01's catalog without searched photos (its search cell not run)
        Catalog(acquired).add_image_array(np.zeros((8, 8, 3), np.uint8), dataset="digits")
    found = project.find_searched(
        acquired, tmp_path / "fallback", per_class=5, wrong_share=0.2, photos=tree / "train"
    )
    assert found.catalog.root == tmp_path / "fallback"
    assert len(project.searched_images(found.catalog)) == 5 * len(TARGET_CLASSES)
    why = "holds no searched photos" if has_catalog else "notebook 01 has not run"
    assert why in found.reason
    assert f"(5 answers a query, {len(TARGET_CLASSES)} of another class)" in found.reason
    assert (acquired / "catalog.sqlite").is_file() == has_catalog


def test_planted_copies_differ_in_bytes_not_in_what_they_show(tmp_path):
    catalog = Catalog(tmp_path)
    rng = np.random.default_rng(0)
    ids = [
        catalog.add_image_array(rng.integers(0, 200, (16, 16, 3), dtype=np.uint8))[0]
        for _ in range(10)
    ]
    planted = plant_copies(catalog, ids, 4, np.random.default_rng(1), dataset="copies")
    assert len(planted) == 4 and len({o for o, _ in planted}) == 4
    assert {o for o, _ in planted} <= set(ids) and not {c for _, c in planted} & set(ids)
    for k, (original, copy) in enumerate(planted):
        a, b = catalog.load_image(original).astype(int), catalog.load_image(copy).astype(int)
        assert catalog.image(copy)["dataset"] == "copies"
        assert catalog.image(copy)["format"] == ("PNG" if k % 2 else "BMP")
        assert np.array_equal(b, np.clip(a + 6, 0, 255) if k % 2 else a)
    again = plant_copies(catalog, ids, 4, np.random.default_rng(1), dataset="copies")
    assert again == planted  # same generator, same copies: stored once


def test_a_drawn_box_set_is_stored_in_image_pixels_and_the_stray_box_leaves_no_trace(tmp_path):
    catalog = Catalog(tmp_path)
    catalog.set_classes(SHAPE_CLASSES)
    scenes, boxes = shapes_scenes(2, size=64, seed=3)
    ids = [catalog.add_image_array(s)[0] for s in scenes]
    boxer = BoxAnnotator(catalog, list(SHAPE_CLASSES), ids, annotator="ana")
    for image_id, true_boxes in zip(ids, boxes, strict=True):
        assert boxer.current == image_id
        draw_boxes(boxer, true_boxes)
    assert boxer.factor > 1
    for image_id, true_boxes in zip(ids, boxes, strict=True):
        got = sorted(
            (b["class_name"], b["x0"], b["y0"], b["x1"], b["y1"])
            for b in catalog.boxes(image_id, annotator="ana")
        )
        want = sorted((b["class_name"], b["x0"], b["y0"], b["x1"], b["y1"]) for b in true_boxes)
        assert got == want
