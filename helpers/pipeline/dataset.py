"""The public builders: from files, a catalog split or arrays to model-ready batches.

From images on disk (a catalog split, a class-per-folder tree) or arrays to a
``tf.data`` pipeline: parallel decode, cache, shuffle, batch, augment, prefetch.

Why ``tf.data`` and not the source articles' ``ImageDataGenerator``: the legacy
generator decodes one image at a time in Python (Pillow, one core, the GIL) and
re-decodes every file in every epoch. Here decoding runs in TensorFlow's C++ thread pool
on every core, the decoded images are cached after the first pass (later epochs touch
no file at all and gather whole batches from memory, see
:class:`~helpers.pipeline.engine.MemoryCache`), and the next batch is prepared while
the model trains on this one (prefetch). ``benchmarks/pipeline_throughput.py``
measures the difference.

A file that cannot be decoded (truncated, corrupt, not an image) is skipped when the
pipeline meets it, mid-epoch, and reported: a warning names the file and the reason,
and ``dataset.skip_report`` keeps the list. One bad file among thousands should cost
one image, not the training run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from helpers.pipeline.augment import ChannelStats, model_step
from helpers.pipeline.decode import decoder_for, resize, to_channels
from helpers.pipeline.engine import (
    AUTOTUNE,
    MemoryCache,
    SkipReport,
    SkipTracker,
    _grouped_pass,
    assemble,
    without_autotuner,
)
from helpers.pipeline.options import DEFAULT_IMAGE_SIZE, PipelineError, PipelineOptions
from helpers.pipeline.sources import ImageList, list_catalog, list_folder, screen
from helpers.quiet import tf


def build_dataset(
    images: ImageList,
    options: PipelineOptions | None = None,
    *,
    report: SkipReport | None = None,
    **overrides,
) -> tf.data.Dataset:
    """A batched ``tf.data.Dataset`` of ``(images, labels)`` from image files.

    ``options`` (a :class:`PipelineOptions`) and/or its fields as keywords say how;
    files become 32x32 RGB unless ``image_size`` and ``channels`` say otherwise.

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
    o = PipelineOptions.of(options, **overrides).resolved(
        image_size=DEFAULT_IMAGE_SIZE, channels=3, cache=True
    )
    images = screen(images)  # no decoder meets a file over the size or pixel limit
    n = len(images)
    if n == 0 and images.left_out:
        raise PipelineError(
            f"every file was left out: {images.left_out[:5]}; replace or remove them"
        )
    if n == 0:
        raise PipelineError("the image list is empty; nothing to build a pipeline from")
    channels, resize_mode, antialias, batch_size = (
        o.channels, o.resize_mode, o.antialias, o.batch_size
    )  # fmt: skip
    shuffle, seed, cache = o.shuffle, o.seed, o.cache
    to_model = model_step(
        num_classes=len(images.class_names),
        channels=channels,
        augment=o.augment,
        normalize=o.normalize,
        label_mode=o.label_mode,
    )
    size = o.image_size
    tracker = SkipTracker(images.paths, report)
    tracker.left_out(images.left_out)
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
        shuffle_buffer=o.shuffle_buffer,
        seed=seed,
        cache=cache,
        drop_remainder=o.drop_remainder,
        batches=grouped,
    )
    ds.class_names = list(images.class_names)
    return ds


def from_folder(
    root: str | os.PathLike, options: PipelineOptions | None = None, **overrides
) -> tf.data.Dataset:
    """:func:`build_dataset` over a class-per-folder tree; see :func:`list_folder`."""
    return build_dataset(list_folder(root), options, **overrides)


def from_catalog(
    catalog,
    split: str | None = "train",
    *,
    annotator: str | None = None,
    statuses: Sequence[str] = ("labeled",),
    options: PipelineOptions | None = None,
    **overrides,
) -> tf.data.Dataset:
    """:func:`build_dataset` over one catalog split; see :func:`list_catalog`."""
    images = list_catalog(catalog, split, annotator=annotator, statuses=statuses)
    return build_dataset(images, options, **overrides)


def from_arrays(
    x: np.ndarray,
    y: np.ndarray,
    options: PipelineOptions | None = None,
    *,
    class_names: Sequence[str] | None = None,
    **overrides,
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
    o = PipelineOptions.of(options, **overrides).resolved(
        image_size=x.shape[1:3], channels=1 if x.shape[-1] in (1, 2) else 3, cache=True
    )
    channels, size, resize_mode, antialias = o.channels, o.image_size, o.resize_mode, o.antialias
    if class_names is None:
        class_names = [str(c) for c in range(int(y.max()) + 1)]
    class_names = list(class_names)
    if y.min() < 0 or y.max() >= len(class_names):
        raise PipelineError(f"labels must lie in 0..{len(class_names) - 1}")
    to_model = model_step(
        num_classes=len(class_names),
        channels=channels,
        augment=o.augment,
        normalize=o.normalize,
        label_mode=o.label_mode,
    )
    memory = MemoryCache(len(x), size, channels, y)
    converted = tf.data.Dataset.from_tensor_slices(x).map(
        lambda image: resize(to_channels(image, channels), size, resize_mode, antialias=antialias),
        num_parallel_calls=AUTOTUNE,
    )
    memory.images.assign(np.concatenate(list(converted.batch(4096).as_numpy_iterator())))
    memory.seal(tf.ones([len(x)], tf.bool))
    out = memory.epochs(o.batch_size, o.shuffle, o.seed, o.drop_remainder, then=to_model)
    out = out.prefetch(AUTOTUNE).with_options(without_autotuner())
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
