"""The architectures by name (``build_model("course_cnn", input_shape=..., ...)``), the
backbones they are made of, and the one head every classifier of the course gets.

Families:

- ``articles_cnn``: the source articles' Sequential CNN (article 5: Conv2D 32, pool,
  Conv2D 64, pool, Flatten, Dense softmax; article 2 adds a Dense 128 layer), kept as the
  baseline;
- ``course_cnn``: an airbench-style net (a 2x2 stem conv, then blocks of
  conv-pool-BN-GELU-conv-BN-GELU, global max pooling): published fast CIFAR-10 trainers
  get their speed from a small, well-conditioned net and a schedule, not from size;
- ``conv_net``: the general form of both, with every switch the step table of
  notebook 06 turns one at a time (BatchNorm, augmentation, pooling head);
- ``resnet``: a ResNet-style backbone (basic residual blocks, widths doubling per stage)
  at any width and depth: notebook 07 pretrains it at the profile's size, notebook 08's
  fallback at a small one.
"""

from __future__ import annotations

from collections.abc import Sequence

from helpers.models.layers import ModelError, augmentation, input_shape3, preprocessing
from helpers.quiet import keras

HEADS = ("flatten", "gap", "gmp")  # Flatten, global average pooling, global max pooling


def _bn(name: str):
    # A short memory for the moving statistics, as in airbench (PyTorch momentum 0.6 is
    # Keras momentum 0.4: Keras names the share of the old value kept). Runs of a few
    # hundred steps end with statistics of the last batches, not of the first ones,
    # which Keras's default of 0.99 would still remember.
    return keras.layers.BatchNormalization(momentum=0.4, epsilon=1e-5, name=name)


def _pool_head(x, head: str):
    if head == "flatten":
        return keras.layers.Flatten(name="flatten")(x)
    if head == "gap":
        return keras.layers.GlobalAveragePooling2D(name="global_average_pool")(x)
    if head == "gmp":
        return keras.layers.GlobalMaxPooling2D(name="global_max_pool")(x)
    raise ModelError(f"head must be one of {HEADS}, not {head!r}")


def conv_backbone(
    input_shape,
    *,
    widths: Sequence[int] = (32, 64),
    convs_per_block: int = 1,
    batchnorm: bool = False,
    activation: str = "relu",
    stem: int | None = None,
    head: str = "flatten",
    hidden: int | None = None,
    padding: str = "valid",
    mean=None,
    std=None,
    name: str = "backbone",
):
    """Raw pixels -> features: preprocessing, then one block per width, then the pooling.

    A block is ``convs_per_block`` 3x3 convolutions with a 2x2 max pooling after the first
    (airbench's order, conv-pool-BN-act, which runs the later convolutions at a quarter of
    the pixels) or, without BatchNorm, the articles' conv-act-pool. ``stem`` adds a 2x2
    convolution with that many filters first; ``hidden`` a Dense layer after the pooling
    (article 2's Dense 128). ``padding`` is the convolutions' ("valid" as in the articles,
    "same" to keep the size for deeper nets).
    """
    shape = input_shape3(input_shape)
    if not widths or min(widths) < 1 or convs_per_block < 1:
        raise ModelError(
            f"widths must be positive and convs_per_block >= 1: {widths}, {convs_per_block}"
        )
    inputs = keras.Input((None, None, shape[-1]), name="pixels")
    x = preprocessing(shape, mean=mean, std=std)(inputs)
    if stem:
        x = keras.layers.Conv2D(stem, 2, padding="same", use_bias=not batchnorm, name="stem")(x)
        if batchnorm:
            x = _bn("stem_bn")(x)
        x = keras.layers.Activation(activation, name="stem_act")(x)
    size = min(shape[:2])
    for b, width in enumerate(widths, start=1):
        for k in range(convs_per_block):
            x = keras.layers.Conv2D(
                width, 3, padding=padding, use_bias=not batchnorm, name=f"block{b}_conv{k + 1}"
            )(x)
            if k == 0 and not batchnorm:
                x = keras.layers.Activation(activation, name=f"block{b}_act{k + 1}")(x)
            if k == 0 and size >= 2:
                x = keras.layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
                size //= 2
            if batchnorm:
                x = _bn(f"block{b}_bn{k + 1}")(x)
            if k > 0 or batchnorm:
                x = keras.layers.Activation(activation, name=f"block{b}_act{k + 1}")(x)
    x = _pool_head(x, head)
    if hidden:
        x = keras.layers.Dense(hidden, activation=activation, name="hidden")(x)
    return keras.Model(inputs, x, name=name)


