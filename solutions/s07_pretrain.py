"""Solutions to the exercises of notebooks/07_pretrain.ipynb, at the smoke profile's sizes."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from helpers import distribute as dist
from helpers import pretrain as pt
from helpers.config import seed_everything
from helpers.evaluate import model_accuracy
from helpers.models import backbone_of, count_flops
from helpers.train import make_optimizer

SEED = 42
SHAPE = (32, 32, 3)  # the shipped photos
WIDTH, DEPTH = 8, (1, 1)  # the smoke profile's backbone
BATCH = 64  # the notebook's PER_WORKER_BATCH in smoke and laptop


def _model(width: int = WIDTH, num_classes: int = 5):
    return pt.seeded_resnet(SHAPE, num_classes, width=width, depth=DEPTH, seed=SEED)


def _optimizer(steps: int):
    return make_optimizer("sgd", 0.1, total_steps=steps, warmup=0.1, weight_decay=5e-4)


def _trainer(steps: int, **kwargs) -> dist.Trainer:
    return dist.Trainer(
        _model, _optimizer, global_batch=BATCH, num_classes=5, total_steps=steps,
        label_smoothing=0.0, jit_compile=False, **kwargs,
    )  # fmt: skip


def exercise_1(runs=((80, 75), (400, 15))) -> dict[int, dict[str, float]]:
    """About the same steps over 80 and over 400 photos a class: the run on 80 learns its
    photos, the run on 400 its classes.

    ``runs`` holds ``(LIMIT_PER_CLASS, EPOCHS)``: 75 epochs of 6 steps over 80 photos a
    class, 15 of 31 over 400 (450 and 465 steps of 64 photos). Measured at the smoke
    profile's size on a 2-core AMD EPYC: with 80 photos a class, 0.715 training and
    0.548 test accuracy (a gap of 0.17: each photo seen 75 times, the network learned
    them by heart); with 400, 0.651 and 0.604 (a gap of 0.05). The second backbone scores
    higher on the test photos too, and only its features hold on photos it never saw,
    what a new task needs from them: fine-tune that one in notebook 08. Each
    run is scored on its own test photos, as the notebook does. Returns, for each limit,
    the steps and the training and test accuracy.
    """
    out = {}
    for limit, epochs in runs:
        src = pt.load_source("photos", limit_per_class=limit, seed=SEED)
        seed_everything(SEED)
        data, per_epoch = dist.array_epochs(src.x_train, src.y_train, BATCH, seed=SEED)
        trainer = _trainer(epochs * per_epoch)
        trainer.fit(data, per_epoch, verbose=False)
        out[limit] = {
            "steps": epochs * per_epoch,
            "train_accuracy": model_accuracy(trainer.model, src.x_train, src.y_train),
            "test_accuracy": model_accuracy(trainer.model, src.x_test, src.y_test),
        }
    return out


def exercise_2(steps: int = 12) -> dict[str, float]:
    """XLA on a CPU: images per second with ``jit_compile=True`` over without it.

    On this 2-core AMD EPYC (AVX2, float32, the smoke-size ResNet) XLA does not pay: 0.82
    in one run, below 1 as for the course CNN in
    ``benchmarks/results/train_throughput*.txt`` (0.41x to 0.97x). What XLA's fusion
    saves, the trips to GPU memory between kernels, is a GPU's cost; on these CPUs it
    bought nothing. A shared machine makes the figure noisy: rerun both when it is idle.
    Returns the images per second with and without XLA and their ratio.
    """
    src = pt.load_source("photos", limit_per_class=80, seed=SEED)
    rate = {
        jit: pt.measure_throughput(_model, src.x_train, src.y_train, BATCH, None, jit, steps)
        for jit in (False, True)
    }
    return {"without_xla": rate[False], "with_xla": rate[True], "ratio": rate[True] / rate[False]}


def exercise_3(widths=(8, 16), steps: int = 12) -> dict[str, float]:
    """Twice the width: FLOPs per image grow almost 4x, and so does the step time on a CPU.

    A 3x3 convolution from ``c_in`` to ``c_out`` channels costs ``9 c_in c_out`` multiply-
    adds per pixel: doubling every stage's filters doubles both, so 4x. Only the stem
    (from 3 colour channels, 2x) and the head grow less, so the total ratio is just
    under 4: 3.77 from 8 to 16 filters. On this 2-core AMD EPYC the step time grew about as
    much (3.8x): even the smoke-size network keeps a CPU's cores busy, so four times the
    work takes about four times as long. Returns the FLOPs per image of each width and the FLOPs
    and step-time ratios.
    """
    src = pt.load_source("photos", limit_per_class=80, seed=SEED)
    flops, rate = {}, {}
    for width in widths:
        flops[width] = count_flops(backbone_of(_model(width)), SHAPE)
        rate[width] = pt.measure_throughput(
            lambda w=width: _model(w), src.x_train, src.y_train, BATCH, None, False, steps
        )
    small, large = widths
    return {
        **{f"flops_width_{w}": float(f) for w, f in flops.items()},
        "flops_ratio": flops[large] / flops[small],
        "step_time_ratio": rate[small] / rate[large],
    }


def exercise_4(folder: str | os.PathLike, stop_at: int = 9) -> dict[str, int]:
    """Stopped during pretraining, the rerun resumes from the last backup, not from the
    step where it stopped: the notebook's trainer backs up once an epoch
    (``save_every=STEPS_PER_EPOCH``), so it resumes from the last epoch's end, a multiple
    of ``STEPS_PER_EPOCH``, skips that epoch's batches it had seen, and runs the steps
    after it again. (A preempted worker that gets a warning, as ``stop_after`` plays it,
    backs up first; a kernel interrupt does not.) Here an interrupt at step 9 of 6 steps
    an epoch resumes at step 6. Returns the steps per epoch, the stop and the resume step.
    """
    src = pt.load_source("photos", limit_per_class=80, seed=SEED)
    epochs, per_epoch = dist.array_epochs(src.x_train, src.y_train, BATCH, seed=SEED)
    total = 3 * per_epoch
    backup = Path(folder) / "backup"

    def interrupt(step, loss):  # the learner's "stop" button, during step ``stop_at``
        if step == stop_at:
            raise KeyboardInterrupt

    try:
        _trainer(total, backup_dir=backup, save_every=per_epoch).fit(
            epochs, per_epoch, on_step=interrupt, verbose=False
        )
    except KeyboardInterrupt:
        pass
    log = _trainer(total, backup_dir=backup, save_every=per_epoch).fit(
        epochs, per_epoch, verbose=False
    )
    return {"steps_per_epoch": per_epoch, "stopped_at": stop_at, "resumed_from": log.resumed_from}


def exercise_5(folder: str | os.PathLike, wait_s: float = 300) -> dict:
    """Two workers by hand, one killed, both started again: they resume together from
    the newest step that *both* backups hold (here 10, with ``--save-every 5``), not each
    from its own newest, and end with the same weights. Each worker backs up into its
    own folder; at the restart they agree through an all-gather on the newest step every
    worker holds, so a worker killed between two backups holds the other back. A worker
    cannot go on alone: its peer's gradients never come, so stop it too (here it is
    killed as a scheduler would). Returns the resume step of each worker, their steps
    and whether their weights agree.
    """
    folder = Path(folder)
    args = [
        "--backup-dir", str(folder / "backup"), "--report-dir", str(folder), "--images", "600",
        "--image-size", "16", "--width", "8", "--depth", "1", "1", "--classes", "16",
        "--precision", "float32", "--no-augment", "--per-worker-batch", "16", "--steps", "20",
        "--save-every", "5", "--timeout", "30", "--no-jit",
    ]  # fmt: skip
    first = dist.launch_local_workers(args, 2, log_dir=folder / "first")
    # Both backups of step 10 written: a worker killed while its peer still writes step
    # 10 would make them agree on step 5 instead (the newest step *both* hold).
    marks = [folder / "backup" / f"worker-{i}" / "ckpt-10.index" for i in range(2)]
    end = time.monotonic() + wait_s
    while not all(m.exists() for m in marks) and first[1].poll() is None and time.monotonic() < end:
        time.sleep(0.1)
    os.kill(first[1].pid, signal.SIGKILL)  # a preempted machine
    for p in first:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)
    again = dist.launch_local_workers(args, 2, log_dir=folder / "again")
    codes = [p.wait(timeout=wait_s) for p in again]
    reports = [json.loads((folder / f"worker-{i}.json").read_text()) for i in range(2)]
    return {
        "exit_codes": codes,
        "resumed_from": [r["resumed_from"] for r in reports],
        "steps": [r["steps"] for r in reports],
        "same_weights": reports[0]["digest"] == reports[1]["digest"],
    }
