"""What to fine-tune on: your labels (a catalog split, a folder tree) as arrays, the
catalog of the course's running example (:func:`photo_catalog`, which notebooks 02 and
08 both build), and the generated offline data.

The running example: the shipped CIFAR-10 photos of the target classes
(:data:`helpers.acquire.photos.TARGET_CLASSES`), whose train pool people label and
whose test photos score every model. :func:`photo_catalog` lives here, not in
:mod:`helpers.labeling`, because its split needs :mod:`helpers.splitting` and
:mod:`helpers.quality`, which sit above the labeling layer.

The offline source data (:func:`glyph_images`, notebook 08's fallback backbone when
notebook 07 has not run): letters drawn in the fonts that ship with matplotlib, on
cluttered colour backgrounds, at random scale, slant, rotation and resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.cards import BackboneError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghijnqrt"  # no look-alikes of digits (l, o, s, z...)
TRUTH = "cifar10"  # the annotator whose labels are the archive's own: the ground truth
PHOTOS = "cifar10-target"  # the catalog's dataset name for the shipped target photos


def _fonts() -> list[Path]:
    """The text fonts matplotlib ships (DejaVu Sans/Serif/Mono, STIX General; not its
    symbol fonts): on every machine that has the course installed, so the generated
    data is the same everywhere."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = sorted(folder.glob("DejaVu*[!y].ttf")) + sorted(folder.glob("STIXGeneral*.ttf"))
    if not fonts:
        raise BackboneError(f"no TrueType fonts in {folder}; reinstall matplotlib")
    return fonts


