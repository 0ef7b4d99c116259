"""Download images from URLs or an image-search API into the catalog, robustly.

The web is where a real project gets its images, and it misbehaves: servers time out,
rate-limit (HTTP 429), fail for a moment (5xx), cut a body short, send an HTML error
page with status 200, or call a JPEG ``text/plain``. :func:`download_images` handles
each case the same way every time (the HTTP part, one URL's GET with its timeouts,
deadline and retries, is :mod:`helpers.acquire.fetch`):

- a bounded pool of worker threads, each with its own ``requests`` session;
- connect and read timeouts, plus a total deadline per URL that holds whatever the
  server does (a server that trickles one byte a second never trips a read timeout):
  a watchdog thread shuts the URL's socket down when its time is up;
- retries by ``urllib3.util.Retry`` mounted on each session (429 and 5xx, failed
  connections, exponential backoff, ``Retry-After`` in seconds or as a date, capped so
  a server cannot park a worker); what urllib3 cannot see, a body cut short or stalled
  after the headers, is retried here from the same budget;
- Ctrl-C (a notebook's stop button) stops everything within a second or so: queued
  URLs are dropped, open connections cut, and :class:`DownloadInterrupted` carries the
  report; what was stored stays stored;
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

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import requests

from helpers.acquire.fetch import USER_AGENT, DownloadFailed, Fetcher, Stopped
from helpers.catalog import Catalog, CatalogError
from helpers.files import sha256_bytes
from helpers.images import MAX_PIXELS, ImageRejected, check_image_bytes, sniff_format

PEXELS_API_URL = "https://api.pexels.com/v1"
PEXELS_KEY_ENV = "PEXELS_API_KEY"
PEXELS_LICENSE = "Pexels License (free to use, attribution appreciated)"
MAX_DOWNLOAD_BYTES = 20_000_000


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
    interrupted: list[str] = field(default_factory=list)  # not finished: Ctrl-C came first
    requests: int = 0

    def __str__(self) -> str:
        lines = [
            f"stored {len(self.stored)}, duplicates {len(self.duplicates)}, "
            f"already stored {len(self.already)}, failed {len(self.failed)}, "
            f"retries {len(self.retries)}, HTTP requests {self.requests}"
            + (f", interrupted {len(self.interrupted)}" if self.interrupted else "")
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


class DownloadInterrupted(KeyboardInterrupt):
    """A download stopped by Ctrl-C (or a notebook's stop button), with what it did.

    A :class:`KeyboardInterrupt`, so the cell still stops; ``report`` is the
    :class:`DownloadReport` so far. Everything it lists as stored is in the catalog;
    run the same call again to resume (stored URLs are skipped without a request).
    """

    def __init__(self, report: DownloadReport):
        self.report = report
        super().__init__(
            f"download interrupted: stored {len(report.stored)}, failed {len(report.failed)}, "
            f"{len(report.interrupted)} not finished; what was stored is kept. Run the same "
            "call again to resume."
        )


def _as_items(items) -> list[Photo | str]:
    """The items to fetch; a path (``Path``, or a string naming a file) is a URL list.

    A bare string is iterable, so without this check a file name would be fetched
    letter by letter as one-character "URLs".
    """
    if isinstance(items, bytes):
        items = items.decode()
    if isinstance(items, (str, os.PathLike)):
        path = Path(items)
        if path.is_file():
            return path.read_text(encoding="utf-8").splitlines()
        raise TypeError(
            f"download_images got the string {str(items)[:80]!r}, which is not a file: give "
            "a list of URLs (for one URL: [url]) or the path of a text file with one URL a line"
        )
    return list(items)


def download_images(
    catalog: Catalog,
    items: Iterable[Photo | str] | str | os.PathLike,
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
    sleep: Callable[[float], None] | None = None,
) -> DownloadReport:
    """Download ``items`` (URLs or :class:`Photo`) into ``catalog``; never raises per URL.

    ``items`` may also be the path of a URL-list file (see :func:`read_url_list`).
    Returns a :class:`DownloadReport`. URLs stored by an earlier run are skipped without
    a request; the same bytes under two URLs are stored once (both URLs recorded).

    ``total_timeout`` bounds everything one URL may take (connecting, headers, body,
    redirects, retries and their waits), whatever the server does. Ctrl-C (a
    notebook's stop button) cancels the queued URLs, cuts the open connections and
    raises :class:`DownloadInterrupted` (a ``KeyboardInterrupt``) with the report
    within a second or so; what was stored stays stored. ``sleep`` is how retries wait
    (tests pass a recorder instead of waiting); by default a wait ends early at Ctrl-C.
    """
    from tqdm import tqdm

    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    items = _as_items(items)
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
    fetcher = Fetcher(
        connect_timeout, read_timeout, total_timeout, max_bytes, retries, backoff, max_wait,
        sleep, report, lock,
    )  # fmt: skip

    def one(photo: Photo) -> None:
        if fetcher.stop.is_set():
            raise Stopped("interrupted")
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

    def outcome(future, url: str) -> None:
        try:
            future.result()
        except Stopped as exc:
            with lock:
                if str(exc) == "interrupted":
                    report.interrupted.append(url)
                else:
                    report.failed.append((url, str(exc)))
        except DownloadFailed as exc:
            with lock:
                report.failed.append((url, str(exc)))
        except Exception as exc:  # one odd URL must not abort the other downloads
            with lock:
                report.failed.append((url, f"unexpected {type(exc).__name__}: {exc}"))

    watchdog = threading.Thread(target=fetcher.watch, name="download-deadlines", daemon=True)
    watchdog.start()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download")
    futures: dict = {}
    handled: set = set()
    try:
        with tqdm(total=len(photos), desc="download", unit="img", disable=not progress) as bar:
            futures = {pool.submit(one, p): p.url for p in photos}
            for future in as_completed(futures):
                outcome(future, futures[future])
                handled.add(future)
                bar.update(1)
    except KeyboardInterrupt:
        # Stop at once: no new request, queued URLs dropped, open connections cut; the
        # workers then finish within moments (a catalog write in progress completes).
        fetcher.stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        # (cancelled futures never count as done for wait(): leave them out)
        wait([f for f in futures if not f.cancelled()], timeout=2.0)
        for future, url in futures.items():
            if future in handled:
                continue
            if future.done() and not future.cancelled():
                outcome(future, url)
            else:
                report.interrupted.append(url)
        raise DownloadInterrupted(report) from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        fetcher.done.set()
        fetcher.stop.set()
        watchdog.join(timeout=1.0)
        fetcher.close()
    return report
