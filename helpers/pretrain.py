"""Pretrain a backbone from scratch on a many-class source set, and describe it in a card.

Notebook 07's room, on top of :mod:`helpers.distribute` (the training loop, the same on
one device, several GPUs and several machines) and :mod:`helpers.models` (the ResNet-style
backbone). What it adds:

- **source data** (:func:`load_source`): ``"photos"`` (the default: the real photos of
  the source classes that ship with the course, ``helpers.acquire.photos.SOURCE_CLASSES``,
  with the data set's own labels; all of CIFAR-10's in the ``full`` profile),
  ``"generated"`` (every shape x colour x texture of
  ``helpers.acquire.synthetic.many_class_images``, up to 128 classes),
  ``"cifar100"``/``"cifar10"`` through ``keras.datasets`` (online or cached), or
  ``"folder"`` with ``DATA_DIR`` (a class-per-folder tree or a ``train/`` (``val/``)
  ``test/`` split tree, read through ``helpers.train.load_image_data``);
- **the accuracy floor** (:func:`accuracy_floor`, :func:`floor_verdict`): a multiple of
  chance, capped, so it means the same for 5 classes as for 128;
- **speed figures**: :func:`probe_batch_size` (on a GPU, the batch that fills it, found by
  measuring, not a constant), :func:`speed_report` (images per second, step time, peak
  memory, the fraction of the device's peak FLOP rate, from :func:`peak_flops`);
- **the model card** (:func:`make_card`, :func:`save_backbone`, :func:`read_model_card`):
  JSON plus a short Markdown next to ``backbone.keras``, written, read and checked
  (``check_card``) by :mod:`helpers.cards`, the one format notebook 08 reads too. The
  backbone takes raw 0..255 pixels and resizes and scales them itself, so its
  ``preprocessing`` is ``"raw"``; ``preprocessing_inside`` says what it does to them;
- :func:`run_worker`, behind ``python -m helpers pretrain-worker``: one process of a
  multi-machine run, configured by ``TF_CONFIG``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers import distribute as dist
from helpers import models
from helpers.acquire.arrays import ArrayDataset
from helpers.cards import read_card, require_fields, save_with_card
from helpers.files import write_atomic
from helpers.quiet import keras, tf

BACKBONE_PREPROCESSING = "raw"  # 0..255 in; the backbone resizes and scales inside
CARD_REQUIRED = (
    "name",
    "source_data",
    "license",
    "classes",
    "input_size",
    "channels",
    "preprocessing",
    "architecture",
    "parameters",
    "flops_per_image",
    "source_test_accuracy",
    "seed",
    "versions",
    "device",
    "precision",
    "minutes",
)


# --- source data -----------------------------------------------------------------------------


@dataclass
class Source(ArrayDataset):
    """A source data set: the arrays every loader returns, plus notes on how it was made."""

    notes: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.x_train.shape[1:])

    def __str__(self) -> str:
        h, w, c = self.input_shape
        return (
            f"{self.name}: {len(self.class_names)} classes, {len(self.y_train):,} train and "
            f"{len(self.y_test):,} test images of {h}x{w}x{c} ({self.source}; {self.license})"
        )


def generated_source(n: int, *, classes: int = 128, size: int = 32, seed: int = 0) -> Source:
    """``n`` generated images of ``classes`` shape x colour x texture classes (4 shapes;
    colours and textures are added until the count is reached), 80/20 train/test."""
    from helpers.acquire import synthetic as syn

    colours, textures = list(syn.COLOURS), list(syn.TEXTURES)
    combos = [
        (c, t)
        for c in range(1, len(colours) + 1)
        for t in range(1, len(textures) + 1)
        if 4 * c * t >= min(classes, 128)
    ]
    if classes < 4 or not combos:
        raise ValueError(f"classes must be between 4 and 128, not {classes}")
    c, t = min(combos, key=lambda ct: (4 * ct[0] * ct[1], abs(ct[0] - 2 * ct[1])))
    x, y, names = syn.many_class_images(
        n, size, seed, colours=tuple(colours[:c]), textures=tuple(textures[:t])
    )
    cut = int(round(n * 0.8))
    return Source(
        f"generated ({len(names)} classes)",
        x[:cut],
        y[:cut].astype(np.int32),
        x[cut:],
        y[cut:].astype(np.int32),
        names,
        f"{syn.SOURCE}.many_class_images (seed={seed})",
        syn.LICENSE,
    )


def _cifar100() -> Source:
    from helpers.acquire.datasets import DatasetUnavailable, keras_cache_dir

    try:
        (x, y), (xt, yt) = keras.datasets.cifar100.load_data(label_mode="fine")
    except Exception as exc:  # keras raises a plain Exception on a failed download
        cache = keras_cache_dir() / "cifar-100-python-target_archive"
        raise DatasetUnavailable(
            f"could not load cifar100 through keras.datasets ({type(exc).__name__}). With no "
            f"internet, copy cifar-100-python.tar.gz from the CIFAR page to {cache} (the name "
            'Keras gives it), or use DATASET="generated" (offline).'
        ) from exc
    names = [str(i) for i in range(100)]
    return Source(
        "cifar100", x, y.reshape(-1).astype(np.int32), xt, yt.reshape(-1).astype(np.int32),
        names, "CIFAR-100 (Alex Krizhevsky) via keras.datasets", "MIT-like, see the CIFAR page",
    )  # fmt: skip


def _images_of(split, input_shape) -> tuple[np.ndarray, np.ndarray]:
    """A split of ``helpers.train.load_image_data`` as uint8 arrays (files are decoded,
    resized and converted by the pipeline)."""
    from helpers import pipeline as pl

    if not isinstance(split, pl.ImageList):
        x, y = split
        return np.asarray(x, np.uint8), np.asarray(y, np.int32)
    h, w, c = input_shape
    options = pl.PipelineOptions(image_size=(h, w), channels=c, normalize="none", batch_size=256)
    xs, ys = [], []
    for x, y in pl.build_dataset(split, options, shuffle=False):
        xs.append(np.clip(np.round(x.numpy()), 0, 255).astype(np.uint8))
        ys.append(y.numpy().astype(np.int32))
    return np.concatenate(xs), np.concatenate(ys)


def _photos(limit_per_class: int | None, full: bool | None) -> Source:
    """The source classes of the photos that ship with the course, as a :class:`Source`."""
    from helpers.acquire import photos

    data = photos.load_photos("source", limit_per_class=limit_per_class, full=full)
    return Source(
        f"{data.name} ({', '.join(data.class_names)})",
        data.x_train,
        data.y_train.astype(np.int32),
        data.x_test,
        data.y_test.astype(np.int32),
        list(data.class_names),
        data.source,
        data.license,
    )


def _keep_per_class(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` images of each class, in their order."""
    keep = np.zeros(len(y), bool)
    for label in np.unique(y):
        keep[np.flatnonzero(y == label)[:k]] = True
    return x[keep], y[keep]


