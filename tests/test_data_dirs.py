"""Data directories a class can share: per-user folders, network file systems, safe wipes."""

import os
import stat
import warnings

import numpy as np
import pytest

from helpers import config
from helpers.config import (
    COURSE_MARKER,
    DataDirError,
    NetworkFileSystemWarning,
    check_local_filesystem,
    course_folder,
    data_dir,
    filesystem_type,
    parse_mount_table,
    remove_course_folder,
)

# A real /proc/self/mountinfo shape: a local root, an NFS home, sshfs and SMB mounts, a
# path with a space (written \040), and a local disk mounted inside the NFS share.
MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
40 27 0:50 / /home rw,relatime shared:12 - nfs4 fs.example.org:/home rw,vers=4.2
41 40 8:17 / /home/scratch rw,relatime - xfs /dev/sdb1 rw
42 27 0:51 / /mnt/remote rw,nosuid - fuse.sshfs me@host:/data rw,user_id=1000
43 27 0:52 / /mnt/class\\040share rw - cifs //server/class rw,vers=3.1.1
44 27 0:53 / /mnt/wsl rw - 9p drvfs rw
"""
# The older /proc/mounts format, as some kernels and containers offer only that.
PROC_MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
server:/export /srv/course nfs rw,vers=3 0 0
"""


@pytest.fixture
def clean_env(monkeypatch):
    for name in (
        config.DATA_DIR_ENV,
        config.USER_ENV,
        config.PER_USER_ENV,
        config.ALLOW_NETWORK_FS_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# -- the mount table ----------------------------------------------------------------


def test_parse_both_mount_table_formats():
    assert ("/home", "nfs4") in parse_mount_table(MOUNTINFO)
    assert ("/mnt/class share", "cifs") in parse_mount_table(MOUNTINFO)
    assert parse_mount_table(PROC_MOUNTS) == [("/", "ext4"), ("/srv/course", "nfs")]


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/home/ann/course/data", "nfs4"),
        ("/home", "nfs4"),
        ("/homework", "ext4"),  # a prefix of the name is not a parent folder
        ("/home/scratch/ann", "xfs"),  # the longest mount point wins
        ("/mnt/remote/x", "fuse.sshfs"),
        ("/mnt/class share/ann", "cifs"),
        ("/tmp/x", "ext4"),
    ],
)
def test_filesystem_type_finds_the_mount_a_path_lives_on(path, expected):
    assert filesystem_type(path, MOUNTINFO) == expected


@pytest.mark.parametrize(
    "path", ["/home/ann/data", "/mnt/remote/data", "/mnt/class share", "/mnt/wsl/c"]
)
def test_a_data_dir_on_a_network_file_system_is_refused_with_what_to_do(clean_env, path):
    with pytest.raises(DataDirError) as err:
        check_local_filesystem(path, MOUNTINFO)
    message = str(err.value)
    assert path in message and "SQLite" in message
    assert config.DATA_DIR_ENV in message and config.ALLOW_NETWORK_FS_ENV in message


def test_local_file_systems_pass_and_the_override_only_warns(clean_env):
    assert check_local_filesystem("/home/scratch/ann", MOUNTINFO) == "xfs"
    assert check_local_filesystem("/", "") is None  # no mount table: nothing to say
    clean_env.setenv(config.ALLOW_NETWORK_FS_ENV, "1")
    with pytest.warns(NetworkFileSystemWarning, match="nfs"):
        assert check_local_filesystem("/srv/course/ann", PROC_MOUNTS) == "nfs"


def test_data_dir_reads_the_real_mount_table(clean_env, tmp_path):
    clean_env.setenv(config.DATA_DIR_ENV, str(tmp_path))
    clean_env.setattr(config, "read_mount_table", lambda: "1 0 0:1 / / rw - nfs4 srv:/ rw\n")
    with pytest.raises(DataDirError, match="network file system"):
        data_dir("01_acquire")
    assert not (tmp_path / "01_acquire").exists()


# -- one folder per user in a shared data directory ---------------------------------


def test_a_private_data_dir_is_used_as_it_is(clean_env, tmp_path):
    base = tmp_path / "mine"
    clean_env.setenv(config.DATA_DIR_ENV, str(base))
    assert data_dir("02_label") == base / "02_label"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_shared_data_dir_gives_each_user_their_own_folder(clean_env, tmp_path):
    shared = tmp_path / "class"
    shared.mkdir()
    shared.chmod(0o1777)  # what a teacher makes for a class: everyone writes, sticky
    clean_env.setenv(config.DATA_DIR_ENV, str(shared))
    clean_env.setenv(config.USER_ENV, "ann")
    ann = data_dir("01_acquire")
    clean_env.setenv(config.USER_ENV, "bob")
    bob = data_dir("01_acquire")
    assert ann == shared / "ann" / "01_acquire" and bob == shared / "bob" / "01_acquire"
    assert ann.is_dir() and bob.is_dir()


