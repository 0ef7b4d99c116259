"""The photos that ship with the course (helpers.acquire.photos): the archives in data/
are the ones the code expects, unpack into the expected split tree, and a missing,
truncated or altered archive, or an interrupted unpack, leaves nothing half-written."""

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.acquire import datasets, photo_archives, photos
from helpers.acquire.arrays import ArrayDataset
from helpers.images import walk_class_tree

GIT_LIMIT = 20_000_000  # bytes the project allows the shipped photos in git, in all


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """Each test unpacks into its own empty data directory."""
    folder = tmp_path / "data"
    monkeypatch.setenv("COURSE_DATA_DIR", str(folder))
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    return folder


def photos_folder(data_dir: Path) -> list[str]:
    folder = data_dir / "photos"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def ustar_members(path: Path) -> list[str]:
    """The member names of a gzipped ustar archive, read from the 512-byte headers:
    independent of the loader's reader, and fast over 25,000 members."""
    raw = gzip.decompress(path.read_bytes())
    names, offset = [], 0
    while raw[offset : offset + 512].strip(b"\0"):
        header = raw[offset : offset + 512]
        names.append(header[:100].rstrip(b"\0").decode())
        size = int(header[124:136].rstrip(b"\0 ") or b"0", 8)
        offset += 512 + -(-size // 512) * 512
    return names


def test_the_classes_are_split_once_into_two_disjoint_sorted_halves():
    source, target = photos.SOURCE_CLASSES, photos.TARGET_CLASSES
    assert not set(source) & set(target)
    assert source + target == photos.CIFAR10_CLASSES
    # sorted, so a class-folder reader's label i is the arrays' label i
    assert list(source) == sorted(source) and list(target) == sorted(target)
    assert photos.SHIPPED["source"].classes is source
    assert photos.SHIPPED["target"].classes is target


@pytest.mark.parametrize("part", ["source", "target"])
def test_each_archive_in_git_has_the_digest_and_size_the_code_expects(part):
    shipped = photos.SHIPPED[part]
    data = shipped.path.read_bytes()
    assert len(data) == shipped.size
    assert hashlib.sha256(data).hexdigest() == shipped.sha256


def test_the_archives_fit_the_projects_budget_and_are_not_ignored_by_git():
    assert sum(s.path.stat().st_size for s in photos.SHIPPED.values()) < GIT_LIMIT
    root = photos.SHIPPED["source"].path.parent.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    for shipped in photos.SHIPPED.values():
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", f"data/{shipped.file_name}"],
            cwd=root,
        )
        assert ignored.returncode == 1, f"{shipped.file_name} is ignored by .gitignore"


@pytest.mark.parametrize("part", ["source", "target"])
def test_each_archive_holds_the_expected_classes_and_counts_round_robin(part):
    shipped = photos.SHIPPED[part]
    names = ustar_members(shipped.path)
    assert names[0] == photos.MANIFEST
    counts = Counter(tuple(name.split("/")[:2]) for name in names[1:])
    expected = {
        (split, cls): n for split, n in shipped.per_class.items() for cls in shipped.classes
    }
    assert counts == expected
    # round-robin: the first photos hold one of every split and class
    head = [tuple(name.split("/")[:2]) for name in names[1 : 1 + len(expected)]]
    assert sorted(head) == sorted(expected)


def test_unpacking_gives_a_split_tree_of_the_archives_jpeg_files(data_dir):
    root = photos.photo_tree("target", limit_per_class=3, full=False)
    assert root.parent == data_dir / "photos"
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [
        "test",
        "train",
    ]
    for split in ("train", "test"):
        tree = walk_class_tree(root / split)
        assert tuple(tree.class_names) == photos.TARGET_CLASSES
        assert tree.counts() == dict.fromkeys(photos.TARGET_CLASSES, 3)
        assert tree.left_out == []
    data = (root / "train" / "dog").iterdir().__next__().read_bytes()
    assert data[:3] == b"\xff\xd8\xff"  # the JPEG bytes as shipped
    manifest = json.loads((root / photos.MANIFEST).read_text())
    assert manifest["sha256"] == photos.SHIPPED["target"].sha256
    assert manifest["per_class"] == {"train": 3, "test": 3}
    assert "Krizhevsky" in manifest["credit"]


def test_a_second_call_reuses_the_tree_without_reading_the_archive(monkeypatch):
    first = photos.photo_tree("source", limit_per_class=2, full=False)

    def refuse(*args, **kwargs):
        raise AssertionError("the archive was read again")

    monkeypatch.setattr(photos, "read_archive", refuse)
    assert photos.photo_tree("source", limit_per_class=2, full=False) == first


