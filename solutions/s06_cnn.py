"""Solutions to the exercises of notebooks/06_cnn.ipynb, at sizes that run in seconds."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import evaluate as E
from helpers import models as M
from helpers import sizing as S
from helpers import train as T
from helpers.acquire.photos import TARGET_CLASSES, photo_tree
from helpers.config import seed_everything

SEED = 42


def _digits(limit: int | None = None, batch_size: int = 64):
    """scikit-learn's 8x8 digits as the notebook's train, validation and test datasets
    (``limit``: at most that many training images)."""
    data = T.load_image_data("digits", seed=SEED, limit=limit)
    return data, *T.make_datasets(data, batch_size, seed=SEED)


def _course_cnn(data, **kwargs):
    seed_everything(SEED)
    return M.build_model(
        "course_cnn", input_shape=data.input_shape, num_classes=len(data.class_names),
        size="small", seed=SEED, **kwargs,
    )  # fmt: skip


def exercise_1(folder: str | os.PathLike, per_class: int = 30, epochs: int = 3) -> dict:
    """Notebook 06 on a folder of photos of your own (here: project photos made 96x72).

    The notebook trains at the largest side of ``sizing.SIDES`` (up to the photos'
    shorter side) whose epochs over the training images fit the time budget at the
    speed it measured: large photos are shrunk so the minutes stay the same, and the
    printed reason says which side and why. Doubling ``TIME_BUDGET_MIN`` can therefore
    only grow the side or leave it (the exercise's answer, ``'a'``). Here 63 training
    photos of 96x72 trained at 64x64 with 2 minutes, and still at 64x64 with 4: the next
    side, 96, is larger than the photos' shorter side. With few photos a class and a
    short budget the confusion matrix mixes the classes that look alike (here horses and
    frogs taken for dogs); the top losses show the photos the model is most sure about
    and wrong on, where a label error shows first. Returns the chosen size, its reason,
    the size a doubled budget picks, the test accuracy and the most confused pairs.
    """
    from PIL import Image

    root = Path(folder) / "own_photos"
    shipped = photo_tree("target", limit_per_class=per_class) / "train"
    for cls in TARGET_CLASSES[:3]:
        (root / cls).mkdir(parents=True)
        for path in sorted((shipped / cls).glob("*.jpg")):
            Image.open(path).resize((96, 72)).save(root / cls / path.name)
    data = T.load_image_data("folder", root, seed=SEED)
    speed = S.measure_images_per_second(
        M.build_model("course_cnn", input_shape=(32, 32, 3), num_classes=3, size="small")
    )
    size = S.choose_image_size(data.input_shape[:2], data.sizes()["train"], 2.0, 10, 64, speed)
    doubled = S.choose_image_size(data.input_shape[:2], data.sizes()["train"], 4.0, 10, 64, speed)
    data.input_shape = (*size.shape, 3)
    train, val, test = T.make_datasets(data, size.batch_size, seed=SEED)
    model = _course_cnn(data)
    T.fit(model, train, val, epochs=epochs, verbose=0)
    ev = E.evaluate(model, test, data.class_names, record_as=None)
    return {
        "photo_size": data.sizes(),
        "native": (72, 96),
        "trained_at": size.shape,
        "reason": size.reason,
        "trained_at_doubled_budget": doubled.shape,
        "test_accuracy": ev.accuracy,
        "most_confused": ev.most_confused(3),
        "top_losses": len(ev.top_losses(8)),
    }


def exercise_2(epochs: int = 4, limit: int | None = None) -> dict[str, dict[str, float]]:
    """The course CNN at ten times and a tenth of the finder's suggestion.

    The suggestion sits where the finder's loss falls fastest. A tenth of it sits on
    the flat start of the curve, where the loss barely moves: training is stable but
    slow, and after a few epochs the model is behind. Ten times it sits near or past
    the curve's minimum, where the loss stops falling and starts to climb: each step
    overshoots, and even with warm-up and decay the model ends behind as well. On the
    digits the suggested rate gave 0.68 test accuracy after 4 epochs, a tenth 0.53 and
    ten times 0.48. (The notebook's ``LEARNING_RATE`` is a fixed value near the
    suggestion for the shipped photos, so that a run does not depend on a noisy sweep.)
    Returns, for each rate, the rate, its place against the finder's minimum and the
    test accuracy after ``epochs`` epochs.
    """
    data, train, val, test = _digits(limit)
    finder = T.lr_find(_course_cnn(data), train, steps=40)
    out = {}
    for name, factor in (("a tenth", 0.1), ("suggested", 1.0), ("ten times", 10.0)):
        rate = factor * finder.suggestion
        model = _course_cnn(data)
        T.fit(model, train, val, epochs=epochs, learning_rate=rate, verbose=0)
        out[name] = {
            "learning_rate": rate,
            "over_finder_minimum": rate / finder.minimum,
            "test_accuracy": E.evaluate(model, test, data.class_names, record_as=None).accuracy,
        }
    return out


def exercise_3(epochs: int = 6, limit: int | None = None) -> dict[str, float]:
    """Flips on digits: in training (``FLIP``, the course CNN's augmentation) and in TTA.

    A mirrored 3 is no digit, and a mirrored 2 looks like a badly made 5: on digits a
    flip changes what the image shows. The flipped test images show it: the course CNN
    trained without flips (its 2-pixel shifts kept, as ``FLIP = False`` does) gets 0.92
    of the test digits right and 0.34 of their mirror images. Training with flips asks
    the model to give a digit and its mirror image one class, a contradiction for 2 and
    5: its test accuracy falls to 0.74, 18 points lower (the exercise's answer: the
    accuracy without flips minus with flips, in points). Flip TTA averages each
    prediction with the prediction for the mirror image; for the model trained without
    flips that mixes in a guess about another picture and costs 15 points (0.77), so
    TTA stays off for digits; for the model trained with flips, which already treats
    mirror images alike, it is a small ensemble (0.78). On photos a mirrored dog is
    still a dog, so flips help in both places. (6 epochs on all 1,437 training digits,
    8x8, on this session's shared AVX2-only EPYC.) Returns the accuracies with and
    without TTA and on the flipped test images, for a model trained with flips and one
    without.
    """
    data, train, val, test = _digits(limit)
    flipped_test = test.map(lambda x, y: (x[:, :, ::-1, :], y))
    out = {}
    for name, flip in (("flips", True), ("no flips", False)):
        model = _course_cnn(data, flip=flip)  # the 2-pixel shifts stay, as in the notebook
        T.fit(model, train, val, epochs=epochs, verbose=0)
        for tta in (False, True):
            ev = E.evaluate(model, test, data.class_names, tta=tta, record_as=None)
            out[f"{name} in training, TTA {tta}"] = ev.accuracy
        ev = E.evaluate(model, flipped_test, data.class_names, record_as=None)
        out[f"{name} in training, flipped test images"] = ev.accuracy
    return out


class _Interrupt(Exception):
    """Stands in for the stop button (a KeyboardInterrupt in the kernel)."""


def exercise_4(
    folder: str | os.PathLike, epochs: int = 4, stop_after: int = 2, limit: int | None = None
) -> dict:
    """Interrupt the budgeted training and run the cell again.

    ``fit`` keeps a ``BackupAndRestore`` backup in ``out_dir/backup`` after every epoch
    and the plan in ``out_dir/plan.json``. Run again with the same folder, it reloads
    the weights, the optimizer and the epoch counter from the backup and the plan from
    the file: it resumes after the last finished epoch, and the plan stays the one made
    before the stop, because the learning-rate schedule (warm-up, then decay to zero
    over the planned steps) was built for that length; a new plan from a new
    measurement would stretch or cut a schedule already half run. Returns the epochs
    finished before the stop, the epochs the second run trained, and both plan lines.
    """
    from helpers.quiet import keras

    data, train, val, _ = _digits(limit)
    out_dir = Path(folder) / "course_cnn"

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == stop_after:
                raise _Interrupt

    model = _course_cnn(data)
    try:
        T.fit(model, train, val, epochs=epochs, out_dir=out_dir, callbacks=[Stop()], verbose=0)
    except _Interrupt:
        pass
    first_plan = (out_dir / "plan.json").read_text()
    model = _course_cnn(data)
    resumed = T.fit(model, train, val, epochs=epochs, out_dir=out_dir, verbose=0)
    return {
        "stopped_after": stop_after,
        "epochs_in_second_run": len(resumed.history["loss"]),
        "first_plan": first_plan,
        "second_plan": resumed.plan,
        "total_epochs": resumed.epochs,
    }


def exercise_5(steps: int = 4, batch_size: int = 64) -> dict:
    """``float32`` against ``mixed_bfloat16``, and what ``PRECISION = "auto"`` picks.

    Where the CPU has ``avx512_bf16`` (or AMX), oneDNN multiplies in bfloat16 natively
    and the course CNN trains somewhat faster than in float32 (1.10x on the Intel Xeon
    of ``benchmarks/results/train_throughput.txt``, 1.25x on an AMD EPYC); without it
    bfloat16 is emulated and far slower (0.06x and 0.13x on an AVX2-only AMD EPYC in
    ``benchmarks/results/train_throughput-amd-epyc-avx2.txt``; 0.08x in this solution's
    four-step run on such a CPU, 8 against 95 images/s). ``choose_precision`` picks from
    the CPU's flags and the table measured for its vendor, and says which figure it used.
    A few steps on a shared machine are noisy: trust the benchmark's many steps over
    these. Returns the flag, the images per second of each policy here, and the automatic
    choice with its reason.
    """
    from helpers.devices import choose_precision, cpu_flags
    from helpers.quiet import keras

    speeds = {}
    for policy in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            model = M.build_model("course_cnn", input_shape=(32, 32, 3), num_classes=10)
            speeds[policy] = S.measure_images_per_second(model, batch_size, steps)
        finally:
            keras.mixed_precision.set_global_policy("float32")
    chosen, reason = choose_precision([], apply=False)
    return {
        "avx512_bf16": "avx512_bf16" in cpu_flags(),
        "images_per_second": speeds,
        "auto": chosen,
        "reason": reason,
    }
