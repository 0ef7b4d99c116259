"""Download images from URLs or an image-search API into the catalog, robustly.

The web is where a real project gets its images, and it misbehaves: servers time out,
rate-limit (HTTP 429), fail for a moment (5xx), cut a body short, send an HTML error
page with status 200, or call a JPEG ``text/plain``. :func:`download_images` handles
each case the same way every time:

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
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import requests
import urllib3
import urllib3.connection
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

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


class _Stop(Exception):
    """Raised inside a worker when its URL's deadline has passed or the run was stopped."""


class _Attempt:
    """What the worker thread fetching one URL shares with the watchdog and urllib3.

    The deadline cannot be a socket timeout: those bound one ``recv``, and a server
    sending a byte every half second never trips them. So every connection the fetch
    uses has its socket noted here, and the watchdog shuts it down at the deadline (or at
    Ctrl-C), which ends any blocked read at once, in headers, body or a redirect.
    """

    def __init__(self, url: str, deadline: float, fetcher: _Fetcher):
        self.url, self.deadline, self.fetcher = url, deadline, fetcher
        self.sockets: list[socket.socket] = []
        self.requests = 0
        self.cut = False

    def count(self) -> None:
        """One more attempt at this URL (a redirect followed is part of its attempt)."""
        self.requests += 1
        with self.fetcher.lock:
            self.fetcher.report.requests += 1

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        if self.fetcher.stop.is_set():
            raise _Stop("interrupted")
        if self.cut or self.remaining() <= 0:
            raise _Stop(f"total deadline: not complete after {self.fetcher.total_timeout} s")

    def shut(self) -> None:
        self.cut = True
        for sock in list(self.sockets):
            try:  # the plain socket's shutdown, also under TLS: wakes a blocked read
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass  # closed already


_current = threading.local()  # the _Attempt of the URL this worker thread is fetching


class _Connection(urllib3.connection.HTTPConnection):
    """A connection that tells the current :class:`_Attempt` about its socket.

    The socket is noted when it is made and on every request (a kept-alive one is
    reused): ``http.client`` drops its own reference once a response takes it over.
    """

    def connect(self):
        super().connect()
        attempt: _Attempt | None = getattr(_current, "attempt", None)
        if attempt is not None:
            attempt.sockets.append(self.sock)

    def request(self, *args, **kwargs):  # every request and redirect goes through here
        attempt: _Attempt | None = getattr(_current, "attempt", None)
        if attempt is not None:
            attempt.check()
            if self.sock is not None:
                attempt.sockets.append(self.sock)
        return super().request(*args, **kwargs)


