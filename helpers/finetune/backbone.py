"""A backbone and its model card: build, save, load, check; ImageNet weights, offline too.

The card (``helpers.cards``) says what the backbone expects: input size, channels, and
how raw 0..255 pixels are scaled. :func:`load_backbone` checks it against the data and
against the model it describes, and refuses a mismatch naming each field that differs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from helpers.cards import (
    CARD_FIELDS,
    MODEL_FILE,
    PREPROCESSING,
    BackboneError,
    CardMismatch,
    check_card,
    read_card,
    require_fields,
    save_with_card,
)
from helpers.models import all_layers, dtype_policies, with_dtype_policy
from helpers.quiet import keras

IMAGENET_PREPROCESSING = {"MobileNetV2": "symmetric", "EfficientNetV2B0": "raw"}


class WeightsUnavailable(BackboneError):
    """Pretrained weights are neither cached nor downloadable; names the file to copy."""


def small_resnet(
    input_shape=(32, 32, 3), widths=(32, 64, 128), *, bn_momentum: float = 0.9, name="backbone"
) -> keras.Model:
    """A small residual backbone: a stem, then one block per width (two 3x3 conv-BN-ReLU
    with a skip connection, then 2x2 max pooling but after the last), global average pooling.

    Layers are named ``block<k>_...`` so that "unfreeze the top blocks" can pick them by
    name. Inputs are already scaled (the classifier scales raw pixels first).
    ``bn_momentum`` 0.9: with a few dozen training images a run is a few hundred steps,
    and Keras's default 0.99 leaves the moving statistics still near their initial
    values after that many (then evaluation sees garbage).
    """
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(widths[0], 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    for k, width in enumerate(widths, start=1):
        skip = x
        if skip.shape[-1] != width:
            skip = layers.Conv2D(width, 1, use_bias=False, name=f"block{k}_proj")(skip)
        for j in (1, 2):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{k}_conv{j}")(x)
            x = layers.BatchNormalization(momentum=bn_momentum, name=f"block{k}_bn{j}")(x)
            if j == 1:
                x = layers.Activation("relu", name=f"block{k}_relu{j}")(x)
        x = layers.Activation("relu", name=f"block{k}_out")(
            layers.Add(name=f"block{k}_add")([x, skip])
        )
        if k < len(widths):
            x = layers.MaxPooling2D(name=f"block{k}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, x, name=name)


@dataclass
class Backbone:
    """A feature extractor, the model card that describes it, and where it came from."""

    model: keras.Model
    card: dict
    source: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        h, w = self.card["input_size"]
        return int(h), int(w), int(self.card["channels"])


def model_input(model: keras.Model) -> dict:
    """The input size and channels a Keras model takes, in the card's terms.

    A backbone that takes any size and resizes inside (``helpers.models`` builds them
    so) is described by its ``resize`` layer's target size.
    """
    shape = tuple(model.input_shape)
    size = [shape[1], shape[2]]
    if None in size:
        resize = next((la for la in all_layers(model) if la.name == "resize"), None)
        size = [int(resize.height), int(resize.width)] if resize is not None else None
    return {"input_size": size, "channels": shape[3]}


def save_backbone(backbone: Backbone, folder: str | os.PathLike) -> Path:
    """Write ``backbone.keras`` and its card (``card.md``, ``card.json``) into ``folder``,
    the model in float32 whatever it trained in (see ``helpers.models.with_dtype_policy``)."""
    return save_with_card(with_dtype_policy(backbone.model, "float32"), folder, backbone.card)


def _keras_models_dir() -> Path:
    """Where ``keras.utils.get_file`` caches weights: ``$KERAS_HOME/models`` (Keras reads
    ``KERAS_HOME`` when it is imported), ``~/.keras/models`` by default, ``/tmp/.keras``
    when that is not writable, exactly as ``get_file`` chooses."""
    from keras.src.backend import config

    home = os.path.expanduser(config.keras_home())
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return Path(home) / "models"


def imagenet_backbone(arch: str = "MobileNetV2", input_shape=(96, 96, 3), **kwargs) -> Backbone:
    """An ImageNet-pretrained ``keras.applications`` backbone without its top, pooled.

    Keras downloads the weights once into ``$KERAS_HOME/models``. Offline and not
    cached, its download fails within seconds ("URL fetch failure"); this turns that
    into :class:`WeightsUnavailable` with the exact file to copy there from a machine
    that has it.
    """
    if arch not in IMAGENET_PREPROCESSING:
        raise BackboneError(f"arch must be one of {sorted(IMAGENET_PREPROCESSING)}, not {arch!r}")
    build = getattr(keras.applications, arch)
    try:
        model = build(
            include_top=False, weights="imagenet", input_shape=tuple(input_shape),
            pooling="avg", **kwargs,
        )  # fmt: skip
    except Exception as exc:  # get_file raises a bare Exception on a failed download
        found = re.search(r"URL fetch failure on (\S+?):? ", str(exc))
        if not found:
            raise
        url = found.group(1)
        target = _keras_models_dir() / url.rsplit("/", 1)[-1]
        raise WeightsUnavailable(
            f"cannot download the ImageNet weights of {arch} (offline?): {exc}. Copy the "
            f"file {target} from a machine that has it (download {url} there, or run "
            f"keras.applications.{arch}(weights='imagenet', include_top=False) once), or "
            "use the backbone notebook 07 pretrains (BACKBONE=None)."
        ) from exc
    card = {
        "name": f"{arch} (ImageNet)",
        "source_data": "ImageNet-1k (keras.applications weights)",
        "input_size": list(input_shape[:2]),
        "channels": int(input_shape[2]),
        "preprocessing": IMAGENET_PREPROCESSING[arch],
        "architecture": arch,
    }
    return Backbone(model, card, f"keras.applications.{arch}")


def load_backbone(spec, *, expected: dict | None = None, **imagenet_kwargs) -> Backbone:
    """A :class:`Backbone` from ``spec``, its card checked against ``expected``.

    ``spec`` is a folder holding ``backbone.keras`` and ``card.json`` (notebook 07's), the
    string ``"imagenet"`` (see :func:`imagenet_backbone`), or a ``.keras`` / ``.weights.h5``
    / ``.h5`` file with a ``card.json`` next to it (weights files need the card's
    ``architecture`` to rebuild the model). ``expected`` holds ``input_size``,
    ``channels`` and ``preprocessing`` as the data will be fed; a field that is None
    is taken from the card. The card is also checked against the model it describes.
    """
    if isinstance(spec, Backbone):
        backbone = spec
    elif isinstance(spec, str) and spec.lower() == "imagenet":
        shape = imagenet_kwargs.pop("input_shape", None)
        if shape is None and expected and expected.get("input_size"):
            shape = (*expected["input_size"], expected.get("channels") or 3)
        backbone = imagenet_backbone(input_shape=shape or (96, 96, 3), **imagenet_kwargs)
    else:
        path = Path(spec)
        folder = path if path.is_dir() else path.parent
        if not path.exists():
            raise BackboneError(f"no backbone at {path.resolve()}; give notebook 07's folder")
        card = read_card(folder)
        model_path = folder / MODEL_FILE if path.is_dir() else path
        if model_path.name.endswith(".keras"):
            model = keras.models.load_model(model_path, compile=False)
            policy = keras.mixed_precision.global_policy().name
            if dtype_policies(model) != {policy}:  # this machine's precision, not the saver's
                model = with_dtype_policy(model, policy)
        elif model_path.name.endswith(".h5"):
            arch = card.get("architecture", "")
            if arch != "small_resnet":
                raise BackboneError(
                    f"{model_path.name} holds weights only; its card must name the "
                    f"architecture to rebuild (small_resnet), not {arch!r}"
                )
            shape = (*card["input_size"], card["channels"])
            model = small_resnet(shape, tuple(card["widths"]))
            model.load_weights(model_path)
        else:
            raise BackboneError(f"{model_path.name}: give a .keras, .weights.h5 or .h5 file")
        check_card(card, model_input(model), what=f"the model in {model_path.name}")
        backbone = Backbone(model, card, str(model_path))
    require_fields(backbone.card, CARD_FIELDS, f"the model card of {backbone.source}")
    if backbone.card["preprocessing"] not in PREPROCESSING:
        raise CardMismatch(
            f"unknown preprocessing {backbone.card['preprocessing']!r}; "
            f"known: {list(PREPROCESSING)}"
        )
    if expected:
        check_card(backbone.card, expected)
    return backbone
