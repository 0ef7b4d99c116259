"""Checks for the exercises of notebook 05 (convolution and pooling from scratch)."""

from helpers.exercises import Exercise, all_of, between, field, is_true, one_of


def _conv_shape(answer):
    shape = tuple(int(n) for n in answer)
    if len(shape) == 4:
        shape = shape[1:]  # the batch axis is allowed
    if len(shape) != 3:
        return "give (height, width, channels) of one output."
    height, width, channels = shape
    if channels != 16:
        return "the output has one channel per filter, whatever the input's channels."
    if (height, width) == (14, 14):
        return "that is 'valid': with 'same', the output has ceil(n / s) positions per side."
    if (height, width) != (16, 16):
        return "with 'same', each side has ceil(31 / 2) positions, whatever the kernel size."
    return None


def _receptive_fields(answer):
    plain, pooled = (int(n) for n in answer)
    if plain != 11:
        return "each 3x3 layer at stride 1 adds k - 1 = 2 pixels to the 1 an output starts from."
    if pooled == 12:
        return "the pooling's stride 2 makes every step after it 2 pixels wide."
    if pooled == 17:
        return "the pooling is a layer too: its 2x2 window adds a step of its own."
    if pooled != 18:
        return (
            "write the stack as (kernel, stride) pairs, the pooling as (2, 2), and apply "
            "r = 1 + sum of (k - 1) times the product of the strides before."
        )
    return None


EXERCISES = {
    1: Exercise(
        form="a tuple: the output shape (height, width, channels) of one image",
        expect="(16, 16, 16): 'same' gives ceil(31 / 2) = 16 positions per side whatever the "
        "kernel, and 16 filters give 16 channels. The total padding is (16 - 1) * 2 + 5 - 31 "
        "= 4, 2 before and 2 after; scratch.conv_output_size and Keras agree.",
        judge=_conv_shape,
    ),
    2: Exercise(
        form="a tuple (receptive field of the five 3x3 convolutions, with the pooling)",
        expect="11 and 18: five 3x3 layers see 1 + 5 * 2 = 11 pixels; the pooling adds 1 "
        "step and doubles the width of every step after it, 1 + 2 + 2 + 1 + 3 * 2 * 2 = 18.",
        judge=_receptive_fields,
    ),
    3: Exercise(
        form="a tuple (does the check pass at stride 3 with 'valid'?, the padding under "
        "which the dropped crop shows: 'valid' or 'same')",
        expect="it passes (relative errors far below 1e-6): the formulas hold for any stride and "
        "padding. Dropping the crop shows only with 'same': 'valid' adds no zeros, so there "
        "is nothing to crop, while with 'same' the input gradient comes back with the padded "
        "shape, larger than the input (the check cannot even compare them).",
        judge=all_of(
            field(
                0,
                is_true(
                    hint="rerun the gradient check with stride, padding = 3, 'valid' and "
                    "compare its errors with the assert's 1e-6."
                ),
            ),
            field(
                1,
                one_of(
                    ["same"],
                    hint="with 'valid', how many zeros does conv2d_backward add, and so what "
                    "is there to crop? Run your broken copy under both paddings.",
                ),
            ),
        ),
    ),
    4: Exercise(
        form="a number: the steps plain gradient descent needs until every weight of the "
        "kernel is within 0.1 of G_y",
        expect="about 800 steps at a rate of 0.9 (780 at laptop sizes, 840 at smoke sizes), "
        "against about 170 for Adam; G_x takes plain descent about 1,800. The largest rate "
        "that does not diverge is 2 over the largest curvature, about 1.0, and the flattest "
        "direction is 3,400 to 3,800 times less curved: the steepest direction caps the step, "
        "and the flattest one is crossed slowly.",
        judge=between(
            500,
            5000,
            too_low="that is Adam's pace: replace its update by p -= lr * g, and count the "
            "steps until every weight is within 0.1 of G_y.",
            too_high="raise the rate: the largest that does not diverge here is close to 1 "
            "(try 0.9); smaller rates only take longer.",
        ),
    ),
    5: Exercise(
        form="'a' (edge-like filters light up along contours of their direction, blur-like "
        "ones pass the bright areas), 'b' (each filter finds one object: the face, the flag, "
        "the helmet) or 'c' (every filter responds the same everywhere)",
        expect="edge-like filters (positive on one side, negative on the other) light up "
        "along the suit's, the helmet's and the flag's contours in their own direction; "
        "blur-like ones pass the bright suit through. Nobody told the network about "
        "astronauts: filters learned on 8x8 digits respond to any edge.",
        judge=one_of(
            ["a"],
            hint="look at the top row of the figure: which filters are positive on one side "
            "and negative on the other, and where do their maps light up?",
        ),
    ),
}
