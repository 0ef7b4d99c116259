"""The options every pipeline builder takes, in one object, checked once.

``build_dataset``, ``from_folder``, ``from_catalog``, ``from_arrays`` and
``read_tfrecords`` all shape their batches the same way; instead of each repeating the
same keyword arguments (and their checks), they take a :class:`PipelineOptions` and/or
the same names as keywords, which override it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

RESIZE_MODES = ("stretch", "crop", "pad")
LABEL_MODES = ("int", "categorical")
DEFAULT_IMAGE_SIZE = (32, 32)


class PipelineError(ValueError):
    """Bad input to the pipeline (no images, unknown option); nothing was built."""


@dataclass(frozen=True)
class PipelineOptions:
    """How images become batches; see ``helpers.pipeline.build_dataset`` for each stage.

    ``image_size`` (height, width) and ``channels`` (1 or 3) of None mean "from the
    source": arrays keep their own size and channels; files become 32x32 RGB.
    ``cache`` None means the source's default: in memory for files and arrays, none
    for TFRecord shards (meant for data that need not fit in memory).
    """

    image_size: Sequence[int] | None = None
    channels: int | None = None
    resize_mode: str = "stretch"
    antialias: bool = False
    batch_size: int = 32
    shuffle: bool = True
    shuffle_buffer: int = 10_000
    seed: int | None = None
    cache: bool | str | None = None
    augment: Callable | None = None
    normalize: object = "unit"
    label_mode: str = "int"
    drop_remainder: bool = False

    def __post_init__(self):
        if self.resize_mode not in RESIZE_MODES:
            raise PipelineError(
                f"resize_mode must be one of {RESIZE_MODES}, not {self.resize_mode!r}"
            )
        if self.channels not in (None, 1, 3):
            raise PipelineError(f"channels must be 1 (grayscale) or 3 (RGB), not {self.channels}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise PipelineError(
                f"batch_size must be an integer of at least 1, not {self.batch_size!r}"
            )
        if self.label_mode not in LABEL_MODES:
            raise PipelineError(f"label_mode must be one of {LABEL_MODES}, not {self.label_mode!r}")
        if self.image_size is not None:
            size = tuple(int(s) for s in self.image_size)
            if len(size) != 2 or min(size) < 1:
                raise PipelineError(f"image_size must be (height, width), not {self.image_size!r}")
            object.__setattr__(self, "image_size", size)

    @classmethod
    def of(cls, options: PipelineOptions | None = None, **overrides) -> PipelineOptions:
        """``options`` (or the defaults) with ``overrides`` applied; unknown names refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise PipelineError(f"unknown pipeline options {unknown}; known: {sorted(names)}")
        base = options if options is not None else cls()
        if not isinstance(base, cls):
            raise PipelineError(f"options must be a PipelineOptions, not {type(base).__name__}")
        return dataclasses.replace(base, **overrides)

    def resolved(self, *, image_size: Sequence[int], channels: int, cache: bool | str):
        """These options with the source's defaults filled in where they are None."""
        return dataclasses.replace(
            self,
            image_size=self.image_size if self.image_size is not None else tuple(image_size),
            channels=self.channels if self.channels is not None else channels,
            cache=self.cache if self.cache is not None else cache,
        )
