"""Importers stay inside the folder they are given, refuse the rest by row, and name the
file and the line or entry of malformed input without quoting any file's bytes.

Each test lays out an import folder ``imp/`` and, beside it, ``secret/private.png``: an
image the user never meant to import, reached through ``..``, an absolute path or a
symbolic link inside ``imp/``.
"""

import io
import json
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from helpers import acquire, formats
from helpers.catalog import Catalog, CatalogError
from helpers.files import OutsideFolder, resolve_inside, sha256_bytes
from helpers.images import ImageRejected, check_image_bytes

SECRET_TEXT = b"password=hunter2\n"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png(value: int, size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture()
def world(tmp_path):
    """``imp/images/{a,b}.png`` to import, ``imp/images/link.png`` linking to the secret
    image, and ``secret/private.png`` outside ``imp/``."""
    secret = tmp_path / "secret" / "private.png"
    secret.parent.mkdir()
    secret.write_bytes(png(222))
    imp = tmp_path / "imp"
    (imp / "images").mkdir(parents=True)
    (imp / "images" / "a.png").write_bytes(png(10))
    (imp / "images" / "b.png").write_bytes(png(20))
    (imp / "images" / "link.png").symlink_to(secret)
    return imp, secret


@pytest.fixture()
def catalog(tmp_path):
    cat = Catalog(tmp_path / "catalog")
    yield cat
    cat.close()


def stored_shas(cat) -> set[str]:
    return {row["sha256"] for row in cat.images()}


def sha_of(path) -> str:
    return sha256_bytes(check_image_bytes(path.read_bytes()).data)


def left_out(record) -> str:
    """The one ImportLeftOut warning's text."""
    found = [w for w in record if issubclass(w.category, formats.ImportLeftOut)]
    assert len(found) == 1, [str(w.message) for w in record]
    return str(found[0].message)


def unchanged(cat):
    return (cat.count_images(), cat.boxes(), cat.labels(), cat.classes())


# -- the shared check -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, why",
    [
        ("../secret/private.png", "'..'"),
        ("images/../../secret/private.png", "'..'"),
        ("images/link.png", "symbolic link"),
        ("", "names no file"),
        (".", "folder itself"),
        ("a\x00b.png", "not a usable file name"),
    ],
)
def test_resolve_inside_refuses_every_way_out(world, name, why):
    imp, _ = world
    with pytest.raises(OutsideFolder, match=why):
        resolve_inside(imp, name)


def test_resolve_inside_refuses_absolute_paths_and_links_to_links(world):
    imp, secret = world
    with pytest.raises(OutsideFolder, match="absolute path"):
        resolve_inside(imp, str(secret))
    with pytest.raises(OutsideFolder, match="absolute path"):
        resolve_inside(imp, "/" + str(secret))  # '//x' is absolute too
    (imp / "images" / "hop.png").symlink_to(imp / "images" / "link.png")
    with pytest.raises(OutsideFolder, match="symbolic link"):
        resolve_inside(imp, "images/hop.png")
    (imp / "linked").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(OutsideFolder):
        resolve_inside(imp, "linked/private.png")


def test_resolve_inside_accepts_names_that_stay_inside(world):
    imp, _ = world
    real = imp.resolve() / "images" / "a.png"
    assert resolve_inside(imp, "images/a.png") == real
    assert resolve_inside(imp, "images/../images/./a.png") == real
    assert resolve_inside(imp, str(real)) == real  # absolute, but inside
    (imp / "images" / "alias.png").symlink_to(real)
    assert resolve_inside(imp, "images/alias.png") == real


# -- CSV ----------------------------------------------------------------------------------


def test_csv_rows_outside_the_folder_or_without_a_class_are_left_out(world, catalog):
    imp, secret = world
    rows = [
        "file,width,height,class",
        "images/a.png,16,16,cat",  # line 2: imported
        "../secret/private.png,16,16,dog",  # line 3: climbs out
        f"{secret},16,16,dog",  # line 4: absolute path
        "images/link.png,16,16,dog",  # line 5: a link that leads out
        "images/b.png,16,16,",  # line 6: empty class
        "images/b.png,16,16",  # line 7: no class column at all (was the class "None")
        "images/b.png,16,16,dog",  # line 8: imported
        "../secret/private.png,16,16,cat",  # line 9: the same escape again
    ]
    (imp / "labels.csv").write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        n = formats.import_csv(catalog, imp / "labels.csv")
    assert n == 2
    assert catalog.classes() == ["cat", "dog"]
    assert sha_of(secret) not in stored_shas(catalog)
    assert catalog.count_images() == 2
    message = left_out(record)
    for line, why in [
        (3, "'..'"),
        (4, "absolute path"),
        (5, "symbolic link"),
        (6, "empty class"),
        (7, "empty class"),
        (9, "'..'"),
    ]:
        assert f"labels.csv line {line} (" in message
        assert why in message.split(f"line {line} (")[1].split(")")[0]
    assert "line 2 (" not in message and "line 8 (" not in message


