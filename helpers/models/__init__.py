"""The course's architectures by name: ``build_model("course_cnn", input_shape=..., ...)``.

Every model takes **raw pixels** (0..255, any dtype) and carries its own preprocessing
(resize to the size it was trained at, scale to [0, 1], optionally per-channel
normalization), so a saved ``.keras`` file predicts from decoded image files with no
code of ours around it. The models are built in three parts, so that later notebooks
can swap the parts they need:

- ``augmentation`` (optional): random layers that act only while training
  (:func:`augmentation`, the one factory);
- ``backbone``: a nested ``keras.Model`` from raw pixels to one feature vector per
  image (:func:`preprocessing` inside, global pooling at the end), which notebook 07
  pretrains and notebook 08 fine-tunes;
- the head (:func:`with_head`, the one builder): a float32 ``Dense`` named ``"logits"``.
  A model handed to users ends in a float32 softmax named ``"probabilities"``
  (:func:`with_softmax`).

Modules: ``layers`` (preprocessing, augmentation), ``architectures`` (the families, the
registry, the head), ``inspection`` (a built model's parts, dtype policies, FLOPs).
"""

from helpers.models.architectures import (
    BACKBONES,
    COURSE_CNN_SIZES,
    HEADS,
    REGISTRY,
    articles_cnn,
    build_backbone,
    build_model,
    conv_backbone,
    conv_net,
    course_cnn,
    resnet,
    resnet_backbone,
    with_head,
    with_softmax,
)
from helpers.models.inspection import (
    all_layers,
    as_probabilities,
    backbone_of,
    count_flops,
    describe,
    dtype_policies,
    input_shape_of,
    outputs_logits,
    softmax_layer,
    with_dtype_policy,
)
from helpers.models.layers import ModelError, augmentation, input_shape3, preprocessing

__all__ = [
    "BACKBONES",
    "COURSE_CNN_SIZES",
    "HEADS",
    "REGISTRY",
    "ModelError",
    "all_layers",
    "as_probabilities",
    "articles_cnn",
    "augmentation",
    "backbone_of",
    "build_backbone",
    "build_model",
    "conv_backbone",
    "conv_net",
    "count_flops",
    "course_cnn",
    "describe",
    "dtype_policies",
    "input_shape3",
    "input_shape_of",
    "outputs_logits",
    "preprocessing",
    "resnet",
    "resnet_backbone",
    "softmax_layer",
    "with_dtype_policy",
    "with_head",
    "with_softmax",
]
