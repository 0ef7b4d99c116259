"""The training size chosen from a time budget (helpers.sizing)."""

import pytest

from helpers.sizing import PIXELS_PER_BATCH, SIDES, batch_for, choose_image_size


def test_thumbnails_keep_their_own_size_and_batch():
    size = choose_image_size((32, 32), 10_000, 2.0, 10, 256)
    assert size.shape == (32, 32) and size.batch_size == 256
    assert choose_image_size((8, 8), 1_000, 1.0, 10, 64).shape == (8, 8)


def test_large_photos_get_the_largest_side_that_fits_the_budget():
    # 2,400 photos of 240x320, 10 epochs in 5 minutes at 1,000 images/s at 32x32:
    # 96 px costs 9x, 2,400 x 10 x 9 / 1,000 = 216 s; 128 px costs 16x, 384 s.
    size = choose_image_size((240, 320), 2_400, 5.0, 10, 256, 1_000.0)
    assert size.shape == (96, 96)
    assert "240x320" in size.reason and "3.6 of 5 minutes" in size.reason
    assert "128x128 would take 6.4" in size.reason


def test_a_bigger_budget_buys_a_bigger_side_never_past_the_photos_own():
    small = choose_image_size((240, 320), 2_400, 5.0, 10, 256, 1_000.0).shape[0]
    big = choose_image_size((240, 320), 2_400, 60.0, 10, 256, 1_000.0).shape[0]
    assert big > small
    assert choose_image_size((100, 150), 100, 600.0, 10, 256, 1_000.0).shape == (96, 96)


def test_no_side_fits_says_so_and_trains_at_the_smallest():
    size = choose_image_size((480, 640), 100_000, 0.1, 10, 256, 100.0)
    assert size.shape == (SIDES[0], SIDES[0])
    assert "does not fit" in size.reason


def test_the_batch_shrinks_so_that_a_batch_holds_a_bounded_number_of_pixels():
    for side in SIDES:
        batch = batch_for(side, 256)
        assert batch * side * side <= PIXELS_PER_BATCH or batch == 16
    assert batch_for(32, 256) == 256 and batch_for(224, 256) < 32
    size = choose_image_size((240, 320), 2_400, 5.0, 10, 256, 1_000.0)
    assert size.batch_size == batch_for(96, 256) < 256
    assert f"batch {size.batch_size} (not 256)" in size.reason


def test_a_given_side_wins_and_large_photos_need_a_measured_speed():
    size = choose_image_size((240, 320), 2_400, 5.0, 10, 64, side=160)
    assert size.shape == (160, 160) and "set by IMAGE_SIZE" in size.reason
    with pytest.raises(ValueError, match="at least 8"):
        choose_image_size((240, 320), 2_400, 5.0, 10, 64, side=4)
    with pytest.raises(ValueError, match="measured"):
        choose_image_size((240, 320), 2_400, 5.0, 10, 64)


def test_the_speed_is_measured_on_the_model_at_its_own_input_size():
    from helpers.quiet import keras
    from helpers.sizing import measure_images_per_second

    model = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")]
    )
    speed = measure_images_per_second(model, batch_size=8, steps=2)
    assert speed > 0 and model.compiled
