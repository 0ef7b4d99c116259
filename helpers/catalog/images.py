"""Images and where they came from: stored once by content hash, read back as arrays.

Every image enters through :func:`helpers.images.check_image_bytes` (the gate), so what
is stored is decoded once, upright and without metadata; the first provenance of the
same bytes is kept. Downloads are remembered by URL, so a re-run skips them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.catalog.errors import CatalogError, CatalogLocationError, CatalogReadOnly
from helpers.catalog.schema import DB_NAME, IMAGES_DIR, PROVENANCE_FIELDS
from helpers.catalog.store import CatalogStore, utc_now
from helpers.config import make_private_folder
from helpers.files import sha256_bytes, write_atomic
from helpers.images import (
    CheckedImage,
    ImageRejected,
    check_image_bytes,
    encode_png,
    read_image_file,
    stored_extension,
)


class ImageRecords(CatalogStore):
    """The catalog's images, their provenance and the URLs already downloaded."""

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
        unknown = set(provenance) - set(PROVENANCE_FIELDS)
        if unknown:
            raise CatalogError(
                f"unknown provenance fields {sorted(unknown)}; use {sorted(PROVENANCE_FIELDS)}"
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
        row = {**{k: None for k in PROVENANCE_FIELDS}, **provenance, **info}
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
                    utc_now(),
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
