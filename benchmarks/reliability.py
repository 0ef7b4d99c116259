"""Reliability figures under hostile conditions: deadlines, Ctrl-C, huge files, bombs.

Each figure comes from a real server on 127.0.0.1 or a real file, in a child process
so that its peak memory (``ru_maxrss``) is its own:

- trickle: seconds until ``download_images`` returns on a body sent a byte every 0.5 s
  (``total_timeout=5, read_timeout=2, retries=0``), capped at ``--cap`` seconds;
- sigint: 300 URLs from a server answering in 0.3 s, SIGINT 2 s in: seconds to exit
  and HTTP requests the server saw after the signal;
- big_file: peak memory of importing a class folder holding a sparse 3 GiB file;
- bomb: peak memory of ``pipeline.from_folder`` over a folder holding a 389 KB PNG of
  20,000 x 20,000 pixels (only on the current code: before the guard it peaks near
  13 GB);
- screen: the header check per file, at listing time in Python against inside the
  graph through ``tf.numpy_function`` (the choice ``helpers.pipeline.sources.screen``
  made);
- worker_help: seconds for ``python -m helpers pretrain-worker --help`` (before issue 28
  it loaded TensorFlow first);
- worker_no_peer: seconds until worker 0 of a two-worker ``TF_CONFIG`` whose worker 1
  never starts exits, with ``--timeout 10`` (and ``--startup-timeout 2`` where the
  checkout has it), capped at ``--cap`` seconds;
- worker_sigterm: the same worker with its default deadline, SIGTERM once it has said
  whom it waits for (or after 20 s, if it says nothing): seconds from the signal to its
  exit, capped at ``--cap`` seconds.

Run: ``python benchmarks/reliability.py [--root PATH] [--skip bomb,screen]``;
``--root`` points at another checkout (an older commit, for a before/after
comparison; its module layout is detected). Prints ``name: value`` lines and writes
them to ``benchmarks/results/reliability.txt`` (for the current checkout only); it
asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

PRELUDE = """
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
try:
    from helpers.acquire.download import download_images
    from helpers.acquire.image_api_server import ImageAPIServer, bomb_png, scene_image
except ImportError:  # the flat layout before the restructure
    from helpers.download import download_images
    from helpers.image_api_server import ImageAPIServer, bomb_png, scene_image
from helpers.catalog import Catalog
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

TRICKLE = """
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        png = scene_image(3, "PNG")
        self.send_response(200); self.send_header("Content-Length", str(len(png)))
        self.end_headers()
        try:
            for b in png:
                self.wfile.write(bytes([b])); self.wfile.flush(); time.sleep(0.5)
        except OSError:
            pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H); s.daemon_threads = True
threading.Thread(target=s.serve_forever, daemon=True).start()
t = time.monotonic()
download_images(Catalog(sys.argv[1]), [f"http://127.0.0.1:{s.server_address[1]}/x"],
                total_timeout=5, read_timeout=2, retries=0, progress=False)
print(json.dumps({"seconds": time.monotonic() - t}))
"""

SIGINT_CHILD = """
urls = json.loads(sys.argv[2])
print("ready", flush=True)
try:
    download_images(Catalog(sys.argv[1]), urls, progress=False)
except KeyboardInterrupt:
    pass
"""

BIG_FILE = """
try:
    from helpers.acquire import ingest_class_folders
except ImportError:
    from helpers.acquire import ingest_class_folders
base = peak_mb()
report = ingest_class_folders(Catalog(sys.argv[2]), sys.argv[1], dataset="d")
print(json.dumps({"baseline_mb": base, "peak_mb": peak_mb(), "added": len(report.added)}))
"""

BOMB = """
from helpers.quiet import tf
from helpers import pipeline as pl
base = peak_mb()
ds = pl.from_folder(sys.argv[1], image_size=(16, 16), batch_size=2)
n = sum(len(x) for x, _ in ds)
print(json.dumps({"baseline_mb": base, "peak_mb": peak_mb(), "delivered": n}))
"""


def child(root: Path, body: str, *args: str, timeout: float = 600) -> dict:
    code = PRELUDE + textwrap.dedent(body)
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def tree(base: Path, extra: dict[str, bytes]) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (base / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), np.uint8)).save(
                base / name / f"{i}.png"
            )
    for rel, data in extra.items():
        (base / rel).write_bytes(data)
    return base


def trickle(root: Path, cap: float) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            seconds = child(root, TRICKLE, tmp, timeout=cap)["seconds"]
            return f"{seconds:.1f} s"
        except subprocess.TimeoutExpired:
            return f"still running after {cap:.0f} s (killed)"


def sigint(root: Path) -> str:
    sys.path.insert(0, str(HERE))
    from helpers.acquire.image_api_server import ImageAPIServer

    with tempfile.TemporaryDirectory() as tmp, ImageAPIServer(latency_seconds=0.3) as api:
        urls = [api.url(f"/img/scene-{i}.png") for i in range(300)]
        proc = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + SIGINT_CHILD, tmp, json.dumps(urls)],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        proc.stdout.readline()
        while not sum(api.hits.values()):
            time.sleep(0.01)
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        start, hits = time.monotonic(), sum(api.hits.values())
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        seconds, after = time.monotonic() - start, sum(api.hits.values()) - hits
        return f"exit {seconds:.2f} s after SIGINT, {after} requests after it"


