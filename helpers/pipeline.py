"""From images on disk (a catalog split, a class-per-folder tree) or arrays to a ``tf.data``
pipeline: parallel decode, cache, shuffle, batch, augment, prefetch.

Why ``tf.data`` and not the seed's ``ImageDataGenerator``: the legacy generator decodes
one image at a time in Python (Pillow, one core, the GIL) and re-decodes every file in
every epoch. Here decoding runs in TensorFlow's C++ thread pool on every core, the
decoded images are cached after the first pass (later epochs touch no file at all and
gather whole batches from memory, see :class:`MemoryCache`), and the next batch is
prepared while the model trains on this one (prefetch).
``benchmarks/pipeline_throughput.py`` measures the difference.

Images come out with the channels the model expects, whatever their mode on disk:
grayscale (L), grayscale with alpha (LA), palette (P), RGB, RGBA, CMYK JPEG and 16-bit
PNG all become ``channels`` = 1 or 3 uint8 channels (alpha is composited over a white
background, 16-bit values are scaled to 8 bits). TensorFlow decodes JPEG, PNG, GIF,
BMP and WebP itself; anything else Pillow can read (TIFF, ...) goes through Pillow.
EXIF orientation is not applied (neither tf.io nor Keras applies it): normalize it when
the images are acquired.

A file that cannot be decoded (truncated, corrupt, not an image) is skipped when the
pipeline meets it, mid-epoch, and reported: a warning names the file and the reason,
and ``dataset.skip_report`` keeps the list. One bad file among thousands should cost
one image, not the training run.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
RESIZE_MODES = ("stretch", "crop", "pad")
LABEL_MODES = ("int", "categorical")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")
# Magic numbers of the formats tf.io.decode_image reads; other bytes go through Pillow.
_TF_MAGIC = ((0, b"\xff\xd8\xff"), (0, b"\x89PNG"), (0, b"GIF8"), (0, b"BM"), (8, b"WEBP"))
TF_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
_WHITE = 255.0
_LUMA = (0.299, 0.587, 0.114)


class PipelineError(ValueError):
    """Bad input to the pipeline (no images, unknown option); nothing was built."""


# -- what to read ---------------------------------------------------------------------


@dataclass
class ImageList:
    """Image files with integer labels and the class names the labels index."""

    paths: list[str]
    labels: np.ndarray
    class_names: list[str]

    def __post_init__(self):
        self.paths = [str(p) for p in self.paths]
        self.labels = np.asarray(self.labels, dtype=np.int32).reshape(-1)
        if len(self.paths) != len(self.labels):
            raise PipelineError(
                f"{len(self.paths)} paths but {len(self.labels)} labels; give one label per path"
            )
        if len(self.labels) and (
            self.labels.min() < 0 or self.labels.max() >= len(self.class_names)
        ):
            raise PipelineError(
                f"labels must lie in 0..{len(self.class_names) - 1} (one per class name)"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"ImageList({len(self)} images, classes {self.class_names})"


def list_folder(root: str | os.PathLike) -> ImageList:
    """The images of a class-per-folder tree (``root/<class>/<image>``).

    Classes are the sub-folder names in sorted order, as in ``flow_from_directory`` and
    ``image_dataset_from_directory``, so label 3 means the same class in all three.
    """
    root = Path(root)
    if not root.is_dir():
        raise PipelineError(
            f"{root} is not a folder; give a class-per-folder tree such as root/cat/1.jpg"
        )
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, labels = [], []
    for label, folder in enumerate(class_dirs):
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for name in sorted(filenames):
                if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                    paths.append(os.path.join(dirpath, name))
                    labels.append(label)
    if not paths:
        raise PipelineError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) in class sub-folders of {root}; "
            "lay the images out as root/<class>/<image>"
        )
    return ImageList(paths, labels, [p.name for p in class_dirs])


def list_catalog(
    catalog,
    split: str | None = "train",
    *,
    annotator: str | None = None,
    statuses: Sequence[str] = ("labeled",),
    dataset: str | None = None,
) -> ImageList:
    """The labeled images of one catalog split, with one annotator's labels.

    ``annotator`` defaults to the catalog's only annotator, or to ``"import"`` (labels
    that came with a public data set) when there are several. Images without a label
    from that annotator, or whose label status is not in ``statuses`` (by default
    "unsure" and "skipped" are left out), are not listed: a model should not learn
    from a label its annotator doubted.
    """
    annotators = catalog.annotators()
    if annotator is None:
        if len(annotators) == 1:
            annotator = annotators[0]
        elif "import" in annotators:
            annotator = "import"
        else:
            raise PipelineError(
                f"the catalog has labels from {annotators or 'no annotator'}; "
                "pass annotator= to choose whose labels to train on"
            )
    elif annotator not in annotators:
        raise PipelineError(f"no labels from annotator {annotator!r}; known: {annotators}")
    class_names = catalog.classes()
    index = {name: i for i, name in enumerate(class_names)}
    labels = {
        row["image_id"]: row["class_name"]
        for row in catalog.labels(annotator)
        if row["status"] in statuses and row["class_name"] is not None
    }
    paths, ys = [], []
    for row in catalog.images(dataset=dataset, split=split):
        if row["id"] in labels:
            paths.append(str(Path(catalog.root) / row["path"]))
            ys.append(index[labels[row["id"]]])
    if not paths:
        raise PipelineError(
            f"no images labeled by {annotator!r} with status in {tuple(statuses)} in split "
            f"{split!r}; label some images or assign splits (Catalog.set_splits) first"
        )
    return ImageList(paths, ys, class_names)


# -- decoding -------------------------------------------------------------------------


def pillow_decode(data: bytes) -> np.ndarray:
    """Decode image bytes with Pillow to uint8 (H, W, C), C being 1, 2, 3 or 4.

    The fallback for formats TensorFlow cannot read. 16-bit and 32-bit integer modes are
    scaled from 0..65535 to 0..255; palette and bilevel images become RGB(A) or L.
    """
    from PIL import Image

    if isinstance(data, np.ndarray):  # a scalar string tensor arrives as a 0-d array
        data = data.item()
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        mode = im.mode
        if mode.startswith("I"):
            array = np.asarray(im).astype(np.float64)
            array = np.clip(np.round(array / 257.0), 0, 255).astype(np.uint8)
        else:
            if mode not in ("L", "LA", "RGB", "RGBA"):
                has_alpha = "A" in im.getbands() or "transparency" in im.info
                if mode in ("1", "F"):
                    target = "L"
                else:
                    target = "RGBA" if has_alpha else "RGB"
                im = im.convert(target)
            array = np.asarray(im, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array)


def _composite(color: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """Alpha-blend over white: transparent pixels often hold arbitrary colour (often black)."""
    a = tf.cast(alpha, tf.float32) / 255.0
    out = tf.cast(color, tf.float32) * a + _WHITE * (1.0 - a)
    return tf.cast(tf.round(out), tf.uint8)


def _rgb_to_gray(rgb: tf.Tensor) -> tf.Tensor:
    """ITU-R 601 luma, the weights of Pillow's ``convert("L")`` and of JPEG's Y channel."""
    gray = tf.tensordot(tf.cast(rgb, tf.float32), tf.constant(_LUMA), 1)
    return tf.cast(tf.round(gray), tf.uint8)[..., None]


def to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """Turn uint8 (H, W, 1|2|3|4) into (H, W, channels): gray, gray+alpha, RGB, RGBA in.

    No branching: an opaque alpha plane is appended and a table picks, for each input
    channel count, which planes make up RGBA; then RGBA is composited over white. One
    graph serves every mode, so a PNG folder mixing modes needs no per-file Python.
    """
    if channels not in (1, 3):
        raise PipelineError(f"channels must be 1 (grayscale) or 3 (RGB), not {channels}")
    shape = tf.shape(image)
    opaque = tf.fill(tf.concat([shape[:-1], [1]], 0), tf.constant(255, tf.uint8))
    planes = tf.constant([[0, 0, 0, 1], [0, 0, 0, 1], [0, 1, 2, 3], [0, 1, 2, 3]])
    rgba = tf.gather(tf.concat([image, opaque], -1), planes[shape[-1] - 1], axis=-1)
    rgb = _composite(rgba[..., :3], rgba[..., 3:])
    out = rgb if channels == 3 else _rgb_to_gray(rgb)
    return tf.ensure_shape(out, [None] * (len(image.shape) - 1) + [channels])


def decode_jpeg(data: tf.Tensor, channels: int = 3) -> tf.Tensor:
    """JPEG bytes (gray, RGB or CMYK) to uint8 (H, W, channels): one decoder call.

    TensorFlow converts CMYK and gray JPEGs to RGB itself; it cannot give one channel
    from CMYK, so grayscale is computed from RGB.
    """
    image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, 3])
    return image if channels == 3 else _rgb_to_gray(image)


def decode_tf(data: tf.Tensor, channels: int = 3) -> tf.Tensor:
    """JPEG, PNG (8 or 16 bit, any mode), GIF (first frame), BMP or WebP bytes to uint8."""
    image = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
    return to_channels(tf.ensure_shape(image, [None, None, None]), channels)


def decode_pillow(data: tf.Tensor, channels: int = 3) -> tf.Tensor:
    """Any format Pillow reads (TIFF, ...), through :func:`pillow_decode` (holds the GIL)."""
    image = tf.numpy_function(pillow_decode, [data], tf.uint8, stateful=False)
    image = tf.reshape(image, tf.concat([tf.shape(image)[:2], [-1]], 0))
    return to_channels(tf.ensure_shape(image, [None, None, None]), channels)


def decoder_for(path: str) -> Callable[[tf.Tensor, int], tf.Tensor]:
    """The decoder a file's extension calls for (a misnamed JPEG/PNG still decodes)."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix in (".jpg", ".jpeg"):
        return decode_jpeg
    if suffix in TF_EXTENSIONS:
        return decode_tf
    return decode_pillow


