"""Labeling widgets that write every action to the catalog at once.

Why not keep labels in widget state, as most Jupyter labelers do: a kernel restart then
loses them (thousands of labels, in ipyannotate issue 6). Here every click or key is one
committed catalog transaction, so a crash loses nothing and reopening an annotator
resumes at the first image its annotator has not labeled yet.

Two widgets:

- :class:`ClassAnnotator`: one class per image (buttons, keys that match the labels,
  undo, skip, unsure, a line saying what was stored, progress with counts per class,
  model suggestions with "accept all confident").
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
import sqlite3
from collections import Counter
from datetime import datetime, timezone

from helpers.catalog import Catalog, CatalogError
from helpers.labeling.display import IMAGE_CSS, display_bytes, slug, upscaled_png

# What a failed write can raise: the catalog's own errors (locked, read-only, ... are
# subclasses of CatalogError) and SQLite's, for a catalog that does not wrap them.
SAVE_ERRORS = (CatalogError, sqlite3.OperationalError)
# Keys that steer the class annotator; a class named like one gets a digit instead.
CONTROL_KEYS = {"u": "unsure", "s": "skip", "z": "undo"}
UNDO_KEYS = ("z", "Backspace", "ArrowLeft")


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


def class_keys(classes: list[str]) -> dict[str, str]:
    """The key for each class: ``{key: class}``, a key never standing for another class.

    A class whose name is one letter or digit (and not a control key ``u``, ``s``,
    ``z``) is its own key: with digit classes, key 3 stores class "3". The other
    classes get the digits still free, 1 ... 9 then 0, in button order; past those a
    class has no key and only its button. Letters are matched without case.
    """
    keys: dict[str, str] = {}
    for name in classes:
        k = str(name).lower()
        if len(k) == 1 and k.isalnum() and k not in CONTROL_KEYS and k not in keys:
            keys[k] = name
    taken = set(keys.values())
    free = [d for d in "1234567890" if d not in keys]
    for name in classes:
        if name not in taken and free:
            keys[free.pop(0)] = name
    return keys


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ClassAnnotator:
    """Label each image with one class; every action is committed to the catalog at once.

    Keys (JupyterLab, with the pointer over the image area ``course-keys``; the legend
    above the image says so):

    - a class's key, shown on its button (:func:`class_keys`): with digit or letter
      classes the class itself (key ``3`` stores class "3"), otherwise 1 ... 9, 0;
    - ``Enter``: accept the model's suggestion for this image (if there is one);
    - ``u``: toggle "unsure" (the next class is stored with status ``unsure``);
    - ``s``: skip (stored with status ``skipped``, so resuming moves past it);
    - ``z``, ``Backspace`` or ``ArrowLeft``: undo the last action and go back to its image.

    After each action the feedback line says what was stored ("stored: 3 (undo: z)");
    a write the catalog refuses (locked by another process, read-only, ...) says "could
    not save: ..., press the key again" and stays on the image. Undo works past a
    reopening too: with nothing left from this session it takes back this annotator's
    latest stored label (by the catalog's time stamp; the catalog keeps no older value,
    so the image becomes unlabeled) and shows that image. With no label at all to take
    back, the undo button is disabled and its tooltip says why.

    Buttons do the same; "accept all" stores every remaining suggestion whose confidence
    is at least ``accept_threshold`` in one transaction (source ``model``, so a later
    review can find them; one undo takes them all back). ``classes`` are the buttons,
    in order; new names are added to the catalog (blank, empty or duplicate lists are
    refused), and without ``classes`` the catalog's are used. ``image_ids`` (default:
    every image, or every image of ``dataset``) is the queue. ``annotator`` names who
    labels: two people label the same images under two names, and
    :mod:`helpers.quality` compares them. Typing another name in the name box switches
    annotator and resumes where that one stopped.

    State is kept incrementally: this annotator's labels for the queue are read once
    when it opens (or switches name), then every action updates them, the counts and
    the position in memory, so an action costs one catalog transaction and one image
    read whatever the queue's length (see ``benchmarks/labeling_latency.py``). Labels
    another process stores under the same name for the same queue are seen on reopening.

    DOM hooks (CSS classes) for browser tests: root ``course-class-annotator``; class
    buttons ``course-class-button`` and ``course-class-<slug>``; ``course-undo``,
    ``course-skip``, ``course-unsure`` (a toggle), ``course-accept``,
    ``course-accept-all``; ``course-image``, ``course-keys`` (hover here for keys),
    ``course-legend``, ``course-feedback``, ``course-done``, ``course-progress``,
    ``course-counts``, ``course-status``, ``course-annotator``.
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
        self._where = {image_id: k for k, image_id in enumerate(self.queue)}
        self.keys_to_class = class_keys(self.classes)
        self.key_of = {name: key for key, name in self.keys_to_class.items()}
        # Each entry is one action: [(image_id, label row before it or None), ...].
        self.history: list[list[tuple[int, dict | None]]] = []
        self.actions = 0
        self.position = 0
        self.current: int | None = None
        self.frozen = False

        self.image = w.Image(format="png", layout=w.Layout(width=f"{self.display_size}px"))
        self.image.add_class("course-image")
        self.done = w.HTML(layout=w.Layout(display="none", width=f"{self.display_size}px"))
        self.done.add_class("course-done")
        self.keys = w.Box(
            [self.image, self.done], layout=w.Layout(min_height=f"{self.display_size // 2}px")
        )
        self.keys.add_class("course-keys")
        self.events = Event(
            source=self.keys, watched_events=["keydown"], prevent_default_action=True
        )
        self.events.on_dom_event(self.handle_key)
        self.buttons: dict[str, w.Button] = {}
        for name in self.classes:
            key = self.key_of.get(name)
            shown = str(name) if key is None or key == str(name).lower() else f"{name} (key {key})"
            button = w.Button(
                description=shown,
                tooltip=f"label as {name}" + (f" (key {key})" if key else " (no key)"),
                layout=w.Layout(width="auto"),
            )
            button.add_class("course-class-button")
            button.add_class(f"course-class-{slug(name)}")
            button.on_click(lambda _b, name=name: self.choose(name))
            self.buttons[name] = button
        auto = w.Layout(width="auto")
        self.undo_button = w.Button(description="undo (z)", icon="undo", layout=auto)
        self.undo_button.add_class("course-undo")
        self.undo_button.on_click(lambda _b: self.undo())
        self.skip_button = w.Button(description="skip (s)", layout=auto)
        self.skip_button.add_class("course-skip")
        self.skip_button.on_click(lambda _b: self.skip())
        self.unsure_button = w.ToggleButton(value=False, description="unsure (u)", layout=auto)
        self.unsure_button.add_class("course-unsure")
        self.accept_button = w.Button(description="accept suggestion (Enter)", layout=auto)
        self.accept_button.add_class("course-accept")
        self.accept_button.on_click(lambda _b: self.accept())
        self.accept_all_button = w.Button(
            description=f"accept all suggestions >= {self.accept_threshold:.2f}", layout=auto
        )
        self.accept_all_button.add_class("course-accept-all")
        self.accept_all_button.on_click(lambda _b: self.accept_all())
        self.name_box = w.Text(
            value=self.annotator, description="annotator", continuous_update=False
        )
        self.name_box.add_class("course-annotator")
        self.name_box.observe(self._rename, names="value")
        legend = "Keys work with the pointer over the image: "
        if self.key_of and all(k == str(c).lower() for c, k in self.key_of.items()):
            example = self.classes[min(3, len(self.classes) - 1)]
            key = self.key_of[example]
            legend += f"a class's own key labels it ({key} stores class '{example}')"
        elif self.key_of:
            legend += "the key on a class's button labels it"
        else:
            legend += "no class keys"
        legend += " · u unsure · s skip · z undo"
        legend += " · Enter accept the suggestion" if suggest_from else ""
        self.legend = w.HTML(f"<small>{html.escape(legend)}</small>")
        self.legend.add_class("course-legend")
        self.feedback = w.HTML()
        self.feedback.add_class("course-feedback")
        self.progress = w.IntProgress(min=0, max=max(1, len(self.queue)))
        self.progress.add_class("course-progress")
        self.counts = w.HTML()
        self.counts.add_class("course-counts")
        self.status = w.HTML()
        self.status.add_class("course-status")
        suggestion_tools = [self.accept_button, self.accept_all_button] if suggest_from else []
        wrap = w.Layout(flex_flow="row wrap")
        self.root = w.VBox(
            [
                w.HTML(IMAGE_CSS),
                self.name_box,
                self.legend,
                self.status,
                self.keys,
                w.HBox(list(self.buttons.values()), layout=wrap),
                w.HBox(
                    [self.unsure_button, self.skip_button, self.undo_button, *suggestion_tools],
                    layout=wrap,
                ),
                self.feedback,
                w.HBox([self.progress, self.counts]),
            ]
        )
        self.root.add_class("course-class-annotator")
        self._load_mine()
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

    def _load_mine(self) -> None:
        """Read this annotator's labels for the queue once; actions then keep them."""
        self.mine: dict[int, dict] = {}
        self.class_counts: Counter = Counter()
        self.status_counts: Counter = Counter()
        for row in self.catalog.labels(self.annotator):
            if row["image_id"] in self._where:
                self._put(row["image_id"], row)

    def _put(self, image_id: int, row: dict | None) -> None:
        """Replace the in-memory label of ``image_id`` (None removes it), counts too."""
        old = self.mine.pop(image_id, None)
        if old is not None:
            self.status_counts[old["status"]] -= 1
            if old["class_name"] is not None:
                self.class_counts[old["class_name"]] -= 1
        if row is not None:
            self.mine[image_id] = row
            self.status_counts[row["status"]] += 1
            if row["class_name"] is not None:
                self.class_counts[row["class_name"]] += 1

    def _first_open(self, start: int) -> int | None:
        """The first unlabeled position at or after ``start``, or None."""
        for k in range(start, len(self.queue)):
            if self.queue[k] not in self.mine:
                return k
        return None

    def _resume(self) -> None:
        """Go to the first image in the queue this annotator has not labeled yet."""
        found = self._first_open(0)
        self.position = len(self.queue) if found is None else found
        self._show()

    def _advance(self) -> None:
        """The next unlabeled image after this one, wrapping round to skipped-over ones."""
        found = self._first_open(self.position + 1)
        if found is None:
            found = self._first_open(0)
        self.position = len(self.queue) if found is None else found
        self._show()

    def _counts_text(self) -> str:
        n_done = len(self.mine)
        parts = [f"{name}: {self.class_counts.get(name, 0)}" for name in self.classes]
        for status in ("unsure", "skipped"):
            if self.status_counts.get(status):
                parts.append(f"{status}: {self.status_counts[status]}")
        return f"{n_done} of {len(self.queue)} done | " + ", ".join(parts)

    def _show(self) -> None:
        self.unsure_button.value = False
        self.progress.max = max(1, len(self.queue))
        self.progress.value = len(self.mine)
        self.counts.value = html.escape(self._counts_text())
        self._update_undo()
        for button in self.buttons.values():
            button.button_style = ""
        if self.position >= len(self.queue):
            self.current = None
            # The done panel takes the image's place inside the key area, so the undo
            # key still works there; an emptied image would show as a broken icon.
            self.image.layout.display = "none"
            self.done.layout.display = None
            summary = html.escape(self._counts_text().split(" | ", 1)[1])
            self.done.value = (
                f"<div style='padding:1em;border:1px solid #ccc'><b>Done: all"
                f" {len(self.queue)} images labeled by {html.escape(self.annotator)}.</b>"
                f"<br>{summary}<br>Undo (z, pointer here) goes back to the last one.</div>"
            )
            self.status.value = (
                f"<b>Done: {len(self.queue)} of {len(self.queue)} images labeled.</b>"
            )
            return
        self.current = self.queue[self.position]
        data, fmt = display_bytes(self.catalog, self.current)
        self.image.format = fmt
        self.image.value = data
        self.image.layout.display = None
        self.done.layout.display = "none"
        text = f"image {self.position + 1} of {len(self.queue)}"
        if self.current in self.suggestions:
            name, conf = self.suggestions[self.current]
            text += (
                f" | suggestion: <b>{html.escape(str(name))}</b>"
                f" (model's probability {conf:.2f}; Enter accepts)"
            )
            if name in self.buttons:
                self.buttons[name].button_style = "info"
        previous = self.mine.get(self.current)
        if previous is not None:
            shown = previous["class_name"] or "-"
            text += f" | yours: {html.escape(str(shown))} ({previous['status']})"
        self.status.value = text

    def _update_undo(self) -> None:
        if self.frozen:
            return
        if self.history or self.mine:
            self.undo_button.disabled = False
            self.undo_button.tooltip = (
                "take back the last action (z)"
                if self.history
                else "take back your latest stored label (z); it was stored before this"
                " widget opened, so the image becomes unlabeled"
            )
        else:
            self.undo_button.disabled = True
            self.undo_button.tooltip = (
                f"nothing to undo: {self.annotator} has no label stored for these images"
            )

    def _say(self, text: str, error: bool = False) -> None:
        colour = "#b00020" if error else "#2e7d32"
        self.feedback.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"

    def _record(self, class_name: str | None, status: str, source: str = "human", conf=None):
        """Store one label for the current image; on a refused write stay and say so."""
        image_id = self.current
        try:
            self.catalog.set_label(
                image_id,
                class_name,
                annotator=self.annotator,
                status=status,
                source=source,
                confidence=conf,
            )
        except SAVE_ERRORS as err:
            self._say(f"could not save: {err}; press the key again", error=True)
            return False
        before = self.mine.get(image_id)
        self.history.append([(image_id, before)])
        row = {
            "image_id": image_id,
            "annotator": self.annotator,
            "class_name": class_name,
            "status": status,
            "source": source,
            "confidence": conf,
            "updated_at": _now(),
        }
        self._put(image_id, row)
        what = "skipped" if status == "skipped" else f"stored: {class_name}"
        if status == "unsure":
            what += ", unsure"
        self._say(f"{what} (undo: z)")
        self._advance()
        return True

    # -- actions (buttons and keys call these) ---------------------------------------

    def choose(self, class_name: str) -> None:
        """Label the current image ``class_name`` (unsure if the unsure flag is on)."""
        if class_name not in self.classes:
            raise CatalogError(f"unknown class {class_name!r}; known classes: {self.classes}")
        self.actions += 1
        if self.current is None or self.frozen:
            return
        self._record(class_name, "unsure" if self.unsure_button.value else "labeled")

    def skip(self) -> None:
        self.actions += 1
        if self.current is not None and not self.frozen:
            self._record(None, "skipped")

    def toggle_unsure(self) -> None:
        self.actions += 1
        if not self.frozen:
            self.unsure_button.value = not self.unsure_button.value

    def accept(self) -> None:
        """Confirm the model's suggestion for the current image (a human decision)."""
        self.actions += 1
        if self.current is None or self.current not in self.suggestions or self.frozen:
            return
        name = self.suggestions[self.current][0]
        self._record(name, "unsure" if self.unsure_button.value else "labeled")

    def accept_all(self) -> int:
        """Store every unlabeled suggestion with confidence >= threshold; return how many.

        One transaction: all are stored or, if the catalog refuses, none (the feedback
        line says so). They keep source ``model`` and their confidence, so quality checks
        and a later review can tell them from labels a person chose.
        """
        self.actions += 1
        if self.frozen:
            return 0
        todo = [
            (image_id, self.suggestions[image_id])
            for image_id in self.queue
            if image_id not in self.mine
            and image_id in self.suggestions
            and self.suggestions[image_id][1] >= self.accept_threshold
        ]
        try:
            with self.catalog.transaction():
                for image_id, (name, conf) in todo:
                    self.catalog.set_label(
                        image_id, name, annotator=self.annotator, source="model", confidence=conf
                    )
        except SAVE_ERRORS as err:
            self._say(f"could not save: {err}; click accept all again", error=True)
            return 0
        stamp = _now()
        for image_id, (name, conf) in todo:
            row = {
                "image_id": image_id,
                "annotator": self.annotator,
                "class_name": name,
                "status": "labeled",
                "source": "model",
                "confidence": conf,
                "updated_at": stamp,
            }
            self._put(image_id, row)
        if todo:
            self.history.append([(image_id, None) for image_id, _ in todo])
            self._say(f"stored: {len(todo)} suggestions accepted (undo: z takes all back)")
        else:
            self._say(f"no open suggestion reaches {self.accept_threshold:.2f}")
        self._resume()
        return len(todo)

    def _latest_stored(self) -> int | None:
        """This annotator's latest stored label in the queue (for undo after reopening).

        The catalog stamps labels to the second, so among the latest stamp the label
        just before the first unlabeled image wins: a person labels in queue order.
        """
        if not self.mine:
            return None
        newest = max(row["updated_at"] or "" for row in self.mine.values())
        tied = [i for i, row in self.mine.items() if (row["updated_at"] or "") == newest]
        before = [i for i in tied if self._where[i] < self.position]
        return max(before or tied, key=self._where.__getitem__)

    def undo(self) -> None:
        """Revert the last action and show its image again (see the class docstring)."""
        self.actions += 1
        if self.frozen:
            return
        if self.history:
            step = self.history[-1]
        else:
            latest = self._latest_stored()
            if latest is None:
                self._say(f"nothing to undo: {self.annotator} has no label for these images")
                return
            step = [(latest, None)]
        try:
            with self.catalog.transaction():
                for image_id, before in reversed(step):
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
        except SAVE_ERRORS as err:
            self._say(f"could not undo: {err}; press z again", error=True)
            return
        if self.history:
            self.history.pop()
        undone = [self.mine.get(image_id) for image_id, _ in step]
        for image_id, before in step:
            self._put(image_id, before)
        if len(step) > 1:
            self._say(f"undone: {len(step)} accepted suggestions")
        else:
            row = undone[0]
            name = "skip" if row is None or row["class_name"] is None else row["class_name"]
            self._say(f"undone: {name}")
        self.position = min(self._where[image_id] for image_id, _ in step)
        self._show()

    def handle_key(self, event: dict) -> bool:
        """The ipyevents keydown handler; return whether the key did something."""
        if event.get("type", "keydown") != "keydown" or self.frozen:
            return False
        key = str(event.get("key", ""))
        if len(key) == 1 and key.lower() in self.keys_to_class:
            self.choose(self.keys_to_class[key.lower()])
            return True
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

    def freeze(self, reason: str) -> None:
        """Stop taking clicks and keys, and say why (a widget a script drove, shown to look at).

        A notebook shows the widget its simulated annotator labeled with; a learner's
        click on it would change the labels later cells check. Frozen, it stays on view.
        """
        self.frozen = True
        for widget in [
            *self.buttons.values(),
            self.undo_button,
            self.skip_button,
            self.unsure_button,
            self.accept_button,
            self.accept_all_button,
            self.name_box,
        ]:
            widget.disabled = True
        self._say(reason)

    def _rename(self, change) -> None:
        self.annotator = _check_annotator(change["new"])
        self.history.clear()
        self._load_mine()
        self._resume()

    def labels(self) -> dict[int, dict]:
        """This annotator's stored labels for the queue, by image id (read from the catalog)."""
        return {
            r["image_id"]: r
            for r in self.catalog.labels(self.annotator)
            if r["image_id"] in self._where
        }

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
        self.annotator = _check_annotator(annotator)
        self.display_size = int(display_size)
        self.queue = _queue(catalog, image_ids, dataset)
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
