"""The annotators write each action to the catalog through the handlers their widgets call."""

import numpy as np
import pytest

from helpers.catalog import Catalog, CatalogError
from helpers.labeling import (
    BoxAnnotator,
    ClassAnnotator,
    SimulatedAnnotator,
    fit_suggestions,
    margin_uncertainty,
    simulate_labels,
)
from helpers.labeling.box_annotator import _widget_box
from helpers.labeling.display import slug
from helpers.labeling.keys import class_keys

CLASSES = ["cat", "dog", "bird"]


@pytest.fixture()
def cat(tmp_path):
    c = Catalog(tmp_path)
    c.set_classes(CLASSES)
    rng = np.random.default_rng(0)
    for _ in range(8):
        c.add_image_array(rng.integers(0, 255, (8, 8), dtype=np.uint8), dataset="toy")
    yield c
    c.close()


def _mine(c, who):
    return {r["image_id"]: (r["class_name"], r["status"]) for r in c.labels(who)}


def test_buttons_keys_undo_skip_unsure_reach_the_catalog(cat):
    a = ClassAnnotator(cat, annotator="ana")
    assert a.current == 1 and a.image.value  # first image shown
    a.buttons["dog"].click()
    assert _mine(cat, "ana") == {1: ("dog", "labeled")}
    assert a.handle_key({"type": "keydown", "key": "3"})  # 3rd class
    a.handle_key({"type": "keydown", "key": "u"})
    a.handle_key({"type": "keydown", "key": "1"})
    a.skip_button.click()
    assert _mine(cat, "ana") == {
        1: ("dog", "labeled"),
        2: ("bird", "labeled"),
        3: ("cat", "unsure"),
        4: (None, "skipped"),
    }
    a.handle_key({"type": "keydown", "key": "z"})  # undo the skip
    assert 4 not in _mine(cat, "ana") and a.current == 4
    a.undo_button.click()  # undo the unsure label: back to image 3
    assert 3 not in _mine(cat, "ana") and a.current == 3
    a.buttons["cat"].click()
    assert _mine(cat, "ana")[3] == ("cat", "labeled")
    assert not a.handle_key({"type": "keydown", "key": "q"})
    assert not a.handle_key({"type": "keydown", "key": "9"})  # no 9th class
    assert a.progress.value == 3 and "cat: 1" in a.counts.value
    with pytest.raises(CatalogError, match="unknown class"):
        a.choose("horse")


def test_undo_restores_the_label_it_replaced(cat):
    cat.set_label(1, "cat", annotator="ana")
    a = ClassAnnotator(cat, annotator="ana", image_ids=[1, 2])
    a.position = 0
    a._show()
    a.buttons["bird"].click()
    assert _mine(cat, "ana")[1] == ("bird", "labeled")
    a.undo()
    assert _mine(cat, "ana")[1] == ("cat", "labeled")


def test_reopening_resumes_and_two_annotators_are_independent(cat):
    a = ClassAnnotator(cat, annotator="ana")
    for key in "1231":
        a.handle_key({"type": "keydown", "key": key})
    again = ClassAnnotator(cat, annotator="ana")
    assert again.current == 5 and again.progress.value == 4
    ben = ClassAnnotator(cat, annotator="ben")
    assert ben.current == 1
    ben.buttons["bird"].click()
    assert _mine(cat, "ana")[1] == ("cat", "labeled") and _mine(cat, "ben")[1][0] == "bird"
    ben.name_box.value = "ana"  # typing a name switches annotator and resumes
    assert ben.annotator == "ana" and ben.current == 5


def test_finishing_the_queue_and_key_without_image(cat):
    a = ClassAnnotator(cat, annotator="ana", image_ids=[7, 8])
    a.buttons["cat"].click()
    a.handle_key({"type": "keydown", "key": "u"})
    a.buttons["dog"].click()
    assert a.current is None and "Done: 2 of 2" in a.status.value
    # The done panel replaces the image (no broken-image icon) and gives the counts.
    assert a.image.layout.display == "none" and a.done.layout.display is None
    assert "all 2 images labeled by ana" in a.done.value
    assert "cat: 1, dog: 1, bird: 0, unsure: 1" in a.done.value
    a.buttons["cat"].click()  # nothing left: no error, nothing written
    assert len(_mine(cat, "ana")) == 2
    a.handle_key({"type": "keydown", "key": "z"})  # undo brings the last image back
    assert a.current == 8 and a.image.layout.display is None
    assert a.done.layout.display == "none"


