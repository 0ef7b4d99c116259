"""Bringing images in: public and offline data sets as arrays, generated scenes, folders
and CSV files, web downloads, and a local image-search API for offline runs.

``datasets`` (:func:`~helpers.acquire.datasets.load_arrays`), ``synthetic`` (scenes of
shapes with ground truth), ``folders`` (imports into the catalog, with a report),
``download`` (resumable, checked web downloads), ``image_api_server`` (a Pexels-style
API on 127.0.0.1). Every image passes :mod:`helpers.images` on its way into the catalog.
"""

from helpers.acquire.folders import (
    IMPORT,
    IngestReport,
    ingest_arrays,
    ingest_class_folders,
    ingest_csv,
    ingest_scenes,
    ingest_split_folders,
    load_labeled,
)

__all__ = [
    "IMPORT",
    "IngestReport",
    "ingest_arrays",
    "ingest_class_folders",
    "ingest_csv",
    "ingest_scenes",
    "ingest_split_folders",
    "load_labeled",
]
