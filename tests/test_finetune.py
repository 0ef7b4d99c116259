"""Fine-tuning: the model card check, BatchNorm when unfreezing, relabel-from-gallery, the
offline ImageNet error, weights by path, the learning curve's names and the export."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from helpers import finetune as ft
from helpers import models
from helpers.catalog import Catalog
from helpers.evaluate import model_accuracy, predict_arrays
from helpers.quiet import keras

TINY = {"family": "resnet", "width": 4, "depth": [1, 1]}


def tiny_backbone(shape=(8, 8, 1)) -> ft.Backbone:
    """notebook 07's ResNet at its smallest, with a card of the "backbone" schema."""
    keras.utils.set_random_seed(0)
    base = models.build_backbone(TINY, shape)
    card = {
        "name": "tiny", "source_data": "none (a test)", "license": "CC0", "classes": ["a", "b"],
        "input_size": list(shape[:2]), "channels": shape[2], "preprocessing": "unit",
        "architecture": TINY, "parameters": int(base.count_params()), "flops_per_image": 1,
        "source_test_accuracy": 0.5, "seed": 0, "versions": {}, "device": "CPU",
        "precision": "float32", "minutes": 0.0,
    }  # fmt: skip
    return ft.Backbone(base, card, "test")


def save(backbone: ft.Backbone, folder):
    return ft.save_backbone(backbone.model, folder, backbone.card)


@pytest.fixture(scope="module")
def saved_backbone(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bb")
    save(tiny_backbone(), folder)
    return folder


def test_card_that_matches_loads(saved_backbone):
    backbone = ft.load_backbone(
        saved_backbone, expected={"input_size": (8, 8), "channels": 1, "preprocessing": None}
    )
    assert backbone.input_shape == (8, 8, 1)
    assert ft.backbone_blocks(backbone.model) == ["stage1_block1", "stage2_block1"]


def test_mismatched_card_is_refused_naming_what_differs(saved_backbone):
    with pytest.raises(ft.CardMismatch) as err:
        ft.load_backbone(
            saved_backbone,
            expected={"input_size": (16, 16), "channels": 1, "preprocessing": "symmetric"},
        )
    message = str(err.value)
    assert "input size: card [8, 8], the data [16, 16]" in message
    assert "preprocessing: card 'unit', the data 'symmetric'" in message
    assert "channels" not in message  # only what differs is named


def test_card_that_lies_about_its_model_is_refused(tmp_path):
    backbone = tiny_backbone()
    save(backbone, tmp_path)
    card = json.loads((tmp_path / ft.CARD_JSON).read_text())
    (tmp_path / ft.CARD_JSON).write_text(json.dumps({**card, "channels": 3}))
    with pytest.raises(ft.CardMismatch, match="channels: card 3, the model in backbone.keras 1"):
        ft.load_backbone(tmp_path)


def test_card_without_preprocessing_is_refused_by_the_writer_and_the_reader(tmp_path):
    backbone = tiny_backbone()
    del backbone.card["preprocessing"]
    with pytest.raises(ft.CardMismatch, match="lacks \\['preprocessing'\\]"):
        save(backbone, tmp_path)
    assert not (tmp_path / ft.MODEL_FILE).exists()  # refused before anything is written
    save(tiny_backbone(), tmp_path)
    (tmp_path / ft.CARD_JSON).write_text(json.dumps(backbone.card))
    with pytest.raises(ft.CardMismatch, match="lacks \\['preprocessing'\\]"):
        ft.load_backbone(tmp_path)


def test_weights_file_of_a_notebook_07_backbone_rebuilds_from_the_card(tmp_path):
    backbone = tiny_backbone()
    backbone.model.save_weights(tmp_path / "bb.weights.h5")
    ft.write_card(tmp_path, backbone.card)
    loaded = ft.load_backbone(tmp_path / "bb.weights.h5")
    x = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 1)).astype("float32")
    want = backbone.model.predict(x, verbose=0)
    np.testing.assert_allclose(loaded.model.predict(x, verbose=0), want, rtol=1e-5)


def _unfrozen_fit(freeze_bn: bool) -> tuple[list, list]:
    backbone = tiny_backbone()
    model = models.with_head(backbone.model, 3, scale="unit", frozen=True)  # training=False
    ft.set_backbone_trainable(backbone.model, None, freeze_bn=freeze_bn)
    ft.compile_classifier(model, 1e-2)
    before = ft.bn_moving_stats(model)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (32, 8, 8, 1)).astype("float32")  # far from the initial stats
    model.fit(x, rng.integers(0, 3, 32), batch_size=16, epochs=1, verbose=0)
    return before, ft.bn_moving_stats(model)


