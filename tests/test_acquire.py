"""Folder, CSV and array imports: every file checked, bad ones reported, labels kept."""

import io

import numpy as np
import pytest
from PIL import Image

from helpers import acquire
from helpers.acquire import synthetic
from helpers.acquire.datasets import load_arrays
from helpers.acquire.image_api_server import bomb_png, camera_exif
from helpers.catalog import Catalog
from helpers.images import ImageRejected, check_image_bytes


def encode(array, fmt="PNG", **options):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **options)
    return buf.getvalue()


RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 255, (30, 20, 3), dtype=np.uint8)


def test_clean_images_are_stored_byte_for_byte():
    for fmt in ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"):
        data = encode(RGB, fmt)
        checked = check_image_bytes(data)
        assert checked.data == data and checked.format == fmt and not checked.notes
        assert (checked.width, checked.height) == (20, 30)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"<!DOCTYPE html><html></html>", "not an image: an HTML/XML page"),
        (b'{"error": "quota"}', "not an image: JSON"),
        (encode(RGB, "JPEG")[:300], "corrupt or truncated JPEG"),
        (encode(RGB)[:-30], "corrupt or truncated PNG"),
        (encode(RGB[:4, :4]), "too small: 4x4"),
        (bomb_png(), "decompression bomb guard"),
        (encode(RNG.random((10, 10)).astype(np.float32), "TIFF"), "unsupported mode 'F'"),
    ],
)
def test_bad_bytes_are_rejected_with_the_reason(data, reason):
    with pytest.raises(ImageRejected, match=reason.replace("(", r"\(")):
        check_image_bytes(data)


def test_size_limit():
    with pytest.raises(ImageRejected, match="file too large"):
        check_image_bytes(encode(RGB), max_bytes=100)


def test_exif_orientation_applied_then_metadata_stripped():
    data = encode(RGB, "JPEG", exif=camera_exif(orientation=8), quality=95)
    checked = check_image_bytes(data)
    assert checked.notes == ["applied EXIF orientation 8", "stripped EXIF (including GPS position)"]
    with Image.open(io.BytesIO(checked.data)) as im:
        assert im.size == (30, 20) and len(im.getexif()) == 0
    assert (checked.width, checked.height) == (30, 20)
    assert check_image_bytes(data, strip_exif=False).data == data


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_upright_images_lose_their_exif_but_not_a_pixel(fmt):
    options = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(RGB, fmt, exif=camera_exif(orientation=1), **options)
    with Image.open(io.BytesIO(data)) as im:
        assert im.getexif().get_ifd(0x8825)  # the GPS position is really there
    kept = check_image_bytes(data)
    assert kept.notes == ["stripped EXIF (including GPS position)"]
    assert len(kept.data) < len(data)
    with Image.open(io.BytesIO(data)) as a, Image.open(io.BytesIO(kept.data)) as b:
        assert len(b.getexif()) == 0 and "exif" not in b.info
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture
def class_tree(tmp_path):
    root = synthetic.write_class_folders(tmp_path / "tree", 12, size=24, seed=1)
    (root / "circle" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "square" / "notes.txt").write_text("not an image")
    (root / "README.md").write_text("stray file at the top")
    first = next((root / "triangle").iterdir())
    (root / "triangle" / "copy.jpg").write_bytes(first.read_bytes())
    (root / "cross" / "phone.jpg").write_bytes(encode(RGB, "JPEG", exif=camera_exif(orientation=6)))
    return root


def test_class_folders_import_labels_and_report_bad_files(class_tree, tmp_path):
    catalog = Catalog(tmp_path / "cat")
    report = acquire.ingest_class_folders(catalog, class_tree, dataset="mine")
    skipped = dict(report.skipped)
    assert "corrupt or truncated JPEG" in skipped["circle/broken.jpg"]
    assert "not an image" in skipped["square/notes.txt"]
    assert skipped["README.md"] == "not inside a class folder"
    assert len(report.skipped) == 3
    assert [w for w, _ in report.duplicates] == ["triangle/copy.jpg"]
    assert dict(report.notes)["cross/phone.jpg"].startswith("applied EXIF orientation 6")
    assert len(report.added) == 13 == catalog.count_images("mine")
    labels = catalog.labels(annotator="import")
    assert len(labels) == 13 and {lab["source"] for lab in labels} == {"import"}
    by_id = {lab["image_id"]: lab["class_name"] for lab in labels}
    for row in catalog.images("mine"):
        assert by_id[row["id"]] == row["original_name"].split("/")[0]
    again = acquire.ingest_class_folders(catalog, class_tree, dataset="mine")
    assert again.added == [] and len(again.duplicates) == 14


