"""The TensorFlow crash behind issue 25, in a few lines: training a 1x1 convolution with
stride 2 on an odd batch kills the process (a segfault or "free(): invalid pointer") on
a CPU where oneDNN runs its AVX-512 kernels.

Measured with tensorflow-cpu 2.21.0 and keras 3.15.1 on an AMD EPYC with AVX-512 (and
AVX-512 BF16), in float32: every run crashed at batch 5, 13, 15, 17, 25 and 35, none at
24, 26, 32 or 50; none with TF_ENABLE_ONEDNN_OPTS=0 or DNNL_MAX_CPU_ISA=AVX2; none on an
AVX2-only CPU; none in the forward pass alone. Notebook 08's learning curve hit it in
the smoke profile (5 labels a class, 5 classes: one batch of 25) through the ResNet
backbone's projection shortcut. ``helpers.models`` now takes every second pixel and then
a stride-1 convolution, the same function (``subsample`` below), which never crashes.

    python benchmarks/onednn_strided_1x1_repro.py [strided|subsample] [BATCH]

Prints "no crash" and exits 0, or dies by the signal; tests/test_upstream.py runs both.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

how = sys.argv[1] if len(sys.argv) > 1 else "strided"
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 25
inputs = keras.Input((32, 32, 3))
x = inputs
if how == "subsample":
    x = keras.layers.MaxPooling2D(1, strides=2)(x)
x = keras.layers.Conv2D(16, 1, strides=2 if how == "strided" else 1, use_bias=False)(x)
outputs = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(x))
model = keras.Model(inputs, outputs)
model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
images = np.random.default_rng(0).uniform(0, 1, (batch, 32, 32, 3)).astype("float32")
model.fit(images, np.arange(batch) % 5, batch_size=batch, epochs=3, verbose=0)
print("no crash")
