"""Time from a key press or click to the next image shown: queues of 100 to 50,000
images, and images of 32x32 to 1024x1024 pixels.

What is timed is the kernel side of one labeling action: the ipyevents key handler (or
a button's click handler) commits the label to the catalog (one SQLite transaction,
fsync'd), finds the next unlabeled image, reads its file and puts its bytes on the
Image widget. The browser's decode of a PNG is not included (a few ms at 1024x1024).
The aim is under 50 ms median at 50,000 images. The baseline in the same run is the
bare catalog write (``set_label``), so the ratio shows what the widget adds on top of
the transaction.

Queue length: a catalog on disk with 100, 1,000, 10,000 and 50,000 8x8 images, half of
them already labeled by the annotator (a session resumed after a break), then
``PRESSES`` actions, keys and clicks alternating. The widget keeps its state in memory
and updates it per action, so the time per action should not grow with the queue; the
time to open the widget (one read of the annotator's labels) does.

Run: ``python benchmarks/labeling_latency.py``; prints ``name: value`` lines.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import numpy as np

from helpers.catalog import Catalog
from helpers.config import data_dir
from helpers.labeling import BoxAnnotator, ClassAnnotator

SIZES = (32, 128, 512, 1024)
N = 40
CLASSES = ["a", "b", "c", "d"]
QUEUES = (100, 1_000, 10_000, 50_000)
PRESSES = 100
DIGITS = [str(d) for d in range(10)]


def _catalog(root: str, size: int) -> tuple[Catalog, list[int]]:
    cat = Catalog(root)
    cat.set_classes(CLASSES)
    rng = np.random.default_rng(size)
    ids = []
    for _ in range(N + 1):
        # Smooth random images compress like photos, not like noise or flat colour.
        coarse = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        image = np.kron(coarse, np.ones((size // 8, size // 8, 1), np.uint8))
        image = np.clip(image + rng.integers(0, 12, image.shape), 0, 255).astype(np.uint8)
        ids.append(cat.add_image_array(image)[0])
    return cat, ids


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


def queue_lengths() -> None:
    """Key press to next image shown, per queue length (catalog on disk)."""
    for n in QUEUES:
        with tempfile.TemporaryDirectory(dir=data_dir("runs")) as root:
            cat = Catalog(root)
            cat.set_classes(DIGITS)
            rng = np.random.default_rng(n)
            with cat.transaction():  # one commit for the set-up, not n
                ids = [
                    cat.add_image_array(rng.integers(0, 255, (8, 8), dtype=np.uint8))[0]
                    for _ in range(n)
                ]
                for image_id in ids[: n // 2]:
                    cat.set_label(image_id, DIGITS[image_id % 10], annotator="ana")
            t = time.perf_counter()
            annotator = ClassAnnotator(cat, DIGITS, annotator="ana")
            opened = time.perf_counter() - t
            presses = min(PRESSES, n - n // 2)
            samples = []
            for k in range(presses):
                t = time.perf_counter()
                if k % 2:
                    annotator.buttons[DIGITS[k % 10]].click()
                else:
                    annotator.handle_key({"type": "keydown", "key": DIGITS[k % 10]})
                samples.append(time.perf_counter() - t)
            assert len(cat.labels("ana")) == n // 2 + presses
            assert annotator.progress.value == n // 2 + presses
            cat.close()
        med, p95 = _ms(samples)
        print(f"key_to_next_image_{n}_images_median_ms: {med:.2f}")
        print(f"key_to_next_image_{n}_images_p95_ms: {p95:.2f}")
        print(f"open_annotator_{n}_images_ms: {opened * 1000:.1f}")


def image_sizes() -> None:
    """Key press, click and box actions per image size (40 images)."""
    for size in SIZES:
        # On the project's disk, not /tmp (often RAM): commits pay a real fsync.
        with tempfile.TemporaryDirectory(dir=data_dir("runs")) as root:
            cat, ids = _catalog(root, size)
            baseline = []
            for image_id in ids[:N]:
                t = time.perf_counter()
                cat.set_label(image_id, "a", annotator="baseline")
                baseline.append(time.perf_counter() - t)
            annotator = ClassAnnotator(cat, annotator="ana")
            keys, clicks = [], []
            for k in range(N):
                t = time.perf_counter()
                if k % 2:
                    annotator.buttons[CLASSES[k % 4]].click()
                else:
                    annotator.handle_key({"type": "keydown", "key": CLASSES[k % 4]})
                (clicks if k % 2 else keys).append(time.perf_counter() - t)
            assert len(cat.labels("ana")) == N
            boxer = BoxAnnotator(cat, image_ids=ids[:N], annotator="ana", display_size=512)
            nexts, draws = [], []
            for _ in range(N // 2):
                f = boxer.factor
                t = time.perf_counter()
                boxer.widget.bboxes = [
                    {"x": 1 * f, "y": 1 * f, "width": 4 * f, "height": 4 * f, "label": "a"}
                ]
                draws.append(time.perf_counter() - t)
                t = time.perf_counter()
                boxer.next()
                nexts.append(time.perf_counter() - t)
            cat.close()
        base_med, _ = _ms(baseline)
        for name, samples in (
            ("key_to_next_image", keys),
            ("click_to_next_image", clicks),
            ("box_draw_to_catalog", draws),
            ("box_next_image", nexts),
        ):
            med, p95 = _ms(samples)
            print(f"{name}_{size}px_median_ms: {med:.2f}")
            print(f"{name}_{size}px_p95_ms: {p95:.2f}")
            print(f"{name}_{size}px_ratio_to_bare_write: {med / base_med:.2f}")
        print(f"bare_set_label_{size}px_median_ms: {base_med:.2f}")


def main() -> None:
    queue_lengths()
    image_sizes()


if __name__ == "__main__":
    main()
