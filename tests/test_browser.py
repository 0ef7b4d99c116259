"""The labeling widgets, used as a person uses them: in JupyterLab, in a real browser.

Widgets that work when driven from Python can still fail where people use them: the
front-end extension missing, JupyterLab swallowing a keyboard shortcut (or acting on
it too: "1" turns a cell into a heading), an image that never shows, a box stored in
screen pixels instead of image pixels. So this test starts JupyterLab on 127.0.0.1,
opens tests/browser/annotate.ipynb in headless Chromium, runs it, then clicks class
buttons, presses the shortcut keys (a digit class's own key), uses undo and skip, reads
the line that says what was stored, drags boxes with the mouse using the box
annotator's one navigation, fixes a label in the review gallery, and finally opens the
catalog from this process and checks it holds exactly those labels and boxes.
Screenshots of each widget go to test-artifacts/browser/. The photo upload widget of
notebook 09 gets the same treatment from tests/browser/upload.ipynb: a photo and a file
that is not an image go in through its file input, and its screenshot is kept in
docs/upload_widget.png for the README.

It needs Debian's ``chromium`` (``apt-get install -y chromium``; .ci/run installs it).
Without it the test is skipped with the reason, except under CI (``$CI`` set), where
it fails: a CI run must not pass without having looked at the widgets.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.catalog import Catalog

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser.lab import (  # noqa: E402
    BrowserUnavailable,
    JupyterLabServer,
    find_chromium,
    launch_chromium,
    notebook_state,
    open_and_run_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = Path(__file__).resolve().parent / "browser" / "annotate.ipynb"
UPLOAD_NOTEBOOK = NOTEBOOK.with_name("upload.ipynb")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
DOCS = ROOT / "docs"  # the README shows the upload widget from here
ANNOTATOR = "browser-tester"  # the name annotate.ipynb labels under
OBJECT_COLOUR = (230, 180, 40)  # the flat rectangle in each generated scene
ACTIVE = re.compile(r"\bmod-active\b")  # a pressed ToggleButton
WAIT_MS = 60_000  # a hang guard for one click's round trip, even on a loaded 2-core box
RUN_MS = 600_000  # running a notebook: upload.ipynb trains a small CNN first


def unavailable(reason: str):
    """Skip on a developer's machine; fail under CI, where the browser must be there."""
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium under Playwright, shared by the module's notebooks: Playwright's
    sync API runs one instance per thread, so each notebook gets a context of its own."""
    try:
        from playwright.sync_api import sync_playwright

        executable = find_chromium()
        missing = None
    except ImportError:
        missing = "Playwright for Python is missing: pip install -r requirements.txt"
    except BrowserUnavailable as exc:
        missing = str(exc)
    if missing:
        unavailable(missing)
    with sync_playwright() as pw:
        browser = launch_chromium(pw, executable)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def running_lab(tmp_path_factory, browser, notebook: Path, name: str):
    """JupyterLab with ``notebook`` open and run in a fresh browser context; torn down on
    leaving.

    The notebook is copied into a temporary server root, so JupyterLab's autosave never
    writes outputs into the repository, and COURSE_DATA_DIR points the kernel at a
    fresh catalog folder that this process opens afterwards. ``name`` prefixes the
    artifacts (screenshot, console log).
    """
    work = tmp_path_factory.mktemp("browser")
    server_root = work / "lab"
    server_root.mkdir()
    shutil.copy(notebook, server_root / notebook.name)
    catalog_dir = work / "catalog"
    env = {"COURSE_DATA_DIR": str(catalog_dir), "COURSE_PROFILE": "smoke"}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console: list[str] = []
    with JupyterLabServer(server_root, work / "jupyter", env) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 1400})
        try:
            page = context.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            try:
                open_and_run_notebook(page, server, notebook.name, timeout_ms=RUN_MS)
            except Exception as exc:
                page.screenshot(path=str(ARTIFACTS / f"{name}-failed.png"))
                raise AssertionError(
                    f"{exc}\n\nbrowser console:\n"
                    + "\n".join(console[-30:])
                    + f"\n\nserver log:\n{server.log_tail()}"
                ) from exc
            yield SimpleNamespace(
                page=page, catalog_dir=catalog_dir, server=server, console=console, work=work
            )
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        finally:
            (ARTIFACTS / f"{name}-console.log").write_text("\n".join(console) + "\n")
            context.close()
        # One notebook, one kernel: a second would mean a kernel dialog or a restart
        # happened behind the test's back. Leaving the block stops the server and it.
        assert len(server.api("/api/kernels")) == 1


@pytest.fixture(scope="module")
def lab(tmp_path_factory, chromium):
    """annotate.ipynb open and run in JupyterLab (see :func:`running_lab`)."""
    with running_lab(tmp_path_factory, chromium, NOTEBOOK, "jupyterlab") as running:
        yield running


@pytest.fixture(scope="module")
def upload_lab(tmp_path_factory, chromium):
    """upload.ipynb open and run: a small CNN trained on the target photos, and the
    upload widget showing it (see :func:`running_lab`)."""
    with running_lab(tmp_path_factory, chromium, UPLOAD_NOTEBOOK, "upload") as running:
        yield running


def assert_no_page_errors(lab) -> None:
    """An uncaught exception in a widget's JavaScript is a bug even if the clicks worked."""
    errors = [line for line in lab.console if line.startswith("pageerror:")]
    assert not errors, "\n".join(errors)