def decode(data: tf.Tensor, channels: int = 3) -> tf.Tensor:
    """Decode encoded image bytes (a scalar string tensor) of any supported format.

    Sniffs the first bytes: TensorFlow's decoder for the formats it reads, Pillow for the
    rest. Works inside ``Dataset.map``; the pipeline itself picks a decoder per file by
    extension instead (:func:`decoder_for`), which saves the branch on every image.
    """
    hits = [tf.equal(tf.strings.substr(data, start, len(m)), m) for start, m in _TF_MAGIC]
    return tf.cond(
        tf.reduce_any(tf.stack(hits)),
        lambda: decode_tf(data, channels),
        lambda: decode_pillow(data, channels),
    )


def resize(
    image: tf.Tensor, size: Sequence[int], mode: str = "stretch", *, antialias: bool = False
) -> tf.Tensor:
    """Resize uint8 (H, W, C) to ``size`` = (height, width) with bilinear interpolation.

    ``stretch`` changes the aspect ratio; ``crop`` scales the shorter side to fit and
    cuts the centre (keeps proportions, loses the borders); ``pad`` scales the longer
    side to fit and fills with black (keeps everything, wastes pixels). ``antialias``
    low-pass filters when shrinking, which avoids moire on large photos made small, at
    a few times the cost; bilinear without it is Keras's default. An image that already
    has the size comes out unchanged either way (no branch needed, which keeps the
    per-image graph short).
    """
    if mode not in RESIZE_MODES:
        raise PipelineError(f"resize mode must be one of {RESIZE_MODES}, not {mode!r}")
    height, width = (int(s) for s in size)
    x = image
    if mode == "stretch":
        x = tf.image.resize(x, (height, width), antialias=antialias)
    elif mode == "pad":
        x = tf.image.resize_with_pad(x, height, width, antialias=antialias)
    else:
        shape = tf.shape(image)
        h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
        scale = tf.maximum(height / h, width / w)
        new_h = tf.maximum(height, tf.cast(tf.math.ceil(h * scale), tf.int32))
        new_w = tf.maximum(width, tf.cast(tf.math.ceil(w * scale), tf.int32))
        x = tf.image.resize(x, tf.stack([new_h, new_w]), antialias=antialias)
        top, left = (new_h - height) // 2, (new_w - width) // 2
        x = tf.slice(x, tf.stack([top, left, 0]), [height, width, -1])
    x = tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(x, [height, width, image.shape[-1]])


