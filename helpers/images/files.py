"""Image files before anything decodes them: the accepted formats and their magic bytes,
the size and pixel limits, and files that are no regular file (a FIFO, a device), which
are refused from ``stat`` before they are opened.

:data:`FORMATS` is the one table of accepted formats, their magic bytes and file
extensions.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageFormat:
    """An accepted format: where its magic bytes sit, its extensions (first: on disk)."""

    magic: tuple[tuple[int, bytes], ...]
    extensions: tuple[str, ...]
    tensorflow_decodes: bool


FORMATS: dict[str, ImageFormat] = {
    "JPEG": ImageFormat(((0, b"\xff\xd8\xff"),), (".jpg", ".jpeg"), True),
    "PNG": ImageFormat(((0, b"\x89PNG\r\n\x1a\n"),), (".png",), True),
    "GIF": ImageFormat(((0, b"GIF87a"), (0, b"GIF89a")), (".gif",), True),
    "BMP": ImageFormat(((0, b"BM"),), (".bmp",), True),
    "WEBP": ImageFormat(((8, b"WEBP"),), (".webp",), True),
    "TIFF": ImageFormat(((0, b"II*\x00"), (0, b"MM\x00*")), (".tif", ".tiff"), False),
}
IMAGE_EXTENSIONS = tuple(ext for spec in FORMATS.values() for ext in spec.extensions)
TENSORFLOW_EXTENSIONS = tuple(
    ext for spec in FORMATS.values() if spec.tensorflow_decodes for ext in spec.extensions
)


def stored_extension(fmt: str) -> str:
    """The extension (without the dot) a stored image of format ``fmt`` gets."""
    return FORMATS[fmt].extensions[0][1:]


MAX_BYTES = 50_000_000  # a 50 MB file is not a training image; a bigger one is refused
MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (about 89 megapixels)
MIN_SIDE = 8


class ImageRejected(ValueError):
    """These bytes are not an image the course accepts; the message says why."""


def sniff_format(data: bytes) -> str | None:
    """The image format the first bytes announce (JPEG, PNG, GIF, BMP, TIFF, WEBP), or None.

    Magic bytes, not a file name or a ``Content-Type`` header, say what a file is: a web
    server may call a JPEG ``text/plain``, or send an HTML error page as ``image/png``.
    """
    for fmt, spec in FORMATS.items():
        if any(data[offset : offset + len(magic)] == magic for offset, magic in spec.magic):
            return fmt
    return None


def describe_bytes(data: bytes) -> str:
    """What the first bytes look like, never the bytes themselves: a label file may name
    a file the user did not mean to share (a key, a password file), and an error message
    ends up in logs and screenshots."""
    head = data[:16].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return "an HTML/XML page"
    if head.startswith((b"{", b"[")):
        return "JSON"
    kind = "text" if head.isascii() and not any(b < 9 for b in head) else "data"
    return f"{kind} without the signature of any of {', '.join(FORMATS)}"


def pixel_problem(width: int, height: int, max_pixels: int = MAX_PIXELS) -> str | None:
    """The decompression-bomb refusal for an image of this size, or None when it is fine."""
    if width * height > max_pixels:
        return (
            f"decompression bomb guard: {width}x{height} = {width * height:,} pixels"
            f" > limit {max_pixels:,}"
        )
    return None


# How each kind of file that is not a regular one is named when it is refused.
_SPECIAL_FILES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_file_problem(mode: int) -> str | None:
    """Why a file of this ``st_mode`` is no image file, or None for a regular file.

    Decided from ``stat``, before anything opens it: opening a FIFO blocks until some
    process writes to it (forever, for an ``x.png`` nobody writes), and a device may
    never end (``/dev/zero``) or wait for input.
    """
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _SPECIAL_FILES if test(mode)), "a special file")
    return f"not a regular file but {kind}; give an image file"


def open_regular(path: str | os.PathLike, max_bytes: int | None = None):
    """``path`` opened for reading (binary) once ``stat`` says it is a regular file (of
    at most ``max_bytes``, when given); else :class:`ImageRejected` saying why.

    Opened without blocking and checked again on the open descriptor, so a FIFO put in
    the file's place between the two steps is refused instead of waited on.
    """
    info = os.stat(path)
    problem = special_file_problem(info.st_mode)
    if problem:
        raise ImageRejected(problem)
    if max_bytes is not None and info.st_size > max_bytes:
        raise ImageRejected(f"file too large: {info.st_size:,} bytes > limit {max_bytes:,}")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        problem = special_file_problem(os.fstat(fd).st_mode)
        if problem:
            raise ImageRejected(problem)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_image_file(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of an image file, refused by ``stat`` before it is opened when it is no
    regular file (:func:`special_file_problem`) or is larger than ``max_bytes``."""
    with open_regular(path, max_bytes) as fh:
        return fh.read(max_bytes + 1)
