"""Metadata in image files (EXIF, XMP, IPTC, text chunks), found and stripped.

A GPS position can hide in any of them, so the gate removes all of them; an upright
JPEG, PNG or WebP loses them byte-wise, so its pixels are exactly those that arrived.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from helpers.images.files import ImageRejected

_EXIF_ORIENTATION = 0x0112

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


def find_metadata(data: bytes, im: Image.Image, fmt: str, exif: Image.Exif) -> dict[str, bytes]:
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


def strip_metadata(
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
