"""A run's input: ``epoch -> dataset`` of global batches, from arrays
(:func:`array_epochs`) or sharded TFRecords (:func:`tfrecord_epochs`).

Data order is a function of the epoch (shuffled with ``seed + epoch``), so a resumed run
sees the batches the uninterrupted run saw. Sharded input: TFRecord shards
(``helpers.pipeline.export_tfrecords``) read with ``AutoShardPolicy.FILE``: each worker
reads only its own shard files. Give at least as many shards as workers (better, a
multiple).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from helpers.distribute.cluster import DistributeError


def _options(policy):
    """Sharding by ``policy``, a fixed order, and no tf.data autotuning: the Trainer
    releases an iterator every epoch, and with the autotuner that release stalls
    (:func:`helpers.pipeline.engine.without_autotuner`). These pipelines have nothing to
    tune (fixed prefetch; the TFRecord parse map runs at TensorFlow's default parallelism).
    """
    from helpers.pipeline.engine import without_autotuner

    options = without_autotuner()
    options.experimental_distribute.auto_shard_policy = policy
    options.deterministic = True
    return options


def array_epochs(x: np.ndarray, y: np.ndarray, global_batch: int, *, seed: int = 0):
    """``epoch -> dataset`` of global batches of ``(uint8 images, int labels)``, shuffled
    with ``seed + epoch``; every worker holds the arrays and keeps its share of each batch
    (``AutoShardPolicy.DATA``). Returns ``(function, steps per epoch)``."""
    from helpers.quiet import tf

    steps = len(y) // global_batch
    if steps < 1:
        raise DistributeError(f"{len(y)} images do not fill one global batch of {global_batch}")
    base = tf.data.Dataset.from_tensor_slices((x, np.asarray(y, np.int32)))

    def epoch(e: int):
        ds = base.shuffle(len(y), seed=seed + e, reshuffle_each_iteration=False)
        ds = ds.batch(global_batch, drop_remainder=True).repeat().prefetch(2)
        return ds.with_options(_options(tf.data.experimental.AutoShardPolicy.DATA))

    return epoch, steps


def tfrecord_epochs(
    folder: str | os.PathLike,
    global_batch: int,
    *,
    image_size: tuple[int, int],
    channels: int = 3,
    seed: int = 0,
    workers: int = 1,
    shuffle_buffer: int = 10_000,
):
    """``epoch -> dataset`` over the shards of a ``helpers.pipeline.export_tfrecords`` folder,
    read with ``AutoShardPolicy.FILE`` (each worker its own files); returns
    ``(function, steps per epoch, class names)``.

    Steps per epoch are counted on the smallest share a worker can get, so no worker runs
    out before the others (a worker that stops early leaves the rest waiting in a
    collective); the dataset repeats, and the loop takes exactly that many steps.
    """
    from helpers import pipeline as pl
    from helpers.quiet import tf

    manifest = pl.read_manifest(folder)
    shards = manifest["shards"]
    if len(shards) < workers:
        raise DistributeError(
            f"{folder} holds {len(shards)} shard(s) for {workers} workers: with "
            "AutoShardPolicy.FILE each worker needs a file of its own; export with "
            f"shards={workers} or a multiple"
        )
    files = [str(Path(folder) / s["file"]) for s in shards]
    counts = sorted(int(s["count"]) for s in shards)
    smallest_share = sum(counts[: len(counts) // workers])
    steps = smallest_share // max(global_batch // workers, 1)
    if steps < 1:
        raise DistributeError(
            f"each worker's share of {folder} ({smallest_share} images) does not fill one "
            f"per-worker batch of {global_batch // workers}"
        )
    features = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }
    size = tuple(int(s) for s in image_size)

    def parse(record):
        parsed = tf.io.parse_single_example(record, features)
        image = pl.resize(pl.decode(parsed["image"], channels), size)
        return tf.ensure_shape(image, (*size, channels)), tf.cast(parsed["label"], tf.int32)

    def epoch(e: int):
        ds = tf.data.Dataset.from_tensor_slices(files)
        ds = ds.shuffle(len(files), seed=seed + e, reshuffle_each_iteration=False)
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=2, deterministic=True)
        ds = ds.map(parse, num_parallel_calls=pl.AUTOTUNE, deterministic=True)
        ds = ds.shuffle(shuffle_buffer, seed=seed + e, reshuffle_each_iteration=False)
        ds = ds.batch(global_batch, drop_remainder=True).repeat().prefetch(2)
        return ds.with_options(_options(tf.data.experimental.AutoShardPolicy.FILE))

    return epoch, steps, list(manifest["class_names"])
