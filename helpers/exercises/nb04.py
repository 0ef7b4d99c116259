"""Checks for the exercises of notebook 04 (softmax regression from scratch)."""

from helpers.exercises import Exercise, all_of, between, field, is_true, one_of


def _raw_rate_is_smaller(answer):
    if answer[1] < answer[0]:
        return None
    return "raw pixels make the loss's curvature larger: the largest safe rate is smaller."


EXERCISES = {
    1: Exercise(
        form="a number: the gradient check's relative error once the `/ n` is gone",
        expect="about 0.98 for a batch of 100 (about 1e-8 with the `/ n`): the gradient is "
        "n times too large, so training needs a learning rate n times smaller.",
        judge=between(
            0.5,
            1.0,
            too_low="remove the `/ n` from the gradients only, keep it in the loss, and rerun "
            "the check on a batch of 100.",
            too_high="a relative error |a - b| / (|a| + |b|) is never above 1: compute it "
            "the way the notebook's check does.",
        ),
    ),
    2: Exercise(
        form="a tuple (weights_shrank, accuracy_change_in_points), e.g. (True, -0.5)",
        expect="the weights' norm drops (17.0 to 14.3 on the digits) and the accuracy moves by "
        "less than a point (0.964 to 0.958): the model was not overfitting much.",
        judge=all_of(
            field(0, is_true(hint="compare np.linalg.norm(model.W) with and without l2.")),
            field(
                1,
                between(
                    -2,
                    2,
                    too_low="more than 2 points lost: did you set l2 to 1e-3, not 1e-1?",
                    too_high="more than 2 points gained: train both for the same epochs and seed.",
                ),
            ),
        ),
    ),
    3: Exercise(
        form="a number: how many times more epochs full-batch descent needs than SGD",
        expect="about 40 times (192 epochs against SGD's 5): one step per epoch instead of one "
        "per batch of 32, though each full-batch epoch is about 5x faster.",
        judge=between(
            10,
            200,
            too_low="stop full-batch descent at the first epoch whose loss is at or below "
            "SGD's final loss, and divide by SGD's epochs.",
            too_high="give full-batch descent the same learning rate as SGD; with it, a few "
            "hundred epochs are enough.",
        ),
    ),
    4: Exercise(
        form="a tuple (largest smooth rate with pixels in [0, 1], with raw pixels in 0..255)",
        expect="2 with scaled pixels, 0.5 with raw ones (on a grid of powers of two), and after "
        "5 epochs a loss about 3,000 times higher with raw pixels.",
        judge=all_of(
            field(
                0,
                between(
                    0.25,
                    16,
                    too_low="try larger rates: scaled digits take rates above 1.",
                    too_high="that rate diverges: watch for a rising loss.",
                ),
            ),
            _raw_rate_is_smaller,
        ),
    ),
    5: Exercise(
        form="'a' (blurred digit templates), 'b' (noise with no shape) or 'c' (nothing "
        "like the 8x8 images)",
        expect="28x28 weight images that look like blurred digits: ink where the class has ink, "
        "negative weights where other classes do; the 8x8 ones are coarse blocks of the same idea.",
        judge=one_of(
            ["a"],
            hint="each column of W is dotted with the image: it grows where its class has ink.",
        ),
    ),
}
