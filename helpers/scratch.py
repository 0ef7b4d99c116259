"""The math of notebooks 04 and 05 in plain NumPy: the one reference copy.

Notebook 04 (softmax regression) and notebook 05 (convolution and pooling) derive
these formulas, write some of them out once to teach them, and from then on call this
module and assert that it agrees with Keras. Keeping the reference here, with unit tests
in tests/test_scratch.py, means a learner never meets two slightly different copies.

Conventions follow Keras so that comparisons are one line:

- images are NHWC (batch, height, width, channels);
- a convolution kernel has shape ``(kh, kw, in_channels, out_channels)``, the layout of
  ``keras.layers.Conv2D(...).kernel``;
- ``padding`` is ``"valid"`` (no padding) or ``"same"`` (TensorFlow's rule: the output
  has ``ceil(n / stride)`` positions and any odd padding pixel goes after, at the
  bottom/right);
- a dense layer computes ``x @ W + b`` with ``W`` of shape ``(features, classes)``.

Everything is vectorised: windows come from :func:`numpy.lib.stride_tricks.sliding_window_view`
and the sums are one matrix product (the im2col idea), so the only Python loops left
run over kernel offsets (at most ``kh * kw`` iterations), never over pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# ----------------------------------------------------------------------------------------
# Softmax, log-softmax and cross-entropy
# ----------------------------------------------------------------------------------------


def logsumexp(z: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    r"""``log(sum(exp(z)))`` along ``axis`` without overflow.

    ``exp(1000)`` is ``inf`` in float64 (and ``exp(89)`` already in float32), so the sum
    is computed as :math:`m + \log \sum_j e^{z_j - m}` with :math:`m = \max_j z_j`: every
    exponent is at most 0, and the largest term is exactly 1, so the sum never
    underflows to 0 either.
    """
    z = np.asarray(z)
    m = np.max(z, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def softmax(z: np.ndarray, axis: int = -1, temperature: float = 1.0) -> np.ndarray:
    r"""Probabilities :math:`e^{z_k / T} / \sum_j e^{z_j / T}` along ``axis``, computed stably.

    Subtracting the row maximum first changes nothing mathematically (the factor
    :math:`e^{-m}` cancels between numerator and denominator) but keeps every exponent
    at most 0, so large logits never overflow. ``temperature`` :math:`T > 1` flattens
    the distribution towards uniform; :math:`T < 1` sharpens it towards one-hot.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, not {temperature}")
    z = np.asarray(z) / temperature
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log(softmax(z))`` as ``z - logsumexp(z)``: finite even where softmax rounds to 0."""
    z = np.asarray(z)
    return z - logsumexp(z, axis=axis, keepdims=True)


def one_hot(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Integer labels ``(N,)`` as a float ``(N, n_classes)`` matrix of 0s and a 1 per row."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class indices, got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    out = np.zeros((y.size, n_classes))
    out[np.arange(y.size), y] = 1.0
    return out


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    r"""Mean cross-entropy :math:`-\frac1N \sum_i \log P(y_i \mid x_i)` from logits.

    Taking logits (not probabilities) lets the loss use :func:`log_softmax`, so a
    confidently wrong prediction costs a large finite number instead of ``log(0) = -inf``.
    This is what Keras does with ``from_logits=True``.
    """
    logits = np.asarray(logits)
    y = np.asarray(y)
    return float(-np.mean(log_softmax(logits)[np.arange(len(y)), y]))


# ----------------------------------------------------------------------------------------
# Softmax regression
# ----------------------------------------------------------------------------------------


def softmax_regression_loss_and_grads(
    W: np.ndarray, b: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float = 0.0
) -> tuple[float, np.ndarray, np.ndarray]:
    r"""Loss and gradients of softmax regression on a batch, all at once.

    Model: :math:`P(y=k \mid x) = e^{w_k^\top x + b_k} / \sum_j e^{w_j^\top x + b_j}`,
    i.e. ``softmax(X @ W + b)`` with ``W`` of shape ``(d, K)``. Loss: the mean
    cross-entropy plus ``l2 / 2 * ||W||^2``. Gradient: with :math:`P` the predicted
    probabilities and :math:`Y` the one-hot labels,
    :math:`\partial L / \partial W = X^\top (P - Y) / N + \lambda W` and
    :math:`\partial L / \partial b = \sum_i (P_i - Y_i) / N`. The "prediction minus
    truth" form is why softmax and cross-entropy are always used together.
    """
    X = np.asarray(X)
    n = X.shape[0]
    logits = X @ W + b
    loss = cross_entropy(logits, y) + 0.5 * l2 * float(np.sum(W * W))
    delta = softmax(logits)
    delta[np.arange(n), y] -= 1.0
    delta /= n
    return loss, X.T @ delta + l2 * W, delta.sum(axis=0)


@dataclass
class SoftmaxRegression:
    """Weights ``W`` ``(d, K)``, biases ``b`` ``(K,)`` and the loss curve of a training run."""

    W: np.ndarray
    b: np.ndarray
    history: dict[str, list[float]] = field(default_factory=lambda: {"loss": []})

    def logits(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X) @ self.W + self.b

    def predict_proba(self, X: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        return softmax(self.logits(X), temperature=temperature)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(X), axis=1)

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(X) == np.asarray(y)))


def train_softmax_regression(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    learning_rate: float = 0.5,
    epochs: int = 50,
    batch_size: int = 32,
    l2: float = 0.0,
    seed: int = 0,
) -> SoftmaxRegression:
    """Fit softmax regression with plain mini-batch SGD; return a :class:`SoftmaxRegression`.

    ``history["loss"]`` holds each epoch's mean training loss (including the L2 term).

    Weights start at zero: the loss is convex, so there is no symmetry to break and the
    result depends only on the data, the seed (the shuffling order) and the knobs. Each
    epoch visits every example once in a fresh random order.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be (N, d) and y (N,), got {X.shape} and {y.shape}")
    rng = np.random.default_rng(seed)
    model = SoftmaxRegression(np.zeros((X.shape[1], n_classes)), np.zeros(n_classes))
    for _ in range(epochs):
        order = rng.permutation(len(X))
        total = 0.0
        for start in range(0, len(X), batch_size):
            idx = order[start : start + batch_size]
            loss, dW, db = softmax_regression_loss_and_grads(model.W, model.b, X[idx], y[idx], l2)
            model.W -= learning_rate * dW
            model.b -= learning_rate * db
            total += loss * len(idx)
        model.history["loss"].append(total / len(X))
    return model