def test_csv_box_rows_outside_the_folder_are_left_out(world, catalog):
    imp, secret = world
    (imp / "boxes.csv").write_text(
        "file,width,height,class,x0,y0,x1,y1\n"
        "images/a.png,16,16,dot,1,1,5,5\n"
        "../secret/private.png,16,16,dot,1,1,5,5\n"
        "images/a.png,16,16,,2,2,6,6\n"
    )
    with pytest.warns(formats.ImportLeftOut, match="line 3 .*line 4 .*empty class"):
        assert formats.import_csv(catalog, imp / "boxes.csv") == 1
    assert [b["class_name"] for b in catalog.boxes()] == ["dot"]
    assert sha_of(secret) not in stored_shas(catalog)


def test_malformed_csv_boxes_name_the_file_and_line(world, catalog):
    imp, _ = world
    (imp / "boxes.csv").write_text(
        "file,width,height,class,x0,y0,x1,y1\n"
        "images/a.png,16,16,dot,1,1,5,5\n"
        "images/a.png,16,16,dot,one,1,5,5\n"
    )
    before = unchanged(catalog)
    with pytest.raises(CatalogError, match=r"boxes\.csv line 3: x0, y0, x1, y1 must be numbers"):
        formats.import_csv(catalog, imp / "boxes.csv")
    assert unchanged(catalog) == before


@pytest.mark.parametrize(
    "content",
    [
        SECRET_TEXT,
        b"<html><body>secret page</body></html>",
        PNG_MAGIC + b"\x00\x00\x00\rsecrsecretsecretsecret",  # Pillow quotes chunk names
        PNG_MAGIC + b"\x00\x00\x00\x0dIHDR" + b"hunter2hunter2",
        b"\xff\xd8\xff" + SECRET_TEXT,
    ],
    ids=["text", "html", "png-bad-header", "png-truncated", "jpeg-magic"],
)
def test_a_file_that_is_not_an_image_is_refused_without_quoting_it(
    world, catalog, tmp_path, content
):
    imp, _ = world
    (imp / "images" / "notes.png").write_bytes(content)
    (imp / "labels.csv").write_text("file,width,height,class\nimages/notes.png,16,16,cat\n")
    with pytest.raises(CatalogError) as caught:
        formats.import_csv(catalog, imp / "labels.csv")
    message = str(caught.value)
    assert "notes.png" in message
    for secret in (b"password", b"hunter2", b"secr", b"secret page"):
        assert secret.decode() not in message
    with pytest.raises(ImageRejected) as gate:
        check_image_bytes(content)
    assert "hunter2" not in str(gate.value) and "secr" not in str(gate.value)

    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "notes.png").write_bytes(content)
    (flat / "ok.png").write_bytes(png(30))
    (tmp_path / "flat.csv").write_text("filename,label\nnotes.png,cat\nok.png,dog\n")
    report = acquire.ingest_csv(catalog, flat, tmp_path / "flat.csv", dataset="flat")
    assert len(report.added) == 1
    assert "hunter2" not in str(report) and "password" not in str(report)


# -- COCO ---------------------------------------------------------------------------------


def coco_doc(names: list[str]) -> dict:
    return {
        "images": [
            {"id": k + 1, "file_name": name, "width": 16, "height": 16}
            for k, name in enumerate(names)
        ],
        "annotations": [
            {"id": k + 1, "image_id": k + 1, "category_id": 1, "bbox": [1, 1, 4, 4]}
            for k in range(len(names))
        ],
        "categories": [{"id": 1, "name": "dot"}],
    }