def load_source(
    dataset: str = "photos",
    data_dir: str | os.PathLike | None = None,
    *,
    images: int = 20_000,
    classes: int = 128,
    size: int | None = None,
    limit_per_class: int | None = None,
    full: bool | None = None,
    seed: int = 0,
) -> Source:
    """``DATASET`` (and ``DATA_DIR``) as a :class:`Source`; see the module docstring.

    ``images``, ``classes`` and ``size`` shape the generated set (``size`` also resizes a
    folder's images; None keeps their most common size). ``limit_per_class`` keeps the
    first that many training and test images of each class, of any source (the smoke
    profile's few hundred photos; the shipped archive then decompresses no further).
    ``full`` is ``helpers.acquire.photos``'s: all of CIFAR-10's source photos through
    ``keras.datasets`` (default: in the ``full`` profile only).
    """
    if limit_per_class is not None and limit_per_class < 1:
        raise ValueError(f"limit_per_class must be a positive count or None, not {limit_per_class}")
    if dataset == "photos":
        src = _photos(limit_per_class, full)
    elif dataset == "generated":
        src = generated_source(images, classes=classes, size=size or 32, seed=seed)
    elif dataset == "cifar100":
        src = _cifar100()
    elif dataset in ("cifar10", "folder"):
        from helpers.train import load_image_data

        data = load_image_data(dataset, data_dir, seed=seed, val_fraction=0.05)
        shape = data.input_shape if size is None else (size, size, data.input_shape[2])
        x, y = _images_of(data.train, shape)
        xv, yv = _images_of(data.val, shape)
        xt, yt = _images_of(data.test, shape)
        src = Source(
            data.name, np.concatenate([x, xv]), np.concatenate([y, yv]), xt, yt,
            list(data.class_names),
            f"{data_dir}" if dataset == "folder" else "CIFAR-10 via keras.datasets",
            "as its owner licenses it" if dataset == "folder" else "MIT-like, see the CIFAR page",
            list(data.notes),
        )  # fmt: skip
    else:
        raise ValueError(
            f'unknown DATASET {dataset!r}; choose "photos" (the shipped source photos), '
            '"generated", "cifar100", "cifar10" or "folder" (with DATA_DIR)'
        )
    if limit_per_class is not None and dataset != "photos":
        src.x_train, src.y_train = _keep_per_class(src.x_train, src.y_train, limit_per_class)
        src.x_test, src.y_test = _keep_per_class(src.x_test, src.y_test, limit_per_class)
        src.notes.append(f"limited to the first {limit_per_class} images of each class")
    return src