def test_per_user_can_be_forced_either_way(clean_env, tmp_path):
    clean_env.setenv(config.DATA_DIR_ENV, str(tmp_path))
    clean_env.setenv(config.USER_ENV, "ann")
    clean_env.setenv(config.PER_USER_ENV, "1")
    assert data_dir(create=False) == tmp_path / "ann"
    clean_env.setenv(config.PER_USER_ENV, "0")
    assert data_dir(create=False) == tmp_path
    clean_env.setenv(config.PER_USER_ENV, "yes")
    with pytest.raises(DataDirError, match="COURSE_DATA_PER_USER must be 1, 0"):
        data_dir()


@pytest.mark.parametrize(
    "raw, name", [("ann", "ann"), ("../../etc", "etc"), ("a b/c", "a_b_c"), ("..", "user")]
)
def test_user_names_cannot_leave_the_shared_folder(clean_env, raw, name):
    clean_env.setenv(config.USER_ENV, raw)
    assert config.user_name() == name


# -- deleting only what the course made ---------------------------------------------


def test_course_folder_marks_what_it_creates_and_fresh_empties_it(tmp_path):
    folder = course_folder(tmp_path / "catalog")
    assert (folder / COURSE_MARKER).is_file()
    (folder / "catalog.sqlite").write_bytes(b"old")
    again = course_folder(folder)  # not fresh: left as it is
    assert (again / "catalog.sqlite").exists()
    course_folder(folder, fresh=True)
    assert sorted(p.name for p in folder.iterdir()) == [COURSE_MARKER]


def test_a_folder_the_course_did_not_make_is_never_deleted(tmp_path):
    mine = tmp_path / "my_photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(DataDirError) as err:
        course_folder(mine, fresh=True)
    assert str(mine.absolute()) in str(err.value) and COURSE_MARKER in str(err.value)
    assert (mine / "holiday.jpg").read_bytes() == b"precious"
    # Without fresh it is used as it is, and not claimed: a later fresh run still refuses.
    assert course_folder(mine) == mine and not (mine / COURSE_MARKER).exists()


def test_remove_course_folder_refuses_links_and_files(tmp_path):
    target = course_folder(tmp_path / "target")
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    with pytest.raises(DataDirError, match="link or a file"):
        remove_course_folder(link)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(DataDirError, match="link or a file"):
        remove_course_folder(a_file)
    assert target.is_dir() and a_file.exists()
    assert remove_course_folder(tmp_path / "missing") is False
    empty = tmp_path / "empty"
    empty.mkdir()
    assert remove_course_folder(empty) is True and not empty.exists()


