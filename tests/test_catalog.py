"""The catalog stores each image once, keeps provenance, and refuses bad input unchanged."""

import io
import sqlite3
import threading

import numpy as np
import pytest
from PIL import Image

from helpers.catalog import SCHEMA_VERSION, Catalog, CatalogError, SchemaTooNewError


@pytest.fixture
def catalog(tmp_path):
    with Catalog(tmp_path / "cat") as cat:
        yield cat


def image(value=0, shape=(8, 10, 3)):
    return np.full(shape, value, dtype=np.uint8)


def snapshot(cat):
    tables = ("images", "classes", "labels", "boxes", "splits")
    return {t: cat.query(f"SELECT * FROM {t} ORDER BY rowid") for t in tables}


def test_same_bytes_are_stored_once_with_the_first_provenance(catalog):
    first, added = catalog.add_image_array(image(1), source="web", source_url="http://a/1.png")
    again, added_again = catalog.add_image_array(image(1), source="web", source_url="http://b/1")
    other, _ = catalog.add_image_array(image(2))
    assert added and not added_again and first == again != other
    row = catalog.image(first)
    assert row["source_url"] == "http://a/1.png"
    assert (row["width"], row["height"], row["mode"], row["format"]) == (10, 8, "RGB", "PNG")
    assert catalog.image_path(first).name == f"{row['sha256']}.png"
    assert catalog.count_images() == 2
    np.testing.assert_array_equal(catalog.load_image(first), image(1))


def test_undecodable_bytes_never_enter_the_catalog(catalog):
    with pytest.raises(CatalogError, match="not an image: an HTML"):
        catalog.add_image_bytes(b"<html>not an image</html>")
    buf = io.BytesIO()
    Image.fromarray(image(3, (40, 40, 3))).save(buf, format="JPEG")
    with pytest.raises(CatalogError, match="truncated JPEG"):
        catalog.add_image_bytes(buf.getvalue()[:200])
    assert catalog.count_images() == 0
    assert not any((catalog.root / "images").rglob("*.*"))


def test_bad_class_lists_are_refused(catalog):
    with pytest.raises(CatalogError, match="empty"):
        catalog.set_classes([])
    with pytest.raises(CatalogError, match="duplicate"):
        catalog.set_classes(["cat", "dog", "cat"])
    with pytest.raises(CatalogError, match="blank"):
        catalog.set_classes(["cat", " "])
    assert catalog.classes() == []
    assert catalog.set_classes(["cat", "dog"]) == ["cat", "dog"]
    assert catalog.set_classes(["dog", "bird"]) == ["cat", "dog", "bird"]


def test_bad_labels_and_boxes_leave_the_catalog_unchanged(catalog):
    image_id, _ = catalog.add_image_array(image(5, (10, 20, 3)))
    catalog.set_classes(["cat", "dog"])
    catalog.set_label(image_id, "cat", annotator="ann")
    box = catalog.add_box(image_id, "dog", 1, 1, 5, 5)
    before = snapshot(catalog)
    bad_calls = [
        lambda: catalog.set_label(image_id, "horse"),
        lambda: catalog.set_label(999, "cat"),
        lambda: catalog.set_label(image_id, None),
        lambda: catalog.set_label(image_id, "cat", status="maybe"),
        lambda: catalog.add_box(image_id, "cat", 0, 0, 21, 5),  # past the right edge
        lambda: catalog.add_box(image_id, "cat", 3, 3, 3, 8),  # zero width
        lambda: catalog.add_box(image_id, "horse", 0, 0, 2, 2),
        lambda: catalog.update_box(box, x1=0.5),
        lambda: catalog.set_splits({image_id: "holdout"}),
    ]
    for call in bad_calls:
        with pytest.raises(CatalogError):
            call()
    assert snapshot(catalog) == before


def test_labels_are_per_annotator_and_the_latest_action_wins(catalog):
    a, _ = catalog.add_image_array(image(1))
    b, _ = catalog.add_image_array(image(2))
    catalog.set_classes(["cat", "dog"])
    catalog.set_label(a, "cat", annotator="ann")
    catalog.set_label(a, "dog", annotator="bob")
    catalog.set_label(a, "dog", annotator="ann", status="unsure")
    catalog.set_label(b, None, annotator="ann", status="skipped")
    rows = {(r["image_id"], r["annotator"]): r for r in catalog.labels()}
    assert rows[(a, "ann")]["class_name"] == "dog" and rows[(a, "ann")]["status"] == "unsure"
    assert rows[(a, "bob")]["class_name"] == "dog"
    assert rows[(b, "ann")]["class_name"] is None
    assert catalog.annotators() == ["ann", "bob"]
    assert catalog.remove_label(a, "ann") is True
    assert catalog.remove_label(a, "ann") is False
    assert len(catalog.labels(annotator="ann")) == 1


def test_splits_filter_images(catalog):
    ids = [catalog.add_image_array(image(v), dataset="d")[0] for v in range(4)]
    catalog.set_splits({ids[0]: "train", ids[1]: "train", ids[2]: "val", ids[3]: "test"}, seed=1)
    assert [r["id"] for r in catalog.images(split="train")] == ids[:2]
    assert [r["id"] for r in catalog.images(dataset="d", split="test")] == ids[3:]


def test_a_missing_image_file_is_a_clear_error(catalog):
    image_id, _ = catalog.add_image_array(image(9))
    catalog.image_path(image_id).unlink()
    with pytest.raises(CatalogError, match="file .* is missing"):
        catalog.load_image(image_id)


def test_a_catalog_from_a_newer_schema_is_refused_and_untouched(tmp_path):
    Catalog(tmp_path).close()
    db = tmp_path / "catalog.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = db.read_bytes()
    with pytest.raises(SchemaTooNewError, match="newer version"):
        Catalog(tmp_path)
    assert db.read_bytes() == before


def test_labels_survive_reopening(tmp_path):
    with Catalog(tmp_path) as cat:
        image_id, _ = cat.add_image_array(image(4))
        cat.set_classes(["cat"])
        cat.set_label(image_id, "cat")
    with Catalog(tmp_path) as cat:
        assert [r["class_name"] for r in cat.labels()] == ["cat"]


def test_threads_adding_the_same_images_store_each_once(catalog):
    arrays = [image(v) for v in range(20)]

    def add_all():
        for array in arrays:
            catalog.add_image_array(array)

    threads = [threading.Thread(target=add_all) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert catalog.count_images() == 20
    assert catalog.query("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
