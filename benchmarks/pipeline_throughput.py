"""Images per second: the source articles' ImageDataGenerator against the helpers tf.data pipeline.

Usage::

    python benchmarks/pipeline_throughput.py --folder DIR [--make 20000]

DIR is a class-per-folder tree of JPEGs (``DIR/<class>/<image>.jpg``); with ``--make N``
an empty or missing DIR is first filled with N generated 32x32 JPEGs
(``helpers.acquire.synthetic.write_class_folders``). Everything runs in this one process on the
same cores, one measurement after the other, after every file has been read once so
that each contender finds the files in the operating system's page cache:

- ``imagedatagenerator``: the articles' recipe, ``ImageDataGenerator(rescale=1./255)
  .flow_from_directory(...)``, one epoch, iterated the way ``model.fit`` does (Keras 3
  runs it single-threaded by default);
- ``decode_ceiling``: read and decode every file on every core, nothing else (no
  resize, cache, shuffle or scaling), one file per ``map`` call: the usual ``tf.data``
  recipe, and what decoding alone allows with it;
- ``decode_ceiling_grouped``: the same with 16 files per ``map`` call, as the
  pipeline's first pass reads them (for 32x32 JPEGs tf.data's per-element overhead
  costs about as much as the decoding, so this ceiling is higher);
- ``pipeline_first_pass``: ``helpers.pipeline.from_folder``, same size, scaling, labels
  and batch size as the generator, its first epoch (decoding, filling the cache);
- ``pipeline_cached_epoch``: the same dataset's later epochs (the median of three);
- ``cached_ceiling``: what a cached epoch allows in ``tf.data`` here: the decoded uint8
  images already in one in-memory tensor, each epoch a shuffled index list cut into
  batches, one ``gather`` per batch and nothing else (no float conversion, no scaling,
  no one-hot labels). Its rate is the per-batch overhead of ``tf.data`` itself, so the
  cached epoch can approach it but not pass it.

The generator is a Python iterator, so it is consumed in a Python loop, as ``fit``
does. The ``tf.data`` datasets are consumed inside TensorFlow (``Dataset.reduce``), as
``fit`` does too (its compiled step calls the iterator): no Python per batch.

On a machine shared with other work the figures swing from run to run, so the whole
set is measured ``--rounds`` times (a fresh pipeline each round); after the figures of
every round come the best of each, and each ratio as the median of the per-round
ratios (the two figures of a round are measured seconds apart, under the same load).
Prints one ``name: value`` line per figure and ends with
``ratio_first_pass_vs_imagedatagenerator``. Timings, not tests: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_folder(folder: Path, n: int) -> None:
    """Fill an empty ``folder`` with ``n`` generated 32x32 JPEGs in class sub-folders."""
    if folder.exists() and any(folder.iterdir()):
        return
    try:
        from helpers.acquire.synthetic import write_class_folders
    except ImportError as exc:
        raise SystemExit(
            f"--make needs helpers.acquire.synthetic.write_class_folders ({exc}); "
            "pass --folder with an existing class-per-folder tree of JPEGs instead"
        ) from exc
    print(f"generating {n} images into {folder}", flush=True)
    write_class_folders(folder, n, size=32, seed=0)


def warm_page_cache(paths: list[str]) -> int:
    """Read every file once so no contender pays for the first disk read."""
    total = 0
    for path in paths:
        with open(path, "rb") as fh:
            total += len(fh.read())
    return total


def _checked(count: int, elapsed: float, n_expected: int) -> float:
    if count != n_expected:
        raise SystemExit(f"expected {n_expected} images in an epoch, got {count}")
    return count / elapsed


def python_rate(batches, n_expected: int) -> float:
    """Images per second while a Python loop takes ``(x, y)`` batches from ``batches``."""
    start = time.perf_counter()
    count = sum(int(batch[0].shape[0]) for batch in batches)
    return _checked(count, time.perf_counter() - start, n_expected)


def graph_rate(dataset, n_expected: int) -> float:
    """Images per second while TensorFlow itself consumes one epoch of ``dataset``."""
    from helpers.quiet import tf

    def add(total, *batch):
        return total + tf.shape(tf.nest.flatten(batch)[0])[0]

    start = time.perf_counter()
    count = int(dataset.reduce(tf.constant(0), add))
    return _checked(count, time.perf_counter() - start, n_expected)


def imagedatagenerator_rate(folder: Path, size: int, batch_size: int, n: int) -> float:
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    flow = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(
        str(folder),
        target_size=(size, size),
        batch_size=batch_size,
        class_mode="categorical",
        shuffle=True,
        seed=0,
    )
    return python_rate((flow[i] for i in range(len(flow))), n)


def decode_ceiling_rate(paths: list[str]) -> float:
    from helpers.quiet import tf

    ds = (
        tf.data.Dataset.from_tensor_slices(paths)
        .map(
            lambda p: tf.io.decode_jpeg(tf.io.read_file(p), channels=3),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=False,
        )
        .batch(256)
    )
    return graph_rate(ds, len(paths))


def grouped_decode_ceiling_rate(paths: list[str], group: int = 16) -> float:
    import numpy as np

    from helpers.quiet import tf

    usable = len(paths) // group * group

    def decode_group(files):
        return tf.stack(
            [tf.io.decode_jpeg(tf.io.read_file(files[j]), channels=3) for j in range(group)]
        )

    ds = (
        tf.data.Dataset.from_tensor_slices(np.asarray(paths[:usable]).reshape(-1, group))
        .map(decode_group, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .batch(256 // group)
    )
    ds = ds.map(lambda x: tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0)))
    return graph_rate(ds, usable)


def cached_ceiling_rate(n: int, size: int, batch_size: int) -> float:
    import numpy as np

    from helpers.quiet import tf

    pixels = tf.constant(np.random.default_rng(0).integers(0, 256, (n, size, size, 3), np.uint8))

    def one_epoch(_):
        rows = tf.random.shuffle(tf.range(n))

        def gather(b):
            b = tf.cast(b, tf.int32)
            return tf.gather(pixels, rows[b * batch_size : (b + 1) * batch_size])

        batches = tf.data.Dataset.range((n + batch_size - 1) // batch_size)
        return batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE)

    ds = tf.data.Dataset.from_tensors(0).flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)
    graph_rate(ds, n)  # build the graph once
    return statistics.median(graph_rate(ds, n) for _ in range(3))


def one_round(args, images) -> dict[str, float]:
    from helpers.pipeline import build_dataset

    n = len(images)
    figures = {
        "imagedatagenerator": imagedatagenerator_rate(
            args.folder, args.image_size, args.batch_size, n
        ),
        "decode_ceiling": decode_ceiling_rate(images.paths),
        "decode_ceiling_grouped": grouped_decode_ceiling_rate(images.paths),
    }
    ds = build_dataset(
        images,
        image_size=(args.image_size, args.image_size),
        batch_size=args.batch_size,
        label_mode="categorical",
        normalize="unit",
        seed=0,
    )
    figures["pipeline_first_pass"] = graph_rate(ds, n)
    figures["pipeline_cached_epoch"] = statistics.median(graph_rate(ds, n) for _ in range(3))
    figures["cached_ceiling"] = cached_ceiling_rate(n, args.image_size, args.batch_size)
    if len(ds.skip_report):
        print(f"pipeline_files_skipped: {len(ds.skip_report)}")
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", required=True, type=Path, help="class-per-folder JPEG tree")
    parser.add_argument("--make", type=int, default=0, help="generate N images if DIR is empty")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if args.make:
        make_folder(args.folder, args.make)

    from helpers.pipeline import list_folder

    images = list_folder(args.folder)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"images: {len(images)}")
    print(f"cores: {cores}")
    print(f"load_average_1min_at_start: {os.getloadavg()[0]:.2f}")
    print(f"batch_size: {args.batch_size}")
    print(f"image_size: {args.image_size}")
    print(f"bytes_read_to_warm_page_cache: {warm_page_cache(images.paths)}", flush=True)
    best: dict[str, float] = {}
    ratios: dict[str, list[float]] = {
        "decode": [],
        "decode_grouped": [],
        "idg_cached": [],
        "cached_ceiling": [],
        "idg_first": [],
    }
    for r in range(1, args.rounds + 1):
        figures = one_round(args, images)
        for name, value in figures.items():
            print(f"round{r}_{name}_img_per_s: {value:.0f}", flush=True)
            best[name] = max(best.get(name, 0.0), value)
        first, idg = figures["pipeline_first_pass"], figures["imagedatagenerator"]
        ratios["decode"].append(first / figures["decode_ceiling"])
        ratios["decode_grouped"].append(first / figures["decode_ceiling_grouped"])
        ratios["idg_cached"].append(figures["pipeline_cached_epoch"] / idg)
        ratios["idg_first"].append(first / idg)
        cached = figures["pipeline_cached_epoch"]
        ratios["cached_ceiling"].append(cached / figures["cached_ceiling"])
    print(f"load_average_1min_at_end: {os.getloadavg()[0]:.2f}")
    for name, value in best.items():
        print(f"{name}_img_per_s: {value:.0f}")
    median = statistics.median
    print(f"ratio_first_pass_vs_decode_ceiling: {median(ratios['decode']):.2f}")
    grouped = median(ratios["decode_grouped"])
    print(f"ratio_first_pass_vs_decode_ceiling_grouped: {grouped:.2f}")
    print(f"ratio_cached_epoch_vs_cached_ceiling: {median(ratios['cached_ceiling']):.2f}")
    print(f"ratio_cached_epoch_vs_imagedatagenerator: {median(ratios['idg_cached']):.1f}")
    print(f"ratio_first_pass_vs_imagedatagenerator: {median(ratios['idg_first']):.2f}")


if __name__ == "__main__":
    main()
