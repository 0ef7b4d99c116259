"""Decoding and resizing: encoded bytes of any accepted format to uint8 (H, W, channels).

Images come out with the channels the model expects, whatever their mode on disk:
grayscale (L), grayscale with alpha (LA), palette (P), RGB, RGBA, CMYK JPEG and 16-bit
PNG all become ``channels`` = 1 or 3 uint8 channels (alpha is composited over a white
background, 16-bit values are scaled to 8 bits). TensorFlow decodes JPEG, PNG, GIF,
BMP and WebP itself; anything else Pillow can read (TIFF, ...) goes through Pillow.
EXIF orientation is not applied here (neither tf.io nor Keras applies it): the image
gate (:mod:`helpers.images`) stores images upright when they are acquired.

The decompression-bomb guard: TensorFlow's decoders have no pixel limit, so the
pipeline screens every file's header before the graph is built
(:func:`helpers.pipeline.sources.screen`); Pillow's path checks it again here.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence

import numpy as np

from helpers.images import (
    FORMATS,
    LUMA,
    TENSORFLOW_EXTENSIONS,
    ImageRejected,
    bytes_problem,
    screen_image_file,
)
from helpers.pipeline.options import RESIZE_MODES, PipelineError
from helpers.quiet import tf

# Magic numbers of the formats tf.io.decode_image reads; other bytes go through Pillow.
_TF_MAGIC = tuple(m for spec in FORMATS.values() if spec.tensorflow_decodes for m in spec.magic)
_WHITE = 255.0


def pillow_decode(data: bytes) -> np.ndarray:
    """Decode image bytes with Pillow to uint8 (H, W, C), C being 1, 2, 3 or 4.

    The fallback for formats TensorFlow cannot read. 16-bit and 32-bit integer modes are
    scaled from 0..65535 to 0..255; palette and bilevel images become RGB(A) or L. An
    image over the course's pixel limit is refused from its header
    (:class:`~helpers.images.ImageRejected`), before a pixel is decoded.
    """
    import warnings

    from PIL import Image

    if isinstance(data, np.ndarray):  # a scalar string tensor arrives as a 0-d array
        data = data.item()
    problem = bytes_problem(data)
    if problem:
        raise ImageRejected(problem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # decided above
        im = Image.open(io.BytesIO(data))
    with im:
        im.load()
        mode = im.mode
        if mode.startswith("I"):
            array = np.asarray(im).astype(np.float64)
            array = np.clip(np.round(array / 257.0), 0, 255).astype(np.uint8)
        else:
            if mode not in ("L", "LA", "RGB", "RGBA"):
                has_alpha = "A" in im.getbands() or "transparency" in im.info
                if mode in ("1", "F"):
                    target = "L"
                else:
                    target = "RGBA" if has_alpha else "RGB"
                im = im.convert(target)
            array = np.asarray(im, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array)


def _composite(color: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """Alpha-blend over white: transparent pixels often hold arbitrary colour (often black)."""
    a = tf.cast(alpha, tf.float32) / 255.0
    out = tf.cast(color, tf.float32) * a + _WHITE * (1.0 - a)
    return tf.cast(tf.round(out), tf.uint8)


def _rgb_to_gray(rgb: tf.Tensor) -> tf.Tensor:
    """ITU-R 601 luma, the weights of Pillow's ``convert("L")`` and of JPEG's Y channel."""
    gray = tf.tensordot(tf.cast(rgb, tf.float32), tf.constant(LUMA), 1)
    return tf.cast(tf.round(gray), tf.uint8)[..., None]


def to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """Turn uint8 (H, W, 1|2|3|4) into (H, W, channels): gray, gray+alpha, RGB, RGBA in.

    No branching: an opaque alpha plane is appended and a table picks, for each input
    channel count, which planes make up RGBA; then RGBA is composited over white. One
    graph serves every mode, so a PNG folder mixing modes needs no per-file Python.
    """
    if channels not in (1, 3):
        raise PipelineError(f"channels must be 1 (grayscale) or 3 (RGB), not {channels}")
    shape = tf.shape(image)
    opaque = tf.fill(tf.concat([shape[:-1], [1]], 0), tf.constant(255, tf.uint8))
    planes = tf.constant([[0, 0, 0, 1], [0, 0, 0, 1], [0, 1, 2, 3], [0, 1, 2, 3]])
    rgba = tf.gather(tf.concat([image, opaque], -1), planes[shape[-1] - 1], axis=-1)
    rgb = _composite(rgba[..., :3], rgba[..., 3:])
    out = rgb if channels == 3 else _rgb_to_gray(rgb)
    return tf.ensure_shape(out, [None] * (len(image.shape) - 1) + [channels])


def decode_jpeg(data: tf.Tensor, channels: int = 3) -> tf.Tensor:
    """JPEG bytes (gray, RGB or CMYK) to uint8 (H, W, channels): one decoder call.

    TensorFlow converts CMYK and gray JPEGs to RGB itself; it cannot give one channel
    from CMYK, so grayscale is computed from RGB.
    """
    image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, 3])
    return image if channels == 3 else _rgb_to_gray(image)


def decode_tf(data: tf.Tensor, channels: int = 3) -> tf.Tensor:
    """JPEG, PNG (8 or 16 bit, any mode), GIF (first frame), BMP or WebP bytes to uint8."""
    image = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
    return to_channels(tf.ensure_shape(image, [None, None, None]), channels)


def decode_pillow(data: tf.Tensor, channels: int = 3) -> tf.Tensor:
    """Any format Pillow reads (TIFF, ...), through :func:`pillow_decode` (holds the GIL)."""
    image = tf.numpy_function(pillow_decode, [data], tf.uint8, stateful=False)
    image = tf.reshape(image, tf.concat([tf.shape(image)[:2], [-1]], 0))
    return to_channels(tf.ensure_shape(image, [None, None, None]), channels)


def decoder_for(path: str) -> Callable[[tf.Tensor, int], tf.Tensor]:
    """The decoder a file's extension calls for (a misnamed JPEG/PNG still decodes)."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix in (".jpg", ".jpeg"):
        return decode_jpeg
    if suffix in TENSORFLOW_EXTENSIONS:
        return decode_tf
    return decode_pillow


