"""Upstream faults the course routes around, checked against the installed TensorFlow:
each test fails when upstream changes, so the workaround can go."""

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.devices import cpu_flags

REPRO = Path(__file__).resolve().parents[1] / "benchmarks" / "onednn_strided_1x1_repro.py"


def _vendor() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return ""
    vendors = [line.split(":")[1].strip() for line in text.splitlines() if "vendor_id" in line]
    return vendors[0] if vendors else ""


def run_repro(how: str, batch: int = 25) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPRO), how, str(batch)], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_the_route_around_trains_on_an_odd_batch_on_any_cpu():
    done = run_repro("subsample")
    assert done.returncode == 0 and "no crash" in done.stdout, done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(
    not ({"avx512f", "avx512_bf16"} <= cpu_flags() and _vendor() == "AuthenticAMD"),
    reason="measured on an AMD EPYC with AVX-512 (BF16): other CPUs take other oneDNN kernels",
)
def test_onednn_still_crashes_training_a_strided_one_by_one_convolution_on_an_odd_batch():
    done = run_repro("strided")
    assert done.returncode != 0, (
        "the strided 1x1 convolution trained on an odd batch without crashing: upstream "
        "(TensorFlow's oneDNN) may have fixed issue 25's fault. Check it on this CPU, then "
        "let helpers.models._residual use a strided projection again and retire this test."
    )
