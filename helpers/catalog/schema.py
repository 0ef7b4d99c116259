"""The catalog's tables, and the names and values its rows may hold.

One SQL script creates every table; each statement is ``CREATE ... IF NOT EXISTS``, so
:class:`helpers.catalog.store.CatalogStore` runs it on every open and a catalog written
before an additive change within this schema version gains the new tables.
"""

SCHEMA_VERSION = 1
DB_NAME = "catalog.sqlite"
IMAGES_DIR = "images"
SPLITS = ("train", "val", "test")
LABEL_STATUSES = ("labeled", "unsure", "skipped")
# Where an image came from: the columns of ``images`` an importer may set.
PROVENANCE_FIELDS = (
    "dataset",
    "source",
    "source_url",
    "original_name",
    "author",
    "license",
    "attribution",
    "retrieved_at",
)

TABLES = """
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