def _residual(x, width: int, stride: int, name: str, bn_momentum: float, zero_init: bool):
    shortcut = x
    y = keras.layers.Conv2D(
        width, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1"
    )(x)
    y = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn1")(y)
    y = keras.layers.Activation("relu", name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    # Zero-initialised last BatchNorm: each block starts as the identity ("bag of tricks").
    y = keras.layers.BatchNormalization(
        momentum=bn_momentum, gamma_initializer="zeros" if zero_init else "ones", name=f"{name}_bn2"
    )(y)
    if stride != 1 or shortcut.shape[-1] != width:
        if stride != 1:
            # Every second pixel, then a 1x1 convolution: the same function as a 1x1
            # convolution with stride 2, which oneDNN's AVX-512 kernels crash on in the
            # backward pass when the batch is odd (issue 25; tensorflow-cpu 2.21.0,
            # benchmarks/onednn_strided_1x1_repro.py, tests/test_upstream.py). The same
            # family of fault: https://github.com/tensorflow/tensorflow/issues/57749
            shortcut = keras.layers.MaxPooling2D(1, strides=stride, name=f"{name}_subsample")(
                shortcut
            )
        shortcut = keras.layers.Conv2D(width, 1, use_bias=False, name=f"{name}_proj")(shortcut)
        shortcut = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_proj_bn")(
            shortcut
        )
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def resnet_backbone(
    input_shape,
    *,
    width: int = 32,
    depth: Sequence[int] = (2, 2, 2),
    bn_momentum: float = 0.99,
    zero_init: bool = True,
    mean=None,
    std=None,
    name: str = "backbone",
):
    """A ResNet-style backbone: a 3x3 stem of ``width`` filters, then one stage per entry of
    ``depth`` (that many basic residual blocks), the width doubling and the image halving
    from the second stage on, then global average pooling. ``(2, 2, 2, 2)`` is ResNet-18's
    layout at CIFAR size; notebook 08's fallback is ``width=32, depth=(1, 1, 1)``.

    Blocks are named ``stage<s>_block<b>_...``, so that "unfreeze the top blocks" picks
    them by name. ``bn_momentum``: Keras's 0.99 suits a run of thousands of steps; a run
    of a few hundred (notebook 08's fallback) needs 0.9, or its moving statistics are
    still near their initial values when it ends (and evaluation sees garbage).
    ``zero_init`` starts each block's last BatchNorm at zero, so that each block starts as
    the identity ("bag of tricks"), which pays over a long run; in a run of a few hundred
    steps the blocks barely leave the identity (notebook 08's fallback on the glyphs,
    laptop profile: source accuracy 0.05 with it, 0.21 without).
    """
    shape = input_shape3(input_shape)
    if width < 1 or not depth or min(depth) < 1:
        raise ModelError(f"width and every stage's depth must be positive: {width}, {depth}")
    inputs = keras.Input((None, None, shape[-1]), name="pixels")
    x = preprocessing(shape, mean=mean, std=std)(inputs)
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem")(x)
    x = keras.layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")(x)
    x = keras.layers.Activation("relu", name="stem_relu")(x)
    for s, blocks in enumerate(depth):
        for b in range(blocks):
            stride = 2 if s > 0 and b == 0 else 1
            block = f"stage{s + 1}_block{b + 1}"
            x = _residual(x, width * 2**s, stride, block, bn_momentum, zero_init)
    x = keras.layers.GlobalAveragePooling2D(name="global_average_pool")(x)
    return keras.Model(inputs, x, name=name)


