"""What to fine-tune on: your labels (a catalog split, a folder tree) as arrays, a catalog
built the way notebook 02 builds its own, and the generated offline data.

The offline source data (:func:`glyph_images`): letters drawn in the fonts that ship
with matplotlib, on cluttered colour backgrounds, at random scale, slant, rotation and
resolution. Its classes (letters) are disjoint from the offline targets (digits), the
same protocol as "pretrain on five CIFAR-10 classes, fine-tune on the other five".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.cards import BackboneError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghijnqrt"  # no look-alikes of digits (l, o, s, z...)
DIGITS = "0123456789"


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


def catalog_target(catalog, annotator: str | None = None) -> Target:
    """The train and test splits of a catalog (notebook 02's: reviewed, split labels).

    Only the classes the training split holds are kept (a catalog's vocabulary may name
    more: notebook 02's also holds the shape classes of its box scenes); a test image of
    a class with no training image is left out, since no model could learn it.
    """
    from helpers.pipeline import ImageList, list_catalog

    train = list_catalog(catalog, "train", annotator=annotator)
    test = list_catalog(catalog, "test", annotator=annotator)
    present = sorted(set(train.labels.tolist()))
    names = [train.class_names[k] for k in present]
    remap = {old: new for new, old in enumerate(present)}

    def keep(images):
        mask = np.isin(images.labels, present)
        labels = [remap[int(k)] for k in images.labels[mask]]
        return ImageList([p for p, m in zip(images.paths, mask, strict=True) if m], labels, names)

    train, test = keep(train), keep(test)
    if annotator is None:
        names = catalog.annotators()
        annotator = names[0] if len(names) == 1 else "import"
    rows = catalog.labeled_images(annotator, split="train", statuses=("labeled",))
    ids = [r["image_id"] for r in rows]  # the same query, in the same order, as list_catalog
    return Target(train, test, f"catalog {catalog.root}", catalog, annotator, ids)


def folder_target(root, *, test_fraction: float = 0.2, seed: int = 0) -> Target:
    """A class-per-folder tree (split here, stratified by class) or a ``train/`` (``val/``)
    ``test/`` split tree, whose ``test/`` is the test set."""
    from sklearn.model_selection import train_test_split

    from helpers.pipeline import ImageList, list_folder

    root = Path(root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, test = list_folder(root / "train"), list_folder(root / "test")
        if train.class_names != test.class_names:
            only = sorted(set(train.class_names) ^ set(test.class_names))
            raise BackboneError(f"train/ and test/ of {root} differ in classes {only}; align them")
        return Target(train, test, f"split tree {root}")
    every = list_folder(root)
    a, b = train_test_split(
        np.arange(len(every)), test_size=test_fraction, stratify=every.labels, random_state=seed
    )

    def pick(idx):
        return ImageList([every.paths[i] for i in idx], every.labels[idx], every.class_names)

    return Target(pick(np.sort(a)), pick(np.sort(b)), f"class-per-folder tree {root}")


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


def digits_catalog(folder, n: int = 600, *, error_rate: float = 0.08, seed: int = 42):
    """A catalog built the way notebook 02 builds its own: scikit-learn's real digits,
    labeled by annotator ``ana`` with ``error_rate`` wrong labels, split 70/15/15 by class.

    Returns the catalog and the true class of every image (for the simulated reviewer).
    """
    from helpers.acquire.datasets import load_arrays
    from helpers.catalog import Catalog
    from helpers.config import course_folder
    from helpers.splitting import split_catalog

    course_folder(folder, fresh=True)
    catalog = Catalog(folder)
    digits = load_arrays("digits", limit=n, seed=seed)
    catalog.set_classes(digits.class_names)
    rng = np.random.default_rng(seed)
    truth = {}
    for x, y in zip(digits.x_train, digits.y_train, strict=True):
        image_id, _ = catalog.add_image_array(x, dataset="digits", source="sklearn:digits")
        truth[image_id] = digits.class_names[y]
        given = int(rng.integers(10)) if rng.random() < error_rate else int(y)
        catalog.set_label(image_id, digits.class_names[given], annotator="ana")
    split_catalog(catalog, "ana", None, (0.7, 0.15, 0.15), seed=seed)
    return catalog, truth


def digits_truth(catalog, image_ids) -> dict[int, str]:
    """The true class of catalog images that are scikit-learn digits, matched by pixels
    (what notebook 02 stored), for a simulated reviewer; other images are left out."""
    from helpers.acquire.datasets import load_arrays

    digits = load_arrays("digits", seed=0)
    table = {}
    images = (*digits.x_train, *digits.x_test)
    for x, y in zip(images, (*digits.y_train, *digits.y_test), strict=True):
        table[x.tobytes()] = digits.class_names[int(y)]
    out = {}
    for i in image_ids:
        pixels = catalog.load_image(int(i))
        pixels = pixels[..., 0] if pixels.ndim == 3 else pixels
        if pixels.tobytes() in table:
            out[int(i)] = table[pixels.tobytes()]
    return out
