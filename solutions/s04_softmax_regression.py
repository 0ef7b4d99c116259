"""Solutions to the exercises of notebooks/04_softmax_regression.ipynb."""

from __future__ import annotations

import time

import numpy as np

from helpers import scratch
from helpers.acquire.datasets import load_arrays


def _digits(seed: int = 42, scale: float = 255.0):
    data = load_arrays("digits", seed=seed)
    x_train = data.x_train.reshape(len(data.x_train), -1) / scale
    x_test = data.x_test.reshape(len(data.x_test), -1) / scale
    return x_train, data.y_train, x_test, data.y_test


def exercise_1(seed: int = 42) -> dict[str, float]:
    """Drop the ``/ n`` from the gradient: how large is the relative error?

    The gradient comes out ``n`` times too large, so for a batch of 100 the relative
    error is (100 - 1) / (100 + 1), about 0.98, instead of about 1e-8: the check fails
    loudly. Training still works in the sense that the direction is right, but the
    step is ``n`` times larger, so the learning rate must shrink by ``n`` to match
    (and would have to change with the batch size). Returns both relative errors.
    """
    x, y, _, _ = _digits(seed)
    x, y = x[:100], y[:100]
    rng = np.random.default_rng(seed)
    W, b = rng.normal(scale=0.1, size=(x.shape[1], 10)), np.zeros(10)

    def loss():
        return scratch.softmax_regression_loss_and_grads(W, b, x, y)[0]

    _, dW, _ = scratch.softmax_regression_loss_and_grads(W, b, x, y)
    numeric = scratch.numerical_gradient(loss, W)
    return {
        "with_1_over_n": scratch.relative_error(dW, numeric),
        "without_1_over_n": scratch.relative_error(dW * len(x), numeric),
    }


def exercise_2(l2: float = 1e-3, seed: int = 42, epochs: int = 20) -> dict[str, float]:
    """Add L2 regularisation: what happens to the weights and the test accuracy?

    The weights shrink (their norm drops), so the weight images are smoother, with less
    speckle on pixels that are rarely ink; the test accuracy stays about the same on
    these digits (within a point), since the model was not overfitting much. Returns
    the weight norms and test accuracies without and with L2.
    """
    x_train, y_train, x_test, y_test = _digits(seed)
    plain = scratch.train_softmax_regression(x_train, y_train, 10, epochs=epochs, seed=seed)
    ridge = scratch.train_softmax_regression(x_train, y_train, 10, epochs=epochs, l2=l2, seed=seed)
    return {
        "norm_plain": float(np.linalg.norm(plain.W)),
        "norm_l2": float(np.linalg.norm(ridge.W)),
        "accuracy_plain": plain.accuracy(x_test, y_test),
        "accuracy_l2": ridge.accuracy(x_test, y_test),
    }


def exercise_3(seed: int = 42, sgd_epochs: int = 5) -> dict[str, float]:
    """Full-batch gradient descent: how many epochs for the loss SGD reaches?

    Many more: an SGD epoch makes one step per batch of 32 (about 45 steps here),
    full-batch gradient descent one step per epoch, so it needs roughly that many
    times more epochs, though each epoch is faster (one large matrix product instead of
    45 small ones). Returns the epochs each needed and the seconds per epoch.
    """
    x_train, y_train, _, _ = _digits(seed)
    start = time.perf_counter()
    sgd = scratch.train_softmax_regression(x_train, y_train, 10, epochs=sgd_epochs, seed=seed)
    sgd_seconds = (time.perf_counter() - start) / sgd_epochs
    target = sgd.history["loss"][-1]
    start = time.perf_counter()
    full = scratch.train_softmax_regression(
        x_train, y_train, 10, epochs=2000, batch_size=len(x_train), seed=seed
    )
    full_seconds = (time.perf_counter() - start) / 2000
    needed = next((i + 1 for i, v in enumerate(full.history["loss"]) if v <= target), None)
    return {
        "sgd_epochs": sgd_epochs,
        "full_batch_epochs": needed,
        "sgd_seconds_per_epoch": sgd_seconds,
        "full_batch_seconds_per_epoch": full_seconds,
    }


def _diverges(learning_rate: float, x, y, seed: int) -> bool:
    loss = scratch.train_softmax_regression(
        x, y, 10, learning_rate=learning_rate, epochs=5, seed=seed
    ).history["loss"]
    return not np.all(np.isfinite(loss)) or not np.all(np.diff(loss) < 0)


def exercise_4(seed: int = 42) -> dict[str, dict[str, float]]:
    """The largest learning rate at which the loss still falls smoothly, scaled or not.

    On a grid of powers of two: 2 with pixels in [0, 1], 0.5 with raw pixels in 0..255.
    The curvature grows with the square of the input scale, yet the safe rate drops only
    4x, because the cross-entropy's gradient is bounded (a too-large step saturates the
    softmax instead of exploding); the price shows in the loss, which after 5 epochs is
    far higher with raw pixels. Scaling the inputs is what lets one learning rate work
    across data sets. Returns, for each, the largest smooth rate and its final loss.
    """
    found = {}
    for name, scale in (("scaled", 255.0), ("raw", 1.0)):
        x, y, _, _ = _digits(seed, scale)
        rates = [2.0**k for k in range(4, -24, -1)]
        rate = next(r for r in rates if not _diverges(r, x, y, seed))
        model = scratch.train_softmax_regression(x, y, 10, learning_rate=rate, epochs=5, seed=seed)
        found[name] = {"learning_rate": rate, "final_loss": model.history["loss"][-1]}
    return found


def exercise_5(seed: int = 42) -> tuple[int, ...]:
    """With ``COURSE_PROFILE=full`` (MNIST), compare the weight images.

    The 28x28 MNIST weight images look like blurred digit templates (positive where a
    class has ink, negative where others do); the 8x8 digits give coarse blocks of the
    same idea. Offline this returns the shape of one 8x8 weight image; with MNIST cached,
    ``load_arrays("mnist")`` gives the 28x28 ones the same way.
    """
    x_train, y_train, _, _ = _digits(seed)
    model = scratch.train_softmax_regression(x_train, y_train, 10, epochs=5, seed=seed)
    return model.W[:, 0].reshape(8, 8).shape
