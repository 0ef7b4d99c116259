"""Checks for the exercises of notebook 02 (labeling, label quality, export).

The figures in ``expect`` come from solutions/s02_label.py run at the smoke profile's
sizes (300 pool photos; labels written in bulk where the notebook clicks), said so in
each line; the notebook's own smoke run prints a precision of 0.12 at the default error
rate and accepts 7 suggestions at 0.9.
"""

from helpers.exercises import Exercise, all_of, between, field, one_of

# The first box scene of seed 42 (helpers.acquire.synthetic.shapes_scenes, 64x64): one
# cross. tests/test_solutions_s02.py checks it against the scene the solution boxes.
FIRST_SCENE_BOX = (18.0, 21.0, 41.0, 44.0)


def _precision_rises(answer):
    low, high = float(answer[0]), float(answer[1])
    if not (0 <= low <= 1 and 0 <= high <= 1):
        return "a precision is a share: flagged labels that are wrong, over all flagged."
    if high > low:
        return None
    return (
        "with more wrong labels, is a flagged label more or less likely to be really wrong? "
        "Rerun both rates with the same SEED and read the precision each prints."
    )


def _accepted_at_07(answer):
    if int(answer[0]) >= 1:
        return None
    return (
        "a lower threshold accepts every suggestion a higher one does, and more: count the "
        "suggestions accepted at once in the line under the suggestion cell."
    )


def _first_scene_box(answer):
    corners = tuple(float(v) for v in answer)
    if len(corners) != 4:
        return "give four numbers: (x0, y0, x1, y1) in pixels."
    if all(abs(a - b) <= 0.5 for a, b in zip(corners, FIRST_SCENE_BOX, strict=True)):
        return None
    if all(0 <= v <= 1 for v in corners):
        return "YOLO's numbers are shares of the image: multiply by its width and height (64)."
    return (
        "x0 = (cx - w / 2) * W and x1 = (cx + w / 2) * W, the same with cy, h and H; read "
        "the first scene's file with SEED = 42, and compare with catalog.boxes(scene_ids[0])."
    )


EXERCISES = {
    1: Exercise(
        form="'a' (at your first unlabeled photo; z takes back your last label), 'b' (at the "
        "first photo; z takes back nothing) or 'c' (at your first unlabeled photo; z takes "
        "back nothing, the new widget has no history)",
        expect="it starts at the first photo you had not labeled, and z removes the last label "
        "the first widget stored: the state, undo included, lives in the catalog.",
        judge=one_of(
            ["a"],
            hint="press z in the new widget and count your labels with "
            "catalog.labels(LEARNER) before and after.",
        ),
    ),
    2: Exercise(
        form="a tuple (precision at ERROR_RATE = 0.08, precision at 0.2), as the "
        "confident-learning cell prints them",
        expect="precision rises and recall falls: 0.13 to 0.32 and 0.90 to 0.71 at smoke sizes "
        "(solution, bulk labels). More errors make a flag more often right; the model learns "
        "from the wrong labels too, so it doubts them less.",
        judge=_precision_rises,
    ),
    3: Exercise(
        form="a tuple (suggestions accepted at ACCEPT_THRESHOLD = 0.7, the accuracy of "
        "those accepted suggestions), as the line under the suggestion cell prints them",
        expect="many more accepted at 0.7 but only about half of them right (32 at 53% at smoke "
        "sizes, solution), a few at 0.9, none at 0.99: a weak model's confidence is no licence "
        "to skip the look.",
        judge=all_of(
            _accepted_at_07,
            field(
                1,
                between(
                    0.2,
                    0.9,
                    too_low="that is below chance for five classes: is it the accuracy of the "
                    "accepted suggestions, as a share?",
                    too_high="a pixel model that is 90% right? Check you set 0.7 and "
                    "reran from the parameters cell.",
                ),
            ),
        ),
    ),
    4: Exercise(
        form="a tuple (the first of 8, 12 and 16 that adds groups, 'a' if they are copies or "
        "'b' if they are different photos that look alike), e.g. (8, 'a')",
        expect="8 adds nothing; 12 adds the first groups (2 pairs in 300 photos at smoke "
        "sizes, 11 in 1,000), photos that only share a coarse layout, mostly of different "
        "classes: keep them together, never delete them as copies.",
        judge=all_of(
            field(
                0,
                one_of(
                    [12],
                    hint="compare len(groups) with HASH_DISTANCE 4 and each larger value; the "
                    "planted copies are grouped at 4 already.",
                ),
            ),
            field(
                1,
                one_of(
                    ["b"],
                    hint="show each new group with catalog.load_image and compare truth[i]: "
                    "are the photos the same picture?",
                ),
            ),
        ),
    ),
    5: Exercise(
        form="a tuple (x0, y0, x1, y1): the pixel corners of the first line of the first "
        "scene's YOLO label file",
        expect="(18, 21, 41, 44), the cross's box exactly as catalog.boxes holds it: YOLO "
        "stores the centre and size as shares of the image, with eight decimals.",
        judge=_first_scene_box,
    ),
}
