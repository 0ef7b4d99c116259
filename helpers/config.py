"""Profiles, paths and seeds: the three things every notebook sets up first.

A profile is chosen by one environment variable, ``COURSE_PROFILE``:

- ``smoke``: the tests; tiny data, each notebook well under a minute on 2 CPU cores;
- ``laptop``: the default; real results on a 2-core CPU, a few minutes per notebook;
- ``full``: full-size public data sets (needs the internet once), meant for a GPU.

Notebooks read their knobs with :meth:`Profile.choose`, so a notebook's parameters
cell stays one line per knob and the three sizes sit side by side.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

PROFILE_ENV = "COURSE_PROFILE"
DATA_DIR_ENV = "COURSE_DATA_DIR"
USER_ENV = "COURSE_USER"  # the name of this user's folder in a shared data directory
PER_USER_ENV = "COURSE_DATA_PER_USER"  # "1" or "0" forces per-user folders on or off
ALLOW_NETWORK_FS_ENV = "COURSE_ALLOW_NETWORK_FS"  # "1": only warn on a network file system
COURSE_MARKER = ".course-folder"  # written into every folder the course creates to wipe later
DEFAULT_PROFILE = "laptop"
DEFAULT_SEED = 42


@dataclass(frozen=True)
class Profile:
    """A named size for the whole course; see the module docstring."""

    name: str
    description: str

    def choose(self, *, smoke: T, laptop: T, full: T) -> T:
        """Return the value for this profile: ``EPOCHS = P.choose(smoke=1, laptop=10, full=40)``."""
        return {"smoke": smoke, "laptop": laptop, "full": full}[self.name]

    @property
    def online(self) -> bool:
        """Whether this profile expects public data sets that need a download."""
        return self.name == "full"

    def __str__(self) -> str:
        return f"profile {self.name!r}: {self.description}"


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", "tests; tiny data, seconds per notebook"),
    "laptop": Profile("laptop", "the default; real results on a 2-core CPU, minutes per notebook"),
    "full": Profile("full", "full-size public data sets; meant for a GPU"),
}


class ProfileError(ValueError):
    """An unknown profile name."""


def get_profile(name: str | None = None) -> Profile:
    """Return the profile named ``name``, else ``$COURSE_PROFILE``, else ``laptop``.

    An unknown name raises :class:`ProfileError` naming the valid ones, so a typo such
    as ``COURSE_PROFILE=smok`` fails at the first cell instead of silently running the
    default.
    """
    raw = name if name is not None else os.environ.get(PROFILE_ENV, "")
    key = raw.strip().lower() or DEFAULT_PROFILE
    if key not in PROFILES:
        valid = ", ".join(PROFILES)
        raise ProfileError(
            f"Unknown profile {raw!r} (from {PROFILE_ENV} or the argument). "
            f"Valid profiles: {valid}. Unset {PROFILE_ENV} for the default, {DEFAULT_PROFILE!r}."
        )
    return PROFILES[key]


def project_root() -> Path:
    """The folder that holds ``helpers/``, ``notebooks/`` and ``data/``."""
    return Path(__file__).resolve().parent.parent


class DataDirError(RuntimeError):
    """The data directory cannot be used safely; the message says what to do instead."""


class NetworkFileSystemWarning(UserWarning):
    """The data directory is on a network file system and ``COURSE_ALLOW_NETWORK_FS=1``."""


def user_name() -> str:
    """This user's folder name in a shared data directory: ``$COURSE_USER`` or the login.

    Only letters, digits, ``.``, ``_`` and ``-`` are kept, so a name can never climb out
    of the shared folder (``../x``) or clash with a path separator.
    """
    raw = os.environ.get(USER_ENV, "").strip()
    if not raw:
        try:
            import getpass

            raw = getpass.getuser()
        except (ImportError, KeyError, OSError):  # no passwd entry (some containers)
            raw = f"uid{os.getuid()}" if hasattr(os, "getuid") else "user"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", raw).strip("._")
    return name or "user"


def is_shared(folder: Path) -> bool:
    """Whether other users can write into ``folder``: owned by someone else, or writable
    by its group or by everyone (a class folder made with ``chmod 1777`` or ``2775``)."""
    try:
        info = folder.stat()
    except OSError:
        return False
    if not hasattr(os, "getuid"):
        return False
    return info.st_uid != os.getuid() or bool(info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


PRIVATE_FOLDER_MODE = 0o700  # what the course creates for a user: theirs alone
OTHERS_BITS = stat.S_IRWXG | stat.S_IRWXO


class SharedFolderWarning(UserWarning):
    """Others may write to the shared data directory and it lacks the sticky bit."""


def make_private_folder(path: str | os.PathLike) -> Path:
    """Create ``path`` and its missing parents as folders only their owner may enter (0700).

    What the course keeps for a learner (catalogs, labels, images) is theirs: in a data
    directory a class shares, a folder others may read would show any classmate another's
    labels. ``Path.mkdir(parents=True, mode=...)`` gives the mode to the last folder only,
    so each missing folder is made here. Folders that exist keep their mode. Raises
    ``FileExistsError`` when a file stands where a folder should be.
    """
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_FOLDER_MODE)
        except FileExistsError:
            if not folder.is_dir():  # another process made it meanwhile: fine; a file: not
                raise
    return path


def _data_root() -> Path:
    """``$COURSE_DATA_DIR`` (resolved), or the project's ``data/``; refused if not a folder."""
    raw = os.environ.get(DATA_DIR_ENV, "").strip()
    base = Path(raw).expanduser().resolve() if raw else project_root() / "data"
    existing = next((p for p in (base, *base.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        what = f"{DATA_DIR_ENV}={raw}" if raw else "The course data directory"
        where = "is" if existing == base else f"lies under {existing}, which is"
        raise DataDirError(
            f"{what} is not a folder: {base} {where} a file. Point {DATA_DIR_ENV} at a folder "
            "(it is created if missing), or move the file out of the way."
        )
    return base


def _base_dir() -> tuple[Path, Path | None]:
    """The course's data folder for this user, and the shared folder it sits in (None when
    the data directory is the user's own); see :func:`data_dir`."""
    base = _data_root()
    per_user = os.environ.get(PER_USER_ENV, "").strip()
    if per_user not in ("", "0", "1"):
        raise DataDirError(f"{PER_USER_ENV} must be 1, 0 or unset, not {per_user!r}")
    if per_user == "1" or (per_user == "" and is_shared(base)):
        return base / user_name(), base
    return base, None


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _close_to_others(folder: Path) -> None:
    """Take group and other permissions off ``folder`` and what it holds (0700, 0600).

    For a folder of one's own that an older version of the course made readable by all.
    The folder's own mode is what keeps others out; what it holds is closed too so that
    it stays private when copied with its modes (``cp -a``, ``tar``). Links, and entries
    owned by someone else, are left alone.
    """
    uid = os.getuid()
    for root, folders, files in os.walk(folder):
        for name in (".", *folders, *files):
            path = os.path.join(root, name)
            info = os.lstat(path)
            if info.st_uid == uid and not stat.S_ISLNK(info.st_mode) and info.st_mode & OTHERS_BITS:
                os.chmod(path, stat.S_IMODE(info.st_mode) & ~OTHERS_BITS)


def _check_user_folder(folder: Path, shared: Path, *, create: bool) -> None:
    """Create, or check, this user's folder in a shared data directory: it must be theirs alone.

    A classmate who creates ``<shared>/<you>/`` before your first run owns it: they
    would read everything you store there and could move it away later, leaving you a
    silently empty catalog. So the folder must belong to you and be writable by no one
    else, or it is refused with what to do; one of yours that others may only read (made
    by an older version of the course) is closed to them. Without the sticky bit on the
    shared folder (the 1 of ``chmod 1777``) anyone who may write there can rename your
    folder, which only the shared folder's owner can fix: that is a warning.
    """
    if not hasattr(os, "getuid"):
        return  # no POSIX owners or modes to check (Windows)
    uid = os.getuid()
    try:
        shared_mode = shared.stat().st_mode
    except OSError:
        shared_mode = 0
    if shared_mode & (stat.S_IWGRP | stat.S_IWOTH) and not shared_mode & stat.S_ISVTX:
        warnings.warn(
            f"Others may write to the shared data directory {shared}, and it lacks the "
            f"sticky bit, so they can rename or delete your folder {folder.name}/ in it. Ask "
            f"its owner to run: chmod +t {shared}",
            SharedFolderWarning,
            stacklevel=3,
        )
    if create:
        try:
            folder.mkdir(mode=PRIVATE_FOLDER_MODE)
        except FileExistsError:
            pass  # checked below, whoever made it
        except PermissionError as exc:
            raise DataDirError(
                f"Cannot create your folder {folder}: {exc.strerror}. Ask the owner of "
                f"{shared} to make it writable for the class (chmod 1777 {shared}), or point "
                f"{DATA_DIR_ENV} at a folder of your own."
            ) from exc
    try:
        link = folder.lstat()
    except FileNotFoundError:
        return  # create=False, and not made yet
    others = (
        f"Ask whoever made it, or your teacher, to remove or rename it, or choose another "
        f"folder name with {USER_ENV}=<name>, or point {DATA_DIR_ENV} at a folder of your "
        "own; then run again."
    )
    if stat.S_ISLNK(link.st_mode) and link.st_uid != uid:
        raise DataDirError(
            f"Your folder {folder} in the shared data directory is a link made by "
            f"{_owner(link.st_uid)}, not by you: what you stored there would go where they "
            f"chose. {others}"
        )
    try:
        info = folder.stat()
    except OSError:
        info = None
    if info is None or not stat.S_ISDIR(info.st_mode):
        raise DataDirError(
            f"Your folder {folder} in the shared data directory is not a folder (a file, or "
            f"a link to nothing). {others}"
        )
    if info.st_uid != uid:
        raise DataDirError(
            f"Your folder {folder} in the shared data directory belongs to "
            f"{_owner(info.st_uid)}, not to you ({_owner(uid)}): its owner could read, change "
            f"or move away everything you store there, so the course will not use it. {others}"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DataDirError(
            f"Your folder {folder} in the shared data directory may be written by others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}): they could replace or move what you "
            f"store there, and may have put files in it already. Check what it holds, then "
            f"make it yours alone with: chmod 700 {folder}"
        )
    if info.st_mode & OTHERS_BITS:
        _close_to_others(folder)


# File system types on which SQLite's locks and WAL shared memory cannot be trusted.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ncpfs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "davfs",
        "sshfs",
        "fuse.sshfs",
        "fuse.glusterfs",
        "fuse.cephfs",
        "fuse.s3fs",
        "fuse.rclone",
        "fuse.gcsfuse",
        "fuse.davfs2",
    }
)


def _unescape_mount_path(text: str) -> str:
    """Mount tables write a space in a path as ``\\040`` (octal escapes)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def parse_mount_table(text: str) -> list[tuple[str, str]]:
    """``(mount point, file system type)`` pairs from /proc/self/mountinfo or /proc/mounts."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if " - " in line:  # mountinfo: ... mount-point options [optional...] - fstype source
            before, after = line.split(" - ", 1)
            head, tail = before.split(), after.split()
            if len(head) >= 5 and tail:
                mounts.append((_unescape_mount_path(head[4]), tail[0]))
        elif len(fields) >= 3:  # mounts: source mount-point fstype options ...
            mounts.append((_unescape_mount_path(fields[1]), fields[2]))
    return mounts


def read_mount_table() -> str:
    """The kernel's mount table ("" where there is none, as on macOS or Windows)."""
    for name in ("/proc/self/mountinfo", "/proc/mounts"):
        try:
            with open(name, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            continue
    return ""


def filesystem_type(path: str | os.PathLike, mount_table: str | None = None) -> str | None:
    """The type of the file system ``path`` lives on (``ext4``, ``nfs4``, ...), or None.

    The longest mount point that contains the resolved path wins; of two mounts on the
    same point, the later one (it hides the earlier).
    """
    table = read_mount_table() if mount_table is None else mount_table
    target = Path(path).expanduser().resolve().as_posix()
    best, best_len = None, -1
    for point, fstype in parse_mount_table(table):
        point = point.rstrip("/") or "/"
        inside = point == "/" or target == point or target.startswith(point + "/")
        if inside and len(point) >= best_len:
            best, best_len = fstype, len(point)
    return best


def is_network_filesystem(fstype: str | None) -> bool:
    return fstype is not None and (fstype in NETWORK_FILESYSTEMS or fstype.startswith("nfs"))


def check_local_filesystem(path: str | os.PathLike, mount_table: str | None = None) -> str | None:
    """Refuse a data directory on a network file system (NFS, SMB/CIFS, sshfs, 9p, ...).

    The catalog is SQLite in WAL mode, whose locks and shared-memory index are not safe
    over a network file system: two kernels (or two machines) can corrupt it. Raises
    :class:`DataDirError` saying what to do, or, with ``COURSE_ALLOW_NETWORK_FS=1``,
    only warns. Returns the file system type.
    """
    fstype = filesystem_type(path, mount_table)
    if not is_network_filesystem(fstype):
        return fstype
    where = Path(path).expanduser().resolve()
    message = (
        f"The course data directory {where} is on a network file system ({fstype}). The "
        "catalog is an SQLite database in WAL mode, which is not safe there: kernels can "
        f"corrupt it. Point {DATA_DIR_ENV} at a local disk, for example "
        f"{DATA_DIR_ENV}=/tmp/{user_name()}-course (copy what you keep elsewhere "
        f"afterwards), or set {ALLOW_NETWORK_FS_ENV}=1 to go on at your own risk."
    )
    if os.environ.get(ALLOW_NETWORK_FS_ENV, "").strip() == "1":
        warnings.warn(message, NetworkFileSystemWarning, stacklevel=3)
        return fstype
    raise DataDirError(message)


def data_dir(*parts: str, create: bool = True) -> Path:
    """A folder under the course's data directory (``$COURSE_DATA_DIR`` or ``<root>/data``).

    Everything the course downloads, generates or catalogs lives here, never at a
    machine-specific path. A teacher can point a whole class at one shared disk with
    ``COURSE_DATA_DIR``: when other users can write there (see :func:`is_shared`), each
    user works in their own ``<COURSE_DATA_DIR>/<user>/`` (``$COURSE_USER`` or the
    login name; ``COURSE_DATA_PER_USER=1`` or ``0`` forces it), so no one's notebook
    touches another's catalog. That folder must be the user's alone (see
    :func:`_check_user_folder`), and every folder made here is private to its owner
    (0700). A folder on a network file system is refused, see
    :func:`check_local_filesystem`; so is a data directory that is not a folder.
    """
    base, shared = _base_dir()
    existing = next((p for p in (base, *base.parents) if p.exists()), base)
    check_local_filesystem(existing)
    path = base.joinpath(*parts)
    try:
        if shared is not None:
            if create:
                make_private_folder(shared)
            _check_user_folder(base, shared, create=create)
        if create:
            make_private_folder(path)
    except PermissionError as exc:
        raise DataDirError(
            f"Cannot create {exc.filename or path}: {exc.strerror}. Point {DATA_DIR_ENV} at a "
            "folder of your own, or fix the permissions of the one it names."
        ) from exc
    except (FileExistsError, NotADirectoryError) as exc:
        raise DataDirError(
            f"Cannot create the folder {path}: {exc.filename or 'a part of it'} is a file. "
            f"Move that file out of the way, or point {DATA_DIR_ENV} at another folder."
        ) from exc
    return path


def is_course_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder the course created (it holds the marker file)."""
    marker = Path(path) / COURSE_MARKER
    return marker.is_file() and not marker.is_symlink()


def course_folder(path: str | os.PathLike, *, fresh: bool = False) -> Path:
    """Create the folder ``path`` (private to its owner, as in :func:`data_dir`) with the
    course's marker file in it; return it.

    The marker says the course made it, which is what makes it safe to empty later:
    with ``fresh=True`` a folder the course made earlier is removed and made anew, and
    a folder the course did not make (no marker) is refused with :class:`DataDirError`
    rather than deleted, unless it is empty. Without ``fresh`` an existing folder is
    used as it is.
    """
    path = Path(path)
    if fresh:
        remove_course_folder(path)
    if path.is_dir() and not is_course_folder(path) and any(path.iterdir()):
        return path  # someone else's folder: use it, never claim it
    make_private_folder(path)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:  # O_EXCL: never write through a link someone put in the marker's place
        fd = os.open(path / COURSE_MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path  # marked before (or a link, which is_course_folder does not count)
    with open(fd, "w", encoding="utf-8") as fh:
        fh.write(
            f"Created by the course (helpers.config.course_folder) on {stamp}.\n"
            "The course may delete this folder and all it holds when a notebook starts "
            "afresh.\n"
        )
    return path


def remove_course_folder(path: str | os.PathLike) -> bool:
    """Delete ``path`` if the course created it (see :func:`course_folder`); return whether
    something was removed.

    A missing folder is fine (False); an empty folder is removed; a symbolic link, a
    file, or a folder with content but no marker raises :class:`DataDirError` naming it,
    so a wrong ``DATA_DIR`` can never wipe a learner's own files.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return False
    where = path.absolute()
    if path.is_symlink() or not path.is_dir():
        raise DataDirError(
            f"{where} is not a folder the course made (it is a link or a file); the course "
            "deletes only folders it created. Move it away or choose another DATA_DIR."
        )
    if not is_course_folder(path) and any(path.iterdir()):
        raise DataDirError(
            f"{where} was not created by the course (it has no {COURSE_MARKER} marker), so "
            "the course will not delete it. If it holds nothing you need (for example, data "
            "from an older version of the course), delete it yourself; otherwise choose "
            "another DATA_DIR."
        )
    shutil.rmtree(path)
    return True


def seed_everything(seed: int = DEFAULT_SEED, *, deterministic: bool = False) -> int:
    """Seed Python's ``random``, NumPy and TensorFlow with ``keras.utils.set_random_seed``.

    On the CPU, the same profile and seed then give the same metrics run after run
    (tests/test_config.py checks this with a tiny fit done twice). GPUs may still
    differ in the last digits because some kernels reduce in a nondeterministic order;
    ``deterministic=True`` also calls ``tf.config.experimental.enable_op_determinism``,
    which makes them repeatable at some cost in speed (and raises on ops that have no
    deterministic kernel), for the runs that must match bit for bit.
    """
    os.environ["PYTHONHASHSEED"] = str(seed)
    from helpers.quiet import keras, tf

    keras.utils.set_random_seed(seed)  # seeds random, NumPy and TensorFlow together
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return seed
