"""Image data sets as NumPy arrays: the one type every loader returns, and its split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ArrayDataset:
    """A train/test split of uint8 images with integer labels and their class names."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    source: str
    license: str

    def __repr__(self) -> str:
        return (
            f"ArrayDataset({self.name!r}: train {self.x_train.shape}, test {self.x_test.shape}, "
            f"{len(self.class_names)} classes)"
        )


def split_arrays(name, x, y, class_names, source, license, test_size, seed) -> ArrayDataset:
    """A stratified, seeded train/test split of ``x, y`` as an :class:`ArrayDataset`."""
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    return ArrayDataset(name, x_tr, y_tr, x_te, y_te, class_names, source, license)
