"""Checks for the exercises of notebook 03 (preprocess and augment images with tf.data)."""

from helpers.config import get_profile
from helpers.exercises import Exercise, all_of, between, field, one_of

_RESIZE_HINTS = {
    "stretch": "stretch scales the width and the height by different factors here: what "
    "does that do to the shape of every letter?",
    "crop": "crop fills 64 x 32 by cutting rows off the top and bottom: count the share "
    "of the photo's rows it keeps, and think of a sign near an edge.",
}


def _mode_for_signs(answer):
    mode = str(answer).strip().lower()
    if mode == "pad":
        return None
    if mode in _RESIZE_HINTS:
        return _RESIZE_HINTS[mode]
    return "answer with one of the modes of pl.RESIZE_MODES: 'stretch', 'crop' or 'pad'."


def _batch_of_side(side, hint_if_other):
    """A batch shape (batch, side, side, 3), any batch size; e.g. ``tuple(x.shape)``."""

    def judge(answer):
        shape = tuple(int(n) for n in answer)
        if len(shape) != 4 or shape[0] < 1:
            return "give the whole batch shape, (batch, height, width, channels)."
        if shape[3] != 3:
            return "the photos come out with 3 channels: take the shape of the images, x."
        if shape[1:3] != (side, side):
            return hint_if_other(shape[1:3])
        return None

    return judge


def _crop_size_hint(size):
    if size == (36, 36):
        return (
            "the batch still has the decoded size: RandomCrop(32, 32) must run in the "
            "augmentation, after the resize to IMAGE_SIZE + 4."
        )
    return (
        "decode at IMAGE_SIZE + 4 = 36 and let RandomCrop(IMAGE_SIZE, IMAGE_SIZE) cut the "
        "32 x 32 window."
    )


def _own_photos_hint(size):
    return f"the batch is {size[0]} x {size[1]}: pass image_size=(96, 96) to build_dataset."


def _small_gap(answer):
    # The smoke profile's test split holds 60 photos, so its gap is larger (0.16).
    if abs(float(answer)) <= (0.3 if get_profile().name == "smoke" else 0.1):
        return None
    return (
        "divide the difference of the means by the training standard deviation, channel by "
        "channel, and take the largest in absolute value; use the notebook's `train` and "
        "`test` splits at IMAGE_SIZE."
    )


EXERCISES = {
    1: Exercise(
        form="a string: the mode you would use for signs, 'stretch', 'crop' or 'pad'",
        expect="pad. The photo is 640 x 427 (aspect 1.5), the target 64 x 32 (aspect 2): "
        "stretch widens every letter by a third, crop keeps only 75% of the rows (a sign "
        "near the top or bottom loses its text), pad keeps the whole photo undistorted and "
        "leaves 27% of the output black, which costs only pixels.",
        judge=_mode_for_signs,
    ),
    2: Exercise(
        form="a tuple: the shape of a training batch, e.g. tuple(x.shape)",
        expect="(batch size, 32, 32, 3): the pipeline decodes at 36 x 36 and RandomCrop cuts "
        "a random 32 x 32 window, so objects move by up to 4 pixels each way and the model "
        "still gets its input size. At evaluation (training=False) Keras's RandomCrop "
        "passes its 36 x 36 input through unchanged, so build the test pipeline at 32 x 32 "
        "(or crop its centre with CenterCrop).",
        judge=_batch_of_side(32, _crop_size_hint),
    ),
    3: Exercise(
        form="a tuple (the largest gap between the test and training channel means, in "
        "training standard deviations; what it would do: 'a' shift the inputs by that "
        "little, 'b' cost many points of accuracy, 'c' stop training from converging)",
        expect="about 0.003 standard deviations in a laptop run (test means 0.4909 0.4814 "
        "0.4390 against 0.4915 0.4821 0.4393), 0.16 in a smoke run with 60 test photos: the "
        "splits are samples of one population, and a model normalized with the test "
        "statistics would see its inputs shifted by that little. What matters is the "
        "principle (the test split must not shape training), and the gap grows as the test "
        "set shrinks or stops looking like the training set.",
        judge=all_of(
            field(0, _small_gap),
            field(
                1,
                one_of(
                    ["a"],
                    hint="a shift of a few thousandths of a standard deviation is far "
                    "smaller than the photos' own spread: what can it change?",
                ),
            ),
        ),
    ),
    4: Exercise(
        form="a number: the second epoch's seconds without the cache / with it",
        expect="about 10 times at laptop sizes on a shared 2-core machine (2.6 s against 0.19 "
        "to 0.28 s for the second epoch of 3,004 files): a cached epoch reads and decodes no "
        "file. The first epoch pays for filling the cache (3.9 to 5.2 s against 1.8 to 1.9 s "
        "uncached there), so over two epochs the cache about breaks even, and every further "
        "epoch saves nearly all the decoding.",
        judge=between(
            1.5,
            1000,
            too_low="time the second epoch of each pipeline alone (the first fills the "
            "cache), over every batch of the laptop profile's `train` split: on a few "
            "hundred files the pipeline's start-up hides the decoding.",
            too_high="that is more than any cache can save: did the uncached pipeline "
            "decode every file? Iterate over all its batches.",
        ),
    ),
    5: Exercise(
        form="a tuple: the shape of a batch from your folder, e.g. tuple(x.shape)",
        expect="(batch size, 96, 96, 3): list_folder takes the class names from the "
        "sub-folders, build_dataset resizes every photo, whatever its size and mode, to "
        "96 x 96, and nothing else changes; 96 x 96 costs 9 times the pixels of 32 x 32 in "
        "time and memory.",
        judge=_batch_of_side(96, _own_photos_hint),
    ),
}