# ----------------------------------------------------------------------------------------
# Numerical gradient check
# ----------------------------------------------------------------------------------------


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    r"""Central-difference estimate of ``d f() / d x``, perturbing ``x`` in place.

    :math:`(f(x + \epsilon e_i) - f(x - \epsilon e_i)) / 2\epsilon` has error
    :math:`O(\epsilon^2)`, against :math:`O(\epsilon)` for the one-sided difference.
    ``f`` takes no arguments and reads ``x`` (so one function can check ``W``, then
    ``b``); ``x`` must be float64, or rounding swamps the difference. ``x`` is restored
    exactly after each probe.
    """
    if x.dtype != np.float64:
        raise TypeError(f"check gradients in float64; got {x.dtype}")
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("x must be contiguous so it can be perturbed in place")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / (||a|| + ||b||)``: 0 for equal arrays, 1 for opposite ones, scale-free.

    An absolute difference of 1e-7 means nothing without the size of the gradient; this
    ratio does. Below about 1e-7 in float64 the analytic gradient is right; a wrong term
    usually gives 1e-2 or more.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


# ----------------------------------------------------------------------------------------
# Convolution: shapes, padding, forward, backward
# ----------------------------------------------------------------------------------------


def _pair(v: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(pair) != 2 or any(int(p) < 1 for p in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them, not {v!r}")
    return int(pair[0]), int(pair[1])


def _check_padding(padding: str) -> str:
    padding = padding.lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same' (as in Keras), not {padding!r}")
    return padding


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: str | int = "valid") -> int:
    r"""Output length along one axis: :math:`\lfloor (n + p_{total} - k) / s \rfloor + 1`.

    ``padding`` is ``"valid"`` (:math:`p = 0`), ``"same"`` (Keras: the output has
    :math:`\lceil n / s \rceil` positions whatever the kernel), or an int :math:`p` of
    zeros added on *each* side (the textbook formula with :math:`p_{total} = 2p`).
    Pooling uses the same formula with the pool size as ``kernel``.
    """
    if isinstance(padding, str):
        if _check_padding(padding) == "same":
            return math.ceil(n / stride)
        total = 0
    else:
        total = 2 * int(padding)
    out = (n + total - kernel) // stride + 1
    if out < 1:
        raise ValueError(
            f"a kernel of {kernel} does not fit an input of {n} with padding {padding!r}"
        )
    return out


def same_padding(n: int, kernel: int, stride: int = 1) -> tuple[int, int]:
    """Zeros before and after along one axis for TensorFlow's ``"same"`` padding.

    The output has ``ceil(n / stride)`` positions, which need ``(out - 1) * stride +
    kernel`` input positions; the missing ones are padded, half before and the odd one
    after. (With stride > 1 this can be fewer than ``kernel - 1`` in total, and differs
    from PyTorch's symmetric ``padding=k // 2``.)
    """
    out = math.ceil(n / stride)
    total = max((out - 1) * stride + kernel - n, 0)
    return total // 2, total - total // 2


def _pad(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], padding: str, value=0.0):
    if _check_padding(padding) == "valid":
        return x
    (top, bottom), (left, right) = (
        same_padding(x.shape[1], kernel[0], strides[0]),
        same_padding(x.shape[2], kernel[1], strides[1]),
    )
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _windows(xp: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int]) -> np.ndarray:
    """View of every window: ``(N, out_h, out_w, C, kh, kw)``, no copy."""
    if xp.shape[1] < kernel[0] or xp.shape[2] < kernel[1]:
        raise ValueError(f"a {kernel} window does not fit an input of {xp.shape[1:3]}")
    view = sliding_window_view(xp, kernel, axis=(1, 2))
    return view[:, :: strides[0], :: strides[1]]


