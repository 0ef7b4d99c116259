"""Checks for the exercises of notebook 08 (fine-tune a pretrained backbone)."""

from helpers.exercises import Exercise, all_of, between, field, is_false, one_of

EXERCISES = {
    1: Exercise(
        form="True or False: the test-chosen alpha's test accuracy can be lower",
        expect="never lower: the alpha picked by test accuracy has the highest test accuracy "
        "of the five by construction (smoke sizes, solutions/s08: validation chose 1.0, test "
        "0.383; the test split would choose 0.75, test 0.390). That maximum has seen the test "
        "labels, so it flatters: a validation split keeps the test score honest.",
        judge=is_false(
            hint="the test-chosen alpha is the one with the highest test accuracy of the five: "
            "can the validation-chosen one, one of the same five, beat it on the test split?"
        ),
    ),
    2: Exercise(
        form="a tuple (real errors among the in-sample top losses, among the out-of-fold ones)",
        expect="at smoke sizes (solutions/s08: 8 top losses, 20 fine-tuning steps) 3 in sample "
        "and 2 out of fold: a model this briefly trained has not yet learned its wrong labels, "
        "but already gives them more credit in sample (mean probability of the given label "
        "0.020 against 0.002 out of fold). The longer it trains on them, the more of them it "
        "fits, and only the out-of-fold ranking stays a fair judge.",
        judge=all_of(
            field(
                0,
                between(
                    0,
                    48,
                    too_low="count with a number, 0 or more.",
                    too_high="there are only REVIEW_TOP_K top losses to count.",
                ),
            ),
            field(
                1,
                between(
                    0,
                    48,
                    too_low="count with a number, 0 or more.",
                    too_high="there are only REVIEW_TOP_K top losses to count.",
                ),
            ),
        ),
    ),
    3: Exercise(
        form="the name of the field the refusal names, as a string",
        expect="the refusal names input_size (the card's 32x32, 16x16 for the fallback, against "
        "the 64x64 asked for): "
        "feed the backbone images at its own size (IMAGE_SIZE = None), or pretrain one at "
        "64x64 in notebook 07.",
        judge=one_of(
            ["input_size", "input size"],
            hint="read the CardMismatch message: it names each card field that differs from "
            "what you asked for.",
        ),
    ),
    4: Exercise(
        form="'a', 'b' or 'c'",
        expect="(a): Keras's download fails at once (6 s here, with the network refused) and "
        "WeightsUnavailable names the .h5 file to copy into $KERAS_HOME/models and the URL to "
        "fetch it from; no model is built with random weights.",
        judge=one_of(
            ["a"],
            hint="ft.imagenet_backbone catches Keras's failed download (it fails fast: the "
            "name lookup fails) and never builds a model without its weights.",
        ),
    ),
    5: Exercise(
        form="a number: how many training labels are yours",
        expect="42 of 50 at smoke sizes (solutions/s08): notebook 02 puts 15% of each class's "
        "labeled photos in the validation split, and training reads only the train split.",
        judge=between(
            1,
            50,
            too_low="label in notebook 02's widget under LEARNER's name (\"you\"), rerun 02 so "
            "its catalog holds them, then rerun this notebook.",
            too_high="only your labels of photos in the train split count, at most the 50 you "
            "gave: did you label more?",
        ),
    ),
}
