"""Solutions to the exercises of notebooks/03_preprocess_augment.ipynb."""

from __future__ import annotations

import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from helpers import pipeline as pl
from helpers.acquire.photos import TARGET_CLASSES, photo_tree

IMAGE_SIZE = 32


def _first_photos(split: str, per_class: int) -> pl.ImageList:
    """The first ``per_class`` shipped project photos of each target class in ``split``."""
    tree = photo_tree("target", limit_per_class=per_class) / split
    paths, labels = [], []
    for label, cls in enumerate(TARGET_CLASSES):
        for path in sorted((tree / cls).glob("*.jpg")):
            paths.append(path)
            labels.append(label)
    return pl.ImageList(paths, labels, list(TARGET_CLASSES))


def exercise_1() -> dict[str, dict[str, float]]:
    """The ``china`` photo (640x427) resized to 64x32 (wide) in each mode.

    Its aspect ratio is 1.5, the target's 2.0, so each mode pays somewhere. Stretch
    widens every letter by a third; crop keeps the full width but cuts a quarter of the
    rows (a sign near the top or bottom loses its text); pad keeps the whole photo
    undistorted and leaves a quarter of the columns black. For a model that reads text
    on signs choose **pad**: letters keep their shapes and no sign is cut off, and the
    black bands cost only pixels. Returns, per mode, the share of the photo's rows kept
    and the share of the output that is padding.
    """
    from sklearn.datasets import load_sample_images

    china = load_sample_images().images[0]
    height, width = china.shape[:2]
    out = {}
    for mode in pl.RESIZE_MODES:
        image = pl.resize(china, (32, 64), mode, antialias=True).numpy()
        assert image.shape == (32, 64, 3)
        black_columns = int((image.max(axis=(0, 2)) == 0).sum())
        rows_kept = 1.0 if mode != "crop" else (width / 2) / height
        out[mode] = {"rows_kept": round(rows_kept, 3), "padding": black_columns / 64}
    return out


def exercise_2(per_class: int = 8, seed: int = 42) -> tuple[int, ...]:
    """A random crop after resizing to ``IMAGE_SIZE + 4``.

    Decode at 36x36, then let ``RandomCrop(32, 32)`` cut a random 32x32 window before
    the usual augmentation: the object moves by up to 4 pixels each way, and every batch
    still has the model's input size. In evaluation (``training=False``) Keras's
    ``RandomCrop`` returns its input unchanged, 36x36, so the test pipeline needs a size
    of its own: decode it at 32x32 (or crop its centre with ``CenterCrop``). Returns the
    batch shape, ``(batch, 32, 32, 3)``.
    """
    from helpers.quiet import keras

    augment = keras.Sequential(
        [keras.layers.RandomCrop(IMAGE_SIZE, IMAGE_SIZE, seed=seed), pl.augmentation(seed=seed)]
    )
    images = _first_photos("train", per_class)
    ds = pl.build_dataset(
        images, image_size=(IMAGE_SIZE + 4, IMAGE_SIZE + 4), batch_size=16, augment=augment
    )
    x, _ = next(iter(ds))
    return tuple(x.shape)


def exercise_3(per_class: int = 100) -> dict[str, list[float]]:
    """Channel statistics of the test split next to the training split's.

    On the shipped project photos the means differ by well under a tenth of a standard
    deviation: the splits are samples of one population. A model normalized with the
    test statistics would have seen its inputs shifted by that much, which it shrugs
    off; what matters is the principle (the test split must not shape training), and
    the gap grows with a small or unusual test set. Returns both means and standard
    deviations and the gap of the means in training standard deviations.
    """
    train = pl.channel_stats(_first_photos("train", per_class), image_size=(32, 32))
    test = pl.channel_stats(_first_photos("test", per_class), image_size=(32, 32))
    gap = (np.asarray(test.mean) - np.asarray(train.mean)) / np.asarray(train.std)
    return {
        "train_mean": [float(v) for v in train.mean],
        "test_mean": [float(v) for v in test.mean],
        "train_std": [float(v) for v in train.std],
        "test_std": [float(v) for v in test.std],
        "gap_in_train_std": [float(v) for v in gap],
    }


def exercise_4(folder: str | os.PathLike, per_class: int = 400) -> dict[str, float]:
    """What ``cache`` saves: two epochs with it and without it.

    With the cache the second epoch reads no file: it gathers batches from the decoded
    images in memory, several times faster than the first (on 2 cores, tens of times
    on thousands of files; see ``benchmarks/results/pipeline_throughput.txt``).
    Without it every epoch reads and decodes every file again. To see that the cached
    epochs really read nothing, this solution then deletes the files and runs a third
    epoch: the cached pipeline still yields every image, the uncached one finds none.
    Returns both pipelines' seconds for epochs 1 and 2 and images in epochs 1 to 3.
    """
    source = _first_photos("train", per_class)
    out = {}
    for cache in (True, False):
        copy = Path(folder) / f"cache_{cache}"
        copy.mkdir(parents=True)
        paths = [copy / f"{i}_{Path(p).name}" for i, p in enumerate(source.paths)]
        for src, dst in zip(source.paths, paths, strict=True):
            shutil.copyfile(src, dst)
        images = pl.ImageList(paths, source.labels, source.class_names)
        ds = pl.build_dataset(images, image_size=(32, 32), batch_size=32, cache=cache)
        counts = []
        for epoch in (1, 2, 3):
            if epoch == 3:
                shutil.rmtree(copy)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the uncached third epoch skips every file
                counts.append(sum(int(x.shape[0]) for x, _ in ds))
            if epoch < 3:
                out[f"cache={cache} epoch {epoch} s"] = time.perf_counter() - start
        out[f"cache={cache} images"] = counts
    return out


def exercise_5(folder: str | os.PathLike, image_size: int = 96) -> dict:
    """A folder of photos of every size, at ``IMAGE_SIZE = 96``.

    Here the "own photos" are scikit-image's and scikit-learn's sample photos (512x512
    to 640x427, none square) sorted into two classes. ``list_folder`` takes the class
    names from the sub-folders, ``build_dataset`` resizes every photo to 96x96, and
    nothing else in the notebook changes; larger images only cost time and memory
    (9x the pixels of 32x32). Returns the class names and the batch shape.
    """
    import skimage.data
    from PIL import Image
    from sklearn.datasets import load_sample_images

    root = Path(folder) / "own_photos"
    samples = load_sample_images().images
    classes = {
        "animal": {"cat": skimage.data.chelsea(), "flower": samples[1]},
        "object": {"coffee": skimage.data.coffee(), "rocket": skimage.data.rocket()},
    }
    for cls, photos in classes.items():
        (root / cls).mkdir(parents=True)
        for name, photo in photos.items():
            Image.fromarray(photo).save(root / cls / f"{name}.jpg")
    images = pl.list_folder(root)
    ds = pl.build_dataset(images, image_size=(image_size, image_size), batch_size=4)
    x, _ = next(iter(ds))
    return {"class_names": images.class_names, "batch_shape": tuple(x.shape)}
