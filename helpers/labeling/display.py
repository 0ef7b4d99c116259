"""Images for the browser: file bytes as they are where a browser can show them, crisp
upscaling for small images, and the CSS the widgets and galleries share."""

from __future__ import annotations

import io
import re

from helpers.catalog import Catalog

# Image formats every browser shows as they are; others are re-encoded as PNG.
_BROWSER_FORMATS = {"PNG": "png", "JPEG": "jpeg", "GIF": "gif", "WEBP": "webp", "BMP": "bmp"}
IMAGE_CSS = (
    "<style>.course-image, .course-image img {image-rendering: pixelated;"
    " image-rendering: crisp-edges; object-fit: contain;}"
    " .course-keys {outline: none;} .course-keys:focus-within, .course-keys:hover"
    " {box-shadow: 0 0 0 2px #1f77b4;}</style>"
)


def slug(name: str) -> str:
    """A CSS-safe form of a class name for ``course-class-<slug>`` hooks."""
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-") or "x"


def display_bytes(catalog: Catalog, image_id: int) -> tuple[bytes, str]:
    """The image's bytes and format name for a browser, read straight from its file.

    No decoding or resizing happens for PNG/JPEG/GIF/WebP/BMP: the browser scales the
    image (crisply, through CSS ``image-rendering: pixelated``), which keeps the time
    from a click to the next image low even for 1024x1024 images.
    """
    row = catalog.image(image_id)
    path = catalog.image_path(image_id)
    if row["format"] in _BROWSER_FORMATS:
        return path.read_bytes(), _BROWSER_FORMATS[row["format"]]
    from PIL import Image

    with Image.open(path) as im:
        buf = io.BytesIO()
        im.convert("RGBA" if "A" in im.mode else "RGB").save(buf, format="PNG")
    return buf.getvalue(), "png"


def upscaled_png(catalog: Catalog, image_id: int, display_size: int) -> tuple[bytes, int]:
    """PNG bytes of the image enlarged by a whole factor (nearest neighbour), and the factor.

    An image already as large as ``display_size`` comes back as its file's bytes
    (factor 1): re-encoding a 1024x1024 PNG would cost over half a second per image.

    jupyter-bbox-widget reports boxes in the pixels of the image it is given, and small
    images (8x8 digits, 32x32 scenes) are too small to draw on. A whole factor keeps
    pixels square and sharp and makes the way back exact: original = shown / factor.
    """
    from PIL import Image

    row = catalog.image(image_id)
    factor = max(1, int(display_size) // max(row["width"], row["height"]))
    if factor == 1:  # large enough already: the file as it is, no decode or re-encode
        return display_bytes(catalog, image_id)[0], 1
    with Image.open(catalog.image_path(image_id)) as im:
        im = im.convert("RGBA" if "A" in im.mode else "RGB")
        if factor > 1:
            im = im.resize((im.width * factor, im.height * factor), Image.NEAREST)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
    return buf.getvalue(), factor
