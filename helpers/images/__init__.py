"""The one gate every image passes on its way into the course, and the one folder reader.

Whatever the source (arrays, generated scenes, class folders, a CSV, web downloads, the
COCO/YOLO/VOC/CSV importers), an image enters the catalog only through
:func:`check_image_bytes`: the format is sniffed from its magic bytes (never a file
name or a ``Content-Type``), its size and pixel count are checked before anything is
decoded (a decompression bomb is refused from its header), it is decoded once, fully (a
truncated file fails here, not at training time), its EXIF orientation is applied and
its metadata (EXIF with GPS above all) is stripped. The file is re-encoded only when a
rotation is needed; otherwise metadata segments are dropped byte-wise, so the pixels
are exactly those that arrived. Browsers apply EXIF orientation and ``tf.io`` does not:
storing upright pixels is what makes a box drawn in the browser and the pixels a model
trains on agree.

Its modules: ``files`` (:data:`FORMATS`, the one table of accepted formats, their magic
bytes and extensions; the limits; special files refused before they are opened),
``gate`` (:func:`check_image_bytes` and the header-only checks), ``metadata`` (EXIF,
XMP, IPTC found and stripped), ``pixels`` (every mode to uint8 gray or RGB) and
``trees``: :func:`walk_class_tree`, the one reader of ``root/<class>/...`` trees, used by
the importer and the training pipeline alike, so both see the same images and both
report what they leave out, and :func:`read_split_tree`, the one reader of
``train/``, ``val/``, ``test/`` trees with the one set of rules every trainer applies.
"""

from helpers.images.files import (
    FORMATS,
    IMAGE_EXTENSIONS,
    MAX_BYTES,
    MAX_PIXELS,
    MIN_SIDE,
    TENSORFLOW_EXTENSIONS,
    ImageFormat,
    ImageRejected,
    pixel_problem,
    read_image_file,
    sniff_format,
    special_file_problem,
    stored_extension,
)
from helpers.images.gate import (
    CheckedImage,
    bytes_problem,
    check_image_bytes,
    image_header,
    screen_image_file,
)
from helpers.images.pixels import LUMA, MODES, decode_pixels, encode_png, pixels
from helpers.images.trees import (
    SPLIT_FOLDERS,
    ClassFolderWarning,
    ClassTree,
    FolderError,
    SplitTree,
    class_tree_problems,
    read_split_tree,
    split_folders,
    walk_class_tree,
)

__all__ = [
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "LUMA",
    "MAX_BYTES",
    "MAX_PIXELS",
    "MIN_SIDE",
    "MODES",
    "SPLIT_FOLDERS",
    "TENSORFLOW_EXTENSIONS",
    "CheckedImage",
    "ClassFolderWarning",
    "ClassTree",
    "FolderError",
    "ImageFormat",
    "ImageRejected",
    "SplitTree",
    "bytes_problem",
    "check_image_bytes",
    "class_tree_problems",
    "decode_pixels",
    "encode_png",
    "image_header",
    "pixel_problem",
    "pixels",
    "read_image_file",
    "read_split_tree",
    "screen_image_file",
    "sniff_format",
    "special_file_problem",
    "split_folders",
    "stored_extension",
    "walk_class_tree",
]
