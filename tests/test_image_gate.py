"""Every way an image enters the catalog passes the one gate in helpers.images: a JPEG
with EXIF orientation 6 and a GPS position comes out upright and without the GPS tags,
whichever import path it took."""

import csv
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from helpers import acquire, formats
from helpers.acquire.download import download_images
from helpers.catalog import Catalog
from helpers.images import FORMATS, IMAGE_EXTENSIONS, check_image_bytes, sniff_format

WIDTH, HEIGHT = 24, 48  # the upright picture: red top half, blue bottom half


def upright() -> Image.Image:
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    pixels[: HEIGHT // 2, :, 0] = 255
    pixels[HEIGHT // 2 :, :, 2] = 255
    return Image.fromarray(pixels)


def rotated_jpeg_with_gps() -> bytes:
    """The upright picture stored lying on its side, as a phone camera writes it."""
    raw = upright().rotate(90, expand=True)  # what orientation 6 turns back upright
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    buf = io.BytesIO()
    raw.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:  # the fixture really carries both
        assert im.getexif()[0x0112] == 6 and im.getexif().get_ifd(0x8825)
    return data


JPEG = rotated_jpeg_with_gps()


def assert_upright_without_gps(catalog: Catalog, image_id: int) -> None:
    row = catalog.image(image_id)
    assert (row["width"], row["height"]) == (WIDTH, HEIGHT)
    with Image.open(catalog.image_path(image_id)) as im:
        exif = im.getexif()
        assert 0x0112 not in exif and not exif.get_ifd(0x8825) and "exif" not in im.info
        pixels = np.asarray(im.convert("RGB")).astype(int)
    top, bottom = pixels[2, WIDTH // 2], pixels[-3, WIDTH // 2]
    assert top[0] > 200 and top[2] < 60, f"top should be red, is {top}"
    assert bottom[2] > 200 and bottom[0] < 60, f"bottom should be blue, is {bottom}"


@pytest.fixture
def catalog(tmp_path):
    with Catalog(tmp_path / "catalog") as cat:
        cat.set_classes(["thing"])
        yield cat


def only_image(catalog: Catalog) -> int:
    (row,) = catalog.images()
    return row["id"]


def test_catalog_bytes_and_files(catalog, tmp_path):
    image_id, _ = catalog.add_image_bytes(JPEG)
    assert_upright_without_gps(catalog, image_id)
    path = tmp_path / "phone.jpg"
    path.write_bytes(JPEG)
    assert catalog.add_image_file(path)[0] == image_id  # same bytes after the gate: stored once


def test_acquire_class_folders(catalog, tmp_path):
    (tmp_path / "tree" / "thing").mkdir(parents=True)
    (tmp_path / "tree" / "thing" / "phone.jpg").write_bytes(JPEG)
    report = acquire.ingest_class_folders(catalog, tmp_path / "tree", dataset="d")
    assert len(report.added) == 1 and "orientation 6" in str(report)
    assert_upright_without_gps(catalog, report.added[0])


def test_acquire_split_folders(catalog, tmp_path):
    (tmp_path / "split" / "train" / "thing").mkdir(parents=True)
    (tmp_path / "split" / "train" / "thing" / "phone.jpg").write_bytes(JPEG)
    report = acquire.ingest_split_folders(catalog, tmp_path / "split", dataset="d")
    assert_upright_without_gps(catalog, report.added[0])


def test_acquire_csv(catalog, tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "phone.jpg").write_bytes(JPEG)
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as fh:
        csv.writer(fh).writerows([["filename", "label"], ["phone.jpg", "thing"]])
    report = acquire.ingest_csv(catalog, tmp_path / "flat", labels, dataset="d")
    assert_upright_without_gps(catalog, report.added[0])


def test_downloads(catalog):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(JPEG)))
            self.end_headers()
            self.wfile.write(JPEG)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/phone.jpg"
        report = download_images(catalog, [url], progress=False, retries=0)
    finally:
        server.shutdown()
    assert len(report.stored) == 1
    assert_upright_without_gps(catalog, report.stored[0]["image_id"])


def exported(tmp_path, writer):
    """An export of one upright picture with a box, whose image file is then swapped
    for the rotated, GPS-tagged JPEG of the same picture (same name, same upright size)."""
    source = Catalog(tmp_path / "source")
    source.set_classes(["thing"])
    buf = io.BytesIO()
    upright().save(buf, format="JPEG", quality=95)
    image_id, _ = source.add_image_bytes(buf.getvalue())
    source.set_label(image_id, "thing", annotator="a")
    source.add_box(image_id, "thing", 2, 2, 20, 40, annotator="a")
    out = writer(source, tmp_path / "export")
    name = source.image_path(image_id).name
    for path in (tmp_path / "export").rglob(name):
        path.write_bytes(JPEG)
    source.close()
    return out


@pytest.mark.parametrize(
    "export, import_",
    [
        (lambda c, p: formats.export_class_folders(c, p, "a"), formats.import_class_folders),
        (lambda c, p: formats.export_csv(c, p / "labels.csv", "a"), formats.import_csv),
        (lambda c, p: formats.export_coco(c, p / "annotations.json", "a"), formats.import_coco),
        (lambda c, p: formats.export_yolo(c, p, "a"), formats.import_yolo),
        (lambda c, p: formats.export_voc(c, p, "a"), formats.import_voc),
    ],
    ids=["class folders", "csv", "coco", "yolo", "voc"],
)
def test_format_importers(catalog, tmp_path, export, import_):
    import_(catalog, exported(tmp_path, export))
    assert_upright_without_gps(catalog, only_image(catalog))


def test_one_table_of_formats():
    assert set(FORMATS) == {"JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF"}
    assert len(IMAGE_EXTENSIONS) == len(set(IMAGE_EXTENSIONS))
    assert sniff_format(JPEG) == "JPEG" and sniff_format(b"<html>") is None


def test_the_gate_decodes_once_and_reports_what_it_changed():
    checked = check_image_bytes(JPEG)
    assert (checked.width, checked.height) == (WIDTH, HEIGHT)
    assert any("orientation 6" in n for n in checked.notes)
    assert any("GPS" in n for n in checked.notes)
