"""Checks for the exercises of notebook 07 (pretrain a backbone from scratch)."""

from helpers.exercises import Exercise, between, one_of

EXERCISES = {
    1: Exercise(
        form="'a' (the run on 80 photos a class), 'b' (the run on 400) or 'c' (neither: "
        "the gaps are about the same)",
        expect="smoke size, 2-core AMD EPYC: with 80 photos a class 0.715 training and 0.548 "
        "test accuracy (a gap of 0.17), with 400 0.651 and 0.604 (0.05). The 80-photo run "
        "learned its photos by heart; the 400-photo backbone's features hold on photos it "
        "never saw: fine-tune that one.",
        judge=one_of(
            ["a"],
            hint="the run that saw each photo 75 times, not 15: how far does its training "
            "accuracy sit above its test accuracy?",
        ),
    ),
    2: Exercise(
        form="a number: images per second with JIT_COMPILE = True over those without it",
        expect="below 1 on a CPU: 0.82 at smoke size on a 2-core AMD EPYC (float32), and "
        "0.41x to 0.97x for the course CNN on the CPUs of "
        "benchmarks/results/train_throughput*.txt; XLA pays on a GPU, not here.",
        judge=between(
            0.25,
            1.25,
            too_low="compare the steady rate the pretraining cell prints (the median after "
            "the two steps that compile), from two runs on an otherwise idle machine.",
            too_high="compare both runs at the same PRECISION: only emulated bfloat16 (a CPU "
            "without AVX-512 BF16) has run faster with XLA on a CPU.",
        ),
    ),
    3: Exercise(
        form="a number: FLOPs per image at twice the WIDTH over FLOPs at WIDTH",
        expect="just under 4: 3.77 at smoke size (4.7 to 17.9 MFLOP per image from WIDTH 8 "
        "to 16), 3.94 at the laptop's 24 to 48; on a 2-core CPU the step time grew about as "
        "much (3.8x), since even the small network keeps a CPU busy.",
        judge=between(
            3.3,
            4.2,
            too_low="a 3x3 convolution costs 9 x c_in x c_out multiply-adds a pixel: what "
            "happens to it when both channel counts double?",
            too_high="only convolutions between doubled channels grow 4x; the stem (3 colour "
            "channels in) and the head grow less. Count the backbone, not the whole model.",
        ),
    ),
    4: Exercise(
        form="'a' (from step 0), 'b' (from the last backup, the end of the last whole epoch) "
        "or 'c' (from the step where you stopped it)",
        expect="'resumed from the backup at step ...': the trainer backs up once an epoch "
        "(save_every=STEPS_PER_EPOCH), so a stop during step 9 at 6 steps an epoch (smoke) "
        "resumes at step 6, skips the epoch's batches it had seen, and runs steps 7 to 9 "
        "again.",
        judge=one_of(
            ["b"],
            hint="read the line the trainer prints when it starts, and look at save_every in "
            "the cell: when was the last backup written?",
        ),
    ),
    5: Exercise(
        form="'a' (each from its own newest backup), 'b' (both from the newest step that "
        "every worker's backup holds) or 'c' (both from step 0)",
        expect="both resume from the newest step both backups hold (10, after a kill past "
        "the backup at step 10 with --save-every 5), run to the end and report the same "
        "weights digest.",
        judge=one_of(
            ["b"],
            hint="the workers must start from the same weights; a worker killed between two "
            "backups holds an older one than its peer. What can both restore?",
        ),
    ),
}
