"""One worker of a multi-machine pretraining run: ``python -m helpers pretrain-worker``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from helpers import distribute as dist
from helpers import models
from helpers.evaluate import model_accuracy
from helpers.files import write_atomic
from helpers.pretrain.card import make_card, save_backbone
from helpers.pretrain.sources import Source, generated_source
from helpers.quiet import keras
from helpers.train import make_optimizer


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


def seeded_resnet(input_shape, num_classes: int, *, width: int, depth, seed: int, augment=True):
    """``helpers.models``'s ResNet classifier built right after seeding every generator,
    so every worker (and every rerun) starts from the same weights."""
    keras.utils.set_random_seed(seed)
    return models.build_model(
        "resnet", input_shape=input_shape, num_classes=num_classes, width=width,
        depth=tuple(depth), augment=augment, seed=seed,
    )  # fmt: skip


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
        lambda: seeded_resnet(
            shape, len(class_names), width=args.width, depth=args.depth, seed=args.seed,
            augment=not args.no_augment,
        ),
        lambda steps: make_optimizer(
            "sgd", args.learning_rate, total_steps=steps, warmup=0.1, weight_decay=5e-4
        ),
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
        result["test_accuracy"] = model_accuracy(trainer.model, *test)
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
