"""The class annotator: one class per image, by button or key, each action stored at once.

Buttons, keys that match the labels (:mod:`helpers.labeling.keys`), undo, skip, unsure,
a line saying what was stored, progress with counts per class
(:mod:`helpers.labeling.tally`), and model suggestions with "accept all confident".

Model-assisted labeling (:mod:`helpers.labeling.suggest`) stores a cheap model's
predictions as labels of annotator ``"model"``; a :class:`ClassAnnotator` given
``suggest_from="model"`` shows them, orders its queue by uncertainty and accepts the
confident rest in one click.
"""

from __future__ import annotations

import html

from helpers.catalog import Catalog, CatalogError, utc_now
from helpers.labeling.display import IMAGE_CSS, display_bytes, slug
from helpers.labeling.keys import CONTROL_KEYS, class_keys, key_legend
from helpers.labeling.session import SAVE_ERRORS, check_annotator, image_queue
from helpers.labeling.tally import QueueTally


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
        self.annotator = check_annotator(annotator)
        if order not in ("catalog", "uncertainty"):
            raise ValueError(f"order must be 'catalog' or 'uncertainty', not {order!r}")
        self.suggest_from = suggest_from
        self.accept_threshold = float(accept_threshold)
        self.display_size = int(display_size)
        self.queue = image_queue(catalog, image_ids, dataset)
        self.suggestions = self._load_suggestions()
        if order == "uncertainty":
            # Least confident first: the human's clicks go where the model is unsure.
            self.queue.sort(key=lambda i: self.suggestions.get(i, (None, -1.0))[1])
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
        legend = key_legend(self.classes, self.key_of, bool(suggest_from))
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
        self.tally = QueueTally(self.queue, self.classes, self.catalog.labels(self.annotator))

    def _resume(self) -> None:
        """Go to the first image in the queue this annotator has not labeled yet."""
        found = self.tally.first_open(0)
        self.position = len(self.queue) if found is None else found
        self._show()

    def _advance(self) -> None:
        """The next unlabeled image after this one, wrapping round to skipped-over ones."""
        found = self.tally.first_open(self.position + 1)
        if found is None:
            found = self.tally.first_open(0)
        self.position = len(self.queue) if found is None else found
        self._show()

    def _show(self) -> None:
        self.unsure_button.value = False
        self.progress.max = max(1, len(self.queue))
        self.progress.value = len(self.tally.labels)
        self.counts.value = html.escape(self.tally.progress())
        self._update_undo()
        for button in self.buttons.values():
            button.button_style = ""
        if self.position >= len(self.queue):
            self.current = None
            # The done panel takes the image's place inside the key area, so the undo
            # key still works there; an emptied image would show as a broken icon.
            self.image.layout.display = "none"
            self.done.layout.display = None
            summary = html.escape(self.tally.summary())
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
        previous = self.tally.labels.get(self.current)
        if previous is not None:
            shown = previous["class_name"] or "-"
            text += f" | yours: {html.escape(str(shown))} ({previous['status']})"
        self.status.value = text

    def _update_undo(self) -> None:
        if self.frozen:
            return
        if self.history or self.tally.labels:
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
        before = self.tally.labels.get(image_id)
        self.history.append([(image_id, before)])
        row = {
            "image_id": image_id,
            "annotator": self.annotator,
            "class_name": class_name,
            "status": status,
            "source": source,
            "confidence": conf,
            "updated_at": utc_now(),
        }
        self.tally.put(image_id, row)
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
            if image_id not in self.tally.labels
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
        stamp = utc_now()
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
            self.tally.put(image_id, row)
        if todo:
            self.history.append([(image_id, None) for image_id, _ in todo])
            self._say(f"stored: {len(todo)} suggestions accepted (undo: z takes all back)")
        else:
            self._say(f"no open suggestion reaches {self.accept_threshold:.2f}")
        self._resume()
        return len(todo)

    def undo(self) -> None:
        """Revert the last action and show its image again (see the class docstring)."""
        self.actions += 1
        if self.frozen:
            return
        if self.history:
            step = self.history[-1]
        else:
            latest = self.tally.latest(self.position)
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
        undone = [self.tally.labels.get(image_id) for image_id, _ in step]
        for image_id, before in step:
            self.tally.put(image_id, before)
        if len(step) > 1:
            self._say(f"undone: {len(step)} accepted suggestions")
        else:
            row = undone[0]
            name = "skip" if row is None or row["class_name"] is None else row["class_name"]
            self._say(f"undone: {name}")
        self.position = min(self.tally.position_of[image_id] for image_id, _ in step)
        self._show()

    def handle_key(self, event: dict) -> bool:
        """The ipyevents keydown handler; return whether the key did something."""
        if event.get("type", "keydown") != "keydown" or self.frozen:
            return False
        key = str(event.get("key", ""))
        if len(key) == 1 and key.lower() in self.keys_to_class:
            self.choose(self.keys_to_class[key.lower()])
            return True
        action = CONTROL_KEYS.get(key if len(key) > 1 else key.lower())
        if action is None:
            return False
        getattr(self, action)()
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
        self.annotator = check_annotator(change["new"])
        self.history.clear()
        self._load_mine()
        self._resume()

    def labels(self) -> dict[int, dict]:
        """This annotator's stored labels for the queue, by image id (read from the catalog)."""
        return {
            r["image_id"]: r
            for r in self.catalog.labels(self.annotator)
            if r["image_id"] in self.tally.position_of
        }

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)
