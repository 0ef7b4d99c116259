"""How much slower is the NumPy reference convolution than Keras's Conv2D on the CPU?

Forward pass only, the size of one CIFAR-10 training batch: 64 images of 32x32x3,
32 filters of 3x3, stride 1, 'same' padding, float32. Both see the same input and
weights (the script checks they agree), Keras gets warm-up calls first (graph tracing,
oneDNN primitive creation), and each figure is the median of several timed repeats.

Run: ``python benchmarks/conv_numpy_vs_keras.py [--repeats 20]``. It prints
``name: value`` lines and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from helpers import scratch
from helpers.quiet import keras, tf


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, args.size, args.size, args.channels)).astype(np.float32)
    layer = keras.layers.Conv2D(args.filters, args.kernel, padding="same")
    layer.build(x.shape)
    kernel, bias = (v.numpy() for v in layer.weights)
    x_tensor = tf.constant(x)

    def run_keras():
        return layer(x_tensor).numpy()  # .numpy() waits for the result

    def run_numpy():
        return scratch.conv2d(x, kernel, bias, strides=1, padding="same")

    for _ in range(args.warmup):
        run_keras()
        run_numpy()
    max_abs_diff = float(np.abs(run_keras() - run_numpy()).max())
    assert max_abs_diff < 1e-4, f"NumPy and Keras disagree by {max_abs_diff}"

    numpy_s = median_seconds(run_numpy, args.repeats)
    keras_s = median_seconds(run_keras, args.repeats)
    flops = 2 * x.shape[0] * x.shape[1] * x.shape[2] * args.kernel**2 * args.channels * args.filters

    print(
        f"shape: {args.batch}x{args.size}x{args.size}x{args.channels} -> {args.filters} filters "
        f"of {args.kernel}x{args.kernel}, same padding, float32"
    )
    print(f"cpu_cores: {os.cpu_count()}")
    print(f"repeats: {args.repeats}")
    print(f"max_abs_diff: {max_abs_diff:.2e}")
    print(f"numpy_seconds: {numpy_s:.5f}")
    print(f"keras_seconds: {keras_s:.5f}")
    print(f"numpy_gflops: {flops / numpy_s / 1e9:.2f}")
    print(f"keras_gflops: {flops / keras_s / 1e9:.2f}")
    print(f"ratio_numpy_over_keras: {numpy_s / keras_s:.2f}")


if __name__ == "__main__":
    main()