def open_catalog(lab) -> Catalog:
    return Catalog(lab.catalog_dir)


def cell_kinds(page) -> list[str]:
    """The notebook's cells by type: changes if JupyterLab also acted on a widget's key."""
    return page.eval_on_selector_all(
        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell",
        "els => els.map(e => e.classList.contains('jp-CodeCell') ? 'code' : 'markdown')",
    )


def shown_image(locator) -> dict:
    """Natural and on-screen size of an <img> once it has loaded."""
    locator.wait_for(state="visible", timeout=WAIT_MS)
    locator.page.wait_for_function(
        "el => el.complete && el.naturalWidth > 0", arg=locator.element_handle(), timeout=WAIT_MS
    )
    return locator.evaluate(
        "el => ({natural: [el.naturalWidth, el.naturalHeight],"
        " shown: [el.getBoundingClientRect().width, el.getBoundingClientRect().height]})"
    )


def screenshot(locator, name: str) -> Path:
    path = ARTIFACTS / name
    locator.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def test_class_annotator_by_clicks_and_keys(lab):
    from playwright.sync_api import expect

    page = lab.page
    with open_catalog(lab) as catalog:
        ids = [row["id"] for row in catalog.images(dataset="digits")]
        first = catalog.image(ids[0])
    assert len(ids) == 5, f"annotate.ipynb should store 5 digits, found {ids}"
    cells_before = cell_kinds(page)

    widget = page.locator(".course-class-annotator")
    status = widget.locator(".course-status")
    keys = widget.locator(".course-keys")
    feedback = widget.locator(".course-feedback")
    expect(widget.locator(".course-class-button")).to_have_count(3, timeout=WAIT_MS)
    expect(status).to_contain_text("image 1 of 5", timeout=WAIT_MS)
    assert f"id {ids[0]}" not in status.inner_text()  # a position, not internal ids
    expect(widget.locator(".course-legend")).to_contain_text("pointer over the image")
    # Digit classes: each button is the digit itself, and so is its key.
    assert widget.locator(".course-class-button").all_inner_texts() == ["0", "1", "2"]
    image = shown_image(widget.locator(".course-image"))
    assert image["natural"] == [first["width"], first["height"]], image  # the real 8x8 digit
    assert image["shown"][0] >= 8 * first["width"], f"the digit is not shown enlarged: {image}"

    def at(position: int):
        expect(status).to_contain_text(f"image {position} of 5", timeout=WAIT_MS)

    def said(text: str):
        expect(feedback).to_contain_text(text, timeout=WAIT_MS)

    def press(key: str):
        keys.hover()  # ipyevents hears keys while the pointer is over the image area
        page.keyboard.press(key)

    def click(css: str):
        widget.locator(css).click()

    click(".course-class-0")  # image 1: a button
    at(2)
    said("stored: 0 (undo: z)")
    press("1")  # image 2: key 1 stores class "1" (not the 1st class, "0")
    at(3)
    said("stored: 1 (undo: z)")
    screenshot(widget, "class_annotator_start.png")
    press("u")  # image 3: unsure by key, then a class key
    expect(widget.locator(".course-unsure")).to_have_class(ACTIVE, timeout=WAIT_MS)
    press("2")
    at(4)
    said("stored: 2, unsure (undo: z)")
    press("1")  # image 4: label, undo with z, label, undo with Backspace ...
    at(5)
    press("z")
    at(4)
    said("undone: 1")
    press("1")
    at(5)
    press("Backspace")
    at(4)
    press("s")  # ... skip by key, undo by button, skip by button
    at(5)
    click(".course-undo")
    at(4)
    click(".course-skip")
    at(5)
    click(".course-unsure")  # image 5: unsure by button, then a class button
    expect(widget.locator(".course-unsure")).to_have_class(ACTIVE, timeout=WAIT_MS)
    click(".course-class-2")
    done = widget.locator(".course-done")
    expect(done).to_contain_text("Done: all 5 images labeled", timeout=WAIT_MS)
    expect(done).to_contain_text("0: 1, 1: 1, 2: 2, unsure: 2, skipped: 1")
    expect(widget.locator(".course-counts")).to_contain_text("5 of 5 done", timeout=WAIT_MS)
    expect(widget.locator(".course-image")).to_be_hidden()  # no blank square left behind
    screenshot(widget, "class_annotator_done.png")

    with open_catalog(lab) as catalog:
        stored = {
            r["image_id"]: (r["class_name"], r["status"], r["source"])
            for r in catalog.labels(ANNOTATOR)
        }
    assert stored == {
        ids[0]: ("0", "labeled", "human"),
        ids[1]: ("1", "labeled", "human"),
        ids[2]: ("2", "unsure", "human"),
        ids[3]: (None, "skipped", "human"),
        ids[4]: ("2", "unsure", "human"),
    }
    # The keys went to the widget only: JupyterLab's command mode did not also turn a
    # cell into a heading ("1"), add one or delete one.
    assert cell_kinds(page) == cells_before
    assert_no_page_errors(lab)


