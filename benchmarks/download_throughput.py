"""What do concurrent download workers buy, and how fast does the catalog take images?

Downloads: N generated PNG scenes from the local API server (helpers.acquire.image_api_server)
into a fresh catalog, once with one worker and once with ``--workers``, with no added
latency (this machine's CPU is the limit) and with ``--latency`` seconds per answer
(as a distant server: waiting dominates, which is what concurrency hides).

Catalog: ``add_image_bytes`` for N distinct PNGs (hash, decode check, atomic file
write with fsync, one SQLite transaction each), against the baseline of writing the
same bytes with the same atomic write and no database.

Also: ``helpers.acquire.synthetic.write_class_folders`` images per second (the preprocessing
benchmark writes 20,000 32x32 JPEGs with it).

Run: ``python benchmarks/download_throughput.py [--n 200] [--workers 8] [--latency 0.05]``.
It prints ``name: value`` lines and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from helpers.acquire import synthetic
from helpers.acquire.download import download_images
from helpers.acquire.image_api_server import ImageAPIServer, scene_image
from helpers.catalog import Catalog
from helpers.files import write_atomic


def downloads_per_second(n: int, workers: int, latency: float) -> float:
    with ImageAPIServer(latency_seconds=latency) as server:
        urls = [server.url(f"/img/scene-{i}.png") for i in range(n)]
        for i in range(n):  # encode every scene once up front, outside the timing
            scene_image(i, "PNG")
        with tempfile.TemporaryDirectory() as tmp:
            catalog = Catalog(tmp)
            start = time.perf_counter()
            report = download_images(catalog, urls, workers=workers, progress=False)
            seconds = time.perf_counter() - start
            catalog.close()
    if len(report.stored) != n:
        raise RuntimeError(f"expected {n} images stored, got {report}")
    return n / seconds


def catalog_inserts_per_second(n: int) -> tuple[float, float]:
    blobs = [scene_image(i, "PNG", 64) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Path(tmp) / "cat")
        start = time.perf_counter()
        for blob in blobs:
            catalog.add_image_bytes(blob, dataset="bench", source="benchmark")
        inserts = n / (time.perf_counter() - start)
        catalog.close()
        start = time.perf_counter()
        for i, blob in enumerate(blobs):
            write_atomic(Path(tmp) / "plain" / f"{i}.png", blob)
        plain = n / (time.perf_counter() - start)
    return inserts, plain


def class_folder_images_per_second(n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        synthetic.write_class_folders(tmp, n, size=32, seed=0)
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images per measurement")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per answer")
    parser.add_argument("--folder-images", type=int, default=20_000)
    args = parser.parse_args()

    for latency in (0.0, args.latency):
        tag = f"latency_{int(latency * 1000)}ms"
        one = downloads_per_second(args.n, 1, latency)
        many = downloads_per_second(args.n, args.workers, latency)
        print(f"downloads_per_s_1_worker_{tag}: {one:.1f}")
        print(f"downloads_per_s_{args.workers}_workers_{tag}: {many:.1f}")
        print(f"speedup_{args.workers}_workers_vs_1_{tag}: {many / one:.2f}")

    inserts, plain = catalog_inserts_per_second(args.n)
    print(f"catalog_inserts_per_s: {inserts:.1f}")
    print(f"plain_atomic_writes_per_s: {plain:.1f}")
    print(f"catalog_inserts_vs_plain_writes: {inserts / plain:.2f}")

    rate = class_folder_images_per_second(args.folder_images)
    print(f"write_class_folders_images_per_s: {rate:.0f}")
    print(f"write_class_folders_seconds_for_{args.folder_images}: {args.folder_images / rate:.1f}")


if __name__ == "__main__":
    main()
