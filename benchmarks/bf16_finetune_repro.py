"""Fine-tune small bfloat16 conv nets with frozen BatchNorm in a loop, as notebook 08 did
before issue 25, without the course: a reproducer to run on a CPU with AVX-512 BF16.

Notebook 08 in the smoke profile crashed TensorFlow (a segfault or a general protection
fault in a ``tf_Compute`` thread) in 3 of 4 runs on an AMD EPYC with AVX-512 BF16,
tensorflow-cpu 2.21.0 and keras 3.15.1, always in its learning curve and always with
notebook 07's backbone, which Keras had saved with every layer under ``mixed_bfloat16``.
On a CPU without AVX-512 (this project's development machine, AVX2 only) neither the
notebook nor this script crashes, because oneDNN runs other kernels there. The course no
longer takes this path (``helpers.models.with_dtype_policy``: backbones are saved in
float32 and loaded in the loading machine's policy); this script keeps the path itself,
so that whoever has such a CPU can tell whether the fault is upstream:

    python benchmarks/bf16_finetune_repro.py --rounds 30

It prints the CPU's bfloat16 flags and one line per round; a crash kills the process
(the shell names the signal; PYTHONFAULTHANDLER=1 adds the threads' Python stacks).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as info:
            line = next(row for row in info if row.startswith("flags"))
        return set(line.split(":", 1)[1].split())
    except (OSError, StopIteration):
        return set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--policy", default="mixed_bfloat16")
    args = parser.parse_args()

    import keras
    import numpy as np

    print("bfloat16 flags:", sorted(f for f in cpu_flags() if "bf16" in f) or "none")
    keras.mixed_precision.set_global_policy(args.policy)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (50, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 10, 50)
    for round_ in range(args.rounds):
        started = time.perf_counter()
        inputs = keras.Input((16, 16, 3))
        h = inputs
        for width in (16, 32):
            h = keras.layers.Conv2D(width, 3, padding="same")(h)
            h = keras.layers.BatchNormalization()(h)
            h = keras.layers.ReLU()(h)
            h = keras.layers.MaxPooling2D()(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        outputs = keras.layers.Dense(10, dtype="float32")(h)
        model = keras.Model(inputs, outputs)
        for layer in model.layers:  # notebook 08's step 2: BatchNorm frozen, the rest trains
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
        model.compile(
            keras.optimizers.AdamW(3e-4),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, batch_size=32, epochs=10, verbose=0)
        model.predict(x, batch_size=512, verbose=0)
        print(f"round {round_ + 1}: {time.perf_counter() - started:.1f} s", flush=True)
    print(f"{args.rounds} rounds under {args.policy} without a crash")


if __name__ == "__main__":
    main()
