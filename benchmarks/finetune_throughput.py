"""Fine-tuning throughput: images per second in float32, mixed precision, mixed + XLA.

The model is notebook 08's fine-tuning setup: its fallback backbone (notebook 07's
ResNet at width 32, one block per stage) with a new head, the top two blocks unfrozen
and BatchNorm frozen, trained with ``fit`` on in-memory batches. Each configuration runs
in a fresh process (a dtype policy is global, and XLA caches compiled graphs), warms up,
then times ``--steps`` steps.

Mixed precision is ``mixed_bfloat16`` on a CPU (this project's AMD EPYC has AVX-512
BF16 and AMX; ``float16`` on a CPU is slow) and on Ampere or newer GPUs,
``mixed_float16`` on older GPUs. XLA is ``jit_compile=True``, passed explicitly: Keras
3's ``"auto"`` turns it off on CPUs and under every distribution strategy.

The fraction of peak is the model's training FLOP rate (3x the forward FLOPs counted
from the layer shapes) over a *measured* peak: square matrix products in the same
dtype on the same device, which is what the device can reach in practice; datasheet
peaks are higher still. Peak memory is the process's resident peak on a CPU, and
TensorFlow's peak allocation on a GPU.

    .venv/bin/python benchmarks/finetune_throughput.py            # writes results/
    .venv/bin/python benchmarks/finetune_throughput.py --size 64 --batch 256
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "finetune_throughput.txt"


def forward_flops(model) -> int:
    """Multiply-adds x 2 of the Conv2D and Dense layers, per image."""
    from helpers.quiet import keras

    total = 0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            _, h, w, c_out = layer.output.shape
            total += 2 * h * w * c_out * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def matmul_peak(dtype: str, n: int = 2048, repeat: int = 10) -> float:
    """FLOP/s of an n x n matrix product in ``dtype``: the device's practical peak."""
    from helpers.quiet import tf

    a = tf.random.normal((n, n), dtype="float32")
    a = tf.cast(a, dtype)
    f = tf.function(lambda m: tf.matmul(m, m))
    f(a).numpy()
    start = time.perf_counter()
    for _ in range(repeat):
        out = f(a)
    out.numpy()
    return 2 * n**3 * repeat / (time.perf_counter() - start)


def one(config: str, size: int, batch: int, steps: int) -> dict:
    """Measure one configuration in this process."""
    import numpy as np

    from helpers import finetune as ft
    from helpers import models
    from helpers.quiet import keras, tf

    gpus = tf.config.list_physical_devices("GPU")
    mixed = "mixed_bfloat16"
    if gpus:
        major = tf.config.experimental.get_device_details(gpus[0]).get(
            "compute_capability", (8, 0)
        )[0]  # noqa: E501
        mixed = "mixed_bfloat16" if major >= 8 else "mixed_float16"
    policy = "float32" if config == "float32" else mixed
    dtype = "float32" if policy == "float32" else policy.split("_")[1]
    peak = max(matmul_peak(dtype, 1024, 10), matmul_peak(dtype, 2048, 5))  # before training
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    base = models.resnet_backbone((size, size, 3), width=32, depth=(1, 1, 1), bn_momentum=0.9)
    model = models.with_head(base, 10, frozen=True)
    ft.set_backbone_trainable(base, 2)
    ft.compile_classifier(model, 1e-4, jit_compile=config.endswith("xla"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (batch * 4, size, size, 3)).astype("float32")
    y = rng.integers(0, 10, batch * 4)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).repeat().prefetch(4)
    model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)  # warm-up (and XLA compile)
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    images_per_s = steps * batch / seconds
    flops = 3 * forward_flops(model)
    if gpus:
        memory_mb = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    else:
        memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "config": config,
        "policy": policy,
        "images_per_s": images_per_s,
        "step_ms": 1000 * seconds / steps,
        "train_gflop_per_image": flops / 1e9,
        "achieved_gflops": images_per_s * flops / 1e9,
        "matmul_peak_gflops": peak / 1e9,
        "fraction_of_peak": images_per_s * flops / peak,
        "peak_memory_mb": memory_mb,
        "device": gpus
        and tf.config.experimental.get_device_details(gpus[0]).get("device_name")
        or "CPU",  # noqa: E501
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.size, args.batch, args.steps)))
        return 0
    rows = []
    for config in ("float32", "mixed", "mixed+xla"):
        cmd = [sys.executable, __file__, "--one", config, "--size", str(args.size),
               "--batch", str(args.batch), "--steps", str(args.steps)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    from helpers.devices import cpu_name

    base = rows[0]["images_per_s"]
    lines = [
        f"Fine-tuning throughput, notebook 08's model at {args.size}x{args.size}x3, batch "
        f"{args.batch}, top 2 blocks unfrozen, {args.steps} timed steps",
        f"machine: {cpu_name()}, {platform.machine()}; device: {rows[0]['device']}"
        + ("" if rows[0]["device"] != "CPU" else " (no GPU on this machine)"),
        f"training cost: {rows[0]['train_gflop_per_image']:.4f} GFLOP per image (3x forward)",
        "",
        f"{'config':<10} {'policy':<15} {'img/s':>8} {'x f32':>6} {'ms/step':>8} "
        f"{'GFLOP/s':>8} {'peak':>8} {'of peak':>8} {'mem MB':>7}",
    ]
    for r in rows:
        lines.append(
            f"{r['config']:<10} {r['policy']:<15} {r['images_per_s']:8.0f} "
            f"{r['images_per_s'] / base:6.2f} {r['step_ms']:8.1f} {r['achieved_gflops']:8.1f} "
            f"{r['matmul_peak_gflops']:8.0f} {r['fraction_of_peak']:8.1%} "
            f"{r['peak_memory_mb']:7.0f}"
        )
    lines.append("")
    lines.append(
        "peak = the best of 1024 and 2048 square matmuls in the same dtype, same device, "
        "measured first; training FLOPs = 3x forward (an upper bound with frozen layers)"
    )
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
