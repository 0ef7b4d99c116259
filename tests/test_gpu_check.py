"""benchmarks/gpu_check.sh: its CPU dry run goes through every step and reports each."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ["machine", "train_throughput", "photos", "06_cnn", "07_pretrain", "08_finetune",
            "summary"]  # fmt: skip


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_section(tmp_path):
    out = tmp_path / "report"
    # A hang guard only (tests never bound speed): the dry run takes a few minutes.
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)},
    )
    report = out / "gpu-cpu-dry-run.txt"
    assert report.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    text = report.read_text(encoding="utf-8")
    assert done.returncode == 0, text[-4000:]
    for name in SECTIONS:
        assert f"\n## {name}\n" in text, f"no section {name}"
    assert "DRY RUN" in text and "all steps passed: yes" in text
    for step in ("train_throughput", "photos", "06_cnn", "07_pretrain", "08_finetune"):
        assert f"{step}: ok" in text, text[-4000:]
    # The versions without a TensorFlow start-up; TensorFlow's own view heads step 1.
    assert "installed: tensorflow" in text and "gpu: none found" in text
    # Throughput per precision, with XLA, and the fraction of peak.
    for config in ("float32:", "mixed_bfloat16:", "float32 + XLA:", "mixed_bfloat16 + XLA:"):
        assert config in text and "% of " in text.split(config, 1)[1].splitlines()[0]
    assert "union train: 1000 photos" in text
    # The work folder is gone and the project's results were not touched.
    assert not list(tmp_path.glob("gpu-check.*"))
    assert not (ROOT / "benchmarks" / "results" / "gpu-cpu-dry-run.txt").exists()
