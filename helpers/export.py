"""Ship a classifier small: TensorFlow Lite files, float32 and int8, and a predictor for them.

Why these tools, in TensorFlow 2.21:

- **Conversion** stays in TensorFlow: ``tf.lite.TFLiteConverter`` is maintained (the
  2.21 release notes add int8, int4 and int2 kernels to it) and nothing else converts
  a Keras 3 model.
- **Running** a ``.tflite`` file moved out of TensorFlow: ``tf.lite.Interpreter`` warns
  that it is deprecated and "scheduled for deletion" since TF 2.19, in favour of the
  same interpreter in LiteRT (``ai-edge-litert``, pinned in the requirements). LiteRT
  is a 58 MB package that needs no TensorFlow, so :func:`load_predictor` imports none:
  the shipped file runs where TensorFlow is not installed. Where LiteRT has no wheel,
  the deprecated ``tf.lite.Interpreter`` is used instead (it is the same runtime).

The exported graph is the whole model, preprocessing included (resize, scaling,
normalization), with a dynamic input shape: like the ``.keras`` file it takes raw
pixels of any size. int8 uses post-training full-integer quantization: a
representative set of training images calibrates every activation's range, weights
and activations become int8, the input is uint8 pixels (its scale comes out as 1 and
its zero point 0: the raw pixels themselves) and the output stays float32
probabilities. Beside each ``MODEL.tflite`` a ``MODEL.json`` holds the class names and
the input size, for ``python -m helpers predict MODEL.tflite IMAGES...``.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

KINDS = ("float32", "int8")


class ExportError(ValueError):
    """A model or file that cannot be exported or loaded as given; says what to do."""


def metadata_file(path: str | os.PathLike) -> Path:
    """Where the class names and input size of ``MODEL.tflite`` are kept: ``MODEL.json``."""
    return Path(path).with_suffix(".json")


def trained_size(model) -> tuple[int, int, int]:
    """(height, width, channels) the model was trained at: its first ``Resizing`` layer's
    target (searched in nested models), else its fixed input shape."""
    from helpers.quiet import keras

    def resizers(m):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                yield from resizers(layer)
            elif isinstance(layer, keras.layers.Resizing):
                yield layer

    channels = int(model.input_shape[-1])
    first = next(resizers(model), None)
    if first is not None:
        return int(first.height), int(first.width), channels
    h, w = model.input_shape[1:3]
    if h is None or w is None:
        raise ExportError(
            f"{model.name} has no Resizing layer and no fixed input size; build it with "
            "helpers.models (its preprocessing resizes) or give it a fixed input shape"
        )
    return int(h), int(w), channels


def _float32_config(obj):
    if isinstance(obj, dict):
        name = str(obj.get("config", {}).get("name", "")) if obj.get("class_name") else ""
        if obj.get("class_name") == "DTypePolicy" and name.startswith("mixed_"):
            return {**obj, "config": {**obj["config"], "name": "float32"}}
        return {k: _float32_config(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_float32_config(v) for v in obj]
    return obj


def float32_copy(model):
    """``model`` itself when it computes in float32, else a float32 copy with its weights.

    A model trained under ``mixed_bfloat16`` (notebook 06 picks it on CPUs with AVX-512
    BF16) computes in bfloat16, which TensorFlow Lite's kernels do not take: the
    converter stops at every bfloat16 op ("neither a custom op nor a flex op"). Its
    variables are float32 already, so the same architecture with float32 policies
    takes them unchanged.
    """
    from helpers.quiet import keras

    def mixed(m):
        return any(
            mixed(layer) if isinstance(layer, keras.Model) else layer.dtype_policy.name != "float32"
            for layer in m.layers
        )

    if not mixed(model):
        return model
    config = _float32_config(keras.saving.serialize_keras_object(model))
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def _converter(model):
    """A converter for the model as one graph with its weights frozen into constants.

    Frozen on purpose: converting the traced function as is keeps each weight as a
    resource variable (``READ_VARIABLE`` ops in the file), which int8 calibration then
    fails on ("variable != nullptr", measured with TF 2.21), and it leaves BatchNorm
    unfolded. ``TFLiteConverter.from_keras_model`` freezes the same way, but only for a
    fixed input shape; the input here keeps a dynamic height and width.
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    from helpers.quiet import tf

    model = float32_copy(model)
    channels = int(model.input_shape[-1])
    forward = tf.function(lambda x: model(x, training=False))
    spec = tf.TensorSpec([None, None, None, channels], tf.float32, name="pixels")
    frozen = convert_variables_to_constants_v2(forward.get_concrete_function(spec))
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen], model)


