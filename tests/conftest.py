"""The runner's fixture notebooks are inputs for tests/test_runner.py, not tests: keep
nbval (which collects every .ipynb under the test paths) from running them, one of
which fails on purpose."""

collect_ignore_glob = ["fixtures/*"]
