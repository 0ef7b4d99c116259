"""Image data sets as NumPy arrays, by name: offline ones first, public ones online.

Offline (no network ever): ``photos`` (the ten classes of the CIFAR-10 photos that
ship with the course, 32x32, see helpers.acquire.photos; all of CIFAR-10 in the
``full`` profile), ``digits`` (scikit-learn: 1,797 real handwritten digits,
8x8), ``lfw_faces`` (scikit-image: 100 faces and 100 non-faces, 25x25) and ``shapes``
(generated scenes with class and box ground truth, see helpers.acquire.synthetic).
Online (``keras.datasets``, cached under ``$KERAS_HOME/datasets``, by default
``~/.keras/datasets``): ``mnist``, ``fashion_mnist``, ``cifar10``. Offline, those fail
within seconds with a :class:`DatasetUnavailable` that names the exact cache files to
copy (:data:`CACHE_FILES`) instead of a bare traceback.

Every loader returns uint8 images, (N, H, W) for grayscale or (N, H, W, 3) for colour,
as ``keras.datasets`` does, so notebooks scale them the same way whatever the source.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from helpers.acquire.arrays import ArrayDataset, split_arrays

# CIFAR-10's classes in its own label order (keras.datasets.cifar10 labels 0..9).
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


class DatasetUnavailable(RuntimeError):
    """A public data set could not be fetched (usually: no internet)."""


# What keras.datasets (Keras 3) reads from its cache, relative to <keras home>/datasets.
# Copy these from a machine that loaded the data set once, and it loads offline.
CACHE_FILES: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist.npz",),
    "fashion_mnist": tuple(
        f"fashion-mnist/{name}"
        for name in (
            "train-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
        )
    ),
    # The download cifar-10-python.tar.gz under the name Keras gives it; Keras unpacks it.
    "cifar10": ("cifar-10-batches-py-target_archive",),
}


def keras_cache_dir() -> Path:
    """Where ``keras.datasets`` caches downloads: ``$KERAS_HOME/datasets``, by default
    ``~/.keras/datasets``. Like Keras's ``get_file``, fall back to ``/tmp/.keras`` when
    that folder is missing or read-only (Keras creates it when it is first imported)."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    home = os.path.expanduser(home)
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return Path(home).resolve() / "datasets"


def cache_files(name: str) -> list[Path]:
    """The absolute paths of the files ``keras.datasets`` needs for public data set ``name``."""
    return [keras_cache_dir() / relative for relative in CACHE_FILES[name]]


def _digits(seed: int, test_size: float) -> ArrayDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are counts 0..16 of a 4x4 block; scale them to the usual 0..255.
    x = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return split_arrays(
        "digits",
        x,
        bunch.target.astype(np.int64),
        [str(i) for i in range(10)],
        "UCI optdigits via scikit-learn",
        "CC BY 4.0",
        test_size,
        seed,
    )


def _lfw_faces(seed: int, test_size: float) -> ArrayDataset:
    from skimage.data import lfw_subset

    images = lfw_subset()  # float64 in [0, 1]; the first 100 are faces
    x = np.round(images * 255.0).astype(np.uint8)
    y = np.array([0] * 100 + [1] * (len(images) - 100), dtype=np.int64)
    return split_arrays(
        "lfw_faces",
        x,
        y,
        ["face", "not_face"],
        "Labeled Faces in the Wild subset via scikit-image",
        "research use (LFW)",
        test_size,
        seed,
    )


def _shapes(seed: int, test_size: float) -> ArrayDataset:
    from helpers.acquire import synthetic

    return synthetic.shapes_arrays(seed=seed, test_size=test_size)


def _small_shapes(seed: int, test_size: float) -> ArrayDataset:
    # Small objects (15-35% of the side) anywhere on busy backgrounds, 5,000 of them:
    # hard for the articles' CNN (46% after 15 epochs, measured) and learnable by a
    # net with BatchNorm, augmentation and global pooling (99.7%): the CNN notebook's
    # offline default, where the improvements show.
    from helpers.acquire import synthetic

    return synthetic.shapes_arrays(
        seed=seed, test_size=test_size, n=5000, scale=(0.15, 0.35), name="small_shapes"
    )


