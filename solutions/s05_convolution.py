"""Solutions to the exercises of notebooks/05_convolution.ipynb."""

from __future__ import annotations

import numpy as np

from helpers import scratch


def exercise_1() -> dict[str, tuple]:
    """``Conv2D(16, 5, strides=2, padding="same")`` on 31x31x3.

    "same" gives ceil(31 / 2) = 16 per side whatever the kernel, and the layer has 16
    filters: (16, 16, 16). (The total padding is (16 - 1) * 2 + 5 - 31 = 4: 2 before and
    2 after.) Returns the shape by the formula and by Keras.
    """
    from helpers.quiet import keras

    side = scratch.conv_output_size(31, 5, 2, "same")
    layer = keras.layers.Conv2D(16, 5, strides=2, padding="same")
    return {
        "formula": (side, side, 16),
        "keras": tuple(layer.compute_output_shape((1, 31, 31, 3))[1:]),
        "padding": scratch.same_padding(31, 5, 2),
    }


def exercise_2() -> dict[str, int]:
    """Receptive fields: five 3x3 convolutions at stride 1, then with a 2x2 pooling.

    Five 3x3 layers see 1 + 5 * 2 = 11 pixels. A 2x2 pooling (stride 2) after the second
    adds 1 step, and doubles the width of every step after it: 1 + 2 + 2 + 1 + 3 * 2 * 2
    = 18. Returns both by :func:`helpers.scratch.receptive_field`.
    """
    plain = [(3, 1)] * 5
    pooled = [(3, 1), (3, 1), (2, 2), (3, 1), (3, 1), (3, 1)]
    return {
        "five_3x3": scratch.receptive_field(plain),
        "with_pool": scratch.receptive_field(pooled),
    }


def exercise_3(seed: int = 42) -> dict[str, float]:
    """Stride 3, "valid": does the gradient check still pass? And with the crop dropped?

    It passes: the formulas hold for any stride and padding. Dropping the padding crop
    is the bug to watch: with "valid" there is nothing to crop, so it only shows with
    "same", where the input gradient comes back with the padded shape, larger than the
    input (or, cropped in the wrong place, with a large error). Returns the relative
    errors of the input gradient for stride 3 "valid", and for "same" with the crop
    taken from the wrong side.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1, 8, 7, 2))
    kernel, bias = rng.normal(size=(3, 3, 2, 3)), rng.normal(size=3)
    errors = {}
    for stride, padding in ((3, "valid"), (2, "same")):
        up = rng.normal(size=scratch.conv2d(x, kernel, bias, stride, padding).shape)

        def loss(stride=stride, padding=padding, up=up):
            return float(np.sum(scratch.conv2d(x, kernel, bias, stride, padding) * up))

        dx = scratch.conv2d_backward(up, x, kernel, stride, padding)[0]
        numeric = scratch.numerical_gradient(loss, x)
        errors[f"{padding}_stride{stride}"] = scratch.relative_error(dx, numeric)
        if padding == "same":  # the bug: shift the crop by one pixel
            shifted = np.roll(dx, 1, axis=1)
            errors["same_crop_shifted"] = scratch.relative_error(shifted, numeric)
    return errors


def exercise_4(
    seed: int = 42, steps: int = 300, tolerance: float = 0.1, max_steps: int = 5000
) -> dict[str, float | None]:
    """Learn $G_y$ with Adam, and with plain gradient descent: how many steps?

    Adam (rate 0.1) recovers $G_y$ as it did $G_x$: every weight is within 0.1 of it
    after about 170 steps. Plain gradient descent, at 0.9, just below the rate at which
    it diverges (2 over the largest curvature, about 1.0), needs about 800, five times
    as many ($G_x$: about 1,900): the loss valley is long and narrow (its condition
    number is about 3,800), so the steepest direction caps the step and the flattest one
    is crossed slowly. On the notebook's 128x128 copy of the photo (smoke sizes).
    Returns the largest kernel error after ``steps`` for each, and the steps each needed
    to bring every weight within ``tolerance``.
    """
    import skimage.data
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    photo = resize(skimage.data.camera(), (128, 128), anti_aliasing=True).astype("float32")
    small = resize(photo, (128, 128), anti_aliasing=True).astype("float64")
    inputs = (small - small.mean())[None, :, :, None]
    sobel_y = np.array([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]])
    target = scratch.conv2d(inputs, sobel_y[:, :, None, None])

    def fit(adam: bool, lr: float) -> tuple[float, int | None]:
        params = [rng.normal(scale=0.1, size=(3, 3, 1, 1)), np.zeros(1)]
        first = [np.zeros_like(p) for p in params]
        second = [np.zeros_like(p) for p in params]
        error_at_steps, reached = None, None
        for t in range(1, max_steps + 1):
            residual = scratch.conv2d(inputs, params[0], params[1]) - target
            _, dk, db = scratch.conv2d_backward(2 * residual / residual.size, inputs, params[0])
            for p, g, m, v in zip(params, (dk, db), first, second, strict=True):
                if adam:
                    m[...] = 0.9 * m + 0.1 * g
                    v[...] = 0.999 * v + 0.001 * g**2
                    p -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
                else:
                    p -= lr * g
            error = float(np.abs(params[0][:, :, 0, 0] - sobel_y).max())
            if t == steps:
                error_at_steps = error
            if reached is None and error < tolerance:
                reached = t
            if reached is not None and t >= steps:
                break
        return error_at_steps, reached

    adam_error, adam_steps = fit(True, 0.1)
    descent_error, descent_steps = fit(False, 0.9)
    return {
        "adam": adam_error,
        "gradient_descent": descent_error,
        "adam_steps": adam_steps,
        "gradient_descent_steps": descent_steps,
    }


def exercise_5() -> tuple[int, ...]:
    """``PHOTO = "astronaut"`` and ``FILTERS = 16``: which filters respond where?

    Edge-like filters (positive on one side, negative on the other) light up along the
    suit's and the flag's contours in their direction; blur-like ones pass the bright
    areas (the suit) through. Returns the shape of the 16 feature maps of a random
    3x3 bank on the grey astronaut, the input the notebook's filters see.
    """
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.transform import resize

    photo = resize(rgb2gray(skimage.data.astronaut()), (64, 64), anti_aliasing=True)
    bank = np.random.default_rng(0).normal(size=(3, 3, 1, 16))
    return scratch.conv2d(photo[None, :, :, None], bank, padding="same")[0].shape
