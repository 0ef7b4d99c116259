"""The tf.data pipeline: every image mode comes out with the channels asked for, a corrupt
file met mid-epoch is skipped and named, labels stay with their images through the
cache and the shuffles, and each source (folder, catalog, arrays) gives the same."""

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from helpers import pipeline as pl
from helpers.catalog import Catalog

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (12, 16, 3), dtype=np.uint8)
ALPHA = np.tile(np.linspace(0, 255, 16).astype(np.uint8), (12, 1))


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _modes() -> dict[str, bytes]:
    rgb = Image.fromarray(RGB)
    rgba = Image.fromarray(np.dstack([RGB, ALPHA]))
    gray = rgb.convert("L")
    palette = rgb.convert("P")
    return {
        "L.jpg": _save(gray, "JPEG", quality=95),
        "L.png": _save(gray, "PNG"),
        "LA.png": _save(Image.fromarray(np.dstack([np.asarray(gray), ALPHA]), "LA"), "PNG"),
        "RGB.jpg": _save(rgb, "JPEG", quality=95),
        "RGB.png": _save(rgb, "PNG"),
        "RGBA.png": _save(rgba, "PNG"),
        "P.png": _save(palette, "PNG"),
        "P-transparent.png": _save(palette, "PNG", transparency=0),
        "CMYK.jpg": _save(rgb.convert("CMYK"), "JPEG", quality=95),
        "I16.png": _save(Image.fromarray(RGB[:, :, 0].astype(np.uint16) * 257), "PNG"),
        "P.gif": _save(rgb, "GIF"),
        "RGB.bmp": _save(rgb, "BMP"),
        "RGB.webp": _save(rgb, "WEBP", lossless=True),
        "RGB.tif": _save(rgb, "TIFF"),
        "RGBA.tif": _save(rgba, "TIFF"),
    }


MODES = _modes()


def assert_close(got, name: str, channels: int) -> None:
    """Equal up to rounding; JPEG within decoder differences (upsampling, IDCT rounding),
    which stay far below a wrong conversion (an inverted CMYK is off by about 100)."""
    error = np.abs(np.asarray(got, np.float64) - expected(MODES[name], channels))
    if name.endswith(".jpg"):
        assert error.mean() <= 2.5 and error.max() <= 16, (error.mean(), error.max())
    else:
        assert error.max() <= 1, error.max()


def expected(data: bytes, channels: int) -> np.ndarray:
    """What the model should see, computed with Pillow alone: alpha over white, 16->8 bit."""
    with Image.open(io.BytesIO(data)) as im:
        if im.mode == "I;16":
            im = Image.fromarray(np.round(np.asarray(im) / 257.0).astype(np.uint8))
        if "A" in im.getbands() or "transparency" in im.info:
            im = Image.alpha_composite(
                Image.new("RGBA", im.size, (255, 255, 255, 255)), im.convert("RGBA")
            )
        array = np.asarray(im.convert("RGB")).astype(np.float64)
    if channels == 1:
        array = np.round(array @ [0.299, 0.587, 0.114])[..., None]
    return array


@pytest.fixture(scope="module")
def mode_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("modes")
    for i, (name, data) in enumerate(MODES.items()):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(data)
    return root


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", sorted(MODES))
def test_every_mode_decodes_to_the_channels_asked_for(mode_folder, name, channels):
    path = next(mode_folder.glob(f"*/{name}"))
    got = pl.load_image(path, channels=channels)
    assert got.dtype == np.uint8 and got.shape == (12, 16, channels)
    assert_close(got, name, channels)


@pytest.mark.parametrize("channels", [1, 3])
def test_a_folder_mixing_every_mode_gives_one_batch_shape(mode_folder, channels):
    images = pl.list_folder(mode_folder)
    ds = pl.build_dataset(
        images, image_size=(8, 8), channels=channels, batch_size=64, shuffle=False
    )
    x, y = next(iter(ds))
    assert x.shape == (len(MODES), 8, 8, channels) and x.dtype.name == "float32"
    assert 0.0 <= float(np.min(x)) and float(np.max(x)) <= 1.0
    assert sorted(np.asarray(y).tolist()) == sorted(images.labels.tolist())
    assert len(ds.skip_report) == 0


def _label_folder(root, n=24, size=(6, 5), corrupt=()):
    """PNGs whose grey level encodes their class, so a test can check labels stay aligned."""
    for i in range(n):
        label = i % 3
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        value = 40 * label + 20
        Image.fromarray(np.full(size, value, np.uint8)).save(folder / f"{i:03d}.png")
    for name, data in corrupt:
        (root / name).write_bytes(data)
    return root


