"""Checks for the exercises of notebook 09 (understand the model, calibrate it, ship it).

The figures are from smoke runs of ``solutions/s09_understand_and_ship.py`` (a laptop run
trains three CNNs for 3 epochs on all the target photos, past what these checks need).
"""

from helpers.exercises import Exercise, between, is_true, one_of

EXERCISES = {
    1: Exercise(
        form="True or False: the sanity check passed at `block2_act2`",
        expect="it passes, with less margin: the rank correlation with the randomized model "
        "rises from 0.01 at block3_act2 to 0.23 at block2_act2 (smoke), while the maps' own "
        "stability under noise stays near 1.0; earlier layers of a random network already "
        "see edges and blobs.",
        judge=is_true(
            hint="read the printed check: it passes when the correlation with the randomized "
            "model is at most half the one under noise."
        ),
    ),
    2: Exercise(
        form="a number: the temperature the fit chooses with `LABEL_SMOOTHING = 0.2`",
        expect="T = 0.78 (smoke): smoothing trains towards 0.84, never 1, so the model is "
        "underconfident (mean confidence 0.36 at accuracy 0.42) and the fit sharpens it; on "
        "150 test photos the ECE need not drop (0.106 to 0.113 there).",
        judge=between(
            0.05,
            0.99,
            too_low="a T at 0.018 is the search's bound, not a fit: did the model get every "
            "calibration photo right? Check FINETUNED = None and rerun from the top.",
            too_high="a T above 1 means overconfident: check that FINETUNED = None, so that the "
            "model shipped is the CNN trained here with the smoothing.",
        ),
    ),
    3: Exercise(
        form="'a' (few photos a bin, noisy), 'b' (more bins, lower ECE) or 'c' (empty bins)",
        expect="ECE 0.135 with 5 and 15 bins, 0.142 with 30 (smoke, 150 test photos), where a "
        "filled bin holds 11.5 photos on average against 50 with 5 bins: noisy accuracies "
        "only add to the absolute gaps.",
        judge=one_of(
            ["a"],
            hint="count the photos per bin (ip.reliability(...).counts) with 30 bins, and ask "
            "what |accuracy - confidence| does with a noisy accuracy.",
        ),
    ),
    4: Exercise(
        form="'a' (about as many), 'b' (clearly more) or 'c' (clearly fewer)",
        expect="the margin saves 47% of the labels, the entropy 27% (digits, the laptop's budget "
        "300 and seeds 0-2): the entropy asks for blotchy images spread over many classes, the "
        "margin for those between two classes, where a label moves the boundary.",
        judge=one_of(
            ["c"],
            hint="compare curves.saved()['fraction'] of both methods over the same seeds; a "
            "single seed differs by chance.",
        ),
    ),
    5: Exercise(
        form="'a' (no fast int8 instructions), 'b' (larger files) or 'c' (more threads)",
        expect="float32 0.56 ms, int8 0.88 ms a photo on one thread of an AVX2 EPYC without VNNI "
        "(smoke); which wins depends on the CPU: without integer dot-product instructions, "
        "float32's tuned XNNPACK kernels beat int8's.",
        judge=one_of(
            ["a"],
            hint="the int8 file is smaller and both ran on one thread: look at what the CPU "
            "must do per multiply-accumulate in 8 bits.",
        ),
    ),
}
