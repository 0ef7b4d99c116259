"""What every labeling widget shares: who labels, which images, what a refused write raises.

Why not keep labels in widget state, as most Jupyter labelers do: a kernel restart then
loses them (thousands of labels, in ipyannotate issue 6). Here every click or key is one
committed catalog transaction, so a crash loses nothing and reopening an annotator
resumes at the first image its annotator has not labeled yet.

Every widget exposes the handlers its buttons and keys call (``buttons[name].click()``,
``handle_key(event)``, setting ``BoxAnnotator.widget.bboxes``), so a simulated annotator
in a notebook or a test drives exactly the code a person does. Stable CSS classes
(``course-...``) give browser tests DOM hooks.
"""

from __future__ import annotations

import sqlite3

from helpers.catalog import Catalog, CatalogError

# What a failed write can raise: the catalog's own errors (locked, read-only, ... are
# subclasses of CatalogError) and SQLite's, for a catalog that does not wrap them.
SAVE_ERRORS = (CatalogError, sqlite3.OperationalError)


def check_annotator(name) -> str:
    """The annotator's name, stripped; a blank one is refused."""
    if name is None or not str(name).strip():
        raise CatalogError("the annotator name must not be blank; give e.g. annotator='ana'")
    return str(name).strip()


def image_queue(catalog: Catalog, image_ids, dataset: str | None) -> list[int]:
    """The images to label in order: ``image_ids`` checked, or every image (of ``dataset``)."""
    if image_ids is None:
        return [row["id"] for row in catalog.images(dataset=dataset)]
    ids = [int(i) for i in image_ids]
    if len(set(ids)) != len(ids):
        raise CatalogError("image_ids holds duplicates; give each image once")
    known = catalog.image_ids()
    missing = [i for i in ids if i not in known]
    if missing:
        raise CatalogError(f"image ids {missing[:10]} are not in the catalog {catalog.db_path}")
    return ids
