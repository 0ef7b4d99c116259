"""The box annotator: bounding boxes drawn, moved, resized and deleted in the browser.

Why jupyter-bbox-widget for boxes: it already does drawing, moving, resizing, deleting
and per-box classes in the browser (keyboard included) and syncs one ``bboxes`` list to
Python in the pixels of the image it shows. ipycanvas or ipyevents would need all of
that hand-written in Python with a kernel round trip per mouse move. We only add what it
lacks: upscaling small images crisply, converting back to original pixels, and writing
each change to the catalog.
"""

from __future__ import annotations

import html

from helpers.catalog import Catalog, CatalogError
from helpers.labeling.display import upscaled_png
from helpers.labeling.session import SAVE_ERRORS, check_annotator, image_queue


def _widget_box(bbox: dict, factor: int, width: int, height: int):
    """A bbox-widget dict (shown pixels) -> (label, x0, y0, x1, y1) in original pixels.

    Drawing leftwards or upwards gives negative sizes: normalised. Boxes dragged past
    the edge are clipped to the image. Returns None for a box of zero area.
    """
    x, y = float(bbox.get("x", 0)), float(bbox.get("y", 0))
    bw, bh = float(bbox.get("width", 0)), float(bbox.get("height", 0))
    x0, x1 = sorted((x, x + bw))
    y0, y1 = sorted((y, y + bh))
    x0, x1 = (min(max(v / factor, 0.0), width) for v in (x0, x1))
    y0, y1 = (min(max(v / factor, 0.0), height) for v in (y0, y1))
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return (str(bbox.get("label", "")), x0, y0, x1, y1)


def _box_widget_class():
    """jupyter-bbox-widget's ``BBoxWidget`` without the kernel's echo of ``bboxes``.

    ipywidgets 8 sends every change a browser makes back to it (an "echo", for other
    views of the same widget), and the browser applies it. A box is sent at mouse-down
    with zero size; when its echo arrives after the first mouse move, it replaces the
    box list mid-drag, the drag goes on changing a box no longer in the list, and
    mouse-up stores the zero-size box: the drawing is lost. That happens whenever the
    round trip to the kernel is slower than the start of the drag (a remote kernel, a
    busy one). Without the echo, a second browser tab on the same notebook sees new
    boxes only when Python next sets them.
    """
    global _BOX_WIDGET
    if _BOX_WIDGET is None:
        from jupyter_bbox_widget import BBoxWidget
        from traitlets import List

        class CourseBBoxWidget(BBoxWidget):
            bboxes = List().tag(sync=True, echo_update=False)

        _BOX_WIDGET = CourseBBoxWidget
    return _BOX_WIDGET


_BOX_WIDGET = None