def with_head(
    backbone,
    num_classes: int,
    *,
    augment=None,
    scale: str | None = None,
    dropout: float = 0.0,
    logit_scale: float = 1.0,
    frozen: bool = False,
    name: str | None = None,
):
    """A classifier that outputs **logits**: ``augment`` (a layer or None), the scaling a
    backbone card names (``scale``: ``"unit"``, ``"symmetric"``, ``"raw"``; None for a
    backbone that scales its input itself, as every backbone built here does), the
    ``backbone``, then a new head.

    The head is optional dropout and a float32 ``Dense(num_classes)`` named ``"logits"``
    (float32 even under a mixed precision policy, as Keras advises for outputs);
    ``logit_scale`` multiplies the logits (airbench divides them by 9, a temperature that
    keeps early steps well-behaved; the Dense then has no bias). The softmax is added by
    :func:`with_softmax` where a model is handed to users, and nowhere else.

    ``frozen`` calls the backbone with ``training=False``, as Keras's transfer-learning
    guide does for fine-tuning (notebook 08; see ``helpers.finetune`` for what that does
    and does not keep frozen).
    """
    if num_classes < 2:
        raise ModelError(
            f"a classifier needs at least 2 classes, not {num_classes}; add images of another class"
        )
    inputs = keras.Input(backbone.input_shape[1:], name="pixels")
    x = inputs
    if augment is not None:
        x = augment(x)
    if scale is not None:
        x = preprocessing(scale=scale)(x)
    x = backbone(x, training=False) if frozen else backbone(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    x = keras.layers.Dense(
        num_classes, use_bias=logit_scale == 1.0, dtype="float32", name="logits"
    )(x)
    if logit_scale != 1.0:
        x = keras.layers.Rescaling(logit_scale, dtype="float32", name="logit_scale")(x)
    return keras.Model(inputs, x, name=name or backbone.name.replace("backbone", "classifier"))


def with_softmax(model, name: str | None = None):
    """``model`` (logits out) with a float32 softmax on top, named ``"probabilities"``:
    the model as users get it, whose outputs ``python -m helpers predict`` and the
    exported ``.tflite`` files print as probabilities. Its layers are ``model``'s own
    (the graph is extended, not wrapped), so it trains and saves as one model."""
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")
    return keras.Model(model.inputs, probabilities(model.outputs[0]), name=name or model.name)


def conv_net(
    input_shape,
    num_classes: int,
    *,
    widths: Sequence[int] = (32, 64),
    convs_per_block: int = 1,
    batchnorm: bool = False,
    augment: bool = False,
    flip: bool = True,
    head: str = "flatten",
    activation: str = "relu",
    stem: int | None = None,
    hidden: int | None = None,
    padding: str = "valid",
    logit_scale: float = 1.0,
    mean=None,
    std=None,
    seed: int | None = None,
    name: str = "conv_net",
):
    """The family both the articles' CNN and the course's CNN belong to (see the module).

    Ends in :func:`with_softmax`, as every classifier of the registry does: notebooks 06,
    07 and 09 train them through ``helpers.train.fit`` and ``helpers.distribute.Trainer``
    on probabilities, and hand them to users as they are. ``flip=False`` keeps only the
    shifts of ``augment``, for images whose mirror image is another class (digits, text)."""
    backbone = conv_backbone(
        input_shape,
        widths=widths,
        convs_per_block=convs_per_block,
        batchnorm=batchnorm,
        activation=activation,
        stem=stem,
        head=head,
        hidden=hidden,
        padding=padding,
        mean=mean,
        std=std,
    )
    layers = augmentation(flip=flip, seed=seed) if augment else None
    return with_softmax(
        with_head(backbone, num_classes, augment=layers, logit_scale=logit_scale, name=name)
    )


def articles_cnn(input_shape, num_classes: int, *, hidden: int | None = None, **kwargs):
    """The source articles' CNN (article 5; ``hidden=128`` for article 2's Dense layer)."""
    return conv_net(
        input_shape, num_classes, widths=(32, 64), hidden=hidden, name="articles_cnn", **kwargs
    )


COURSE_CNN_SIZES = {
    # (stem filters, block widths): airbench94 is 64/256/256; 32/64/64 trained about 9x
    # faster per image on 2 CPU cores when the sizes were chosen (1,039 against 149
    # images/s in bfloat16); `benchmarks/train_throughput.py --size small|large` measures it.
    "small": (24, (32, 64, 64)),
    "medium": (32, (64, 128, 128)),
    "large": (64, (64, 256, 256)),
}


def course_cnn(
    input_shape,
    num_classes: int,
    *,
    size: str = "small",
    widths: Sequence[int] | None = None,
    stem: int | None = None,
    augment: bool = True,
    flip: bool = True,
    seed: int | None = None,
    mean=None,
    std=None,
):
    """The course's fast CNN in airbench's spirit; ``size`` (or ``widths``) sets its width.

    Stem conv, three blocks of conv-pool-BN-GELU-conv-BN-GELU, global max pooling, a
    bias-free Dense scaled by 1/9, flip + 2-pixel translation when ``augment`` (the
    2-pixel shifts alone with ``flip=False``: notebook 06's ``FLIP`` knob, for digits).
    """
    if size not in COURSE_CNN_SIZES:
        raise ModelError(f"size must be one of {list(COURSE_CNN_SIZES)}, not {size!r}")
    default_stem, default_widths = COURSE_CNN_SIZES[size]
    return conv_net(
        input_shape,
        num_classes,
        widths=tuple(widths or default_widths),
        convs_per_block=2,
        batchnorm=True,
        augment=augment,
        flip=flip,
        head="gmp",
        activation="gelu",
        stem=default_stem if stem is None else stem,
        padding="same",
        logit_scale=1.0 / 9.0,
        mean=mean,
        std=std,
        seed=seed,
        name="course_cnn",
    )


def resnet(
    input_shape,
    num_classes: int,
    *,
    width: int = 32,
    depth: Sequence[int] = (2, 2, 2),
    augment: bool = True,
    dropout: float = 0.0,
    seed: int | None = None,
    mean=None,
    std=None,
):
    """A ResNet-style classifier: :func:`resnet_backbone` with a head (and augmentation),
    ending in :func:`with_softmax` as :func:`conv_net` does."""
    backbone = resnet_backbone(input_shape, width=width, depth=depth, mean=mean, std=std)
    layers = augmentation(seed=seed) if augment else None
    return with_softmax(
        with_head(backbone, num_classes, augment=layers, dropout=dropout, name="resnet")
    )


REGISTRY = {
    "articles_cnn": articles_cnn,
    "course_cnn": course_cnn,
    "conv_net": conv_net,
    "resnet": resnet,
}


def build_model(name: str, *, input_shape, num_classes: int, **kwargs):
    """The model ``name`` from :data:`REGISTRY` with its own keywords (widths, size, depth...)."""
    if name not in REGISTRY:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name](input_shape, num_classes, **kwargs)


# The backbones a model card's ``architecture`` can name, by ``family``.
BACKBONES = {"conv": conv_backbone, "resnet": resnet_backbone}


def build_backbone(architecture: dict, input_shape):
    """The backbone a model card's ``architecture`` describes (``{"family": "resnet",
    "width": 32, "depth": [1, 1, 1]}``: the family from :data:`BACKBONES`, the rest its
    keywords), newly initialized: what a weights file is loaded into."""
    if not isinstance(architecture, dict) or architecture.get("family") not in BACKBONES:
        raise ModelError(
            f"the architecture must be a dict whose family is one of {list(BACKBONES)}, "
            f"not {architecture!r}"
        )
    keywords = {k: v for k, v in architecture.items() if k != "family"}
    if "depth" in keywords:
        keywords["depth"] = tuple(keywords["depth"])
    return BACKBONES[architecture["family"]](input_shape, **keywords)
