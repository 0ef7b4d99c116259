"""Find the hardware, set it up the way training wants it, and say what to expect.

One call, :func:`setup_devices`, in every notebook's Setup section: it lists the CPU and
any GPUs (name, memory), turns on GPU memory growth (so one notebook does not take all
GPU memory from the next), picks mixed precision where the GPU has tensor cores, and
returns a ``tf.distribute`` strategy. It never fails on a CPU-only machine.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field

# Compute capability 7.0 (Volta) is the first with tensor cores, where float16 matmuls
# are several times faster; older GPUs gain nothing from mixed precision.
MIXED_PRECISION_MIN_CAPABILITY = (7, 0)


@dataclass
class GPU:
    name: str
    memory_mb: int | None
    compute_capability: tuple[int, int] | None


@dataclass
class DeviceInfo:
    """What :func:`setup_devices` found and chose."""

    cpu: str
    cpu_cores: int
    gpus: list[GPU] = field(default_factory=list)
    precision: str = "float32"
    strategy: object = None

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def replicas(self) -> int:
        return int(getattr(self.strategy, "num_replicas_in_sync", 1))

    def summary(self) -> str:
        lines = [f"CPU: {self.cpu} ({self.cpu_cores} cores)"]
        for i, gpu in enumerate(self.gpus):
            mem = f"{gpu.memory_mb / 1024:.1f} GiB" if gpu.memory_mb else "memory unknown"
            cc = ".".join(map(str, gpu.compute_capability)) if gpu.compute_capability else "?"
            lines.append(f"GPU {i}: {gpu.name}, {mem}, compute capability {cc}")
        strategy = type(self.strategy).__name__ if self.strategy is not None else "none"
        lines.append(
            f"precision policy: {self.precision}; strategy: {strategy} ({self.replicas} replica(s))"
        )
        if not self.gpus:
            lines.append(
                "No GPU found: everything runs on the CPU. The smoke and laptop profiles are "
                "sized for a 2-core CPU (minutes per notebook); the full profile wants a GPU "
                "(see the README's GPU section for cloud notebooks)."
            )
        return "\n".join(lines)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_smi_memory() -> list[int]:
    """Total memory per GPU in MiB as nvidia-smi reports it, or [] without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return [int(x) for x in out.split()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return []


def setup_devices(mixed_precision: str | bool = "auto", verbose: bool = True) -> DeviceInfo:
    """Report and configure the devices; return a :class:`DeviceInfo` with a strategy.

    ``mixed_precision``: ``"auto"`` turns on ``mixed_float16`` on GPUs with compute
    capability 7.0 or higher; ``True``/``False`` force it on or off. Build models inside
    ``info.strategy.scope()`` so the same code uses one GPU, several, or the CPU.
    """
    from helpers.quiet import keras, tf

    info = DeviceInfo(cpu=_cpu_name(), cpu_cores=os.cpu_count() or 1)
    physical = tf.config.list_physical_devices("GPU")
    memories = _nvidia_smi_memory()
    for i, device in enumerate(physical):
        try:
            # Must happen before the GPU is first used; later it raises RuntimeError.
            tf.config.experimental.set_memory_growth(device, True)
        except RuntimeError:
            pass
        details = tf.config.experimental.get_device_details(device)
        info.gpus.append(
            GPU(
                name=details.get("device_name", device.name),
                memory_mb=memories[i] if i < len(memories) else None,
                compute_capability=details.get("compute_capability"),
            )
        )

    if mixed_precision == "auto":
        use_mixed = bool(info.gpus) and all(
            g.compute_capability and g.compute_capability >= MIXED_PRECISION_MIN_CAPABILITY
            for g in info.gpus
        )
    else:
        use_mixed = bool(mixed_precision)
    info.precision = "mixed_float16" if use_mixed else "float32"
    keras.mixed_precision.set_global_policy(info.precision)

    if len(info.gpus) > 1:
        info.strategy = tf.distribute.MirroredStrategy()
    else:
        info.strategy = tf.distribute.get_strategy()
    if verbose:
        print(info.summary())
    return info
