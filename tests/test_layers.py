"""The package's layering holds: import-linter's contracts pass, a backward import fails
them, and the command line answers without loading TensorFlow."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def lint_with_line_added(tmp_path, module: str, line: str) -> subprocess.CompletedProcess:
    """lint-imports over a copy of the package with ``line`` appended to ``module``."""
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "helpers", tmp_path / "helpers", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "helpers" / f"{module.replace('.', '/')}.py"
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    return lint(tmp_path)


def test_a_backward_import_breaks_the_flow_contract(tmp_path):
    result = lint_with_line_added(
        tmp_path, "catalog.store", "from helpers.pipeline import ImageList"
    )
    assert result.returncode == 1
    assert "helpers.catalog is not allowed to import helpers.pipeline" in result.stdout


def test_scratch_importing_tensorflow_breaks_its_contract(tmp_path):
    result = lint_with_line_added(tmp_path, "scratch", "import tensorflow")
    assert result.returncode == 1
    assert "helpers.scratch is not allowed to import tensorflow" in result.stdout


def modules_loaded_by(*argv: str) -> tuple[int, set[str]]:
    """Run ``python -m helpers ARGV`` in a fresh process; its exit code and heavy imports."""
    probe = (
        "import sys\n"
        "from helpers.__main__ import main\n"
        f"code = main({list(argv)!r})\n"
        "heavy = {'tensorflow', 'keras', 'sklearn', 'matplotlib'} & set(sys.modules)\n"
        "print('LOADED', sorted(heavy))\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("LOADED"))
    return result.returncode, set(eval(line.removeprefix("LOADED ")))


@pytest.mark.slow  # fresh Python processes
def test_check_strip_and_a_bad_profile_answer_without_tensorflow(tmp_path):
    code, loaded = modules_loaded_by("check", str(ROOT / "notebooks" / "00_setup.ipynb"))
    assert code == 0 and "tensorflow" not in loaded and "keras" not in loaded
    copy = tmp_path / "00_setup.ipynb"
    shutil.copy(ROOT / "notebooks" / "00_setup.ipynb", copy)
    code, loaded = modules_loaded_by("strip", str(copy))
    assert code == 0 and "tensorflow" not in loaded
    result = subprocess.run(
        [sys.executable, "-m", "helpers", "run", "--profile", "smok"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "smoke" in result.stderr


def test_the_catalog_and_the_widgets_load_without_tensorflow():
    probe = (
        "import sys\n"
        "import helpers, helpers.catalog, helpers.labeling, helpers.quality, helpers.formats\n"
        "print('tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "False", result.stderr