class _TLSConnection(_Connection, urllib3.connection.HTTPSConnection):
    pass


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class _Adapter(HTTPAdapter):
    """requests' adapter with connections the watchdog can cut (see :class:`_Attempt`)."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


class _Retry(Retry):
    """urllib3's retries, waiting the course's way: recorded, interruptible, in the deadline.

    urllib3 decides whether and how long (429/5xx, ``Retry-After`` in seconds or as a
    date, capped by ``retry_after_max``; exponential backoff, capped by
    ``backoff_max``); only the wait itself is ours: it is listed in the report, cut
    short by Ctrl-C, and refused when it would end past the URL's total deadline.
    """

    def sleep(self, response=None) -> None:
        attempt: _Attempt | None = getattr(_current, "attempt", None)
        wait = None
        if self.respect_retry_after_header and response is not None:
            wait = self.get_retry_after(response)
        if wait is None:
            wait = self.get_backoff_time()
        if attempt is None:
            return super().sleep(response)
        last = self.history[-1] if self.history else None
        if last is not None and last.status:
            why = f"HTTP {last.status}"
        elif last is not None and "timed out" in str(last.error).lower():
            why = "timed out"
        else:
            why = "connection failed"
        attempt.fetcher.wait(attempt, why, float(wait))
        attempt.count()  # urllib3 sends the request again once this returns


@dataclass
class _Fetcher:
    connect_timeout: float
    read_timeout: float
    total_timeout: float
    max_bytes: int
    retries: int
    backoff: float
    max_wait: float
    sleep: Callable[[float], None] | None
    report: DownloadReport
    lock: threading.Lock
    stop: threading.Event = field(default_factory=threading.Event)  # set by Ctrl-C
    done: threading.Event = field(default_factory=threading.Event)  # set at the end
    local: threading.local = field(default_factory=threading.local)
    sessions: list[requests.Session] = field(default_factory=list)
    active: set = field(default_factory=set)

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            session = requests.Session()
            session.max_redirects = 5  # a redirect loop fails fast as "too many redirects"
            session.headers["User-Agent"] = USER_AGENT
            adapter = _Adapter(max_retries=self._retry(self.retries))
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self.local.session, self.local.adapter = session, adapter
            with self.lock:
                self.sessions.append(session)
        return self.local.session

    def _retry(self, budget: int) -> Retry:
        return _Retry(
            total=budget,
            status_forcelist=RETRY_STATUSES,
            backoff_factor=self.backoff,
            backoff_max=self.max_wait,
            retry_after_max=self.max_wait,
            raise_on_status=False,  # the last answer comes back, so its status is reported
        )

    def wait(self, attempt: _Attempt, why: str, seconds: float) -> None:
        """Wait before a retry: listed in the report, never past the deadline or Ctrl-C."""
        if seconds >= attempt.remaining():
            raise _Stop(
                f"{why}; the retry wait of {seconds:g} s would end past the total deadline"
                f" of {self.total_timeout} s"
            )
        with self.lock:
            self.report.retries.append((attempt.url, why, seconds))
        if self.sleep is not None:
            self.sleep(seconds)
        elif self.stop.wait(seconds):
            raise _Stop("interrupted")

    def watch(self, every: float = 0.05) -> None:
        """The watchdog: cut every fetch past its deadline; all of them at Ctrl-C."""
        while not self.done.is_set():
            stopping = self.stop.wait(every)
            with self.lock:
                attempts = list(self.active)
            for attempt in attempts:
                if stopping or attempt.remaining() <= 0:
                    attempt.shut()
            if stopping:
                self.done.wait(every)

    def _read(self, resp: requests.Response, attempt: _Attempt) -> bytes:
        declared = resp.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise DownloadFailed(
                f"too large: Content-Length {int(declared):,} > limit {self.max_bytes:,} bytes"
            )
        chunks, size = [], 0
        for chunk in resp.iter_content(64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise DownloadFailed(f"too large: more than {self.max_bytes:,} bytes")
            attempt.check()
            chunks.append(chunk)
        attempt.check()  # a body ended by the watchdog is not a short body
        body = b"".join(chunks)
        if declared is not None and declared.isdigit() and len(body) != int(declared):
            raise requests.exceptions.ChunkedEncodingError(
                f"truncated: {len(body)} of {declared} bytes"
            )
        return body

    def fetch(self, url: str) -> tuple[bytes, str]:
        """GET ``url``; return ``(body, content_type)`` or raise DownloadFailed or _Stop.

        urllib3 retries statuses and failed connections inside one ``get``; what it
        cannot see (a body cut short or stalled after the headers) is retried here,
        from the same budget of ``retries``. All of it stays within ``total_timeout``.
        """
        attempt = _Attempt(url, time.monotonic() + self.total_timeout, self)
        session = self.session()
        _current.attempt = attempt
        with self.lock:
            self.active.add(attempt)
        try:
            return self._fetch(url, attempt, session)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
            attempt.check()  # a cut connection surfaces as some network error
            raise
        finally:
            _current.attempt = None
            with self.lock:
                self.active.discard(attempt)

    def _fetch(self, url: str, attempt: _Attempt, session: requests.Session):
        used = 0  # retries spent, by urllib3 and by us
        while True:
            self.local.adapter.max_retries = self._retry(self.retries - used)
            left = max(attempt.remaining(), 0.001)
            timeout = (min(self.connect_timeout, left), min(self.read_timeout, left))
            attempt.count()
            try:
                resp = session.get(url, stream=True, timeout=timeout)
            except requests.TooManyRedirects:
                raise DownloadFailed("redirect loop (more than 5 redirects)") from None
            except (requests.Timeout, requests.ConnectionError) as exc:
                attempt.check()
                # urllib3 spent the retries already; requests reports a read timeout
                # in the headers as a ConnectionError
                why = "timed out" if "timed out" in str(exc) else "connection failed"
                raise DownloadFailed(f"{why} (gave up after {attempt.requests} attempts)") from None
            except requests.RequestException as exc:
                attempt.check()
                raise DownloadFailed(f"request failed: {type(exc).__name__}: {exc}") from None
            with resp:
                history = resp.raw.retries.history if resp.raw.retries is not None else ()
                used += len(history)
                if resp.status_code in RETRY_STATUSES:
                    raise DownloadFailed(
                        f"HTTP {resp.status_code} (gave up after {used + 1} attempts)"
                    )
                if resp.status_code != 200:
                    raise DownloadFailed(f"HTTP {resp.status_code} {resp.reason}")
                try:
                    return self._read(resp, attempt), resp.headers.get("Content-Type", "")
                except requests.exceptions.ChunkedEncodingError:
                    attempt.check()
                    why = "body cut short (fewer bytes than Content-Length)"
                except requests.ConnectionError as exc:
                    attempt.check()
                    why = "timed out" if "timed out" in str(exc) else "connection failed"
            if used >= self.retries:
                raise DownloadFailed(f"{why} (gave up after {used + 1} attempts)")
            used += 1
            # urllib3's schedule: the first retry at once, then backoff * 2 ** (n - 1)
            wait = 0.0 if used == 1 else min(self.max_wait, self.backoff * 2 ** (used - 1))
            self.wait(attempt, why, wait)

    def close(self) -> None:
        for session in self.sessions:
            session.close()


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
    fetcher = _Fetcher(
        connect_timeout, read_timeout, total_timeout, max_bytes, retries, backoff, max_wait,
        sleep, report, lock,
    )  # fmt: skip

    def one(photo: Photo) -> None:
        if fetcher.stop.is_set():
            raise _Stop("interrupted")
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
        except _Stop as exc:
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