# --- the accuracy floor ----------------------------------------------------------------------


def accuracy_floor(num_classes: int, times_chance: float) -> float:
    """The source test accuracy a run must reach: ``times_chance`` times chance
    (``1 / num_classes``), capped halfway between chance and a perfect score.

    A multiple of chance says the same thing for any class count ("3 times better than
    guessing"), but alone it asks 2 classes for more than 1.0 at ``times_chance=3``; the
    cap keeps every floor reachable, and above chance whenever ``times_chance > 1``.
    ``times_chance=0`` (the smoke profile, too few steps to beat chance) checks nothing.
    """
    if num_classes < 2:
        raise ValueError(f"a floor needs at least 2 classes, not {num_classes}")
    if times_chance < 0:
        raise ValueError(f"times_chance must be 0 or more, not {times_chance}")
    chance = 1.0 / num_classes
    return min(times_chance * chance, (1.0 + chance) / 2)


def floor_verdict(accuracy: float, floor: float, num_classes: int, saved_to) -> str:
    """One line that says whether ``accuracy`` reached ``floor``, and where the backbone
    was saved either way (a run that misses the floor still keeps what it trained)."""
    chance = 1.0 / num_classes
    head = f"source test accuracy {accuracy:.3f} over {num_classes} classes (chance {chance:.3f})"
    if accuracy >= floor:
        return f"{head} reaches the floor {floor:.3f}; the backbone is in {saved_to}"
    return (
        f"{head} misses the floor {floor:.3f}. The backbone is saved in {saved_to} all the "
        "same, and its card records the miss; train longer (TIME_BUDGET_MIN), on more "
        "images, or lower MIN_TIMES_CHANCE if this is what you expect."
    )


# --- the model -------------------------------------------------------------------------------


def build_classifier(input_shape, num_classes: int, *, width: int, depth, seed: int, augment=True):
    """``helpers.models``'s ResNet-style classifier, seeded, so every worker (and every
    rerun) starts from the same weights."""
    keras.utils.set_random_seed(seed)
    return models.build_model(
        "resnet", input_shape=input_shape, num_classes=num_classes, width=width,
        depth=tuple(depth), augment=augment, seed=seed,
    )  # fmt: skip


def make_optimizer(peak_lr: float, total_steps: int, *, warmup: float = 0.1, weight_decay=5e-4):
    """SGD with Nesterov momentum on a linear warm-up then linear decay
    (``helpers.train.WarmupDecay``), the fast CIFAR trainers' schedule."""
    from helpers.train import WarmupDecay
    from helpers.train import make_optimizer as optimizer

    schedule = WarmupDecay(peak_lr, max(total_steps, 1), warmup, kind="linear")
    return optimizer("sgd", schedule, weight_decay=weight_decay)


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    """Top-1 accuracy, computed locally (no collective: any worker can run it alone)."""
    predict = tf.function(lambda b: tf.argmax(model(b, training=False), -1, output_type=tf.int32))
    right = 0
    for i in range(0, len(y), batch_size):
        right += int(
            np.sum(predict(tf.constant(x[i : i + batch_size])).numpy() == y[i : i + batch_size])
        )
    return right / max(len(y), 1)


# --- speed -----------------------------------------------------------------------------------

# Dense peak rates in FLOP/s (a multiply-add counts as 2) from the vendors' data sheets:
# (float32 without tensor cores, the 16-bit tensor-core rate mixed precision can reach).
GPU_PEAK_FLOPS = {
    "H200": (67e12, 989e12),
    "H100": (67e12, 989e12),
    "A100": (19.5e12, 312e12),
    "A10G": (31.2e12, 125e12),
    "A10": (31.2e12, 125e12),
    "L40S": (91.6e12, 362e12),
    "L4": (30.3e12, 121e12),
    "V100": (15.7e12, 125e12),
    "T4": (8.1e12, 65e12),
    "RTX 4090": (82.6e12, 165e12),
    "RTX 3090": (35.6e12, 71e12),
}


