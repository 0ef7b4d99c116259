"""TensorFlow and Keras, imported once with their C++ start-up noise dropped.

Modules and notebooks that need TensorFlow write ``from helpers.quiet import tf, keras``
instead of importing it directly; everything else in ``helpers`` never imports it, so
the CLI, the catalog and the labeling widgets answer at once.

``TF_CPP_MIN_LOG_LEVEL`` defaults to 3 here, which also drops TensorFlow's C++ error
lines: each error that matters reaches Python as an exception carrying the same message,
so the log lines only repeat it (one "Premature end of JPEG data" per corrupt file the
pipeline already names, a oneDNN notice about uint8 images). TensorFlow 2.21 still
prints its oneDNN notice and an absl warning to the process's stderr at import whatever
``TF_CPP_MIN_LOG_LEVEL`` says, and Jupyter shows those lines in the notebook. So the
import runs with file descriptor 2 captured, the known noise lines are dropped and
anything else (a real error) is written back. oneDNN itself stays on: turning it off
(``TF_ENABLE_ONEDNN_OPTS=0``) would make CPU training about 1.6x slower.
"""

import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_IMPORT_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on"
    r"|cpu_feature_guard|To enable the following instructions|rebuild TensorFlow with"
)


def _import_tensorflow_quietly() -> None:
    if "tensorflow" in sys.modules:
        return
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (some embedded interpreters): import as is
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass  # the plain import below raises the real error
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode("utf-8", "replace").splitlines()
                if line.strip() and not _IMPORT_NOISE.search(line)
            ]
    if kept:
        print("\n".join(kept), file=sys.stderr)


_import_tensorflow_quietly()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["keras", "tf"]
