"""Which split (train, val, test) each image belongs to, and the seed that chose it.

:mod:`helpers.splitting` decides the assignment (grouped, stratified); the catalog only
stores it, so every export and the training pipeline read the same split.
"""

from __future__ import annotations

from helpers.catalog.errors import CatalogError
from helpers.catalog.schema import SPLITS
from helpers.catalog.store import CatalogStore


class SplitRecords(CatalogStore):
    """The stored train/val/test assignment."""

    def set_splits(self, assignment: dict[int, str], seed: int | None = None) -> None:
        """Store ``{image_id: "train" | "val" | "test"}``, replacing earlier assignments."""
        bad = {s for s in assignment.values() if s not in SPLITS}
        if bad:
            raise CatalogError(f"unknown split names {sorted(bad)}; use {SPLITS}")
        with self.transaction() as db:
            for image_id, split in assignment.items():
                self._require_image(db, int(image_id))
                db.execute(
                    "INSERT INTO splits (image_id, split, seed) VALUES (?,?,?) ON CONFLICT"
                    " (image_id) DO UPDATE SET split = excluded.split, seed = excluded.seed",
                    (int(image_id), split, seed),
                )

    def splits(self) -> dict[int, str]:
        return {r["image_id"]: r["split"] for r in self.query("SELECT image_id, split FROM splits")}