def test_a_forged_marker_that_is_a_link_does_not_count(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (tmp_path / "elsewhere").write_text("marker")
    (folder / COURSE_MARKER).symlink_to(tmp_path / "elsewhere")
    (folder / "data.bin").write_bytes(b"1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataDirError):
            remove_course_folder(folder)
    assert (folder / "data.bin").exists()


# -- a class's shared folder: each user's folder is theirs alone -------------------------

posix = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")
CLASSMATE = 54321  # a uid that is not ours (the tests run as root, who may chown)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def classroom(clean_env, tmp_path):
    """A folder made as README's "For teachers" says (chmod 1777), used by ``ann``."""
    shared = tmp_path / "srv"
    shared.mkdir()
    shared.chmod(0o1777)
    clean_env.setenv(config.DATA_DIR_ENV, str(shared))
    clean_env.setenv(config.USER_ENV, "ann")
    return shared


@posix
def test_everything_a_user_keeps_in_a_shared_folder_is_private(classroom):
    from helpers.catalog import Catalog

    work = data_dir("01_acquire")
    folder = course_folder(work / "catalog")
    with Catalog(folder) as cat:
        image_id, _ = cat.add_image_array(np.full((8, 8, 3), 7, dtype=np.uint8))
        cat.set_classes(["cat"])
        cat.set_label(image_id, "cat", annotator="ann")
        names = set()
        for root, _, files in os.walk(classroom / "ann"):
            assert mode(root) == 0o700, root
            for name in files:
                assert mode(os.path.join(root, name)) == 0o600, name
                names.add(name)
    assert {"catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm", COURSE_MARKER} <= names
    assert any(name.endswith(".png") for name in names)


@posix
def test_a_folder_a_classmate_made_under_your_name_is_refused(classroom):
    trap = classroom / "ann"
    trap.mkdir()
    trap.chmod(0o777)
    os.chown(trap, CLASSMATE, CLASSMATE)
    with pytest.raises(DataDirError) as err:
        data_dir("01_acquire")
    message = str(err.value)
    assert str(trap) in message and f"uid {CLASSMATE}" in message and "not to you" in message
    assert config.USER_ENV in message  # what to do: another name, or ask them to remove it
    assert list(trap.iterdir()) == []  # nothing of ann's went in


@posix
def test_a_folder_someone_else_owns_is_refused_even_when_closed(classroom):
    other = classroom / "ann"
    other.mkdir(mode=0o700)
    os.chown(other, CLASSMATE, CLASSMATE)
    with pytest.raises(DataDirError, match="belongs to"):
        data_dir(create=False)


@posix
@pytest.mark.parametrize("loose", [0o777, 0o770, 0o722, 0o702])
def test_your_own_folder_writable_by_others_is_refused_with_chmod_700(classroom, loose):
    mine = classroom / "ann"
    mine.mkdir()
    mine.chmod(loose)
    with pytest.raises(DataDirError) as err:
        data_dir("02_label")
    assert f"chmod 700 {mine}" in str(err.value) and f"{loose:04o}" in str(err.value)
    assert not (mine / "02_label").exists()
    mine.chmod(0o700)
    assert data_dir("02_label").is_dir()


@posix
def test_a_link_in_your_place_made_by_someone_else_is_refused(classroom, tmp_path):
    elsewhere = tmp_path / "theirs"
    elsewhere.mkdir()
    (classroom / "ann").symlink_to(elsewhere, target_is_directory=True)
    os.lchown(classroom / "ann", CLASSMATE, CLASSMATE)
    with pytest.raises(DataDirError, match="is a link made by"):
        data_dir("01_acquire")
    assert list(elsewhere.iterdir()) == []


@posix
def test_a_file_in_your_place_is_refused(classroom):
    (classroom / "ann").write_text("not a folder")
    with pytest.raises(DataDirError, match="is not a folder"):
        data_dir("01_acquire")


@posix
def test_your_folder_from_an_older_version_is_closed_to_others(classroom):
    mine = classroom / "ann"
    (mine / "01_acquire" / "catalog").mkdir(parents=True)
    for folder in (mine, mine / "01_acquire", mine / "01_acquire" / "catalog"):
        folder.chmod(0o755)
    labels = mine / "01_acquire" / "catalog" / "catalog.sqlite"
    labels.write_bytes(b"")
    labels.chmod(0o644)
    data_dir("01_acquire")
    assert mode(mine) == mode(mine / "01_acquire") == 0o700
    assert mode(labels) == 0o600


@posix
def test_a_shared_folder_without_the_sticky_bit_warns_that_others_can_move_yours(classroom):
    classroom.chmod(0o777)
    with pytest.warns(config.SharedFolderWarning, match=f"chmod \\+t {classroom}"):
        data_dir("01_acquire")


@posix
def test_data_dir_without_create_checks_but_makes_nothing(classroom):
    assert data_dir("01_acquire", create=False) == classroom / "ann" / "01_acquire"
    assert not (classroom / "ann").exists()


@posix
def test_a_data_dir_of_ones_own_is_made_private_too(clean_env, tmp_path):
    base = tmp_path / "mine"
    clean_env.setenv(config.DATA_DIR_ENV, str(base))
    work = data_dir("03_preprocess", "images")
    assert mode(base) == mode(base / "03_preprocess") == mode(work) == 0o700


# -- a data directory that is not a folder ----------------------------------------------


@pytest.mark.parametrize("below", [(), ("sub",), ("sub", "deeper")])
def test_a_data_dir_that_is_a_file_is_named_with_what_to_do(clean_env, tmp_path, below):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    clean_env.setenv(config.DATA_DIR_ENV, str(a_file.joinpath(*below)))
    for call in (lambda: data_dir("01_acquire"), lambda: data_dir(create=False)):
        with pytest.raises(DataDirError) as err:
            call()
        message = str(err.value)
        assert config.DATA_DIR_ENV in message and "not a folder" in message
        assert str(a_file) in message
    assert a_file.read_text() == "x"


def test_the_default_catalog_in_a_data_dir_that_is_a_file_is_named(clean_env, tmp_path):
    from helpers.catalog import Catalog

    a_file = tmp_path / "data"
    a_file.write_text("x")
    clean_env.setenv(config.DATA_DIR_ENV, str(a_file))
    with pytest.raises(DataDirError, match="not a folder"):
        Catalog()


def test_a_file_inside_the_data_dir_where_a_folder_goes_is_named(clean_env, tmp_path):
    clean_env.setenv(config.DATA_DIR_ENV, str(tmp_path))
    (tmp_path / "01_acquire").write_text("x")
    with pytest.raises(DataDirError) as err:
        data_dir("01_acquire", "catalog")
    assert str(tmp_path / "01_acquire") in str(err.value) and "is a file" in str(err.value)


def test_course_folder_will_not_write_its_marker_through_a_link(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    target = tmp_path / "victim.txt"
    (folder / COURSE_MARKER).symlink_to(target)  # a link to a file that does not exist yet
    assert course_folder(folder) == folder
    assert not target.exists() and not config.is_course_folder(folder)
