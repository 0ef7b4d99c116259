"""The image and label catalog: one SQLite file plus image files named by content hash.

Why SQLite: embedded (no server for a classroom to run), one file to copy or back up,
and every label action can be its own committed transaction, so a kernel crash or a
restart loses nothing (labelers that keep labels in widget state lose them). WAL mode
lets a notebook read while another process labels.

Layout under the catalog's root (``data/`` by default)::

    catalog.sqlite             images, provenance, classes, labels, boxes, splits
    images/ab/ab12...ef.png    image files, named by the sha256 of their bytes

The same bytes are stored once, whatever URL or folder they came from. Exports (class
folders, CSV, COCO, YOLO, VOC, TFRecord) are derived from the catalog, never the other
way round.
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

import numpy as np

from helpers.config import make_private_folder
from helpers.files import TEMP_PREFIX, sha256_bytes, write_atomic
from helpers.images import (
    CheckedImage,
    ImageRejected,
    check_image_bytes,
    encode_png,
    read_image_file,
    stored_extension,
)

SCHEMA_VERSION = 1
DB_NAME = "catalog.sqlite"
IMAGES_DIR = "images"
SPLITS = ("train", "val", "test")
LABEL_STATUSES = ("labeled", "unsure", "skipped")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id            INTEGER PRIMARY KEY,
    sha256        TEXT NOT NULL UNIQUE,
    path          TEXT NOT NULL,            -- relative to the catalog root
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    mode          TEXT NOT NULL,            -- Pillow mode: L, RGB, RGBA, P, CMYK, I;16 ...
    format        TEXT NOT NULL,            -- JPEG, PNG, WEBP ...
    dataset       TEXT,                     -- a name to group images: digits, shapes, web ...
    source        TEXT,                     -- how it arrived: keras:mnist, folder, web, ...
    source_url    TEXT,
    original_name TEXT,
    author        TEXT,
    license       TEXT,
    attribution   TEXT,
    retrieved_at  TEXT,
    added_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_dataset ON images(dataset);
CREATE TABLE IF NOT EXISTS classes (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    id         INTEGER PRIMARY KEY,
    image_id   INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    annotator  TEXT NOT NULL,
    class_id   INTEGER REFERENCES classes(id),
    status     TEXT NOT NULL CHECK (status IN ('labeled', 'unsure', 'skipped')),
    source     TEXT NOT NULL DEFAULT 'human',   -- human, model, import
    confidence REAL,
    updated_at TEXT NOT NULL,
    UNIQUE (image_id, annotator)
);
CREATE TABLE IF NOT EXISTS boxes (
    id         INTEGER PRIMARY KEY,
    image_id   INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    class_id   INTEGER NOT NULL REFERENCES classes(id),
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,  -- image pixels
    annotator  TEXT NOT NULL,
    source     TEXT NOT NULL DEFAULT 'human',
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS boxes_image ON boxes(image_id);
CREATE TABLE IF NOT EXISTS splits (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    split    TEXT NOT NULL CHECK (split IN ('train', 'val', 'test')),
    seed     INTEGER
);
-- URLs already downloaded (helpers.acquire.download): a re-run skips them, even when two URLs
-- served the same bytes and images.source_url only names the first.
CREATE TABLE IF NOT EXISTS downloads (
    url          TEXT PRIMARY KEY,
    image_id     INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    sha256       TEXT NOT NULL,
    retrieved_at TEXT NOT NULL
);
"""


class CatalogError(ValueError):
    """Bad input to the catalog; the catalog is left unchanged."""


class SchemaTooNewError(CatalogError):
    """The catalog file was written by a newer version of helpers."""


class CatalogUnavailable(CatalogError):
    """The catalog cannot be opened or written now; nothing was changed.

    The message says what to do. A labeling widget catches this (and its subclasses)
    to show "could not save: ..." and keep its place: the action can simply be redone.
    """


class CatalogLocationError(CatalogUnavailable):
    """The catalog's path is not a folder that can hold a catalog."""


class CatalogReadOnly(CatalogUnavailable):
    """The catalog's folder or file is not writable: it is open for reading only."""


class CatalogBusy(CatalogUnavailable):
    """Another process held the catalog's write lock for longer than ``busy_timeout``."""


class CatalogCorrupt(CatalogUnavailable):
    """The catalog file is damaged or is not an SQLite database; it was left as it is."""


class CatalogReadOnlyWarning(UserWarning):
    """A catalog opened for reading only, because its folder or file is not writable."""