def test_limit_per_class_gives_that_many_photos_of_each_class_as_arrays():
    data = photos.load_photos("source", limit_per_class=4, full=False)
    assert data.class_names == list(photos.SOURCE_CLASSES)
    assert data.x_train.shape == (20, 32, 32, 3) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (20, 32, 32, 3)
    assert np.bincount(data.y_train).tolist() == [4] * 5
    assert np.bincount(data.y_test).tolist() == [4] * 5
    assert "Krizhevsky" in data.source


def test_a_limit_beyond_a_split_keeps_all_of_that_split(monkeypatch):
    monkeypatch.setitem(
        photos.SHIPPED,
        "target",
        replace(photos.SHIPPED["target"], per_class={"train": 6, "test": 2}),
    )
    root = photos.photo_tree("target", limit_per_class=4, full=False)
    assert walk_class_tree(root / "train").counts() == dict.fromkeys(photos.TARGET_CLASSES, 4)
    assert walk_class_tree(root / "test").counts() == dict.fromkeys(photos.TARGET_CLASSES, 2)


@pytest.mark.parametrize("limit", [0, -3])
def test_a_limit_below_one_is_refused(limit):
    with pytest.raises(ValueError, match="positive number"):
        photos.photo_tree("target", limit_per_class=limit, full=False)


def test_an_unknown_part_is_refused_naming_both():
    with pytest.raises(ValueError, match="'source'.*'target'"):
        photos.photo_tree("dogs", full=False)


def damaged_copy(tmp_path: Path, change) -> Path:
    data = bytearray(photos.SHIPPED["target"].path.read_bytes())
    copy = tmp_path / "copy" / photos.SHIPPED["target"].file_name
    copy.parent.mkdir()
    copy.write_bytes(bytes(change(data)))
    return copy


