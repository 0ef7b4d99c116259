"""The model card round trip and its refusals; the generated source; the CPU paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import cards, models
from helpers import distribute as dist
from helpers import pretrain as pt
from helpers.evaluate import model_accuracy
from helpers.train import make_optimizer


def fed(shape, preprocessing) -> dict:
    """What a notebook would feed a backbone, in the card's terms."""
    return {"input_size": shape[:2], "channels": shape[2], "preprocessing": preprocessing}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny backbone trained a few steps, saved with its card."""
    folder = tmp_path_factory.mktemp("backbone")
    src = pt.generated_source(400, classes=8, size=16, seed=1)
    data, steps = dist.array_epochs(src.x_train, src.y_train, 32, seed=1)
    trainer = dist.Trainer(
        lambda: pt.seeded_resnet((16, 16, 3), 8, width=4, depth=(1,), seed=1),
        lambda total: make_optimizer("sgd", 0.05, total_steps=total, warmup=0.1),
        global_batch=32, num_classes=8, total_steps=4, jit_compile=False,
    )  # fmt: skip
    trainer.fit(data, steps, verbose=False)
    backbone = models.backbone_of(trainer.model)
    card = pt.make_card(
        backbone, src, architecture={"family": "resnet", "width": 4, "depth": [1]},
        test_accuracy=model_accuracy(trainer.model, src.x_test, src.y_test), seed=1,
        precision="float32", minutes=0.1,
    )  # fmt: skip
    pt.save_backbone(backbone, folder, card)
    return folder, backbone, src


def test_card_round_trip_has_every_field(saved):
    folder, backbone, src = saved
    card = cards.read_card(folder)
    assert set(cards.BACKBONE_FIELDS) <= set(card)
    assert card["input_size"] == [16, 16] and card["channels"] == 3
    assert card["classes"] == src.class_names and card["num_classes"] == 8
    assert card["preprocessing"] == "raw"
    assert card["parameters"] == backbone.count_params()
    assert card["flops_per_image"] > 2 * card["parameters"]  # convolutions reuse weights
    assert card["license"] == "CC0 (generated)" and card["versions"]["keras"]
    assert 0.0 <= card["source_test_accuracy"] <= 1.0
    assert "**source test accuracy**" in (folder / cards.CARD_MD).read_text()
    cards.check_card(card, fed((16, 16, 3), "raw"))  # what it was trained on: accepted


@pytest.mark.parametrize(
    ("shape", "preprocessing", "named"),
    [
        ((32, 32, 3), "raw", ["input size"]),
        ((16, 16, 1), "raw", ["channels"]),
        ((16, 16, 3), "unit", ["preprocessing"]),
        ((24, 24, 1), "symmetric", ["input size", "channels", "preprocessing"]),
    ],
)
def test_check_card_refuses_a_mismatch_naming_each_field(saved, shape, preprocessing, named):
    card = cards.read_card(saved[0])
    with pytest.raises(cards.CardMismatch) as err:
        cards.check_card(card, fed(shape, preprocessing))
    message = str(err.value)
    for field in named:
        assert field in message
    for field in {"input size", "channels", "preprocessing"} - set(named):
        assert f"{field}:" not in message


def test_a_card_missing_fields_or_missing_is_refused(saved, tmp_path):
    card = json.loads((saved[0] / cards.CARD_JSON).read_text())
    del card["preprocessing"]
    (tmp_path / cards.CARD_JSON).write_text(json.dumps(card))
    with pytest.raises(cards.CardMismatch, match="preprocessing"):
        cards.read_card(tmp_path)
    with pytest.raises(FileNotFoundError, match="notebook 07"):
        cards.read_card(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="lacks"):
        pt.save_backbone(saved[1], tmp_path / "x", card)


def test_notebook_08_loads_the_saved_backbone(saved):
    from helpers import finetune as ft

    backbone = ft.load_backbone(saved[0], expected={"input_size": (16, 16), "channels": 3})
    x = saved[2].x_test[:4].astype("float32")
    np.testing.assert_allclose(backbone.model(x), saved[1](x), atol=1e-5)


def test_generated_source_is_balanced_deterministic_and_many_class():
    a = pt.generated_source(256, classes=128, size=16, seed=5)
    b = pt.generated_source(256, classes=128, size=16, seed=5)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert len(a.class_names) == 128 and len(set(a.class_names)) == 128
    counts = np.bincount(np.concatenate([a.y_train, a.y_test]), minlength=128)
    assert counts.min() == counts.max() == 2
    assert len(pt.generated_source(64, classes=16, size=16).class_names) == 16
    with pytest.raises(ValueError, match="between 4 and 128"):
        pt.generated_source(10, classes=2)


def test_read_tf_config_checks_what_it_is_given():
    assert dist.read_tf_config("") is None
    cluster = dist.read_tf_config(dist.tf_config(["a:1", "b:2"], 1))
    assert cluster.num_workers == 2 and cluster.worker_id == 1 and not cluster.is_chief
    assert dist.read_tf_config(dist.tf_config(["a:1", "b:2"], 0)).is_chief
    with pytest.raises(dist.DistributeError, match="not JSON"):
        dist.read_tf_config("{worker")
    with pytest.raises(dist.DistributeError, match="not in the cluster"):
        dist.read_tf_config(dist.tf_config(["a:1"], 3))
    with pytest.raises(dist.DistributeError, match="parameter servers"):
        dist.read_tf_config(
            json.dumps({"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}})
        )


def test_probe_batch_size_stops_when_the_rate_stops_growing_or_memory_ends():
    rates = {64: 100.0, 128: 190.0, 256: 195.0, 512: 400.0}
    assert pt.probe_batch_size(rates.__getitem__, (64, 128, 256, 512)) == (
        128,
        {64: 100.0, 128: 190.0, 256: 195.0},
    )

    def oom(batch):
        if batch > 128:
            raise MemoryError
        return batch * 1.0

    assert pt.probe_batch_size(oom, (64, 128, 256))[0] == 128


def test_the_command_line_does_not_load_tensorflow():
    import subprocess
    import sys

    code = "import sys, helpers.__main__; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run(
        [sys.executable, "-m", "helpers", "pretrain-worker", "--help"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "TF_CONFIG" in out.stdout


def test_a_spent_time_budget_stops_and_says_so_unlike_a_preemption():
    src = pt.generated_source(200, classes=4, size=16, seed=2)
    data, steps = dist.array_epochs(src.x_train, src.y_train, 32, seed=2)

    def trainer():
        return dist.Trainer(
            lambda: pt.seeded_resnet((16, 16, 3), 4, width=4, depth=(1,), seed=2),
            lambda total: make_optimizer("sgd", 0.05, total_steps=total, warmup=0.1),
            global_batch=32, num_classes=4, total_steps=6, jit_compile=False,
        )  # fmt: skip

    late = trainer().fit(data, steps, time_budget_s=0.0, verbose=False)
    assert (late.steps, late.stopped_early, late.out_of_time) == (1, True, True)
    preempted = trainer().fit(data, steps, stop_after=2, verbose=False)
    assert (preempted.steps, preempted.stopped_early, preempted.out_of_time) == (2, True, False)
    whole = trainer().fit(data, steps, verbose=False)
    assert (whole.steps, whole.stopped_early, whole.out_of_time) == (6, False, False)


@pytest.mark.parametrize("num_classes", [2, 3, 5, 10, 100, 128, 1000])
@pytest.mark.parametrize("times_chance", [0.0, 1.5, 2.5, 3.5, 10.0, 20.0])
def test_the_floor_is_reachable_for_any_class_count(num_classes, times_chance):
    floor = pt.accuracy_floor(num_classes, times_chance)
    chance = 1 / num_classes
    assert 0.0 <= floor < 1.0  # the old rule asked 5 classes for 10 / 5 = 2.0
    assert floor <= times_chance * chance + 1e-12
    if times_chance > 1:
        assert floor > chance  # still a test: better than guessing


def test_the_floor_is_a_multiple_of_chance_capped_halfway_to_one():
    assert pt.accuracy_floor(5, 2.5) == pytest.approx(0.5)
    assert pt.accuracy_floor(128, 10.0) == pytest.approx(10 / 128)
    assert pt.accuracy_floor(5, 10.0) == pytest.approx(0.6)  # (1 + 1/5) / 2
    assert pt.accuracy_floor(2, 3.0) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="at least 2 classes"):
        pt.accuracy_floor(1, 2.0)
    with pytest.raises(ValueError, match="0 or more"):
        pt.accuracy_floor(5, -1.0)


def test_a_run_that_misses_the_floor_still_saves_its_backbone_and_says_so(saved, tmp_path):
    """The notebook's order: score, save with the verdict in the card, then check."""
    _, backbone, src = saved
    floor = pt.accuracy_floor(len(src.class_names), 3.0)
    accuracy = floor - 0.01  # trained, but short of the floor
    card = pt.make_card(
        backbone, src, architecture={"family": "resnet", "width": 4, "depth": [1]},
        test_accuracy=accuracy, seed=1, precision="float32", minutes=0.1,
        source_accuracy_floor=floor, meets_floor=bool(accuracy >= floor),
    )  # fmt: skip
    folder = pt.save_backbone(backbone, tmp_path / "missed", card)
    verdict = pt.floor_verdict(accuracy, floor, len(src.class_names), folder)
    assert "misses the floor" in verdict and str(folder) in verdict and "saved" in verdict
    again = cards.read_card(folder)
    assert again["meets_floor"] is False and again["source_accuracy_floor"] == floor
    assert (folder / cards.MODEL_FILE).is_file()
    reached = pt.floor_verdict(floor, floor, len(src.class_names), folder)
    assert "reaches the floor" in reached and "misses the floor" not in reached


def test_load_source_defaults_to_the_shipped_source_photos():
    from helpers.acquire import photos

    src = pt.load_source(limit_per_class=6)
    assert tuple(src.class_names) == photos.SOURCE_CLASSES
    assert src.input_shape == (32, 32, 3) and src.x_train.dtype == np.uint8
    assert np.bincount(src.y_train).tolist() == [6] * 5 == np.bincount(src.y_test).tolist()
    assert "CIFAR-10" in src.source


def test_limit_per_class_keeps_the_first_images_of_each_class_of_any_source():
    src = pt.load_source("generated", images=400, classes=8, size=16, limit_per_class=3, seed=3)
    assert np.bincount(src.y_train).tolist() == [3] * 8
    assert max(np.bincount(src.y_test)) <= 3
    with pytest.raises(ValueError, match="positive count"):
        pt.load_source("generated", limit_per_class=0)
    with pytest.raises(ValueError, match='"photos"'):
        pt.load_source("nope")
