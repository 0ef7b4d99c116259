"""Per-batch steps: normalization (with statistics from the training split only) and
augmentation layers that run in the model or in ``tf.data``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from helpers.pipeline.options import LABEL_MODES, PipelineError
from helpers.quiet import keras, tf


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel mean and standard deviation of a training split, pixel values in [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    count: int

    def __post_init__(self):
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise PipelineError(f"need one positive std per channel mean: {self}")


def _normalizer(normalize, channels: int) -> Callable[[tf.Tensor], tf.Tensor]:
    if normalize is None or normalize == "none":
        return lambda x: x
    if normalize == "unit":
        return lambda x: x / 255.0
    if isinstance(normalize, ChannelStats):
        mean, std = normalize.mean, normalize.std
    elif isinstance(normalize, tuple | list) and len(normalize) == 2:
        mean, std = normalize
    else:
        raise PipelineError(
            f"normalize must be 'unit', 'none', ChannelStats or (mean, std), not {normalize!r}"
        )
    mean = np.broadcast_to(np.asarray(mean, np.float32), (channels,)).copy()
    std = np.broadcast_to(np.asarray(std, np.float32), (channels,)).copy()
    if (std <= 0).any():
        raise PipelineError(f"standard deviations must be positive, not {std}")
    return lambda x: (x / 255.0 - mean) / std


def model_step(*, num_classes, channels, augment, normalize, label_mode):
    """The per-batch step: float32, augmentation (if any), normalization, labels."""
    if label_mode not in LABEL_MODES:
        raise PipelineError(f"label_mode must be one of {LABEL_MODES}, not {label_mode!r}")
    scale = _normalizer(normalize, channels)

    def to_model(images, labels):
        x = tf.cast(images, tf.float32)
        if augment is not None:
            x = augment(x, training=True)
        y = tf.one_hot(labels, num_classes) if label_mode == "categorical" else labels
        return scale(x), y

    return to_model


def augmentation(
    *,
    flip: str | None = "horizontal",
    rotation: float = 0.05,
    zoom: float = 0.1,
    translation: float = 0.1,
    shift: int = 0,
    contrast: float = 0.2,
    brightness: float = 0.2,
    seed: int | None = None,
    name: str = "augmentation",
):
    """A Keras ``Sequential`` of random preprocessing layers, for pixel values 0..255: the
    course's one augmentation factory.

    The same object runs in a model (first layers; on the GPU when there is one, only
    while training) or in ``tf.data`` (``build_dataset(augment=...)``; on the CPU,
    overlapping the model's step). Set a factor to 0 (or ``flip=None``) to leave it out.
    ``translation`` moves by a fraction of the side through an affine transform;
    ``shift`` moves by whole pixels with a pad and a crop (:class:`RandomShift`), the
    cheaper choice on a CPU. The models the course trains use only a flip and a shift
    (:func:`helpers.models.augmentation`, airbench's recipe).
    """
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip(flip, seed=seed, name="flip"))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, fill_mode="reflect", seed=seed))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, fill_mode="reflect", seed=seed))
    if translation:
        layers.append(
            keras.layers.RandomTranslation(translation, translation, fill_mode="reflect", seed=seed)
        )
    if shift:
        layers.append(RandomShift(shift, seed=seed, name="shift"))
    if contrast:
        layers.append(keras.layers.RandomContrast(contrast, value_range=(0, 255), seed=seed))
    if brightness:
        layers.append(keras.layers.RandomBrightness(brightness, value_range=(0, 255), seed=seed))
    if not layers:
        raise PipelineError("every augmentation is switched off; pass augment=None instead")
    return keras.Sequential(layers, name=name)


@keras.saving.register_keras_serializable(package="course")
class RandomShift(keras.layers.Layer):
    """Shift each image by up to ``pixels`` in x and y, filling by reflection.

    airbench's "2-pixel translate": pad by reflection, then crop a random window of the
    original size. ``RandomTranslation`` does the same through an affine transform with
    interpolation, which costs more per pixel on a CPU than a pad and a crop.
    """

    def __init__(self, pixels: int = 2, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.pixels = int(pixels)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or not self.pixels:
            return x
        p = self.pixels
        shape = tf.shape(x)
        n, h, w = shape[0], shape[1], shape[2]
        padded = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")
        offsets = keras.random.randint((n, 2), 0, 2 * p + 1, seed=self.generator)
        offsets = tf.cast(offsets, tf.int32)
        rows = offsets[:, :1] + tf.range(h)[None, :]  # (n, h)
        cols = offsets[:, 1:] + tf.range(w)[None, :]  # (n, w)
        padded = tf.gather(padded, rows, axis=1, batch_dims=1)
        return tf.gather(padded, cols, axis=2, batch_dims=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pixels": self.pixels, "seed": self.seed}
