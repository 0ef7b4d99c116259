"""TFRecord shards: a round trip gives back the same images and labels as reading the
files directly, every shard holds a share, and a failed export leaves nothing behind."""

import numpy as np
import pytest
from PIL import Image

from helpers import pipeline as pl
from helpers.pipeline import tfrecords as tfr


def _epoch(ds):
    xs, ys = zip(*((np.asarray(x), np.asarray(y)) for x, y in ds), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def _sorted(x, y):
    order = np.lexsort(np.c_[x.reshape(len(x), -1), y].T)
    return x[order], y[order]


@pytest.fixture
def folder(tmp_path):
    """PNG, JPEG, TIFF (stored re-encoded) and palette images in three classes, one bad."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for i in range(21):
        label = i % 3
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(rng.integers(0, 256, (7, 9, 3), dtype=np.uint8))
        suffix = (".png", ".jpg", ".tif", ".gif")[i % 4]
        image = image.convert("P") if suffix == ".gif" else image
        image.save(root / f"c{label}" / f"{i:02d}{suffix}")
    (root / "c1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return root


def test_round_trip_gives_the_same_images_and_labels_as_the_files(folder, tmp_path):
    images = pl.list_folder(folder)
    manifest = tfr.export_tfrecords(images, tmp_path / "shards", shards=3)
    assert manifest["count"] == 21 and sum(s["count"] for s in manifest["shards"]) == 21
    assert all(s["count"] == 7 for s in manifest["shards"]), "round-robin fills every shard"
    assert list(manifest["skipped"]) == [str(folder / "c1" / "broken.png")]
    assert len(list((tmp_path / "shards").glob("data-*-of-00003.tfrecord"))) == 3
    options = dict(image_size=(7, 9), batch_size=8, seed=0)
    with pytest.warns(RuntimeWarning, match="broken.png"):
        direct = _sorted(*_epoch(pl.build_dataset(images, **options)))
    for cache in (False, True):
        ds = tfr.read_tfrecords(tmp_path / "shards", cache=cache, **options)
        assert ds.class_names == ["c0", "c1", "c2"]
        for _ in range(2):
            back = _sorted(*_epoch(ds))
            assert np.array_equal(back[0], direct[0]) and np.array_equal(back[1], direct[1])
        assert len(ds.skip_report) == 0


def test_arrays_round_trip_exactly(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (10, 5, 5), dtype=np.uint8)
    y = np.arange(10) % 2
    tfr.export_tfrecords((x, y), tmp_path, shards=2, class_names=["even", "odd"])
    back_x, back_y = _epoch(
        tfr.read_tfrecords(tmp_path, image_size=(5, 5), channels=1, normalize="none")
    )
    got = _sorted(back_x[..., 0].astype(np.uint8), back_y)
    assert np.array_equal(got[0], _sorted(x, y)[0]) and np.array_equal(got[1], y[np.argsort(y)])


def test_an_existing_export_is_only_replaced_when_asked(tmp_path):
    x, y = np.zeros((4, 3, 3), np.uint8), np.array([0, 1, 0, 1])
    tfr.export_tfrecords((x, y), tmp_path, shards=4)
    with pytest.raises(pl.PipelineError, match="overwrite=True"):
        tfr.export_tfrecords((x, y), tmp_path, shards=2)
    tfr.export_tfrecords((x, y), tmp_path, shards=2, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "data-00000-of-00002.tfrecord",
        "data-00001-of-00002.tfrecord",
        "manifest.json",
    ]


def test_a_failed_export_leaves_nothing_half_written(tmp_path, monkeypatch):
    x, y = np.zeros((6, 3, 3), np.uint8), np.zeros(6)
    calls = []

    def failing(image, label, index):
        calls.append(index)
        if len(calls) == 4:
            raise OSError("disk full")
        return b""

    monkeypatch.setattr(tfr, "_example", failing)
    with pytest.raises(OSError, match="disk full"):
        tfr.export_tfrecords((x, y), tmp_path / "out", shards=2)
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(pl.PipelineError, match="not a finished export"):
        tfr.read_tfrecords(tmp_path / "out")


def test_bad_input_gets_a_clear_error(tmp_path):
    with pytest.raises(pl.PipelineError, match="shards"):
        tfr.export_tfrecords((np.zeros((2, 3, 3), np.uint8), [0, 1]), tmp_path, shards=0)
    with pytest.raises(pl.PipelineError, match="uint8"):
        tfr.export_tfrecords((np.zeros((2, 3, 3)), [0, 1]), tmp_path)