def big_file(root: Path) -> str:
    sys.path.insert(0, str(HERE))
    with tempfile.TemporaryDirectory() as tmp:
        base = tree(Path(tmp) / "tree", {"cat/huge.png": b"\x89PNG\r\n\x1a\n"})
        subprocess.run(["truncate", "-s", "3G", str(base / "cat" / "huge.png")], check=True)
        try:
            out = child(root, BIG_FILE, str(base), str(Path(tmp) / "catalog"))
        except RuntimeError as exc:
            return f"failed: {str(exc).strip().splitlines()[-1]}"
        return f"peak {out['peak_mb']:.0f} MB (baseline {out['baseline_mb']:.0f} MB)"


def bomb(root: Path) -> str:
    sys.path.insert(0, str(HERE))
    from helpers.acquire.image_api_server import bomb_png

    with tempfile.TemporaryDirectory() as tmp:
        base = tree(Path(tmp) / "tree", {"dog/bomb.png": bomb_png(20_000)})
        out = child(root, BOMB, str(base))
        return (
            f"peak {out['peak_mb']:.0f} MB (baseline after importing TensorFlow "
            f"{out['baseline_mb']:.0f} MB), {out['delivered']} of 6 good images delivered"
        )


def screen() -> list[str]:
    import numpy as np
    from PIL import Image

    from helpers.images import bytes_problem, screen_image_file
    from helpers.quiet import tf

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        paths = []
        for i in range(2000):
            path = Path(tmp) / f"{i}.{'png' if i % 2 else 'jpg'}"
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8)).save(path)
            paths.append(str(path))
        start = time.perf_counter()
        for path in paths:
            screen_image_file(path)
        listing = (time.perf_counter() - start) / len(paths) * 1e6

        def guarded(data):
            return np.bool_(bytes_problem(bytes(data)) is None)

        def run(check: bool) -> float:
            def load(path):
                data = tf.io.read_file(path)
                if check:
                    ok = tf.numpy_function(guarded, [data], tf.bool)
                    with tf.control_dependencies([tf.debugging.Assert(ok, [path])]):
                        data = tf.identity(data)
                image = tf.io.decode_image(data, channels=3, expand_animations=False)
                return tf.image.resize(image, (32, 32))

            ds = tf.data.Dataset.from_tensor_slices(paths)
            ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(64)
            for _ in ds:  # warm-up: tracing and the page cache
                pass
            start = time.perf_counter()
            for _ in ds:
                pass
            return (time.perf_counter() - start) / len(paths) * 1e6

        plain, in_graph = run(False), run(True)
    return [
        f"screen_listing_time: {listing:.0f} us a file, once per build",
        f"screen_decode_pass: {plain:.0f} us a file without a check",
        f"screen_numpy_function: +{in_graph - plain:.0f} us a file, on every pass that decodes",
    ]


def _lonely_worker(root: Path, tmp: str, *extra: str) -> subprocess.Popen:
    """Worker 0 of two, whose worker 1 is never started (both ports free right now)."""
    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    config = {
        "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
        "task": {"type": "worker", "index": 0},
    }
    return subprocess.Popen(
        [sys.executable, "-m", "helpers", "pretrain-worker", "--backup-dir", tmp, *extra],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root), "TF_CONFIG": json.dumps(config)},
    )


def _ended(proc: subprocess.Popen, start: float, cap: float) -> str:
    try:
        proc.wait(timeout=cap)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"still running after {cap:.0f} s (killed)"
    last = (proc.stderr.read().strip().splitlines() or [""])[-1]
    return f"{time.monotonic() - start:.1f} s, exit {proc.returncode}: {last[:160]}"


def worker_help(root: Path) -> str:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "helpers", "pretrain-worker", "--help"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    return f"{time.monotonic() - start:.1f} s, exit {done.returncode}"


def worker_no_peer(root: Path, cap: float) -> str:
    help_text = subprocess.run(
        [sys.executable, "-m", "helpers", "pretrain-worker", "--help"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(root)},
    ).stdout
    deadline = ["--startup-timeout", "2"] if "--startup-timeout" in help_text else []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        proc = _lonely_worker(root, tmp, "--timeout", "10", *deadline)
        return _ended(proc, start, cap) + (" (--startup-timeout 2)" if deadline else "")


def worker_sigterm(root: Path, cap: float) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        proc = _lonely_worker(root, tmp)
        said = select.select([proc.stdout], [], [], 20)[0]
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        when = "once it said whom it waits for" if said else "after 20 s of silence"
        return f"{_ended(proc, start, cap)} (SIGTERM {when})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=HERE)
    parser.add_argument("--skip", default="", help="comma-separated: trickle,sigint,...")
    parser.add_argument("--cap", type=float, default=60.0)
    args = parser.parse_args()
    root, skip = args.root.resolve(), set(filter(None, args.skip.split(",")))
    lines = [f"checkout: {root}", f"cpu: {os.cpu_count()} cores"]
    steps = {
        "trickle": lambda: trickle(root, args.cap),
        "sigint": lambda: sigint(root),
        "big_file": lambda: big_file(root),
        "worker_help": lambda: worker_help(root),
        "worker_no_peer": lambda: worker_no_peer(root, args.cap),
        "worker_sigterm": lambda: worker_sigterm(root, args.cap),
    }
    if root == HERE:
        steps["bomb"] = lambda: bomb(root)
    for name, step in steps.items():
        if name not in skip:
            lines.append(f"{name}: {step()}")
            print(lines[-1], flush=True)
    if root == HERE and "screen" not in skip:
        for line in screen():
            lines.append(line)
            print(line, flush=True)
    if root == HERE and not skip:
        out = HERE / "benchmarks" / "results" / "reliability.txt"
        out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
