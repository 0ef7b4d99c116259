"""Sharded TFRecord files: write a data set once, read it back with ``tf.data``, interleaved.

Why: a folder of 100,000 small files is slow to list and to open, on a network disk
above all, and it does not split well between machines. A few large shards are read
sequentially (fast on any disk), several at a time (``interleave``), and each worker
of a multi-machine job can take its own shards. Nothing needs to fit in memory.

Layout of an export folder::

    data-00000-of-00004.tfrecord ... data-00003-of-00004.tfrecord
    manifest.json      class names, count per shard, and each record's source name

Each record holds the image's encoded bytes as they were on disk (no re-encoding, so
no quality loss and no growth; formats TensorFlow cannot decode are stored as PNG),
its label and its position. Shards are filled round-robin, so every shard holds every
class. Each file is written under a temporary name and renamed when complete, and the
manifest is written last: a crash leaves either no export or a whole one.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from helpers.files import write_atomic
from helpers.images import TENSORFLOW_EXTENSIONS, read_image_file
from helpers.pipeline.augment import model_step
from helpers.pipeline.decode import decode_tf, pillow_decode, resize
from helpers.pipeline.engine import AUTOTUNE, MemoryCache, SkipReport, SkipTracker, assemble
from helpers.pipeline.options import DEFAULT_IMAGE_SIZE, PipelineError, PipelineOptions
from helpers.pipeline.sources import ImageList
from helpers.quiet import tf

MANIFEST = "manifest.json"
FORMAT = "course-tfrecords"
VERSION = 1
_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "index": tf.io.FixedLenFeature([], tf.int64),
}


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array[:, :, 0] if array.shape[-1] == 1 else array).save(buf, format="PNG")
    return buf.getvalue()


def _encoded(path: str) -> bytes:
    """The bytes to store for one file; raises if Pillow cannot decode it."""
    data = read_image_file(path)  # refused by its size on disk before it is read
    array = pillow_decode(data)  # checks the file decodes before it enters an export
    if os.path.splitext(path)[1].lower() in TENSORFLOW_EXTENSIONS:
        return data
    return _png(array)


def _example(image: bytes, label: int, index: int) -> bytes:
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(index)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def export_tfrecords(
    source: ImageList | tuple[np.ndarray, np.ndarray],
    out_dir: str | os.PathLike,
    *,
    shards: int = 4,
    class_names: Sequence[str] | None = None,
    prefix: str = "data",
    overwrite: bool = False,
) -> dict:
    """Write ``source`` to ``shards`` TFRecord files in ``out_dir``; return the manifest.

    ``source`` is an :class:`~helpers.pipeline.ImageList` (files are stored as they
    are) or ``(images, labels)`` uint8 arrays (stored as PNG; ``class_names`` names
    the labels). A file that cannot be decoded is left out and listed in the
    manifest's ``skipped``. An existing export is only replaced with ``overwrite``.
    """
    if shards < 1:
        raise PipelineError(f"shards must be at least 1, not {shards}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    existing = sorted(out.glob(f"{prefix}-*.tfrecord")) + sorted(out.glob(MANIFEST))
    if existing and not overwrite:
        raise PipelineError(
            f"{out} already holds an export ({existing[0].name}, ...); pass overwrite=True "
            "to replace it or choose another folder"
        )
    if isinstance(source, ImageList):
        names, labels, class_names = source.paths, source.labels, source.class_names

        def encode(i):
            return _encoded(names[i])

    else:
        x, y = source
        x, labels = np.asarray(x), np.asarray(y, dtype=np.int64).reshape(-1)
        if x.dtype != np.uint8 or x.ndim not in (3, 4) or len(x) != len(labels):
            raise PipelineError(
                f"need uint8 images (N, H, W[, C]) and N labels; got {x.dtype} "
                f"{x.shape} and {labels.shape}"
            )
        x = x[..., None] if x.ndim == 3 else x
        names = [f"array:{i}" for i in range(len(x))]
        if class_names is None:
            class_names = [str(c) for c in range(int(labels.max()) + 1)]

        def encode(i):
            return _png(x[i])

    if len(names) == 0:
        raise PipelineError("nothing to export: the source holds no images")
    final = [out / f"{prefix}-{k:05d}-of-{shards:05d}.tfrecord" for k in range(shards)]
    temporary = [p.with_name(f".tmp-{p.name}") for p in final]
    counts, skipped, kept = [0] * shards, {}, []
    writers = [tf.io.TFRecordWriter(str(p)) for p in temporary]
    try:
        for i, (name, label) in enumerate(zip(names, labels, strict=True)):
            try:
                data = encode(i)
            except Exception as exc:  # noqa: BLE001 - any decoder failure skips the file
                skipped[name] = f"{type(exc).__name__}: {exc}"
                continue
            k = len(kept) % shards
            writers[k].write(_example(data, int(label), len(kept)))
            counts[k] += 1
            kept.append((name, int(label)))
        for writer in writers:
            writer.close()
        if not kept:
            raise PipelineError(f"no image in the source could be decoded: {skipped}")
        for tmp, path in zip(temporary, final, strict=True):
            os.replace(tmp, path)
    except BaseException:
        for writer in writers:
            writer.close()
        for tmp in temporary:
            tmp.unlink(missing_ok=True)
        raise
    for stale in set(out.glob(f"{prefix}-*.tfrecord")) - set(final):
        stale.unlink()
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "class_names": list(class_names),
        "count": len(kept),
        "shards": [{"file": p.name, "count": c} for p, c in zip(final, counts, strict=True)],
        "names": [name for name, _ in kept],
        "labels": [label for _, label in kept],
        "skipped": skipped,
    }
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
    return manifest


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of an export folder, checked."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise PipelineError(
            f"{path} is missing: {folder} is not a finished export; run export_tfrecords"
        )
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT or manifest.get("version", 0) > VERSION:
        raise PipelineError(f"{path} is not a version-{VERSION} {FORMAT} manifest")
    return manifest


def read_tfrecords(
    folder: str | os.PathLike,
    options: PipelineOptions | None = None,
    *,
    cycle_length: int = 4,
    report: SkipReport | None = None,
    **overrides,
) -> tf.data.Dataset:
    """Batches from an export folder, the same as ``helpers.pipeline.build_dataset`` gives.

    The shard files are listed (shuffled with ``shuffle``), then read ``cycle_length``
    at a time with ``interleave(num_parallel_calls=AUTOTUNE, deterministic=False)``:
    whichever shard has a record ready supplies the next one. ``cache`` defaults to
    False here: TFRecords are for data that need not fit in memory.
    """
    o = PipelineOptions.of(options, **overrides).resolved(
        image_size=DEFAULT_IMAGE_SIZE, channels=3, cache=False
    )
    channels, resize_mode, antialias = o.channels, o.resize_mode, o.antialias
    shuffle, seed, cache = o.shuffle, o.seed, o.cache
    manifest = read_manifest(folder)
    files = [str(Path(folder) / s["file"]) for s in manifest["shards"]]
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise PipelineError(f"shard files listed in the manifest are missing: {missing}")
    n = manifest["count"]
    class_names = manifest["class_names"]
    to_model = model_step(
        num_classes=len(class_names),
        channels=channels,
        augment=o.augment,
        normalize=o.normalize,
        label_mode=o.label_mode,
    )
    size = o.image_size
    tracker = SkipTracker(manifest["names"], report)
    labels = np.asarray(manifest["labels"], np.int32)
    memory = MemoryCache(n, size, channels, labels) if cache is True else None

    def load(record):
        parsed = tf.io.parse_single_example(record, _FEATURES)
        index = tf.cast(parsed["index"], tf.int32)
        image = resize(decode_tf(parsed["image"], channels), size, resize_mode, antialias=antialias)
        return image, tf.cast(parsed["label"], tf.int32), index

    shard_files = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        shard_files = shard_files.shuffle(len(files), seed=seed)
    records = shard_files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(cycle_length, len(files)),
        num_parallel_calls=AUTOTUNE,
        deterministic=False,
    )
    decoded = records.map(load, num_parallel_calls=AUTOTUNE, deterministic=False).ignore_errors()
    ds = assemble(
        decoded,
        n=n,
        tracker=tracker,
        memory=memory,
        to_model=to_model,
        batch_size=o.batch_size,
        shuffle=shuffle,
        shuffle_buffer=o.shuffle_buffer,
        seed=seed,
        cache=cache,
        drop_remainder=o.drop_remainder,
    )
    ds.class_names = list(class_names)
    return ds