def test_batchnorm_frozen_with_trainable_false_keeps_its_statistics():
    before, after = _unfrozen_fit(freeze_bn=True)
    # stem, 2 per block and the second block's projection: mean and variance each
    assert len(before) == 2 * 6
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(b, a)


def test_batchnorm_with_only_training_false_still_updates_upstream_behaviour():
    """Documented upstream behaviour (keras-team/keras#20285, Keras 3.15.1): calling the
    unfrozen base with ``training=False`` does not stop ``fit`` from updating the moving
    statistics. If this fails, upstream changed it: update helpers/finetune's
    docstring and notebook 08, then this test."""
    before, after = _unfrozen_fit(freeze_bn=False)
    changed = [not np.array_equal(b, a) for b, a in zip(before, after, strict=True)]
    assert any(changed), (
        "BatchNormalization kept its moving statistics with only training=False: "
        "keras-team/keras#20285 seems fixed in this Keras; update the teaching"
    )


def test_trainable_top_blocks_and_recompile_need():
    backbone = tiny_backbone()
    assert ft.set_backbone_trainable(backbone.model, 0) == []
    names = ft.set_backbone_trainable(backbone.model, 1)
    assert names and all(n.startswith("stage2_block1") for n in names)
    assert not any("_bn" in n for n in names)
    with pytest.raises(ft.BackboneError, match="has 2 blocks"):
        ft.set_backbone_trainable(backbone.model, 3)


class FixedModel:
    """Stands in for a Keras model: ``top_losses`` only calls it on batches of ``x``
    (here the image indices) with ``training=False``."""

    def __init__(self, logits):
        self.logits = np.asarray(logits, dtype="float32")

    def __call__(self, batch, training=False):
        return self.logits[np.asarray(batch)]


def test_relabel_from_gallery_is_a_new_label_by_the_reviewer(tmp_path):
    from helpers.labeling import ReviewGallery

    catalog = Catalog(tmp_path / "catalog")
    catalog.set_classes(["a", "b"])
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (4, 8, 8), dtype=np.uint8)
    ids = [catalog.add_image_array(p)[0] for p in pixels]
    given = ["a", "a", "b", "b"]
    for i, c in zip(ids, given, strict=True):
        catalog.set_label(i, c, annotator="ana")
    model = FixedModel([[5, 0], [-5, 5], [0, 5], [0, 4]])  # image 2 looks like "b"
    issues = ft.top_losses(model, np.arange(4), np.array([0, 0, 1, 1]), ids, ["a", "b"], k=2)
    assert issues[0]["image_id"] == ids[1] and issues[0]["suggested"] == "b"
    gallery = ReviewGallery(catalog, issues, annotator="reviewer")
    gallery.cards[ids[1]]["accept"].click()
    assert catalog.label_of(ids[1], "reviewer")["class_name"] == "b"
    assert catalog.label_of(ids[1], "ana")["class_name"] == "a"  # the old label is kept
    merged = ft.reviewed_labels(catalog, "ana", "reviewer", ids)
    assert merged == {ids[0]: "a", ids[1]: "b", ids[2]: "b", ids[3]: "b"}


def test_offline_imagenet_weights_fail_fast_naming_the_file(tmp_path, monkeypatch):
    from keras.src.backend import config
    from keras.src.utils import file_utils

    def offline(url, *args, **kwargs):  # what urllib does with no network
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path))  # KERAS_HOME, read at import
    with pytest.raises(ft.WeightsUnavailable) as err:
        ft.load_backbone("imagenet", expected={"input_size": (96, 96), "channels": 3})
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    target = tmp_path / "models" / name
    assert f"Copy the file {target} " in str(err.value)
    assert "URL fetch failure" in str(err.value)