def test_split_folders_store_splits(tmp_path):
    root = tmp_path / "split"
    for i, split in enumerate(("train", "validation", "test")):
        synthetic.write_class_folders(root / split, 8, size=16, seed=i, image_format="PNG")
    (root / "extra").mkdir()
    catalog = Catalog(tmp_path / "cat")
    report = acquire.ingest_split_folders(catalog, root, dataset="split")
    assert len(report.added) == 24 and dict(report.skipped) == {
        "extra": "not a split folder; use one of ['train', 'val', 'valid', 'validation', 'test']"
    }
    counts = {s: len(catalog.images("split", split=s)) for s in ("train", "val", "test")}
    assert counts == {"train": 8, "val": 8, "test": 8}
    with pytest.raises(FileNotFoundError, match="none of the split folders"):
        acquire.ingest_split_folders(catalog, root / "train", dataset="x")


def test_csv_import_reports_every_mismatch(tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    images, labels = synthetic.single_object_images(5, size=16, seed=3)
    for i, image in enumerate(images):
        (folder / f"{i}.png").write_bytes(encode(image))
    (folder / "unlisted.png").write_bytes(encode(RGB))
    names = synthetic.SHAPE_CLASSES
    rows = [f"{i}.png,{names[labels[i]]}" for i in range(4)]
    rows += ["4.png,", "missing.png,circle", "0.png,square" if labels[0] else "0.png,cross"]
    rows += ["../escape.png,circle"]
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("filename,label\n" + "\n".join(rows) + "\n")
    catalog = Catalog(tmp_path / "cat")
    report = acquire.ingest_csv(catalog, folder, csv_path, dataset="flat")
    skipped = dict(report.skipped)
    assert skipped["4.png"] == "no label in the CSV"
    assert skipped["missing.png"] == "listed in the CSV but no such file in the folder"
    assert skipped["../escape.png"] == "listed in the CSV but no such file in the folder"
    assert skipped["unlisted.png"] == "no row in the CSV"
    assert skipped["0.png"].startswith("listed with different labels")
    assert len(report.added) == 3
    got = {r["image_id"]: r["class_name"] for r in catalog.labels("import")}
    originals = {r["id"]: r["original_name"] for r in catalog.images("flat")}
    for image_id, name in got.items():
        assert name == names[labels[int(originals[image_id].split(".")[0])]]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\n1.png,circle\n")
    with pytest.raises(ValueError, match="filename_column="):
        acquire.ingest_csv(catalog, folder, bad, dataset="flat")


def test_arrays_round_trip_with_labels_splits_and_provenance(tmp_path):
    data = load_arrays("digits", seed=0)
    catalog = Catalog(tmp_path)
    report = acquire.ingest_arrays(catalog, data, limit=40)
    assert len(report.added) == 40 + 10 and not report.skipped
    assert catalog.classes() == data.class_names
    x, y, classes = acquire.load_labeled(catalog, "digits", mode="L")
    np.testing.assert_array_equal(x[:40], data.x_train[:40])  # PNG is lossless
    np.testing.assert_array_equal(y[:40], data.y_train[:40])
    assert len(catalog.images("digits", split="test")) == 10
    table = catalog.provenance("digits")
    assert {r["license"] for r in table} == {"CC BY 4.0"}
    assert all("scikit-learn" in r["source"] for r in table)


def test_scenes_store_their_boxes(tmp_path):
    images, boxes = synthetic.shapes_scenes(6, size=40, seed=2)
    catalog = Catalog(tmp_path)
    report = acquire.ingest_scenes(catalog, images, boxes)
    assert len(report.added) == 6
    stored = catalog.boxes(annotator="import")
    assert len(stored) == sum(len(b) for b in boxes)
    first = catalog.boxes(report.added[0])
    assert [{k: b[k] for k in boxes[0][0]} for b in first] == boxes[0]
    assert {(b["annotator"], b["source"]) for b in stored} == {("import", "import")}
    again = acquire.ingest_scenes(catalog, images, boxes)
    assert len(again.duplicates) == 6 and len(catalog.boxes()) == len(stored)


def test_missing_folder_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        acquire.ingest_class_folders(Catalog(tmp_path), tmp_path / "nope", dataset="x")


def test_the_same_image_in_two_classes_or_two_splits_is_reported(tmp_path):
    root = tmp_path / "split"
    synthetic.write_class_folders(root / "train", 8, size=16, seed=0, image_format="PNG")
    synthetic.write_class_folders(root / "test", 8, size=16, seed=1, image_format="PNG")
    leaked = sorted((root / "train" / "circle").iterdir())[0]
    (root / "test" / "square" / "leaked.png").write_bytes(leaked.read_bytes())
    catalog = Catalog(tmp_path / "cat")
    report = acquire.ingest_split_folders(catalog, root, dataset="leaky")
    notes = [note for _, note in report.notes]
    assert "label conflict: same image imported as 'circle'; kept that" in notes
    assert "leak: same image already in 'train'" in notes
    image_id = report.duplicates[0][1]
    assert catalog.splits()[image_id] == "train"
    assert {r["class_name"] for r in catalog.labels("import") if r["image_id"] == image_id} == {
        "circle"
    }