def test_coco_file_names_outside_the_folder_are_left_out_with_their_boxes(world, catalog):
    imp, secret = world
    names = ["images/a.png", "../secret/private.png", str(secret), "images/link.png"]
    path = imp / "annotations.json"
    path.write_text(json.dumps(coco_doc(names)))
    with pytest.warns(formats.ImportLeftOut) as record:
        assert formats.import_coco(catalog, path) == 1
    message = left_out(record)
    assert "images[1] (id 2)" in message and "images[2] (id 3)" in message
    assert "images[3] (id 4)" in message and "images[0]" not in message
    assert "boxes are left out too" in message
    assert catalog.count_images() == 1 and len(catalog.boxes()) == 1
    assert sha_of(secret) not in stored_shas(catalog)


def test_coco_category_without_a_name_is_left_out_not_named_none(world, catalog):
    imp, _ = world
    doc = coco_doc(["images/a.png", "images/b.png"])
    doc["categories"].append({"id": 2, "name": None})
    doc["annotations"][1]["category_id"] = 2
    path = imp / "annotations.json"
    path.write_text(json.dumps(doc))
    with pytest.warns(formats.ImportLeftOut, match=r"categories\[1\] \(empty class name"):
        assert formats.import_coco(catalog, path) == 1
    assert catalog.classes() == ["dot"]


def _breaks(doc, change):
    doc = json.loads(json.dumps(doc))
    change(doc)
    return doc


@pytest.mark.parametrize(
    "change, where",
    [
        (lambda d: d["images"][1].pop("file_name"), r"images\[1\] has no 'file_name'"),
        (lambda d: d["images"][0].pop("id"), r"images\[0\] has no 'id'"),
        (lambda d: d["images"][1].update(file_name=7), r"images\[1\]: file_name must be"),
        (lambda d: d["images"].__setitem__(0, "a.png"), r"images\[0\] is not a JSON object"),
        (lambda d: d["categories"][0].pop("name"), r"categories\[0\] has no 'name'"),
        (lambda d: d["categories"][0].update(id="one"), r"categories\[0\]: id must be a whole"),
        (lambda d: d["annotations"][1].pop("bbox"), r"annotations\[1\] has no 'bbox'"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2]), r"annotations\[0\]: bbox must be"),
        (lambda d: d["annotations"][0].update(bbox="1234"), r"annotations\[0\]: bbox must be"),
        (lambda d: d["annotations"][1].update(bbox=[1, "x", 2, 2]), r"annotations\[1\]: bbox"),
        (lambda d: d["annotations"][1].pop("category_id"), r"annotations\[1\] has no"),
        (lambda d: d["annotations"][0].update(image_id=2.5), r"annotations\[0\]: image_id"),
        (lambda d: d["annotations"][0].update(category_id=9), r"annotations\[0\]: unknown"),
        (lambda d: d.pop("images"), "needs an object with the lists"),
        (lambda d: d.update(annotations={}), "needs an object with the lists"),
    ],
)
def test_malformed_coco_names_the_file_and_the_entry(world, catalog, change, where):
    imp, _ = world
    path = imp / "annotations.json"
    path.write_text(json.dumps(_breaks(coco_doc(["images/a.png", "images/b.png"]), change)))
    before = unchanged(catalog)
    with pytest.raises(CatalogError, match="annotations.json") as caught:
        formats.import_coco(catalog, path)
    assert caught.type is CatalogError
    assert caught.match(where)
    assert unchanged(catalog) == before


