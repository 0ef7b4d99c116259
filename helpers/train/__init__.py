"""Train a classifier: notebook 06's one training path, which 08 and 09 call too and whose
schedule, planner and callbacks ``helpers.distribute.Trainer`` (07) shares.

- ``data``: ``DATASET``/``DATA_DIR`` to train, validation and test splits
  (:func:`load_image_data`) and batched datasets of known length (:func:`make_datasets`).
- ``schedules``: the warm-up-then-decay learning rate (:func:`make_schedule`: Keras's
  ``CosineDecay``, or :class:`WarmupDecay` for the linear decay Keras lacks).
- ``optimizers``: the one optimizer factory (:func:`make_optimizer`) and ``compile``
  (:func:`compile_model`).
- ``planner``: a step count, epochs or a time budget to the steps a run takes
  (:func:`plan_steps`), from a speed measured on the real model.
- ``callbacks``: the runner's record (:class:`RecordMetrics`), the budget guard
  (:class:`Deadline`), the pace of ``fit`` (:class:`Pace`).
- ``fitting``: :func:`fit`, ``model.fit`` with a budget, a schedule, label smoothing
  and checkpoints.
- ``lr_finder``: :func:`lr_find`, fastai's learning-rate finder.
"""

from helpers.train.callbacks import Deadline, Pace, RecordMetrics
from helpers.train.data import (
    DataError,
    DataWarning,
    ImageData,
    load_image_data,
    make_datasets,
    with_cardinality,
)
from helpers.train.fitting import FitResult, fit, num_classes_of
from helpers.train.lr_finder import LRFinderResult, lr_find
from helpers.train.optimizers import compile_model, make_optimizer
from helpers.train.planner import Plan, Speed, measure, plan_steps
from helpers.train.schedules import WarmupDecay, make_schedule

__all__ = [
    "DataError",
    "DataWarning",
    "Deadline",
    "FitResult",
    "ImageData",
    "LRFinderResult",
    "Pace",
    "Plan",
    "RecordMetrics",
    "Speed",
    "WarmupDecay",
    "compile_model",
    "fit",
    "load_image_data",
    "lr_find",
    "make_datasets",
    "make_optimizer",
    "make_schedule",
    "measure",
    "num_classes_of",
    "plan_steps",
    "with_cardinality",
]
