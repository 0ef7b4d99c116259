"""helpers.scratch agrees with Keras/TensorFlow and with numerical gradients.

Shapes cover the cases that break hand-written convolutions: odd sizes, a batch of one,
one channel and several, rectangular kernels and strides, 'valid' and 'same' padding.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import scratch as S

RNG = np.random.default_rng(0)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# (batch, height, width, in_channels, filters, kernel, strides, padding)
CONV_CASES = [
    (1, 7, 9, 1, 1, 3, 1, "valid"),
    (1, 7, 9, 1, 2, 3, 1, "same"),
    (2, 8, 8, 3, 4, 3, 2, "same"),
    (3, 9, 7, 3, 5, 3, 2, "valid"),
    (1, 5, 5, 2, 3, 5, 1, "valid"),
    (2, 6, 7, 4, 2, 4, 3, "same"),
    (1, 11, 6, 3, 3, (2, 3), (2, 1), "same"),
    (2, 10, 10, 1, 6, (3, 1), (1, 2), "valid"),
    (1, 1, 1, 2, 3, 3, 1, "same"),
]
CONV_IDS = [f"n{c[0]}-{c[1]}x{c[2]}x{c[3]}-f{c[4]}-k{c[5]}-s{c[6]}-{c[7]}" for c in CONV_CASES]

# (batch, height, width, channels, pool_size, strides, padding)
POOL_CASES = [
    (1, 4, 4, 1, 2, None, "valid"),
    (1, 5, 7, 1, 2, None, "valid"),
    (2, 5, 7, 3, 2, None, "same"),
    (1, 9, 9, 2, 3, 2, "valid"),
    (3, 9, 8, 3, 3, 2, "same"),
    (1, 6, 7, 4, (2, 3), (1, 2), "same"),
    (2, 7, 5, 1, (3, 2), 1, "valid"),
    (1, 1, 1, 2, 2, None, "same"),
]
POOL_IDS = [f"n{c[0]}-{c[1]}x{c[2]}x{c[3]}-p{c[4]}-s{c[5]}-{c[6]}" for c in POOL_CASES]


# --- softmax and friends ---------------------------------------------------------------


def test_softmax_is_a_distribution_and_matches_keras():
    z = RNG.normal(size=(5, 7)).astype(np.float32) * 3
    p = S.softmax(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p, keras.ops.softmax(z).numpy(), atol=1e-6)
    np.testing.assert_allclose(S.log_softmax(z), keras.ops.log_softmax(z).numpy(), atol=1e-5)
    np.testing.assert_allclose(S.logsumexp(z), keras.ops.logsumexp(z, axis=-1).numpy(), atol=1e-5)


def test_softmax_survives_logits_that_overflow_the_naive_formula():
    z = np.array([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -1002.0]])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        naive = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert np.isnan(naive).any()
    p = S.softmax(z)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p[0], p[1])  # softmax ignores a constant shift
    np.testing.assert_allclose(S.log_softmax(z), np.log(p))
    tail = np.log(1 + np.exp(-1) + np.exp(-2))
    np.testing.assert_allclose(S.logsumexp(z), [1000 + tail, -1000 + tail])


def test_temperature_flattens_or_sharpens_but_keeps_the_ranking():
    z = np.array([2.0, 1.0, 0.1])
    cold, warm, hot = (S.softmax(z, temperature=t) for t in (0.5, 1.0, 5.0))
    assert cold.max() > warm.max() > hot.max() > 1 / 3
    assert np.argmax(cold) == np.argmax(warm) == np.argmax(hot) == 0
    with pytest.raises(ValueError, match="temperature"):
        S.softmax(z, temperature=0)


def test_cross_entropy_matches_keras_and_stays_finite_when_confidently_wrong():
    logits = RNG.normal(size=(6, 4))
    y = np.array([0, 1, 2, 3, 0, 1])
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    assert S.cross_entropy(logits, y) == pytest.approx(float(expected), rel=1e-5)
    assert S.cross_entropy(np.array([[0.0, 800.0]]), np.array([0])) == pytest.approx(800.0)


def test_one_hot_rejects_out_of_range_labels():
    np.testing.assert_array_equal(S.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="0..2"):
        S.one_hot(np.array([3]), 3)


# --- softmax regression ----------------------------------------------------------------


@pytest.mark.parametrize("n, d, k, l2", [(1, 3, 2, 0.0), (7, 5, 4, 0.0), (20, 9, 10, 0.1)])
def test_softmax_regression_gradients_pass_the_numerical_check(n, d, k, l2):
    X, y = RNG.normal(size=(n, d)), RNG.integers(0, k, size=n)
    W, b = RNG.normal(size=(d, k)) * 0.1, RNG.normal(size=k) * 0.1

    def loss():
        return S.softmax_regression_loss_and_grads(W, b, X, y, l2)[0]

    _, dW, db = S.softmax_regression_loss_and_grads(W, b, X, y, l2)
    assert S.relative_error(dW, S.numerical_gradient(loss, W)) < 1e-6
    assert S.relative_error(db, S.numerical_gradient(loss, b)) < 1e-6


def test_softmax_regression_gradients_match_tensorflow():
    X, y = RNG.normal(size=(8, 5)), RNG.integers(0, 3, size=8)
    W, b = RNG.normal(size=(5, 3)), RNG.normal(size=3)
    loss, dW, db = S.softmax_regression_loss_and_grads(W, b, X, y)
    Wt, bt = tf.Variable(W), tf.Variable(b)
    with tf.GradientTape() as tape:
        logits = tf.constant(X) @ Wt + bt
        tf_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    gW, gb = tape.gradient(tf_loss, [Wt, bt])
    assert loss == pytest.approx(float(tf_loss), rel=1e-12)
    np.testing.assert_allclose(dW, gW.numpy(), atol=1e-12)
    np.testing.assert_allclose(db, gb.numpy(), atol=1e-12)


def test_sgd_trainer_learns_separable_blobs_and_repeats_with_the_seed():
    centers = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    y = np.repeat(np.arange(3), 30)
    X = centers[y] + RNG.normal(scale=0.5, size=(90, 2))
    a = S.train_softmax_regression(X, y, 3, learning_rate=0.5, epochs=20, batch_size=8, seed=1)
    b = S.train_softmax_regression(X, y, 3, learning_rate=0.5, epochs=20, batch_size=8, seed=1)
    assert a.accuracy(X, y) == 1.0
    assert a.history["loss"][-1] < a.history["loss"][0]
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_allclose(a.predict_proba(X).sum(axis=1), 1.0)


def test_numerical_gradient_matches_a_known_derivative_and_restores_x():
    x = np.array([1.0, -2.0, 3.0])
    before = x.copy()
    grad = S.numerical_gradient(lambda: float(np.sum(x**3)), x)
    np.testing.assert_allclose(grad, 3 * before**2, rtol=1e-8)
    np.testing.assert_array_equal(x, before)
    with pytest.raises(ValueError, match="contiguous"):
        S.numerical_gradient(lambda: 0.0, np.ones((3, 4))[:, :2])


def test_numerical_gradient_insists_on_float64():
    x = np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        S.numerical_gradient(lambda: float(x.sum()), x)


def test_relative_error_is_scale_free():
    a = np.array([1.0, 2.0, 3.0])
    assert S.relative_error(a, a) == 0.0
    assert S.relative_error(a, -a) == pytest.approx(1.0)
    assert S.relative_error(1e-9 * a, 1e-9 * a * (1 + 1e-8)) < 1e-7
    assert S.relative_error(np.zeros(2), np.zeros(2)) == 0.0


# --- convolution -----------------------------------------------------------------------


def keras_conv(x, filters, kernel, strides, padding):
    layer = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding)
    layer.build(x.shape)
    layer.bias.assign(RNG.normal(size=filters).astype(np.float32))
    kernel_value, bias = (v.numpy() for v in layer.weights)
    return layer(x).numpy(), kernel_value, bias


@pytest.mark.parametrize("n, h, w, c, f, k, s, padding", CONV_CASES, ids=CONV_IDS)
def test_conv2d_equals_keras_conv2d(n, h, w, c, f, k, s, padding):
    x = RNG.normal(size=(n, h, w, c)).astype(np.float32)
    expected, kernel, bias = keras_conv(x, f, k, s, padding)
    got = S.conv2d(x, kernel, bias, strides=s, padding=padding)
    assert got.shape == expected.shape
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-5
    kh, kw = pair(k)
    sh, sw = pair(s)
    assert got.shape[1:3] == (
        S.conv_output_size(h, kh, sh, padding),
        S.conv_output_size(w, kw, sw, padding),
    )


@pytest.mark.parametrize("n, h, w, c, f, k, s, padding", CONV_CASES, ids=CONV_IDS)
def test_conv2d_gradients_pass_the_numerical_check_and_match_tensorflow(
    n, h, w, c, f, k, s, padding
):
    x = RNG.normal(size=(n, h, w, c))
    kernel = RNG.normal(size=(*pair(k), c, f))
    bias = RNG.normal(size=f)
    weights = RNG.normal(size=S.conv2d(x, kernel, bias, s, padding).shape)

    def loss():
        return float(np.sum(S.conv2d(x, kernel, bias, s, padding) * weights))

    dx, dk, db = S.conv2d_backward(weights, x, kernel, s, padding)
    assert dx.shape == x.shape and dk.shape == kernel.shape and db.shape == bias.shape
    for analytic, param in ((dx, x), (dk, kernel), (db, bias)):
        assert S.relative_error(analytic, S.numerical_gradient(loss, param)) < 1e-6

    xt, kt = tf.Variable(x), tf.Variable(kernel)
    with tf.GradientTape() as tape:
        out = tf.nn.conv2d(xt, kt, strides=pair(s), padding=padding.upper())
        tf_loss = tf.reduce_sum(out * weights)
    gx, gk = tape.gradient(tf_loss, [xt, kt])
    np.testing.assert_allclose(dx, gx.numpy(), atol=1e-10)
    np.testing.assert_allclose(dk, gk.numpy(), atol=1e-10)


def test_conv2d_is_cross_correlation_not_flipped_convolution():
    from scipy.signal import convolve2d, correlate2d

    image = RNG.normal(size=(6, 5))
    k = RNG.normal(size=(3, 2))
    got = S.conv2d(image[None, :, :, None], k[:, :, None, None])[0, :, :, 0]
    np.testing.assert_allclose(got, correlate2d(image, k, mode="valid"))
    assert not np.allclose(got, convolve2d(image, k, mode="valid"))
    np.testing.assert_allclose(got, convolve2d(image, k[::-1, ::-1], mode="valid"))


def test_conv2d_explains_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        S.conv2d(np.zeros((5, 5)), np.zeros((3, 3, 1, 1)))
    with pytest.raises(ValueError, match="input channels"):
        S.conv2d(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 1, 1)))
    with pytest.raises(ValueError, match="does not fit"):
        S.conv2d(np.zeros((1, 2, 2, 1)), np.zeros((3, 3, 1, 1)))
    with pytest.raises(ValueError, match="padding"):
        S.conv2d(np.zeros((1, 5, 5, 1)), np.zeros((3, 3, 1, 1)), padding="full")


@pytest.mark.parametrize(
    "n, k, s, padding, expected",
    [
        (28, 3, 1, "valid", 26),
        (28, 3, 1, "same", 28),
        (28, 3, 2, "same", 14),
        (7, 3, 2, "valid", 3),
        (7, 3, 2, "same", 4),
        (32, 5, 1, 2, 32),
        (5, 5, 1, "valid", 1),
    ],
)
def test_output_size_formula(n, k, s, padding, expected):
    assert S.conv_output_size(n, k, s, padding) == expected


def test_same_padding_puts_the_odd_pixel_after():
    assert S.same_padding(5, 3, 1) == (1, 1)
    assert S.same_padding(6, 4, 1) == (1, 2)
    assert S.same_padding(8, 3, 2) == (0, 1)
    assert S.same_padding(7, 1, 1) == (0, 0)


def test_conv_param_count_matches_keras():
    layer = keras.layers.Conv2D(32, (3, 5))
    layer.build((None, 17, 17, 3))
    assert S.conv_param_count((3, 5), 3, 32) == layer.count_params() == 3 * 5 * 3 * 32 + 32
    assert S.conv_param_count(3, 3, 32, bias=False) == 864


def test_receptive_field_of_stacked_layers():
    assert S.receptive_field([(3, 1)]) == 3
    assert S.receptive_field([(3, 1), (3, 1)]) == 5
    assert S.receptive_field([(3, 1), (3, 1), (2, 2), (3, 1)]) == 10
    assert S.receptive_field([(7, 2), (3, 2)]) == 11
    with pytest.raises(ValueError):
        S.receptive_field([(0, 1)])


def test_receptive_field_matches_the_gradient_footprint_in_keras():
    layers = [(3, 1), (3, 2), (3, 1)]
    x = tf.Variable(tf.zeros((1, 33, 33, 1)))
    with tf.GradientTape() as tape:
        h = x
        for k, s in layers:
            conv = keras.layers.Conv2D(1, k, strides=s, kernel_initializer="ones")
            h = conv(h)
        centre = h[0, h.shape[1] // 2, h.shape[2] // 2, 0]
    footprint = np.abs(tape.gradient(centre, x).numpy()[0, :, :, 0]) > 0
    assert footprint.any(axis=1).sum() == S.receptive_field(layers) == 9


# --- pooling ---------------------------------------------------------------------------


@pytest.mark.parametrize("n, h, w, c, p, s, padding", POOL_CASES, ids=POOL_IDS)
@pytest.mark.parametrize(
    "mode, layer",
    [("max", keras.layers.MaxPooling2D), ("avg", keras.layers.AveragePooling2D)],
    ids=["max", "avg"],
)
def test_pooling_equals_keras(n, h, w, c, p, s, padding, mode, layer):
    x = RNG.normal(size=(n, h, w, c)).astype(np.float32)
    expected = layer(p, strides=s, padding=padding)(x).numpy()
    got = S.pool2d(x, p, s, padding, mode)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-6


def test_max_pooling_is_the_max_over_the_window_not_a_max_of_sums():
    x = np.array([[1.0, 9.0], [5.0, 2.0]])[None, :, :, None]
    assert S.max_pool2d(x)[0, 0, 0, 0] == 9.0
    assert S.avg_pool2d(x)[0, 0, 0, 0] == pytest.approx(4.25)


def test_max_pooling_keeps_integer_images_integer():
    x = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    got = S.max_pool2d(x, 3, 2, "same")
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got[0, :, :, 0], [[10, 11], [14, 15]])


def test_pool2d_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        S.pool2d(np.zeros((1, 2, 2, 1)), mode="min")
