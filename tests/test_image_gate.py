"""Every way an image enters the catalog passes the one gate in helpers.images: a JPEG
with EXIF orientation 6 and a GPS position comes out upright and without the GPS tags,
whichever import path it took. Every image mode the gate accepts comes out as the
training pipeline decodes it (16-bit scaled, never clipped; alpha over white), the others
are refused with the reason, and special files are refused by stat before anything opens
them."""

import csv
import io
import os
import re
import socket
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import acquire, formats
from helpers.acquire.download import download_images
from helpers.catalog import Catalog
from helpers.images import (
    FORMATS,
    IMAGE_EXTENSIONS,
    ImageRejected,
    check_image_bytes,
    decode_pixels,
    pixels,
    sniff_format,
    special_file_problem,
)

ROOT = Path(__file__).resolve().parent.parent

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


# -- every mode the gate accepts, scaled as training scales it; special files by stat ----

H, W = 12, 10
_RNG = np.random.default_rng(7)
_RGB = _RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
_ALPHA = _RNG.integers(0, 256, (H, W), dtype=np.uint8)
_WIDE = _RNG.integers(0, 65536, (H, W))


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


MODE_FILES = {
    "1": lambda: _encoded(Image.fromarray(_RGB[..., 0] > 128), "PNG"),
    "L": lambda: _encoded(Image.fromarray(_RGB[..., 0]), "PNG"),
    "L with tRNS": lambda: _encoded(Image.fromarray(_RGB[..., 0]), "PNG", transparency=7),
    "LA": lambda: _encoded(Image.fromarray(np.dstack([_RGB[..., 0], _ALPHA]), "LA"), "PNG"),
    "P": lambda: _encoded(Image.fromarray(_RGB).quantize(16), "PNG"),
    "P with tRNS": lambda: _encoded(Image.fromarray(_RGB).quantize(16), "PNG", transparency=3),
    "RGB": lambda: _encoded(Image.fromarray(_RGB), "PNG"),
    "RGBA": lambda: _encoded(Image.fromarray(np.dstack([_RGB, _ALPHA])), "PNG"),
    "RGBA WebP": lambda: _encoded(
        Image.fromarray(np.dstack([_RGB, _ALPHA])), "WEBP", lossless=True
    ),
    "CMYK": lambda: _encoded(Image.fromarray(_RGB).convert("CMYK"), "TIFF"),
    "I;16 PNG": lambda: _encoded(Image.fromarray(_WIDE.astype(np.uint16)), "PNG"),
    "I;16B TIFF": lambda: _encoded(Image.fromarray(_WIDE.astype(">u2")), "TIFF"),
    "I TIFF": lambda: _encoded(Image.fromarray(_WIDE.astype(np.int32)), "TIFF"),
}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list(MODE_FILES))
def test_every_accepted_mode_gives_the_pixels_training_sees(name, channels):
    from helpers.pipeline.decode import decode
    from helpers.quiet import tf

    checked = check_image_bytes(MODE_FILES[name]())
    mine = decode_pixels(checked.data, channels)
    theirs = decode(tf.constant(checked.data), channels).numpy()
    assert mine.dtype == np.uint8 and mine.shape == (H, W, channels)
    # TensorFlow takes a 16-bit PNG's high byte (v // 256), the gate rounds v / 257.
    assert np.abs(mine.astype(int) - theirs.astype(int)).max() <= 1, checked.mode


def test_a_16_bit_png_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    checked = check_image_bytes(_encoded(Image.fromarray(ramp), "PNG"))
    assert checked.mode == "I;16"
    gray = decode_pixels(checked.data, 1)[..., 0]
    assert np.array_equal(gray, np.round(ramp / 257).astype(np.uint8))
    assert (gray == 255).mean() < 0.01  # clipped, 99.5% of it would be white
    assert np.array_equal(decode_pixels(checked.data, 3), np.repeat(gray[..., None], 3, -1))


def test_alpha_is_composited_over_white_not_dropped():
    clear = np.zeros((H, W, 4), np.uint8)  # transparent black: shown white, as in training
    pixels = decode_pixels(_encoded(Image.fromarray(clear), "PNG"), 3)
    assert (pixels == 255).all()


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (Image.fromarray(np.full((H, W), 0.5, np.float32)), "unsupported mode 'F': floating-point"),
        (Image.fromarray(np.full((H, W), -5, np.int32)), "from -5 to -5"),
        (Image.fromarray(np.full((H, W), 70_000, np.int32)), "only 0..65535"),
    ],
    ids=["F", "I negative", "I past 16 bits"],
)
def test_modes_without_one_right_scaling_are_refused_with_the_reason(image, reason):
    data = _encoded(image, "TIFF")
    with pytest.raises(ImageRejected, match=re.escape(reason)):
        check_image_bytes(data)
    with Image.open(io.BytesIO(data)) as opened, pytest.raises(ImageRejected, match="convert"):
        pixels(opened, 3)


def _special_files(tmp_path):
    """A FIFO, a folder, a character device and a socket, each named like an image."""
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.png"
    folder.mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s.png"))
    return sock, {
        "FIFO": fifo,
        "folder": folder,
        "character device": Path(os.devnull),
        "socket": tmp_path / "s.png",
    }


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and sockets are POSIX")
def test_special_files_are_refused_by_stat_before_they_are_opened(tmp_path):
    sock, specials = _special_files(tmp_path)
    try:
        # In a child process with a generous bound: a regression blocks on the FIFO.
        code = (
            "import sys\n"
            "from helpers.images import ImageRejected, image_header, read_image_file, "
            "screen_image_file\n"
            "for path in sys.argv[1:]:\n"
            "    for read in (read_image_file, image_header):\n"
            "        try:\n"
            "            read(path)\n"
            "        except ImageRejected as exc:\n"
            "            print(path, '|', exc)\n"
            "    print(path, '|', screen_image_file(path))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, *map(str, specials.values())],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
    finally:
        sock.close()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for kind, path in specials.items():
        said = [line for line in lines if line.startswith(f"{path} |")]
        assert len(said) == 3 and all(f"not a regular file but a {kind}" in s for s in said), said


def test_the_special_file_reason_names_each_kind():
    assert special_file_problem(stat.S_IFREG | 0o644) is None
    assert "FIFO" in special_file_problem(stat.S_IFIFO | 0o644)
    assert "block device" in special_file_problem(stat.S_IFBLK | 0o644)
    assert "character device" in special_file_problem(os.stat(os.devnull).st_mode)
