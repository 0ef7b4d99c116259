"""Download images from URLs or an image-search API into the catalog, robustly.

The web is where a real project gets its images, and it misbehaves: servers time out,
rate-limit (HTTP 429), fail for a moment (5xx), cut a body short, send an HTML error
page with status 200, or call a JPEG ``text/plain``. :func:`download_images` handles
each case the same way every time:

- a bounded pool of worker threads, each with its own ``requests`` session;
- connect and read timeouts, plus a total deadline per file (a server that trickles
  one byte a second never trips a read timeout);
- retries with exponential backoff on connection errors, timeouts, truncated bodies,
  429 and 5xx, honouring ``Retry-After`` (capped, so a server cannot park a worker);
- a size limit checked against ``Content-Length`` and again while reading;
- the bytes decide what a file is: magic bytes must name an image format. A real image
  under a wrong ``Content-Type`` is accepted with a note (the bytes are the truth); an
  HTML page under ``image/png`` is refused;
- every image then passes :func:`helpers.images.check_image_bytes` (full decode,
  decompression-bomb guard, EXIF orientation applied and EXIF (GPS) stripped);
- nothing touches the disk before all checks pass, and the catalog writes each file
  through a temporary file and a rename, named by sha256: no partial file ever, and
  the same image under two URLs is stored once;
- each URL stored is recorded in the catalog's ``downloads`` table, so a re-run skips
  it without a request. Failures are not recorded: a re-run tries them again.

Provenance (URL, author, license, attribution, retrieval time) goes with each image.

The search API is Pexels' (``GET {base_url}/search`` with the key in the
``Authorization`` header). The key is read from an environment variable and is never
printed, logged, stored or put in an error message. The notebook points ``base_url``
at :class:`helpers.acquire.image_api_server.ImageAPIServer`; the real service is
``base_url=PEXELS_API_URL`` with ``PEXELS_API_KEY`` set.
"""

from __future__ import annotations

import email.utils
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import requests

from helpers.catalog import Catalog, CatalogError
from helpers.files import sha256_bytes
from helpers.images import MAX_PIXELS, ImageRejected, check_image_bytes, sniff_format

PEXELS_API_URL = "https://api.pexels.com/v1"
PEXELS_KEY_ENV = "PEXELS_API_KEY"
PEXELS_LICENSE = "Pexels License (free to use, attribution appreciated)"
MAX_DOWNLOAD_BYTES = 20_000_000
RETRY_STATUSES = {429, 500, 502, 503, 504}
USER_AGENT = "raw-images-course/1.0 (+https://github.com/; educational image downloader)"


class DownloadFailed(RuntimeError):
    """One URL could not be stored; the message is the reason shown in the report."""


class SearchError(RuntimeError):
    """The search API call failed; the message says what to do (never the key)."""


@dataclass
class Photo:
    """An image to download and the credit that goes with it."""

    url: str
    author: str | None = None
    license: str | None = None
    attribution: str | None = None
    page_url: str | None = None


@dataclass
class DownloadReport:
    """The outcome for every URL: stored, duplicate, already there, or failed with why."""

    stored: list[dict] = field(default_factory=list)  # url, image_id, sha256
    duplicates: list[dict] = field(default_factory=list)  # url, image_id (same bytes)
    already: list[str] = field(default_factory=list)  # stored by an earlier run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (url, reason)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (url, what we noticed)
    retries: list[tuple[str, str, float]] = field(default_factory=list)  # (url, why, wait s)
    requests: int = 0

    def __str__(self) -> str:
        lines = [
            f"stored {len(self.stored)}, duplicates {len(self.duplicates)}, "
            f"already stored {len(self.already)}, failed {len(self.failed)}, "
            f"retries {len(self.retries)}, HTTP requests {self.requests}"
        ]
        lines += [f"  failed {url}: {reason}" for url, reason in self.failed]
        lines += [f"  note   {url}: {note}" for url, note in self.notes]
        return "\n".join(lines)


# -- URL lists -----------------------------------------------------------------------


