"""The one gate every image passes on its way into the course, and the one folder reader.

Whatever the source (arrays, generated scenes, class folders, a CSV, web downloads, the
COCO/YOLO/VOC/CSV importers), an image enters the catalog only through
:func:`check_image_bytes`: the format is sniffed from its magic bytes (never a file
name or a ``Content-Type``), its size and pixel count are checked before anything is
decoded (a decompression bomb is refused from its header), it is decoded once, fully (a
truncated file fails here, not at training time), its EXIF orientation is applied and
its metadata (EXIF with GPS above all) is stripped. The file is re-encoded only when a
rotation is needed; otherwise metadata segments are dropped byte-wise, so the pixels
are exactly those that arrived. Browsers apply EXIF orientation and ``tf.io`` does not:
storing upright pixels is what makes a box drawn in the browser and the pixels a model
trains on agree.

:data:`FORMATS` is the one table of accepted formats, their magic bytes and file
extensions; :func:`walk_class_tree` is the one reader of ``root/<class>/...`` trees,
used by the importer and the training pipeline alike, so both see the same images and
both report what they leave out.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


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
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as the training pipeline's gray conversion
_EXIF_ORIENTATION = 0x0112


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


def _describe(data: bytes) -> str:
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


def pixel_problem(width: int, height: int, max_pixels: int = MAX_PIXELS) -> str | None:
    """The decompression-bomb refusal for an image of this size, or None when it is fine."""
    if width * height > max_pixels:
        return (
            f"decompression bomb guard: {width}x{height} = {width * height:,} pixels"
            f" > limit {max_pixels:,}"
        )
    return None


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
    with _open_regular(path) as fh:
        fmt = sniff_format(fh.read(16))
        if fmt is None:
            fh.seek(0)
            raise ImageRejected(f"not an image: {_describe(fh.read(16))}")
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
        raise ImageRejected(f"not an image: {_describe(data)}")
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
            if im.mode not in MODES:
                raise ImageRejected(
                    _MODE_REASONS.get(
                        im.mode, f"unsupported mode {im.mode!r}; convert it to RGB or L first"
                    )
                )
            im.load()  # a truncated or corrupt file fails here, not at training time
            if im.mode == "I":
                _check_wide_range(*im.getextrema())
            exif = im.getexif()
            found = _metadata(data, im, fmt, exif)
            notes: list[str] = []
            if strip_exif and found:
                data, notes, (width, height) = _strip_metadata(data, im, fmt, exif, found)
            mode = im.mode
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"decompression bomb guard: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"corrupt or truncated {fmt}: {_decoder_says(exc)}") from exc
    return CheckedImage(data, width, height, mode, fmt, notes)


_XMP_ID = b"http://ns.adobe.com/xap/1.0/"
_TIFF_XMP, _TIFF_IPTC, _TIFF_PHOTOSHOP = 700, 33723, 34377


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """``(marker, start, end)`` of each JPEG segment before the image data."""
    out, i = [], 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ImageRejected("corrupt JPEG: bad segment marker")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is image data
            break
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        out.append((marker, i, end))
        i = end
    return out


def _png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """``(type, start, end)`` of each PNG chunk (length, type, data, CRC)."""
    out, i = [], 8
    while i + 12 <= len(data):
        end = i + 12 + int.from_bytes(data[i : i + 4], "big")
        out.append((data[i + 4 : i + 8], i, end))
        i = end
    return out


_PNG_METADATA = (b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME")


def _metadata(data: bytes, im: Image.Image, fmt: str, exif: Image.Exif) -> dict[str, bytes]:
    """The metadata blocks the image carries: ``{"EXIF" | "XMP" | "IPTC" | "text": bytes}``.

    A GPS position hides in EXIF, but also in an XMP packet (``exif:GPSLatitude``),
    which photo editors write even when they drop EXIF, and IPTC holds place names;
    so all three count, whatever the format keeps them in.
    """
    found: dict[str, bytes] = {}

    def add(kind: str, block: bytes) -> None:
        found[kind] = found.get(kind, b"") + block

    if fmt == "JPEG":
        for marker, start, end in _jpeg_segments(data):
            block = data[start:end]
            if marker == 0xE1:
                add("XMP" if _XMP_ID in block[:64] else "EXIF", block)
            elif marker == 0xED:
                add("IPTC", block)
    elif fmt == "PNG":
        for kind, start, end in _png_chunks(data):
            block = data[start:end]
            if kind == b"eXIf" or b"Raw profile type exif" in block[:40]:
                add("EXIF", block)
            elif kind in _PNG_METADATA:
                label = block[8:40]
                if b"XML:com.adobe.xmp" in label or b"Raw profile type xmp" in label:
                    add("XMP", block)
                elif b"Raw profile type iptc" in label or b"Raw profile type 8bim" in label:
                    add("IPTC", block)
                else:
                    add("text", block)
    elif fmt == "WEBP":
        for fourcc, kind in ((b"EXIF", "EXIF"), (b"XMP ", "XMP")):
            if fourcc in _webp_chunks(data):
                add(kind, _webp_chunks(data)[fourcc])
    elif fmt == "TIFF":
        # A TIFF's tags are its structure: only these count as metadata.
        if any(tag in exif for tag in (0x0112, 0x8769, 0x8825)):
            add("EXIF", b"")
        tags = getattr(im, "tag_v2", {})
        for tag, kind in ((_TIFF_XMP, "XMP"), (_TIFF_IPTC, "IPTC"), (_TIFF_PHOTOSHOP, "IPTC")):
            if tag in tags:
                value = tags[tag]
                add(kind, value if isinstance(value, bytes) else str(value).encode())
    if "exif" in im.info and "EXIF" not in found:
        add("EXIF", b"")
    return found


def _strip_metadata(
    data: bytes, im: Image.Image, fmt: str, exif: Image.Exif, found: dict[str, bytes]
) -> tuple[bytes, list[str], tuple[int, int]]:
    """The image without EXIF, XMP, IPTC and text, upright; pixels untouched unless a
    rotation was needed.

    An upright JPEG, PNG or WebP loses its metadata byte-wise (no re-encoding, no
    quality loss). A rotated image must be re-encoded (JPEG at quality 95, the others
    losslessly), and the result is cleaned byte-wise again, so nothing Pillow carries
    over (an XMP packet) survives.
    """
    orientation = exif.get(_EXIF_ORIENTATION, 1) if "EXIF" in found else 1
    notes = []
    upright = im
    if orientation not in (None, 1):
        upright = ImageOps.exif_transpose(im)
        notes.append(f"applied EXIF orientation {orientation}")
    for kind in ("EXIF", "XMP", "IPTC"):
        if kind in found:
            if kind == "EXIF":
                gps = bool(exif.get_ifd(0x8825)) or 0x8825 in exif
            else:
                gps = b"GPSLatitude" in found[kind] or b"GPSLongitude" in found[kind]
            notes.append(f"stripped {kind}" + (" (including GPS position)" if gps else ""))
    if "text" in found:
        notes.append("stripped text chunks")
    if upright is im and fmt in _BYTEWISE:
        return _BYTEWISE[fmt](data), notes, im.size
    options: dict = {}
    if fmt == "JPEG":
        options = {"quality": 95}
    elif fmt == "WEBP":
        options = {"lossless": True} if _webp_chunks(data).get(b"VP8L") else {"quality": 95}
    save_format = fmt if fmt in ("JPEG", "PNG", "WEBP", "TIFF") else "PNG"
    buf = io.BytesIO()
    # A copy carries no TIFF tags (XMP, IPTC) and no info dict for the encoder to reuse.
    clean = upright.copy()
    clean.info = {}
    clean.save(buf, format=save_format, **options)
    out = buf.getvalue()
    if save_format in _BYTEWISE:
        out = _BYTEWISE[save_format](out)
    return out, notes, upright.size


def _drop_jpeg_metadata(data: bytes) -> bytes:
    """Copy a JPEG without its APP1 (EXIF, XMP) and APP13 (IPTC) segments.

    The colour-relevant segments (APP0 JFIF, APP2 ICC profile, APP14 Adobe) and the
    compressed image data are copied unchanged, so the decoded pixels are identical.
    """
    segments = _jpeg_segments(data)
    out = bytearray(data[:2])
    for marker, start, end in segments:
        if marker not in (0xE1, 0xED):
            out += data[start:end]
    return bytes(out + data[segments[-1][2] if segments else 2 :])


def _drop_png_metadata(data: bytes) -> bytes:
    """Copy a PNG without its EXIF, text (XMP, IPTC, comments) and time chunks.

    The other chunks, image data and colour information (gAMA, iCCP, sRGB, PLTE,
    tRNS) included, are copied with their checksums, so the pixels are identical.
    """
    out = bytearray(data[:8])
    for kind, start, end in _png_chunks(data):
        if kind not in _PNG_METADATA:
            out += data[start:end]
    return bytes(out)


def _webp_chunks(data: bytes) -> dict[bytes, bytes]:
    """The RIFF chunks of a WebP file, ``{fourcc: whole chunk}`` (last one wins)."""
    chunks, i = {}, 12
    while i + 8 <= len(data):
        size = int.from_bytes(data[i + 4 : i + 8], "little")
        end = i + 8 + size + (size & 1)  # chunks are padded to an even length
        chunks[data[i : i + 4]] = data[i:end]
        i = end
    return chunks


def _drop_webp_metadata(data: bytes) -> bytes:
    """Copy a WebP without its EXIF and XMP chunks; the image chunks stay byte for byte."""
    kept = bytearray()
    i = 12
    while i + 8 <= len(data):
        fourcc = data[i : i + 4]
        size = int.from_bytes(data[i + 4 : i + 8], "little")
        end = i + 8 + size + (size & 1)
        chunk = bytearray(data[i:end])
        if fourcc == b"VP8X":
            chunk[8] &= ~0x0C & 0xFF  # clear the "has EXIF" and "has XMP" flags
        if fourcc not in (b"EXIF", b"XMP "):
            kept += chunk
        i = end
    return b"RIFF" + (len(kept) + 4).to_bytes(4, "little") + b"WEBP" + bytes(kept)


_BYTEWISE = {"JPEG": _drop_jpeg_metadata, "PNG": _drop_png_metadata, "WEBP": _drop_webp_metadata}


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


def _check_wide_range(low, high) -> None:
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
    if mode not in MODES:
        raise ImageRejected(
            _MODE_REASONS.get(mode, f"unsupported mode {mode!r}; convert it to RGB or L first")
        )
    alpha = None
    if mode in _WIDE_MODES:
        wide = np.asarray(image).astype(np.float64)
        _check_wide_range(wide.min(), wide.max())
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
        color = np.round(color @ np.asarray(_LUMA))[..., None]
    elif channels == 3 and color.shape[-1] == 1:
        color = np.repeat(color, 3, axis=-1)
    return np.clip(color, 0, 255).astype(np.uint8)


def decode_pixels(data: bytes, channels: int) -> np.ndarray:
    """Image bytes that passed :func:`check_image_bytes` as uint8 (H, W, ``channels``),
    through :func:`pixels`."""
    with Image.open(io.BytesIO(data)) as image:
        return pixels(image, channels)


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


def _open_regular(path: str | os.PathLike, max_bytes: int | None = None):
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
    with _open_regular(path, max_bytes) as fh:
        return fh.read(max_bytes + 1)


# -- class-per-folder trees ------------------------------------------------------------


class FolderError(FileNotFoundError):
    """A folder that is not the layout asked for; the message says what to do."""


@dataclass
class ClassTree:
    """The image files of a ``root/<class>/...`` tree, and what was left out, with why.

    ``files`` holds ``(path, class name)`` in a stable order (classes sorted, then
    paths sorted); ``left_out`` holds ``(path relative to root, reason)``.
    """

    root: Path
    class_names: list[str]
    files: list[tuple[Path, str]] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.class_names, 0)
        for _, name in self.files:
            counts[name] += 1
        return counts


def _hidden(name: str) -> bool:
    return name.startswith(".")


def walk_class_tree(root: str | os.PathLike) -> ClassTree:
    """Read a ``root/<class>/<image>`` tree; images in sub-folders of a class belong to it.

    Classes are the non-hidden sub-folders of ``root`` in sorted order (as in
    ``flow_from_directory`` and ``image_dataset_from_directory``, so label 3 means the
    same class everywhere). Inside a class folder every file whose extension is one of
    :data:`IMAGE_EXTENSIONS` is taken, at any depth; symbolic links to folders are
    followed once. Everything else is in ``left_out`` with the reason: files directly
    in ``root``, other extensions, dangling links, link loops. Hidden files and folders
    (names starting with ".", such as ``.DS_Store`` or ``.ipynb_checkpoints``) are
    passed over without a word.
    """
    root = Path(root)
    if not root.is_dir():
        raise FolderError(
            f"{root.resolve()} is not a folder; give a class-per-folder tree such as root/cat/1.jpg"
        )
    tree = ClassTree(root, [])
    for entry in sorted(root.iterdir()):
        if _hidden(entry.name):
            continue
        if entry.is_dir():
            tree.class_names.append(entry.name)
        elif entry.is_symlink() and not entry.exists():
            tree.left_out.append((entry.name, "dangling symbolic link"))
        else:
            tree.left_out.append((entry.name, "not inside a class folder"))
    for name in tree.class_names:
        seen: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(root / name, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen:
                dirnames.clear()
                rel = Path(dirpath).relative_to(root).as_posix()
                tree.left_out.append((rel, "symbolic link loop: folder already read"))
                continue
            seen.add(real)
            dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
            for filename in sorted(filenames):
                if _hidden(filename):
                    continue
                path = Path(dirpath) / filename
                rel = path.relative_to(root).as_posix()
                if not path.exists():
                    tree.left_out.append((rel, "dangling symbolic link"))
                elif path.suffix.lower() not in IMAGE_EXTENSIONS:
                    tree.left_out.append((rel, "not an image file name (" + _EXTS + ")"))
                else:
                    tree.files.append((path, name))
    return tree


_EXTS = "extensions " + " ".join(IMAGE_EXTENSIONS)
