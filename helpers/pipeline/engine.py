"""The engine under every pipeline: skip tracking, the in-memory cache, the grouped decode.

Kept as our own code, not ``image_dataset_from_directory``, for two measured reasons
(``benchmarks/pipeline_throughput.py`` on real CIFAR-10 JPEGs, 2 cores): the first pass
decodes files in groups of 16 per ``map`` call, 1.25x the one-file-per-call decode
ceiling; and later epochs gather whole batches from one uint8 variable, 28.8x the
legacy ``ImageDataGenerator`` where ``cache()`` + ``shuffle`` + ``batch`` stay near
140,000 images a second. A file that cannot be decoded is skipped when the pipeline
meets it and named with its reason, which ``ignore_errors`` alone cannot do.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from helpers.images import ImageRejected, read_image_file, screen_image_file
from helpers.pipeline.decode import pillow_decode
from helpers.quiet import tf

AUTOTUNE = tf.data.AUTOTUNE


def without_autotuner(options: tf.data.Options | None = None) -> tf.data.Options:
    """``options`` (new ones by default) with tf.data's autotuner off; the course's
    training pipelines all carry it.

    The autotuner runs a thread per iterator that sleeps between its optimisations, and
    releasing the iterator waits for that thread (seen in native stacks, sampled during
    the stalls: ``RootDataset::Iterator::~Iterator`` waiting on a notification). Keras
    ``fit`` and the pretraining Trainer release an iterator at the end of every epoch, so
    training stood still there, using no CPU. Measured on 2 cores (AMD EPYC): the course
    CNN on 45,000 photos, epochs of 159 steps: with the autotuner 2 and 3 of the first
    10 stalled for 34-40 s each in two runs (notebook 06 at a 15-minute budget lost 160 s
    of its 900 that way, and its guard cut the decay short); without it none of 9 did,
    and a steady epoch took 36-41 s against 40-45 s. 07's ResNet, 62 steps an epoch:
    stalls of 1-20 s, four epochs 85-105 s with it and 65-75 s without. Without the tuner
    the first pass decodes as fast and cached epochs run as fast
    (``benchmarks/pipeline_throughput.py`` on 45,000 photos, two rounds each: 24,250-26,130
    and 280,000-357,000 images/s, against 24,254-24,482 and 270,000-318,500 with it).
    """
    options = tf.data.Options() if options is None else options
    options.autotune.enabled = False
    return options


@dataclass
class SkipReport:
    """The files a pipeline skipped (left out by the folder reader, or not decodable), with
    reasons."""

    skipped: dict[str, str] = field(default_factory=dict)
    passes: int = 0

    def __len__(self) -> int:
        return len(self.skipped)

    def __str__(self) -> str:
        if not self.skipped:
            return f"no file skipped in {self.passes} complete pass(es)"
        lines = [f"{len(self.skipped)} file(s) skipped:"]
        lines += [f"  {path}: {reason}" for path, reason in self.skipped.items()]
        return "\n".join(lines)


def _reason(path: str) -> str:
    """Why a file failed, found again with Pillow (TensorFlow's error does not say which)."""
    problem = screen_image_file(path)
    if problem:
        return problem
    try:
        data = read_image_file(path)
    except ImageRejected as exc:
        return str(exc)
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

    def left_out(self, entries: Sequence[tuple[str, str]]) -> None:
        """Report files the source never listed (stray files, broken links), once, now."""
        new = {path: reason for path, reason in entries if path not in self.report.skipped}
        self.report.skipped.update(new)
        if new:
            listed = "; ".join(f"{p} ({r})" for p, r in new.items())
            warnings.warn(f"left out {len(new)} file(s): {listed}", RuntimeWarning, stacklevel=3)

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

    Shared by :func:`build_dataset` and ``helpers.pipeline.tfrecords.read_tfrecords``: cache on
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
    ds = ds.prefetch(AUTOTUNE).with_options(without_autotuner())
    ds.skip_report = tracker.report
    return ds
