"""Small file utilities every layer may use: content hashes, atomic writes and the
containment check every importer applies to the file names a label file gives."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    A reader (or a crash) never sees a half-written file: either the old state or the
    whole new file. A process killed between the write and the rename leaves a
    ``.tmp-*`` file behind, which the catalog removes when it is next opened.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class OutsideFolder(ValueError):
    """A file name from a label file that leads out of the folder being imported (or
    names no file at all); the message says which and what to do."""


def resolve_inside(folder: str | os.PathLike, name: str | os.PathLike) -> Path:
    """``folder / name`` with every ``..`` and symbolic link resolved, refused unless it
    stays inside ``folder`` (itself resolved).

    A label file is data someone else may have written: a row ``../secret/private.png``,
    an absolute path or a link inside the folder to a file elsewhere would import (and
    later show or export) a file the user never meant to hand over. The check compares
    resolved paths rather than the text of the name, so no spelling (``a/../../x``,
    ``//x``, a link to a link, a linked sub-folder) gets past it. Raises
    :class:`OutsideFolder` saying why; the caller opens the path returned, the one checked.
    """
    text = os.fspath(name)
    if not str(text).strip():
        raise OutsideFolder("names no file; fill in the file name")
    root = Path(folder).resolve()
    try:
        target = (root / text).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise OutsideFolder(f"{text!r} is not a usable file name ({exc})") from exc
    if target == root:
        raise OutsideFolder(f"{text!r} names the folder itself, not a file in it")
    if not target.is_relative_to(root):
        if os.path.isabs(text):
            how = "is an absolute path outside"
        elif ".." in Path(text).parts:
            how = "climbs out (through '..') of"
        else:
            how = "leads through a symbolic link out of"
        raise OutsideFolder(
            f"{text!r} {how} {root}; only files inside the folder are imported: copy the"
            " file into it and name it relative to the folder"
        )
    return target
