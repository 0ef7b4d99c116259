"""Labeling: widgets that store every action in the catalog, the display helpers they
share, model suggestions and a simulated annotator.

``widgets`` (:class:`ClassAnnotator`, :class:`BoxAnnotator`), ``display`` (image bytes
for the browser), ``suggest`` (:func:`fit_suggestions`, uncertainty), ``simulate``
(:class:`SimulatedAnnotator`, and :func:`simulate_labels` for a catalog built in bulk).
"""

from helpers.labeling.display import display_bytes, upscaled_png
from helpers.labeling.simulate import SimulatedAnnotator, simulate_labels
from helpers.labeling.suggest import (
    MODEL_ANNOTATOR,
    fit_suggestions,
    margin_uncertainty,
    pixel_features,
)
from helpers.labeling.widgets import BoxAnnotator, ClassAnnotator

__all__ = [
    "MODEL_ANNOTATOR",
    "BoxAnnotator",
    "ClassAnnotator",
    "SimulatedAnnotator",
    "display_bytes",
    "fit_suggestions",
    "margin_uncertainty",
    "pixel_features",
    "simulate_labels",
    "upscaled_png",
]