def read_url_list(source: str | Path | Iterable[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Clean a list of URLs: ``(urls, problems)``.

    ``source`` is a file path or an iterable of lines. Blank lines and ``#`` comments are
    dropped, duplicates kept once (first position), and anything that is not an http(s)
    URL with a host is returned in ``problems`` with the reason instead of being fetched.
    """
    if isinstance(source, (str, Path)):
        lines = Path(source).read_text(encoding="utf-8").splitlines()
    else:
        lines = list(source)
    urls: list[str] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line in seen:
            problems.append((line, "duplicate line in the list; fetched once"))
            continue
        seen.add(line)
        parsed = urlparse(line)
        if parsed.scheme not in ("http", "https"):
            problems.append(
                (line, f"unsupported scheme {parsed.scheme or '(none)'!r}; use http(s)")
            )
        elif not parsed.netloc:
            problems.append((line, "no host in the URL"))
        else:
            urls.append(line)
    return urls, problems


# -- search API ----------------------------------------------------------------------


def _api_key(env: str) -> str:
    key = os.environ.get(env, "").strip()
    if not key:
        raise SearchError(
            f"The environment variable {env} is not set. Get a free key (for Pexels: "
            f"https://www.pexels.com/api/), then set it outside the notebook, e.g. "
            f"`export {env}=...` before starting Jupyter, so it never lands in a notebook."
        )
    return key


def search_photos(
    query: str,
    n: int = 15,
    *,
    base_url: str = PEXELS_API_URL,
    api_key_env: str = PEXELS_KEY_ENV,
    size: str = "medium",
    timeout: tuple[float, float] = (5.0, 20.0),
) -> list[Photo]:
    """Up to ``n`` photos for ``query`` from a Pexels-style search API, with credits.

    ``size`` picks one of the API's renditions (original, large, medium, small, tiny).
    Pages are followed until ``n`` photos or the last page. The key comes from the
    environment variable ``api_key_env`` and appears nowhere else.
    """
    key = _api_key(api_key_env)
    host = urlparse(base_url).netloc
    photos: list[Photo] = []
    page = 1
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        while len(photos) < n:
            per_page = min(80, n - len(photos))
            try:
                resp = session.get(
                    base_url.rstrip("/") + "/search",
                    params={"query": query, "per_page": per_page, "page": page},
                    headers={"Authorization": key},
                    timeout=timeout,
                )
            except requests.RequestException as exc:
                raise SearchError(
                    f"Could not reach the search API at {base_url} ({type(exc).__name__}). "
                    "Check the network, or run the local server from "
                    "helpers.acquire.image_api_server."
                ) from None
            if resp.status_code in (401, 403):
                raise SearchError(
                    f"The search API refused the key in ${api_key_env} (HTTP "
                    f"{resp.status_code}); check that the variable holds a valid key."
                )
            if resp.status_code != 200:
                raise SearchError(f"The search API answered HTTP {resp.status_code} for {query!r}.")
            payload = resp.json()
            for item in payload.get("photos", []):
                src = item.get("src", {})
                if size not in src:
                    raise SearchError(f"size {size!r} not offered; choose one of {sorted(src)}")
                author = item.get("photographer")
                license = item.get("license") or PEXELS_LICENSE
                photos.append(
                    Photo(
                        url=src[size],
                        author=author,
                        license=license,
                        attribution=f"Photo by {author} on {host}: {item.get('url')}",
                        page_url=item.get("url"),
                    )
                )
            if not payload.get("next_page") or not payload.get("photos"):
                break
            page += 1
    return photos[:n]


# -- downloading ---------------------------------------------------------------------


def _retry_after(resp: requests.Response, cap: float) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an HTTP date)."""
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, (when - datetime.now(timezone.utc)).total_seconds()), cap)


