"""Array data sets: offline ones load anywhere; public ones fail fast and helpfully offline."""

import numpy as np
import pytest

from helpers.acquire import datasets
from helpers.acquire.datasets import DatasetUnavailable, load_arrays
from helpers.splitting import stratified_split


def test_digits_are_uint8_images_with_a_stratified_seeded_split():
    a = load_arrays("digits", seed=1)
    b = load_arrays("digits", seed=1)
    c = load_arrays("digits", seed=2)
    assert a.x_train.dtype == np.uint8 and a.x_train.shape[1:] == (8, 8)
    assert len(a.x_train) + len(a.x_test) == 1797
    assert a.x_train.max() == 255
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)
    assert set(np.unique(a.y_test)) == set(range(10))


def test_stratified_split_holds_out_each_class_share_and_never_a_whole_class():
    labels = np.array([0] * 50 + [1] * 10 + [2] * 2 + [3])
    keep, held = stratified_split(labels, 0.2, seed=3)
    assert np.bincount(labels[held], minlength=4).tolist() == [10, 2, 1, 0]
    assert sorted([*keep, *held]) == list(range(len(labels)))
    again, _ = stratified_split(labels, 0.2, seed=3)
    other, _ = stratified_split(labels, 0.2, seed=4)
    np.testing.assert_array_equal(keep, again)
    assert not np.array_equal(keep, other)
    assert len(stratified_split(labels, 0.0, seed=3)[1]) == 0
    with pytest.raises(ValueError, match="below 1"):
        stratified_split(labels, 1.0, seed=3)


def test_lfw_faces_and_limit():
    data = load_arrays("lfw_faces", limit=40)
    assert data.x_train.shape == (40, 25, 25) and data.x_test.shape == (10, 25, 25)
    assert data.class_names == ["face", "not_face"]


def test_unknown_name_and_bad_limit_are_clear_errors():
    with pytest.raises(ValueError, match="Choose one of: photos, digits"):
        load_arrays("imagenet")
    with pytest.raises(ValueError, match="positive"):
        load_arrays("digits", limit=0)


def test_a_failed_download_says_what_to_do(monkeypatch):
    import keras

    def offline():
        raise Exception("URL fetch failure on https://example.invalid: Name or service not known")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DatasetUnavailable) as err:
        datasets.load_arrays("mnist")
    message = str(err.value)
    assert "KERAS_HOME" in message and "digits" in message


@pytest.fixture
def keras_home(monkeypatch, tmp_path):
    """Keras reads KERAS_HOME once, at import: point both it and the variable at tmp_path."""
    import keras.src.backend.config as keras_config

    (tmp_path / "keras").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras"))
    return tmp_path / "keras"


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_the_offline_error_names_the_file_keras_itself_looks_for(monkeypatch, keras_home, name):
    import keras.src.utils.file_utils as file_utils

    wanted = []

    def no_network(origin, target, *args):
        wanted.append(target)
        raise OSError("Name or service not known")

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    with pytest.raises(DatasetUnavailable) as err:
        load_arrays(name)
    expected = datasets.cache_files(name)
    assert wanted[0] == str(expected[0])  # what Keras would read is what we name
    assert all(str(path) in str(err.value) for path in expected)
    assert str(keras_home.resolve()) in str(expected[0])


def test_only_the_missing_cache_files_are_named(monkeypatch, keras_home):
    import keras

    present, *missing = datasets.cache_files("fashion_mnist")
    present.parent.mkdir(parents=True)
    present.write_bytes(b"copied")

    def offline():
        raise Exception("URL fetch failure")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(DatasetUnavailable) as err:
        load_arrays("fashion_mnist")
    assert str(present) not in str(err.value)
    assert all(str(path) in str(err.value) for path in missing)