def decode(data: tf.Tensor, channels: int = 3) -> tf.Tensor:
    """Decode encoded image bytes (a scalar string tensor) of any supported format.

    Sniffs the first bytes: TensorFlow's decoder for the formats it reads, Pillow for the
    rest. Works inside ``Dataset.map``; the pipeline itself picks a decoder per file by
    extension instead (:func:`decoder_for`), which saves the branch on every image.
    """
    hits = [tf.equal(tf.strings.substr(data, start, len(m)), m) for start, m in _TF_MAGIC]
    return tf.cond(
        tf.reduce_any(tf.stack(hits)),
        lambda: decode_tf(data, channels),
        lambda: decode_pillow(data, channels),
    )


def resize(
    image: tf.Tensor, size: Sequence[int], mode: str = "stretch", *, antialias: bool = False
) -> tf.Tensor:
    """Resize uint8 (H, W, C) to ``size`` = (height, width) with bilinear interpolation.

    ``stretch`` changes the aspect ratio; ``crop`` scales the shorter side to fit and
    cuts the centre (keeps proportions, loses the borders); ``pad`` scales the longer
    side to fit and fills with black (keeps everything, wastes pixels). ``antialias``
    low-pass filters when shrinking, which avoids moire on large photos made small, at
    a few times the cost; bilinear without it is Keras's default. An image that already
    has the size comes out unchanged either way (no branch needed, which keeps the
    per-image graph short).
    """
    if mode not in RESIZE_MODES:
        raise PipelineError(f"resize mode must be one of {RESIZE_MODES}, not {mode!r}")
    height, width = (int(s) for s in size)
    x = image
    if mode == "stretch":
        x = tf.image.resize(x, (height, width), antialias=antialias)
    elif mode == "pad":
        x = tf.image.resize_with_pad(x, height, width, antialias=antialias)
    else:
        shape = tf.shape(image)
        h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
        scale = tf.maximum(height / h, width / w)
        new_h = tf.maximum(height, tf.cast(tf.math.ceil(h * scale), tf.int32))
        new_w = tf.maximum(width, tf.cast(tf.math.ceil(w * scale), tf.int32))
        x = tf.image.resize(x, tf.stack([new_h, new_w]), antialias=antialias)
        top, left = (new_h - height) // 2, (new_w - width) // 2
        x = tf.slice(x, tf.stack([top, left, 0]), [height, width, -1])
    x = tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(x, [height, width, image.shape[-1]])


def load_image(
    path: str | os.PathLike,
    image_size: Sequence[int] | None = None,
    *,
    channels: int = 3,
    resize_mode: str = "stretch",
    antialias: bool = False,
) -> np.ndarray:
    """One file as a uint8 array, through exactly the pipeline's decode (and resize).

    Refused with :class:`~helpers.pipeline.PipelineError` before reading when it is over
    the size or pixel limit, as the pipeline leaves such a file out.
    """
    reason = screen_image_file(path)
    if reason is not None:
        raise PipelineError(f"{path}: {reason}")
    image = decode(tf.io.read_file(str(path)), channels)
    if image_size is not None:
        image = resize(image, image_size, resize_mode, antialias=antialias)
    return image.numpy()
