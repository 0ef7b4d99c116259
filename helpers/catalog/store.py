"""The catalog's file: opening it, its permissions, transactions and queries.

Everything that touches the SQLite connection itself lives here; the record modules
(:mod:`~helpers.catalog.images`, :mod:`~helpers.catalog.labels`,
:mod:`~helpers.catalog.boxes`, :mod:`~helpers.catalog.splits`) only call
:meth:`CatalogStore.transaction` and :meth:`CatalogStore.query`. An SQLite failure about
the file (damaged, locked, read-only, disk full) becomes a catalog error that says what
to do (:meth:`CatalogStore._unavailable`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from helpers.catalog.errors import (
    CatalogBusy,
    CatalogCorrupt,
    CatalogError,
    CatalogLocationError,
    CatalogReadOnly,
    CatalogReadOnlyWarning,
    CatalogUnavailable,
    SchemaTooNewError,
)
from helpers.catalog.schema import DB_NAME, IMAGES_DIR, SCHEMA_VERSION, TABLES
from helpers.config import make_private_folder
from helpers.files import TEMP_PREFIX

STALE_TEMPORARY_SECONDS = 60  # older than any write in progress: left by a killed process


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def utc_now() -> str:
    """The time stamp every catalog row gets: UTC, to the second, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class CatalogStore:
    """The connection to one catalog file, shared by every record type (see :class:`Catalog`)."""

    def __init__(self, root: str | Path | None = None, *, busy_timeout: float = 5.0):
        """Open (or create) the catalog at ``root``.

        ``busy_timeout`` is how long a write waits for another process's write to end
        before :class:`CatalogBusy` says so (a label action is a few milliseconds, so
        waiting means another process holds the lock for a long transaction). A
        folder that is not writable is opened for reading only, with a
        :class:`CatalogReadOnlyWarning`; every write then raises :class:`CatalogReadOnly`.
        """
        if root is None:
            from helpers.config import data_dir

            root = data_dir()
        self.root = Path(root)
        self.db_path = self.root / DB_NAME
        self.busy_timeout = float(busy_timeout)
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction() in the thread holding the lock
        self._make_folder()
        self.read_only = not _writable(self.root) or (
            self.db_path.exists() and not _writable(self.db_path)
        )
        self.removed_temporaries: list[Path] = []
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            raise self._unavailable(exc) from None
        if not self.read_only:
            self.removed_temporaries = self._remove_stale_temporaries()

    def _open(self) -> sqlite3.Connection:
        """Connect, check the schema version and, unless read-only, create what is missing."""
        if self.read_only:
            conn = self._open_read_only()
        else:
            self._create_private_file()
            conn = self._connect(str(self.db_path), uri=False)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"{self.db_path} has schema version {version}, but these helpers know "
                    f"version {SCHEMA_VERSION}. It was written by a newer version of the "
                    "course: update (git pull, then pip install -r requirements.txt); the file "
                    "is untouched."
                )
            if not self.read_only:
                conn.execute("PRAGMA journal_mode = WAL")
                # One script, one transaction: a new catalog gets all tables or none. Every
                # statement is CREATE ... IF NOT EXISTS, so re-running it on open is cheap
                # and adds tables that additive changes within this schema version brought.
                with self._lock:
                    conn.executescript(
                        f"BEGIN IMMEDIATE;{TABLES}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
                    )
        except BaseException:
            conn.close()
            raise
        return conn

    def _create_private_file(self) -> None:
        """Create a missing catalog file that only its owner may read or write (0600).

        Labels are a learner's own work, and in a data directory a class shares a file
        readable by all would show them to every classmate. SQLite gives the ``-wal``,
        ``-shm`` and ``-journal`` files it makes later the database's own mode, so they
        stay private too; an empty file is a new database to SQLite.
        """
        try:
            os.close(os.open(self.db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass  # an existing catalog keeps the mode its owner gave it

    def _make_folder(self) -> None:
        try:
            make_private_folder(self.root)
        except (FileExistsError, NotADirectoryError):
            raise CatalogLocationError(
                f"{self.root} is a file (or lies under one), not a folder: a catalog is a "
                f"folder holding {DB_NAME} and images/. Give a folder path (it is created if "
                "missing), or move the file out of the way."
            ) from None
        except PermissionError:
            raise CatalogReadOnly(
                f"cannot create the catalog folder {self.root}: permission denied. Give a "
                "folder you can write to (the course's data/ folder, or your home folder)."
            ) from None
        if not self.root.is_dir():
            raise CatalogLocationError(f"{self.root} is not a folder; give a folder path")

    def _connect(self, target: str, *, uri: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            target,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            uri=uri,
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        """Open for reading, and say so; a WAL catalog in a locked folder needs care.

        SQLite reads a WAL database through its ``-shm`` file, which it cannot create in
        a folder it may not write; then the file is opened as immutable (no other
        process can be writing to it there anyway, or the folder would be writable).
        """
        if not self.db_path.exists():
            raise CatalogReadOnly(
                f"cannot create a catalog in {self.root}: the folder is not writable. Give a "
                "folder you can write to, or fix its permissions (chmod u+w)."
            )
        from urllib.parse import quote

        base = "file:" + quote(str(self.db_path.resolve()))
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            conn = self._connect(base + query, uri=True)
            try:
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                break
            except sqlite3.DatabaseError as exc:
                conn.close()
                problem = self._unavailable(exc)
        else:
            if isinstance(problem, CatalogCorrupt):
                raise problem
            raise CatalogReadOnly(f"cannot read {self.db_path}: check its permissions")
        warnings.warn(
            f"the catalog {self.root} is not writable, so it is open for reading only: "
            "labels and images cannot be saved. Fix the permissions (chmod u+w), or copy "
            "the folder somewhere writable and open the copy.",
            CatalogReadOnlyWarning,
            stacklevel=3,
        )
        return conn

    def _remove_stale_temporaries(self) -> list[Path]:
        """Delete ``.tmp-*`` files a killed process left between its write and its rename.

        Only those older than :data:`STALE_TEMPORARY_SECONDS`: a younger one may belong
        to a write in progress in another process.
        """
        removed = []
        limit = time.time() - STALE_TEMPORARY_SECONDS
        images = self.root / IMAGES_DIR
        if not images.is_dir():
            return removed
        for folder in os.scandir(images):
            if not folder.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(folder.path):
                if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
                    try:
                        if entry.stat().st_mtime < limit:
                            os.unlink(entry.path)
                            removed.append(Path(entry.path))
                    except FileNotFoundError:
                        pass  # renamed or removed meanwhile
        return removed

    def _unavailable(self, exc: sqlite3.DatabaseError) -> BaseException:
        """The catalog error for an SQLite failure about the file, not the query
        (``exc`` itself for any other failure)."""
        text = str(exc).lower()
        code = getattr(exc, "sqlite_errorname", "")  # Python 3.11+
        if code in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or any(
            words in text for words in ("not a database", "malformed", "corrupt")
        ):
            images = self.root / IMAGES_DIR
            return CatalogCorrupt(
                f"{self.db_path} is damaged or is not a catalog (SQLite says: {exc}). Nothing "
                f"was changed. Restore it from a backup, or move it aside (mv {self.db_path} "
                f"{self.db_path}.broken) and run again to start an empty catalog; the images "
                f"in {images} stay and are reused when added again, and `sqlite3 "
                f"{DB_NAME}.broken .recover` may rescue its labels."
            )
        if code == "SQLITE_CANTOPEN" or "unable to open" in text:
            return CatalogLocationError(
                f"cannot open {self.db_path} (SQLite says: {exc}). It must be a file you may "
                "read and write: move whatever stands there out of the way (a folder of that "
                "name?), or give another catalog folder."
            )
        if "locked" in text or "busy" in text:
            return CatalogBusy(
                f"could not write to {self.db_path}: another process (a second notebook or "
                f"annotator on the same catalog?) held its write lock for over "
                f"{self.busy_timeout:g} s. Nothing was saved; try again, or finish or close "
                "the other writer first."
            )
        if "readonly" in text or "read-only" in text:
            return CatalogReadOnly(
                f"could not write to {self.db_path}: it is read-only. Nothing was saved; fix "
                "the permissions (chmod u+w on the folder and the file), then reopen it."
            )
        if "disk is full" in text or "disk i/o" in text:
            return CatalogUnavailable(
                f"could not write to {self.db_path}: {exc}. Nothing was saved; free some disk "
                "space, then try again."
            )
        return exc

    def _require_writable(self) -> None:
        if self.read_only:
            raise CatalogReadOnly(
                f"the catalog {self.root} is open for reading only (its folder or file is not "
                "writable), so nothing can be saved. Fix the permissions (chmod u+w) and "
                "reopen it, or copy it somewhere writable."
            )

    # -- plumbing -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any error.

        Re-entrant: a method that writes, called inside an outer ``transaction()`` of
        the same thread, joins it, so several calls (an import) commit as one or not
        at all.
        """
        self._require_writable()
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise self._unavailable(exc) from None
            self._depth = 1
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError) and self._unavailable(exc) is not exc:
                    raise self._unavailable(exc) from None
                raise
            finally:
                self._depth = 0

    def query(self, sql: str, params: Iterable = ()) -> list[dict]:
        """Run a read-only query; rows come back as plain dicts.

        A damaged file can pass the checks on open and fail only at the page a query
        reads: that failure, too, names the file and what to do.
        """
        with self._lock:
            try:
                return [dict(row) for row in self._conn.execute(sql, tuple(params))]
            except sqlite3.DatabaseError as exc:
                problem = self._unavailable(exc)
                if problem is exc:
                    raise
                raise problem from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _require_image(self, db: sqlite3.Connection, image_id: int) -> sqlite3.Row:
        """The image's row, inside a write: every label, box, split and download names one."""
        row = db.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            raise CatalogError(f"no image with id {image_id} in {self.db_path}")
        return row