def _keras(name: str) -> Callable[[int, float], ArrayDataset]:
    meta = {
        "mnist": ([str(i) for i in range(10)], "Yann LeCun et al.", "CC BY-SA 3.0"),
        "fashion_mnist": (
            [
                "t-shirt",
                "trouser",
                "pullover",
                "dress",
                "coat",
                "sandal",
                "shirt",
                "sneaker",
                "bag",
                "ankle_boot",
            ],
            "Zalando Research",
            "MIT",
        ),
        "cifar10": (
            list(CIFAR10_CLASSES),
            "Alex Krizhevsky (CIFAR)",
            "MIT-like, see the CIFAR page",
        ),
    }[name]

    def load(seed: int, test_size: float) -> ArrayDataset:
        from helpers.quiet import keras

        module = getattr(keras.datasets, name)
        try:
            (x_tr, y_tr), (x_te, y_te) = module.load_data()
        except Exception as exc:  # keras raises a plain Exception on URL fetch failure
            files = cache_files(name)
            missing = [str(f) for f in files if not f.exists()] or [str(f) for f in files]
            extra = (
                " (the file cifar-10-python.tar.gz from the CIFAR page, renamed)"
                if name == "cifar10"
                else ""
            )
            first = (str(exc).splitlines() or [""])[0][:200]
            raise DatasetUnavailable(
                f"Could not load {name!r} through keras.datasets ({type(exc).__name__}: "
                f"{first}). With no internet, copy {' and '.join(missing)}{extra} from a "
                f"machine that has loaded it once (the folder is $KERAS_HOME/datasets, "
                f"default ~/.keras/datasets), or use an offline data set: "
                f"{', '.join(OFFLINE)} (the smoke and laptop profiles do)."
            ) from exc
        classes, source, license = meta
        return ArrayDataset(
            name,
            x_tr,
            y_tr.reshape(-1).astype(np.int64),
            x_te,
            y_te.reshape(-1).astype(np.int64),
            classes,
            source,
            license,
        )

    return load


def _photos(seed: int, test_size: float) -> ArrayDataset:
    """The ten classes of the CIFAR-10 photos that ship with the course, with the
    archives' own split (so ``seed`` and ``test_size`` do not apply, as for public sets)."""
    from helpers.acquire.photos import load_ten_classes  # photos builds on this module

    return load_ten_classes()


OFFLINE: dict[str, Callable[[int, float], ArrayDataset]] = {
    "photos": _photos,
    "digits": _digits,
    "lfw_faces": _lfw_faces,
    "shapes": _shapes,
    "small_shapes": _small_shapes,
}
ONLINE: dict[str, Callable[[int, float], ArrayDataset]] = {
    name: _keras(name) for name in ("mnist", "fashion_mnist", "cifar10")
}


def load_arrays(
    name: str, *, seed: int = 42, test_size: float = 0.2, limit: int | None = None
) -> ArrayDataset:
    """Load data set ``name`` as arrays; ``limit`` keeps the first N train and N//4 test images.

    ``seed`` and ``test_size`` shape the split of the offline sets (public sets come
    with their own split). ``limit`` is how the smoke profile shrinks a data set.
    """
    loaders = {**OFFLINE, **ONLINE}
    if name not in loaders:
        raise ValueError(f"Unknown data set {name!r}. Choose one of: {', '.join(loaders)}.")
    data = loaders[name](seed, test_size)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be a positive number of images, not {limit}")
        data.x_train, data.y_train = data.x_train[:limit], data.y_train[:limit]
        n_test = max(1, limit // 4)
        data.x_test, data.y_test = data.x_test[:n_test], data.y_test[:n_test]
    return data
