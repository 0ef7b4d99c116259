"""Export the catalog's labels to the common formats, and import them back.

Formats and what each holds:

=================  ===============================================  ======================
format             layout                                           labels
=================  ===============================================  ======================
class folders      ``root/[split/]<class>/<file>``                  one class per image
CSV                ``labels.csv`` + ``images/``                     class labels or boxes
COCO JSON          ``annotations.json`` + ``images/``               boxes
YOLO txt           ``images/``, ``labels/<stem>.txt``, classes.txt  boxes
Pascal VOC XML     ``JPEGImages/``, ``Annotations/<stem>.xml``      boxes
=================  ===============================================  ======================

Coordinate conventions (the catalog stores pixel corners, ``x0 <= x < x1``):

- COCO ``bbox`` is ``[x, y, width, height]`` in pixels, ``x = x0``, ``width = x1 - x0``;
- YOLO is ``class cx cy w h``, centre and size divided by the image size, in [0, 1];
- VOC ``xmin ymin xmax ymax`` are 1-based pixel indices, inclusive: ``xmin = x0 + 1``,
  ``xmax = x1`` (a one-pixel box at column 0 is ``xmin = xmax = 1``).

Category ids come from one mapping, :func:`category_index` (catalog class order,
from 0): YOLO uses it as is, COCO adds 1 because COCO ids start at 1 (0 is
background to many detectors). Exported boxes are clipped to the image.

Files are named by content hash (``<sha256>.<ext>``), so an import finds the image an
export wrote and a round trip through any format keeps every label. Every import
parses and checks all of its input (images decode, classes known, boxes inside the
image with positive area) before it writes anything, then writes everything in one
catalog transaction: bad input raises :class:`CatalogError` and leaves the catalog
unchanged, and so does a crash half-way.

Importers stay inside the folder they are given: a file name in a label file (a CSV
``file``, a COCO ``file_name``, a VOC ``<filename>``) and every file found in the
folder is resolved, links included, and checked by :func:`helpers.files.resolve_inside`.
A row or file that leads outside, and a CSV row without a class, is left out while the
rest is imported; an :class:`ImportLeftOut` warning names each one and why. Error
messages name the file and the line or entry, and never quote an image file's bytes.

Every imported image passes the gate in :mod:`helpers.images` like any other: it is
stored upright (EXIF orientation applied) and without its metadata (GPS included).
Imported boxes are taken in that upright frame, the one browsers and annotation tools
show; their sizes are checked against it.

One module per format (``class_folders``, ``csv_labels``, ``coco``, ``yolo``, ``voc``),
each with its exporter and importer; ``shared`` holds what they all use.
"""

from helpers.formats.class_folders import export_class_folders, import_class_folders
from helpers.formats.coco import export_coco, import_coco
from helpers.formats.csv_labels import BOX_COLUMNS, LABEL_COLUMNS, export_csv, import_csv
from helpers.formats.shared import ImportLeftOut, category_index
from helpers.formats.voc import export_voc, import_voc
from helpers.formats.yolo import export_yolo, import_yolo

__all__ = [
    "BOX_COLUMNS",
    "LABEL_COLUMNS",
    "ImportLeftOut",
    "category_index",
    "export_class_folders",
    "export_coco",
    "export_csv",
    "export_voc",
    "export_yolo",
    "import_class_folders",
    "import_coco",
    "import_csv",
    "import_voc",
    "import_yolo",
]