def _epoch(ds):
    xs, ys = zip(*((np.asarray(x), np.asarray(y)) for x, y in ds), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def _grey_to_label(x):
    return np.round((x.reshape(len(x), -1).mean(1) * 255 - 20) / 40).astype(int)


@pytest.mark.parametrize("cache", [True, False, "disk"])
def test_labels_stay_with_their_images_through_cache_and_shuffle(tmp_path, cache):
    root = _label_folder(tmp_path / "data")
    cache = str(tmp_path / "cache") if cache == "disk" else cache
    ds = pl.from_folder(root, image_size=(4, 4), batch_size=5, seed=1, cache=cache)
    orders = []
    for _ in range(3):
        x, y = _epoch(ds)
        assert len(y) == 24 and np.bincount(y).tolist() == [8, 8, 8]
        assert (_grey_to_label(x) == y).all()
        orders.append(x.reshape(24, -1)[:, 0].tolist() + y.tolist())
    assert orders[1] != orders[2], "later epochs must be reshuffled"


def test_corrupt_files_met_mid_epoch_are_skipped_and_named(tmp_path):
    good = _save(Image.fromarray(RGB), "JPEG")
    root = _label_folder(
        tmp_path / "data",
        corrupt=[
            ("class1/truncated.jpg", good[: len(good) // 3]),
            ("class2/not-an-image.png", b"this is text, not a PNG"),
            ("class0/empty.tif", b""),
        ],
    )
    ds = pl.from_folder(root, image_size=(4, 4), batch_size=4, seed=0)
    with pytest.warns(RuntimeWarning, match="skipped 3 image") as caught:
        x, y = _epoch(ds)
    message = str(caught[0].message)
    assert "truncated.jpg" in message and "not-an-image.png" in message
    assert len(y) == 24 and (_grey_to_label(x) == y).all()
    skipped = ds.skip_report.skipped
    assert sorted(p.split("/")[-1] for p in skipped) == [
        "empty.tif",
        "not-an-image.png",
        "truncated.jpg",
    ]
    assert all(reason for reason in skipped.values())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the cached epoch neither fails nor warns again
        x, y = _epoch(ds)
    assert len(y) == 24 and ds.skip_report.passes == 1


def test_a_dataset_of_only_bad_files_yields_nothing_and_says_so(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bad.jpg").write_bytes(b"\xff\xd8\xffnot really")
    ds = pl.from_folder(tmp_path, image_size=(4, 4))
    with pytest.warns(RuntimeWarning, match="bad.jpg"):
        assert list(ds) == []


def test_bad_input_gets_a_clear_error(tmp_path):
    with pytest.raises(pl.PipelineError, match="not a folder"):
        pl.list_folder(tmp_path / "missing")
    with pytest.raises(pl.PipelineError, match="no image files"):
        pl.list_folder(tmp_path)
    root = _label_folder(tmp_path / "data", n=3)
    images = pl.list_folder(root)
    with pytest.raises(pl.PipelineError, match="channels"):
        pl.build_dataset(images, channels=4)
    with pytest.raises(pl.PipelineError, match="resize_mode"):
        pl.build_dataset(images, resize_mode="squash")
    with pytest.raises(pl.PipelineError, match="normalize"):
        pl.build_dataset(images, normalize="z")
    with pytest.raises(pl.PipelineError, match="one label per path"):
        pl.ImageList(images.paths, [0], images.class_names)
    with pytest.raises(pl.PipelineError, match="uint8"):
        pl.from_arrays(np.zeros((2, 4, 4), np.float32), [0, 1])


def test_resize_modes_stretch_crop_and_pad():
    image = np.zeros((20, 40, 1), np.uint8)
    image[:, 10:30] = 200  # a bright centre square 20x20 between dark side bands
    stretch = pl.resize(image, (10, 10), "stretch").numpy()
    crop = pl.resize(image, (10, 10), "crop").numpy()
    pad = pl.resize(image, (10, 10), "pad").numpy()
    assert stretch.shape == crop.shape == pad.shape == (10, 10, 1)
    assert (crop == 200).all(), "crop keeps the centre only"
    assert (stretch[:, 0] == 0).all() and (stretch[:, 5] == 200).all()
    assert (pad[:2] == 0).all() and (pad[-2:] == 0).all(), "pad adds black bands"
    assert (pl.resize(image, (20, 40)).numpy() == image).all(), "same size: unchanged"


def test_channel_stats_from_the_training_split_normalize_it_to_zero_mean_unit_std():
    x = RNG.integers(0, 256, (40, 5, 5, 3), dtype=np.uint8)
    x[..., 1] //= 4  # channels with different statistics
    stats = pl.channel_stats(pl.from_arrays(x, np.zeros(40), normalize="none", shuffle=False))
    pixels = x.reshape(-1, 3) / 255.0
    assert np.allclose(stats.mean, pixels.mean(0)) and np.allclose(stats.std, pixels.std(0))
    z, _ = _epoch(pl.from_arrays(x, np.zeros(40), normalize=stats, batch_size=7))
    assert np.allclose(z.reshape(-1, 3).mean(0), 0, atol=1e-5)
    assert np.allclose(z.reshape(-1, 3).std(0), 1, atol=1e-4)


def test_arrays_and_folder_give_the_same_images(tmp_path):
    x = RNG.integers(0, 256, (9, 6, 6), dtype=np.uint8)
    y = np.arange(9) % 3
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        (tmp_path / f"c{label}").mkdir(exist_ok=True)
        Image.fromarray(image).save(tmp_path / f"c{label}" / f"{i}.png")
    options = dict(channels=3, image_size=(6, 6), shuffle=False, batch_size=9)
    from_disk, y_disk = _epoch(pl.from_folder(tmp_path, **options))
    from_memory, y_memory = _epoch(pl.from_arrays(x, y, **options))
    order = np.lexsort(from_memory.reshape(9, -1).T)
    order_disk = np.lexsort(from_disk.reshape(9, -1).T)
    assert np.array_equal(from_disk[order_disk], from_memory[order])
    assert np.array_equal(y_disk[order_disk], y_memory[order])


def test_augmentation_runs_in_tf_data_and_keeps_shapes_and_labels(tmp_path):
    root = _label_folder(tmp_path / "data", n=12)
    augment = pl.augmentation(rotation=0.1, zoom=0.1, contrast=0, brightness=0, seed=0)
    ds = pl.from_folder(root, image_size=(4, 4), batch_size=12, augment=augment, seed=0)
    plain = pl.from_folder(root, image_size=(4, 4), batch_size=12, seed=0)
    x, y = _epoch(ds)
    assert x.shape == (12, 4, 4, 3) and (_grey_to_label(x) == y).all()
    assert ds.class_names == plain.class_names == ["class0", "class1", "class2"]


def test_categorical_labels_are_one_hot(tmp_path):
    root = _label_folder(tmp_path / "data", n=6)
    x, y = _epoch(pl.from_folder(root, image_size=(4, 4), label_mode="categorical"))
    assert y.shape == (6, 3) and (y.sum(1) == 1).all()
    assert (y.argmax(1) == _grey_to_label(x)).all()


def test_a_catalog_split_with_one_annotators_labels(tmp_path):
    cat = Catalog(tmp_path / "cat")
    cat.set_classes(["dark", "light"])
    ids = [cat.add_image_array(np.full((8, 8), 10 + 20 * i, np.uint8))[0] for i in range(8)]
    cat.set_splits({i: ("train" if k < 6 else "test") for k, i in enumerate(ids)})
    for k, image_id in enumerate(ids):
        if k == 4:
            cat.set_label(image_id, None, annotator="import", status="skipped")
        elif k != 5:  # image 5 stays unlabeled
            cat.set_label(image_id, "dark" if k < 2 else "light", annotator="import")
    images = pl.list_catalog(cat, "train")
    assert len(images) == 4 and images.class_names == ["dark", "light"]
    assert images.labels.tolist() == [0, 0, 1, 1]
    x, y = _epoch(pl.from_catalog(cat, "train", image_size=(5, 5), shuffle=False, channels=1))
    assert np.allclose(x[:, 0, 0, 0] * 255, [10, 30, 50, 70]) and y.tolist() == [0, 0, 1, 1]
    cat.set_label(ids[0], "light", annotator="alice")
    with pytest.raises(pl.PipelineError, match="no labels from annotator"):
        pl.list_catalog(cat, "train", annotator="bob")
    assert pl.list_catalog(cat, "train", annotator="alice").labels.tolist() == [1]
    assert len(pl.list_catalog(cat, "train")) == 4, "several annotators: 'import' by default"


def test_generic_decode_sniffs_the_format_from_the_bytes():
    from helpers.quiet import tf

    for name in ("RGB.tif", "RGBA.png", "CMYK.jpg"):
        assert_close(pl.decode(tf.constant(MODES[name]), 3).numpy(), name, 3)


def test_without_shuffle_the_batches_follow_the_file_order(tmp_path):
    root = _label_folder(tmp_path / "data", n=60)
    images = pl.list_folder(root)
    for cache in (True, False):
        ds = pl.build_dataset(images, image_size=(4, 4), batch_size=7, shuffle=False, cache=cache)
        for _ in range(2):
            x, y = _epoch(ds)
            assert y.tolist() == images.labels.tolist()
            assert (_grey_to_label(x) == y).all()


def test_keras_fit_takes_every_image_in_every_epoch(tmp_path):
    from helpers.quiet import keras

    root = _label_folder(tmp_path / "data", n=30)
    ds = pl.from_folder(root, image_size=(4, 4), batch_size=8, seed=0)
    model = keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    seen = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    history = model.fit(ds, epochs=3, verbose=0, callbacks=[counter])
    assert len(history.history["loss"]) == 3
    assert len(seen) == 3 * 4, "4 batches (30 images, 8 a batch) in each of 3 epochs"
    assert all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("source", ["folder", "folder, no cache", "arrays"])
def test_every_pipeline_leaves_no_autotuner_for_an_epoch_s_end_to_wait_for(tmp_path, source):
    """Keras fit releases its iterator at the end of each epoch, and with tf.data's
    autotuner on the release waited for the tuner's thread: 34-40 s stalls in 06 at a
    15-minute budget on 2 cores. Each pipeline turns the tuner off, and what a notebook
    builds on top of one (a map, a repeat) keeps it off."""
    root = _label_folder(tmp_path / "data", n=12)
    if source == "arrays":
        x, y = _epoch(pl.from_folder(root, image_size=(4, 4), normalize="none", shuffle=False))
        ds = pl.from_arrays((x * 255).astype(np.uint8), y, image_size=(4, 4), batch_size=4)
    else:
        ds = pl.from_folder(root, image_size=(4, 4), batch_size=4, cache=source == "folder")
    for built in (ds, ds.map(lambda x, y: (x, y)).repeat(2)):
        assert built.options().autotune.enabled is False
    assert len(_epoch(ds)[1]) == 12


def test_grouped_first_pass_delivers_each_good_file_exactly_once(tmp_path):
    """Batches of 32 decode 16 files per call; a bad file fails its group, which the
    repair stage decodes again file by file, so only the bad file itself is lost."""
    good = {}
    for i in range(75):
        folder = tmp_path / f"c{i % 2}"
        folder.mkdir(exist_ok=True)
        suffix = (".png", ".bmp", ".tif")[i % 3]
        Image.fromarray(np.full((5, 5), 3 * i, np.uint8)).save(folder / f"{i:02d}{suffix}")
        good[3 * i] = i % 2
    (tmp_path / "c0" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (tmp_path / "c1" / "bad.bmp").write_bytes(b"BM broken")
    ds = pl.from_folder(tmp_path, image_size=(5, 5), channels=1, batch_size=32, seed=3)
    with pytest.warns(RuntimeWarning, match="skipped 2 image"):
        x, y = _epoch(ds)
    values = np.round(x[:, 0, 0, 0] * 255).astype(int)
    assert sorted(values.tolist()) == sorted(good), "every good file once, no duplicates"
    assert all(good[v] == label for v, label in zip(values, y, strict=True))
    for _ in range(2):  # cached epochs: the same images, reshuffled
        x2, y2 = _epoch(ds)
        assert sorted(np.round(x2[:, 0, 0, 0] * 255).astype(int).tolist()) == sorted(good)


def test_the_shift_moves_whole_pixels_only_in_training_and_is_the_models_preset():
    aug = pl.augmentation(
        flip=None, rotation=0, zoom=0, translation=0, shift=2, contrast=0, brightness=0, seed=0
    )
    x = np.arange(2 * 8 * 8, dtype="float32").reshape(2, 8, 8, 1)
    assert np.array_equal(np.asarray(aug(x, training=False)), x)
    shifted = np.asarray(aug(x, training=True))
    padded = np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect")
    for image, source in zip(shifted, padded, strict=True):
        windows = [source[r : r + 8, c : c + 8] for r in range(5) for c in range(5)]
        assert any(np.array_equal(image, w) for w in windows)
    from helpers import models as M

    assert [layer.name for layer in M.augmentation(seed=0).layers] == ["flip", "shift"]