def peak_flops(precision: str = "float32") -> tuple[float | None, str]:
    """The device's peak FLOP rate for ``precision`` and where the figure comes from.

    GPUs: the data-sheet table above, matched by name. A CPU: cores x clock x FLOPs per
    cycle per core, 64 in float32 with AVX-512 (two FMA units of 16 lanes), 32 with AVX2,
    twice that in bfloat16 with AVX-512 BF16 (its dot products do two per lane); the
    clock is the one Linux reports now, so the figure is an estimate.
    """
    from helpers.devices import cpu_flags

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
        for key, (fp32, half) in GPU_PEAK_FLOPS.items():
            if key in name:
                rate = half if precision.startswith("mixed") else fp32
                return rate * len(gpus), f"{len(gpus)} x {name}, data sheet"
        return None, f"{name}: not in GPU_PEAK_FLOPS; add its data-sheet figures"
    flags = cpu_flags()
    per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags else 8
    if precision == "mixed_bfloat16" and "avx512_bf16" in flags:
        per_cycle *= 2
    mhz = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            mhz = [float(line.split(":")[1]) for line in fh if line.startswith("cpu MHz")]
    except OSError:
        pass
    if not mhz:
        return None, "CPU clock unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ghz = float(np.mean(mhz)) / 1000
    rate = cores * ghz * 1e9 * per_cycle
    return rate, f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle (estimate)"


def peak_memory_mb() -> tuple[float | None, str]:
    """Peak GPU memory TensorFlow allocated on GPU 0, else the process's peak resident
    memory (what a CPU run holds)."""
    if tf.config.list_physical_devices("GPU"):
        info = tf.config.experimental.get_memory_info("GPU:0")
        return info["peak"] / 2**20, "GPU:0 peak allocated"
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024, "process peak resident memory (no GPU)"


def speed_report(log: dist.TrainLog, global_batch: int, flops_per_image: int, precision: str):
    """Images per second, step time, peak memory and the fraction of peak FLOP rate reached.

    Training costs about 3x the forward pass (forward, then gradients for activations
    and for weights), the usual rule for the FLOPs a training step does.
    """
    rate = log.images_per_second(global_batch) or 0.0
    peak, peak_source = peak_flops(precision)
    memory, memory_source = peak_memory_mb()
    achieved = 3 * flops_per_image * rate
    return {
        "images_per_second": round(rate, 1),
        "step_seconds": round(log.step_time() or 0.0, 4),
        "peak_memory_mb": round(memory, 1) if memory else None,
        "peak_memory_of": memory_source,
        "achieved_gflops": round(achieved / 1e9, 2),
        "peak_gflops": round(peak / 1e9, 1) if peak else None,
        "peak_of": peak_source,
        "fraction_of_peak": round(achieved / peak, 4) if peak else None,
    }


def measure_throughput(
    build_model, x, y, global_batch: int, strategy=None, jit_compile=True, steps: int = 5
) -> float:
    """Training images per second at ``global_batch``: a fresh model, ``steps`` timed steps
    after two that trace and compile."""
    epoch_data, per_epoch = dist.array_epochs(x, y, global_batch)
    trainer = dist.Trainer(
        build_model, lambda total: make_optimizer(0.01, total), strategy=strategy,
        global_batch=global_batch, num_classes=int(np.max(y)) + 1, total_steps=steps + 2,
        jit_compile=jit_compile,
    )  # fmt: skip
    log = trainer.fit(epoch_data, per_epoch, verbose=False)
    return float(log.images_per_second(global_batch))


def probe_batch_size(measure, candidates=(64, 128, 256, 512, 1024, 2048), *, gain: float = 1.05):
    """The batch that fills the device: try ``candidates`` in order with ``measure(batch)``
    (images per second at that global batch, e.g. :func:`measure_throughput`), keep the
    fastest, stop at the first out-of-memory error or when the rate gains less than
    ``gain`` (5%). Returns ``(batch, {batch: images per second})``.
    """
    rates: dict[int, float] = {}
    best = None
    for batch in candidates:
        try:
            rates[batch] = float(measure(batch))
        except (tf.errors.ResourceExhaustedError, tf.errors.InternalError, MemoryError):
            break
        if best is not None and rates[batch] < gain * rates[best]:
            break
        best = batch
    if best is None:
        raise RuntimeError(f"no batch of {list(candidates)} fits this device; try smaller ones")
    return best, rates


