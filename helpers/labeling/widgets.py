"""Labeling widgets that write every action to the catalog at once.

Why not keep labels in widget state, as most Jupyter labelers do: a kernel restart then
loses them (thousands of labels, in ipyannotate issue 6). Here every click or key is one
committed catalog transaction, so a crash loses nothing and reopening an annotator
resumes at the first image its annotator has not labeled yet.

Two widgets:

- :class:`ClassAnnotator`: one class per image (buttons, keys, undo, skip, unsure,
  progress with counts per class, model suggestions with "accept all confident").
- :class:`BoxAnnotator`: bounding boxes drawn, moved, resized and deleted in the browser
  with jupyter-bbox-widget; coordinates are stored in original-image pixels.

Why jupyter-bbox-widget for boxes: it already does drawing, moving, resizing, deleting
and per-box classes in the browser (keyboard included) and syncs one ``bboxes`` list to
Python in the pixels of the image it shows. ipycanvas or ipyevents would need all of
that hand-written in Python with a kernel round trip per mouse move. We only add what it
lacks: upscaling small images crisply, converting back to original pixels, and writing
each change to the catalog.

Both widgets expose the handlers their buttons and keys call (``buttons[name].click()``,
``handle_key(event)``, setting ``BoxAnnotator.widget.bboxes``), so a simulated annotator
in a notebook or a test drives exactly the code a person does. Stable CSS classes
(``course-...``) give browser tests DOM hooks.

Model-assisted labeling (:mod:`helpers.labeling.suggest`) stores a cheap model's
predictions as labels of annotator ``"model"``; a :class:`ClassAnnotator` given
``suggest_from="model"`` shows them, orders its queue by uncertainty and accepts the
confident rest in one click.
"""

from __future__ import annotations

import html
from collections import Counter

from helpers.catalog import Catalog, CatalogError
from helpers.labeling.display import IMAGE_CSS, display_bytes, slug, upscaled_png


def _check_annotator(name) -> str:
    if name is None or not str(name).strip():
        raise CatalogError("the annotator name must not be blank; give e.g. annotator='ana'")
    return str(name).strip()


def _queue(catalog: Catalog, image_ids, dataset: str | None) -> list[int]:
    if image_ids is None:
        return [row["id"] for row in catalog.images(dataset=dataset)]
    ids = [int(i) for i in image_ids]
    if len(set(ids)) != len(ids):
        raise CatalogError("image_ids holds duplicates; give each image once")
    known = catalog.image_ids()
    missing = [i for i in ids if i not in known]
    if missing:
        raise CatalogError(f"image ids {missing[:10]} are not in the catalog {catalog.db_path}")
    return ids


