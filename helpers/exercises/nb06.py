"""Checks for the exercises of notebook 06 (build, train and evaluate a CNN).

The figures in ``expect`` come from ``solutions/s06_cnn.py`` run at its defaults (the
digits and 96x72 copies of the shipped photos, on an AVX2-only AMD EPYC) and from the
files under ``benchmarks/results/``; a laptop run of the notebook itself is too slow for
the shared machine the checks were written on.
"""

from helpers.exercises import Exercise, between, one_of


def _the_suggestion_wins(answer):
    tenth, suggested, ten_times = (float(a) for a in answer)
    if not all(0 <= a <= 1 for a in (tenth, suggested, ten_times)):
        return "give each test accuracy as a fraction between 0 and 1, as the notebook prints it."
    if suggested + 0.005 >= max(tenth, ten_times):
        return None
    return (
        "train all three with the same seed and the same epochs (set EPOCHS, so the budget "
        "does not change the epochs); on the finder's plot, a tenth sits on the flat start "
        "and ten times near the minimum or past it."
    )


def _bf16_ratio_fits_the_cpu(answer):
    ratio, native = float(answer[0]), answer[1]
    if not isinstance(native, bool):
        raise TypeError(native)
    if not 0 < ratio < 5:
        return (
            "divide the images per second printed after training with "
            "PRECISION = 'mixed_bfloat16' by those with PRECISION = 'float32'."
        )
    if not native and ratio > 0.8:
        return (
            "without native bfloat16 it is emulated and far slower: did the precision line "
            "say mixed_bfloat16? Set PRECISION, then run the notebook from the top."
        )
    if native and ratio < 0.5:
        return (
            "a CPU that multiplies bfloat16 natively should not be this much slower: was the "
            "machine busy with something else during one of the runs?"
        )
    return None


EXERCISES = {
    1: Exercise(
        form="'a' (grow it or leave it), 'b' (shrink it) or 'c' (double it)",
        expect="it trains at the largest side of 32, 48, 64, ... 224 whose ten epochs fit "
        "TIME_BUDGET_MIN at the speed measured at 32x32, never above the photos' shorter side, "
        "so a larger budget can only grow the side or leave it: 63 training photos of 96x72 "
        "train at 64x64 with 2 minutes and still with 4, as the next side, 96, is larger than "
        "the photos. The confusion matrix mixes the classes that look alike; the top losses "
        "show the photos it is most sure of and wrong on, where a wrong label shows first.",
        judge=one_of(
            ["a"],
            hint="read the printed reason: the side is the largest that fits the budget and the "
            "photos. What does more budget let fit?",
        ),
    ),
    2: Exercise(
        form="a tuple of test accuracies (at a tenth of the suggestion, at it, at ten times it)",
        expect="the suggestion trains best; a tenth of it sits on the flat start of the "
        "finder's curve and learns slowly, ten times sits at its minimum, where steps "
        "overshoot. On the digits after 4 epochs: 0.53 at a tenth, 0.68 at the suggestion, "
        "0.48 at ten times.",
        judge=_the_suggestion_wins,
    ),
    3: Exercise(
        form="a number: the test accuracy without flips minus with flips, in points (0.05 is 5)",
        expect="well over ten points: a mirrored 2 is no digit, and a 2 and a mirrored 5 look "
        "alike, so training with flips teaches one class for a digit and its mirror image: 0.92 of "
        "the test digits right without flips, 0.74 with them, 18 points (the model trained "
        "without flips gets 0.34 of the mirrored test digits). A mirrored dog is still a dog, "
        "so on photos flips cost nothing. Leave TTA off for digits: it averages in the "
        "prediction for a mirror image, and cost the model trained without flips 15 points.",
        judge=between(
            5,
            90,
            too_low="train both runs with TTA=False and the same seed and size; the accuracy "
            "without flips should be clearly higher. Give points: 100 times the difference.",
            too_high="give the difference in points of accuracy (100 times the difference "
            "of two fractions), not a ratio.",
        ),
    ),
    4: Exercise(
        form="'a' (it reloads the plan it saved), 'b' (it measures again and gets the same) or "
        "'c' (the epochs are stored in best.keras)",
        expect="it resumes after the last finished epoch from out_dir/backup, and reads the "
        "plan from out_dir/plan.json: the learning-rate schedule was built for the planned "
        "number of steps, so a new measurement would stretch or cut a schedule already half "
        "run. The plan line ends in '(resumed)'.",
        judge=one_of(
            ["a"],
            hint="look at what fit writes into its out_dir besides the backup, and at what the "
            "learning-rate schedule's length was fixed from.",
        ),
    ),
    5: Exercise(
        form="a tuple (mixed_bfloat16's images per second divided by float32's, whether your "
        "CPU has avx512_bf16, amx_bf16 or, on ARM, bf16: True or False)",
        expect="about 1.10 on an Intel Xeon and 1.03 to 1.25 on an AMD EPYC with avx512_bf16 "
        "(benchmarks/results/train_throughput.txt, ...-amd-epyc-avx512bf16.txt); 0.06 and "
        "0.13 on an AVX2-only AMD EPYC, which emulates bfloat16 (...-amd-epyc-avx2.txt; the "
        "solution measured 0.08 on such a CPU). "
        "PRECISION = 'auto' picks mixed_bfloat16 only where the CPU has avx512_bf16 (or AMX) "
        "and a file measured a gain on that vendor's CPU; float32 everywhere else.",
        judge=_bf16_ratio_fits_the_cpu,
    ),
}
