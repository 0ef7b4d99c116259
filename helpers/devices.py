"""Find the hardware, set it up the way training wants it, and say what to expect.

One call, :func:`setup_devices`, in every notebook's Setup section: it lists the CPU and
any GPUs (name, memory), turns on GPU memory growth (so one notebook does not take all
GPU memory from the next), picks mixed precision where the GPU has tensor cores, and
returns a ``tf.distribute`` strategy. It never fails on a CPU-only machine.

The hardware facts live here once: :func:`hardware` finds the CPU and GPUs without
configuring anything, :func:`versions` names the libraries, and :func:`environment` is the
one record of both that a run report or a model card keeps, so two runs or two saved
models can be told apart by where they ran.
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
    """The machine as :func:`hardware` found it, and what :func:`setup_devices` chose."""

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


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform module says."""
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


def hardware() -> DeviceInfo:
    """The CPU and the GPUs TensorFlow sees (name, memory, compute capability).

    Configures nothing (no memory growth, no precision policy, no strategy), so a run
    report can describe the machine without changing what its kernels will find.
    """
    from helpers.quiet import tf

    memories = _nvidia_smi_memory()
    gpus = []
    for i, device in enumerate(tf.config.list_physical_devices("GPU")):
        details = tf.config.experimental.get_device_details(device)
        gpus.append(
            GPU(
                name=details.get("device_name", device.name),
                memory_mb=memories[i] if i < len(memories) else None,
                compute_capability=details.get("compute_capability"),
            )
        )
    return DeviceInfo(cpu=cpu_name(), cpu_cores=os.cpu_count() or 1, gpus=gpus)


def device_name() -> str:
    """One line for a card or a printout: ``"2 x NVIDIA H100"``, else the CPU and its cores."""
    info = hardware()
    if info.gpus:
        return f"{len(info.gpus)} x {info.gpus[0].name}"
    return f"CPU: {info.cpu} ({info.cpu_cores} cores)"


def versions() -> dict[str, str | None]:
    """Python's and the numerical libraries' versions (None for one not installed)."""

    def version(module: str) -> str | None:
        try:
            return __import__(module).__version__
        except ImportError:
            return None

    return {
        "python": platform.python_version(),
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
        "numpy": version("numpy"),
    }


def environment() -> dict:
    """Where a run ran: :func:`versions`, the platform, and the CPU and GPU names.

    The run report's ``environment`` block starts with this record (the runner adds the
    profile, seed and commit), so two reports can be compared key by key.
    """
    info = hardware()
    return {
        **versions(),
        "platform": platform.platform(),
        "device": {
            "cpu": info.cpu,
            "cpu_cores": info.cpu_cores,
            "gpus": [gpu.name for gpu in info.gpus],
        },
    }


def setup_devices(mixed_precision: str | bool = "auto", verbose: bool = True) -> DeviceInfo:
    """Report and configure the devices; return a :class:`DeviceInfo` with a strategy.

    ``mixed_precision``: ``"auto"`` turns on ``mixed_float16`` on GPUs with compute
    capability 7.0 or higher; ``True``/``False`` force it on or off. Build models inside
    ``info.strategy.scope()`` so the same code uses one GPU, several, or the CPU.
    """
    from helpers.quiet import keras, tf

    for device in tf.config.list_physical_devices("GPU"):
        try:
            # Must happen before the GPU is first used; later it raises RuntimeError.
            tf.config.experimental.set_memory_growth(device, True)
        except RuntimeError:
            pass
    info = hardware()

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


# Compute capability 8.0 (Ampere) is the first with bfloat16 tensor cores: bfloat16 has
# float32's exponent range, so it needs no loss scaling; Volta and Turing get float16.
BFLOAT16_MIN_CAPABILITY = (8, 0)
# On a CPU, mixed_bfloat16 is chosen only where the CPU has native bfloat16 dot products
# (oneDNN uses AVX-512 BF16 or AMX) AND a benchmark file measured the course CNN training
# faster that way on such a CPU of the same vendor (AMD's and Intel's AVX-512 BF16 differ:
# 1.03-1.25x against 1.10x); the reason quotes that figure. Each entry, keyed by (vendor, flag):
# the mixed_bfloat16 / float32 training speed measured, where, and the file that holds it
# (tests check the figures against the files). AMX has no measurement yet, so a CPU is
# chosen by its AVX-512 BF16 (CPUs with AMX have it too).
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPU_BF16_MEASURED: dict[tuple[str, str], tuple[float, str, str]] = {
    ("Intel", "avx512_bf16"): (
        1.10,
        "an Intel Xeon with avx512_bf16, 2 cores, course CNN small, batch 256",
        "benchmarks/results/train_throughput.txt",
    ),
    ("AMD", "avx512_bf16"): (
        1.08,
        "an AMD EPYC with avx512_bf16, 2 cores, course CNN small (mean of two runs: 1.12x, "
        "1.03x; issue 29's tester saw 1.25x)",
        "benchmarks/results/train_throughput-amd-epyc-avx512bf16.txt",
    ),
}
# Without those flags bfloat16 is emulated (converted to float32 for every product): the
# same benchmark on an AVX2-only CPU, where the choice is float32.
CPU_BF16_EMULATED = (
    0.06,
    "an AMD EPYC with AVX2 only, 2 shared cores, course CNN small, batch 128",
    "benchmarks/results/train_throughput-amd-epyc-avx2.txt",
)
# A gain smaller than this is within the noise of a shared 2-core machine.
CPU_BF16_MIN_GAIN = 1.05
# float16 on a CPU is emulated as well, so a CPU never gets mixed_float16.


def cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports in /proc/cpuinfo (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_precision(
    gpus: list[GPU] | None = None,
    *,
    flags: set[str] | None = None,
    vendor: str | None = None,
    measure=None,
    apply: bool = True,
) -> tuple[str, str]:
    """Pick the Keras dtype policy for training here; return ``(policy, reason)``.

    From a known table: on GPUs, ``mixed_bfloat16`` from compute capability 8.0,
    ``mixed_float16`` on 7.x (tensor cores; Keras adds loss scaling under ``compile``),
    float32 below; on a CPU, ``mixed_bfloat16`` only when it has AVX-512 BF16 (or AMX) and
    :data:`CPU_BF16_MEASURED` holds a measured gain of at least :data:`CPU_BF16_MIN_GAIN`
    on such a CPU of the same vendor (``vendor``, default :func:`cpu_vendor`), float32
    otherwise. ``measure`` (a function ``policy -> images per
    second``) replaces the table by a measurement of each candidate, for hardware the
    table does not know. ``gpus`` defaults to what TensorFlow sees; ``flags`` to
    /proc/cpuinfo. ``apply`` sets the policy
    globally. The reason is one sentence a notebook prints.
    """
    from helpers.quiet import keras

    if gpus is None:
        gpus = hardware().gpus
    if measure is not None:
        candidates = ["float32", "mixed_bfloat16"] + (["mixed_float16"] if gpus else [])
        speeds = {policy: float(measure(policy)) for policy in candidates}
        policy = max(speeds, key=speeds.get)
        listed = ", ".join(f"{p} {s:,.0f} img/s" for p, s in speeds.items())
        reason = f"measured {listed}: {policy} is the fastest here"
    elif gpus:
        capabilities = [g.compute_capability or (0, 0) for g in gpus]
        slowest = min(capabilities)
        names = ", ".join(sorted({g.name for g in gpus}))
        cc = ".".join(map(str, slowest))
        if slowest >= BFLOAT16_MIN_CAPABILITY:
            policy = "mixed_bfloat16"
            reason = f"{names} (compute capability {cc}) has bfloat16 tensor cores"
        elif slowest >= MIXED_PRECISION_MIN_CAPABILITY:
            policy = "mixed_float16"
            reason = (
                f"{names} (compute capability {cc}) has float16 tensor cores but no "
                "bfloat16 ones; Keras scales the loss under compile"
            )
        else:
            policy = "float32"
            reason = f"{names} (compute capability {cc}) has no tensor cores"
    else:
        flags = cpu_flags() if flags is None else set(flags)
        policy, reason = _cpu_precision(flags, cpu_vendor() if vendor is None else vendor)
    if apply:
        keras.mixed_precision.set_global_policy(policy)
    return policy, reason


def cpu_vendor(name: str | None = None) -> str:
    """``"AMD"``, ``"Intel"`` or ``"other"``, from the CPU's model name."""
    name = cpu_name() if name is None else name
    return next((v for v in ("AMD", "Intel") if v.lower() in name.lower()), "other")


def _cpu_precision(flags: set[str], vendor: str) -> tuple[str, str]:
    """The CPU row of :func:`choose_precision`'s table, its reason quoting the file."""
    found = [f for f in CPU_BF16_FLAGS if f in flags]
    measured = [
        (f, *CPU_BF16_MEASURED[vendor, f]) for f in found if (vendor, f) in CPU_BF16_MEASURED
    ]
    best = max(measured, key=lambda row: row[1], default=None)
    if best and best[1] >= CPU_BF16_MIN_GAIN:
        flag, gain, where, source = best
        return "mixed_bfloat16", (
            f"no GPU; this CPU has {' and '.join(found)}, and mixed_bfloat16 trained "
            f"{gain:.2f}x float32's speed on {where} ({source})"
        )
    if best:
        flag, gain, where, source = best
        return "float32", (
            f"no GPU; this CPU has {flag}, but mixed_bfloat16 measured only {gain:.2f}x "
            f"float32 on {where} ({source})"
        )
    if found:
        return "float32", (
            f"no GPU; this {vendor} CPU has {' and '.join(found)}, but no benchmark here has "
            f"measured bfloat16 paying on a {vendor} CPU: run benchmarks/train_throughput.py, "
            "or pass measure="
        )
    gain, where, source = CPU_BF16_EMULATED
    return "float32", (
        "no GPU, and this CPU has no AVX-512 BF16 or AMX, so bfloat16 is emulated: "
        f"{gain:.2f}x float32 on {where} ({source})"
    )
