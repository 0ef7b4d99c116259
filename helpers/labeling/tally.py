"""One annotator's labels for a queue, held in memory: the progress and counts a widget shows.

Read from the catalog once, when an annotator opens (or switches name); every action then
updates it, so an action costs one catalog transaction and one image read whatever the
queue's length (see ``benchmarks/labeling_latency.py``).
"""

from __future__ import annotations

from collections import Counter


class QueueTally:
    """The labels ``rows`` of one annotator for the images of ``queue``, counted by class
    and by status; rows of images outside the queue are left out."""

    def __init__(self, queue: list[int], classes: list[str], rows: list[dict]):
        self.queue = queue
        self.classes = classes
        self.position_of = {image_id: k for k, image_id in enumerate(queue)}
        self.labels: dict[int, dict] = {}
        self.class_counts: Counter = Counter()
        self.status_counts: Counter = Counter()
        for row in rows:
            if row["image_id"] in self.position_of:
                self.put(row["image_id"], row)

    def put(self, image_id: int, row: dict | None) -> None:
        """Replace the label of ``image_id`` (None removes it), counts too."""
        old = self.labels.pop(image_id, None)
        if old is not None:
            self.status_counts[old["status"]] -= 1
            if old["class_name"] is not None:
                self.class_counts[old["class_name"]] -= 1
        if row is not None:
            self.labels[image_id] = row
            self.status_counts[row["status"]] += 1
            if row["class_name"] is not None:
                self.class_counts[row["class_name"]] += 1

    def first_open(self, start: int) -> int | None:
        """The first unlabeled position at or after ``start``, or None."""
        for k in range(start, len(self.queue)):
            if self.queue[k] not in self.labels:
                return k
        return None

    def summary(self) -> str:
        """Counts per class, then of unsure and skipped labels where there are any."""
        parts = [f"{name}: {self.class_counts.get(name, 0)}" for name in self.classes]
        for status in ("unsure", "skipped"):
            if self.status_counts.get(status):
                parts.append(f"{status}: {self.status_counts[status]}")
        return ", ".join(parts)

    def progress(self) -> str:
        """How many of the queue are done, then the :meth:`summary` ("3 of 40 done | ...")."""
        return f"{len(self.labels)} of {len(self.queue)} done | " + self.summary()

    def latest(self, position: int) -> int | None:
        """The annotator's latest stored label in the queue (for undo after reopening).

        The catalog stamps labels to the second, so among the latest stamp the label
        just before the first unlabeled image (``position``) wins: a person labels in
        queue order.
        """
        if not self.labels:
            return None
        newest = max(row["updated_at"] or "" for row in self.labels.values())
        tied = [i for i, row in self.labels.items() if (row["updated_at"] or "") == newest]
        before = [i for i in tied if self.position_of[i] < position]
        return max(before or tied, key=self.position_of.__getitem__)