def to_tflite(model, kind: str = "float32", representative=None, *, calibration: int = 200):
    """The ``.tflite`` bytes of ``model``: ``"float32"``, or ``"int8"`` calibrated on
    ``representative`` (uint8 training images, (n, h, w, c); at most ``calibration`` used)."""
    from helpers.quiet import tf

    if kind not in KINDS:
        raise ExportError(f"kind must be one of {KINDS}, not {kind!r}")
    converter = _converter(model)
    if kind == "int8":
        if representative is None or not len(representative):
            raise ExportError(
                "int8 quantization needs representative images to calibrate the activation "
                "ranges: pass a few hundred training images (uint8, as the model takes them)"
            )
        sample = np.asarray(representative)[:calibration].astype(np.float32)

        def batches():
            for image in sample:
                yield [image[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = batches
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
    with warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": the uint8 input's range comes
        # from the calibration images, which is what we want.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        return converter.convert()


def export_tflite(
    model,
    path: str | os.PathLike,
    *,
    kind: str = "float32",
    representative=None,
    class_names=None,
    calibration: int = 200,
) -> Path:
    """Write ``model`` to ``path`` (``.tflite``) as ``kind``, with ``MODEL.json`` beside it
    (class names, trained input size, kind). Both are written whole or not at all."""
    from helpers.files import write_atomic

    path = Path(path)
    if path.suffix != ".tflite":
        raise ExportError(f"name the file MODEL.tflite, not {path.name}")
    h, w, c = trained_size(model)
    classes = int(model.output_shape[-1])
    if class_names is not None and len(class_names) != classes:
        raise ExportError(f"{len(class_names)} class names for a model of {classes} classes")
    blob = to_tflite(model, kind, representative, calibration=calibration)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, blob)
    meta = {
        "kind": kind,
        "input_size": [h, w, c],
        "input": f"raw pixels of any size, {c} channel(s), 0..255; resized to {h}x{w} inside",
        "class_names": [str(n) for n in class_names] if class_names is not None else None,
        "num_classes": classes,
        "source_model": model.name,
    }
    write_atomic(metadata_file(path), json.dumps(meta, indent=1).encode("utf-8"))
    return path


def _interpreter(path: Path, num_threads: int | None):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # no LiteRT wheel for this platform: TensorFlow's own copy
        from helpers.quiet import tf

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            return tf.lite.Interpreter(model_path=str(path), num_threads=num_threads)
    return Interpreter(model_path=str(path), num_threads=num_threads)


class TFLitePredictor:
    """Run a ``.tflite`` classifier: ``predictor(images) -> probabilities``.

    ``images``: a uint8 batch (n, h, w, c) of any size, or a list of (h, w, c) arrays
    of different sizes (each run on its own). Also answers ``input_shape`` and
    ``predict_on_batch`` as a Keras model does, so ``helpers.predict`` drives it. The
    int8 model's softmax is quantized in steps of 1/256; its rows are divided by their
    sum so they stay distributions (the ranking does not change).
    """

    takes_numpy = True  # helpers.predict calls it directly, not inside a tf.function

    def __init__(self, path: str | os.PathLike, *, num_threads: int | None = None):
        path = Path(path)
        if not path.is_file():
            raise ExportError(f"no file {path}; export one with helpers.export.export_tflite")
        meta = metadata_file(path)
        self.meta = json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}
        self.path = path
        self.interpreter = _interpreter(path, num_threads or os.cpu_count())
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.channels = int(self._input["shape_signature"][-1])
        self.class_names = self.meta.get("class_names")
        self.input_size = tuple(self.meta.get("input_size") or ())
        self._shape = None

    @property
    def input_shape(self) -> tuple:
        return (None, None, None, self.channels)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.ndim != 4 or batch.shape[-1] != self.channels:
            raise ExportError(
                f"{self.path.name} takes (n, height, width, {self.channels}) images, not "
                f"{batch.shape}"
            )
        if batch.shape != self._shape:
            self.interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
            self.interpreter.allocate_tensors()
            self._shape = batch.shape
        dtype = self._input["dtype"]
        scale, zero = self._input["quantization"]
        if np.issubdtype(dtype, np.integer) and scale:
            limits = np.iinfo(dtype)
            batch = np.clip(np.round(batch / scale + zero), limits.min, limits.max)
        self.interpreter.set_tensor(self._input["index"], batch.astype(dtype))
        self.interpreter.invoke()
        out = np.asarray(self.interpreter.get_tensor(self._output["index"]), np.float64)
        scale, zero = self._output["quantization"]
        if np.issubdtype(self._output["dtype"], np.integer) and scale:
            out = (out - zero) * scale
        return out / np.clip(out.sum(axis=1, keepdims=True), 1e-12, None)

    def __call__(self, images) -> np.ndarray:
        if isinstance(images, np.ndarray) and images.ndim == 4:
            return self._run(images.astype(np.float32))
        return np.concatenate([self._run(np.asarray(x, np.float32)[None]) for x in images])

    def predict_on_batch(self, x) -> np.ndarray:
        return self(np.asarray(x))


