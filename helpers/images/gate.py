"""The gate: :func:`check_image_bytes`, which every image passes on its way into the
course, and the header-only checks (:func:`screen_image_file`, :func:`bytes_problem`)
that the training pipeline runs before it decodes a file.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from helpers.images.files import (
    MAX_BYTES,
    MAX_PIXELS,
    MIN_SIDE,
    ImageRejected,
    describe_bytes,
    open_regular,
    pixel_problem,
    sniff_format,
    special_file_problem,
)
from helpers.images.metadata import find_metadata, strip_metadata
from helpers.images.pixels import check_wide_range, mode_problem

_BYTES_REPR = re.compile(r"""(?<!\w)b(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


def _decoder_says(exc: BaseException) -> str:
    """Pillow's reason with the file's bytes it quotes (``chunk b'secr'``) left out."""
    return _BYTES_REPR.sub("<bytes not shown>", str(exc))


@dataclass
class CheckedImage:
    """Bytes ready to store, with what the check found and what it changed."""

    data: bytes
    width: int
    height: int
    mode: str
    format: str
    notes: list[str] = field(default_factory=list)


def _open_header(fp, fmt: str) -> Image.Image:
    """Pillow's image object for ``fmt`` with only the header parsed, never the pixels.

    Built by the format's own plugin rather than ``Image.open``, which refuses images
    over twice its pixel limit with a message lacking the size; this way every refusal
    names width x height, and the limit is ours (``max_pixels``).
    """
    Image.init()
    factory, _ = Image.OPEN[fmt]
    return factory(fp)


def bytes_problem(data: bytes, max_pixels: int = MAX_PIXELS) -> str | None:
    """The decompression-bomb refusal for encoded ``data``, read from its header alone
    (None when within the limit, or when the bytes are no accepted format)."""
    fmt = sniff_format(data[:16])
    if fmt is None:
        return None
    try:
        with _open_header(io.BytesIO(data), fmt) as im:
            return pixel_problem(*im.size, max_pixels)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        return None  # the decoder meets it and says what is wrong


def image_header(path: str | os.PathLike) -> tuple[str, int, int]:
    """``(format, width, height)`` of an image file, from its header alone.

    Reads a few kilobytes whatever the file's size, so it costs the same for a
    thumbnail and a 20,000 x 20,000 decompression bomb. Raises :class:`ImageRejected`
    when the bytes are no accepted format or the header is unreadable.
    """
    with open_regular(path) as fh:
        fmt = sniff_format(fh.read(16))
        if fmt is None:
            fh.seek(0)
            raise ImageRejected(f"not an image: {describe_bytes(fh.read(16))}")
        fh.seek(0)
        try:
            with _open_header(fh, fmt) as im:
                return fmt, *im.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRejected(f"corrupt or truncated {fmt}: {_decoder_says(exc)}") from exc


def screen_image_file(
    path: str | os.PathLike, *, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS
) -> str | None:
    """Why the file at ``path`` must not be read or decoded, from ``stat`` and its header.

    None when its size on disk and its pixel count are within the limits (or its
    header cannot be read: then the decoder meets it and reports it as it does any
    corrupt file). The same limits and wording as :func:`check_image_bytes`, so the
    importer and the training pipeline refuse the same files for the same reason.
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    problem = special_file_problem(info.st_mode)
    if problem:
        return problem
    size = info.st_size
    if size > max_bytes:
        return f"file too large: {size:,} bytes > limit {max_bytes:,}"
    try:
        _, width, height = image_header(path)
    except (ImageRejected, OSError):
        return None
    return pixel_problem(width, height, max_pixels)


def check_image_bytes(
    data: bytes,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
    strip_exif: bool = True,
) -> CheckedImage:
    """Check ``data`` is a usable image; apply EXIF orientation and strip metadata.

    Raises :class:`ImageRejected` with the reason. The pixel count is checked from the
    header before any decoding, so a small file that would decode to gigabytes (a
    decompression bomb) is refused without allocating them. ``strip_exif`` removes
    EXIF, XMP and IPTC (wherever a GPS position can hide) and text chunks of a PNG.
    """
    if not data:
        raise ImageRejected("empty file")
    if len(data) > max_bytes:
        raise ImageRejected(f"file too large: {len(data):,} bytes > limit {max_bytes:,}")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected(f"not an image: {describe_bytes(data)}")
    try:
        with _open_header(io.BytesIO(data), fmt) as header:
            problem = pixel_problem(*header.size, max_pixels)
        if problem:
            raise ImageRejected(problem)
        with warnings.catch_warnings():
            # Pillow warns about big images at open; the explicit pixel check above decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[fmt])
        with im:
            width, height = im.size
            if min(width, height) < min_side:
                raise ImageRejected(f"too small: {width}x{height} (need {min_side} px a side)")
            problem = mode_problem(im.mode)
            if problem:
                raise ImageRejected(problem)
            im.load()  # a truncated or corrupt file fails here, not at training time
            if im.mode == "I":
                check_wide_range(*im.getextrema())
            exif = im.getexif()
            found = find_metadata(data, im, fmt, exif)
            notes: list[str] = []
            if strip_exif and found:
                data, notes, (width, height) = strip_metadata(data, im, fmt, exif, found)
            mode = im.mode
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"decompression bomb guard: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"corrupt or truncated {fmt}: {_decoder_says(exc)}") from exc
    return CheckedImage(data, width, height, mode, fmt, notes)
