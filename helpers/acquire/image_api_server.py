"""A local image-search API in the style of Pexels, plus fault routes, on 127.0.0.1.

Why: the course runs offline, yet learners should exercise the real download code
path: an authenticated search call, then image downloads with retries, timeouts and
checks. This server answers exactly like the Pexels API (``GET /v1/search`` with an
``Authorization`` header, JSON ``photos`` with ``photographer``, ``url`` and ``src``),
so :func:`helpers.acquire.download.search_photos` talks to it or to the real service by
changing one parameter. Its fault routes misbehave on purpose for the tests and the
notebook: 404, 500 then 200, 429 with ``Retry-After``, a slow body, a truncated body,
an HTML page, a mislabelled image, a decompression bomb, an oversized file and a
redirect loop.

Use it as a context manager; it listens on a free port in a background thread::

    with ImageAPIServer(api_key="...") as server:
        server.api_url        # http://127.0.0.1:PORT/v1
        server.url("/img/scene-0.png")

Photos served: four scikit-image sample photos (public domain or CC0, credited as
their authors are), generated scenes from :mod:`helpers.acquire.synthetic`, and, given
``photos`` (a class-per-folder tree, such as the course's shipped target photos from
:func:`helpers.acquire.photos.photo_tree`), real photos for a query that names one of
its classes. Like a real search engine's, a share of those answers (``wrong_share``)
are photos of another class; :meth:`ImageAPIServer.true_class` tells which, for
measuring, never the client.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
from PIL import Image

# name, loader in skimage.data, photographer, license, tags
SAMPLE_PHOTOS = [
    ("chelsea", "chelsea", "Stefan van der Walt", "CC0", "cat animal photo"),
    ("coffee", "coffee", "Rachel Michetti", "CC0", "coffee cup food photo"),
    ("astronaut", "astronaut", "NASA (Eileen Collins portrait)", "public domain", "person photo"),
    ("rocket", "rocket", "SpaceX", "CC0", "rocket launch photo"),
]
SIZES = {"original": None, "large": 640, "medium": 350, "small": 130, "tiny": 64}
GPS_TAG = 0x8825
# Fault routes serve scenes from this index on, so they never equal a gallery photo.
_FAULT = 1_000_000


def _jpeg(image: Image.Image, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    options = {"quality": 90}
    if exif is not None:
        options["exif"] = exif
    image.convert("RGB").save(buf, format="JPEG", **options)
    return buf.getvalue()


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({"quality": 90} if fmt != "PNG" else {}))
    return buf.getvalue()


def camera_exif(orientation: int = 1) -> bytes:
    """EXIF as a phone writes it: camera model, orientation and a GPS position."""
    exif = Image.Exif()
    exif[0x010F] = "Course Phone"  # Make
    exif[0x0112] = orientation
    exif[GPS_TAG] = {1: "N", 2: (52.0, 22.0, 5.0), 3: "E", 4: (4.0, 53.0, 1.0)}
    return exif.tobytes()


@lru_cache(maxsize=64)
def sample_photo(name: str, size: str = "original") -> bytes:
    """A sample photo as JPEG; the original carries EXIF with GPS, as phone photos do."""
    import skimage.data

    loader = {p[0]: p[1] for p in SAMPLE_PHOTOS}[name]
    image = Image.fromarray(getattr(skimage.data, loader)())
    limit = SIZES[size]
    if limit is None:
        return _jpeg(image, camera_exif())
    image.thumbnail((limit, limit))
    return _jpeg(image)


@lru_cache(maxsize=256)
def scene_image(index: int, fmt: str = "PNG", size: int = 96) -> bytes:
    """Generated scene ``index`` (deterministic) encoded as PNG, JPEG or WEBP."""
    from helpers.acquire.synthetic import make_scene

    image, _ = make_scene(np.random.default_rng(1000 + index), size=size)
    return _encode(image, fmt)


@lru_cache(maxsize=1)
def bomb_png(side: int = 12_000) -> bytes:
    """A valid PNG of side x side 1-bit pixels, all zero: tiny on disk, huge decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])  # depth 1, grey
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def gallery(n_scenes: int) -> list[dict]:
    """Every photo the server knows, in Pexels' JSON shape (``src`` paths relative)."""
    photos = []
    for i, (name, _, author, license, tags) in enumerate(SAMPLE_PHOTOS, start=1):
        photos.append(
            {
                "id": i,
                "alt": f"{name} ({tags.split()[0]})",
                "photographer": author,
                "photographer_url": f"/photographers/{i}",
                "url": f"/photos/{name}",
                "license": license,
                "tags": tags,
                "src": {s: f"/img/{name}-{s}.jpg" for s in SIZES},
            }
        )
    for j in range(n_scenes):
        photos.append(
            {
                "id": 100 + j,
                "alt": f"generated shapes scene {j}",
                "photographer": "helpers.acquire.synthetic",
                "photographer_url": "/photographers/synthetic",
                "url": f"/photos/scene-{j}",
                "license": "CC0",
                "tags": "shapes scene generated",
                "src": {s: f"/img/scene-{j}.png" for s in SIZES},
            }
        )
    return photos


