"""The photo upload widget of notebook 09 (helpers.interpret.upload), driven as an upload
drives it: bytes in, the classes, probabilities and Grad-CAM map (or a reason) out."""

import io

import numpy as np
import pytest
from PIL import Image

from helpers import interpret as ip
from helpers.models import build_model
from helpers.predict import ModelUnusable
from helpers.quiet import keras

CLASSES = ["cat", "dog", "frog"]


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_model("course_cnn", input_shape=(32, 32, 3), num_classes=3, size="small", seed=0)


def png(height: int, width: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_photo_shows_classes_probabilities_and_its_map(model):
    widget = ip.PhotoClassifier(model, CLASSES)
    assert widget.figure.layout.display == "none"  # nothing to show before an upload
    result = widget.classify_bytes(png(60, 90), "garden.png")
    assert result is widget.result and list(result.probabilities) == CLASSES
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.heatmap.shape == (60, 90) == result.pixels.shape[:2]
    assert 0 <= result.heatmap.min() and result.heatmap.max() <= 1
    assert result.top in widget.message and "garden.png" in widget.message
    assert all(name in widget.table.value for name in CLASSES)
    assert widget.figure.value[:8] == b"\x89PNG\r\n\x1a\n" and widget.figure.layout.display is None
    direct = model(result.pixels[None].astype(np.float32), training=False).numpy()[0]
    assert list(result.probabilities.values()) == pytest.approx(direct.tolist(), abs=1e-5)


def test_not_an_image_says_why_and_nothing_raises(model):
    widget = ip.PhotoClassifier(model, CLASSES)
    widget.classify_bytes(png(40, 40), "first.png")
    assert widget.classify_bytes(b"%PDF-1.4 a report, not a photo", "report.pdf") is None
    assert widget.result is None
    assert "report.pdf" in widget.message and "not an image" in widget.message
    assert widget.table.value == "" and widget.figure.layout.display == "none"  # old photo gone
    truncated = png(40, 40)[:60]
    assert widget.classify_bytes(truncated, "broken.png") is None
    assert "broken.png" in widget.message and "not classified" in widget.message


def test_the_upload_event_classifies_each_file(model):
    widget = ip.PhotoClassifier(model, CLASSES)
    widget._uploaded({"new": ({"name": "mine.png", "content": memoryview(png(48, 48, 1))},)})
    assert widget.result is not None and widget.result.name == "mine.png"


def test_a_large_photo_is_shrunk_before_it_is_explained(model):
    result = ip.explain_photo(model, CLASSES, png(300, 1200))
    assert result.pixels.shape == (96, ip.upload.DISPLAY_SIDE, 3)


def test_class_names_must_match_the_outputs(model):
    with pytest.raises(ModelUnusable):
        ip.PhotoClassifier(model, CLASSES[:2])
