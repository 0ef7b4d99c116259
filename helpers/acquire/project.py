"""The project's photos found by search: what notebook 01 stores and notebook 02 labels.

Notebook 01 searches the local image-search server (:mod:`helpers.acquire.image_api_server`)
for each target class and stores the answers unlabeled, one data set per query
(``search_dog``, ...). Notebook 02 labels them: it reads 01's catalog when it exists,
and otherwise runs the same search itself with :func:`search_project`, so each notebook
still runs alone. :func:`find_searched` makes that choice and says why;
:func:`import_searched` copies the searched photos, with their provenance, into the
catalog being labeled, and tells each one's true class from the shipped archive
(:func:`shipped_truth`): the server answers with the archive's own files, so a photo's
bytes name it, and the search engine's wrong answers can be counted, not guessed.

With ``DATASET = "folder"`` notebook 02 labels your own photos instead:
:func:`folder_catalog` puts a class-per-folder or split tree in a fresh catalog, its
folder names standing as the hidden truth that the shipped archive's labels are otherwise.
"""

from __future__ import annotations

import os
import secrets
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from helpers.acquire.download import download_images, search_photos
from helpers.acquire.image_api_server import ImageAPIServer
from helpers.acquire.photos import TARGET_CLASSES, photo_tree
from helpers.catalog import Catalog
from helpers.catalog.schema import DB_NAME, PROVENANCE_FIELDS
from helpers.config import course_folder
from helpers.files import sha256_bytes
from helpers.images import (
    ClassFolderWarning,
    FolderError,
    ImageRejected,
    check_image_bytes,
    read_image_file,
    read_split_tree,
)
from helpers.splitting import stratified_split

SEARCH_PREFIX = "search_"  # a query's data set: search_dog holds the answers to "dog"


def search_dataset(query: str) -> str:
    """The data set a query's answers are stored in: ``search_dog`` for ``"dog"``."""
    return f"{SEARCH_PREFIX}{query}"


def search_project(
    catalog: Catalog,
    per_class: int,
    *,
    wrong_share: float = 0.1,
    classes=TARGET_CLASSES,
    photos: str | Path | None = None,
    workers: int = 8,
) -> dict[str, int]:
    """Search a local server for each of ``classes`` and store the answers unlabeled.

    The same calls notebook 01 makes: a fresh key in an environment variable, an
    :class:`ImageAPIServer` over the shipped target photos that answers ``per_class``
    photos a query, ``wrong_share`` of them of another class, and
    :func:`download_images` into :func:`search_dataset` of each query. ``photos`` is
    the class-per-folder tree the server answers from (default: the shipped target
    photos' ``train`` tree, as notebook 01's server). Returns, per
    query, how many answers showed another class (the server's answer key, which only
    a local server can give).
    """
    key_env = "COURSE_LOCAL_API_KEY"
    os.environ[key_env] = secrets.token_hex(16)
    photos = photo_tree("target") / "train" if photos is None else Path(photos)
    wrong = {}
    with ImageAPIServer(
        api_key=os.environ[key_env], photos=photos, per_class=per_class, wrong_share=wrong_share
    ) as server:
        for cls in classes:
            found = search_photos(cls, n=per_class, base_url=server.api_url, api_key_env=key_env)
            report = download_images(
                catalog, found, dataset=search_dataset(cls), workers=workers, progress=False
            )
            if report.failed:
                raise RuntimeError(f"the local server failed to serve {report.failed[:3]}")
            wrong[cls] = sum(server.true_class(p.page_url) != cls for p in found)
    return wrong


def searched_images(catalog: Catalog, classes=TARGET_CLASSES) -> dict[int, str]:
    """The catalog's photos found by searching one of ``classes``: {image id: query}."""
    return {row["id"]: cls for cls in classes for row in catalog.images(search_dataset(cls))}


@dataclass
class SearchSource:
    """Which catalog holds the searched photos, and why that one."""

    catalog: Catalog
    reason: str


