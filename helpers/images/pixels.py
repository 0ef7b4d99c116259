"""Decoded images as uint8 arrays, and arrays as PNG bytes: one rule for every mode.

:data:`MODES` are the Pillow modes the gate accepts, each with one right way to 8-bit
gray or RGB (:func:`pixels`); the others are refused with the reason
(:func:`mode_problem`), never guessed.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from helpers.images.files import ImageRejected

# Pillow modes the gate accepts: each has one right way to 8-bit gray or RGB (:func:`pixels`).
MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I;16", "I;16B", "I"}
# Integer modes hold 0..65535 (16 bits; 32-bit "I" is checked to) and are scaled by 1/257.
_WIDE_MODES = {"I;16", "I;16B", "I"}
_WIDE_MAX = 65535
# Modes refused with their own reason: scaling them to 8 bits would be a guess.
_MODE_REASONS = {
    "F": "unsupported mode 'F': floating-point pixels do not say their range (0..1? 0..255?), "
    "so they cannot be scaled to 8 bits without a guess; convert it to 8-bit L or RGB first",
}
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 gray: the gate and the training pipeline alike


def mode_problem(mode: str) -> str | None:
    """Why pixels of Pillow mode ``mode`` are refused, or None when :data:`MODES` holds it."""
    if mode in MODES:
        return None
    return _MODE_REASONS.get(mode, f"unsupported mode {mode!r}; convert it to RGB or L first")


def encode_png(array: np.ndarray) -> bytes:
    """Encode a uint8 array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) as PNG bytes."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ImageRejected(f"image arrays must be uint8 (got {array.dtype}); scale them first")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageRejected(f"cannot store an image array of shape {array.shape}")
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def check_wide_range(low, high) -> None:
    """Refuse 32-bit integer pixels outside 0..65535: scaling them by 1/257 would clip."""
    if low < 0 or high > _WIDE_MAX:
        raise ImageRejected(
            f"32-bit integer pixels from {low} to {high}: only 0..{_WIDE_MAX} (16 bits) "
            "scale to 8 bits without a guess; convert it to 8-bit L or RGB first"
        )


def pixels(image: Image.Image, channels: int) -> np.ndarray:
    """A decoded image as uint8 (H, W, ``channels``): 1 for gray, 3 for RGB.

    Pillow's ``convert("L")`` clips 16-bit values to 255 (a 16-bit PNG came out 99.5%
    white in ``predict``) and its ``convert("RGB")`` drops alpha, showing whatever
    colour transparent pixels hide. So, as the training pipeline
    (``helpers.pipeline.decode``) does: 16-bit and 32-bit integer values are scaled
    from 0..65535 by 1/257, alpha is composited over white, and gray is ITU-R 601 luma,
    rounded; what a model sees when it predicts is what it saw in training. A mode
    without such a rule is refused with :class:`ImageRejected`, never guessed.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), not {channels}")
    mode = image.mode
    problem = mode_problem(mode)
    if problem:
        raise ImageRejected(problem)
    alpha = None
    if mode in _WIDE_MODES:
        wide = np.asarray(image).astype(np.float64)
        check_wide_range(wide.min(), wide.max())
        color = np.round(wide / (_WIDE_MAX / 255.0))[..., None]
    else:
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        gray = mode in ("1", "L", "LA")
        target = ("LA" if has_alpha else "L") if gray else ("RGBA" if has_alpha else "RGB")
        color = np.asarray(image.convert(target), dtype=np.float64)
        color = color[..., None] if color.ndim == 2 else color
        if has_alpha:
            color, alpha = color[..., :-1], color[..., -1:] / 255.0
    if alpha is not None:
        color = np.round(color * alpha + 255.0 * (1.0 - alpha))
    if channels == 1 and color.shape[-1] == 3:
        color = np.round(color @ np.asarray(LUMA))[..., None]
    elif channels == 3 and color.shape[-1] == 1:
        color = np.repeat(color, 3, axis=-1)
    return np.clip(color, 0, 255).astype(np.uint8)


def decode_pixels(data: bytes, channels: int) -> np.ndarray:
    """Image bytes that passed :func:`check_image_bytes` as uint8 (H, W, ``channels``),
    through :func:`pixels`."""
    with Image.open(io.BytesIO(data)) as image:
        return pixels(image, channels)
