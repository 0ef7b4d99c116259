"""The figures notebooks show: image grids first; training and evaluation figures join.

One function per kind of figure, so notebooks do not each carry a copy that drifts.
Every function draws with matplotlib and returns the figure (``plt.show()`` is the
caller's), which lets the runner save it and a test inspect it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_displayable(image) -> tuple[np.ndarray, dict]:
    """An image as imshow wants it, with the colour map and value range that fit it."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype == np.uint8:
        limits = {"vmin": 0, "vmax": 255}
    elif image.size and image.min() >= 0 and image.max() > 1.5:  # floats in 0..255
        image, limits = np.clip(image, 0, 255).astype(np.uint8), {"vmin": 0, "vmax": 255}
    else:  # floats in [0, 1] (or any range, for a single-channel map)
        limits = {"vmin": 0.0, "vmax": 1.0} if image.ndim == 3 else {}
        if image.ndim == 3:
            image = np.clip(image, 0.0, 1.0)
    return image, {"cmap": "gray", **limits} if image.ndim == 2 else limits


def image_grid(
    images: Sequence,
    titles: Sequence[str] = (),
    *,
    cols: int = 8,
    size: float = 1.4,
    boxes: Sequence[Sequence[dict]] = (),
    max_images: int | None = None,
    title_size: int = 8,
    suptitle: str | None = None,
):
    """Draw ``images`` (uint8, or floats in [0, 1] or 0..255) in rows of ``cols``.

    ``titles`` label each image (long ones wrap, never silently cut); ``boxes[i]`` is a
    list of ``{"x0", "y0", "x1", "y1"[, "class_name"]}`` in pixel corners drawn on image
    ``i``. ``max_images`` caps how many are shown. Returns the figure.
    """
    import matplotlib.pyplot as plt

    images = list(images)[: max_images or None]
    if not images:
        raise ValueError("image_grid needs at least one image")
    cols = max(1, min(cols, len(images)))
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * (size + 0.25)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        image, style = _as_displayable(images[i])
        ax.imshow(image, interpolation="nearest", **style)
        if i < len(titles):
            ax.set_title(_wrap(str(titles[i]), size), fontsize=title_size)
        for b in boxes[i] if i < len(boxes) else ():
            ax.add_patch(
                plt.Rectangle(
                    (b["x0"] - 0.5, b["y0"] - 0.5),
                    b["x1"] - b["x0"],
                    b["y1"] - b["y0"],
                    fill=False,
                    color="red",
                    linewidth=1,
                )
            )
            if b.get("class_name"):
                ax.text(b["x0"], b["y0"] - 1, b["class_name"], color="red", fontsize=6)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def _wrap(text: str, size: float) -> str:
    """Wrap a title to the width of its panel (about 9 characters per inch at 8 pt)."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width=max(8, int(size * 9)))) or text
