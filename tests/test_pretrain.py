"""The model card round trip and its refusals; the generated source; the CPU paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import cards
from helpers import distribute as dist
from helpers import pretrain as pt


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
        lambda: pt.build_classifier((16, 16, 3), 8, width=4, depth=(1,), seed=1),
        lambda total: pt.make_optimizer(0.05, total),
        global_batch=32, num_classes=8, total_steps=4, jit_compile=False,
    )  # fmt: skip
    trainer.fit(data, steps, verbose=False)
    backbone = pt.models.backbone_of(trainer.model)
    card = pt.make_card(
        backbone, src, architecture={"family": "resnet", "width": 4, "depth": [1]},
        test_accuracy=pt.accuracy(trainer.model, src.x_test, src.y_test), seed=1,
        precision="float32", minutes=0.1,
    )  # fmt: skip
    pt.save_backbone(backbone, folder, card)
    return folder, backbone, src


def test_card_round_trip_has_every_field(saved):
    folder, backbone, src = saved
    card = pt.read_model_card(folder)
    assert set(pt.CARD_REQUIRED) <= set(card)
    assert card["input_size"] == [16, 16] and card["channels"] == 3
    assert card["classes"] == src.class_names and card["num_classes"] == 8
    assert card["preprocessing"] == "raw"
    assert card["parameters"] == backbone.count_params()
    assert card["flops_per_image"] > 2 * card["parameters"]  # convolutions reuse weights
    assert card["license"] == "CC0 (generated)" and card["versions"]["keras"]
    assert 0.0 <= card["source_test_accuracy"] <= 1.0
    assert "Source test accuracy" in (folder / cards.CARD_MD).read_text()
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
    card = pt.read_model_card(saved[0])
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
        pt.read_model_card(tmp_path)
    with pytest.raises(FileNotFoundError, match="notebook 07"):
        pt.read_model_card(tmp_path / "nowhere")
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
            lambda: pt.build_classifier((16, 16, 3), 4, width=4, depth=(1,), seed=2),
            lambda total: pt.make_optimizer(0.05, total),
            global_batch=32, num_classes=4, total_steps=6, jit_compile=False,
        )  # fmt: skip

    late = trainer().fit(data, steps, time_budget_s=0.0, verbose=False)
    assert (late.steps, late.stopped_early, late.out_of_time) == (1, True, True)
    preempted = trainer().fit(data, steps, stop_after=2, verbose=False)
    assert (preempted.steps, preempted.stopped_early, preempted.out_of_time) == (2, True, False)
    whole = trainer().fit(data, steps, verbose=False)
    assert (whole.steps, whole.stopped_early, whole.out_of_time) == (6, False, False)
