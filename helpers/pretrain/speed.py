"""How fast a pretraining run goes: the batch that fills the device, images per second,
peak memory, and the fraction of the device's peak FLOP rate reached."""

from __future__ import annotations

import os
import resource

import numpy as np

from helpers import distribute as dist
from helpers.quiet import tf
from helpers.train import make_optimizer

# Dense peak rates in FLOP/s (a multiply-add counts as 2) from the vendors' data sheets:
# (float32 without tensor cores, the 16-bit tensor-core rate mixed precision can reach).
GPU_PEAK_FLOPS = {
    "H200": (67e12, 989e12),
    "H100": (67e12, 989e12),
    "A100": (19.5e12, 312e12),
    "A10G": (31.2e12, 125e12),
    "A10": (31.2e12, 125e12),
    "L40S": (91.6e12, 362e12),
    "L4": (30.3e12, 121e12),
    "V100": (15.7e12, 125e12),
    "T4": (8.1e12, 65e12),
    "RTX 4090": (82.6e12, 165e12),
    "RTX 3090": (35.6e12, 71e12),
}


def peak_flops(precision: str = "float32") -> tuple[float | None, str]:
    """The device's peak FLOP rate for ``precision`` and where the figure comes from.

    GPUs: the data-sheet table above, matched by name. A CPU: cores x clock x FLOPs per
    cycle per core, 64 in float32 with AVX-512 (two FMA units of 16 lanes), 32 with AVX2,
    twice that in bfloat16 with AVX-512 BF16 (its dot products do two per lane); the
    clock is the one Linux reports now, so the figure is an estimate.
    """
    from helpers.devices import cpu_flags

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
        for key, (fp32, half) in GPU_PEAK_FLOPS.items():
            if key in name:
                rate = half if precision.startswith("mixed") else fp32
                return rate * len(gpus), f"{len(gpus)} x {name}, data sheet"
        return None, f"{name}: not in GPU_PEAK_FLOPS; add its data-sheet figures"
    flags = cpu_flags()
    per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags else 8
    if precision == "mixed_bfloat16" and "avx512_bf16" in flags:
        per_cycle *= 2
    mhz = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            mhz = [float(line.split(":")[1]) for line in fh if line.startswith("cpu MHz")]
    except OSError:
        pass
    if not mhz:
        return None, "CPU clock unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ghz = float(np.mean(mhz)) / 1000
    rate = cores * ghz * 1e9 * per_cycle
    return rate, f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle (estimate)"


def choose_jit_compile(setting: bool | str = "auto", gpus=None) -> tuple[bool, str]:
    """Whether to compile the training step with XLA (``jit_compile``), and why.

    ``"auto"``: on with a GPU, where XLA fuses the step's operations into a few kernels
    (Keras's own ``"auto"`` would turn it off under any distribution strategy); off on a
    CPU, where XLA never paid: the course CNN trained at 0.41x to 0.97x of its speed
    without XLA, at the same precision, on the 2-core CPUs of
    ``benchmarks/results/train_throughput*.txt`` (only emulated bfloat16, which
    ``helpers.devices`` never picks, ran faster with it). ``True`` or ``False`` is kept.
    ``gpus`` defaults to the GPUs TensorFlow sees.
    """
    if setting != "auto":
        return bool(setting), "as given"
    if gpus is None:
        gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return True, "a GPU: XLA fuses the step into a few kernels"
    return False, (
        "no GPU: on 2-core CPUs XLA trained the course CNN at 0.41x-0.97x of its speed "
        "without it (benchmarks/results/train_throughput*.txt)"
    )


def peak_memory_mb() -> tuple[float | None, str]:
    """Peak GPU memory TensorFlow allocated on GPU 0, else the process's peak resident
    memory (what a CPU run holds)."""
    if tf.config.list_physical_devices("GPU"):
        info = tf.config.experimental.get_memory_info("GPU:0")
        return info["peak"] / 2**20, "GPU:0 peak allocated"
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024, "process peak resident memory (no GPU)"


def speed_report(log: dist.TrainLog, global_batch: int, flops_per_image: int, precision: str):
    """Images per second, step time, peak memory and the fraction of peak FLOP rate reached.

    Training costs about 3x the forward pass (forward, then gradients for activations
    and for weights), the usual rule for the FLOPs a training step does.
    """
    rate = log.images_per_second(global_batch) or 0.0
    peak, peak_source = peak_flops(precision)
    memory, memory_source = peak_memory_mb()
    achieved = 3 * flops_per_image * rate
    return {
        "images_per_second": round(rate, 1),
        "step_seconds": round(log.step_time() or 0.0, 4),
        "peak_memory_mb": round(memory, 1) if memory else None,
        "peak_memory_of": memory_source,
        "achieved_gflops": round(achieved / 1e9, 2),
        "peak_gflops": round(peak / 1e9, 1) if peak else None,
        "peak_of": peak_source,
        "fraction_of_peak": round(achieved / peak, 4) if peak else None,
    }


def measure_throughput(
    build_model, x, y, global_batch: int, strategy=None, jit_compile=True, steps: int = 5
) -> float:
    """Training images per second at ``global_batch``: a fresh model, ``steps`` timed steps
    after two that trace and compile."""
    epoch_data, per_epoch = dist.array_epochs(x, y, global_batch)

    def optimizer(total: int):
        return make_optimizer("sgd", 0.01, total_steps=total, warmup=0.1, weight_decay=5e-4)

    trainer = dist.Trainer(
        build_model, optimizer, strategy=strategy, global_batch=global_batch,
        num_classes=int(np.max(y)) + 1, total_steps=steps + 2, jit_compile=jit_compile,
    )  # fmt: skip
    log = trainer.fit(epoch_data, per_epoch, verbose=False)
    return float(log.images_per_second(global_batch))


def probe_batch_size(measure, candidates=(64, 128, 256, 512, 1024, 2048), *, gain: float = 1.05):
    """The batch that fills the device: try ``candidates`` in order with ``measure(batch)``
    (images per second at that global batch, e.g. :func:`measure_throughput`), keep the
    fastest, stop at the first out-of-memory error or when the rate gains less than
    ``gain`` (5%). Returns ``(batch, {batch: images per second})``.
    """
    rates: dict[int, float] = {}
    best = None
    for batch in candidates:
        try:
            rates[batch] = float(measure(batch))
        except (tf.errors.ResourceExhaustedError, tf.errors.InternalError, MemoryError):
            break
        if best is not None and rates[batch] < gain * rates[best]:
            break
        best = batch
    if best is None:
        raise RuntimeError(f"no batch of {list(candidates)} fits this device; try smaller ones")
    return best, rates
