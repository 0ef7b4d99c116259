"""Labeling: widgets that store every action in the catalog, the parts they share, model
suggestions and a simulated annotator.

The widgets: ``class_annotator`` (:class:`ClassAnnotator`, one class per image),
``box_annotator`` (:class:`BoxAnnotator`, bounding boxes), ``review``
(:class:`ReviewGallery`, suspect labels fixed in place). What they are built from:
``session`` (who labels, which images, what a refused write raises), ``keys`` (the class
annotator's keyboard), ``tally`` (an annotator's labels and counts, held in memory),
``display`` (image bytes for the browser). Beside them: ``suggest``
(:func:`fit_suggestions`, uncertainty) and ``simulate`` (:class:`SimulatedAnnotator`,
:func:`draw_boxes`, :func:`simulate_labels` for a catalog built in bulk, and
:func:`plant_copies`).
"""

from helpers.labeling.box_annotator import BoxAnnotator
from helpers.labeling.class_annotator import ClassAnnotator
from helpers.labeling.display import display_bytes, upscaled_png
from helpers.labeling.review import ReviewGallery, headless, review_by_code
from helpers.labeling.simulate import (
    SimulatedAnnotator,
    draw_boxes,
    plant_copies,
    simulate_labels,
)
from helpers.labeling.suggest import (
    MODEL_ANNOTATOR,
    fit_suggestions,
    margin_uncertainty,
    pixel_features,
)

__all__ = [
    "MODEL_ANNOTATOR",
    "BoxAnnotator",
    "ClassAnnotator",
    "ReviewGallery",
    "headless",
    "review_by_code",
    "SimulatedAnnotator",
    "display_bytes",
    "draw_boxes",
    "fit_suggestions",
    "margin_uncertainty",
    "pixel_features",
    "plant_copies",
    "simulate_labels",
    "upscaled_png",
]
