"""Generated shapes: same seed same data, boxes exact, classes balanced, any size."""

import numpy as np
import pytest
from PIL import Image

from helpers.acquire import synthetic
from helpers.acquire.datasets import load_arrays


def test_scenes_are_deterministic_by_seed():
    a_images, a_boxes = synthetic.shapes_scenes(12, size=48, seed=3)
    b_images, b_boxes = synthetic.shapes_scenes(12, size=48, seed=3)
    c_images, _ = synthetic.shapes_scenes(12, size=48, seed=4)
    np.testing.assert_array_equal(a_images, b_images)
    assert a_boxes == b_boxes
    assert not np.array_equal(a_images, c_images)


@pytest.mark.parametrize("size", [8, 24, 64, 131])
def test_boxes_lie_inside_and_bound_the_drawn_pixels_exactly(size):
    rng = np.random.default_rng(size)
    for _ in range(25):
        image, boxes, masks = synthetic.make_scene(rng, size=size, return_masks=True)
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        assert 1 <= len(boxes) <= 3 and len(boxes) == len(masks)
        covered = np.zeros((size, size), dtype=int)
        for box, mask in zip(boxes, masks, strict=True):
            assert box["class_name"] in synthetic.SHAPE_CLASSES
            assert 0 <= box["x0"] < box["x1"] <= size and 0 <= box["y0"] < box["y1"] <= size
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (
                box["x0"],
                box["y0"],
                box["x1"],
                box["y1"],
            )
            # the object is one flat colour, so its pixels are really drawn in the image
            colours = np.unique(image[mask], axis=0)
            assert len(colours) == 1
            covered += mask
        assert covered.max() <= 1, "objects must not overlap, or a box would not be tight"


def test_objects_stand_out_from_their_background():
    rng = np.random.default_rng(0)
    for _ in range(30):
        image, _, masks = synthetic.make_scene(rng, size=48, return_masks=True)
        for mask in masks:
            ring = np.zeros_like(mask)
            ys, xs = np.nonzero(mask)
            ring[max(ys.min() - 2, 0) : ys.max() + 3, max(xs.min() - 2, 0) : xs.max() + 3] = True
            ring &= ~np.any(masks, axis=0)
            if ring.any():
                inside = image[mask].astype(float).mean(axis=0)
                outside = image[ring].astype(float).mean(axis=0)
                assert np.linalg.norm(inside - outside) > 40


def test_scenes_cover_every_class_and_several_backgrounds():
    images, boxes = synthetic.shapes_scenes(200, size=32, seed=0)
    names = [b["class_name"] for scene in boxes for b in scene]
    assert set(names) == set(synthetic.SHAPE_CLASSES)
    assert {len(scene) for scene in boxes} >= {1, 2, 3}
    # backgrounds vary: corner pixels (rarely covered by objects) spread over the colour cube
    corners = images[:, 0, 0, :].astype(float)
    assert corners.std(axis=0).min() > 40


def test_classification_arrays_are_balanced_and_stratified():
    data = synthetic.shapes_arrays(seed=5, n=200, size=24)
    k = len(synthetic.SHAPE_CLASSES)
    assert data.class_names == list(synthetic.SHAPE_CLASSES)
    assert data.x_train.shape == (160, 24, 24, 3) and data.x_test.shape == (40, 24, 24, 3)
    assert np.bincount(data.y_train, minlength=k).tolist() == [40] * k
    assert np.bincount(data.y_test, minlength=k).tolist() == [10] * k
    again = synthetic.shapes_arrays(seed=5, n=200, size=24)
    np.testing.assert_array_equal(data.x_test, again.x_test)


def test_single_object_images_hold_exactly_one_object_of_their_label():
    images, labels = synthetic.single_object_images(40, size=32, seed=1)
    assert images.shape == (40, 32, 32, 3) and labels.shape == (40,)
    rng = np.random.default_rng(1)
    rng.permutation(40)  # the same draws single_object_images makes for the labels
    for i in range(40):
        again, boxes, _ = synthetic._render(
            rng, 32, [synthetic.SHAPE_CLASSES[labels[i]]], (0.4, 0.85)
        )
        np.testing.assert_array_equal(again, images[i])
        assert [b["class_name"] for b in boxes] == [synthetic.SHAPE_CLASSES[labels[i]]]


def test_load_arrays_serves_shapes_by_name():
    data = load_arrays("shapes", limit=20)
    assert data.x_train.shape[1:] == (32, 32, 3) and len(data.x_train) == 20
    assert "synthetic" in data.source


def test_write_class_folders_makes_a_decodable_balanced_tree(tmp_path):
    root = synthetic.write_class_folders(tmp_path / "tree", 41, size=20, seed=2)
    counts = {d.name: len(list(d.glob("*.jpg"))) for d in root.iterdir()}
    assert counts.keys() == set(synthetic.SHAPE_CLASSES)
    assert sum(counts.values()) == 41 and max(counts.values()) - min(counts.values()) <= 1
    for path in root.rglob("*.jpg"):
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.size == (20, 20) and im.mode == "RGB"
    png = synthetic.write_class_folders(tmp_path / "png", 8, size=16, image_format="png")
    assert len(list(png.rglob("*.png"))) == 8


def test_bad_arguments_say_what_is_wrong(tmp_path):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least 8"):
        synthetic.make_scene(rng, size=4)
    with pytest.raises(ValueError, match="max_objects"):
        synthetic.make_scene(rng, max_objects=0)
    with pytest.raises(ValueError, match="unknown shape class"):
        synthetic.make_scene(rng, classes=["hexagon"])
    with pytest.raises(ValueError, match="image_format"):
        synthetic.write_class_folders(tmp_path, 3, image_format="XCF")
