"""Solutions to the exercises of notebooks/01_acquire.ipynb (offline: the local API server)."""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

import numpy as np
from PIL import Image

from helpers import acquire
from helpers.acquire import synthetic
from helpers.acquire.download import download_images, search_photos
from helpers.acquire.image_api_server import ImageAPIServer, camera_exif
from helpers.catalog import Catalog
from helpers.config import course_folder

KEY_ENV = "COURSE_LOCAL_API_KEY"


def _server(port: int = 0, slow_seconds: float = 1) -> ImageAPIServer:
    os.environ[KEY_ENV] = os.environ.get(KEY_ENV) or secrets.token_hex(16)
    return ImageAPIServer(api_key=os.environ[KEY_ENV], slow_seconds=slow_seconds, port=port).start()


def exercise_1(folder: str | os.PathLike, n: int = 6) -> dict[str, int]:
    """A second run with ``FRESH_CATALOG = False`` and a fixed port: what does it add?

    Nothing: every URL is in the catalog's downloads table, so the second run stores
    no image and sends no HTTP request for them. The port must stay fixed because the
    URLs include it: on another port the same pictures have new URLs, and the catalog
    (which keys downloads by URL) would fetch them again, then find the bytes already
    stored (duplicates by sha256). Returns what each run stored and requested.
    """
    catalog = Catalog(course_folder(Path(folder) / "catalog", fresh=True))
    server = _server()
    try:
        photos = search_photos(
            "shapes cat coffee", n=n, base_url=server.api_url, api_key_env=KEY_ENV
        )
        first = download_images(catalog, photos, workers=4, progress=False)
        second = download_images(catalog, photos, workers=4, progress=False)
    finally:
        server.stop()
    return {
        "first_stored": len(first.stored) + len(first.duplicates),
        "first_requests": first.requests,
        "second_stored": len(second.stored) + len(second.duplicates),
        "second_requests": second.requests,
        "second_already": len(second.already),
    }


def exercise_2(folder: str | os.PathLike) -> dict[str, str]:
    """Import your own photos: which were re-encoded, and why?

    Only those whose EXIF asked for a rotation: the catalog stores upright pixels (so
    a box drawn in the browser and the pixels a model sees agree), which needs a new
    encoding. Every other file keeps its bytes (EXIF segments dropped byte-wise). Here
    a "phone photo" with orientation 6 stands in for yours. Returns the report's notes.
    """
    root = course_folder(Path(folder) / "my_photos", fresh=True)
    tree = synthetic.write_class_folders(root / "tree", 8, size=32, seed=1)
    phone = np.zeros((24, 32, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(phone).save(buf, "JPEG", exif=camera_exif(orientation=6))
    (tree / "cross" / "phone.jpg").write_bytes(buf.getvalue())
    catalog = Catalog(course_folder(Path(folder) / "catalog2", fresh=True))
    report = acquire.ingest_class_folders(catalog, tree, dataset="mine")
    return dict(report.notes)


# The notebook's list of URLs: good images, and a server misbehaving in every way it can.
URL_LIST = [
    "/img/scene-100.jpg", "/img/scene-101.png", "/img/scene-102.webp", "/fault/flaky/1.png",
    "/fault/busy/1.png", "/fault/wrong-type", "/fault/same/a.png", "/fault/same/b.png",
    "/fault/exif", "/fault/404", "/fault/html", "/fault/truncated", "/fault/slow",
    "/fault/bomb", "/fault/huge", "/fault/loop/a",
]  # fmt: skip


def exercise_3(folder: str | os.PathLike, max_bytes: int = 10_000) -> dict:
    """``max_bytes=10_000`` on the notebook's URL list: which downloads fail now, and why?

    Those over 10 kB, refused as "too large" as soon as their ``Content-Length`` (or
    the bytes received so far) passes the limit, before anything is written: the flaky
    PNG (24 kB), which arrived before; the bomb (17.6 kB), now refused for its size
    before the bomb guard looks at it; and the huge file, as before. Three in all, and
    9 failures instead of 8; the generated scenes (a few kB each) still arrive. Returns
    ``{url path: reason}`` for the downloads refused as too large, how many failed for
    another reason, and the number stored.
    """
    catalog = Catalog(course_folder(Path(folder) / "catalog3", fresh=True))
    server = _server(slow_seconds=3)  # as in the notebook: past the read timeout of 1 s
    try:
        urls = [server.url(path) for path in URL_LIST]
        report = download_images(
            catalog, urls, workers=8, read_timeout=1.0, retries=2, backoff=0.2,
            max_bytes=max_bytes, progress=False,
        )  # fmt: skip
    finally:
        server.stop()
    too_large = {
        url.split("/", 3)[-1]: reason for url, reason in report.failed if "too large" in reason
    }
    return {
        "failed": too_large,
        "other_failures": len(report.failed) - len(too_large),
        "stored": len(report.stored) + len(report.duplicates),
    }


def exercise_4(n: int = 5) -> list[str]:
    """Search with your own query and check the photographers.

    With a real key, ``search_photos(query, base_url=PEXELS_API_URL,
    api_key_env="PEXELS_API_KEY")``; offline the local server answers the same way.
    Every photo comes with its author and license, which the provenance table keeps.
    Returns the authors found.
    """
    server = _server()
    try:
        photos = search_photos(
            "shapes cat coffee", n=n, base_url=server.api_url, api_key_env=KEY_ENV
        )
    finally:
        server.stop()
    return [p.author for p in photos]


def exercise_5(folder: str | os.PathLike) -> dict[str, list[str]]:
    """Reject a real image served with a wrong ``Content-Type``?

    For: a server that lies about one header may lie about more. Against: the bytes are
    checked anyway (magic bytes, a full decode), and many servers send
    ``application/octet-stream`` or ``text/plain`` for real images; rejecting them loses
    good data for no safety gain. The course keeps them with a note, which is what a
    strict option can act on: drop every download noted for its ``Content-Type``.
    Returns the URLs kept and those a strict option would reject.
    """
    catalog = Catalog(course_folder(Path(folder) / "catalog5", fresh=True))
    server = _server()
    try:
        urls = [server.url("/img/scene-100.jpg"), server.url("/fault/wrong-type")]
        report = download_images(catalog, urls, workers=2, progress=False)
    finally:
        server.stop()
    strict = [url for url, note in report.notes if note.startswith("served as")]
    kept = [row["url"] for row in report.stored if row["url"] not in strict]
    return {"kept": kept, "strict_rejects": strict}