def test_keys_match_the_labels():
    assert class_keys([str(d) for d in range(10)]) == {str(d): str(d) for d in range(10)}
    assert class_keys(["cat", "dog"]) == {"1": "cat", "2": "dog"}
    # One-character names are their own key, the rest get the digits still free;
    # a class named like a control key (s = skip) gets a digit, never that key.
    assert class_keys(["3", "cat", "B", "s", "1"]) == {
        "3": "3",
        "b": "B",
        "1": "1",
        "2": "cat",
        "4": "s",
    }
    assert len(class_keys([f"c{k}" for k in range(12)])) == 10  # 11th and 12th: buttons only


def test_digit_classes_key_stores_that_digit_and_the_feedback_says_so(tmp_path):
    c = Catalog(tmp_path)
    digits = [str(d) for d in range(10)]
    for v in range(20):
        c.add_image_array(np.full((8, 8), v * 10, np.uint8))
    a = ClassAnnotator(c, digits, annotator="ana")
    assert a.buttons["3"].description == "3" and "key 3" in a.buttons["3"].tooltip
    assert "image 1 of 20" in a.status.value and "id" not in a.status.value
    assert "pointer over the image" in a.legend.value
    a.handle_key({"type": "keydown", "key": "3"})
    a.handle_key({"type": "keydown", "key": "0"})
    assert _mine(c, "ana") == {1: ("3", "labeled"), 2: ("0", "labeled")}
    assert "stored: 0 (undo: z)" in a.feedback.value
    a.handle_key({"type": "keydown", "key": "u"})
    a.handle_key({"type": "keydown", "key": "7"})
    assert "stored: 7, unsure (undo: z)" in a.feedback.value
    a.handle_key({"type": "keydown", "key": "s"})
    assert "skipped (undo: z)" in a.feedback.value
    a.handle_key({"type": "keydown", "key": "z"})
    assert "undone: skip" in a.feedback.value and "image 4 of 20" in a.status.value
    assert a.counts.value.startswith("3 of 20 done")
    named = ClassAnnotator(c, ["cat", "dog"], annotator="ben")
    assert named.buttons["dog"].description == "dog (key 2)"


def test_simulated_annotator_presses_the_widgets_own_keys(tmp_path):
    c = Catalog(tmp_path)
    classes = ["5", "cat", "2"]  # keys 5, 1, 2: not the button positions
    truth = {}
    for k in range(12):
        image_id = c.add_image_array(np.full((8, 8), k * 20, np.uint8))[0]
        truth[image_id] = classes[k % 3]
    a = ClassAnnotator(c, classes, annotator="sim")
    sim = SimulatedAnnotator(truth, error_rate=0.2, seed=3, slip_rate=0.3)
    assert sim.label(a) == 12
    assert _mine(c, "sim") == sim.chosen


def test_simulated_labels_have_the_known_error_rate(tmp_path):
    c = Catalog(tmp_path)
    c.set_classes(["a", "b", "c"])
    pixels = np.random.default_rng(0).integers(0, 256, (300, 8, 8), dtype=np.uint8)
    truth = {c.add_image_array(p)[0]: "abc"[k % 3] for k, p in enumerate(pixels)}
    errors = simulate_labels(c, truth, "sim", 0.1, seed=4)
    given = _mine(c, "sim")
    assert {i for i in truth if given[i][0] != truth[i]} == errors
    assert 15 <= len(errors) <= 45  # 10% of 300, give or take the binomial spread
    assert simulate_labels(c, truth, "sim", 0.1, seed=4) == errors  # same seed, same errors


def test_a_refused_write_keeps_the_place_and_says_press_again(cat):
    import sqlite3

    a = ClassAnnotator(cat, annotator="ana")
    a.handle_key({"type": "keydown", "key": "1"})
    assert a.current == 2
    cat.query("PRAGMA busy_timeout = 50")  # do not wait 30 s for the lock below
    other = sqlite3.connect(cat.db_path, isolation_level=None)  # another process's writer
    other.execute("BEGIN IMMEDIATE")
    try:
        a.handle_key({"type": "keydown", "key": "2"})
        assert "could not save" in a.feedback.value and "press the key again" in a.feedback.value
        assert a.current == 2 and a.progress.value == 1  # same image, nothing counted
        a.handle_key({"type": "keydown", "key": "z"})  # undo is refused the same way
        assert "could not undo" in a.feedback.value and _mine(cat, "ana") == {1: ("cat", "labeled")}
    finally:
        other.execute("ROLLBACK")
        other.close()
    a.handle_key({"type": "keydown", "key": "2"})  # pressed again: stored
    assert _mine(cat, "ana")[2] == ("dog", "labeled") and a.current == 3
    assert "stored: dog" in a.feedback.value


