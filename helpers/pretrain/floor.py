"""The accuracy floor a pretraining run must reach: a multiple of chance, capped, so that
it means the same for 5 classes as for 128."""

from __future__ import annotations


def accuracy_floor(num_classes: int, times_chance: float) -> float:
    """The source test accuracy a run must reach: ``times_chance`` times chance
    (``1 / num_classes``), capped halfway between chance and a perfect score.

    A multiple of chance says the same thing for any class count ("3 times better than
    guessing"), but alone it asks 2 classes for more than 1.0 at ``times_chance=3``; the
    cap keeps every floor reachable, and above chance whenever ``times_chance > 1``.
    ``times_chance=0`` (the smoke profile, too few steps to beat chance) checks nothing.
    """
    if num_classes < 2:
        raise ValueError(f"a floor needs at least 2 classes, not {num_classes}")
    if times_chance < 0:
        raise ValueError(f"times_chance must be 0 or more, not {times_chance}")
    chance = 1.0 / num_classes
    return min(times_chance * chance, (1.0 + chance) / 2)


def floor_verdict(accuracy: float, floor: float, num_classes: int, saved_to) -> str:
    """One line that says whether ``accuracy`` reached ``floor``, and where the backbone
    was saved either way (a run that misses the floor still keeps what it trained)."""
    chance = 1.0 / num_classes
    head = f"source test accuracy {accuracy:.3f} over {num_classes} classes (chance {chance:.3f})"
    if accuracy >= floor:
        return f"{head} reaches the floor {floor:.3f}; the backbone is in {saved_to}"
    return (
        f"{head} misses the floor {floor:.3f}. The backbone is saved in {saved_to} all the "
        "same, and its card records the miss; train longer (TIME_BUDGET_MIN), on more "
        "images, or lower MIN_TIMES_CHANCE if this is what you expect."
    )
