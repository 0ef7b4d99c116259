"""Hostile servers, huge files, Ctrl-C and locked catalogs, tried as an outside tester would.

Everything runs against real processes and servers on 127.0.0.1 and real files, and
every test is bounded: servers stop when the client hangs up (or after a cap), child
processes are waited for with a timeout and killed if they overstay.
"""

import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.acquire import ingest_class_folders
from helpers.acquire.download import download_images
from helpers.acquire.image_api_server import ImageAPIServer, scene_image
from helpers.catalog import (
    Catalog,
    CatalogBusy,
    CatalogError,
    CatalogLocationError,
    CatalogReadOnly,
    CatalogReadOnlyWarning,
)
from helpers.files import TEMP_PREFIX
from helpers.images import check_image_bytes

ROOT = Path(__file__).resolve().parents[1]
GPS_XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="52,22.08N" '
    b'exif:GPSLongitude="4,53.02E"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


# -- a server that misbehaves slowly -------------------------------------------------


class _Slow(BaseHTTPRequestHandler):
    def log_message(self, *args):
        return

    def _trickle(self, data: bytes, every: float = 0.2, cap: float = 30.0) -> None:
        """Send ``data`` a byte at a time; stop when the client hangs up (or at the cap)."""
        end = time.monotonic() + cap
        for byte in data:
            if time.monotonic() > end:
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(every)

    def do_GET(self):  # noqa: N802
        png = scene_image(3, "PNG")
        try:
            if self.path == "/trickle-body":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self._trickle(png)
            elif self.path == "/trickle-headers":
                self._trickle(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n" + b"X" * 500)
            elif self.path.startswith("/redirect/"):
                step = int(self.path.rsplit("/", 1)[1])
                time.sleep(0.8)
                self.send_response(302)
                self.send_header("Location", f"/redirect/{step + 1}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/retry-after-hour":
                body = b"come back later"
                self.send_response(503)
                self.send_header("Retry-After", "3600")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path.startswith("/xmp/"):
                body = _with_gps_xmp(self.path.rsplit("/", 1)[1].upper())
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        return


@pytest.fixture(scope="module")
def slow_server():
    server = _Server(("127.0.0.1", 0), _Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# Every bound on time below is a hang guard, generous for a loaded 2-core machine; how fast
# a deadline or Ctrl-C is answered is measured by benchmarks/reliability.py, not here.
HANG_S = 60


def _in_thread(fn, limit: float = HANG_S):
    """Run ``fn`` in a thread; its result, or a failure if it is still running at ``limit``."""
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", fn()), daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still running after {limit} s"
    return out["value"]


@pytest.mark.parametrize("path", ["/trickle-body", "/trickle-headers", "/redirect/0"])
def test_the_total_deadline_holds_whatever_the_server_does(slow_server, tmp_path, path):
    catalog = Catalog(tmp_path)
    report = _in_thread(
        lambda: download_images(
            catalog,
            [slow_server + path],
            total_timeout=2,
            read_timeout=1.5,
            retries=0,
            progress=False,
        ),
    )
    assert report.failed and "total deadline" in report.failed[0][1], report.failed
    assert catalog.count_images() == 0


def test_a_retry_wait_past_the_deadline_is_not_waited(slow_server, tmp_path):
    report = _in_thread(
        lambda: download_images(
            Catalog(tmp_path),
            [slow_server + "/retry-after-hour"],
            total_timeout=5,
            retries=3,
            progress=False,
        ),
    )
    assert "past the total deadline" in report.failed[0][1]
    assert not report.retries  # refused before waiting, so no wait is listed


# -- Ctrl-C ----------------------------------------------------------------------------

# The child stands for a learner at a terminal, where Ctrl-C raises KeyboardInterrupt. A
# shell that starts the tests in the background (``&``) hands its children SIGINT
# ignored, so the child restores Python's own handler first.
_DOWNLOAD_CHILD = """
import json, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from helpers.acquire.download import DownloadInterrupted, download_images
from helpers.catalog import Catalog
catalog = Catalog(sys.argv[1])
urls = json.loads(sys.argv[2])
print("ready", flush=True)
try:
    download_images(catalog, urls, workers=4, retries=0, progress=False)
    print(json.dumps({"finished": True}), flush=True)
except DownloadInterrupted as exc:
    r = exc.report
    print(json.dumps({"stored": len(r.stored), "interrupted": len(r.interrupted)}), flush=True)
    sys.exit(130)
"""


def test_ctrl_c_stops_a_download_and_keeps_what_was_stored_whole(slow_server, tmp_path):
    with ImageAPIServer(latency_seconds=0.3) as api:
        urls = [api.url(f"/img/scene-{i}.png") for i in range(300)]
        urls.insert(5, slow_server + "/trickle-body")  # a worker is stuck in a slow body
        child = subprocess.Popen(
            [sys.executable, "-c", _DOWNLOAD_CHILD, str(tmp_path), json.dumps(urls)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout.readline().strip() == "ready"
            end = time.monotonic() + 30
            while sum(api.hits.values()) < 12 and time.monotonic() < end:
                time.sleep(0.05)
            assert sum(api.hits.values()) >= 12, "the child never started downloading"
            child.send_signal(signal.SIGINT)
            out, _ = child.communicate(timeout=HANG_S)  # raises if it is still alive
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(5)
    assert child.returncode == 130
    report = json.loads(out.strip().splitlines()[-1])
    assert report["interrupted"] >= 1 and report["stored"] >= 1  # stopped, not finished
    with sqlite3.connect(tmp_path / "catalog.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT path, sha256 FROM images").fetchall()
        assert db.execute("SELECT COUNT(*) FROM downloads").fetchone()[0] == len(rows)
    assert len(rows) == report["stored"]
    for path, digest in rows:  # every stored file whole
        assert hashlib.sha256((tmp_path / path).read_bytes()).hexdigest() == digest


# -- files too large and decompression bombs -----------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")


def header_only_png(side: int = 20_000) -> bytes:
    """A PNG whose header claims side x side RGB pixels, with almost no image data."""
    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)


def _tree(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 255, (24, 24, 3), np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


_MEMORY_CHILD = """
import json, resource, sys, warnings
warnings.simplefilter("ignore")
from helpers.quiet import tf  # the baseline includes TensorFlow
from helpers import pipeline as pl
from helpers.acquire import ingest_class_folders
from helpers.catalog import Catalog
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
tree = sys.argv[1]
report = ingest_class_folders(Catalog(sys.argv[2]), tree, dataset="d")
after_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
ds = pl.from_folder(tree, image_size=(16, 16), batch_size=4)
n = sum(len(x) for x, _ in ds)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"baseline": baseline, "after_import": after_import, "peak": peak,
    "delivered": n, "imported": len(report.added), "import_skipped": report.skipped,
    "pipeline_skipped": ds.skip_report.skipped}))
"""


@pytest.mark.slow
def test_a_3_gib_file_and_a_bomb_are_refused_without_reading_them(tmp_path):
    """A sparse 3 GiB "PNG" and a real 389 KB PNG of 20,000 x 20,000 pixels, in a class
    folder: importer and pipeline refuse both, and the child's peak memory shows that
    neither was read or decoded."""
    from helpers.acquire.image_api_server import bomb_png

    tree = _tree(tmp_path / "tree")
    big = tree / "cat" / "huge.png"
    big.write_bytes(header_only_png(64))
    subprocess.run(["truncate", "-s", "3G", str(big)], check=True)
    (tree / "dog" / "bomb.png").write_bytes(bomb_png(20_000))
    child = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(tree), str(tmp_path / "catalog")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    out = json.loads(child.stdout.strip().splitlines()[-1])
    mb = 1024 * 1024
    assert out["after_import"] - out["baseline"] < 500 * mb
    assert out["peak"] - out["baseline"] < 500 * mb
    assert out["imported"] == 6 and out["delivered"] == 6
    skipped = dict(out["import_skipped"])
    assert skipped["cat/huge.png"].startswith("file too large: 3,221,225,472 bytes")
    assert skipped["dog/bomb.png"].startswith("decompression bomb guard: 20000x20000")
    pipeline = {Path(p).relative_to(tree).as_posix(): r for p, r in out["pipeline_skipped"].items()}
    assert pipeline == skipped  # the same files, for the same reasons


def test_a_giant_png_is_skipped_by_every_pipeline_source_with_the_reason(tmp_path):
    from helpers import pipeline as pl
    from helpers.pipeline.tfrecords import export_tfrecords

    tree = _tree(tmp_path / "tree")
    bomb = tree / "cat" / "giant.png"
    bomb.write_bytes(header_only_png())
    reason = "decompression bomb guard: 20000x20000 = 400,000,000 pixels"

    with pytest.warns(RuntimeWarning, match="left out 1 file"):
        ds = pl.from_folder(tree, image_size=(16, 16), batch_size=2)
    assert sum(len(x) for x, _ in ds) == 6
    assert ds.skip_report.skipped[str(bomb)].startswith(reason)

    own = pl.ImageList([str(bomb), str(tree / "dog" / "0.png")], [0, 1], ["cat", "dog"])
    with pytest.warns(RuntimeWarning, match="left out 1 file"):
        ds = pl.build_dataset(own, image_size=(16, 16), batch_size=2, shuffle=False)
    assert sum(len(x) for x, _ in ds) == 1
    assert ds.skip_report.skipped[str(bomb)].startswith(reason)

    with pytest.raises(CatalogError, match=reason):  # nor can it enter a catalog
        Catalog(tmp_path / "catalog").add_image_file(bomb)

    manifest = export_tfrecords(own, tmp_path / "records", shards=1)
    assert manifest["skipped"][str(bomb)].endswith(reason + " > limit 89,478,485")
    with pytest.raises(pl.PipelineError, match=reason):
        pl.load_image(bomb)
    with pytest.raises(ValueError, match=reason):
        pl.pillow_decode(bomb.read_bytes())


# -- one folder reader ---------------------------------------------------------------


def test_importer_and_pipeline_see_the_same_images_and_report_the_same_left_out(tmp_path):
    from helpers import pipeline as pl

    tree = _tree(tmp_path / "tree", n=2)
    (tree / "cat" / "nested" / "deeper").mkdir(parents=True)
    Image.new("RGB", (20, 20), "red").save(tree / "cat" / "nested" / "inner.jpg")
    Image.new("RGB", (20, 20), "blue").save(tree / "cat" / "nested" / "deeper" / "x.png")
    (tree / "cat" / "gone.png").symlink_to(tree / "nowhere.png")
    (tree / "dog" / "loop").symlink_to(tree / "dog")
    (tree / "dog" / "notes.txt").write_text("not an image")
    (tree / "stray.png").write_bytes((tree / "dog" / "0.png").read_bytes())
    (tree / "cat" / "giant.png").write_bytes(header_only_png())

    with pytest.warns(RuntimeWarning, match="left out"):
        ds = pl.from_folder(tree, image_size=(16, 16), batch_size=2, shuffle=False)
    listed = pl.list_folder(tree)
    catalog = Catalog(tmp_path / "catalog")
    report = ingest_class_folders(catalog, tree, dataset="d")

    imported = {row["original_name"] for row in catalog.images()}
    trained = {Path(p).relative_to(tree).as_posix() for p in listed.paths}
    assert imported == trained
    assert {"cat/nested/inner.jpg", "cat/nested/deeper/x.png"} <= trained
    assert sum(len(x) for x, _ in ds) == len(trained) == 6
    skipped = dict(report.skipped)
    pipeline = {Path(p).relative_to(tree).as_posix(): r for p, r in ds.skip_report.skipped.items()}
    assert pipeline == skipped
    assert skipped["cat/gone.png"] == "dangling symbolic link"
    assert skipped["dog/loop"].startswith("symbolic link loop")
    assert skipped["stray.png"] == "not inside a class folder"
    assert skipped["dog/notes.txt"].startswith("not an image file name")
    assert skipped["cat/giant.png"].startswith("decompression bomb guard")


# -- URL lists -------------------------------------------------------------------------


def test_download_images_reads_a_url_list_file_and_refuses_a_bare_string(tmp_path):
    with ImageAPIServer() as api:
        lines = ["# two scenes", api.url("/img/scene-1.png"), "", api.url("/img/scene-2.png")]
        (tmp_path / "urls.txt").write_text("\n".join(lines))
        catalog = Catalog(tmp_path / "catalog")
        report = download_images(catalog, str(tmp_path / "urls.txt"), progress=False)
        assert len(report.stored) == 2 and not report.failed
        report = download_images(catalog, tmp_path / "urls.txt", progress=False)
        assert len(report.already) == 2
        with pytest.raises(TypeError, match="not a file: give a list of URLs"):
            download_images(catalog, "urls.txt", progress=False)
        with pytest.raises(TypeError, match="for one URL: \\[url\\]"):
            download_images(catalog, api.url("/img/scene-3.png"), progress=False)


# -- location metadata -------------------------------------------------------------------


def _with_gps_xmp(fmt: str) -> bytes:
    """An image whose only GPS position is in an XMP packet (no EXIF block at all)."""
    pixels = np.random.default_rng(1).integers(0, 255, (24, 32, 3), np.uint8)
    buf = io.BytesIO()
    if fmt == "PNG":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", GPS_XMP.decode())
        Image.fromarray(pixels).save(buf, format="PNG", pnginfo=info)
    elif fmt == "WEBP":
        Image.fromarray(pixels).save(buf, format="WEBP", lossless=True, xmp=GPS_XMP)
    else:
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90, xmp=GPS_XMP)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_gps_in_xmp_is_stripped_by_the_importer_and_the_downloader(slow_server, tmp_path, fmt):
    data = _with_gps_xmp(fmt)
    assert b"GPSLatitude" in data and b"exif" not in Image.open(io.BytesIO(data)).info
    checked = check_image_bytes(data)
    assert "stripped XMP (including GPS position)" in checked.notes
    (tmp_path / "tree" / "a").mkdir(parents=True)
    (tmp_path / "tree" / "b").mkdir()
    (tmp_path / "tree" / "a" / f"x.{fmt.lower()}").write_bytes(data)
    Image.new("RGB", (16, 16)).save(tmp_path / "tree" / "b" / "y.gif")
    catalog = Catalog(tmp_path / "catalog")
    ingest_class_folders(catalog, tmp_path / "tree", dataset="folder")
    download_images(catalog, [f"{slow_server}/xmp/{fmt.lower()}"], progress=False)
    stored = [catalog.root / row["path"] for row in catalog.images() if row["format"] == fmt]
    assert len(stored) == 1  # the same bytes after stripping: stored once, from both
    kept = stored[0].read_bytes()
    assert b"GPSLatitude" not in kept and b"ns.adobe.com/xap" not in kept
    with Image.open(io.BytesIO(data)) as a, Image.open(io.BytesIO(kept)) as b:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # not a pixel changed


# -- the catalog -------------------------------------------------------------------------

_KILLED_BETWEEN_WRITE_AND_RENAME = """
import os, signal, sys
import numpy as np
from helpers.catalog import Catalog
catalog = Catalog(sys.argv[1])
os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # dies right before the rename
catalog.add_image_array(np.full((16, 16), 7, np.uint8))
"""


def test_a_stale_temporary_left_by_a_killed_process_is_removed_on_open(tmp_path):
    Catalog(tmp_path).close()
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_BETWEEN_WRITE_AND_RENAME, str(tmp_path)],
        cwd=ROOT,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL
    (stale,) = (tmp_path / "images").rglob(TEMP_PREFIX + "*")
    fresh = stale.with_name(TEMP_PREFIX + "in-progress.png")
    fresh.write_bytes(b"another process is writing this")
    Catalog(tmp_path).close()
    assert stale.exists()  # under a minute old: could be a write in progress
    old = time.time() - 120
    os.utime(stale, (old, old))
    catalog = Catalog(tmp_path)
    assert catalog.removed_temporaries == [stale]
    assert not stale.exists() and fresh.exists()


def test_a_catalog_path_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "data").write_text("oops")
    with pytest.raises(CatalogLocationError, match="is a file .* Give a folder path"):
        Catalog(tmp_path / "data")
    with pytest.raises(CatalogLocationError, match="is a file"):
        Catalog(tmp_path / "data" / "inner")


def _read_only_view(source: Path, view: Path):
    """``source`` seen through a read-only path: chmod for a user, a read-only bind mount
    for root (who may write whatever the permissions say)."""
    if os.geteuid() != 0:
        for path in [*source.rglob("*"), source]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        return source, lambda: [p.chmod(0o755) for p in [source, *source.rglob("*")]]
    view.mkdir()
    mount = subprocess.run(["mount", "--bind", str(source), str(view)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip("running as root without the right to mount: no folder is read-only")
    subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
    return view, lambda: subprocess.run(["umount", "-l", str(view)], check=True)


def test_a_read_only_catalog_opens_for_reading_and_refuses_writes_with_a_message(tmp_path):
    catalog = Catalog(tmp_path / "catalog")
    catalog.set_classes(["a", "b"])
    image_id, _ = catalog.add_image_array(np.full((16, 16), 3, np.uint8))
    catalog.set_label(image_id, "b")
    catalog.close()
    root, undo = _read_only_view(tmp_path / "catalog", tmp_path / "view")
    try:
        with pytest.warns(CatalogReadOnlyWarning, match="open for reading only"):
            catalog = Catalog(root)
        assert catalog.read_only and catalog.count_images() == 1
        assert catalog.labels()[0]["class_name"] == "b"
        with pytest.raises(CatalogReadOnly, match="reading only .*chmod u\\+w"):
            catalog.set_label(image_id, "a")
        with pytest.raises(CatalogReadOnly, match="reading only"):
            catalog.add_image_array(np.full((16, 16), 9, np.uint8))
        catalog.close()
        with pytest.raises(CatalogReadOnly, match="cannot create a catalog .* not writable"):
            Catalog(root / "images")  # no catalog there, and none can be made
    finally:
        undo()


_LOCK_HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(60)
"""


def test_a_write_lock_held_by_another_process_is_a_clear_error(tmp_path):
    catalog = Catalog(tmp_path, busy_timeout=0.5)
    catalog.set_classes(["a"])
    image_id, _ = catalog.add_image_array(np.full((16, 16), 1, np.uint8))
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(tmp_path / "catalog.sqlite")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        error = _in_thread(lambda: _raises(lambda: catalog.set_label(image_id, "a")))
        assert isinstance(error, CatalogBusy), error
        assert "another process" in str(error) and "Nothing was saved; try again" in str(error)
        assert catalog.labels() == []  # reading still works while the lock is held
    finally:
        holder.kill()
        holder.wait(10)
    catalog.set_label(image_id, "a")  # the lock gone, the same call succeeds
    assert catalog.labels()[0]["class_name"] == "a"


def _raises(fn):
    """Run ``fn``; return the exception it raised (a thread cannot raise into the test)."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - handed back to the test thread
        return exc
    return None