def _check_nhwc(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(
            f"expected a batch of images (N, H, W, C), got shape {x.shape}; "
            "add a batch axis with x[None] or a channel axis with x[..., None]"
        )
    return x


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None = None,
    strides: int | Sequence[int] = 1,
    padding: str = "valid",
) -> np.ndarray:
    r"""Cross-correlate NHWC images with a ``(kh, kw, C, F)`` kernel, as ``keras.layers.Conv2D``.

    :math:`y[n, i, j, f] = b_f + \sum_{u, v, c} x_p[n, s i + u, s j + v, c]\, w[u, v, c, f]`
    where :math:`x_p` is the padded input. Deep learning calls this "convolution"; the
    mathematical convolution would flip the kernel (:math:`u \to k_h - 1 - u`), which
    changes nothing for a learned kernel. Implementation: a strided window view of the
    padded input (no copy), then one ``tensordot`` over ``(c, u, v)`` (this is im2col:
    NumPy copies the windows into a matrix and calls BLAS matrix multiplication).
    """
    x = _check_nhwc(x)
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or kernel.shape[2] != x.shape[3]:
        raise ValueError(
            f"kernel must be (kh, kw, {x.shape[3]}, filters) for {x.shape[3]} input channels, "
            f"got {kernel.shape}"
        )
    strides = _pair(strides, "strides")
    kh, kw = kernel.shape[:2]
    win = _windows(_pad(x, (kh, kw), strides, padding), (kh, kw), strides)
    out = np.tensordot(win, kernel, axes=([3, 4, 5], [2, 0, 1]))
    if bias is not None:
        out = out + bias
    return out


