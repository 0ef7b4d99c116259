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

Which model ships is decided by :func:`load_finetuned`: notebook 08's fine-tuned model
when its folder holds one for the classes of the data at hand, else none, with the
reason, so that notebook 09 trains its own and says so.
"""

from __future__ import annotations

import os
import stat
import time
import warnings
from pathlib import Path

import numpy as np

from helpers.cards import (
    CARD_JSON,
    REMEDY,
    TFLITE_KINDS,
    CardMismatch,
    check_schema,
    first_line,
    read_card,
    write_card,
)
from helpers.predict import ModelUnusable, check_model, load_model, read_class_names

KINDS = TFLITE_KINDS
# Bytes 4..8 of every .tflite file: the FlatBuffer file identifier of the TFLite schema.
TFLITE_IDENTIFIER = b"TFL3"


class ExportError(ValueError):
    """A model or file that cannot be exported or loaded as given; says what to do."""


FINETUNED_MODEL = "model.keras"  # the file helpers.finetune.save_finetuned writes


def load_finetuned(folder: str | os.PathLike, class_names) -> tuple[object | None, str]:
    """Notebook 08's fine-tuned model in ``folder`` (``data_dir("08_finetune", "model")``)
    and a line saying where it came from, when it classifies exactly ``class_names``
    (same names, same order); else ``(None, why)``: no model there (08 has not run), or
    one fine-tuned on other classes, which is refused rather than shipped with the
    wrong names. Its classes side-car and its card must agree with each other and with
    the model's outputs; a folder where they do not (a half-copied or hand-edited
    model) is an :class:`ExportError` that says to run notebook 08 again.
    """
    folder = Path(folder)
    path = folder / FINETUNED_MODEL
    if not path.is_file():
        return None, f"no fine-tuned model in {folder}: notebook 08 has not run here"
    remedy = f"run notebook 08 again to rewrite {folder}, or delete the folder"
    try:
        names = read_class_names(path)
        card = read_card(folder, "finetuned") if (folder / CARD_JSON).is_file() else {}
    except CardMismatch as exc:
        raise ExportError(f"{exc} ({remedy})") from exc
    if names is None:
        raise ExportError(
            f"{path} has no classes file beside it, so its outputs have no names: {remedy}"
        )
    card_names = card.get("classes", names)
    if card_names != names:
        raise ExportError(
            f"{path}: its card {folder / CARD_JSON} names the classes {card_names}, its classes "
            f"file {names}: {remedy}"
        )
    if names != list(class_names):
        return None, (
            f"refused {path}: notebook 08 fine-tuned it on the classes {names}, this data has "
            f"{list(class_names)}; run notebook 08 on the same data to ship its model"
        )
    try:
        model = load_model(path)
        check_model(model, names, f"the fine-tuned model {path}")
    except ModelUnusable as exc:
        raise ExportError(f"{exc} ({remedy})") from exc
    trained_on = card.get("fine_tuned_on", {})
    count = trained_on.get("train_images") if isinstance(trained_on, dict) else None
    detail = f", fine-tuned on {count} labeled images" if count else ""
    return model, f"loaded notebook 08's model {path}{detail}"


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


def frozen_converter(model):
    """A ``tf.lite.TFLiteConverter`` for the model as one graph with its weights frozen
    into constants; :func:`to_tflite` sets it up for float32 or int8 (notebook 09 writes
    the int8 settings out once and checks they give the same file).

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
    converter = frozen_converter(model)
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
    (class names, trained input size, kind: the "tflite" card of ``helpers.cards``). A
    classifier that outputs logits gets its softmax first
    (``helpers.models.as_probabilities``). Both files are written whole or not at all."""
    from helpers.files import write_atomic
    from helpers.models import as_probabilities

    path = Path(path)
    if path.suffix != ".tflite":
        raise ExportError(f"name the file MODEL.tflite, not {path.name}")
    model = as_probabilities(model)
    h, w, c = trained_size(model)
    classes = int(model.output_shape[-1])
    if class_names is not None and len(class_names) != classes:
        raise ExportError(f"{len(class_names)} class names for a model of {classes} classes")
    meta = {
        "kind": kind,
        "input_size": [h, w, c],
        "input": f"raw pixels of any size, {c} channel(s), 0..255; resized to {h}x{w} inside",
        "class_names": [str(n) for n in class_names] if class_names is not None else None,
        "num_classes": classes,
        "source_model": model.name,
    }
    check_schema(meta, "tflite", f"the side-car of {path}")
    blob = to_tflite(model, kind, representative, calibration=calibration)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, blob)
    write_card(metadata_file(path), meta, "tflite")
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


def _check_file(path: Path) -> None:
    """Refuse what is no ``.tflite`` file before the runtime reads it: a missing path, a
    special file (a FIFO would block the read), bytes without the TFLite identifier (the
    runtime's own message for them names neither the file nor what to do)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ExportError(
            f"no file {path} ({exc.strerror or exc}); export one with helpers.export.export_tflite"
        ) from exc
    if not stat.S_ISREG(info.st_mode):
        raise ExportError(f"{path} is not a regular file; give a .tflite file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[4:8] != TFLITE_IDENTIFIER:
        raise ExportError(
            f"{path} is not a TensorFlow Lite model (it lacks the {TFLITE_IDENTIFIER.decode()} "
            "identifier every .tflite file carries): give a file helpers.export.export_tflite "
            "wrote"
        )


def _read_metadata(path: Path) -> dict:
    """``MODEL.json`` beside ``path`` ({} when there is none), read as a card of the
    "tflite" schema (``helpers.cards.SCHEMA``), else :class:`ExportError` naming each
    wrong field."""
    meta_path = metadata_file(path)
    if not os.path.lexists(meta_path):
        return {}
    try:
        return read_card(meta_path, "tflite")
    except CardMismatch as exc:
        raise ExportError(str(exc)) from exc


class TFLitePredictor:
    """Run a ``.tflite`` classifier: ``predictor(images) -> probabilities``.

    ``images``: a uint8 batch (n, h, w, c) of any size, or a list of (h, w, c) arrays
    of different sizes (each run on its own). Also answers ``input_shape``,
    ``output_shape`` and ``predict_on_batch`` as a Keras model does, so
    ``helpers.predict`` drives it. The file, its ``MODEL.json`` (every field's type) and
    its one image input and one (n, classes) output are checked when it is loaded, each
    refusal an :class:`ExportError` naming the file. The int8 model's softmax is
    quantized in steps of 1/256: a row that is a distribution up to that rounding is
    divided by its sum so it stays one (the ranking does not change); any other row is
    returned as it came, never made to look like probabilities.
    """

    takes_numpy = True  # helpers.predict calls it directly, not inside a tf.function

    def __init__(self, path: str | os.PathLike, *, num_threads: int | None = None):
        path = Path(path)
        _check_file(path)
        self.path = path
        self.meta = _read_metadata(path)
        try:
            self.interpreter = _interpreter(path, num_threads or os.cpu_count())
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ExportError(
                f"{path}: TensorFlow Lite cannot load it ({first_line(exc)}); export it "
                "again with helpers.export.export_tflite"
            ) from exc
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        shapes = [[int(n) for n in d["shape_signature"]] for d in inputs + outputs]
        if len(inputs) != 1 or len(shapes[0]) != 4 or shapes[0][-1] not in (1, 3):
            raise ExportError(
                f"{path} takes inputs of shape {shapes[: len(inputs)]}, not one batch of "
                "(height, width, 1 or 3) images: give a classifier export_tflite wrote"
            )
        if len(outputs) != 1 or len(shapes[1]) != 2:
            raise ExportError(
                f"{path} gives outputs of shape {shapes[1:]}, not one probability per class: "
                "it is no classifier (a feature extractor?); export the fine-tuned classifier"
            )
        self._input, self._output = inputs[0], outputs[0]
        self.channels = int(shapes[0][-1])
        self.num_classes = int(shapes[1][-1])
        self.quantized = any(
            np.issubdtype(t["dtype"], np.integer) and t["quantization"][0]
            for t in self.interpreter.get_tensor_details()
        )
        self._agrees()
        self.class_names = self.meta.get("class_names")
        self.input_size = tuple(self.meta.get("input_size") or ())
        self._shape = None

    def _agrees(self) -> None:
        """Refuse a ``MODEL.json`` that disagrees with the model: its class names or class
        count with the outputs, its input size's channels with the input."""
        names, count = self.meta.get("class_names"), self.meta.get("num_classes")
        size = self.meta.get("input_size")
        what = f"the side-car {metadata_file(self.path)}"
        disagree = []
        if names is not None and len(names) != self.num_classes:
            disagree.append(f"{len(names)} class names")
        if count is not None and count != self.num_classes:
            disagree.append(f"num_classes {count}")
        if disagree:
            raise ExportError(
                f"{what} says {' and '.join(disagree)}, but {self.path.name} gives "
                f"{self.num_classes} outputs: {REMEDY['tflite']}"
            )
        if size is not None and size[2] != self.channels:
            raise ExportError(
                f"{what} says {size[2]} channel(s), but {self.path.name} takes "
                f"{self.channels}: {REMEDY['tflite']}"
            )

    @property
    def input_shape(self) -> tuple:
        return (None, None, None, self.channels)

    @property
    def output_shape(self) -> tuple:
        return (None, self.num_classes)

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
        if self.quantized:
            # Each value may be off by half a 1/256 step: so may the sum, n times over.
            sums = out.sum(axis=1, keepdims=True)
            rounding = (np.abs(sums - 1) <= out.shape[1] / 512) & (out.min(1, keepdims=True) >= 0)
            out = np.where(rounding, out / np.where(rounding, sums, 1), out)
        return out

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


def weight_bytes(path: str | os.PathLike) -> int:
    """Bytes of the constant buffers (weights and biases) inside a ``.tflite`` file.

    The file also holds a part that does not shrink with quantization: the graph, the
    operator codes, every tensor's name and shape. In a small model that part is most
    of the file, so the file sizes of float32 and int8 differ by less than 4x while
    their weights still do; this counts the weights alone (the schema ships with
    LiteRT, so no TensorFlow is needed)."""
    try:
        from ai_edge_litert.schema_py_generated import ModelT
    except ImportError:  # no LiteRT wheel for this platform: TensorFlow's own copy
        from tensorflow.lite.python.schema_py_generated import ModelT

    model = ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)
    return sum(len(buffer.data) for buffer in model.buffers or () if buffer.data is not None)


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
    """One row per format: file size in bytes, the bytes of its weights
    (:func:`weight_bytes`; None for Keras), median latency per image (batch 1) and test
    accuracy, for the Keras model (``keras_file`` gives its size) and each
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
                "weight_bytes": weight_bytes(path) if name in KINDS else None,
                "latency_ms": latency_ms(predict, x_test[0], runs=runs),
                "accuracy": float(np.mean(probabilities.argmax(axis=1) == y_test)),
            }
        )
    return rows
