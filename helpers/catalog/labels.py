"""What annotators store: the class list, one class label per image and annotator, boxes.

A label action is one committed transaction (the latest action of an annotator wins), so
a labeling widget loses nothing to a crash. Boxes are stored in original-image pixel
corners and checked against the image's size: the catalog never holds a box outside its
image or of zero area.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from helpers.catalog.errors import CatalogError
from helpers.catalog.schema import LABEL_STATUSES
from helpers.catalog.store import CatalogStore, utc_now


class LabelRecords(CatalogStore):
    """Classes, class labels (with their annotators) and bounding boxes."""

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
                (image_id, annotator, class_id, status, source, confidence, utc_now()),
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
                    utc_now(),
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
                (class_id, new["x0"], new["y0"], new["x1"], new["y1"], utc_now(), box_id),
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
