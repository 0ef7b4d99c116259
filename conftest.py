"""Test configuration shared by the unit tests and the notebooks that nbval runs.

The profile is set here, not by hand: every test process, and every kernel nbval
starts (kernels inherit this environment), runs the ``smoke`` profile.
"""

import os

os.environ["COURSE_PROFILE"] = "smoke"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