def test_coco_that_is_not_json_or_not_an_object_names_the_file(world, catalog):
    imp, _ = world
    path = imp / "annotations.json"
    for text, why in [("[1, 2]", "needs an object"), ("{", "not COCO JSON"), ("", "not COCO")]:
        path.write_text(text)
        with pytest.raises(CatalogError, match=f"annotations.json.*{why}"):
            formats.import_coco(catalog, path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(CatalogError, match="annotations.json is not UTF-8"):
        formats.import_coco(catalog, path)


# -- Pascal VOC ---------------------------------------------------------------------------


def voc_folder(imp, filenames: dict[str, str]):
    """``imp/JPEGImages`` (the world's images moved there) and one XML per entry."""
    (imp / "images").rename(imp / "JPEGImages")
    (imp / "Annotations").mkdir()
    for stem, filename in filenames.items():
        (imp / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{filename}</filename><object><name>dot</name>"
            "<bndbox><xmin>2</xmin><ymin>2</ymin><xmax>5</xmax><ymax>5</ymax></bndbox>"
            "</object></annotation>"
        )


def test_voc_filenames_outside_the_folder_are_left_out(world, catalog):
    imp, secret = world
    voc_folder(
        imp,
        {
            "a": "a.png",
            "dots": "../../secret/private.png",
            "abs": str(secret),
            "link": "link.png",
            "sideways": "../Annotations/a.xml",  # inside imp/, but not an image folder
        },
    )
    with pytest.warns(formats.ImportLeftOut) as record:
        assert formats.import_voc(catalog, imp) == 1
    message = left_out(record)
    for stem in ("dots", "abs", "link", "sideways"):
        assert f"{stem}.xml <filename> (" in message
    assert catalog.count_images() == 1
    assert sha_of(secret) not in stored_shas(catalog)


def test_voc_annotation_files_linking_outside_and_nameless_objects_are_left_out(
    world, catalog, tmp_path
):
    imp, _ = world
    voc_folder(imp, {"a": "a.png"})
    elsewhere = tmp_path / "elsewhere.xml"
    elsewhere.write_text((imp / "Annotations" / "a.xml").read_text().replace("a.png", "b.png"))
    (imp / "Annotations" / "b.xml").symlink_to(elsewhere)
    (imp / "Annotations" / "c.xml").write_text(
        "<annotation><filename>b.png</filename><object><name></name><bndbox><xmin>2</xmin>"
        "<ymin>2</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>"
    )
    with pytest.warns(formats.ImportLeftOut) as record:
        assert formats.import_voc(catalog, imp) == 1
    message = left_out(record)
    assert "b.xml (" in message and "symbolic link" in message
    assert "c.xml object 1 (empty class" in message
    assert catalog.classes() == ["dot"]


def test_voc_without_a_filename_names_the_file(world, catalog):
    imp, _ = world
    voc_folder(imp, {"a": "a.png"})
    (imp / "Annotations" / "a.xml").write_text("<annotation></annotation>")
    with pytest.raises(CatalogError, match=r"a\.xml has no <filename>"):
        formats.import_voc(catalog, imp)
    (imp / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.png</filename><object><name>dot</name></object></annotation>"
    )
    with pytest.raises(CatalogError, match=r"a\.xml is not Pascal VOC XML: every <object>"):
        formats.import_voc(catalog, imp)


# -- YOLO ---------------------------------------------------------------------------------


def yolo_folder(imp, labels: dict[str, str]):
    (imp / "classes.txt").write_text("dot\nring\n")
    (imp / "labels").mkdir()
    for stem, text in labels.items():
        (imp / "labels" / f"{stem}.txt").write_text(text)


def test_yolo_images_and_label_files_linking_outside_are_left_out(world, catalog, tmp_path):
    imp, secret = world
    yolo_folder(imp, {"a": "0 0.5 0.5 0.25 0.25\n", "link": "1 0.5 0.5 0.25 0.25\n"})
    outside = tmp_path / "outside.txt"
    outside.write_text("0 0.5 0.5 0.5 0.5\n")
    (imp / "labels" / "b.txt").symlink_to(outside)
    with pytest.warns(formats.ImportLeftOut) as record:
        assert formats.import_yolo(catalog, imp) == 1
    message = left_out(record)
    assert "images/link.png (" in message and "link.txt is left out too" in message
    assert "labels/b.txt (" in message
    assert catalog.count_images() == 1
    assert sha_of(secret) not in stored_shas(catalog)


def test_yolo_folders_or_classes_linking_outside_are_refused(world, catalog, tmp_path):
    imp, _ = world
    yolo_folder(imp, {"a": "0 0.5 0.5 0.25 0.25\n"})
    (tmp_path / "names.txt").write_text("dot\n")
    (imp / "classes.txt").unlink()
    (imp / "classes.txt").symlink_to(tmp_path / "names.txt")
    with pytest.raises(CatalogError, match="classes.txt.*symbolic link"):
        formats.import_yolo(catalog, imp)
    (imp / "classes.txt").unlink()
    (imp / "classes.txt").write_text("dot\n")
    (imp / "images").rename(tmp_path / "moved")
    (imp / "images").symlink_to(tmp_path / "moved", target_is_directory=True)
    with pytest.raises(CatalogError, match="images.*symbolic link"):
        formats.import_yolo(catalog, imp)
    (imp / "images").unlink()
    with pytest.raises(CatalogError, match="images is missing"):
        formats.import_yolo(catalog, imp)


@pytest.mark.parametrize(
    "text, line, why",
    [
        ("0 0.5 0.5 0.25 0.25\nx 0.5 0.5 0.25 0.25\n", 2, "whole class id"),
        ("0 0.5 zero 0.25 0.25\n", 1, "four numbers"),
        ("\n\n0 0.5\n", 3, "expected 5 values"),
        ("1.5 0.5 0.5 0.25 0.25\n", 1, "whole class id"),
        ("7 0.5 0.5 0.25 0.25\n", 1, "not in classes.txt"),
    ],
)
def test_malformed_yolo_names_the_file_and_line(world, catalog, text, line, why):
    imp, _ = world
    yolo_folder(imp, {"a": text})
    before = unchanged(catalog)
    with pytest.raises(CatalogError, match=rf"a\.txt line {line}: .*{why}") as caught:
        formats.import_yolo(catalog, imp)
    assert "zero" not in str(caught.value)  # the line is described, not quoted
    assert unchanged(catalog) == before


def test_yolo_text_that_is_not_utf8_names_the_file(world, catalog):
    imp, _ = world
    yolo_folder(imp, {"a": "0 0.5 0.5 0.25 0.25\n"})
    (imp / "classes.txt").write_bytes(b"dot\n\xff\xfe\n")
    with pytest.raises(CatalogError, match="classes.txt is not UTF-8"):
        formats.import_yolo(catalog, imp)


# -- class folders and the acquire importers ---------------------------------------------


def test_class_folder_links_leading_outside_are_left_out(world, tmp_path):
    imp, secret = world
    tree = tmp_path / "tree"
    for name, value in (("cat", 40), ("dog", 50)):
        (tree / name).mkdir(parents=True)
        (tree / name / "own.png").write_bytes(png(value))
    (tree / "cat" / "stolen.png").symlink_to(secret)
    (tree / "dog" / "away").symlink_to(secret.parent, target_is_directory=True)
    (tree / "dog" / "alias.png").symlink_to(tree / "cat" / "own.png")  # inside: fine

    cat = Catalog(tmp_path / "c1")
    with pytest.warns(formats.ImportLeftOut) as record:
        formats.import_class_folders(cat, tree)
    message = left_out(record)
    assert "cat/stolen.png (" in message and "dog/away/private.png (" in message
    assert sha_of(secret) not in stored_shas(cat)
    assert len(cat.labels()) == 2  # own.png twice: the alias is the same image

    cat2 = Catalog(tmp_path / "c2")
    report = acquire.ingest_class_folders(cat2, tree, dataset="t")
    skipped = dict(report.skipped)
    assert "symbolic link" in skipped["cat/stolen.png"]
    assert "dog/away/private.png" in skipped
    assert sha_of(secret) not in stored_shas(cat2)
    for c in (cat, cat2):
        c.close()


def test_ingest_csv_skips_rows_that_lead_outside(world, catalog, tmp_path):
    imp, secret = world
    folder = imp / "images"
    (tmp_path / "labels.csv").write_text(
        f"filename,label\na.png,cat\n{secret},dog\nlink.png,dog\n../../secret/private.png,dog\n"
    )
    report = acquire.ingest_csv(catalog, folder, tmp_path / "labels.csv", dataset="flat")
    skipped = dict(report.skipped)
    assert "absolute path" in skipped[str(secret)]
    assert "symbolic link" in skipped["link.png"]
    assert "'..'" in skipped["../../secret/private.png"]
    assert len(report.added) == 1
    assert sha_of(secret) not in stored_shas(catalog)


def test_a_linked_import_folder_is_followed_but_not_its_way_out(world, catalog, tmp_path):
    """The folder the user names may itself be a link (a data set on another disk);
    containment is checked against where it leads."""
    imp, secret = world
    (tmp_path / "alias").symlink_to(imp, target_is_directory=True)
    (imp / "labels.csv").write_text(
        "file,width,height,class\nimages/a.png,16,16,cat\nimages/link.png,16,16,dog\n"
    )
    with pytest.warns(formats.ImportLeftOut, match="line 3"):
        assert formats.import_csv(catalog, tmp_path / "alias" / "labels.csv") == 1
    assert sha_of(secret) not in stored_shas(catalog)
    assert os.path.islink(tmp_path / "alias")
