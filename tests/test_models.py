"""helpers.models: the registry, preprocessing inside the model, FLOP counts, the head."""

import numpy as np
import pytest

from helpers import models as M
from helpers.quiet import keras


def _articles_reference(input_shape, num_classes):
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Rescaling(1.0 / 255),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


def test_articles_cnn_is_the_articles_network():
    ref = _articles_reference((28, 28, 1), 10)
    model = M.build_model("articles_cnn", input_shape=(28, 28, 1), num_classes=10)
    assert model.count_params() == ref.count_params() == 34_826
    model.set_weights(ref.get_weights())
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(model.predict_on_batch(x), ref.predict_on_batch(x), atol=1e-6)


@pytest.mark.parametrize(
    "name, kwargs",
    [("articles_cnn", {}), ("course_cnn", {}), ("resnet", {"width": 8, "depth": (1, 1)})],
)
def test_models_take_raw_pixels_of_any_size_and_give_probabilities(name, kwargs):
    model = M.build_model(name, input_shape=(32, 32, 3), num_classes=5, **kwargs)
    assert M.input_shape_of(model) == (32, 32, 3)
    for shape in ((3, 32, 32, 3), (2, 45, 27, 3)):
        x = np.random.default_rng(1).integers(0, 256, shape).astype("uint8")
        p = model.predict_on_batch(x.astype("float32"))
        assert p.shape == (shape[0], 5)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_flops_match_the_hand_count_of_a_tiny_net():
    model = M.conv_net((16, 16, 1), 3, widths=(4,), head="gap")
    flops = M.count_flops(model)
    conv = 2 * 3 * 3 * 1 * 4 * 14 * 14  # valid 3x3 conv: 14x14 outputs, 4 filters
    dense = 2 * 4 * 3
    # The rest (bias adds, ReLU, pooling, resize, scaling, softmax) is small but counted.
    assert conv + dense <= flops < 1.5 * (conv + dense)
    bigger = M.build_model("course_cnn", input_shape=(32, 32, 3), num_classes=10, size="medium")
    smaller = M.build_model("course_cnn", input_shape=(32, 32, 3), num_classes=10)
    assert M.count_flops(bigger) > 3 * M.count_flops(smaller)


def test_gap_head_has_far_fewer_parameters_than_flatten():
    flat = M.conv_net((32, 32, 3), 10, batchnorm=True)
    gap = M.conv_net((32, 32, 3), 10, batchnorm=True, head="gap")
    assert gap.count_params() < flat.count_params() / 1.5


def test_augmentation_acts_in_training_only_and_the_model_saves_and_loads(tmp_path):
    model = M.build_model("course_cnn", input_shape=(16, 16, 3), num_classes=3, seed=0)
    aug = model.get_layer("augmentation")
    x = np.random.default_rng(2).uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    assert np.array_equal(np.asarray(aug(x, training=False)), x)
    assert not np.array_equal(np.asarray(aug(x, training=True)), x)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)


def test_with_head_puts_new_classes_on_a_backbone():
    model = M.build_model("resnet", input_shape=(16, 16, 3), num_classes=10, width=8, depth=(1,))
    new = M.with_head(M.backbone_of(model), 4)
    assert new.output_shape == (None, 4)
    assert new.get_layer("backbone") is model.get_layer("backbone")


def test_the_one_head_gives_logits_and_a_softmax_only_where_users_get_the_model():
    backbone = M.resnet_backbone((8, 8, 3), width=4, depth=(1, 1))
    head = M.with_head(backbone, 3, scale="raw", dropout=0.2, frozen=True)
    assert head.layers[-1].name == "logits" and M.outputs_logits(head)
    x = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    shipped = M.as_probabilities(head)
    assert M.softmax_layer(shipped) is not None and M.as_probabilities(shipped) is shipped
    want = keras.ops.convert_to_numpy(keras.ops.softmax(head(x)))
    np.testing.assert_allclose(np.asarray(shipped(x)), want, atol=1e-6)
    assert M.as_probabilities(backbone) is backbone  # features are never made probabilities


def test_a_card_architecture_rebuilds_the_same_backbone():
    arch = {"family": "resnet", "width": 4, "depth": [1, 2], "bn_momentum": 0.9}
    a, b = M.build_backbone(arch, (8, 8, 1)), M.resnet_backbone((8, 8, 1), width=4, depth=(1, 2))
    assert [w.shape for w in a.weights] == [w.shape for w in b.weights]
    assert {la.momentum for la in M.all_layers(a) if hasattr(la, "momentum")} == {0.9}
    with pytest.raises(M.ModelError, match="family"):
        M.build_backbone({"family": "small_resnet"}, (8, 8, 1))


@pytest.mark.parametrize(
    ("scale", "low", "high"), [("unit", 0, 1), ("symmetric", -1, 1), ("raw", 0, 255)]
)
def test_the_one_preprocessing_layer_scales_as_the_card_names(scale, low, high):
    x = np.array([[[[0.0], [255.0]]]], "float32")
    out = np.asarray(M.preprocessing(scale=scale)(x)).ravel()
    np.testing.assert_allclose(out, [low, high], atol=1e-6)