def test_imagenet_weights_copied_where_the_error_says_load_offline(tmp_path, monkeypatch):
    """The README's advice for an offline machine, followed: a weights file of the right
    shapes (random here: this machine cannot download the real ones) placed in the
    Keras cache under the name the error gives loads without a network."""
    import h5py
    from keras.src.backend import config
    from keras.src.legacy.saving import legacy_h5_format
    from keras.src.utils import file_utils

    requests_made = []

    def offline(url, *args, **kwargs):
        requests_made.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path))
    with pytest.raises(ft.WeightsUnavailable) as err:
        ft.imagenet_backbone("MobileNetV2", (96, 96, 3))
    target = Path(str(err.value).split("Copy the file ", 1)[1].split(" from a machine")[0])
    same = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(96, 96, 3), pooling="avg"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(target, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, same)
    requests_made.clear()
    backbone = ft.load_backbone("imagenet", expected={"input_size": (96, 96), "channels": 3})
    assert not requests_made, "the cached file must be used without a download"
    assert backbone.card["preprocessing"] == "symmetric" and backbone.input_shape == (96, 96, 3)
    x = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    np.testing.assert_allclose(backbone.model(x), same(x), atol=1e-5)


@pytest.mark.slow  # trains 16 small models: about 30 s alone, minutes beside other work
def test_learning_curve_rows_and_runner_names():
    backbone = tiny_backbone()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 8, 8, 1)).astype("uint8")
    y = np.arange(40) % 2
    recipe = ft.Recipe(head_steps=2, finetune_steps=2, scratch_steps=2, top_blocks=1, flip=True)
    rows = ft.learning_curve(
        backbone, x, y, x[:10], y[:10], [3, "all"], [0, 1], recipe=recipe, progress=None
    )
    assert len(rows) == 2 * 2 * 4
    assert {r["train_size"] for r in rows} == {6, 40}
    names = ft.metric_names(ft.summarize(rows))
    assert set(names) == {f"{m}_acc_{n}" for m in ft.METHODS for n in (3, "all")}


@pytest.mark.parametrize("classes", [2, 3])
def test_head_started_from_the_probe_predicts_what_the_probe_predicts(classes):
    backbone = tiny_backbone()
    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (60, 8, 8, 1)).astype("uint8")
    y = np.arange(60) % classes
    probe = ft.fit_probe(ft.pooled_features(backbone, x), y)
    model = models.with_head(ft.clone_backbone(backbone), classes + 1, scale="unit", frozen=True)
    model.get_layer("logits").set_weights(ft.probe_head_weights(probe, classes + 1))
    logits = model.predict(x, verbose=0)
    want = probe.predict_proba(ft.pooled_features(backbone, x))
    got = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    np.testing.assert_allclose(got[:, :classes], want, atol=1e-4)  # the class never seen: ~0
    assert got[:, classes].max() < 1e-6


def test_the_probe_trains_on_the_augmentations_views_shifted_and_mirrored():
    x = np.arange(2 * 6 * 6 * 1, dtype=np.uint8).reshape(2, 6, 6, 1)
    views = ft.probe_views(x, flip=True, shift=2)
    assert len(views) == 10 and all(v.shape == x.shape for v in views)
    np.testing.assert_array_equal(views[0], x)
    down = views[2]  # shifted by +2 rows: row r shows row r + 2, reflected past the edge
    np.testing.assert_array_equal(down[:, :4], x[:, 2:])
    np.testing.assert_array_equal(down[:, 4:], x[:, [4, 3]])
    for plain, mirrored in zip(views[:5], views[5:], strict=True):
        np.testing.assert_array_equal(mirrored, plain[:, :, ::-1])
    assert len(ft.probe_views(x, flip=False, shift=2)) == 5
    assert len(ft.probe_views(x, flip=False, shift=0)) == 1
    backbone = tiny_backbone((6, 6, 1))  # translate 0.1 of 6 pixels: shifts of 1
    features, labels = ft.probe_training_set(backbone, x, [0, 1], ft.Recipe(flip=True))
    assert features.shape[0] == 2 * 10 and labels.tolist() == [0, 1] * 10


