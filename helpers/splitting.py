"""Train/val/test splits: stratified by class, reproducible by seed, leak-free by group.

Why groups: a near-duplicate of a training image in the test set (the same photo
re-encoded, a burst shot, a re-upload) lets a model score by memory, so test accuracy
lies. Near-duplicate groups (see :func:`helpers.quality.duplicate_groups`) are therefore
placed whole into one split. Stratification keeps each class's share about the same in
every split, which matters for small or unbalanced classes.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from helpers.catalog import SPLITS, Catalog, CatalogError


def _check_fractions(fractions) -> tuple[float, float, float]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise CatalogError(
            f"fractions must be three non-negative numbers (train, val, test) summing to 1,"
            f" not {fractions}"
        )
    return fractions


def stratified_split(labels, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)`` of ``labels`` (one class label per item), sorted, with
    ``fraction`` of every class held out: at least one item of each class that has two
    or more (when ``fraction`` is above 0), never all of a class. Same labels and seed, same split.

    The splitter for items without near-duplicate groups (image arrays, folder trees):
    the at-least-one rule means a small class still gets a validation or test image, so
    its recall can be measured; :func:`stratified_group_split` fills splits group by
    group for catalogs instead.
    """
    labels = np.asarray(labels)
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be at least 0 and below 1, not {fraction}")
    rng = np.random.default_rng(seed)
    keep, held = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for c in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(index) * fraction))
        k = min(max(k, 1 if len(index) > 1 and fraction > 0 else 0), len(index) - 1)
        held.append(index[:k])
        keep.append(index[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def stratified_group_split(
    labels: dict[int, str],
    groups: list[list[int]] | None = None,
    fractions=(0.7, 0.15, 0.15),
    seed: int = 0,
) -> dict[int, str]:
    """Assign every image in ``labels`` ({image_id: class}) to train, val or test.

    Images in one of ``groups`` go to the same split together (a group counts for its
    most common class). Within each class, groups are shuffled with ``seed`` and each
    goes to the split furthest below its target share of that class, so the same
    inputs and seed always give the same split.
    """
    fractions = _check_fractions(fractions)
    if not labels:
        raise CatalogError("no labeled images to split; label some images first")
    group_of: dict[int, int] = {}
    members: list[list[int]] = []
    for group in groups or []:
        inside = [int(i) for i in group if int(i) in labels and int(i) not in group_of]
        if inside:
            for i in inside:
                group_of[i] = len(members)
            members.append(sorted(inside))
    for image_id in sorted(labels):
        if image_id not in group_of:
            group_of[image_id] = len(members)
            members.append([image_id])
    by_class: dict[str, list[int]] = defaultdict(list)
    for g, ids in enumerate(members):
        major = Counter(labels[i] for i in ids).most_common(1)[0][0]
        by_class[major].append(g)
    rng = np.random.default_rng(seed)
    assignment: dict[int, str] = {}
    for name in sorted(by_class):
        group_ids = by_class[name]
        order = rng.permutation(len(group_ids))
        total = sum(len(members[group_ids[k]]) for k in order)
        filled = [0, 0, 0]
        for k in order:
            ids = members[group_ids[k]]
            deficit = [fractions[s] * total - filled[s] for s in range(3)]
            s = int(np.argmax(deficit))
            filled[s] += len(ids)
            for i in ids:
                assignment[i] = SPLITS[s]
    return assignment


def leaks(assignment: dict[int, str], groups: list[list[int]]) -> list[list[int]]:
    """Groups whose images ended up in more than one split (should be [])."""
    return [list(g) for g in groups if len({assignment[i] for i in g if i in assignment}) > 1]


def split_catalog(
    catalog: Catalog,
    annotator: str,
    groups: list[list[int]] | None = None,
    fractions=(0.7, 0.15, 0.15),
    seed: int = 0,
    image_ids=None,
) -> dict[int, str]:
    """Split ``annotator``'s labeled images and store the split in the catalog (one transaction).

    Skipped images (no class) are left out of every split.
    """
    labels = {
        r["image_id"]: r["class_name"]
        for r in catalog.labels(annotator)
        if r["class_name"] is not None and r["status"] != "skipped"
    }
    if image_ids is not None:
        keep = {int(i) for i in image_ids}
        labels = {i: c for i, c in labels.items() if i in keep}
    assignment = stratified_group_split(labels, groups, fractions, seed)
    catalog.set_splits(assignment, seed=seed)
    return assignment