def load_image(
    path: str | os.PathLike,
    image_size: Sequence[int] | None = None,
    *,
    channels: int = 3,
    resize_mode: str = "stretch",
    antialias: bool = False,
) -> np.ndarray:
    """One file as a uint8 array, through exactly the pipeline's decode (and resize)."""
    image = decode(tf.io.read_file(str(path)), channels)
    if image_size is not None:
        image = resize(image, image_size, resize_mode, antialias=antialias)
    return image.numpy()


# -- skipped files --------------------------------------------------------------------


@dataclass
class SkipReport:
    """The files a pipeline skipped because they could not be decoded, with reasons."""

    skipped: dict[str, str] = field(default_factory=dict)
    passes: int = 0

    def __len__(self) -> int:
        return len(self.skipped)

    def __str__(self) -> str:
        if not self.skipped:
            return f"no file skipped in {self.passes} complete pass(es)"
        lines = [f"{len(self.skipped)} file(s) skipped (could not be decoded):"]
        lines += [f"  {path}: {reason}" for path, reason in self.skipped.items()]
        return "\n".join(lines)


def _reason(path: str) -> str:
    """Why a file failed, found again with Pillow (TensorFlow's error does not say which)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    try:
        pillow_decode(data)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the reason itself
        return f"{type(exc).__name__}: {exc}"
    return "TensorFlow's decoder rejected it"


class SkipTracker:
    """Finds the files a pass over the data did not deliver, and reports them by name.

    TensorFlow's ``ignore_errors`` drops an element whose decoding failed but does not
    say which. So the indices of each batch that did come through are marked in a
    boolean variable (:meth:`mark`, one graph op per batch, no Python), and a stage
    placed after the last batch (:meth:`end_of_pass`) hands the unmarked indices to
    Python once per pass, which names them, finds the reason with Pillow, warns and
    clears the marks.
    """

    def __init__(self, names: Sequence[str], report: SkipReport | None = None):
        self.names = [str(n) for n in names]
        self.report = report if report is not None else SkipReport()
        with tf.device("/CPU:0"):
            self.seen = tf.Variable(tf.zeros([len(self.names)], tf.bool), trainable=False)

    def mark(self, indices: tf.Tensor) -> tf.Operation:
        """Mark a batch of indices as delivered (one scatter per batch, not per image)."""
        indices = tf.reshape(indices, [-1, 1])
        return self.seen.scatter_nd_update(indices, tf.ones(tf.shape(indices)[:1], tf.bool))

    def _report_pass(self, seen: np.ndarray) -> bool:
        new = {}
        for i in np.flatnonzero(~seen):
            name = self.names[i]
            if name not in self.report.skipped:
                new[name] = _reason(name)
        self.report.skipped.update(new)
        self.report.passes += 1
        if new:
            listed = "; ".join(f"{p} ({r})" for p, r in new.items())
            warnings.warn(
                f"skipped {len(new)} image(s) that could not be decoded: {listed}. Remove or "
                "replace them; the rest of the data set was used.",
                RuntimeWarning,
                stacklevel=1,  # raised from inside TensorFlow: point at this helper
            )
        return False

    def end_of_pass(self, element_spec, then: Callable | None = None) -> tf.data.Dataset:
        """An empty dataset with ``element_spec`` that reports when it is reached.

        ``then(seen)``, if given, returns an op run with the pass's marks before they
        are cleared (the memory cache uses it to seal itself).
        """

        def report(_):
            seen = self.seen.read_value()
            keep = tf.numpy_function(self._report_pass, [seen], tf.bool)
            ops = [keep] if then is None else [keep, then(seen)]
            with tf.control_dependencies(ops):
                cleared = self.seen.assign(tf.zeros_like(self.seen))
            with tf.control_dependencies([cleared]):
                return tf.identity(keep)

        def placeholder(_):
            return tf.nest.map_structure(
                lambda s: tf.zeros([d or 1 for d in s.shape], s.dtype), element_spec
            )

        tail = tf.data.Dataset.from_tensors(0).map(report).filter(lambda keep: keep)
        return tail.map(placeholder)


# -- the pipeline ---------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel mean and standard deviation of a training split, pixel values in [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    count: int

    def __post_init__(self):
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise PipelineError(f"need one positive std per channel mean: {self}")


def _normalizer(normalize, channels: int) -> Callable[[tf.Tensor], tf.Tensor]:
    if normalize is None or normalize == "none":
        return lambda x: x
    if normalize == "unit":
        return lambda x: x / 255.0
    if isinstance(normalize, ChannelStats):
        mean, std = normalize.mean, normalize.std
    elif isinstance(normalize, tuple | list) and len(normalize) == 2:
        mean, std = normalize
    else:
        raise PipelineError(
            f"normalize must be 'unit', 'none', ChannelStats or (mean, std), not {normalize!r}"
        )
    mean = np.broadcast_to(np.asarray(mean, np.float32), (channels,)).copy()
    std = np.broadcast_to(np.asarray(std, np.float32), (channels,)).copy()
    if (std <= 0).any():
        raise PipelineError(f"standard deviations must be positive, not {std}")
    return lambda x: (x / 255.0 - mean) / std


class MemoryCache:
    """Decoded images kept in one uint8 variable, and epochs that gather batches from it.

    ``Dataset.cache()`` followed by ``shuffle`` and ``batch`` moves every image through
    three stages one at a time, every epoch; on 2 cores that caps a cached epoch near
    140,000 small images a second. Here the first pass writes each batch of decoded
    images into their rows of a variable (:meth:`put`); at the end of the
    pass the rows that decoded are sealed (:meth:`seal`), and each later epoch draws
    one random permutation and gathers whole batches (:meth:`epochs`): per-batch work
    only. The cost is memory for N x H x W x C bytes, allocated up front; pass a file
    path as ``cache`` for data larger than memory.
    """

    def __init__(self, n: int, size: Sequence[int], channels: int, labels: np.ndarray):
        with tf.device("/CPU:0"):
            self.images = tf.Variable(
                tf.zeros([n, size[0], size[1], channels], tf.uint8), trainable=False
            )
            self.valid = tf.Variable(
                tf.zeros([0], tf.int32), shape=tf.TensorShape([None]), trainable=False
            )
            self.full = tf.Variable(False, trainable=False)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.labels = tf.constant(labels, tf.int32)

    def put(self, indices: tf.Tensor, images: tf.Tensor) -> tf.Operation:
        """Store a batch of ``images`` in rows ``indices`` (one scatter per batch)."""
        return self.images.scatter_nd_update(tf.reshape(indices, [-1, 1]), images)

    def seal(self, seen: tf.Tensor) -> tf.Operation:
        """Mark the cache complete, holding the rows in ``seen`` (the images that decoded)."""
        stored = self.valid.assign(tf.cast(tf.reshape(tf.where(seen), [-1]), tf.int32))
        with tf.control_dependencies([stored]):
            return self.full.assign(True)

    def epochs(
        self,
        batch_size: int,
        shuffle: bool,
        seed: int | None,
        drop_remainder: bool,
        then: Callable,
    ) -> tf.data.Dataset:
        """One epoch of ``then(uint8 images, labels)`` batches per iteration.

        ``then`` (the per-batch step) runs in the same function as the gather: one
        stage per batch, not two.
        """

        # Each epoch's permutation is drawn from (seed, epoch number): reproducible, and
        # different every epoch (a stateful op would restart with each new iterator).
        base = int(np.random.randint(2**31)) if seed is None else int(seed)

        def one_epoch(_):
            rows = self.valid.read_value()
            if shuffle:
                key = tf.stack([tf.constant(base, tf.int64), self.epoch.assign_add(1)])
                rows = tf.random.experimental.stateless_shuffle(rows, seed=key)
            count = tf.size(rows)
            batches = count // batch_size
            if not drop_remainder:
                batches = (count + batch_size - 1) // batch_size

            def gather(b):
                b = tf.cast(b, tf.int32)
                picked = rows[b * batch_size : (b + 1) * batch_size]
                return then(tf.gather(self.images, picked), tf.gather(self.labels, picked))

            return tf.data.Dataset.range(tf.cast(batches, tf.int64)).map(
                gather, num_parallel_calls=AUTOTUNE
            )

        return tf.data.Dataset.from_tensors(0).flat_map(one_epoch)


def model_step(*, num_classes, channels, augment, normalize, label_mode):
    """The per-batch step: float32, augmentation (if any), normalization, labels."""
    if label_mode not in LABEL_MODES:
        raise PipelineError(f"label_mode must be one of {LABEL_MODES}, not {label_mode!r}")
    scale = _normalizer(normalize, channels)

    def to_model(images, labels):
        x = tf.cast(images, tf.float32)
        if augment is not None:
            x = augment(x, training=True)
        y = tf.one_hot(labels, num_classes) if label_mode == "categorical" else labels
        return scale(x), y

    return to_model


def build_dataset(
    images: ImageList,
    *,
    image_size: Sequence[int] = (32, 32),
    channels: int = 3,
    resize_mode: str = "stretch",
    antialias: bool = False,
    batch_size: int = 32,
    shuffle: bool = True,
    shuffle_buffer: int = 10_000,
    seed: int | None = None,
    cache: bool | str = True,
    augment: Callable | None = None,
    normalize="unit",
    label_mode: str = "int",
    drop_remainder: bool = False,
    report: SkipReport | None = None,
) -> tf.data.Dataset:
    """A batched ``tf.data.Dataset`` of ``(images, labels)`` from image files.

    Stages, in order: read and decode every file in parallel on all cores (files that
    fail are skipped and reported), resize to ``image_size`` (``resize_mode`` "stretch",
    "crop" or "pad"; ``antialias``), convert to ``channels`` (1 or 3), cache
    (``cache=True``: in memory, see :class:`MemoryCache`; a file path: TensorFlow's
    cache on disk; False: decode every epoch), shuffle (``seed``; for the disk cache or
    none, through a ``shuffle_buffer``), batch (``batch_size``, ``drop_remainder``),
    ``augment`` (a Keras layer, or any ``f(x, training=True)``, on float batches in
    0..255), ``normalize`` ("unit" to [0, 1], "none", or ChannelStats / (mean, std)
    from :func:`channel_stats`), prefetch. ``label_mode`` "int" or "categorical".

    Each decoder runs as its own parallel ``map``, picked per file by extension (JPEG
    in one call; PNG & co. with mode conversion; Pillow for the rest), so the common
    all-JPEG folder pays for nothing it does not need. Augmentation and normalization
    run per batch, vectorized. The returned dataset has ``class_names`` and
    ``skip_report`` attributes.
    """
    n = len(images)
    if n == 0:
        raise PipelineError("the image list is empty; nothing to build a pipeline from")
    if resize_mode not in RESIZE_MODES:
        raise PipelineError(f"resize_mode must be one of {RESIZE_MODES}, not {resize_mode!r}")
    if channels not in (1, 3):
        raise PipelineError(f"channels must be 1 (grayscale) or 3 (RGB), not {channels}")
    if batch_size < 1:
        raise PipelineError(f"batch_size must be at least 1, not {batch_size}")
    to_model = model_step(
        num_classes=len(images.class_names),
        channels=channels,
        augment=augment,
        normalize=normalize,
        label_mode=label_mode,
    )
    size = tuple(int(s) for s in image_size)
    tracker = SkipTracker(images.paths, report)
    memory = MemoryCache(n, size, channels, images.labels) if cache is True else None
    # The first pass reads the files in a random order (else it would see one class
    # after another); later epochs reshuffle in the cache or the shuffle buffer.
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    routes: dict[Callable, list[int]] = {}
    for i in order:
        routes.setdefault(decoder_for(images.paths[i]), []).append(int(i))
    paths = np.asarray(images.paths)

    def decoded_by(decoder, index):
        def load(path, label, i):
            image = decoder(tf.io.read_file(path), channels)
            return resize(image, size, resize_mode, antialias=antialias), label, i

        index = np.asarray(index, dtype=np.int32)
        files = tf.data.Dataset.from_tensor_slices((paths[index], images.labels[index], index))
        # Out-of-order decoding lets a slow file not hold up the others; keep the order
        # only when asked to (shuffle=False).
        decoded = files.map(load, num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
        return decoded.ignore_errors()

    parts = [decoded_by(decoder, index) for decoder, index in routes.items()]
    if len(parts) == 1:
        decoded = parts[0]
    else:  # keep the order: the k-th element comes from the k-th file's decoder
        route_of = {decoder: k for k, decoder in enumerate(routes)}
        choice = np.asarray([route_of[decoder_for(images.paths[i])] for i in order], np.int64)
        decoded = tf.data.Dataset.choose_from_datasets(
            parts, tf.data.Dataset.from_tensor_slices(choice), stop_on_empty_dataset=False
        )

    def fit(image):
        return resize(image, size, resize_mode, antialias=antialias)

    grouped = None
    if memory is not None and shuffle:
        grouped = _grouped_pass(images, order, routes, tracker, batch_size, channels, fit)

    ds = assemble(
        decoded,
        n=n,
        tracker=tracker,
        memory=memory,
        to_model=to_model,
        batch_size=batch_size,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        cache=cache,
        drop_remainder=drop_remainder,
        batches=grouped,
    )
    ds.class_names = list(images.class_names)
    return ds


def _group_size(batch_size: int) -> int:
    return next(g for g in (16, 8, 4, 2, 1) if batch_size % g == 0)


def _grouped_pass(images, order, routes, tracker, batch_size, channels, fit) -> tf.data.Dataset:
    """The first pass as batches of ``(images, labels, indices)``, decoded 16 per call.

    tf.data spends a few microseconds on every element it moves, and ``ignore_errors``
    stops it from fusing the decode map with the batching; for small images that
    costs more than the decoding. So files are read in groups of up to 16 of the same
    decoder, one ``map`` call per group (TensorFlow still decodes a group's files in
    parallel). A bad file makes its whole group fail, so a repair stage follows:
    every index not yet marked (the files of failed groups and the leftovers that did
    not fill a group) is decoded once more, one file per element, with the failures
    dropped; those are the files then reported.
    """
    g = _group_size(batch_size)
    paths = np.asarray(images.paths)
    decoders = list(routes)
    groups, route_ids = [], []
    for r, decoder in enumerate(decoders):
        index = np.asarray(routes[decoder], dtype=np.int32)
        full = len(index) // g * g
        groups.append(index[:full].reshape(-1, g))
        route_ids.append(np.full(full // g, r, np.int32))
    groups, route_ids = np.concatenate(groups), np.concatenate(route_ids)
    shuffled = np.random.default_rng(int(order[0]) if len(order) else 0).permutation(len(groups))
    groups, route_ids = groups[shuffled], route_ids[shuffled]
    labels = tf.constant(images.labels, tf.int32)
    all_paths = tf.constant(paths)
    route_of_file = np.zeros(len(paths), np.int32)
    for r, decoder in enumerate(decoders):
        route_of_file[routes[decoder]] = r

    def load_group(index, route):
        files = tf.gather(all_paths, index)

        def by(decoder):
            def run():
                return tf.stack(
                    [fit(decoder(tf.io.read_file(files[j]), channels)) for j in range(g)]
                )

            return run

        branches = [by(decoder) for decoder in decoders]
        stacked = branches[0]() if len(branches) == 1 else tf.switch_case(route, branches)
        return stacked, tf.gather(labels, index), index

    main = tf.data.Dataset.from_tensor_slices((groups, route_ids))
    main = main.map(load_group, num_parallel_calls=AUTOTUNE, deterministic=False)
    main = main.ignore_errors().batch(batch_size // g)

    def merge(stacked, group_labels, index):
        shape = tf.shape(stacked)
        index = tf.reshape(index, [-1])
        # Marked here, in a sequential map, so that every mark of the main stream is
        # done before the repair stage reads them.
        with tf.control_dependencies([tracker.mark(index)]):
            flat = tf.concat([[shape[0] * shape[1]], shape[2:]], 0)
            return tf.reshape(stacked, flat), tf.reshape(group_labels, [-1]), index

    main = main.map(merge)
    route_table = tf.constant(route_of_file)

    def load_one(i):
        data = tf.io.read_file(all_paths[i])
        branches = [(lambda d=decoder: fit(d(data, channels))) for decoder in decoders]
        image = branches[0]() if len(branches) == 1 else tf.switch_case(route_table[i], branches)
        return image, labels[i], i

    def repair(_):
        missing = tf.cast(tf.reshape(tf.where(~tracker.seen.read_value()), [-1]), tf.int32)
        again = tf.data.Dataset.from_tensor_slices(missing)
        again = again.map(load_one, num_parallel_calls=AUTOTUNE, deterministic=False)
        return again.ignore_errors().batch(batch_size)

    return main.concatenate(tf.data.Dataset.from_tensors(0).flat_map(repair))


def assemble(
    decoded: tf.data.Dataset,
    *,
    n: int,
    tracker: SkipTracker,
    memory: MemoryCache | None,
    to_model: Callable,
    batch_size: int,
    shuffle: bool,
    shuffle_buffer: int,
    seed: int | None,
    cache: bool | str,
    drop_remainder: bool,
    batches: tf.data.Dataset | None = None,
) -> tf.data.Dataset:
    """From decoded ``(uint8 image, label, index)`` elements to model-ready batches.

    ``batches``, if given, replaces the element stages (cache on disk, shuffle buffer,
    batch) with a first pass that already yields ``(images, labels, indices)`` batches.

    Shared by :func:`build_dataset` and ``helpers.tfrecords.read_tfrecords``: cache on
    disk (if asked), shuffle buffer, batch; then, per batch, mark the indices that came
    through, store the images in the memory cache, apply the per-batch step; the end
    of pass report; prefetch. With a :class:`MemoryCache`, each epoch looks at the
    cache once: empty, it runs the decoding pass (which fills it); full, it gathers
    batches from it. Per image there is only the decode map and the batching.
    """
    ds = decoded
    if cache and memory is None:
        ds = ds.cache(str(cache))
    if shuffle and memory is None:
        ds = ds.shuffle(min(n, shuffle_buffer), seed=seed)

    def deliver(images, labels, indices):
        done = [tracker.mark(indices)]
        if memory is not None:
            done.append(memory.put(indices, images))
        with tf.control_dependencies(done):
            return to_model(tf.identity(images), labels)

    # Batches are cut whole so that every image is marked and cached; a short last
    # batch is dropped only afterwards.
    first = ds.batch(batch_size) if batches is None else batches
    first = first.map(deliver, num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
    seal = None if memory is None else memory.seal
    first = first.concatenate(tracker.end_of_pass(first.element_spec, then=seal))
    if drop_remainder:
        first = first.filter(lambda x, y: tf.shape(x)[0] == batch_size)
    if memory is None:
        ds = first
    else:
        again = memory.epochs(batch_size, shuffle, seed, drop_remainder, then=to_model)
        none, every = tf.constant(0, tf.int64), tf.constant(-1, tf.int64)

        def one_epoch(_):
            full = memory.full.read_value()
            return first.take(tf.where(full, none, every)).concatenate(
                again.take(tf.where(full, every, none))
            )

        ds = tf.data.Dataset.from_tensors(0).flat_map(one_epoch)
    ds = ds.prefetch(AUTOTUNE)
    ds.skip_report = tracker.report
    return ds


def from_folder(root: str | os.PathLike, **options) -> tf.data.Dataset:
    """:func:`build_dataset` over a class-per-folder tree; see :func:`list_folder`."""
    return build_dataset(list_folder(root), **options)


def from_catalog(
    catalog,
    split: str | None = "train",
    *,
    annotator: str | None = None,
    statuses: Sequence[str] = ("labeled",),
    **options,
) -> tf.data.Dataset:
    """:func:`build_dataset` over one catalog split; see :func:`list_catalog`."""
    images = list_catalog(catalog, split, annotator=annotator, statuses=statuses)
    return build_dataset(images, **options)


def from_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    image_size: Sequence[int] | None = None,
    channels: int | None = None,
    resize_mode: str = "stretch",
    antialias: bool = False,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int | None = None,
    augment: Callable | None = None,
    normalize="unit",
    label_mode: str = "int",
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """The same batches as :func:`build_dataset` from uint8 arrays already in memory.

    Images (N, H, W) or (N, H, W, 1|2|3|4) are resized and converted once, then held
    in a :class:`MemoryCache`; nothing is decoded, so nothing can be skipped.
    """
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.int32).reshape(-1)
    if x.dtype != np.uint8:
        raise PipelineError(f"image arrays must be uint8 0..255 (got {x.dtype}); scale them")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 2, 3, 4) or len(x) != len(y) or not len(x):
        raise PipelineError(
            f"need images (N, H, W[, 1|2|3|4]) and N labels; got {x.shape} and {y.shape}"
        )
    if batch_size < 1:
        raise PipelineError(f"batch_size must be at least 1, not {batch_size}")
    channels = channels or (1 if x.shape[-1] in (1, 2) else 3)
    size = tuple(int(s) for s in (image_size if image_size is not None else x.shape[1:3]))
    if class_names is None:
        class_names = [str(c) for c in range(int(y.max()) + 1)]
    class_names = list(class_names)
    if y.min() < 0 or y.max() >= len(class_names):
        raise PipelineError(f"labels must lie in 0..{len(class_names) - 1}")
    to_model = model_step(
        num_classes=len(class_names),
        channels=channels,
        augment=augment,
        normalize=normalize,
        label_mode=label_mode,
    )
    memory = MemoryCache(len(x), size, channels, y)
    converted = tf.data.Dataset.from_tensor_slices(x).map(
        lambda image: resize(to_channels(image, channels), size, resize_mode, antialias=antialias),
        num_parallel_calls=AUTOTUNE,
    )
    memory.images.assign(np.concatenate(list(converted.batch(4096).as_numpy_iterator())))
    memory.seal(tf.ones([len(x)], tf.bool))
    out = memory.epochs(batch_size, shuffle, seed, drop_remainder, then=to_model)
    out = out.prefetch(AUTOTUNE)
    out.class_names = class_names
    out.skip_report = SkipReport()
    return out


def channel_stats(dataset_or_images, *, image_size=(32, 32), channels: int = 3) -> ChannelStats:
    """Per-channel mean and std over the training split only, in [0, 1] pixel units.

    Pass the *training* ImageList (or a dataset built with ``normalize="none"``, no
    augmentation). Computing them on all data would let the validation and test images
    shape the model's input scaling: a (small) leak of the evaluation data into training.
    """
    if isinstance(dataset_or_images, ImageList):
        dataset_or_images = build_dataset(
            dataset_or_images,
            image_size=image_size,
            channels=channels,
            shuffle=False,
            cache=False,
            normalize="none",
            batch_size=256,
        )
    total = total_sq = None
    count = 0
    for batch in dataset_or_images:
        x = batch[0] if isinstance(batch, tuple | list) else batch
        x = np.asarray(x, dtype=np.float64) / 255.0
        pixels = x.reshape(-1, x.shape[-1])
        s, s2 = pixels.sum(0), (pixels**2).sum(0)
        total = s if total is None else total + s
        total_sq = s2 if total_sq is None else total_sq + s2
        count += len(pixels)
    if not count:
        raise PipelineError("the dataset yielded no images; cannot compute channel statistics")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-12))
    return ChannelStats(tuple(float(m) for m in mean), tuple(float(s) for s in std), count)


def augmentation(
    *,
    flip: str | None = "horizontal",
    rotation: float = 0.05,
    zoom: float = 0.1,
    translation: float = 0.1,
    contrast: float = 0.2,
    brightness: float = 0.2,
    seed: int | None = None,
    name: str = "augmentation",
):
    """A Keras ``Sequential`` of random preprocessing layers, for pixel values 0..255.

    The same object runs in a model (first layers; on the GPU when there is one, only
    while training) or in ``tf.data`` (``build_dataset(augment=...)``; on the CPU,
    overlapping the model's step). Set a factor to 0 (or ``flip=None``) to leave it out.
    """
    import keras

    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip(flip, seed=seed))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, fill_mode="reflect", seed=seed))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, fill_mode="reflect", seed=seed))
    if translation:
        layers.append(
            keras.layers.RandomTranslation(translation, translation, fill_mode="reflect", seed=seed)
        )
    if contrast:
        layers.append(keras.layers.RandomContrast(contrast, value_range=(0, 255), seed=seed))
    if brightness:
        layers.append(keras.layers.RandomBrightness(brightness, value_range=(0, 255), seed=seed))
    if not layers:
        raise PipelineError("every augmentation is switched off; pass augment=None instead")
    return keras.Sequential(layers, name=name)
