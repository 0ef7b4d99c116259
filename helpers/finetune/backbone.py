"""A backbone and its model card: load, check; ImageNet weights, offline too; and the
fine-tuned model saved with its own card.

The card (``helpers.cards``) says what the backbone expects: input size, channels, and
how raw 0..255 pixels are scaled. :func:`load_backbone` checks it against the data and
against the model it describes, and refuses a mismatch naming each field that differs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from helpers import devices
from helpers.cards import (
    CARD_FIELDS,
    MODEL_FILE,
    PREPROCESSING,
    BackboneError,
    CardMismatch,
    check_card,
    check_fields,
    check_schema,
    read_card,
    write_card,
)
from helpers.models import (
    ModelError,
    all_layers,
    build_backbone,
    dtype_policies,
    with_dtype_policy,
    with_softmax,
)
from helpers.predict import save_model
from helpers.quiet import keras

IMAGENET_PREPROCESSING = {"MobileNetV2": "symmetric", "EfficientNetV2B0": "raw"}


class WeightsUnavailable(BackboneError):
    """Pretrained weights are neither cached nor downloadable; names the file to copy."""


@dataclass
class Backbone:
    """A feature extractor, the model card that describes it, and where it came from.

    ``features`` keeps the pooled features already computed, by image content
    (``helpers.finetune.features_of_each``): nothing trains ``model`` itself (every
    method trains a clone), so an image's features never change, and the probes that
    notebook 08 fits on the same images (the learning curve, the review's folds) each
    pay for them once."""

    model: keras.Model
    card: dict
    source: str
    features: dict = field(default_factory=dict, repr=False, compare=False)

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
    / ``.h5`` file with a ``card.json`` next to it (a weights file is loaded into the
    backbone the card's ``architecture`` names, ``helpers.models.build_backbone``).
    ``expected`` holds ``input_size``, ``channels`` and ``preprocessing`` as the data
    will be fed; a field that is None is taken from the card. The card is also checked
    against the model it describes.
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
            shape = (*card["input_size"], card["channels"])
            try:
                model = build_backbone(card["architecture"], shape)
            except ModelError as exc:
                raise BackboneError(
                    f"{model_path.name} holds weights only, and its card's architecture "
                    f"cannot be rebuilt: {exc}"
                ) from exc
            model.load_weights(model_path)
        else:
            raise BackboneError(f"{model_path.name}: give a .keras, .weights.h5 or .h5 file")
        check_card(card, model_input(model), what=f"the model in {model_path.name}")
        backbone = Backbone(model, card, str(model_path))
    check_fields(
        backbone.card, f"the model card of {backbone.source}", required=CARD_FIELDS,
        remedy="rewrite it with notebook 07",
    )  # fmt: skip
    if backbone.card["preprocessing"] not in PREPROCESSING:
        raise CardMismatch(
            f"unknown preprocessing {backbone.card['preprocessing']!r}; "
            f"known: {list(PREPROCESSING)}"
        )
    if expected:
        check_card(backbone.card, expected)
    return backbone


def save_finetuned(
    model: keras.Model, backbone: Backbone, folder, *, class_names, fine_tuned_on: dict
) -> Path:
    """Save ``model`` (logits out) as ``model.keras`` for users: it takes raw images of
    any size (resized to the backbone's size inside) and ends in a softmax
    (``helpers.models.with_softmax``); with its classes side-car and a card (the
    "finetuned" schema) saying what it was fine-tuned from and on."""
    folder = Path(folder)
    h, w, c = backbone.input_shape
    card = {
        "name": "fine-tuned classifier",
        "backbone": backbone.card.get("name"),
        "backbone_source": backbone.source,
        "backbone_card": {
            k: backbone.card.get(k) for k in ("source_data", "architecture", *CARD_FIELDS)
        },
        "classes": list(class_names),
        "fine_tuned_on": fine_tuned_on,
        "input_size": [int(h), int(w)],
        "channels": int(c),
        "input": f"raw images of any size with {c} channel(s), 0..255; resized to {h}x{w} inside",
        "output": "class probabilities (softmax), in the order of classes",
        "versions": devices.versions(),
    }
    check_schema(card, "finetuned", "the card to save")
    inputs = keras.Input((None, None, c), name="image")
    x = keras.layers.Resizing(h, w, name="resize")(inputs)
    export = with_softmax(keras.Model(inputs, model(x, training=False)), name="finetuned")
    path = save_model(export, folder / "model.keras", class_names)  # + the classes side car
    write_card(folder, card, "finetuned")
    return path