def test_each_images_features_are_computed_once_per_backbone():
    backbone = tiny_backbone()
    x = np.random.default_rng(5).integers(0, 255, (12, 8, 8, 1)).astype("uint8")
    want = backbone.model.predict(x / 255.0, verbose=0)  # the card's "unit" scaling
    np.testing.assert_allclose(ft.pooled_features(backbone, x), want, rtol=1e-5, atol=1e-6)
    assert len(backbone.features) == 12
    mirrored, subset = ft.features_of_each(backbone, [x[:, :, ::-1], x[[3, 1, 3]]])
    assert len(backbone.features) == 24  # the mirror images are new, the subset is not
    np.testing.assert_array_equal(subset, ft.pooled_features(backbone, x)[[3, 1, 3]])
    np.testing.assert_allclose(
        mirrored, backbone.model.predict(x[:, :, ::-1] / 255.0, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_flip_tta_averages_the_probabilities_of_each_image_and_its_mirror():
    """A model that reads only the left half: right without TTA, a coin's guess with it
    (the two views' probabilities tie, and the tie goes to class 0)."""
    inputs = keras.Input((4, 4, 1))
    halves = keras.layers.Lambda(
        lambda t: keras.ops.stack(
            [
                keras.ops.mean(t[:, :, :2], axis=(1, 2, 3)),
                keras.ops.mean(t[:, :, 2:], axis=(1, 2, 3)),
            ],
            axis=1,
        )
    )(inputs)
    model = keras.Model(inputs, halves)
    x = np.zeros((4, 4, 4, 1), np.float32)
    x[:2, :, :2], x[2:, :, 2:] = 9.0, 9.0  # images 0-1 bright on the left, 2-3 on the right
    y = np.array([0, 0, 1, 1])
    assert model_accuracy(model, x, y) == 1.0
    assert model_accuracy(model, x, y, tta=True) == 0.5
    assert model_accuracy(model, x[:0], y[:0], tta=True) == 0.0


def test_batched_predictions_match_the_model_and_trace_nothing():
    """Notebook 08 predicts with dozens of models on arrays of many lengths; through
    ``model.predict`` each new model and last-batch shape traced a step (TensorFlow's
    retracing warning). The eager batches give the model's own outputs, in order."""
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    for n in (0, 1, 5, 7):
        got = predict_arrays(model, x[:n], batch_size=3)
        np.testing.assert_allclose(got, np.asarray(model(x[:n])), rtol=1e-6, atol=1e-6)
    assert model.predict_function is None  # no predict step was ever made


def test_full_finetuning_starts_from_the_probe_and_a_random_head_does_not():
    backbone = tiny_backbone()
    rng = np.random.default_rng(2)
    x = rng.integers(0, 255, (48, 8, 8, 1)).astype("uint8")
    y = np.arange(48) % 3
    no_steps = ft.Recipe(head_steps=0, finetune_steps=0, top_blocks=1)
    probe = ft.fit_probe(*ft.probe_training_set(backbone, x, y, no_steps))
    model, _ = ft.train_finetune(backbone, x, y, 3, no_steps, seed=0)
    np.testing.assert_allclose(
        model.get_layer("logits").get_weights()[0], ft.probe_head_weights(probe, 3)[0], atol=1e-6
    )
    random_head = ft.Recipe(head_steps=0, finetune_steps=0, top_blocks=1, head_init="random")
    model, _ = ft.train_finetune(backbone, x, y, 3, random_head, seed=0)
    assert not np.allclose(
        model.get_layer("logits").get_weights()[1], ft.probe_head_weights(probe, 3)[1]
    )
    with pytest.raises(ValueError, match="head_init"):
        ft.train_finetune(backbone, x, y, 3, ft.Recipe(head_init="zeros"), seed=0)


@pytest.mark.slow  # fine-tunes a model
def test_full_finetuning_ends_at_the_wise_ft_mix_of_its_start_and_its_end():
    backbone = tiny_backbone()
    rng = np.random.default_rng(3)
    x = rng.integers(0, 255, (48, 8, 8, 1)).astype("uint8")
    y = np.arange(48) % 3
    ends = {}
    for alpha in (0.0, 0.5, 1.0):
        recipe = ft.Recipe(finetune_steps=6, finetune_lr=1e-2, top_blocks=1, wise_alpha=alpha)
        model, _ = ft.train_finetune(backbone, x, y, 3, recipe, seed=0)
        ends[alpha] = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    probe = ft.fit_probe(*ft.probe_training_set(backbone, x, y, recipe))
    np.testing.assert_allclose(ends[0.0][-2], ft.probe_head_weights(probe, 3)[0], atol=1e-6)
    assert not np.allclose(ends[1.0][-2], ends[0.0][-2])  # fine-tuning moved the head
    for start, mid, end in zip(ends[0.0], ends[0.5], ends[1.0], strict=True):
        np.testing.assert_allclose(mid, (start + end) / 2, atol=1e-5)
    with pytest.raises(ValueError, match="wise_alpha"):
        ft.train_finetune(backbone, x, y, 3, ft.Recipe(wise_alpha=1.5), seed=0)


def test_saved_model_takes_raw_images_of_any_size_and_its_card_reads_back(tmp_path):
    backbone = tiny_backbone()
    model = models.with_head(backbone.model, 2, scale="unit", frozen=True)
    path = ft.save_finetuned(
        model, backbone, tmp_path, class_names=["a", "b"], fine_tuned_on={"images": 4}
    )
    loaded = keras.models.load_model(path)
    probs = loaded.predict(np.full((1, 20, 13, 1), 200, "float32"), verbose=0)
    assert probs.shape == (1, 2) and abs(float(probs.sum()) - 1) < 1e-5
    card = ft.read_card(tmp_path, "finetuned")
    assert card["fine_tuned_on"] == {"images": 4} and card["classes"] == ["a", "b"]


@pytest.mark.slow  # pretrains the fallback backbone
def test_the_fallback_is_notebook_07s_resnet_and_its_card_reads_back(tmp_path):
    backbone, accuracy = ft.pretrain_fallback("AB", 40, size=8, width=4, epochs=1, batch_size=16)
    assert backbone.card["architecture"] == {
        "family": "resnet",
        "width": 4,
        "depth": [1, 1, 1],
        "bn_momentum": 0.9,
        "zero_init": False,
    }
    assert 0.0 <= accuracy <= 1.0 and backbone.card["preprocessing"] == "raw"
    save(backbone, tmp_path)
    assert ft.read_card(tmp_path) == backbone.card
    backbone.model.save_weights(tmp_path / "bb.weights.h5")
    again = ft.load_backbone(tmp_path / "bb.weights.h5")
    x = np.random.default_rng(0).integers(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(again.model(x), backbone.model(x), rtol=1e-5, atol=1e-6)


def test_glyphs_are_deterministic_and_balanced():
    x1, y1 = ft.glyph_images("AB", 6, size=16, seed=3)
    x2, y2 = ft.glyph_images("AB", 6, size=16, seed=3)
    assert x1.shape == (6, 16, 16, 3) and x1.dtype == np.uint8
    np.testing.assert_array_equal(x1, x2)
    assert np.bincount(y1).tolist() == [3, 3]


def test_catalog_target_keeps_the_classes_train_holds(tmp_path):
    catalog = Catalog(tmp_path / "catalog")
    catalog.set_classes(["a", "b", "unused"])
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 255, (6, 8, 8), dtype=np.uint8)
    ids = [catalog.add_image_array(p)[0] for p in pixels]
    for i, c in zip(ids, "ababab", strict=True):
        catalog.set_label(i, c, annotator="ana")
    catalog.set_splits(dict(zip(ids, ["train"] * 4 + ["test"] * 2, strict=True)))
    target = ft.catalog_target(catalog, "ana")
    assert target.train.class_names == ["a", "b"] and len(target.test) == 2
    assert target.train_ids == ids[:4] and target.train.labels.tolist() == [0, 1, 0, 1]


def test_training_reads_the_learners_labels_where_there_are_some(tmp_path):
    catalog = Catalog(tmp_path / "catalog")
    catalog.set_classes(["a", "b"])
    pixels = np.random.default_rng(2).integers(0, 255, (6, 8, 8), dtype=np.uint8)
    ids = [catalog.add_image_array(p)[0] for p in pixels]
    for i, c in zip(ids, "aaaaab", strict=True):
        catalog.set_label(i, c, annotator="ana")
        catalog.set_label(i, "ab"[i % 2], annotator=ft.TRUTH)
    catalog.set_splits(dict(zip(ids, ["train"] * 4 + ["test"] * 2, strict=True)))
    target = ft.catalog_target(catalog, "ana", learner="you", test_annotator=ft.TRUTH)
    assert target.learner_labels == 0 and target.train.class_names == ["a"]  # one class
    catalog.set_label(ids[1], "b", annotator="you")
    catalog.set_label(ids[3], "b", annotator="you", status="unsure")  # doubted: not used
    target = ft.catalog_target(catalog, "ana", learner="you", test_annotator=ft.TRUTH)
    assert target.learner_labels == 1 and target.train.labels.tolist() == [0, 1, 0, 0]
    assert target.test.labels.tolist() == [1, 0]  # scored on the archive's labels
    with pytest.raises(ft.BackboneError, match="label and split it first"):
        ft.catalog_target(catalog, "nobody")


def test_photo_catalog_labels_and_splits_the_shipped_photos(tmp_path):
    from helpers.acquire.photos import TARGET_CLASSES
    from helpers.splitting import leaks

    built = ft.photo_catalog(tmp_path / "c", limit_per_class=8, error_rates={"ana": 0.25}, seed=1)
    catalog = built.catalog
    assert len(built.pool) == len(built.test) == 8 * len(TARGET_CLASSES)
    assert catalog.classes() == list(TARGET_CLASSES)
    ana = {r["image_id"]: r["class_name"] for r in catalog.labels("ana")}
    assert set(ana) == set(built.pool)  # the simulated annotator labeled the pool only
    assert {i for i in ana if ana[i] != built.truth[i]} == built.errors["ana"] != set()
    truth = {r["image_id"]: r["class_name"] for r in catalog.labels(ft.TRUTH)}
    assert truth == built.truth
    splits = catalog.splits()
    assert {i for i, s in splits.items() if s == "test"} == set(built.test)
    assert {splits.get(i) for i in built.pool} <= {"train", "val", None}
    assert "CIFAR-10" in catalog.provenance()[0]["source"]
    groups = [[built.pool[0], built.test[0]], [built.pool[1], built.pool[2]]]
    split = ft.split_pool(catalog, "ana", built.pool, built.test, groups=groups, seed=1)
    assert split[built.pool[0]] == "test" and leaks(split, groups) == []
    again = ft.photo_catalog(tmp_path / "c", limit_per_class=8, error_rates={}, seed=1)
    assert again.errors == {} and set(again.catalog.splits()) == set(again.test)


def test_split_tree_with_other_test_classes_is_refused(tmp_path):
    from PIL import Image

    for split, classes in (("train", "ab"), ("test", "ac")):
        for c in classes:
            (tmp_path / split / c).mkdir(parents=True)
            Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / split / c / "x.png")
    with pytest.raises(ft.BackboneError, match=r"differ in classes \['b', 'c'\]"):
        ft.folder_target(tmp_path)


def test_a_backbone_saved_in_bfloat16_loads_in_this_machines_precision(tmp_path):
    """A .keras file keeps each layer's dtype policy: a backbone pretrained and saved under
    mixed_bfloat16 (notebook 07 on a CPU with AVX-512 BF16, before issue 25) made every
    classifier built on it compute in bfloat16. It loads in the global policy instead, with
    the same weights and the same features up to bfloat16 rounding."""
    backbone = tiny_backbone()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        bf16 = models.build_backbone(TINY, (8, 8, 1))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    bf16.set_weights(backbone.model.get_weights())
    bf16.save(tmp_path / ft.MODEL_FILE)
    ft.write_card(tmp_path, backbone.card)
    assert "mixed_bfloat16" in models.dtype_policies(
        keras.models.load_model(tmp_path / ft.MODEL_FILE)
    )

    loaded = ft.load_backbone(tmp_path)
    assert models.dtype_policies(loaded.model) == {"float32"}
    for a, b in zip(loaded.model.get_weights(), backbone.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(loaded.model(x), backbone.model(x), rtol=1e-6, atol=1e-6)


def test_backbones_are_saved_in_float32(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        backbone = tiny_backbone()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    save(backbone, tmp_path)
    saved = keras.models.load_model(tmp_path / ft.MODEL_FILE)
    assert models.dtype_policies(saved) == {"float32"}


def test_probe_does_not_blow_up_a_nearly_dead_feature():
    """A channel that is almost always 0 gets no weight far above the others' (folded into
    the head, such a weight sets the int8 range of its whole output row)."""
    rng = np.random.default_rng(4)
    y = np.arange(120) % 3
    healthy = rng.normal(0.0, 0.02, (120, 6)) + 0.03 * y[:, None]  # classes 1.5 spreads apart
    nearly_dead = np.where(rng.random((120, 1)) < 0.03, 1e-3, 0.0)
    features = np.hstack([healthy, nearly_dead]).astype("float32")
    probe = ft.fit_probe(features, y)
    kernel, _ = ft.probe_head_weights(probe, 3)
    assert np.abs(kernel[-1]).max() <= np.abs(kernel[:-1]).max()
    assert probe.score(features, y) > 0.8


def test_wise_ft_alpha_is_the_best_on_validation_and_ties_go_to_the_middle():
    alphas = [0, 0.25, 0.5, 0.75, 1]
    assert ft.choose_alpha(alphas, [0.5, 0.6, 0.7, 0.6, 0.4]) == 0.5
    assert ft.choose_alpha(alphas, [0.5, 0.5, 0.4, 0.6, 0.6]) == 0.75  # the tie nearest 0.5
    assert ft.choose_alpha(alphas, [0.9, 0.5, 0.5, 0.5, 0.5]) == 0.0