def conv2d_backward(
    dout: np.ndarray,
    x: np.ndarray,
    kernel: np.ndarray,
    strides: int | Sequence[int] = 1,
    padding: str = "valid",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients ``(dx, dkernel, dbias)`` of a loss, given ``dout`` = dLoss/d(conv2d output).

    From the forward formula, by the chain rule:

    - :math:`\partial L / \partial b_f = \sum_{n,i,j} \delta_{nijf}`;
    - :math:`\partial L / \partial w_{uvcf} = \sum_{n,i,j} x_p[n, si+u, sj+v, c]\, \delta_{nijf}`:
      a cross-correlation of the input with the output gradient;
    - :math:`\partial L / \partial x_p[n,si+u,sj+v,c] \mathrel{+}= \sum_f w_{uvcf} \delta_{nijf}`
      for every output position :math:`(i, j)`: each output scatters its gradient back
      over the window it read (a "full" convolution with the flipped kernel when the
      stride is 1); then the padding is cropped off.

    The scatter loops over the ``kh * kw`` kernel offsets, adding one strided slice each.
    """
    x = _check_nhwc(x)
    kernel = np.asarray(kernel)
    strides = _pair(strides, "strides")
    kh, kw = kernel.shape[:2]
    xp = _pad(x, (kh, kw), strides, padding)
    win = _windows(xp, (kh, kw), strides)
    n_out_h, n_out_w = win.shape[1:3]
    if dout.shape != (x.shape[0], n_out_h, n_out_w, kernel.shape[3]):
        raise ValueError(f"dout has shape {dout.shape}, the output of this conv2d does not")
    dbias = dout.sum(axis=(0, 1, 2))
    dkernel = np.tensordot(win, dout, axes=([0, 1, 2], [0, 1, 2])).transpose(1, 2, 0, 3)
    dcols = np.tensordot(dout, kernel, axes=([3], [3]))  # (N, out_h, out_w, kh, kw, C)
    dxp = np.zeros(xp.shape, dtype=np.result_type(dout, kernel))
    sh, sw = strides
    for u in range(kh):
        for v in range(kw):
            dxp[:, u : u + sh * n_out_h : sh, v : v + sw * n_out_w : sw] += dcols[:, :, :, u, v]
    top, left = (0, 0)
    if _check_padding(padding) == "same":
        top = same_padding(x.shape[1], kh, sh)[0]
        left = same_padding(x.shape[2], kw, sw)[0]
    dx = dxp[:, top : top + x.shape[1], left : left + x.shape[2]]
    return dx, dkernel, dbias


def conv_param_count(
    kernel_size: int | Sequence[int], in_channels: int, filters: int, bias=True
) -> int:
    """Weights of a Conv2D layer: ``kh * kw * C_in * F`` plus ``F`` biases.

    The count does not depend on the image size: the same kernel slides everywhere.
    That weight sharing is why a convolution needs far fewer parameters than a dense
    layer on the same image.
    """
    kh, kw = _pair(kernel_size, "kernel_size")
    return kh * kw * in_channels * filters + (filters if bias else 0)


def receptive_field(layers: Sequence[tuple[int, int]]) -> int:
    r"""Input pixels (along one axis) that one output of a stack of layers can see.

    ``layers`` is a list of ``(kernel, stride)`` pairs, first layer first (a pooling
    layer is one too). Each layer widens the field by :math:`(k_l - 1)` times the
    distance in input pixels between neighbouring positions of its input, the
    product of all earlier strides: :math:`r = 1 + \sum_l (k_l - 1) \prod_{i<l} s_i`.
    Two 3x3 convolutions see 5x5; add a 2x2 pooling and a third 3x3 and they see 10x10.
    """
    r, jump = 1, 1
    for kernel, stride in layers:
        if kernel < 1 or stride < 1:
            raise ValueError(f"kernel and stride must be positive, got ({kernel}, {stride})")
        r += (kernel - 1) * jump
        jump *= stride
    return r


# ----------------------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------------------


def pool2d(
    x: np.ndarray,
    pool_size: int | Sequence[int] = 2,
    strides: int | Sequence[int] | None = None,
    padding: str = "valid",
    mode: str = "max",
) -> np.ndarray:
    r"""Max or average pooling of NHWC images, as Keras ``MaxPooling2D``/``AveragePooling2D``.

    Each channel is pooled on its own over a window :math:`R_{ij}` of ``pool_size``
    pixels: max pooling is :math:`y[n,i,j,c] = \max_{(u,v) \in R_{ij}} x[n,u,v,c]`, the
    maximum over the window (not a maximum of sums); average pooling is
    :math:`\frac{1}{|R_{ij}|} \sum_{(u,v) \in R_{ij}} x[n,u,v,c]`. ``strides`` default to
    ``pool_size`` (non-overlapping windows), as in Keras. With ``"same"`` padding the
    padded cells never count: they are :math:`-\infty` for the max, and the average
    divides by the number of real pixels in the window, which is what TensorFlow does.
    """
    x = _check_nhwc(x)
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', not {mode!r}")
    pool = _pair(pool_size, "pool_size")
    strides = pool if strides is None else _pair(strides, "strides")
    if mode == "max":
        fill = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
        return _windows(_pad(x, pool, strides, padding, fill), pool, strides).max(axis=(4, 5))
    x = x.astype(np.result_type(x.dtype, np.float32), copy=False)
    sums = _windows(_pad(x, pool, strides, padding), pool, strides).sum(axis=(4, 5))
    ones = np.ones((1, x.shape[1], x.shape[2], 1), dtype=x.dtype)
    counts = _windows(_pad(ones, pool, strides, padding), pool, strides).sum(axis=(4, 5))
    return sums / counts


def max_pool2d(x, pool_size=2, strides=None, padding="valid") -> np.ndarray:
    """:func:`pool2d` with ``mode="max"``."""
    return pool2d(x, pool_size, strides, padding, mode="max")


def avg_pool2d(x, pool_size=2, strides=None, padding="valid") -> np.ndarray:
    """:func:`pool2d` with ``mode="avg"``."""
    return pool2d(x, pool_size, strides, padding, mode="avg")