# --- the card --------------------------------------------------------------------------------


def device_name() -> str:
    from helpers.devices import _cpu_name

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [
            tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus
        ]
        return f"{len(gpus)} x {names[0]}"
    return f"CPU: {_cpu_name()} ({os.cpu_count()} cores)"


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }


def make_card(
    backbone,
    source: Source,
    *,
    architecture: dict,
    test_accuracy: float,
    seed: int,
    precision: str,
    minutes: float,
    **extra,
) -> dict:
    """The model card of a pretrained ``backbone`` (see :data:`CARD_REQUIRED`)."""
    h, w, c = source.input_shape
    card = {
        "name": f"{architecture.get('family', 'resnet')} backbone pretrained on {source.name}",
        "source_data": source.source,
        "license": source.license,
        "classes": list(source.class_names),
        "num_classes": len(source.class_names),
        "train_images": int(len(source.y_train)),
        "input_size": [int(h), int(w)],
        "channels": int(c),
        "preprocessing": BACKBONE_PREPROCESSING,
        "preprocessing_inside": (
            f"raw 0..255 pixels in; the backbone resizes to {h}x{w} and scales by 1/255"
        ),
        "architecture": architecture,
        "parameters": int(backbone.count_params()),
        "flops_per_image": int(models.count_flops(backbone, (h, w, c))),
        "feature_size": int(backbone.output_shape[-1]),
        "source_test_accuracy": round(float(test_accuracy), 4),
        "seed": int(seed),
        "versions": versions(),
        "device": device_name(),
        "precision": precision,
        "minutes": round(float(minutes), 2),
    }
    card.update(extra)
    return card


def card_markdown(card: dict) -> str:
    classes = card["classes"]
    shown = ", ".join(classes[:8]) + (f", ... ({len(classes)} in all)" if len(classes) > 8 else "")
    h, w = card["input_size"]
    arch = card["architecture"]
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"- **Source data**: {card['source_data']} (license: {card['license']})",
        f"- **Classes**: {shown}",
        f"- **Input**: {h}x{w}x{card['channels']}, preprocessing `{card['preprocessing']}`: "
        f"{card.get('preprocessing_inside', '')}",
        f"- **Architecture**: {json.dumps(arch) if isinstance(arch, dict) else arch}; "
        f"{card['parameters']:,} parameters, {card['flops_per_image'] / 1e6:.1f} MFLOPs per image",
        f"- **Source test accuracy**: {card['source_test_accuracy']:.4f}",
        f"- **Trained**: seed {card['seed']}, {card['device']}, {card['precision']}, "
        f"{card['minutes']} minutes",
        "- **Versions**: " + ", ".join(f"{k} {v}" for k, v in card["versions"].items()),
        "",
        "Feed it raw 0..255 pixels of the input size above; notebook 08 refuses any other.",
    ]
    return "\n".join(lines) + "\n"


def save_backbone(backbone, folder: str | os.PathLike, card: dict) -> Path:
    """Write ``backbone.keras``, ``card.md`` and ``card.json`` into ``folder`` (the card
    last, so a folder with a card always has its model); the card must have every field
    :data:`CARD_REQUIRED` names."""
    require_fields(card, CARD_REQUIRED, "the card to save", "build it with make_card")
    # In float32 whatever it trained in (the card's "precision" says that): whoever loads
    # it computes in the precision of their own machine (models.with_dtype_policy).
    saved = models.with_dtype_policy(backbone, "float32")
    return save_with_card(saved, folder, card, card_markdown(card))


def read_model_card(folder: str | os.PathLike) -> dict:
    """The card in ``folder`` (or the ``card.json`` path given), with every field
    :data:`CARD_REQUIRED` names (``helpers.cards.check_card`` checks it against data)."""
    return read_card(folder, CARD_REQUIRED)


# --- one worker of a multi-machine run ---------------------------------------------------------


def _tfrecord_arrays(folder, size) -> tuple[np.ndarray, np.ndarray]:
    """A whole TFRecord export as uint8 arrays (a test split, small enough for memory)."""
    from helpers import pipeline as pl

    xs, ys = [], []
    for x, y in pl.read_tfrecords(
        folder, image_size=size, channels=3, normalize="none", batch_size=256, shuffle=False
    ):
        xs.append(np.clip(np.round(x.numpy()), 0, 255).astype(np.uint8))
        ys.append(y.numpy().astype(np.int32))
    return np.concatenate(xs), np.concatenate(ys)