def flip_one_byte(data: bytearray) -> bytearray:
    data[len(data) // 2] ^= 0x01
    return data


@pytest.mark.parametrize(
    "change", [lambda data: data[: len(data) // 2], flip_one_byte], ids=["truncated", "altered"]
)
def test_a_damaged_archive_is_refused_with_what_to_do(tmp_path, data_dir, change):
    copy = damaged_copy(tmp_path, change)
    actual = hashlib.sha256(copy.read_bytes()).hexdigest()
    with pytest.raises(photos.PhotoArchiveError) as caught:
        photos.photo_tree("target", limit_per_class=2, full=False, archive=copy)
    message = str(caught.value)
    assert str(copy) in message
    assert photos.SHIPPED["target"].sha256 in message and actual in message
    assert "git checkout -- data/cifar10-target.tar.gz" in message
    assert "clone" in message
    assert photos_folder(data_dir) == []


def test_a_missing_archive_is_refused_with_what_to_do(tmp_path, data_dir):
    with pytest.raises(photos.PhotoArchiveError, match="missing.*git checkout --"):
        photos.load_photos("source", full=False, archive=tmp_path / "nowhere.tar.gz")
    assert photos_folder(data_dir) == []


def test_an_interrupted_unpack_leaves_no_half_tree(monkeypatch, data_dir):
    write = photos._write_file
    written = []

    def interrupt_after_five(path, data):
        if len(written) == 5:
            raise KeyboardInterrupt
        write(path, data)
        written.append(path)

    monkeypatch.setattr(photos, "_write_file", interrupt_after_five)
    with pytest.raises(KeyboardInterrupt):
        photos.photo_tree("target", limit_per_class=2, full=False)
    assert len(written) == 5
    assert photos_folder(data_dir) == []
    monkeypatch.setattr(photos, "_write_file", write)
    root = photos.photo_tree("target", limit_per_class=2, full=False)
    assert walk_class_tree(root / "train").counts() == dict.fromkeys(photos.TARGET_CLASSES, 2)


@pytest.mark.skipif(sys.platform == "win32", reason="the sweep asks POSIX about processes")
def test_a_temporary_folder_left_by_a_killed_unpack_is_removed(data_dir):
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = data_dir / "photos" / f".tmp-{child.stdout.strip()}-cifar10-target-abc"
    (stale / "train" / "dog").mkdir(parents=True)
    (stale / "train" / "dog" / "0001.jpg").write_bytes(b"half")
    photos.photo_tree("target", limit_per_class=1, full=False)
    assert not stale.exists()
    assert photos_folder(data_dir) == [
        f"cifar10-target-{photos.SHIPPED['target'].sha256[:12]}-first1"
    ]


def fake_cifar10(per_class: int = 3) -> ArrayDataset:
    """CIFAR-10 as keras.datasets gives it, in miniature: pixel value = label."""
    y = np.tile(np.arange(10), per_class)
    x = np.broadcast_to(y[:, None, None, None], (len(y), 32, 32, 3)).astype(np.uint8)
    return ArrayDataset("cifar10", x, y, x[:20], y[:20], list(photos.CIFAR10_CLASSES), "", "")


def test_full_takes_the_parts_classes_from_keras_datasets(monkeypatch):
    monkeypatch.setattr(photos, "load_arrays", lambda name: fake_cifar10())
    data = photos.load_photos("target", full=True, limit_per_class=2)
    assert data.class_names == list(photos.TARGET_CLASSES)
    assert np.bincount(data.y_train).tolist() == [2] * 5
    # labels 0..4 index TARGET_CLASSES: CIFAR-10 label 5 (dog) is 0 here
    assert (data.x_train[:, 0, 0, 0] == data.y_train + 5).all()
    assert np.bincount(data.y_test).tolist() == [2] * 5


def test_full_writes_a_split_tree_of_png_files(monkeypatch):
    monkeypatch.setattr(photos, "load_arrays", lambda name: fake_cifar10())
    monkeypatch.setenv("COURSE_PROFILE", "full")
    root = photos.photo_tree("source")
    assert root.name == "cifar10-full-source"
    train = walk_class_tree(root / "train")
    assert train.counts() == dict.fromkeys(photos.SOURCE_CLASSES, 3)
    path, cls = train.files[-1]
    assert path.suffix == ".png"
    assert np.asarray(Image.open(path))[0, 0, 0] == photos.CIFAR10_CLASSES.index(cls)


@pytest.mark.slow  # unpacks the photos of all ten classes
def test_the_ten_classes_hold_as_many_photos_of_each_class_mixed_in_order():
    data = datasets.load_arrays("photos")
    assert data.class_names == list(photos.CIFAR10_CLASSES)
    assert np.bincount(data.y_train).tolist() == [1000] * 10
    assert np.bincount(data.y_test).tolist() == [500] * 10
    assert data.x_train.shape == (10_000, 32, 32, 3) and data.x_train.dtype == np.uint8
    # shuffled, so the first photos (load_arrays' limit) hold every class
    assert len(set(datasets.load_arrays("photos", limit=100).y_train.tolist())) == 10
    # labels index CIFAR10_CLASSES: a source photo keeps its label, a target one gets 5 more
    source = photos.load_photos("source", limit_per_class=1000)
    first = source.x_train[source.y_train == 2][0]  # bird
    assert any((x == first).all() for x in data.x_train[data.y_train == 2])


def test_the_ten_classes_in_full_are_all_of_cifar10(monkeypatch):
    monkeypatch.setattr(photos, "load_arrays", lambda name: fake_cifar10())
    data = photos.load_ten_classes(full=True)
    assert data.class_names == list(photos.CIFAR10_CLASSES)
    assert np.bincount(data.y_train).tolist() == [3] * 10
    assert (data.x_train[:, 0, 0, 0] == data.y_train).all()


def test_full_offline_names_the_cache_file_and_the_shipped_photos(monkeypatch, data_dir):
    def offline(name):
        raise datasets.DatasetUnavailable(
            "copy ~/.keras/datasets/cifar-10-batches-py-target_archive"
        )

    monkeypatch.setattr(photos, "load_arrays", offline)
    with pytest.raises(datasets.DatasetUnavailable, match="target_archive.*full=False"):
        photos.photo_tree("target", full=True)
    assert photos_folder(data_dir) == []


def tiny_cifar(folder: Path) -> Path:
    """Five JPEGs a class for every CIFAR-10 class, named like the development copy."""
    rng = np.random.default_rng(0)
    for cls in photos.CIFAR10_CLASSES:
        (folder / cls).mkdir(parents=True)
        for i in range(5):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8)).save(buffer, "JPEG")
            (folder / cls / f"{i:04d}.jpg").write_bytes(buffer.getvalue())
    return folder


def test_the_builder_is_reproducible_and_stores_the_jpeg_bytes_unchanged(tmp_path):
    source = tiny_cifar(tmp_path / "train")
    split = {"train": 3, "test": 1}
    first = photo_archives.build_archive(
        source, photos.TARGET_CLASSES, split, tmp_path / "a.tar.gz"
    )
    again = photo_archives.build_archive(
        source, photos.TARGET_CLASSES, split, tmp_path / "b.tar.gz"
    )
    assert first == again
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    names = ustar_members(tmp_path / "a.tar.gz")
    assert len(names) == 1 + 5 * 4
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        for name in names[1:]:
            split_name, cls, file_name = name.split("/")
            stored = tar.extractfile(name).read()
            assert stored == (source / cls / file_name).read_bytes()


def test_the_builder_refuses_a_folder_with_too_few_photos(tmp_path):
    source = tiny_cifar(tmp_path / "train")
    with pytest.raises(ValueError, match="fewer than the 6"):
        photo_archives.build_archive(
            source, photos.SOURCE_CLASSES, {"train": 5, "test": 1}, tmp_path / "x"
        )