def find_searched(
    acquired: str | Path,
    fallback: str | Path,
    *,
    per_class: int,
    wrong_share: float = 0.1,
    photos: str | Path | None = None,
) -> SearchSource:
    """Notebook 01's catalog at ``acquired`` when it holds searched photos; else a fresh
    catalog in ``fallback`` filled by :func:`search_project` (``per_class`` and
    ``wrong_share`` as notebook 01's ``N_PROJECT`` and ``SEARCH_WRONG_SHARE``, ``photos``
    as in :func:`search_project`).

    Why the fallback: a notebook must run alone, so when notebook 01 has not run (or
    searched nothing) its search is made the same way here.
    """
    acquired = Path(acquired)
    if (acquired / DB_NAME).is_file():
        catalog = Catalog(acquired)
        found = searched_images(catalog)
        if found:
            return SearchSource(catalog, f"notebook 01 stored {len(found)} searched photos there")
        reason = f"the catalog at {acquired} holds no searched photos"
    else:
        reason = f"no catalog at {acquired}: notebook 01 has not run"
    catalog = Catalog(course_folder(fallback, fresh=True))
    wrong = search_project(catalog, per_class, wrong_share=wrong_share, photos=photos)
    return SearchSource(
        catalog,
        f"{reason}, so the local server was searched the same way"
        f" ({per_class} answers a query, {sum(wrong.values())} of another class)",
    )


def shipped_truth(tree: str | Path | None = None) -> dict[str, str]:
    """Every photo's class in a split tree (``<tree>/{train,test}/<class>/<file>``; default
    the shipped target photos) by the SHA-256 of its file: {sha256: class}.

    The catalog stores a file without EXIF byte for byte, so a stored photo's
    ``sha256`` finds it here whichever way it arrived (the archive, a folder, the
    local search server).
    """
    tree = photo_tree("target") if tree is None else Path(tree)
    return {
        sha256_bytes(path.read_bytes()): path.parent.name
        for split in ("train", "test")
        for path in sorted((tree / split).glob("*/*"))
        if path.is_file()
    }


@dataclass
class Searched:
    """What :func:`import_searched` brought in, by id in the target catalog."""

    query: dict[int, str] = field(default_factory=dict)  # the query that found each photo
    truth: dict[int, str] = field(default_factory=dict)  # the class it shows
    already: list[int] = field(default_factory=list)  # the same bytes were there before
    unknown: list[int] = field(default_factory=list)  # source ids whose class is unknown

    @property
    def wrong(self) -> set[int]:
        """The search engine's wrong answers: photos that show another class than asked."""
        return {i for i, q in self.query.items() if self.truth[i] != q}

    def __str__(self) -> str:
        return (
            f"{len(self.query)} searched photos added, {len(self.wrong)} of them show another"
            f" class than their query; {len(self.already)} already there,"
            f" {len(self.unknown)} of unknown class left out"
        )


def import_searched(
    source: Catalog, target: Catalog, known: dict[str, str], *, truth_annotator: str
) -> Searched:
    """Copy ``source``'s searched photos into ``target`` with their provenance.

    ``known`` ({sha256: class}, see :func:`shipped_truth`) gives each photo's true
    class, stored as ``truth_annotator``'s label (the ground truth the archive's other
    photos have, never seen by the label checks); a photo it does not know (from a real
    search API) is left out and listed in :attr:`Searched.unknown`, since nothing could
    score its labels. A photo whose
    bytes ``target`` already holds keeps its first provenance and is listed in
    :attr:`Searched.already`, not as searched: it is one image, labeled once.
    """
    out = Searched()
    with target.transaction():  # one commit for all the photos, not one each
        for image_id, query in searched_images(source).items():
            row = source.image(image_id)
            if row["sha256"] not in known:
                out.unknown.append(image_id)
                continue
            data = source.image_path(image_id).read_bytes()
            new_id, added = target.add_image_bytes(data, **{k: row[k] for k in PROVENANCE_FIELDS})
            if not added:
                out.already.append(new_id)
                continue
            out.query[new_id] = query
            out.truth[new_id] = known[row["sha256"]]
            target.set_label(new_id, out.truth[new_id], annotator=truth_annotator)
    return out


FOLDER = "folder"  # the catalog's data set name for the photos of your own tree
MIN_PER_CLASS = 10  # pool photos a class needs: labeled, cross-validated in 5 folds, split


@dataclass
class FolderCatalog:
    """What :func:`folder_catalog` built, as :func:`helpers.finetune.photo_catalog`'s
    result: the catalog, every photo's true class (its folder's name), the pool to label
    and the test photos (image ids, in the tree's order), and how the test split was made."""

    catalog: Catalog
    truth: dict[int, str]
    pool: list[int]
    test: list[int]
    how: str


