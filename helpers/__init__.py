"""Shared logic for the course "from raw images to a fine-tuned model".

Importing ``helpers`` imports nothing heavy: modules that need TensorFlow get it from
:mod:`helpers.quiet` (which also silences its start-up noise), so ``python -m helpers
check``, the catalog and the labeling widgets answer without loading it.

Layout, in the order data flows through it (acquire -> catalog -> labeling/quality ->
pipeline -> models/train -> finetune -> results):

- ``config``, ``devices``, ``results``, ``files``, ``quiet``, ``plots``, ``cards``: the
  base every layer may use (profiles, paths and seeds; hardware facts, precision and the
  one environment record; metrics for the runner; atomic writes; TensorFlow without
  noise; the figures notebooks show; the one model card schema, writer and reader that
  every saved model travels with).
- ``exercises/``: the exercise checks, one module a notebook (``nbNN``), that tell a
  learner in the notebook whether an answer is right, or give a hint.
- ``images/``: the one gate every image passes on its way in (``files``: format
  sniffing and limits; ``gate``: decompression-bomb checks, decoded once; ``metadata``:
  EXIF orientation applied, metadata stripped; ``pixels``) and ``trees``, the one
  reader of class-per-folder and train/val/test trees, with one set of rules.
- ``catalog/``: the SQLite store of images, labels, boxes and splits (``schema``,
  ``errors``, ``store``, ``images``, ``labels``, ``splits``); all SQL lives here.
- ``splitting``: split without leaks (the one stratified splitter, and the grouped one
  for catalogs).
- ``acquire/``: bringing images in: ``datasets`` (arrays by name), ``photos`` (the real
  CIFAR-10 photos that ship with the course, split into source and target classes;
  ``photo_archives`` builds them), ``synthetic`` (generated scenes), ``folders``
  (folders and CSV into the catalog), ``download`` and ``fetch`` (web downloads; one
  URL's GET), ``image_api_server`` (a local image-search API for offline runs).
- ``labeling/``: ``class_annotator`` and ``box_annotator`` (the widgets, with ``keys``,
  ``tally`` and ``session``), ``review`` (the review gallery), ``display`` (images for
  the browser), ``suggest`` (model suggestions), ``simulate`` (a scripted annotator).
- ``quality``, ``formats/``: clean the labels, import and export
  COCO/YOLO/VOC/CSV/folders.
- ``pipeline/``: ``sources`` (what to read), ``decode``, ``engine`` (skip tracking and
  the memory cache), ``augment`` (normalization and the one augmentation factory),
  ``dataset`` (the public builders) and ``tfrecords``.
- ``scratch``: NumPy reference math; imports no TensorFlow.
- the models: ``models/`` (the architecture registry, one head, one preprocessing
  layer); ``train/`` (the one training path: data, schedules, the optimizer factory, the
  planner and its budget guard, callbacks, fit, the learning-rate finder),
  ``evaluate`` (the one accuracy), ``predict`` and ``sizing`` (notebook 06);
  ``pretrain/`` and ``distribute/`` (07: the custom multi-worker Trainer on train's
  schedule, planner and record format); ``finetune/`` (08); ``interpret/`` and
  ``export`` (09).
- ``runner/``, ``notebooks``, ``__main__``: the headless course and its command line.

A module imports only from layers before it in that list, never back up the flow; the
import-linter contracts in ``pyproject.toml`` say so exactly and ``tests/test_layers.py``
runs them.
"""

__version__ = "0.1.0"