STALE_TEMPORARY_SECONDS = 60  # older than any write in progress: left by a killed process


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Catalog:
    """The catalog at ``root`` (created if missing). Safe to share between threads.

    Every public method that writes is one transaction: it commits as a whole or, on
    bad input, raises :class:`CatalogError` and changes nothing.
    """

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
                        f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
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

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({str(self.root)!r}: {self.count_images()} images)"

    # -- images ---------------------------------------------------------------------

    def add_image_bytes(self, data: bytes, **provenance) -> tuple[int, bool]:
        """Pass ``data`` through the image gate, then store it; see :meth:`add_checked_image`.

        Raises :class:`CatalogError` with the gate's reason when the bytes are not an
        image the course accepts; nothing is stored then.
        """
        try:
            checked = check_image_bytes(data)
        except ImageRejected as exc:
            raise CatalogError(f"not stored: {exc}") from exc
        return self.add_checked_image(checked, **provenance)

    def add_checked_image(self, checked: CheckedImage, **provenance) -> tuple[int, bool]:
        """Store an image that passed :func:`helpers.images.check_image_bytes`, once.

        Returns ``(image_id, added)``; ``added`` is False when the same bytes were stored
        before (from any source): the first provenance is kept. ``provenance`` keys:
        dataset, source, source_url, original_name, author, license, attribution,
        retrieved_at. Taking the gate's result, not raw bytes, is what keeps every image
        in the catalog decoded once, upright and stripped of its metadata.
        """
        if not isinstance(checked, CheckedImage):
            raise CatalogError(
                "add_checked_image takes the result of helpers.images.check_image_bytes; "
                "use add_image_bytes for raw bytes"
            )
        data = checked.data
        allowed = {
            "dataset",
            "source",
            "source_url",
            "original_name",
            "author",
            "license",
            "attribution",
            "retrieved_at",
        }
        unknown = set(provenance) - allowed
        if unknown:
            raise CatalogError(
                f"unknown provenance fields {sorted(unknown)}; use {sorted(allowed)}"
            )
        digest = sha256_bytes(data)
        existing = self.query("SELECT id FROM images WHERE sha256 = ?", (digest,))
        if existing:
            return existing[0]["id"], False
        self._require_writable()
        info = {
            "width": checked.width,
            "height": checked.height,
            "mode": checked.mode,
            "format": checked.format,
        }
        rel = Path(IMAGES_DIR) / digest[:2] / f"{digest}.{stored_extension(checked.format)}"
        target = self.root / rel
        if not target.exists() or sha256_bytes(target.read_bytes()) != digest:
            try:
                make_private_folder(target.parent)  # write_atomic's files are 0600 already
                write_atomic(target, data)
            except PermissionError as exc:
                raise CatalogReadOnly(
                    f"could not write {target}: permission denied. Nothing was saved; fix the "
                    "permissions of the catalog folder (chmod -R u+w), then try again."
                ) from exc
            except (FileExistsError, NotADirectoryError) as exc:
                raise CatalogLocationError(
                    f"could not write {target}: {exc.filename} is a file where the catalog "
                    "keeps a folder. Nothing was saved; move that file out of the way, then "
                    "try again."
                ) from exc
        row = {**{k: None for k in allowed}, **provenance, **info}
        with self.transaction() as db:
            again = db.execute("SELECT id FROM images WHERE sha256 = ?", (digest,)).fetchone()
            if again:  # another thread or process stored it meanwhile
                return again[0], False
            cur = db.execute(
                "INSERT INTO images (sha256, path, width, height, mode, format, dataset, source,"
                " source_url, original_name, author, license, attribution, retrieved_at, added_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    digest,
                    rel.as_posix(),
                    row["width"],
                    row["height"],
                    row["mode"],
                    row["format"],
                    row["dataset"],
                    row["source"],
                    row["source_url"],
                    row["original_name"],
                    row["author"],
                    row["license"],
                    row["attribution"],
                    row["retrieved_at"],
                    _now(),
                ),
            )
            return cur.lastrowid, True

    def add_image_array(self, array: np.ndarray, **provenance) -> tuple[int, bool]:
        """Store a uint8 image array as a PNG; see :meth:`add_image_bytes`."""
        return self.add_image_bytes(encode_png(array), **provenance)

    def add_image_file(self, path: str | Path, **provenance) -> tuple[int, bool]:
        """Store the file at ``path`` (its size checked before it is read); see
        :meth:`add_image_bytes`."""
        path = Path(path)
        provenance.setdefault("original_name", path.name)
        return self.add_image_bytes(read_image_file(path), **provenance)

    def image(self, image_id: int) -> dict:
        rows = self.query("SELECT * FROM images WHERE id = ?", (image_id,))
        if not rows:
            raise CatalogError(f"no image with id {image_id} in {self.db_path}")
        return rows[0]

    def images(self, dataset: str | None = None, split: str | None = None) -> list[dict]:
        """Image rows in insertion order, optionally of one data set and/or one split."""
        sql, params = "SELECT images.* FROM images", []
        if split is not None:
            sql += " JOIN splits ON splits.image_id = images.id AND splits.split = ?"
            params.append(split)
        if dataset is not None:
            sql += " WHERE images.dataset = ?"
            params.append(dataset)
        return self.query(sql + " ORDER BY images.id", params)

    def image_ids(self) -> set[int]:
        return {r["id"] for r in self.query("SELECT id FROM images")}

    def provenance(self, dataset: str | None = None) -> list[dict]:
        """One plain dict per image: where it came from, under which license, credited how."""
        cols = (
            "id, dataset, source, source_url, author, license, attribution, retrieved_at,"
            " width, height, mode, format"
        )
        sql, params = f"SELECT {cols} FROM images", ()
        if dataset is not None:
            sql, params = sql + " WHERE dataset = ?", (dataset,)
        return self.query(sql + " ORDER BY id", params)

    def count_images(self, dataset: str | None = None) -> int:
        if dataset is None:
            return self.query("SELECT COUNT(*) AS n FROM images")[0]["n"]
        return self.query("SELECT COUNT(*) AS n FROM images WHERE dataset = ?", (dataset,))[0]["n"]

    def image_path(self, image_id: int) -> Path:
        """The image's file; :class:`CatalogError` if it is gone from disk."""
        path = self.root / self.image(image_id)["path"]
        if not path.exists():
            raise CatalogError(
                f"image {image_id} is in the catalog but its file {path} is missing; restore "
                f"the images/ folder next to {DB_NAME} or re-run the acquisition step"
            )
        return path

    def load_image(self, image_id: int, mode: str | None = None) -> np.ndarray:
        """The image as a uint8 array; ``mode`` ("L", "RGB") converts it first."""
        from PIL import Image

        # Stored images are upright already: the gate applied their EXIF orientation.
        with Image.open(self.image_path(image_id)) as im:
            if mode is not None and im.mode != mode:
                im = im.convert(mode)
            return np.asarray(im)

    # -- classes --------------------------------------------------------------------

    def set_classes(self, names: Iterable[str]) -> list[str]:
        """Make sure these classes exist, in this order after any already there."""
        names = list(names)
        if not names:
            raise CatalogError("the class list is empty; give at least one class name")
        cleaned = [str(n).strip() for n in names]
        if any(not n for n in cleaned):
            raise CatalogError(f"class names must not be blank: {names!r}")
        dupes = sorted({n for n in cleaned if cleaned.count(n) > 1})
        if dupes:
            raise CatalogError(f"duplicate class names {dupes}; give each class once")
        with self.transaction() as db:
            start = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM classes").fetchone()[0]
            for offset, name in enumerate(cleaned):
                db.execute(
                    "INSERT OR IGNORE INTO classes (name, position) VALUES (?, ?)",
                    (name, start + offset),
                )
        return self.classes()

    def classes(self) -> list[str]:
        return [r["name"] for r in self.query("SELECT name FROM classes ORDER BY position, id")]

    def _class_id(self, db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT id FROM classes WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = ", ".join(self.classes()) or "none yet (call set_classes first)"
            raise CatalogError(f"unknown class {name!r}; known classes: {known}")
        return row[0]

    def _require_image(self, db: sqlite3.Connection, image_id: int) -> sqlite3.Row:
        row = db.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            raise CatalogError(f"no image with id {image_id} in {self.db_path}")
        return row

    # -- class labels ---------------------------------------------------------------

    def set_label(
        self,
        image_id: int,
        class_name: str | None,
        *,
        annotator: str = "default",
        status: str = "labeled",
        source: str = "human",
        confidence: float | None = None,
    ) -> None:
        """Record (or replace) ``annotator``'s label for the image, committed at once.

        ``status`` "unsure" keeps the class but flags it for review; "skipped" stores no
        class. One label per image and annotator: the latest action wins.
        """
        if status not in LABEL_STATUSES:
            raise CatalogError(f"status must be one of {LABEL_STATUSES}, not {status!r}")
        if status != "skipped" and class_name is None:
            raise CatalogError("a label needs a class name unless its status is 'skipped'")
        if not annotator or not str(annotator).strip():
            raise CatalogError("the annotator name must not be blank")
        with self.transaction() as db:
            self._require_image(db, image_id)
            class_id = None if class_name is None else self._class_id(db, class_name)
            db.execute(
                "INSERT INTO labels (image_id, annotator, class_id, status, source, confidence,"
                " updated_at) VALUES (?,?,?,?,?,?,?)"
                " ON CONFLICT (image_id, annotator) DO UPDATE SET class_id = excluded.class_id,"
                " status = excluded.status, source = excluded.source,"
                " confidence = excluded.confidence, updated_at = excluded.updated_at",
                (image_id, annotator, class_id, status, source, confidence, _now()),
            )

    def remove_label(self, image_id: int, annotator: str = "default") -> bool:
        """Delete ``annotator``'s label for the image (undo); return whether one existed."""
        with self.transaction() as db:
            cur = db.execute(
                "DELETE FROM labels WHERE image_id = ? AND annotator = ?", (image_id, annotator)
            )
            return cur.rowcount > 0

    def labels(self, annotator: str | None = None, *, status: str | None = None) -> list[dict]:
        """Label rows joined with class names: image_id, annotator, class_name, status, ..."""
        sql = (
            "SELECT labels.image_id, labels.annotator, classes.name AS class_name, labels.status,"
            " labels.source, labels.confidence, labels.updated_at FROM labels"
            " LEFT JOIN classes ON classes.id = labels.class_id WHERE 1=1"
        )
        params: list = []
        if annotator is not None:
            sql += " AND labels.annotator = ?"
            params.append(annotator)
        if status is not None:
            sql += " AND labels.status = ?"
            params.append(status)
        return self.query(sql + " ORDER BY labels.image_id, labels.annotator", params)

    def label_of(self, image_id: int, annotator: str) -> dict | None:
        """``annotator``'s label row for one image (as in :meth:`labels`), or None."""
        rows = self.query(
            "SELECT labels.image_id, labels.annotator, classes.name AS class_name,"
            " labels.status, labels.source, labels.confidence, labels.updated_at FROM labels"
            " LEFT JOIN classes ON classes.id = labels.class_id"
            " WHERE labels.image_id = ? AND labels.annotator = ?",
            (image_id, annotator),
        )
        return rows[0] if rows else None

    def labeled_images(
        self,
        annotator: str,
        *,
        dataset: str | None = None,
        split: str | None = None,
        statuses: Iterable[str] = ("labeled",),
    ) -> list[dict]:
        """Images with a class label by ``annotator``: image_id, path (absolute), class_name.

        Only labels whose status is in ``statuses``; optionally one data set and/or one
        split. In image id order.
        """
        statuses = tuple(statuses)
        bad = set(statuses) - set(LABEL_STATUSES)
        if bad:
            raise CatalogError(f"unknown label statuses {sorted(bad)}; use {LABEL_STATUSES}")
        sql = (
            "SELECT images.id AS image_id, images.path, classes.name AS class_name FROM images"
            " JOIN labels ON labels.image_id = images.id AND labels.annotator = ?"
            " JOIN classes ON classes.id = labels.class_id"
        )
        params: list = [annotator]
        if split is not None:
            sql += " JOIN splits ON splits.image_id = images.id AND splits.split = ?"
            params.append(split)
        sql += f" WHERE labels.status IN ({','.join('?' * len(statuses))})"
        params += list(statuses)
        if dataset is not None:
            sql += " AND images.dataset = ?"
            params.append(dataset)
        rows = self.query(sql + " ORDER BY images.id", params)
        for row in rows:
            row["path"] = str(self.root / row["path"])
        return rows

    def annotators(self) -> list[str]:
        return [
            r["annotator"]
            for r in self.query("SELECT DISTINCT annotator FROM labels ORDER BY annotator")
        ]

    # -- boxes ----------------------------------------------------------------------

    def _check_box(self, image: sqlite3.Row, x0: float, y0: float, x1: float, y1: float):
        if not (x1 > x0 and y1 > y0):
            raise CatalogError(
                f"box ({x0}, {y0}, {x1}, {y1}) has zero or negative area; give x0 < x1, y0 < y1"
            )
        w, h = image["width"], image["height"]
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise CatalogError(
                f"box ({x0}, {y0}, {x1}, {y1}) lies outside image {image['id']} ({w}x{h} pixels);"
                " coordinates are in original-image pixels"
            )

    def add_box(
        self,
        image_id: int,
        class_name: str,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        *,
        annotator: str = "default",
        source: str = "human",
    ) -> int:
        """Add a box in original-image pixel corners; return its id."""
        with self.transaction() as db:
            image = self._require_image(db, image_id)
            self._check_box(image, x0, y0, x1, y1)
            class_id = self._class_id(db, class_name)
            cur = db.execute(
                "INSERT INTO boxes (image_id, class_id, x0, y0, x1, y1, annotator, source,"
                " updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    image_id,
                    class_id,
                    float(x0),
                    float(y0),
                    float(x1),
                    float(y1),
                    annotator,
                    source,
                    _now(),
                ),
            )
            return cur.lastrowid

    def update_box(
        self,
        box_id: int,
        *,
        class_name: str | None = None,
        x0: float | None = None,
        y0: float | None = None,
        x1: float | None = None,
        y1: float | None = None,
    ) -> None:
        """Move, resize or re-class a box; omitted fields keep their value."""
        with self.transaction() as db:
            box = db.execute("SELECT * FROM boxes WHERE id = ?", (box_id,)).fetchone()
            if box is None:
                raise CatalogError(f"no box with id {box_id}")
            image = self._require_image(db, box["image_id"])
            new = {
                k: box[k] if v is None else float(v)
                for k, v in dict(x0=x0, y0=y0, x1=x1, y1=y1).items()
            }
            self._check_box(image, **new)
            class_id = box["class_id"] if class_name is None else self._class_id(db, class_name)
            db.execute(
                "UPDATE boxes SET class_id = ?, x0 = ?, y0 = ?, x1 = ?, y1 = ?, updated_at = ?"
                " WHERE id = ?",
                (class_id, new["x0"], new["y0"], new["x1"], new["y1"], _now(), box_id),
            )

    def delete_box(self, box_id: int) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM boxes WHERE id = ?", (box_id,)).rowcount > 0

    def boxes(self, image_id: int | None = None, annotator: str | None = None) -> list[dict]:
        """Box rows with class names: id, image_id, class_name, x0, y0, x1, y1, annotator."""
        sql = (
            "SELECT boxes.id, boxes.image_id, classes.name AS class_name, boxes.x0, boxes.y0,"
            " boxes.x1, boxes.y1, boxes.annotator, boxes.source, boxes.updated_at FROM boxes"
            " JOIN classes ON classes.id = boxes.class_id WHERE 1=1"
        )
        params: list = []
        if image_id is not None:
            sql += " AND boxes.image_id = ?"
            params.append(image_id)
        if annotator is not None:
            sql += " AND boxes.annotator = ?"
            params.append(annotator)
        return self.query(sql + " ORDER BY boxes.image_id, boxes.id", params)

    # -- splits ---------------------------------------------------------------------

    def set_splits(self, assignment: dict[int, str], seed: int | None = None) -> None:
        """Store ``{image_id: "train" | "val" | "test"}``, replacing earlier assignments."""
        bad = {s for s in assignment.values() if s not in SPLITS}
        if bad:
            raise CatalogError(f"unknown split names {sorted(bad)}; use {SPLITS}")
        with self.transaction() as db:
            for image_id, split in assignment.items():
                self._require_image(db, int(image_id))
                db.execute(
                    "INSERT INTO splits (image_id, split, seed) VALUES (?,?,?) ON CONFLICT"
                    " (image_id) DO UPDATE SET split = excluded.split, seed = excluded.seed",
                    (int(image_id), split, seed),
                )

    # -- downloads --------------------------------------------------------------------

    def record_download(self, url: str, image_id: int, sha256: str, retrieved_at: str) -> None:
        """Remember that ``url`` gave image ``image_id``, so a re-run skips it."""
        with self.transaction() as db:
            self._require_image(db, image_id)
            db.execute(
                "INSERT OR REPLACE INTO downloads (url, image_id, sha256, retrieved_at)"
                " VALUES (?,?,?,?)",
                (url, image_id, sha256, retrieved_at),
            )

    def downloaded_urls(self) -> dict[str, int]:
        """``{url: image_id}`` for every URL stored by an earlier download."""
        return {r["url"]: r["image_id"] for r in self.query("SELECT url, image_id FROM downloads")}

    def splits(self) -> dict[int, str]:
        return {r["image_id"]: r["split"] for r in self.query("SELECT image_id, split FROM splits")}
