"""From image files, a catalog split, arrays or TFRecord shards to ``tf.data`` batches.

``from helpers import pipeline as pl`` gives the public names of its modules:
``options`` (:class:`PipelineOptions`, the errors), ``sources`` (what to read),
``decode`` (bytes to pixels, resizing), ``engine`` (skip tracking, the memory cache, the
grouped first pass), ``augment`` (normalization, augmentation layers), ``dataset`` (the
builders) and ``tfrecords`` (sharded export and reading).
"""

from helpers.pipeline.augment import ChannelStats, RandomShift, augmentation, model_step
from helpers.pipeline.dataset import (
    build_dataset,
    channel_stats,
    from_arrays,
    from_catalog,
    from_folder,
)
from helpers.pipeline.decode import (
    decode,
    decoder_for,
    load_image,
    pillow_decode,
    resize,
    to_channels,
)
from helpers.pipeline.engine import AUTOTUNE, MemoryCache, SkipReport, SkipTracker
from helpers.pipeline.options import (
    LABEL_MODES,
    RESIZE_MODES,
    PipelineError,
    PipelineOptions,
)
from helpers.pipeline.sources import ImageList, ImageSplits, list_catalog, list_folder, list_splits
from helpers.pipeline.tfrecords import export_tfrecords, read_manifest, read_tfrecords

__all__ = [
    "AUTOTUNE",
    "LABEL_MODES",
    "RESIZE_MODES",
    "ChannelStats",
    "ImageList",
    "ImageSplits",
    "MemoryCache",
    "PipelineError",
    "PipelineOptions",
    "RandomShift",
    "SkipReport",
    "SkipTracker",
    "augmentation",
    "build_dataset",
    "channel_stats",
    "decode",
    "decoder_for",
    "export_tfrecords",
    "from_arrays",
    "from_catalog",
    "from_folder",
    "list_catalog",
    "list_folder",
    "list_splits",
    "load_image",
    "model_step",
    "pillow_decode",
    "read_manifest",
    "read_tfrecords",
    "resize",
    "to_channels",
]
