"""One URL's GET, robustly: timeouts, a total deadline a watchdog enforces, retries.

What :func:`helpers.acquire.download.download_images` runs for each URL, in its worker
threads: connect and read timeouts, plus a total deadline per URL that holds whatever
the server does (a server that trickles one byte a second never trips a read timeout:
the watchdog, :meth:`Fetcher.watch`, shuts the URL's socket down when its time is up);
retries by ``urllib3.util.Retry`` (429 and 5xx, failed connections, exponential
backoff, ``Retry-After``), whose waits are recorded, cut short by Ctrl-C and refused
past the deadline; a body cut short or stalled after the headers is retried here from
the same budget; a size limit checked against ``Content-Length`` and while reading.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import requests
import urllib3
import urllib3.connection
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

if TYPE_CHECKING:
    from helpers.acquire.download import DownloadReport

RETRY_STATUSES = {429, 500, 502, 503, 504}
USER_AGENT = "raw-images-course/1.0 (+https://github.com/; educational image downloader)"


class DownloadFailed(RuntimeError):
    """One URL could not be stored; the message is the reason shown in the report."""


class Stopped(Exception):
    """Raised inside a worker when its URL's deadline has passed or the run was stopped."""


class _Attempt:
    """What the worker thread fetching one URL shares with the watchdog and urllib3.

    The deadline cannot be a socket timeout: those bound one ``recv``, and a server
    sending a byte every half second never trips them. So every connection the fetch
    uses has its socket noted here, and the watchdog shuts it down at the deadline (or at
    Ctrl-C), which ends any blocked read at once, in headers, body or a redirect.
    """

    def __init__(self, url: str, deadline: float, fetcher: Fetcher):
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
            raise Stopped("interrupted")
        if self.cut or self.remaining() <= 0:
            raise Stopped(f"total deadline: not complete after {self.fetcher.total_timeout} s")

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
class Fetcher:
    """One download run's fetching: its limits, the report it adds requests and retry
    waits to, a ``requests`` session per worker thread, and the URLs in flight that the
    watchdog (:meth:`watch`) cuts at their deadline or at Ctrl-C."""

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
            raise Stopped(
                f"{why}; the retry wait of {seconds:g} s would end past the total deadline"
                f" of {self.total_timeout} s"
            )
        with self.lock:
            self.report.retries.append((attempt.url, why, seconds))
        if self.sleep is not None:
            self.sleep(seconds)
        elif self.stop.wait(seconds):
            raise Stopped("interrupted")

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
        """GET ``url``; return ``(body, content_type)`` or raise DownloadFailed or Stopped.

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
