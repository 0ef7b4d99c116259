"""helpers.train: data to splits (bad input included), cardinality, schedule, optimizer,
planner and budget guard, checkpoints and resuming, metrics for the runner, the
learning-rate finder."""

import json
import re
import shutil
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from helpers import models as M
from helpers import pipeline as pl
from helpers import results
from helpers import train as T
from helpers.quiet import keras


def _write(folder, n, colour, size=(12, 12), mode="RGB", fmt="PNG"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash((str(folder), n))) % 2**32)
    for i in range(n):
        pixels = np.clip(rng.normal(colour, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels).convert(mode)
        image.save(folder / f"{i}.{fmt.lower()}", format=fmt)


def _tree(root, classes=("dark", "light"), n=20, **kw):
    for k, name in enumerate(classes):
        _write(root / name, n, 60 + 140 * k, **kw)
    return root


def _arrays(n=64, size=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = np.clip(rng.normal(60 + 140 * y[:, None, None, None], 25, (n, size, size, 3)), 0, 255)
    return x.astype(np.uint8), y.astype(np.int32)


def _tiny(num_classes=2, size=8):
    return M.conv_net((size, size, 3), num_classes, widths=(4,), head="gap", batchnorm=True)


def test_a_class_folder_tree_is_split_stratified_and_sized_from_the_data(tmp_path):
    data = T.load_image_data("folder", _tree(tmp_path, n=30), seed=0)
    assert data.class_names == ["dark", "light"] and data.input_shape == (12, 12, 3)
    sizes = data.sizes()
    assert sizes == {"train": 42, "val": 6, "test": 12}
    for split in (data.train, data.val, data.test):
        assert set(np.bincount(split.labels)) == {len(split) // 2}
    every = data.train.paths + data.val.paths + data.test.paths
    assert len(set(every)) == 60


def test_a_split_tree_keeps_its_test_split_and_takes_validation_from_train(tmp_path):
    _tree(tmp_path / "train", n=20)
    _tree(tmp_path / "test", n=5)
    data = T.load_image_data("folder", tmp_path)
    assert data.sizes()["test"] == 10
    assert all("/test/" in p for p in data.test.paths)
    assert not set(data.val.paths) & set(data.train.paths)


def test_one_class_is_refused_with_what_to_do(tmp_path):
    _write(tmp_path / "only", 10, 100)
    with pytest.raises(T.DataError, match="at least two.*Add a folder per class"):
        T.load_image_data("folder", tmp_path)


def test_an_empty_class_folder_is_left_out_with_a_warning(tmp_path):
    _tree(tmp_path, n=20)
    (tmp_path / "empty").mkdir()
    with pytest.warns(T.DataWarning, match="empty.*hold no image"):
        data = T.load_image_data("folder", tmp_path)
    assert data.class_names == ["dark", "light"]
    assert any("empty" in note for note in data.notes)


def test_mixed_sizes_and_modes_train_at_the_most_common_size(tmp_path):
    _tree(tmp_path, n=20)
    _write(tmp_path / "dark", 3, 60, size=(20, 9), mode="L", fmt="JPEG")
    _write(tmp_path / "light", 3, 200, size=(7, 15), mode="RGBA")
    data = T.load_image_data("folder", tmp_path)
    assert data.input_shape == (12, 12, 3)
    assert any("vary" in note for note in data.notes)
    train, val, _ = T.make_datasets(data, 8)
    result = T.fit(_tiny(size=12), train, val, epochs=1, optimizer="adam", learning_rate=1e-2,
                   schedule=None, verbose=0)  # fmt: skip
    assert result.epochs == 1


def test_a_corrupt_file_is_named_and_training_goes_on_without_running_out_of_data(tmp_path):
    _tree(tmp_path / "train", n=20)
    _tree(tmp_path / "test", n=4)
    (tmp_path / "train" / "dark" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 50)
    data = T.load_image_data("folder", tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train, val, test = T.make_datasets(data, 8)
        T.fit(_tiny(size=12), train, val, epochs=2, optimizer="adam", learning_rate=1e-2,
              schedule=None, verbose=0)  # fmt: skip
    messages = [str(w.message) for w in caught]
    assert any("broken.png" in m for m in messages)
    assert not any("ran out of data" in m for m in messages)
    assert "broken.png" in str(train.skip_report)
    assert int(train.cardinality()) == sum(1 for _ in train)


def test_a_class_only_in_test_is_refused_and_one_missing_from_test_is_explained(tmp_path):
    _tree(tmp_path / "train", ("a", "b", "c"), n=10)
    _tree(tmp_path / "test", ("a", "b", "zebra"), n=3)
    with pytest.raises(T.DataError, match=r"differ in classes \['c', 'zebra'\].*train/zebra"):
        T.load_image_data("folder", tmp_path)
    shutil.rmtree(tmp_path / "test" / "zebra")
    with pytest.warns(T.DataWarning, match="c have training images but none in test/"):
        data = T.load_image_data("folder", tmp_path)
    assert data.class_names == ["a", "b", "c"] and data.sizes()["test"] == 6


def test_bad_dataset_names_and_folders_are_refused(tmp_path):
    with pytest.raises(T.DataError, match="unknown DATASET 'cifar11'"):
        T.load_image_data("cifar11")
    with pytest.raises(T.DataError, match="needs DATA_DIR"):
        T.load_image_data("folder")
    with pytest.raises(T.DataError, match="is not a folder"):
        T.load_image_data("folder", tmp_path / "nowhere")


def test_with_cardinality_counts_the_batches_every_epoch_will_see():
    x, y = _arrays(70)
    ds = pl.from_arrays(x, y, batch_size=16, normalize="none")
    assert int(ds.cardinality()) < 0
    counted = T.with_cardinality(ds)
    assert int(counted.cardinality()) == 5 == sum(1 for _ in counted)
    assert counted.class_names == ds.class_names


def test_the_schedule_warms_up_then_decays_and_survives_saving():
    schedule = T.make_schedule(1.0, 100, warmup=0.2, start=0.1)
    assert isinstance(schedule, T.WarmupDecay)
    rates = [float(schedule(s)) for s in (0, 10, 20, 60, 100)]
    np.testing.assert_allclose(rates, [0.1, 0.55, 1.0, 0.5, 0.0], atol=1e-6)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(again(60)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="kind"):
        T.make_schedule(1.0, 10, kind="step")
    with pytest.raises(ValueError, match="CosineDecay"):
        T.WarmupDecay(1.0, 10, kind="cosine")


@pytest.mark.parametrize(
    ("warmup", "start", "end", "total"),
    [(0.2, 0.1, 0.0, 100), (0.0, 0.1, 0.0, 50), (0.15, 0.05, 0.02, 333)],
)
def test_the_cosine_schedule_is_keras_cosine_decay_with_the_course_warm_up(
    warmup, start, end, total
):
    """Keras's CosineDecay(warmup_*) gives, at every step, the rate of the course's own
    cosine schedule it replaced: a linear warm-up from peak * start to peak over warmup
    of the steps, then a cosine to peak * end."""
    peak = 0.4
    schedule = T.make_schedule(peak, total, warmup=warmup, kind="cosine", start=start, end=end)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    step = np.arange(total + 5, dtype=np.float64)
    ramp = warmup * total
    warm = peak * (start + (1 - start) * step / max(ramp, 1.0))
    t = np.clip((step - ramp) / max(total - ramp, 1.0), 0, 1)
    course = np.where(step < ramp, warm, peak * (end + (1 - end) * 0.5 * (1 + np.cos(np.pi * t))))
    keras_rates = np.array([float(schedule(s)) for s in range(total + 5)])
    np.testing.assert_allclose(keras_rates, course, rtol=1e-5, atol=1e-7)
    linear = T.make_schedule(peak, total, warmup=warmup, start=start, end=end)
    warming = step < ramp  # the warm-up the linear and the cosine schedule share
    np.testing.assert_allclose(
        keras_rates[warming], [float(linear(s)) for s in step[warming]], rtol=1e-6
    )


def test_the_optimizer_factory_builds_what_pretrain_and_finetune_build():
    sgd = T.make_optimizer("sgd", 0.1, total_steps=50, warmup=0.1, weight_decay=5e-4)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov and sgd.momentum == 0.9
    assert sgd.weight_decay == 5e-4
    assert sgd.get_config()["learning_rate"]["config"] == {
        "peak": 0.1, "total_steps": 50, "warmup": 0.1, "kind": "linear", "start": 0.1, "end": 0.0,
    }  # fmt: skip
    adamw = T.make_optimizer("adamw", 3e-4, weight_decay=1e-4)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 1e-4
    assert float(adamw.learning_rate) == pytest.approx(3e-4)
    model = T.compile_model(_tiny(), adamw, from_logits=True, sparse_labels=True)
    assert model.loss.get_config()["from_logits"] and "Sparse" in type(model.loss).__name__
    with pytest.raises(ValueError, match="one-hot"):
        T.compile_model(_tiny(), "sgd", label_smoothing=0.1, sparse_labels=True)
    with pytest.raises(ValueError, match="optimizer must be"):
        T.make_optimizer("rmsprop", 0.1)


def test_the_planner_turns_steps_epochs_or_a_budget_into_steps():
    plan = T.plan_steps(100, budget_s=15 * 60, seconds_per_step=0.21, epoch_overhead_s=4.0)
    assert plan.epoch_seconds == pytest.approx(25.0)
    assert plan.epochs == 34 and plan.total_steps == 3400 and 34 * 25.0 <= 15 * 60
    assert T.plan_steps(100, budget_s=60, seconds_per_step=10.0).epochs == 1
    assert T.plan_steps(100, budget_s=60, seconds_per_step=10.0, min_epochs=0).epochs == 0
    given = T.plan_steps(30, steps=100)
    assert (given.epochs, given.total_steps) == (4, 100)
    assert T.plan_steps(30, epochs=3).total_steps == 90
    assert T.plan_steps(30, steps=100, epochs=3).total_steps == 100  # steps win
    with pytest.raises(ValueError, match="budget_s"):
        T.plan_steps(30)


def test_a_plan_in_steps_fills_the_budget_that_whole_epochs_leave():
    whole = T.plan_steps(312, budget_s=300, seconds_per_step=0.324)
    steps = T.plan_steps(312, budget_s=300, seconds_per_step=0.324, whole_epochs=False)
    assert whole.total_steps == 2 * 312  # a third epoch would not fit
    share = 0.95  # the planner's default
    assert steps.total_steps * 0.324 <= share * 300 < (steps.total_steps + 1) * 0.324
    assert steps.epochs == 3 and steps.total_steps % 312 and "879 steps" in steps.reason
    tiny = T.plan_steps(312, budget_s=1, seconds_per_step=0.324, whole_epochs=False)
    assert tiny.total_steps == 312  # at least min_epochs


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _guarded(guard):
    guard.set_model(type("Model", (), {"stop_training": False})())
    guard.on_epoch_begin(0)
    return guard


def test_the_deadline_stops_before_the_batch_that_would_end_past_it():
    """A fake clock: batches of 1 s, then 3 s; the guard stops after the batch after
    which one more and the epoch's end (2 s) would pass the deadline, never later."""
    clock = _Clock()
    guard = _guarded(T.Deadline(20.0, epoch_end_s=2.0, clock=clock))
    for batch in range(100):
        clock.now += 1.0 if batch < 5 else 3.0
        guard.on_train_batch_end(batch)
        if guard.model.stop_training:
            break
    assert guard.fired and guard.stopped_at == 9 and clock.now == 17.0
    # with the epoch's end, 19 s: inside; one batch more, 22 s, would have been past
    assert clock.now + 2.0 <= guard.deadline < clock.now + 3.0 + 2.0


def test_the_deadline_counts_the_epoch_end_it_sees_and_keeps_quiet_once_the_plan_is_done():
    clock = _Clock()
    guard = _guarded(T.Deadline(10.0, clock=clock, total_steps=3))
    for batch in range(3):
        clock.now += 1.0
        guard.on_train_batch_end(batch)
    clock.now += 4.0  # validation took 4 s
    guard.on_epoch_end(0)
    assert guard.epoch_end_s == 4.0 and not guard.fired  # the plan's 3 steps are done
    guard.total_steps = None
    guard.on_epoch_end(0)  # 7 s + a 1 s step + a 4 s end > 10 s
    assert guard.fired and guard.model.stop_training


def test_a_time_budget_chooses_the_epochs(tmp_path, capsys):
    x, y = _arrays(64)
    train = pl.from_arrays(x, y, batch_size=16, normalize="none")
    val = pl.from_arrays(*_arrays(32, seed=1), batch_size=32, shuffle=False, normalize="none")
    model = _tiny()
    result = T.fit(model, train, val, epochs=None, time_budget_min=0.2, out_dir=tmp_path / "run",
                   verbose=1)  # fmt: skip
    out = capsys.readouterr().out
    assert len(result.history["loss"]) == len(result.history["val_accuracy"]) == result.epochs
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == [str(e) for e in range(result.epochs)]
    assert json.loads((tmp_path / "run" / "plan.json").read_text())["epochs"] == result.epochs
    if "in epoch 1 of fit" not in out:  # so busy a machine that epoch 1 spent the budget
        assert result.plan.startswith("first plan from") and result.epochs == 1
        assert "the guard stopped it after step" in result.plan
        return
    assert "s/step before training (train_on_batch)" in out
    assert "a guard ends training at the deadline" in out
    assert re.search(r"(\d+) epochs \((\d+) steps\), [\d.]+ of 0.2 minutes", out)
    planned = int(re.findall(r"(\d+) epochs", result.plan.split("; the guard")[0])[-1])
    # Epoch 1 and the rest are one run: one history, one log, and one schedule whose decay
    # reaches zero at the last step. On a machine busy enough to slow down after the plan,
    # the guard stops the run early instead, and says so.
    if "the guard stopped it" not in result.plan:
        assert result.epochs == planned
        assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)


def test_epochs_win_over_a_time_budget():
    x, y = _arrays(64)
    train = pl.from_arrays(x, y, batch_size=16, normalize="none")
    result = T.fit(_tiny(), train, epochs=2, time_budget_min=0.05, verbose=0)
    assert result.epochs == 2 and "as given" in result.plan


def _moved_clock(monkeypatch, seconds_after):
    """A callback that moves ``time.perf_counter`` on by ``seconds_after(n)`` after the
    n-th batch (from 0), so a test sees a slow machine without waiting; and the list of
    batches it has seen."""
    shift = {"seconds": 0.0}
    real = time.perf_counter
    monkeypatch.setattr(time, "perf_counter", lambda: real() + shift["seconds"])
    seen = []

    class Slower(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            shift["seconds"] += seconds_after(len(seen))
            seen.append(batch)

    return Slower(), seen


def test_a_budgeted_run_ends_inside_its_budget_when_the_machine_slows_down(monkeypatch):
    """After epoch 1 (the plan), every batch suddenly takes 2 s more: the clock is moved,
    not waited for. The guard stops the run inside its one-minute budget, mid-epoch,
    instead of finishing the planned epochs late, and the plan says so."""
    x, y = _arrays(64)
    train = pl.from_arrays(x, y, batch_size=16, normalize="none")
    slower, _ = _moved_clock(monkeypatch, lambda n: 2.0 if n >= 4 else 0.0)  # epoch 1: 4
    started = time.perf_counter()
    result = T.fit(_tiny(), train, time_budget_min=1.0, callbacks=[slower], verbose=0)
    assert time.perf_counter() - started <= 60.0
    assert len(result.history["loss"]) == result.epochs < 20
    assert "the guard stopped it after step" in result.plan
    assert "to end inside the budget" in result.plan


def test_a_pace_that_falls_after_epoch_1_is_planned_for_halfway_not_cut_by_the_guard(
    monkeypatch,
):
    """Epoch 1 runs at 0.5 s a batch and every later one at 0.8 s (the clock is moved, not
    waited for): the plan from epoch 1 holds too many epochs. The second look, halfway,
    plans the rest from the slower pace, so the run ends inside its budget with the whole
    decay (the rate at zero), and the guard never has to stop it."""
    x, y = _arrays(64)
    train = pl.from_arrays(x, y, batch_size=16, normalize="none")
    slower, batches = _moved_clock(monkeypatch, lambda n: 0.5 if n < 4 else 0.8)  # epoch 1: 4
    started = time.perf_counter()
    model = _tiny()
    result = T.fit(model, train, time_budget_min=2.0, callbacks=[slower], verbose=0)
    assert time.perf_counter() - started <= 120.0
    first = int(re.search(r"(\d+) epochs \(\d+ steps\), [\d.]+ of 2 minutes", result.plan)[1])
    halfway = re.search(
        r"after epoch (\d+), at ([\d.]+) s per epoch: (\d+) epochs \((\d+) steps\)", result.plan
    )
    assert halfway, result.plan
    assert int(halfway[1]) == 1 + (first - 1) // 2 and float(halfway[2]) >= 3.2
    assert int(halfway[3]) == result.epochs < first
    assert "the guard stopped it" not in result.plan
    # The plan is in steps: the last epoch may stop partway, and still counts as one.
    assert len(batches) == int(halfway[4]) and result.epochs == -(-len(batches) // 4)
    assert len(result.history["loss"]) == result.epochs
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)


def test_fit_keeps_the_best_model_a_log_and_records_for_the_runner(tmp_path, monkeypatch):
    metrics = tmp_path / "metrics.jsonl"
    monkeypatch.setenv(results.RESULTS_FILE_ENV, str(metrics))
    x, y = _arrays(64)
    train = pl.from_arrays(x, y, batch_size=16, normalize="none")
    val = pl.from_arrays(*_arrays(32, seed=1), batch_size=32, shuffle=False, normalize="none")
    result = T.fit(_tiny(), train, val, epochs=3, label_smoothing=0.2, out_dir=tmp_path / "run",
                   record_as="", verbose=0)  # fmt: skip
    assert result.best_path.is_file() and result.epochs == 3
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(log) == 4 and "val_accuracy" in log[0]
    recorded = results.read_recorded(metrics)
    assert recorded["epochs"] == 3 and recorded["train_seconds"] > 0
    assert 0 <= recorded["val_accuracy"] <= 1
    best = keras.models.load_model(result.best_path)
    assert best.count_params() == _tiny().count_params()


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.at:
            raise KeyboardInterrupt


class _Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def test_an_interrupted_run_resumes_where_it_stopped_with_the_same_plan(tmp_path):
    x, y = _arrays(64)
    train = pl.from_arrays(x, y, batch_size=16, normalize="none", seed=0)
    run = tmp_path / "run"
    keras.utils.set_random_seed(0)
    with pytest.raises(KeyboardInterrupt):
        T.fit(_tiny(), train, epochs=4, out_dir=run, callbacks=[_Interrupt(2)], verbose=0)
    assert json.loads((run / "plan.json").read_text())["epochs"] == 4
    epochs = _Epochs()
    # A budget, not epochs: the resumed run keeps the plan the first run measured.
    result = T.fit(_tiny(), train, time_budget_min=60, out_dir=run, callbacks=[epochs], verbose=0)
    assert epochs.seen == [2, 3] and result.epochs == 4 and result.resumed_from == 2
    assert "resumed" in result.plan
    log = (run / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["0", "1", "2", "3"]
    assert not (run / "backup").exists()  # a finished run leaves no backup behind


def test_lr_find_sweeps_suggests_and_puts_the_weights_back():
    x, y = _arrays(128)
    train = pl.from_arrays(x, y, batch_size=16, normalize="none")
    model = _tiny()
    before = [w.copy() for w in model.get_weights()]
    found = T.lr_find(model, train, start=1e-4, end=10, steps=40)
    assert 5 <= len(found.losses) <= 40
    assert np.all(np.diff(found.learning_rates) > 0)
    assert found.suggestion == pytest.approx(found.minimum / 10)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert "suggested learning rate" in str(found)


def test_a_run_without_record_as_records_nothing(tmp_path, monkeypatch):
    metrics = tmp_path / "metrics.jsonl"
    monkeypatch.setenv(results.RESULTS_FILE_ENV, str(metrics))
    x, y = _arrays(32)
    train = pl.from_arrays(x, y, batch_size=16, normalize="none")
    result = T.fit(_tiny(), train, epochs=2, verbose=0)
    assert results.read_recorded(metrics) == {} and result.images_per_second > 0
