"""The layers every model of the course shares: the one preprocessing layer (raw pixels
in) and the one augmentation factory (active only while training)."""

from __future__ import annotations

import numpy as np

from helpers.cards import PREPROCESSING
from helpers.pipeline.augment import augmentation as pipeline_augmentation
from helpers.quiet import keras


class ModelError(ValueError):
    """A model request that cannot be built; the message says what to change."""


def input_shape3(input_shape) -> tuple[int, int, int]:
    """``input_shape`` as (height, width, channels), checked: 1 or 3 channels."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3 or shape[-1] not in (1, 3) or min(shape) < 1:
        raise ModelError(
            f"input_shape must be (height, width, channels) with 1 or 3 channels, not "
            f"{input_shape!r}"
        )
    return shape


# (scale, offset, layer name) of each of the cards' PREPROCESSING names that scales.
_SCALES = {"unit": (1.0 / 255.0, 0.0, "to_unit"), "symmetric": (1.0 / 127.5, -1.0, "to_symmetric")}


def preprocessing(
    input_shape=None, *, scale: str = "unit", mean=None, std=None, name: str = "preprocessing"
):
    """Raw 0..255 pixels -> model units: the layers a saved model needs to predict from
    decoded files.

    ``input_shape`` (when given) resizes to its height and width first. ``scale`` is a
    model card's ``preprocessing`` name (``helpers.cards.PREPROCESSING``): ``"unit"``
    (to [0, 1]), ``"symmetric"`` (to [-1, 1], keras.applications) or ``"raw"`` (as
    they are). ``mean``/``std`` (per channel, in [0, 1] pixel units, from the *training*
    split: ``helpers.pipeline.channel_stats``) add a ``Normalization`` layer after it.
    """
    if scale not in PREPROCESSING:
        raise ModelError(f"scale must be one of {list(PREPROCESSING)}, not {scale!r}")
    layers = []
    channels = None
    if input_shape is not None:
        h, w, channels = input_shape3(input_shape)
        layers.append(keras.layers.Resizing(h, w, name="resize"))
    if scale in _SCALES:
        factor, offset, layer_name = _SCALES[scale]
        layers.append(keras.layers.Rescaling(factor, offset, name=layer_name))
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise ModelError("give both mean and std for normalization, or neither")
        channels = channels or np.asarray(mean).size
        mean = np.broadcast_to(np.asarray(mean, np.float32), (channels,))
        std = np.broadcast_to(np.asarray(std, np.float32), (channels,))
        if (std <= 0).any():
            raise ModelError(f"standard deviations must be positive, not {std}")
        layers.append(keras.layers.Normalization(mean=mean, variance=std**2, name="normalize"))
    if not layers:  # "raw" at any size: the model scales its input itself
        layers.append(keras.layers.Identity(name="raw"))
    return keras.Sequential(layers, name=name)


def augmentation(
    *, flip: bool = True, translate: int = 2, seed: int | None = None, name: str = "augmentation"
):
    """airbench's augmentation, on raw pixels: a horizontal flip (leave it off where a
    mirror image changes the class: digits, text) and a shift by up to ``translate``
    pixels (reflect padding); active only while training.

    The preset of the one factory, :func:`helpers.pipeline.augmentation`, that the
    models the course trains use: notebook 06's CNNs, notebook 07's ResNet and notebook
    08's fine-tuned classifiers all augment through it.
    """
    if not flip and not translate:
        raise ModelError("every augmentation is off; pass augment=False instead")
    return pipeline_augmentation(
        flip="horizontal" if flip else None, rotation=0, zoom=0, translation=0,
        shift=translate, contrast=0, brightness=0, seed=seed, name=name,
    )  # fmt: skip
