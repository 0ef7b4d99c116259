"""Shared logic for the course "from raw images to a fine-tuned model".

One module per concern; data flows one way through them:
acquire -> catalog -> labeling/quality -> pipeline -> models/train -> finetune -> results.

Importing this package quiets TensorFlow's C++ log lines (INFO and WARNING) for every
process that imports it before TensorFlow, without disabling oneDNN, which would make
CPU training about 1.6x slower.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
