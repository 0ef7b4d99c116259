"""A scripted annotator that drives the real widgets, for notebooks run headless and tests,
and the mistakes of a real collection planted on purpose (:func:`plant_copies`)."""

from __future__ import annotations

import io

import numpy as np

from helpers.labeling.box_annotator import BoxAnnotator
from helpers.labeling.class_annotator import ClassAnnotator


class SimulatedAnnotator:
    """A stand-in for a person at a :class:`ClassAnnotator`, with a known error rate.

    Why: a notebook must run headless under nbval, and label-quality checks can only
    be measured against errors we know. It sends the same key events and button clicks
    a person does (the class keys the widget's own key map gives, ``u``, ``z``,
    ``Enter``), so the code under test is the widget's own. It knows the true class of
    each image (``truth``); with probability ``error_rate`` it picks another class on
    purpose and remembers the image in ``errors``. With ``slip_rate`` it presses a wrong
    class key and undoes it with ``z``; with ``unsure_rate`` it flags the label unsure.
    Where the widget shows a model suggestion equal to its choice it confirms it with
    Enter.
    """

    def __init__(
        self,
        truth: dict[int, str],
        error_rate: float = 0.0,
        seed: int = 0,
        *,
        slip_rate: float = 0.0,
        unsure_rate: float = 0.0,
    ):
        self.truth = truth
        self.error_rate = float(error_rate)
        self.slip_rate = float(slip_rate)
        self.unsure_rate = float(unsure_rate)
        self.rng = np.random.default_rng(seed)
        self.errors: set[int] = set()
        self.chosen: dict[int, tuple[str, str]] = {}

    def _key(self, annotator: ClassAnnotator, name: str) -> None:
        """Press the key the widget shows for ``name`` (its own map), or click its button."""
        key = annotator.key_of.get(name)
        if key is None:
            annotator.buttons[name].click()
        else:
            annotator.handle_key({"type": "keydown", "key": key})

    def label(self, annotator: ClassAnnotator, n: int | None = None) -> int:
        """Label up to ``n`` images (all remaining by default); return how many."""
        steps = 0
        while annotator.current is not None and (n is None or steps < n):
            image_id = annotator.current
            classes = annotator.classes
            name = self.truth[image_id]
            if self.rng.random() < self.error_rate:
                name = str(self.rng.choice([c for c in classes if c != name]))
                self.errors.add(image_id)
            else:
                self.errors.discard(image_id)
            if self.rng.random() < self.slip_rate:
                self._key(annotator, str(self.rng.choice([c for c in classes if c != name])))
                annotator.handle_key({"type": "keydown", "key": "z"})
            status = "labeled"
            if self.rng.random() < self.unsure_rate:
                annotator.handle_key({"type": "keydown", "key": "u"})
                status = "unsure"
            suggestion = annotator.suggestions.get(image_id)
            if suggestion is not None and suggestion[0] == name:
                annotator.handle_key({"type": "keydown", "key": "Enter"})
            elif steps % 2:
                annotator.buttons[name].click()
            else:
                self._key(annotator, name)
            self.chosen[image_id] = (name, status)
            steps += 1
        return steps


def simulate_labels(
    catalog, truth: dict[int, str], annotator: str, error_rate: float, seed: int = 0
) -> set[int]:
    """Label every image of ``truth`` ({image_id: true class}) as ``annotator``, picking
    another of the catalog's classes on purpose with probability ``error_rate``; return
    the images labeled wrong.

    The same choice as :class:`SimulatedAnnotator`, written straight to the catalog,
    without a widget: for a catalog built in bulk (thousands of photos in a few
    seconds), where no widget is being taught. Same seed, same labels and errors.
    """
    classes = [c for c in catalog.classes() if c in set(truth.values())]
    rng = np.random.default_rng(seed)
    errors = set()
    for image_id in sorted(truth):
        name = truth[image_id]
        if rng.random() < error_rate and len(classes) > 1:
            name = str(rng.choice([c for c in classes if c != name]))
            errors.add(image_id)
        catalog.set_label(image_id, name, annotator=annotator)
    return errors


def draw_boxes(annotator: BoxAnnotator, boxes: list[dict]) -> None:
    """Draw ``boxes`` (dicts with ``class_name``, ``x0``, ``y0``, ``x1``, ``y1`` in image
    pixels) on the current image the way a hand in the browser does, then go to the next
    image.

    Why: the widget's own change handler is what a test must exercise, so this changes
    the widget's ``bboxes`` list exactly as jupyter-bbox-widget does after each mouse-up,
    in shown pixels (``annotator.factor`` times larger): one change per box drawn, then
    a stray box that is drawn, moved and deleted, which must leave no trace.
    """
    f = annotator.factor
    widget = annotator.widget
    for b in boxes:
        shown = {"x": b["x0"] * f, "y": b["y0"] * f, "label": b["class_name"]}
        shown.update(width=(b["x1"] - b["x0"]) * f, height=(b["y1"] - b["y0"]) * f)
        widget.bboxes = widget.bboxes + [shown]
    stray = {"x": 2 * f, "y": 2 * f, "width": 5 * f, "height": 5 * f}
    stray["label"] = annotator.classes[-1]
    widget.bboxes = widget.bboxes + [stray]
    widget.bboxes = widget.bboxes[:-1] + [{**stray, "x": 4 * f}]  # move it
    widget.bboxes = widget.bboxes[:-1]  # then delete it
    annotator.next_button.click()


def plant_copies(
    catalog, image_ids, n: int, rng: np.random.Generator, *, dataset: str
) -> list[tuple[int, int]]:
    """Store ``n`` copies of images drawn from ``image_ids`` (with ``rng``) as a re-upload
    would: every other one re-encoded as BMP (the same pixels, other bytes), the rest 6
    levels brighter. Returns the (original, copy) pairs, in ``dataset``.

    Why: the catalog already stores identical bytes once, so only copies that differ in
    their bytes test the near-duplicate check, and known pairs let it be scored.
    """
    from PIL import Image

    planted = []
    for k, original in enumerate(rng.choice(list(image_ids), n, replace=False)):
        pixels = catalog.load_image(int(original))
        if k % 2:
            copy = np.clip(pixels.astype(int) + 6, 0, 255).astype(np.uint8)
            copy_id, _ = catalog.add_image_array(copy, dataset=dataset, source="re-upload")
        else:
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="BMP")
            copy_id, _ = catalog.add_image_bytes(
                buf.getvalue(), dataset=dataset, source="re-upload"
            )
        planted.append((int(original), copy_id))
    return planted