def run_worker(args, strategy, cluster: dist.Cluster | None) -> int:
    """The training of ``python -m helpers pretrain-worker``, once ``strategy`` exists.

    ``helpers.__main__`` holds the arguments (``args``) and checks them, and
    :func:`helpers.distribute.start_worker` makes ``strategy`` once every peer answers:
    both before any TensorFlow work, so that a refused request or a missing peer costs no
    TensorFlow import and a worker that waits can still be stopped.
    """
    from helpers.devices import choose_precision

    started = time.perf_counter()
    if args.precision == "auto":
        precision, _ = choose_precision()
    else:
        precision = args.precision
        keras.mixed_precision.set_global_policy(precision)
    workers = dist.num_workers(strategy)
    me = dist.worker_id(strategy)
    chief = cluster is None or cluster.is_chief
    global_batch = dist.global_batch_size(args.per_worker_batch, strategy)
    size = (args.image_size, args.image_size)
    if args.tfrecords:
        epoch_data, steps_per_epoch, class_names = dist.tfrecord_epochs(
            args.tfrecords, global_batch, image_size=size, seed=args.seed, workers=workers
        )
        test, source_name = None, f"TFRecord shards in {args.tfrecords}"
        if args.test_tfrecords:
            from helpers import pipeline as pl

            labels = np.asarray(pl.read_manifest(args.tfrecords)["labels"], np.int32)
            test = _tfrecord_arrays(args.test_tfrecords, size)
            src = Source(
                source_name, np.zeros((0, *size, 3), np.uint8), labels, *test, class_names,
                f"{args.tfrecords} (TFRecord export)", "as its owner licenses it",
            )  # fmt: skip
    else:
        src = generated_source(
            args.images, classes=args.classes, size=args.image_size, seed=args.seed
        )
        epoch_data, steps_per_epoch = dist.array_epochs(
            src.x_train, src.y_train, global_batch, seed=args.seed
        )
        class_names, test, source_name = src.class_names, (src.x_test, src.y_test), src.name
    total = args.steps or args.epochs * steps_per_epoch
    shape = (*size, 3)
    trainer = dist.Trainer(
        lambda: build_classifier(
            shape, len(class_names), width=args.width, depth=args.depth, seed=args.seed,
            augment=not args.no_augment,
        ),
        lambda steps: make_optimizer(args.learning_rate, steps),
        strategy=strategy, global_batch=global_batch, num_classes=len(class_names),
        total_steps=total, jit_compile=not args.no_jit, backup_dir=args.backup_dir,
        save_every=args.save_every,
    )  # fmt: skip
    print(
        f"worker {me} of {workers}{' (chief)' if chief else ''}: {source_name}, global batch "
        f"{global_batch}, {steps_per_epoch} steps per epoch, {total} steps, {precision}",
        flush=True,
    )
    log = trainer.fit(
        epoch_data,
        steps_per_epoch,
        on_step=lambda s, loss: print(f"step {s} loss {loss!r}", flush=True),
    )
    result = {
        "worker": me,
        "workers": workers,
        "chief": chief,
        "resumed_from": log.resumed_from,
        "steps": log.steps,
        "losses": log.losses,
        "global_batch": global_batch,
        "digest": dist.weights_digest(trainer.model),
        "images_per_second": log.images_per_second(global_batch),
    }
    if test is not None:
        result["test_accuracy"] = accuracy(trainer.model, *test)
    if args.report_dir:
        report = Path(args.report_dir) / f"worker-{me}.json"
        report.parent.mkdir(parents=True, exist_ok=True)
        np.savez(report.with_suffix(".npz"), *trainer.model.get_weights())
        write_atomic(report, json.dumps(result).encode("utf-8"))
    if chief and args.out and test is not None:
        backbone = models.backbone_of(trainer.model)
        card = make_card(
            backbone, src,
            architecture={"family": "resnet", "width": args.width, "depth": list(args.depth)},
            test_accuracy=result["test_accuracy"], seed=args.seed, precision=precision,
            minutes=(time.perf_counter() - started) / 60, workers=workers,
            global_batch=global_batch, steps=log.steps,
        )  # fmt: skip
        save_backbone(backbone, args.out, card)
        print(f"backbone and card written to {args.out}", flush=True)
    print(f"worker {me} done: {log.steps} steps, weights {result['digest']}", flush=True)
    sys.stdout.flush()
    return 0
