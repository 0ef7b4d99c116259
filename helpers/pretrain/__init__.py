"""Pretrain a backbone from scratch on a many-class source set, and describe it in a card.

Notebook 07's room, on top of :mod:`helpers.distribute` (the training loop, the same on
one device, several GPUs and several machines) and :mod:`helpers.models` (the ResNet-style
backbone), trained with ``helpers.train.make_optimizer("sgd", peak, total_steps=steps,
warmup=0.1, weight_decay=5e-4)``, the fast CIFAR trainers' SGD with Nesterov momentum on
a linear warm-up then linear decay. What it adds, one module each:

- ``sources``, the source data (:func:`load_source`): ``"photos"`` (the default: the
  real photos of the source classes that ship with the course,
  ``helpers.acquire.photos.SOURCE_CLASSES``, with the data set's own labels; all of
  CIFAR-10's in the ``full`` profile), ``"generated"`` (every shape x colour x texture of
  ``helpers.acquire.synthetic.many_class_images``, up to 128 classes),
  ``"cifar100"``/``"cifar10"`` through ``keras.datasets`` (online or cached), or
  ``"folder"`` with ``DATA_DIR`` (a class-per-folder tree or a ``train/`` (``val/``)
  ``test/`` split tree, read through ``helpers.train.load_image_data``);
- ``floor``, the accuracy floor (:func:`accuracy_floor`, :func:`floor_verdict`): a
  multiple of chance, capped, so it means the same for 5 classes as for 128;
- ``speed``: :func:`choose_jit_compile` (XLA on a GPU, not on a CPU, with the reason),
  :func:`probe_batch_size` (on a GPU, the batch that fills it, found by
  measuring, not a constant), :func:`speed_report` (images per second, step time, peak
  memory, the fraction of the device's peak FLOP rate, from :func:`peak_flops`);
- ``card``, the model card (:func:`make_card`, :func:`save_backbone`): the
  ``helpers.cards`` "backbone" schema, the one format notebook 08 reads
  (``helpers.cards.read_card``). The backbone takes raw 0..255 pixels and resizes and
  scales them itself, so its ``preprocessing`` is ``"raw"``; ``preprocessing_inside``
  says what it does to them;
- ``worker``: :func:`run_worker`, behind ``python -m helpers pretrain-worker``, one
  process of a multi-machine run, configured by ``TF_CONFIG``; :func:`seeded_resnet`,
  the classifier every worker builds from the same seed.
"""

from helpers.pretrain.card import BACKBONE_PREPROCESSING, make_card, save_backbone
from helpers.pretrain.floor import accuracy_floor, floor_verdict
from helpers.pretrain.sources import Source, generated_source, load_source
from helpers.pretrain.speed import (
    GPU_PEAK_FLOPS,
    choose_jit_compile,
    measure_throughput,
    peak_flops,
    peak_memory_mb,
    probe_batch_size,
    speed_report,
)
from helpers.pretrain.worker import run_worker, seeded_resnet

__all__ = [
    "BACKBONE_PREPROCESSING",
    "GPU_PEAK_FLOPS",
    "Source",
    "accuracy_floor",
    "choose_jit_compile",
    "floor_verdict",
    "generated_source",
    "load_source",
    "make_card",
    "measure_throughput",
    "peak_flops",
    "peak_memory_mb",
    "probe_batch_size",
    "run_worker",
    "save_backbone",
    "seeded_resnet",
    "speed_report",
]
