"""Grad-CAM and its sanity check, calibration, ensembles, the uncertainty queue and the
active-learning measurement (helpers.interpret)."""

import numpy as np
import pytest

from helpers import interpret as ip
from helpers.catalog import Catalog
from helpers.evaluate import accuracy
from helpers.labeling import ClassAnnotator, margin_uncertainty
from helpers.models import build_model
from helpers.quiet import keras


def _shapes(n: int, seed: int):
    """16x16 noise with one bright object: a 4x4 square (class 0) or a 1x8 bar (class 1)
    anywhere; returns images, labels and each object's mask."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 60, (n, 16, 16, 1)).astype(np.float32)
    y = rng.integers(0, 2, n)
    masks = np.zeros((n, 16, 16), bool)
    for i in range(n):
        h, w = (4, 4) if y[i] == 0 else (1, 8)
        r, c = rng.integers(0, 17 - h), rng.integers(0, 17 - w)
        masks[i, r : r + h, c : c + w] = True
    x[masks] = 230.0
    return x, y, masks


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv"),
            keras.layers.GlobalMaxPooling2D(),
            keras.layers.Dense(2),
            keras.layers.Softmax(),
        ]
    )
    x, y, _ = _shapes(600, 0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    return model


def test_grad_cam_finds_the_object_and_passes_the_sanity_check(trained):
    x, y, masks = _shapes(40, 1)
    assert ip.feature_layer(trained).name == "last_conv"
    cam, probs = ip.grad_cam(trained, x)
    assert accuracy(probs, y) > 0.9
    assert cam.shape == (40, 16, 16) and cam.min() >= 0 and np.isclose(cam.max(), 1)
    # The peak of the map lies on (or touching) the object in most images.
    peaks = [np.unravel_index(m.argmax(), m.shape) for m in cam]
    near = [
        masks[i, max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].any()
        for i, (r, c) in enumerate(peaks)
    ]
    assert np.mean(near) > 0.8
    check = ip.sanity_check(trained, x, seed=0)
    assert check.perturbed > 0.8, check
    assert check.randomized < 0.5 * check.perturbed and check.passed, check
    assert "passed" in str(check)


def test_the_sanity_check_fails_a_method_that_ignores_the_weights(trained):
    # A "random model" that is the trained one: its maps cannot differ, so the check fails.
    x, _, _ = _shapes(20, 2)
    check = ip.sanity_check(trained, x, random_model=trained)
    assert not check.passed and check.randomized > 0.99


def test_grad_cam_reaches_into_nested_backbones_and_takes_a_layer_name():
    model = build_model(
        "course_cnn", input_shape=(16, 16, 3), num_classes=3, widths=(8, 8, 8), stem=4
    )
    x = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3)).astype(np.float32)
    assert ip.feature_layer(model).name == "block3_act2"
    cam, probs = ip.grad_cam(model, x, classes=[0, 1, 2], size=(16, 16))
    assert cam.shape == (3, 16, 16) and probs.shape == (3, 3)
    cam1, _ = ip.grad_cam(model, x, layer="block1_act2")
    assert cam1.shape == (3, 8, 8)
    with pytest.raises(ip.InterpretError, match="no layer named 'nope'"):
        ip.grad_cam(model, x, layer="nope")
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ip.InterpretError, match="convolutional"):
        ip.feature_layer(dense)
    # The model's own call is back in place afterwards.
    assert "call" not in vars(model.get_layer("backbone").get_layer("block3_act2"))


def test_rank_correlation_of_constant_maps_is_zero():
    a = np.arange(8.0).reshape(2, 4)
    assert np.allclose(ip.rank_correlation(a, a), 1)
    assert np.allclose(ip.rank_correlation(a, np.zeros_like(a)), 0)


def test_gallery_indices_split_right_and_wrong_by_confidence():
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]])
    right, wrong = ip.gallery_indices([0, 0, 0, 1], p, n=5)
    assert list(right) == [0, 1, 3] and list(wrong) == [2]


def _overconfident(n: int, seed: int, scale: float = 4.0, classes: int = 5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    z = rng.normal(0, 1, (n, classes)) + 1.5 * np.eye(classes)[y]
    z *= scale
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), y


def test_ece_is_small_when_calibrated_and_matches_a_hand_count():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 20000)
    correct = rng.random(20000) < conf
    p = np.stack([conf, 1 - conf], axis=1)
    y = np.where(correct, 0, 1)
    assert ip.expected_calibration_error(p, y) < 0.02
    # Two bins: 0.6 and 0.7 land in (0.5, 1.0], mean confidence 0.65, accuracy 1/2.
    hand = np.array([[0.6, 0.4], [0.3, 0.7]])
    assert np.isclose(ip.expected_calibration_error(hand, [0, 0], bins=2), 0.15)
    r = ip.reliability(hand, [0, 0], bins=2)
    assert list(r.counts) == [0, 2] and np.isnan(r.accuracy[0])
    with pytest.raises(ip.InterpretError, match="labels"):
        ip.reliability(hand, [0], bins=2)


def test_temperature_scaling_lowers_ece_of_an_overconfident_model():
    p_val, y_val = _overconfident(3000, 0)
    p_test, y_test = _overconfident(3000, 1)
    t = ip.fit_temperature(p_val, y_val)
    assert 2.0 < t < 8.0  # the logits were scaled by 4
    before = ip.expected_calibration_error(p_test, y_test)
    after = ip.expected_calibration_error(ip.apply_temperature(p_test, t), y_test)
    assert before > 0.1 and after < before / 3
    assert accuracy(ip.apply_temperature(p_test, t), y_test) == accuracy(p_test, y_test)
    # An underconfident model gets T < 1; T = 1 changes nothing.
    p_soft, y_soft = _overconfident(3000, 2, scale=0.3)
    assert ip.fit_temperature(p_soft, y_soft) < 1.0
    assert np.allclose(ip.apply_temperature(p_test, 1.0), p_test)


def test_an_ensemble_of_independent_models_beats_its_best_member():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2000)
    members = []
    for _ in range(3):
        z = 2.0 * np.eye(4)[y] + rng.normal(0, 1.5, (2000, 4))
        members.append(np.exp(z) / np.exp(z).sum(axis=1, keepdims=True))
    result = ip.compare_ensemble(members, y, names=["a", "b", "c"])
    assert result["best"]["name"] in "abc"
    assert result["ensemble"]["accuracy"] > result["best"]["accuracy"] + 0.02
    assert np.allclose(ip.ensemble_probabilities(members).sum(axis=1), 1)
    with pytest.raises(ip.InterpretError, match="one shape"):
        ip.ensemble_probabilities([members[0], members[0][:5]])


def test_uncertainty_queue_puts_the_closest_calls_first(tmp_path):
    p = np.array([[0.9, 0.1, 0.0], [0.4, 0.35, 0.25], [0.5, 0.5, 0.0], [0.7, 0.2, 0.1]])
    assert ip.uncertainty_queue(p, [10, 11, 12, 13]) == [12, 11, 13, 10]
    assert np.allclose(margin_uncertainty(p)[2], 1.0)
    # Entropy weighs the whole row: a 0.7/0.2/0.1 row is more uncertain than a 50/50 tie.
    assert ip.uncertainty_queue(p, method="entropy") == [1, 3, 2, 0]
    assert ip.uncertainty_queue(np.full((3, 2), 0.5)) == [0, 1, 2]  # ties keep the order
    with pytest.raises(ip.InterpretError, match="method"):
        ip.uncertainty_queue(p, method="luck")
    # The class annotator shows its queue in the order given.
    with Catalog(tmp_path) as cat:
        ids = [cat.add_image_array(np.full((8, 8), k * 20, np.uint8))[0] for k in range(4)]
        queue = ip.uncertainty_queue(p, ids)
        widget = ClassAnnotator(cat, ["a", "b", "c"], queue, annotator="ana")
        assert widget.queue == queue and widget.current == queue[0]


def test_active_learning_through_the_widget_saves_labels_on_digits(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    order = np.random.default_rng(0).permutation(len(y))
    pool, test = order[:900], order[900:]
    result = ip.active_learning(
        x[pool], y[pool], x[test], y[test], budget=160, start=20, step=20, seeds=(0, 1)
    )
    assert list(result.labels) == [20, 40, 60, 80, 100, 120, 140, 160]
    assert result.accuracy["random"].shape == (2, 8)
    saved = result.saved()
    assert saved["fraction"] >= 0.25, saved
    assert result.mean("uncertainty")[-1] > result.mean("random")[-1]
    # The same loop with the labels clicked into the real widget by a simulated person.
    names = [str(k) for k in range(10)]
    with Catalog(tmp_path) as cat:
        sub = pool[:120]
        ids = [cat.add_image_array(digits.images[i].astype(np.uint8) * 15)[0] for i in sub]
        truth = {i: names[y[k]] for i, k in zip(ids, sub, strict=True)}
        annotate = ip.widget_annotator(cat, ids, truth, names)
        clicked = ip.active_learning(
            x[sub], y[sub], x[test], y[test], annotate=annotate, budget=40, start=20, step=20,
            seeds=(0,),
        )  # fmt: skip
        assert len(cat.labels("al-uncertainty-0")) == 40 and len(cat.labels("al-random-0")) == 40
        direct = ip.active_learning(
            x[sub], y[sub], x[test], y[test], budget=40, start=20, step=20, seeds=(0,)
        )
        assert np.allclose(clicked.accuracy["uncertainty"], direct.accuracy["uncertainty"])
    with pytest.raises(ip.InterpretError, match="budget"):
        ip.active_learning(x[pool], y[pool], x[test], y[test], budget=5000)


def test_a_temperature_fit_that_stops_at_its_bound_says_so():
    labels = np.arange(40) % 4
    sure = np.full((40, 4), 0.1)
    sure[np.arange(40), labels] = 0.7  # right on every image: the NLL falls as T -> 0
    t = ip.fit_temperature(sure, labels)
    assert ip.temperature_at_bound(sure, labels, t) and t < 0.1
    unsure = sure.copy()
    unsure[np.arange(0, 40, 3)] = sure[np.arange(0, 40, 3)][:, ::-1]  # a third wrong
    t = ip.fit_temperature(unsure, labels)
    assert not ip.temperature_at_bound(unsure, labels, t) and 0.1 < t < 50
