"""Train a classifier the way notebook 06 teaches, in one call: :func:`fit`.

What :func:`fit` adds around ``model.fit``, each for a reason a learner meets:

- **a time budget**: a learner knows minutes, not epochs. Give ``time_budget_min``: a
  few steps are measured for a first plan, the first epoch runs under it, and then the
  number of epochs is fixed from the pace ``fit`` itself kept in that epoch (stepping
  one batch at a time with ``train_on_batch`` was measured 1.4x slower than inside
  ``fit``, which left a third of the budget unused), so that training, with its whole
  learning-rate schedule, ends inside the budget. ``epochs`` wins when given.
- **a schedule**: :class:`WarmupDecay`, a linear warm-up then a linear (or cosine)
  decay to zero, as the fast CIFAR-10 trainers use; a Keras ``LearningRateSchedule``, so
  it is saved with the optimizer.
- **label smoothing**: one-hot labels and ``CategoricalCrossentropy(label_smoothing=)``
  (``SparseCategoricalCrossentropy`` has no such argument).
- **checkpoints**: the best model so far (``best.keras``, restored at the end),
  ``BackupAndRestore`` (an interrupted run, called again with the same ``out_dir``,
  resumes at the epoch it reached, with the same plan), a CSV log of every epoch, and
  the headline metrics recorded for the headless runner.
- **no "Your input ran out of data" warning**: the pipeline's datasets end when their
  data ends, so TensorFlow cannot know their length (cardinality "unknown") and Keras
  warns at every epoch's end. :func:`with_cardinality` counts the batches once and
  asserts the count, which also gives Keras's progress bar its total.

Also here: :func:`lr_find` (fastai's learning-rate finder, which Keras lacks) and
:func:`load_image_data`, the one place notebooks 06-08 turn ``DATASET``/``DATA_DIR`` into
train, validation and test splits, with clear messages for data that cannot train.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers import pipeline as pl
from helpers.acquire.datasets import OFFLINE, ONLINE, load_arrays
from helpers.quiet import keras, tf
from helpers.results import record

# --- data: DATASET / DATA_DIR to splits ----------------------------------------------------

SPLIT_NAMES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


class DataError(ValueError):
    """Data that cannot train a classifier as given; the message says what to do."""


class DataWarning(UserWarning):
    """Data that trains, but not the way you may think (a class missing from a split)."""


@dataclass
class ImageData:
    """Train, validation and test splits, each ``(x uint8, y)`` arrays or an ImageList."""

    name: str
    train: object
    val: object
    test: object
    class_names: list[str]
    input_shape: tuple[int, int, int]
    notes: list[str] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {s: _count(getattr(self, s)) for s in ("train", "val", "test")}

    def __str__(self) -> str:
        sizes = ", ".join(f"{k} {v:,}" for k, v in self.sizes().items())
        h, w, c = self.input_shape
        lines = [f"{self.name}: {len(self.class_names)} classes, {sizes}; images {h}x{w}x{c}"]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def _count(split) -> int:
    return len(split) if isinstance(split, pl.ImageList) else len(split[1])


def _stratified(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held out) with ``fraction`` of every class held out (at least one
    image of each class that has two or more)."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(index) * fraction))
        k = min(max(k, 1 if len(index) > 1 else 0), len(index) - 1)
        held.append(index[:k])
        keep.append(index[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def _take(split, index):
    if isinstance(split, pl.ImageList):
        return pl.ImageList([split.paths[i] for i in index], split.labels[index], split.class_names)
    x, y = split
    return x[index], y[index]


def _split_dirs(root: Path) -> dict[str, Path]:
    found = {}
    for split, names in SPLIT_NAMES.items():
        for name in names:
            if (root / name).is_dir():
                found[split] = root / name
                break
    return found if "train" in found and len(found) > 1 else {}


def _image_shape(paths: list[str], sample: int = 200) -> tuple[tuple[int, int, int], str | None]:
    """The most common (height, width) and the channels of a sample of the files, and a
    note when they vary (the pipeline resizes and converts them all)."""
    from PIL import Image

    sizes, modes = Counter(), Counter()
    rng = np.random.default_rng(0)
    for i in rng.permutation(len(paths))[:sample]:
        try:
            with Image.open(paths[i]) as image:
                sizes[(image.height, image.width)] += 1
                modes[image.mode] += 1
        except Exception:  # noqa: BLE001 - a corrupt file is the pipeline's to report
            continue
    if not sizes:
        raise DataError(f"none of {min(sample, len(paths))} sampled files opens as an image")
    (h, w), _ = sizes.most_common(1)[0]
    channels = 1 if set(modes) <= {"L", "1", "I", "I;16", "F", "LA"} else 3
    note = None
    if len(sizes) > 1 or len(modes) > 1:
        listed = ", ".join(f"{a}x{b}" for (a, b), _ in sizes.most_common(4))
        note = (
            f"image sizes ({listed}) or modes ({', '.join(sorted(modes))}) vary: every image is "
            f"resized to {h}x{w} and converted to {'grayscale' if channels == 1 else 'RGB'}"
        )
    return (h, w, channels), note


def _folder_data(root: Path, seed: int, val_fraction: float, test_fraction: float) -> ImageData:
    notes = []
    splits = _split_dirs(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if splits:
            lists = {s: pl.list_folder(p) for s, p in splits.items()}
        else:
            lists = {"train": pl.list_folder(root)}
    for w in caught:
        if "one class" not in str(w.message):
            warnings.warn(str(w.message), DataWarning, stacklevel=3)
    train = lists["train"]
    counts = Counter(train.labels.tolist())
    classes = [c for i, c in enumerate(train.class_names) if counts[i]]
    if len(classes) < 2:
        raise DataError(
            f"{root}: only {len(classes)} class with training images "
            f"({', '.join(classes) or 'none'}); a classifier needs at least two. Add a folder "
            "per class (root/<class>/<image>, or root/train/<class>/<image> in a split tree)."
        )
    if len(classes) < len(train.class_names):
        empty = [c for c in train.class_names if c not in classes]
        notes.append(f"class folder(s) {', '.join(empty)} hold no training image: left out")

    def relabel(images: pl.ImageList, split: str) -> pl.ImageList:
        index = {c: i for i, c in enumerate(classes)}
        names = [images.class_names[k] for k in images.labels]
        unknown = sorted({n for n in names if n not in index})
        if unknown:
            n = sum(name in unknown for name in names)
            warnings.warn(
                f"class(es) {', '.join(unknown)} appear in {split}/ but have no training images:"
                f" the model cannot predict them, so their {n} image(s) are left out of the "
                f"{split} split. Add training images under train/<class> to learn them.",
                DataWarning,
                stacklevel=4,
            )
        keep = [i for i, name in enumerate(names) if name in index]
        return pl.ImageList(
            [images.paths[i] for i in keep], [index[names[i]] for i in keep], classes,
            images.left_out,
        )  # fmt: skip

    train = relabel(train, "train")
    if splits:
        test = relabel(lists["test"], "test") if "test" in lists else None
        val = relabel(lists["val"], "val") if "val" in lists else None
        if test is None:
            keep, held = _stratified(train.labels, test_fraction, seed)
            train, test = _take(train, keep), _take(train, held)
            notes.append(f"no test/ folder: {len(test)} training images held out as the test set")
        if val is None:
            keep, held = _stratified(train.labels, val_fraction, seed + 1)
            train, val = _take(train, keep), _take(train, held)
        missing = [c for i, c in enumerate(classes) if not (test.labels == i).any()]
        if missing:
            warnings.warn(
                f"class(es) {', '.join(missing)} have training images but none in test/: their "
                "test recall cannot be measured. Add test images for them.",
                DataWarning,
                stacklevel=3,
            )
        kind = "split tree " + "/".join(f"{s}/" for s in splits)
    else:
        keep, held = _stratified(train.labels, test_fraction, seed)
        train, test = _take(train, keep), _take(train, held)
        keep, held = _stratified(train.labels, val_fraction / (1 - test_fraction), seed + 1)
        train, val = _take(train, keep), _take(train, held)
        kind = "class-per-folder tree, stratified split"
    if not len(train) or not len(val) or not len(test):
        raise DataError(
            f"{root}: too few images to split into train, validation and test "
            f"({len(train)}, {len(val)}, {len(test)}); add images or give a split tree"
        )
    shape, note = _image_shape(train.paths)
    if note:
        notes.append(note)
    return ImageData(f"folder {root} ({kind})", train, val, test, classes, shape, notes)


def load_image_data(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    *,
    seed: int = 42,
    limit: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> ImageData:
    """``DATASET`` (and ``DATA_DIR``) as train, validation and test splits.

    ``dataset`` is an offline set (``digits``, ``lfw_faces``, ``shapes``), a public one
    (``mnist``, ``fashion_mnist``, ``cifar10``, ...: the network or its cache), or
    ``"folder"`` with ``data_dir``: a class-per-folder tree (split here, stratified) or a
    split tree ``train/`` (``val/``) ``test/`` whose test split is the test set. The
    validation split comes out of the training images when the data has none. Image
    size and channels come from the data (the most common size of a sample of files).
    ``limit`` keeps at most that many training images, and a quarter as many validation
    and test images (smoke runs).
    """
    if dataset == "folder":
        if not data_dir:
            raise DataError('DATASET="folder" needs DATA_DIR, the folder that holds the images')
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"DATA_DIR {root.resolve()} is not a folder; check the path")
        data = _folder_data(root, seed, val_fraction, test_fraction)
    elif dataset in OFFLINE or dataset in ONLINE:
        arrays = load_arrays(dataset, seed=seed, test_size=test_fraction)
        x, y = arrays.x_train, arrays.y_train.astype(np.int32)
        if x.ndim == 3:
            x = x[..., None]
        keep, held = _stratified(y, val_fraction / (1 - test_fraction), seed + 1)
        x_test = arrays.x_test if arrays.x_test.ndim == 4 else arrays.x_test[..., None]
        data = ImageData(
            f"{dataset} ({arrays.source})",
            (x[keep], y[keep]),
            (x[held], y[held]),
            (x_test, arrays.y_test.astype(np.int32)),
            list(arrays.class_names),
            tuple(int(s) for s in x.shape[1:]),
        )
    else:
        known = ", ".join([*OFFLINE, *ONLINE, "folder"])
        raise DataError(f"unknown DATASET {dataset!r}; choose one of {known}")
    if limit is not None:
        labels = data.train.labels if isinstance(data.train, pl.ImageList) else data.train[1]
        if limit < len(labels):
            _, index = _stratified(labels, limit / len(labels), seed + 2)
            data.train = _take(data.train, index)
            data.notes.append(f"limited to {len(index)} training images")
        for split in ("val", "test"):  # and a quarter as many for validation and test
            part = getattr(data, split)
            labels = part.labels if isinstance(part, pl.ImageList) else part[1]
            cap = max(limit // 4, len(data.class_names))
            if cap < len(labels):
                _, index = _stratified(labels, cap / len(labels), seed + 3)
                setattr(data, split, _take(part, index))
    return data


def make_datasets(data: ImageData, batch_size: int, *, seed: int = 42, eval_batch_size=None):
    """``(train, val, test)`` batched datasets of raw pixels (floats 0..255, int labels):
    the models scale their own inputs. Every dataset has a known cardinality."""
    h, w, c = data.input_shape
    options = pl.PipelineOptions(
        image_size=(h, w), channels=c, normalize="none", batch_size=batch_size, seed=seed
    )
    out = []
    for split in ("train", "val", "test"):
        part = getattr(data, split)
        shuffle = split == "train"
        size = batch_size if shuffle else (eval_batch_size or max(batch_size, 256))
        if isinstance(part, pl.ImageList):
            ds = pl.build_dataset(part, options, shuffle=shuffle, batch_size=size)
        else:
            ds = pl.from_arrays(
                part[0], part[1], options, class_names=data.class_names, shuffle=shuffle,
                batch_size=size,
            )  # fmt: skip
        out.append(with_cardinality(ds))
    return tuple(out)


def with_cardinality(ds):
    """``ds`` with its number of batches known to TensorFlow (see the module docstring).

    Counted, not computed: a corrupt file skipped by the pipeline changes it. The first
    pass over a pipeline dataset decodes (and fills its memory cache) and may cut its
    batches differently from later epochs, so the count of the second pass, the one
    every epoch of ``fit`` will see, is the one asserted.
    """
    if int(ds.cardinality()) >= 0:
        return ds
    counts = [int(ds.reduce(np.int64(0), lambda n, _: n + 1)) for _ in range(2)]
    if counts[-1] == 0:
        raise DataError("the dataset yields no batch: every image was skipped (see skip_report)")
    out = ds.apply(tf.data.experimental.assert_cardinality(counts[-1]))
    for attribute in ("class_names", "skip_report"):
        if hasattr(ds, attribute):
            setattr(out, attribute, getattr(ds, attribute))
    return out


def _one_hot(ds, num_classes: int):
    """Integer labels -> one-hot (label smoothing needs them); one-hot labels pass."""
    spec = ds.element_spec[1]
    if spec.dtype.is_integer and spec.shape.rank == 1:
        out = ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)))
        for attribute in ("class_names", "skip_report"):
            if hasattr(ds, attribute):
                setattr(out, attribute, getattr(ds, attribute))
        return out
    return ds


def _num_classes(model) -> int:
    return int(model.output_shape[-1])


# --- the schedule ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="course")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """A linear warm-up from ``peak * start`` to ``peak`` over ``warmup`` of the steps,
    then a ``"linear"`` or ``"cosine"`` decay to ``peak * end`` at ``total_steps``.

    Why warm up: at the first steps the weights are random and the BatchNorm statistics
    wrong, so a full learning rate throws the net about; a few hundred gentle steps let
    it settle before the big steps that make progress. Why decay to (near) zero: the
    last epochs at a small rate average out the noise of the batches, which is worth a
    few accuracy points at the end.
    """

    def __init__(
        self,
        peak: float,
        total_steps: int,
        warmup: float = 0.2,
        kind: str = "linear",
        start: float = 0.1,
        end: float = 0.0,
    ):
        if kind not in ("linear", "cosine"):
            raise ValueError(f"kind must be 'linear' or 'cosine', not {kind!r}")
        if total_steps < 1 or not 0 <= warmup < 1:
            raise ValueError(f"need total_steps >= 1 and 0 <= warmup < 1: {total_steps}, {warmup}")
        self.peak, self.total_steps, self.warmup = float(peak), int(total_steps), float(warmup)
        self.kind, self.start, self.end = kind, float(start), float(end)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        total = float(self.total_steps)
        ramp = self.warmup * total
        warm = self.peak * (self.start + (1.0 - self.start) * step / max(ramp, 1.0))
        t = tf.clip_by_value((step - ramp) / max(total - ramp, 1.0), 0.0, 1.0)
        shape = 1.0 - t if self.kind == "linear" else 0.5 * (1.0 + tf.cos(math.pi * t))
        decay = self.peak * (self.end + (1.0 - self.end) * shape)
        return tf.where(step < ramp, warm, decay)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup": self.warmup,
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
        }


def make_optimizer(name: str, learning_rate, *, weight_decay: float | None = None):
    """``"sgd"`` (Nesterov momentum 0.9, the fast CIFAR trainers' choice), ``"adam"``,
    ``"adamw"``; ``learning_rate`` a float or a schedule."""
    if name == "sgd":
        return keras.optimizers.SGD(
            learning_rate=learning_rate, momentum=0.9, nesterov=True, weight_decay=weight_decay
        )
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate, weight_decay=weight_decay)
    if name == "adamw":
        return keras.optimizers.AdamW(
            learning_rate=learning_rate, weight_decay=weight_decay or 0.01
        )
    raise ValueError(f"optimizer must be 'sgd', 'adam' or 'adamw', not {name!r}")


# --- callbacks -------------------------------------------------------------------------------


class RecordMetrics(keras.callbacks.Callback):
    """Records the run for the headless runner (``helpers.results.record``): after every
    epoch the latest metrics (``<prefix>val_accuracy``, ...), at the end ``epochs``,
    ``train_seconds`` and ``images_per_second`` (epochs after the first, which traces)."""

    def __init__(
        self,
        prefix: str | None = "",
        batch_size: int | None = None,
        steps: int | None = None,
    ):
        super().__init__()
        self.prefix, self.batch_size, self.steps = prefix, batch_size, steps
        self.recording = prefix is not None  # None: only time the run
        self.epoch_seconds: list[float] = []
        self.epochs_done = 0

    def on_train_begin(self, logs=None):
        if not hasattr(self, "started"):  # a budgeted fit calls model.fit twice
            self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._epoch_started)
        self.epochs_done = epoch + 1
        if not self.recording:
            return
        for name, value in (logs or {}).items():
            if name != "learning_rate" and np.isfinite(value):
                record(f"{self.prefix}{name}", float(value))

    def on_train_end(self, logs=None):
        self.seconds = time.perf_counter() - self.started
        if not self.recording:
            return
        record(f"{self.prefix}epochs", self.epochs_done)
        record(f"{self.prefix}train_seconds", round(self.seconds, 2))
        if self.images_per_second:
            record(f"{self.prefix}images_per_second", round(self.images_per_second, 1))

    @property
    def images_per_second(self) -> float | None:
        if not self.batch_size or not self.steps or not self.epoch_seconds:
            return None
        steady = self.epoch_seconds[1:] or self.epoch_seconds
        return self.batch_size * self.steps / float(np.median(steady))


# --- fit -------------------------------------------------------------------------------------


@dataclass
class FitResult:
    """What :func:`fit` did: the history, the plan, the time, where the files are."""

    history: dict
    epochs: int
    steps_per_epoch: int
    seconds: float
    images_per_second: float | None
    plan: str
    out_dir: Path | None
    best_path: Path | None
    log_path: Path | None
    resumed_from: int = 0


def _batch_size(ds) -> int:
    return int(next(iter(ds))[0].shape[0])


def plan_epochs(seconds_per_step: float, steps: int, eval_seconds: float, budget_min: float):
    """How many epochs of ``steps`` steps (plus ``eval_seconds`` of validation each) fit in
    ``budget_min`` minutes; at least one, with 5% kept for checkpoints and logging."""
    per_epoch = seconds_per_step * steps + eval_seconds
    epochs = max(1, int(0.95 * budget_min * 60 / per_epoch))
    return epochs, per_epoch


class _Pace(keras.callbacks.Callback):
    """The seconds per step ``model.fit`` keeps, from the ends of an epoch's batches after
    the first, and what the first batch cost beyond a step: tracing ``fit``'s step and
    starting its input, which a retrace pays again."""

    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())

    @property
    def seconds_per_step(self) -> float | None:
        if len(self.ends) < 2:
            return None
        return (self.ends[-1] - self.ends[0]) / (len(self.ends) - 1)

    @property
    def trace_seconds(self) -> float | None:
        if self.seconds_per_step is None:
            return None
        return max(0.0, self.ends[0] - self.began - self.seconds_per_step)


class _Deadline(keras.callbacks.Callback):
    """Stops training after the epoch whose successor would end past ``deadline`` (a
    ``time.perf_counter`` value): on a machine that slows down, the run ends inside the
    budget with its decay cut short rather than late."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        if now + (now - self._started) > self.deadline:
            self.model.stop_training = True


def _measure(model, train, val, steps: int = 8, save: bool = False):
    """Seconds per training step, seconds per epoch besides the steps (a validation pass,
    a checkpoint when ``save``, Keras's own bookkeeping) and seconds to trace the step
    (paid again once, as the schedule's length changes), measured on the real model;
    the weights and optimizer state are put back afterwards."""
    weights = model.get_weights()
    model.optimizer.build(model.trainable_variables)
    slots = [v.numpy() for v in model.optimizer.variables]
    batches = iter(train.repeat())
    x, y = next(batches)
    t = time.perf_counter()
    model.train_on_batch(x, y)  # traces the step: counted once, not per step
    trace_seconds = time.perf_counter() - t
    times = []
    for _ in range(steps):
        x, y = next(batches)
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    eval_seconds = 0.0
    if val is not None:
        batch = next(iter(val))
        model.test_on_batch(*batch)  # traces
        t = time.perf_counter()
        model.test_on_batch(*batch)
        eval_seconds = (time.perf_counter() - t) * int(val.cardinality())
    if save:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            t = time.perf_counter()
            model.save(Path(folder) / "probe.keras")
            eval_seconds += time.perf_counter() - t
    eval_seconds += 0.1  # callbacks and logging per epoch, measured on small runs
    model.set_weights(weights)
    for variable, value in zip(model.optimizer.variables, slots, strict=True):
        variable.assign(value)
    return float(np.median(times)), eval_seconds, trace_seconds


def fit(
    model,
    train,
    val=None,
    *,
    epochs: int | None = None,
    time_budget_min: float | None = None,
    optimizer: str = "sgd",
    learning_rate: float = 0.2,
    schedule: str | None = "linear",
    warmup: float = 0.2,
    label_smoothing: float = 0.0,
    weight_decay: float | None = 5e-4,
    out_dir: str | os.PathLike | None = None,
    restore_best: bool = True,
    record_as: str | None = None,
    jit_compile: bool | str = "auto",
    callbacks: list | None = None,
    verbose: int | str = "auto",
) -> FitResult:
    """Compile and train ``model`` on ``train`` (and ``val``); see the module docstring.

    ``train``/``val`` are batched datasets of ``(images, labels)``, labels integer or
    one-hot. ``schedule`` ``"linear"``/``"cosine"`` is :class:`WarmupDecay` over the whole
    run, None a constant rate. ``out_dir`` holds ``best.keras``, ``log.csv``, ``plan.json``
    and the ``backup/`` of ``BackupAndRestore``: call again with the same folder after an
    interruption and training resumes where it stopped. ``record_as`` (a prefix, "" for
    none) records the run for the headless runner. ``jit_compile`` goes to ``compile``
    as given (``"auto"`` is off on CPUs and under every distribution strategy).
    """
    if epochs is None and time_budget_min is None:
        raise ValueError("give epochs, or time_budget_min to choose them from a measurement")
    num_classes = _num_classes(model)
    train = _one_hot(with_cardinality(train), num_classes)
    val = None if val is None else _one_hot(with_cardinality(val), num_classes)
    steps = int(train.cardinality())
    batch_size = _batch_size(train)
    out = Path(out_dir) if out_dir is not None else None
    plan_file = out / "plan.json" if out else None
    backup = out / "backup" if out else None
    resuming = bool(backup and backup.is_dir() and any(backup.iterdir()))
    saved_plan = json.loads(plan_file.read_text()) if resuming and plan_file.is_file() else None

    total = (epochs or 1) * steps
    rate = WarmupDecay(learning_rate, total, warmup, kind=schedule) if schedule else learning_rate
    model.compile(
        optimizer=make_optimizer(optimizer, rate, weight_decay=weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    started = time.perf_counter()
    budgeted = not saved_plan and epochs is None
    if saved_plan:
        epochs, plan = saved_plan["epochs"], saved_plan["plan"] + " (resumed)"
    elif epochs is not None:
        plan = f"{epochs} epoch(s) of {steps} steps, as given"
    else:
        per_step, eval_seconds, trace = _measure(model, train, val, save=out is not None)
        budget = max(time_budget_min - trace / 60, 0.0)
        epochs, per_epoch = plan_epochs(per_step, steps, eval_seconds, budget)
        plan = f"first plan from {per_step:.3g} s/step (train_on_batch): {epochs} epochs"

    def set_schedule_length(epochs: int) -> None:
        if schedule and rate.total_steps != epochs * steps:
            rate.total_steps = epochs * steps
            model.train_function = None  # the schedule's length is traced into the step

    def write_plan() -> None:
        if out:
            out.mkdir(parents=True, exist_ok=True)
            plan_file.write_text(json.dumps({"epochs": epochs, "plan": plan}))

    set_schedule_length(epochs)
    write_plan()
    if verbose and not budgeted:
        print(plan)

    monitor = "val_accuracy" if val is not None else "accuracy"
    recorder = RecordMetrics(record_as, batch_size, steps)
    extra = list(callbacks or [])
    chain = []
    if out:
        chain += [
            keras.callbacks.BackupAndRestore(str(backup)),
            keras.callbacks.ModelCheckpoint(
                str(out / "best.keras"), monitor=monitor, mode="max", save_best_only=True
            ),
            keras.callbacks.CSVLogger(str(out / "log.csv"), append=resuming),
        ]
    chain.append(recorder)

    def run(first: int, last: int, more: list) -> dict:
        done = model.fit(
            train,
            validation_data=val,
            initial_epoch=first,
            epochs=last,
            callbacks=chain + more + extra,
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles; Keras would only warn that it cannot
        )
        return dict(done.history)

    if not budgeted:
        history = run(0, epochs, [])
    else:
        # Epoch 1 under the first plan, then the plan fixed from fit's own pace: the
        # schedule's length changes once, after epoch 1 (one retrace), and keeps its
        # whole shape, warm-up and decay, to the end of the budget.
        deadline = started + 60 * time_budget_min
        pace = _Pace()
        history = run(0, 1, [pace])
        fit_step = pace.seconds_per_step or per_step
        per_epoch = fit_step * steps + eval_seconds
        # The schedule's new length retraces fit's step once: what that cost in epoch 1,
        # not train_on_batch's first trace, which also built the model and its optimizer.
        retrace = 0.0
        if schedule:
            retrace = pace.trace_seconds if pace.trace_seconds is not None else trace
        left = deadline - time.perf_counter() - retrace
        epochs = 1 + max(0, int(0.98 * left / per_epoch))
        used = (time.perf_counter() - started + retrace + (epochs - 1) * per_epoch) / 60
        plan = (
            f"measured {per_step:.3g} s/step before training (train_on_batch) and "
            f"{fit_step:.3g} s/step in epoch 1 of fit; with {eval_seconds:.1f} s of "
            f"validation and checkpoint, {per_epoch:.1f} s per epoch of {steps} steps and "
            f"{retrace:.1f} s to retrace: {epochs} epochs, {used:.1f} of "
            f"{time_budget_min:g} minutes"
        )
        set_schedule_length(epochs)
        write_plan()
        if verbose:
            print(plan)
        if epochs > 1:
            for callback in chain:
                if isinstance(callback, keras.callbacks.CSVLogger):
                    callback.append = True  # epoch 1 is in the log already
            rest = run(1, epochs, [_Deadline(deadline)])
            history = {
                k: history.get(k, []) + rest.get(k, []) for k in dict.fromkeys([*history, *rest])
            }
            if 1 + len(rest.get("loss", [])) < epochs:
                epochs = 1 + len(rest.get("loss", []))
                plan += f"; stopped after {epochs} to end inside the budget (the pace fell)"
                write_plan()
                if verbose:
                    print(plan)
    seconds = time.perf_counter() - started
    best = out / "best.keras" if out else None
    if restore_best and best and best.is_file():
        model.set_weights(keras.models.load_model(best, compile=False).get_weights())
    return FitResult(
        history=history,
        epochs=epochs,
        steps_per_epoch=steps,
        seconds=seconds,
        images_per_second=recorder.images_per_second,
        plan=plan,
        out_dir=out,
        best_path=best if best and best.is_file() else None,
        log_path=out / "log.csv" if out else None,
        resumed_from=epochs - len(history.get("loss", [])) if resuming else 0,
    )


# --- the learning-rate finder -----------------------------------------------------------------


@dataclass
class LRFinderResult:
    """The sweep: learning rates, smoothed losses, and the suggested rate with why."""

    learning_rates: np.ndarray
    losses: np.ndarray
    suggestion: float
    steepest: float
    minimum: float

    def __str__(self) -> str:
        return (
            f"loss lowest at lr {self.minimum:.2g}, falling fastest at {self.steepest:.2g}: "
            f"suggested learning rate {self.suggestion:.2g}"
        )


class _Sweep(keras.callbacks.Callback):
    def __init__(self, rates: np.ndarray, beta: float, stop_factor: float):
        super().__init__()
        self.rates, self.beta, self.stop_factor = rates, beta, stop_factor
        self.losses: list[float] = []
        self.step = 0
        self.average = 0.0
        self.best = math.inf

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_sum = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = float(self.rates[self.step])

    def on_train_batch_end(self, batch, logs=None):
        # Keras reports the running mean of the epoch; the batch's own loss is its change.
        total = float(logs["loss"]) * (batch + 1)
        loss, self.epoch_sum = total - self.epoch_sum, total
        self.step += 1
        self.average = self.beta * self.average + (1 - self.beta) * loss
        smoothed = self.average / (1 - self.beta**self.step)
        self.losses.append(smoothed)
        self.best = min(self.best, smoothed)
        if (
            self.step >= len(self.rates)
            or not math.isfinite(loss)
            or (smoothed > self.stop_factor * self.best)
        ):
            self.model.stop_training = True


def lr_find(
    model,
    train,
    *,
    optimizer: str = "sgd",
    start: float = 1e-5,
    end: float = 10.0,
    steps: int = 100,
    label_smoothing: float = 0.0,
    beta: float = 0.9,
    stop_factor: float = 4.0,
) -> LRFinderResult:
    """fastai's ``lr_find``: train for up to ``steps`` batches while the learning rate grows
    exponentially from ``start`` to ``end``, and watch the (smoothed) loss.

    Read the plot from the left: flat (too small to learn), then falling (learning), then
    a minimum and an explosion (too large). Suggested: a tenth of the rate at the
    minimum (fastai's classic rule), which sits on the falling part where training is
    fast and stable; the steepest point is given too. The model's weights are put back
    afterwards, so it trains from its initial weights.
    """
    weights = model.get_weights()
    num_classes = _num_classes(model)
    train = _one_hot(with_cardinality(train), num_classes)
    rates = start * (end / start) ** (np.arange(steps) / max(steps - 1, 1))
    model.compile(
        optimizer=make_optimizer(optimizer, float(start)),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
    )
    sweep = _Sweep(rates, beta, stop_factor)
    per_epoch = int(train.cardinality())
    model.fit(
        train, epochs=math.ceil(steps / per_epoch), callbacks=[sweep], verbose=0, shuffle=False
    )
    model.set_weights(weights)
    losses = np.asarray(sweep.losses)
    lrs = rates[: len(losses)]
    if len(losses) < 5:
        raise ValueError(f"the sweep stopped after {len(losses)} steps; lower start or end")
    lowest = int(np.argmin(losses))
    gradient = np.gradient(losses[: lowest + 1], np.log(lrs[: lowest + 1])) if lowest > 1 else [0]
    steepest = float(lrs[int(np.argmin(gradient))])
    minimum = float(lrs[lowest])
    return LRFinderResult(lrs, losses, minimum / 10.0, steepest, minimum)
