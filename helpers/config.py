"""Profiles, paths and seeds: the three things every notebook sets up first.

A profile is chosen by one environment variable, ``COURSE_PROFILE``:

- ``smoke``: the tests; tiny data, each notebook well under a minute on 2 CPU cores;
- ``laptop``: the default; real results on a 2-core CPU, a few minutes per notebook;
- ``full``: full-size public data sets (needs the internet once), meant for a GPU.

Notebooks read their knobs with :meth:`Profile.choose`, so a notebook's parameters
cell stays one line per knob and the three sizes sit side by side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

PROFILE_ENV = "COURSE_PROFILE"
DATA_DIR_ENV = "COURSE_DATA_DIR"
DEFAULT_PROFILE = "laptop"
DEFAULT_SEED = 42


@dataclass(frozen=True)
class Profile:
    """A named size for the whole course; see the module docstring."""

    name: str
    description: str

    def choose(self, *, smoke: T, laptop: T, full: T) -> T:
        """Return the value for this profile: ``EPOCHS = P.choose(smoke=1, laptop=10, full=40)``."""
        return {"smoke": smoke, "laptop": laptop, "full": full}[self.name]

    @property
    def online(self) -> bool:
        """Whether this profile expects public data sets that need a download."""
        return self.name == "full"

    def __str__(self) -> str:
        return f"profile {self.name!r}: {self.description}"


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", "tests; tiny data, seconds per notebook"),
    "laptop": Profile("laptop", "the default; real results on a 2-core CPU, minutes per notebook"),
    "full": Profile("full", "full-size public data sets; meant for a GPU"),
}


class ProfileError(ValueError):
    """An unknown profile name."""


def get_profile(name: str | None = None) -> Profile:
    """Return the profile named ``name``, else ``$COURSE_PROFILE``, else ``laptop``.

    An unknown name raises :class:`ProfileError` naming the valid ones, so a typo such
    as ``COURSE_PROFILE=smok`` fails at the first cell instead of silently running the
    default.
    """
    raw = name if name is not None else os.environ.get(PROFILE_ENV, "")
    key = raw.strip().lower() or DEFAULT_PROFILE
    if key not in PROFILES:
        valid = ", ".join(PROFILES)
        raise ProfileError(
            f"Unknown profile {raw!r} (from {PROFILE_ENV} or the argument). "
            f"Valid profiles: {valid}. Unset {PROFILE_ENV} for the default, {DEFAULT_PROFILE!r}."
        )
    return PROFILES[key]


def project_root() -> Path:
    """The folder that holds ``helpers/``, ``notebooks/`` and ``data/``."""
    return Path(__file__).resolve().parent.parent


def data_dir(*parts: str, create: bool = True) -> Path:
    """A folder under the course's data directory (``$COURSE_DATA_DIR`` or ``<root>/data``).

    Everything the course downloads, generates or catalogs lives here, never at a
    machine-specific path, so a teacher can point a whole class at a shared disk with
    one environment variable.
    """
    base = os.environ.get(DATA_DIR_ENV)
    path = Path(base).expanduser() if base else project_root() / "data"
    path = path.joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def seed_everything(seed: int = DEFAULT_SEED, *, deterministic: bool = False) -> int:
    """Seed Python's ``random``, NumPy and TensorFlow with ``keras.utils.set_random_seed``.

    On the CPU, the same profile and seed then give the same metrics run after run
    (tests/test_config.py checks this with a tiny fit done twice). GPUs may still
    differ in the last digits because some kernels reduce in a nondeterministic order;
    ``deterministic=True`` also calls ``tf.config.experimental.enable_op_determinism``,
    which makes them repeatable at some cost in speed (and raises on ops that have no
    deterministic kernel), for the runs that must match bit for bit.
    """
    os.environ["PYTHONHASHSEED"] = str(seed)
    from helpers.quiet import keras, tf

    keras.utils.set_random_seed(seed)  # seeds random, NumPy and TensorFlow together
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return seed
