"""Evaluate a classifier on a test split with ``sklearn.metrics``: :func:`evaluate`; and
the course's one :func:`accuracy` (``model_accuracy`` for a model and arrays), which
notebooks 07 to 09 all score with.

Accuracy alone hides which classes fail and how. So :func:`evaluate` computes precision,
recall and F1 per class and macro-averaged (``classification_report``), the confusion
matrix, the class pairs confused most often, and the test images with the highest
loss (the model was sure and wrong: often a label error or a class the data does not
show well). Everything is recorded for the headless runner under stable names.

Test-time augmentation (``tta=True``): the model also sees each image mirrored
left-right and its two probability vectors are averaged. A mirror image is as likely
as the original for photos, so the average is a cheaper ensemble of two views; fast
CIFAR-10 trainers gain about one point from it. Do not use it on data where a flip
changes the class (digits, text).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn import metrics

from helpers.quiet import tf
from helpers.results import record


def accuracy(scores, labels) -> float:
    """Top-1 accuracy of class scores, one row per image: probabilities or logits (the
    largest of a row is the same in both). The course's one definition."""
    scores, labels = np.asarray(scores), np.asarray(labels).reshape(-1)
    return float(np.mean(scores.argmax(axis=-1) == labels)) if len(labels) else 0.0


def predict_arrays(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """``model``'s outputs for the array ``x``, batch by batch in this process, eagerly.

    No collective runs (``model.predict`` under a multi-worker strategy waits for the
    other workers), so any worker of notebook 07's runs can call it alone; and nothing is
    traced: ``model.predict`` traces a step per model and per new batch shape, and
    notebook 08, which predicts with dozens of models on arrays of varying length, set
    off TensorFlow's retracing warning with it. No images give no rows."""
    out = [
        np.asarray(model(tf.constant(x[i : i + batch_size]), training=False))
        for i in range(0, max(len(x), 1), batch_size)
    ]
    return np.concatenate(out)


def model_accuracy(
    model, x: np.ndarray, y: np.ndarray, batch_size: int = 512, *, tta: bool = False
) -> float:
    """:func:`accuracy` of ``model`` on the arrays ``x``, ``y`` (:func:`predict_arrays`).

    ``tta``: also predict each image mirrored left-right and average the two views'
    softmax probabilities (the model outputs logits, as every classifier the course
    trains does before :func:`helpers.models.with_softmax`)."""
    if not len(y):
        return 0.0
    if not tta:
        return accuracy(predict_arrays(model, x, batch_size), y)
    views = (
        tf.nn.softmax(predict_arrays(model, v, batch_size)).numpy() for v in (x, x[:, :, ::-1])
    )
    return accuracy(sum(views), y)


def cross_entropy(probabilities, labels) -> np.ndarray:
    """Each row's cross-entropy, -log p(true class), from probabilities."""
    labels = np.asarray(labels).reshape(-1)
    p = np.asarray(probabilities)[np.arange(len(labels)), labels]
    return -np.log(np.clip(p, 1e-12, 1.0))


def highest_first(losses, n: int) -> np.ndarray:
    """The indices of the ``n`` highest ``losses``, highest first (ties in index order):
    the top losses of a test split here and of the training labels in notebook 08."""
    return np.argsort(-np.asarray(losses), kind="stable")[:n]


@dataclass
class Evaluation:
    """Predictions on a test split and what they say; see :func:`evaluate`."""

    y_true: np.ndarray
    probabilities: np.ndarray
    class_names: list[str]
    images: np.ndarray | None = None

    @property
    def y_pred(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return accuracy(self.probabilities, self.y_true)

    @property
    def losses(self) -> np.ndarray:
        """Each image's cross-entropy, -log p(true class)."""
        return cross_entropy(self.probabilities, self.y_true)

    def report(self, as_dict: bool = False):
        """``classification_report``: precision, recall, F1 and support per class, and
        their macro and weighted averages. A class with no test image gets zeros (and
        support 0) instead of a warning."""
        return metrics.classification_report(
            self.y_true,
            self.y_pred,
            labels=list(range(len(self.class_names))),
            target_names=self.class_names,
            zero_division=0,
            output_dict=as_dict,
            digits=3,
        )

    def confusion(self, normalize: str | None = None) -> np.ndarray:
        """Rows are true classes, columns predicted ones (``normalize="true"``: per row)."""
        return metrics.confusion_matrix(
            self.y_true,
            self.y_pred,
            labels=list(range(len(self.class_names))),
            normalize=normalize,
        )

    def most_confused(self, n: int = 5) -> list[tuple[str, str, int]]:
        """The ``n`` (true, predicted, count) pairs with the most errors, largest first."""
        cm = self.confusion()
        np.fill_diagonal(cm, 0)
        order = np.argsort(cm, axis=None)[::-1][:n]
        pairs = []
        for flat in order:
            i, j = np.unravel_index(flat, cm.shape)
            if cm[i, j] == 0:
                break
            pairs.append((self.class_names[i], self.class_names[j], int(cm[i, j])))
        return pairs

    def top_losses(self, n: int = 16) -> list[dict]:
        """The ``n`` test images with the highest loss: index, true and predicted class,
        the probability of the prediction and of the true class, the loss."""
        losses = self.losses
        rows = []
        for i in highest_first(losses, n):
            true, pred = int(self.y_true[i]), int(self.y_pred[i])
            rows.append(
                {
                    "index": int(i),
                    "true": self.class_names[true],
                    "predicted": self.class_names[pred],
                    "probability": float(self.probabilities[i, pred]),
                    "true_probability": float(self.probabilities[i, true]),
                    "loss": float(losses[i]),
                }
            )
        return rows

    def record(self, prefix: str = "") -> dict:
        """Record accuracy and the macro averages for the runner; return them."""
        macro = self.report(as_dict=True)["macro avg"]
        values = {
            f"{prefix}test_accuracy": round(self.accuracy, 4),
            f"{prefix}macro_precision": round(float(macro["precision"]), 4),
            f"{prefix}macro_recall": round(float(macro["recall"]), 4),
            f"{prefix}macro_f1": round(float(macro["f1-score"]), 4),
        }
        for name, value in values.items():
            record(name, value)
        return values

    def __str__(self) -> str:
        confused = ", ".join(f"{t} as {p} ({c})" for t, p, c in self.most_confused(3))
        return (
            f"accuracy {self.accuracy:.4f} on {len(self.y_true)} images\n{self.report()}"
            f"most confused: {confused or 'none'}"
        )


def predict_probabilities(model, dataset, *, tta: bool = False, keep_images: bool = True):
    """``(probabilities, integer labels, images or None)`` over a batched dataset.

    Labels may be integers or one-hot. With ``tta`` each batch is also predicted
    mirrored left-right and the two probability vectors averaged.
    """
    labels, images = [], []
    for x, y in dataset:  # one pass for the labels (cheap: the pipeline caches in memory)
        y = np.asarray(y)
        labels.append(y.argmax(axis=1) if y.ndim == 2 else y.reshape(-1))
        if keep_images:
            images.append(np.clip(np.asarray(x), 0, 255).astype(np.uint8))
    if not labels:
        raise ValueError("the test dataset yielded no batch; nothing to evaluate")
    # model.predict over the dataset: one traced step per batch shape, where
    # predict_on_batch in a loop would retrace (and warn) for every new model and shape.
    # With its length known, Keras does not warn that the input "ran out of data".
    pixels = dataset.map(lambda x, y: x)
    if int(pixels.cardinality()) < 0:
        pixels = pixels.apply(tf.data.experimental.assert_cardinality(len(labels)))
    probabilities = np.asarray(model.predict(pixels, verbose=0), np.float64)
    if tta:
        mirrored = pixels.map(lambda x: tf.reverse(x, axis=[2]))
        probabilities = (probabilities + model.predict(mirrored, verbose=0)) / 2.0
    labels = np.concatenate(labels).astype(np.int64)
    if len(labels) != len(probabilities):
        raise ValueError(
            "the dataset changed between two passes; evaluate one that is not shuffled"
        )
    return probabilities, labels, np.concatenate(images) if keep_images else None


def evaluate(
    model,
    dataset,
    class_names,
    *,
    tta: bool = False,
    record_as: str | None = "",
    keep_images: bool = True,
) -> Evaluation:
    """Predict ``dataset`` (batches of raw pixels and labels) and wrap the result in an
    :class:`Evaluation`; ``record_as`` (a prefix; None records nothing) records its
    headline numbers for the runner."""
    probabilities, labels, images = predict_probabilities(
        model, dataset, tta=tta, keep_images=keep_images
    )
    if probabilities.shape[1] != len(class_names):
        raise ValueError(
            f"the model predicts {probabilities.shape[1]} classes but {len(class_names)} class "
            "names were given; evaluate with the class names it was trained on"
        )
    result = Evaluation(labels, probabilities, list(class_names), images)
    if record_as is not None:
        result.record(record_as)
    return result