PHOTO_CREDIT = "CIFAR-10 (Krizhevsky, 2009)"
PHOTO_LICENSE = "research and teaching; cite Krizhevsky 2009"


@dataclass(frozen=True)
class PhotoGallery:
    """Real photos the server answers class-name queries with: the Pexels-shaped
    entries, the file behind each ``/img/photo-<k>.jpg``, and each entry's true class."""

    entries: list[dict]
    files: dict[str, Path]
    truth: dict[str, str]  # "/photos/photo-<k>" -> the class the photo shows


def photo_gallery(root: str | Path, per_class: int, wrong_share: float) -> PhotoGallery:
    """``per_class`` answers for each class folder of ``root`` (sorted file names), in
    which every ``round(1 / wrong_share)``-th answer is a photo of the next class, tagged
    with the query's class as a search engine's mistake would be. The photos that stand
    in come from past the next class's own answers, so no photo is answered twice."""
    if not 0 <= wrong_share < 1:
        raise ValueError(f"wrong_share must be in [0, 1), not {wrong_share}")
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {c: sorted(root.joinpath(c).glob("*.jpg")) for c in classes}
    every = round(1 / wrong_share) if wrong_share else 0
    answers = PhotoGallery([], {}, {})
    for ci, cls in enumerate(classes):
        other = classes[(ci + 1) % len(classes)]
        for j in range(min(per_class, len(files[cls]))):
            wrong = every and (j + 1) % every == 0 and per_class + j < len(files[other])
            shown, path = (other, files[other][per_class + j]) if wrong else (cls, files[cls][j])
            k = len(answers.entries)
            answers.entries.append(
                {
                    "id": 10_000 + k,
                    "alt": f"{cls} photo",
                    "photographer": PHOTO_CREDIT,
                    "photographer_url": "/photographers/cifar10",
                    "url": f"/photos/photo-{k}",
                    "license": PHOTO_LICENSE,
                    "tags": f"{cls} photo",
                    "src": {size: f"/img/photo-{k}.jpg" for size in SIZES},
                }
            )
            answers.files[f"photo-{k}"] = path
            answers.truth[f"/photos/photo-{k}"] = shown
    return answers


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format, *args):  # quiet: the tests and notebook read reports
        return

    def _send(self, status: int, body: bytes, content_type: str, headers=None, length=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def do_GET(self):  # noqa: N802 (the http.server name)
        parsed = urlparse(self.path)
        path = parsed.path
        with self.server.lock:
            self.server.hits[path] += 1
            hit = self.server.hits[path]
        try:
            if path == "/v1/search":
                return self._search(parse_qs(parsed.query))
            if path.startswith("/img/"):
                time.sleep(self.server.latency_seconds)
                return self._image(path[len("/img/") :])
            if path.startswith("/fault/"):
                return self._fault(path[len("/fault/") :], hit)
            self._json(404, {"error": f"no route {path}"})
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up (a timeout test); nothing to answer

    def _search(self, query: dict) -> None:
        if self.headers.get("Authorization") != self.server.api_key:
            return self._json(401, {"error": "Unauthorized: missing or wrong API key"})
        words = query.get("query", [""])[0].lower().split()
        if not words:
            return self._json(400, {"error": "query is required"})
        per_page = max(1, min(80, int(query.get("per_page", ["15"])[0])))
        page = max(1, int(query.get("page", ["1"])[0]))
        base = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
        known = gallery(self.server.n_scenes) + self.server.photos.entries
        found = [p for p in known if set(words) & set(p["tags"].split())]
        chunk = found[(page - 1) * per_page : page * per_page]
        photos = [
            {
                **{k: v for k, v in p.items() if k != "tags"},
                "url": base + p["url"],
                "photographer_url": base + p["photographer_url"],
                "src": {s: base + u for s, u in p["src"].items()},
            }
            for p in chunk
        ]
        payload = {
            "page": page,
            "per_page": per_page,
            "total_results": len(found),
            "photos": photos,
        }
        if page * per_page < len(found):
            payload["next_page"] = (
                f"{base}/v1/search?query={'+'.join(words)}&per_page={per_page}&page={page + 1}"
            )
        self._json(200, payload)

    def _image(self, name: str) -> None:
        stem, _, ext = name.rpartition(".")
        if stem.startswith("scene-") and ext in ("png", "jpg", "webp"):
            index = stem[len("scene-") :]
            if index.isdigit():
                fmt = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[ext]
                return self._send(200, scene_image(int(index), fmt), f"image/{fmt.lower()}")
        if ext == "jpg" and stem in self.server.photos.files:  # one rendition: 32x32 photos
            return self._send(200, self.server.photos.files[stem].read_bytes(), "image/jpeg")
        photo, _, size = stem.rpartition("-")
        if ext == "jpg" and photo in {p[0] for p in SAMPLE_PHOTOS} and size in SIZES:
            return self._send(200, sample_photo(photo, size), "image/jpeg")
        self._json(404, {"error": f"no image {name}"})

    def _fault(self, name: str, hit: int) -> None:
        kind, _, key = name.partition("/")
        png = scene_image(_FAULT + 7, "PNG")
        if kind == "404":
            return self._json(404, {"error": "not found"})
        if kind == "flaky":  # 500 on the first request for this path, then the image
            if hit == 1:
                return self._json(500, {"error": "internal error, try again"})
            return self._send(200, scene_image(_FAULT + 8, "PNG"), "image/png")
        if kind == "busy":  # 429 with Retry-After on the first request, then the image
            if hit == 1:
                return self._send(429, b"slow down", "text/plain", {"Retry-After": "1"})
            return self._send(200, scene_image(_FAULT + 9, "PNG"), "image/png")
        if kind == "always500":
            return self._json(503, {"error": "unavailable"})
        if kind == "slow":  # headers at once, then the body stalls past any sane timeout
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png[:100])
            self.wfile.flush()
            time.sleep(self.server.slow_seconds)
            self.wfile.write(png[100:])
            return
        if kind == "truncated":  # promises the whole file, sends half, hangs up
            return self._send(200, png[: len(png) // 2], "image/png", length=len(png))
        if kind == "html":
            page = b"<!doctype html><html><body><h1>Not an image</h1></body></html>"
            return self._send(200, page, "text/html; charset=utf-8")
        if kind == "wrong-type":  # a real JPEG served as text/plain
            return self._send(200, scene_image(_FAULT + 10, "JPEG"), "text/plain")
        if kind == "bomb":
            return self._send(200, bomb_png(), "image/png")
        if kind == "huge":  # honest Content-Length over the client's limit
            body = scene_image(_FAULT + 11, "PNG") + b"\x00" * self.server.huge_bytes
            return self._send(200, body, "image/png")
        if kind == "huge-stream":  # no Content-Length: only counting the bytes catches it
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(scene_image(_FAULT + 11, "PNG") + b"\x00" * self.server.huge_bytes)
            return
        if kind == "loop":  # a -> b -> a ...
            target = "/fault/loop/b" if key != "b" else "/fault/loop/a"
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if kind == "same":  # the same bytes under any number of URLs
            return self._send(200, scene_image(_FAULT + 12, "PNG"), "image/png")
        if kind == "exif":  # a phone photo: rotated 90 degrees by EXIF, with GPS
            image = Image.fromarray(
                np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)
            )
            return self._send(200, _jpeg(image, camera_exif(orientation=6)), "image/jpeg")
        self._json(404, {"error": f"no fault route {name}"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api_key: str
    n_scenes: int
    slow_seconds: float
    huge_bytes: int
    latency_seconds: float
    photos: PhotoGallery
    hits: Counter
    lock: threading.Lock

    def handle_error(self, request, client_address):  # a client hanging up is expected
        return


class ImageAPIServer:
    """The local API on 127.0.0.1 and a free port, served from a background thread.

    ``api_key`` is what the search endpoint expects in ``Authorization``; ``hits``
    counts requests per path, so tests can check that a re-run fetched nothing.
    ``port`` 0 takes any free port; a fixed one keeps URLs stable across runs, so a
    re-run resumes downloads. ``latency_seconds`` delays each image answer, as a
    distant server would, so the benchmark shows what concurrent workers buy.
    ``photos`` (a class-per-folder tree) adds up to ``per_class`` real photos for each
    of its classes, ``wrong_share`` of them of another class (see :func:`photo_gallery`).
    """

    def __init__(
        self,
        api_key: str = "local-demo-key",
        *,
        n_scenes: int = 24,
        slow_seconds: float = 5.0,
        huge_bytes: int = 3_000_000,
        latency_seconds: float = 0.0,
        port: int = 0,
        photos: str | Path | None = None,
        per_class: int = 60,
        wrong_share: float = 0.1,
    ):
        answers = photo_gallery(photos, per_class, wrong_share) if photos else None
        self._server = _Server(("127.0.0.1", port), _Handler)  # binds: after every check
        self._server.photos = answers or PhotoGallery([], {}, {})
        self._server.api_key = api_key
        self._server.n_scenes = n_scenes
        self._server.slow_seconds = slow_seconds
        self._server.huge_bytes = huge_bytes
        self._server.latency_seconds = latency_seconds
        self._server.hits = Counter()
        self._server.lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        """Pass this as ``base_url`` to :func:`helpers.acquire.download.search_photos`."""
        return self.base_url + "/v1"

    @property
    def hits(self) -> Counter:
        with self._server.lock:
            return Counter(self._server.hits)

    def true_class(self, page_url: str) -> str | None:
        """The class a real photo's page (``Photo.page_url``) shows, whatever the query
        that found it; None for anything else. For measuring the search's mistakes."""
        return self._server.photos.truth.get(urlparse(page_url).path)

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> ImageAPIServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="image-api-server", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> ImageAPIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:  # never shows the key
        return f"ImageAPIServer({self.base_url})"
