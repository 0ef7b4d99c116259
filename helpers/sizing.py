"""The side of the square images a model trains on, chosen from a time budget.

A learner's own photos are rarely 32x32 thumbnails: phone photos are 3000x4000, a
downloaded set is often 320x240. Trained at their own size, a CNN's cost per image
and its activations' memory grow with the pixels: 240x320 is 75 times 32x32, so a
notebook planned for minutes runs for hours and a laptop runs out of memory (an outside
tester measured notebook 06 at 10.8 GB after 19 minutes on five classes of flowers).

:func:`choose_image_size` takes the largest side from :data:`SIDES` that is no larger
than the photos themselves and lets ``epochs`` passes over the training images fit in
the budget, from a measured speed at 32x32 scaled by the pixel count (a convolution's
work is proportional to it). The batch shrinks as the side grows so that a batch holds
at most :data:`PIXELS_PER_BATCH` pixels, which bounds the activations' memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

SIDES = (32, 48, 64, 96, 128, 160, 192, 224)  # candidate sides, small to large
PIXELS_PER_BATCH = 256 * 64 * 64  # the pixels of 4 laptop batches (256 images) at 32x32
SMALLEST_BATCH = 16


@dataclass(frozen=True)
class ImageSize:
    """The chosen (height, width) and batch, and the reason to print."""

    shape: tuple[int, int]
    batch_size: int
    reason: str


def batch_for(side: int, batch_size: int) -> int:
    """``batch_size``, halved until a batch of ``side`` x ``side`` images holds at most
    :data:`PIXELS_PER_BATCH` pixels (never below :data:`SMALLEST_BATCH`)."""
    while batch_size > SMALLEST_BATCH and batch_size * side * side > PIXELS_PER_BATCH:
        batch_size //= 2
    return batch_size


def measure_images_per_second(model, batch_size: int = 64, steps: int = 4) -> float:
    """Training images per second of ``model`` (built for 32x32 inputs, compiled here
    with SGD when it is not) on random 32x32 pixels: one step to trace, then ``steps``
    timed. The course's models take any size and resize inside, so the input is made
    32x32 here, not read from the model."""
    if not model.compiled:
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch_size, 32, 32, model.input_shape[-1])).astype("float32")
    y = rng.integers(0, model.output_shape[-1], batch_size)
    model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch_size / (time.perf_counter() - started)


def choose_image_size(
    native: tuple[int, int],
    train_images: int,
    budget_min: float,
    epochs: int,
    batch_size: int,
    images_per_second_32: float | None = None,
    *,
    side: int | None = None,
) -> ImageSize:
    """The side to train at for photos whose most common size is ``native`` (height,
    width): the largest of :data:`SIDES` up to the photos' shorter side whose ``epochs``
    passes over ``train_images`` fit in ``budget_min`` at ``images_per_second_32``
    (measured at 32x32, see :func:`measure_images_per_second`; it is only needed for
    photos larger than 32 pixels). Photos no larger than 32 pixels keep their own size.
    ``side`` given is used as it is (the reason says so). The batch is
    :func:`batch_for` the side."""
    shorter = min(native)
    if side is not None:
        if side < 8:
            raise ValueError(f"IMAGE_SIZE must be at least 8 pixels, not {side}")
        why = f"{side}x{side}, set by IMAGE_SIZE (the photos are mostly {native[0]}x{native[1]})"
    elif max(native) <= SIDES[0]:
        why = f"{native[0]}x{native[1]}: the photos' own size"
        return ImageSize(tuple(native), batch_size, why)
    else:
        if not images_per_second_32 or images_per_second_32 <= 0:
            raise ValueError("photos larger than 32 pixels need a measured images_per_second_32")
        budget_s = budget_min * 60

        def minutes(s: int) -> float:
            return epochs * train_images * (s / 32) ** 2 / images_per_second_32 / 60

        candidates = [s for s in SIDES if s <= shorter] or [SIDES[0]]
        fits = [s for s in candidates if minutes(s) * 60 <= budget_s]
        side = fits[-1] if fits else SIDES[0]
        larger = [s for s in candidates if s > side]
        why = (
            f"{side}x{side} for photos mostly {native[0]}x{native[1]}: {epochs} epochs of "
            f"{train_images:,} images take an estimated {minutes(side):.1f} of "
            f"{budget_min:g} minutes (measured {images_per_second_32:,.0f} images/s at "
            "32x32; the cost grows with the pixels)"
        )
        if larger:
            why += f"; {larger[0]}x{larger[0]} would take {minutes(larger[0]):.1f}"
        if not fits:
            why += "; even the smallest side does not fit: raise the budget or use fewer photos"
    batch = batch_for(side, batch_size)
    if batch < batch_size:
        why += f"; batch {batch} (not {batch_size}), to bound the memory"
    return ImageSize((side, side), batch, why)
