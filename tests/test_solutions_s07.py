"""Notebook 07's exercise solutions agree with its checks, and its inline training step
equals the Trainer's under mixed_float16, the one policy where the loss is scaled."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import distribute as dist
from helpers import pretrain as pt
from helpers.exercises import check
from helpers.quiet import keras, tf
from helpers.train import make_optimizer
from solutions import s07_pretrain

pytestmark = pytest.mark.slow  # each solution trains, one starts four worker processes

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "07_pretrain.ipynb"


def _cells(*ids: str) -> list[str]:
    cells = {c["id"]: "".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"]}
    return [cells[i] for i in ids]


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("jit_compile", [False, True])
def test_the_inline_step_equals_the_trainer_under_mixed_float16(mixed_float16, jit_compile):
    """The notebook's own cells (the inline step, then its comparison with the Trainer) on
    tiny data: under mixed_float16 the optimizer is a LossScaleOptimizer, so a step that
    scaled the loss outside the tape would get no gradients at all."""
    rng = np.random.default_rng(0)
    names = dict(
        np=np, keras=keras, tf=tf, dist=dist, pt=pt, make_optimizer=make_optimizer,
        strategy=tf.distribute.get_strategy(), PER_WORKER_BATCH=16, SEED=42,
        SHAPE=(16, 16, 3), NUM_CLASSES=4, WIDTH=4, DEPTH=(1,), LEARNING_RATE=0.1,
        LABEL_SMOOTHING=0.1, JIT_COMPILE=jit_compile,
        src=SimpleNamespace(
            x_train=rng.integers(0, 256, (96, 16, 16, 3), dtype=np.uint8),
            y_train=rng.integers(0, 4, 96),
        ),
    )  # fmt: skip
    step, compare = _cells("c09", "c11")
    exec(step, names)
    assert isinstance(names["optimizer"], keras.optimizers.LossScaleOptimizer)
    assert float(names["optimizer"].dynamic_scale) > 1  # the loss really was scaled
    assert all(np.isfinite(names["inline_losses"]))
    exec(compare, names)  # asserts the same losses and weights as the Trainer's
    assert names["check_log"].steps == 5


def test_jit_compile_follows_the_device_unless_given():
    assert pt.choose_jit_compile("auto", gpus=["GPU:0"])[0] is True
    on_cpu, why = pt.choose_jit_compile("auto", gpus=[])
    assert on_cpu is False and "benchmarks/results/train_throughput" in why
    assert pt.choose_jit_compile(True, gpus=[]) == (True, "as given")


def test_exercise_1_the_run_on_fewer_photos_learns_them_by_heart():
    """The exercise's comparison at a quarter of its photos and 55% of its steps: 250
    steps over 20 photos a class, 252 over 100 (the exercise: 450 over 80, 465 over 400).
    Measured on a 2-core AMD EPYC: gaps 0.36 and 0.04 (0.17 and 0.05 at the exercise's
    sizes)."""
    runs = s07_pretrain.exercise_1(runs=((20, 250), (100, 36)))
    gap = {n: r["train_accuracy"] - r["test_accuracy"] for n, r in runs.items()}
    assert gap[20] > gap[100] + 0.1
    assert abs(runs[20]["steps"] - runs[100]["steps"]) <= 15
    assert check("07", 1, "a").right and not check("07", 1, "b").right


def test_exercise_2_measures_xla_against_no_xla():
    xla = s07_pretrain.exercise_2()  # a speed ratio: measured, not asserted (machine, load)
    assert xla["ratio"] == pytest.approx(xla["with_xla"] / xla["without_xla"])
    assert xla["ratio"] > 0
    assert check("07", 2, 0.82).right and not check("07", 2, 3.0).right  # the expect line


def test_exercise_3_twice_the_width_costs_almost_four_times_the_flops():
    width = s07_pretrain.exercise_3()
    assert 3.3 < width["flops_ratio"] < 4
    assert check("07", 3, width["flops_ratio"]).right


def test_exercise_4_an_interrupted_run_resumes_from_its_last_epoch_backup(tmp_path):
    resume = s07_pretrain.exercise_4(tmp_path)
    assert resume == {"steps_per_epoch": 6, "stopped_at": 9, "resumed_from": 6}
    assert check("07", 4, "b").right and not check("07", 4, "c").right


def test_exercise_5_restarted_workers_resume_together(tmp_path):
    workers = s07_pretrain.exercise_5(tmp_path)
    assert workers["exit_codes"] == [0, 0] and workers["steps"] == [20, 20]
    assert workers["resumed_from"][0] == workers["resumed_from"][1] >= 10
    assert workers["same_weights"]
    assert check("07", 5, "b").right