class ClassAnnotator:
    """Label each image with one class; every action is committed to the catalog at once.

    Keys (JupyterLab, with the pointer over the image area ``course-keys``):

    - ``1`` ... ``9``, ``0``: the 1st ... 9th, 10th class (in the order of the buttons);
    - ``Enter``: accept the model's suggestion for this image (if there is one);
    - ``u``: toggle "unsure" (the next class is stored with status ``unsure``);
    - ``s``: skip (stored with status ``skipped``, so resuming moves past it);
    - ``z``, ``Backspace`` or ``ArrowLeft``: undo the last action and go back to its image.

    Buttons do the same; "accept all" stores every remaining suggestion whose confidence
    is at least ``accept_threshold`` (source ``model``, so a later review can find them).
    ``classes`` are the buttons, in order; new names are added to the catalog (blank,
    empty or duplicate lists are refused), and without ``classes`` the catalog's are
    used. ``image_ids`` (default: every image, or every image of ``dataset``) is the
    queue. ``annotator`` names who labels: two people label the same images under two
    names, and :mod:`helpers.quality` compares them. Typing another name in the name box
    switches annotator and resumes where that one stopped.

    DOM hooks (CSS classes) for browser tests: root ``course-class-annotator``; class
    buttons ``course-class-button`` and ``course-class-<slug>``; ``course-undo``,
    ``course-skip``, ``course-unsure`` (a toggle), ``course-accept``,
    ``course-accept-all``; ``course-image``, ``course-keys`` (hover here for keys),
    ``course-progress``, ``course-counts``, ``course-status``, ``course-annotator``.
    """

    def __init__(
        self,
        catalog: Catalog,
        classes: list[str] | None = None,
        image_ids=None,
        *,
        annotator: str = "default",
        dataset: str | None = None,
        display_size: int = 256,
        suggest_from: str | None = None,
        order: str = "catalog",
        accept_threshold: float = 0.9,
    ):
        import ipywidgets as w
        from ipyevents import Event

        self.catalog = catalog
        if classes is not None:
            classes = list(classes)
            if not classes:
                raise CatalogError("the class list is empty; give at least one class name")
            if len({str(c).strip() for c in classes}) != len(classes):
                raise CatalogError(f"duplicate class names in {classes!r}; give each class once")
            catalog.set_classes(classes)
        self.classes = list(classes) if classes is not None else catalog.classes()
        if not self.classes:
            raise CatalogError("the catalog has no classes; pass classes=[...] or set_classes")
        unknown = set(self.classes) - set(catalog.classes())
        if unknown:
            raise CatalogError(f"unknown classes {sorted(unknown)}")
        self.annotator = _check_annotator(annotator)
        if order not in ("catalog", "uncertainty"):
            raise ValueError(f"order must be 'catalog' or 'uncertainty', not {order!r}")
        self.suggest_from = suggest_from
        self.accept_threshold = float(accept_threshold)
        self.display_size = int(display_size)
        self.queue = _queue(catalog, image_ids, dataset)
        self.suggestions = self._load_suggestions()
        if order == "uncertainty":
            # Least confident first: the human's clicks go where the model is unsure.
            self.queue.sort(key=lambda i: self.suggestions.get(i, (None, -1.0))[1])
        self.history: list[tuple[int, dict | None]] = []
        self.actions = 0
        self.position = 0
        self.current: int | None = None

        self.image = w.Image(format="png", layout=w.Layout(width=f"{self.display_size}px"))
        self.image.add_class("course-image")
        self.keys = w.Box([self.image])
        self.keys.add_class("course-keys")
        self.events = Event(
            source=self.keys, watched_events=["keydown"], prevent_default_action=True
        )
        self.events.on_dom_event(self.handle_key)
        self.buttons: dict[str, w.Button] = {}
        for i, name in enumerate(self.classes):
            key = str((i + 1) % 10) if i < 10 else ""
            button = w.Button(
                description=f"{name} ({key})" if key else str(name),
                tooltip=f"label as {name}" + (f" (key {key})" if key else ""),
                layout=w.Layout(width="auto"),
            )
            button.add_class("course-class-button")
            button.add_class(f"course-class-{slug(name)}")
            button.on_click(lambda _b, name=name: self.choose(name))
            self.buttons[name] = button
        self.undo_button = w.Button(description="undo (z)", icon="undo")
        self.undo_button.add_class("course-undo")
        self.undo_button.on_click(lambda _b: self.undo())
        self.skip_button = w.Button(description="skip (s)")
        self.skip_button.add_class("course-skip")
        self.skip_button.on_click(lambda _b: self.skip())
        self.unsure_button = w.ToggleButton(value=False, description="unsure (u)")
        self.unsure_button.add_class("course-unsure")
        self.accept_button = w.Button(description="accept suggestion (Enter)")
        self.accept_button.add_class("course-accept")
        self.accept_button.on_click(lambda _b: self.accept())
        self.accept_all_button = w.Button(
            description=f"accept all suggestions >= {self.accept_threshold:.2f}"
        )
        self.accept_all_button.add_class("course-accept-all")
        self.accept_all_button.on_click(lambda _b: self.accept_all())
        self.name_box = w.Text(
            value=self.annotator, description="annotator", continuous_update=False
        )
        self.name_box.add_class("course-annotator")
        self.name_box.observe(self._rename, names="value")
        self.progress = w.IntProgress(min=0, max=max(1, len(self.queue)))
        self.progress.add_class("course-progress")
        self.counts = w.HTML()
        self.counts.add_class("course-counts")
        self.status = w.HTML()
        self.status.add_class("course-status")
        suggestion_tools = [self.accept_button, self.accept_all_button] if suggest_from else []
        self.root = w.VBox(
            [
                w.HTML(IMAGE_CSS),
                self.name_box,
                self.status,
                self.keys,
                w.HBox(list(self.buttons.values()), layout=w.Layout(flex_flow="row wrap")),
                w.HBox([self.unsure_button, self.skip_button, self.undo_button, *suggestion_tools]),
                w.HBox([self.progress, self.counts]),
            ]
        )
        self.root.add_class("course-class-annotator")
        self._resume()

    # -- state ----------------------------------------------------------------------

    def _load_suggestions(self) -> dict[int, tuple[str, float]]:
        if not self.suggest_from:
            return {}
        return {
            r["image_id"]: (r["class_name"], float(r["confidence"] or 0.0))
            for r in self.catalog.labels(self.suggest_from)
            if r["class_name"] is not None
        }

    def _mine(self) -> dict[int, dict]:
        return {r["image_id"]: r for r in self.catalog.labels(self.annotator)}

    def _resume(self) -> None:
        """Go to the first image in the queue this annotator has not labeled yet."""
        done = self._mine()
        self.position = next(
            (i for i, image_id in enumerate(self.queue) if image_id not in done), len(self.queue)
        )
        self._show()

    def _advance(self) -> None:
        done = self._mine()
        ahead = [i for i in range(self.position + 1, len(self.queue)) if self.queue[i] not in done]
        behind = [i for i in range(0, self.position) if self.queue[i] not in done]
        self.position = (ahead or behind or [len(self.queue)])[0]
        self._show()

    def _show(self) -> None:
        mine = self._mine()
        self.unsure_button.value = False
        n_done = sum(1 for i in self.queue if i in mine)
        self.progress.max = max(1, len(self.queue))
        self.progress.value = n_done
        counts = Counter(r["class_name"] or r["status"] for i, r in mine.items() if i in self.queue)
        self.counts.value = html.escape(
            f"{n_done}/{len(self.queue)} done | "
            + ", ".join(f"{name}: {counts.get(name, 0)}" for name in self.classes)
            + (f", skipped: {counts['skipped']}" if counts.get("skipped") else "")
        )
        for button in self.buttons.values():
            button.button_style = ""
        if self.position >= len(self.queue):
            self.current = None
            # Hidden, not emptied: an empty image shows as a broken-image icon, and the
            # space it keeps still hears the undo key.
            self.image.layout.visibility = "hidden"
            self.status.value = (
                f"<b>All {len(self.queue)} images labeled by "
                f"{html.escape(self.annotator)}.</b> Undo (z) to go back."
            )
            return
        self.current = self.queue[self.position]
        data, fmt = display_bytes(self.catalog, self.current)
        self.image.format = fmt
        self.image.value = data
        self.image.layout.visibility = "visible"
        text = f"image {self.position + 1}/{len(self.queue)} (id {self.current})"
        if self.current in self.suggestions:
            name, conf = self.suggestions[self.current]
            text += f" | suggestion: <b>{html.escape(str(name))}</b> ({conf:.2f})"
            if name in self.buttons:
                self.buttons[name].button_style = "info"
        previous = mine.get(self.current)
        if previous is not None:
            shown = previous["class_name"] or "-"
            text += f" | yours: {html.escape(str(shown))} ({previous['status']})"
        self.status.value = text

    def _record(self, class_name: str | None, status: str, source: str = "human", conf=None):
        image_id = self.current
        before = self._mine().get(image_id)
        self.catalog.set_label(
            image_id,
            class_name,
            annotator=self.annotator,
            status=status,
            source=source,
            confidence=conf,
        )
        self.history.append((image_id, before))
        self._advance()

    # -- actions (buttons and keys call these) ---------------------------------------

    def choose(self, class_name: str) -> None:
        """Label the current image ``class_name`` (unsure if the unsure flag is on)."""
        if class_name not in self.classes:
            raise CatalogError(f"unknown class {class_name!r}; known classes: {self.classes}")
        self.actions += 1
        if self.current is None:
            return
        self._record(class_name, "unsure" if self.unsure_button.value else "labeled")

    def skip(self) -> None:
        self.actions += 1
        if self.current is not None:
            self._record(None, "skipped")

    def toggle_unsure(self) -> None:
        self.actions += 1
        self.unsure_button.value = not self.unsure_button.value

    def accept(self) -> None:
        """Confirm the model's suggestion for the current image (a human decision)."""
        self.actions += 1
        if self.current is None or self.current not in self.suggestions:
            return
        name = self.suggestions[self.current][0]
        self._record(name, "unsure" if self.unsure_button.value else "labeled")

    def accept_all(self) -> int:
        """Store every unlabeled suggestion with confidence >= threshold; return how many.

        They keep source ``model`` and their confidence, so quality checks and a later
        review can tell them from labels a person chose.
        """
        self.actions += 1
        mine = self._mine()
        accepted = 0
        for image_id in self.queue:
            suggestion = self.suggestions.get(image_id)
            if image_id in mine or suggestion is None or suggestion[1] < self.accept_threshold:
                continue
            self.catalog.set_label(
                image_id,
                suggestion[0],
                annotator=self.annotator,
                source="model",
                confidence=suggestion[1],
            )
            self.history.append((image_id, None))
            accepted += 1
        self._resume()
        return accepted

    def undo(self) -> None:
        """Revert the last action of this session and show its image again."""
        self.actions += 1
        if not self.history:
            return
        image_id, before = self.history.pop()
        if before is None:
            self.catalog.remove_label(image_id, self.annotator)
        else:
            self.catalog.set_label(
                image_id,
                before["class_name"],
                annotator=self.annotator,
                status=before["status"],
                source=before["source"],
                confidence=before["confidence"],
            )
        if image_id in self.queue:
            self.position = self.queue.index(image_id)
        self._show()

    def handle_key(self, event: dict) -> bool:
        """The ipyevents keydown handler; return whether the key did something."""
        if event.get("type", "keydown") != "keydown":
            return False
        key = str(event.get("key", ""))
        if key.isdigit() and len(key) == 1:
            index = (int(key) - 1) % 10
            if index < len(self.classes):
                self.choose(self.classes[index])
                return True
            return False
        action = {
            "u": self.toggle_unsure,
            "s": self.skip,
            "z": self.undo,
            "Backspace": self.undo,
            "ArrowLeft": self.undo,
            "Enter": self.accept,
        }.get(key if len(key) > 1 else key.lower())
        if action is None:
            return False
        action()
        return True

    def _rename(self, change) -> None:
        self.annotator = _check_annotator(change["new"])
        self.history.clear()
        self._resume()

    def labels(self) -> dict[int, dict]:
        """This annotator's stored labels for the queue, by image id."""
        return {i: r for i, r in self._mine().items() if i in set(self.queue)}

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)


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
    move and Q/E/R/F resize the selected box; Enter/Space (the widget's submit and skip)
    or the next/previous buttons change image.

    Coordinates: the widget shows a copy enlarged by a whole ``factor`` (see
    :func:`upscaled_png`); every box is divided by it, clipped to the image and stored
    in original-image pixel corners. A box of zero area (also what a box being drawn
    looks like at mouse-down) is not stored; a box of an unknown class is refused and
    taken back off the widget; a clipped box is redrawn clipped. The catalog never
    holds a box outside the image or of zero area.

    DOM hooks: root ``course-box-annotator``, the drawing widget ``course-bbox``,
    ``course-box-prev``, ``course-box-next``, ``course-progress``, ``course-status``,
    ``course-message``.
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
        self.annotator = _check_annotator(annotator)
        self.display_size = int(display_size)
        self.queue = _queue(catalog, image_ids, dataset)
        self.position = 0
        self.current: int | None = None
        self.factor = 1
        self._stored: list[tuple[int, tuple]] = []
        self._syncing = False

        self.widget = _box_widget_class()(classes=self.classes, hide_buttons=False)
        self.widget.add_class("course-bbox")
        self.widget.observe(self._on_boxes, names="bboxes")
        self.widget.observe(lambda _change: self._show_status(), names="label")
        self.widget.on_submit(self.next)
        self.widget.on_skip(self.next)
        self.prev_button = w.Button(description="previous")
        self.prev_button.add_class("course-box-prev")
        self.prev_button.on_click(lambda _b: self.previous())
        self.next_button = w.Button(description="next")
        self.next_button.add_class("course-box-next")
        self.next_button.on_click(lambda _b: self.next())
        self.progress = w.IntProgress(min=0, max=max(1, len(self.queue)))
        self.progress.add_class("course-progress")
        self.status = w.HTML()
        self.status.add_class("course-status")
        self.message = w.HTML()
        self.message.add_class("course-message")
        self.root = w.VBox(
            [
                self.status,
                self.widget,
                w.HBox([self.prev_button, self.next_button, self.progress]),
                self.message,
            ]
        )
        self.root.add_class("course-box-annotator")
        done = self._done()
        self.go(next((i for i, x in enumerate(self.queue) if x not in done), 0))

    def _done(self) -> set[int]:
        return {b["image_id"] for b in self.catalog.boxes(annotator=self.annotator)}

    def _count_progress(self) -> None:
        done = self._done()
        self.progress.value = sum(1 for i in self.queue if i in done)

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
        self._show_status(f", {self.width}x{self.height} px, shown x{self.factor}")
        self.message.value = ""

    def next(self) -> None:
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
        # One changed box (moved, resized, re-classed) is one update, not delete + add.
        while removed and added:
            box_id, _ = removed.pop(0)
            box = added.pop(0)
            name, x0, y0, x1, y1 = box
            self.catalog.update_box(box_id, class_name=name, x0=x0, y0=y0, x1=x1, y1=y1)
        for box_id, _ in removed:
            self.catalog.delete_box(box_id)
        for name, x0, y0, x1, y1 in added:
            self.catalog.add_box(
                self.current, name, x0, y0, x1, y1, annotator=self.annotator, source="human"
            )
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
        self.status.value = (
            f"image {self.position + 1}/{len(self.queue)} (id {self.current}{detail}) | "
            f"{len(self._stored)} boxes by {html.escape(self.annotator)} | "
            f"new boxes: {html.escape(self.widget.label or '-')}"
        )

    def boxes(self) -> list[dict]:
        """The stored boxes of the current image, original-image pixels."""
        return self.catalog.boxes(self.current, annotator=self.annotator)

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)