def test_undo_after_reopening_reaches_the_catalog(cat):
    empty = ClassAnnotator(cat, annotator="ana")
    assert empty.undo_button.disabled and "nothing to undo" in empty.undo_button.tooltip
    for key in "123":
        empty.handle_key({"type": "keydown", "key": key})
    assert not empty.undo_button.disabled
    reopened = ClassAnnotator(cat, annotator="ana")  # a restart: no history in memory
    assert reopened.current == 4 and not reopened.undo_button.disabled
    assert "before this widget opened" in reopened.undo_button.tooltip
    reopened.undo()
    assert reopened.current == 3 and set(_mine(cat, "ana")) == {1, 2}
    assert "undone: bird" in reopened.feedback.value
    reopened.undo()
    reopened.undo()
    assert reopened.current == 1 and _mine(cat, "ana") == {}
    assert reopened.undo_button.disabled
    reopened.undo()  # nothing left: says so, changes nothing
    assert "nothing to undo" in reopened.feedback.value


def test_frozen_widget_takes_no_clicks_or_keys(cat):
    a = ClassAnnotator(cat, annotator="ana")
    a.handle_key({"type": "keydown", "key": "1"})
    a.freeze("labeled by the simulation")
    assert not a.handle_key({"type": "keydown", "key": "2"})
    a.buttons["dog"].click()
    a.undo()
    assert _mine(cat, "ana") == {1: ("cat", "labeled")}
    assert a.buttons["dog"].disabled and "simulation" in a.feedback.value


def test_dom_hooks_and_escaped_names(tmp_path):
    c = Catalog(tmp_path)
    c.add_image_array(np.zeros((8, 8), np.uint8))
    a = ClassAnnotator(c, ["<b>x</b>", "Big Cat"], annotator="<i>")
    assert "course-class-annotator" in a.root._dom_classes
    button = a.buttons["Big Cat"]
    assert {"course-class-button", "course-class-big-cat"} <= set(button._dom_classes)
    for widget, hook in (
        (a.undo_button, "course-undo"),
        (a.skip_button, "course-skip"),
        (a.unsure_button, "course-unsure"),
        (a.image, "course-image"),
        (a.progress, "course-progress"),
        (a.keys, "course-keys"),
    ):
        assert hook in widget._dom_classes
    assert "<b>x</b>" not in a.counts.value and "&lt;b&gt;" in a.counts.value
    a.buttons["<b>x</b>"].click()
    assert "<i>" not in a.status.value
    assert slug("  Ünïcode / Name ") == "n-code-name"


def test_bad_input_is_refused(cat):
    with pytest.raises(CatalogError, match="empty"):
        ClassAnnotator(cat, [])
    with pytest.raises(CatalogError, match="duplicate"):
        ClassAnnotator(cat, ["a", "a"])
    with pytest.raises(CatalogError, match="not in the catalog"):
        ClassAnnotator(cat, image_ids=[99])
    with pytest.raises(CatalogError, match="blank"):
        ClassAnnotator(cat, annotator=" ")
    with pytest.raises(CatalogError, match="unknown classes"):
        BoxAnnotator(cat, ["zebra"])
    cat.image_path(1).unlink()
    with pytest.raises(CatalogError, match="missing"):
        ClassAnnotator(cat, annotator="ana")
    assert cat.labels() == []


def test_widget_box_conversion_to_original_pixels():
    # An 8x8 image shown 6x larger: 12..30 on screen is 2..5 in the image.
    assert _widget_box({"x": 12, "y": 6, "width": 18, "height": 24, "label": "a"}, 6, 8, 8) == (
        "a",
        2.0,
        1.0,
        5.0,
        5.0,
    )
    # Drawn leftwards and upwards, and dragged past the edge: normalised and clipped.
    assert _widget_box({"x": 30, "y": 60, "width": -18, "height": -30, "label": "a"}, 6, 8, 8) == (
        "a",
        2.0,
        5.0,
        5.0,
        8.0,
    )
    assert _widget_box({"x": 3, "y": 3, "width": 0, "height": 10, "label": "a"}, 6, 8, 8) is None
    assert _widget_box({"x": -9, "y": 0, "width": 5, "height": 5, "label": "a"}, 1, 8, 8) is None


