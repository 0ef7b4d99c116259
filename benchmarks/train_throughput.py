"""Training images per second of the course CNN, per precision and with XLA, and the
fraction of the device's peak FLOP rate reached.

    python benchmarks/train_throughput.py [--size small] [--batch 256] [--steps 30]
        [--peak-gflops N] [--note TEXT] [--out benchmarks/results/train_throughput.txt]

On a CPU: float32, mixed_bfloat16, and both with ``jit_compile=True`` (passed
explicitly: Keras's ``"auto"`` turns XLA off on CPUs and under every distribution
strategy). On a GPU also mixed_float16 and mixed_float16 + XLA. Each configuration
builds a fresh model, traces and warms up on a few steps, then times ``--steps`` steps
of ``train_on_batch`` on in-memory batches (the input pipeline is benchmarked in
``pipeline_throughput.py``). One training step costs about three forward passes
(forward, gradient with respect to the activations, and to the weights), so the FLOP
rate is 3 x forward FLOPs per image (counted from the model by TensorFlow's profiler)
x images per second. The peak is estimated from the hardware (see :func:`peak_gflops`)
unless ``--peak-gflops`` gives it; the figures print as ``name: value`` lines and go to
``--out`` as well, headed by the CPU's name and the feature flags that decide its
peak and its bfloat16 support (``helpers.devices.choose_precision`` reads these files:
AMD EPYC and Intel Xeon differ). ``--note`` adds a line, e.g. that the machine was shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import models as M  # noqa: E402
from helpers.devices import cpu_flags  # noqa: E402
from helpers.pretrain.speed import GPU_PEAK_FLOPS  # noqa: E402
from helpers.quiet import keras, tf  # noqa: E402


def _cpu_ghz() -> float:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            mhz = [float(line.split(":")[1]) for line in fh if line.startswith("cpu MHz")]
        return max(mhz) / 1000 if mhz else 2.0
    except OSError:
        return 2.0


def peak_gflops(policy: str, gpu_name: str | None) -> tuple[float | None, str]:
    """An estimate of the device's peak rate for ``policy`` and how it was made.

    CPU: cores x clock x FLOPs per cycle per core: 64 in float32 with AVX-512 (two
    16-wide FMA units), twice that in bfloat16 with AVX512_BF16 (VDPBF16PS packs two
    products per lane); AMX is not counted, so a CPU with AMX may exceed "100%" of this
    estimate in bfloat16. GPU: the data-sheet figure of a known model.
    """
    if gpu_name:
        for name, (fp32, tensor) in GPU_PEAK_FLOPS.items():
            if name in gpu_name:
                value = fp32 if policy == "float32" else tensor
                return value / 1e9, f"{name} data sheet"
        return None, f"unknown GPU {gpu_name!r}: pass --peak-gflops"
    cores, ghz, flags = os.cpu_count() or 1, _cpu_ghz(), cpu_flags()
    per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags else 16
    if policy == "mixed_bfloat16" and "avx512_bf16" in flags:
        per_cycle *= 2
    return cores * ghz * per_cycle, f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle"


def measure(policy, jit, size, batch, steps, shape=(32, 32, 3), classes=10):
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model = M.build_model("course_cnn", input_shape=shape, num_classes=classes, size=size)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.2),
        jit_compile=jit,
    )
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, 256, (batch, *shape)).astype(np.float32))
    y = tf.one_hot(rng.integers(0, classes, batch), classes)
    for _ in range(3):  # trace, compile (XLA) and warm up
        model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    seconds = time.perf_counter() - t
    assert np.isfinite(loss)
    flops = M.count_flops(model)
    keras.mixed_precision.set_global_policy("float32")
    return batch * steps / seconds, flops


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="small", choices=list(M.COURSE_CNN_SIZES))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--peak-gflops", type=float)
    parser.add_argument("--note", help="a line for the results file, e.g. the machine's load")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results/train_throughput.txt")
    )
    args = parser.parse_args(argv)

    gpus = tf.config.list_physical_devices("GPU")
    gpu_name = None
    if gpus:
        gpu_name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    configs = [("float32", False), ("mixed_bfloat16", False), ("float32", True),
               ("mixed_bfloat16", True)]  # fmt: skip
    if gpus:
        configs += [("mixed_float16", False), ("mixed_float16", True)]
    from helpers.devices import cpu_name

    device = gpu_name or f"{cpu_name()} ({os.cpu_count()} cores)"
    flags = cpu_flags()
    shown = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    lacking = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f not in flags]
    lines = [
        f"device: {gpu_name or cpu_name()} ({os.cpu_count()} CPU cores)",
        f"cpu: {cpu_name()}; flags: {' '.join(shown) or 'none of avx/amx/fma'}"
        + (f"; lacks {', '.join(lacking)}" if lacking else ""),
        f"gpu: {gpu_name or 'none found: CPU only, so no mixed_float16 or GPU XLA figures'}",
        f"tensorflow: {tf.__version__}, keras: {keras.__version__}",
        f"model: course_cnn size {args.size}, batch {args.batch}, {args.steps} timed steps",
    ]
    if args.note:
        lines.append(f"note: {args.note}")
    lines.append(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n".join(lines), flush=True)
    speeds = {}
    for policy, jit in configs:
        name = policy + (" + XLA" if jit else "")
        try:
            speed, flops = measure(policy, jit, args.size, args.batch, args.steps)
        except Exception as exc:  # noqa: BLE001 - a configuration this device lacks
            line = f"{name}: failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
            print(line, flush=True)
            lines.append(line)
            continue
        speeds[name] = speed
        peak, how = (
            (args.peak_gflops, "given") if args.peak_gflops else peak_gflops(policy, gpu_name)
        )
        achieved = 3 * flops * speed / 1e9
        fraction = f"{achieved / peak:.1%} of {peak:,.0f} GFLOP/s ({how})" if peak else how
        line = (
            f"{name}: {speed:,.0f} images/s, {achieved:,.1f} GFLOP/s "
            f"({flops / 1e6:.1f} MFLOP forward per image), {fraction}"
        )
        print(line, flush=True)
        lines.append(line)
    base = speeds.get("float32")
    if base:
        for name, speed in speeds.items():
            if name != "float32":
                lines.append(f"ratio {name} / float32: {speed / base:.2f}x")
                print(lines[-1])
    lines.append(f"measured on: {device}, {time.strftime('%Y-%m-%d')}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
