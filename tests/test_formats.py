"""Round trips through every export format keep every label; conventions are exact."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from helpers import formats
from helpers.acquire.synthetic import SHAPE_CLASSES, shapes_scenes
from helpers.catalog import Catalog, CatalogError
from helpers.splitting import split_catalog


def _boxes_by_sha(cat, annotator):
    out = {}
    for b in cat.boxes(annotator=annotator):
        sha = cat.image(b["image_id"])["sha256"]
        out.setdefault(sha, []).append((b["class_name"], b["x0"], b["y0"], b["x1"], b["y1"]))
    return {k: sorted(v) for k, v in out.items()}


def _labels_by_sha(cat, annotator):
    return {
        cat.image(r["image_id"])["sha256"]: (r["class_name"], r["status"])
        for r in cat.labels(annotator)
    }


@pytest.fixture()
def boxed(tmp_path):
    """A catalog of 6 shape scenes of different sizes with their true boxes, plus a
    fractional box touching the right and bottom edges."""
    cat = Catalog(tmp_path / "src")
    cat.set_classes(SHAPE_CLASSES)
    for size, seed in ((64, 0), (48, 1)):
        images, boxes = shapes_scenes(3, size=size, seed=seed)
        for image, image_boxes in zip(images, boxes, strict=True):
            image_id, _ = cat.add_image_array(image, dataset="shapes")
            for b in image_boxes:
                cat.add_box(
                    image_id, b["class_name"], b["x0"], b["y0"], b["x1"], b["y1"], annotator="a"
                )
    cat.add_box(1, "cross", 10.5, 20.25, 64, 64, annotator="a")
    yield cat
    cat.close()


@pytest.fixture()
def classified(tmp_path):
    cat = Catalog(tmp_path / "cls")
    cat.set_classes(["cat", "dog", "bird"])
    rng = np.random.default_rng(0)
    for i in range(12):
        image_id, _ = cat.add_image_array(rng.integers(0, 255, (8, 8), dtype=np.uint8))
        status = "unsure" if i == 3 else "labeled"
        cat.set_label(image_id, ["cat", "dog", "bird"][i % 3], annotator="a", status=status)
    cat.set_label(
        cat.add_image_array(np.zeros((8, 8), np.uint8))[0], None, annotator="a", status="skipped"
    )
    yield cat
    cat.close()


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "csv"])
def test_box_round_trip_keeps_every_box(boxed, tmp_path, fmt):
    out = tmp_path / fmt
    fresh = Catalog(tmp_path / f"fresh-{fmt}")
    if fmt == "coco":
        formats.export_coco(boxed, out / "annotations.json", annotator="a")
        n = formats.import_coco(fresh, out / "annotations.json", annotator="b")
    elif fmt == "yolo":
        formats.export_yolo(boxed, out, annotator="a")
        n = formats.import_yolo(fresh, out, annotator="b")
    elif fmt == "voc":
        formats.export_voc(boxed, out, annotator="a")
        n = formats.import_voc(fresh, out, annotator="b")
    else:
        formats.export_csv(boxed, out / "boxes.csv", annotator="a", kind="boxes")
        n = formats.import_csv(fresh, out / "boxes.csv", annotator="b")
    want, got = _boxes_by_sha(boxed, "a"), _boxes_by_sha(fresh, "b")
    assert n == sum(len(v) for v in want.values())
    assert want.keys() == got.keys()
    for sha, boxes in want.items():
        assert [b[0] for b in got[sha]] == [b[0] for b in boxes]
        np.testing.assert_allclose([b[1:] for b in got[sha]], [b[1:] for b in boxes], atol=1e-4)
    # Importing the same export again adds no duplicate boxes.
    if fmt == "coco":
        formats.import_coco(fresh, out / "annotations.json", annotator="b")
        assert _boxes_by_sha(fresh, "b") == got


def test_coordinate_conventions(boxed, tmp_path):
    box = boxed.boxes(1, annotator="a")[-1]  # cross 10.5, 20.25 -> 64, 64 on a 64x64 image
    coco = json.loads(formats.export_coco(boxed, tmp_path / "c/a.json", "a").read_text())
    ann = [a for a in coco["annotations"] if a["image_id"] == 1][-1]
    assert ann["bbox"] == [10.5, 20.25, 53.5, 43.75]  # x, y, w, h in pixels
    index = formats.category_index(boxed)
    assert ann["category_id"] == index["cross"] + 1
    assert {c["name"]: c["id"] for c in coco["categories"]} == {n: k + 1 for n, k in index.items()}

    root = formats.export_yolo(boxed, tmp_path / "y", "a")
    name = boxed.image_path(1).stem
    k, cx, cy, w, h = (root / "labels" / f"{name}.txt").read_text().splitlines()[-1].split()
    assert int(k) == index["cross"]
    assert root.joinpath("classes.txt").read_text().split() == list(index)
    np.testing.assert_allclose(
        [float(v) for v in (cx, cy, w, h)],
        [(10.5 + 64) / 2 / 64, (20.25 + 64) / 2 / 64, 53.5 / 64, 43.75 / 64],
    )
    for path in (root / "labels").glob("*.txt"):
        for line in path.read_text().splitlines():
            assert all(0.0 <= float(v) <= 1.0 for v in line.split()[1:])

    voc = formats.export_voc(boxed, tmp_path / "v", "a")
    obj = ET.parse(voc / "Annotations" / f"{name}.xml").getroot().findall("object")[-1]
    corners = [float(obj.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
    assert corners == [box["x0"] + 1, box["y0"] + 1, box["x1"], box["y1"]]


def test_class_folders_and_csv_round_trip(classified, tmp_path):
    split_catalog(classified, "a", seed=1)
    want = {k: v for k, v in _labels_by_sha(classified, "a").items() if v[0] is not None}
    root = formats.export_class_folders(classified, tmp_path / "tree", "a")
    assert sorted(p.name for p in root.iterdir()) == ["bird", "cat", "dog"]
    fresh = Catalog(tmp_path / "f1")
    formats.import_class_folders(fresh, root, annotator="b")
    assert {k: v[0] for k, v in _labels_by_sha(fresh, "b").items()} == {
        k: v[0] for k, v in want.items()
    }

    by_split = formats.export_class_folders(classified, tmp_path / "split", "a", by_split=True)
    fresh2 = Catalog(tmp_path / "f2")
    formats.import_class_folders(fresh2, by_split, annotator="b")
    sha_split = {fresh2.image(i)["sha256"]: s for i, s in fresh2.splits().items()}
    assert sha_split == {classified.image(i)["sha256"]: s for i, s in classified.splits().items()}

    csv_path = formats.export_csv(classified, tmp_path / "csv" / "labels.csv", "a")
    fresh3 = Catalog(tmp_path / "f3")
    assert formats.import_csv(fresh3, csv_path, annotator="b") == len(want)
    assert _labels_by_sha(fresh3, "b") == want  # status (unsure) kept too


def test_keras_reads_the_class_folders(classified, tmp_path):
    import keras

    root = formats.export_class_folders(classified, tmp_path / "tree", "a")
    ds = keras.utils.image_dataset_from_directory(
        root, image_size=(8, 8), batch_size=4, color_mode="grayscale", shuffle=False
    )
    assert ds.class_names == ["bird", "cat", "dog"]
    assert sum(int(x.shape[0]) for x, _ in ds) == 12


def _unchanged(cat):
    return (cat.count_images(), cat.boxes(), cat.labels(), cat.classes())


def test_bad_imports_raise_and_leave_the_catalog_unchanged(boxed, tmp_path):
    out = tmp_path / "coco"
    path = formats.export_coco(boxed, out / "annotations.json", annotator="a")
    target = Catalog(tmp_path / "target")
    target.set_classes(["circle"])
    before = _unchanged(target)
    doc = json.loads(path.read_text())

    outside = json.loads(json.dumps(doc))
    outside["annotations"][-1]["bbox"] = [60, 60, 10, 10]
    path.write_text(json.dumps(outside))
    with pytest.raises(CatalogError, match="outside"):
        formats.import_coco(target, path)
    zero = json.loads(json.dumps(doc))
    zero["annotations"][-1]["bbox"] = [5, 5, 0, 4]
    path.write_text(json.dumps(zero))
    with pytest.raises(CatalogError, match="zero area"):
        formats.import_coco(target, path)
    path.write_text(json.dumps(doc))
    with pytest.raises(CatalogError, match="not in"):
        formats.import_coco(target, path, classes=["circle"])
    next(out.joinpath("images").iterdir()).unlink()
    with pytest.raises(CatalogError, match="missing"):
        formats.import_coco(target, path)
    assert _unchanged(target) == before

    yolo = formats.export_yolo(boxed, tmp_path / "y", "a")
    label = next((yolo / "labels").glob("*.txt"))
    label.write_text("0 0.5 0.5 1.5 0.2\n")
    with pytest.raises(CatalogError, match=r"\[0, 1\]"):
        formats.import_yolo(target, yolo)
    assert _unchanged(target) == before


def test_class_names_that_cannot_be_folders_are_refused(tmp_path):
    cat = Catalog(tmp_path / "c")
    cat.set_classes(["a/b"])
    with pytest.raises(CatalogError, match="folder name"):
        formats.export_class_folders(cat, tmp_path / "t", "x")