@dataclass
class _Fetcher:
    connect_timeout: float
    read_timeout: float
    total_timeout: float
    max_bytes: int
    retries: int
    backoff: float
    max_wait: float
    sleep: Callable[[float], None]
    report: DownloadReport
    lock: threading.Lock
    local: threading.local = field(default_factory=threading.local)
    sessions: list[requests.Session] = field(default_factory=list)

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            session = requests.Session()
            session.max_redirects = 5  # a redirect loop fails fast as "too many redirects"
            session.headers["User-Agent"] = USER_AGENT
            self.local.session = session
            with self.lock:
                self.sessions.append(session)
        return self.local.session

    def _read(self, resp: requests.Response) -> bytes:
        declared = resp.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise DownloadFailed(
                f"too large: Content-Length {int(declared):,} > limit {self.max_bytes:,} bytes"
            )
        deadline = time.monotonic() + self.total_timeout
        chunks, size = [], 0
        for chunk in resp.iter_content(64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise DownloadFailed(f"too large: more than {self.max_bytes:,} bytes")
            if time.monotonic() > deadline:
                raise requests.Timeout(f"body not complete after {self.total_timeout} s")
            chunks.append(chunk)
        body = b"".join(chunks)
        if declared is not None and declared.isdigit() and len(body) != int(declared):
            raise requests.exceptions.ChunkedEncodingError(
                f"truncated: {len(body)} of {declared} bytes"
            )
        return body

    def fetch(self, url: str) -> tuple[bytes, str]:
        """GET ``url`` with retries; return ``(body, content_type)`` or raise DownloadFailed."""
        reason = ""
        for attempt in range(self.retries + 1):
            wait = self.backoff * 2**attempt
            with self.lock:
                self.report.requests += 1
            try:
                resp = self.session().get(
                    url, stream=True, timeout=(self.connect_timeout, self.read_timeout)
                )
                with resp:
                    if resp.status_code in RETRY_STATUSES:
                        reason = f"HTTP {resp.status_code}"
                        asked = _retry_after(resp, self.max_wait)
                        wait = asked if asked is not None else wait
                    elif resp.status_code != 200:
                        raise DownloadFailed(f"HTTP {resp.status_code} {resp.reason}")
                    else:
                        return self._read(resp), resp.headers.get("Content-Type", "")
            except requests.TooManyRedirects:
                raise DownloadFailed("redirect loop (more than 5 redirects)") from None
            except requests.exceptions.ChunkedEncodingError:
                reason = "body cut short (fewer bytes than Content-Length)"
            except requests.Timeout:
                reason = "timed out"
            except requests.ConnectionError as exc:
                # requests reports a read timeout inside the body as a ConnectionError
                reason = "timed out" if "timed out" in str(exc) else "connection failed"
            except requests.RequestException as exc:
                raise DownloadFailed(f"request failed: {type(exc).__name__}: {exc}") from None
            if attempt < self.retries:
                with self.lock:
                    self.report.retries.append((url, reason, wait))
                self.sleep(wait)
        raise DownloadFailed(f"{reason} (gave up after {self.retries + 1} attempts)")

    def close(self) -> None:
        for session in self.sessions:
            session.close()


def download_images(
    catalog: Catalog,
    items: Iterable[Photo | str],
    *,
    dataset: str = "web",
    workers: int = 8,
    connect_timeout: float = 5.0,
    read_timeout: float = 20.0,
    total_timeout: float = 120.0,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    retries: int = 3,
    backoff: float = 0.5,
    max_wait: float = 30.0,
    strip_exif: bool = True,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadReport:
    """Download ``items`` (URLs or :class:`Photo`) into ``catalog``; never raises per URL.

    Returns a :class:`DownloadReport`. URLs stored by an earlier run are skipped without
    a request; the same bytes under two URLs are stored once (both URLs recorded).
    ``sleep`` is how retries wait (tests pass a recorder instead of waiting).
    """
    from tqdm import tqdm

    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    items = list(items)
    photos: list[Photo] = []
    report = DownloadReport()
    urls, problems = read_url_list(
        [i.url if isinstance(i, Photo) else str(i) for i in items]
    )  # same cleaning as a URL file
    by_url: dict[str, Photo | str] = {}
    for item in items:  # the first item wins, as in the cleaned list
        by_url.setdefault((item.url if isinstance(item, Photo) else str(item)).strip(), item)
    report.failed += [(u, r) for u, r in problems if not r.startswith("duplicate")]
    report.notes += [(u, r) for u, r in problems if r.startswith("duplicate")]
    done = catalog.downloaded_urls()
    for url in urls:
        if url in done:
            report.already.append(url)
        else:
            item = by_url[url]
            photos.append(item if isinstance(item, Photo) else Photo(url))
    lock = threading.Lock()
    fetcher = _Fetcher(
        connect_timeout, read_timeout, total_timeout, max_bytes, retries, backoff, max_wait,
        sleep, report, lock,
    )  # fmt: skip

    def one(photo: Photo) -> None:
        body, content_type = fetcher.fetch(photo.url)
        fmt = sniff_format(body)
        mime = content_type.split(";")[0].strip().lower()
        if fmt is None:
            raise DownloadFailed(
                f"not an image: served as {mime or 'no Content-Type'}, bytes start {body[:15]!r}"
            )
        notes = []
        if not mime.startswith("image/"):
            notes.append(f"served as {mime or 'no Content-Type'} but the bytes are {fmt}; kept")
        try:
            checked = check_image_bytes(
                body, max_bytes=max_bytes, max_pixels=max_pixels, strip_exif=strip_exif
            )
        except ImageRejected as exc:
            raise DownloadFailed(str(exc)) from None
        notes += checked.notes
        retrieved = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            image_id, added = catalog.add_checked_image(
                checked,
                dataset=dataset,
                source="web",
                source_url=photo.url,
                original_name=Path(urlparse(photo.url).path).name or None,
                author=photo.author,
                license=photo.license,
                attribution=photo.attribution,
                retrieved_at=retrieved,
            )
        except CatalogError as exc:
            raise DownloadFailed(str(exc)) from None
        digest = sha256_bytes(checked.data)
        catalog.record_download(photo.url, image_id, digest, retrieved)
        with lock:
            entry = {"url": photo.url, "image_id": image_id, "sha256": digest}
            (report.stored if added else report.duplicates).append(entry)
            report.notes += [(photo.url, n) for n in notes]

    try:
        with (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download") as pool,
            tqdm(total=len(photos), desc="download", unit="img", disable=not progress) as bar,
        ):
            futures = {pool.submit(one, p): p for p in photos}
            for future in as_completed(futures):
                try:
                    future.result()
                except DownloadFailed as exc:
                    with lock:
                        report.failed.append((futures[future].url, str(exc)))
                except Exception as exc:  # one odd URL must not abort the other downloads
                    with lock:
                        report.failed.append(
                            (futures[future].url, f"unexpected {type(exc).__name__}: {exc}")
                        )
                bar.update(1)
    finally:
        fetcher.close()
    return report