class BoxAnnotator:
    """Draw, move, resize and delete boxes; each change is written to the catalog at once.

    In the browser (jupyter-bbox-widget): drag on the image to draw a box of the selected
    class; drag a box or its corners to move or resize it; click its "x" or press Delete
    to remove it; digit keys pick the class, C gives the selected box that class; W/A/S/D
    move and Q/E/R/F resize the selected box. A hint line under the image says the main
    ones.

    One navigation: "previous image" and "next image" (Enter or Space with the drawing
    focused do "next image" too). jupyter-bbox-widget's own Skip and Submit buttons are
    hidden: both only advanced, and with boxes saved as they are drawn there is nothing
    to submit. The status line counts "1 box" / "2 boxes" on this image, the progress
    bar is labeled with how many images have boxes.

    Coordinates: the widget shows a copy enlarged by a whole ``factor`` (see
    :func:`upscaled_png`); every box is divided by it, clipped to the image and stored
    in original-image pixel corners. A box of zero area (also what a box being drawn
    looks like at mouse-down) is not stored; a box of an unknown class is refused and
    taken back off the widget; a clipped box is redrawn clipped. The catalog never
    holds a box outside the image or of zero area.

    DOM hooks: root ``course-box-annotator``, the drawing widget ``course-bbox``,
    ``course-box-prev``, ``course-box-next``, ``course-progress``, ``course-box-progress``
    (its numbers), ``course-box-hint``, ``course-status``, ``course-message``.
    """

    def __init__(
        self,
        catalog: Catalog,
        classes: list[str] | None = None,
        image_ids=None,
        *,
        annotator: str = "default",
        dataset: str | None = None,
        display_size: int = 384,
    ):
        import ipywidgets as w

        self.catalog = catalog
        known = catalog.classes()
        self.classes = list(classes) if classes is not None else known
        if not self.classes:
            raise CatalogError("no classes to draw; pass classes=[...] or call set_classes")
        if len(set(self.classes)) != len(self.classes):
            raise CatalogError(f"duplicate class names in {self.classes!r}")
        unknown = sorted(set(self.classes) - set(known))
        if unknown:
            raise CatalogError(f"unknown classes {unknown}; add them with catalog.set_classes")
        self.annotator = check_annotator(annotator)
        self.display_size = int(display_size)
        self.queue = image_queue(catalog, image_ids, dataset)
        self.position = 0
        self.current: int | None = None
        self.factor = 1
        self._stored: list[tuple[int, tuple]] = []
        self._detail = ""
        self._syncing = False

        self.widget = _box_widget_class()(classes=self.classes, hide_buttons=True)
        self.widget.add_class("course-bbox")
        self.widget.observe(self._on_boxes, names="bboxes")
        self.widget.observe(lambda _change: self._show_status(), names="label")
        self.widget.on_submit(self.next)  # Enter and Space, with the drawing focused
        self.widget.on_skip(self.next)
        saved = "boxes are saved as you draw them"
        self.prev_button = w.Button(description="previous image", icon="arrow-left", tooltip=saved)
        self.prev_button.layout.width = "auto"
        self.prev_button.add_class("course-box-prev")
        self.prev_button.on_click(lambda _b: self.previous())
        self.next_button = w.Button(
            description="next image", icon="arrow-right", tooltip=f"{saved}; Enter does this too"
        )
        self.next_button.layout.width = "auto"
        self.next_button.add_class("course-box-next")
        self.next_button.on_click(lambda _b: self.next())
        self.progress = w.IntProgress(min=0, max=max(1, len(self.queue)))
        self.progress.add_class("course-progress")
        self.progress_text = w.HTML()
        self.progress_text.add_class("course-box-progress")
        self.hint = w.HTML(
            "<small>Drag on the image to draw a box of the selected class · click a box to"
            " select it, then drag it to move, drag a corner to resize, Delete or its × to"
            " remove · number keys pick the class (click the image first)</small>"
        )
        self.hint.add_class("course-box-hint")
        self.status = w.HTML()
        self.status.add_class("course-status")
        self.message = w.HTML()
        self.message.add_class("course-message")
        self.root = w.VBox(
            [
                self.status,
                self.widget,
                self.hint,
                w.HBox([self.prev_button, self.next_button, self.progress, self.progress_text]),
                self.message,
            ]
        )
        self.root.add_class("course-box-annotator")
        # Images with boxes, read once; each change then updates it for its image.
        in_queue = set(self.queue)
        self.with_boxes = {
            b["image_id"]
            for b in self.catalog.boxes(annotator=self.annotator)
            if b["image_id"] in in_queue
        }
        self.go(next((i for i, x in enumerate(self.queue) if x not in self.with_boxes), 0))

    def _count_progress(self) -> None:
        if self.current is not None:
            if self._stored:
                self.with_boxes.add(self.current)
            else:
                self.with_boxes.discard(self.current)
        n, total = len(self.with_boxes), len(self.queue)
        self.progress.value = n
        self.progress_text.value = f"{n} of {total} images have boxes"

    def go(self, position: int) -> None:
        """Show the image at ``position`` in the queue with its stored boxes."""
        if not self.queue:
            self.status.value = "No images to annotate."
            return
        self.position = max(0, min(int(position), len(self.queue) - 1))
        self.current = self.queue[self.position]
        row = self.catalog.image(self.current)
        self.width, self.height = row["width"], row["height"]
        data, self.factor = upscaled_png(self.catalog, self.current, self.display_size)
        self._stored = [
            (b["id"], (b["class_name"], b["x0"], b["y0"], b["x1"], b["y1"]))
            for b in self.catalog.boxes(self.current, annotator=self.annotator)
        ]
        self._syncing = True
        try:
            self.widget.bboxes = []
            self.widget.image_bytes = data
            self.widget.bboxes = self._as_widget()
        finally:
            self._syncing = False
        self._count_progress()
        self._show_status(f" ({self.width}x{self.height} px, shown x{self.factor})")
        self.message.value = ""

    def next(self) -> None:
        """The next image; on the last one, stay and say so."""
        if self.position + 1 >= len(self.queue):
            n = len(self.with_boxes)
            self.message.value = (
                f"<b>This is the last image.</b> {n} of {len(self.queue)} images have boxes;"
                " all are saved."
            )
            return
        self.go(self.position + 1)

    def previous(self) -> None:
        self.go(self.position - 1)

    def _as_widget(self) -> list[dict]:
        f = self.factor
        return [
            {
                "x": x0 * f,
                "y": y0 * f,
                "width": (x1 - x0) * f,
                "height": (y1 - y0) * f,
                "label": name,
            }
            for _, (name, x0, y0, x1, y1) in self._stored
        ]

    def _on_boxes(self, change) -> None:
        """Diff the widget's boxes against the stored ones and write the difference."""
        if self._syncing or self.current is None:
            return
        problems, wanted, redraw = [], [], False
        for bbox in change["new"]:
            box = _widget_box(bbox, self.factor, self.width, self.height)
            if box is None:
                # A box being drawn reaches Python at mouse-down with zero size and gets
                # its size at mouse-up: store nothing, and leave it on the widget.
                problems.append("a box of zero area is not stored (drag to give it a size)")
                continue
            if box[0] not in self.classes:
                problems.append(f"unknown class {html.escape(box[0])!r} ignored")
                redraw = True
                continue
            x, y = float(bbox["x"]), float(bbox["y"])
            raw = (min(x, x + bbox["width"]), min(y, y + bbox["height"]))
            raw += (max(x, x + bbox["width"]), max(y, y + bbox["height"]))
            redraw |= tuple(v / self.factor for v in raw) != box[1:]  # clipped to the image
            wanted.append(box)
        old = list(self._stored)
        kept, added = [], []
        for box in wanted:
            match = next((k for k, (_, b) in enumerate(old) if b == box), None)
            if match is None:
                added.append(box)
            else:
                kept.append(old.pop(match))
        removed = old
        try:  # one transaction: a refused write changes nothing, and the widget says so
            with self.catalog.transaction():
                # One changed box (moved, resized, re-classed) is one update, not delete + add.
                while removed and added:
                    box_id, _ = removed.pop(0)
                    name, x0, y0, x1, y1 = added.pop(0)
                    self.catalog.update_box(box_id, class_name=name, x0=x0, y0=y0, x1=x1, y1=y1)
                for box_id, _ in removed:
                    self.catalog.delete_box(box_id)
                for name, x0, y0, x1, y1 in added:
                    self.catalog.add_box(
                        self.current, name, x0, y0, x1, y1, annotator=self.annotator
                    )
        except SAVE_ERRORS as err:
            problems.append(f"could not save: {html.escape(str(err))}; draw the change again")
            redraw = True
        self._stored = [
            (b["id"], (b["class_name"], b["x0"], b["y0"], b["x1"], b["y1"]))
            for b in self.catalog.boxes(self.current, annotator=self.annotator)
        ]
        self.message.value = "; ".join(problems)
        if redraw:  # show what was stored: clipped boxes, without refused ones
            self._syncing = True
            try:
                self.widget.bboxes = self._as_widget()
            finally:
                self._syncing = False
        self._count_progress()
        self._show_status()

    def _show_status(self, detail: str = "") -> None:
        """Where we are, what is stored, and the class the next drawn box gets."""
        if self.current is None:
            return
        n = len(self._stored)
        if detail:
            self._detail = detail
        self.status.value = (
            f"image {self.position + 1} of {len(self.queue)}{self._detail} | "
            f"{n} {'box' if n == 1 else 'boxes'} by {html.escape(self.annotator)} | "
            f"new boxes: {html.escape(self.widget.label or '-')}"
        )

    def boxes(self) -> list[dict]:
        """The stored boxes of the current image, original-image pixels."""
        return self.catalog.boxes(self.current, annotator=self.annotator)

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)