def load_predictor(path: str | os.PathLike, *, num_threads: int | None = None) -> TFLitePredictor:
    """A callable from uint8 images to class probabilities for ``MODEL.tflite``."""
    return TFLitePredictor(path, num_threads=num_threads)


# ``python -m helpers predict`` hands files with these suffixes to these loaders.
PREDICT_LOADERS = {".tflite": load_predictor}


def keras_forward(model):
    """The Keras model as one compiled graph from a batch to probabilities (what serving
    it in TensorFlow runs), for a fair latency comparison with the interpreter."""
    from helpers.quiet import tf

    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: np.asarray(forward(tf.constant(np.asarray(x, np.float32))))


def latency_ms(predict, image, *, runs: int = 200, warmup: int = 10) -> float:
    """Median milliseconds of ``predict`` on one image (batch 1) over ``runs`` calls."""
    batch = np.asarray(image)[None]
    for _ in range(warmup):
        predict(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        predict(batch)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def compare(model, files: dict, x_test, y_test, *, keras_file=None, runs: int = 200) -> list[dict]:
    """One row per format: file size in bytes, median latency per image (batch 1) and
    test accuracy, for the Keras model (``keras_file`` gives its size) and each
    ``{"float32": path, "int8": path}``."""
    x_test, y_test = np.asarray(x_test), np.asarray(y_test)
    rows = []
    candidates = [("keras", keras_forward(model), keras_file)]
    candidates += [(kind, load_predictor(path), path) for kind, path in files.items()]
    for name, predict, path in candidates:
        probabilities = np.concatenate(
            [predict(x_test[i : i + 256]) for i in range(0, len(x_test), 256)]
        )
        rows.append(
            {
                "format": name,
                "size_bytes": Path(path).stat().st_size if path else None,
                "latency_ms": latency_ms(predict, x_test[0], runs=runs),
                "accuracy": float(np.mean(probabilities.argmax(axis=1) == y_test)),
            }
        )
    return rows