def object_box(catalog: Catalog, image_id: int) -> tuple[int, int, int, int]:
    """Pixel corners (x0, y0, x1, y1) of the flat-coloured object in a generated scene."""
    mask = np.all(catalog.load_image(image_id, "RGB") == OBJECT_COLOUR, axis=-1)
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def drag_box(page, img, size: tuple[int, int], corners: tuple[int, int, int, int]) -> None:
    """Drag on the shown image from one original-pixel corner to the other, as a person."""
    img.scroll_into_view_if_needed()
    rect = img.bounding_box()
    width, height = size
    x0, y0, x1, y1 = corners

    def screen(x, y):
        return rect["x"] + x * rect["width"] / width, rect["y"] + y * rect["height"] / height

    page.mouse.move(*screen(x0, y0))
    page.mouse.down()
    page.mouse.move(*screen((x0 + x1) / 2, (y0 + y1) / 2), steps=5)
    page.mouse.move(*screen(x1, y1), steps=5)
    page.mouse.up()


def test_box_annotator_by_mouse(lab):
    from playwright.sync_api import expect

    page = lab.page
    with open_catalog(lab) as catalog:
        scenes = catalog.images(dataset="scenes")
        targets = [object_box(catalog, row["id"]) for row in scenes]
    assert [(r["width"], r["height"]) for r in scenes] == [(64, 48), (48, 64)]
    cells_before = cell_kinds(page)

    widget = page.locator(".course-box-annotator")
    status = widget.locator(".course-status")
    img = widget.locator(".course-bbox img")
    # One navigation: jupyter-bbox-widget's own Skip and Submit are hidden, and the
    # course's buttons say what they do.
    expect(widget.locator(".course-box-next")).to_be_visible(timeout=WAIT_MS)
    buttons = [t.strip() for t in widget.locator("button:visible").all_inner_texts()]
    assert not {"Skip", "Submit"} & set(buttons), buttons
    assert [b for b in buttons if "image" in b] == ["previous image", "next image"], buttons
    expect(widget.locator(".course-box-hint")).to_contain_text("Drag on the image")
    for n, (row, target, cls) in enumerate(zip(scenes, targets, ("square", "circle"), strict=True)):
        expect(status).to_contain_text(f"image {n + 1} of 2", timeout=WAIT_MS)
        shown = shown_image(img)
        # Shown enlarged by a whole factor, aspect kept: boxes map back exactly.
        factor = shown["natural"][0] / row["width"]
        assert factor == int(factor) >= 2 and shown["natural"][1] == row["height"] * factor
        if n == 0:
            widget.locator(".course-bbox .class-label", has_text=cls).click()
        else:
            # The class by its number key, with the widget focused as after a click.
            widget.locator(".course-bbox [tabindex]").first.focus()
            page.keyboard.press("2")
        # Draw once the kernel has the class, as a person does after seeing it chosen: a
        # drag begun while the class change is still on its way to the kernel is lost
        # (the box stays at its mouse-down size of zero; the annotator says so).
        expect(status).to_contain_text(f"new boxes: {cls}", timeout=WAIT_MS)
        drag_box(page, img, (row["width"], row["height"]), target)
        try:
            expect(status).to_contain_text("| 1 box by", timeout=WAIT_MS)
        except AssertionError as exc:
            said = widget.locator(".course-message").inner_text()
            raise AssertionError(f"the drag stored no box; the annotator says {said!r}") from exc
        expect(widget.locator(".course-box-progress")).to_contain_text(
            f"{n + 1} of 2 images have boxes", timeout=WAIT_MS
        )
        screenshot(widget, f"box_annotator_{n + 1}.png")
        if n == 0:
            widget.locator(".course-box-next").click()

    with open_catalog(lab) as catalog:
        stored = catalog.boxes(annotator=ANNOTATOR)
    assert [(b["image_id"], b["class_name"]) for b in stored] == [
        (scenes[0]["id"], "square"),
        (scenes[1]["id"], "circle"),
    ]
    for box, target in zip(stored, targets, strict=True):
        got = [box["x0"], box["y0"], box["x1"], box["y1"]]
        # Original-image pixels, not the enlarged copy's or the screen's: within 1 pixel.
        assert got == pytest.approx(list(target), abs=1.0), (got, target)
    assert cell_kinds(page) == cells_before
    assert_no_page_errors(lab)