def test_bad_requests_say_what_to_change():
    with pytest.raises(M.ModelError, match="unknown model"):
        M.build_model("vgg", input_shape=(32, 32, 3), num_classes=10)
    with pytest.raises(M.ModelError, match="at least 2 classes"):
        M.build_model("articles_cnn", input_shape=(32, 32, 3), num_classes=1)
    with pytest.raises(M.ModelError, match="channels"):
        M.build_model("course_cnn", input_shape=(32, 32, 4), num_classes=3)
    with pytest.raises(M.ModelError, match="size must be"):
        M.build_model("course_cnn", input_shape=(32, 32, 3), num_classes=3, size="huge")


def test_choose_precision_follows_the_table_and_a_measurement(monkeypatch):
    import re
    from pathlib import Path

    from helpers import devices as D
    from helpers.devices import GPU, choose_precision

    # The table's figures are the benchmark files' own, and its reasons quote them.
    root = Path(__file__).resolve().parent.parent
    for gain, _, source in [*D.CPU_BF16_MEASURED.values(), D.CPU_BF16_EMULATED]:
        text = (root / source).read_text(encoding="utf-8")
        assert f"ratio mixed_bfloat16 / float32: {gain:.2f}x" in text, source
    bf16 = {"avx512f", "avx512_bf16"}
    intel = choose_precision([], flags=bf16, vendor="Intel", apply=False)
    assert intel[0] == "mixed_bfloat16" and "avx512_bf16" in intel[1]
    assert re.search(r"1\.10x float32.*train_throughput\.txt", intel[1])
    # AMD's AVX-512 BF16 quotes AMD's figure, not the Xeon's.
    amd = choose_precision([], flags=bf16, vendor="AMD", apply=False)
    assert amd[0] == "mixed_bfloat16" and re.search(r"1\.08x.*amd-epyc-avx512bf16", amd[1])
    # A vendor no benchmark has measured: the table does not lend another vendor's figure.
    other = choose_precision([], flags=bf16, vendor="other", apply=False)
    assert other[0] == "float32" and "train_throughput.py" in other[1]
    avx2 = choose_precision([], flags={"avx2", "fma"}, apply=False)
    assert avx2[0] == "float32" and "emulated" in avx2[1] and "amd-epyc-avx2" in avx2[1]
    # AMX with no measurement behind it: the table does not guess.
    assert choose_precision([], flags={"amx_bf16"}, vendor="Intel", apply=False)[0] == "float32"
    # A measured gain too small to pay: float32, and the reason says so.
    _, where, source = D.CPU_BF16_MEASURED["Intel", "avx512_bf16"]
    monkeypatch.setitem(D.CPU_BF16_MEASURED, ("Intel", "avx512_bf16"), (1.01, where, source))
    small = choose_precision([], flags={"avx512_bf16"}, vendor="Intel", apply=False)
    assert small[0] == "float32" and "only 1.01x" in small[1]
    assert D.cpu_vendor("AMD EPYC 9654") == "AMD"
    assert D.cpu_vendor("Intel(R) Xeon(R) Processor") == "Intel"
    assert choose_precision([GPU("H100", None, (9, 0))], apply=False)[0] == "mixed_bfloat16"
    turing = choose_precision([GPU("T4", None, (7, 5))], apply=False)
    assert turing[0] == "mixed_float16" and "loss" in turing[1]
    assert choose_precision([GPU("K80", None, (3, 7))], apply=False)[0] == "float32"
    speeds = {"float32": 100.0, "mixed_bfloat16": 90.0}
    measured = choose_precision([], measure=speeds.get, apply=False)
    assert measured[0] == "float32" and "measured" in measured[1]


def test_the_subsampled_projection_computes_a_strided_one_by_one_convolution():
    """models._residual takes every second pixel before its 1x1 projection instead of a
    strided 1x1 convolution (the kernel oneDNN crashes on, issue 25): the same function."""
    backbone = M.resnet_backbone((32, 32, 3), width=8, depth=(1, 1))
    inner = backbone.get_layer("stage2_block1_subsample").input
    proj = backbone.get_layer("stage2_block1_proj")
    features = keras.Model(backbone.input, [inner, proj.output])
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    before, after = (keras.ops.convert_to_numpy(t) for t in features(x))
    strided = keras.layers.Conv2D(16, 1, strides=2, use_bias=False)
    strided.build(before.shape)
    strided.set_weights(proj.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(strided(before)), after, atol=1e-5)
    assert after.shape == (3, 16, 16, 16)


def test_flip_false_keeps_the_shifts_and_drops_the_mirror_images():
    """Notebook 06's FLIP knob: digits and text, where a mirror image is another class."""
    for name, extra in (("course_cnn", {}), ("conv_net", {"augment": True})):
        model = M.build_model(
            name, input_shape=(16, 16, 3), num_classes=3, seed=0, flip=False, **extra
        )
        kinds = [type(layer).__name__ for layer in model.get_layer("augmentation").layers]
        assert "RandomFlip" not in kinds and "RandomShift" in kinds, (name, kinds)
