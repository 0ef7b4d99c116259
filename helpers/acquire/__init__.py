"""Bringing images in: public and offline data sets as arrays, the CIFAR-10 photos that
ship with the course, generated scenes, folders and CSV files, web downloads, and a
local image-search API for offline runs.

``datasets`` (:func:`~helpers.acquire.datasets.load_arrays`), ``photos`` (the shipped
photos in source and target classes, checked and unpacked on first use), ``synthetic``
(scenes of shapes with ground truth), ``folders`` (imports into the catalog, with a
report), ``download`` (resumable, checked web downloads; ``fetch``, one URL's GET with
its timeouts, deadline and retries), ``image_api_server`` (a
Pexels-style API on 127.0.0.1), ``project`` (the target classes searched on it, which
notebook 01 stores and notebook 02 labels). Every image passes :mod:`helpers.images` on its way
into the catalog.
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
from helpers.acquire.photos import (
    SOURCE_CLASSES,
    TARGET_CLASSES,
    PhotoArchiveError,
    load_photos,
    photo_tree,
)

__all__ = [
    "IMPORT",
    "IngestReport",
    "PhotoArchiveError",
    "SOURCE_CLASSES",
    "TARGET_CLASSES",
    "ingest_arrays",
    "ingest_class_folders",
    "ingest_csv",
    "ingest_scenes",
    "ingest_split_folders",
    "load_labeled",
    "load_photos",
    "photo_tree",
]