def folder_catalog(
    folder: str | Path,
    root: str | Path,
    *,
    truth_annotator: str,
    test_fraction: float = 0.2,
    min_per_class: int = MIN_PER_CLASS,
    min_pool: int = 0,
    seed: int = 0,
) -> FolderCatalog:
    """A fresh catalog in ``folder`` of your own photos: the class-per-folder tree
    (``root/<class>/<image>``) or split tree (``root/train/<class>/...``, with ``val/``
    and ``test/`` when present) at ``root``, read by
    :func:`helpers.images.read_split_tree`'s rules. Photos of any size, shape and
    accepted format are stored as they are.

    Each folder's name is stored under ``truth_annotator`` as its photos' label: the
    hidden truth the simulated annotators label from and the scoring reads, as the
    shipped archive's labels are for :func:`helpers.finetune.photo_catalog`. The test
    split is the tree's ``test/`` when it has one, else ``test_fraction`` of every
    class, held out seeded; everything else (``train/`` and ``val/``) is the pool to
    label, since notebook 02 splits the labeled pool itself.

    Every photo is read and checked before anything is written: a missing folder, fewer
    than two classes, a class with fewer than ``min_per_class`` pool photos or no test
    photo, fewer than ``min_pool`` pool photos in all (notebook 02 labels its first
    ``N_BY_HAND`` by hand before the model helps), or a file the image gate refuses
    raises :class:`helpers.images.FolderError` saying what to do, and ``folder`` is left
    as it was. A photo whose bytes another one in the tree already has is stored once,
    under its first folder.
    """
    if root is None or not Path(root).is_dir():
        raise FolderError(
            f"DATA_DIR {root} is not a folder: set DATA_DIR to your tree (DATA_DIR/<class>/"
            "<photo>, or DATA_DIR/train/<class>/<photo> beside test/), or DATASET = 'photos'"
        )
    root = Path(root)
    with warnings.catch_warnings():  # the checks below say what matters here, as errors
        warnings.simplefilter("ignore", ClassFolderWarning)
        tree = read_split_tree(root)
    files = {
        split: [(path, name) for path, name in part.files if name in tree.class_names]
        for split, part in tree.splits.items()
    }
    pool_files = files["train"] + files.get("val", [])
    if "test" in files:
        test_files, how = files["test"], f"the test/ folder of the {tree.layout} at {root}"
    else:
        keep, held = stratified_split([name for _, name in pool_files], test_fraction, seed)
        test_files = [pool_files[k] for k in held]
        pool_files = [pool_files[k] for k in keep]
        how = f"{test_fraction:.0%} of each class of the {tree.layout} at {root}, seed {seed}"
    for name in tree.class_names:
        n_pool = sum(n == name for _, n in pool_files)
        n_test = sum(n == name for _, n in test_files)
        if n_pool < min_per_class or not n_test:
            raise FolderError(
                f"class {name!r} of {root} has {n_pool} photos to label and {n_test} to test;"
                f" notebook 02 needs at least {min_per_class} to label and 1 to test per"
                f" class: add photos to its folder, or move the folder out of the tree"
            )
    if len(pool_files) < min_pool:
        raise FolderError(
            f"{root} has {len(pool_files)} photos to label; notebook 02 needs at least"
            f" {min_pool} (N_BY_HAND + 1): add photos, or lower N_BY_HAND"
        )
    checked, refused = {}, []
    for path, _ in pool_files + test_files:
        try:
            checked[path] = check_image_bytes(read_image_file(path))
        except (ImageRejected, OSError) as exc:
            refused.append(f"{path.relative_to(root)} ({exc})")
    if refused:
        raise FolderError(
            f"{len(refused)} file(s) in {root} are not images the course accepts: "
            f"{'; '.join(refused[:3])}. Fix or remove them, then run again."
        )
    course_folder(folder, fresh=True)
    catalog = Catalog(folder)
    catalog.set_classes(tree.class_names)
    truth, ids = {}, {"pool": [], "test": []}
    with catalog.transaction():  # one commit for all the photos, not one each
        for part, chosen in (("pool", pool_files), ("test", test_files)):
            for path, name in chosen:
                image_id, added = catalog.add_checked_image(
                    checked[path], dataset=FOLDER, source=f"your photos, {root}",
                    original_name=path.name,
                )  # fmt: skip
                if added:
                    truth[image_id] = name
                    ids[part].append(image_id)
                    catalog.set_label(image_id, name, annotator=truth_annotator)
    catalog.set_splits(dict.fromkeys(ids["test"], "test"), seed=seed)
    how = "; ".join([how, *tree.notes])  # what was left out, e.g. an empty class folder
    return FolderCatalog(catalog, truth, ids["pool"], ids["test"], how)
