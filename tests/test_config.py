"""Profiles, data paths, seeds and devices."""

import numpy as np
import pytest

from helpers import config
from helpers.config import ProfileError, get_profile


def test_default_profile_is_laptop(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    assert get_profile().name == "laptop"


def test_the_profile_is_read_at_each_call_not_once_at_import(monkeypatch):
    # Kernels started by the runner and nbval set COURSE_PROFILE after helpers may have
    # been imported: the value must be read when a notebook asks, not cached.
    for name in ("full", "smoke", "laptop"):
        monkeypatch.setenv(config.PROFILE_ENV, name)
        assert get_profile().name == name
    assert get_profile("smoke").name == "smoke"  # an explicit name beats the environment


@pytest.mark.parametrize("raw", ["smoke", "LAPTOP", " full "])
def test_profile_names_are_forgiving_about_case_and_spaces(monkeypatch, raw):
    monkeypatch.setenv(config.PROFILE_ENV, raw)
    assert get_profile().name == raw.strip().lower()


def test_unknown_profile_names_the_valid_ones(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "smok")
    with pytest.raises(ProfileError, match="smoke, laptop, full"):
        get_profile()


def test_choose_picks_the_profile_value():
    values = dict(smoke=1, laptop=10, full=100)
    assert [get_profile(n).choose(**values) for n in ("smoke", "laptop", "full")] == [1, 10, 100]


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(config.DATA_DIR_ENV, str(tmp_path / "shared"))
    path = config.data_dir("cache")
    assert path == tmp_path / "shared" / "cache" and path.is_dir()


def tiny_fit(seed):
    import keras

    config.seed_everything(seed)
    x = np.random.rand(64, 8).astype("float32")
    y = (x.sum(axis=1) > 4).astype("int32")
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, batch_size=16, shuffle=True, verbose=0)
    return history.history["loss"], model.get_weights()[0]


def test_same_seed_gives_the_same_fit_and_another_seed_does_not():
    loss_a, w_a = tiny_fit(7)
    loss_b, w_b = tiny_fit(7)
    loss_c, _ = tiny_fit(8)
    assert loss_a == loss_b
    np.testing.assert_array_equal(w_a, w_b)
    assert loss_a != loss_c


@pytest.fixture
def restore_precision_policy():
    """setup_devices sets Keras's global dtype policy; put back the one before the test."""
    import keras

    before = keras.mixed_precision.global_policy().name
    yield keras
    keras.mixed_precision.set_global_policy(before)


def test_setup_devices_applies_the_precision_it_reports(restore_precision_policy):
    from helpers.devices import setup_devices

    keras = restore_precision_policy
    forced = setup_devices(mixed_precision=True, verbose=False)
    assert forced.precision == keras.mixed_precision.global_policy().name == "mixed_float16"
    info = setup_devices(verbose=False)
    assert info.replicas >= 1
    assert keras.mixed_precision.global_policy().name == info.precision
    if not info.has_gpu:
        assert info.precision == "float32"  # "auto" never picks float16 on a CPU
        assert "No GPU found" in info.summary()


def test_reports_and_cards_share_one_environment_record(monkeypatch):
    """A run report's environment block and a model card's device line come from the same
    hardware record, so a report and a card made on one machine name it alike."""
    import json

    from helpers import devices
    from helpers.runner.report import environment

    two = devices.DeviceInfo("Xeon", 8, [devices.GPU("NVIDIA H100", 81559, (9, 0))] * 2)
    monkeypatch.setattr(devices, "hardware", lambda: two)
    assert devices.device_name() == "2 x NVIDIA H100"
    record = devices.environment()
    assert record["device"] == {"cpu": "Xeon", "cpu_cores": 8, "gpus": ["NVIDIA H100"] * 2}
    report = environment("smoke", 42, ["python", "-m", "helpers", "run"])
    assert {key: report[key] for key in record} == record
    assert json.loads(json.dumps(report)) == report  # results.json holds it as it is
    monkeypatch.setattr(devices, "hardware", lambda: devices.DeviceInfo("AMD EPYC", 2))
    assert devices.device_name() == "CPU: AMD EPYC (2 cores)"
