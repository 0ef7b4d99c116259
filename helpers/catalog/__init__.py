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

The package's modules name its parts; all SQL lives in them:

- ``schema``: the tables and the values their rows may hold (``SPLITS``, ...);
- ``errors``: :class:`CatalogError` and what a file that cannot be used raises;
- ``store``: the file itself, opening it, transactions and queries;
- ``images``: images, their provenance and the URLs already downloaded;
- ``labels``: classes, class labels by annotator, and bounding boxes;
- ``splits``: the stored train/val/test assignment.

:class:`Catalog` is all of them on one connection.
"""

from __future__ import annotations

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
from helpers.catalog.images import ImageRecords
from helpers.catalog.labels import LabelRecords
from helpers.catalog.schema import DB_NAME, IMAGES_DIR, LABEL_STATUSES, SCHEMA_VERSION, SPLITS
from helpers.catalog.splits import SplitRecords
from helpers.catalog.store import STALE_TEMPORARY_SECONDS, utc_now


class Catalog(ImageRecords, LabelRecords, SplitRecords):
    """The catalog at ``root`` (created if missing). Safe to share between threads.

    Every public method that writes is one transaction: it commits as a whole or, on
    bad input, raises :class:`CatalogError` and changes nothing.
    """

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({str(self.root)!r}: {self.count_images()} images)"


__all__ = [
    "DB_NAME",
    "IMAGES_DIR",
    "LABEL_STATUSES",
    "SCHEMA_VERSION",
    "SPLITS",
    "STALE_TEMPORARY_SECONDS",
    "Catalog",
    "CatalogBusy",
    "CatalogCorrupt",
    "CatalogError",
    "CatalogLocationError",
    "CatalogReadOnly",
    "CatalogReadOnlyWarning",
    "CatalogUnavailable",
    "SchemaTooNewError",
    "utc_now",
]