def glyph_images(
    chars: str, n: int, *, size: int = 32, channels: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of the characters ``chars`` (balanced) and their labels, uint8.

    Each is one character in a random font, size, stroke width, slant and rotation, in
    a random colour on a cluttered background (a colour gradient, noise and a few stray
    strokes), drawn at a random resolution between ``size / 4`` and ``size`` and scaled
    to ``size``: hard enough that a network must learn strokes, not colours, and what
    it learns transfers to handwriting and photos. Same seed, same images.
    """
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    fonts = _fonts()
    labels = rng.permutation(np.arange(n) % len(chars))
    big = 64
    out = np.empty((n, size, size, 3), np.uint8)
    cache: dict = {}
    yy, xx = np.mgrid[0:big, 0:big] / (big - 1)
    for i, label in enumerate(labels):
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = np.clip(rng.uniform(-1, 1) * xx + rng.uniform(-1, 1) * yy + rng.uniform(0, 1), 0, 1)
        bg = a + (b - a) * t[..., None] + rng.normal(0, rng.uniform(0, 20), (big, big, 3))
        im = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(0, 4))):  # stray strokes: clutter, not a class cue
            x0, y0, x1, y1 = rng.uniform(0, big, 4)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 4)))
        key = (int(rng.integers(len(fonts))), int(rng.integers(30, 50)))
        if key not in cache:
            cache[key] = ImageFont.truetype(str(fonts[key[0]]), key[1])
        mean = np.asarray(im).reshape(-1, 3).mean(0)
        ink = np.where(mean > 127, rng.uniform(0, 90, 3), rng.uniform(165, 255, 3))
        glyph = Image.new("L", (big, big), 0)
        ImageDraw.Draw(glyph).text(
            (big / 2 + rng.uniform(-5, 5), big / 2 + rng.uniform(-5, 5)),
            chars[label],
            fill=255,
            font=cache[key],
            anchor="mm",
            stroke_width=int(rng.integers(0, 3)),
            stroke_fill=255,
        )
        glyph = glyph.rotate(rng.uniform(-20, 20), resample=Image.BILINEAR)
        shear = (1, rng.uniform(-0.3, 0.3), 0, 0, 1, 0)
        glyph = glyph.transform((big, big), Image.AFFINE, shear, resample=Image.BILINEAR)
        im.paste(Image.new("RGB", (big, big), tuple(int(c) for c in ink)), mask=glyph)
        low = int(rng.integers(max(4, size // 4), size + 1))
        out[i] = np.asarray(im.resize((low, low), Image.BOX).resize((size, size), Image.BILINEAR))
    if channels == 1:
        out = np.round(out @ np.array([0.299, 0.587, 0.114]))[..., None].astype(np.uint8)
    return out, labels.astype(np.int32)


@dataclass
class Target:
    """The labeled images to fine-tune on: train and test file lists, and where from."""

    train: object  # helpers.pipeline.ImageList
    test: object
    source: str
    catalog: object = None  # the Catalog, when the labels live in one
    annotator: str | None = None
    train_ids: list | None = None  # catalog image ids of ``train``, in order
    learner: str | None = None  # whose labels replace the annotator's where they exist
    learner_labels: int = 0  # how many of ``train``'s labels are the learner's


def _labeled(catalog, annotator: str | None, split: str) -> dict[int, dict]:
    """``annotator``'s confident labels (status "labeled") in ``split``, by image id."""
    if annotator is None or annotator not in catalog.annotators():
        return {}
    rows = catalog.labeled_images(annotator, split=split, statuses=("labeled",))
    return {r["image_id"]: r for r in rows}


def catalog_target(
    catalog, annotator: str | None = None, *, learner: str | None = None, test_annotator=None
) -> Target:
    """The train and test splits of a catalog (notebook 02's: reviewed, split labels).

    Training reads ``learner``'s label where the learner labeled a training image (your
    own labels from notebook 02's widget) and ``annotator``'s elsewhere;
    :attr:`Target.learner_labels` counts the learner's. Labels flagged unsure or skipped
    are left out. The test split is scored on ``test_annotator``'s labels (default:
    ``annotator``'s; notebook 02's catalog holds the archive's own under :data:`TRUTH`).
    Only the classes the training split holds are kept (a catalog's vocabulary may name
    more: notebook 02's also holds the shape classes of its box scenes); a test image of
    a class with no training image is left out, since no model could learn it.
    """
    from helpers.pipeline import ImageList

    if annotator is None:
        names = catalog.annotators()
        annotator = names[0] if len(names) == 1 else "import"
    base = _labeled(catalog, annotator, "train")
    mine = _labeled(catalog, learner, "train") if learner != annotator else {}
    rows = {**base, **mine}
    tests = _labeled(catalog, test_annotator or annotator, "test")
    if not rows or not tests:
        raise BackboneError(
            f"{catalog.root} has {len(rows)} training labels by {annotator!r}"
            f"{f' or {learner!r}' if learner else ''} and {len(tests)} test labels by "
            f"{test_annotator or annotator!r}: label and split it first (notebook 02)"
        )
    names = [c for c in catalog.classes() if c in {r["class_name"] for r in rows.values()}]

    def listed(chosen):
        keep = [r for r in chosen if r["class_name"] in names]
        return ImageList(
            [r["path"] for r in keep], [names.index(r["class_name"]) for r in keep], names
        )

    ids = list(rows)
    train, test = listed(rows.values()), listed(tests.values())
    return Target(
        train, test, f"catalog {catalog.root}", catalog, annotator, ids, learner, len(mine)
    )


def folder_target(root, *, test_fraction: float = 0.2, seed: int = 0) -> Target:
    """A class-per-folder tree or a ``train/`` (``val/``) ``test/`` split tree, read by the
    rules of :func:`helpers.images.read_split_tree` (a class in ``test/`` that ``train/``
    lacks is refused); without a ``test/``, ``test_fraction`` of every class is held out
    as the test set. Fine-tuning trains on ``train/`` and scores on ``test/``: a
    ``val/`` is checked by the same rules but not used, as :func:`catalog_target` leaves
    a catalog's val split out."""
    from helpers.images import FolderError
    from helpers.pipeline import list_splits

    try:
        splits = list_splits(root, val_fraction=0.0, test_fraction=test_fraction, seed=seed)
    except FolderError as exc:
        raise BackboneError(str(exc)) from exc
    return Target(splits.train, splits.test, f"{splits.layout} {root}")


def to_arrays(images, size, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode an ImageList once through the course pipeline into uint8 arrays at ``size``.

    A few hundred labeled images fit in memory many times over; arrays make every run
    of the learning curve a plain ``fit`` on the same pixels.
    """
    from helpers.pipeline import build_dataset

    ds = build_dataset(
        images, image_size=tuple(size), channels=channels, normalize="none",
        shuffle=False, batch_size=256,
    )  # fmt: skip
    xs, ys = zip(*ds.as_numpy_iterator(), strict=True)
    return np.concatenate(xs).round().clip(0, 255).astype(np.uint8), np.concatenate(ys)


@dataclass
class PhotoCatalog:
    """What :func:`photo_catalog` built: the catalog, every photo's true class, the train
    pool and test photos (image ids, in the archive's order), and for each simulated
    annotator the photos it labeled wrong on purpose."""

    catalog: object  # helpers.catalog.Catalog
    truth: dict[int, str]
    pool: list[int]
    test: list[int]
    errors: dict[str, set[int]]


def split_pool(
    catalog, annotator: str, pool, test, *, groups=None, val_fraction: float = 0.15, seed=0
) -> dict[int, str]:
    """Split ``annotator``'s labels of the ``pool`` photos into train and val (stratified
    by class, near-duplicate ``groups`` whole) and put the ``test`` photos, the archive's
    own test split, in test; store it in the catalog and return it.

    Leak-free against the fixed test split too: a pool photo in a group with a test
    photo joins it in test (scored on its true label, like the archive's test photos),
    never train or val.
    """
    from helpers.splitting import stratified_group_split

    test = {int(i) for i in test}
    near_test = {int(i) for g in groups or [] if test & set(g) for i in g} - test
    test |= near_test & {int(i) for i in pool}
    labels = {
        r["image_id"]: r["class_name"]
        for r in catalog.labels(annotator)
        if r["image_id"] in set(map(int, pool)) - near_test
        and r["class_name"] is not None
        and r["status"] != "skipped"
    }
    inside = [[i for i in g if i in labels] for g in groups or []]
    fractions = (1 - val_fraction, val_fraction, 0.0)
    assignment = {
        **stratified_group_split(labels, inside, fractions, seed),
        **dict.fromkeys(test, "test"),
    }
    catalog.set_splits(assignment, seed=seed)
    return assignment


def photo_catalog(
    folder,
    *,
    limit_per_class: int | None = None,
    full: bool | None = None,
    error_rates: dict[str, float] | None = None,
    val_fraction: float = 0.15,
    max_distance: int = 4,
    seed: int = 0,
) -> PhotoCatalog:
    """A fresh catalog in ``folder`` of the shipped target photos
    (:func:`helpers.acquire.photos.photo_tree`, ``limit_per_class`` and ``full`` as
    there), each with its provenance (the archive, CIFAR-10's credit and terms).

    The archive's own label of every photo is stored under annotator :data:`TRUTH`:
    the ground truth, which scores the test split and the simulated people, never the
    label checks. Each ``error_rates`` entry ({annotator: rate}, default
    ``{"ana": 0.08}``) labels the whole train pool with that share of wrong labels on
    purpose (:func:`helpers.labeling.simulate_labels`); the first one's labels are then
    split by :func:`split_pool` (near-duplicates within ``max_distance`` pHash bits kept
    together), the archive's test photos being the test split. With ``error_rates={}``
    nobody labels the pool and only the test photos get a split: notebook 02 labels the
    pool itself and splits it with :func:`split_pool`. Notebook 08 builds its catalog
    here when notebook 02 has not run, so both train on the same photos and splits.
    """
    from helpers.acquire.photos import CREDIT, SHIPPED, TARGET_CLASSES, TERMS, photo_tree
    from helpers.catalog import Catalog
    from helpers.config import course_folder
    from helpers.images import walk_class_tree
    from helpers.labeling import simulate_labels
    from helpers.quality import duplicate_groups

    error_rates = {"ana": 0.08} if error_rates is None else dict(error_rates)
    tree = photo_tree("target", limit_per_class=limit_per_class, full=full)
    course_folder(folder, fresh=True)
    catalog = Catalog(folder)
    catalog.set_classes(TARGET_CLASSES)
    where = f"the course's subset, data/{SHIPPED['target'].file_name}"
    source = f"{CREDIT}; {'keras.datasets.cifar10' if 'full' in tree.name else where}"
    truth, ids = {}, {"train": [], "test": []}
    with catalog.transaction():  # one commit for thousands of photos, not one each
        for split in ids:
            for path, name in walk_class_tree(tree / split).files:
                image_id, _ = catalog.add_image_file(
                    path, dataset=PHOTOS, source=source, license=TERMS, attribution=CREDIT
                )
                truth[image_id] = name
                ids[split].append(image_id)
                catalog.set_label(image_id, name, annotator=TRUTH)
        errors = {
            name: simulate_labels(
                catalog, {i: truth[i] for i in ids["train"]}, name, rate, seed=seed + k
            )
            for k, (name, rate) in enumerate(error_rates.items())
        }
    if error_rates:
        groups = duplicate_groups(catalog, ids["train"] + ids["test"], max_distance=max_distance)
        split_pool(
            catalog, next(iter(error_rates)), ids["train"], ids["test"],
            groups=groups, val_fraction=val_fraction, seed=seed,
        )  # fmt: skip
    else:
        catalog.set_splits(dict.fromkeys(ids["test"], "test"), seed=seed)
    return PhotoCatalog(catalog, truth, ids["train"], ids["test"], errors)
