"""Look inside a classifier and measure how sure it is (notebook 09), one module each:

- ``gradcam``: Grad-CAM (Selvaraju et al., 2017), where in the image the evidence for a
  class lies, and Adebayo et al.'s sanity check of it;
- ``calibration``: the expected calibration error, the reliability diagram's numbers,
  temperature scaling (Guo et al., 2017), and an ensemble against its best member;
- ``active``: uncertainty orders the labeling queue, and active learning measures what
  that saves against random order;
- ``upload``: a widget in which a person uploads a photo of their own and sees the
  model's classes, probabilities and Grad-CAM map.

Accuracy is :func:`helpers.evaluate.accuracy`.
"""

from helpers.interpret.active import (
    UNCERTAINTY,
    ActiveLearning,
    active_learning,
    entropy_uncertainty,
    logistic_ensemble,
    uncertainty_queue,
    widget_annotator,
)
from helpers.interpret.calibration import (
    TEMPERATURE_BOUNDS,
    Reliability,
    apply_temperature,
    compare_ensemble,
    ensemble_probabilities,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability,
    temperature_at_bound,
)
from helpers.interpret.errors import InterpretError
from helpers.interpret.gradcam import (
    SanityCheck,
    feature_layer,
    gallery_indices,
    grad_cam,
    randomized_copy,
    rank_correlation,
    sanity_check,
)
from helpers.interpret.upload import PhotoClassifier, PhotoResult, explain_photo

__all__ = [
    "TEMPERATURE_BOUNDS",
    "UNCERTAINTY",
    "ActiveLearning",
    "InterpretError",
    "PhotoClassifier",
    "PhotoResult",
    "Reliability",
    "SanityCheck",
    "active_learning",
    "apply_temperature",
    "compare_ensemble",
    "ensemble_probabilities",
    "entropy_uncertainty",
    "explain_photo",
    "expected_calibration_error",
    "feature_layer",
    "fit_temperature",
    "gallery_indices",
    "grad_cam",
    "logistic_ensemble",
    "negative_log_likelihood",
    "randomized_copy",
    "rank_correlation",
    "reliability",
    "sanity_check",
    "temperature_at_bound",
    "uncertainty_queue",
    "widget_annotator",
]
