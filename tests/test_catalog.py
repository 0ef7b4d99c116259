"""The catalog stores each image once, keeps provenance, and refuses bad input unchanged."""

import io
import os
import sqlite3
import stat
import threading

import numpy as np
import pytest
from PIL import Image

from helpers.catalog import (
    SCHEMA_VERSION,
    Catalog,
    CatalogCorrupt,
    CatalogError,
    CatalogLocationError,
    CatalogUnavailable,
    SchemaTooNewError,
)
from helpers.catalog import store as catalog_store


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


# -- a damaged catalog file ------------------------------------------------------------


def catalog_with_images(folder, n=200):
    rng = np.random.default_rng(0)
    with Catalog(folder) as cat:
        cat.set_classes(["a"])
        for _ in range(n):
            cat.add_image_array(rng.integers(0, 255, (8, 8), dtype=np.uint8), source="s" * 300)
    return folder / "catalog.sqlite"


@pytest.mark.parametrize(
    "content",
    [
        bytes(range(256)) * 32,  # random-looking bytes
        b"label,file\ncat,a.png\n" * 50,  # a text file saved under the catalog's name
        b"SQLite format 3\x00" + b"\xff" * 4080,  # the right header, nothing sane after it
    ],
)
def test_a_file_that_is_not_a_catalog_is_named_with_what_to_do(tmp_path, content):
    db = tmp_path / "catalog.sqlite"
    db.write_bytes(content)
    with pytest.raises(CatalogCorrupt) as err:
        Catalog(tmp_path)
    message = str(err.value)
    assert str(db) in message and "backup" in message and f"mv {db} {db}.broken" in message
    assert isinstance(err.value, CatalogUnavailable)  # what a labeling widget catches
    assert db.read_bytes() == content  # left as it was


def test_damage_found_only_by_a_later_query_is_named_too(tmp_path):
    db = catalog_with_images(tmp_path / "cat")
    data = bytearray(db.read_bytes())
    data[-4096 * 4 :] = b"\xff" * (4096 * 4)  # the last pages: the schema still reads
    db.write_bytes(bytes(data))
    with pytest.raises(CatalogCorrupt, match="malformed") as err, Catalog(db.parent) as cat:
        cat.images()
    assert str(db) in str(err.value)


def test_a_damaged_catalog_opened_for_reading_only_is_named(tmp_path, monkeypatch):
    db = tmp_path / "catalog.sqlite"
    db.write_bytes(b"not a database at all" * 100)
    monkeypatch.setattr(catalog_store, "_writable", lambda path: False)  # tests run as root
    with pytest.raises(CatalogCorrupt, match="not a database"):
        Catalog(tmp_path)


def test_a_folder_in_the_catalog_files_place_is_a_location_error(tmp_path):
    (tmp_path / "catalog.sqlite").mkdir()
    with pytest.raises(CatalogLocationError) as err:
        Catalog(tmp_path)
    assert str(tmp_path / "catalog.sqlite") in str(err.value)


def test_an_empty_catalog_file_is_a_new_catalog(tmp_path):
    (tmp_path / "catalog.sqlite").write_bytes(b"")
    with Catalog(tmp_path) as cat:
        assert cat.count_images() == 0 and cat.classes() == []


def test_query_errors_that_are_not_about_the_file_pass_through(catalog):
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        catalog.query("SELECT * FROM no_such_table")


# -- private to its owner --------------------------------------------------------------


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_new_catalog_is_readable_by_its_owner_alone(tmp_path):
    root = tmp_path / "new" / "cat"
    with Catalog(root) as cat:
        image_id, _ = cat.add_image_array(image(3))
        cat.set_classes(["a"])
        cat.set_label(image_id, "a", annotator="ann")
        db = root / "catalog.sqlite"
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            assert mode(path) == 0o600, path
        stored = cat.image_path(image_id)
        assert mode(stored) == 0o600
        assert mode(stored.parent) == mode(stored.parent.parent) == mode(root) == 0o700


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_rollback_journal_takes_the_catalogs_mode_too(tmp_path):
    with Catalog(tmp_path) as cat:
        cat.query("PRAGMA journal_mode = DELETE")
        with cat.transaction() as db:
            db.execute("INSERT INTO classes (name, position) VALUES ('a', 0)")
            assert mode(tmp_path / "catalog.sqlite-journal") == 0o600


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_an_existing_catalog_keeps_the_mode_its_owner_gave_it(tmp_path):
    with Catalog(tmp_path):
        pass
    (tmp_path / "catalog.sqlite").chmod(0o644)  # shared on purpose, e.g. by a teacher
    with Catalog(tmp_path) as cat:
        cat.set_classes(["a"])
    assert mode(tmp_path / "catalog.sqlite") == 0o644