def test_box_annotator_draw_move_reclass_delete(tmp_path):
    c = Catalog(tmp_path)
    c.set_classes(["circle", "square"])
    ids = [c.add_image_array(np.full((32, 48, 3), v, np.uint8))[0] for v in (10, 200)]
    b = BoxAnnotator(c, image_ids=ids, annotator="ana", display_size=192)
    assert b.factor == 4 and "course-box-annotator" in b.root._dom_classes
    assert b.widget.hide_buttons  # one navigation: the widget's own Skip/Submit hidden
    assert b.prev_button.description == "previous image" and "Drag" in b.hint.value
    assert "image 1 of 2 (48x32 px, shown x4) | 0 boxes" in b.status.value
    b.widget.label = "square"  # the browser's class choice shows in the status line
    assert b.status.value.endswith("new boxes: square")
    assert b.widget.image_bytes  # the upscaled PNG
    b.widget.bboxes = [{"x": 8, "y": 4, "width": 40, "height": 20, "label": "circle"}]
    (box,) = b.boxes()
    assert (box["x0"], box["y0"], box["x1"], box["y1"]) == (2, 1, 12, 6)
    assert "| 1 box by ana" in b.status.value and "1 of 2 images" in b.progress_text.value
    b.widget.bboxes = [
        {"x": 16, "y": 4, "width": 40, "height": 20, "label": "square"},
        {"x": 100, "y": 100, "width": 400, "height": 40, "label": "circle"},
    ]
    moved, clipped = b.boxes()
    assert "| 2 boxes by ana" in b.status.value
    assert moved["id"] == box["id"] and moved["class_name"] == "square" and moved["x0"] == 4
    assert (clipped["x1"], clipped["y1"]) == (48, 32)  # clipped to the 48x32 image
    # Mouse-down of a new box: it arrives with zero size and stays on the widget unstored.
    drawing = {"x": 9, "y": 9, "width": 0, "height": 0, "label": "circle"}
    b.widget.bboxes = [*b.widget.bboxes, drawing]
    assert len(b.boxes()) == 2 and len(b.widget.bboxes) == 3
    assert "zero area" in b.message.value
    b.widget.bboxes = [*b.widget.bboxes[:2], {**drawing, "width": 8, "height": 4}]  # mouse-up
    assert len(b.boxes()) == 3 and len(b.widget.bboxes) == 3
    # Delete the first and third; a box of an unknown class is refused and taken back off.
    unknown = {"x": 1, "y": 1, "width": 8, "height": 9, "label": "zebra"}
    b.widget.bboxes = [b.widget.bboxes[1], unknown]
    assert [r["id"] for r in b.boxes()] == [clipped["id"]]
    assert "unknown class" in b.message.value and len(b.widget.bboxes) == 1
    b.next_button.click()
    assert b.current == ids[1] and b.widget.bboxes == []
    b.widget.bboxes = [{"x": 0, "y": 0, "width": 4, "height": 4, "label": "circle"}]
    assert b.progress.value == 2  # counted as soon as the box is stored
    assert b.progress_text.value == "2 of 2 images have boxes"
    b.widget.submit_callback()  # Enter in the drawing: "next image", here the last one
    assert b.current == ids[1] and "last image" in b.message.value
    b.prev_button.click()
    assert len(b.widget.bboxes) == 1 and b.widget.bboxes[0]["x"] == 100
    again = BoxAnnotator(c, image_ids=ids, annotator="ana", display_size=192)
    assert again.progress.value == 2


def test_model_suggestions_order_and_accept(tmp_path):
    c = Catalog(tmp_path)
    c.set_classes(["dark", "light"])
    rng = np.random.default_rng(0)
    ids, truth = [], []
    for k in range(40):
        light = k % 2
        base = 200 if light else 40
        img = np.clip(rng.normal(base, 30, (8, 8)), 0, 255).astype(np.uint8)
        ids.append(c.add_image_array(img)[0])
        truth.append(["dark", "light"][light])
    for i in range(10):
        c.set_label(ids[i], truth[i], annotator="ana")
    suggestions = fit_suggestions(c, "ana", ids)
    assert set(suggestions) == set(ids[10:])
    assert (
        np.mean(
            [suggestions[i][0] == t for i, t in zip(ids, truth, strict=True) if i in suggestions]
        )
        > 0.9
    )
    a = ClassAnnotator(
        c,
        annotator="ana",
        image_ids=ids[10:],
        suggest_from="model",
        order="uncertainty",
        accept_threshold=0.0,
    )
    confidences = [suggestions[i][1] for i in a.queue]
    assert confidences == sorted(confidences)  # least sure first
    first = a.current
    a.handle_key({"type": "keydown", "key": "Enter"})
    assert _mine(c, "ana")[first] == (suggestions[first][0], "labeled")
    assert "model's probability" in a.status.value
    n = a.accept_all()
    assert n == 29 and a.current is None and "29 suggestions accepted" in a.feedback.value
    sources = {r["image_id"]: r["source"] for r in c.labels("ana") if r["image_id"] in ids[10:]}
    assert sources.pop(first) == "human" and set(sources.values()) == {"model"}
    a.undo()  # one undo takes the whole "accept all" back, in one transaction
    assert set(_mine(c, "ana")) == set(ids[:10]) | {first} and a.current is not None
    assert a.accept_all() == 29
    np.testing.assert_allclose(margin_uncertainty(np.array([[0.5, 0.5], [1.0, 0.0]])), [1, 0])
    with pytest.raises(CatalogError, match="fewer than 2 classes"):
        fit_suggestions(c, "nobody", ids)
