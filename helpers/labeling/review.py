"""The review gallery: suspect labels on cards, each fixed in the catalog with one click.

The suspects come from :func:`helpers.quality.find_label_issues` (or any list of dicts
with ``image_id``, ``given``, ``suggested`` and ``quality``); the gallery only shows them
and stores the reviewer's decisions, so it lives with the other labeling widgets.
"""

from __future__ import annotations

import html
import os

from helpers.catalog import Catalog, CatalogError
from helpers.labeling.display import IMAGE_CSS, display_bytes
from helpers.results import RESULTS_FILE_ENV

# Set where nobody is at the notebook to click: CI services set CI, the course runner sets
# the results file (helpers.results), and pytest (nbval's kernels inherit it) sets
# PYTEST_VERSION. A kernel that JupyterLab starts has none of them.
HEADLESS_ENV = ("CI", RESULTS_FILE_ENV, "PYTEST_VERSION")


def headless(environ=None) -> bool:
    """Whether the notebook runs with nobody to click its widgets (CI, the runner, nbval).

    A review gallery is then clicked by :func:`review_by_code`; interactively it waits
    for you.
    """
    environ = os.environ if environ is None else environ
    return any(environ.get(name) for name in HEADLESS_ENV)


class ReviewGallery:
    """A grid of suspect labels; each card fixes its image's label in the catalog at once.

    Per card: the image, the given and the suggested class, the model's probability for
    the given label (``quality`` from :func:`helpers.quality.find_label_issues`: out of
    fold, low means the label looks wrong; the header says so), and buttons "use
    suggestion" (``course-review-accept``), "keep" (``course-review-keep``, stores the
    given class as reviewed) and a class menu with "set" (``course-review-set``). A fix
    is stored with source ``review``, so reviewed labels can be told apart later.

    The menu offers ``classes``, by default the classes of the data set under review:
    those any annotator used on images of the suspects' data sets, plus the given and
    suggested ones, in catalog order (a catalog holding digits and shapes offers digits
    for a digit). Any annotator, not only the reviewer: a second person reviewing the
    first one's labels has labeled nothing yet, and still needs every class of the set.

    Every widget is a comm with the browser, and each layout, style and CSS class added
    after creation is one more message: the cards share their layouts and styles and get
    their CSS classes when created. For notebook 02's 144 suspects (smoke profile) that
    is 10 widgets a card instead of 23, and 2,198 kernel messages instead of 5,216 for
    building, reviewing and freezing the gallery (a cell that had run past nbval's 120 s
    under load).
    """

    def __init__(
        self,
        catalog: Catalog,
        issues: list[dict],
        annotator: str,
        *,
        classes: list[str] | None = None,
        columns: int = 4,
        display_size: int = 96,
    ):
        import ipywidgets as w
        from ipywidgets.widgets.widget_description import DescriptionStyle
        from ipywidgets.widgets.widget_string import HTMLStyle

        self.catalog = catalog
        self.annotator = annotator
        self.classes = self._classes(issues) if classes is None else list(classes)
        missing = sorted({i[k] for i in issues for k in ("given", "suggested")} - set(self.classes))
        if missing:
            raise CatalogError(f"classes {self.classes} lack {missing}, named by the issues")
        self.cards: dict[int, dict] = {}
        boxes = []
        picture = w.Layout(width=f"{display_size}px")
        auto = w.Layout(width="auto")
        plain = w.Layout()
        text_style = HTMLStyle()
        button_style = w.ButtonStyle()
        menu_style = DescriptionStyle()

        def button(description: str, hook: str):
            return w.Button(
                description=description,
                layout=auto,
                style=button_style,
                _dom_classes=(hook,),
            )

        def text(value: str, hook: str):
            return w.HTML(value, layout=plain, style=text_style, _dom_classes=(hook,))

        for number, issue in enumerate(issues, start=1):
            image_id = issue["image_id"]
            data, fmt = display_bytes(catalog, image_id)
            image = w.Image(value=data, format=fmt, layout=picture, _dom_classes=("course-image",))
            given = html.escape(str(issue["given"]))
            about = text(
                f"{number}. given <b>{given}</b>, suggested"
                f" <b>{html.escape(str(issue['suggested']))}</b><br><small>P({given}) ="
                f" {issue['quality']:.2f}</small>",
                "course-review-text",
            )
            accept = button("use suggestion", "course-review-accept")
            accept.on_click(lambda _b, i=image_id, c=issue["suggested"]: self.fix(i, c))
            keep = button("keep", "course-review-keep")
            keep.on_click(lambda _b, i=image_id, c=issue["given"]: self.fix(i, c))
            menu = w.Dropdown(
                options=self.classes,
                value=issue["suggested"],
                layout=auto,
                style=menu_style,
                _dom_classes=("course-review-menu",),
            )
            apply = button("set", "course-review-set")
            apply.on_click(lambda _b, i=image_id, m=menu: self.fix(i, m.value))
            state = text("", "course-review-state")
            card = w.VBox(
                [
                    image,
                    about,
                    w.HBox([accept, keep], layout=plain),
                    w.HBox([menu, apply], layout=plain),
                    state,
                ],
                layout=plain,
                _dom_classes=("course-review-card",),
            )
            self.cards[image_id] = {
                "accept": accept,
                "keep": keep,
                "menu": menu,
                "set": apply,
                "state": state,
                "issue": issue,
            }
            boxes.append(card)
        grid = w.GridBox(boxes, layout=w.Layout(grid_template_columns=f"repeat({columns}, auto)"))
        self.header = w.HTML(
            f"<b>{len(issues)} suspect labels of {html.escape(annotator)}, worst first.</b>"
            " P(given) on each card is the model's probability for the given label, from a"
            " model that never saw that image (out of fold): low means the label looks wrong."
        )
        self.header.add_class("course-review-header")
        self.root = w.VBox([w.HTML(IMAGE_CSS), self.header, grid])
        self.root.add_class("course-review-gallery")

    def _classes(self, issues: list[dict]) -> list[str]:
        """The classes of the data sets the suspects belong to, in catalog order."""
        named = {i[k] for i in issues for k in ("given", "suggested")}
        datasets = {self.catalog.image(i["image_id"])["dataset"] for i in issues}
        if None in datasets:  # images without a data set: every image is "the data set"
            in_sets = None
        else:
            in_sets = {r["id"] for d in datasets for r in self.catalog.images(dataset=d)}
        used = {
            r["class_name"]
            for r in self.catalog.labels()
            if r["class_name"] is not None and (in_sets is None or r["image_id"] in in_sets)
        }
        return [c for c in self.catalog.classes() if c in used | named]

    def fix(self, image_id: int, class_name: str) -> None:
        """Store ``class_name`` as the reviewed label of ``image_id`` (one transaction)."""
        self.catalog.set_label(image_id, class_name, annotator=self.annotator, source="review")
        self.cards[image_id]["state"].value = f"saved: {html.escape(str(class_name))}"

    def freeze(self, reason: str) -> None:
        """Disable every card's buttons and menu (a review a script did, kept on view)."""
        for card in self.cards.values():
            for name in ("accept", "keep", "menu", "set"):
                card[name].disabled = True
        self.header.value += f"<br><i>{html.escape(reason)}</i>"

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)


def review_by_code(gallery, issues, truth: dict) -> int:
    """Click ``gallery`` as a reviewer who knows each image's true class (``truth``;
    the given label where it has none) would, then freeze it; for headless runs, where
    nobody is there to click. Returns how many of the ``issues`` had a wrong label."""
    wrong = 0
    for issue in issues:
        card = gallery.cards[issue["image_id"]]
        right = truth.get(issue["image_id"], issue["given"])
        wrong += right != issue["given"]
        if right == issue["given"]:
            card["keep"].click()
        elif right == issue["suggested"]:
            card["accept"].click()
        else:
            card["menu"].value = right
            card["set"].click()
    gallery.freeze("Reviewed by code (a headless run), frozen.")
    return wrong
