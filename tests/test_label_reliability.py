"""Labels survive a killed kernel, and two processes labeling at once lose nothing."""

import multiprocessing as mp
import os
import signal
import sqlite3
import textwrap

import numpy as np
import pytest

from helpers.catalog import Catalog

CLASSES = [str(i) for i in range(10)]


def _fill(root, n):
    cat = Catalog(root)
    cat.set_classes(CLASSES)
    rng = np.random.default_rng(1)
    ids = [cat.add_image_array(rng.integers(0, 255, (8, 8), dtype=np.uint8))[0] for _ in range(n)]
    cat.close()
    return ids


def test_kernel_killed_without_warning_keeps_all_50_labels(tmp_path):
    """A real IPython kernel labels 50 images by key events, then gets SIGKILL."""
    from jupyter_client.manager import KernelManager

    _fill(tmp_path, 60)
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        code = textwrap.dedent(
            f"""
            from helpers.catalog import Catalog
            from helpers.labeling import ClassAnnotator
            a = ClassAnnotator(Catalog({str(tmp_path)!r}), annotator="ana")
            for k in range(50):
                a.handle_key({{"type": "keydown", "key": str(k % 10)}})
            print("labeled", a.progress.value)
            """
        )
        reply = kc.execute_interactive(code, timeout=120, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok"
        pid = km.provisioner.process.pid
        os.kill(pid, signal.SIGKILL)  # no shutdown, no atexit, no flush
        os.waitpid(pid, 0)
    finally:
        kc.stop_channels()
        km.cleanup_resources()
    cat = Catalog(tmp_path)
    labels = cat.labels("ana")
    assert len(labels) == 50
    # Digit classes: the key is the class (key 3 stores "3").
    assert [r["class_name"] for r in labels] == [str(k % 10) for k in range(50)]
    assert cat.query("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
    from helpers.labeling import ClassAnnotator

    assert ClassAnnotator(cat, annotator="ana").current == 51  # resumes after the 50th


def _label_all(root, annotator, ids, start):
    from helpers.labeling import ClassAnnotator

    a = ClassAnnotator(Catalog(root), annotator=annotator, image_ids=ids)
    for k in range(len(ids)):
        a.buttons[CLASSES[(start + k) % 10]].click()
    for image_id in ids[::5]:  # boxes too, interleaved with the other process
        a.catalog.add_box(image_id, "3", 1, 1, 5, 5, annotator=annotator)
    return a.progress.value


@pytest.mark.parametrize("same_name", [False, True])
def test_two_processes_labeling_at_once(tmp_path, same_name):
    ids = _fill(tmp_path, 80)
    if same_name:  # one person, two browser tabs: halves of the queue under one name
        jobs = [("ana", ids[:40], 0), ("ana", ids[40:], 0)]
    else:  # two annotators, the same images
        jobs = [("ana", ids, 0), ("ben", ids, 3)]
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        done = pool.starmap(_label_all, [(str(tmp_path), *job) for job in jobs])
    assert done == [len(job[1]) for job in jobs]
    cat = Catalog(tmp_path)
    for who, job_ids, start in jobs:
        mine = {r["image_id"]: r["class_name"] for r in cat.labels(who)}
        assert all(mine[i] == CLASSES[(start + k) % 10] for k, i in enumerate(job_ids))
    assert len(cat.labels()) == sum(len(j[1]) for j in jobs)
    assert len(cat.boxes()) == sum(len(j[1][::5]) for j in jobs)
    cat.close()
    with sqlite3.connect(tmp_path / "catalog.sqlite") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
