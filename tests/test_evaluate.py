"""helpers.evaluate: sklearn's report, confusion pairs, top losses, TTA, recording; the
figures in helpers.plots that show them."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from sklearn import metrics

from helpers import evaluate as E
from helpers import pipeline as pl
from helpers import plots, results
from helpers.quiet import keras


def _known():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    p = np.full((8, 3), 0.1)
    predicted = [0, 0, 1, 1, 1, 1, 1, 2]  # two 2s called 1, one 0 called 1
    p[np.arange(8), predicted] = 0.8
    p[5, 1] = 0.98  # the most confident mistake
    p[5, [0, 2]] = 0.01
    return E.Evaluation(y_true, p, ["cat", "dog", "fox"], np.zeros((8, 4, 4, 3), np.uint8))


def test_report_confusion_and_pairs_agree_with_sklearn():
    ev = _known()
    assert ev.accuracy == pytest.approx(5 / 8)
    report = ev.report(as_dict=True)
    expected = metrics.precision_recall_fscore_support(ev.y_true, ev.y_pred, average="macro")
    assert report["macro avg"]["precision"] == pytest.approx(expected[0])
    assert report["fox"]["recall"] == pytest.approx(1 / 3)
    assert ev.confusion().tolist() == [[2, 1, 0], [0, 2, 0], [0, 2, 1]]
    assert ev.most_confused(2) == [("fox", "dog", 2), ("cat", "dog", 1)]
    assert "fox" in str(ev) and "most confused: fox as dog (2)" in str(ev)


def test_top_losses_come_first_with_true_predicted_and_probability():
    top = _known().top_losses(3)
    assert top[0]["index"] == 5 and top[0]["true"] == "fox" and top[0]["predicted"] == "dog"
    assert top[0]["probability"] == pytest.approx(0.98)
    assert top[0]["loss"] == pytest.approx(-np.log(0.01))
    assert top[0]["loss"] >= top[1]["loss"] >= top[2]["loss"]


def test_a_class_without_test_images_scores_zero_without_a_warning():
    ev = E.Evaluation(np.array([0, 1, 1]), np.eye(3)[[0, 1, 0]], ["a", "b", "c"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = ev.report(as_dict=True)
    assert report["c"]["support"] == 0 and report["c"]["recall"] == 0


def test_recording_puts_the_headline_numbers_where_the_runner_reads_them(tmp_path, monkeypatch):
    monkeypatch.setenv(results.RESULTS_FILE_ENV, str(tmp_path / "m.jsonl"))
    _known().record("final_")
    got = results.read_recorded(tmp_path / "m.jsonl")
    assert got["final_test_accuracy"] == 0.625
    assert set(got) == {f"final_{k}" for k in ("test_accuracy", "macro_precision",
                                                "macro_recall", "macro_f1")}  # fmt: skip


class _LeftRight(keras.layers.Layer):
    """Probability of class 1 = the share of brightness in the left half: a flip swaps it."""

    def call(self, x):
        w = x.shape[2] // 2
        left = keras.ops.sum(x[:, :, :w], axis=(1, 2, 3))
        total = keras.ops.sum(x, axis=(1, 2, 3)) + 1e-6
        p = left / total
        return keras.ops.stack([1 - p, p], axis=1)


def test_flip_tta_averages_the_image_and_its_mirror():
    model = keras.Sequential([keras.Input((4, 4, 1)), _LeftRight()])
    x = np.zeros((6, 4, 4, 1), np.uint8)
    x[:, :, :2] = 200  # all the light on the left
    ds = pl.from_arrays(x, np.ones(6, np.int32), batch_size=4, shuffle=False, normalize="none",
                        class_names=["right", "left"])  # fmt: skip
    plain = E.evaluate(model, ds, ["right", "left"], record_as=None)
    tta = E.evaluate(model, ds, ["right", "left"], tta=True, record_as=None)
    assert plain.accuracy == 1.0
    np.testing.assert_allclose(tta.probabilities, 0.5, atol=1e-5)
    assert plain.images.shape == (6, 4, 4, 1) and plain.images.dtype == np.uint8


def test_a_model_for_other_classes_is_refused():
    model = keras.Sequential([keras.Input((4, 4, 1)), _LeftRight()])
    x = np.zeros((2, 4, 4, 1), np.uint8)
    ds = pl.from_arrays(x, np.zeros(2, np.int32), batch_size=2, shuffle=False, normalize="none")
    with pytest.raises(ValueError, match="predicts 2 classes but 3"):
        E.evaluate(model, ds, ["a", "b", "c"], record_as=None)


def test_the_figures_draw():
    ev = _known()
    assert plots.confusion_matrix(ev.confusion(), ev.class_names).axes
    assert len(plots.top_losses(ev.images, ev.top_losses(4)).axes) == 4
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8]}
    assert len(plots.learning_curves(history).axes) == 2
    assert plots.bar_table(["a", "b"], [0.5, 0.7], xlabel="accuracy").axes
