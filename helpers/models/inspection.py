"""What a built model is made of: its backbone, input size, layers, dtype policies and
FLOPs; and a copy of it under another dtype policy."""

from __future__ import annotations

from helpers.models.layers import ModelError
from helpers.quiet import keras, tf


def backbone_of(model):
    """The nested ``backbone`` model of a model built here."""
    try:
        return model.get_layer("backbone")
    except ValueError as exc:
        raise ModelError(
            f"{model.name} has no layer named 'backbone'; build it with helpers.models"
        ) from exc


def input_shape_of(model) -> tuple[int, int, int]:
    """The (height, width, channels) a model was built for: its resize layer's target."""
    resize = backbone_of(model).get_layer("preprocessing").get_layer("resize")
    return (int(resize.height), int(resize.width), int(model.input_shape[-1]))


def softmax_layer(model):
    """The final softmax of ``model`` (a ``Softmax`` layer or a softmax ``Activation``),
    or None when it outputs scores (logits)."""
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return last
    if isinstance(last, keras.layers.Activation) and "softmax" in str(last.activation):
        return last
    return None


def outputs_logits(model) -> bool:
    """Whether ``model`` ends in the head ``with_head`` builds (its ``"logits"`` Dense, or
    their ``"logit_scale"``), directly or as its last nested model's output."""
    last = model.layers[-1]
    if isinstance(last, keras.Model):
        return outputs_logits(last)
    return last.name in ("logits", "logit_scale")


def as_probabilities(model):
    """``model`` as users get it: a classifier that outputs logits (:func:`outputs_logits`)
    with a softmax on top (``with_softmax``); any other model as it is, so that a
    feature extractor is never made to look like a classifier. Every saver of a model for
    users calls this."""
    from helpers.models.architectures import with_softmax

    return with_softmax(model) if outputs_logits(model) else model


def all_layers(model):
    """Every layer of ``model``, depth first, the layers of nested models included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def dtype_policies(model) -> set[str]:
    """The names of the dtype policies the layers of ``model`` (nested ones too) compute
    under; input layers, which compute nothing, are left out."""
    return {
        layer.dtype_policy.name
        for layer in all_layers(model)
        if not isinstance(layer, keras.layers.InputLayer)
    }


def with_dtype_policy(model, policy: str):
    """A copy of ``model`` with every layer under the dtype policy ``policy``, and the
    same weights.

    Keras saves each layer's policy into a ``.keras`` file, so a backbone pretrained under
    ``mixed_bfloat16`` loads as a bfloat16 model, and every clone and every classifier
    built on it computes in bfloat16 on whichever machine loads it. Precision belongs to
    the machine that trains, not to the model: notebook 07 saves its backbone in float32,
    and notebook 08 rebuilds what it loads under the policy it chose for its own device.
    Variables are float32 under every mixed policy, so the weights carry over exactly.
    (Issue 25's crash was first put down to such an inherited bfloat16 backbone; its
    cause turned out to be oneDNN and a strided 1x1 convolution, see ``_residual``.)
    """

    def retarget(node):
        if isinstance(node, dict):
            if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
                return {**node, "config": {**node["config"], "name": policy}}
            if node.get("class_name") == "InputLayer" and node["config"].get("dtype") in (
                "bfloat16",
                "float16",
            ):
                # A nested Sequential built under a mixed policy takes its first layer's
                # compute dtype for its input, as a plain string: kept, a float32 copy
                # would round every pixel it is fed to 16 bits. Each layer casts its input
                # to its own compute dtype, so float32 here is right under every policy.
                return {**node, "config": {**node["config"], "dtype": "float32"}}
            return {key: retarget(value) for key, value in node.items()}
        if isinstance(node, list):
            return [retarget(value) for value in node]
        return node

    config = retarget(keras.saving.serialize_keras_object(model))
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def count_flops(model, input_shape=None) -> int:
    """Floating-point operations of one forward pass on one image, counted by TensorFlow's
    profiler on the traced graph (a multiply-add counts as 2, as in peak-FLOP figures).

    Augmentation is off in inference, so it costs nothing here; the resize and scaling
    layers are counted, and they are a sliver next to the convolutions.
    """
    from tensorflow.python.profiler import model_analyzer, option_builder

    h, w, c = input_shape or input_shape_of(model)

    @tf.autograph.experimental.do_not_convert
    def forward(x):
        return model(x, training=False)

    graph = (
        tf.function(forward).get_concrete_function(tf.TensorSpec([1, h, w, c], tf.float32)).graph
    )
    options = (
        option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
    )
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the v1 profiler warns about its own deprecated internals
    try:
        return int(model_analyzer.profile(graph, options=options).total_float_ops)
    finally:
        logger.setLevel(level)


def describe(model) -> dict:
    """Parameters and FLOPs per image: the two numbers the step table compares."""
    return {"parameters": int(model.count_params()), "flops_per_image": count_flops(model)}
