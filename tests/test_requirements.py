"""The pinned requirement files stay in step with each other and with pyproject.toml.

requirements-gpu.txt is written by hand next to requirements.txt; a pin added to one
and forgotten in the other breaks GPU installs, which CI never tries. So: the same
pins, except that the GPU file has the CUDA build of TensorFlow where the CPU file has
tensorflow-cpu, and every pinned package the code needs is a dependency in pyproject.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TENSORFLOW = {"tensorflow-cpu", "tensorflow[and-cuda]"}
# Pinned for the tests and the interactive course, not needed by `import helpers`.
NOT_RUNTIME = {
    "jupyterlab",
    "ipykernel",
    "pytest",
    "pytest-xdist",
    "pytest-timeout",
    "nbval",
    "playwright",
    "ruff",
    "import-linter",
    "tensorflow-cpu",
}


def pins(name: str, root: Path = ROOT) -> dict[str, str]:
    """``{package: version}`` from a requirements file; fails on a line that is not a pin."""
    found = {}
    for number, line in enumerate((root / name).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line or line == "-e .":
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([\w.]+)", line)
        assert match, f"{name}:{number}: {line!r} is not an exact pin (name==version)"
        found[match[1].lower()] = match[2]
    return found


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.lower())


def test_gpu_requirements_differ_only_in_the_tensorflow_build():
    cpu, gpu = pins("requirements.txt"), pins("requirements-gpu.txt")
    assert cpu["tensorflow-cpu"] == gpu["tensorflow[and-cuda]"]
    assert {k: v for k, v in cpu.items() if k not in TENSORFLOW} == {
        k: v for k, v in gpu.items() if k not in TENSORFLOW
    }


def test_pyproject_depends_on_every_pinned_runtime_package():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the same parser, from PyPI (a dependency there, see pyproject)
        import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        normalized(re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0]) for dep in project["dependencies"]
    }
    pinned = {normalized(k) for k in pins("requirements.txt") if k not in NOT_RUNTIME}
    assert pinned <= declared, f"pinned but not in pyproject dependencies: {pinned - declared}"


def test_a_range_is_not_taken_for_a_pin(tmp_path):
    (tmp_path / "loose.txt").write_text("keras==3.15.1\nnumpy>=1.0\n")
    with pytest.raises(AssertionError, match="loose.txt:2: 'numpy>=1.0' is not an exact pin"):
        pins("loose.txt", tmp_path)
