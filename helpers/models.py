"""The course's architectures by name: ``build_model("course_cnn", input_shape=..., ...)``.

Every model takes **raw pixels** (0..255, any dtype) and carries its own preprocessing
(resize to the size it was trained at, scale to [0, 1], optionally per-channel
normalization), so a saved ``.keras`` file predicts from decoded image files with no
code of ours around it. The models are built in three parts, so that later notebooks
can swap the parts they need:

- ``augmentation`` (optional): random layers that act only while training;
- ``backbone``: a nested ``keras.Model`` from raw pixels to one feature vector per
  image (preprocessing inside, global pooling at the end), which notebook 07 pretrains
  and notebook 08 fine-tunes;
- the head: a ``Dense`` layer named ``"logits"`` and a float32 softmax named
  ``"probabilities"`` (float32 even under a mixed precision policy, as Keras advises),
  replaced by :func:`with_head`.

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
  whose width and depth scale with the profile, for pretraining (notebook 07).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from helpers.quiet import keras, tf

HEADS = ("flatten", "gap", "gmp")  # Flatten, global average pooling, global max pooling


class ModelError(ValueError):
    """A model request that cannot be built; the message says what to change."""


def _shape(input_shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3 or shape[-1] not in (1, 3) or min(shape) < 1:
        raise ModelError(
            f"input_shape must be (height, width, channels) with 1 or 3 channels, not "
            f"{input_shape!r}"
        )
    return shape


def preprocessing(input_shape, *, mean=None, std=None, name: str = "preprocessing"):
    """Raw pixels of any size -> ``input_shape`` in model units: the layers a saved model
    needs to predict from decoded files.

    ``mean``/``std`` (per channel, in [0, 1] pixel units, from the *training* split:
    ``helpers.pipeline.channel_stats``) add a ``Normalization`` layer; without them the
    pixels are only scaled to [0, 1].
    """
    h, w, c = _shape(input_shape)
    layers = [
        keras.layers.Resizing(h, w, name="resize"),
        keras.layers.Rescaling(1.0 / 255.0, name="to_unit"),
    ]
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise ModelError("give both mean and std for normalization, or neither")
        mean = np.broadcast_to(np.asarray(mean, np.float32), (c,))
        std = np.broadcast_to(np.asarray(std, np.float32), (c,))
        if (std <= 0).any():
            raise ModelError(f"standard deviations must be positive, not {std}")
        layers.append(keras.layers.Normalization(mean=mean, variance=std**2, name="normalize"))
    return keras.Sequential(layers, name=name)


def augmentation_layers(
    *, flip: bool = True, translate: int = 2, seed: int | None = None, name: str = "augmentation"
):
    """airbench's augmentation: a horizontal flip and a translation by up to ``translate``
    pixels (reflect padding), on raw pixels; active only while training."""
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed, name="flip"))
    if translate:
        layers.append(_Translate(translate, seed=seed, name="translate"))
    if not layers:
        raise ModelError("every augmentation is off; pass augment=False instead")
    return keras.Sequential(layers, name=name)


@keras.saving.register_keras_serializable(package="course")
class _Translate(keras.layers.Layer):
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
    shape = _shape(input_shape)
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


def _residual(x, width: int, stride: int, name: str):
    shortcut = x
    y = keras.layers.Conv2D(
        width, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1"
    )(x)
    y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.Activation("relu", name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    # Zero-initialised last BatchNorm: each block starts as the identity ("bag of tricks").
    y = keras.layers.BatchNormalization(gamma_initializer="zeros", name=f"{name}_bn2")(y)
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
        shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def resnet_backbone(
    input_shape,
    *,
    width: int = 32,
    depth: Sequence[int] = (2, 2, 2),
    mean=None,
    std=None,
    name: str = "backbone",
):
    """A ResNet-style backbone: a 3x3 stem of ``width`` filters, then one stage per entry of
    ``depth`` (that many basic residual blocks), the width doubling and the image halving
    from the second stage on, then global average pooling. ``(2, 2, 2, 2)`` is ResNet-18's
    layout at CIFAR size."""
    shape = _shape(input_shape)
    if width < 1 or not depth or min(depth) < 1:
        raise ModelError(f"width and every stage's depth must be positive: {width}, {depth}")
    inputs = keras.Input((None, None, shape[-1]), name="pixels")
    x = preprocessing(shape, mean=mean, std=std)(inputs)
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("relu", name="stem_relu")(x)
    for s, blocks in enumerate(depth):
        for b in range(blocks):
            stride = 2 if s > 0 and b == 0 else 1
            x = _residual(x, width * 2**s, stride, f"stage{s + 1}_block{b + 1}")
    x = keras.layers.GlobalAveragePooling2D(name="global_average_pool")(x)
    return keras.Model(inputs, x, name=name)


def with_head(
    backbone,
    num_classes: int,
    *,
    augment=None,
    dropout: float = 0.0,
    logit_scale: float = 1.0,
    name: str | None = None,
):
    """A classifier: ``augment`` (a layer or None), ``backbone``, then a new head.

    The head is optional dropout, a ``Dense(num_classes)`` named ``"logits"``, and a float32
    softmax named ``"probabilities"``; ``logit_scale`` multiplies the logits first
    (airbench divides them by 9, a temperature that keeps early steps well-behaved).
    Notebook 08 calls this on a pretrained backbone to put its own classes on it.
    """
    if num_classes < 2:
        raise ModelError(
            f"a classifier needs at least 2 classes, not {num_classes}; add images of another class"
        )
    inputs = keras.Input(backbone.input_shape[1:], name="pixels")
    x = inputs
    if augment is not None:
        x = augment(x)
    x = backbone(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    x = keras.layers.Dense(num_classes, use_bias=logit_scale == 1.0, name="logits")(x)
    if logit_scale != 1.0:
        x = keras.layers.Rescaling(logit_scale, name="logit_scale")(x)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(
        inputs, outputs, name=name or backbone.name.replace("backbone", "classifier")
    )


def conv_net(
    input_shape,
    num_classes: int,
    *,
    widths: Sequence[int] = (32, 64),
    convs_per_block: int = 1,
    batchnorm: bool = False,
    augment: bool = False,
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
    """The family both the articles' CNN and the course's CNN belong to (see the module)."""
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
    layers = augmentation_layers(seed=seed) if augment else None
    return with_head(backbone, num_classes, augment=layers, logit_scale=logit_scale, name=name)


def articles_cnn(input_shape, num_classes: int, *, hidden: int | None = None, **kwargs):
    """The source articles' CNN (article 5; ``hidden=128`` for article 2's Dense layer)."""
    return conv_net(
        input_shape, num_classes, widths=(32, 64), hidden=hidden, name="articles_cnn", **kwargs
    )


COURSE_CNN_SIZES = {
    # (stem filters, block widths): airbench94 is 64/256/256; 32/64/64 trains about
    # 9x faster per image on 2 CPU cores (FACTS: 1,039 vs 149 img/s in bfloat16).
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
    seed: int | None = None,
    mean=None,
    std=None,
):
    """The course's fast CNN in airbench's spirit; ``size`` (or ``widths``) sets its width.

    Stem conv, three blocks of conv-pool-BN-GELU-conv-BN-GELU, global max pooling, a
    bias-free Dense scaled by 1/9, flip + 2-pixel translation when ``augment``.
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
    """A ResNet-style classifier: :func:`resnet_backbone` with a head (and augmentation)."""
    backbone = resnet_backbone(input_shape, width=width, depth=depth, mean=mean, std=std)
    layers = augmentation_layers(seed=seed) if augment else None
    return with_head(backbone, num_classes, augment=layers, dropout=dropout, name="resnet")


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