def test_review_gallery_fixes_a_label(lab):
    from playwright.sync_api import expect

    page = lab.page
    gallery = page.locator(".course-review-gallery")
    expect(gallery.locator(".course-review-card")).to_have_count(2, timeout=WAIT_MS)
    expect(gallery.locator(".course-review-header")).to_contain_text(
        "probability for the given label"
    )
    first = gallery.locator(".course-review-card").first
    expect(first.locator(".course-review-text")).to_contain_text("P(2) = 0.03")
    options = first.locator(".course-review-menu option").all_inner_texts()
    assert options == ["0", "1", "2"], options  # the data set's classes, not the scenes'
    first.locator(".course-review-accept").click()
    expect(first.locator(".course-review-state")).to_contain_text("saved: 0", timeout=WAIT_MS)
    screenshot(gallery, "review_gallery.png")
    with open_catalog(lab) as catalog:
        rows = catalog.labels("reviewer")
        first_id = catalog.images(dataset="digits")[0]["id"]
    assert [(r["image_id"], r["class_name"], r["source"]) for r in rows] == [
        (first_id, "0", "review")
    ]
    assert_no_page_errors(lab)


def test_upload_widget_shows_classes_probabilities_and_map(upload_lab, tmp_path):
    from playwright.sync_api import expect

    from helpers.acquire.photos import TARGET_CLASSES, photo_tree

    page = upload_lab.page
    widget = page.locator(".course-upload")
    message = widget.locator(".course-upload-message")
    button = widget.locator(".course-upload-button")
    expect(button).to_be_visible(timeout=WAIT_MS)
    expect(message).to_contain_text("the model knows only", timeout=WAIT_MS)
    assert widget.locator(".course-upload-figure").is_hidden()  # nothing shown before a photo

    def upload(path: Path) -> None:
        """Click the button and pick ``path`` in the file dialog, as a person does (the
        widget's file input is never in the page, so it cannot be filled directly)."""
        with page.expect_file_chooser(timeout=WAIT_MS) as chooser:
            button.click()
        chooser.value.set_files(str(path))

    photo = sorted((photo_tree("target", limit_per_class=60) / "test" / "dog").glob("*.jpg"))[0]
    upload(photo)
    expect(message).to_contain_text(photo.name, timeout=WAIT_MS)
    rows = widget.locator(".course-upload-row")
    expect(rows).to_have_count(len(TARGET_CLASSES), timeout=WAIT_MS)
    shown = [row.split()[0] for row in rows.all_inner_texts()]
    assert sorted(shown) == sorted(TARGET_CLASSES), shown
    probabilities = [float(p) for p in widget.locator(".course-upload-p").all_inner_texts()]
    assert probabilities == sorted(probabilities, reverse=True)  # most probable first
    assert abs(sum(probabilities) - 1) <= 0.01  # three decimals each
    assert shown[0] in message.inner_text()  # the line names the top class
    figure = shown_image(widget.locator(".course-upload-figure"))
    assert figure["natural"][0] > 300 and figure["shown"][0] > 300, figure
    screenshot(widget, "upload_widget.png")
    DOCS.mkdir(exist_ok=True)
    widget.screenshot(path=str(DOCS / "upload_widget.png"))

    not_a_photo = tmp_path / "notes.txt"
    not_a_photo.write_text("these are my notes, not a photo\n")
    upload(not_a_photo)
    expect(message).to_contain_text("notes.txt was not classified: not an image", timeout=WAIT_MS)
    expect(rows).to_have_count(0, timeout=WAIT_MS)
    expect(widget.locator(".course-upload-figure")).to_be_hidden(timeout=WAIT_MS)
    screenshot(widget, "upload_widget_refused.png")
    errors, _ = notebook_state(page)
    assert not errors, errors  # the refusal is the widget's message, not a traceback
    assert_no_page_errors(upload_lab)
